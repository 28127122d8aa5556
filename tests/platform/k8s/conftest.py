"""Each stack's program, run once per session exactly as the offline plan runs it, and its manifests rendered.

Every stack file at the repository root is covered (dev, prod, local): the real ``stacks/__main__.py`` under the
plan's recording monitor (tools.plan.run_plan), and the same ``render_recording`` the plan's
``manifests/`` writer uses, so tests check exactly what the plan writes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from shop_platform.config import PROJECT, parse_local_config, parse_stack_config
from shop_platform.k8s.components import AwsInputs
from shop_platform.k8s.spec import LayerSpec
from shop_platform.k8s.stackconfig import layer_spec_for_eks, layer_spec_for_local

from services import catalog
from tools import offline
from tools.offline import Recording
from tools.plan import REPO_ROOT, run_plan
from tools.render import Rendered, render_recording

STACKS = ("dev", "prod", "local")
# The local stack with `kind.profile: light` (no log pipeline): a config variant of Pulumi.local.yaml, not a file.
LIGHT = "local-light"


def stack_raw(stack: str) -> tuple[dict[str, Any], str | None]:
    import yaml  # type: ignore[import-untyped]

    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    data = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}, data.get("aws:region")


def light_raw() -> dict[str, Any]:
    raw, _ = stack_raw("local")
    return {**raw, "kind": {**raw["kind"], "profile": "light"}}


def layer_for(stack: str) -> LayerSpec:
    if stack == LIGHT:
        return layer_spec_for_local(parse_local_config("local", light_raw()))
    raw, region = stack_raw(stack)
    if stack == "local":
        return layer_spec_for_local(parse_local_config(stack, raw))
    return layer_spec_for_eks(parse_stack_config(stack, raw, region))


def placeholder_aws(stack: str) -> AwsInputs:
    """Stand-ins for the AWS layer's outputs, shaped like the offline mocks' (the full plan uses the real ones)."""
    acct = offline.ACCOUNT_ID
    dbs = [s.name for s in catalog.database_services()]
    return AwsInputs(
        repository_urls={
            s.name: f"{acct}.dkr.ecr.eu-west-1.amazonaws.com/shop-{stack}/{s.name}" for s in catalog.SERVICES
        },
        database_hosts={n: f"{stack}-{n}.abcdefghij.eu-west-1.rds.amazonaws.com" for n in dbs},
        database_users={n: f"{n}_app" for n in dbs},
        database_role_arns={n: f"arn:aws:iam::{acct}:role/{stack}-{n}-db" for n in dbs},
        target_group_arn=f"arn:aws:elasticloadbalancing:eu-west-1:{acct}:targetgroup/edge-gateway-tg/0123456789abcdef",
        lb_controller_role_arn=f"arn:aws:iam::{acct}:role/{stack}-lbc",
        autoscaler_role_arn=f"arn:aws:iam::{acct}:role/{stack}-cluster-autoscaler",
        cluster_name=f"shop-{stack}",
        vpc_id="vpc-0123456789abcdef0",
        volumes_kms_key_arn=f"arn:aws:kms:eu-west-1:{acct}:key/0123abcd-0123-4567-89ab-0123456789ab",
    )


@dataclass(frozen=True)
class StackRender:
    stack: str
    layer: LayerSpec
    recording: Recording
    rendered: Rendered


_CACHE: dict[str, StackRender] = {}


def render_stack(stack: str) -> StackRender:
    """The whole stack program (stacks/__main__.py) under the offline plan's mocks, rendered as the plan does."""
    if stack not in _CACHE:
        if stack == LIGHT:
            from tools.plan import stack_config

            cfg = {**stack_config("local"), f"{PROJECT}:kind": json.dumps(light_raw()["kind"])}
            recording = run_plan("local", config=cfg).recording
        else:
            recording = run_plan(stack).recording
        _CACHE[stack] = StackRender(stack, layer_for(stack), recording, render_recording(recording))
    return _CACHE[stack]


@pytest.fixture(scope="session", params=STACKS)
def stack_render(request: pytest.FixtureRequest) -> StackRender:
    return render_stack(request.param)


@pytest.fixture(scope="session")
def all_renders() -> dict[str, StackRender]:
    return {s: render_stack(s) for s in STACKS}


def dump(rendered: Rendered, directory: Path) -> None:
    from tools.render import write_manifests

    if directory.exists():
        shutil.rmtree(directory)
    write_manifests(rendered, directory)


__all__ = ["LIGHT", "STACKS", "StackRender", "dump", "json", "layer_for", "render_stack"]
