"""The kind path (`make kind-up`): the host port reaches NGINX, images load, the printed commands name real objects,
and the memory the local stack asks for is the figure charts/README.md states, with a light profile that fits
an 8 GB laptop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from shop_platform.config import ConfigError, parse_local_config
from shop_platform.k8s import addons, objects
from shop_platform.k8s import spec as k

from tools.plan import REPO_ROOT

from .conftest import LIGHT, light_raw, render_stack, stack_raw

KIND_DIR = REPO_ROOT / "charts" / "kind"
# nginx/nginx-gateway-fabric@v2.1.0 charts/nginx-gateway-fabric/values.yaml: nginx.service.externalTrafficPolicy
# defaults to Local, and the provisioner applies it to every non-ClusterIP data-plane Service
# (internal/controller/provisioner/objects.go buildNginxService).
NGF_DEFAULT_TRAFFIC_POLICY = "Local"


def _ngf_values(stack: str) -> dict[str, Any]:
    return next(r["values"] for r in render_stack(stack).rendered.releases if r["name"] == "nginx-gateway-fabric")


def _nodes_running_nginx(cluster: dict[str, Any], ngf: dict[str, Any]) -> set[int]:
    """Node indexes the NGINX data plane can be scheduled on. kind taints the control plane as soon as the cluster
    has a worker (kubernetes-sigs/kind pkg/cluster/internal/create/actions/kubeadminit/init.go removes the taint only
    for a single-node cluster); the data plane tolerates it only if the values add a toleration."""
    nodes = cluster["nodes"]
    tolerates = bool((ngf["nginx"].get("pod") or {}).get("tolerations"))
    workers = any(n["role"] == "worker" for n in nodes)
    return {i for i, n in enumerate(nodes) if n["role"] == "worker" or tolerates or not workers}


def test_the_host_port_reaches_nginx_whatever_node_the_data_plane_runs_on() -> None:
    """kind maps 127.0.0.1:80 to the NodePort on one node. With externalTrafficPolicy Local, kube-proxy on that node
    forwards only to an NGINX pod on the same node: if the data plane cannot run there, http://localhost hangs."""
    cluster = yaml.safe_load((KIND_DIR / "cluster.yaml").read_text())
    ngf = _ngf_values("local")
    service = ngf["nginx"]["service"]
    assert service["type"] == "NodePort"
    mapped = [
        i
        for i, n in enumerate(cluster["nodes"])
        for m in n.get("extraPortMappings", [])
        if m["containerPort"] == k.KIND_GATEWAY_NODE_PORT
    ]
    assert mapped, "some node must publish the gateway's NodePort on the host"
    assert {"port": k.KIND_GATEWAY_NODE_PORT, "listenerPort": k.GATEWAY_LISTENER_PORT} in service["nodePorts"]
    policy = service.get("externalTrafficPolicy", NGF_DEFAULT_TRAFFIC_POLICY)
    if policy == "Local":
        assert set(mapped) <= _nodes_running_nginx(cluster, ngf), (
            "externalTrafficPolicy Local needs NGINX on the node that publishes the host port"
        )
    else:
        assert policy == "Cluster"
    host = next(m for n in cluster["nodes"] for m in n.get("extraPortMappings", []))
    assert host["hostPort"] == 80
    assert host["listenAddress"] == "127.0.0.1", "loopback only: the laptop's LAN never sees the shop"


def test_images_are_built_without_attestations_kind_cannot_load() -> None:
    """Docker's containerd image store adds provenance/SBOM attestation manifests that `docker save` leaves out,
    and `kind load docker-image` then fails with "content digest ... not found" (kubernetes-sigs/kind#3795)."""
    script = (KIND_DIR / "up.sh").read_text()
    builds = [line for line in script.splitlines() if line.strip().startswith("docker build")]
    assert builds
    for line in builds:
        assert "--provenance=false" in line, line
        assert "--sbom=false" in line, line


