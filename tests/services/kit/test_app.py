"""What every service gets from create_app: problem bodies, request IDs, metrics by route template."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from services.kit import metrics
from services.kit.app import FrontRoute, create_app
from services.kit.errors import Problem
from services.kit.settings import KitSettings

router = APIRouter()


class CardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str
    cvc: int


@router.get("/api/v1/widgets/{widget_id}")
async def get_widget(widget_id: int) -> dict[str, int]:
    if widget_id == 0:
        raise RuntimeError("SELECT secret FROM internals")  # must never reach the client
    if widget_id == 404:
        raise Problem(404, "No such widget.", kind="widget-not-found", widget_id=widget_id)
    return {"id": widget_id}


@router.post("/api/v1/cards")
async def post_card(card: CardIn) -> dict[str, str]:
    return {"ok": "yes"}


def _client() -> httpx.AsyncClient:
    app = create_app(KitSettings(service_name="products"), title="t", description="d", routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://svc")


def _get(path: str, **kwargs: object) -> httpx.Response:
    async def run() -> httpx.Response:
        async with _client() as client:
            return await client.request(kwargs.pop("method", "GET"), path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


def test_problem_bodies_follow_rfc9457_with_request_id() -> None:
    """Clients and tests rely on one error shape everywhere, with a stable type per kind of error."""
    r = _get("/api/v1/widgets/404", headers={"X-Request-ID": "trace-me-1"})
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "trace-me-1"
    body = r.json()
    assert body == {
        "type": "https://api.retail.example/problems/widget-not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No such widget.",
        "instance": "/api/v1/widgets/404",
        "request_id": "trace-me-1",
        "widget_id": 404,
    }


def test_unexpected_errors_are_500_problems_without_internals(capsys: pytest.CaptureFixture[str]) -> None:
    """A crash must not leak SQL or a stack trace to the client, but must be logged under the request ID."""
    r = _get("/api/v1/widgets/0")
    assert r.status_code == 500
    assert "SELECT" not in r.text
    assert "Traceback" not in r.text
    rid = r.json()["request_id"]
    assert rid == r.headers["x-request-id"]
    logged = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    assert any(e["event"] == "unhandled_error" and e["request_id"] == rid for e in logged)


def test_validation_errors_list_locations_but_never_echo_input() -> None:
    """A 422 for a bad card body must not repeat the card number back (it would end up in logs and
    browser histories)."""
    r = _get("/api/v1/cards", method="POST", json={"number": "4242424242424242", "cvc": "abc", "x": 1})
    assert r.status_code == 422
    body = r.json()
    assert body["type"].endswith("/validation")
    assert {tuple(e["loc"]) for e in body["errors"]} == {("body", "cvc"), ("body", "x")}
    assert "4242" not in r.text


@pytest.mark.parametrize("rid", ["", "x" * 200, "bad id with spaces", "<script>"])
def test_insane_request_ids_are_replaced(rid: str) -> None:
    """The request ID ends up in logs and headers: only short, plain tokens are echoed."""
    r = _get("/api/v1/widgets/1", headers={"X-Request-ID": rid})
    assert r.headers["x-request-id"] != rid
    assert len(r.headers["x-request-id"]) == 32


def test_metrics_use_route_templates_not_raw_paths() -> None:
    """Labelling by raw path would create one time series per product id and take Prometheus down."""

    async def run() -> str:
        async with _client() as client:
            for i in range(1, 6):
                await client.get(f"/api/v1/widgets/{i}")
            return (await client.get("/metrics")).text

    text = asyncio.run(run())
    lines = [ln for ln in text.splitlines() if ln.startswith("http_requests_total{")]
    assert any('route="/api/v1/widgets/{widget_id}"' in ln and 'status="200"' in ln for ln in lines)
    assert not any("/api/v1/widgets/3" in ln for ln in lines)


def test_access_log_is_one_json_object_with_the_contract_fields(capsys: pytest.CaptureFixture[str]) -> None:
    """Log shippers (Fluent Bit → GELF) parse one JSON object per line with these exact field names."""
    _get("/api/v1/widgets/7", headers={"X-Request-ID": "log-check-7"})
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]
    entry = next(e for e in lines if e.get("request_id") == "log-check-7" and e.get("event") == "request")
    assert {"ts", "level", "service", "event", "request_id", "route", "status", "duration_ms"} <= entry.keys()
    assert entry["route"] == "/api/v1/widgets/{widget_id}"
    assert entry["status"] == 200
    assert entry["service"] == "products"


def test_duplicate_operation_ids_are_refused() -> None:
    """Operation ids are the public names client generators use; two endpoints with one name would
    silently shadow each other in generated clients."""
    other = APIRouter()

    @other.get("/api/v1/other/{widget_id}")
    async def get_widget(widget_id: int) -> dict[str, int]:  # same function name as above
        return {}

    with pytest.raises(RuntimeError, match="duplicate operation ids"):
        create_app(KitSettings(service_name="products"), title="t", description="d", routers=[router, other])


def test_background_loops_run_after_startup_and_are_cancelled_before_shutdown_hooks() -> None:
    """A loop (recovery, pruning) may use what start-up hooks built and must be gone before shutdown hooks
    close it, or it would run against closed clients during a deploy."""
    events: list[str] = []

    async def build(app: object) -> None:
        events.append("startup")

    async def close(app: object) -> None:
        events.append("shutdown")

    async def loop(app: object) -> None:
        events.append("loop started")
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("loop cancelled")

    app = create_app(
        KitSettings(service_name="products"),
        title="t",
        description="d",
        routers=[],
        on_startup=[build],
        on_shutdown=[close],
        background=[loop],
    )

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.05)

    asyncio.run(run())
    assert events == ["startup", "loop started", "loop cancelled", "shutdown"]


def test_front_routes_answer_before_every_other_route_and_the_document_can_be_left_out() -> None:
    """A front route wins over a router's route on the same path (it is tried first), serves only its own
    methods (no HEAD added: the documented route has none) and is counted under its path template; with
    ``openapi_url=None`` FastAPI serves no document and no docs pages, yet the schema can still be built."""

    async def fast(request: Request) -> PlainTextResponse:
        return PlainTextResponse("front")

    app = create_app(
        KitSettings(service_name="products"),
        title="t",
        description="d",
        routers=[router],
        front_routes=[FrontRoute("/api/v1/widgets/{widget_id}", fast, methods=["GET"])],
        openapi_url=None,
    )
    counted = metrics.HTTP_REQUESTS.labels("products", "GET", "/api/v1/widgets/{widget_id}", "200")
    before = counted._value.get()

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            head = await client.head("/api/v1/widgets/1")
            return [head, *[await client.get(p) for p in ("/api/v1/widgets/1", "/openapi.json", "/docs", "/redoc")]]

    head, widget, document, docs, redoc = asyncio.run(run())
    assert widget.text == "front"
    assert counted._value.get() == before + 1
    assert head.status_code == 405
    assert head.headers["allow"] == "GET"
    assert [document.status_code, docs.status_code, redoc.status_code] == [404, 404, 404]
    assert "/healthz" in app.openapi()["paths"]
