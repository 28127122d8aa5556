"""Where the one-machine stack puts things: ports (from the contract, optionally shifted) and files.

Everything lives under one run directory (default ``.run/`` in the repository, git-ignored) so ``down``
and a fresh start are predictable, and tests can run a second, isolated stack next to a developer's
with ``--port-offset`` and ``--run-dir``. One exception: started as root in a run directory that the
stack's unprivileged users cannot enter, what they need lives in a directory named in
``shared-location`` (see ``Layout.shared``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from services import catalog

# Fixed by the contract so tools and docs agree.
EDGE_HTTPS = 8443
EDGE_HTTP = 8080
PROMETHEUS = 9090
POSTGRES_EXISTING = 5432
POSTGRES_EMBEDDED = 5433


@dataclass(frozen=True)
class Layout:
    run_dir: Path
    port_offset: int = 0

    def __post_init__(self) -> None:
        highest = max([s.port for s in catalog.SERVICES] + [EDGE_HTTPS, PROMETHEUS, POSTGRES_EMBEDDED])
        if not 0 <= self.port_offset <= 65535 - highest:
            raise ValueError(f"--port-offset must be 0..{65535 - highest}, got {self.port_offset}")

    def port(self, service: str) -> int:
        return catalog.get(service).port + self.port_offset

    def runner_command(self, *args: str) -> list[str]:
        """``python -m services.runner`` for this stack (its run directory and port offset), then ``args``."""
        return [
            sys.executable,
            "-m",
            "services.runner",
            "--run-dir",
            str(self.run_dir),
            "--port-offset",
            str(self.port_offset),
            *args,
        ]

    @property
    def edge_https(self) -> int:
        return EDGE_HTTPS + self.port_offset

    @property
    def edge_http(self) -> int:
        return EDGE_HTTP + self.port_offset

    @property
    def prometheus(self) -> int:
        return PROMETHEUS + self.port_offset

    @property
    def postgres_embedded(self) -> int:
        return POSTGRES_EMBEDDED + self.port_offset

    @property
    def plaintext_marker(self) -> Path:
        """Present while the stack runs with ``up --plaintext-services`` (for measuring what TLS costs)."""
        return self.run_dir / "plaintext-services"

    @property
    def service_tls(self) -> bool:
        """Whether the services speak mutual TLS (the default) or, with ``up --plaintext-services``, plain HTTP."""
        return not self.plaintext_marker.exists()

    def service_url(self, port: int) -> str:
        """A service process on this machine: HTTPS only, with a client certificate from the stack's CA
        (``services.runner.tls``), unless the stack was started with ``--plaintext-services``."""
        return f"{'https' if self.service_tls else 'http'}://127.0.0.1:{port}"

    def url(self, service: str) -> str:
        return self.service_url(self.port(service))

    def gateway_ports(self, replicas: int) -> list[int]:
        """The gateway's replicas: the contract port, then +10, +20 ... (8000, 8010 by default)."""
        return [port + self.port_offset for port in catalog.replica_ports(catalog.get(catalog.GATEWAY), replicas)]

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def secrets(self) -> Path:
        return self.run_dir / "secrets"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def keyring_file(self) -> Path:
        return self.secrets / "keyring.json"

    @property
    def admin_file(self) -> Path:
        return self.secrets / "admin.json"

    @property
    def shared(self) -> Path:
        """Where the stack's unprivileged processes find their files: the run directory, or, when that is
        out of their reach (started as root in a private directory), the directory ``up`` made for them and
        named in ``shared-location``."""
        pointer = self.run_dir / "shared-location"
        return Path(pointer.read_text().strip()) if pointer.exists() else self.run_dir

    def service_secrets(self, service: str) -> Path:
        """One service's secrets, a file per setting (the kit reads them through SECRETS_DIR)."""
        return self.shared / "secrets" / service

    @property
    def postgres_passfile(self) -> Path:
        """The embedded PostgreSQL superuser's password (libpq password-file format, mode 0600)."""
        return self.secrets / "postgres.pgpass"

    @property
    def tls(self) -> Path:
        """The local CA's private side (``ca.key``, mode 0600) and its certificate ``ca.pem``, for clients."""
        return self.run_dir / "tls"

    @property
    def identities(self) -> Path:
        """Each process's key and certificate (``<name>.pem``, readable by its user only) and ``ca.pem``."""
        return self.shared / "tls"
