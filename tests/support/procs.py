"""Real service processes for tests: uvicorn subprocesses on free ports, with their logs kept."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from services.runner.process import Process, ProcessFailedError, uvicorn_argv

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served_serial(port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> int:
    """The serial number of the certificate a TLS server on a loopback port presents to a new connection."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


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
    """One service running as its own process, as in production (``uvicorn services.<name>.main:app``),
    launched as the stack's supervisor launches it (``services.runner.process``).

    ``env`` is what the test sets on top of its own environment; ``app`` runs another ASGI app (a test
    stand-in); ``server_args`` adds uvicorn flags (``--workers 2``); ``ready_path`` is what must answer 200
    before the process counts as started. The port stays fixed, so a killed process can be started again at
    the same address. ``tls`` (a client identity file and the CA certificate) is for a process that serves
    mutual TLS (its ``env`` names its own identity): its URL is https and the readiness probe presents that
    identity."""

    name: str
    env: dict[str, str]
    logdir: Path
    port: int = field(default_factory=free_port)
    app: str = ""
    server_args: tuple[str, ...] = ()
    ready_path: str = "/readyz"
    tls: tuple[Path, Path] | None = None
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def logfile(self) -> Path:
        return self.logdir / f"{self.name}-{self.port}.log"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc if self.process is not None else None

    def start(self, wait: bool = True, timeout: float = 30.0) -> ServiceProcess:
        self.process = Process(
            self.name,
            uvicorn_argv(self.app or f"services.{self.name}.main:app", self.port, *self.server_args),
            {**os.environ, "PYTHONPATH": str(ROOT), **self.env},
            self.logfile,
            ready_url=f"{self.url}{self.ready_path}",
            tls=self.tls,
        )
        self.process.start(ROOT)
        if wait:
            try:
                self.wait_ready(timeout)
            except ProcessFailedError:
                # The caller never gets this handle to stop it: a process that never got ready would outlive
                # the test (and hold its port and database connections).
                self.stop()
                raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process is not None, "not started"
        self.process.wait_ready(timeout)

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return stat(self.proc.pid)[1]

    def tail(self, chars: int = 4000) -> str:
        return self.process.tail(chars) if self.process is not None else ""

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.stop(sig=sig)

    def kill(self) -> None:
        """Crash it (SIGKILL): no shutdown hooks run, as when a node dies."""
        self.stop(signal.SIGKILL)

    def restart(self) -> ServiceProcess:
        self.stop()
        return self.start()
