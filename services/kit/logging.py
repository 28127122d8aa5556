"""JSON logs on stdout, one object per line, plus an optional GELF handler for Logstash.

Fields: ``ts, level, service, event, message, request_id`` always (``message`` is never empty: GELF
needs it as ``short_message``); ``route, status, duration_ms, user_id, order_id`` and the other
``RECORD_FIELDS`` where known. Each field has one JSON type in every record, whatever a call site passes
(``RECORD_FIELDS``; any other extra is written as a string), so Elasticsearch never sees a field change
type. python-json-logger formats; a filter adds the request context, types the extras and drops any
extra whose name says it is a secret, so a careless ``extra={"password": ...}`` never reaches a log.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

from pythonjsonlogger.json import JsonFormatter

from services.kit.context import request_id_var, user_id_var
from services.kit.settings import KitSettings

# The JSON type of every field the services' records carry. The Elasticsearch index template maps exactly
# these (shop_platform.k8s.objects.index_template); a field not listed here is written as a string.
RECORD_FIELDS: Final[Mapping[str, type]] = {
    **dict.fromkeys(
        (
            "ts",
            "level",
            "service",
            "event",
            "message",
            "request_id",
            "user_id",
            "route",
            "method",
            "exc_info",
            "order_id",
            "order_status",
            "payment_id",
            "product_id",
            "session_id",
            "client_ip",
            "upstream",
            "error_type",
            "error",
            "why",
            "decline_reason",
            "currency",
            "migration",
            "versions",
        ),
        str,
    ),
    **dict.fromkeys(
        (
            "status",
            "attempt",
            "count",
            "total_cents",
            "amount_cents",
            "changes",
            "upserts",
            "deletes",
            "consecutive_failures",
            "from_seq",
            "to_seq",
            "after",
            "cursor",
        ),
        int,
    ),
    **dict.fromkeys(("duration_ms", "lag_ms"), float),
}
# What every LogRecord has before extras are added; everything else on a record is an extra to type.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_SENSITIVE = ("password", "token", "secret", "card", "cvc", "authorization", "cookie")


@functools.lru_cache(maxsize=4096)
def _is_sensitive(key: str) -> bool:
    # Cached: records carry the same few dozen attribute names every time, and this runs for every log
    # line (one per request); scanning each name against every word cost ~10 us per request.
    lowered = key.lower()
    return any(s in lowered for s in _SENSITIVE)


class ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        if not hasattr(record, "event"):
            record.event = record.getMessage()
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS or value is None:
                continue
            if _is_sensitive(key):
                setattr(record, key, "[redacted]")
                continue
            typed = _typed(key, value)
            if typed is None:  # not a number where one is expected: kept as text, never as a second type
                delattr(record, key)
                setattr(record, f"{key}_text", str(value))
            elif typed is not value:
                setattr(record, key, typed)
        return True


def _typed(key: str, value: Any) -> Any:
    """``value`` as the JSON type ``RECORD_FIELDS`` gives ``key`` (a string for any other key), or None when it
    cannot be a number where ``key`` is numeric."""
    kind = RECORD_FIELDS.get(key, str)
    if kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (list, tuple, dict, bool)):
            return json.dumps(value, default=str, ensure_ascii=False)
        return str(value)
    if type(value) is kind:
        return value
    if isinstance(value, bool):
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


class _Formatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["ts"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        log_record["level"] = record.levelname.lower()
        # Never empty: GELF drops a record without a short message (the collector sends ``message`` as it).
        log_record["message"] = log_record.get("message") or log_record.get("event") or record.name
        for key in [k for k, v in log_record.items() if v is None]:
            del log_record[key]


def configure_logging(settings: KitSettings) -> None:
    """Route every logger (ours, uvicorn's) to one JSON stream. Idempotent."""
    formatter = _Formatter(
        "%(service)s %(event)s %(request_id)s %(message)s", json_ensure_ascii=False, reserved_attrs=_RESERVED
    )
    formatter.converter = time.gmtime
    context = ContextFilter(settings.service_name)

    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(formatter)
    stdout.addFilter(context)
    handlers: list[logging.Handler] = [stdout]

    if settings.gelf_host:
        from pygelf import GelfTcpHandler, GelfUdpHandler

        cls = GelfUdpHandler if settings.gelf_protocol == "udp" else GelfTcpHandler
        gelf = cls(
            host=settings.gelf_host, port=settings.gelf_port, include_extra_fields=True, _service=settings.service_name
        )
        gelf.addFilter(context)
        handlers.append(gelf)

    root = logging.getLogger()
    root.handlers = handlers
    root.setLevel(settings.log_level)
    # uvicorn's own access log would duplicate ours (which has the route template and request ID).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outbound request at INFO; our own request line already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


# LogRecord attributes that are not interesting in the JSON object. exc_info is written once, as the formatted
# traceback text (JsonFormatter.format), never as the raw (type, value, traceback) tuple.
_RESERVED = [
    "args",
    "asctime",
    "created",
    "exc_info",
    "exc_text",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "module",
    "msecs",
    "msg",
    "name",
    "pathname",
    "process",
    "processName",
    "relativeCreated",
    "stack_info",
    "thread",
    "threadName",
    "taskName",
]
