"""Per-request context that logs, outbound calls and error bodies read (request ID, trace, user)."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
