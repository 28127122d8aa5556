"""Benchmark: ``GET /api/v1/products/{id}`` of the products service next to a minimal FastAPI +
asyncpg endpoint doing the same point select, in the same run, with the same load generator.

    python -m tests.bench.bench_products [--duration 10] [--rounds 3] [--connections 32] [--products 1000]

Not a test (pytest does not collect this file): it prints req/s, p50 and p99 for both and their ratio,
and writes ``.run/bench/products-<time>.{json,md}``. The load generator is ``wrk`` with a Lua script
picking a random product id per request when ``wrk`` is installed, else an httpx-based async generator
(slower, so its absolute figures are lower; the ratio is still like for like).

Both servers: one uvicorn worker, the same asyncpg pool size (``DB_POOL_MAX``, min = max), the same
PostgreSQL, the same rows. The products service runs as in production (JSON access log at INFO,
metrics, request IDs); the minimal app has none of that, which is why it is the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.support.procs import ROOT, ServiceProcess, free_port

OUT = ROOT / ".run" / "bench"


@dataclass
class Result:
    target: str
    generator: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float = 0.0  # the server process's CPU time per request (robust to a busy machine)


def summarize(runs: dict[str, list[Result]]) -> dict[str, dict[str, float]]:
    """Medians over the rounds: the machine is shared, and one disturbed round should not decide the result.
    Server CPU per request only where it was measured."""
    return {
        name: {
            "requests_per_s": statistics.median(r.requests_per_s for r in rs),
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            **(
                {"cpu_us_per_request": statistics.median(r.cpu_us_per_request for r in rs)}
                if any(r.cpu_us_per_request for r in rs)
                else {}
            ),
            "errors": sum(r.errors for r in rs),
        }
        for name, rs in runs.items()
    }


def table(summary: dict[str, dict[str, float]]) -> list[str]:
    """The summary as a Markdown table (with a server-CPU column when every row measured it)."""
    cpu = all("cpu_us_per_request" in s for s in summary.values())
    return [
        "| target | req/s | p50 ms | p99 ms |" + (" server CPU µs/request |" if cpu else "") + " errors |",
        "|---|---:|---:|---:|" + ("---:|" if cpu else "") + "---:|",
        *(
            f"| {name} | {s['requests_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            + (f"{s['cpu_us_per_request']:.0f} | " if cpu else "")
            + f"{s['errors']:.0f} |"
            for name, s in summary.items()
        ),
    ]


def save_report(kind: str, lines: list[str], data: dict[str, Any]) -> None:
    """Print the report and keep it, with its figures as JSON, in ``.run/bench/<kind>-<time>.{md,json}``."""
    report = "\n".join(lines)
    print(f"\n{report}")
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"{kind}-{stamp}.md").write_text(report + "\n")
    (OUT / f"{kind}-{stamp}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(f"\nreport: {OUT / f'{kind}-{stamp}.md'}")


# --- load generators ----------------------------------------------------------------------------------

# wrk's summary as one JSON line (appended to each script; the script is %-formatted, hence %%d).
WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
_WRK_LUA = (
    """
