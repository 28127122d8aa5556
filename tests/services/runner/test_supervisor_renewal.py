"""The supervisor's renewal round: due identities renewed, and the processes that reload only when told (nginx,
PostgreSQL) told with SIGHUP, the others left alone."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from services.runner.layout import Layout
from services.runner.supervisor import Child, Supervisor

# Counts the SIGHUPs it gets in a file, so the test sees who was told.
_COUNTER = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
out.write_text("")
signal.signal(signal.SIGHUP, lambda *_: out.write_text(out.read_text() + "hup\\n"))
while True:
    time.sleep(0.05)
"""


def _child(tmp_path: Path, name: str, reload_identity: str | None) -> Child:
    return Child(
        name,
        [sys.executable, "-c", _COUNTER, str(tmp_path / f"{name}.hups")],
        {},
        tmp_path / f"{name}.log",
        reload_identity=reload_identity,
    )


def test_only_the_process_whose_identity_was_renewed_is_told_to_reload(tmp_path: Path) -> None:
    edge, pg, service = (
        _child(tmp_path, "nginx", "edge"),
        _child(tmp_path, "postgres", "postgres"),
        _child(tmp_path, "orders", None),
    )
    rounds: list[list[str]] = [["edge", "orders"], []]
    supervisor = Supervisor(
        Layout(tmp_path),
        [edge, pg, service],
        cwd=tmp_path,
        extra_state={},
        renew=lambda: rounds.pop(0),
        renew_interval_s=0.0,
    )
    try:
        for child in (edge, pg, service):
            child.start(tmp_path)
        deadline = time.monotonic() + 10
        while not all((tmp_path / f"{c.name}.hups").exists() for c in (edge, pg, service)):
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.05)
        supervisor._renew()  # "edge" and "orders" renewed: only nginx reloads on a signal
        supervisor._renew()  # nothing renewed
        time.sleep(0.5)
        assert (tmp_path / "nginx.hups").read_text() == "hup\n"
        assert (tmp_path / "postgres.hups").read_text() == ""
        assert (tmp_path / "orders.hups").read_text() == ""
        assert all(c.alive for c in (edge, pg, service))
    finally:
        supervisor.shutdown()


def test_a_failed_renewal_is_logged_and_tried_again_at_the_next_round(tmp_path: Path) -> None:
    calls: list[int] = []

    def renew() -> list[str]:
        calls.append(1)
        raise OSError("disk full")

    supervisor = Supervisor(Layout(tmp_path), [], cwd=tmp_path, extra_state={}, renew=renew, renew_interval_s=0.0)
    supervisor._renew()
    supervisor._renew()
    assert len(calls) == 2
