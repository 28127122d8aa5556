"""The Pulumi component library stands on the services' shared modules, never on the one-machine runner."""

from __future__ import annotations

import ast

from shop_platform.plan import REPO_ROOT

LIBRARY = REPO_ROOT / "platform" / "shop_platform"


def _imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_platform_library_never_imports_the_one_machine_runner() -> None:
    """Key rings and alert rules are deploy-time facts (services.deploy); a dev tool's module is not."""
    offenders = {str(path.relative_to(REPO_ROOT)): sorted(m for m in _imported_modules(path.read_text())
                                                          if m == "services.runner" or m.startswith("services.runner."))
                 for path in sorted(LIBRARY.rglob("*.py"))}
    assert not {path: mods for path, mods in offenders.items() if mods}
