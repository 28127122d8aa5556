"""A set of real services on one throwaway PostgreSQL, for integration tests."""

from __future__ import annotations

import ssl
import uuid
from graphlib import TopologicalSorter
from pathlib import Path

from services import catalog
from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.kit.tls import Identity
from services.runner.postgres import PostgresServer
from services.runner.tls import LocalCA
from tests.support.procs import ServiceProcess

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"
# The identity the tests present to services in TLS mode.
TEST_CLIENT = "tests"


def start_order() -> list[str]:
    """The services behind the gateway, each after the token issuer and the services it calls: started one by
    one, each learns its peers' addresses from those already running."""
    issuer = catalog.token_issuer().name
    graph = {
        s.name: {*catalog.callees_of(s.name), *({issuer} - {s.name})}
        for s in catalog.SERVICES
        if s.name in catalog.forwarded_to(catalog.GATEWAY)
    }
    return list(TopologicalSorter(graph).static_order())


class TestStack:
    """Starts services as processes; each gets a fresh database and only its own keys.

    With ``ca`` (a ``LocalCA``) the services run as on one machine: each with its identity from that CA,
    serving HTTPS only to clients with a certificate from it, and calling its peers the same way; the tests
    call them with the identity ``TEST_CLIENT`` (``client_tls``). Without, they serve plain HTTP: the process
    tier's default, so its many test clients stay plain and the suite's time unchanged. The transport is
    tested for real by ``tests/services/test_mtls.py`` (a TLS-mode stack) and by every whole-stack test
    (``tests/e2e``, ``tests/services/runner/test_stack.py``), which start the stack as ``up`` does, on TLS."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, pg: PostgresServer, keyring: KeyRing, logdir: Path, *, ca: LocalCA | None = None) -> None:
        self.pg = pg
        self.keyring = keyring
        self.logdir = logdir
        self.ca = ca
        self.running: dict[str, ServiceProcess] = {}
        if ca is not None:
            ca.renew_due({name: None for name in [*(s.name for s in catalog.SERVICES), TEST_CLIENT]})

    @property
    def client_tls(self) -> tuple[Path, Path] | None:
        """(identity file, CA certificate) of the tests' own client identity, in TLS mode."""
        return self.ca.files(TEST_CLIENT) if self.ca is not None else None

    def client_context(self) -> ssl.SSLContext:
        """What a test calls the services with in TLS mode: their certificates verified, ours presented."""
        assert self.client_tls is not None, "a TLS-mode stack (ca=...)"
        return Identity(*self.client_tls).client_context()

    def create_database(self, service: str) -> str:
        name = f"{catalog.get(service).database_name}_{uuid.uuid4().hex[:8]}"
        self.pg.psql(f'CREATE DATABASE "{name}"')
        return self.pg.url(name)

    def env_for(self, service: str, database_url: str | None = None) -> dict[str, str]:
        """The service's settings with its peers at the running processes (a peer not started yet is
        unknown), a fresh database unless one is given, and every secret in the environment."""
        target = DeployTarget(
            environment="test",
            log_level="INFO",
            keyring=self.keyring,
            admin=(ADMIN_EMAIL, ADMIN_PASSWORD),
            service_urls={name: p.url for name, p in self.running.items()},
            database=lambda svc: {"DATABASE_URL": database_url or self.create_database(svc.name)},
            tls_files=self.ca.files if self.ca is not None else None,
        )
        # One connection per pool to start with: many services share the test server.
        return {"DB_POOL_MIN": "1", **deployment_environment(service, target)}

    def start(self, service: str, *, database_url: str | None = None, **extra_env: str) -> ServiceProcess:
        env = {**self.env_for(service, database_url), **extra_env}
        proc = ServiceProcess(service, env, self.logdir, tls=self.client_tls).start()
        self.running[service] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.running.values():
            proc.stop()
