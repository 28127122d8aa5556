"""The supervisor: starts every process of the one-machine stack, keeps them running, stops them all.

It runs detached (``up`` spawns it) and records what it runs in ``state.json``. A child that dies is
restarted with back-off; a child that cannot start at all fails the whole start-up, and the supervisor
then stops everything it started, so nothing is left half-running.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.runner.layout import Layout
from services.runner.process import Process, ProcessFailedError

log = logging.getLogger("runner")

# How often the running supervisor checks the identities: a stat and a certificate parse each, so cheap.
RENEW_INTERVAL_S = 60.0


@dataclass
class Child(Process):
    """A process of the stack, as the supervisor runs it and records it in its plan."""

    # The OS user it runs as (the supervisor drops root's privileges); None: the supervisor's own user.
    user: str | None = None
    # Started, and ready, before every child without it; the supervisor's `prepare` runs in between.
    before_others: bool = False
    # The TLS identity this process reads only when told to (SIGHUP): when the runner renews it, the process
    # gets the signal (nginx and PostgreSQL both reload their certificates on SIGHUP). The services follow
    # their files themselves, and Prometheus reads its client certificate at every handshake.
    reload_identity: str | None = None
    restarts: int = 0
    next_restart: float = 0.0

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "argv": self.argv,
            "env": self.env,
            "logfile": str(self.logfile),
            "ready_url": self.ready_url,
            "ready_command": self.ready_command,
            "user": self.user,
            "before_others": self.before_others,
            "stop_signal": self.stop_signal,
            "tls": tls_doc(self.tls),
            "reload_identity": self.reload_identity,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Child:
        return cls(
            doc["name"],
            doc["argv"],
            doc["env"],
            Path(doc["logfile"]),
            doc["ready_url"],
            doc["ready_command"],
            doc["stop_signal"],
            tls=tls_files(doc["tls"]),
            user=doc["user"],
            before_others=doc["before_others"],
            reload_identity=doc["reload_identity"],
        )

    def command(self) -> list[str]:
        if self.user is None:
            return self.argv
        return [sys.executable, "-m", "services.runner.asuser", self.user, *self.argv]


def tls_doc(files: tuple[Path, Path] | None) -> list[str] | None:
    """A process's (identity file, CA certificate) as the plan and the state file record them."""
    return [str(p) for p in files] if files else None


def tls_files(doc: list[str] | None) -> tuple[Path, Path] | None:
    """``tls_doc`` read back."""
    return (Path(doc[0]), Path(doc[1])) if doc else None


def write_state(layout: Layout, **state: Any) -> None:
    tmp = layout.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(layout.state_file)


def read_state(layout: Layout) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(layout.state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Supervisor:
    def __init__(
        self,
        layout: Layout,
        children: list[Child],
        *,
        cwd: Path,
        extra_state: dict[str, Any],
        startup_timeout: float = 60.0,
        prepare: Callable[[], None] | None = None,
        renew: Callable[[], list[str]] | None = None,
        renew_interval_s: float = RENEW_INTERVAL_S,
    ) -> None:
        """``renew`` issues the TLS identities that are due and names them (``LocalCA.renew_due``); it runs
        every ``renew_interval_s`` while the stack runs."""
        self.layout = layout
        # Those that start first (the database) stop last.
        self.children = sorted(children, key=lambda c: not c.before_others)
        self.cwd = cwd
        self.extra_state = extra_state
        self.startup_timeout = startup_timeout
        self.prepare = prepare
        self.renew = renew
        self.renew_interval_s = renew_interval_s
        self._next_renewal = 0.0
        self._stopping = False

    def _state(self, phase: str, **extra: Any) -> None:
        write_state(
            self.layout,
            phase=phase,
            supervisor_pid=os.getpid(),
            # What `status` needs; not the environment (state.json is readable by others).
            children={
                c.name: {
                    "pid": c.proc.pid if c.proc else None,
                    "restarts": c.restarts,
                    "ready_url": c.ready_url,
                    "ready_command": c.ready_command,
                    "tls": tls_doc(c.tls),
                    "log": str(c.logfile),
                }
                for c in self.children
            },
            **self.extra_state,
            **extra,
        )

    def _signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        began = time.monotonic()
        self._state("starting")
        error = self._start([c for c in self.children if c.before_others])
        if not error and self.prepare is not None:
            try:
                self.prepare()
            except Exception as exc:  # any failure here fails the start-up, with its message
                error = f"preparing for the services failed: {exc}"
        if not error:
            error = self._start([c for c in self.children if not c.before_others])
        if error:
            log.error("start-up failed: %s", error)
            self.shutdown()
            self._state("failed", error=error)
            return 1
        self._state("ready", startup_seconds=round(time.monotonic() - began, 2))
        log.info("all ready in %.1fs", time.monotonic() - began)
        while not self._stopping:
            self._watch()
            self._renew()
            time.sleep(0.5)
        self.shutdown()
        self.layout.state_file.unlink(missing_ok=True)
        return 0

    def _start(self, children: list[Child]) -> str | None:
        for child in children:
            child.start(self.cwd)
        return self._wait_ready(children)

    def _wait_ready(self, children: list[Child]) -> str | None:
        deadline = time.monotonic() + self.startup_timeout
        pending = list(children)
        while pending:
            if self._stopping:
                return "interrupted during start-up"
            for child in list(pending):
                try:
                    if child.poll_ready():
                        pending.remove(child)
                except ProcessFailedError as exc:
                    return str(exc)
            if time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                return f"not ready after {self.startup_timeout:.0f}s: {names}\n{pending[0].tail()}"
            time.sleep(0.1)
        return None

    def _watch(self) -> None:
        changed = False
        for child in self.children:
            if child.alive:
                continue
            now = time.monotonic()
            if child.next_restart == 0.0:
                # Back-off grows with restarts in quick succession: 1, 2, 4 ... 30 s.
                delay = min(30.0, 2.0 ** min(child.restarts, 5))
                child.next_restart = now + delay
                log.warning(
                    "%s exited (code %s); restarting in %.0fs",
                    child.name,
                    child.proc.returncode if child.proc else None,
                    delay,
                )
            elif now >= child.next_restart:
                child.restarts += 1
                child.next_restart = 0.0
                child.start(self.cwd)
                changed = True
        if changed:
            self._state("ready")

    def _renew(self) -> None:
        """Renew the identities that are due, and tell the processes that only reload when told. A check
        missed while the machine slept is simply the next one: an expired identity is due, and renewed."""
        if self.renew is None or time.monotonic() < self._next_renewal:
            return
        self._next_renewal = time.monotonic() + self.renew_interval_s
        try:
            renewed = self.renew()
        except Exception as exc:  # the CA's files unreadable, the disk full: try again at the next check
            log.error("renewing TLS identities failed: %s", exc)
            return
        if renewed:
            log.info("renewed TLS identities: %s", ", ".join(renewed))
        for child in self.children:
            if child.reload_identity in renewed and child.alive and child.proc is not None:
                child.proc.send_signal(signal.SIGHUP)

    def shutdown(self) -> None:
        # Edge first, data last: reverse start order.
        for child in reversed(self.children):
            child.stop()


def configure_logging(logfile: Path) -> None:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.FileHandler(logfile)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "message": "event"},
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
