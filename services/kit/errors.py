"""RFC 9457 problem details: every non-2xx body of every service has this shape.

Routes raise :class:`Problem`; the handlers below also turn framework errors (validation, 404 on an
unknown path, 405) into problems. Nothing here ever puts a stack trace, SQL text or input value in a
body: validation errors carry only the location and the message, never the offending input (it may be
a card number or a password).
"""

from __future__ import annotations

import logging
from typing import Any, Self

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.kit.context import request_id_var
from services.kit.pagination import InvalidCursor

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error a route wants the client to see, with a stable ``kind`` and optional extension members.

    A bare ``Problem(status, detail)`` is the generic error of its status (kind and title from the status's
    class below). An error a client may act on gets a named subclass instead, declaring its status, kind and
    title once, on the class: the pattern of fastapi-problem (NRWLDev/fastapi-problem ``docs/error.md``,
    "Custom Errors") and of polar's named errors (polarsource/polar ``server/polar/exceptions.py``)."""

    status: int = 500
    kind: str = "internal"
    title: str = "Internal error"

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        generic = _BY_STATUS.get(status)
        self.status = status
        self.detail = detail
        self.kind = kind or (generic.kind if generic else "error")
        self.title = title or (generic.title if generic else "Error")
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, base_uri: str, instance: str) -> dict[str, Any]:
        """The problem body, for a response built outside the handlers (a stored idempotent outcome)."""
        return problem_body(
            base_uri, self.status, self.detail, instance, kind=self.kind, title=self.title, **self.extensions
        )


class NamedProblem(Problem):
    """Base of the named errors: a subclass sets ``status``, ``kind`` and ``title`` (or inherits them from a
    status class: ``class OutOfStock(Conflict): kind = "out-of-stock"``); an instance carries the detail and
    the extension members."""

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(self.status, detail, kind=self.kind, title=self.title, headers=headers, **extensions)

    @classmethod
    def received(cls, body: ProblemBody) -> Self:
        """This error as a caller rebuilds it from the callee's body. Subclasses with extension members
        override it and read them with :meth:`ProblemBody.member` (a missing or malformed one is a
        ``ValueError``)."""
        return cls(body.detail)


# The generic error of each status: its kind (the last segment of `type`) and title.
class BadRequest(NamedProblem):
    status, kind, title = 400, "bad-request", "Bad request"


class Unauthorized(NamedProblem):
    status, kind, title = 401, "unauthorized", "Authentication required"


class Forbidden(NamedProblem):
    status, kind, title = 403, "forbidden", "Forbidden"


class NotFound(NamedProblem):
    status, kind, title = 404, "not-found", "Not found"


class MethodNotAllowed(NamedProblem):
    status, kind, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(NamedProblem):
    status, kind, title = 409, "conflict", "Conflict"


class PayloadTooLarge(NamedProblem):
    status, kind, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(NamedProblem):
    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(NamedProblem):
    status, kind, title = 422, "validation", "Validation failed"


class TooManyRequests(NamedProblem):
    status, kind, title = 429, "rate-limited", "Too many requests"


class InternalError(NamedProblem):
    status, kind, title = 500, "internal", "Internal error"


class BadGateway(NamedProblem):
    status, kind, title = 502, "bad-gateway", "Bad gateway"


class ServiceUnavailable(NamedProblem):
    status, kind, title = 503, "upstream-unavailable", "Service unavailable"


class UpstreamTimeout(NamedProblem):
    status, kind, title = 504, "upstream-timeout", "Upstream timeout"


_BY_STATUS: dict[int, type[NamedProblem]] = {
    c.status: c
    for c in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyRequests,
        InternalError,
        BadGateway,
        ServiceUnavailable,
        UpstreamTimeout,
    )
}


def _generic_title(status: int) -> str:
    generic = _BY_STATUS.get(status)
    return generic.title if generic else "Error"


class ValidationItem(BaseModel):
    loc: list[str | int]
    msg: str


