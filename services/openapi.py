"""The committed OpenAPI documents: each service's own (``services/<name>/openapi.json``, what it serves at
``/openapi.json``) and the merged public one (``docs/openapi.json``, what the gateway serves at
``/openapi.json`` and ``/api/v1/openapi.json``).

    python -m services.openapi write   # regenerate every document from the code
    python -m services.openapi check   # exit 1 naming each committed document the code no longer produces

Each app is built in-process (no database, no network: nothing runs its lifespan) with a throwaway key ring
standing in for the deployment's secrets, which the documents never contain. Documents are stored in one
canonical form (:func:`canonical`) so that a served document and its committed file compare byte for byte.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services import catalog

ROOT = Path(__file__).resolve().parent.parent
MERGED = ROOT / "docs" / "openapi.json"
REGENERATE = "python -m services.openapi write"


def service_path(name: str) -> Path:
    return ROOT / "services" / name / "openapi.json"


def canonical(doc: Any) -> str:
    """The one text form of a document: sorted keys, two-space indent, UTF-8 as is, a final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _build(name: str, env: dict[str, str]) -> FastAPI:
    with _environment(env):
        # ``main`` builds its module-level ``app`` from the environment on import, hence the env first.
        app = importlib.import_module(f"services.{name}.main").build_app()
    inner = getattr(app, "app", app)  # the gateway's ASGI front wraps its FastAPI app
    if not isinstance(inner, FastAPI):
        raise TypeError(f"services.{name}.main.build_app() built no FastAPI app")
    return inner


def documents() -> dict[Path, str]:
    """Every committed document, as the code produces it now."""
    from services.deploy.environment import DeployTarget, deployment_environment
    from services.deploy.keyring import KeyRing
    from services.gateway import openapi as merged_openapi

    target = DeployTarget(
        environment="test",
        keyring=KeyRing.generate(),
        database=lambda svc: {"DATABASE_URL": f"postgresql://openapi@127.0.0.1:1/{svc.database_name}"},
    )  # never dialled
    apps: dict[str, FastAPI] = {}
    for service in catalog.SERVICES:
        apps[service.name] = _build(service.name, deployment_environment(service.name, target))
    own = {name: app.openapi() for name, app in apps.items() if name != catalog.GATEWAY}
    out = {service_path(name): canonical(doc) for name, doc in own.items()}
    out[MERGED] = canonical(merged_openapi.merge(apps[catalog.GATEWAY].openapi(), own))
    return out


def stale(produced: dict[Path, str]) -> list[Path]:
    return [path for path, text in produced.items() if not path.is_file() or path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("write", "check"))
    args = parser.parse_args(argv)
    produced = documents()
    changed = stale(produced)
    if args.action == "write":
        for path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(produced[path], encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    for path in changed:
        print(
            f"{path.relative_to(ROOT)} differs from what the code serves; regenerate with `{REGENERATE}`",
            file=sys.stderr,
        )
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
