"""The public API reference on the gateway: the merged document at /api/v1/openapi.json and the page that
renders it at /api/v1/docs, assets and all, from the gateway itself."""

from __future__ import annotations

import httpx

from tests.support.procs import ServiceProcess
from tests.support.reference import assert_reference_served_locally


def test_the_public_document_under_the_api_prefix_is_the_merged_document(gateway: ServiceProcess) -> None:
    public = httpx.get(gateway.url + "/api/v1/openapi.json")
    assert public.status_code == 200, public.text
    assert public.json() == httpx.get(gateway.url + "/openapi.json").json()
    assert "/api/v1/products/{product_id}" in public.json()["paths"]


def test_the_reference_page_loads_its_assets_from_the_gateway_only(gateway: ServiceProcess) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        assert_reference_served_locally(client)


def test_an_unknown_reference_asset_is_a_404_problem(gateway: ServiceProcess) -> None:
    r = httpx.get(gateway.url + "/api/v1/docs/assets/0/redoc.standalone.js")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