class ProblemBody(BaseModel):
    """The documented shape of every error body (extension members are allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str
    request_id: str
    errors: list[ValidationItem] | None = None

    @property
    def kind(self) -> str:
        return self.type.rsplit("/", 1)[-1]

    def member(self, name: str, shape: Any) -> Any:
        """Extension member ``name`` validated as ``shape`` (a type pydantic knows); ``ValueError`` when it
        is missing or malformed."""
        extra = self.model_extra or {}
        if name not in extra:
            raise ValueError(f"the problem body has no {name!r}")
        return TypeAdapter(shape).validate_python(extra[name])


def problem_responses(*problems: int | type[Problem]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can return (so schema checks know them): a
    status, or a named error class standing for its status."""
    statuses = sorted({p if isinstance(p, int) else p.status for p in problems})
    return {
        s: {
            "model": ProblemBody,
            "description": _generic_title(s),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}},
        }
        for s in statuses
    }


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    base = getattr(request.app.state, "problem_base_uri", "about:blank/")
    body = problem_body(base, status, detail, request.url.path, kind=kind, title=title, **extensions)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(
    base_uri: str,
    status: int,
    detail: str,
    instance: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    **extensions: Any,
) -> dict[str, Any]:
    generic = _BY_STATUS.get(status)
    body: dict[str, Any] = {
        "type": f"{base_uri}{kind or (generic.kind if generic else 'error')}",
        "title": title or (generic.title if generic else "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id_var.get(),
    }
    body.update(extensions)
    return body


def _loc(loc: tuple[Any, ...]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        request, exc.status, exc.detail, kind=exc.kind, title=exc.title, headers=exc.headers, **exc.extensions
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": _loc(tuple(e.get("loc", ()))), "msg": str(e.get("msg", "invalid"))} for e in exc.errors()]
    # A body that is not JSON at all is a client error too; say so plainly.
    detail = "The request is not valid: see `errors`."
    return problem_response(request, 422, detail, errors=errors)


def _allowed_methods(request: Request) -> str | None:
    """Every method the path supports. Starlette's 405 lists only the first matching route's methods,
    which is wrong when one path has several routes (GET and PATCH /users/me): RFC 9110 wants them all."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        # Ask the router itself (included routers are nested objects in recent FastAPI versions).
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed) or None


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _generic_title(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return problem_response(request, exc.status_code, detail, headers=headers)


async def _on_invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request,
        422,
        "The cursor is not valid: use next_cursor from a previous page.",
        errors=[{"loc": ["query", "cursor"], "msg": "malformed cursor"}],
    )


def install_problem_handlers(app: FastAPI, base_uri: str) -> None:
    app.state.problem_base_uri = base_uri
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(InvalidCursor, _on_invalid_cursor)


# What a request sees while its database is away (a restart, a failover): the socket is gone or the
# server refuses new work. These become a 503 with Retry-After, not a 500: the pool reconnects by itself
# once the server is back, so neither the client nor an operator has anything to fix.
DATABASE_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"event": "db_unavailable", "error_type": type(exc).__name__})
    return problem_response(
        request,
        503,
        "The service's database is unavailable; retry shortly.",
        kind="service-unavailable",
        headers={"Retry-After": "1"},
    )


async def _on_data_error(request: Request, exc: Exception) -> JSONResponse:
    # SQLSTATE class 22, and asyncpg's own "invalid input for query argument" (raised while encoding a
    # parameter, e.g. a datetime that overflows on conversion to UTC; asyncpg@0.32.0
    # asyncpg/protocol/prepared_stmt.pyx wraps every encoder error in DataError): a value from the request the
    # database cannot hold. The message quotes the value, so it goes to the log by type only.
    log.warning("database refused a value", extra={"event": "db_data_error", "error_type": type(exc).__name__})
    return problem_response(request, 422, "A value in the request is outside what the service can store.")


def install_database_handlers(app: FastAPI) -> None:
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, _on_database_unavailable)
    app.add_exception_handler(asyncpg.DataError, _on_data_error)
