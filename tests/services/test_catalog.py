"""The catalog is the spine: its invariants protect everything derived from it."""

from __future__ import annotations

import pytest

from services import catalog


def test_every_data_owning_service_has_its_own_database() -> None:
    """One database per service, never shared: names must be distinct and the forwarder owns none."""
    names = [s.database_name for s in catalog.database_services()]
    assert names
    assert len(names) == len(set(names))
    assert not any(s.forwards_public_routes for s in catalog.database_services())


def test_internal_routes_are_never_public() -> None:
    """A public prefix under /internal would let the edge route service-only endpoints to the internet."""
    with pytest.raises(ValueError, match="never expose /internal"):
        catalog.Service(
            name="leaky", port=9999, owns_database=False, description="x", public_prefixes=("/internal/v1",)
        )


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
    assert set(catalog.service_key_holders()) == {
        c for s in catalog.SERVICES for api in s.internal_apis for c in api.callers
    }


def test_a_forwarder_listed_as_an_internal_caller_is_refused() -> None:
    """The rule is checked on the data, so a future catalog edit cannot give the gateway /internal access."""
    leaky = catalog.Service(
        name="ledger",
        port=9101,
        owns_database=False,
        description="x",
        internal_apis=(catalog.InternalApi("entries", callers=(catalog.GATEWAY,)),),
    )
    with pytest.raises(ValueError, match="forwards public routes"):
        catalog._validate((*catalog.SERVICES, leaky))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name"}, "DNS label"),
        ({"port": 80}, "1024..65535"),
        ({"internal_apis": (catalog.InternalApi("api", callers=("thing",)),)}, "lists itself"),
        (
            {
                "internal_apis": (
                    catalog.InternalApi("api", callers=("aa",)),
                    catalog.InternalApi("api", callers=("bb",)),
                )
            },
            "repeat",
        ),
        ({"issues_user_tokens": True, "public_prefixes": ("/api/v1/things",)}, "route /.well-known/jwks.json"),
        ({"secrets": ("database_master_password",)}, "distinct names from"),
        ({"secrets": ("card_fingerprint_key", "card_fingerprint_key")}, "distinct names from"),
        ({"trusts_forwarded_for": True}, "nothing forwards client requests"),
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


def test_no_service_takes_a_port_of_the_forwarders_replicas() -> None:
    """On one machine the gateway's replicas listen on its port + 10, + 20 ...: a service there would fail to
    bind, or answer in the gateway's place."""
    gateway = catalog.get(catalog.GATEWAY)
    for replica_port in catalog.replica_ports(gateway, catalog.MAX_FORWARDER_REPLICAS)[1:]:
        squatter = catalog.Service(name="squatter", port=replica_port, owns_database=False, description="x")
        with pytest.raises(ValueError, match="replicas"):
            catalog._validate((*catalog.SERVICES, squatter))
    taken = {
        p
        for s in catalog.SERVICES
        if s.forwards_public_routes
        for p in catalog.replica_ports(s, catalog.MAX_FORWARDER_REPLICAS)
    }
    assert not {s.port for s in catalog.SERVICES if not s.forwards_public_routes} & taken


def test_exactly_one_service_issues_user_tokens() -> None:
    """Every other service verifies user tokens against the issuer's JWKS: none, or two, is a broken deployment."""
    assert catalog.token_issuer().issues_user_tokens
    assert catalog.JWKS_PATH in catalog.token_issuer().public_prefixes
    issuer = catalog.token_issuer()
    rival = catalog.Service(
        name="rival",
        port=9103,
        owns_database=False,
        description="x",
        public_prefixes=(catalog.JWKS_PATH,),
        issues_user_tokens=True,
    )
    with pytest.raises(ValueError, match="exactly one service issues user tokens"):
        catalog._validate((*(s for s in catalog.SERVICES if s is not issuer), rival, issuer))
    with pytest.raises(ValueError, match="exactly one service issues user tokens"):
        catalog._validate(tuple(s for s in catalog.SERVICES if s is not issuer))
