"""The services' chart values, computed from the catalog and the stack: a pure function per service.

Everything that differs between services comes from ``services.catalog``: port, scaling, who may call whom
(network policy allow-lists), whether a database exists. Everything that differs between stacks comes from
``LayerSpec``. Secret settings never appear here: they are files in the ``<name>-secrets`` Secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services import catalog
from services.catalog import Service
from services.deploy.environment import DeployTarget, deployment_environment, split_secrets
from shop_platform.k8s import spec as k
from shop_platform.k8s.spec import LayerSpec
from shop_platform.network import endpoint_cidrs


@dataclass(frozen=True, slots=True)
class ServiceInputs:
    """Per-service values that exist only once the cloud side is declared (resolved Pulumi outputs)."""

    image_repository: str
    role_arn: str = ""  # EKS: the IRSA role of the service's database secret
    db_host: str = ""  # EKS: the RDS address
    db_user: str = ""  # EKS: the service's own database role (IAM database authentication)


def secret_name(svc: Service) -> str:
    return f"{svc.name}-secrets"


def _env(svc: Service, layer: LayerSpec, inputs: ServiceInputs) -> dict[str, str]:
    """The service's plain settings in the cluster (its secret ones are files of its Secret)."""

    def database(owner: Service) -> dict[str, str]:
        if not layer.eks:
            return {}  # kind: DATABASE_URL, with the in-cluster password, is in the Secret
        # The service's own role, authenticated by an IAM token the kit signs with its IRSA role (no password,
        # no master secret); the kit verifies the server's certificate.
        return dict(
            DB_IAM_USER=inputs.db_user,
            DB_HOST=inputs.db_host,
            DB_NAME=owner.database_name,
            DB_PORT="5432",
            AWS_REGION=layer.region or "",
            DB_SSLMODE="verify-full",
            # The regional STS endpoint has a VPC interface endpoint; the global one is on the internet.
            AWS_STS_REGIONAL_ENDPOINTS="regional",
            DB_SSL_ROOT_CERT=k.RDS_CA_BUNDLE,
        )

    target = DeployTarget(
        environment=layer.environment,
        log_level="INFO",
        # Same namespace: a Service per catalog entry, named after it, on the catalog port.
        service_url_template="http://{name}:{port}",
        # Pod addresses: the NGINX data plane in front of the gateway, the gateway in front of a service.
        forwarder_addresses=layer.trusted_proxy_cidr,
        rate_limit_state_path="/tmp/gateway/ratelimit.bin",  # noqa: S108 - an emptyDir (read-only root filesystem)
        database=database,
    )
    plain, _ = split_secrets(deployment_environment(svc.name, target))
    return plain


def allowed_callees(svc: Service) -> tuple[str, ...]:
    """Where a service's pods may connect inside the namespace, from the catalog: the services whose public
    routes it forwards (the gateway), the services whose /internal routes it may call, the token issuer
    for every service that verifies user tokens (it fetches the issuer's public JWKS, ``JWKS_URL``), and the
    forwarder for a client of the public API (the storefront).
    A connection allowed here is a port, not a route: /internal stays closed to anyone the callee's catalog
    entry does not list (service tokens, ``services.kit.auth.internal_api``)."""
    issuer = catalog.token_issuer().name
    targets = {*catalog.forwarded_to(svc.name), *catalog.callees_of(svc.name)}
    if svc.name != issuer and svc.verifies_user_tokens:
        targets.add(issuer)
    if svc.calls_public_api:
        targets.update(s.name for s in catalog.SERVICES if s.forwards_public_routes)
    return tuple(s.name for s in catalog.SERVICES if s.name in targets)


def allowed_callers(svc: Service) -> tuple[str, ...]:
    return tuple(s.name for s in catalog.SERVICES if svc.name in allowed_callees(s))


