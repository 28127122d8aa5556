"""Benchmark: confirmed orders per second end-to-end, 32 concurrent buyers, through the gateway
and, for comparison, directly against orders (reserve -> charge -> commit -> confirm through real products
and payments processes).

    python -m tests.bench.bench_orders [--duration 15] [--warmup 3] [--buyers 32] [--products 20]

Not a test (pytest does not collect this file). It starts its own PostgreSQL, the three services and a
gateway (rate limits raised), runs the buyers against each, then checks zero oversell (per product: on hand
== initial - confirmed quantity, nothing left reserved) and a balanced payments ledger, prints the figures
and writes ``.run/bench/orders-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from services.deploy.keyring import KeyRing
from services.kit import keys
from services.runner.postgres import PostgresServer
from tests.bench.bench_stack import UNLIMITED
from tests.services.payments.support import database_of, ledger_problems, mint_token
from tests.support.procs import ROOT, free_port
from tests.support.stack import TestStack

OUT = ROOT / ".run" / "bench"
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "8537"}


@dataclass
class BuyerStats:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    confirmed_qty: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


async def run_buyers(
    base_url: str, tokens: list[str], product_ids: list[str], *, buyers: int, duration: float, seed: int = 7
) -> BuyerStats:
    """``buyers`` concurrent loops, each placing one-line orders (1-2 units of a random product) with a
    fresh Idempotency-Key until ``duration`` is over."""
    stats = BuyerStats()
    rng = random.Random(seed)
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=buyers, max_keepalive_connections=buyers)

    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def buyer(n: int) -> None:
            headers = {"authorization": f"Bearer {tokens[n % len(tokens)]}"}
            while time.monotonic() < deadline:
                pid, qty = rng.choice(product_ids), rng.randint(1, 2)
                body = {"items": [{"product_id": pid, "quantity": qty}], "payment": {"card": CARD}}
                started = time.perf_counter()
                try:
                    r = await client.post(
                        "/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": str(uuid.uuid4())}
                    )
                except httpx.HTTPError as exc:
                    stats.errors[type(exc).__name__] += 1
                    continue
                stats.latencies.append(time.perf_counter() - started)
                stats.statuses[r.status_code] += 1
                if r.status_code == 201:
                    stats.confirmed_qty[pid] += qty

        await asyncio.gather(*(buyer(n) for n in range(buyers)))
    return stats


_WRK_LUA = r"""
local tokens = {%s}
local products = {%s}
counter = 0
created = 0
other = 0
threads = {}
function setup(thread)
  thread:set("id", tostring(math.random(1, 1000000000)) .. "-%s")
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(os.time() + #id)
end
function request()
  counter = counter + 1
  local body = '{"items":[{"product_id":"' .. products[math.random(#products)] .. '","quantity":' ..
    math.random(1, 2) .. '}],"payment":{"card":{"number":"4242424242424242","exp_month":12,"exp_year":2031,' ..
    '"cvc":"8537"}}}'
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
                   ["Idempotency-Key"] = id .. "-" .. counter}
  return wrk.format("POST", "/api/v1/orders", headers, body)
end
function response(status, headers, body)
  if status == 201 then created = created + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do c = c + t:get("created"); o = o + t:get("other") end
  local e = summary.errors
  io.write(string.format('JSON {"created": %%d, "other": %%d, "p50_us": %%d, "p99_us": %%d, "requests": %%d, ' ..
    '"socket_errors": %%d}\n', c, o, latency:percentile(50), latency:percentile(99), summary.requests,
    e.connect + e.read + e.write + e.timeout))
end
"""


def run_wrk(
    base_url: str, tokens: list[str], product_ids: list[str], *, buyers: int, duration: float, workdir: Path
) -> dict[str, Any]:
    """The same load from wrk (C, two threads): the load generator then takes far less of the two cores."""
    script = workdir / f"orders-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(
        _WRK_LUA % (",".join(f'"{t}"' for t in tokens), ",".join(f'"{p}"' for p in product_ids), uuid.uuid4().hex[:8])
    )
    wrk = shutil.which("wrk")
    assert wrk is not None
    done = subprocess.run(
        [wrk, "-t2", f"-c{buyers}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "-s", str(script), base_url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or "JSON " not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]} {done.stderr[-2000:]}")
    out = done.stdout
    stats: dict[str, Any] = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    return stats


def _serve_jwks(keyring: KeyRing) -> tuple[ThreadingHTTPServer, str]:
    """The keyring's user-token keys as a JWKS (what the users service would serve)."""
    doc = json.dumps(
        {"keys": [keys.jwk(keys.load_private(pem).public_key(), kid) for kid, pem in keyring.jwt_keys.items()]}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    generator: str, url: str, tokens: list[str], product_ids: list[str], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Warm up, then one measured run against ``url`` (orders itself, or the gateway in front of it)."""
    if generator == "wrk":
        run_wrk(url, tokens, product_ids, buyers=args.buyers, duration=args.warmup, workdir=workdir)
        started = time.monotonic()
        w = run_wrk(url, tokens, product_ids, buyers=args.buyers, duration=args.duration, workdir=workdir)
        elapsed = time.monotonic() - started
        statuses: dict[str, int] = {"201": w["created"], "other": w["other"]}
        errors: dict[str, int] = {"socket": w["socket_errors"]} if w["socket_errors"] else {}
        confirmed, p50, p99 = int(w["created"]), w["p50_us"] / 1000, w["p99_us"] / 1000
    else:
        asyncio.run(run_buyers(url, tokens, product_ids, buyers=args.buyers, duration=args.warmup))
        started = time.monotonic()
        stats = asyncio.run(run_buyers(url, tokens, product_ids, buyers=args.buyers, duration=args.duration, seed=11))
        elapsed = time.monotonic() - started
        statuses = {str(k): v for k, v in stats.statuses.items()}
        errors = dict(stats.errors)
        confirmed = stats.statuses[201]
        p50 = statistics.median(stats.latencies) * 1000 if stats.latencies else 0.0
        p99 = _percentile(stats.latencies, 0.99) * 1000
    return {
        "duration_s": round(elapsed, 2),
        "confirmed_orders": confirmed,
        "confirmed_orders_per_s": round(confirmed / elapsed, 1),
        "statuses": statuses,
        "client_errors": errors,
        "latency_p50_ms": round(p50, 1),
        "latency_p99_ms": round(p99, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--buyers", type=int, default=32)
    parser.add_argument("--products", type=int, default=20)
    parser.add_argument("--stock", type=int, default=1_000_000)
    parser.add_argument("--pool", type=int, default=20, help="asyncpg pool size of each service")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="wrk when installed (auto): an httpx load generator eats a core by itself",
    )
    args = parser.parse_args()

    keyring = KeyRing.generate()
    pg = PostgresServer(port=free_port())
    pg.init()
    pg.start()
    logdir = Path(tempfile.mkdtemp(prefix="bench-orders-logs-"))
    stack = TestStack(pg, keyring, logdir)
    jwks_server, jwks = _serve_jwks(keyring)
    try:
        common = {"JWKS_URL": jwks, "DB_POOL_MAX": str(args.pool), "LOG_LEVEL": args.log_level}
        products = stack.start("products", **common)
        payments = stack.start("payments", **common)
        orders = stack.start(
            "orders", **common, PRODUCTS_TIMEOUT_S="10", PAYMENTS_TIMEOUT_S="10", RECOVERY_STUCK_AFTER_S="90"
        )
        admin = {"authorization": f"Bearer {mint_token(keyring, uuid.uuid4(), roles=('admin',))}"}
        product_ids = []
        for i in range(args.products):
            body = {
                "sku": f"B-{i}-{uuid.uuid4().hex[:8]}",
                "name": f"Bench product {i}",
                "category": "bench",
                "price_cents": 1000 + i,
                "currency": "EUR",
            }
            product = httpx.post(f"{products.url}/api/v1/products", json=body, headers=admin).json()
            httpx.put(
                f"{products.url}/api/v1/products/{product['id']}/stock", json={"quantity": args.stock}, headers=admin
            ).raise_for_status()
            product_ids.append(product["id"])
        tokens = [mint_token(keyring, uuid.uuid4(), lifetime=3600) for _ in range(args.buyers)]

        generator = args.generator if args.generator != "auto" else ("wrk" if shutil.which("wrk") else "httpx")
        # The target figure is end-to-end through the gateway; direct to orders is measured too, to show what
        # the gateway costs. Rate limits are raised: this measures the checkout, not the limiter.
        gateway = stack.start("gateway", JWKS_URL=jwks, UPSTREAMS="products,orders,payments", **UNLIMITED)
        measured: dict[str, dict[str, Any]] = {}
        for target, url in (("orders (direct)", orders.url), ("through the gateway", gateway.url)):
            print(
                f"{target}: warm-up {args.warmup:.0f} s, then {args.duration:.0f} s with {args.buyers} concurrent "
                f"buyers over {args.products} products (load generator: {generator})"
            )
            measured[target] = measure(generator, url, tokens, product_ids, args, logdir)
            print(
                f"  {measured[target]['confirmed_orders_per_s']} confirmed orders/s, "
                f"p50 {measured[target]['latency_p50_ms']} ms, p99 {measured[target]['latency_p99_ms']} ms"
            )

        # Consistency after the run, from the databases: per product, on hand == initial - confirmed quantity
        # and nothing left reserved; confirmed orders == captures; a balanced ledger.
        orders_db = database_of(orders.env["DATABASE_URL"])
        payments_db = database_of(payments.env["DATABASE_URL"])
        # wrk stops on the clock with requests in flight; their sagas run to the end (shielded). Wait for them.
        quiet_by = time.monotonic() + 60
        while (
            time.monotonic() < quiet_by
            and pg.psql("SELECT count(*) FROM orders WHERE status IN ('pending', 'reserved', 'paid')", orders_db) != "0"
        ):
            time.sleep(0.2)
        sold = dict(
            line.split("|")
            for line in pg.psql(
                "SELECT i.product_id, sum(i.quantity) FROM orders o JOIN order_items i ON i.order_id = o.id "
                "WHERE o.status = 'confirmed' GROUP BY i.product_id",
                orders_db,
            ).splitlines()
        )
        oversell = []
        for pid in product_ids:
            p = httpx.get(f"{products.url}/api/v1/products/{pid}").json()
            expected = args.stock - int(sold.get(pid, 0))
            if p["stock_on_hand"] != expected or p["stock_available"] != expected:
                oversell.append(
                    {
                        "product_id": pid,
                        "on_hand": p["stock_on_hand"],
                        "available": p["stock_available"],
                        "expected": expected,
                    }
                )
        ledger = ledger_problems(pg, payments_db)
        confirmed_db = int(pg.psql("SELECT count(*) FROM orders WHERE status = 'confirmed'", orders_db))
        captured = int(
            pg.psql("SELECT count(*) FROM payments WHERE status = 'captured' AND refunded_cents = 0", payments_db)
        )
        unfinished = int(pg.psql("SELECT count(*) FROM orders WHERE status <> 'confirmed'", orders_db))

        result: dict[str, Any] = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "target": "orders (direct)",
            "generator": generator,
            "buyers": args.buyers,
            "products": args.products,
            **measured["orders (direct)"],
            "via_gateway": measured["through the gateway"],
            "oversold_products": oversell,
            "ledger_problems": ledger,
            "orders_confirmed_in_db": confirmed_db,
            "payments_captured": captured,
            "orders_not_confirmed": unfinished,
            "log_level": args.log_level,
            "pool": args.pool,
        }
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"orders-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        for target, m in measured.items():
            print(
                f"\nconfirmed orders/s ({target}, {args.buyers} buyers): {m['confirmed_orders_per_s']}  "
                f"p50 {m['latency_p50_ms']} ms  p99 {m['latency_p99_ms']} ms"
            )
        print(
            f"zero oversell: {not oversell}; ledger balanced: {not ledger}; "
            f"confirmed in DB == captured: {confirmed_db == captured}   -> {path.relative_to(ROOT)}"
        )
        ok = (
            not oversell
            and not ledger
            and confirmed_db == captured
            and not any(m["client_errors"] for m in measured.values())
        )
        return 0 if ok else 1
    finally:
        stack.stop_all()
        jwks_server.shutdown()
        pg.destroy()


if __name__ == "__main__":
    raise SystemExit(main())
