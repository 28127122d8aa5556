"""The settings tables of the services' READMEs, generated from the settings models.

    python -m services.settings_docs write   # rewrite every table from the models
    python -m services.settings_docs check   # exit 1 naming each README whose table the models no longer produce

A setting is explained once, in its model's ``Field(description=...)``; its README shows the environment
variable, the type with the model's bounds, the default and that description, between two marker comments
(the text around them is the README's own). ``services/kit/README.md`` holds the settings every service reads
(``KitSettings``), each ``services/<name>/README.md`` the ones its ``Settings`` adds. The default of a secret
is never printed, and a default made by a function is described by that function's docstring.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from services import catalog
from services.kit.settings import KitSettings

ROOT = Path(__file__).resolve().parent.parent
REGENERATE = "python -m services.settings_docs write"
BEGIN = "<!-- settings table: generated from {source} by `" + REGENERATE + "`; edit the model, not the table -->"
END = "<!-- end of settings table -->"
_SECRETS = (SecretStr, SecretBytes)


@dataclass(frozen=True)
class Table:
    """One README's table: the fields ``model`` declares beyond those of ``base``."""

    readme: Path
    model: type[BaseSettings]
    source: str  # the module the fields are declared in, as the README names it
    base: type[BaseSettings] | None = None


def tables(root: Path = ROOT) -> list[Table]:
    """Every settings table: the kit's, then one per catalog service, in catalog order."""
    out = [Table(root / "services" / "kit" / "README.md", KitSettings, "services/kit/settings.py")]
    for service in catalog.SERVICES:
        module = importlib.import_module(f"services.{service.name}.settings")
        out.append(
            Table(
                root / "services" / service.name / "README.md",
                module.Settings,
                f"services/{service.name}/settings.py",
                KitSettings,
            )
        )
    return out


def env_name(model: type[BaseSettings], name: str) -> str:
    """The environment variable a field reads (pydantic-settings: prefix + field name, case-insensitive)."""
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return (str(model.model_config.get("env_prefix", "")) + name).upper()


def _members(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``None``, and whether ``None`` was allowed."""
    if get_origin(annotation) is Annotated:
        return _members(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007 - built from a runtime tuple
        return inner, len(args) < len(get_args(annotation))
    return annotation, False


_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    SecretStr: "secret string",
    SecretBytes: "secret bytes",
}


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: ``integer``, ``one of `a`, `b```, ``list of CIDR network``…"""
    inner, _ = _members(annotation)
    origin = get_origin(inner)
    if inner in _NAMES:
        return _NAMES[inner]
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(inner))
    if isinstance(inner, type) and issubclass(inner, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in inner)
    if origin in (Union, types.UnionType):
        args = get_args(inner)
        if all(getattr(a, "__module__", "") == "ipaddress" for a in args):
            return "CIDR network"
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(get_args(inner)[0])}"
    if origin is dict:
        return "JSON object"
    raise TypeError(f"settings_docs: no reader's name for the type {inner!r}; add one to _NAMES")


def _number(value: Any) -> str:
    """As it would be typed into the variable; a large power of two as one (``2^62``)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value > 2**32 and value & (value - 1) == 0:
        return f"2^{value.bit_length() - 1}"
    return str(value)


def bounds(field: FieldInfo) -> str:
    """The model's own constraints, e.g. ``≥ 1, ≤ 65535``: printed from the model, so they cannot drift."""
    parts = []
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f"≥ {_number(item.ge)}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {_number(item.gt)}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"≤ {_number(item.le)}")
        elif isinstance(item, annotated_types.Lt):
            parts.append(f"< {_number(item.lt)}")
    return ", ".join(parts)


def _is_secret(annotation: Any) -> bool:
    inner, _ = _members(annotation)
    return inner in _SECRETS or any(_is_secret(a) for a in get_args(inner))


def default_text(field: FieldInfo) -> str:
    """The default as the README shows it; a secret's is never printed."""
    if field.default_factory is not None:
        factory = field.default_factory
        if factory in (list, dict):
            return "empty"
        doc = (factory.__doc__ or "").strip()
        if not doc or getattr(factory, "__module__", "") == "builtins":
            raise ValueError(f"settings_docs: the default factory {factory!r} needs a docstring saying what it makes")
        return doc.splitlines()[0]
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "unset"
    if _is_secret(field.annotation):
        return "set (not shown)"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{_number(value)}`"
    if isinstance(value, Enum):
        value = value.value
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(table: Table) -> str:
    """The table's Markdown, markers included."""
    inherited = set(table.base.model_fields) if table.base else set()
    lines = [BEGIN.format(source=table.source), "| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in table.model.model_fields.items():
        if name in inherited:
            continue
        if not (field.description or "").strip():
            raise ValueError(f"settings_docs: {table.source} {name} has no Field(description=...)")
        kind = type_name(field.annotation)
        limits = bounds(field)
        cells = [
            f"`{env_name(table.model, name)}`",
            f"{kind}, {limits}" if limits else kind,
            default_text(field),
            field.description or "",
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append(END)
    return "\n".join(lines)


def splice(text: str, table: Table) -> str:
    """``text`` (a README) with its table replaced by the one the model produces."""
    begin = BEGIN.format(source=table.source)
    if text.count(begin) != 1 or text.count(END) != 1 or text.index(begin) > text.index(END):
        raise ValueError(f"{table.readme}: needs exactly one settings table between the lines\n{begin}\n{END}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(END, 1)
    return head + render(table) + tail


def stale(all_tables: Iterable[Table]) -> list[Path]:
    """The READMEs whose committed table differs from what their model produces."""
    return [
        t.readme
        for t in all_tables
        if t.readme.read_text(encoding="utf-8") != splice(t.readme.read_text(encoding="utf-8"), t)
    ]


def write(all_tables: Iterable[Table]) -> list[Path]:
    changed = []
    for t in all_tables:
        text = t.readme.read_text(encoding="utf-8")
        new = splice(text, t)
        if new != text:
            t.readme.write_text(new, encoding="utf-8")
            changed.append(t.readme)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.settings_docs", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["write", "check"])
    args = parser.parse_args(argv)
    try:
        if args.action == "write":
            for path in write(tables()):
                print(f"wrote {path.relative_to(ROOT)}")
            return 0
        drifted = stale(tables())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in drifted:
        print(
            f"{path.relative_to(ROOT)}: the settings table is not what the model says; run `{REGENERATE}`",
            file=sys.stderr,
        )
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main())
