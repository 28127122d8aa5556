"""Prometheus metrics shared by every service.

HTTP metrics are labelled with the route *template* (``/api/v1/products/{product_id}``), never the raw
path, so cardinality stays bounded whatever clients send. Database pool gauges are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served", ["service", "method", "route", "status"])
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class PoolCollector(Collector):
    """Reports each registered asyncpg pool's size, idle connections and maximum at scrape time, labelled
    with its service. One collector for the process: a process serving several services' apps (the
    in-process tests) reports every pool under the same metric names."""

    def __init__(self) -> None:
        self.pools: dict[str, Callable[[], object | None]] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        size = GaugeMetricFamily("db_pool_connections", "Open connections in the pool", labels=["service"])
        idle = GaugeMetricFamily("db_pool_idle_connections", "Idle connections in the pool", labels=["service"])
        cap = GaugeMetricFamily("db_pool_max_connections", "Pool maximum", labels=["service"])
        for service, pool_getter in self.pools.items():
            pool = pool_getter()
            if pool is not None:
                size.add_metric([service], pool.get_size())  # type: ignore[attr-defined]
                idle.add_metric([service], pool.get_idle_size())  # type: ignore[attr-defined]
                cap.add_metric([service], pool.get_max_size())  # type: ignore[attr-defined]
        yield from (size, idle, cap)


_POOLS = PoolCollector()
REGISTRY.register(_POOLS)


def register_pool(service: str, pool_getter: Callable[[], object | None]) -> None:
    """Report the pool ``pool_getter`` returns as ``service``'s (the latest app's, when a process builds
    several apps of one service)."""
    _POOLS.pools[service] = pool_getter


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
