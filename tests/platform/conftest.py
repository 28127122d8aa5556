"""Shared fixtures: the offline harness (tools.offline) is the only mock implementation; the
offline plan uses the same one, so tests and plan see the same graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from shop_platform.config import Section, validate
from shop_platform.context import StackContext
from shop_platform.tags import Tagger

from tools.offline import ACCOUNT_ID, Recording, run_program
from tools.plan import REPO_ROOT, PlanResult, run_plan

REGION = "eu-west-1"


def pytest_configure(config: pytest.Config) -> None:
    # pulumi-aws warns about its own deprecated aliases when a submodule is imported; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")


def make_ctx(prod: bool = False) -> StackContext:
    env = "prod" if prod else "dev"
    return StackContext(
        account_id=ACCOUNT_ID, region=REGION, tags=Tagger(stack=env, owner="platform-team", environment=env), prod=prod
    )


S = TypeVar("S", bound=Section)


def section(model: type[S], ctx: StackContext, **raw: object) -> S:
    """A stack config section for a component's args, validated for the context's environment (camelCase keys,
    as in a stack file)."""
    return validate(model, raw, environment="prod" if ctx.prod else "dev")


@pytest.fixture
def dev_ctx() -> StackContext:
    return make_ctx(prod=False)


@pytest.fixture
def prod_ctx() -> StackContext:
    return make_ctx(prod=True)


@pytest.fixture
def run() -> Callable[..., Recording]:
    """Run a program under fresh mocks (set per test: mocks are process-global) and return the graph."""

    def _run(program: Callable[[], object], stack: str = "dev") -> Recording:
        return run_program(program, project="retail-platform", stack=stack, config={}, region=REGION)

    return _run


# The whole program, run once per session per stack (each run sets its own mocks; afterwards the graph is
# plain data, so no mock state leaks into other tests). Every AWS stack file in the repository is planned: a
# new Pulumi.<stack>.yaml is covered without a test edit. The kind-based `local` stack has no AWS resources:
# tests/platform/k8s plans and checks it (and the Kubernetes layer of every stack); the shared `registry` stack
# holds only the image repositories: tests/platform/test_registry.py plans and checks it.
def _is_aws_stack(path: Path) -> bool:
    import yaml  # type: ignore[import-untyped]

    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return config.get("retail-platform:environment") not in ("local", "registry")


STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO_ROOT.glob("Pulumi.*.yaml") if _is_aws_stack(p)
)
_PLANS: dict[str, PlanResult] = {}


def _plan(stack: str) -> PlanResult:
    if stack not in _PLANS:
        _PLANS[stack] = run_plan(stack)
    return _PLANS[stack]


@pytest.fixture(scope="session")
def dev_plan() -> PlanResult:
    return _plan("dev")


@pytest.fixture(scope="session")
def prod_plan() -> PlanResult:
    return _plan("prod")


@pytest.fixture(scope="session", params=STACKS)
def plan(request: pytest.FixtureRequest) -> PlanResult:
    return _plan(request.param)
