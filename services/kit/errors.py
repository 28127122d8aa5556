"""RFC 9457 problem details: every non-2xx body of every service has this shape.

Routes raise :class:`Problem`; the handlers below also turn framework errors (validation, 404 on an
unknown path, 405) into problems. Nothing here ever puts a stack trace, SQL text or input value in a
body: validation errors carry only the location and the message, never the offending input (it may be
a card number or a password).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from services.kit.context import request_id_var
from services.kit.pagination import InvalidCursor

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Default kind (the last segment of `type`) per status, for errors raised without an explicit kind.
_DEFAULT_KIND = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    500: "internal",
    502: "bad-gateway",
    503: "upstream-unavailable",
    504: "upstream-timeout",
}

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Upstream timeout",
}


class Problem(Exception):
    """An error a route wants the client to see, with a stable ``kind`` and optional extension members."""

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
        self.status = status
        self.detail = detail
        self.kind = kind or _DEFAULT_KIND.get(status, "error")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extensions = extensions


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


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can return (so schema checks know them)."""
    return {
        s: {"model": ProblemBody, "description": _TITLES.get(s, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}}
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


def problem_body(base_uri: str, status: int, detail: str, instance: str, *, kind: str | None = None,
                 title: str | None = None, **extensions: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"{base_uri}{kind or _DEFAULT_KIND.get(status, 'error')}",
        "title": title or _TITLES.get(status, "Error"),
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
    return problem_response(request, exc.status, exc.detail, kind=exc.kind, title=exc.title,
                            headers=exc.headers, **exc.extensions)


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
    detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return problem_response(request, exc.status_code, detail, headers=headers)


async def _on_invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 422, "The cursor is not valid: use next_cursor from a previous page.",
                            errors=[{"loc": ["query", "cursor"], "msg": "malformed cursor"}])


def install_problem_handlers(app: FastAPI, base_uri: str) -> None:
    app.state.problem_base_uri = base_uri
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(InvalidCursor, _on_invalid_cursor)


# What a request sees while its database is away (a restart, a failover): the socket is gone or the
# server refuses new work. These become a 503 with Retry-After, not a 500: the pool reconnects by itself
# once the server is back, so neither the client nor an operator has anything to fix.
DATABASE_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.InterfaceError)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"event": "db_unavailable", "error_type": type(exc).__name__})
    return problem_response(request, 503, "The service's database is unavailable; retry shortly.",
                            kind="service-unavailable", headers={"Retry-After": "1"})


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
