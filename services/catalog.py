"""The service catalog: the only place a service is named.

Everything that differs per service is derived from this table: gateway routes, databases (local,
in-cluster or RDS), security-group rules, IAM roles for service accounts, network policies, Prometheus
scrape targets, dashboards and alert rules, container images, and each service's settings on every target
(``services.deploy.environment``): who issues user tokens, which secrets a service receives, who believes a
forwarded client address, who may call which ``/internal`` route. Adding a service is one entry here plus
its own package and tests, not ten edits elsewhere.

It is plain data with no third-party imports so the Pulumi program, the policy pack and the services can
all import it cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
_PAGE = re.compile(r"^/[a-z][a-z0-9-]{0,30}$")
# First path segments that are never pages: the API, the JWKS, and every service's operational routes.
RESERVED_SEGMENTS = frozenset(
    {"api", ".well-known", "healthz", "readyz", "metrics", "openapi.json", "docs", "redoc", "internal"}
)

# Where the user-token issuer publishes its public keys; every other service verifies user tokens with them.
JWKS_PATH = "/.well-known/jwks.json"
# Secrets a deployment generates once and hands to the services that name them in ``Service.secrets``
# (the signing keys follow from the catalog's relations instead: ``issues_user_tokens``, ``internal_apis``).
SECRETS = ("card_fingerprint_key", "session_key")
# The forwarder runs as replicas on its catalog port, then +10, +20 ... on one machine (each replica its own
# scrape target, as a pod is): those ports belong to it, never to another service.
FORWARDER_REPLICA_STEP = 10
MAX_FORWARDER_REPLICAS = 4


@dataclass(frozen=True, slots=True)
class Scaling:
    """Replica bounds for the horizontal autoscaler (cluster modes)."""

    min_replicas: int = 2
    max_replicas: int = 6
    target_cpu_percent: int = 70

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"scaling: need 1 <= min_replicas <= max_replicas, got {self}")
        if not 10 <= self.target_cpu_percent <= 95:
            raise ValueError(f"scaling: target_cpu_percent must be 10..95, got {self.target_cpu_percent}")


@dataclass(frozen=True, slots=True)
class InternalApi:
    """A group of a service's ``/internal/*`` routes and the only services that may call it.

    Each internal route names its group (``services.kit.auth.internal_api``); the callee then accepts a
    service token only from a caller listed here, holds the public keys of these callers only, and its
    network policy admits only them (plus the gateway, which forwards public routes on the same port).
    """

    name: str
    callers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"internal API name {self.name!r} must be a DNS label (lowercase, digits, '-')")
        if not self.callers:
            raise ValueError(f"internal API {self.name}: name at least one caller (or drop the API)")
        if len(set(self.callers)) != len(self.callers):
            raise ValueError(f"internal API {self.name}: a caller is listed twice in {self.callers}")


@dataclass(frozen=True, slots=True)
class Service:
    """One deployable service.

    Two different relations, never mixed: ``forwards_public_routes`` marks the gateway, which forwards the
    public routes of every service with ``public_prefixes`` (the path prefixes routed to it) and needs no
    service credential for that; ``internal_apis`` lists who may call this service's ``/internal/*``
    routes (service tokens, keys handed out, network policies all follow it). A service that forwards
    public routes can never be an internal caller: the internet-facing process holds no service key.
    """

    name: str
    port: int
    owns_database: bool
    description: str
    internal_apis: tuple[InternalApi, ...] = ()
    public_prefixes: tuple[str, ...] = ()
    forwards_public_routes: bool = False
    scaling: Scaling = field(default_factory=Scaling)
    # Per-route upstream timeout the gateway applies (seconds). Orders run a saga, so they get longer.
    gateway_timeout_s: float = 5.0
    issues_user_tokens: bool = False
    secrets: tuple[str, ...] = ()
    trusts_forwarded_for: bool = False
    # Checks user tokens itself against the issuer's JWKS (defence in depth). Off only for a service that
    # never reads a token it did not just receive from the API (the storefront passes them on).
    verifies_user_tokens: bool = True
    # Pages for browsers the edge sends straight to it (the storefront): "/" is the root alone, any other is
    # one path segment with everything below it ("/cart" covers /cart and /cart/items). Only these: its
    # operational routes (/metrics, /readyz, its API document) stay inside.
    edge_pages: tuple[str, ...] = ()
    # A client of the public API behind the forwarder, like any outside client: the shopper's token, never
    # a service key. Its pods may reach the forwarder; nothing else follows from it.
    calls_public_api: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"service name {self.name!r} must be a DNS label (lowercase, digits, '-')")
        if not 1024 <= self.port <= 65535:
            raise ValueError(f"service {self.name}: port {self.port} must be 1024..65535")
        for api in self.internal_apis:
            if self.name in api.callers:
                raise ValueError(f"service {self.name} lists itself as a caller of its internal API {api.name}")
        names = [api.name for api in self.internal_apis]
        if len(set(names)) != len(names):
            raise ValueError(f"service {self.name}: internal API names repeat: {names}")
        for prefix in self.public_prefixes:
            if not prefix.startswith("/") or prefix.startswith("/internal"):
                raise ValueError(
                    f"service {self.name}: public prefix {prefix!r} must start with '/' and never expose /internal"
                )
        if self.issues_user_tokens and JWKS_PATH not in self.public_prefixes:
            raise ValueError(f"service {self.name} issues user tokens: route {JWKS_PATH} to it (public_prefixes)")
        unknown = set(self.secrets) - set(SECRETS)
        if unknown or len(set(self.secrets)) != len(self.secrets):
            raise ValueError(f"service {self.name}: secrets {self.secrets} must be distinct names from {SECRETS}")
        if self.edge_pages and (self.forwards_public_routes or self.public_prefixes or self.internal_apis):
            raise ValueError(
                f"service {self.name} serves pages at the edge: it cannot also forward or serve API "
                "routes (the edge would send them two ways)"
            )
        for page in self.edge_pages:
            if page != "/" and not _PAGE.match(page):
                raise ValueError(f"service {self.name}: edge page {page!r} must be '/' or one path segment ('/cart')")
            if page.strip("/") in RESERVED_SEGMENTS:
                raise ValueError(f"service {self.name}: edge page {page!r} is reserved for the API or operations")
        if self.trusts_forwarded_for and not (self.forwards_public_routes or self.public_prefixes):
            raise ValueError(
                f"service {self.name} trusts X-Forwarded-For but nothing forwards client requests "
                "to it (no public prefixes, not the forwarder)"
            )

    @property
    def database_name(self) -> str:
        """The PostgreSQL database this service owns (one per service, never shared)."""
        if not self.owns_database:
            raise ValueError(f"service {self.name} owns no database")
        return self.name.replace("-", "_")


GATEWAY = "gateway"

SERVICES: tuple[Service, ...] = (
    Service(
        name="gateway",
        port=8000,
        owns_database=False,
        description="Public API gateway: routing, JWT verification, rate limits, circuit breakers",
        forwards_public_routes=True,
        # Rate limits are per client: the edge in front of it (nginx, the NGINX data plane) names the client.
        trusts_forwarded_for=True,
        scaling=Scaling(min_replicas=2, max_replicas=10),
    ),
    Service(
        name="users",
        port=8001,
        owns_database=True,
        description="Accounts, argon2id passwords, sessions and asymmetric JWTs (JWKS)",
        public_prefixes=("/api/v1/users", "/api/v1/sessions", JWKS_PATH),
        issues_user_tokens=True,
        # Login throttling is per client: without the forwarded address every client would share the
        # gateway's, and one attacker could lock everyone out.
        trusts_forwarded_for=True,
    ),
    Service(
        name="products",
        port=8002,
        owns_database=True,
        description="Catalogue and inventory: reservations that never oversell, change feed",
        internal_apis=(InternalApi("reservations", callers=("orders",)), InternalApi("changes", callers=("search",))),
        public_prefixes=("/api/v1/products", "/api/v1/categories"),
    ),
    Service(
        name="search",
        port=8003,
        owns_database=True,
        description="Full-text product search fed by the products change feed",
        public_prefixes=("/api/v1/search",),
    ),
    Service(
        name="orders",
        port=8004,
        owns_database=True,
        description="Orders and the checkout saga (reserve, charge, commit, confirm)",
        public_prefixes=("/api/v1/orders",),
        gateway_timeout_s=15.0,
    ),
    Service(
        name="payments",
        port=8005,
        owns_database=True,
        description="Simulated card processor, idempotent charges and refunds, double-entry ledger",
        internal_apis=(
            InternalApi("charges", callers=("orders",)),
            InternalApi("refunds", callers=("orders",)),
            InternalApi("payment-reads", callers=("orders",)),
        ),
        public_prefixes=("/api/v1/payments",),
        secrets=("card_fingerprint_key",),
    ),
    Service(
        name="storefront",
        port=8006,
        owns_database=False,
        description="Shop pages for browsers: a backend-for-frontend over the public API, at the edge's /",
        edge_pages=(
            "/",
            "/search",
            "/products",
            "/cart",
            "/signup",
            "/login",
            "/logout",
            "/checkout",
            "/orders",
            "/static",
        ),
        calls_public_api=True,
        verifies_user_tokens=False,
        secrets=("session_key",),
    ),
)


def _validate(services: tuple[Service, ...]) -> None:
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate service names in catalog: {names}")
    ports = [s.port for s in services]
    if len(set(ports)) != len(ports):
        raise ValueError(f"duplicate ports in catalog: {ports}")
    for forwarder in (s for s in services if s.forwards_public_routes):
        replicas = set(replica_ports(forwarder, MAX_FORWARDER_REPLICAS)[1:])
        taken = sorted(s.name for s in services if s.port in replicas)
        if taken:
            raise ValueError(
                f"{taken} use a port of {forwarder.name}'s replicas {sorted(replicas)} "
                f"({forwarder.port} + {FORWARDER_REPLICA_STEP} per replica)"
            )
    page_servers = [s.name for s in services if s.edge_pages]
    if len(page_servers) > 1:
        raise ValueError(f"only one service serves pages at the edge, got {page_servers}")
    if any(s.calls_public_api for s in services) and not any(s.forwards_public_routes for s in services):
        raise ValueError("a service calls the public API but no service forwards it")
    issuers = [s.name for s in services if s.issues_user_tokens]
    if len(issuers) != 1:
        raise ValueError(f"exactly one service issues user tokens, got {issuers}")
    known = set(names)
    forwarders = {s.name for s in services if s.forwards_public_routes}
    for s in services:
        for api in s.internal_apis:
            unknown = set(api.callers) - known
            if unknown:
                raise ValueError(f"internal API {s.name}/{api.name}: unknown callers {sorted(unknown)}")
            if forwarders & set(api.callers):
                raise ValueError(
                    f"internal API {s.name}/{api.name}: {sorted(forwarders & set(api.callers))} "
                    "forwards public routes and must hold no service credential"
                )
    prefixes = [p for s in services for p in s.public_prefixes]
    if len(set(prefixes)) != len(prefixes):
        raise ValueError("two services claim the same public prefix")


def replica_ports(service: Service, replicas: int) -> list[int]:
    """The ports of a forwarder's replicas on one machine: its catalog port, then +10, +20 ..."""
    if not 1 <= replicas <= MAX_FORWARDER_REPLICAS:
        raise ValueError(f"{service.name}: 1..{MAX_FORWARDER_REPLICAS} replicas, got {replicas}")
    return [service.port + FORWARDER_REPLICA_STEP * i for i in range(replicas)]


