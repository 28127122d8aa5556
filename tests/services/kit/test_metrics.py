"""The pool gauges of every service whose app runs in this process are reported, each under its service."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit import metrics


@dataclass
class _Pool:
    size: int
    idle: int
    cap: int

    def get_size(self) -> int:
        return self.size

    def get_idle_size(self) -> int:
        return self.idle

    def get_max_size(self) -> int:
        return self.cap


def test_pools_of_two_services_in_one_process_are_both_reported() -> None:
    metrics.register_pool("metrics-test-a", lambda: _Pool(2, 1, 5))
    metrics.register_pool("metrics-test-b", lambda: _Pool(3, 0, 7))
    text = metrics.render()[0].decode()
    assert 'db_pool_max_connections{service="metrics-test-a"} 5.0' in text
    assert 'db_pool_max_connections{service="metrics-test-b"} 7.0' in text
    assert 'db_pool_idle_connections{service="metrics-test-b"} 0.0' in text


def test_a_rebuilt_app_reports_its_new_pool() -> None:
    metrics.register_pool("metrics-test-c", lambda: _Pool(1, 1, 4))
    metrics.register_pool("metrics-test-c", lambda: _Pool(1, 1, 9))
    text = metrics.render()[0].decode()
    assert 'db_pool_max_connections{service="metrics-test-c"} 9.0' in text
    assert 'db_pool_max_connections{service="metrics-test-c"} 4.0' not in text
