"""Typed FastAPI dependencies (the pattern of fastapi/full-stack-fastapi-template,
``backend/app/api/deps.py``: ``Annotated[T, Depends(getter)]``).

Routes declare what they use (``pool: PoolDep``) instead of reading the untyped ``app.state``: the getters
made here are the one place that reads it, each checking the type it promises, and tests may replace one
with ``app.dependency_overrides``. A service's own ``deps.py`` declares its settings class and what its
start-up builds.

The getters are ``async def`` although they never wait: FastAPI runs a plain ``def`` dependency in a
worker thread (fastapi@0.163.2 ``fastapi/dependencies/utils.py``, ``solve_dependencies``), a thread hop
per request for an attribute read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Request

from services.kit.auth import ServiceTokenIssuer
from services.kit.settings import KitSettings

T = TypeVar("T")
S = TypeVar("S", bound=KitSettings)


def state_of(app: FastAPI, name: str, kind: type[T]) -> T:
    """``app.state.<name>`` as the ``kind`` start-up made it (for background loops and hooks)."""
    value = getattr(app.state, name, None)
    if not isinstance(value, kind):
        raise RuntimeError(
            f"app.state.{name} is a {type(value).__name__}, not a {kind.__name__}: start-up has not made it"
        )
    return value


def from_state(name: str, kind: type[T]) -> Callable[[Request], Coroutine[Any, Any, T]]:
    """A dependency returning ``app.state.<name>`` as a ``kind``."""

    async def dependency(request: Request) -> T:
        return state_of(request.app, name, kind)

    dependency.__name__ = f"get_{name}"
    return dependency


def settings_of(app: FastAPI, kind: type[S]) -> S:
    """The settings ``create_app`` was given, as the service's own class."""
    return state_of(app, "settings", kind)


def pool_of(app: FastAPI) -> asyncpg.Pool:
    """The database pool the lifespan opened."""
    return state_of(app, "pool", asyncpg.Pool)


def issuer_of(app: FastAPI) -> ServiceTokenIssuer | None:
    """The signer of this service's tokens for its peers; None without a SERVICE_PRIVATE_KEY (which
    ``ServiceClient`` refuses, naming the peer)."""
    issuer: ServiceTokenIssuer | None = app.state.service_issuer
    return issuer


get_pool = from_state("pool", asyncpg.Pool)
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
