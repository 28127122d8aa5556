"""The one-machine stack as `up` runs it: a supervised, password-protected, durable database, and no
process with root's powers or a secret in its environment."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services import catalog
from services.kit.tls import Identity
from services.runner.layout import Layout
from services.runner.postgres import PostgresServer
from services.runner.stack import runner_tls
from tests.support.procs import ROOT

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="privileges are dropped only when started as root")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _pick_offset() -> int:
    # Below the ephemeral port range and between the end-to-end stacks' offsets (12000, 14000, ...).
    for offset in (13000, 15000, 17000):
        ports = [8000 + offset + i for i in range(6)] + [
            8010 + offset,
            8080 + offset,
            8443 + offset,
            9090 + offset,
            5433 + offset,
        ]
        if all(_free(p) for p in ports):
            return offset
    raise RuntimeError("no free port range for the runner's stack")


def runner(layout: Layout, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        layout.runner_command(*args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layout]:
    # pytest's temporary directories are private (0700): as root this is the case where the processes that
    # dropped root need a directory of their own to reach their files.
    layout = Layout(tmp_path_factory.mktemp("run"), _pick_offset())
    up = runner(layout, "up", "--no-seed")
    if up.returncode != 0:
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(layout.logs.glob("*.log"))
        )
        pytest.fail(f"`up` failed ({up.returncode}):\n{up.stdout}\n{up.stderr}\n{logs}")
    try:
        yield layout
    finally:
        down = runner(layout, "down")
        if layout.shared != layout.run_dir:
            shutil.rmtree(layout.shared, ignore_errors=True)
        assert down.returncode == 0, down.stderr


def children(layout: Layout) -> dict[str, dict[str, object]]:
    state = json.loads(layout.state_file.read_text())
    result: dict[str, dict[str, object]] = state["children"]
    return result


def child_pid(layout: Layout, name: str) -> int:
    pid = children(layout)[name]["pid"]
    assert isinstance(pid, int)
    return pid


def database(layout: Layout) -> PostgresServer:
    return PostgresServer(
        port=layout.postgres_embedded, datadir=layout.shared / "pg", passfile_path=layout.postgres_passfile
    )


def stack_pids(layout: Layout) -> dict[int, str]:
    """Every process of the stack: the supervisor, its children and theirs (nginx workers, PostgreSQL
    backends), by pid, with a name for messages."""
    named = {child_pid(layout, name): name for name in children(layout)}
    named[int(json.loads(layout.state_file.read_text())["supervisor_pid"])] = "supervisor"
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    for pid, parent in parents.items():
        if parent in named and pid not in named:
            named[pid] = f"{named[parent]} (child {pid})"
    return named


def test_status_names_the_database_and_it_keeps_what_it_acknowledged(layout: Layout) -> None:
    """The database is one of the supervised processes, and it runs with PostgreSQL's durable settings."""
    status = runner(layout, "status")
    assert status.returncode == 0, status.stdout
    line = next(row for row in status.stdout.splitlines() if row.split()[:1] == ["postgres"])
    assert "ready" in line.split()
    for setting in ("fsync", "synchronous_commit", "full_page_writes"):
        assert database(layout).psql(f"SHOW {setting}") == "on", setting


def test_secrets_reach_each_service_as_files_it_alone_reads(layout: Layout) -> None:
    """Keys and passwords are files (SECRETS_DIR), mode 0400 in a 0700 directory of the service's own."""
    for service in catalog.SERVICES:
        directory = layout.service_secrets(service.name)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = list(directory.iterdir())
        assert "service_public_keys" in {f.name for f in files}
        # A signing key only for services that call /internal routes (never the gateway): catalog.py.
        assert ("service_private_key" in {f.name for f in files}) is (service.name in catalog.service_key_holders())
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o400 for f in files)
        if os.geteuid() == 0:
            assert {f.stat().st_uid for f in [directory, *files]} == {directory.stat().st_uid} != {0}
    assert stat.S_IMODE(layout.postgres_passfile.stat().st_mode) == 0o600


def test_no_process_of_the_stack_holds_a_secret_in_its_environment(layout: Layout) -> None:
    """/proc/<pid>/environ is readable by anyone running as that process's user (and root): no private key,
    password or database URL may sit there, in any process of the stack."""
    ring = json.loads(layout.keyring_file.read_text())
    secrets = [
        *ring["service_keys"].values(),
        *ring["jwt_keys"].values(),
        *ring["secrets"].values(),
        json.loads(layout.admin_file.read_text())["password"],
        database(layout).password,
    ]
    pids = stack_pids(layout)
    assert len(pids) > len(children(layout))  # the workers and backends are looked at too
    for pid, name in pids.items():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile (a backend)
        assert "PRIVATE KEY" not in environ, name
        assert not [s for s in secrets if s in environ], name


def _identity_context(layout: Layout, name: str) -> ssl.SSLContext:
    """What the service `name` connects to the database with: the stack's CA and its own identity."""
    ctx = ssl.create_default_context(cafile=str(layout.identities / "ca.pem"))
    ctx.load_cert_chain(layout.identities / f"{name}.pem")
    return ctx


