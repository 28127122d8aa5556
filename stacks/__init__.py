"""Stack compositions: which components each deployment target wires together.

``COMPOSITIONS`` maps a stack's ``environment`` to the function that declares it: ``dev``/``prod`` are AWS
(``stacks/aws.py``, a ``StackConfig``), ``local`` is kind (``stacks/local.py``, a ``LocalStackConfig``; see
``shop_platform.config.parse_any_stack_config``), ``registry`` is the shared ECR registry
(``stacks/registry.py``, a ``RegistryStackConfig``). Each composition checks the config type it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from stacks import aws, local, registry

Composition = Callable[[Any], Mapping[str, Any]]

COMPOSITIONS: dict[str, Composition] = {
    "dev": aws.build,
    "prod": aws.build,
    "local": local.build,
    "registry": registry.build,
}
