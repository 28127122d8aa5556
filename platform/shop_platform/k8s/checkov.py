"""The checkov checks skipped for the rendered manifests, each with its reason: the only place they are named.

``scope`` is the stacks a skip applies to. Everything else must pass (tests/platform/k8s/test_manifests.py).
"""

from __future__ import annotations

from typing import Final

CHECKOV_SKIPS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "CKV_K8S_43": (
        ("dev", "prod", "local"),
        "Image digests: service images are pinned by an immutable tag (ECR repositories refuse tag "
        "overwrites) and by digest when CI sets kubernetes.imageDigests; kind images are side-loaded "
        "(`kind load`) and have no registry digest; third-party images are pinned by version - "
        "digest pins for them are the documented next step.",
    ),
    "CKV_K8S_15": (
        ("local",),
        "imagePullPolicy Always: kind's images are side-loaded into the nodes with `kind load`, no "
        "registry serves them, so the services must use IfNotPresent there (EKS uses Always); the "
        "in-cluster PostgreSQL (kind only) pulls its versioned image once, not from Docker Hub on "
        "every restart.",
    ),
}


def skips_for(stack: str) -> dict[str, str]:
    return {check: reason for check, (scopes, reason) in CHECKOV_SKIPS.items() if stack in scopes}
