"""Token verification at the edge and rate limits (per client, per user, login), including across two
worker processes and two replicas, through real gateway processes in front of the stand-in upstream."""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
from pathlib import Path

import httpx
import jwt
import pytest

from services.deploy.keyring import KeyRing
from services.kit import keys
from tests.services.gateway.conftest import GatewayFactory, hits, make_token, rid, standin_urls
from tests.support.procs import ServiceProcess

_HIGH = {
    "RATE_LIMIT_CLIENT_BURST": "100000",
    "RATE_LIMIT_CLIENT_PER_S": "100000",
    "RATE_LIMIT_USER_BURST": "100000",
    "RATE_LIMIT_USER_PER_S": "100000",
    "RATE_LIMIT_LOGIN_BURST": "100000",
    "RATE_LIMIT_LOGIN_PER_S": "100000",
}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(keyring: KeyRing) -> dict[str, str]:
    good = make_token(keyring)
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    tampered_claims = _b64({**claims, "roles": ["admin"]})
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    public_pem = keyring.jwt_keys[keyring.active_kid].encode()
    return {
        "tampered payload": f"{header}.{tampered_claims}.{signature}",
        "tampered signature": f"{header}.{payload}.{flipped}",
        "expired": make_token(keyring, ttl=-120),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': keyring.active_kid})}.{payload}.",
        "hs256 with key material": jwt.encode(
            claims, public_pem[:64], algorithm="HS256", headers={"kid": keyring.active_kid}
        ),
        "wrong audience": make_token(keyring, aud="someone-else"),
        "wrong issuer": make_token(keyring, iss="evil"),
        "unknown key": jwt.encode(
            claims,
            keys.load_private(keys.generate_private_pem()),
            algorithm="EdDSA",
            headers={"kid": "not-a-known-kid"},
        ),
        "right kid, other key": jwt.encode(
            claims,
            keys.load_private(keys.generate_private_pem()),
            algorithm="EdDSA",
            headers={"kid": keyring.active_kid},
        ),
        "garbage": "not.a.jwt",
    }