def _grafana_fullname(values: dict[str, Any], release: str) -> str:
    """grafana 9.3.4 templates/_helpers.tpl "grafana.fullname": fullnameOverride, else <release>-grafana unless
    the release name already contains "grafana"."""
    grafana = values.get("grafana", {})
    if grafana.get("fullnameOverride"):
        return str(grafana["fullnameOverride"])[:63]
    name = grafana.get("nameOverride") or "grafana"
    return release if name in release else f"{release}-{name}"[:63]


def test_up_sh_prints_commands_for_objects_that_exist() -> None:
    """The Grafana Service and Secret are named by the grafana subchart, not by kube-prometheus-stack's
    fullnameOverride; every printed kubectl command names the kind context (never the current one)."""
    script = (KIND_DIR / "up.sh").read_text()
    kps = next(r for r in render_stack("local").rendered.releases if r["name"] == "kube-prometheus-stack")
    grafana = _grafana_fullname(kps["values"], kps["name"])
    assert f"svc/{grafana} " in script
    assert f"secret {grafana} " in script
    assert f"{k.GRAFANA_PORT}:{k.GRAFANA_PORT}" in script, "the Service port the values set"
    banner = script[script.index("cat <<MSG") :]
    for line in banner.splitlines():
        if "kubectl " in line:
            assert "--context kind-$CLUSTER" in line, line
    assert f"secret {objects.ES_NAME}-es-elastic-user" in script


# --- memory -------------------------------------------------------------------------------------------------

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
# kind nodes of charts/kind/cluster.yaml: DaemonSets run on every node they tolerate.
KIND_NODES = 3
KIND_WORKERS = 2
# Chart defaults the platform does not override (read at the pinned versions):
# metrics-server 3.13.0 values.yaml `resources.requests.memory: 200Mi`.
METRICS_SERVER_DEFAULT_MEMORY = "200Mi"


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)?", quantity)
    assert match, quantity
    return float(match.group(1)) * _UNITS.get(match.group(2) or "", 1) / 2**20


def _requests(resources: dict[str, Any] | None) -> float:
    return mebibytes(((resources or {}).get("requests") or {}).get("memory", "0Mi"))


def _pod_memory(pod: dict[str, Any]) -> float:
    return sum(_requests(c.get("resources")) for c in pod.get("containers", []))


