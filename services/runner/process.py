"""One local process: started with its output in a log file, waited for until it answers as ready,
stopped with a signal and, if it ignores that, killed.

The one-machine stack's supervisor (``Child``) and the tests' service processes
(``tests.support.procs.ServiceProcess``) both run their processes through this, so what the tests start
is started, watched and stopped the way the stack does it.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.kit.tls import Identity


class ProcessFailedError(RuntimeError):
    """A process ended, or did not become ready in time, while it was awaited; the message ends with its log."""


def uvicorn_argv(app: str, port: int, *server_args: str) -> list[str]:
    """How a service (an ASGI app, ``module:attribute``) is served on a loopback port: the one serving entry
    (``services.deploy.serve``: uvicorn in this interpreter, no access log, no proxy headers, HTTPS with a
    client certificate required when the environment names a TLS identity)."""
    return [
        sys.executable,
        "-m",
        "services.deploy.serve",
        "--app",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *server_args,
    ]


@dataclass
class Process:
    name: str
    argv: list[str]
    # The whole environment of the process: nothing is inherited that is not in it.
    env: dict[str, str]
    logfile: Path
    # Ready once this answers 200 ...
    ready_url: str | None = None
    # ... or, for what does not speak HTTP (PostgreSQL: pg_isready), once this command exits with 0.
    ready_command: list[str] | None = None
    stop_signal: int = signal.SIGTERM
    # (identity file, CA certificate) the probe presents and verifies ``ready_url``'s server with: a service
    # of the one-machine stack refuses a client without a certificate from the stack's CA. None: the server's
    # certificate is not checked (a plain-HTTP server, or a test's stand-in).
    tls: tuple[Path, Path] | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    _probe_identity: Identity | None = field(default=None, init=False, repr=False, compare=False)

    def command(self) -> list[str]:
        """What is executed (a subclass may wrap ``argv``)."""
        return self.argv

    def start(self, cwd: Path) -> None:
        """Spawn it, its stdout and stderr appended to ``logfile``; returns at once (see ``wait_ready``)."""
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.command(), cwd=cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def probe(self) -> bool:
        """Whether it answers as ready (not whether it runs: ``alive`` says that)."""
        if self.ready_command is not None:
            try:
                return subprocess.run(self.ready_command, capture_output=True, timeout=5).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        if self.ready_url is None:
            return True
        try:
            return httpx.get(self.ready_url, timeout=1.0, verify=self._verify()).status_code == 200
        except httpx.HTTPError:
            return False

    def _verify(self) -> ssl.SSLContext | bool:
        if self.tls is None:
            return False  # loopback, and nothing to verify against
        if self._probe_identity is None:
            self._probe_identity = Identity(*self.tls)
        else:
            self._probe_identity.reload_if_changed()  # the runner renews its own identity too
        return self._probe_identity.client_context()

    def poll_ready(self) -> bool:
        """One readiness check: True once ready, False while starting; raises ``ProcessFailedError`` if it ended."""
        if not self.alive:
            code = self.proc.returncode if self.proc is not None else None
            raise ProcessFailedError(f"{self.name} exited during start-up (code {code}); its log:\n{self.tail()}")
        return self.probe()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.poll_ready():
            if time.monotonic() > deadline:
                raise ProcessFailedError(f"{self.name} not ready after {timeout:.0f}s; its log:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0, sig: int | None = None) -> None:
        """Send ``sig`` (default ``stop_signal``) and wait; SIGKILL what is still running after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal if sig is None else sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""
