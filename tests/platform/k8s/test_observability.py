"""Dashboards, alert rules, scraping, Alertmanager routing, the edge's routes and the log pipeline's values."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from shop_platform.config import ConfigError, parse_local_config
from shop_platform.k8s import addons, dashboards, objects
from shop_platform.k8s import spec as k

from services import catalog
from services.deploy.alerts import alert_rules

from .conftest import StackRender, layer_for, render_stack

_PROMQL_WORDS = {
    "by",
    "without",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "histogram_quantile",
    "le",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, or label names."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr))
    return {n for n in names if n.lower() not in _PROMQL_WORDS and not n[0].isdigit()}


def test_promql_name_extraction_sees_metrics_and_ignores_labels() -> None:
    """Guard for the dashboard test: a metric hidden in a nested expression is found, labels are not."""
    expr = 'histogram_quantile(0.99, sum by (le, service) (rate(foo_bucket{service="x"}[5m]))) / bar'
    assert promql_metric_names(expr) == {"foo_bucket", "bar"}


def test_dashboards_reference_only_metrics_the_services_export() -> None:
    """A panel on a metric nobody exports is an empty graph that looks like "all quiet". Every series a dashboard
    queries is defined in services/kit or the service's own package (read from their source)."""
    exported = dashboards.exported_series()
    for cm in objects.dashboard_configmaps():
        (text,) = cm["data"].values()
        board = json.loads(text)
        for panel in board["panels"]:
            for target in panel["targets"]:
                unknown = promql_metric_names(target["expr"]) - exported
                assert not unknown, f"{board['uid']} / {panel['title']}: {unknown}"


def test_each_service_has_red_panels_and_its_own_business_metrics() -> None:
    """Rate, errors and duration for every service; the pool panel only where a database exists; and every
    metric a service defines in its own package shows up on its dashboard."""
    for svc in catalog.SERVICES:
        board = dashboards.service_dashboard(svc)
        exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
        assert f'http_requests_total{{service="{svc.name}"' in exprs
        assert 'status=~"5.."' in exprs
        assert "http_request_duration_seconds_bucket" in exprs
        assert ("db_pool_connections" in exprs) is svc.owns_database
        for metric in (m for m in dashboards.exported_metrics() if m.package == svc.name):
            assert metric.series[0].removesuffix("_bucket") in exprs or metric.name in exprs, metric.name
    assert any(m.package == "orders" and m.name == "orders_total" for m in dashboards.exported_metrics())


