"""Prometheus metrics shared by every service.

HTTP metrics are labelled with the route *template* (``/api/v1/products/{product_id}``), never the raw
path, so cardinality stays bounded whatever clients send. Database pool gauges are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request duration",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class PoolCollector(Collector):
    """Reports an asyncpg pool's size, idle connections and maximum at scrape time."""

    def __init__(self, service: str, pool_getter: Callable[[], object | None]) -> None:
        self.service = service
        self.pool_getter = pool_getter

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pool = self.pool_getter()
        size = GaugeMetricFamily("db_pool_connections", "Open connections in the pool", labels=["service"])
        idle = GaugeMetricFamily("db_pool_idle_connections", "Idle connections in the pool", labels=["service"])
        cap = GaugeMetricFamily("db_pool_max_connections", "Pool maximum", labels=["service"])
        if pool is not None:
            size.add_metric([self.service], pool.get_size())  # type: ignore[attr-defined]
            idle.add_metric([self.service], pool.get_idle_size())  # type: ignore[attr-defined]
            cap.add_metric([self.service], pool.get_max_size())  # type: ignore[attr-defined]
        yield from (size, idle, cap)


_registered: dict[str, PoolCollector] = {}


def register_pool(service: str, pool_getter: Callable[[], object | None]) -> None:
    """Register the pool collector once per process (tests build several apps in one process)."""
    existing = _registered.get(service)
    if existing is not None:
        existing.pool_getter = pool_getter
        return
    collector = PoolCollector(service, pool_getter)
    REGISTRY.register(collector)
    _registered[service] = collector


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