def test_every_service_reaches_the_database_over_tls_with_its_own_certificate(layout: Layout) -> None:
    """Every TCP client of the embedded server (each service's pool) is on TLS 1.3, with a certificate
    naming its role; a plaintext TCP connection is refused even with the role's password."""
    import asyncio

    import asyncpg

    rows = database(layout).psql(
        "SELECT a.usename, s.ssl, s.version, s.client_dn FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
        " WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL"
    )
    backends = [line.split("|") for line in rows.splitlines()]
    assert {user for user, *_ in backends} == {s.database_name for s in catalog.database_services()}, backends
    assert all(row[1:] == ["t", "TLSv1.3", f"/CN={row[0]}"] for row in backends), backends
    url = (layout.service_secrets("products") / "database_url").read_text()
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        asyncio.run(asyncpg.connect(url, ssl=False, timeout=10))


def test_each_service_is_its_own_database_role_and_not_a_superuser(layout: Layout) -> None:
    """With the superuser's password a compromised service could read every service's data (and run
    programs as the server's OS user); each gets a role that owns its database and may enter no other."""
    import asyncio

    import asyncpg

    async def check(service: catalog.Service, other: str) -> None:
        url = (layout.service_secrets(service.name) / "database_url").read_text()
        ctx = _identity_context(layout, service.name)
        conn = await asyncpg.connect(url, ssl=ctx, timeout=10)
        try:
            assert await conn.fetchval("SELECT current_user") == service.database_name
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
            # Its migrations ran as that role: it owns every table of its schema.
            owners = {
                r["tableowner"]
                for r in await conn.fetch("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")
            }
            assert owners == {service.database_name}
        finally:
            await conn.close()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(url.rsplit("/", 1)[0] + f"/{other}", ssl=ctx, timeout=10)

    owners = catalog.database_services()
    for service, other in zip(owners, [*owners[1:], owners[0]], strict=True):
        asyncio.run(check(service, other.database_name))


@ROOT_ONLY
def test_started_as_root_no_process_keeps_root(layout: Layout) -> None:
    """Each service runs as a user of its own (no root uid, no root group, not even a supplementary one), so a
    compromised service reads neither root's files nor another service's keys. nginx's master stays root
    by design (it reads the TLS key, then its workers serve every connection as `retail-edge`)."""
    uids: dict[str, int] = {}
    for pid, name in stack_pids(layout).items():
        if name in ("supervisor", "nginx"):
            continue
        try:
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        fields = {line.split(":")[0]: line.split(":")[1].split() for line in status}
        assert "0" not in fields["Uid"] + fields["Gid"] + fields["Groups"], (name, fields)
        uids[name] = int(fields["Uid"][0])
    assert any(name.startswith("nginx (child") for name in uids)
    services = {name: uid for name, uid in uids.items() if name in {s.name for s in catalog.SERVICES}}
    assert len(set(services.values())) == len(services), services
    # One service's user cannot read another's keys.
    refused = subprocess.run(
        [
            "runuser",
            "-u",
            "retail-orders",
            "--",
            "cat",
            str(layout.service_secrets("payments") / "service_private_key"),
        ],
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
    # Nor another's TLS identity: each file is its own process's user's, mode 0400.
    identity = layout.identities / "payments.pem"
    assert identity.stat().st_mode & 0o777 == 0o400
    refused = subprocess.run(
        ["runuser", "-u", "retail-orders", "--", "cat", str(identity)], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr


def test_a_killed_database_is_restarted_and_the_services_recover(layout: Layout) -> None:
    """SIGKILL the postmaster: the supervisor starts it again (crash recovery included), `status` shows the
    restart, and the services, which answer 503 meanwhile, serve from the database again on their own."""
    products = layout.url("products")
    # The services take mutual TLS only: call them as the runner does, with its identity.
    direct = httpx.Client(verify=Identity(*runner_tls(layout)).client_context(), timeout=5)
    before = child_pid(layout, "postgres")
    os.kill(before, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        info = children(layout)["postgres"]
        if info["pid"] != before and info["restarts"] == 1 and runner(layout, "status").returncode == 0:
            break
        time.sleep(0.5)
    else:
        pytest.fail(
            f"the database did not come back:\n{runner(layout, 'status').stdout}\n"
            f"{(layout.logs / 'postgres.log').read_text()[-2000:]}"
        )
    status = runner(layout, "status").stdout
    assert any(
        row.split()[:1] == ["postgres"] and "restarts 1" in " ".join(row.split()) for row in status.splitlines()
    ), status
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listing = direct.get(f"{products}/api/v1/products", params={"limit": 1})
        if listing.status_code == 200:
            break
        assert listing.status_code == 503, listing.text
        time.sleep(0.5)
    assert listing.status_code == 200, listing.text
    assert direct.get(f"{products}/readyz").status_code == 200
