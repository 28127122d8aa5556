"""A set of real services on one throwaway PostgreSQL, for integration tests."""

from __future__ import annotations

import uuid
from graphlib import TopologicalSorter
from pathlib import Path

from services import catalog
from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.support.procs import ServiceProcess

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"


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
    """Starts services as processes; each gets a fresh database and only its own keys."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, pg: PostgresServer, keyring: KeyRing, logdir: Path) -> None:
        self.pg = pg
        self.keyring = keyring
        self.logdir = logdir
        self.running: dict[str, ServiceProcess] = {}

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
        )
        # One connection per pool to start with: many services share the test server.
        return {"DB_POOL_MIN": "1", **deployment_environment(service, target)}

    def start(self, service: str, *, database_url: str | None = None, **extra_env: str) -> ServiceProcess:
        env = {**self.env_for(service, database_url), **extra_env}
        proc = ServiceProcess(service, env, self.logdir).start()
        self.running[service] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.running.values():
            proc.stop()
