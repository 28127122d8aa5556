"""The local composition (kind): the Kubernetes layer alone, against the kind cluster's own context.

No AWS: an in-cluster PostgreSQL (one database per service) replaces RDS, NGINX Gateway Fabric listens on the
host's port 80 (charts/kind/cluster.yaml), images come from `kind load` (charts/kind/up.sh).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from shop_platform.config import LocalStackConfig
from shop_platform.k8s.components import deploy_kubernetes_layer
from shop_platform.k8s.stackconfig import layer_spec_for_local


def build(cfg: Any) -> Mapping[str, Any]:
    """Declare the whole kind platform for the local stack and return its outputs."""
    if not isinstance(cfg, LocalStackConfig):
        raise TypeError(f"stacks.local.build needs a LocalStackConfig, got {type(cfg).__name__}")
    # The kind context by name: never whatever kubectl happens to point at (a production cluster, say).
    provider = k8s.Provider("kind", context=f"kind-{cfg.kind.cluster_name}")
    outputs = deploy_kubernetes_layer(layer_spec_for_local(cfg), opts=pulumi.ResourceOptions(providers=[provider]))
    return {
        **outputs,
        "apiUrl": pulumi.Output.from_input("http://localhost/api/v1"),
        "kubeContext": f"kind-{cfg.kind.cluster_name}",
    }


__all__ = ["build"]
