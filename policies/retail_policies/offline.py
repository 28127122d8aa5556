"""Run the pack without the Pulumi CLI: over a recorded graph (the offline plan's ``resources.json`` or
``tools.offline.Recording.resources``), exactly as the engine would call each rule.

    python -m retail_policies.offline out/plan/dev/resources.json [--config cfg.json] [--out DIR]

Resource rules get each resource's inputs (camelCase, behind pulumi-policy's unknown-checking proxy);
stack rules get every resource with its parent and dependencies. The recording keeps dependencies but not
per-property dependencies, so stack rules link resources through dependencies and known values (see
``_support.links``). Exit status: 0 with no mandatory violation, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from retail_policies import PACK_NAME, POLICIES
from retail_policies._support import Rule, stack_of

REPORT_JSON: Final = "policy-report.json"
REPORT_TEXT: Final = "policy-report.txt"
PolicyConfig = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Violation:
    policy: str
    level: str  # "mandatory" | "advisory"
    message: str
    urn: str | None
    resource_type: str | None = None
    resource_name: str | None = None


@dataclass
class PolicyReport:
    pack: str
    stack: str
    resources: int
    policies: int
    violations: list[Violation] = field(default_factory=list)
    not_run: list[Violation] = field(default_factory=list)  # unknown values (preview) or policy errors

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "mandatory"]

    @property
    def advisory(self) -> list[Violation]:
        return [v for v in self.violations if v.level == "advisory"]

    @property
    def passed(self) -> bool:
        return not self.mandatory and not any(v.level == "mandatory" for v in self.not_run)

    def as_json(self) -> dict[str, Any]:
        return {
            "pack": self.pack,
            "stack": self.stack,
            "resources": self.resources,
            "policies": self.policies,
            "passed": self.passed,
            "mandatory": len(self.mandatory),
            "advisory": len(self.advisory),
            "by_policy": dict(sorted(Counter(v.policy for v in self.violations).items())),
            "violations": [asdict(v) for v in self.violations],
            "not_run": [asdict(v) for v in self.not_run],
        }

    def render(self) -> str:
        head = (
            f"policy pack {self.pack}: stack {self.stack or '?'}: {self.policies} policies over "
            f"{self.resources} resources: {len(self.mandatory)} mandatory, {len(self.advisory)} advisory "
            f"violation(s){'' if self.passed else ' - FAILED'}"
        )
        lines = [head]
        for v in sorted(self.violations + self.not_run, key=lambda v: (v.level != "mandatory", v.policy, v.message)):
            lines.append(f"  [{v.level}] {v.policy}: {v.message}")
            if v.urn:
                lines.append(f"      at {v.urn}")
        return "\n".join(lines)


def _field(resource: Any, name: str, default: Any = None) -> Any:
    if isinstance(resource, Mapping):
        return resource.get(name, default)
    return getattr(resource, name, default)


class RecordedPolicyResource(PolicyResource):
    """A PolicyResource that also knows what the mocks answered for it (id, ARN, name), so stack rules can
    match references by value offline (``_support.links`` reads ``identities``)."""

    identities: set[str]


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def _level(policy: Rule) -> str:
    level = policy.enforcement_level or EnforcementLevel.MANDATORY  # the pack's default (policies/__main__.py)
    return "advisory" if level == EnforcementLevel.ADVISORY else "mandatory"


def run_policies(
    resources: Iterable[Any], config: PolicyConfig | None = None, policies: Sequence[Rule] | None = None
) -> PolicyReport:
    """Evaluate ``policies`` (default: the whole pack) over recorded resources.

    ``resources``: objects or dicts with ``type``, ``name``, ``urn``, ``inputs`` and optionally ``parent``,
    ``deps``, ``id``, ``outputs`` (``tools.offline.RecordedResource`` or entries of
    ``resources.json``). ``config`` maps a policy name to its config, like ``--policy-pack-config``.
    """
    rules = list(POLICIES if policies is None else policies)
    cfg = config or {}
    recorded = [r for r in resources if _field(r, "type") != "pulumi:pulumi:Stack"]
    stack = next((stack_of(str(_field(r, "urn", ""))) for r in recorded), "")
    report = PolicyReport(pack=PACK_NAME, stack=stack, resources=len(recorded), policies=len(rules))
    by_urn = {str(_field(r, "urn")): r for r in recorded}

    def sink(policy: Rule, default_urn: str | None) -> Any:
        def report_violation(message: str, urn: str | None = None) -> None:
            at = urn or default_urn
            r = by_urn.get(at) if at else None
            report.violations.append(
                Violation(
                    policy.name,
                    _level(policy),
                    message,
                    at,
                    _field(r, "type") if r else None,
                    _field(r, "name") if r else None,
                )
            )

        return report_violation

    resource_rules = [p for p in rules if isinstance(p, ResourceValidationPolicy)]
    stack_rules = [p for p in rules if isinstance(p, StackValidationPolicy)]

    for r in recorded:
        type_, urn, name = str(_field(r, "type")), str(_field(r, "urn")), str(_field(r, "name"))
        for rule in resource_rules:
            args = ResourceValidationArgs(
                type_,
                unknown_checking_proxy(dict(_field(r, "inputs") or {})),
                urn,
                name,
                _options(),
                None,
                cfg.get(rule.name, {}),
            )
            _guard(report, rule, urn, lambda p=rule, a=args: p.validate(a, sink(p, a.urn)))

    policy_resources: dict[str, RecordedPolicyResource] = {}
    for r in recorded:
        pr = RecordedPolicyResource(
            str(_field(r, "type")),
            unknown_checking_proxy(dict(_field(r, "inputs") or {})),
            str(_field(r, "urn")),
            str(_field(r, "name")),
            _options(),
            None,
            None,
            [],
            {},
        )
        # What the mocks answered (id, ARN, name): lets stack rules match references by value offline.
        outputs = _field(r, "outputs") or {}
        pr.identities = {
            str(v)
            for v in (_field(r, "id"), *(outputs.get(k) for k in ("arn", "name", "id", "bucket")))
            if isinstance(v, str) and v
        }
        policy_resources[pr.urn] = pr
    for r in recorded:
        pr = policy_resources[str(_field(r, "urn"))]
        parent = _field(r, "parent")
        pr.parent = policy_resources.get(parent) if parent else None
        pr.dependencies = [policy_resources[d] for d in (_field(r, "deps") or []) if d in policy_resources]
    resources_list = list(policy_resources.values())
    for stack_rule in stack_rules:
        stack_args = StackValidationArgs(list(resources_list), cfg.get(stack_rule.name, {}))
        _guard(report, stack_rule, None, lambda p=stack_rule, a=stack_args: p.validate(a, sink(p, None)))
    return report


def _guard(report: PolicyReport, policy: Rule, urn: str | None, call: Any) -> None:
    """Run one policy call; an unknown value is what the CLI reports as "can't run during preview"
    (advisory), any other exception is a broken rule and fails the run (mandatory)."""
    try:
        call()
    except UnknownValueError as exc:
        report.not_run.append(Violation(policy.name, "advisory", f"can't run during preview: {exc.message}", urn))
    except Exception as exc:  # a broken rule must fail loudly, never pass silently
        report.not_run.append(Violation(policy.name, "mandatory", f"policy raised {type(exc).__name__}: {exc}", urn))


def write_report(report: PolicyReport, out: Path) -> Path:
    """``policy-report.json`` and ``policy-report.txt`` in ``out`` (the offline plan's directory)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_TEXT).write_text(report.render() + "\n")
    path = out / REPORT_JSON
    path.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m retail_policies.offline",
        description="Run the policy pack over an offline plan's resources.json.",
    )
    parser.add_argument("resources", type=Path, help="resources.json written by python -m tools.plan")
    parser.add_argument(
        "--config", type=Path, help="policy config JSON ({policy-name: {...}}), as --policy-pack-config"
    )
    parser.add_argument("--out", type=Path, help="where to write the report (default: next to resources.json)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.resources.read_text())
        config = json.loads(args.config.read_text()) if args.config else {}
    except (OSError, ValueError) as exc:
        print(f"policies: cannot read input: {exc}", file=sys.stderr)
        return 2
    if not isinstance(data, Mapping) or not isinstance(data.get("resources"), list):
        print(
            f"policies: {args.resources} has no 'resources' list (is it an offline plan's resources.json?)",
            file=sys.stderr,
        )
        return 2
    report = run_policies(data["resources"], config)
    path = write_report(report, args.out or args.resources.parent)
    print(report.render())
    print(f"wrote {path}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
