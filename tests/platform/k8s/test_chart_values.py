"""Every value the platform passes to a third-party chart is a key that chart reads, at the pinned version.

Helm ignores unknown keys silently, so a misspelt or invented key is a decision that never takes effect. The key
lists in ``chart_keys/`` are derived from each chart's ``values.yaml`` at the pinned version (the header of each
file names the upstream repository, tag, commit and file; subcharts are listed under their alias). A few maps are
handed whole to a template (``toYaml``) although their default is not empty: those are listed below with the
template that does it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shop_platform import versions
from shop_platform.k8s import addons

from .conftest import STACKS, render_stack

KEYS_DIR = Path(__file__).parent / "chart_keys"
# Maps a chart renders whole with `toYaml`, whose default is a non-empty example: any key of the target type goes.
PASSED_THROUGH: dict[str, dict[str, str]] = {
    "kube-prometheus-stack": {
        # templates/alertmanager/secret.yaml: `toYaml .Values.alertmanager.config` (Alertmanager's own config).
        "alertmanager.config": "Alertmanager configuration file",
        # templates/prometheus/prometheus.yaml: `toYaml .Values.prometheus.prometheusSpec.securityContext`.
        "prometheus.prometheusSpec.securityContext": "PodSecurityContext",
    },
    "metrics-server": {
        # templates/deployment.yaml: `toYaml .Values.securityContext` into the container.
        "securityContext": "SecurityContext",
    },
    "eck-operator": {
        # templates/statefulset.yaml: `toYaml .Values.podSecurityContext` / `.Values.securityContext`.
        "podSecurityContext": "PodSecurityContext",
        "securityContext": "SecurityContext",
    },
    "fluent-bit": {
        # templates/_pod.tpl: `toYaml .Values.securityContext`.
        "securityContext": "SecurityContext",
    },
    "cluster-autoscaler": {
        # templates/deployment.yaml: `range $key, $value := .Values.extraArgs` -> `--<key>=<value>`.
        "extraArgs": "command-line flags",
    },
}
# Keys a template reads although values.yaml does not mention them.
READ_BY_TEMPLATES: dict[str, dict[str, str]] = {
    "kube-prometheus-stack": {
        # grafana 9.3.4 templates/_helpers.tpl "grafana.fullname": `if .Values.fullnameOverride`.
        "grafana.fullnameOverride": "the Grafana objects' name",
    },
    # istio/istio@1.30.3 manifests/charts/*/templates/zzz_profile.yaml: `coalesce $.Values.profile
    # $.Values.global.profile` picks files/profile-<name>.yaml, merged under the user's values.
    **{chart: {"profile": "the chart's files/profile-<profile>.yaml"} for chart in ("istiod", "cni", "ztunnel")},
}


def chart_keys(chart: str, version: str) -> set[str]:
    path = KEYS_DIR / f"{chart}-{version}.txt"
    assert path.exists(), f"no key list for {chart} {version}: derive {path.name} from the chart's values.yaml"
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def value_paths(values: Any, prefix: str = "") -> Iterator[tuple[str, bool]]:
    """(path, is_leaf) for every key the values set; lists and scalars are leaves."""
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, not isinstance(value, dict) or not value
            if isinstance(value, dict):
                yield from value_paths(value, path)


def unknown_keys(chart: str, version: str, values: dict[str, Any]) -> list[str]:
    known = chart_keys(chart, version) | set(READ_BY_TEMPLATES.get(chart, {}))
    open_maps = {k.removesuffix(".*") for k in known if k.endswith(".*")} | set(PASSED_THROUGH.get(chart, {}))
    unknown = []
    for path, _leaf in value_paths(values):
        parts = path.split(".")
        under_open_map = any(".".join(parts[:i]) in open_maps for i in range(1, len(parts)))
        if path not in known and path not in open_maps and not under_open_map:
            unknown.append(path)
    return unknown


def _releases() -> Iterator[tuple[str, dict[str, Any]]]:
    for stack in STACKS:
        for release in render_stack(stack).rendered.releases:
            yield stack, release


@pytest.mark.parametrize("stack", STACKS)
def test_every_value_passed_to_a_third_party_chart_is_a_key_of_that_chart(stack: str) -> None:
    """NGINX Gateway Fabric has no nginxGateway.securityContext and metrics-server no containerSecurityContext:
    such a key would be dropped without a word. Every path must be in the pinned chart's values (or below a map
    the chart passes through)."""
    checked = 0
    for release in render_stack(stack).rendered.releases:
        assert unknown_keys(release["chart"].rsplit("/", 1)[-1], release["version"], release["values"]) == [], release[
            "name"
        ]
        checked += 1
    assert checked >= 5


def test_the_key_check_notices_an_invented_key() -> None:
    """Guard: the check fails on a key the chart does not have, at the top, nested, and under a known map."""
    spec = addons.metrics_server(render_stack("local").layer)
    assert unknown_keys("metrics-server", spec.version, spec.values) == []
    assert unknown_keys("metrics-server", spec.version, {**spec.values, "containerSecurityContext": {}}) == [
        "containerSecurityContext"
    ]
    assert unknown_keys("metrics-server", spec.version, {"podDisruptionBudget": {"enabeld": True}}) == [
        "podDisruptionBudget.enabeld"
    ]
    kps = addons.kube_prometheus_stack(render_stack("local").layer)
    assert unknown_keys("kube-prometheus-stack", kps.version, {"grafana": {"sidecar": {"dashbords": {}}}}) == [
        "grafana.sidecar.dashbords"
    ]


def test_every_pinned_chart_has_a_key_list_and_no_list_is_stale() -> None:
    """The key lists follow the pins: bumping a chart in versions.py without deriving its key list fails here."""
    pinned = {f"{r['chart'].rsplit('/', 1)[-1]}-{r['version']}" for _, r in _releases()}
    listed = {p.stem for p in KEYS_DIR.glob("*.txt")}
    assert pinned == listed
    assert f"nginx-gateway-fabric-{versions.NGINX_GATEWAY_FABRIC_CHART}" in listed
    for path in KEYS_DIR.glob("*.txt"):
        header = path.read_text().splitlines()[1]
        assert header.startswith("#   github.com/"), f"{path.name} cites its source"
        assert "values.yaml" in header, f"{path.name} cites its source"
