"""A set of real services on one throwaway PostgreSQL, for integration tests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from services import catalog
from services.runner.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.support.procs import ServiceProcess

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-for-tests"


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
        env = {
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "INFO",
            "DB_POOL_MIN": "1",
            **self.keyring.env_for(service),
            "SERVICE_URLS": json.dumps({name: p.url for name, p in self.running.items()}),
        }
        if catalog.get(service).owns_database:
            env["DATABASE_URL"] = database_url or self.create_database(service)
        if service == "users":
            env.update(ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD)
        elif "users" in self.running:
            env["JWKS_URL"] = f"{self.running['users'].url}/.well-known/jwks.json"
        return env

    def start(self, service: str, *, database_url: str | None = None, **extra_env: str) -> ServiceProcess:
        env = {**self.env_for(service, database_url), **extra_env}
        proc = ServiceProcess(service, env, self.logdir).start()
        self.running[service] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.running.values():
            proc.stop()
