"""``make bench``: every benchmark of the project in one run, and one report with a plot.

Runs, one after the other (they would otherwise compete for the 2 cores):
products vs. a minimal FastAPI+asyncpg endpoint, direct vs. through the gateway and confirmed orders per
second, the nginx edge, the shop mix and start-to-ready, bursts of new TLS connections through the edge.
Each writes its own JSON into ``.run/bench/``; this script reads the newest of each and writes ``report.md`` and
``report.png`` there. Figures are printed, never asserted: speed is judged by a person reading ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.bench_products import OUT
from tests.support.procs import ROOT

BENCHES = {
    "products": ["tests.bench.bench_products"],
    "gateway": ["tests.bench.bench_gateway"],
    "orders": ["tests.bench.bench_orders"],
    "stack": ["tests.bench.bench_stack"],
    "burst": ["tests.bench.bench_burst"],
    "tls": ["tests.bench.bench_tls"],
}


def newest(prefix: str, since: float) -> dict[str, Any] | None:
    files = [p for p in OUT.glob(f"{prefix}-*.json") if p.stat().st_mtime >= since]
    if not files:
        return None
    doc: dict[str, Any] = json.loads(max(files, key=lambda p: p.stat().st_mtime).read_text())
    return doc


def plot(rows: list[tuple[str, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r[0] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.barh(names, [r[1] for r in rows], color="#4C72B0")
    left.set_xlabel("requests/s (higher is better)")
    left.invert_yaxis()
    right.barh(names, [r[2] for r in rows], color="#DD8452")
    right.set_xlabel("p99 latency, ms (lower is better)")
    right.invert_yaxis()
    right.set_yticklabels([])
    fig.suptitle("GET /api/v1/products/{id}, 32 connections, 2 cores shared by everything")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only these (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shorter runs (1 round of 5 s) for a smoke check")
    args = parser.parse_args()
    began = time.time()
    quick = {
        "products": ["--rounds", "1", "--duration", "5"],
        "gateway": ["--rounds", "1", "--duration", "5"],
        "orders": ["--duration", "10"],
        "stack": ["--rounds", "1", "--duration", "5", "--mix-rounds", "1", "--mix-seconds", "10"],
        "burst": ["--rounds", "1", "--views", "200"],
    }
    failed = []
    for name, module in BENCHES.items():
        if args.only and name not in args.only:
            continue
        extra = quick.get(name, []) if args.quick else []
        print(f"== {name} ==", flush=True)
        result = subprocess.run([sys.executable, "-m", *module, *extra], cwd=ROOT)
        if result.returncode != 0:
            failed.append(name)

    products, gateway = newest("products", began), newest("gateway", began)
    orders, stack = newest("orders", began), newest("stack", began)
    bursts = newest("burst", began)
    lines = [
        f"# Benchmark report ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        "All figures from one `make bench` run on this machine; medians of interleaved rounds.",
        "",
        "| measure | figure | target |",
        "|---|---|---|",
    ]
    rows: list[tuple[str, float, float]] = []
    if products:
        s = products["summary"]
        svc, ceiling = s["products service"], s["minimal FastAPI+asyncpg"]
        lines.append(
            f"| products service vs minimal FastAPI+asyncpg (req/s) | {svc['requests_per_s']:.0f} vs "
            f"{ceiling['requests_per_s']:.0f} = **{products['ratio']:.2f}** | ≥ 0.80 |"
        )
        rows += [
            ("minimal FastAPI+asyncpg", ceiling["requests_per_s"], ceiling["p99_ms"]),
            ("products service", svc["requests_per_s"], svc["p99_ms"]),
        ]
    if gateway:
        names = list(gateway["summary"])
        direct, via = gateway["summary"][names[0]], gateway["summary"][names[1]]
        lines.append(
            f"| through the gateway vs direct (req/s) | {via['requests_per_s']:.0f} vs "
            f"{direct['requests_per_s']:.0f} = **{gateway['ratio']:.2f}** | ≥ 0.60 |"
        )
        rows.append(("gateway → products", via["requests_per_s"], via["p99_ms"]))
    if orders:
        ok = not orders["oversold_products"] and not orders["ledger_problems"]
        lines.append(
            f"| confirmed orders/s, {orders['buyers']} buyers ({orders['target']}) | "
            f"**{orders['confirmed_orders_per_s']}** (p99 {orders['latency_p99_ms']} ms; oversell and "
            f"ledger {'clean' if ok else 'NOT CLEAN'}) | (the target is through the gateway) |"
        )
        if "via_gateway" in orders:
            g = orders["via_gateway"]
            lines.append(
                f"| confirmed orders/s, {orders['buyers']} buyers, through the gateway | "
                f"**{g['confirmed_orders_per_s']}** (p99 {g['latency_p99_ms']} ms) | ≥ 200 |"
            )
    if stack:
        edge, gw = stack["paths"]["nginx TLS → gateway → products"], stack["paths"]["gateway → products"]
        lines.append(
            f"| nginx TLS edge cost on the gateway path, cheapest request | throughput "
            f"{edge['requests_per_s']:.0f} vs {gw['requests_per_s']:.0f} req/s = **{stack['edge_cost']:.1%}**;"
            f" server CPU per request **{stack['edge_cpu_cost']:+.1%}** | ≤ 10 % |"
        )
        if stack.get("relay_cost"):
            lost, cpu = stack["relay_cost"]
            lines.append(
                f"| for scale: a bare TCP relay in place of nginx (socat: no TLS, no HTTP) | "
                f"throughput **{lost:.1%}**; server CPU per request **{cpu:+.1%}** | — |"
            )
        mix = stack["mix"]
        direct, via = mix["direct to the gateway"], mix["through the edge"]
        lines.append(
            f"| nginx TLS edge cost on the shop mix (Locust, {via['users']:.0f} users) | throughput "
            f"{via['requests_per_s']:.0f} vs {direct['requests_per_s']:.0f} req/s = "
            f"**{stack['mix_edge_cost']:.1%}**; server CPU per request **{stack['mix_edge_cpu_cost']:+.1%}**;"
            f" p99 {via['p99_ms']:.0f} vs {direct['p99_ms']:.0f} ms; {via['failures']:.0f} failures"
            " | ≤ 10 % |"
        )
        page = stack["paths"].get("nginx TLS → storefront page → gateway → products")
        if page:
            lines.append(
                f"| storefront product page through the edge, against the API read it wraps | "
                f"**{page['requests_per_s']:.0f}** vs {edge['requests_per_s']:.0f} req/s = "
                f"**{stack['storefront_page_vs_api_read']:.2f} x**; server CPU "
                f"{page['cpu_us_per_request']:.0f} vs {edge['cpu_us_per_request']:.0f} µs/request | — |"
            )
        lines.append(
            f"| start-to-ready (cold / warm) | **{stack['startup_cold_s']:.1f} s / "
            f"{stack['startup_warm_s']:.1f} s** | < 15 s |"
        )
        for name, a in stack.get("authenticated", {}).items():
            per = ", ".join(f"{p} {us:.0f}" for p, us in a["cpu_us_per_process"].items() if us >= 20)
            lines.append(
                f"| {name} via the gateway: server CPU per request ({per}) | **{a['cpu_us_per_request']:.0f}"
                f" µs**, **{a['cpu_ratio_to_anonymous']:.2f} x** the anonymous product read; "
                f"{a['requests_per_s']:.0f} req/s, p99 {a['p99_ms']:.0f} ms | ≤ 800 µs, ≈ 2 x |"
            )
        rows += [(f"{name} (stack)", p["requests_per_s"], p["p99_ms"]) for name, p in stack["paths"].items()]
    if bursts:
        for name, b in bursts["summary"].items():
            lines.append(
                f"| burst through the edge: {b['clients']} {name} at once, each on a new TLS connection | "
                f"**{b['server_errors']}** 5xx of {b['answers']}; p99 {b['p99_ms']:.0f} ms | 0 5xx |"
            )
    if failed:
        lines += ["", f"Benchmarks that reported a problem (see their output): {', '.join(failed)}"]
    OUT.mkdir(parents=True, exist_ok=True)
    if rows:
        plot(rows, OUT / "report.png")
        lines += ["", "![req/s and p99 per path](report.png)"]
    (OUT / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nreport: {OUT / 'report.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
