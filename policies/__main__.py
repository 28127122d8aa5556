"""The policy pack the Pulumi CLI runs: ``pulumi preview --policy-pack policies``.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks until the CLI stops it, so this is
the only place it is constructed; the rules live in ``retail_policies`` and are imported and tested on their
own (tests/policies). See policies/README.md.

``retail_policies`` is importable without an install: the CLI starts a Python pack as ``python -m pulumi.policy
<engine> <pack directory>`` with the pack directory as working directory, and ``runpy.run_path`` of that
directory puts it first on ``sys.path`` (pulumi sdk/python/cmd/pulumi-language-python/main.go ``RunPlugin``;
sdk/python/lib/pulumi/policy/__main__.py).
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack
from retail_policies import PACK_NAME, POLICIES

PolicyPack(
    name=PACK_NAME,
    # Every rule without its own level is mandatory: a violation fails preview and up.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="Retail platform guardrails: RDS, EKS, ALB, WAF, Shield, Route 53, S3, KMS, ECR, network, tags, "
    "instance types",
)
