"""Pulumi components of the Kubernetes layer. Each declares what the pure builders computed.

Types are ``shop:k8s:<Type>``; args are frozen dataclasses validated in ``__post_init__``; children are
named ``f"{name}-..."`` with ``parent=self``; ``register_outputs`` comes last. Raw objects are applied
through ``yaml.v2.ConfigGroup`` (one resource per group: the offline plan reads its ``objs``); charts
through ``helm.v3.Release`` (the services' chart from ``charts/service``, the add-ons pinned in
``versions``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from services import catalog
from services.catalog import Service
from services.deploy.environment import DeployTarget, deployment_environment, split_secrets
from services.deploy.keyring import KeyRing
from shop_platform.k8s import addons, mesh, netpol, objects
from shop_platform.k8s import spec as k
from shop_platform.k8s.keys import keyring_from_seeds
from shop_platform.k8s.spec import LayerSpec
from shop_platform.k8s.values import ServiceInputs, secret_name, service_values

REPO_ROOT = Path(__file__).resolve().parents[3]
SERVICE_CHART_DIR = REPO_ROOT / "charts" / "service"


def service_chart_path() -> str:
    """The chart path as Pulumi's helm provider resolves it (relative to the program's working directory),
    so state does not carry this machine's absolute path."""
    return os.path.relpath(SERVICE_CHART_DIR, os.getcwd())


