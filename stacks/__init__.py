"""Stack compositions: which components each deployment target wires together.

``COMPOSITIONS`` maps a stack's ``environment`` to the function that declares it. The kind-based ``local``
target is a later issue: it adds ``stacks/local.py``, a ``"local"`` entry here and ``local`` to
``shop_platform.config.ENVIRONMENTS``; nothing else in the entry point changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shop_platform.config import StackConfig

from stacks import aws

Composition = Callable[[StackConfig], Mapping[str, Any]]

COMPOSITIONS: dict[str, Composition] = {
    "dev": aws.build,
    "prod": aws.build,
}