_validate(SERVICES)


@cache
def by_name() -> dict[str, Service]:
    return {s.name: s for s in SERVICES}


def get(name: str) -> Service:
    try:
        return by_name()[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; the catalog has {sorted(by_name())}") from None


def database_services() -> tuple[Service, ...]:
    """Services that own a database, in catalog order."""
    return tuple(s for s in SERVICES if s.owns_database)


def callers_of(name: str) -> tuple[str, ...]:
    """Services allowed to call some ``/internal`` route of ``name``, in catalog order: the public keys
    ``name`` is given, and the service peers its network policy admits."""
    allowed = {caller for api in get(name).internal_apis for caller in api.callers}
    return tuple(s.name for s in SERVICES if s.name in allowed)


def callees_of(name: str) -> tuple[str, ...]:
    """Services whose ``/internal`` routes ``name`` may call, in catalog order."""
    get(name)
    return tuple(s.name for s in SERVICES if name in callers_of(s.name))


def api_callers(service: str, api: str) -> tuple[str, ...]:
    """The callers of one internal API of ``service``; unknown APIs are an error, never an empty list."""
    for candidate in get(service).internal_apis:
        if candidate.name == api:
            return candidate.callers
    raise KeyError(
        f"service {service!r} declares no internal API {api!r}; it has {[a.name for a in get(service).internal_apis]}"
    )


def forwarded_to(name: str) -> tuple[str, ...]:
    """The services whose public routes ``name`` forwards: every service with public prefixes when ``name``
    is a forwarder (the gateway), else none."""
    if not get(name).forwards_public_routes:
        return ()
    return tuple(s.name for s in SERVICES if s.public_prefixes and s.name != name)


def service_key_holders() -> tuple[str, ...]:
    """Services that sign service tokens: exactly the internal callers. Nobody else gets a private key."""
    return tuple(s.name for s in SERVICES if callees_of(s.name))


def page_server() -> Service | None:
    """The service whose pages the edge serves to browsers (the storefront), if the catalog has one."""
    return next((s for s in SERVICES if s.edge_pages), None)


def token_issuer() -> Service:
    """The service that signs user tokens and publishes their public keys at ``JWKS_PATH``."""
    return next(s for s in SERVICES if s.issues_user_tokens)


def route_table() -> tuple[tuple[str, Service], ...]:
    """Public prefix -> service, longest prefix first so the gateway's first match is the right one."""
    pairs = [(p, s) for s in SERVICES for p in s.public_prefixes]
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))
