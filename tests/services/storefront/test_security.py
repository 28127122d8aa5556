"""The storefront adds nothing unsafe: cookie flags, CSRF refusal, CSP, no readable token, no open redirect.

These run the app in-process (Starlette's TestClient over HTTPS, so Secure cookies round-trip) with the API
pointed at a closed port: every call to it is a real refused connection.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from services import catalog
from services.storefront import pages
from services.storefront.pages import _safe_next
from services.storefront.session import Session, SessionCodec, csrf_token
from services.storefront.settings import Settings
from tests.support.procs import free_port

KEY = "k" * 40
# ``main`` builds its module-level app from the environment on import, like every service's.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SESSION_KEY", KEY)
    from services.storefront.main import build_app

    settings = Settings(session_key=KEY, api_url=f"http://127.0.0.1:{free_port()}", environment="test")
    with TestClient(build_app(settings), base_url="https://shop.test") as c:
        yield c


def _set_cookie(response: object) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for value in response.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        jar.load(value)
    return jar


def test_session_cookie_is_host_prefixed_secure_httponly_and_samesite_lax(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    raw = response.headers["set-cookie"]
    assert raw.startswith("__Host-shop=")
    attributes = {part.strip().lower() for part in raw.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= attributes
    assert not any(a.startswith("domain=") for a in attributes)


def test_every_page_carries_a_script_free_content_security_policy(client: TestClient) -> None:
    for path in ("/login", "/signup", "/", "/static/shop.css"):
        response = client.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"


def test_pages_reference_no_script_and_no_other_origin(client: TestClient) -> None:
    for path in ("/login", "/signup", "/cart"):
        html = client.get(path).text
        assert "<script" not in html
        assert not re.search(r"(src|href)=\"(https?:)?//", html), path


@pytest.mark.parametrize("token", [None, "", "0" * 64])
def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, token: str | None
) -> None:
    client.get("/login")  # a session exists
    form = {"product_id": "8f1c2d3e-0000-4000-8000-000000000001", "quantity": "1", "add": "true"}
    if token is not None:
        form["csrf"] = token
    before = client.cookies.get("__Host-shop")
    response = client.post("/cart/items", data=form, follow_redirects=False)
    assert response.status_code == 403
    assert "nothing was done" in response.text
    assert client.cookies.get("__Host-shop") == before


def test_a_csrf_token_from_another_session_is_refused(client: TestClient) -> None:
    other = csrf_token(Session())
    client.get("/login")
    response = client.post("/logout", data={"csrf": other}, follow_redirects=False)
    assert response.status_code == 403


def test_the_cookie_never_shows_the_bearer_token_and_a_tampered_cookie_is_a_fresh_session() -> None:
    codec = SessionCodec(KEY)
    session = Session(access_token="eyJhbGciOiJFZERTQSJ9.secret-access", refresh_token="refresh-secret")
    cookie = codec.encode(session)
    padded = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
    assert b"secret-access" not in padded
    assert b"refresh-secret" not in padded
    assert codec.decode(cookie).access_token == session.access_token
    flipped = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    assert codec.decode(flipped).access_token is None
    assert SessionCodec("x" * 40).decode(cookie).access_token is None  # another key: a fresh session
    assert codec.decode("%%%not base64").access_token is None


def test_pages_that_need_an_account_send_the_shopper_to_log_in(client: TestClient) -> None:
    for path in ("/checkout", "/orders"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={path}"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "evil"])
def test_log_in_never_redirects_off_site(target: str) -> None:
    assert _safe_next(target) == "/"


def test_a_page_while_the_api_is_down_is_a_clear_503_not_a_stack_trace(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 503
    assert "The shop is not answering right now" in response.text
    assert "Traceback" not in response.text
    assert "ConnectError" not in response.text


def test_the_edge_passes_exactly_the_storefronts_pages(client: TestClient) -> None:
    """The catalog's edge_pages are the storefront's routes, no more (an operational route would leak to the
    internet) and no fewer (a page the edge never passes): a new page needs its catalog entry."""
    shop = catalog.get("storefront")
    served = set()
    routes = [*client.app.routes, *pages.router.routes]  # type: ignore[attr-defined]
    for route in routes:
        path = getattr(route, "path", "")  # FastAPI lists an included router as one entry without a path
        if not path:
            continue
        first = "/" if path == "/" else "/" + path.strip("/").split("/")[0]
        if first.strip("/") not in catalog.RESERVED_SEGMENTS:
            served.add(first)
    assert served == set(shop.edge_pages)
