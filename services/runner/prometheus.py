"""Prometheus for the one-machine stack: scrape config and alert rules built from the catalog.

The files are written as JSON (a subset of YAML, which Prometheus reads) so no YAML library is needed.
The same rule builder feeds the cluster's PrometheusRule, so alerts are defined once.
Debian's prometheus lacks Kubernetes service discovery, so this mode uses static targets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from services import catalog
from services.runner.layout import Layout

INSTALL_HINT = "install Prometheus (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus)"


def find_prometheus() -> tuple[str, str] | None:
    """``PROMETHEUS`` names the binary when it is somewhere unusual (promtool beside it); a missing path
    means "none"."""
    if "PROMETHEUS" in os.environ:
        binary = Path(os.environ["PROMETHEUS"])
        promtool = binary.with_name("promtool")
        return (str(binary), str(promtool)) if binary.is_file() and promtool.is_file() else None
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    return (prom, tool) if prom and tool else None


def scrape_config(targets: list[tuple[str, str]], rule_files: list[str], *, interval: str = "5s") -> dict[str, Any]:
    """``targets`` are (service, host:port) pairs, one per process (the gateway has several replicas).
    Each target carries a ``service`` label."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": "retail",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [address], "labels": {"service": name}} for name, address in sorted(targets)
                ],
            },
            {"job_name": "prometheus", "static_configs": [{"targets": ["127.0.0.1:9090"]}]},
        ],
    }


def alert_rules(*, error_ratio: float = 0.05, p99_seconds: float = 1.0,
                no_orders_window: str = "30m") -> dict[str, Any]:
    """Alerts every deployment gets. Thresholds are arguments so stacks can tune them."""
    services = "|".join(s.name for s in catalog.SERVICES)
    return {
        "groups": [{
            "name": "retail-platform",
            "rules": [
                {
                    "alert": "ServiceDown",
                    "expr": f'up{{job="retail",service=~"{services}"}} == 0',
                    "for": "1m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "{{ $labels.service }} is not answering /metrics",
                                    "description": "Prometheus could not scrape {{ $labels.instance }} for 1m."},
                },
                {
                    "alert": "HighErrorRate",
                    "expr": ('sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))'
                             ' / sum by (service) (rate(http_requests_total[5m])) > ' + repr(error_ratio)),
                    "for": "5m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "{{ $labels.service }}: more than "
                                               f"{error_ratio:.0%} of requests fail with 5xx"},
                },
                {
                    "alert": "HighLatency",
                    "expr": ("histogram_quantile(0.99, sum by (service, le) "
                             f"(rate(http_request_duration_seconds_bucket[5m]))) > {p99_seconds!r}"),
                    "for": "10m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": f"{{{{ $labels.service }}}}: p99 latency above {p99_seconds}s"},
                },
                {
                    "alert": "NoOrdersConfirmed",
                    # Only when customers are trying: a quiet night is not an incident.
                    "expr": (f'sum(increase(orders_total{{status="confirmed"}}[{no_orders_window}])) == 0'
                             f' and sum(increase(http_requests_total{{service="orders",method="POST",'
                             f'route="/api/v1/orders"}}[{no_orders_window}])) > 0'),
                    "for": "5m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": f"Orders are placed but none confirmed in {no_orders_window}"},
                },
            ],
        }]
    }


def write(layout: Layout, targets: list[tuple[str, str]]) -> Path:
    base = layout.shared / "prometheus"  # Prometheus may run as a user of its own, which must reach it
    (base / "data").mkdir(parents=True, exist_ok=True)
    rules = base / "rules.yml"
    rules.write_text(json.dumps(alert_rules(), indent=2))
    config = scrape_config(targets, [str(rules)])
    config["scrape_configs"][1]["static_configs"][0]["targets"] = [f"127.0.0.1:{layout.prometheus}"]
    conf = base / "prometheus.yml"
    conf.write_text(json.dumps(config, indent=2))
    return conf


def check(promtool: str, conf: Path) -> None:
    """``promtool check config`` also checks the rule files the config names."""
    result = subprocess.run([promtool, "check", "config", str(conf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"promtool rejected {conf}:\n{result.stdout}{result.stderr}")


def command(prometheus: str, conf: Path, layout: Layout) -> list[str]:
    return [prometheus, f"--config.file={conf}", f"--storage.tsdb.path={conf.parent / 'data'}",
            f"--web.listen-address=127.0.0.1:{layout.prometheus}", "--storage.tsdb.retention.time=2d",
            "--log.format=json"]
