"""``python -m services.runner up|down|status|logs``: the whole platform on one machine, no containers.

``make up`` / ``make down`` / ``make status`` call this. See the README's "Run it on one machine".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from services import catalog
from services.runner import seed, stack
from services.runner.layout import Layout
from services.runner.postgres import PostgresServer, ServerTLS
from services.runner.supervisor import Child, Supervisor, configure_logging, pid_alive, read_state, tls_files

EXIT_NOT_RUNNING = 3


def _layout(args: argparse.Namespace) -> Layout:
    try:
        return Layout(Path(args.run_dir).resolve(), args.port_offset)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def _running(layout: Layout) -> dict[str, object] | None:
    state = read_state(layout)
    if state and isinstance(state.get("supervisor_pid"), int) and pid_alive(state["supervisor_pid"]):
        return state
    return None


def cmd_up(args: argparse.Namespace) -> int:
    began = time.monotonic()
    layout = _layout(args)
    if state := _running(layout):
        print(
            f"error: the stack in {layout.run_dir} is already running (supervisor pid {state['supervisor_pid']});"
            " run `make down` (or `python -m services.runner down`) first.",
            file=sys.stderr,
        )
        return 1
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    if args.plaintext_services:
        layout.plaintext_marker.write_text("the services speak plain HTTP: `up --plaintext-services`\n")
    else:
        layout.plaintext_marker.unlink(missing_ok=True)
    try:
        stack.ensure_users(stack.process_kinds())
        stack.ensure_shared_dir(layout)
        db = stack.resolve_database(layout, dict(os.environ))
        keyring = stack.load_keyring(layout)
        admin = stack.admin_credentials(layout, dict(os.environ))
        # No process of the stack, the supervisor included, inherits a secret through its environment.
        env = stack.child_env(dict(os.environ))
        plan = stack.plan(layout, db, env, gateway_replicas=args.gateway_replicas)
        busy = stack.busy_ports(layout, plan, db, args.gateway_replicas)
        if busy:
            raise stack.StackError(
                "ports already in use: "
                + ", ".join(busy)
                + ". Stop what uses them, or run a second stack with --port-offset N."
            )
        if db.embedded is not None:
            _prepare_embedded(db.embedded)
        stack.write_secrets(layout, keyring, db, admin)
    except (stack.StackError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    _write_plan(layout, plan.children, db)
    layout.logs.mkdir(parents=True, exist_ok=True)
    layout.state_file.unlink(missing_ok=True)
    with (layout.logs / "supervisor.out").open("ab") as out:
        supervisor = subprocess.Popen(
            layout.runner_command("supervise"),
            cwd=stack.ROOT,
            env={**env, "PYTHONPATH": str(stack.ROOT)},
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    while True:
        state = read_state(layout) or {}
        if state.get("phase") == "ready":
            break
        if state.get("phase") == "failed" or supervisor.poll() is not None:
            supervisor.wait()
            _stop_leftover_pg(layout)
            detail = state.get("error") or (layout.logs / "supervisor.out").read_text(errors="replace")[-2000:]
            print(f"error: start-up failed; everything was stopped.\n{detail}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    ready_in = time.monotonic() - began

    info = stack.describe(layout, plan, db, args.gateway_replicas)
    if not args.no_seed:
        try:
            seeded = seed.run(layout, admin)
        except Exception as exc:
            print(f"warning: seeding failed ({exc}); the stack is up without demo data", file=sys.stderr)
        else:
            info["seed"] = seeded
    print(f"retail platform is up in {ready_in:.1f}s (all services ready)")
    for name, url in info["urls"].items():
        print(f"  {name:<11} {url}")
    print(f"  database    {info['database']}")
    print(f"  logs        {info['logs']}/<service>.log")
    print(
        f"  TLS CA      {info['ca_file']}  (curl --cacert {info['ca_file']} https://localhost:{layout.edge_https}/healthz)"
    )
    if layout.service_tls:
        print(
            f"  TLS client  {info['runner_identity']}  (services require one: curl --cacert {info['ca_file']} "
            f"--cert {info['runner_identity']} {layout.url(catalog.GATEWAY)}/readyz)"
        )
    else:
        print("  WARNING     --plaintext-services: the services speak plain HTTP to each other (for measurements)")
    print(f"  admin       {admin.email}  (credentials in {layout.admin_file}, mode 0600)")
    if admin.generated:
        print(f"  admin password (shown once): {admin.password}")
    for note in plan.skipped:
        print(f"  skipped     {note}")
    if "seed" in info:
        print(f"  seed        {info['seed']}")
    return 0


def _prepare_embedded(server: PostgresServer) -> None:
    """Create the cluster once; make sure of its password and rules at every start (the supervisor runs it)."""
    if (server.pgdata / "PG_VERSION").exists():
        server.secure()
    else:
        server.init()


def _write_plan(layout: Layout, children: list[Child], db: stack.Database) -> None:
    pg = db.embedded
    doc = {
        "children": [c.to_doc() for c in children],
        "database": {"given_url": db.given_url, "source": db.source},
        "embedded_pg": {
            "port": pg.port,
            "datadir": str(pg.datadir),
            "bindir": str(pg.bindir),
            "passfile": str(pg.passfile),
            "tls": [str(pg.tls.identity_file), str(pg.tls.ca_file)] if pg.tls else None,
        }
        if pg
        else None,
    }
    path = layout.run_dir / "plan.json"
    # DATABASE_URL, when given, carries a password: readable by the user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


def _embedded_pg(doc: dict[str, Any]) -> PostgresServer | None:
    pg = doc.get("embedded_pg")
    if not pg:
        return None
    return PostgresServer(
        port=pg["port"],
        datadir=Path(pg["datadir"]),
        bindir=Path(pg["bindir"]),
        passfile_path=Path(pg["passfile"]),
        tls=ServerTLS(*map(Path, pg["tls"])) if pg.get("tls") else None,
    )


def cmd_supervise(args: argparse.Namespace) -> int:
    layout = _layout(args)
    configure_logging(layout.logs / "supervisor.log")
    doc = json.loads((layout.run_dir / "plan.json").read_text())
    children = [Child.from_doc(c) for c in doc["children"]]
    embedded = _embedded_pg(doc)
    db = stack.Database(
        doc["database"]["given_url"],
        doc["database"]["source"],
        embedded,
        stack.database_roles(layout) if embedded else {},
    )
    extra = {"run_dir": str(layout.run_dir), "port_offset": layout.port_offset}
    ca = stack.local_ca(layout)
    owners = stack.identities(db)
    # The services' databases must exist before they start, and the database must run for that.
    return Supervisor(
        layout,
        children,
        cwd=stack.ROOT,
        extra_state=extra,
        prepare=lambda: stack.ensure_databases(db),
        renew=lambda: ca.renew_due(owners),
    ).run()


def cmd_down(args: argparse.Namespace) -> int:
    layout = _layout(args)
    state = _running(layout)
    if state is None:
        print(f"not running ({layout.run_dir})")
        _stop_leftover_pg(layout)
        return 0
    pid = int(state["supervisor_pid"])  # type: ignore[call-overload]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
        print("supervisor did not stop in 40s; killed its process group", file=sys.stderr)
    _stop_leftover_pg(layout)
    layout.state_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def _stop_leftover_pg(layout: Layout) -> None:
    """A server the supervisor could not stop (it was killed): stop it, so its data is left consistent."""
    plan = layout.run_dir / "plan.json"
    if not plan.exists():
        return
    server = _embedded_pg(json.loads(plan.read_text()))
    if server is not None and (server.pgdata / "postmaster.pid").exists():
        server.stop()


def cmd_status(args: argparse.Namespace) -> int:
    layout = _layout(args)
    state = _running(layout)
    if state is None:
        print(f"not running ({layout.run_dir})")
        return EXIT_NOT_RUNNING
    children = state.get("children", {})
    assert isinstance(children, dict)
    all_ready = True
    print(f"phase: {state.get('phase')}   supervisor pid {state.get('supervisor_pid')}")
    for name, info in children.items():
        child = Child(
            name, [], {}, Path(info["log"]), info["ready_url"], info["ready_command"], tls=tls_files(info.get("tls"))
        )
        alive = bool(info.get("pid")) and pid_alive(int(info["pid"]))
        ready = alive and child.probe()
        all_ready &= ready
        checked = child.ready_url or (f"`{Path(child.ready_command[0]).name}`" if child.ready_command else "")
        print(
            f"  {name:<11} pid {info.get('pid')!s:<8} {'ready' if ready else 'NOT READY':<10} "
            f"restarts {info.get('restarts', 0):<3} {checked}"
        )
    return 0 if all_ready else 1


def cmd_logs(args: argparse.Namespace) -> int:
    layout = _layout(args)
    path = layout.logs / f"{args.service}.log"
    if not path.exists():
        known = sorted(p.stem for p in layout.logs.glob("*.log")) if layout.logs.exists() else []
        print(
            f"error: no log for {args.service!r}; logs exist for: {', '.join(known) or 'nothing yet'}", file=sys.stderr
        )
        return 1
    lines = path.read_text(errors="replace").splitlines()[-args.lines :]
    print("\n".join(lines))
    return 0


def cmd_identity(args: argparse.Namespace) -> int:
    """A client identity from the stack's CA, for calling the services by hand (they take mutual TLS only)."""
    layout = _layout(args)
    if args.name in {*stack.process_kinds(), stack.RUNNER_IDENTITY, stack.POSTGRES_IDENTITY}:
        print(
            f"error: {args.name!r} is a process of the stack; choose another name (e.g. debug-{args.name})",
            file=sys.stderr,
        )
        return 2
    ca = stack.local_ca(layout)
    if not ca.ca_file.exists():
        print(f"error: no CA in {layout.run_dir} yet: run `up` first", file=sys.stderr)
        return 1
    try:
        path = ca.issue(args.name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    print(
        f"valid {ca.leaf_lifetime}; e.g. curl --cacert {ca.ca_file} --cert {path} {layout.url(catalog.GATEWAY)}/readyz",
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.runner", description=__doc__)
    parser.add_argument("--run-dir", default=str(stack.ROOT / ".run"), help="where state, logs and data live")
    parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="shift every port (e.g. 20000) to run a second stack beside the first",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and wait until all is ready")
    up.add_argument("--no-seed", action="store_true", help="do not load demo customers and products")
    up.add_argument(
        "--plaintext-services",
        action="store_true",
        help="services, the edge and Prometheus talk plain HTTP to each other instead of mutual TLS: only to "
        "measure what TLS costs (make bench) or for load tools that cannot present a client certificate",
    )
    up.add_argument(
        "--gateway-replicas",
        type=int,
        default=2,
        choices=range(1, catalog.MAX_FORWARDER_REPLICAS + 1),
        metavar=f"1..{catalog.MAX_FORWARDER_REPLICAS}",
        help="gateway processes behind nginx, each on its own port (8000, 8010, ...)",
    )
    sub.add_parser("down", help="stop everything")
    sub.add_parser("status", help="what runs and whether it is ready (exit 0 all ready, 1 degraded, 3 stopped)")
    logs = sub.add_parser("logs", help="the last lines of one process's log")
    logs.add_argument("service")
    logs.add_argument("-n", "--lines", type=int, default=50)
    identity = sub.add_parser(
        "identity", help="issue a client certificate (key and certificate in one PEM file) to call services by hand"
    )
    identity.add_argument("name", help="lower-case name, e.g. debug-alice (printed in the certificate)")
    sub.add_parser("supervise", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # `status | head` should end quietly, not with a BrokenPipeError traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    handlers = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "logs": cmd_logs,
        "identity": cmd_identity,
        "supervise": cmd_supervise,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
