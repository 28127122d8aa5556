"""Periodic housekeeping: runs at once, then every interval; a failed round is logged and retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from fastapi import FastAPI

from services.kit.background import periodic


def test_a_periodic_task_runs_at_once_survives_a_failed_round_and_stops_only_when_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []

    async def prune(app: FastAPI) -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise ConnectionResetError("database restarting")

    loop = periodic(0.01, prune, name="prune")

    async def run() -> None:
        task = asyncio.create_task(loop(FastAPI()))
        while len(rounds) < 4:  # noqa: ASYNC110 - waiting for the loop under test
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()

    with caplog.at_level(logging.WARNING, logger="services.kit.background"):
        asyncio.run(run())
    assert loop.__name__ == "prune"
    failures = [r for r in caplog.records if getattr(r, "event", None) == "prune_failed"]
    assert [getattr(r, "error_type", None) for r in failures] == ["ConnectionResetError"]
    assert "database restarting" not in caplog.text  # by type only: messages may quote values


def test_a_periodic_task_needs_a_positive_interval() -> None:
    async def task(app: FastAPI) -> None:
        return None

    with pytest.raises(ValueError, match="positive"):
        periodic(0, task, name="prune")
