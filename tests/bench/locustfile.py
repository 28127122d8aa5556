"""A realistic shop mix for Locust, against the edge of a running stack.

Most visitors browse and search; some log in and buy; a few cancel. Weights follow a typical retail funnel
(roughly 60 % browsing, 30 % searching, 10 % buying). Run by ``tests/bench/bench_stack.py`` (``make bench``),
direct to the gateway and through the edge; by hand:
``locust -f tests/bench/locustfile.py --host https://localhost:8443``.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

from locust import FastHttpUser, between, task

SEARCH_TERMS = [
    "laptop",
    "headphones",
    "kettle",
    "tent",
    "monitor",
    "keyboard",
    "pro",
    "wireless",
    "compact",
    "speaker",
    "lapt",
    "keybord",
    "espresso",
    "backpack",
    "atlas",
]
CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
CA_FILE = os.environ.get("BENCH_CA_FILE")


def _ssl_context(*_: Any) -> Any:
    import gevent.ssl

    return gevent.ssl.create_default_context(cafile=CA_FILE)


class Shopper(FastHttpUser):
    wait_time = between(0.0, 0.05)
    product_ids: list[str] = []
    # Verify the edge's certificate against the stack's local CA, as a real client would.
    insecure = CA_FILE is None
    ssl_context_factory = staticmethod(_ssl_context) if CA_FILE else None

    def on_start(self) -> None:
        self.token: str | None = None
        self.orders: list[str] = []
        if not Shopper.product_ids:
            r = self.client.get("/api/v1/products?limit=100", name="/api/v1/products")
            Shopper.product_ids = [p["id"] for p in r.json()["items"]]

    def _auth(self) -> dict[str, str]:
        if self.token is None:
            email = f"load-{uuid.uuid4().hex[:12]}@example.com"
            self.client.post(
                "/api/v1/users", json={"email": email, "password": "load test password", "name": "Load Test"}
            )
            r = self.client.post("/api/v1/sessions", json={"email": email, "password": "load test password"})
            self.token = r.json()["access_token"]
        return {"authorization": f"Bearer {self.token}"}

    @task(40)
    def browse_list(self) -> None:
        self.client.get("/api/v1/products?limit=20", name="/api/v1/products")

    @task(20)
    def view_product(self) -> None:
        self.client.get(f"/api/v1/products/{random.choice(self.product_ids)}", name="/api/v1/products/{id}")

    @task(30)
    def search(self) -> None:
        self.client.get(f"/api/v1/search?q={random.choice(SEARCH_TERMS)}", name="/api/v1/search")

    @task(8)
    def order(self) -> None:
        body: dict[str, Any] = {
            "items": [{"product_id": random.choice(self.product_ids), "quantity": 1}],
            "payment": {"card": CARD},
        }
        with self.client.post(
            "/api/v1/orders",
            json=body,
            name="/api/v1/orders",
            headers={**self._auth(), "Idempotency-Key": uuid.uuid4().hex},
            catch_response=True,
        ) as r:
            if r.status_code == 201:
                self.orders.append(r.json()["id"])
                r.success()
            elif r.status_code == 409:  # sold out is a correct answer, not a failure
                r.success()

    @task(2)
    def cancel(self) -> None:
        if self.orders:
            self.client.post(
                f"/api/v1/orders/{self.orders.pop()}/cancel", headers=self._auth(), name="/api/v1/orders/{id}/cancel"
            )
