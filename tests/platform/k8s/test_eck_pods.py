"""The pods ECK makes from the platform's Elasticsearch, Kibana and Logstash resources pass Pod Security "restricted".

The logging namespace enforces restricted, and admission judges the pod the operator creates, not the pod template
the platform writes: the operator adds init containers and fills in security contexts. What the pinned operator
adds is transcribed below from its source at the pinned tag (elastic/cloud-on-k8s, file@tag per entry), and the
test applies its merge rules to each rendered pod template, with the operator's default security contexts on
(``--set-default-security-context`` auto-detect on Kubernetes) and off (OpenShift, or the flag set to false).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from shop_platform import versions
from shop_platform.k8s import objects

from .conftest import StackRender
from .test_manifests import _restricted_violations

ECK_TAG = "v3.5.0"


@dataclass(frozen=True)
class OperatorPod:
    """What ECK adds to a pod template: its init containers (as it builds them, before the merge), the security
    context it gives every container still without one, and the pod security context it sets when none is set."""

    init_containers: tuple[dict[str, Any], ...]
    default_container_context: dict[str, Any] | None
    default_pod_context: dict[str, Any] = field(
        default_factory=lambda: {"fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
    )


OPERATOR_PODS: dict[str, OperatorPod] = {
    "Elasticsearch": OperatorPod(
        # pkg/controller/elasticsearch/initcontainer/initcontainer.go@v3.5.0 (NewInitContainers: prepare-fs, the
        # keystore one only with secureSettings, suspend); none carries a securityContext.
        init_containers=({"name": "elastic-internal-init-filesystem"}, {"name": "elastic-internal-suspend"}),
        # pkg/controller/elasticsearch/nodespec/podspec.go@v3.5.0: WithContainersSecurityContext(securitycontext.For(
        # ver, true)) after WithInitContainers; pkg/controller/elasticsearch/securitycontext/securitycontext.go.
        default_container_context={
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    ),
    "Kibana": OperatorPod(
        # pkg/controller/kibana/initcontainer/prepare_fs.go@v3.5.0: elastic-internal-init, no securityContext.
        init_containers=({"name": "elastic-internal-init"},),
        # pkg/controller/kibana/pod.go@v3.5.0 applies defaultSecurityContext (securitycontext.go) after adding it.
        default_container_context={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
        },
    ),
    "Logstash": OperatorPod(
        # pkg/controller/logstash/initcontainer.go@v3.5.0: only `privileged: false`; pod.go sets no container
        # default (only the pod's DefaultSecurityContext).
        init_containers=({"name": "logstash-internal-init-config", "securityContext": {"privileged": False}},),
        default_container_context=None,
    ),
}


def operator_pod(kind: str, template_spec: dict[str, Any], operator_defaults: bool) -> dict[str, Any]:
    """The pod spec ECK derives from a pod template: an operator init container of the same name as one in the
    template is merged into it, the template's fields winning (WithInitContainers + container.Defaulter.From in
    pkg/controller/common/{defaults/pod_template.go,container/defaulter.go}@v3.5.0), the operator's come first,
    and the default contexts fill only what is unset (WithContainersSecurityContext, WithPodSecurityContext)."""
    spec = copy.deepcopy(template_spec)
    op = OPERATOR_PODS[kind]
    user_init = {c["name"]: c for c in spec.get("initContainers", [])}
    merged = [{**c, **user_init.pop(c["name"], {})} for c in copy.deepcopy(op.init_containers)]
    spec["initContainers"] = merged + list(user_init.values())
    if operator_defaults:
        spec.setdefault("securityContext", copy.deepcopy(op.default_pod_context))
        if op.default_container_context is not None:
            for c in [*spec["initContainers"], *spec["containers"]]:
                c.setdefault("securityContext", copy.deepcopy(op.default_container_context))
    return spec


def _eck_pod_templates(render: StackRender) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for obj in render.rendered.objects:
        if obj["kind"] in ("Kibana", "Logstash"):
            out.append((obj["kind"], obj))
        elif obj["kind"] == "Elasticsearch":
            out.extend(
                ("Elasticsearch", {**obj, "spec": {**obj["spec"], "podTemplate": ns["podTemplate"]}})
                for ns in obj["spec"]["nodeSets"]
            )
    return out


def test_transcription_is_of_the_pinned_operator() -> None:
    """The operator data above is from one tag; bumping the pin means re-reading those files."""
    assert f"v{versions.ECK_OPERATOR_CHART}" == ECK_TAG
    assert set(OPERATOR_PODS) == set(objects.ECK_INIT_CONTAINERS)
    for kind, pod in OPERATOR_PODS.items():
        assert tuple(c["name"] for c in pod.init_containers) == objects.ECK_INIT_CONTAINERS[kind]


@pytest.mark.parametrize("operator_defaults", [True, False], ids=["operator-defaults", "no-operator-defaults"])
def test_every_pod_eck_makes_in_the_logging_namespace_passes_restricted(
    stack_render: StackRender, operator_defaults: bool
) -> None:
    """Every container of every ECK-made pod, the operator's init containers included, meets restricted (and has a
    read-only root), whether or not the operator applies its own default security contexts."""
    restricted = {ns for ns, (level, _) in objects.POD_SECURITY.items() if level == "restricted"}
    templates = _eck_pod_templates(stack_render)
    assert {kind for kind, _ in templates} == set(OPERATOR_PODS)
    for kind, obj in templates:
        assert obj["metadata"]["namespace"] in restricted
        # The transcription holds only without these: they add a keystore init container or monitoring sidecars.
        assert "secureSettings" not in obj["spec"]
        assert "monitoring" not in obj["spec"]
        pod = operator_pod(kind, obj["spec"]["podTemplate"]["spec"], operator_defaults)
        assert len(pod["initContainers"]) >= len(OPERATOR_PODS[kind].init_containers)
        assert _restricted_violations(pod) == [], f"{kind}/{obj['metadata']['name']}"


def test_the_check_sees_an_operator_init_container_the_template_does_not_name(stack_render: StackRender) -> None:
    """Guard: with the platform's override of Logstash's init container removed, the operator's own one (only
    `privileged: false`) is what admission would see, and it is rejected."""
    logstash = next(obj for kind, obj in _eck_pod_templates(stack_render) if kind == "Logstash")
    spec = copy.deepcopy(logstash["spec"]["podTemplate"]["spec"])
    spec["initContainers"] = [c for c in spec["initContainers"] if c["name"] != "logstash-internal-init-config"]
    problems = _restricted_violations(operator_pod("Logstash", spec, operator_defaults=True))
    assert "logstash-internal-init-config: allowPrivilegeEscalation" in problems
    assert "logstash-internal-init-config: capabilities" in problems
