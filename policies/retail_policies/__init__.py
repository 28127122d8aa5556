"""The retail platform's CrossGuard rules, importable without starting a policy pack.

``POLICIES`` is every rule in evaluation order; ``policies/__main__.py`` hands them to ``PolicyPack`` (which
starts a gRPC server and blocks, so nothing here constructs one). ``run_policies`` evaluates them offline over
a recorded graph (``retail_policies.offline``).
"""

from __future__ import annotations

from typing import Final

from retail_policies import alb, edge, eks, governance, network, rds, storage, waf
from retail_policies._support import Rule

PACK_NAME: Final = "retail-platform-policies"

POLICIES: Final[list[Rule]] = [
    *rds.POLICIES,
    *eks.POLICIES,
    *alb.POLICIES,
    *waf.POLICIES,
    *edge.POLICIES,
    *storage.POLICIES,
    *network.POLICIES,
    *governance.POLICIES,
]


def by_name() -> dict[str, Rule]:
    return {p.name: p for p in POLICIES}


__all__ = ["PACK_NAME", "POLICIES", "by_name"]
