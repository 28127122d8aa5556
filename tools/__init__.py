"""Tools around the component library, outside it: they may import ``shop_platform``, ``stacks`` and the policy
pack (``retail_policies``); the library imports none of them.

- ``plan``: the offline plan (``python -m tools.plan --stack dev``): the real program under mocks, its graph,
  rendered manifests, policy report and cost estimate.
- ``offline``: the mock harness the plan and the tests share (Pulumi's mocks plus a recording monitor).
- ``render``: the services' chart and raw objects of a recorded plan, rendered to manifests.
- ``pricing``: the monthly cost of a recorded AWS plan.
- ``docgen``: the documents generated from the library's models (``python -m tools.docgen write|check``): the stack
  config tables in ``platform/README.md`` and ``charts/service/values.schema.json``.
- ``ops``: ``bootstrap`` and ``verify`` against a live account (boto3).
"""
