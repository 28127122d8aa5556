"""The public API reference as a client reaches it: through the nginx edge over TLS."""

from __future__ import annotations

from services import openapi
from services.gateway.openapi import PUBLIC_DOCUMENT
from tests.e2e.conftest import RunningStack
from tests.support.reference import assert_reference_served_locally


def test_the_reference_page_and_its_assets_load_through_the_edge_from_this_origin_only(
    platform_stack: RunningStack,
) -> None:
    with platform_stack.client() as client:
        assert_reference_served_locally(client)


def test_the_edge_serves_the_committed_merged_document(platform_stack: RunningStack) -> None:
    with platform_stack.client() as client:
        r = client.get(PUBLIC_DOCUMENT)
    assert r.status_code == 200, r.text
    assert openapi.canonical(r.json()) == openapi.MERGED.read_text(encoding="utf-8"), (
        f"the edge's {PUBLIC_DOCUMENT} differs from {openapi.MERGED.relative_to(openapi.ROOT)}; regenerate it with "
        f"`{openapi.REGENERATE}`"
    )
