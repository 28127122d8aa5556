"""The Kubernetes layer: the services' chart per catalog entry, the gateway edge, observability, logging.

The same layer deploys onto EKS (``dev``/``prod``) and kind (``local``); only ``LayerSpec`` differs. Pure
builders (``values``, ``objects``, ``dashboards``, ``addons``) compute every value and object from
``services/catalog.py`` and the stack, so they are tested without Pulumi; ``components`` only declares them.
"""