local ids = {%s}
local prefix = "%s"
math.randomseed(%d)
request = function()
  return wrk.format("GET", prefix .. ids[math.random(#ids)])
end
"""
    + WRK_DONE
)


def run_wrk(
    name: str, base: str, prefix: str, ids: list[str], duration: float, connections: int, workdir: Path
) -> Result:
    script = workdir / "random_ids.lua"
    script.write_text(_WRK_LUA % (",".join(f'"{i}"' for i in ids), prefix, random.randrange(1 << 30)))
    wrk = shutil.which("wrk")
    assert wrk is not None
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{int(duration)}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return wrk_result(name, out)


def wrk_result(name: str, out: str) -> Result:
    """A Result from the output of wrk run with a script ending in WRK_DONE."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    stats = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = stats["errors"] + (int(non2xx.group(1)) if non2xx else 0)
    return Result(name, "wrk", rps, stats["p50_us"] / 1000, stats["p99_us"] / 1000, stats["requests"], errors)


def run_httpx(
    name: str, base: str, prefix: str, ids: list[str], duration: float, connections: int, workdir: Path
) -> Result:
    async def main() -> Result:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10.0) as client:
            stop_at = time.perf_counter() + duration

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop_at:
                    start = time.perf_counter()
                    r = await client.get(prefix + random.choice(ids))
                    latencies.append(time.perf_counter() - start)
                    if r.status_code != 200:
                        errors += 1

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        q = statistics.quantiles(latencies, n=100)
        return Result(name, "httpx", len(latencies) / elapsed, q[49] * 1000, q[98] * 1000, len(latencies), errors)

    return asyncio.run(main())


# --- setup --------------------------------------------------------------------------------------------


def seed(pg: PostgresServer, database: str, count: int) -> list[str]:
    pg.psql(
        "INSERT INTO products (id, sku, name, description, category, price_cents, currency, stock_on_hand) "  # noqa: S608
        "SELECT gen_random_uuid(), 'BENCH-' || i, 'Product ' || i, 'A product used by the benchmark', "
        f"'cat-' || (i % 10), 100 + i, 'EUR', 1000 FROM generate_series(1, {int(count)}) AS i",
        database,
    )
    return pg.psql("SELECT id FROM products WHERE deleted_at IS NULL", database).split()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server (interleaved)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=10, help="asyncpg pool size of both servers")
    parser.add_argument("--log-level", default="INFO", help="the service's LOG_LEVEL (INFO logs every request)")
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    args = parser.parse_args()

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    load = run_wrk if generator == "wrk" else run_httpx
    print(
        f"load generator: {generator} ({args.connections} connections, {args.duration:.0f} s x "
        f"{args.rounds} rounds per server after {args.warmup:.0f} s warm-up)"
    )

    workdir = Path(tempfile.mkdtemp(prefix="bench-products-"))
    pg = PostgresServer(port=free_port())
    pg.init()
    pg.start()
    servers: list[ServiceProcess] = []
    try:
        database = f"products_bench_{uuid.uuid4().hex[:8]}"
        pg.psql(f'CREATE DATABASE "{database}"')
        pool_env = {"DB_POOL_MIN": str(args.pool), "DB_POOL_MAX": str(args.pool), "DATABASE_URL": pg.url(database)}
        keys_only = DeployTarget(keyring=KeyRing.generate())
        service = ServiceProcess(
            "products",
            {
                **deployment_environment("products", keys_only),
                **pool_env,
                "ENVIRONMENT": "prod",
                "LOG_LEVEL": args.log_level,
            },
            workdir,
        )
        servers.append(service)
        service.start()  # ready: migrations applied
        ids = seed(pg, database, args.products)
        minimal = ServiceProcess(
            "minimal", pool_env, workdir, app="tests.bench.minimal_app:app", ready_path=f"/products/{ids[0]}"
        )
        servers.append(minimal)
        minimal.start()
        # Same answer from both (the ceiling does the same work).
        a = httpx.get(f"{service.url}/api/v1/products/{ids[0]}").json()
        b = httpx.get(f"{minimal.url}/products/{ids[0]}").json()
        for doc in (a, b):
            for key in ("created_at", "updated_at"):
                doc[key] = datetime.fromisoformat(doc[key])
        assert a == b, (a, b)

        targets = [
            ("products service", service, "/api/v1/products/"),
            ("minimal FastAPI+asyncpg", minimal, "/products/"),
        ]
        for name, server, prefix in targets:
            load(name, server.url, prefix, ids, args.warmup, args.connections, workdir)
        runs: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
        for _ in range(args.rounds):
            for name, server, prefix in targets:
                cpu_before = server.cpu_seconds()
                result = load(name, server.url, prefix, ids, args.duration, args.connections, workdir)
                result.cpu_us_per_request = (server.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
                runs[name].append(result)
                print(
                    f"  {name:<26} {result.requests_per_s:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  CPU {result.cpu_us_per_request:5.0f} us/req  "
                    f"errors {result.errors}"
                )
    finally:
        for server in servers:
            server.stop()
        pg.destroy()

    summary = summarize(runs)
    svc, ceiling = summary["products service"], summary["minimal FastAPI+asyncpg"]
    ratio = svc["requests_per_s"] / ceiling["requests_per_s"]
    cpu_ratio = ceiling["cpu_us_per_request"] / svc["cpu_us_per_request"]
    save_report(
        "products",
        [
            f"# GET /api/v1/products/{{id}} benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Load generator: {generator}, {args.connections} connections, {args.rounds} x {args.duration:.0f} s per "
            f"server (interleaved, after {args.warmup:.0f} s warm-up); {len(ids)} products, random id per request; "
            f"one uvicorn worker each, asyncpg pool {args.pool}; {os.cpu_count()} CPUs shared with the load generator "
            "and PostgreSQL.",
            "",
            *table(summary),
            "",
            f"Ratio (service / minimal, req/s, medians of {args.rounds} rounds): **{ratio:.2f}** (target >= 0.80)",
            f"CPU-cost ratio (minimal / service CPU time per request, insensitive to other load): {cpu_ratio:.2f}",
        ],
        {
            "generator": generator,
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "products": len(ids),
            "pool": args.pool,
            "ratio": ratio,
            "cpu_ratio": cpu_ratio,
            "summary": summary,
            "runs": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        },
    )
    return 0 if not any(s["errors"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
