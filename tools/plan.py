"""Offline plan: run the real Pulumi program of a stack under mocks and write what it would declare.

    .venv/bin/python -m tools.plan --stack dev [--out DIR]

Writes ``DIR/resources.json`` (every resource: type, name, parent, provider, dependencies, inputs with
secrets redacted, plus the stack outputs) and prints a tree with counts per type. Exit status: 0 on
success, 2 on a config error (the message names the key), 3 when the policy pack (``policies/``) finds a
mandatory violation (``policy-report.txt`` names each, with the fix), 4 when a resource cannot be priced
(``tools.pricing``), 1 on any other failure of the program.

Before the counts it prints the account prerequisites the graph implies (a Shield Advanced subscription, the
delegation of a zone the stack creates) and, for AWS stacks, the monthly cost estimate (``cost.json``): total,
top five drivers, and a warning for every commitment.

Next to ``resources.json`` it writes ``manifests/`` (the rendered Kubernetes objects), the policy report and
``cost.json`` (see ``write``).
See platform/README.md for what this plan can and cannot see compared with ``pulumi preview``.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv
from retail_policies.offline import run_policies, write_report
from shop_platform.config import (
    PROJECT,
    ConfigError,
    LocalStackConfig,
    RegistryStackConfig,
    StackConfig,
    parse_any_stack_config,
)
from shop_platform.context import CERTIFICATE_VALIDATION_TIMEOUT
from shop_platform.images import offline_pins

from tools.offline import Recording, run_program
from tools.pricing import Estimate, PricingError, estimate
from tools.render import render_recording, write_manifests

REPO_ROOT: Final = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class PlanResult:
    stack: str
    recording: Recording
    seconds: float
    region: str | None = None  # aws:region of the stack (None for the kind stack)
    notices: tuple[str, ...] = ()  # where the plan had to stand in for what a real deploy supplies

    def cost(self) -> Estimate | None:
        """The monthly estimate of an AWS stack (None when the graph holds no AWS resource)."""
        if self.region is None or not any(r.type.startswith("aws:") for r in self.recording.resources):
            return None
        return estimate(self.stack, self.recording, self.region)

    def as_json(self) -> dict[str, Any]:
        resources = sorted((r.as_json() for r in self.recording.resources), key=lambda r: str(r["urn"]))
        return {
            "project": PROJECT,
            "stack": self.stack,
            "resource_count": len(resources),
            "counts_by_type": dict(sorted(Counter(r["type"] for r in resources).items())),
            "outputs": self.recording.outputs,
            "resources": resources,
        }


def write_kubernetes_manifests(result: PlanResult, out: Path) -> None:
    """``manifests/``: every Kubernetes object the stack would apply (the services' chart rendered with the
    values the program computed) and ``manifests/releases.json`` listing the remote charts it cannot render."""
    write_manifests(render_recording(result.recording), out)


def stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """The stack file's config as the engine hands it to a program: full keys, string values (JSON for
    structured values)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError(
            "stack",
            f"no stack file {path.name}",
            ", ".join(sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml"))),
        )
    data = yaml.safe_load(path.read_text()) or {}
    raw = data.get("config") or {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def validate(stack: str, config: dict[str, str]) -> StackConfig | LocalStackConfig | RegistryStackConfig:
    """Fail fast (before any mock runs) exactly as the program would."""
    prefix = f"{PROJECT}:"
    raw = {k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)}
    return parse_any_stack_config(stack, raw, config.get("aws:region"))


def with_offline_image_pins(config: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """An AWS stack file pins no images (the deploy job does, per deploy): give the plan recognisable stand-ins
    and say what ``pulumi preview`` would answer instead. Pins the file does carry are kept."""
    key = f"{PROJECT}:kubernetes"
    kube = json.loads(config.get(key, "{}"))
    if "imageTag" in kube and "imageDigests" in kube:
        return config, None
    notice = (
        "images: the stack file pins none (kubernetes.imageTag/imageDigests are set by the deploy job); "
        "the plan uses offline stand-ins, while `pulumi preview`/`up` refuse to run until they are pinned "
        '(platform/README.md, "Images")'
    )
    return {**config, key: json.dumps({**offline_pins(), **kube})}, notice


def run_plan(stack: str, root: Path = REPO_ROOT, config: dict[str, str] | None = None) -> PlanResult:
    """Run ``stacks/`` the way Pulumi's Python host does (the directory, as ``__main__``) under mocks."""
    cfg = stack_config(stack, root) if config is None else config
    notices: tuple[str, ...] = ()
    if isinstance(validate(stack, cfg), StackConfig):
        cfg, notice = with_offline_image_pins(cfg)
        notices = (notice,) if notice else ()
    started = time.perf_counter()
    recording = run_program(
        lambda: runpy.run_path(str(root / "stacks"), run_name="__main__"),
        # The local (kind) stack has no AWS region; the mocks only use it to shape names.
        project=PROJECT,
        stack=stack,
        config=cfg,
        region=cfg.get("aws:region", "eu-west-1"),
    )
    return PlanResult(stack, recording, time.perf_counter() - started, cfg.get("aws:region"), notices)


def prerequisites(recording: Recording) -> list[str]:
    """What the account must have before ``pulumi up`` that no program should do silently, read off the graph."""
    found: list[str] = []
    if recording.of_type("aws:shield/protection:Protection"):
        found.append(
            "an active AWS Shield Advanced subscription in this account (`aws shield "
            "get-subscription-state` says ACTIVE): protections cannot be created without it, and "
            "subscribing commits the organisation to one year (see the cost estimate)"
        )
    for zone in recording.of_type("aws:route53/zone:Zone"):
        domain = zone.inputs.get("name")
        found.append(
            f"NS delegation of the new zone {domain}: ACM validates the certificates through it. First "
            f"`pulumi up --target '{zone.urn}'`, then copy its name servers (`aws route53 get-hosted-zone --id "
            f"<zone id> --query DelegationSet.NameServers`) into an NS record for {domain} in the parent zone, "
            f"check `dig +short NS {domain}`, then run the full `pulumi up`. Without it certificate validation "
            f"fails after {CERTIFICATE_VALIDATION_TIMEOUT} (customTimeouts)"
        )
    return found


def render_prerequisites(recording: Recording) -> str:
    found = prerequisites(recording)
    if not found:
        return "account prerequisites: none beyond credentials"
    return "\n".join(["account prerequisites (do these before `pulumi up`):", *(f"  - {p}" for p in found)])


def render_tree(recording: Recording) -> str:
    children: dict[str | None, list[Any]] = {}
    urns = {r.urn for r in recording.resources}
    for r in recording.resources:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in sorted(children.get(parent, []), key=lambda x: (x.custom, x.type, x.name)):
            lines.append(f"{'  ' * depth}{r.name}  ({r.type})")
            walk(r.urn, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def render_counts(recording: Recording) -> str:
    counts = Counter(r.type for r in recording.resources)
    width = max(len(t) for t in counts)
    rows = [f"  {t.ljust(width)}  {n:4d}" for t, n in sorted(counts.items())]
    providers = sum(1 for r in recording.resources if r.type.startswith("pulumi:providers:"))
    cloud = sum(1 for r in recording.resources if r.custom) - providers
    components = len(recording.resources) - cloud - providers
    return "\n".join(
        [
            *rows,
            f"  {'total'.ljust(width)}  {len(recording.resources):4d}  "
            f"({cloud} cloud resources, {providers} providers, {components} components)",
        ]
    )


def write(result: PlanResult, out: Path) -> Path:
    """Everything the plan writes into ``out``; returns the path of ``resources.json``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "resources.json"
    path.write_text(json.dumps(result.as_json(), indent=2, sort_keys=False, default=str) + "\n")
    write_kubernetes_manifests(result, out)
    write_policy_report(result, out)
    write_cost(result, out)
    return path


def write_policy_report(result: PlanResult, out: Path) -> None:
    """``policy-report.json``/``.txt``: the policy pack run over this graph the way ``pulumi preview
    --policy-pack policies`` runs it (policies/README.md says what differs offline)."""
    write_report(run_policies(result.recording.resources), out)


def write_cost(result: PlanResult, out: Path) -> None:
    """``cost.json``: the monthly estimate, line by line, with the price table's date and source."""
    cost = result.cost()
    if cost is not None:
        (out / "cost.json").write_text(json.dumps(cost.as_json(), indent=2) + "\n")


def policy_passed(out: Path) -> bool:
    """Whether the policy report in ``out`` has no mandatory violation (True when no report was written)."""
    report = out / "policy-report.json"
    return not report.is_file() or bool(json.loads(report.read_text()).get("passed"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: Pulumi.<stack>.yaml at the repository root")
    parser.add_argument("--out", type=Path, help="output directory (default: out/plan/<stack>, git-ignored)")
    parser.add_argument("--quiet", action="store_true", help="print only the counts, not the tree")
    args = parser.parse_args(argv)
    try:
        result = run_plan(args.stack)
    except ConfigError as exc:
        print(f"plan: stack {args.stack}: {exc}", file=sys.stderr)
        return 2
    out = args.out or REPO_ROOT / "out" / "plan" / args.stack
    try:
        path = write(result, out)
        cost = result.cost()
    except PricingError as exc:
        print(f"plan: stack {args.stack}: cost estimate: {exc}", file=sys.stderr)
        return 4
    if not args.quiet:
        print(render_tree(result.recording))
        print()
    for notice in result.notices:
        print(f"note: {notice}")
    print(render_prerequisites(result.recording))
    if cost is not None:
        print(cost.render())
    print(f"stack {args.stack}: resources by type")
    print(render_counts(result.recording))
    print(f"wrote {path} in {result.seconds:.1f}s (offline: Pulumi mocks, no cloud calls)")
    if (out / "policy-report.txt").is_file():
        print((out / "policy-report.txt").read_text().rstrip())
    return 0 if policy_passed(out) else 3


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into head/less that exited early: not an error
        sys.stderr.close()
        sys.exit(0)
