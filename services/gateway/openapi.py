"""One OpenAPI document for the public API: each upstream's own document, cut down to its public
prefixes and merged, with the answers the gateway itself can give added to every operation; the cache
that serves it; and the reference page that renders it at ``/api/v1/docs``."""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import importlib.resources
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from services import catalog
from services.gateway.forward import Gateway
from services.gateway.paths import is_clean_public_path

log = logging.getLogger("gateway")

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemBody"}
_GATEWAY_ANSWERS = {
    "404": "Not found (the gateway refuses paths that are not clean public paths)",
    "413": "Payload too large",
    "429": "Too many requests (rate limited; see Retry-After)",
    "502": "Bad gateway",
    "503": "Service unavailable (upstream down or its circuit open; see Retry-After)",
    "504": "Upstream timeout",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _is_public(path: str, prefixes: tuple[str, ...]) -> bool:
    template_free = path.replace("{", "").replace("}", "")
    return is_clean_public_path(template_free) and any(
        path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes
    )


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                _refs(value, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _prune_components(doc: dict[str, Any]) -> None:
    """Drop components no public operation reaches (schemas of internal routes must not leak)."""
    components: dict[str, dict[str, Any]] = doc.get("components", {})
    reachable: set[str] = set()
    frontier: set[str] = set()
    _refs(doc["paths"], frontier)
    while frontier:
        ref = frontier.pop()
        if ref in reachable:
            continue
        reachable.add(ref)
        parts = ref.removeprefix("#/components/").split("/", 1)
        if len(parts) == 2 and parts[1] in components.get(parts[0], {}):
            _refs(components[parts[0]][parts[1]], frontier)
    for section, entries in components.items():
        if section == "securitySchemes":
            continue
        for name in list(entries):
            if f"#/components/{section}/{name}" not in reachable:
                del entries[name]


def _add_gateway_answers(operation: dict[str, Any], path: str, has_global_security: bool) -> None:
    responses = operation.setdefault("responses", {})
    wanted = dict(_GATEWAY_ANSWERS)
    if "{" not in path:
        wanted.pop("404")
    if "requestBody" not in operation:
        wanted.pop("413")
    if operation.get("security") or has_global_security:
        wanted["401"] = "Authentication required (the token is missing, malformed, expired or not valid)"
    for status, description in wanted.items():
        if status not in responses:
            responses[status] = {
                "description": description,
                "content": {"application/problem+json": {"schema": dict(_PROBLEM_REF)}},
            }


def merge(own: dict[str, Any], upstream_docs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """``own`` is the gateway's document (its operational routes and ProblemBody); ``upstream_docs`` maps
    service name to that service's ``/openapi.json``. Services merge in catalog order."""
    merged: dict[str, Any] = {
        "openapi": own.get("openapi", "3.1.0"),
        "info": {
            "title": "Retail platform API",
            "version": own.get("info", {}).get("version", "1.0.0"),
            "description": "The public API, as served through the API gateway.",
        },
        "paths": {p: v for p, v in own.get("paths", {}).items() if p in ("/healthz", "/readyz")},
        "components": copy.deepcopy(own.get("components", {})),
    }
    components: dict[str, dict[str, Any]] = merged["components"]
    operation_ids = {
        op.get("operationId") for item in merged["paths"].values() for op in item.values() if isinstance(op, dict)
    }
    for service in catalog.SERVICES:
        doc = upstream_docs.get(service.name)
        if doc is None or not service.public_prefixes:
            continue
        paths = {p: item for p, item in doc.get("paths", {}).items() if _is_public(p, service.public_prefixes)}
        if not paths:
            continue
        renames: dict[str, str] = {}
        theirs: dict[str, dict[str, Any]] = doc.get("components", {})
        for section, entries in theirs.items():
            mine = components.setdefault(section, {})
            for name, definition in entries.items():
                if name in mine and json.dumps(mine[name], sort_keys=True) != json.dumps(definition, sort_keys=True):
                    renames[f"#/components/{section}/{name}"] = f"#/components/{section}/{name}_{service.name}"
        for section, entries in theirs.items():
            for name, definition in entries.items():
                target = renames.get(f"#/components/{section}/{name}", f"#/components/{section}/{name}")
                components[section][target.rsplit("/", 1)[1]] = _rewrite_refs(definition, renames)
        global_security = bool(doc.get("security"))
        for path, item in paths.items():
            item = _rewrite_refs(copy.deepcopy(item), renames)
            for method in _METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                op_id = operation.get("operationId")
                if op_id in operation_ids:
                    operation["operationId"] = f"{service.name}_{op_id}"
                operation_ids.add(operation.get("operationId"))
                _add_gateway_answers(operation, path, global_security)
            merged["paths"][path] = item
    _prune_components(merged)
    return merged


class OpenAPICache:
    """The merged document, rebuilt at most every ``ttl_s``; an upstream that cannot be reached keeps its
    last good document (and, having none, is left out until it answers)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._merged: dict[str, Any] | None = None
        self._built_at = float("-inf")
        self._last_good: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self, app: FastAPI) -> dict[str, Any]:
        if self._merged is not None and time.monotonic() - self._built_at < self.ttl_s:
            return self._merged
        async with self._lock:
            if self._merged is not None and time.monotonic() - self._built_at < self.ttl_s:
                return self._merged
            gateway: Gateway = app.state.gateway
            client: httpx.AsyncClient = app.state.ops_client
            names = list(gateway.upstreams)
            fetched = await asyncio.gather(
                *(
                    self._fetch(client, gateway.upstreams[n].base_url, gateway.settings.readiness_timeout_s * 3)
                    for n in names
                )
            )
            complete = True
            for name, doc in zip(names, fetched, strict=True):
                if doc is not None:
                    self._last_good[name] = doc
                elif name not in self._last_good:
                    complete = False
            merged = merge(app.openapi(), self._last_good)
            if complete:
                self._merged, self._built_at = merged, time.monotonic()
            return merged

    @staticmethod
    async def _fetch(client: httpx.AsyncClient, base_url: str, wait_s: float) -> dict[str, Any] | None:
        try:
            response = await client.get(f"{base_url}/openapi.json", timeout=wait_s)
            if response.status_code == 200:
                doc = response.json()
                return doc if isinstance(doc, dict) else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "openapi fetch failed", extra={"event": "openapi_fetch_failed", "error_type": type(exc).__name__}
            )
        return None


def install_document(app: FastAPI, ttl_s: float) -> None:
    """The merged document at ``/openapi.json`` (the app is made without FastAPI's own) and at
    :data:`PUBLIC_DOCUMENT`, the path the edges forward."""
    cache = OpenAPICache(ttl_s)

    async def merged_openapi(request: Request) -> JSONResponse:
        return JSONResponse(await cache.get(request.app))

    app.add_route("/openapi.json", merged_openapi, include_in_schema=False)
    app.add_route(PUBLIC_DOCUMENT, merged_openapi, include_in_schema=False)


# --- the API reference page -------------------------------------------------------------------------------
# Swagger UI, served by the gateway itself from the pinned fastapi-offline package (its static/ holds the
# swagger-ui-dist bundle and stylesheet), never from a CDN: the page works offline and the browser talks
# to nothing but this origin. FastAPI's own docs page puts its start-up script inline and loads from a CDN,
# so the page here is the project's own and the start-up script is a file of its own.

PUBLIC_DOCUMENT = "/api/v1/openapi.json"
DOCS = "/api/v1/docs"
_ASSETS_PACKAGE = "fastapi-offline"
_ASSETS = {  # URL name -> (file in the package's static/, media type)
    "swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": ("favicon.png", "image/png"),
}
# Only this origin. data: images are the icons Swagger UI's stylesheet embeds (inline, never fetched).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
_START_SCRIPT = f"""window.ui = SwaggerUIBundle({{
  url: "{PUBLIC_DOCUMENT}",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null
}});
"""


def _assets_base() -> str:
    """Asset URLs carry the package's version, so browsers may keep them for good."""
    return f"{DOCS}/assets/{importlib.metadata.version(_ASSETS_PACKAGE)}"


def docs_page() -> str:
    base = _assets_base()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Retail platform API</title>
<link rel="icon" type="image/png" href="{base}/favicon.png">
<link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script src="{base}/start.js"></script>
</body>
</html>
"""


def install_reference(app: FastAPI) -> None:
    """``/api/v1/docs`` and its assets on the gateway's FastAPI app (the public prefixes it forwards never
    cover them). The merged document itself is served by whoever owns its cache, at :data:`PUBLIC_DOCUMENT`."""
    static = importlib.resources.files(_ASSETS_PACKAGE.replace("-", "_")) / "static"
    base = _assets_base()
    immutable = {**_PAGE_HEADERS, "Cache-Control": "public, max-age=31536000, immutable"}
    page = docs_page()

    async def reference(request: Request) -> Response:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    async def start_script(request: Request) -> Response:
        # Not immutable: it is the project's own and changes without the package's version changing.
        return Response(_START_SCRIPT, media_type="text/javascript; charset=utf-8", headers=_PAGE_HEADERS)

    app.add_route(DOCS, reference, include_in_schema=False)
    app.add_route(f"{base}/start.js", start_script, include_in_schema=False)
    for name, (file, media_type) in _ASSETS.items():
        path = Path(str(static / file))
        if not path.is_file():
            raise RuntimeError(f"{_ASSETS_PACKAGE} has no static/{file}: install the pinned version")

        async def asset(request: Request, path: Path = path, media_type: str = media_type) -> Response:
            return FileResponse(path, media_type=media_type, headers=immutable)

        app.add_route(f"{base}/{name}", asset, include_in_schema=False)
