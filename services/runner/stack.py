"""What the one-machine stack runs, decided from the catalog: databases, services, edge, Prometheus."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from services import catalog
from services.deploy.environment import (
    SECRET_SETTINGS,
    DeployTarget,
    deployment_environment,
    split_secrets,
)
from services.deploy.keyring import KeyRing
from services.runner import nginx, prometheus, tls
from services.runner.asuser import traversable_by_others
from services.runner.layout import POSTGRES_EXISTING, Layout
from services.runner.postgres import PostgresNotFoundError, PostgresServer, ServerTLS, find_bindir
from services.runner.process import uvicorn_argv
from services.runner.supervisor import Child

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ADMIN_EMAIL = "admin@shop.local"


class StackError(RuntimeError):
    """A start-up problem with a message a person can act on."""


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# Started as root, no process of the stack keeps root's powers: each service, the edge's workers and
# Prometheus run as a system user of their own (PostgreSQL as `postgres`), so one compromised service
# cannot read another's keys or files. nginx's master process stays root, as nginx is designed: it reads
# the TLS key and opens the logs, then its workers, which serve every connection, run as `retail-edge`.
USER_PREFIX = "retail-"
NOLOGIN = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if Path(p).exists()), "/bin/false")


def process_user(kind: str) -> str | None:
    """The OS user for one kind of process (a service name, "edge", "prometheus"); None when not root."""
    return f"{USER_PREFIX}{kind}" if os.geteuid() == 0 else None


def ensure_users(kinds: list[str]) -> None:
    """Create the system users the stack's processes run as, once (no home, no login shell)."""
    for kind in kinds:
        name = process_user(kind)
        if name is None:
            continue
        try:
            pwd.getpwnam(name)
            continue
        except KeyError:
            pass
        if shutil.which("useradd") is None:
            raise StackError(
                f"started as root, the stack runs each process as a user of its own, but {name} "
                "does not exist and `useradd` is not installed to create it"
            )
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                NOLOGIN,
                name,
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(f"could not create the system user {name}: {result.stderr.strip()}")


def owner_of(kind: str) -> tls.Owner | None:
    """The owner of a file only ``kind``'s process may read (None when not root: the caller's)."""
    return tls.Owner.of_user(process_user(kind))


# The identity the supervisor's own calls present (readiness probes, `status`, the seed): the caller's file.
RUNNER_IDENTITY = "runner"
POSTGRES_IDENTITY = "postgres"


def process_kinds() -> list[str]:
    """Each kind of process that runs as a user of its own when started as root: the services, the edge,
    Prometheus."""
    return [*(s.name for s in catalog.SERVICES), "edge", "prometheus"]


def identities(db: Database) -> dict[str, tls.Owner | None]:
    """Every TLS identity of the stack and who may read its file: one per service (a service's replicas share
    it), the edge, Prometheus, the runner, and the embedded PostgreSQL with TLS. A database-owning service's
    identity is named after its role as well, since PostgreSQL compares the client certificate's common name
    with the role (``clientcert=verify-full``)."""
    database_tls = db.embedded is not None and db.embedded.tls is not None
    for svc in catalog.database_services() if database_tls else ():
        if svc.database_name != svc.name:
            raise StackError(
                f"service {svc.name}: its database role {svc.database_name} must be its identity's name, "
                "which PostgreSQL compares with the client certificate's common name"
            )
    owners = {kind: owner_of(kind) for kind in process_kinds()}
    owners[RUNNER_IDENTITY] = None
    if db.embedded is not None and database_tls:
        owners[POSTGRES_IDENTITY] = db.embedded.identity_owner()
    return owners


def local_ca(layout: Layout) -> tls.LocalCA:
    return tls.LocalCA(layout.tls, layout.identities)


def runner_tls(layout: Layout) -> tuple[Path, Path]:
    """What the runner's own calls present and verify with: its identity file and the CA certificate."""
    return local_ca(layout).files(RUNNER_IDENTITY)


