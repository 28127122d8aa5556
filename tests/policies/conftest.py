"""The recorded graphs the pack runs over: helper-1's offline plan (``tools.plan.run_plan``), used
read-only. Each stack is planned once per session; tests get deep copies they may mutate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tools.plan import REPO_ROOT, PlanResult, run_plan

STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in REPO_ROOT.glob("Pulumi.*.yaml"))
_PLANS: dict[str, PlanResult] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulumi_aws.*")


def planned(stack: str) -> PlanResult:
    if stack not in _PLANS:
        _PLANS[stack] = run_plan(stack)
    return _PLANS[stack]


def graph(stack: str) -> list[dict[str, Any]]:
    """The stack's recorded resources as plain dicts (inputs, deps, and what the mocks answered)."""
    return [
        copy.deepcopy({**r.as_json(), "id": r.id, "outputs": r.outputs}) for r in planned(stack).recording.resources
    ]
