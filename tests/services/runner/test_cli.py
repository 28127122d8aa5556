"""The runner's command line: every refusal is a clear message and starts nothing."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from services.runner.layout import Layout
from services.runner.tls import LocalCA
from tests.support.procs import ROOT

OFFSET = 23000  # below the ephemeral port range, away from the e2e stacks' offsets


def runner(run_dir: Path, *args: str, offset: int = OFFSET) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.runner", "--run-dir", str(run_dir), "--port-offset", str(offset), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def busy_products_port() -> Iterator[int]:
    port = 8002 + OFFSET
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        yield port


def test_a_port_in_use_is_named_and_nothing_starts(tmp_path: Path, busy_products_port: int) -> None:
    """Another program on a contract port must stop `up` before it starts anything, naming the port and
    what needed it, and suggesting a way out; a half-started stack would be worse than none."""
    up = runner(tmp_path, "up", "--no-seed")
    layout = Layout(tmp_path, OFFSET)
    if layout.shared != tmp_path:  # made for the unprivileged users (as root, in a private directory)
        shutil.rmtree(layout.shared)
    assert up.returncode == 1
    assert f"{busy_products_port} (products)" in up.stderr
    assert "--port-offset" in up.stderr
    assert not (tmp_path / "state.json").exists()
    assert runner(tmp_path, "status").returncode == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port-offset", "-5", "status"], "--port-offset must be 0.."),
        (["--port-offset", "60000", "status"], "--port-offset must be 0.."),
        (["up", "--gateway-replicas", "9"], "invalid choice"),
        (["launch"], "invalid choice"),
    ],
)
def test_bad_flags_fail_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    """A typo in a flag must say what is allowed, not start something half-configured."""
    result = subprocess.run(
        [sys.executable, "-m", "services.runner", "--run-dir", str(tmp_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_down_status_and_logs_when_nothing_runs(tmp_path: Path) -> None:
    """Stopping a stopped stack is not an error; status says so with its own exit code (scripts check it);
    asking for an unknown log lists the ones there are."""
    down = runner(tmp_path, "down")
    assert (down.returncode, down.stdout.strip()) == (0, f"not running ({tmp_path})")
    assert runner(tmp_path, "status").returncode == 3
    logs = runner(tmp_path, "logs", "nope")
    assert logs.returncode == 1
    assert "no log for 'nope'" in logs.stderr


def test_a_debugging_identity_is_issued_by_the_stack_s_ca_and_never_replaces_a_process_s(tmp_path: Path) -> None:
    """`identity NAME` gives a person a client certificate the services accept (issued by the stack's CA, key
    readable by its owner only); a process's own name is refused, so no process loses its identity file."""
    layout = Layout(tmp_path, OFFSET)
    assert runner(tmp_path, "identity", "debug-me").returncode == 1, "no CA before `up`"
    ca = LocalCA(layout.tls, layout.identities)
    ca.ensure()
    issued = runner(tmp_path, "identity", "debug-me")
    assert issued.returncode == 0, issued.stderr
    path = Path(issued.stdout.strip())
    assert path == ca.identity_file("debug-me")
    assert path.stat().st_mode & 0o777 == 0o400
    x509.load_pem_x509_certificate(path.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    )
    for taken in ("orders", "edge", "runner", "postgres"):
        refused = runner(tmp_path, "identity", taken)
        assert refused.returncode == 2
        assert "a process of the stack" in refused.stderr
    assert not ca.identity_file("orders").exists()
    bad = runner(tmp_path, "identity", "Not A Name")
    assert bad.returncode == 2
    assert "lower-case" in bad.stderr
