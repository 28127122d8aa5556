"""Version pins against their dated support windows (shop_platform.versions).

Two kinds of check, so passing time never turns into an unexplained red build:
- the plan's warning logic is tested with injected dates (deterministic forever);
- one test judges the pins on the real date and, when it fails, says which pin left support on which day
  and what to do. That failure is the point: a pin past its window is a defect (EKS upgrades a STANDARD
  cluster by itself; RDS forces upgrades), and the fix is a reviewed version bump, not a test edit.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from shop_platform import versions
from shop_platform.config import parse_stack_config

from stacks.aws import build
from tools.offline import run_program
from tools.plan import stack_config

EKS_END = versions.EKS_SUPPORT[versions.DEFAULT_EKS_VERSION].end_of_standard_support


def _stack_pins(stack: str) -> str:
    from tests.platform.test_config import _raw

    raw, region = _raw(stack)
    return parse_stack_config(stack, raw, region).cluster.version


def test_every_pinned_version_has_a_dated_support_window() -> None:
    """A pin without an end-of-support date could never be warned about."""
    assert set(versions.EKS_ADDON_VERSIONS) <= set(versions.EKS_SUPPORT)
    assert versions.POSTGRES_ENGINE_VERSION in versions.POSTGRES_SUPPORT
    with pytest.raises(KeyError, match="no support window"):
        versions.support_window("eks", "1.99")


def test_rds_engine_version_is_the_major_only() -> None:
    """With auto minor upgrades on, a minor pin ("17.6") plans a downgrade once RDS moves to 17.7; a
    major-only prefix is what the provider keeps (compareActualEngineVersion)."""
    assert versions.POSTGRES_ENGINE_VERSION.isdigit()
    assert f"postgres{versions.POSTGRES_ENGINE_VERSION}" == versions.POSTGRES_PARAMETER_FAMILY


def test_no_warning_far_from_the_end_of_support() -> None:
    far = EKS_END - timedelta(days=versions.SUPPORT_WARNING_DAYS + 1)
    assert versions.support_warnings(versions.DEFAULT_EKS_VERSION, far) == []


@pytest.mark.parametrize(
    ("days_before", "phrase"),
    [
        (versions.SUPPORT_WARNING_DAYS, "leaves standard support"),
        (0, "leaves standard support"),
        (-1, "left standard support"),
    ],
)
def test_warning_within_the_window_and_after_it(days_before: int, phrase: str) -> None:
    today = EKS_END - timedelta(days=days_before)
    warnings = versions.support_warnings(versions.DEFAULT_EKS_VERSION, today)
    assert len(warnings) == 1
    assert f"EKS {versions.DEFAULT_EKS_VERSION} {phrase} on {EKS_END}" in warnings[0]


def test_the_rds_major_is_warned_about_too() -> None:
    end = versions.POSTGRES_SUPPORT[versions.POSTGRES_ENGINE_VERSION].end_of_standard_support
    warnings = versions.support_warnings(versions.DEFAULT_EKS_VERSION, end - timedelta(days=10))
    assert any(w.startswith(f"RDS for PostgreSQL {versions.POSTGRES_ENGINE_VERSION} ") for w in warnings)


def test_the_plan_prints_the_warning_for_the_stacks_cluster_version(caplog: pytest.LogCaptureFixture) -> None:
    """The program itself warns (pulumi.log.warn), so `pulumi preview` and the offline plan both show it."""
    cfg = stack_config("dev")
    raw = {k.removeprefix("retail-platform:"): v for k, v in cfg.items() if k.startswith("retail-platform:")}
    parsed = parse_stack_config("dev", raw, cfg["aws:region"])
    soon = EKS_END - timedelta(days=30)
    run_program(
        lambda: build(parsed, today=soon), project="retail-platform", stack="dev", config=cfg, region=cfg["aws:region"]
    )
    # Under the offline mocks pulumi.log.warn goes to Python logging (the engine shows it as a warning).
    assert any(
        r.levelname == "WARNING"
        and f"EKS {parsed.cluster.version} leaves standard support on {EKS_END} (in 30 days" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pinned_versions_are_in_standard_support_today(stack: str) -> None:
    """Judged on the real date. When this fails, a pin has passed the end of its vendor's standard support:
    bump it in shop_platform/versions.py (and Pulumi.<stack>.yaml), with the new add-on set checked
    against `aws eks describe-addon-versions`; do not move the dates."""
    today = date.today()
    for kind, version in (("eks", _stack_pins(stack)), ("postgres", versions.POSTGRES_ENGINE_VERSION)):
        window = versions.support_window(kind, version)  # type: ignore[arg-type]
        assert today <= window.end_of_standard_support, (
            f"{window.what} (stack {stack}) left standard support on {window.end_of_standard_support} "
            f"({window.source}); bump the pin in shop_platform/versions.py"
        )


def test_the_default_and_the_stack_files_name_the_newest_pinned_minor() -> None:
    """The stacks run the newest minor with an add-on set; older ones are there to upgrade from."""
    newest = max(versions.EKS_ADDON_VERSIONS, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert newest == versions.DEFAULT_EKS_VERSION
    assert _stack_pins("dev") == _stack_pins("prod") == newest