def give(path: Path, user: str | None) -> None:
    """Hand a file or a directory tree to ``user`` (nothing to do when we are not root)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
        os.chown(item, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def ensure_shared_dir(layout: Layout) -> None:
    """As root, make sure the processes that dropped root can reach their files: the run directory if
    they can enter it, else a directory of its own (mode 0711: enter, not list), remembered in the run
    directory so data (the database's) survives down/up."""
    pointer = layout.run_dir / "shared-location"
    if os.geteuid() != 0 or traversable_by_others(layout.run_dir):
        return
    if pointer.exists() and Path(pointer.read_text().strip()).is_dir():
        return
    shared = Path(tempfile.mkdtemp(prefix="retail-platform-"))
    shared.chmod(0o711)
    pointer.write_text(str(shared))


@dataclass
class Database:
    given_url: str | None  # DATABASE_URL or the existing server's; None for the embedded one
    source: str  # "DATABASE_URL", "existing :5432", "embedded :5433"
    embedded: PostgresServer | None = None
    # On the embedded server each service's database is owned by a role of the same name, with its own
    # password (database -> password), so a service is not the superuser and reaches no other's data.
    # A server the caller names keeps the caller's credentials.
    roles: dict[str, str] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        # The embedded server is administered through its socket, the one way in that needs no client
        # certificate; its URL carries the password, which exists only once the server is set up.
        if self.embedded is not None:
            return self.embedded.socket_url()
        assert self.given_url is not None
        return self.given_url

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.embedded.url() if self.embedded is not None else self.admin_url)
        if database in self.roles:
            netloc = f"{database}:{self.roles[database]}@{parts.hostname}:{parts.port}"
            return urlunsplit(parts._replace(netloc=netloc, path=f"/{database}"))
        return urlunsplit(parts._replace(path=f"/{database}"))

    def settings_for(self, svc: catalog.Service) -> dict[str, str]:
        """A database-owning service's connection settings: its URL (a secret) and ``tls_settings_for``."""
        return {"DATABASE_URL": self.url_for(svc.database_name), **self.tls_settings_for(svc)}

    def tls_settings_for(self, svc: catalog.Service) -> dict[str, str]:
        """On the embedded server with TLS, the service verifies the server against the stack's CA and
        presents its own identity (TLS_IDENTITY_FILE, whose common name is its role: ``identities``).
        A server the caller names (DATABASE_URL, :5432) keeps the caller's settings: DB_SSLMODE and
        DB_SSL_ROOT_CERT from the caller's environment, if any."""
        if self.embedded is None or self.embedded.tls is None:
            return {}
        return {"DB_SSLMODE": "verify-full", "DB_SSL_ROOT_CERT": str(self.embedded.tls.ca_file)}


# Every table, view, sequence (not one a column owns: it follows its table), function and free-standing type
# in the public schema that the superuser owns, except extension members, passes to the role @role@.
HAND_OVER = """
DO $$
DECLARE statement text;
BEGIN
  FOR statement IN
    SELECT format('ALTER %s %s OWNER TO "@role@"',
                  CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                 WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, c.oid::regclass)
      FROM pg_class c
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND c.relowner <> '"@role@"'::regrole
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype IN ('e', 'a', 'i'))
    UNION ALL
    SELECT format('ALTER ROUTINE %s OWNER TO "@role@"', p.oid::regprocedure)
      FROM pg_proc p
     WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '"@role@"'::regrole
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')
    UNION ALL
    SELECT format('ALTER TYPE %s OWNER TO "@role@"', t.oid::regtype)
      FROM pg_type t
     WHERE t.typnamespace = 'public'::regnamespace AND t.typowner <> '"@role@"'::regrole
       AND t.typrelid = 0 AND t.typelem = 0
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                          AND d.deptype = 'e')
  LOOP
    EXECUTE statement;
  END LOOP;
END
$$;
"""


def database_roles(layout: Layout) -> dict[str, str]:
    """The passwords of the embedded server's per-service roles: generated once, kept 0600 with the
    superuser's."""
    path = layout.secrets / "database-roles.json"
    roles: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = {s.database_name for s in catalog.database_services()}
    if not wanted <= roles.keys():
        roles = {name: roles.get(name) or secrets.token_hex(24) for name in wanted}
        layout.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(roles, f)
    return roles


