"""Pulumi program entry point: read the stack config once, pick the composition, export its outputs.

Kept thin on purpose: validation lives in ``shop_platform.config``, wiring in ``stacks/<target>.py``.

The Pulumi CLI runs this directory with the project's virtualenv (Pulumi.yaml ``virtualenv: .venv``), whose
editable install of this repository (pyproject.toml) makes ``stacks``, ``shop_platform`` and ``services``
importable: the language host only puts ``stacks/`` itself on ``sys.path`` (``runpy.run_path`` of the
directory, pulumi sdk/python/cmd/pulumi-language-python-exec).
"""

from __future__ import annotations

import pulumi
from shop_platform.config import StackConfig, load_stack_config
from shop_platform.images import check_deployable

from stacks import COMPOSITIONS


def main() -> None:
    cfg = load_stack_config()  # raises ConfigError, naming the key, before any resource is declared
    if isinstance(cfg, StackConfig):
        check_deployable(cfg)  # the registry and the exact images (digests) this AWS stack deploys
    outputs = COMPOSITIONS[cfg.environment](cfg)
    for key, value in outputs.items():
        pulumi.export(key, value)


main()