def release(name: str, r: addons.ReleaseSpec, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
    repo = None if r.repo.startswith("oci://") else k8s.helm.v3.RepositoryOptsArgs(repo=r.repo)
    chart = f"{r.repo}/{r.chart}" if r.repo.startswith("oci://") else r.chart
    return k8s.helm.v3.Release(
        name,
        name=r.name,
        chart=chart,
        version=r.version,
        repository_opts=repo,
        namespace=r.namespace,
        values=r.values,
        atomic=True,
        cleanup_on_fail=True,
        timeout=900,
        max_history=5,
        # A null value removes a chart default (e.g. kube-prometheus-stack's fixed Grafana admin password).
        allow_null_values=True,
        opts=opts,
    )


@dataclass(frozen=True, slots=True)
class NamespacesArgs:
    layer: LayerSpec


class Namespaces(pulumi.ComponentResource):
    """Namespaces with Pod Security labels, each with a default-deny NetworkPolicy and its add-ons' flows
    (``netpol``), in place before any release: a chart's hook Job already runs under them."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:Namespaces", name, None, opts)
        self.namespaces = k8s.yaml.v2.ConfigGroup(
            f"{name}-namespaces", objs=objects.namespaces(args.layer), opts=pulumi.ResourceOptions(parent=self)
        )
        self.network_policies = k8s.yaml.v2.ConfigGroup(
            f"{name}-network-policies",
            objs=netpol.namespace_policies(args.layer),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespaces]),
        )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class MeshArgs:
    layer: LayerSpec


class Mesh(pulumi.ComponentResource):
    """Istio in ambient mode (``mesh.istio_releases``, one after the other), then the mesh-wide STRICT mutual TLS,
    its plaintext exceptions and the identity allow-lists (``mesh.peer_authentications``,
    ``mesh.authorization_policies``). ``ready`` is the last release (ztunnel): workloads start after it, so none
    runs unmeshed in an enrolled namespace."""

    def __init__(self, name: str, args: MeshArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:Mesh", name, None, opts)
        # The component's own ordering (opts.depends_on) holds back the first release through parent=self.
        previous: list[pulumi.Resource] = []
        for spec in mesh.istio_releases(args.layer):
            previous = [release(f"{name}-{spec.name}", spec, pulumi.ResourceOptions(parent=self, depends_on=previous))]
        self.ready = previous[0]
        self.policies = k8s.yaml.v2.ConfigGroup(
            f"{name}-policies",
            objs=[*mesh.peer_authentications(args.layer), *mesh.authorization_policies(args.layer)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready]),
        )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class ClusterStorageArgs:
    kms_key_arn: pulumi.Input[str]


class ClusterStorage(pulumi.ComponentResource):
    """EKS: the default StorageClass (encrypted gp3, the cluster's volume key), declared before every release
    or object that claims a volume (Prometheus, Elasticsearch, Logstash)."""

    def __init__(self, name: str, args: ClusterStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:ClusterStorage", name, None, opts)
        self.storage_class = k8s.yaml.v2.ConfigGroup(
            f"{name}-storage-class",
            objs=[objects.storage_class(args.kms_key_arn)],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


def _secret_data(service: str, v: list[Any]) -> dict[str, str]:
    """File name -> content (the kit reads each setting from SECRETS_DIR/<NAME>): the service's secret
    settings (its share of the key ring, the first administrator if it issues user tokens) plus its extra
    settings."""
    ring: KeyRing = v[0]
    extra: Mapping[str, str] = v[1]
    admin = (v[2], v[3]) if len(v) == 4 else None
    _, secret = split_secrets(deployment_environment(service, DeployTarget(keyring=ring, admin=admin)))
    return {**secret, **extra}


@dataclass(frozen=True, slots=True)
class ServiceSecretsArgs:
    services: tuple[Service, ...]
    # Extra secret settings per service (kind: DATABASE_URL with the in-cluster password).
    extra: Mapping[str, Mapping[str, pulumi.Input[str]]] = field(default_factory=dict)
    # The first administrator: created at start-up by the token-issuing service (password generated here).
    admin_email: str | None = None

    def __post_init__(self) -> None:
        if not self.services:
            raise ValueError("ServiceSecretsArgs: no services")
        unknown = set(self.extra) - {s.name for s in self.services}
        if unknown:
            raise ValueError(f"ServiceSecretsArgs: extra settings for unknown services {sorted(unknown)}")


class ServiceSecrets(pulumi.ComponentResource):
    """One Secret per service holding only what that service needs (``services.deploy.environment``): its own
    private key if it calls /internal routes, its callers' public keys (catalog allow-list), the user-token
    signing keys and the first administrator (the token issuer), the deployment secrets its catalog entry
    names (the card fingerprint key, the storefront's session key)."""

    def __init__(self, name: str, args: ServiceSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:ServiceSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        jwt_seed = random.RandomBytes(f"{name}-jwt-seed", length=32, opts=child)
        # Signing keys for internal callers only: the gateway and the other callees never sign service tokens.
        seeds = {
            s.name: random.RandomBytes(f"{name}-{s.name}-seed", length=32, opts=child)
            for s in args.services
            if s.name in catalog.service_key_holders()
        }
        # One per catalog secret, named after it ("card_fingerprint_key" -> "<name>-card-fingerprint-key"): a
        # rename would replace the value in state, and with it every fingerprint or session made under it.
        deployment_secrets = {
            n: random.RandomBytes(f"{name}-{n.replace('_', '-')}", length=32, opts=child) for n in catalog.SECRETS
        }
        names, secret_names = list(seeds), list(deployment_secrets)
        self.admin_password: pulumi.Output[str] | None = None
        admin: list[pulumi.Input[str]] = []
        if args.admin_email is not None:
            admin_pw = random.RandomPassword(f"{name}-admin-password", length=24, special=False, opts=child)
            # Marked secret here, not only by the provider's schema: it must never reach state or logs in clear.
            self.admin_password = pulumi.Output.secret(admin_pw.result)
            admin = [args.admin_email, self.admin_password]
        ring = pulumi.Output.all(
            jwt_seed.base64, *[deployment_secrets[n].hex for n in secret_names], *[seeds[n].base64 for n in names]
        ).apply(
            lambda v: keyring_from_seeds(
                v[0],
                dict(zip(names, v[1 + len(secret_names) :], strict=True)),
                dict(zip(secret_names, v[1 : 1 + len(secret_names)], strict=True)),
            )
        )
        self.secrets: dict[str, k8s.core.v1.Secret] = {}
        for svc in args.services:
            data: pulumi.Output[dict[str, str]] = pulumi.Output.secret(
                pulumi.Output.all(
                    ring, dict(args.extra.get(svc.name, {})), *(admin if svc.issues_user_tokens else [])
                ).apply(functools.partial(_secret_data, svc.name))
            )
            self.secrets[svc.name] = k8s.core.v1.Secret(
                f"{name}-{svc.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=secret_name(svc),
                    namespace=k.SERVICES_NS,
                    labels={**objects.PART_OF, "app.kubernetes.io/name": svc.name},
                ),
                type="Opaque",
                string_data=data,
                opts=child,
            )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class ServiceDeploymentArgs:
    service: Service
    layer: LayerSpec
    inputs: pulumi.Input[ServiceInputs]

    def __post_init__(self) -> None:
        catalog.get(self.service.name)  # only catalog services are deployed


class ServiceDeployment(pulumi.ComponentResource):
    """The services' chart, once per catalog service, with values computed by ``service_values``."""

    def __init__(self, name: str, args: ServiceDeploymentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:ServiceDeployment", name, None, opts)
        svc, layer = args.service, args.layer
        values = pulumi.Output.from_input(args.inputs).apply(lambda i: service_values(svc, layer, i))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=svc.name,
            chart=service_chart_path(),
            namespace=k.SERVICES_NS,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release": self.release.name})


@dataclass(frozen=True, slots=True)
class GatewayEdgeArgs:
    layer: LayerSpec
    # EKS only: bind the data plane into the ALB target group through the AWS Load Balancer Controller.
    target_group_arn: pulumi.Input[str] | None = None
    lb_controller_role_arn: pulumi.Input[str] | None = None
    cluster_name: pulumi.Input[str] | None = None
    vpc_id: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        eks_inputs = (self.target_group_arn, self.lb_controller_role_arn, self.cluster_name, self.vpc_id)
        if self.layer.eks and any(v is None for v in eks_inputs):
            raise ValueError(
                "GatewayEdgeArgs: EKS needs target_group_arn, lb_controller_role_arn, cluster_name, "
                "vpc_id (the ALB forwards to the NGINX data plane through a TargetGroupBinding)"
            )
        if not self.layer.eks and any(v is not None for v in eks_inputs):
            raise ValueError("GatewayEdgeArgs: kind has no ALB; leave the EKS inputs unset")


class GatewayEdge(pulumi.ComponentResource):
    """Gateway API CRDs, NGINX Gateway Fabric, the Gateway and the HTTPRoute to the gateway service."""

    def __init__(self, name: str, args: GatewayEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:GatewayEdge", name, None, opts)
        layer = args.layer
        crds = k8s.yaml.v2.ConfigFile(
            f"{name}-gateway-api-crds", file=addons.gateway_api_crds_url(), opts=pulumi.ResourceOptions(parent=self)
        )
        ngf = release(
            f"{name}-nginx-gateway-fabric",
            addons.nginx_gateway_fabric(layer),
            pulumi.ResourceOptions(parent=self, depends_on=[crds]),
        )
        self.routes = k8s.yaml.v2.ConfigGroup(
            f"{name}-routes",
            objs=[
                objects.gateway_proxy(layer),
                objects.gateway(layer),
                objects.http_route(),
                objects.gateway_disruption_budget(),
                *objects.gateway_pod_monitors(),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ngf]),
        )
        if layer.eks:
            assert args.cluster_name is not None
            assert args.lb_controller_role_arn is not None
            assert args.target_group_arn is not None
            controller = release(
                f"{name}-aws-load-balancer-controller",
                addons.aws_load_balancer_controller(
                    args.cluster_name, args.lb_controller_role_arn, args.vpc_id, layer.region or ""
                ),
                pulumi.ResourceOptions(parent=self),
            )
            k8s.yaml.v2.ConfigGroup(
                f"{name}-target-group-binding",
                objs=[objects.target_group_binding(args.target_group_arn)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[controller, self.routes]),
            )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class ObservabilityArgs:
    layer: LayerSpec


class Observability(pulumi.ComponentResource):
    """kube-prometheus-stack (Grafana on 3002), the catalog's dashboards, the shared alert rules and the mesh's
    PodMonitors (istiod, ztunnel)."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:Observability", name, None, opts)
        self.stack = release(
            f"{name}-kube-prometheus-stack",
            addons.kube_prometheus_stack(args.layer),
            pulumi.ResourceOptions(parent=self),
        )
        self.objects = k8s.yaml.v2.ConfigGroup(
            f"{name}-rules-and-dashboards",
            objs=[objects.prometheus_rule(), *objects.dashboard_configmaps(), *mesh.pod_monitors()],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.stack]),
        )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class LoggingArgs:
    layer: LayerSpec


class Logging(pulumi.ComponentResource):
    """ECK (Elasticsearch with security and ILM retention, Kibana, Logstash with a GELF input writing an index
    per service) and Fluent Bit shipping every container's log as GELF to Logstash."""

    def __init__(self, name: str, args: LoggingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:Logging", name, None, opts)
        layer = args.layer
        operator = release(f"{name}-eck-operator", addons.eck_operator(layer), pulumi.ResourceOptions(parent=self))
        self.elastic = k8s.yaml.v2.ConfigGroup(
            f"{name}-elastic",
            objs=[
                objects.logstash_role_secret(),
                objects.elasticsearch(layer),
                objects.kibana(layer),
                objects.logstash(layer),
                *objects.ilm_setup(layer),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[operator]),
        )
        release(
            f"{name}-fluent-bit",
            addons.fluent_bit(layer),
            pulumi.ResourceOptions(parent=self, depends_on=[self.elastic]),
        )
        self.register_outputs({})


class InClusterPostgres(pulumi.ComponentResource):
    """kind: one PostgreSQL with a database per catalog service that owns data, in place of RDS."""

    password: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:InClusterPostgres", name, None, opts)
        pw = random.RandomPassword(
            f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        self.password = pulumi.Output.secret(pw.result)
        secret = k8s.core.v1.Secret(
            f"{name}-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=objects.POSTGRES_SECRET, namespace=k.DATA_NS, labels=dict(objects.PART_OF)
            ),
            type="Opaque",
            string_data={"password": self.password},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.objects = k8s.yaml.v2.ConfigGroup(
            f"{name}-objects", objs=objects.postgres(), opts=pulumi.ResourceOptions(parent=self, depends_on=[secret])
        )
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class ClusterAddonsArgs:
    layer: LayerSpec
    # EKS only: the Cluster Autoscaler's cluster and IRSA role.
    cluster_name: pulumi.Input[str] | None = None
    autoscaler_role_arn: pulumi.Input[str] | None = None

    def __post_init__(self) -> None:
        if self.layer.eks != (self.cluster_name is not None and self.autoscaler_role_arn is not None):
            raise ValueError(
                "ClusterAddonsArgs: the Cluster Autoscaler (EKS only) needs cluster_name and "
                "autoscaler_role_arn; kind has no node groups to resize"
            )


class ClusterAddons(pulumi.ComponentResource):
    """metrics-server (the HPAs' resource metrics) everywhere; on EKS the Cluster Autoscaler (IRSA role from the
    cluster component). Both pinned in versions.py."""

    def __init__(self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:k8s:ClusterAddons", name, None, opts)
        self.metrics_server = release(
            f"{name}-metrics-server", addons.metrics_server(args.layer), pulumi.ResourceOptions(parent=self)
        )
        if args.cluster_name is not None and args.autoscaler_role_arn is not None:
            spec = addons.cluster_autoscaler(args.cluster_name, args.autoscaler_role_arn, args.layer.region or "")
            release(f"{name}-cluster-autoscaler", spec, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


@dataclass(frozen=True, slots=True)
class AwsInputs:
    """What the AWS layer hands the Kubernetes layer on EKS (outputs of Registry, Databases, Edge, Cluster)."""

    repository_urls: Mapping[str, pulumi.Input[str]]
    database_hosts: Mapping[str, pulumi.Input[str]]
    database_users: Mapping[str, str]
    database_role_arns: Mapping[str, pulumi.Input[str]]
    target_group_arn: pulumi.Input[str]
    lb_controller_role_arn: pulumi.Input[str]
    autoscaler_role_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    volumes_kms_key_arn: pulumi.Input[str]
    # What must finish before the services start (the database role-bootstrap Jobs).
    database_ready: Sequence[pulumi.Resource] = ()

    def __post_init__(self) -> None:
        names = {s.name for s in catalog.SERVICES}
        db_names = {s.name for s in catalog.database_services()}
        if set(self.repository_urls) != names:
            raise ValueError("AwsInputs: a repository URL per catalog service is required")
        for label, mapping in (
            ("database_hosts", self.database_hosts),
            ("database_users", self.database_users),
            ("database_role_arns", self.database_role_arns),
        ):
            if set(mapping) != db_names:
                raise ValueError(f"AwsInputs: {label} must name exactly the services that own a database")


def _service_inputs(v: list[Any]) -> ServiceInputs:
    return ServiceInputs(image_repository=v[0], role_arn=v[1], db_host=v[2], db_user=v[3])


def deploy_kubernetes_layer(
    layer: LayerSpec, aws: AwsInputs | None = None, opts: pulumi.ResourceOptions | None = None
) -> dict[str, Any]:
    """Declare the whole Kubernetes layer for one stack; returns stack outputs. EKS needs ``aws``.

    ``opts.providers`` must hold the cluster's Kubernetes provider: every component gets ``opts`` (plus its
    ordering), and its children inherit both through ``parent=self``. Provider inheritance, per the pinned
    SDK (pulumi 3.272.0, sdk/python/lib/pulumi/resource.py): ``Resource.__init__`` starts a child's provider
    map from ``opts.parent._providers``, and ``_get_providers`` gives the child the entry of its own package
    (``kubernetes``); a child of another package (``random``) keeps its default provider. Ordering: a child's
    registration waits for its parent's URN (sdk/python/lib/pulumi/runtime/resource.py,
    ``_prepare_resource``), which waits for the component's ``depends_on``; on destroy the engine deletes a
    child before its parent and the parent before what it depends on (pulumi pkg/resource/graph
    ``DependenciesOf`` counts the parent as a dependency).
    """
    if layer.eks != (aws is not None):
        raise ValueError("deploy_kubernetes_layer: EKS needs the AWS inputs; kind must not get them")
    if opts is None or not opts.providers:
        raise ValueError(
            "deploy_kubernetes_layer: opts.providers must name the cluster's provider, never the "
            "ambient kubeconfig context"
        )

    def after(*depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(depends_on)))

    ns = Namespaces("namespaces", NamespacesArgs(layer), after())
    service_mesh = Mesh("mesh", MeshArgs(layer), after(ns.namespaces, ns.network_policies))
    base: list[pulumi.Resource] = [ns.namespaces, ns.network_policies, service_mesh.ready, service_mesh.policies]
    if aws is not None:
        base.append(ClusterStorage("storage", ClusterStorageArgs(aws.volumes_kms_key_arn), after()).storage_class)
    observability = Observability("observability", ObservabilityArgs(layer), after(*base))
    if layer.logging:
        Logging("logging", LoggingArgs(layer), after(*base))
    if aws is not None:
        edge = GatewayEdge(
            "edge",
            GatewayEdgeArgs(
                layer,
                target_group_arn=aws.target_group_arn,
                lb_controller_role_arn=aws.lb_controller_role_arn,
                cluster_name=aws.cluster_name,
                vpc_id=aws.vpc_id,
            ),
            after(*base),
        )
        ClusterAddons("cluster-addons", ClusterAddonsArgs(layer, aws.cluster_name, aws.autoscaler_role_arn), after())
        extra: dict[str, Mapping[str, pulumi.Input[str]]] = {}
        db_deps: list[pulumi.Resource] = list(aws.database_ready)
    else:
        edge = GatewayEdge("edge", GatewayEdgeArgs(layer), after(*base))
        ClusterAddons("cluster-addons", ClusterAddonsArgs(layer), after())
        pg = InClusterPostgres("postgres", after(*base))
        extra = {
            s.name: {"DATABASE_URL": pg.password.apply(functools.partial(objects.database_url, s.name))}
            for s in catalog.database_services()
        }
        db_deps = [pg.objects]
    secrets = ServiceSecrets(
        "service-secrets",
        ServiceSecretsArgs(catalog.SERVICES, extra, admin_email=layer.kubernetes.admin_email),
        after(*base),
    )
    for svc in catalog.SERVICES:
        if aws is not None:
            inputs: pulumi.Input[ServiceInputs] = pulumi.Output.all(
                aws.repository_urls[svc.name],
                aws.database_role_arns.get(svc.name, ""),
                aws.database_hosts.get(svc.name, ""),
                aws.database_users.get(svc.name, ""),
            ).apply(_service_inputs)
        else:
            inputs = ServiceInputs(image_repository=layer.image_repositories.get(svc.name, f"shop/{svc.name}"))
        ServiceDeployment(
            f"service-{svc.name}",
            ServiceDeploymentArgs(svc, layer, inputs),
            after(ns.network_policies, secrets.secrets[svc.name], observability.stack, edge.routes, *db_deps),
        )
    return {
        "servicesNamespace": k.SERVICES_NS,
        "grafanaPort": k.GRAFANA_PORT,
        "gatewayListenerPort": k.GATEWAY_LISTENER_PORT,
        "adminEmail": layer.kubernetes.admin_email,
        # `pulumi stack output adminPassword --show-secrets`; RandomPassword.result is secret.
        "adminPassword": secrets.admin_password,
    }
