"""The alert rules every deployment gets, built from the catalog: the one-machine Prometheus loads them as a
rule file, the cluster as a PrometheusRule (tested with promtool: tests/services/runner/test_prometheus.py).
"""

from __future__ import annotations

from typing import Any

from services import catalog


def alert_rules(
    *, error_ratio: float = 0.05, p99_seconds: float = 1.0, no_orders_window: str = "30m"
) -> dict[str, Any]:
    """Alerts every deployment gets. Thresholds are arguments so stacks can tune them."""
    services = "|".join(s.name for s in catalog.SERVICES)
    return {
        "groups": [
            {
                "name": "retail-platform",
                "rules": [
                    {
                        "alert": "ServiceDown",
                        "expr": f'up{{job="retail",service=~"{services}"}} == 0',
                        "for": "1m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.service }} is not answering /metrics",
                            "description": "Prometheus could not scrape {{ $labels.instance }} for 1m.",
                        },
                    },
                    {
                        "alert": "HighErrorRate",
                        "expr": (
                            'sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))'
                            " / sum by (service) (rate(http_requests_total[5m])) > " + repr(error_ratio)
                        ),
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.service }}: more than "
                            f"{error_ratio:.0%} of requests fail with 5xx"
                        },
                    },
                    {
                        "alert": "HighLatency",
                        "expr": (
                            "histogram_quantile(0.99, sum by (service, le) "
                            f"(rate(http_request_duration_seconds_bucket[5m]))) > {p99_seconds!r}"
                        ),
                        "for": "10m",
                        "labels": {"severity": "warning"},
                        "annotations": {"summary": f"{{{{ $labels.service }}}}: p99 latency above {p99_seconds}s"},
                    },
                    {
                        "alert": "NoOrdersConfirmed",
                        # Only when customers are trying: a quiet night is not an incident.
                        "expr": (
                            f'sum(increase(orders_total{{status="confirmed"}}[{no_orders_window}])) == 0'
                            f' and sum(increase(http_requests_total{{service="orders",method="POST",'
                            f'route="/api/v1/orders"}}[{no_orders_window}])) > 0'
                        ),
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {"summary": f"Orders are placed but none confirmed in {no_orders_window}"},
                    },
                ],
            }
        ]
    }
