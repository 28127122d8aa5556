"""A PostgreSQL server from the binaries on this machine, for the one-machine stack and the tests.

It is durable unless asked otherwise: ``crash_unsafe_for_tests`` turns off fsync, synchronous commit and
full-page writes, which makes a test database faster and lets a crash lose commits already acknowledged
(an order answered 201). Only a throwaway test server may ask for it.

``initdb`` refuses to run as root, so when we are root the cluster is created and run as the ``postgres``
OS user (the Debian package creates it).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# What a throwaway test server trades for speed; PostgreSQL's defaults (all "on") are what make a commit
# survive a crash.
CRASH_UNSAFE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresNotFoundError(RuntimeError):
    pass


def find_bindir() -> Path:
    """The newest PostgreSQL server binaries: ``PG_BINDIR``, Debian's layout, or ``PATH``."""
    if env := os.environ.get("PG_BINDIR"):
        return Path(env)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresNotFoundError(
        "PostgreSQL server binaries not found: install them (Debian/Ubuntu: apt-get install postgresql) "
        "or set PG_BINDIR to the directory holding initdb and pg_ctl."
    )


@dataclass
class PostgresServer:
    port: int
    datadir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgdata-")))
    bindir: Path = field(default_factory=find_bindir)
    user: str = "postgres"
    extra_settings: dict[str, str] = field(default_factory=dict)
    # Throwaway test servers only: a crash (of PostgreSQL or the machine) may then lose committed work.
    crash_unsafe_for_tests: bool = False
    # Authentication for TCP connections. "trust" suits throwaway servers; tests of password handling
    # (rotation) use "scram-sha-256". The local socket always trusts the OS user, for administration.
    host_auth: str = "trust"

    def _as_owner(self, args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return args

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def socket_dir(self) -> Path:
        return self.datadir / "sock"

    @property
    def logfile(self) -> Path:
        return self.datadir / "server.log"

    def init(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._chown(self.datadir)
        pgdata = self.datadir / "data"
        result = subprocess.run(
            self._as_owner([str(self.bindir / "initdb"), "-D", str(pgdata), "--auth-local=trust",
                            f"--auth-host={self.host_auth}",
                            *(["--no-sync"] if self.crash_unsafe_for_tests else []),
                            f"--username={self.user}", "--encoding=UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            # As root the server runs as `postgres`, which must be able to reach the data directory.
            raise RuntimeError(f"initdb failed for {pgdata}: {result.stderr.strip() or result.stdout.strip()}")
        self.socket_dir.mkdir(exist_ok=True)
        self._chown(self.socket_dir)

    def start(self) -> None:
        settings = {"listen_addresses": "127.0.0.1", "port": str(self.port), "max_connections": "300",
                    "unix_socket_directories": str(self.socket_dir),
                    **(CRASH_UNSAFE if self.crash_unsafe_for_tests else {}), **self.extra_settings}
        options = " ".join(f"-c {k}={v}" for k, v in settings.items())
        # The log file must be writable by the server's OS user.
        self.logfile.touch()
        self._chown(self.logfile)
        result = subprocess.run(
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-o", options,
                            "-l", str(self.logfile), "-w", "-t", "30", "start"]),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}: {result.stderr.strip()}\n"
                               f"{self.logfile.read_text()[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir / "data"), "-m", mode,
                            "-w", "stop"]),
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", database, "-c", sql],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
