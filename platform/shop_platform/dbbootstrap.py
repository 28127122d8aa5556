"""Database role bootstrap on EKS: one Kubernetes Job per database creates the service's own role.

Design (why a Job in its own namespace):
- the master credential must reach exactly one place: the Job's service account ``<service>-db-bootstrap``
  is the only IRSA principal whose policy reads that database's master secret (``shop_platform.databases``);
  the services' namespace has no such account, so no service pod can assume that role;
- the Job runs the service's own image (``python -m services.kit.dbroles``: the SQL tested against a real
  PostgreSQL), so it needs no extra image and sees the same migrations directory;
- its namespace enforces Pod Security "restricted" and a default-deny NetworkPolicy admitting DNS, the
  database subnets on 5432 and HTTPS inside the VPC (the STS and Secrets Manager interface endpoints);
- pulumi-kubernetes waits for a Job to complete, so the services' releases (which depend on these Jobs)
  start only once their role exists; ``activeDeadlineSeconds`` bounds that wait with a clear failure. A new
  image replaces the Job (its spec is immutable), so the idempotent bootstrap runs again on every deploy.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_kubernetes as k8s

from services.catalog import Service
from services.kit.dbroles import app_role, migration_extensions
from shop_platform.databases import BOOTSTRAP_NAMESPACE as NAMESPACE
from shop_platform.databases import POSTGRES_PORT, bootstrap_service_account
from shop_platform.k8s import spec as k
from shop_platform.network import endpoint_cidrs

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
DEADLINE_SECONDS = 300
UID = 10001  # the image's user (services/Dockerfile)


def job_spec(svc: Service, *, image: str, host: str, master_secret_arn: str, region: str) -> dict[str, Any]:
    """The Job's spec: a restricted pod running the bootstrap once, retried a few times, bounded in time."""
    extensions = migration_extensions(SERVICES_DIR / svc.name / "migrations")
    env = {
        "DB_HOST": host,
        "DB_PORT": str(POSTGRES_PORT),
        "DB_NAME": svc.database_name,
        "DB_SCHEMA": svc.name,
        "DB_APP_ROLE": app_role(svc.name),
        "DB_EXTENSIONS": ",".join(extensions),
        "DB_MASTER_SECRET_ARN": master_secret_arn,
        "AWS_REGION": region,
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "DB_SSL_ROOT_CERT": k.RDS_CA_BUNDLE,
    }
    return {
        "backoffLimit": 3,
        "activeDeadlineSeconds": DEADLINE_SECONDS,
        "template": {
            "metadata": {"labels": {"app.kubernetes.io/name": "db-bootstrap", "shop/service": svc.name}},
            "spec": {
                "serviceAccountName": bootstrap_service_account(svc),
                "automountServiceAccountToken": False,  # IRSA's webhook mounts its own projected token
                "restartPolicy": "Never",
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": UID,
                    "runAsGroup": UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "bootstrap",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-m", "services.kit.dbroles"],
                        "env": [{"name": n, "value": v} for n, v in env.items()],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "96Mi"},
                            "limits": {"cpu": "500m", "memory": "256Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
            },
        },
    }


def _job_spec(svc: Service, region: str, v: list[str]) -> dict[str, Any]:
    return job_spec(svc, image=v[0], host=v[1], master_secret_arn=v[2], region=region)


def network_policy(database_cidrs: Sequence[str], vpc_cidr: str) -> dict[str, Any]:
    """Nothing in; out only DNS, the database subnets on 5432 and HTTPS to the interface endpoints' subnets."""
    return {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": dict(k.DNS_POD_LABELS)},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            },
            {
                "to": [{"ipBlock": {"cidr": c}} for c in database_cidrs],
                "ports": [{"protocol": "TCP", "port": POSTGRES_PORT}],
            },
            {
                "to": [{"ipBlock": {"cidr": c}} for c in endpoint_cidrs(vpc_cidr)],
                "ports": [{"protocol": "TCP", "port": 443}],
            },
        ],
    }


# Outside the service mesh (shop_platform.k8s.objects.MESH_ENROLMENT), and why: ztunnel would pass this traffic
# through untouched, there being no mesh workload at either destination.
MESH_EXEMPT_REASON = (
    "its Jobs reach only RDS (TLS with the server verified, forced by the parameter group) and the "
    "STS endpoint, both outside the mesh: enrolment would change nothing on the wire"
)


@dataclass(frozen=True, slots=True)
class DatabaseBootstrapArgs:
    services: tuple[Service, ...]
    region: str
    vpc_cidr: str
    database_cidrs: tuple[str, ...]
    images: Mapping[str, pulumi.Input[str]]
    hosts: Mapping[str, pulumi.Input[str]]
    master_secret_arns: Mapping[str, pulumi.Input[str]]
    bootstrap_role_arns: Mapping[str, pulumi.Input[str]]

    def __post_init__(self) -> None:
        names = {s.name for s in self.services}
        for label, mapping in (
            ("images", self.images),
            ("hosts", self.hosts),
            ("master_secret_arns", self.master_secret_arns),
            ("bootstrap_role_arns", self.bootstrap_role_arns),
        ):
            if set(mapping) != names:
                raise ValueError(f"DatabaseBootstrapArgs: {label} must name exactly the database services")


class DatabaseBootstrap(pulumi.ComponentResource):
    """The namespace, its policy and one service account + Job per database; ``jobs`` is what services
    must wait for."""

    jobs: list[pulumi.Resource]

    def __init__(self, name: str, args: DatabaseBootstrapArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shop:databases:DatabaseBootstrap", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)  # the cluster's provider comes with opts.providers
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
                "annotations": {"shop/mesh-exempt-reason": MESH_EXEMPT_REASON},
            },
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-policy",
            metadata={"name": "db-bootstrap", "namespace": NAMESPACE},
            # Plain dicts: the same shape as the rendered manifests; the typed Args would only restate them.
            spec=cast(Any, network_policy(args.database_cidrs, args.vpc_cidr)),
            opts=in_ns,
        )
        self.jobs = []
        for svc in args.services:
            account = k8s.core.v1.ServiceAccount(
                f"{name}-{svc.name}-sa",
                metadata={
                    "name": bootstrap_service_account(svc),
                    "namespace": NAMESPACE,
                    "annotations": {"eks.amazonaws.com/role-arn": args.bootstrap_role_arns[svc.name]},
                },
                automount_service_account_token=False,
                opts=in_ns,
            )
            spec = pulumi.Output.all(
                args.images[svc.name], args.hosts[svc.name], args.master_secret_arns[svc.name]
            ).apply(functools.partial(_job_spec, svc, args.region))
            self.jobs.append(
                k8s.batch.v1.Job(
                    f"{name}-{svc.name}",
                    metadata={"namespace": NAMESPACE, "labels": {"shop/service": svc.name}},
                    spec=cast(Any, spec),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[ns, policy, account]),
                )
            )
        self.register_outputs({"namespace": NAMESPACE})
