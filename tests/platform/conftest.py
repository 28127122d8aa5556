"""Shared fixtures: the offline harness (shop_platform.offline) is the only mock implementation; the
offline plan uses the same one, so tests and plan see the same graph."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from shop_platform.context import StackContext
from shop_platform.offline import Recording, run_program
from shop_platform.tags import Tagger

REGION = "eu-west-1"
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
