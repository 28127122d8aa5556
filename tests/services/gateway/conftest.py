"""Gateway fixtures: real gateway processes (``uvicorn services.gateway.main:app``, optionally with
``--workers``) in front of a small real upstream process (``upstream_app``) or the real services."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services import catalog
from services.deploy.keyring import KeyRing
from services.kit import keys
from tests.support.procs import ServiceProcess


def jwks_json(keyring: KeyRing) -> str:
    return json.dumps(
        {"keys": [keys.jwk(keys.load_private(pem).public_key(), kid) for kid, pem in keyring.jwt_keys.items()]}
    )


def make_token(keyring: KeyRing, *, sub: str | None = None, ttl: int = 600, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "retail-platform",
        "aud": "retail-api",
        "sub": sub or str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "roles": ["customer"],
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    private = keys.load_private(keyring.jwt_keys[keyring.active_kid])
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": keyring.active_kid})


@pytest.fixture(scope="session")
def gw_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-logs")


@pytest.fixture(scope="session")
def standin(keyring: KeyRing, gw_logdir: Path) -> Iterator[ServiceProcess]:
    """The stand-in upstream: every service's base URL points at it, under /_svc/<name>."""
    proc = ServiceProcess(
        "standin", {"STANDIN_JWKS": jwks_json(keyring)}, gw_logdir, app="tests.services.gateway.upstream_app:app"
    ).start()
    yield proc
    proc.stop()


def standin_urls(standin: ServiceProcess) -> dict[str, str]:
    return {s.name: f"{standin.url}/_svc/{s.name}" for s in catalog.SERVICES if s.public_prefixes}


GatewayFactory = Callable[..., ServiceProcess]


@pytest.fixture(scope="module")
def start_gateway(gw_logdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """Start a gateway process with the given environment (upper-case settings); stopped with the module."""
    started: list[ServiceProcess] = []

    def start(*, service_urls: dict[str, str], workers: int = 1, **env: str) -> ServiceProcess:
        state = tmp_path_factory.mktemp("ratelimit", numbered=True)
        state.chmod(0o700)
        full = {
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "WARNING",
            "SERVICE_URLS": json.dumps(service_urls),
            "UPSTREAMS": ",".join(service_urls),
            "RATE_LIMIT_STATE_PATH": str(state / "buckets.bin"),
            "RATE_LIMIT_TABLE_SLOTS": "1024",
            **env,
        }
        # As deployed (services.deploy.serve): uvicorn never rewrites the client address; TRUSTED_PROXIES decides.
        workers_args = ("--workers", str(workers)) if workers > 1 else ()
        proc = ServiceProcess("gateway", full, gw_logdir, server_args=workers_args, ready_path="/healthz")
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def gateway(start_gateway: GatewayFactory, standin: ServiceProcess) -> ServiceProcess:
    """A gateway in front of the stand-in, with limits high enough not to get in the way."""
    return start_gateway(
        service_urls=standin_urls(standin),
        RATE_LIMIT_CLIENT_BURST="100000",
        RATE_LIMIT_CLIENT_PER_S="100000",
        RATE_LIMIT_USER_BURST="100000",
        RATE_LIMIT_USER_PER_S="100000",
        RATE_LIMIT_LOGIN_BURST="100000",
        RATE_LIMIT_LOGIN_PER_S="100000",
        BREAKER_CONSECUTIVE_FAILURES="1000",
        BREAKER_MIN_REQUESTS="1000",
    )


def hits(standin: ServiceProcess, request_id: str) -> int:
    return int(httpx.get(f"{standin.url}/__hits/{request_id}").json()["hits"])


def rid() -> str:
    return f"test-{uuid.uuid4().hex}"
