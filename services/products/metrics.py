"""Business metrics of the inventory (registered once per process, at import)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

Outcome = Literal["reserved", "out_of_stock", "replayed", "committed", "released", "returned"]

RESERVATIONS = Counter(
    "inventory_reservations_total",
    "Reservation operations by outcome",
    ["outcome"],
)
for _outcome in ("reserved", "out_of_stock", "replayed", "committed", "released", "returned"):
    RESERVATIONS.labels(_outcome)  # export every series from the start (0 until it happens)


def count(outcome: Outcome) -> None:
    RESERVATIONS.labels(outcome).inc()