def test_dashboards_are_configmaps_grafana_loads() -> None:
    """kube-prometheus-stack's Grafana sidecar loads ConfigMaps labelled grafana_dashboard=1 in monitoring."""
    cms = objects.dashboard_configmaps()
    assert len(cms) == len(catalog.SERVICES)
    values = addons.kube_prometheus_stack(layer_for("dev")).values["grafana"]
    assert values["service"]["port"] == 3002
    assert values["adminPassword"] is None, "null removes the chart's fixed default: Grafana generates one"
    for cm in cms:
        assert cm["metadata"]["namespace"] == values["sidecar"]["dashboards"]["searchNamespace"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == values["sidecar"]["dashboards"]["labelValue"]


def test_prometheus_rule_is_exactly_the_shared_alert_rules() -> None:
    """Alerts are defined once (services.deploy.alerts.alert_rules, unit-tested with promtool) and the
    cluster gets the very same groups, not a copy that drifts."""
    rule = objects.prometheus_rule()
    assert rule["spec"] == alert_rules()
    assert rule["metadata"]["namespace"] == k.MONITORING_NS


def test_scraped_series_carry_the_job_and_service_labels_the_alerts_select(stack_render: StackRender) -> None:
    """The alert rules select up{job="retail",service=...}: the ServiceMonitor takes job from the Service's
    app.kubernetes.io/part-of label (= retail), and the operator's `service` target label is the Service name,
    which is the catalog name."""
    objs = stack_render.rendered.objects
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    services = {
        o["metadata"]["name"]: o for o in objs if o["kind"] == "Service" and o["metadata"]["namespace"] == k.SERVICES_NS
    }
    assert {m["metadata"]["name"] for m in monitors} == {s.name for s in catalog.SERVICES}
    assert 'job="retail"' in alert_rules()["groups"][0]["rules"][0]["expr"]
    for m in monitors:
        svc = services[m["metadata"]["name"]]
        assert svc["metadata"]["labels"][m["spec"]["jobLabel"]] == "retail"
        assert m["spec"]["endpoints"][0]["path"] == "/metrics"
        assert _selects(m["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    prom = addons.kube_prometheus_stack(stack_render.layer).values["prometheus"]["prometheusSpec"]
    assert prom["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert prom["ruleSelectorNilUsesHelmValues"] is False


def _selects(match: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in match.items())


@pytest.mark.parametrize("url", [None, "https://hooks.example.com/alerts"])
def test_alertmanager_routes_everything_to_the_configured_receiver(url: str | None) -> None:
    """One receiver, configurable per stack (kubernetes.alertWebhookUrl); unset it is a receiver without
    integrations (alerts stay visible in Alertmanager), and the Watchdog heartbeat never pages."""
    layer = layer_for("dev")
    from dataclasses import replace

    cfg = addons.alertmanager_config(
        replace(layer, kubernetes=layer.kubernetes.model_copy(update={"alert_webhook_url": url}))
    )
    assert cfg["route"]["receiver"] == "platform"
    platform = next(r for r in cfg["receivers"] if r["name"] == "platform")
    assert platform.get("webhook_configs", [{}])[0].get("url") == url
    assert cfg["route"]["routes"][0]["receiver"] == "null"


def test_alert_webhook_must_be_https() -> None:
    """Alerts carry host and service names: never over plain HTTP."""
    with pytest.raises(ConfigError, match=r"kubernetes\.alertWebhookUrl: 'http://hooks.example.com' is not an https"):
        parse_local_config("local", {"kubernetes": {"alertWebhookUrl": "http://hooks.example.com"}})


def test_edge_routes_only_public_prefixes_and_never_internal() -> None:
    """The Gateway forwards /api/, /.well-known/ and exact /healthz to the gateway service, nothing else: the
    /internal routes between services are unreachable from outside by construction."""
    route = objects.http_route()
    matches = route["spec"]["rules"][0]["matches"]
    assert {(m["path"]["type"], m["path"]["value"]) for m in matches} == {
        ("PathPrefix", "/api/"),
        ("PathPrefix", "/.well-known/"),
        ("Exact", "/healthz"),
    }
    assert not any(m["path"]["value"].startswith("/internal") for m in matches)
    gw = catalog.get(catalog.GATEWAY)
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": gw.name, "port": gw.port}]
    for svc in catalog.SERVICES:  # every public prefix is covered by a match
        for prefix in svc.public_prefixes:
            assert any(prefix.startswith(m["path"]["value"]) for m in matches if m["path"]["type"] == "PathPrefix")
    gateway = objects.gateway(layer_for("local"))
    assert gateway["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["selector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": k.SERVICES_NS
    }


def test_kind_exposes_the_gateway_on_the_node_port_the_cluster_maps_to_the_host() -> None:
    """kind: NGINX listens on the NodePort charts/kind/cluster.yaml maps to localhost:80; EKS: ClusterIP, bound
    into the ALB's target group by a TargetGroupBinding without security-group management."""
    import yaml  # type: ignore[import-untyped]

    from tools.plan import REPO_ROOT

    local = addons.nginx_gateway_fabric(layer_for("local")).values["nginx"]["service"]
    assert local["type"] == "NodePort"
    node_port = local["nodePorts"][0]["port"]
    cluster = yaml.safe_load((REPO_ROOT / "charts" / "kind" / "cluster.yaml").read_text())
    mappings = [m for n in cluster["nodes"] for m in n.get("extraPortMappings", [])]
    assert {"containerPort": node_port, "hostPort": 80, "listenAddress": "127.0.0.1", "protocol": "TCP"} in mappings
    assert addons.nginx_gateway_fabric(layer_for("prod")).values["nginx"]["service"]["type"] == "ClusterIP"
    tgb = next(o for o in render_stack("prod").rendered.objects if o["kind"] == "TargetGroupBinding")
    assert "networking" not in tgb["spec"]
    assert tgb["spec"]["serviceRef"] == {"name": k.GATEWAY_DATA_PLANE_SERVICE, "port": 80}


def test_logs_flow_as_gelf_to_logstash_which_writes_an_index_per_service(stack_render: StackRender) -> None:
    """Fluent Bit (DaemonSet) ships container logs as GELF to the Logstash GELF service; Logstash writes
    shop-<service>-<day> indices; an ILM policy deletes them after the stack's retention."""
    fb = next(r for r in stack_render.rendered.releases if r["name"] == "fluent-bit")
    assert fb["values"]["kind"] == "DaemonSet"
    out = fb["values"]["config"]["outputs"]
    assert "Name                   gelf" in out
    assert f"logstash-ls-gelf.{k.LOGGING_NS}.svc" in out
    assert f"Port                   {k.GELF_PORT}" in out
    objs = {(o["kind"], o["metadata"]["name"]): o for o in stack_render.rendered.objects}
    ls = objs[("Logstash", "logstash")]
    assert ls["spec"]["services"][0]["name"] == "gelf"  # ECK names it logstash-ls-gelf
    pipeline = ls["spec"]["pipelines"][0]["config.string"]
    assert f"gelf {{ port => {k.GELF_PORT}" in pipeline
    assert 'index => "shop-%{[service]}-%{+YYYY.MM.dd}"' in pipeline
    es = objs[("Elasticsearch", "logs")]
    # Security is ECK's default; `xpack.security.*` in `config` is refused (esv1.UnsupportedSettings@v3.5.0).
    assert not any(key.startswith("xpack.security") for key in es["spec"]["nodeSets"][0]["config"])
    assert es["spec"]["http"]["tls"]["selfSignedCertificate"]["disabled"] is False
    assert es["spec"]["nodeSets"][0]["count"] == stack_render.layer.kubernetes.elasticsearch_nodes
    ilm = json.loads(objs[("ConfigMap", "shop-logs-ilm")]["data"]["policy.json"])
    assert ilm["policy"]["phases"]["delete"]["min_age"] == f"{stack_render.layer.kubernetes.log_retention_days}d"
    template = json.loads(objs[("ConfigMap", "shop-logs-ilm")]["data"]["template.json"])
    assert template["index_patterns"] == ["shop-*"]
    assert template["template"]["settings"]["index.lifecycle.name"] == "shop-logs"


def test_prod_keeps_a_replica_of_every_log_shard_so_losing_a_node_loses_no_logs(
    all_renders: dict[str, StackRender],
) -> None:
    """One replica wherever a second node can hold it; a single node cannot (a replica would never be assigned and
    the indices would stay yellow)."""
    for render in all_renders.values():
        objs = {(o["kind"], o["metadata"]["name"]): o for o in render.rendered.objects}
        template = json.loads(objs[("ConfigMap", "shop-logs-ilm")]["data"]["template.json"])
        replicas = template["template"]["settings"]["number_of_replicas"]
        assert replicas == (0 if render.layer.kubernetes.elasticsearch_nodes == 1 else 1), render.stack
    assert all_renders["prod"].layer.kubernetes.elasticsearch_nodes >= 3


def test_logstash_user_may_write_exactly_the_indices_its_pipeline_writes(stack_render: StackRender) -> None:
    """ECK's Logstash user has eck_logstash_user_role, which does not cover shop-* (roles.go@v3.5.0): the
    Elasticsearch resource loads a roles Secret redefining it for the pipeline's index pattern and nothing else."""
    import yaml

    objs = {(o["kind"], o["metadata"]["name"]): o for o in stack_render.rendered.objects}
    es = objs[("Elasticsearch", "logs")]
    secret_name = es["spec"]["auth"]["roles"][0]["secretName"]
    roles = yaml.safe_load(objs[("Secret", secret_name)]["stringData"]["roles.yml"])
    assert set(roles) == {"eck_logstash_user_role"}
    role = roles["eck_logstash_user_role"]
    assert role["indices"] == [{"names": ["shop-*"], "privileges": ["create_index", "index", "auto_configure"]}]
    assert not {"all", "manage", "manage_security"} & set(role["cluster"])
    pipeline = objs[("Logstash", "logstash")]["spec"]["pipelines"][0]["config.string"]
    index = pipeline.split('index => "', 1)[1].split('"', 1)[0]
    assert fnmatch.fnmatchcase(
        index.replace("%{[service]}", "orders").replace("%{+YYYY.MM.dd}", "2026.12.01"), role["indices"][0]["names"][0]
    )
    # Logstash neither installs templates nor ILM policies with this user: the ILM Job does.
    assert "manage_template => false" in pipeline
    assert "ilm_enabled => false" in pipeline


def test_prod_keeps_logs_on_a_three_node_cluster_longer_than_dev() -> None:
    """prod loses no logs with one node gone and keeps them 30 days by default; dev and kind stay small."""
    prod = layer_for("prod").kubernetes
    assert (prod.elasticsearch_nodes, prod.log_retention_days) == (3, 30)
    assert layer_for("dev").kubernetes.elasticsearch_nodes == 1
    assert layer_for("local").kubernetes.log_retention_days <= 7


def test_the_ilm_job_is_a_new_job_whenever_what_it_puts_changes() -> None:
    """A Job's spec is immutable and does not contain the ConfigMap's content: its name carries a digest of the
    policy and template, so a change is applied by a new Job, and an unchanged stack keeps its Job."""

    def job_name(stack: str) -> str:
        return str(next(o["metadata"]["name"] for o in objects.ilm_setup(layer_for(stack)) if o["kind"] == "Job"))

    assert job_name("dev") == job_name("dev")
    assert job_name("dev") != job_name("prod")  # replicas and retention differ
