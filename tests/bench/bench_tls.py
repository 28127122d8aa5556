"""Benchmark: what mutual TLS between the processes costs, per hop, on one machine.

    python -m tests.bench.bench_tls [--duration 10] [--rounds 3] [--connections 32] [--orders 300]

Starts two copies of the one-machine stack side by side (own run directories, shifted ports, rate limits
raised, one gateway replica each): one as `up` runs it, every hop mutual TLS, and one with
``up --plaintext-services`` (the same processes speaking plain HTTP to each other). Then, in interleaved
rounds, through each stack's edge (the client's own hop is TLS in both):

- the anonymous product read ``GET /api/v1/products/{id}`` with wrk: hops edge → gateway → products →
  PostgreSQL;
- a checkout (``POST /api/v1/orders``, a seeded customer, 8 at a time): hops edge → gateway → orders, orders →
  products (reserve, commit) and orders → payments;

and reports the server CPU per request of each process (from /proc, ``bench_stack``'s helpers), TLS against
plain, the difference and the ratio, and for the read the difference per hop. Connections between the
processes are pooled and kept alive in both stacks, so this is TLS as it runs: record encryption on every
request, a handshake only when a connection is opened. Writes ``.run/bench/tls-<time>.{json,md}``. Not a
test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.runner.layout import Layout
from tests.bench.bench_products import run_wrk, save_report
from tests.bench.bench_stack import UNLIMITED, _cpu_by_process, runner

READ, CHECKOUT = "anonymous product read", "checkout"
# edge → gateway, gateway → products, products → PostgreSQL (its point select): each TLS in one stack only.
READ_HOPS = 3
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
PROCESSES = ("nginx", "gateway", "products", "orders", "payments", "users", "search", "postgres")


class Stack:
    """One copy of the stack, started with ``up`` (``plain``: ``--plaintext-services``), reached at its edge."""

    def __init__(self, name: str, layout: Layout, plain: bool) -> None:
        self.name, self.layout, self.plain = name, layout, plain
        self.edge = f"https://127.0.0.1:{layout.edge_https}"

    def up(self) -> None:
        flags = ["--plaintext-services"] if self.plain else []
        result = runner(self.layout, "up", "--gateway-replicas", "1", *flags, env=UNLIMITED)
        if result.returncode != 0:
            raise SystemExit(f"the {self.name} stack did not start:\n{result.stdout}\n{result.stderr}")

    def down(self) -> None:
        runner(self.layout, "down")

    def client(self) -> httpx.AsyncClient:
        # The edge's certificate from this stack's CA, as a browser would trust it.
        return httpx.AsyncClient(base_url=self.edge, verify=str(self.layout.tls / "ca.pem"), timeout=30.0)

    def product_ids(self) -> list[str]:
        async def fetch() -> list[str]:
            ids: list[str] = []
            cursor = None
            async with self.client() as c:
                while True:
                    params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                    page = (await c.get("/api/v1/products", params=params)).json()
                    ids += [p["id"] for p in page["items"]]
                    if not (cursor := page.get("next_cursor")):
                        return ids

        return asyncio.run(fetch())

    def customer_token(self) -> str:
        email, password, _ = json.loads((self.layout.secrets / "customers.json").read_text())[0]

        async def login() -> str:
            async with self.client() as c:
                r = await c.post("/api/v1/sessions", json={"email": email, "password": password})
                r.raise_for_status()
                return str(r.json()["access_token"])

        return asyncio.run(login())


def checkouts(stack: Stack, token: str, ids: list[str], orders: int, start: int) -> tuple[int, float]:
    """``orders`` checkouts of one item each, 8 at a time: (confirmed, seconds)."""

    async def run() -> tuple[int, float]:
        gate = asyncio.Semaphore(8)
        confirmed = 0

        async def one(c: httpx.AsyncClient, i: int) -> None:
            nonlocal confirmed
            async with gate:
                r = await c.post(
                    "/api/v1/orders",
                    headers={"authorization": f"Bearer {token}", "idempotency-key": uuid.uuid4().hex},
                    json={
                        "items": [{"product_id": ids[(start + i) % len(ids)], "quantity": 1}],
                        "payment": {"card": CARD},
                    },
                )
                confirmed += r.status_code == 201

        began = time.monotonic()
        async with stack.client() as c:
            await asyncio.gather(*(one(c, i) for i in range(orders)))
        return confirmed, time.monotonic() - began

    return asyncio.run(run())


def measure(
    stack: Stack, row: str, args: argparse.Namespace, ids: list[str], token: str, round_: int, workdir: Path
) -> dict[str, Any]:
    """One round of one row on one stack: requests, and server CPU µs per request by process."""
    before = _cpu_by_process(stack.layout)
    if row == READ:
        result = run_wrk(
            f"{row} ({stack.name})", stack.edge, "/api/v1/products/", ids, args.duration, args.connections, workdir
        )
        done, extra = result.requests, {"requests_per_s": result.requests_per_s, "errors": result.errors}
    else:
        done, seconds = checkouts(stack, token, ids, args.orders, round_ * args.orders)
        extra = {"requests_per_s": done / seconds, "errors": args.orders - done}
    after = _cpu_by_process(stack.layout)
    per = {p: (after.get(p, 0.0) - cpu) / max(done, 1) * 1e6 for p, cpu in before.items()}
    return {"requests": done, "cpu_us_per_process": per, "cpu_us_per_request": sum(per.values()), **extra}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    processes = sorted({p for r in runs for p in r["cpu_us_per_process"]})
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
        "cpu_us_per_process": {
            p: statistics.median(r["cpu_us_per_process"].get(p, 0.0) for r in runs) for p in processes
        },
        "errors": sum(r["errors"] for r in runs),
    }


def report(result: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    lines = [
        "# What mutual TLS between the processes costs (one machine)",
        "",
        f"Medians of {args.rounds} interleaved rounds per row, two stacks side by side on the same cores: one as "
        "`up` runs it (every hop mutual TLS 1.3, pooled keep-alive connections), one with `--plaintext-services`. "
        "The client reaches both through the edge over TLS. Server CPU per request from /proc (user + system).",
        "",
        "| row | process | plain µs/req | TLS µs/req | TLS - plain | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row, pair in result.items():
        plain, tls = pair["plain"], pair["tls"]
        for p in [*PROCESSES, "total"]:
            a = plain["cpu_us_per_request"] if p == "total" else plain["cpu_us_per_process"].get(p, 0.0)
            b = tls["cpu_us_per_request"] if p == "total" else tls["cpu_us_per_process"].get(p, 0.0)
            if p != "total" and max(a, b) < 5:
                continue
            label = f"**{p}**" if p == "total" else p
            lines.append(f"| {row} | {label} | {a:.0f} | {b:.0f} | {b - a:+.0f} | {b / a if a else float('nan'):.2f} |")
        lines.append(
            f"| {row} | throughput | {plain['requests_per_s']:.0f} req/s | {tls['requests_per_s']:.0f} req/s | | "
            f"{tls['requests_per_s'] / plain['requests_per_s']:.2f} |"
        )
    per_hop = read_cpu_us_per_hop(result)
    read = result[READ]
    lines += [
        "",
        f"Per hop (the read crosses {READ_HOPS} internal hops, each now TLS on both ends): **{per_hop:+.0f} µs** "
        f"of server CPU per request; errors plain/TLS: {read['plain']['errors']}/{read['tls']['errors']} (read), "
        f"{result[CHECKOUT]['plain']['errors']}/{result[CHECKOUT]['tls']['errors']} (checkout).",
    ]
    return lines


def read_cpu_us_per_hop(result: dict[str, dict[str, dict[str, Any]]]) -> float:
    read = result[READ]
    return float(read["tls"]["cpu_us_per_request"] - read["plain"]["cpu_us_per_request"]) / READ_HOPS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per read round")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--orders", type=int, default=300, help="checkouts per round")
    parser.add_argument("--port-offset", type=int, default=24000, help="the plain stack's; the TLS one is +2000")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for this benchmark: apt-get install wrk (make deps does it)")
    if min(args.duration, args.rounds, args.connections, args.orders) <= 0:
        raise SystemExit("--duration, --rounds, --connections and --orders must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    stacks = [
        Stack("plain", Layout(workdir / "plain", port_offset=args.port_offset), plain=True),
        Stack("tls", Layout(workdir / "tls", port_offset=args.port_offset + 2000), plain=False),
    ]
    try:
        for stack in stacks:
            stack.up()
        ids = {s.name: s.product_ids() for s in stacks}
        tokens = {s.name: s.customer_token() for s in stacks}
        for s in stacks:  # warm both: pools filled, code paths hot
            run_wrk("warm-up", s.edge, "/api/v1/products/", ids[s.name], args.warmup, args.connections, workdir)
            checkouts(s, tokens[s.name], ids[s.name], 20, len(ids[s.name]) // 2)
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            row: {s.name: [] for s in stacks} for row in (READ, CHECKOUT)
        }
        for round_ in range(args.rounds):
            for row in (READ, CHECKOUT):
                for s in stacks if round_ % 2 == 0 else reversed(stacks):
                    r = measure(s, row, args, ids[s.name], tokens[s.name], round_, workdir)
                    runs[row][s.name].append(r)
                    print(
                        f"  {row:<24} {s.name:<6} {r['requests_per_s']:7.0f} req/s  server CPU "
                        f"{r['cpu_us_per_request']:5.0f} us/req  errors {r['errors']}"
                    )
    finally:
        for stack in stacks:
            stack.down()
    result = {row: {name: summary(rs) for name, rs in by_stack.items()} for row, by_stack in runs.items()}
    read = result[READ]
    save_report(
        "tls",
        report(result, args),
        {
            "rows": result,
            "read_cpu_us_per_hop": read_cpu_us_per_hop(result),
            "read_cpu_ratio": read["tls"]["cpu_us_per_request"] / read["plain"]["cpu_us_per_request"],
            "checkout_cpu_ratio": result[CHECKOUT]["tls"]["cpu_us_per_request"]
            / result[CHECKOUT]["plain"]["cpu_us_per_request"],
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