def memory_requests(stack: str) -> dict[str, float]:
    """MiB of memory requested per component by everything the stack deploys in steady state: the rendered
    Deployments/StatefulSets (replicas = the HPA's minimum), the ECK resources' pod templates, and each remote
    release's pods from its values (or the chart's default where the values set none). Jobs finish and are left
    out."""
    rendered = render_stack(stack).rendered
    out: dict[str, float] = {}
    hpa_min = {
        o["spec"]["scaleTargetRef"]["name"]: o["spec"]["minReplicas"]
        for o in rendered.objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    for o in rendered.objects:
        name = o["metadata"]["name"]
        if o["kind"] in ("Deployment", "StatefulSet"):
            replicas = hpa_min.get(name, o["spec"].get("replicas", 1))
            out[f"{o['kind']}/{name}"] = replicas * _pod_memory(o["spec"]["template"]["spec"])
        elif o["kind"] in ("Kibana", "Logstash"):
            out[f"{o['kind']}/{name}"] = o["spec"]["count"] * _pod_memory(o["spec"]["podTemplate"]["spec"])
        elif o["kind"] == "Elasticsearch":
            out[f"Elasticsearch/{name}"] = sum(
                n["count"] * _pod_memory(n["podTemplate"]["spec"]) for n in o["spec"]["nodeSets"]
            )
    for release in rendered.releases:
        out.update(dict(_release_memory(release["name"], release["values"])))
    return out


def _release_memory(name: str, v: dict[str, Any]) -> Iterator[tuple[str, float]]:
    if name == "kube-prometheus-stack":
        yield "prometheus", _requests(v["prometheus"]["prometheusSpec"]["resources"])
        yield "alertmanager", _requests(v["alertmanager"]["alertmanagerSpec"]["resources"])
        yield "prometheus-operator", _requests(v["prometheusOperator"]["resources"])
        yield "kube-state-metrics", _requests(v["kube-state-metrics"]["resources"])
        yield "grafana", _requests(v["grafana"]["resources"])
        # node-exporter tolerates every taint (prometheus-node-exporter 4.47.3 values.yaml tolerations).
        yield "node-exporter", KIND_NODES * _requests(v["prometheus-node-exporter"]["resources"])
    elif name == "nginx-gateway-fabric":
        yield "nginx-gateway control plane", v["nginxGateway"]["replicas"] * _requests(v["nginxGateway"]["resources"])
        yield "nginx data plane", v["nginx"]["replicas"] * _requests(v["nginx"]["container"]["resources"])
    elif name == "eck-operator":
        yield "eck-operator", _requests(v["resources"])
    elif name == "fluent-bit":
        yield "fluent-bit", KIND_WORKERS * _requests(v["resources"])  # no tolerations: workers only
    elif name == "metrics-server":
        memory = (v.get("resources") or {}).get("requests", {}).get("memory", METRICS_SERVER_DEFAULT_MEMORY)
        yield "metrics-server", v["replicas"] * mebibytes(memory)
    elif name == "istio-base":
        return  # CRDs and the validating webhook configuration only: no pod
    elif name == "istiod":
        yield "istiod", v["replicaCount"] * _requests(v["resources"])
    elif name in ("istio-cni", "ztunnel"):
        # Both DaemonSets tolerate every NoSchedule/NoExecute taint (istio/istio@1.30.3 manifests/charts/istio-cni
        # and ztunnel values.yaml tolerations): one pod per node, the control plane included.
        yield name, KIND_NODES * _requests(v["resources"])
    else:
        raise AssertionError(f"release {name}: say how many pods it runs and what they request")


def _readme_figures() -> dict[str, float]:
    text = (REPO_ROOT / "charts" / "README.md").read_text()
    found = dict(re.findall(r"<!-- memory:(\w+) -->\s*\*\*([\d.]+) GiB\*\*", text))
    return {profile: float(gib) for profile, gib in found.items()}


@pytest.mark.parametrize(("stack", "profile"), [("local", "full"), (LIGHT, "light")])
def test_charts_readme_states_the_memory_the_local_stack_requests(stack: str, profile: str) -> None:
    """The sizing sentence is computed, not guessed: the sum of every memory request of the profile, to 0.1 GiB."""
    total = sum(memory_requests(stack).values()) / 1024
    print(f"\nkind {profile}: {total:.2f} GiB of memory requests over {len(memory_requests(stack))} components")
    assert _readme_figures().get(profile) == round(total, 1), f"charts/README.md should say {total:.1f} GiB"


def test_the_light_profile_fits_an_8_gb_laptop() -> None:
    """Docker Desktop gives its VM half of the host by default: 4 GiB on an 8 GB laptop. The kind control plane
    and three kubelets take about 1.5 GiB of that, so the light profile's pods must ask for at most 2.5 GiB - and
    it drops only the log pipeline."""
    light, full = memory_requests(LIGHT), memory_requests("local")
    assert sum(light.values()) <= 2.5 * 1024, light
    assert set(full) - set(light) == {
        "Elasticsearch/logs",
        "Kibana/kibana",
        "Logstash/logstash",
        "eck-operator",
        "fluent-bit",
    }
    names = {o["metadata"]["name"] for o in render_stack(LIGHT).rendered.objects if o["kind"] == "Namespace"}
    assert names.isdisjoint(objects.LOGGING_NAMESPACES)


def test_the_light_profile_is_kind_only_and_spelled_exactly() -> None:
    """`kind.profile` takes full or light; anything else is refused with the key named. EKS has no light profile."""
    assert parse_local_config("local", light_raw()).kind.profile == "light"
    raw, _ = stack_raw("local")
    with pytest.raises(ConfigError, match=r"kind\.profile"):
        parse_local_config("local", {**raw, "kind": {**raw["kind"], "profile": "tiny"}})
    from dataclasses import replace

    from .conftest import layer_for

    with pytest.raises(ValueError, match="log pipeline"):
        replace(layer_for("dev"), logging=False)
    assert addons.nginx_gateway_fabric(layer_for(LIGHT)).values["nginx"]["service"]["type"] == "NodePort"
