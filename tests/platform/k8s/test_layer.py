"""The Pulumi side of the Kubernetes layer: component shape, pinned releases, keys, args validation, kind files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from shop_platform import versions
from shop_platform.config import ConfigError, parse_stack_config
from shop_platform.k8s import spec as k
from shop_platform.k8s.components import (
    GatewayEdgeArgs,
    ServiceSecretsArgs,
    _secret_data,
    deploy_kubernetes_layer,
)
from shop_platform.k8s.keys import keyring_from_seeds, pem_from_seed
from shop_platform.k8s.spec import LayerSpec

from services import catalog
from services.kit import keys
from tools.plan import REPO_ROOT

from .conftest import StackRender, layer_for, placeholder_aws, stack_raw

RELEASE = "kubernetes:helm.sh/v3:Release"


def test_components_are_typed_shop_k8s_and_every_resource_has_a_parent(stack_render: StackRender) -> None:
    """Component shape (shop:k8s:<Type>, children parented): `pulumi preview` then shows one tree per concern
    and a component's deletion takes its children with it."""
    rec = stack_render.recording
    components = [r for r in rec.resources if not r.custom]
    types = {r.type for r in components if r.type.startswith("shop:")}
    assert types >= {
        "shop:k8s:Namespaces",
        "shop:k8s:ServiceSecrets",
        "shop:k8s:ServiceDeployment",
        "shop:k8s:GatewayEdge",
        "shop:k8s:Observability",
        "shop:k8s:Logging",
    }
    assert ("shop:k8s:InClusterPostgres" in types) is (not stack_render.layer.eks)
    assert "shop:k8s:ClusterAddons" in types
    urns = {r.urn for r in rec.resources}
    orphans = [
        r.name
        for r in rec.resources
        if r.custom and r.parent not in urns and not r.type.startswith("pulumi:providers:")
    ]
    assert orphans == []


def test_every_kubernetes_resource_goes_through_the_stacks_cluster_provider(stack_render: StackRender) -> None:
    """The components get the provider once (``opts.providers``) and their children inherit it through
    ``parent=self``: a resource that fell back to the default provider would be applied to whatever cluster the
    ambient kubeconfig names. Children of another package (random) keep their own default provider."""
    rec = stack_render.recording
    provider = rec.one("pulumi:providers:kubernetes")
    kube = [r for r in rec.resources if r.type.startswith("kubernetes:")]
    assert len(kube) > 20
    # A provider reference is "<provider URN>::<provider id>".
    assert [r.name for r in kube if (r.provider or "").rsplit("::", 1)[0] != provider.urn] == []
    assert [r.name for r in rec.resources if r.type.startswith("random:") and r.provider is not None] == []


def test_every_release_is_pinned_to_a_version_from_versions_py(stack_render: StackRender) -> None:
    """Third-party charts are pinned (chart, version, repository) in one module: an upgrade is one reviewed diff,
    and nothing floats to "latest" on the next `pulumi up`."""
    pins = {v for name, v in vars(versions).items() if name.endswith("_CHART") and isinstance(v, str)}
    for r in stack_render.recording.of_type(RELEASE):
        if r.inputs["chart"].endswith("charts/service"):
            assert not r.inputs["chart"].startswith("/"), "no machine-specific absolute path in state"
            continue
        assert r.inputs.get("version") in pins, r.inputs["name"]
        assert r.inputs.get("atomic") is True, "a failed upgrade rolls back instead of leaving a half release"
        assert r.inputs.get("allowNullValues") is True, "a null must remove a chart default, not be dropped"
    names = {r.inputs["name"] for r in stack_render.recording.of_type(RELEASE)}
    assert "metrics-server" in names, "the HPAs need the resource metrics API"
    assert ("cluster-autoscaler" in names) is stack_render.layer.eks


def test_service_secrets_hold_only_what_each_service_needs() -> None:
    """Each service's Secret has its own private key only if it calls /internal routes (never the gateway's),
    and its callers' public keys (the catalog allow-list); only users gets the token signing keys and only
    payments the card fingerprint key; kind adds DATABASE_URL."""
    seeds = {s.name: pem_seed(i) for i, s in enumerate(catalog.SERVICES)}
    ring = keyring_from_seeds(pem_seed(99), seeds, {name: f"{i:02x}" * 32 for i, name in enumerate(catalog.SECRETS)})
    for svc in catalog.SERVICES:
        data = _secret_data(svc.name, [ring, {"DATABASE_URL": "postgresql://x"} if svc.owns_database else {}])
        if svc.name in catalog.service_key_holders():
            assert keys.public_pem(data["SERVICE_PRIVATE_KEY"]) == keys.public_pem(ring.service_keys[svc.name])
        else:
            assert "SERVICE_PRIVATE_KEY" not in data, svc.name
        import json

        assert set(json.loads(data["SERVICE_PUBLIC_KEYS"])) == set(catalog.callers_of(svc.name))
        assert ("JWT_SIGNING_KEYS" in data) is (svc.name == "users")
        assert ("CARD_FINGERPRINT_KEY" in data) is (svc.name == "payments")
        assert ("SESSION_KEY" in data) is (svc.name == "storefront")
        assert ("DATABASE_URL" in data) is svc.owns_database


