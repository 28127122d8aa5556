"""The repository is installed (editable) in its virtualenv: every entry point imports without PYTHONPATH."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the entry points import: the services and the runner, the Pulumi program (run by the CLI with only
# stacks/ on sys.path), the component library, the policy pack's rules and the tools.
PACKAGES = ("services", "stacks", "shop_platform", "retail_policies", "tools")


def test_every_package_imports_from_this_tree_without_pythonpath_or_cwd(tmp_path: Path) -> None:
    """-I ignores PYTHONPATH and leaves the working directory off sys.path: only the virtualenv's install can
    resolve the imports, and it must resolve them to this working tree (not another checkout)."""
    code = (
        "import importlib, json, sys; print(json.dumps({n: importlib.import_module(n).__file__ for n in sys.argv[1:]}))"
    )
    found = subprocess.run(
        [sys.executable, "-I", "-c", code, *PACKAGES], cwd=tmp_path, check=True, capture_output=True, text=True
    ).stdout
    files = {name: Path(path) for name, path in json.loads(found).items()}
    assert {name: path.is_relative_to(ROOT) for name, path in files.items()} == dict.fromkeys(PACKAGES, True), files
    assert files["shop_platform"].parent == ROOT / "platform" / "shop_platform"
    assert files["retail_policies"].parent == ROOT / "policies" / "retail_policies"
