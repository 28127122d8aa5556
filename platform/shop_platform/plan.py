"""Offline plan: run the real Pulumi program of a stack under mocks and write what it would declare.

    PYTHONPATH=platform:. .venv/bin/python -m shop_platform.plan --stack dev [--out DIR]

Writes ``DIR/resources.json`` (every resource: type, name, parent, provider, dependencies, inputs with
secrets redacted, plus the stack outputs) and prints a tree with counts per type. Exit status: 0 on
success, 2 on a config error (the message names the key), 3 when the policy pack (``policies/``) finds a
mandatory violation (``policy-report.txt`` names each, with the fix), 1 on any other failure of the program.

The output directory is shared with later steps: ``manifests/`` (rendered Kubernetes objects) and the policy
report are written next to ``resources.json`` by writers registered in ``EXTRA_WRITERS``.
See platform/README.md for what this plan can and cannot see compared with ``pulumi preview``.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the venv

from shop_platform.config import PROJECT, ConfigError, parse_any_stack_config
from shop_platform.offline import Recording, run_program

REPO_ROOT: Final = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class PlanResult:
    stack: str
    recording: Recording
    seconds: float

    def as_json(self) -> dict[str, Any]:
        resources = sorted((r.as_json() for r in self.recording.resources), key=lambda r: str(r["urn"]))
        return {"project": PROJECT, "stack": self.stack, "resource_count": len(resources),
                "counts_by_type": dict(sorted(Counter(r["type"] for r in resources).items())),
                "outputs": self.recording.outputs, "resources": resources}


# Later steps (manifests/, policy report) append a writer: called with the result and the output directory.
EXTRA_WRITERS: list[Callable[[PlanResult, Path], None]] = []


def write_kubernetes_manifests(result: PlanResult, out: Path) -> None:
    """``manifests/``: every Kubernetes object the stack would apply (the services' chart rendered with the
    values the program computed) and ``manifests/releases.json`` listing the remote charts it cannot render."""
    from shop_platform.k8s.render import render_recording, write_manifests

    write_manifests(render_recording(result.recording), out)


EXTRA_WRITERS.append(write_kubernetes_manifests)


def stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """The stack file's config as the engine hands it to a program: full keys, string values (JSON for
    structured values)."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise ConfigError("stack", f"no stack file {path.name}", ", ".join(
            sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml"))))
    data = yaml.safe_load(path.read_text()) or {}
    raw = data.get("config") or {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def validate(stack: str, config: dict[str, str]) -> None:
    """Fail fast (before any mock runs) exactly as the program would."""
    prefix = f"{PROJECT}:"
    raw = {k.removeprefix(prefix): v for k, v in config.items() if k.startswith(prefix)}
    parse_any_stack_config(stack, raw, config.get("aws:region"))


def run_plan(stack: str, root: Path = REPO_ROOT, config: dict[str, str] | None = None) -> PlanResult:
    """Run ``stacks/`` the way Pulumi's Python host does (the directory, as ``__main__``) under mocks."""
    cfg = stack_config(stack, root) if config is None else config
    validate(stack, cfg)
    started = time.perf_counter()
    recording = run_program(lambda: runpy.run_path(str(root / "stacks"), run_name="__main__"),
                            # The local (kind) stack has no AWS region; the mocks only use it to shape names.
                            project=PROJECT, stack=stack, config=cfg, region=cfg.get("aws:region", "eu-west-1"))
    return PlanResult(stack, recording, time.perf_counter() - started)


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
    return "\n".join([*rows, f"  {'total'.ljust(width)}  {len(recording.resources):4d}  "
                               f"({cloud} cloud resources, {providers} providers, {components} components)"])


def write(result: PlanResult, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "resources.json"
    path.write_text(json.dumps(result.as_json(), indent=2, sort_keys=False, default=str) + "\n")
    for writer in EXTRA_WRITERS:
        writer(result, out)
    return path


def write_policy_report(result: PlanResult, out: Path) -> None:
    """``policy-report.json``/``.txt``: the policy pack run over this graph the way ``pulumi preview
    --policy-pack policies`` runs it (policies/README.md says what differs offline)."""
    policies = str(REPO_ROOT / "policies")
    if policies not in sys.path:
        sys.path.insert(0, policies)
    from retail_policies.offline import run_policies, write_report

    write_report(run_policies(result.recording.resources), out)


EXTRA_WRITERS.append(write_policy_report)


def policy_passed(out: Path) -> bool:
    """Whether the policy report in ``out`` has no mandatory violation (True when no report was written)."""
    report = out / "policy-report.json"
    return not report.is_file() or bool(json.loads(report.read_text()).get("passed"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop_platform.plan", description=__doc__.split("\n\n")[0])
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
    path = write(result, out)
    if not args.quiet:
        print(render_tree(result.recording))
        print()
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