def edge_backends() -> tuple[Service, ...]:
    """The services the edge (the NGINX data plane) connects to: the data plane's egress
    (``netpol.gateway``), each backend's ingress peer (``_network_policy``) and its mesh allow-list
    (``mesh.authorization_policies``) all follow this one list: the forwarder (the API) and the page server
    (the storefront's pages)."""
    return tuple(s for s in catalog.SERVICES if s.forwards_public_routes or s.edge_pages)


def _network_policy(svc: Service, layer: LayerSpec) -> dict[str, Any]:
    peers: list[dict[str, Any]] = []
    if svc in edge_backends():
        peers.append({"namespace": k.GATEWAY_NS, "podLabels": dict(k.GATEWAY_POD_LABELS)})
    database: dict[str, Any] = {"enabled": False}
    if svc.owns_database:
        if layer.eks:
            database = {"enabled": True, "port": 5432, "cidrs": list(layer.database_cidrs)}
        else:
            database = {"enabled": True, "port": 5432, "namespace": k.DATA_NS, "podLabels": dict(k.POSTGRES_POD_LABELS)}
    # EKS: STS (IRSA, for the IAM database token) through its interface endpoint in the private subnets
    # (shop_platform.network): HTTPS there only, never to the internet or the rest of the VPC.
    aws_apis: dict[str, Any] = {"enabled": False}
    if svc.owns_database and layer.eks and layer.vpc_cidr:
        aws_apis = {"enabled": True, "cidrs": list(endpoint_cidrs(layer.vpc_cidr))}
    return {
        "fromServices": list(allowed_callers(svc)),
        "fromPeers": peers,
        "prometheus": {"namespace": k.MONITORING_NS, "podLabels": dict(k.PROMETHEUS_POD_LABELS)},
        "toServices": [{"name": c, "port": catalog.get(c).port} for c in allowed_callees(svc)],
        "dns": {"namespace": "kube-system", "podLabels": dict(k.DNS_POD_LABELS)},
        "database": database,
        "awsApis": aws_apis,
        "hbonePort": k.MESH_HBONE_PORT,  # every namespace the services reach is in the mesh (objects.MESH_ENROLMENT)
    }


def service_values(svc: Service, layer: LayerSpec, inputs: ServiceInputs) -> dict[str, Any]:
    """The chart values of one service on one stack (validated again by the chart's values.schema.json)."""
    size = layer.sizing
    lo, hi = svc.scaling.min_replicas, svc.scaling.max_replicas
    if size.max_replicas_cap is not None:
        hi = min(hi, size.max_replicas_cap)
        lo = 1
    image: dict[str, Any] = {
        "repository": inputs.image_repository,
        "tag": layer.kubernetes.image_tag,
        # kind loads images into the nodes (no registry): never pull.
        "pullPolicy": "Always" if layer.eks else "IfNotPresent",
    }
    if svc.name in layer.kubernetes.image_digests:
        image["digest"] = layer.kubernetes.image_digests[svc.name]
    return {
        "name": svc.name,
        "port": svc.port,
        "image": image,
        "env": _env(svc, layer, inputs),
        "secretsDir": k.SECRETS_DIR,
        "secretName": secret_name(svc),
        "serviceAccount": {"roleArn": inputs.role_arn if layer.eks else ""},
        "resources": {
            "requests": {"cpu": size.cpu_request, "memory": size.memory_request},
            "limits": {"cpu": size.cpu_limit, "memory": size.memory_limit},
        },
        "autoscaling": {
            "minReplicas": lo,
            "maxReplicas": hi,
            "targetCPUUtilizationPercentage": svc.scaling.target_cpu_percent,
        },
        "podDisruptionBudget": {"maxUnavailable": 1},
        # prod has nodes in 3 zones (config requires it): refuse to stack replicas in one zone.
        "topologySpread": {
            "zoneWhenUnsatisfiable": "DoNotSchedule" if layer.environment == "prod" else "ScheduleAnyway"
        },
        "networkPolicy": _network_policy(svc, layer),
        "serviceMonitor": {"enabled": True, "interval": "30s"},
    }
