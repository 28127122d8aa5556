"""Background work of a service. Every loop runs through ``create_app(background=[...])``, which starts
it after the start-up hooks and cancels (and awaits) it before the shutdown hooks, so no service keeps a
task of its own that a shutdown could forget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI

log = logging.getLogger(__name__)

Loop = Callable[[FastAPI], Coroutine[Any, Any, None]]


def periodic(interval_s: float, task: Callable[[FastAPI], Awaitable[None]], *, name: str) -> Loop:
    """A background loop that runs ``task(app)`` at once and then every ``interval_s`` seconds.

    A failed round (the database restarting, say) is logged by type only, as event ``<name>_failed``, and
    the next round tries again: housekeeping never takes the service down. Only cancellation ends it.
    """
    if interval_s <= 0:
        raise ValueError(f"{name}: the interval must be positive, not {interval_s}")

    async def loop(app: FastAPI) -> None:
        while True:
            try:
                await task(app)
            except Exception as exc:
                log.warning(f"{name} failed", extra={"event": f"{name}_failed", "error_type": type(exc).__name__})
            await asyncio.sleep(interval_s)

    loop.__name__ = name
    return loop
