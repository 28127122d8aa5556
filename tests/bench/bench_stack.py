"""Benchmark: the one-machine stack as users run it.

    python -m tests.bench.bench_stack [--duration 10] [--rounds 3] [--connections 32] [--mix-seconds 30]

Starts the stack with the runner (its own run directory and shifted ports, rate limits raised), then
reports, in one run:
- start-to-ready: seconds from `up` to every process ready, cold (first start: initdb, migrations) and warm;
- ``GET /api/v1/products/{id}`` direct to products, through the gateway, through nginx (TLS) → gateway, and
  through a bare TCP relay (socat, when installed) → gateway, interleaved rounds with wrk (medians). The
  edge's cost is edge ÷ gateway; the relay's gives it scale: what one more process that only copies bytes
  (no TLS, no HTTP) costs on this host;
- the storefront's product page through the edge, next to the API read it wraps;
- the realistic shop mix (tests/bench/locustfile.py) with Locust, direct to the gateway and through the edge:
  req/s, p50, p99, failures, server CPU per request;
- the authenticated path through the gateway (``GET /api/v1/users/{id}`` of the caller's own account,
  ``/api/v1/users/me``, ``GET /api/v1/orders``) next to the anonymous product read, interleaved rounds with
  wrk: server CPU per request per process (PostgreSQL included) and the ratio to the anonymous read
  (``--auth-only`` runs just these rows; with ``--baseline DIR``, a second stack from another checkout runs
  them too, its rows alternating with this tree's in every round: before/after on a busy host).
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
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.runner.layout import Layout
from tests.bench.bench_products import WRK_DONE, Result, run_wrk, save_report, summarize, table, wrk_result
from tests.support.procs import ROOT, process_table, stat

# Benchmarks measure throughput, not the limiter: raise every limit far above what 2 cores can send.
UNLIMITED = {
    "RATE_LIMIT_CLIENT_PER_S": "1000000",
    "RATE_LIMIT_CLIENT_BURST": "1000000",
    "RATE_LIMIT_USER_PER_S": "1000000",
    "RATE_LIMIT_USER_BURST": "1000000",
    "RATE_LIMIT_LOGIN_PER_S": "1000000",
    "RATE_LIMIT_LOGIN_BURST": "1000000",
    "RATE_LIMIT_PASSWORD_PER_S": "1000000",
    "RATE_LIMIT_PASSWORD_BURST": "1000000",
    # Sign-ups of the shop mix's users arrive at once; the hashing queue is not what is measured.
    "NEW_PASSWORD_QUEUE_MAX": "10000",
    "LOG_LEVEL": "INFO",
}
GATEWAY, EDGE, RELAY = (
    "gateway → products",
    "nginx TLS → gateway → products",
    "bare TCP relay (socat) → gateway → products",
)
# The storefront's product page (HTML, one API read behind it) through the same edge as the API read it wraps.
STOREFRONT = "nginx TLS → storefront page → gateway → products"
API_PREFIX, PAGE_PREFIX = "/api/v1/products/", "/products/"


ANON = "GET /api/v1/products/{id} (anonymous)"
AUTH_ROWS = {
    ANON: "/api/v1/products/%(product)s",
    "GET /api/v1/users/{id} (own)": "/api/v1/users/%(user)s",
    "GET /api/v1/users/me": "/api/v1/users/me",
    "GET /api/v1/orders": "/api/v1/orders?limit=20",
}
AUTH_USERS = 32
ORDERS_PER_USER = 2

_AUTH_LUA = (
    """
