"""A PostgreSQL configured as the one-machine stack's embedded server is: TLS 1.3 only, TCP clients with the
role's password and a certificate from the stack's CA that names the role, for the tests of that property.

The session's shared server (``pg`` in tests/conftest.py) stays plaintext with passwords: the tests on it are
about what the services do, not how their bytes travel, and a handshake on each of their connections would
slow them all. The transport is tested where it is enabled: here, with the same ``ServerTLS`` and local CA
(``services.runner.tls``) that ``up`` uses.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from services import catalog
from services.runner.postgres import PostgresServer, ServerTLS
from services.runner.tls import LocalCA
from tests.support.procs import free_port

# PostgreSQL's SSLRequest: length 8, then the code 1234 5679 (protocol.sgml, "SSLRequest").
_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


@dataclass
class TlsPostgres:
    """The server, the CA that issued its certificate and every client's, and a directory holding both."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgtls-")))
    server: PostgresServer = field(init=False)
    ca: LocalCA = field(init=False)

    def __post_init__(self) -> None:
        # Entered, not listed, by the server's OS user (`postgres` when the tests run as root).
        self.root.chmod(0o711)
        self.ca = LocalCA(self.root / "ca", self.root / "identities")
        self.server = PostgresServer(
            port=free_port(),
            crash_unsafe_for_tests=True,
            tls=ServerTLS(self.ca.identity_file("postgres"), self.ca.ca_file),
        )

    def start(self) -> TlsPostgres:
        self.ca.issue("postgres", self.server.identity_owner())
        self.server.init()
        self.server.start()
        return self

    def add_service(self, service: str) -> str:
        """A role and a fresh database owned by it, as the runner makes them for ``service``, and the
        service's identity; the role's TCP URL (which, alone, no longer gets in)."""
        role = catalog.get(service).database_name
        password = f"{role}-password"
        if role not in self.server.psql("SELECT rolname FROM pg_roles").split():
            self.server.psql(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        database = f"{role}_{free_port()}"
        self.server.psql(f'CREATE DATABASE "{database}" OWNER "{role}"')
        self.ca.issue(service)
        return self.server.url(database, role=(role, password))

    def client_context(self, identity: str | None) -> ssl.SSLContext:
        """What a client of the stack connects with: the server verified against the CA, and ``identity``'s
        certificate presented (none when None)."""
        ctx = ssl.create_default_context(cafile=str(self.ca.ca_file))
        if identity is not None:
            ctx.load_cert_chain(self.ca.identity_file(identity))
        return ctx

    def server_certificate(self) -> x509.Certificate:
        """The certificate the server presents to a new connection now (a TLS handshake after PostgreSQL's
        SSLRequest, no login)."""
        import socket

        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as raw:
            raw.sendall(_SSL_REQUEST)
            assert raw.recv(1) == b"S", "the server declined TLS"
            with self.client_context(None).wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket:
                der = tls_socket.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der)

    def destroy(self) -> None:
        self.server.destroy()
        shutil.rmtree(self.root, ignore_errors=True)