def resolve_database(layout: Layout, env: dict[str, str]) -> Database:
    """DATABASE_URL wins; else a PostgreSQL already on 5432; else an embedded one on 5433."""
    if url := env.get("DATABASE_URL"):
        if urlsplit(url).scheme not in ("postgres", "postgresql"):
            raise StackError("DATABASE_URL must look like postgresql://user:password@host:port/postgres")
        return Database(url, "DATABASE_URL")
    if layout.port_offset == 0 and port_in_use(POSTGRES_EXISTING) and _can_connect(POSTGRES_EXISTING):
        return Database(f"postgresql://postgres@127.0.0.1:{POSTGRES_EXISTING}/postgres", "existing :5432")
    try:
        bindir = find_bindir()
    except PostgresNotFoundError as exc:
        raise StackError(str(exc)) from None
    # A run directory may name a data directory of its own elsewhere (`pg-location`); else it is with the
    # files the unprivileged processes share.
    pointer = layout.run_dir / "pg-location"
    datadir = Path(pointer.read_text().strip()) if pointer.exists() else layout.shared / "pg"
    ca = local_ca(layout)
    server = PostgresServer(
        port=layout.postgres_embedded,
        datadir=datadir,
        bindir=bindir,
        passfile_path=layout.postgres_passfile,
        # ``up --plaintext-services`` measures the stack without TLS: the database hop included.
        tls=ServerTLS(*ca.files(POSTGRES_IDENTITY)) if layout.service_tls else None,
    )
    return Database(None, f"embedded :{layout.postgres_embedded} ({datadir})", server, database_roles(layout))


