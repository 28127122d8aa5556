"""The gateway in front of the real services (users, products, search, orders, payments as processes on
one PostgreSQL): routing, edge authentication, login throttling, /internal, readiness, and schemathesis
over the merged public OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import jwt
import pytest
import schemathesis
from schemathesis import checks
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode

from services import catalog
from services import openapi as openapi_documents
from services.deploy.keyring import KeyRing
from services.kit.auth import ServiceTokenIssuer
from tests.services.gateway.conftest import GatewayFactory, make_token
from tests.support.procs import ServiceProcess
from tests.support.stack import ADMIN_EMAIL, ADMIN_PASSWORD, TestStack, start_order

_RAISED = {
    "RATE_LIMIT_CLIENT_BURST": "100000",
    "RATE_LIMIT_CLIENT_PER_S": "100000",
    "RATE_LIMIT_USER_BURST": "100000",
    "RATE_LIMIT_USER_PER_S": "100000",
    "RATE_LIMIT_LOGIN_BURST": "100000",
    "RATE_LIMIT_LOGIN_PER_S": "100000",
}


@pytest.fixture(scope="module")
def services(stack: TestStack, logdir: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Every public service, as processes of this module's own (fresh databases, the deployment's keys):
    the fuzzing and the failed logins here must not throttle, or add products to, the instances the
    services' own tests share."""
    running: dict[str, ServiceProcess] = {}

    def start(name: str) -> ServiceProcess:
        env = stack.env_for(name)
        if name == "users":  # what is under test here is routing and limits, not argon2's cost: cheap hashes
            env.update(ARGON2_TIME_COST="1", ARGON2_MEMORY_KIB="8192")
        env["SERVICE_URLS"] = json.dumps({n: p.url for n, p in running.items()})
        if name != "users":
            env["JWKS_URL"] = f"{running['users'].url}/.well-known/jwks.json"
        running[name] = ServiceProcess(name, env, logdir).start()
        return running[name]

    try:
        for name in start_order():
            start(name)
        yield dict(running)
    finally:
        for proc in running.values():
            proc.stop()


@pytest.fixture(scope="module")
def admin_token(services: dict[str, ServiceProcess]) -> str:
    r = httpx.post(f"{services['users'].url}/api/v1/sessions", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])


def _urls(services: dict[str, ServiceProcess]) -> dict[str, str]:
    return {name: proc.url for name, proc in services.items()}


@pytest.fixture(scope="module")
def real_gateway(start_gateway: GatewayFactory, services: dict[str, ServiceProcess]) -> ServiceProcess:
    gw = start_gateway(service_urls=_urls(services), **_RAISED)
    r = httpx.get(gw.url + "/readyz")
    assert r.status_code == 200, r.text
    return gw


