"""Benchmark (issue 4): the one-machine stack as users run it.

    python -m tests.bench.bench_stack [--duration 10] [--rounds 3] [--connections 32] [--mix-seconds 30]

Starts the stack with the runner (its own run directory and shifted ports, rate limits raised), then
reports, in one run:
- start-to-ready: seconds from `up` to every process ready, cold (first start: initdb, migrations) and warm;
- ``GET /api/v1/products/{id}`` direct to products, through the gateway, and through nginx (TLS) → gateway,
  interleaved rounds with wrk (medians) — the edge's cost is edge ÷ gateway;
- the realistic shop mix (tests/bench/locustfile.py) through the edge with Locust: req/s, p50, p99, failures.
Writes ``.run/bench/stack-<time>.{json,md}``. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.runner.layout import Layout
from tests.bench.bench_products import OUT, Result, run_wrk
from tests.support.procs import ROOT, stat

# Benchmarks measure throughput, not the limiter: raise every limit far above what 2 cores can send.
UNLIMITED = {"RATE_LIMIT_CLIENT_PER_S": "1000000", "RATE_LIMIT_CLIENT_BURST": "1000000",
             "RATE_LIMIT_USER_PER_S": "1000000", "RATE_LIMIT_USER_BURST": "1000000",
             "RATE_LIMIT_LOGIN_PER_S": "1000000", "RATE_LIMIT_LOGIN_BURST": "1000000",
             "LOG_LEVEL": "INFO"}


def runner(layout: Layout, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.runner", "--run-dir", str(layout.run_dir),
                           "--port-offset", str(layout.port_offset), *args],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def start(layout: Layout) -> float:
    # One gateway replica: the edge's cost is then measured against exactly the path it fronts.
    up = runner(layout, "up", "--gateway-replicas", "1", env=UNLIMITED)
    if up.returncode != 0:
        raise SystemExit(f"stack did not start:\n{up.stdout}\n{up.stderr}")
    match = re.search(r"up in ([\d.]+)s", up.stdout)
    assert match, up.stdout
    return float(match.group(1))


def _stack_cpu_seconds(layout: Layout) -> float:
    """CPU time (user + system) of every process the stack's supervisor runs, and their children: the
    servers' cost of the requests, without the load generator's (wrk encrypts TLS on the same cores)."""
    state = json.loads(layout.state_file.read_text())
    roots = {int(c["pid"]) for c in state["children"].values() if c.get("pid")}
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)], times[int(entry.name)] = stat(int(entry.name))
        except OSError:  # the process ended while we looked
            continue
    total = 0.0
    for pid, cpu in times.items():
        p = pid
        while p > 1 and p not in roots:
            p = parents.get(p, 0)
        if p in roots:
            total += cpu
    return total


def product_ids(layout: Layout) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{layout.url('products')}/api/v1/products", params=params).json()
        ids += [p["id"] for p in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids


def run_mix(layout: Layout, seconds: int, users: int, workdir: Path) -> dict[str, float]:
    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    prefix = workdir / "mix"
    env = {"BENCH_CA_FILE": str(layout.tls / "ca.pem"), "PYTHONPATH": str(ROOT)}
    subprocess.run([locust, "-f", str(ROOT / "tests/bench/locustfile.py"), "--headless", "-u", str(users),
                    "-r", str(users), "-t", f"{seconds}s", "--host", f"https://localhost:{layout.edge_https}",
                    "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
                   cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False,
                   timeout=seconds + 120)
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    per_route = {r["Name"]: float(r["Requests/s"]) for r in rows if r["Name"] != "Aggregated"}
    return {"requests_per_s": float(total["Requests/s"]), "p50_ms": float(total["50%"]),
            "p99_ms": float(total["99%"]), "requests": float(total["Request Count"]),
            "failures": float(total["Failure Count"]), "users": users, "seconds": seconds,
            "per_route_rps": per_route}  # type: ignore[dict-item]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mix-seconds", type=int, default=30)
    parser.add_argument("--mix-users", type=int, default=32)
    parser.add_argument("--port-offset", type=int, default=22000, help="keep ports below 32768 (ephemeral)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for this benchmark: apt-get install wrk (make deps does it)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    layout = Layout(workdir / "run", port_offset=args.port_offset)
    cold = start(layout)
    runner(layout, "down")
    warm = start(layout)
    print(f"start-to-ready: cold {cold:.1f} s, warm {warm:.1f} s")
    try:
        ids = product_ids(layout)
        targets = [("products direct", layout.url("products")),
                   ("gateway → products", layout.url("gateway")),
                   ("nginx TLS → gateway → products", f"https://127.0.0.1:{layout.edge_https}")]
        for name, base in targets:
            run_wrk(name, base, "/api/v1/products/", ids, args.warmup, args.connections, workdir)
        runs: dict[str, list[Result]] = {name: [] for name, _ in targets}
        for _ in range(args.rounds):
            for name, base in targets:
                cpu_before = _stack_cpu_seconds(layout)
                result = run_wrk(name, base, "/api/v1/products/", ids, args.duration, args.connections, workdir)
                result.cpu_us_per_request = (_stack_cpu_seconds(layout) - cpu_before) / max(result.requests, 1) * 1e6
                runs[name].append(result)
                print(f"  {name:<32} {result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                      f"p99 {result.p99_ms:6.2f} ms  server CPU {result.cpu_us_per_request:4.0f} us/req  "
                      f"errors {result.errors}")
        mix = run_mix(layout, args.mix_seconds, args.mix_users, workdir)
        print(f"  shop mix via edge: {mix['requests_per_s']:.0f} req/s, p50 {mix['p50_ms']:.0f} ms, "
              f"p99 {mix['p99_ms']:.0f} ms, failures {mix['failures']:.0f} of {mix['requests']:.0f}")
    finally:
        runner(layout, "down")

    summary = {name: {"requests_per_s": statistics.median(r.requests_per_s for r in rs),
                      "p50_ms": statistics.median(r.p50_ms for r in rs),
                      "p99_ms": statistics.median(r.p99_ms for r in rs),
                      "cpu_us_per_request": statistics.median(r.cpu_us_per_request for r in rs),
                      "errors": sum(r.errors for r in rs)} for name, rs in runs.items()}
    gw_path, edge_path = summary["gateway → products"], summary["nginx TLS → gateway → products"]
    edge_cost = 1 - edge_path["requests_per_s"] / gw_path["requests_per_s"]
    edge_cpu_cost = edge_path["cpu_us_per_request"] / gw_path["cpu_us_per_request"] - 1
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        f"# One-machine stack benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Start-to-ready: cold {cold:.1f} s (initdb, migrations), warm {warm:.1f} s (target < 15 s).",
        "",
        f"`GET /api/v1/products/{{id}}`, wrk, {args.connections} connections, median of {args.rounds} x "
        f"{args.duration:.0f} s (interleaved), {len(ids)} products:",
        "",
        "| path | req/s | p50 ms | p99 ms | server CPU µs/request | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {n} | {s['requests_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
          f"{s['cpu_us_per_request']:.0f} | {s['errors']} |" for n, s in summary.items()),
        "",
        f"nginx edge cost on the gateway path (target ≤ 10 %): {edge_cost:.1%} of throughput, "
        f"{edge_cpu_cost:.1%} more server CPU per request. The throughput figure also pays for wrk's own TLS "
        "work, which runs on the same two cores as the servers; the CPU figure counts only the stack's processes.",
        "",
        f"Shop mix through the edge (Locust, {args.mix_users} users, {args.mix_seconds} s): "
        f"{mix['requests_per_s']:.0f} req/s, p50 {mix['p50_ms']:.0f} ms, p99 {mix['p99_ms']:.0f} ms, "
        f"{mix['failures']:.0f} failures of {mix['requests']:.0f} requests.",
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"stack-{stamp}.md").write_text("\n".join(lines) + "\n")
    (OUT / f"stack-{stamp}.json").write_text(json.dumps({
        "startup_cold_s": cold, "startup_warm_s": warm, "paths": summary, "edge_cost": edge_cost,
        "edge_cpu_cost": edge_cpu_cost,
        "mix": mix}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