def _can_connect(port: int) -> bool:
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def ensure_databases(db: Database) -> None:
    """One database per service that owns data; created if missing. With per-service roles, each role
    exists with its password, owns its database and everything in it, and no one else may connect."""
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(db.admin_url, timeout=10)
        try:
            existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
            roles = {r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles")}
            for service in catalog.database_services():
                name = service.database_name
                if name in db.roles:
                    # Names come from the catalog and passwords are hex: nothing here needs escaping.
                    verb = "ALTER" if name in roles else "CREATE"
                    await conn.execute(f"{verb} ROLE \"{name}\" LOGIN PASSWORD '{db.roles[name]}'")
                if name not in existing:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                if name in db.roles:
                    await conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{name}"')
                    await conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
                    await _hand_over(name)
        finally:
            await conn.close()

    async def _hand_over(name: str) -> None:
        """Objects the superuser created in a service's database pass to the service's role (of the same
        name), so its migrations can change them."""
        admin = await asyncpg.connect(urlunsplit(urlsplit(db.admin_url)._replace(path=f"/{name}")), timeout=10)
        try:
            await admin.execute(HAND_OVER.replace("@role@", name))
        finally:
            await admin.close()

    asyncio.run(create())


@dataclass
class Admin:
    email: str
    password: str
    generated: bool


def admin_credentials(layout: Layout, env: dict[str, str]) -> Admin:
    """ADMIN_EMAIL / ADMIN_PASSWORD from the environment, else the saved ones, else a generated password
    (printed once by ``up``, kept in a file only the user can read)."""
    if env.get("ADMIN_PASSWORD"):
        admin = Admin(env.get("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL), env["ADMIN_PASSWORD"], generated=False)
    elif layout.admin_file.exists():
        doc = json.loads(layout.admin_file.read_text())
        return Admin(doc["email"], doc["password"], generated=False)
    else:
        admin = Admin(env.get("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL), secrets.token_urlsafe(18), generated=True)
    layout.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(layout.admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"email": admin.email, "password": admin.password}, f)
    return admin


def load_keyring(layout: Layout) -> KeyRing:
    if layout.keyring_file.exists():
        saved = KeyRing.load(layout.keyring_file)
        ring = saved.completed()
        if ring != saved:  # the catalog names a secret this stack's ring predates
            ring.save(layout.keyring_file)
        return ring
    layout.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    ring = KeyRing.generate()
    ring.save(layout.keyring_file)
    return ring


@dataclass
class Plan:
    children: list[Child]
    skipped: list[str] = field(default_factory=list)
    edge: bool = False
    prometheus: bool = False


def service_secrets(service: str, keyring: KeyRing, db: Database, admin: Admin) -> dict[str, str]:
    """A service's secret settings, by setting name: each becomes a file in its SECRETS_DIR, never an
    environment variable (``/proc/<pid>/environ`` is readable wherever the process is)."""
    target = DeployTarget(
        keyring=keyring,
        admin=(admin.email, admin.password),
        database=db.settings_for,
    )
    _, secret = split_secrets(deployment_environment(service, target))
    return {name.lower(): value for name, value in secret.items()}


def child_env(base_env: dict[str, str]) -> dict[str, str]:
    """The caller's environment without any secret setting: the stack hands those out as files, and a
    variable of that name would override the file (and sit in the environment)."""
    return {k: v for k, v in base_env.items() if k.upper() not in SECRET_SETTINGS}


def write_secrets(layout: Layout, keyring: KeyRing, db: Database, admin: Admin) -> None:
    """Each service's secrets in a directory only its user can enter (mode 0700, files 0400); the
    directory above them can be entered, not listed."""
    top = layout.shared / "secrets"
    top.mkdir(mode=0o711, parents=True, exist_ok=True)
    top.chmod(0o711)
    for service in catalog.SERVICES:
        directory = layout.service_secrets(service.name)
        # Rewritten from scratch: a secret a service no longer gets must not linger.
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
        for name, value in service_secrets(service.name, keyring, db, admin).items():
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "w") as f:
                f.write(value)
        give(directory, process_user(service.name))


def service_env(layout: Layout, service: str, base_env: dict[str, str], db: Database) -> dict[str, str]:
    """The caller's environment (``child_env``) with the service's plain settings on this machine: peers on
    127.0.0.1, only the local edge (nginx, then the gateway) believed about the client address unless
    the caller says otherwise, and how to reach its database (``Database.tls_settings_for``)."""
    state_path = None
    if catalog.get(service).forwards_public_routes:
        # The workers share one rate-limit table; one per stack, so two stacks on a host do not mix limits.
        state_dir = layout.shared / "gateway"
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        give(state_dir, process_user(service))
        state_path = base_env.get("RATE_LIMIT_STATE_PATH", str(state_dir / "ratelimit.bin"))
    ca = local_ca(layout)
    target = DeployTarget(
        environment="dev",
        log_level=base_env.get("LOG_LEVEL", "INFO"),
        service_urls={s.name: layout.url(s.name) for s in catalog.SERVICES},
        forwarder_addresses=base_env.get("TRUSTED_PROXIES", "127.0.0.1/32"),
        rate_limit_state_path=state_path,
        # Its plain part: the URL, a secret, is written before the services start (``service_secrets``).
        database=db.tls_settings_for,
        tls_files=ca.files if layout.service_tls else None,
    )
    plain, _ = split_secrets(deployment_environment(service, target))
    return {**base_env, **plain, "PYTHONPATH": str(ROOT), "SECRETS_DIR": str(layout.service_secrets(service))}


def instances(layout: Layout, gateway_replicas: int) -> list[tuple[str, str, int]]:
    """(process name, service, port) for every service process. The gateway runs as replicas on their own
    ports rather than as workers behind one port: each replica is then its own scrape target, as a pod is
    in a cluster (workers sharing a port would each expose their own counters, scraped at random)."""
    result = []
    for service in catalog.SERVICES:
        if service.forwards_public_routes:
            for i, port in enumerate(layout.gateway_ports(gateway_replicas)):
                result.append((service.name if i == 0 else f"{service.name}-{i + 1}", service.name, port))
        else:
            result.append((service.name, service.name, layout.port(service.name)))
    return result


def plan(layout: Layout, db: Database, base_env: dict[str, str], *, gateway_replicas: int = 2) -> Plan:
    """What to run. ``base_env`` is the caller's environment without the secrets (``child_env``).

    Every process gets its TLS identity from the stack's CA first (issued, or renewed when due): the services
    serve HTTPS only and require a client certificate from that CA, so every hop between them, and from the
    edge, Prometheus and the runner to them, is mutual TLS."""
    children: list[Child] = []
    ca = local_ca(layout)
    # The embedded PostgreSQL's identity and its clients' exist before it starts (it refuses to start without).
    ca.renew_due(identities(db))
    probe_tls = runner_tls(layout)
    if db.embedded is not None:
        # Supervised like the rest: restarted if it dies, named by `status`; started (and ready) first.
        pg = db.embedded
        children.append(
            Child(
                "postgres",
                pg.command(),
                dict(base_env),
                layout.logs / "postgres.log",
                ready_command=pg.ready_command(),
                user=pg.os_user,
                before_others=True,
                # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client.
                stop_signal=signal.SIGINT,
                # SIGHUP re-reads its configuration and, with ssl on, its certificate and key (PostgreSQL 15
                # src/backend/postmaster/postmaster.c, the SIGHUP handler calls secure_initialize(false)): a
                # renewed "postgres" identity is served to new connections without a restart.
                reload_identity="postgres",
            )
        )
    processes = instances(layout, gateway_replicas)
    for name, service, port in processes:
        children.append(
            Child(
                name,
                uvicorn_argv(f"services.{service}.main:app", port),
                service_env(layout, service, base_env, db),
                layout.logs / f"{name}.log",
                ready_url=f"{layout.service_url(port)}/readyz",
                tls=probe_tls,
                user=process_user(service),
            )
        )
    result = Plan(children)

    nginx_bin = nginx.find_nginx()
    if nginx_bin:
        # One file holds the key and the certificate: nginx reads both from it (ngx_ssl_certificate), for its
        # public side and as its client certificate towards the gateway and the storefront.
        conf = nginx.write(
            layout,
            ca.identity_file("edge"),
            ca.ca_file if layout.service_tls else None,
            layout.gateway_ports(gateway_replicas),
            shop=nginx.PageServer(layout.port(page.name), page.edge_pages) if (page := catalog.page_server()) else None,
        )
        nginx.check(nginx_bin, conf)
        argv = nginx.command(nginx_bin, conf)
        if (edge_user := process_user("edge")) is not None:
            # The master (root) hands its workers to this user, and its temporary directories with them
            # (nginx src/core/ngx_file.c, ngx_create_paths).
            argv += ["-g", f"user {edge_user};"]
        children.append(
            Child(
                "nginx",
                argv,
                dict(base_env),
                layout.logs / "nginx.log",
                ready_url=f"https://127.0.0.1:{layout.edge_https}/healthz",
                tls=probe_tls,
                # The master re-reads its configuration and certificates on SIGHUP and starts new workers.
                reload_identity="edge",
            )
        )
        result.edge = True
    else:
        result.skipped.append(
            f"nginx edge (https://localhost:{layout.edge_https}): nginx not found; {nginx.INSTALL_HINT}"
        )

    prom = prometheus.find_prometheus()
    if prom:
        conf = prometheus.write(
            layout,
            [(service, f"127.0.0.1:{port}") for _, service, port in processes],
            (ca.identity_file("prometheus"), ca.ca_file) if layout.service_tls else None,
        )
        prometheus.check(prom[1], conf)
        give(conf.parent / "data", process_user("prometheus"))
        children.append(
            Child(
                "prometheus",
                prometheus.command(prom[0], conf, layout),
                dict(base_env),
                layout.logs / "prometheus.log",
                ready_url=f"http://127.0.0.1:{layout.prometheus}/-/ready",
                user=process_user("prometheus"),
            )
        )
        result.prometheus = True
    else:
        result.skipped.append(
            f"Prometheus (http://localhost:{layout.prometheus}): not found; {prometheus.INSTALL_HINT}"
        )
    return result


def busy_ports(layout: Layout, p: Plan, db: Database, gateway_replicas: int) -> list[str]:
    wanted = {port: name for name, _, port in instances(layout, gateway_replicas)}
    if p.edge:
        wanted.update({layout.edge_https: "nginx https", layout.edge_http: "nginx http"})
    if p.prometheus:
        wanted[layout.prometheus] = "prometheus"
    if db.embedded is not None:
        wanted[layout.postgres_embedded] = "embedded postgresql"
    return [f"{port} ({what})" for port, what in sorted(wanted.items()) if port_in_use(port)]


def describe(layout: Layout, p: Plan, db: Database, gateway_replicas: int) -> dict[str, Any]:
    urls = {name: layout.service_url(port) for name, _, port in instances(layout, gateway_replicas)}
    if p.edge:
        urls["edge"] = f"https://localhost:{layout.edge_https}"
    if p.prometheus:
        urls["prometheus"] = f"http://localhost:{layout.prometheus}"
    return {
        "urls": urls,
        "database": db.source,
        "skipped": p.skipped,
        "logs": str(layout.logs),
        "admin_file": str(layout.admin_file),
        "ca_file": str(local_ca(layout).ca_file),
        "runner_identity": str(runner_tls(layout)[0]),
        "port_offset": layout.port_offset,
    }
