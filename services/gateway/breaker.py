"""A circuit breaker per upstream: stop sending traffic to a service that is failing, probe it later.

closed → open after ``consecutive_failures`` failures in a row, or when at least ``min_requests`` calls
in the last ``window_s`` seconds failed at ``failure_ratio`` or more. While open, calls fail fast (the
gateway answers 503 ``upstream-unavailable`` without touching the network). After ``cooldown_s`` one
probe call is let through (half-open): success closes the circuit, failure opens it for another
cool-down. A probe that never reports back (a cancelled request) is replaced after another cool-down.

State is per worker process: each worker learns on its own that an upstream is down, which costs at
most ``consecutive_failures`` failed calls per worker, and keeps the hot path free of locks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from enum import IntEnum

from prometheus_client import Gauge

CIRCUIT_STATE = Gauge(
    "gateway_circuit_state", "Circuit breaker state per upstream (0 closed, 1 open, 2 half-open)", ["upstream"]
)


class State(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class Permit(IntEnum):
    DENY = 0
    CALL = 1
    PROBE = 2


class CircuitBreaker:
    def __init__(
        self,
        upstream: str,
        *,
        consecutive_failures: int,
        failure_ratio: float,
        window_s: float,
        min_requests: int,
        cooldown_s: float,
    ) -> None:
        self.upstream = upstream
        self.consecutive_failures = consecutive_failures
        self.failure_ratio = failure_ratio
        self.window_s = window_s
        self.min_requests = min_requests
        self.cooldown_s = cooldown_s
        self.state = State.CLOSED
        self._failures_in_a_row = 0
        self._window: deque[tuple[float, bool]] = deque()
        self._window_failures = 0
        self._opened_at = 0.0
        self._probe_started = 0.0
        self._probing = False
        self._gauge = CIRCUIT_STATE.labels(upstream)
        self._gauge.set(State.CLOSED)

    def _set(self, state: State) -> None:
        self.state = state
        self._gauge.set(state)

    def allow(self) -> Permit:
        """May a call go to the upstream now? In half-open, only one probe at a time."""
        if self.state is State.CLOSED:
            return Permit.CALL
        now = time.monotonic()
        if self.state is State.OPEN:
            if now - self._opened_at < self.cooldown_s:
                return Permit.DENY
            self._set(State.HALF_OPEN)
            self._probing = False
        if self._probing and now - self._probe_started < self.cooldown_s:
            return Permit.DENY
        self._probing, self._probe_started = True, now
        return Permit.PROBE

    def retry_after_s(self) -> int:
        remaining = self.cooldown_s - (time.monotonic() - self._opened_at)
        return max(1, math.ceil(remaining))

    def record(self, ok: bool, permit: Permit) -> None:
        """Report a call's outcome. Calls let through before the circuit opened do not decide it."""
        now = time.monotonic()
        if self.state is not State.CLOSED:
            if permit is not Permit.PROBE:
                return
            self._probing = False
            if ok:
                self._reset()
            else:
                self._open(now)
            return
        window = self._window
        window.append((now, ok))
        if not ok:
            self._window_failures += 1
        while window and now - window[0][0] > self.window_s:
            if not window.popleft()[1]:
                self._window_failures -= 1
        self._failures_in_a_row = 0 if ok else self._failures_in_a_row + 1
        if ok:
            return
        if self._failures_in_a_row >= self.consecutive_failures or (
            len(window) >= self.min_requests and self._window_failures / len(window) >= self.failure_ratio
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set(State.OPEN)

    def _reset(self) -> None:
        self._failures_in_a_row = 0
        self._window.clear()
        self._window_failures = 0
        self._set(State.CLOSED)
