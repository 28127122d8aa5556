"""The catalog is the spine: its invariants protect everything derived from it."""

from __future__ import annotations

import pytest

from services import catalog


def test_every_data_owning_service_has_its_own_database() -> None:
    """One database per service, never shared: names must be distinct and the gateway owns none."""
    names = [s.database_name for s in catalog.database_services()]
    assert len(names) == len(set(names)) == 5
    assert "gateway" not in {s.name for s in catalog.database_services()}


def test_internal_routes_are_never_public() -> None:
    """A public prefix under /internal would let the edge route service-only endpoints to the internet."""
    with pytest.raises(ValueError, match="never expose /internal"):
        catalog.Service(name="leaky", port=9999, owns_database=False, description="x",
                        public_prefixes=("/internal/v1",))


def test_route_table_matches_longest_prefix_first() -> None:
    """With longest-first order the gateway's first match is always the most specific owner."""
    lengths = [len(prefix) for prefix, _ in catalog.route_table()]
    assert lengths == sorted(lengths, reverse=True)


def test_callers_follow_the_calls_declared() -> None:
    """Service auth and network policies are derived from `calls`; products is called by search and orders."""
    assert set(catalog.callers_of("products")) == {"gateway", "search", "orders"}
    assert set(catalog.callers_of("payments")) == {"gateway", "orders"}
    with pytest.raises(KeyError, match="unknown service"):
        catalog.callers_of("nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "DNS label"),
        ({"port": 80}, "1024..65535"),
        ({"calls": ("orders",), "name": "orders"}, "lists itself"),
    ],
)
def test_bad_catalog_entries_are_rejected(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "thing", "port": 9100, "owns_database": False, "description": "x"}
    with pytest.raises(ValueError, match=message):
        catalog.Service(**{**base, **kwargs})  # type: ignore[arg-type]
