"""The dependency line: the component library is imported by the program and the tools, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import shop_platform

LIBRARY = Path(shop_platform.__file__).parent
# What the library must not reach: the tools around it (plan, mocks, renderer, pricing, ops), the Pulumi program,
# the policy pack (the pack judges the library's output; it is not part of it), and the one-machine runner (key
# rings and alert rules are deploy-time facts in services.deploy; a dev tool's module is not).
FORBIDDEN = ("tools", "stacks", "retail_policies", "pulumi_policy", "services.runner")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def reaches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(f"{prefix}.")


@pytest.mark.parametrize("path", sorted(LIBRARY.rglob("*.py")), ids=lambda p: str(p.relative_to(LIBRARY)))
def test_the_component_library_imports_no_tool_program_or_policy_pack(path: Path) -> None:
    found = sorted(m for m in imported_modules(path) for f in FORBIDDEN if reaches(m, f))
    assert found == [], f"{path.relative_to(LIBRARY)} imports {found}: move that code to tools/"


def test_the_layering_check_sees_local_and_dotted_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from tools.plan import run_plan\n    import retail_policies.eks\n")
    assert imported_modules(sample) == {"os", "tools.plan", "retail_policies.eks"}
    assert reaches("tools.plan", "tools")
    assert not reaches("toolsmith", "tools")
