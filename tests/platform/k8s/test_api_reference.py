"""The cluster's edge forwards the public API reference to the gateway service, as the one-machine edge does."""

from __future__ import annotations

from shop_platform.k8s import objects

from services.gateway.openapi import DOCS, PUBLIC_DOCUMENT


def _routed(path: str) -> bool:
    """Gateway API path matching: Exact is equality; PathPrefix matches whole path elements."""
    for match in objects.http_route()["spec"]["rules"][0]["matches"]:
        kind, value = match["path"]["type"], match["path"]["value"]
        if kind == "Exact" and path == value:
            return True
        prefix = value.rstrip("/")
        if kind == "PathPrefix" and (path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def test_the_http_route_forwards_the_api_reference_and_its_assets() -> None:
    for path in (DOCS, PUBLIC_DOCUMENT, f"{DOCS}/assets/1.7.7/swagger-ui-bundle.js"):
        assert _routed(path), path
