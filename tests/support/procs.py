"""Real service processes for tests: uvicorn subprocesses on free ports, with their logs kept."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stat(pid: int, *, reaped_children: bool = False) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds so far) of a process, from Linux's /proc; with
    ``reaped_children``, plus the CPU of its children that have ended (a forking server's connections)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped_children else 0)
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, tuple[int, float]]:
    """Every process's (parent pid, CPU seconds so far), as ``stat`` gives them; a process that ends while
    /proc is read is left out."""
    table: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            table[int(entry.name)] = stat(int(entry.name))
        except OSError:
            continue
    return table


@dataclass
class ServiceProcess:
    """One service running as its own process, as in production (``uvicorn services.<name>.main:app``).

    ``app`` runs another ASGI app (a test stand-in); ``server_args`` adds uvicorn flags (``--workers 2``);
    ``ready_path`` is what must answer 200 before the process counts as started. The port stays fixed, so a
    killed process can be started again at the same address."""

    name: str
    env: dict[str, str]
    logdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    app: str = ""
    server_args: tuple[str, ...] = ()
    ready_path: str = "/readyz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logfile(self) -> Path:
        return self.logdir / f"{self.name}-{self.port}.log"

    def start(self, wait: bool = True, timeout: float = 30.0) -> ServiceProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        log = self.logfile.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", self.app or f"services.{self.name}.main:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning", *self.server_args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}{self.ready_path}", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return stat(self.proc.pid)[1]

    def tail(self, chars: int = 4000) -> str:
        return self.logfile.read_text(errors="replace")[-chars:] if self.logfile.exists() else ""

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """Crash it (SIGKILL): no shutdown hooks run, as when a node dies."""
        self.stop(signal.SIGKILL)

    def restart(self) -> ServiceProcess:
        self.stop()
        return self.start()