def test_the_token_issuer_bootstraps_an_administrator_with_a_generated_password(stack_render: StackRender) -> None:
    """A fresh cluster needs one administrator to manage the catalogue: the users service creates it at start-up
    from ADMIN_EMAIL/ADMIN_PASSWORD files in its Secret (only its Secret); the password is generated by Pulumi
    and leaves the stack only as a secret output."""
    from services.users.rules import check_email

    assert catalog.token_issuer().name == "users"
    check_email(stack_render.layer.kubernetes.admin_email)  # the users service would refuse anything else at start-up
    rec = stack_render.recording
    assert rec.named("service-secrets-admin-password").inputs["length"] >= 10
    assert rec.outputs["adminPassword"] == "[secret]"
    assert rec.outputs["adminEmail"] == stack_render.layer.kubernetes.admin_email


def test_every_kubernetes_secret_value_is_a_pulumi_secret(stack_render: StackRender) -> None:
    """Keys, passwords and database URLs are encrypted in Pulumi state and redacted in the plan: the recorded
    inputs of every Secret carry the redaction marker, never a value."""
    secrets = stack_render.recording.of_type("kubernetes:core/v1:Secret")
    assert len(secrets) == len(catalog.SERVICES) + (0 if stack_render.layer.eks else 1)
    for r in secrets:
        data = r.inputs["stringData"]
        assert data == "[secret]" or set(data.values()) == {"[secret]"}, r.name


def pem_seed(i: int) -> str:
    import base64

    return base64.b64encode(bytes([i]) * 32).decode()


def test_keys_derive_deterministically_from_their_seeds() -> None:
    """Seeds live (secret) in state and never change unless replaced, so every `pulumi up` yields the same keys:
    a redeploy never invalidates issued tokens or service credentials by accident."""
    assert pem_from_seed(pem_seed(1)) == pem_from_seed(pem_seed(1))
    assert pem_from_seed(pem_seed(1)) != pem_from_seed(pem_seed(2))
    keys.load_private(pem_from_seed(pem_seed(3)))  # a valid Ed25519 key for the kit
    with pytest.raises(ValueError, match="32 bytes"):
        pem_from_seed(pem_seed(1)[:8])


def test_layer_refuses_mismatched_targets() -> None:
    """EKS without the AWS layer's outputs (or kind with them) is a wiring mistake caught before any resource."""
    with pytest.raises(ValueError, match="EKS needs the AWS inputs"):
        deploy_kubernetes_layer(layer_for("dev"))
    with pytest.raises(ValueError, match="kind must not get them"):
        deploy_kubernetes_layer(layer_for("local"), placeholder_aws("dev"))
    with pytest.raises(ValueError, match=r"opts\.providers must name the cluster's provider"):
        deploy_kubernetes_layer(layer_for("local"))
    with pytest.raises(ValueError, match="TargetGroupBinding"):
        GatewayEdgeArgs(layer_for("prod"))
    with pytest.raises(ValueError, match="unknown services"):
        ServiceSecretsArgs(catalog.SERVICES, extra={"nope": {}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "kind", "pod_cidr": None}, "pod_cidr"),
        ({"database_cidrs": ()}, "EKS needs"),
    ],
)
def test_layer_spec_refuses_unsafe_combinations(change: dict[str, object], message: str) -> None:
    """Secure defaults are enforced in the args object, not discovered at apply time."""
    from dataclasses import replace

    with pytest.raises(ValueError, match=message):
        replace(layer_for("prod"), **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kubernetes", "message"),
    [
        ({"imageTag": "latest"}, "never 'latest'"),
        ({"elasticsearchNodes": 2}, "odd quorum"),
        ({"elasticsearchNodes": 1}, "prod needs >= 3"),
    ],
)
def test_the_kubernetes_section_the_layer_takes_refuses_unsafe_values(
    kubernetes: dict[str, object], message: str
) -> None:
    """The layer takes the validated ``kubernetes`` section: a floating tag or a broken quorum stops at config."""
    raw, region = stack_raw("prod")
    with pytest.raises(ConfigError, match=message):
        parse_stack_config("prod", {**raw, "kubernetes": {**raw.get("kubernetes", {}), **kubernetes}}, region)


