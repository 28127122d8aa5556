"""Benchmark: a burst of buyers through the edge, as a launch or a sale brings them.

    python -m tests.bench.bench_burst [--clients 200] [--views 1000] [--rounds 3]

Starts the stack with the runner as users run it (two gateway replicas, default rate limits, its own run
directory and shifted ports), then, right after `up` (nothing but the start-up checks has gone through the
edge yet) and again each round: ``--clients`` buyers placing one
order each, and ``--views`` shoppers opening a product page, all at the same moment, each on a new TLS
connection from a loopback address of its own (tests/support/burst.py). Reports per burst: concurrent
clients, 5xx answers (and connections with no answer at all), p50 and p99. Writes
``.run/bench/burst-<time>.{json,md}``. Not a test: nothing here asserts a figure (the end-to-end test asserts
zero 5xx for 200 shoppers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.runner.layout import Layout
from tests.bench.bench_products import save_report
from tests.bench.bench_stack import runner
from tests.support.burst import BurstResult, Request, burst

CARD = {"number": "4242 4242 4242 4242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
ORDERS, VIEWS = "buyers placing an order", "shoppers opening a product page"


def _gateway(layout: Layout, source: str | None = None) -> httpx.Client:
    """The set-up talks to the gateway directly: the first request the edge sees is the burst, as after a
    fresh `up` (the edge's state is then what start-up left)."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=layout.url("gateway"), transport=transport, timeout=30)


def _tokens(layout: Layout) -> list[str]:
    """The seeded customers' access tokens, each logged in from an address of its own."""
    tokens = []
    for i, (email, password, _name) in enumerate(json.loads((layout.secrets / "customers.json").read_text())):
        with _gateway(layout, f"127.0.1.{i + 1}") as c:
            r = c.post("/api/v1/sessions", json={"email": email, "password": password})
            if r.status_code != 201:
                raise SystemExit(f"customer login failed: {r.status_code} {r.text[:200]}")
            tokens.append(str(r.json()["access_token"]))
    return tokens


def _requests(layout: Layout, tokens: list[str], clients: int, views: int) -> dict[str, list[Request]]:
    with _gateway(layout) as c:
        products = c.get("/api/v1/products", params={"limit": 100}).json()["items"]
    stocked = [p for p in products if p["stock_available"] >= 10] or products
    orders = [
        Request(
            "POST",
            "/api/v1/orders",
            {"Authorization": f"Bearer {tokens[i % len(tokens)]}", "Idempotency-Key": uuid.uuid4().hex},
            json.dumps(
                {"items": [{"product_id": stocked[i % len(stocked)]["id"], "quantity": 1}], "payment": {"card": CARD}}
            ).encode(),
        )
        for i in range(clients)
    ]
    pages = [Request("GET", f"/api/v1/products/{products[i % len(products)]['id']}") for i in range(views)]
    return {ORDERS: orders, VIEWS: pages}


def _figures(result: BurstResult) -> dict[str, Any]:
    return {
        "clients": len(result.outcomes),
        "server_errors": result.server_errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "p50_ms": result.percentile_ms(0.5),
        "p99_ms": result.percentile_ms(0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="buyers placing an order at once")
    parser.add_argument("--views", type=int, default=1000, help="shoppers opening a product page at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pause", type=float, default=10.0, help="seconds between rounds")
    parser.add_argument("--port-offset", type=int, default=20000, help="keep ports below 32768 (ephemeral)")
    args = parser.parse_args()
    if min(args.clients, args.views, args.rounds) <= 0 or args.pause < 0:
        raise SystemExit("--clients, --views and --rounds must be positive, --pause not negative")
    if args.clients + args.views > 60000:
        raise SystemExit("--clients + --views: at most 60000 (one loopback address each)")

    layout = Layout(Path(tempfile.mkdtemp(prefix="bench-burst-")) / "run", port_offset=args.port_offset)
    up = runner(layout, "up")
    if up.returncode != 0:
        raise SystemExit(f"stack did not start:\n{up.stdout}\n{up.stderr}")
    rounds: dict[str, list[dict[str, Any]]] = {ORDERS: [], VIEWS: []}
    try:
        tokens = _tokens(layout)
        for i in range(args.rounds):
            if i:
                time.sleep(args.pause)  # let the per-user token buckets refill, the stack settle
            for name, requests in _requests(layout, tokens, args.clients, args.views).items():
                figures = _figures(asyncio.run(burst(layout.edge_https, str(layout.tls / "ca.pem"), requests)))
                print(
                    f"round {i + 1}, {figures['clients']} {name}: {figures['server_errors']} 5xx/no answer, "
                    f"p99 {figures['p99_ms']:.0f} ms, statuses {figures['statuses']}",
                    flush=True,
                )
                rounds[name].append(figures)
    finally:
        runner(layout, "down")

    summary = {
        name: {
            "clients": rs[0]["clients"],
            "server_errors": sum(r["server_errors"] for r in rs),
            "answers": sum(r["clients"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        }
        for name, rs in rounds.items()
    }
    save_report(
        "burst",
        [
            f"# Burst through the edge ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Every client on a new TLS connection from its own address, all released at once; the first round right "
            f"after `up`; {args.rounds} rounds, {args.pause:.0f} s apart. Two gateway replicas, default limits.",
            "",
            "| burst | concurrent clients | 5xx or no answer | p50 ms | p99 ms (median of rounds) |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {name} | {s['clients']} | {s['server_errors']} of {s['answers']} | {s['p50_ms']:.0f} | "
                f"{s['p99_ms']:.0f} |"
                for name, s in summary.items()
            ),
        ],
        {"summary": summary, "rounds": rounds},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
