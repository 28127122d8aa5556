"""Shared fixtures: the offline harness (shop_platform.offline) is the only mock implementation; the
offline plan uses the same one, so tests and plan see the same graph."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from shop_platform.context import StackContext
from shop_platform.offline import Recording, run_program
from shop_platform.plan import PlanResult, run_plan
from shop_platform.tags import Tagger

REGION = "eu-west-1"


def pytest_configure(config: pytest.Config) -> None:
    # pulumi-aws warns about its own deprecated aliases when a submodule is imported; not ours to fix.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")
ACCOUNT = "111122223333"


def make_ctx(prod: bool = False) -> StackContext:
    env = "prod" if prod else "dev"
    return StackContext(account_id=ACCOUNT, region=REGION, tags=Tagger(stack=env, owner="platform-team",
                                                                        environment=env), prod=prod)


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
# plain data, so no mock state leaks into other tests).
@pytest.fixture(scope="session")
def dev_plan() -> PlanResult:
    return run_plan("dev")


@pytest.fixture(scope="session")
def prod_plan() -> PlanResult:
    return run_plan("prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def plan(request: pytest.FixtureRequest, dev_plan: PlanResult, prod_plan: PlanResult) -> PlanResult:
    return dev_plan if request.param == "dev" else prod_plan
