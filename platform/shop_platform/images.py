"""Image delivery: one shared registry, cross-account pulls, and the exact images each stack deploys.

The flow (platform/README.md, "Images: from an empty account to prod"):
1. The ``registry`` stack (``stacks/registry.py``, ``Pulumi.registry.yaml``) owns one ECR repository per
   catalog service in the account that holds images, with a repository policy that lets the dev and prod
   accounts pull. It is deployed before any image is pushed and never by an app stack.
2. CI builds each image once, pushes it as ``shop/<service>:<git sha>`` (immutable tags), waits for the scan
   gate, and records the digests.
3. Each app stack's config names the registry (``kubernetes.imageRegistry``, committed) and the images it
   deploys (``kubernetes.imageTag`` = the git commit, ``kubernetes.imageDigests`` = one ``sha256:`` digest per
   catalog service, set by the deploy job). The program refuses to run without them
   (``check_deployable``): a manual ``pulumi up`` or a preview never falls back to a tag nobody pushed.

Pure: no Pulumi imports, so the rules are tested directly and the CI helper (``python -m
shop_platform.images pins FILE``) runs without the engine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from services import catalog
from shop_platform.config import DIGEST, ECR_HOST, REGISTRY_HOST, ConfigError, KubernetesConfig, StackConfig

GIT_COMMIT: Final = re.compile(r"^[0-9a-f]{40}$")
# What a node needs to pull an image by digest (the node role's AmazonEC2ContainerRegistryPullOnly grants
# the same actions on "*" plus ecr:GetAuthorizationToken in its own account).
PULL_ACTIONS: Final = ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")


def repository_name(service: str) -> str:
    return f"shop/{service}"


def registry_host(value: str | None) -> str:
    """The stack's registry host (its form is checked by ``config.KubernetesConfig``): an AWS stack needs one."""
    if value is None:
        raise ConfigError("kubernetes.imageRegistry", "is not set", REGISTRY_HOST)
    return value


def repository_urls(registry: str | None) -> dict[str, str]:
    """The repository URL of every catalog service in the shared registry."""
    host = registry_host(registry)
    return {s.name: f"{host}/{repository_name(s.name)}" for s in catalog.SERVICES}


def check_deployable(cfg: StackConfig) -> None:
    """Refuse to declare an AWS stack whose images are not pinned, or whose registry is in another region.

    Called by the program before any resource exists, so ``pulumi preview`` and ``pulumi up`` fail in the
    first second with the key named, instead of rolling services to an image that was never pushed."""
    k = cfg.kubernetes
    registry = registry_host(k.image_registry)
    region = ECR_HOST.match(registry).group("region")  # type: ignore[union-attr]  # checked just above
    if region != cfg.region:
        raise ConfigError(
            "kubernetes.imageRegistry",
            f"the registry is in {region}, the stack in {cfg.region}",
            f"a registry in {cfg.region} (the nodes pull through the region's ECR endpoints)",
        )
    require_pins(k)


def require_pins(k: KubernetesConfig) -> None:
    how = (
        "set by the deploy job for each deploy; to re-apply what runs now: `pulumi stack output imagePins "
        "--json > pins.json` and `python -m shop_platform.images pins pins.json` (platform/README.md)"
    )
    if not GIT_COMMIT.match(k.image_tag):
        raise ConfigError(
            "kubernetes.imageTag",
            f"{k.image_tag!r} is not the git commit the images were built from",
            f"40 lowercase hex digits; {how}",
        )
    missing = [s.name for s in catalog.SERVICES if s.name not in k.image_digests]
    if missing:
        raise ConfigError(
            f"kubernetes.imageDigests.{missing[0]}",
            f"no digest pinned for {', '.join(missing)}",
            f"sha256:<64 hex> per catalog service; {how}",
        )


def pins_of(k: KubernetesConfig) -> dict[str, Any]:
    """The ``imagePins`` stack output: what this stack deploys, in the shape ``pins`` reads back."""
    return {"tag": k.image_tag, "digests": dict(sorted(k.image_digests.items()))}


def parse_pins(data: object) -> list[tuple[str, str]]:
    """Validate ``{"tag": <git sha>, "digests": {service: sha256:...}}`` (every catalog service, nothing else)
    and return the ``pulumi config set --path`` key/value pairs that record it in a stack's config."""
    if not isinstance(data, Mapping) or set(data) - {"tag", "digests"}:
        raise ConfigError(
            "kubernetes.imageDigests",
            'the pins file is not {"tag": ..., "digests": {...}}',
            "the deploy job's pins.json or `pulumi stack output imagePins --json`",
        )
    tag, digests = data.get("tag"), data.get("digests")
    if not isinstance(tag, str) or not GIT_COMMIT.match(tag):
        raise ConfigError("kubernetes.imageTag", f"{tag!r} is not a git commit", "40 lowercase hex digits")
    if not isinstance(digests, Mapping):
        raise ConfigError("kubernetes.imageDigests", "is not an object", "{service: sha256:<64 hex>}")
    names = [s.name for s in catalog.SERVICES]
    if sorted(digests) != sorted(names):
        raise ConfigError("kubernetes.imageDigests", f"names {sorted(digests)}", f"exactly {sorted(names)}")
    for name in names:
        if not isinstance(digests[name], str) or not DIGEST.match(digests[name]):
            raise ConfigError(
                f"kubernetes.imageDigests.{name}", f"{digests[name]!r} is not a digest", "sha256:<64 hex>"
            )
    return [("kubernetes.imageTag", tag), *((f"kubernetes.imageDigests.{n}", digests[n]) for n in names)]


def offline_pins() -> dict[str, Any]:
    """Stand-in pins for the offline plan only (a stack file carries none): recognisable and never pushed."""
    return {
        "imageTag": hashlib.sha1(b"offline-plan").hexdigest(),  # noqa: S324 - a placeholder, not security
        "imageDigests": {
            s.name: "sha256:" + hashlib.sha256(f"offline-plan:{s.name}".encode()).hexdigest() for s in catalog.SERVICES
        },
    }


def pull_policy(account_ids: Sequence[str], partition: str = "aws") -> dict[str, Any]:
    """Repository policy: the listed accounts may pull, nothing else.

    The principal is each account (``:root``), not its node role: ECR rejects a policy naming a role that does
    not exist yet (the registry is deployed before the app stacks), and a resource policy naming a role that
    is later replaced silently stops matching. The account's own IAM then decides which of its identities
    pull: the EKS node role (AmazonEC2ContainerRegistryPullOnly)."""
    if not account_ids:
        raise ValueError("pull_policy: no account may pull")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PullFromStackAccounts",
                "Effect": "Allow",
                "Principal": {"AWS": [f"arn:{partition}:iam::{a}:root" for a in account_ids]},
                "Action": list(PULL_ACTIONS),
            }
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shop_platform.images",
        description="Print the `pulumi config set --path` pairs that pin a stack's "
        "images, after validating the pins file.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pins = sub.add_parser("pins", help="one 'key value' line per config key, from a JSON pins file ('-': stdin)")
    pins.add_argument("file")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        pairs = parse_pins(json.loads(text))
    except (ConfigError, json.JSONDecodeError) as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    for key, value in pairs:
        print(key, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
