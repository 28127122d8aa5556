"""The hot reads (``GET /users/me``, ``GET /users/{id}``) are served by front routes (``api.FRONT_ROUTES``) that
resolve the token, the pool and the path parameter themselves instead of through FastAPI: they must answer
every request exactly as the documented routes behind them would. Here a second users app without the front
routes (same database, same keys) answers the same requests, and the answers are compared."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.users import api as users_api
from tests.services.users.support import Api, bearer
from tests.support.inprocess import InProcessService, comparable_answer, serve_in_process


@pytest.fixture(scope="module")
def documented(usvc: InProcessService, logdir: Path) -> Iterator[InProcessService]:
    """A users app built without the front routes (every request goes through FastAPI's routes), on the
    database of ``usvc``."""
    with ExitStack() as exits:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(users_api, "FRONT_ROUTES", [])
            service = exits.enter_context(serve_in_process("users", usvc.env, logdir))
        yield service


def test_the_front_routes_answer_exactly_as_the_documented_routes(
    api: Api, usvc: InProcessService, documented: InProcessService
) -> None:
    assert usvc.app.router.routes[0] is users_api.FRONT_ROUTES[0]  # the app under test does use them
    me, other = api.signup(), api.signup()
    token = api.tokens(me)["access_token"]
    ended = api.tokens(me)["access_token"]
    assert api.http.delete("/api/v1/sessions/current", headers=bearer(ended)).status_code == 204
    admin = api.login(usvc.env["ADMIN_EMAIL"], usvc.env["ADMIN_PASSWORD"]).json()["access_token"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/api/v1/users/me", {}),
        ("GET", "/api/v1/users/me", {"Authorization": "Basic dXNlcjpwYXNz"}),
        ("GET", "/api/v1/users/me", {"Authorization": "Bearer"}),
        ("GET", "/api/v1/users/me", bearer("not-a-jwt")),
        ("GET", "/api/v1/users/me", bearer(forged)),
        ("GET", "/api/v1/users/me", bearer(token)),
        ("GET", "/api/v1/users/me", bearer(ended)),
        ("GET", "/api/v1/users/me", bearer(admin)),
        ("GET", f"/api/v1/users/{me.id}", bearer(token)),
        ("GET", f"/api/v1/users/{me.id.upper()}", bearer(token)),
        ("GET", f"/api/v1/users/{me.id.replace('-', '')}", bearer(token)),
        ("GET", f"/api/v1/users/{me.id}", bearer(ended)),
        ("GET", f"/api/v1/users/{me.id}", {}),
        ("GET", f"/api/v1/users/{other.id}", bearer(token)),
        ("GET", f"/api/v1/users/{other.id}", bearer(ended)),
        ("GET", f"/api/v1/users/{other.id}", bearer(admin)),
        ("GET", f"/api/v1/users/{uuid.uuid4()}", bearer(admin)),
        ("GET", f"/api/v1/users/{uuid.uuid4()}", bearer(token)),
        ("GET", "/api/v1/users/not-a-uuid", bearer(token)),
        ("GET", "/api/v1/users/not-a-uuid", {}),
        ("GET", f"/api/v1/users/{me.id[:-1]}-", bearer(token)),
        ("HEAD", "/api/v1/users/me", bearer(token)),
        ("HEAD", f"/api/v1/users/{me.id}", bearer(token)),
        ("DELETE", f"/api/v1/users/{me.id}", bearer(token)),
        ("PUT", "/api/v1/users/me", bearer(token)),
        ("PATCH", "/api/v1/users/me", {**bearer(token), "content-type": "application/json"}),
    ]
    for method, path, headers in requests:
        content = b"{}" if method == "PATCH" else None
        front = usvc.client.request(method, path, headers=headers, content=content)
        behind = documented.client.request(method, path, headers=headers, content=content)
        assert comparable_answer(front) == comparable_answer(behind), (method, path, headers)
    # The answers above include each kind: a profile, a 401, a 404, a 405 and a 422.
    assert {usvc.client.request(m, p, headers=h).status_code for m, p, h in requests[5:24]} >= {
        200,
        401,
        404,
        405,
        422,
    }
