"""Every Kubernetes object a stack would apply, from the recorded Pulumi graph (the offline plan's input).

- ``yaml.v2.ConfigGroup`` resources: their ``objs`` as recorded (secrets already redacted by the recorder);
- ``core/v1:Secret`` resources: metadata and type, data redacted (values never leave Pulumi's state);
- ``helm.v3.Release`` of ``charts/service``: rendered with helm-python-sdk and the values the program computed;
- other releases (remote charts) and remote files: listed with chart/version/repo and values, unrendered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv
from shop_platform.k8s.components import SERVICE_CHART_DIR

from tools.offline import Recording

CONFIG_GROUP = "kubernetes:yaml/v2:ConfigGroup"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
SECRET = "kubernetes:core/v1:Secret"  # noqa: S105 - a type token
RELEASE = "kubernetes:helm.sh/v3:Release"


# API groups served by Kubernetes itself; anything else is a custom resource whose schema comes with a CRD.
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "admissionregistration.k8s.io",
        "scheduling.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "node.k8s.io",
        "certificates.k8s.io",
    }
)


def is_custom_resource(obj: dict[str, Any]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group not in BUILTIN_GROUPS


# Custom resources the tests check against CRD-generated schemas (charts/tools/validate-crs.mjs); any other
# custom resource is listed by the plan as unchecked.
CRD_VALIDATED = frozenset(
    {
        ("gateway.networking.k8s.io/v1", "Gateway"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
    }
)


@dataclass
class Rendered:
    objects: list[dict[str, Any]] = field(default_factory=list)
    releases: list[dict[str, Any]] = field(default_factory=list)  # third-party: unrendered
    remote_files: list[str] = field(default_factory=list)
    chart_releases: list[str] = field(default_factory=list)

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o["kind"]] = counts.get(o["kind"], 0) + 1
        return dict(sorted(counts.items()))


def integral(value: Any) -> Any:
    """Pulumi's wire format carries every number as a double; Kubernetes fields (ports, UIDs, replicas) are
    integers, and the provider converts them by schema. Do the same for the manifests written here."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def render_service_chart(values: dict[str, Any], name: str, namespace: str) -> list[dict[str, Any]]:
    import helm_python

    chart = helm_python.Chart.load(str(SERVICE_CHART_DIR))
    try:
        files = chart.render(values, name=name, namespace=namespace)
    finally:
        chart.close()
    out: list[dict[str, Any]] = []
    for path in sorted(files):
        out.extend(d for d in yaml.safe_load_all(files[path]) if d)
    return out


def _is_service_chart(chart: str) -> bool:
    return Path(chart).name == SERVICE_CHART_DIR.name and not chart.startswith("oci://") and "/" in chart


def render_recording(recording: Recording) -> Rendered:
    rendered = Rendered()
    for r in recording.resources:
        if r.type == CONFIG_GROUP:
            rendered.objects.extend(integral(r.inputs.get("objs") or []))
        elif r.type == CONFIG_FILE:
            rendered.remote_files.append(str(r.inputs.get("file")))
        elif r.type == SECRET:
            meta = r.inputs.get("metadata") or {}
            rendered.objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": r.inputs.get("type", "Opaque"),
                    "metadata": {
                        **meta,
                        "annotations": {**(meta.get("annotations") or {}), "shop/offline-plan": "data redacted"},
                    },
                }
            )
        elif r.type == RELEASE:
            chart = str(r.inputs.get("chart"))
            if _is_service_chart(chart):
                name, ns = str(r.inputs["name"]), str(r.inputs["namespace"])
                rendered.objects.extend(render_service_chart(integral(r.inputs.get("values") or {}), name, ns))
                rendered.chart_releases.append(name)
            else:
                repo = (r.inputs.get("repositoryOpts") or {}).get("repo")
                rendered.releases.append(
                    {
                        "name": r.inputs.get("name"),
                        "chart": chart,
                        "version": r.inputs.get("version"),
                        "repo": repo,
                        "namespace": r.inputs.get("namespace"),
                        "values": integral(r.inputs.get("values") or {}),
                    }
                )
    return rendered


def write_manifests(rendered: Rendered, out: Path) -> Path:
    """``out/manifests/``: one YAML file per object (kind-namespace-name), releases.json, README-like index."""
    target = out / "manifests"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    for obj in rendered.objects:
        meta = obj.get("metadata") or {}
        fname = f"{obj['kind']}-{meta.get('namespace', 'cluster')}-{meta.get('name')}.yaml".lower()
        (target / fname).write_text(yaml.safe_dump(obj, sort_keys=False))
    (target / "releases.json").write_text(
        json.dumps(
            {
                "rendered_chart_releases": sorted(rendered.chart_releases),
                # Built-in kinds are validated for the stack's Kubernetes version and the CRD_VALIDATED custom kinds
                # against their CRDs' schemas (tests/platform/k8s); these have no schema in the repo and are unchecked.
                "unchecked_custom_resources": sorted(
                    f"{o['apiVersion']} {o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}"
                    for o in rendered.objects
                    if is_custom_resource(o) and (o["apiVersion"], o["kind"]) not in CRD_VALIDATED
                ),
                # Sorted: releases register concurrently, so their recorded order varies between runs.
                "unrendered_releases": sorted(rendered.releases, key=lambda r: (str(r["namespace"]), str(r["name"]))),
                "unrendered_remote_files": sorted(rendered.remote_files),
                "note": "remote charts and files cannot be fetched offline; their objects are not in this directory",
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    return target
