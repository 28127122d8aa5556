"""The whole platform as a user runs it (`python -m services.runner up`), reached through nginx over TLS.

The stack runs in its own run directory with every port shifted, so it never collides with a developer's
own stack (or another test run) on the contract ports.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services import catalog
from services.kit.tls import Identity
from services.runner.layout import Layout
from services.runner.stack import runner_tls
from tests.support.procs import ROOT


def service_client(layout: Layout, timeout: float = 5.0) -> httpx.Client:
    """A client of the services themselves, not through the edge: they take mutual TLS only, so it presents
    the runner's identity (what `up` prints as "TLS client")."""
    return httpx.Client(verify=Identity(*runner_tls(layout)).client_context(), timeout=timeout)


@dataclass(frozen=True)
class RunningStack:
    layout: Layout
    edge: str
    admin_email: str
    admin_password: str
    ca: Path
    up_output: str

    def client(self, source: str | None = None, **kwargs: object) -> httpx.Client:
        """A client of the edge; ``source`` is the local address to connect from (another client, as far as
        the per-client limits can tell: any 127.x.y.z reaches the edge on Linux)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        transport = httpx.HTTPTransport(verify=ctx, local_address=source) if source else None
        return httpx.Client(base_url=self.edge, verify=ctx, transport=transport, timeout=15.0, **kwargs)  # type: ignore[arg-type]

    def direct(self, timeout: float = 5.0) -> httpx.Client:
        return service_client(self.layout, timeout)

    def runner(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.layout.runner_command(*args),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _pick_offset() -> int:
    # Below the kernel's ephemeral range (32768+ on Linux): a port there can be taken at any moment by an
    # outgoing connection of another test, between our check and the service's bind.
    for offset in (12000, 14000, 16000, 18000, 20000, 22000):
        # Every catalog service and the gateway's second replica, then the edge, Prometheus and PostgreSQL.
        services = [s.port for s in catalog.SERVICES] + catalog.replica_ports(catalog.get(catalog.GATEWAY), 2)
        ports = [p + offset for p in [*services, 8080, 8443, 9090, 5433]]
        if all(_free(p) for p in ports):
            return offset
    raise RuntimeError("no free port range for the end-to-end stack")


@pytest.fixture(scope="session")
def platform_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    layout = Layout(tmp_path_factory.mktemp("e2e-run"), port_offset=_pick_offset())
    cmd = layout.runner_command()
    up = subprocess.run([*cmd, "up"], cwd=ROOT, capture_output=True, text=True, timeout=180)
    if up.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(layout.logs.glob("*.log"))
        )
        pytest.fail(f"`up` failed ({up.returncode}):\n{up.stdout}\n{up.stderr}\n{logs}")
    admin = json.loads(layout.admin_file.read_text())
    stack = RunningStack(
        layout,
        f"https://localhost:{layout.edge_https}",
        admin["email"],
        admin["password"],
        layout.tls / "ca.pem",
        up.stdout,
    )
    try:
        yield stack
    finally:
        down = subprocess.run([*cmd, "down"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