def test_public_api_works_end_to_end_through_the_gateway(
    real_gateway: ServiceProcess, services: dict[str, ServiceProcess], admin_token: str
) -> None:
    """Sign up, log in and use the token on every service, all through the gateway: each prefix reaches
    its real service and the answers are the services' own."""
    gw = real_gateway.url
    email = f"gw-{uuid.uuid4().hex[:10]}@example.com"
    r = httpx.post(gw + "/api/v1/users", json={"email": email, "password": "a-long-password", "name": "Gw"})
    assert r.status_code == 201, r.text
    r = httpx.post(gw + "/api/v1/sessions", json={"email": email, "password": "a-long-password"})
    assert r.status_code == 201, r.text
    auth = {"authorization": f"Bearer {r.json()['access_token']}"}
    me = httpx.get(gw + "/api/v1/users/me", headers=auth)
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert (
        httpx.get(gw + "/.well-known/jwks.json").json()
        == httpx.get(services["users"].url + "/.well-known/jwks.json").json()
    )

    admin = {"authorization": f"Bearer {admin_token}"}
    body = {
        "sku": f"GW-{uuid.uuid4().hex[:10]}",
        "name": "Gateway kettle",
        "category": "kitchen",
        "price_cents": 2599,
        "currency": "EUR",
    }
    created = httpx.post(gw + "/api/v1/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    product_id = created.json()["id"]
    assert (
        httpx.get(f"{gw}/api/v1/products/{product_id}").json()
        == httpx.get(f"{services['products'].url}/api/v1/products/{product_id}").json()
    )
    assert httpx.get(gw + "/api/v1/products?limit=1").status_code == 200
    assert httpx.get(gw + "/api/v1/search?q=kettle").status_code == 200
    orders = httpx.get(gw + "/api/v1/orders", headers=auth)
    assert orders.status_code == 200
    assert orders.json()["items"] == []
    assert httpx.get(f"{gw}/api/v1/payments/{uuid.uuid4()}", headers=auth).status_code == 404
    assert httpx.get(gw + "/api/v1/orders").status_code == 401  # the service decides what needs a user


def test_a_revoked_session_is_refused_by_users_at_once_and_everywhere_once_its_token_expires(
    real_gateway: ServiceProcess, services: dict[str, ServiceProcess], keyring: KeyRing
) -> None:
    """The revocation bounds the users README states, through the gateway: after logout the users service
    refuses the session's access tokens at once (it checks the session on every request, the hot reads
    included); every other service verifies tokens without asking users, so it refuses them at the latest
    when they expire (ACCESS_TOKEN_TTL_S), whatever the token caches of the gateway and the services hold. A
    token of the same session made to expire 3 s from now stands for one near the end of its lifetime."""
    gw = real_gateway.url
    email = f"revoked-{uuid.uuid4().hex[:10]}@example.com"
    r = httpx.post(gw + "/api/v1/users", json={"email": email, "password": "a-long-password", "name": "Rev"})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    login = httpx.post(gw + "/api/v1/sessions", json={"email": email, "password": "a-long-password"})
    assert login.status_code == 201, login.text
    issued = login.json()["access_token"]
    sid = jwt.decode(issued, options={"verify_signature": False})["sid"]
    expiring = make_token(keyring, sub=user_id, sid=sid, ttl=3)
    expires_at = jwt.decode(expiring, options={"verify_signature": False})["exp"]
    users_reads = ("/api/v1/users/me", f"/api/v1/users/{user_id}")
    for token in (issued, expiring):  # both verified, and now in every token cache on the way
        for path in (*users_reads, "/api/v1/orders"):
            assert httpx.get(gw + path, headers={"authorization": f"Bearer {token}"}).status_code == 200, path
    logout = httpx.delete(gw + "/api/v1/sessions/current", headers={"authorization": f"Bearer {issued}"})
    assert logout.status_code == 204, logout.text
    for token in (issued, expiring):
        for path in users_reads:
            assert httpx.get(gw + path, headers={"authorization": f"Bearer {token}"}).status_code == 401, path
    time.sleep(max(0.0, expires_at + 1.1 - time.time()))
    for base in (gw, services["orders"].url):  # the gateway, and orders itself (it verifies tokens too)
        refused = httpx.get(base + "/api/v1/orders", headers={"authorization": f"Bearer {expiring}"})
        assert refused.status_code == 401, refused.text
        assert "expired" in refused.json()["detail"]


def test_bad_tokens_are_refused_at_the_gateway_even_on_anonymous_routes(
    real_gateway: ServiceProcess, keyring: KeyRing
) -> None:
    """GET /api/v1/products needs no token, so a 401 there can only come from the gateway: a tampered,
    expired or ``alg: none`` token is refused at the edge on every route."""
    good = make_token(keyring)
    header, payload, signature = good.split(".")
    bad = {
        "tampered": f"{header}.{payload[:-4]}AAAA.{signature}",
        "expired": make_token(keyring, ttl=-60),
        "alg none": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".",
    }
    for label, token in bad.items():
        for path in ("/api/v1/products", "/api/v1/users/me", "/api/v1/orders"):
            r = httpx.get(real_gateway.url + path, headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401, (label, path)
            assert r.headers["content-type"] == "application/problem+json"
    assert (
        httpx.get(real_gateway.url + "/api/v1/products", headers={"authorization": f"Bearer {good}"}).status_code == 200
    )


def test_login_brute_force_gets_429(start_gateway: GatewayFactory, services: dict[str, ServiceProcess]) -> None:
    """Guessing passwords through the gateway is cut off with 429 + Retry-After by the login limit."""
    gw = start_gateway(
        service_urls=_urls(services), **{**_RAISED, "RATE_LIMIT_LOGIN_BURST": "4", "RATE_LIMIT_LOGIN_PER_S": "0.05"}
    )
    statuses = [
        httpx.post(
            gw.url + "/api/v1/sessions", json={"email": "victim@example.com", "password": f"guess-number-{i}"}
        ).status_code
        for i in range(6)
    ]
    assert statuses[:4] == [401] * 4
    assert statuses[4:] == [429, 429]
    r = httpx.post(gw.url + "/api/v1/sessions", json={"email": "victim@example.com", "password": "x" * 12})
    assert r.status_code == 429
    assert r.json()["scope"] == "login"
    assert int(r.headers["retry-after"]) >= 1


def test_fifty_logins_from_one_address_pass_the_default_limits_and_failures_get_429(
    start_gateway: GatewayFactory, services: dict[str, ServiceProcess]
) -> None:
    """With the default login limits, 50 people behind one address logging in within 10 s all get 201
    (only failures are throttled); one account's repeated failures get the users service's 429 +
    Retry-After."""
    gw = start_gateway(service_urls=_urls(services))
    accounts = [(f"office-{uuid.uuid4().hex[:10]}@example.com", "an office password") for _ in range(50)]
    for email, password in accounts:  # straight to the service: the sign-up limit is not under test here
        r = httpx.post(
            f"{services['users'].url}/api/v1/users", json={"email": email, "password": password, "name": "Office"}
        )
        assert r.status_code == 201, r.text

    async def log_in_within_nine_seconds() -> list[int]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30.0, limits=httpx.Limits(max_connections=50)) as client:

            async def one(i: int, email: str, password: str) -> int:
                await asyncio.sleep(i * 0.18)  # one every 180 ms, without waiting for the others
                r = await client.post("/api/v1/sessions", json={"email": email, "password": password})
                return r.status_code

            return list(await asyncio.gather(*(one(i, e, p) for i, (e, p) in enumerate(accounts))))

    assert asyncio.run(log_in_within_nine_seconds()) == [201] * 50
    victim = accounts[0][0]
    statuses = [
        httpx.post(gw.url + "/api/v1/sessions", json={"email": victim, "password": f"guess-{i}-xx"}).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    r = httpx.post(gw.url + "/api/v1/sessions", json={"email": victim, "password": accounts[0][1]})
    assert r.status_code == 429
    assert r.json()["type"].endswith("/rate-limited")
    assert "scope" not in r.json()  # the users service's failure limit, not the gateway's ceiling
    assert int(r.headers["retry-after"]) > 0


def test_sign_ups_have_a_limit_of_their_own(start_gateway: GatewayFactory, services: dict[str, ServiceProcess]) -> None:
    """Sign-ups (each an argon2 hash) get their own bucket per client; logins and reads are not affected."""
    gw = start_gateway(service_urls=_urls(services), RATE_LIMIT_PASSWORD_BURST="2", RATE_LIMIT_PASSWORD_PER_S="0.01")
    statuses = [
        httpx.post(
            gw.url + "/api/v1/users",
            json={"email": f"s-{uuid.uuid4().hex[:10]}@example.com", "password": "a-long-password", "name": "S"},
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    r = httpx.patch(gw.url + "/api/v1/users/me", json={"name": "x"})
    assert r.status_code == 429
    assert r.json()["scope"] == "password"
    assert int(r.headers["retry-after"]) >= 1
    assert httpx.get(gw.url + "/api/v1/products").status_code == 200


def test_internal_routes_stay_internal_with_a_valid_service_token(
    real_gateway: ServiceProcess, services: dict[str, ServiceProcess], keyring: KeyRing
) -> None:
    """Even holding a genuine service credential, nobody reaches /internal/* through the gateway; the same
    request straight to the service works, so the 404 is the gateway's doing."""
    token = ServiceTokenIssuer("search", keyring.service_keys["search"]).token_for("products")
    headers = {"authorization": f"Bearer {token}"}
    direct = httpx.get(services["products"].url + "/internal/v1/changes?after=0&limit=1", headers=headers)
    assert direct.status_code == 200, direct.text
    for path in (
        "/internal/v1/changes?after=0&limit=1",
        "/api/v1/products/../../internal/v1/changes",
        "/%69nternal/v1/changes",
    ):
        r = httpx.get(real_gateway.url + path, headers=headers)
        assert r.status_code in (401, 404), path  # the service token is not a user token: 401 or 404
    r = httpx.get(real_gateway.url + "/internal/v1/changes")
    assert r.status_code == 404


def test_merged_openapi_covers_every_service_and_no_internal_route(real_gateway: ServiceProcess) -> None:
    """The published document has each service's public operations and not one internal route."""
    doc = httpx.get(real_gateway.url + "/openapi.json").json()
    paths = set(doc["paths"])
    for expected in (
        "/api/v1/users",
        "/api/v1/sessions",
        "/api/v1/products/{product_id}",
        "/api/v1/search",
        "/api/v1/orders",
        "/.well-known/jwks.json",
    ):
        assert expected in paths, (expected, sorted(paths))
    assert any(p.startswith("/api/v1/payments/") for p in paths)
    assert not [p for p in paths if "internal" in p.lower()]


def test_every_service_and_the_gateway_serve_their_committed_openapi_documents(
    real_gateway: ServiceProcess, services: dict[str, ServiceProcess]
) -> None:
    """The committed documents are the public contract: what each process serves at /openapi.json is its
    file byte for byte (in canonical form), and the gateway's merged document is docs/openapi.json."""
    served = {
        openapi_documents.service_path(name): httpx.get(proc.url + "/openapi.json").json()
        for name, proc in services.items()
    }
    served[openapi_documents.MERGED] = httpx.get(real_gateway.url + "/openapi.json").json()
    # The services behind the gateway (the storefront's page-only document is checked by `services.openapi check`).
    public = {openapi_documents.service_path(name) for name in catalog.forwarded_to(catalog.GATEWAY)}
    assert set(served) == public | {openapi_documents.MERGED}, "a service is missing from this test"
    differ = [
        str(path.relative_to(openapi_documents.ROOT))
        for path, doc in served.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != openapi_documents.canonical(doc)
    ]
    assert differ == [], (
        f"{differ} differ from what the services serve; regenerate them with "
        f"`{openapi_documents.REGENERATE}` and review the diff"
    )


COMMON = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.slow
def test_schemathesis_over_the_merged_openapi(real_gateway: ServiceProcess, admin_token: str) -> None:
    """Whatever schemathesis sends through the gateway (valid and invalid data, as the admin so requests
    get past authentication), every answer is documented in the merged document, matches its schema, and
    none is a 5xx."""
    schema = schemathesis.openapi.from_url(f"{real_gateway.url}/openapi.json")
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: list[str] = []
    seen: Counter[str] = Counter()
    tested: set[str] = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the merged OpenAPI has an invalid operation: {result}"
        operation = result.ok()
        if operation.definition.raw.get("operationId") == "delete_current_session":
            continue  # would revoke the admin session every other operation uses
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _explore(operation, mode, headers, seen)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to make invalid: the operation takes no input
            except Exception as exc:
                failures.append(f"{operation.label} [{mode}]: {exc}")
        tested.add(operation.label)
    assert failures == [], "\n\n".join(failures)
    assert len(tested) >= 20, tested  # users, sessions, products, search, orders, payments, jwks, ops
    assert not [k for k in seen if k.rsplit(" ", 1)[1].startswith("5")], seen
    # Generated requests got through the gateway into the services' logic, not only their validation.
    assert seen["POST /api/v1/products 201"] > 0, seen
    assert seen["GET /api/v1/users/me 200"] > 0, seen


def _explore(operation: Any, mode: GenerationMode, headers: dict[str, str], seen: Counter[str]) -> None:
    @hypothesis.settings(
        max_examples=8, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=COMMON)
        seen[f"{operation.label} {response.status_code}"] += 1

    run()
