"""Security-group rules as data: the allowed flows are pure values, declared by one function.

The flows are the platform's whole network policy at the AWS layer:

    internet ──80/443──► alb ──gateway port──► cluster ──5432──► database (one group per service)

Keeping them as data lets a test read the policy without Pulumi (nothing but the ALB is reachable from the
internet; only the cluster reaches databases), and keeps every component declaring rules the same way:
one ``vpc.SecurityGroupIngressRule`` / ``EgressRule`` per flow, never inline rules on a group (inline and
standalone rules on one group fight each other on every update).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import pulumi
import pulumi_aws as aws

Peer = Literal["internet", "alb", "cluster", "database"]
INTERNET_CIDR: Final = "0.0.0.0/0"
POSTGRES_PORT: Final = 5432
# Groups this platform creates with no default egress: a flow out of them needs its own egress rule. The
# cluster's group is made by EKS and keeps its allow-all egress (nodes pull images, reach AWS APIs).
RESTRICTED_EGRESS: Final[frozenset[Peer]] = frozenset({"alb"})


@dataclass(frozen=True, slots=True)
class Flow:
    """One allowed TCP flow into ``target`` from ``source`` on ``port``."""

    source: Peer
    target: Peer
    port: int
    description: str

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"flow {self.source}->{self.target}: port {self.port} is not a TCP port")
        if self.source == self.target:
            raise ValueError(f"flow {self.source}->{self.target}: a group does not need a rule to itself")

    @property
    def suffix(self) -> str:
        return f"{self.target}-from-{self.source}-{self.port}"


def edge_flows(gateway_port: int) -> tuple[Flow, ...]:
    """The internet reaches the ALB on 80 (redirect only) and 443; the ALB reaches NGINX Gateway pods."""
    return (
        Flow("internet", "alb", 80, "HTTP, answered with a redirect to HTTPS"),
        Flow("internet", "alb", 443, "HTTPS"),
        Flow("alb", "cluster", gateway_port, "ALB to NGINX Gateway pods"),
    )


def database_flows() -> tuple[Flow, ...]:
    """Only the cluster (nodes and pods share its group) reaches a service's database."""
    return (Flow("cluster", "database", POSTGRES_PORT, "PostgreSQL from EKS nodes and pods"),)


def declare(
    name: str,
    flows: tuple[Flow, ...],
    groups: Mapping[Peer, pulumi.Input[str]],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> list[pulumi.Resource]:
    """Declare the rules for ``flows``; ``groups`` maps each non-internet peer to its security-group id."""
    opts = pulumi.ResourceOptions(parent=parent)
    created: list[pulumi.Resource] = []
    for flow in flows:
        source = None if flow.source == "internet" else groups[flow.source]
        created.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{flow.suffix}",
                security_group_id=groups[flow.target],
                ip_protocol="tcp",
                from_port=flow.port,
                to_port=flow.port,
                description=flow.description,
                cidr_ipv4=INTERNET_CIDR if source is None else None,
                referenced_security_group_id=source,
                tags=dict(tags),
                opts=opts,
            )
        )
        if source is not None and flow.source in RESTRICTED_EGRESS:
            created.append(
                aws.vpc.SecurityGroupEgressRule(
                    f"{name}-{flow.source}-to-{flow.target}-{flow.port}",
                    security_group_id=source,
                    ip_protocol="tcp",
                    from_port=flow.port,
                    to_port=flow.port,
                    description=flow.description,
                    referenced_security_group_id=groups[flow.target],
                    tags=dict(tags),
                    opts=opts,
                )
            )
    return created
