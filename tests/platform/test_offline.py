"""The offline harness itself: it must refuse what it cannot answer and never skip assertions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from tools.offline import SECRET_PLACEHOLDER, Recording, UnknownInvokeError


def test_unknown_invokes_raise_instead_of_returning_nothing(run: Callable[..., Recording]) -> None:
    """Pulumi's default mock answers an unknown lookup with {} and the program quietly gets None values."""
    with pytest.raises(UnknownInvokeError, match="getVpc"):
        run(lambda: aws.ec2.get_vpc(default=True))


def test_apply_callbacks_run(run: Callable[..., Recording]) -> None:
    """preview=False: with preview=True outputs stay unknown and apply() never runs, so checks inside would
    be skipped silently."""
    seen: list[str] = []

    def program() -> None:
        vpc = aws.ec2.Vpc("v", cidr_block="10.0.0.0/16")
        vpc.id.apply(seen.append)

    run(program)
    assert seen == ["v-id"]


def test_secrets_are_redacted_in_the_recording(run: Callable[..., Recording]) -> None:
    """resources.json is an artifact people read and CI stores: secret inputs must never appear in it."""

    def program() -> None:
        aws.secretsmanager.SecretVersion("s", secret_id="x", secret_string=pulumi.Output.secret("hunter2"))
        pulumi.export("token", pulumi.Output.secret("t0ken"))

    rec = run(program)
    assert rec.one("aws:secretsmanager/secretVersion:SecretVersion").inputs["secretString"] == SECRET_PLACEHOLDER
    assert rec.outputs["token"] == SECRET_PLACEHOLDER
    assert "hunter2" not in repr(rec.resources)


def test_each_run_starts_from_a_clean_graph(run: Callable[..., Recording]) -> None:
    """Mocks are process-global: a second run must not see the first run's resources or outputs."""
    run(lambda: (aws.ec2.Vpc("first", cidr_block="10.0.0.0/16"), pulumi.export("a", 1)))
    second = run(lambda: aws.ec2.Vpc("second", cidr_block="10.1.0.0/16"))
    assert [r.name for r in second.resources] == ["second"]
    assert second.outputs == {}


def test_the_plan_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    """Every file of the plan (resources.json, cost.json, the manifests and releases.json) is diffed in review
    and CI; noise (set order, hash seeds, the order resources register in) would hide real changes."""
    import os
    import subprocess
    import sys

    from tools.plan import REPO_ROOT

    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(
            [sys.executable, "-m", "tools.plan", "--stack", "dev", "--out", str(out), "--quiet"],
            check=True,
            env=env,
            capture_output=True,
            cwd=REPO_ROOT,
        )
        outputs.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert "cost.json" in outputs[0]
    assert "manifests/releases.json" in outputs[0]
    assert sorted(outputs[0]) == sorted(outputs[1])
    assert [name for name in outputs[0] if outputs[0][name] != outputs[1][name]] == []
