"""Generated documents: the stack config tables in ``platform/README.md`` and the services' chart values schema.

Both come from the pydantic models (``shop_platform.config``, ``shop_platform.k8s.chartvalues``), so they
cannot drift from what is enforced; a test compares the committed copies with a fresh rendering.

    .venv/bin/python -m tools.docgen write   # regenerate
    .venv/bin/python -m tools.docgen check   # exit 1 when a copy is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from shop_platform import config
from shop_platform.config import PROJECT, Section, allowed, schema_at
from shop_platform.k8s.chartvalues import values_schema

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
README: Final = REPO_ROOT / "platform" / "README.md"
VALUES_SCHEMA: Final = REPO_ROOT / "charts" / "service" / "values.schema.json"
BEGIN: Final = "<!-- generated: {name} (python -m tools.docgen write) -->"
END: Final = "<!-- end generated: {name} -->"

# (marker name, model, environments whose defaults are listed, the top-level keys it documents)
TABLES: Final[tuple[tuple[str, type[Section], tuple[str, ...], tuple[str, ...]], ...]] = (
    (
        "aws-stack",
        config.StackConfig,
        ("dev", "prod"),
        ("aws:region", "environment", "owner", "domain", "createZone", "network", "cluster", "databases", "edge"),
    ),
    ("kubernetes", config.LocalStackConfig, ("dev", "prod", "local"), ("kubernetes",)),
    ("local-stack", config.LocalStackConfig, ("local",), ("owner", "kind")),
    ("registry-stack", config.RegistryStackConfig, ("registry",), ("aws:region", "owner", "registry")),
)


def _fmt(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", by_alias=True)
    elif isinstance(value, tuple):
        value = [v.model_dump(mode="json", by_alias=True) if isinstance(v, BaseModel) else v for v in value]
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def _default(model: type[Section], alias: str, info: FieldInfo, envs: tuple[str, ...]) -> str:
    by_env = model.ENV_DEFAULTS.get(alias)
    if by_env is not None:
        return " / ".join(_fmt(by_env.get(env, by_env["dev"])) for env in envs)
    if alias == "environment" and info.is_required():
        return "the stack name"
    if info.default_factory is not None:
        if info.default_factory_takes_validated_data:
            return "derived (see allowed)"
        return _fmt(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "required" if not _section(info) else "`{}`"
    return _fmt(info.default)


def _section(info: FieldInfo) -> type[Section] | None:
    """The section model a field holds (directly or as a list of them)."""
    for candidate in (info.annotation, *get_args(info.annotation)):
        if isinstance(candidate, type) and issubclass(candidate, Section):
            return candidate
    return None


def _rows(
    root: type[Section],
    model: type[Section],
    loc: tuple[str | int, ...],
    envs: tuple[str, ...],
    keys: Sequence[str] | None = None,
) -> Iterator[str]:
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if keys is not None and alias not in keys:
            continue
        where = (*loc, alias)
        inner = _section(info)
        is_object = info.annotation is inner  # else a list of objects (or no section at all)
        if inner is not None and is_object:  # an object: one row per key inside it
            yield from _rows(root, inner, where, envs)
            continue
        key = ".".join(str(p) for p in where).replace(".0.", "[].")
        key = key if loc or ":" in key else f"{PROJECT}:{key}"
        node = schema_at(root, where) or {}
        yield f"| `{key}` | {allowed(node).replace('|', '/')} | {_default(model, alias, info, envs)} |"
        if inner is not None:  # a list of objects: its items' keys too
            yield from _rows(root, inner, (*where, 0), envs)


def table(name: str) -> str:
    _, model, envs, keys = next(t for t in TABLES if t[0] == name)
    header = f"| key | allowed | default ({' / '.join(envs)}) |\n|---|---|---|\n"
    return header + "\n".join(_rows(model, model, (), envs, keys)) + "\n"


def with_tables(readme: str) -> str:
    """``readme`` with every generated table replaced by a fresh rendering (the markers must exist)."""
    for name, *_ in TABLES:
        begin, end = BEGIN.format(name=name), END.format(name=name)
        head, found, rest = readme.partition(begin + "\n")
        if not found or end not in rest:
            raise ValueError(f"platform/README.md has no '{begin}' ... '{end}' block")
        readme = head + begin + "\n" + table(name) + end + rest.split(end, 1)[1]
    return readme


def schema_text() -> str:
    return json.dumps(values_schema(), indent=2) + "\n"


def generated() -> dict[Path, str]:
    return {README: with_tables(README.read_text()), VALUES_SCHEMA: schema_text()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.docgen",
        description="Regenerate (write) or verify (check) the documents generated "
        "from the config and chart values models.",
    )
    parser.add_argument("command", choices=("write", "check"))
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if args.command == "check":
        for path in stale:
            print(f"docgen: {path} is stale; run `python -m tools.docgen write`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