def test_kind_files_are_valid_and_agree_with_the_stack() -> None:
    """The kind config, scripts and YAML lint clean; the pod subnet the gateway trusts is the cluster's."""
    import yaml  # type: ignore[import-untyped]

    lint = subprocess.run(
        [
            str(Path(sys.executable).parent / "yamllint"),
            "-c",
            "charts/.yamllint.yaml",
            "charts",
            *[p.name for p in REPO_ROOT.glob("Pulumi.*.yaml")],
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    for script in ("up.sh", "down.sh"):
        assert subprocess.run(["bash", "-n", str(REPO_ROOT / "charts" / "kind" / script)]).returncode == 0
    cluster = yaml.safe_load((REPO_ROOT / "charts" / "kind" / "cluster.yaml").read_text())
    layer: LayerSpec = layer_for("local")
    assert cluster["networking"]["podSubnet"] == layer.pod_cidr == layer.trusted_proxy_cidr
    assert "image" not in str(cluster["nodes"]), "the node image is pinned once, in versions.KIND_NODE_IMAGE"
    assert versions.KIND_NODE_IMAGE.split(":v")[1].startswith(layer.kube_version + ".")
    zones = {n.get("labels", {}).get("topology.kubernetes.io/zone") for n in cluster["nodes"] if n["role"] == "worker"}
    assert len(zones) == 2, "two zones so the services' zone spread is exercised locally"
    assert cluster["nodes"][0]["extraPortMappings"][0]["containerPort"] == k.KIND_GATEWAY_NODE_PORT


def test_a_gateway_rollout_never_drops_the_albs_targets(stack_render: StackRender) -> None:
    """On EKS the NGINX namespace carries the load balancer controller's readiness-gate label (a new pod is ready
    only once the ALB sees it healthy); everywhere the data plane has a PDB and its Deployment waits
    minReadySeconds, set through the Gateway's own NginxProxy (the chart has no value for it)."""
    from shop_platform.k8s import objects

    objs = stack_render.rendered.objects
    ns = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == k.GATEWAY_NS)
    gate = ns["metadata"]["labels"].get("elbv2.k8s.aws/pod-readiness-gate-inject")
    assert gate == ("enabled" if stack_render.layer.eks else None)
    pdb = next(o for o in objs if o["kind"] == "PodDisruptionBudget" and o["metadata"]["namespace"] == k.GATEWAY_NS)
    assert pdb["spec"]["selector"]["matchLabels"] == dict(k.GATEWAY_POD_LABELS)
    assert pdb["spec"]["maxUnavailable"] == 1
    gateway = next(o for o in objs if o["kind"] == "Gateway")
    ref = gateway["spec"]["infrastructure"]["parametersRef"]
    proxy = next(o for o in objs if o["kind"] == "NginxProxy" and o["metadata"]["name"] == ref["name"])
    assert proxy["metadata"]["namespace"] == gateway["metadata"]["namespace"], "a Gateway's NginxProxy is local"
    patches = proxy["spec"]["kubernetes"]["deployment"]["patches"]
    assert any(p["value"]["spec"]["minReadySeconds"] == objects.GATEWAY_MIN_READY_SECONDS > 0 for p in patches)
    if stack_render.layer.eks:
        binding = next(o for o in objs if o["kind"] == "TargetGroupBinding")
        assert binding["metadata"]["namespace"] == k.GATEWAY_NS, "the gate applies to pods the binding targets"


def test_kube_prometheus_stack_scrapes_no_target_the_cluster_does_not_expose(stack_render: StackRender) -> None:
    """EKS runs etcd, the scheduler and the controller manager out of reach, kind (kubeadm) binds them and kube-proxy's
    metrics to 127.0.0.1: scraping them only fires TargetDown and ...Down alerts from minute one, on every stack."""
    kps = next(r for r in stack_render.rendered.releases if r["name"] == "kube-prometheus-stack")["values"]
    for target in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert kps[target] == {"enabled": False}, target
    assert "kubeApiServer" not in kps, "the API server and the kubelets are reachable on both targets: keep them"
    assert kps["grafana"]["sidecar"]["datasources"]["alertmanager"]["enabled"] is False


def test_alertmanager_reaches_only_its_https_webhook_outside_the_cluster() -> None:
    """With a webhook receiver, Alertmanager may open HTTPS to the outside, never to the VPC or the pods; without one,
    it has no egress but DNS."""
    from dataclasses import replace

    from shop_platform.k8s import netpol

    layer = layer_for("dev")
    with_hook = replace(
        layer, kubernetes=layer.kubernetes.model_copy(update={"alert_webhook_url": "https://hooks.example.com/alerts"})
    )
    rule = next(p for p in netpol.monitoring(with_hook) if p["metadata"]["name"] == "alertmanager-webhook")
    block = rule["spec"]["egress"][0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert layer.vpc_cidr in block["except"]
    assert rule["spec"]["egress"][0]["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert all(p["metadata"]["name"] != "alertmanager-webhook" for p in netpol.monitoring(layer))
