"""Grafana dashboards per catalog service, built only from metrics the services really export.

``exported_metrics`` reads the metric definitions from the services' source (the same text a reviewer
greps), so a dashboard can never reference a metric that no service exports: RED panels come from the
kit's HTTP metrics, the pool panel from the kit's pool collector (services that own a database), and
business panels from the metrics defined in the service's own package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from services import catalog
from services.catalog import Service

SERVICES_DIR = Path(catalog.__file__).resolve().parent
MetricType = Literal["counter", "gauge", "histogram"]

_STR = r'"(?:[^"\\]|\\.)*"'
_DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|GaugeMetricFamily)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\""
    rf"(?:\s*,\s*{_STR}(?:\s*{_STR})*(?:\s*,\s*\[([^\]]*)\])?)?"
)
_TYPES: dict[str, MetricType] = {
    "Counter": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "Histogram": "histogram",
}


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # as defined in code (a counter's exported series adds "_total")
    type: MetricType
    labels: tuple[str, ...]
    package: str  # "kit" or the service's package

    @property
    def series(self) -> tuple[str, ...]:
        """The series names Prometheus stores for this metric."""
        if self.type == "counter":
            base = self.name.removesuffix("_total")
            return (f"{base}_total",)
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


@cache
def exported_metrics() -> tuple[Metric, ...]:
    """Every metric defined in services/kit and services/<name>/ for the catalog's services."""
    found: list[Metric] = []
    for package in ("kit", *(s.name for s in catalog.SERVICES)):
        for path in sorted((SERVICES_DIR / package).glob("*.py")):
            for kind, name, labels in _DEFINITION.findall(path.read_text()):
                found.append(Metric(name, _TYPES[kind], tuple(re.findall(r'"([^"]+)"', labels or "")), package))
    return tuple(found)


def exported_series() -> frozenset[str]:
    return frozenset(s for m in exported_metrics() for s in m.series)


def _panel(pid: int, title: str, exprs: list[tuple[str, str]], unit: str, x: int, y: int) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend} for i, (expr, legend) in enumerate(exprs)
        ],
    }


def _business_expr(m: Metric, svc: Service) -> tuple[str, str, str]:
    by = f" by ({', '.join(m.labels)})" if m.labels else ""
    legend = " ".join(f"{{{{{label}}}}}" for label in m.labels) or m.name
    sel = f'{{service="{svc.name}"}}'
    if m.type == "counter":
        return f"sum{by} (rate({m.series[0]}{sel}[5m]))", legend, "ops"
    if m.type == "histogram":
        return (f"histogram_quantile(0.99, sum by (le) (rate({m.name}_bucket{sel}[5m])))", "p99", "s")
    return f"max{by} ({m.name}{sel})", legend, "short"


def service_dashboard(svc: Service) -> dict[str, Any]:
    """RED (rate, errors, duration), DB pool (if the service owns a database), business metrics."""
    sel = f'service="{svc.name}"'
    panels = [
        _panel(
            1,
            "Requests per second by route",
            [(f"sum by (route) (rate(http_requests_total{{{sel}}}[5m]))", "{{route}}")],
            "reqps",
            0,
            0,
        ),
        _panel(
            2,
            "Error ratio (5xx)",
            [
                (
                    f'sum(rate(http_requests_total{{{sel},status=~"5.."}}[5m])) / '
                    f"sum(rate(http_requests_total{{{sel}}}[5m]))",
                    "5xx ratio",
                )
            ],
            "percentunit",
            12,
            0,
        ),
        _panel(
            3,
            "Latency p50 / p99",
            [
                (
                    f"histogram_quantile({q}, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.99)
            ],
            "s",
            0,
            8,
        ),
    ]
    if svc.owns_database:
        panels.append(
            _panel(
                4,
                "Database pool",
                [
                    (f"max(db_pool_connections{{{sel}}})", "open"),
                    (f"max(db_pool_idle_connections{{{sel}}})", "idle"),
                    (f"max(db_pool_max_connections{{{sel}}})", "max"),
                ],
                "short",
                12,
                8,
            )
        )
    own = [m for m in exported_metrics() if m.package == svc.name]
    for i, m in enumerate(own):
        expr, legend, unit = _business_expr(m, svc)
        panels.append(_panel(10 + i, m.name, [(expr, legend)], unit, 12 * (i % 2), 16 + 8 * (i // 2)))
    return {
        "uid": f"shop-{svc.name}",
        "title": f"shop / {svc.name}",
        "tags": ["shop", svc.name],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
        "description": svc.description,
    }


def dashboard_json(svc: Service) -> str:
    return json.dumps(service_dashboard(svc), indent=1, sort_keys=True)
