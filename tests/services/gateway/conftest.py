"""Gateway fixtures: real gateway processes (``uvicorn services.gateway.main:app``, optionally with
``--workers``) in front of a small real upstream process (``upstream_app``) or the real services."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from services import catalog
from services.kit import keys
from services.runner.keyring import KeyRing
from tests.support.procs import ROOT, free_port


@dataclass
class Proc:
    """A uvicorn process on a fixed port (so it can be killed and started again at the same address)."""

    app: str
    env: dict[str, str]
    logfile: Path
    workers: int = 1
    server_args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str = "/healthz", timeout: float = 30.0) -> Proc:
        argv = [sys.executable, "-m", "uvicorn", self.app, "--host", "127.0.0.1", "--port", str(self.port),
                "--no-access-log", "--log-level", "warning"]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        argv += self.server_args
        log = self.logfile.open("ab")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **self.env},
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.app} exited:\n{self.logfile.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.app} not up after {timeout}s:\n{self.logfile.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def jwks_json(keyring: KeyRing) -> str:
    return json.dumps({"keys": [keys.jwk(keys.load_private(pem).public_key(), kid)
                                for kid, pem in keyring.jwt_keys.items()]})


def make_token(keyring: KeyRing, *, sub: str | None = None, ttl: int = 600, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": "retail-platform", "aud": "retail-api", "sub": sub or str(uuid.uuid4()),
                              "sid": str(uuid.uuid4()), "roles": ["customer"], "iat": now, "exp": now + ttl,
                              "jti": uuid.uuid4().hex}
    claims.update(overrides)
    private = keys.load_private(keyring.jwt_keys[keyring.active_kid])
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": keyring.active_kid})


@pytest.fixture(scope="session")
def gw_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-logs")


@pytest.fixture(scope="session")
def standin(keyring: KeyRing, gw_logdir: Path) -> Iterator[Proc]:
    """The stand-in upstream: every service's base URL points at it, under /_svc/<name>."""
    proc = Proc("tests.services.gateway.upstream_app:app", {"STANDIN_JWKS": jwks_json(keyring)},
                gw_logdir / "standin.log").start(ready_path="/readyz")
    yield proc
    proc.stop()


def standin_urls(standin: Proc) -> dict[str, str]:
    return {s.name: f"{standin.url}/_svc/{s.name}" for s in catalog.SERVICES if s.public_prefixes}


GatewayFactory = Callable[..., Proc]


@pytest.fixture(scope="module")
def start_gateway(gw_logdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFactory]:
    """Start a gateway process with the given environment (upper-case settings); stopped with the module."""
    started: list[Proc] = []

    def start(*, service_urls: dict[str, str], workers: int = 1, **env: str) -> Proc:
        state = tmp_path_factory.mktemp("ratelimit", numbered=True)
        state.chmod(0o700)
        full = {"ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "SERVICE_URLS": json.dumps(service_urls),
                "UPSTREAMS": ",".join(service_urls), "RATE_LIMIT_STATE_PATH": str(state / "buckets.bin"),
                "RATE_LIMIT_TABLE_SLOTS": "1024", **env}
        # As deployed: uvicorn must not rewrite the client address itself; TRUSTED_PROXIES decides.
        proc = Proc("services.gateway.main:app", full, gw_logdir / f"gateway-{len(started)}.log", workers=workers,
                    server_args=("--no-proxy-headers",))
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def gateway(start_gateway: GatewayFactory, standin: Proc) -> Proc:
    """A gateway in front of the stand-in, with limits high enough not to get in the way."""
    return start_gateway(service_urls=standin_urls(standin), RATE_LIMIT_CLIENT_BURST="100000",
                         RATE_LIMIT_CLIENT_PER_S="100000", RATE_LIMIT_USER_BURST="100000",
                         RATE_LIMIT_USER_PER_S="100000", RATE_LIMIT_LOGIN_BURST="100000",
                         RATE_LIMIT_LOGIN_PER_S="100000", BREAKER_CONSECUTIVE_FAILURES="1000",
                         BREAKER_MIN_REQUESTS="1000")


def hits(standin: Proc, request_id: str) -> int:
    return int(httpx.get(f"{standin.url}/__hits/{request_id}").json()["hits"])


def rid() -> str:
    return f"test-{uuid.uuid4().hex}"