local callers = {%s}
local paths = {%s}
local anonymous = %s
local n = 0
request = function()
  n = n + 1
  local i = (n %% #callers) + 1
  if anonymous then return wrk.format("GET", paths[i]) end
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer " .. callers[i]})
end
"""
    + WRK_DONE
)


def runner(
    layout: Layout, *args: str, env: dict[str, str] | None = None, root: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """The runner of the code tree ``root`` (this one, or a baseline's: ``--baseline``) on ``layout``."""
    return subprocess.run(
        layout.runner_command(*args),
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
        timeout=300,
    )


def _plain(root: Path) -> list[str]:
    """``--plaintext-services`` (wrk and Locust reach the services directly, without a client certificate),
    for a checkout whose runner has it; one from before the services spoke TLS is plain anyway."""
    flag = "--plaintext-services"
    return [flag] if flag in (root / "services" / "runner" / "__main__.py").read_text() else []


def start(layout: Layout, root: Path = ROOT) -> float:
    # One gateway replica: the edge's cost is then measured against exactly the path it fronts.
    up = runner(layout, "up", "--gateway-replicas", "1", *_plain(root), env=UNLIMITED, root=root)
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
    processes = process_table()
    total = 0.0
    for pid, (_, cpu) in processes.items():
        p = pid
        while p > 1 and p not in roots:
            p = processes[p][0] if p in processes else 0
        if p in roots:
            total += cpu
    return total


def _cpu_by_process(layout: Layout) -> dict[str, float]:
    """CPU seconds so far of each process the supervisor runs (with its children: uvicorn workers), and of
    the embedded PostgreSQL (its postmaster and backends), by name."""
    state = json.loads(layout.state_file.read_text())
    roots = {int(c["pid"]): name for name, c in state["children"].items() if c.get("pid")}
    plan = json.loads((layout.run_dir / "plan.json").read_text())
    pg = plan.get("embedded_pg")
    pidfile = Path(pg["datadir"]) / "data" / "postmaster.pid" if pg else None
    if pidfile and pidfile.exists():
        roots.setdefault(int(pidfile.read_text().split()[0]), "postgres")
    processes = process_table()
    totals = dict.fromkeys(roots.values(), 0.0)
    for pid, (_, cpu) in processes.items():
        p = pid
        while p > 1 and p not in roots:
            p = processes[p][0] if p in processes else 0
        if p in roots:
            totals[roots[p]] += cpu
    return totals


def _callers(layout: Layout, product_ids: list[str]) -> list[tuple[str, str]]:
    """(access token, user id) of AUTH_USERS new customers, each with ORDERS_PER_USER confirmed orders (so
    the order list is not empty)."""
    gateway = layout.url("gateway")
    callers = []
    with httpx.Client(base_url=gateway, timeout=60.0) as client:
        for n in range(AUTH_USERS):
            email, password = f"bench-{uuid.uuid4().hex[:10]}@example.com", "bench password 1"
            user = client.post("/api/v1/users", json={"email": email, "password": password, "name": "Bench"})
            user.raise_for_status()
            session = client.post("/api/v1/sessions", json={"email": email, "password": password})
            session.raise_for_status()
            token = session.json()["access_token"]
            for k in range(ORDERS_PER_USER):
                order = client.post(
                    "/api/v1/orders",
                    headers={"authorization": f"Bearer {token}", "idempotency-key": uuid.uuid4().hex},
                    json={
                        "items": [{"product_id": product_ids[(n + k) % len(product_ids)], "quantity": 1}],
                        "payment": {
                            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
                        },
                    },
                )
                order.raise_for_status()
            callers.append((token, user.json()["id"]))
    return callers


def _run_wrk_auth(
    name: str,
    base: str,
    callers: list[tuple[str, str]],
    product_ids: list[str],
    duration: float,
    connections: int,
    workdir: Path,
) -> Result:
    template = AUTH_ROWS[name]
    paths = [
        template % {"user": uid, "product": product_ids[i % len(product_ids)]} for i, (_, uid) in enumerate(callers)
    ]
    script = workdir / "auth.lua"
    script.write_text(
        _AUTH_LUA
        % (
            ",".join(f'"{t}"' for t, _ in callers),
            ",".join(f'"{p}"' for p in paths),
            "true" if name == ANON else "false",
        )
    )
    wrk = shutil.which("wrk")
    assert wrk is not None
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{int(duration)}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return wrk_result(name, out)


def _row(name: str, label: str) -> str:
    return f"{name} [{label}]" if label else name


def measure_authenticated(
    stacks: dict[str, Layout], args: argparse.Namespace, workdir: Path
) -> dict[str, dict[str, Any]]:
    """The authenticated rows and the anonymous product read, through the gateway, interleaved rounds
    (wrk, 1 thread): medians of req/s, p50, p99, and of server CPU per request, in total and per process.
    ``stacks`` maps a label to a running stack: one with the label "" (rows named as in AUTH_ROWS), or
    several (a baseline's code next to this one's), whose rows alternate within each round and are named
    ``<row> [<label>]``; each row's ratio is to the anonymous read of its own stack."""
    setup = {}
    for label, layout in stacks.items():
        ids = product_ids(layout)
        setup[label] = (layout, layout.url("gateway"), ids, _callers(layout, ids))
    for _, base, ids, callers in setup.values():
        for name in AUTH_ROWS:
            _run_wrk_auth(name, base, callers, ids, args.warmup, args.connections, workdir)
    runs: dict[str, list[tuple[Result, dict[str, float]]]] = {
        _row(name, label): [] for name in AUTH_ROWS for label in stacks
    }
    for _ in range(args.rounds):
        for name in AUTH_ROWS:
            for label, (layout, base, ids, callers) in setup.items():
                row = _row(name, label)
                before = _cpu_by_process(layout)
                result = _run_wrk_auth(name, base, callers, ids, args.duration, args.connections, workdir)
                after = _cpu_by_process(layout)
                per_process = {
                    p: (after.get(p, 0.0) - cpu) / max(result.requests, 1) * 1e6 for p, cpu in before.items()
                }
                result.cpu_us_per_request = sum(per_process.values())
                runs[row].append((result, per_process))
                print(
                    f"  {row:<44} {result.requests_per_s:7.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  server CPU {result.cpu_us_per_request:4.0f} us/req  "
                    f"({', '.join(f'{p} {us:.0f}' for p, us in per_process.items() if us >= 5)})  "
                    f"errors {result.errors}"
                )
    summary: dict[str, dict[str, Any]] = dict(summarize({name: [r for r, _ in rs] for name, rs in runs.items()}))
    for name in AUTH_ROWS:
        for label in stacks:
            row, rs = _row(name, label), runs[_row(name, label)]
            processes = sorted({p for _, per in rs for p in per})
            summary[row]["cpu_us_per_process"] = {
                p: statistics.median(per.get(p, 0.0) for _, per in rs) for p in processes
            }
            summary[row]["cpu_ratio_to_anonymous"] = (
                summary[row]["cpu_us_per_request"] / summary[_row(ANON, label)]["cpu_us_per_request"]
            )
    return summary


def auth_table(summary: dict[str, dict[str, Any]]) -> list[str]:
    processes = [
        p
        for p in ("gateway", "users", "orders", "products", "postgres")
        if any(s["cpu_us_per_process"].get(p, 0) >= 1 for s in summary.values())
    ]
    return [
        "| request | req/s | p50 ms | p99 ms | server CPU µs/request | "
        + " | ".join(processes)
        + " | ratio to anonymous | errors |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(processes) + "---:|---:|",
        *(
            f"| {name} | {s['requests_per_s']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['cpu_us_per_request']:.0f} | "
            + " | ".join(f"{s['cpu_us_per_process'].get(p, 0.0):.0f}" for p in processes)
            + f" | {s['cpu_ratio_to_anonymous']:.2f} x | {s['errors']:.0f} |"
            for name, s in summary.items()
        ),
    ]


@contextmanager
def tcp_relay(layout: Layout) -> Iterator[subprocess.Popen[bytes] | None]:
    """socat forwarding a spare port (the edge's + 1) to the gateway, one forked process per connection;
    None when socat is not installed (``make deps`` installs it)."""
    socat = shutil.which("socat")
    if socat is None:
        print("socat not found: the bare-relay row is skipped (apt-get install socat)")
        yield None
        return
    port = layout.edge_https + 1
    proc = subprocess.Popen(
        [socat, f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", f"TCP:127.0.0.1:{layout.port('gateway')}"]
    )
    try:
        for _ in range(50):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:  # socat not listening yet
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"socat on port {port} did not relay to the gateway within 5 s (port in use?)")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _relay_cpu_seconds(relay: subprocess.Popen[bytes]) -> float:
    """socat's CPU time including its ended per-connection children (waits until wrk's are reaped)."""
    for _ in range(50):
        if all(parent != relay.pid for parent, _ in process_table().values()):
            break
        time.sleep(0.1)
    return stat(relay.pid, reaped_children=True)[1]


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


def run_mix(layout: Layout, host: str, seconds: int, users: int, workdir: Path) -> dict[str, float]:
    locust = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    prefix = workdir / "mix"
    env = {"BENCH_CA_FILE": str(layout.tls / "ca.pem"), "PYTHONPATH": str(ROOT)}
    cpu_before = _stack_cpu_seconds(layout)
    subprocess.run(
        [
            locust,
            "-f",
            str(ROOT / "tests/bench/locustfile.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{seconds}s",
            "--host",
            host,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    cpu = _stack_cpu_seconds(layout) - cpu_before
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    per_route = {r["Name"]: float(r["Requests/s"]) for r in rows if r["Name"] != "Aggregated"}
    requests = float(total["Request Count"])
    return {
        "requests_per_s": float(total["Requests/s"]),
        "p50_ms": float(total["50%"]),
        "p99_ms": float(total["99%"]),
        "requests": requests,
        "cpu_us_per_request": cpu / max(requests, 1) * 1e6,
        "failures": float(total["Failure Count"]),
        "users": users,
        "seconds": seconds,
        "per_route_rps": per_route,  # type: ignore[dict-item]
    }


def measure_paths(
    layout: Layout, args: argparse.Namespace, workdir: Path, relay: subprocess.Popen[bytes] | None
) -> dict[str, list[Result]]:
    ids = product_ids(layout)
    edge = f"https://127.0.0.1:{layout.edge_https}"
    targets = [
        ("products direct", layout.url("products"), API_PREFIX),
        (GATEWAY, layout.url("gateway"), API_PREFIX),
        (EDGE, edge, API_PREFIX),
    ]
    if relay is not None:
        targets.append((RELAY, f"http://127.0.0.1:{layout.edge_https + 1}", API_PREFIX))
    targets.append((STOREFRONT, edge, PAGE_PREFIX))

    def cpu_seconds(name: str) -> float:
        return _stack_cpu_seconds(layout) + (_relay_cpu_seconds(relay) if relay and name == RELAY else 0.0)

    for name, base, prefix in targets:
        run_wrk(name, base, prefix, ids, args.warmup, args.connections, workdir)
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
    for _ in range(args.rounds):
        for name, base, prefix in targets:
            cpu_before = cpu_seconds(name)
            result = run_wrk(name, base, prefix, ids, args.duration, args.connections, workdir)
            result.cpu_us_per_request = (cpu_seconds(name) - cpu_before) / max(result.requests, 1) * 1e6
            runs[name].append(result)
            print(
                f"  {name:<44} {result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  server CPU {result.cpu_us_per_request:4.0f} us/req  "
                f"errors {result.errors}"
            )
    return runs


def measure_mix(layout: Layout, args: argparse.Namespace, workdir: Path) -> dict[str, dict[str, float]]:
    """The shop mix direct to the gateway and through the edge, alternated (orders change the data as the
    rounds go); of each, the run with the median req/s (the upper one of an even count)."""
    hosts = {
        "direct to the gateway": layout.url("gateway"),
        "through the edge": f"https://localhost:{layout.edge_https}",
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in hosts}
    for _ in range(args.mix_rounds):
        for name, host in hosts.items():
            mix = run_mix(layout, host, args.mix_seconds, args.mix_users, workdir)
            runs[name].append(mix)
            print(
                f"  shop mix {name}: {mix['requests_per_s']:.0f} req/s, p50 {mix['p50_ms']:.0f} ms, "
                f"p99 {mix['p99_ms']:.0f} ms, server CPU {mix['cpu_us_per_request']:.0f} us/req, "
                f"failures {mix['failures']:.0f} of {mix['requests']:.0f}"
            )
    return {name: sorted(rs, key=lambda m: m["requests_per_s"])[len(rs) // 2] for name, rs in runs.items()}


def _auth_report(auth: dict[str, dict[str, Any]], args: argparse.Namespace) -> list[str]:
    return [
        f"Authenticated reads through the gateway (wrk, 1 thread, {args.connections} connections, "
        f"{AUTH_USERS} callers, median of {args.rounds} x {args.duration:.0f} s, interleaved), server CPU "
        "per request per process and its ratio to the anonymous product read of the same run "
        "(target ≤ 800 µs and about 2 x):",
        "",
        *auth_table(auth),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mix-seconds", type=int, default=20)
    parser.add_argument("--mix-rounds", type=int, default=2)
    parser.add_argument("--mix-users", type=int, default=32)
    parser.add_argument("--port-offset", type=int, default=22000, help="keep ports below 32768 (ephemeral)")
    parser.add_argument(
        "--auth-only",
        action="store_true",
        help="only the authenticated rows and their anonymous baseline (profiling that path)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="with --auth-only: a checkout of other code (`git archive REV | tar -x -C DIR`), run as a second "
        "stack with this venv; its rows alternate with this tree's in every round (before/after)",
    )
    parser.add_argument("--baseline-port-offset", type=int, default=18000)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for this benchmark: apt-get install wrk (make deps does it)")
    if min(args.duration, args.rounds, args.connections, args.mix_seconds, args.mix_rounds, args.mix_users) <= 0:
        raise SystemExit("--duration, --rounds, --connections and the --mix-* values must be positive")

    if args.baseline is not None and not (args.auth_only and (args.baseline / "services/runner").is_dir()):
        raise SystemExit("--baseline needs --auth-only and a checkout of this repository (services/runner in it)")

    workdir = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    layout = Layout(workdir / "run", port_offset=args.port_offset)
    if args.auth_only:
        stacks = {"": layout}
        baseline = Layout(workdir / "baseline", port_offset=args.baseline_port_offset)
        try:
            start(layout)
            if args.baseline is not None:
                start(baseline, args.baseline.resolve())
                stacks = {"after": layout, "before": baseline}
            auth = measure_authenticated(stacks, args, workdir)
        finally:
            runner(layout, "down")
            if args.baseline is not None:
                runner(baseline, "down", root=args.baseline.resolve())
        save_report(
            "stack-auth",
            [f"# Authenticated path ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)", "", *_auth_report(auth, args)],
            {"authenticated": auth},
        )
        return 0
    cold = start(layout)
    runner(layout, "down")
    warm = start(layout)
    print(f"start-to-ready: cold {cold:.1f} s, warm {warm:.1f} s")
    try:
        with tcp_relay(layout) as relay:
            runs = measure_paths(layout, args, workdir, relay)
        auth = measure_authenticated({"": layout}, args, workdir)
        mix = measure_mix(layout, args, workdir)
    finally:
        runner(layout, "down")

    summary = summarize(runs)

    def cost(path: dict[str, float], base: dict[str, float]) -> tuple[float, float]:
        """(share of throughput lost, share of server CPU per request added) against ``base``."""
        return (
            1 - path["requests_per_s"] / base["requests_per_s"],
            path["cpu_us_per_request"] / base["cpu_us_per_request"] - 1,
        )

    edge_cost, edge_cpu_cost = cost(summary[EDGE], summary[GATEWAY])
    page, api_read = summary[STOREFRONT], summary[EDGE]
    relay_cost = cost(summary[RELAY], summary[GATEWAY]) if RELAY in summary else None
    mix_direct, mix_edge = mix["direct to the gateway"], mix["through the edge"]
    mix_cost, mix_cpu_cost = cost(mix_edge, mix_direct)
    save_report(
        "stack",
        [
            f"# One-machine stack benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Start-to-ready: cold {cold:.1f} s (initdb, migrations), warm {warm:.1f} s (target < 15 s).",
            "",
            f"`GET /api/v1/products/{{id}}`, wrk, {args.connections} connections, median of {args.rounds} x "
            f"{args.duration:.0f} s (interleaved):",
            "",
            *table(summary),
            "",
            f"nginx edge cost on the gateway path, cheapest request (target ≤ 10 %): {edge_cost:.1%} of throughput, "
            f"{edge_cpu_cost:+.1%} server CPU per request.",
            *(
                [
                    f"For scale, a bare TCP relay in place of nginx (socat: no TLS, no HTTP): {relay_cost[0]:.1%} of "
                    f"throughput, {relay_cost[1]:+.1%} server CPU per request."
                ]
                if relay_cost
                else []
            ),
            "Throughput figures also pay for the load generator, which runs on the same cores; the CPU figures count "
            "only the servers' processes.",
            f"The storefront's product page (server-rendered HTML around the same read, through the same edge): "
            f"{page['requests_per_s']:.0f} req/s, {page['requests_per_s'] / api_read['requests_per_s']:.2f} x the API "
            f"read's; {page['cpu_us_per_request']:.0f} µs server CPU per page, "
            f"{page['cpu_us_per_request'] / api_read['cpu_us_per_request']:.2f} x.",
            "",
            f"Shop mix (Locust, {args.mix_users} users, median of {args.mix_rounds} x {args.mix_seconds} s, "
            "interleaved):",
            "",
            "| path | req/s | p50 ms | p99 ms | server CPU µs/request | failures |",
            "|---|---:|---:|---:|---:|---:|",
            *(
                f"| {n} | {m['requests_per_s']:.0f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} | "
                f"{m['cpu_us_per_request']:.0f} | {m['failures']:.0f} of {m['requests']:.0f} |"
                for n, m in mix.items()
            ),
            "",
            f"nginx edge cost on the shop mix (target ≤ 10 %): {mix_cost:.1%} of throughput, {mix_cpu_cost:+.1%} "
            "server CPU per request.",
            "",
            *_auth_report(auth, args),
        ],
        {
            "authenticated": auth,
            "startup_cold_s": cold,
            "startup_warm_s": warm,
            "paths": summary,
            "edge_cost": edge_cost,
            "edge_cpu_cost": edge_cpu_cost,
            "relay_cost": relay_cost,
            "mix": mix,
            "mix_edge_cost": mix_cost,
            "mix_edge_cpu_cost": mix_cpu_cost,
            "storefront_page_vs_api_read": page["requests_per_s"] / api_read["requests_per_s"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
