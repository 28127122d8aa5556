"""The policy pack the Pulumi CLI runs: ``pulumi preview --policy-pack policies``.

Constructing ``PolicyPack`` starts the analyzer's gRPC server and blocks until the CLI stops it, so this is
the only place it is constructed; the rules live in ``retail_policies`` and are imported and tested on their
own (tests/policies). See policies/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The CLI runs this file with the pack directory as the working directory; make ``retail_policies`` importable
# however it is started.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402
from retail_policies import PACK_NAME, POLICIES  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    # Every rule without its own level is mandatory: a violation fails preview and up.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
    description="Retail platform guardrails: RDS, EKS, ALB, WAF, Shield, Route 53, S3, KMS, ECR, network, tags, "
                "instance types",
)
