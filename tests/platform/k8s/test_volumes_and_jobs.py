"""Volumes and Jobs on the first `pulumi up`: every claim on EKS lands on an encrypted class that exists before it,
and every Job `up` waits for ends with a reason instead of an endless wait."""

from __future__ import annotations

from typing import Any

import pytest
from shop_platform.k8s import objects
from shop_platform.k8s import spec as k

from .conftest import STACKS, StackRender, render_stack

EKS_STACKS = [s for s in STACKS if render_stack(s).layer.eks]
# ECK gives a Logstash without volumeClaimTemplates a 1.5Gi "logstash-data" claim with no class
# (elastic/cloud-on-k8s@v3.5.0 pkg/controller/logstash/volume/defaults.go): the cluster's default class.
ECK_DEFAULT_LOGSTASH_CLAIM: dict[str, Any] = {"metadata": {"name": "logstash-data"}, "spec": {}}


def claims(render: StackRender) -> list[tuple[str, str | None]]:
    """(who, storageClassName or None) for every PersistentVolumeClaim the stack makes, directly or through a
    StatefulSet, an ECK resource or a remote chart's values."""
    out: list[tuple[str, str | None]] = []
    for o in render.rendered.objects:
        name = f"{o['kind']}/{o['metadata']['name']}"
        templates: list[dict[str, Any]] = []
        if o["kind"] == "PersistentVolumeClaim":
            templates = [o]
        elif o["kind"] == "StatefulSet":
            templates = o["spec"].get("volumeClaimTemplates", [])
        elif o["kind"] == "Elasticsearch":
            templates = [t for n in o["spec"]["nodeSets"] for t in n.get("volumeClaimTemplates", [])]
        elif o["kind"] == "Logstash":
            templates = o["spec"].get("volumeClaimTemplates") or [ECK_DEFAULT_LOGSTASH_CLAIM]
        out.extend((name, t["spec"].get("storageClassName")) for t in templates)
    for r in render.rendered.releases:
        if r["name"] == "kube-prometheus-stack":
            spec = r["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
            out.append(("Prometheus", spec.get("storageClassName")))
    return out


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_every_claim_on_eks_resolves_to_an_encrypted_storage_class(stack: str) -> None:
    """EKS >= 1.30 has no default StorageClass: a claim without one stays Pending for ever. Every claim names, or
    defaults to, a class the stack declares: gp3 through the EBS CSI driver, encrypted with a named KMS key,
    bound where its pod lands (EBS volumes are zonal)."""
    render = render_stack(stack)
    classes = {o["metadata"]["name"]: o for o in render.rendered.objects if o["kind"] == "StorageClass"}
    default_key = "storageclass.kubernetes.io/is-default-class"
    defaults = [n for n, c in classes.items() if (c["metadata"].get("annotations") or {}).get(default_key) == "true"]
    assert len(defaults) == 1, "exactly one default class"
    found = claims(render)
    assert len(found) >= 3, found  # Prometheus, Elasticsearch, Logstash
    for who, class_name in found:
        sc = classes.get(class_name or defaults[0])
        assert sc is not None, f"{who}: class {class_name} is not declared"
        assert sc["provisioner"] == "ebs.csi.aws.com", who
        assert sc["parameters"]["type"] == "gp3", who
        assert sc["parameters"]["encrypted"] == "true", who
        assert str(sc["parameters"]["kmsKeyId"]).startswith("arn:aws:kms:"), who
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer", who


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_the_storage_class_exists_before_anything_that_claims_a_volume(stack: str) -> None:
    """Pulumi creates a resource only after its dependencies and its parent (which waits for the component's own
    ``depends_on``): the class's group must be a (transitive) dependency of the releases and objects that claim
    volumes, or the first claim races it."""
    rec = render_stack(stack).recording
    by_urn = {r.urn: r for r in rec.resources}
    sc = next(
        r
        for r in rec.of_type("kubernetes:yaml/v2:ConfigGroup")
        if any(o["kind"] == "StorageClass" for o in r.inputs.get("objs") or [])
    )

    def depends_on(r: Any, target: str, seen: set[str]) -> bool:
        for dep in [*r.deps, *([r.parent] if r.parent else [])]:
            if dep == target or (dep not in seen and dep in by_urn and depends_on(by_urn[dep], target, seen | {dep})):
                return True
        return False

    consumers = [
        r
        for r in rec.of_type("kubernetes:yaml/v2:ConfigGroup")
        if any(
            o["kind"] in ("Elasticsearch", "Logstash", "StatefulSet", "PersistentVolumeClaim")
            for o in r.inputs.get("objs") or []
        )
    ]
    consumers += [
        r for r in rec.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "kube-prometheus-stack"
    ]
    assert len(consumers) >= 2
    for r in consumers:
        assert depends_on(r, sc.urn, set()), r.name


def test_the_cluster_encrypts_volumes_with_its_own_key_and_lets_the_csi_driver_use_it() -> None:
    """The class's key is the cluster component's volumes key, and the EBS CSI driver's role may create grants on
    exactly that key (the managed AmazonEBSCSIDriverPolicy covers AWS-managed keys only)."""
    import json

    rec = render_stack("dev").recording
    key = rec.named("cluster-volumes-key")
    assert key.inputs["enableKeyRotation"] is True
    policy = json.loads(rec.named("cluster-ebs-csi-role-policy").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"kms:CreateGrant", "kms:GenerateDataKey*", "kms:Decrypt"} <= actions
    assert all(s["Resource"] != "*" for s in policy["Statement"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_job_up_waits_for_has_a_deadline_shorter_than_the_wait(stack: str) -> None:
    """A Job whose dependency never comes (a Pending volume, an unready Elasticsearch) must fail with Kubernetes'
    DeadlineExceeded before Pulumi's await gives up with a bare timeout."""
    jobs = [o for o in render_stack(stack).rendered.objects if o["kind"] == "Job"]
    assert jobs or not render_stack(stack).layer.logging
    for job in jobs:
        deadline = job["spec"].get("activeDeadlineSeconds")
        assert isinstance(deadline, int), job["metadata"]["name"]
        assert deadline > 0, job["metadata"]["name"]
        wait = int((job["metadata"].get("annotations") or {}).get("pulumi.com/timeoutSeconds", 600))
        assert deadline < wait, "the Job fails (with a reason) before Pulumi stops waiting"
        assert job["spec"].get("backoffLimit") is not None


def test_the_ilm_job_says_what_it_is_waiting_for() -> None:
    """Its log (kubectl logs job/...) names what to look at while Elasticsearch is not ready."""
    job_script = objects.ILM_SCRIPT
    assert "kubectl -n logging get pods,pvc" in job_script
    assert k.LOGGING_NS == "logging"
