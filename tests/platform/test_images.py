"""Image delivery: an AWS stack runs exactly the images its config pins (by digest, from the shared registry in
its region), and refuses to run otherwise; the pins CI records are validated before they reach a stack."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
from shop_platform.config import (
    ConfigError,
    StackConfig,
    parse_local_config,
    parse_registry_stack_config,
    parse_stack_config,
)
from shop_platform.images import check_deployable, main, offline_pins, parse_pins, pins_of

from services import catalog
from tools.offline import run_program
from tools.plan import REPO_ROOT, PlanResult, stack_config

REGISTRY = "777788889999.dkr.ecr.eu-west-1.amazonaws.com"
SHA = "0123456789abcdef0123456789abcdef01234567"
DIGESTS = {s.name: "sha256:" + f"{i:x}" * 64 for i, s in enumerate(catalog.SERVICES, 1)}


def dev(**kubernetes: object) -> StackConfig:
    cfg = stack_config("dev")
    raw = {k.removeprefix("retail-platform:"): v for k, v in cfg.items() if k.startswith("retail-platform:")}
    raw["kubernetes"] = json.dumps({"imageRegistry": REGISTRY, **kubernetes})
    return parse_stack_config("dev", raw, cfg["aws:region"])


def test_a_fully_pinned_stack_is_deployable() -> None:
    check_deployable(dev(imageTag=SHA, imageDigests=DIGESTS))


@pytest.mark.parametrize(
    ("kubernetes", "key"),
    [
        ({}, "kubernetes.imageTag"),  # the committed stack file: no pins at all
        ({"imageTag": "0.1.0", "imageDigests": DIGESTS}, "kubernetes.imageTag"),  # a tag nobody pushed
        ({"imageTag": SHA}, "kubernetes.imageDigests.gateway"),
        (
            {"imageTag": SHA, "imageDigests": {k: v for k, v in DIGESTS.items() if k != "payments"}},
            "kubernetes.imageDigests.payments",
        ),
    ],
)
def test_an_unpinned_stack_is_refused_with_the_key_named(kubernetes: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_deployable(dev(**kubernetes))


def test_a_registry_in_another_region_or_missing_is_refused() -> None:
    cfg = dev(imageTag=SHA, imageDigests=DIGESTS)
    other = cfg.model_copy(
        update={
            "kubernetes": cfg.kubernetes.model_copy(
                update={"image_registry": REGISTRY.replace("eu-west-1", "us-east-1")}
            )
        }
    )
    with pytest.raises(ConfigError, match="the registry is in us-east-1, the stack in eu-west-1"):
        check_deployable(other)
    with pytest.raises(ConfigError, match=r"kubernetes\.imageRegistry"):
        check_deployable(
            cfg.model_copy(update={"kubernetes": cfg.kubernetes.model_copy(update={"image_registry": None})})
        )


def test_a_malformed_registry_or_digest_is_refused_at_parse_time() -> None:
    with pytest.raises(ConfigError, match=r"kubernetes\.imageRegistry.*not an ECR registry host"):
        dev(imageRegistry="ghcr.io/shop")
    with pytest.raises(ConfigError, match=r"kubernetes\.imageDigests\.users.*not a digest"):
        dev(imageDigests={"users": "latest"})


def test_the_program_refuses_to_declare_anything_without_pins() -> None:
    """A manual `pulumi up` (or a preview) from a checkout of the committed stack file stops in the first second
    instead of rolling every service to an image tag that was never pushed."""
    declared: list[str] = []

    def program() -> None:
        runpy.run_path(str(REPO_ROOT / "stacks"), run_name="__main__")
        declared.append("the program went past its checks")

    with pytest.raises(ConfigError, match=r"kubernetes\.imageTag"):
        run_program(program, project="retail-platform", stack="dev", config=stack_config("dev"), region="eu-west-1")
    assert declared == []


def test_every_service_runs_the_pinned_digest_from_the_shared_registry(plan: PlanResult) -> None:
    """The rendered image reference is repository@digest of the shared registry; the pins are a stack output."""
    from tools.render import render_recording

    pins = offline_pins()
    assert plan.recording.outputs["imagePins"] == {"tag": pins["imageTag"], "digests": pins["imageDigests"]}
    images = {
        c["image"]
        for obj in render_recording(plan.recording).objects
        if obj.get("kind") == "Deployment" and obj["metadata"].get("namespace") == "shop"
        for c in obj["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{REGISTRY}/shop/{s}:{pins['imageTag']}@{d}" for s, d in pins["imageDigests"].items()}


def test_pins_round_trip_through_the_stack_output_and_the_ci_helper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = dev(imageTag=SHA, imageDigests=DIGESTS)
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(pins_of(cfg.kubernetes)))
    assert main(["pins", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"kubernetes.imageTag {SHA}"
    assert sorted(lines[1:]) == sorted(f"kubernetes.imageDigests.{k} {v}" for k, v in DIGESTS.items())


@pytest.mark.parametrize(
    "pins",
    [
        {"tag": SHA, "digests": {k: v for k, v in DIGESTS.items() if k != "users"}},  # a service missing
        {"tag": SHA, "digests": {**DIGESTS, "reviews": DIGESTS["users"]}},  # not a catalog service
        {"tag": SHA, "digests": {**DIGESTS, "users": "sha256:abc"}},
        {"tag": "main", "digests": DIGESTS},
        {"tag": SHA, "digests": DIGESTS, "registry": REGISTRY},
    ],
)
def test_the_ci_helper_refuses_incomplete_or_malformed_pins(
    pins: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError):
        parse_pins(pins)
    path = tmp_path / "pins.json"
    path.write_text(json.dumps(pins))
    assert main(["pins", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "images: config retail-platform:kubernetes" in captured.err


@pytest.mark.parametrize(
    ("registry", "match"),
    [
        ({"pullAccountIds": []}, "pullAccountIds"),
        ({"pullAccountIds": [111122223333]}, "quoted strings"),  # YAML would read unquoted ids as numbers
        ({"pullAccountIds": ["111122223333"], "keepImages": 3}, "keepImages"),
        ({"pullAccountIds": ["111122223333"], "pushRoles": []}, "registry"),
    ],
)
def test_registry_stack_config_errors_name_the_key(registry: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_registry_stack_config(
            "registry", {"environment": "registry", "owner": "platform-team", "registry": registry}, "eu-west-1"
        )


def test_the_kind_stack_may_not_name_a_registry() -> None:
    """kind loads locally built images into its nodes; a registry there would be a second, unused fact."""
    with pytest.raises(ConfigError, match=r"kubernetes\.imageRegistry.*kind nodes"):
        parse_local_config("local", {"kubernetes": {"imageRegistry": REGISTRY}})
