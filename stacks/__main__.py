"""Pulumi program entry point: read the stack config once, pick the composition, export its outputs.

Kept thin on purpose: validation lives in ``shop_platform.config``, wiring in ``stacks/<target>.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this file from stacks/ (Pulumi.yaml ``main``): make the repository root (``services``,
# ``stacks``) and ``platform/`` (``shop_platform``) importable. Never ``platform`` itself as a package:
# it would shadow the standard library's ``platform`` module.
_ROOT = Path(__file__).resolve().parent.parent
for _path in (str(_ROOT / "platform"), str(_ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import pulumi  # noqa: E402
from shop_platform.config import StackConfig, load_stack_config  # noqa: E402
from shop_platform.images import check_deployable  # noqa: E402

from stacks import COMPOSITIONS  # noqa: E402


def main() -> None:
    cfg = load_stack_config()  # raises ConfigError, naming the key, before any resource is declared
    if isinstance(cfg, StackConfig):
        check_deployable(cfg)  # the registry and the exact images (digests) this AWS stack deploys
    outputs = COMPOSITIONS[cfg.environment](cfg)
    for key, value in outputs.items():
        pulumi.export(key, value)


main()