def test_invalid_tokens_are_refused_at_the_gateway(
    gateway: ServiceProcess, standin: ServiceProcess, keyring: KeyRing
) -> None:
    """Defence in depth: a tampered, expired, ``alg: none``, HMAC-confused, foreign or unsigned token is a
    401 problem at the edge and never reaches a service."""
    for label, token in _bad_tokens(keyring).items():
        request_id = rid()
        r = httpx.get(
            gateway.url + "/api/v1/products/x", headers={"authorization": f"Bearer {token}", "x-request-id": request_id}
        )
        assert r.status_code == 401, label
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["status"] == 401
        assert hits(standin, request_id) == 0, label
    r = httpx.get(gateway.url + "/api/v1/products/x", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401


def test_valid_tokens_and_anonymous_requests_pass_through(gateway: ServiceProcess, keyring: KeyRing) -> None:
    """The gateway does not decide who needs to be signed in: anonymous requests reach the service, and a
    valid token is forwarded unchanged for the service to verify again."""
    token = make_token(keyring)
    r = httpx.get(gateway.url + "/api/v1/orders", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    seen = dict((k, v) for k, v in r.json()["headers"])
    assert seen["authorization"] == f"Bearer {token}"
    assert httpx.get(gateway.url + "/api/v1/orders").status_code == 200


def test_client_limit_answers_429_with_retry_after(start_gateway: GatewayFactory, standin: ServiceProcess) -> None:
    """Past the burst a client gets 429 ``rate-limited`` with an integer Retry-After, and the upstream
    never sees the refused requests."""
    gw = start_gateway(
        service_urls=standin_urls(standin),
        **{**_HIGH, "RATE_LIMIT_CLIENT_BURST": "5", "RATE_LIMIT_CLIENT_PER_S": "0.2"},
    )
    statuses = [httpx.get(gw.url + "/api/v1/products/x").status_code for _ in range(5)]
    assert statuses == [200] * 5
    request_id = rid()
    r = httpx.get(gw.url + "/api/v1/products/x", headers={"x-request-id": request_id})
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/rate-limited")
    assert r.headers["retry-after"].isdigit()
    assert 1 <= int(r.headers["retry-after"]) <= 5
    assert hits(standin, request_id) == 0
    metrics = httpx.get(gw.url + "/metrics").text  # /metrics itself is not rate limited
    assert 'gateway_rate_limited_total{scope="client"} 1.0' in metrics
    assert 'gateway_upstream_requests_total{status="200",upstream="products"} 5.0' in metrics
    assert (
        'http_requests_total{method="GET",route="/api/v1/products/{rest:path}",service="gateway",status="429"}'
        in metrics
    )


def test_login_is_limited_more_strictly(start_gateway: GatewayFactory, standin: ServiceProcess) -> None:
    """Password guessing: POST /api/v1/sessions has its own small bucket per client, while the same client
    can still browse."""
    gw = start_gateway(
        service_urls=standin_urls(standin), **{**_HIGH, "RATE_LIMIT_LOGIN_BURST": "3", "RATE_LIMIT_LOGIN_PER_S": "0.01"}
    )
    logins = [
        httpx.post(gw.url + "/api/v1/sessions", json={"email": "a@b.c", "password": "x" * 12}).status_code
        for _ in range(5)
    ]
    assert logins == [200, 200, 200, 429, 429]
    r = httpx.post(gw.url + "/api/v1/sessions", json={})
    assert int(r.headers["retry-after"]) >= 60
    assert httpx.get(gw.url + "/api/v1/products/x").status_code == 200
    assert httpx.post(gw.url + "/api/v1/sessions/refresh", json={}).status_code == 200


def test_forwarded_for_is_honoured_only_from_trusted_proxies(
    start_gateway: GatewayFactory, standin: ServiceProcess
) -> None:
    """Behind a trusted proxy each client has its own bucket (the right-most untrusted X-Forwarded-For
    address); from anyone else X-Forwarded-For is ignored, so a client cannot dodge its limit by
    inventing addresses."""
    limits = {**_HIGH, "RATE_LIMIT_CLIENT_BURST": "2", "RATE_LIMIT_CLIENT_PER_S": "0.01"}
    trusting = start_gateway(service_urls=standin_urls(standin), TRUSTED_PROXIES="127.0.0.0/8,10.0.0.0/8", **limits)

    def get(gw: ServiceProcess, xff: str) -> int:
        return httpx.get(gw.url + "/api/v1/products/x", headers={"x-forwarded-for": xff}).status_code

    # 203.0.113.7 spends its two tokens, whatever it claims further left or through which trusted hop.
    assert get(trusting, "1.1.1.1, 203.0.113.7") == 200
    assert get(trusting, "2.2.2.2, 203.0.113.7, 10.1.2.3") == 200
    assert get(trusting, "203.0.113.7") == 429
    # Another client behind the same proxy is unaffected; the upstream learns the full chain.
    r = httpx.get(trusting.url + "/api/v1/products/x", headers={"x-forwarded-for": "198.51.100.9"})
    assert r.status_code == 200
    seen = dict((k, v) for k, v in r.json()["headers"])
    assert seen["x-forwarded-for"] == "198.51.100.9, 127.0.0.1"

    untrusting = start_gateway(service_urls=standin_urls(standin), **limits)
    assert get(untrusting, "1.1.1.1") == 200
    assert get(untrusting, "2.2.2.2") == 200
    assert get(untrusting, "3.3.3.3") == 429  # all the same client: the peer, 127.0.0.1


def test_user_limit_follows_the_token_subject(
    start_gateway: GatewayFactory, standin: ServiceProcess, keyring: KeyRing
) -> None:
    """A signed-in user is limited as a user, from whichever address; another user is not affected."""
    gw = start_gateway(
        service_urls=standin_urls(standin),
        TRUSTED_PROXIES="127.0.0.0/8",
        **{**_HIGH, "RATE_LIMIT_USER_BURST": "3", "RATE_LIMIT_USER_PER_S": "0.01"},
    )
    alice = make_token(keyring)
    statuses = [
        httpx.get(
            gw.url + "/api/v1/orders", headers={"authorization": f"Bearer {alice}", "x-forwarded-for": f"192.0.2.{i}"}
        ).status_code
        for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    r = httpx.get(gw.url + "/api/v1/orders", headers={"authorization": f"Bearer {alice}"})
    assert r.json()["scope"] == "user"
    bob = make_token(keyring)
    assert httpx.get(gw.url + "/api/v1/orders", headers={"authorization": f"Bearer {bob}"}).status_code == 200


def _worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes (spawned children; not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _established_inodes(port: int, *, local: bool) -> set[str]:
    """Socket inodes of ESTABLISHED TCP connections whose local (or remote) port is ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address = fields[1] if local else fields[2]
            if int(address.rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                found.add(fields[9])
    return found


@pytest.mark.slow
def test_limit_holds_across_two_worker_processes(start_gateway: GatewayFactory, standin: ServiceProcess) -> None:
    """With ``uvicorn --workers 2`` the client still gets exactly its burst, not twice it: the buckets are
    shared by the workers. Both workers are shown to hold client connections that were served, so
    per-process buckets would have let more than the burst through."""
    burst = 40
    gw = start_gateway(
        service_urls=standin_urls(standin),
        workers=2,
        **{**_HIGH, "RATE_LIMIT_CLIENT_BURST": str(burst), "RATE_LIMIT_CLIENT_PER_S": "0.01"},
    )
    assert gw.proc is not None
    deadline = time.monotonic() + 10
    while len(_worker_pids(gw.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _worker_pids(gw.proc.pid)
    assert len(workers) == 2

    # Connections opened one at a time, so the kernel hands them to either worker; each is kept open
    # (keep-alive) and used for several requests, so the connection shows which worker served them. Which
    # worker accepts is the kernel's choice: on a quiet host one may take many in a row, so connections keep
    # coming (at least 30, at most 300) until both workers hold some.
    connections: list[http.client.HTTPConnection] = []
    statuses: list[int] = []
    serving: list[int] = []
    try:
        while len(connections) < 300 and (len(connections) < 30 or len(serving) < 2):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            connections.append(conn)
            for _ in range(4):
                conn.request("GET", "/api/v1/products/x")
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            held = _established_inodes(gw.port, local=True)
            serving = [pid for pid in workers if _socket_inodes(pid) & held]
            time.sleep(0.005)
    finally:
        for conn in connections:
            conn.close()
    assert statuses.count(200) == burst
    assert statuses.count(429) == len(statuses) - burst
    assert sorted(serving) == sorted(workers), "both workers must have served client connections"


def test_limit_holds_across_two_replicas_on_one_host(
    start_gateway: GatewayFactory, standin: ServiceProcess, tmp_path: Path
) -> None:
    """The one-machine stack runs the gateway as replicas on their own ports behind nginx, all given one
    ``RATE_LIMIT_STATE_PATH`` (``services/runner/stack.py``): a client whose requests alternate between
    them still gets exactly its burst, not once per replica."""
    burst = 20
    state = tmp_path / "shared"
    state.mkdir(mode=0o700)
    env = {
        **_HIGH,
        "RATE_LIMIT_CLIENT_BURST": str(burst),
        "RATE_LIMIT_CLIENT_PER_S": "0.01",
        "RATE_LIMIT_STATE_PATH": str(state / "buckets.bin"),
    }
    replicas = [start_gateway(service_urls=standin_urls(standin), **env) for _ in range(2)]
    statuses = [httpx.get(f"{replicas[i % 2].url}/api/v1/products/x").status_code for i in range(2 * burst)]
    assert statuses.count(200) == burst
    assert statuses.count(429) == burst


def test_two_authorization_headers_are_refused_and_never_forwarded(
    gateway: ServiceProcess, standin: ServiceProcess, keyring: KeyRing
) -> None:
    """The gateway would verify one header and a service read another (or the first): a valid token in front of
    a stolen or forged one would split who is checked from who acts. 400, and nothing reaches a service."""
    good = make_token(keyring)
    for pair in ((good, "not.a.jwt"), ("not.a.jwt", good), (good, good)):
        request_id = rid()
        r = httpx.get(
            gateway.url + "/api/v1/products/x",
            headers=[
                ("authorization", f"Bearer {pair[0]}"),
                ("authorization", f"Bearer {pair[1]}"),
                ("x-request-id", request_id),
            ],
        )
        assert r.status_code == 400, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert hits(standin, request_id) == 0
    r = httpx.get(gateway.url + "/api/v1/products/x", headers={"authorization": f"Bearer {good}"})
    assert r.status_code != 400
