"""Benchmark: ``GET /api/v1/products/{id}`` direct to the products service and through the API
gateway, in the same run, with the same load generator and the same rows.

    python -m tests.bench.bench_gateway [--duration 10] [--rounds 2] [--connections 32] [--gateway-workers 1]

Not a test (pytest does not collect this file). It prints req/s, p50 and p99 for both and the ratio
(target: the gateway keeps >= 0.6 of the direct throughput) and writes ``.run/bench/gateway-<time>.{json,md}``.
The load generator, the server wrapper and the seeding come from ``tests.bench.bench_products``.

The gateway runs as deployed (rate limits on, but raised through its settings so the benchmark measures
forwarding, not refusals; access log at INFO; metrics; request IDs and trace context). Both share the
machine's CPUs with PostgreSQL and the load generator, so the ratio is what matters, not the absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.runner.postgres import PostgresServer
from tests.bench.bench_products import Result, run_httpx, run_wrk, save_report, seed, summarize, table
from tests.support.procs import ServiceProcess, free_port


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per target")
    parser.add_argument("--rounds", type=int, default=2, help="measured runs per target (interleaved)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=10, help="the products service's asyncpg pool size")
    parser.add_argument("--gateway-workers", type=int, default=1)
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of both (INFO logs every request)")
    parser.add_argument("--generator", choices=["auto", "wrk", "httpx"], default="auto")
    args = parser.parse_args()

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    load = run_wrk if generator == "wrk" else run_httpx
    print(
        f"load generator: {generator} ({args.connections} connections, {args.duration:.0f} s x "
        f"{args.rounds} rounds per target after {args.warmup:.0f} s warm-up); "
        f"gateway workers: {args.gateway_workers}"
    )

    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    workdir.chmod(0o700)
    pg = PostgresServer(port=free_port())
    pg.init()
    pg.start()
    servers: list[ServiceProcess] = []
    try:
        database = f"products_bench_{uuid.uuid4().hex[:8]}"
        pg.psql(f'CREATE DATABASE "{database}"')
        keys_only = DeployTarget(keyring=KeyRing.generate())
        products = ServiceProcess(
            "products",
            {
                **deployment_environment("products", keys_only),
                "DATABASE_URL": pg.url(database),
                "DB_POOL_MIN": str(args.pool),
                "DB_POOL_MAX": str(args.pool),
                "ENVIRONMENT": "prod",
                "LOG_LEVEL": args.log_level,
            },
            workdir,
        )
        servers.append(products)
        products.start()
        ids = seed(pg, database, args.products)
        raised = "1000000"
        # As deployed: --workers N, and TRUSTED_PROXIES (not uvicorn) decides about X-Forwarded-For.
        gateway = ServiceProcess(
            "gateway",
            {
                **deployment_environment("gateway", keys_only),
                "ENVIRONMENT": "prod",
                "LOG_LEVEL": args.log_level,
                "SERVICE_URLS": json.dumps({"products": products.url}),
                "UPSTREAMS": "products",
                "RATE_LIMIT_STATE_PATH": str(workdir / "ratelimit" / "buckets.bin"),
                "RATE_LIMIT_CLIENT_BURST": raised,
                "RATE_LIMIT_CLIENT_PER_S": raised,
                "RATE_LIMIT_USER_BURST": raised,
                "RATE_LIMIT_USER_PER_S": raised,
            },
            workdir,
            server_args=("--workers", str(args.gateway_workers)),
        )
        servers.append(gateway)
        gateway.start()
        direct = httpx.get(f"{products.url}/api/v1/products/{ids[0]}")
        proxied = httpx.get(f"{gateway.url}/api/v1/products/{ids[0]}")
        assert proxied.status_code == 200, proxied.text
        assert proxied.json() == direct.json()

        targets = [("direct to products", products.url), ("through the gateway", gateway.url)]
        for name, base in targets:
            load(name, base, "/api/v1/products/", ids, args.warmup, args.connections, workdir)
        runs: dict[str, list[Result]] = {name: [] for name, _ in targets}
        for _ in range(args.rounds):
            for name, base in targets:
                result = load(name, base, "/api/v1/products/", ids, args.duration, args.connections, workdir)
                runs[name].append(result)
                print(
                    f"  {name:<22} {result.requests_per_s:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}"
                )
    finally:
        for server in servers:
            server.stop()
        pg.destroy()

    summary = summarize(runs)
    ratio = summary["through the gateway"]["requests_per_s"] / summary["direct to products"]["requests_per_s"]
    save_report(
        "gateway",
        [
            f"# GET /api/v1/products/{{id}}: direct vs through the gateway ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Load generator: {generator}, {args.connections} connections, {args.rounds} x {args.duration:.0f} s per "
            f"target (interleaved, after {args.warmup:.0f} s warm-up); {len(ids)} products, random id per request; "
            f"products: one uvicorn worker, asyncpg pool {args.pool}; gateway: {args.gateway_workers} worker(s), "
            f"rate limits on but raised; LOG_LEVEL {args.log_level}; {os.cpu_count()} CPUs shared by everything "
            "(load generator, PostgreSQL, both services).",
            "",
            *table(summary),
            "",
            f"Ratio (gateway / direct, req/s, medians of {args.rounds} rounds): **{ratio:.2f}** (target >= 0.60)",
        ],
        {
            "generator": generator,
            "connections": args.connections,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "products": len(ids),
            "gateway_workers": args.gateway_workers,
            "ratio": ratio,
            "summary": summary,
            "runs": {name: [asdict(r) for r in rs] for name, rs in runs.items()},
        },
    )
    return 0 if not any(s["errors"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
