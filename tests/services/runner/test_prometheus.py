"""Alert rules and scrape config: checked by promtool, and each alert unit-tested on synthetic series."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from services import catalog
from services.deploy.alerts import alert_rules
from services.runner import prometheus
from services.runner.layout import Layout
from services.runner.tls import LocalCA

PROMTOOL = shutil.which("promtool")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool missing: `make deps` installs the prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True)


def test_generated_config_and_rules_pass_promtool_check(tmp_path: Path) -> None:
    """A config Prometheus rejects would leave the stack without metrics; check it the way Prometheus will."""
    layout = Layout(tmp_path)
    ca = LocalCA(layout.tls, layout.identities)
    identity = ca.issue("prometheus")
    conf = prometheus.write(layout, [(s.name, f"127.0.0.1:{s.port}") for s in catalog.SERVICES], (identity, ca.ca_file))
    result = _promtool("check", "config", str(conf))
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(conf.read_text())
    scraped = {c["labels"]["service"] for c in doc["scrape_configs"][0]["static_configs"]}
    assert scraped == {s.name for s in catalog.SERVICES}
    # The services refuse anything but mutual TLS: Prometheus scrapes them over it, with its own identity.
    retail = doc["scrape_configs"][0]
    assert retail["scheme"] == "https"
    assert retail["tls_config"]["cert_file"] == retail["tls_config"]["key_file"] == str(identity)


def _run_rule_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(json.dumps(alert_rules()))
    spec = tmp_path / "tests.yml"
    spec.write_text(json.dumps({"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}))
    return _promtool("test", "rules", str(spec))


def test_service_down_fires_after_one_minute_only_for_the_dead_service(tmp_path: Path) -> None:
    """On-call must be paged for the service that is down, not for all of them, and not for a blip."""
    result = _run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'up{job="retail",service="orders",instance="127.0.0.1:8004"}', "values": "1 0 0 0"},
                    {"series": 'up{job="retail",service="users",instance="127.0.0.1:8001"}', "values": "1 1 1 1"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "ServiceDown", "exp_alerts": []},
                    {
                        "eval_time": "3m",
                        "alertname": "ServiceDown",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "critical",
                                    "job": "retail",
                                    "service": "orders",
                                    "instance": "127.0.0.1:8004",
                                },
                                "exp_annotations": {
                                    "summary": "orders is not answering /metrics",
                                    "description": "Prometheus could not scrape 127.0.0.1:8004 for 1m.",
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_high_error_rate_fires_above_five_percent_5xx(tmp_path: Path) -> None:
    """10 % of payments requests failing for 5+ minutes is an incident; 1 % is not."""
    ok = "0+60x20"
    result = _run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'http_requests_total{service="payments",status="200"}', "values": ok},
                    {"series": 'http_requests_total{service="payments",status="500"}', "values": "0+6x20"},
                    {"series": 'http_requests_total{service="users",status="200"}', "values": ok},
                    {"series": 'http_requests_total{service="users",status="503"}', "values": "0+0.6x20"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "HighErrorRate",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical", "service": "payments"},
                                "exp_annotations": {"summary": "payments: more than 5% of requests fail with 5xx"},
                            }
                        ],
                    }
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_orders_confirmed_fires_only_while_customers_are_ordering(tmp_path: Path) -> None:
    """Checkout broken (attempts, no confirmations) pages; a quiet shop with no attempts does not."""
    attempts = 'http_requests_total{service="orders",method="POST",route="/api/v1/orders",status="503"}'
    result = _run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": [
                    {"series": attempts, "values": "0+5x60"},
                    {"series": 'orders_total{status="confirmed"}', "values": "3x60"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "50m",
                        "alertname": "NoOrdersConfirmed",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "critical"},
                                "exp_annotations": {"summary": "Orders are placed but none confirmed in 30m"},
                            }
                        ],
                    }
                ],
            },
            {
                "interval": "1m",
                "input_series": [
                    {"series": attempts, "values": "0x60"},
                    {"series": 'orders_total{status="confirmed"}', "values": "3x60"},
                ],
                "alert_rule_test": [{"eval_time": "50m", "alertname": "NoOrdersConfirmed", "exp_alerts": []}],
            },
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_high_latency_fires_on_slow_p99(tmp_path: Path) -> None:
    """A p99 above one second for ten minutes is a slow shop even when nothing errors."""
    series = []
    for le, rate in (("0.1", 0), ("0.5", 0), ("1.0", 0), ("2.5", 10), ("+Inf", 10)):
        series.append(
            {"series": f'http_request_duration_seconds_bucket{{service="search",le="{le}"}}', "values": f"0+{rate}x30"}
        )
    result = _run_rule_tests(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "HighLatency",
                        "exp_alerts": [
                            {
                                "exp_labels": {"severity": "warning", "service": "search"},
                                "exp_annotations": {"summary": "search: p99 latency above 1.0s"},
                            }
                        ],
                    }
                ],
            }
        ],
    )
    assert result.returncode == 0, result.stdout + result.stderr
