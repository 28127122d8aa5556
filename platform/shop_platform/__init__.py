"""The retail platform's Pulumi component library (AWS): network, cluster, databases, edge, DNS, registry.

Named ``shop_platform`` (not ``platform``) so it never shadows the standard library's ``platform`` module.
Every module holds one concern; pure builders (policy documents, WAF rules, CIDR math, tags) live beside
the component that uses them so they can be tested without Pulumi's mocks. Components and pure builders
only: the offline plan, its mock harness, the manifest renderer, the cost estimate and the operations tools
are the top-level ``tools`` package, which imports this library and the policy pack, never the reverse.
"""
