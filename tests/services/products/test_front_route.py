"""The hottest read, ``GET /api/v1/products/{product_id}``, is served by a front route (``api.FAST_ROUTES``) that
parses its path parameter itself instead of through FastAPI: it must answer every request exactly as the
documented route behind it would. A second products app without the front route (same database) answers the
same requests, and the answers are compared."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.products import api as products_api
from tests.support.inprocess import InProcessService, comparable_answer, serve_in_process


@pytest.fixture(scope="module")
def documented(products_app: InProcessService, logdir: Path) -> Iterator[InProcessService]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(products_api, "FAST_ROUTES", [])
        with serve_in_process("products", products_app.env, logdir) as service:
            patch.undo()
            yield service


def test_the_front_route_answers_exactly_as_the_documented_route(
    products_app: InProcessService, documented: InProcessService, make_product: Callable[..., dict[str, Any]]
) -> None:
    assert products_app.app.router.routes[0] is products_api.FAST_ROUTES[0]  # the app under test does use it
    assert documented.app.router.routes[0] is not products_api.FAST_ROUTES[0]
    product = make_product(stock=3)
    pid = str(product["id"])
    paths = [
        f"/api/v1/products/{pid}",
        f"/api/v1/products/{pid.upper()}",
        f"/api/v1/products/{pid.replace('-', '')}",
        f"/api/v1/products/{uuid.uuid4()}",
        "/api/v1/products/not-a-uuid",
        "/api/v1/products/123",
        f"/api/v1/products/{pid[:-1]}-",
    ]
    requests = [("GET", p) for p in paths] + [("HEAD", paths[0]), ("HEAD", paths[4]), ("DELETE", paths[3])]
    for method, path in requests:
        front = products_app.client.request(method, path)
        behind = documented.client.request(method, path)
        assert comparable_answer(front) == comparable_answer(behind), (method, path)
    # The answers above include each kind: the product, a 404, a 422 and a 405.
    assert {products_app.client.request(m, p).status_code for m, p in requests} >= {200, 404, 405, 422}
