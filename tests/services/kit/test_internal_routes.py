"""Internal routes: each one's caller allow-list is its catalog API, enforced by the kit for every service.

The routers are the services' real ones, mounted by ``create_app`` without a database: a refused caller
never reaches a handler, so no database is needed to prove the refusal."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services import catalog
from services.kit import keys
from services.kit.app import create_app
from services.kit.auth import InternalApiCaller, ServiceTokenIssuer, ServiceTokenVerifier, internal_api
from services.kit.errors import Problem
from services.kit.settings import KitSettings
from services.payments.internal import router as payments_router
from services.products.internal import router as products_internal_router

# Every service with internal routes, and its routers.
ROUTERS: dict[str, list[APIRouter]] = {"products": [products_internal_router], "payments": [payments_router]}
# A private key for every catalog service, as if each had been (wrongly) given one and the callee had been given
# all their public keys: the catalog alone must still decide.
PEMS = {s.name: keys.generate_private_pem() for s in catalog.SERVICES}


def _app(service: str, routers: list[APIRouter]) -> FastAPI:
    settings = KitSettings(
        service_name=service, service_public_keys={name: keys.public_pem(pem) for name, pem in PEMS.items()}
    )
    return create_app(settings, title=service, description="test", routers=routers)


def _internal_routes(routers: list[APIRouter]) -> Iterator[tuple[str, str, str]]:
    """(method, concrete path, catalog API) of every /internal route of the routers."""
    for route in (r for router in routers for r in router.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/internal"):
            api = next(d.call.api for d in route.dependant.dependencies if isinstance(d.call, InternalApiCaller))
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
            for method in sorted(route.methods or ()):
                yield method, path, api


def test_every_service_with_internal_routes_is_covered() -> None:
    """The catalog and this test agree on which services have internal APIs (a new one must be added here)."""
    assert set(ROUTERS) == {s.name for s in catalog.SERVICES if s.internal_apis}


@pytest.mark.parametrize("service", sorted(ROUTERS))
def test_each_internal_route_refuses_every_caller_not_on_its_list(service: str) -> None:
    """Least privilege route by route: a genuine token from any service the route's catalog API does not list
    (the gateway, above all) is refused with 401 (not a caller of this service at all) or 403 (a caller of
    another of its APIs), before any handler runs."""
    client = TestClient(_app(service, ROUTERS[service]))
    routes = list(_internal_routes(ROUTERS[service]))
    assert routes
    for method, path, api in routes:
        allowed = catalog.api_callers(service, api)
        for caller in (s.name for s in catalog.SERVICES if s.name not in allowed and s.name != service):
            token = ServiceTokenIssuer(caller, PEMS[caller]).token_for(service)
            r = client.request(
                method,
                path,
                json={},
                params={"order_id": str(uuid.uuid4())},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k"},
            )
            expected = 403 if caller in catalog.callers_of(service) else 401
            assert r.status_code == expected, (method, path, caller, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("api", ["charges", "refunds", "payment-reads"])
def test_the_gateways_token_is_refused_on_payments_charges_refunds_and_reads(api: str) -> None:
    """The gateway forwards public routes only: even a token it signed with a key payments was given by
    mistake never verifies, so a gateway compromise cannot charge or refund anyone's card."""
    gateway_pem = keys.generate_private_pem()
    verifier = ServiceTokenVerifier(
        "payments", {"gateway": keys.public_pem(gateway_pem), "orders": keys.public_pem(PEMS["orders"])}
    )
    with pytest.raises(Problem) as info:
        verifier.verify(ServiceTokenIssuer("gateway", gateway_pem).token_for("payments"), api)
    assert info.value.status == 401
    assert verifier.verify(ServiceTokenIssuer("orders", PEMS["orders"]).token_for("payments"), api) == "orders"


def test_an_internal_route_without_a_caller_list_is_refused_at_start_up() -> None:
    """The allow-list is the one way into /internal: forgetting it fails the build, not the audit."""
    router = APIRouter()

    @router.get("/internal/v1/open")
    async def open_route() -> dict[str, str]:
        return {}

    with pytest.raises(RuntimeError, match="no caller allow-list"):
        _app("payments", [router])


def test_an_internal_route_naming_an_undeclared_api_is_refused_at_start_up() -> None:
    router = APIRouter()

    @router.get("/internal/v1/other")
    async def other_route(caller: Annotated[str, internal_api("no-such-api")]) -> dict[str, str]:
        return {"caller": caller}

    with pytest.raises(KeyError, match="no internal API"):
        _app("payments", [router])
