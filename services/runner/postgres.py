"""A PostgreSQL server from the binaries on this machine, for the one-machine stack and the tests.

It is durable unless asked otherwise: ``crash_unsafe_for_tests`` turns off fsync, synchronous commit and
full-page writes, which makes a test database faster and lets a crash lose commits already acknowledged
(an order answered 201). Only a throwaway test server may ask for it.

``initdb`` refuses to run as root, so when we are root the cluster is created and run as the ``postgres``
OS user (the Debian package creates it).

With ``tls`` (``ServerTLS``) the server speaks TLS 1.3 only, with a certificate from the stack's local CA
(``services.runner.tls``), and admits a TCP client only over TLS, with the role's password *and* a
certificate from that CA naming the role (``hostssl ... clientcert=verify-full``): plaintext TCP, a client
without a certificate, one from another CA and one issued to another service are all refused. The unix
socket keeps the password alone: it is no network hop (the kernel carries the bytes between two processes
of this machine, nothing can be captured on a wire), and it sits in a directory only the server's OS user
(and root) can enter, so it is how the runner administers the server.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from services.runner.tls import Owner

# What a throwaway test server trades for speed; PostgreSQL's defaults (all "on") are what make a commit
# survive a crash.
CRASH_UNSAFE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresNotFoundError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest PostgreSQL server binaries: ``PG_BINDIR``, Debian's layout, or ``PATH``."""
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresNotFoundError(
        "PostgreSQL server binaries not found: install them (Debian/Ubuntu: apt-get install postgresql) "
        "or set PG_BINDIR to the directory holding initdb and pg_ctl."
    )


# Who may connect, and how: every connection, socket or TCP, proves the password (SCRAM). Written by us
# rather than left to initdb, so a cluster made with other rules gets these at its next start.
HBA = """# Written by services.runner.postgres at every start; edits are replaced.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
"""
# With TLS: TCP only as `hostssl` (a plaintext connection matches no line and is refused), and only with a
# client certificate that chains to ssl_ca_file and whose common name is the role asked for. PostgreSQL 15
# (15.18 read) checks that after the password (src/backend/libpq/auth.c, ClientAuthentication:
# clientCertFull -> CheckCertAuth) and accepts no user-name `map` on a scram-sha-256 line (hba.c,
# parse_hba_auth_opt: "map" is for ident, peer, gssapi, sspi and cert only), so each certificate is issued
# under its role's own name.
TLS_HBA = """# Written by services.runner.postgres at every start; edits are replaced.
local   all all scram-sha-256
hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full
hostssl all all ::1/128 scram-sha-256 clientcert=verify-full
"""


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The server's identity file (private key and certificate in one PEM file, as ``LocalCA.issue`` writes
    it) and the CA certificate every client's certificate must chain to."""

    identity_file: Path
    ca_file: Path

    def settings(self) -> dict[str, str]:
        # One file for both: PostgreSQL reads the certificate chain with SSL_CTX_use_certificate_chain_file
        # and the key with SSL_CTX_use_PrivateKey_file (be-secure-openssl.c, be_tls_init), and OpenSSL's PEM
        # reader skips blocks of another type (OpenSSL 3.0 crypto/pem/pem_lib.c, pem_bytes_read_bio_flags).
        # The key file may be the server user's with no group or other access, or root's
        # (be-secure-common.c, check_ssl_key_file_permissions): identities are mode 0400, owned by their user.
        return {
            "ssl": "on",
            "ssl_cert_file": str(self.identity_file),
            "ssl_key_file": str(self.identity_file),
            "ssl_ca_file": str(self.ca_file),
            "ssl_min_protocol_version": "TLSv1.3",
        }


