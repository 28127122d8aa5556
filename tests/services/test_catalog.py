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


def test_callers_follow_the_internal_apis_declared() -> None:
    """Service auth and network policies are derived from each service's internal APIs: products is called by
    search and orders, payments by orders only; the gateway forwards public routes but calls no /internal."""
    assert catalog.callers_of("products") == ("search", "orders")
    assert catalog.callers_of("payments") == ("orders",)
    assert catalog.callees_of("orders") == ("products", "payments")
    assert catalog.callees_of(catalog.GATEWAY) == ()
    assert catalog.api_callers("payments", "refunds") == ("orders",)
    assert set(catalog.forwarded_to(catalog.GATEWAY)) == {s.name for s in catalog.SERVICES if s.public_prefixes}
    with pytest.raises(KeyError, match="unknown service"):
        catalog.callers_of("nope")
    with pytest.raises(KeyError, match="no internal API"):
        catalog.api_callers("payments", "nope")


def test_the_gateway_can_call_no_internal_route_and_holds_no_service_key() -> None:
    """The internet-facing gateway only forwards public routes: if it were an internal caller, a gateway bug
    or compromise would be able to charge and refund payments. No catalog service lists it, and only
    internal callers are handed a signing key."""
    assert all(catalog.GATEWAY not in api.callers for s in catalog.SERVICES for api in s.internal_apis)
    assert catalog.GATEWAY not in catalog.service_key_holders()
    assert set(catalog.service_key_holders()) == {"search", "orders"}


def test_a_forwarder_listed_as_an_internal_caller_is_refused() -> None:
    """The rule is checked on the data, so a future catalog edit cannot give the gateway /internal access."""
    leaky = catalog.Service(name="ledger", port=9101, owns_database=False, description="x",
                            internal_apis=(catalog.InternalApi("entries", callers=(catalog.GATEWAY,)),))
    with pytest.raises(ValueError, match="forwards public routes"):
        catalog._validate((*catalog.SERVICES, leaky))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "DNS label"),
        ({"port": 80}, "1024..65535"),
        ({"internal_apis": (catalog.InternalApi("api", callers=("thing",)),)}, "lists itself"),
        ({"internal_apis": (catalog.InternalApi("api", callers=("aa",)), catalog.InternalApi("api", callers=("bb",)))},
         "repeat"),
    ],
)
def test_bad_catalog_entries_are_rejected(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "thing", "port": 9100, "owns_database": False, "description": "x"}
    with pytest.raises(ValueError, match=message):
        catalog.Service(**{**base, **kwargs})  # type: ignore[arg-type]


def test_an_internal_api_names_its_callers() -> None:
    """An API nobody may call is dead code or a forgotten allow-list: refused."""
    with pytest.raises(ValueError, match="at least one caller"):
        catalog.InternalApi("orphan", callers=())
