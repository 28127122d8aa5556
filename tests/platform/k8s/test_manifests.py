"""Every object each stack would apply: schema-valid for its Kubernetes version, PSS restricted where labelled,
and checkov-clean (zero failed checks; skips only from shop_platform.k8s.checkov with their reasons)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from shop_platform.k8s import objects
from shop_platform.k8s.checkov import CHECKOV_SKIPS, skips_for

from tools.plan import REPO_ROOT

from .conftest import STACKS, StackRender, dump, render_stack

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
# Custom resources: kubernetes-validate has no schema for them; test_custom_resources.py checks the Gateway API
# and Prometheus Operator ones against CRD-generated schemas, the plan lists the rest as unchecked.
CUSTOM_KINDS = {
    "Gateway",
    "HTTPRoute",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "Elasticsearch",
    "Kibana",
    "Logstash",
    "NginxProxy",
    "TargetGroupBinding",
    "PeerAuthentication",
    "AuthorizationPolicy",
}
CLUSTER_SCOPED = {"Namespace", "StorageClass"}
POD_KINDS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
}


def test_every_stack_renders_every_service_and_add_on(stack_render: StackRender) -> None:
    """The plan would be meaningless if a service or an add-on silently dropped out of a stack."""
    from services import catalog

    r = stack_render.rendered
    assert sorted(r.chart_releases) == sorted(s.name for s in catalog.SERVICES)
    names = {rel["name"] for rel in r.releases}
    assert {"nginx-gateway-fabric", "kube-prometheus-stack", "eck-operator", "fluent-bit"} <= names
    assert ("aws-load-balancer-controller" in names) is stack_render.layer.eks
    counts = r.kinds()
    assert counts["Deployment"] == len(catalog.SERVICES)
    # One per service, the Logstash role for Elasticsearch, and kind's PostgreSQL password.
    assert counts["Secret"] == len(catalog.SERVICES) + 1 + (0 if stack_render.layer.eks else 1)


def test_builtin_objects_pass_strict_schema_validation_for_the_stacks_cluster_version(
    stack_render: StackRender,
) -> None:
    """kubernetes-validate in strict mode (unknown fields are errors) against the version the stack targets: a
    typo or a field the cluster does not know fails here, not at `pulumi up`."""
    checked, unchecked, errors = 0, Counter[str](), []
    for obj in stack_render.rendered.objects:
        try:
            kubernetes_validate.validate(obj, stack_render.layer.kube_version, strict=True)
            checked += 1
        except kubernetes_validate.SchemaNotFoundError:
            unchecked[obj["kind"]] += 1
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {exc}")
    assert errors == []
    assert set(unchecked) <= CUSTOM_KINDS, f"a built-in kind had no schema: {set(unchecked) - CUSTOM_KINDS}"
    from tools.render import is_custom_resource

    listed = Counter(o["kind"] for o in stack_render.rendered.objects if is_custom_resource(o))
    assert listed == unchecked, "the plan's unchecked list is exactly what could not be validated"
    assert checked >= 60


def test_strict_validation_can_fail() -> None:
    """Guard for the test above: an unknown field in a Deployment is reported, so a pass means something."""
    dep = next(o for o in render_stack("dev").rendered.objects if o["kind"] == "Deployment")
    bad = json.loads(json.dumps(dep))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.33", strict=True)


def test_every_namespaced_object_names_an_existing_namespace(stack_render: StackRender) -> None:
    """Nothing lands in `default` (CKV_K8S_21), and every namespace used is one the layer creates and labels."""
    created = {o["metadata"]["name"] for o in stack_render.rendered.objects if o["kind"] == "Namespace"}
    for obj in stack_render.rendered.objects:
        if obj["kind"] in CLUSTER_SCOPED:
            continue
        ns = obj["metadata"].get("namespace")
        assert ns in created, f"{obj['kind']}/{obj['metadata']['name']} in {ns!r}"
    releases_ns = {rel["namespace"] for rel in stack_render.rendered.releases}
    assert releases_ns <= created | {"kube-system"}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    node = obj
    for key in POD_KINDS[obj["kind"]]:
        node = node[key]
    return node


def _restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" checks (kubernetes/pod-security-admission policy/check_*.go)."""
    problems = []
    allowed_volumes = {
        "configMap",
        "downwardAPI",
        "emptyDir",
        "projected",
        "secret",
        "csi",
        "persistentVolumeClaim",
        "ephemeral",
        "image",
    }
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            problems.append(f"volume {v['name']} uses {kinds - allowed_volumes}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            problems.append(key)
    psc = pod.get("securityContext", {})
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{c['name']}: runAsNonRoot")
        if 0 in (sc.get("runAsUser"), psc.get("runAsUser")):
            problems.append(f"{c['name']}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{c['name']}: seccomp {seccomp}")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{c['name']}: capabilities")
        if sc.get("privileged") or any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{c['name']}: privileged/hostPort")
        if sc.get("readOnlyRootFilesystem") is not True:  # not PSS, but our rule (CKV_K8S_22)
            problems.append(f"{c['name']}: readOnlyRootFilesystem")
    return problems


def test_pods_in_restricted_namespaces_meet_the_restricted_standard(stack_render: StackRender) -> None:
    """A namespace labelled enforce=restricted rejects non-conforming pods at admission: check every pod spec the
    layer renders before the cluster does (and the read-only root filesystem on top)."""
    restricted = {name for name, (level, _) in objects.POD_SECURITY.items() if level == "restricted"}
    seen = 0
    for obj in stack_render.rendered.objects:
        if obj["kind"] in POD_KINDS:
            assert obj["metadata"]["namespace"] in restricted, obj["metadata"]["name"]
            assert _restricted_violations(_pod_spec(obj)) == [], obj["metadata"]["name"]
            seen += 1
    for obj in stack_render.rendered.objects:  # ECK pod templates are restricted as well
        if obj["kind"] in {"Kibana", "Logstash"}:
            assert _restricted_violations(obj["spec"]["podTemplate"]["spec"]) == []
        if obj["kind"] == "Elasticsearch":
            for node_set in obj["spec"]["nodeSets"]:
                assert _restricted_violations(node_set["podTemplate"]["spec"]) == []
                assert node_set["config"]["node.store.allow_mmap"] is False  # no privileged sysctl init container
    assert seen >= 7


def test_namespaces_are_labelled_and_every_exception_says_why() -> None:
    """enforce=restricted where the workloads allow; elsewhere warn/audit stay restricted and a reason is kept on
    the namespace itself, so `kubectl describe ns` explains it."""
    for obj in render_stack("local").rendered.objects:
        if obj["kind"] != "Namespace":
            continue
        labels = obj["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"
        assert obj["metadata"]["annotations"]["shop/pod-security-reason"]
    levels = {n: lvl for n, (lvl, _) in objects.POD_SECURITY.items()}
    assert levels["shop"] == "restricted"
    assert levels["logging"] == "restricted"
    assert levels["data"] == "restricted"


@pytest.fixture(scope="session")
def checkov_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One checkov run over the three stacks' manifests (about 7 s), results split by stack."""
    assert CHECKOV.exists(), "checkov lives in its own venv: run `make checkov` (make test does)"
    root = tmp_path_factory.mktemp("manifests")
    for stack in STACKS:
        dump(render_stack(stack).rendered, root / stack)
    proc = subprocess.run(
        [str(CHECKOV), "--framework", "kubernetes", "--skip-download", "-d", str(root), "-o", "json", "--compact"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["summary"]["parsing_errors"] == 0
    out: dict[str, dict[str, Any]] = {}
    for stack in STACKS:

        def mine(checks: list[dict[str, Any]], stack: str = stack) -> list[dict[str, Any]]:
            return [c for c in checks if c["file_path"].startswith(f"/{stack}/")]

        failed = mine(report["results"].get("failed_checks", []))
        skips = skips_for(stack)
        out[stack] = {
            "passed": len(mine(report["results"].get("passed_checks", []))),
            "failed": [c for c in failed if c["check_id"] not in skips],
            "skipped": Counter(c["check_id"] for c in failed if c["check_id"] in skips),
            "files": len(list((root / stack / "manifests").glob("*.yaml"))),
        }
    return out


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_kubernetes_finds_no_failed_check(stack: str, checkov_results: dict[str, dict[str, Any]]) -> None:
    """Zero failed checks across every rendered manifest; the only accepted findings are the skips listed (with
    their reasons) in shop_platform.k8s.checkov, scoped to the stacks they apply to."""
    result = checkov_results[stack]
    assert [(c["check_id"], c["resource"]) for c in result["failed"]] == []
    assert result["passed"] > 500
    print(
        f"\ncheckov {stack}: {result['files']} manifests, passed {result['passed']}, failed 0, "
        f"skipped {sum(result['skipped'].values())} {dict(result['skipped'])}"
    )


def test_every_checkov_skip_has_a_reason_and_is_still_needed(checkov_results: dict[str, dict[str, Any]]) -> None:
    """A skip without a reason, or one that no longer matches any finding, is removed instead of lingering."""
    for check, (scopes, reason) in CHECKOV_SKIPS.items():
        assert len(reason) > 40, check
        assert any(checkov_results[s]["skipped"][check] for s in scopes), f"{check} no longer needed"


def test_manifests_directory_lists_what_it_could_not_render(tmp_path: Path) -> None:
    """Remote charts cannot be rendered offline: the plan says so and lists each with chart, version and values."""
    rendered = render_stack("dev").rendered
    dump(rendered, tmp_path)
    index = json.loads((tmp_path / "manifests" / "releases.json").read_text())
    assert {r["name"] for r in index["unrendered_releases"]} >= {"kube-prometheus-stack", "fluent-bit"}
    for r in index["unrendered_releases"]:
        assert r["chart"]
        assert r["version"]
        assert isinstance(r["values"], dict)
    assert index["unrendered_remote_files"][0].endswith("/standard-install.yaml")
    unchecked = {line.split()[1] for line in index["unchecked_custom_resources"]}
    assert unchecked == {
        "Elasticsearch",
        "Kibana",
        "Logstash",
        "NginxProxy",
        "TargetGroupBinding",
        "PeerAuthentication",
        "AuthorizationPolicy",
    }, "the kinds with no schema"
    assert len(list((tmp_path / "manifests").glob("*.yaml"))) == len(rendered.objects)


def test_offline_plan_writes_the_manifests_directory(tmp_path: Path) -> None:
    """`python -m tools.plan --stack local` writes manifests/ next to resources.json: the reviewable
    list of every object `pulumi up` would apply."""
    from tools.plan import run_plan, write

    write(run_plan("local"), tmp_path)
    written = {p.name for p in (tmp_path / "manifests").glob("*.yaml")}
    assert "deployment-shop-gateway.yaml" in written
    assert "statefulset-data-postgres.yaml" in written
    assert len(written) == len(render_stack("local").rendered.objects)


# --- pods the pinned upstreams create: the namespace level must admit them, and be no looser than they need ---

# Pod Security "baseline" (kubernetes/pod-security-admission policy/check_*.go): the sysctls it allows.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}


def _baseline_violations(pod: dict[str, Any]) -> list[str]:
    problems = [key for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    problems += [f"volume {v['name']}: hostPath" for v in pod.get("volumes", []) if "hostPath" in v]
    problems += [
        f"sysctl {s['name']}"
        for s in (pod.get("securityContext") or {}).get("sysctls", [])
        if s["name"] not in SAFE_SYSCTLS
    ]
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        if set((sc.get("capabilities") or {}).get("add", [])) - BASELINE_CAPABILITIES:
            problems.append(f"{c['name']}: capabilities")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{c['name']}: hostPort")
    return problems


def _level_violations(pod: dict[str, Any], level: str) -> list[str]:
    if level == "privileged":
        return []
    if level == "baseline":
        return _baseline_violations(pod)
    restricted = [p for p in _restricted_violations(pod) if not p.endswith("readOnlyRootFilesystem")]
    return _baseline_violations(pod) + restricted


def _patch_init_containers(pod: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    """The part of a strategic-merge Deployment patch that concerns init containers (merged by name, their
    securityContext field by field), as NGF's provisioner applies NginxProxy patches."""
    out: dict[str, Any] = json.loads(json.dumps(pod))
    for patch in patches:
        template = patch["value"].get("spec", {}).get("template", {}).get("spec", {})
        for change in template.get("initContainers", []):
            target = next(c for c in out["initContainers"] if c["name"] == change["name"])
            target["securityContext"] = {**target.get("securityContext", {}), **change.get("securityContext", {})}
    return out


def third_party_pods(stack: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, what, pod spec) for the pods remote charts and their operators create, as their pinned sources
    build them (security-relevant fields only) with the values and patches this platform passes."""
    from shop_platform.k8s import addons
    from shop_platform.k8s import spec as k

    layer = render_stack(stack).layer
    drop_all = {
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsUser": 101,
        "runAsGroup": 1001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # nginx/nginx-gateway-fabric@v2.1.0 internal/controller/provisioner/objects.go buildNginxPodTemplateSpec: the
    # init container has no allowPrivilegeEscalation; the Gateway's NginxProxy patches the Deployment.
    data_plane = {
        "securityContext": {
            "fsGroup": 1001,
            "runAsNonRoot": True,
            "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}],
        },
        "initContainers": [{"name": "init", "securityContext": dict(drop_all)}],
        "containers": [{"name": "nginx", "securityContext": {**drop_all, "allowPrivilegeEscalation": False}}],
        "volumes": [
            {"name": "token", "projected": {}},
            {"name": "nginx-agent", "emptyDir": {}},
            {"name": "nginx-agent-config", "configMap": {}},
            {"name": "nginx-agent-tls", "secret": {}},
        ],
    }
    patches = objects.gateway_proxy(layer)["spec"]["kubernetes"]["deployment"]["patches"]
    # charts/nginx-gateway-fabric templates/deployment.yaml and certs-job.yaml at v2.1.0: fixed contexts.
    chart_pod = {
        "securityContext": {"fsGroup": 1001, "runAsNonRoot": True},
        "containers": [{"name": "main", "securityContext": {**drop_all, "allowPrivilegeEscalation": False}}],
        "volumes": [{"name": "nginx-agent-tls", "secret": {}}],
    }
    pods: list[tuple[str, str, dict[str, Any]]] = [
        (k.GATEWAY_NS, "NGINX data plane", _patch_init_containers(data_plane, patches)),
        (k.GATEWAY_NS, "NGINX Gateway Fabric control plane and certificate Job", chart_pod),
        # prometheus-community/helm-charts@prometheus-node-exporter-4.47.3 values.yaml hostNetwork, hostPID,
        # hostRootFsMount (templates/daemonset.yaml mounts /proc, /sys and / through hostPath).
        (
            k.MONITORING_NS,
            "node-exporter",
            {
                "hostNetwork": True,
                "hostPID": True,
                "containers": [{"name": "node-exporter"}],
                "volumes": [
                    {"name": n, "hostPath": {"path": p}} for n, p in (("proc", "/proc"), ("sys", "/sys"), ("root", "/"))
                ],
            },
        ),
        # istio/istio@1.30.3 manifests/charts/ztunnel/templates/daemonset.yaml: root with NET_ADMIN, SYS_ADMIN and
        # NET_RAW (it enters pods' network namespaces) and the /var/run/ztunnel hostPath socket directory.
        (
            k.ISTIO_NS,
            "ztunnel",
            {
                "containers": [
                    {
                        "name": "istio-proxy",
                        "securityContext": {
                            "allowPrivilegeEscalation": True,
                            "privileged": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": False,
                            "runAsUser": 0,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"]},
                        },
                    }
                ],
                "volumes": [{"name": "cni-ztunnel-sock-dir", "hostPath": {"path": "/var/run/ztunnel"}}],
            },
        ),
        # manifests/charts/istio-cni/templates/daemonset.yaml: the node agent on the host network, writing the CNI
        # plugin and its configuration into the node's directories.
        (
            k.ISTIO_NS,
            "istio-cni node agent",
            {
                "hostNetwork": True,
                "containers": [{"name": "install-cni"}],
                "volumes": [
                    {"name": n, "hostPath": {"path": p}}
                    for n, p in (
                        ("cni-bin-dir", "/opt/cni/bin"),
                        ("cni-net-dir", "/etc/cni/net.d"),
                        ("cni-netns-dir", "/var/run/netns"),
                        ("cni-ztunnel-sock-dir", "/var/run/ztunnel"),
                    )
                ],
            },
        ),
    ]
    if layer.logging:
        eck = addons.eck_operator(layer).values
        fluent = addons.fluent_bit(layer).values
        pods += [
            # elastic/cloud-on-k8s@v3.5.0 deploy/eck-operator/templates/statefulset.yaml: the values' contexts,
            # no init container, a ConfigMap and Secrets.
            (
                k.ECK_NS,
                "ECK operator",
                {
                    "securityContext": eck["podSecurityContext"],
                    "containers": [{"name": "manager", "securityContext": eck["securityContext"]}],
                    "volumes": [{"name": "conf", "configMap": {}}, {"name": "cert", "secret": {}}],
                },
            ),
            # fluent/helm-charts@fluent-bit-0.50.0 values.yaml daemonSetVolumes (hostPath /var/log, ...) plus ours.
            (
                k.LOGGING_AGENT_NS,
                "Fluent Bit",
                {
                    "containers": [{"name": "fluent-bit", "securityContext": fluent["securityContext"]}],
                    "volumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}, *fluent["extraVolumes"]],
                },
            ),
        ]
    return pods


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_enforces_the_strictest_level_its_third_party_pods_pass(stack: str) -> None:
    """The pods remote charts create are invisible to the rendered manifests. Their namespace must admit them
    (a stricter level would leave a Deployment with no pods and `pulumi up` green), and a looser level needs a pod
    that fails the stricter one: ECK's operator and NGINX Gateway Fabric (with the Gateway's patch) pass restricted,
    node-exporter, Fluent Bit, ztunnel and istio-cni only privileged (host paths, host network, capabilities)."""
    order = ["restricted", "baseline", "privileged"]
    by_ns: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for ns, what, pod in third_party_pods(stack):
        by_ns.setdefault(ns, []).append((what, pod))
    for ns, pods in by_ns.items():
        level = objects.POD_SECURITY[ns][0]
        for what, pod in pods:
            assert _level_violations(pod, level) == [], f"{what} is rejected by {level} in {ns}"
        if level != "restricted":
            stricter = order[order.index(level) - 1]
            assert any(_level_violations(pod, stricter) for _, pod in pods), f"{ns} could enforce {stricter}"


def test_without_the_gateways_patch_nginx_would_be_rejected_by_its_namespace() -> None:
    """Guard for the test above: the unpatched data plane fails restricted (so the patch is what admits it)."""
    pod = next(p for ns, what, p in third_party_pods("local") if what == "NGINX data plane")
    unpatched = json.loads(json.dumps(pod))
    del unpatched["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"]
    assert _level_violations(unpatched, "restricted") == ["init: allowPrivilegeEscalation"]
    assert _level_violations(pod, "restricted") == []
