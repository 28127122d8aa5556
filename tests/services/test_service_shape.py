"""Every data service reads what start-up made through typed dependencies (its ``deps.py`` and the kit's),
never through the untyped ``app.state``, in its route modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parents[2] / "services"
# A data service owns a database, so it has migrations.
DATA_SERVICES = sorted(p.parent.name for p in SERVICES.glob("*/migrations"))
ROUTE_MODULES = ("api.py", "internal.py")


def app_state_reads(source: str) -> list[int]:
    """Lines that reach ``<something>.app.state`` or ``app.state``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "state":
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "app") or (
                isinstance(owner, ast.Attribute) and owner.attr == "app"
            ):
                lines.append(node.lineno)
    return lines


def test_the_check_finds_reads_through_the_request_and_the_app() -> None:
    source = "async def f(request, app):\n    a = request.app.state.pool\n    b = app.state.settings\n    c = state\n"
    assert app_state_reads(source) == [2, 3]


def test_there_are_data_services_to_check() -> None:
    assert {"orders", "payments", "products", "search", "users"} <= set(DATA_SERVICES)


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_route_modules_read_no_app_state(service: str) -> None:
    for name in ROUTE_MODULES:
        path = SERVICES / service / name
        if path.exists():
            assert app_state_reads(path.read_text()) == [], f"{path}: use a dependency from deps.py"


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_each_data_service_declares_its_dependencies_in_deps_py(service: str) -> None:
    assert (SERVICES / service / "deps.py").is_file()


# A statement, not a sentence: the verb with the keyword that completes it ("Delete a product" is a summary).
SQL_STATEMENT = re.compile(
    r"^\s*(SELECT\s.*\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s)", re.IGNORECASE | re.DOTALL
)


def sql_literals(source: str) -> list[int]:
    """Lines of string constants that are SQL statements."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_STATEMENT.match(node.value)
    ]


def test_the_check_finds_sql_statements_but_not_prose() -> None:
    source = (
        'a = "SELECT * FROM t"\nb = """\n  update t SET x = 1"""\nc = "Delete a product (admin)"\n'
        'd = f"DELETE FROM {table} WHERE id = $1"\ne = "Select a payment"\n'
    )
    assert sql_literals(source) == [1, 2, 5]


@pytest.mark.parametrize("service", DATA_SERVICES)
def test_route_modules_hold_no_sql_their_store_does(service: str) -> None:
    for name in ROUTE_MODULES:
        path = SERVICES / service / name
        if path.exists():
            assert sql_literals(path.read_text()) == [], f"{path}: move the statement into store.py"