@dataclass
class PostgresServer:
    port: int
    datadir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgdata-")))
    bindir: Path = field(default_factory=find_bindir)
    user: str = "postgres"
    extra_settings: dict[str, str] = field(default_factory=dict)
    # Throwaway test servers only: a crash (of PostgreSQL or the machine) may then lose committed work.
    crash_unsafe_for_tests: bool = False
    # The superuser's password, generated once, in libpq's password-file format (psql reads it as
    # PGPASSFILE); mode 0600. Beside the data directory unless the caller keeps secrets elsewhere.
    passfile_path: Path | None = None
    # TLS for TCP clients, with client certificates required (see the module's docstring); None: passwords
    # alone, over plaintext TCP (the test suite's shared server).
    tls: ServerTLS | None = None

    @property
    def os_user(self) -> str | None:
        """The OS user the server runs as: ``postgres`` when we are root (initdb refuses root), else us."""
        return "postgres" if os.geteuid() == 0 else None

    def identity_owner(self) -> Owner | None:
        """Who must own the server's identity file: its OS user (PostgreSQL loads a key file only from
        itself, or from root with group access; None: the caller, who runs the server)."""
        return Owner.of_user(self.os_user)

    def _as_owner(self, args: list[str]) -> list[str]:
        if self.os_user is not None:
            return ["runuser", "-u", self.os_user, "--", *args]
        return args

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def pgdata(self) -> Path:
        return self.datadir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.datadir / "sock"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    @property
    def passfile(self) -> Path:
        return self.passfile_path or self.datadir / "superuser.pgpass"

    @property
    def password(self) -> str:
        # "*:*:*:user:password": the last field (the password is hex, so it needs no escaping).
        return self.passfile.read_text().strip().rsplit(":", 1)[1]

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._chown(self.datadir)
        # initdb's own rules are replaced by HBA before the server ever starts (see secure()).
        result = subprocess.run(
            self._as_owner(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    *(["--no-sync"] if self.crash_unsafe_for_tests else []),
                    f"--username={self.user}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            # As root the server runs as `postgres`, which must be able to reach the data directory.
            raise RuntimeError(f"initdb failed for {self.pgdata}: {result.stderr.strip() or result.stdout.strip()}")
        self.secure(new_cluster=True)

    def secure(self, *, new_cluster: bool = False) -> None:
        """Give the superuser a password (a new cluster, or one without; a password file kept from a
        removed cluster is reused), require it from every client, and keep the socket in a directory only
        the server's OS user can enter. Runs while the server is stopped."""
        if new_cluster or not self.passfile.exists():
            password = self.password if self.passfile.exists() else secrets.token_hex(24)
            # Single-user mode needs no connection, so no rule has to trust anyone even for a moment; the
            # password travels on stdin, never on a command line other users can read.
            result = subprocess.run(
                self._as_owner(
                    [
                        str(self.bindir / "postgres"),
                        "--single",
                        "-D",
                        str(self.pgdata),
                        "-c",
                        "log_statement=none",
                        "postgres",
                    ]
                ),
                input=f"ALTER ROLE \"{self.user}\" PASSWORD '{password}'\n",
                capture_output=True,
                text=True,
            )
            if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
                raise RuntimeError(
                    f"could not set the PostgreSQL password in {self.pgdata}: "
                    f"{result.stderr.strip() or result.stdout.strip()}"
                )
            self.passfile.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"*:*:*:{self.user}:{password}\n")
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(TLS_HBA if self.tls is not None else HBA)
        self._chown(hba)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.chmod(0o700)
        self._chown(self.socket_dir)

    def settings(self) -> dict[str, str]:
        return {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "max_connections": "300",
            "unix_socket_directories": str(self.socket_dir),
            **(self.tls.settings() if self.tls is not None else {}),
            **(CRASH_UNSAFE if self.crash_unsafe_for_tests else {}),
            **self.extra_settings,
        }

    def command(self) -> list[str]:
        """The server in the foreground, for a supervisor (which runs it as ``os_user``)."""
        options = [arg for key, value in self.settings().items() for arg in ("-c", f"{key}={value}")]
        return [str(self.bindir / "postgres"), "-D", str(self.pgdata), *options]

    def ready_command(self) -> list[str]:
        # pg_isready needs no password: the server's answer to the start-up packet says whether it accepts.
        # Through the socket (the postmaster opens it after the TCP listener, before accepting anyone): over
        # TCP with TLS every probe would be a refused connection in the server's log.
        return [str(self.bindir / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port), "-t", "2"]

    def start(self) -> None:
        self.secure()
        options = " ".join(f"-c {k}={v}" for k, v in self.settings().items())
        # The log file must be writable by the server's OS user.
        self.logfile.touch()
        self._chown(self.logfile)
        result = subprocess.run(
            self._as_owner(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-o",
                    options,
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"PostgreSQL did not start on port {self.port}: {result.stderr.strip()}\n"
                f"{self.logfile.read_text()[-2000:]}"
            )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"]),
            capture_output=True,
        )

    def reload_identity(self) -> None:
        """Make the running server read its identity file again, after the runner renewed it: ``pg_ctl
        reload`` (SIGHUP to the postmaster) rereads the configuration and the SSL files, and each new
        connection then gets the new certificate; open ones keep theirs. A file that fails to load leaves the
        previous one in use and says so in the server's log ("SSL configuration was not reloaded";
        postmaster.c, SIGHUP_handler -> secure_initialize(false)). The signal is sent, not waited on.

        The reload also logs that max_connections "cannot be changed without restarting": postgresql.conf
        (initdb's) says 100, our command line 300, and the command line's value stays; nothing else is refused.
        """
        if self.tls is None:
            raise RuntimeError("this PostgreSQL server has no TLS identity to reload")
        result = subprocess.run(
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "reload"]),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"could not reload PostgreSQL in {self.pgdata}: {result.stderr.strip()}")

    def url(self, database: str = "postgres", *, role: tuple[str, str] | None = None) -> str:
        """A TCP URL to ``database`` as the superuser, or as ``role`` (name, password)."""
        user, password = role or (self.user, self.password)
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """The superuser's URL through the unix socket: what the runner administers the server with, since
        with TLS a TCP client must hold a certificate issued to its role."""
        return f"postgresql://{self.user}:{self.password}@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-w",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSFILE": str(self.passfile)},
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
        if self.passfile_path is not None:
            self.passfile_path.unlink(missing_ok=True)
