"""Contract of the account routes: sign-up, own profile, profile changes, reading a user."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.services.users.support import PASSWORD, Api, assert_problem, bearer, unique_email
from tests.support.inprocess import InProcessService
from tests.support.procs import ServiceProcess


def test_sign_up_returns_the_public_profile_and_never_the_password(api: Api) -> None:
    """201 with exactly {id, email, name, roles, created_at}: no hash or password ever leaves the service."""
    email = unique_email()
    r = api.http.post("/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Ada Lovelace"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "email", "name", "roles", "created_at"}
    assert body["email"] == email
    assert body["name"] == "Ada Lovelace"
    assert body["roles"] == ["customer"]
    uuid.UUID(body["id"])
    assert r.headers["location"] == f"/api/v1/users/{body['id']}"
    assert PASSWORD not in r.text
    assert "argon2" not in r.text


def test_email_is_taken_case_insensitively(api: Api) -> None:
    """Ada@X and ada@x are one mailbox: a second account would split a person's identity (409)."""
    email = unique_email("Case")
    api.signup(email)
    for variant in (email, email.upper(), email.lower()):
        r = api.http.post("/api/v1/users", json={"email": variant, "password": PASSWORD, "name": "Again"})
        assert_problem(r, 409, "email-taken")


def test_concurrent_sign_ups_with_one_email_create_exactly_one_account(api: Api) -> None:
    """The unique index on lower(email) decides races: exactly one 201, every other attempt 409, never 500."""
    email = unique_email("race")

    async def burst() -> list[int]:
        async with api.async_client(timeout=30.0) as client:

            def one(i: int) -> Any:
                variant = email.upper() if i % 2 else email
                return client.post("/api/v1/users", json={"email": variant, "password": PASSWORD, "name": f"n{i}"})

            responses = await asyncio.gather(*(one(i) for i in range(12)))
        return [r.status_code for r in responses]

    codes = asyncio.run(burst())
    assert sorted(codes) == [201] + [409] * 11, codes


def test_a_sign_up_flood_is_refused_with_429_and_logins_go_first(api: Api) -> None:
    """90 simultaneous sign-ups: beyond one new-password hash at a time and a queue of 16, the service
    answers 429 + Retry-After at once instead of queueing argon2 work; a login made in the middle of the
    flood does not queue behind the sign-ups it accepted, so it is answered before the last of them."""
    account = api.signup()
    finished: dict[str, float] = {}

    async def flood() -> tuple[list[httpx.Response], httpx.Response]:
        async with api.async_client(timeout=60.0) as client:

            async def sign_up(i: int) -> httpx.Response:
                r = await client.post(
                    "/api/v1/users", json={"email": unique_email(f"flood{i}"), "password": PASSWORD, "name": "Flood"}
                )
                finished[f"sign-up {i}"] = time.monotonic()
                return r

            async def login() -> httpx.Response:
                await asyncio.sleep(0.2)  # the flood has arrived
                r = await client.post(
                    "/api/v1/sessions",
                    json={"email": account.email, "password": PASSWORD},
                    headers={"X-Forwarded-For": account.ip},
                )
                finished["login"] = time.monotonic()
                return r

            *sign_ups, logged_in = await asyncio.gather(*(sign_up(i) for i in range(90)), login())
        return sign_ups, logged_in

    sign_ups, logged_in = asyncio.run(flood())
    codes = [r.status_code for r in sign_ups]
    assert logged_in.status_code == 201, logged_in.text
    assert set(codes) == {201, 429}, codes
    assert codes.count(429) >= 45, codes
    for r in sign_ups:
        if r.status_code == 429:
            assert_problem(r, 429, "rate-limited")
            assert r.headers["retry-after"] == "1"
    last_accepted = max(finished[f"sign-up {i}"] for i, code in enumerate(codes) if code == 201)
    assert finished["login"] < last_accepted, "the login waited behind the accepted sign-ups"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@b", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a b@example.com", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com\n", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a\x00@example.com", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "x" * 250 + "@example.com", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "ok@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "ok@example.com", "password": "123456789", "name": "A"}, "password"),
        ({"email": "ok@example.com", "password": "p" * 257, "name": "A"}, "password"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": ""}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": " padded "}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "n" * 101}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "bell\x07"}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "\u0085"}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "Ada\u3000"}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "A\x9bB"}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD}, "name"),
        ({"email": "ok@example.com", "password": PASSWORD, "name": "A", "roles": ["admin"]}, "roles"),
    ],
)
def test_sign_up_rejects_bad_input_with_422(api: Api, body: dict[str, Any], where: str) -> None:
    """Bad e-mails, passwords under 10 (or over 256) characters, bad names, unknown fields (a client may
    not choose its own roles) are 422 problems naming the field, never 5xx and never an account."""
    r = api.http.post("/api/v1/users", json=body)
    problem = assert_problem(r, 422, "validation")
    assert any(where in map(str, e["loc"]) for e in problem["errors"]), problem
    if "password" in body:
        assert body["password"] not in r.text  # the offending value is never echoed


def test_sign_up_rejects_a_body_that_is_not_json(api: Api) -> None:
    r = api.http.post("/api/v1/users", content=b"{nope", headers={"content-type": "application/json"})
    assert_problem(r, 422)


def test_a_lone_surrogate_is_rejected_not_a_server_error(api: Api) -> None:
    """JSON may carry "\\ud800", which cannot be encoded to UTF-8 (the database, the hasher): 422, not 500."""
    raw = b'{"email": "s@example.com", "password": "\\ud800\\ud800\\ud800\\ud800\\ud800x", "name": "\\ud800"}'
    r = api.http.post("/api/v1/users", content=raw, headers={"content-type": "application/json"})
    assert_problem(r, 422)
    r = api.http.post(
        "/api/v1/sessions",
        content=b'{"email": "s@example.com", "password": "\\udfff"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (401, 422), r.text
    r = api.http.post(
        "/api/v1/sessions/refresh",
        content=b'{"refresh_token": "\\udfff"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (401, 422), r.text


def test_me_returns_the_callers_profile(api: Api) -> None:
    account = api.signup()
    r = api.me(api.tokens(account)["access_token"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == account.id
    assert r.json()["email"] == account.email


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not.a.jwt"}],
)
def test_me_without_a_valid_token_is_401(api: Api, headers: dict[str, str]) -> None:
    r = api.http.get("/api/v1/users/me", headers=headers)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_patch_me_changes_the_name(api: Api) -> None:
    account = api.signup()
    token = api.tokens(account)["access_token"]
    r = api.http.patch("/api/v1/users/me", json={"name": "Renamed"}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed"
    assert api.me(token).json()["name"] == "Renamed"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"password": "new-password-123"},
        {"current_password": PASSWORD},
        {"password": "short", "current_password": PASSWORD},
        {"name": ""},
        {"email": "new@example.com"},
        {"roles": ["admin"]},
    ],
)
def test_patch_me_rejects_bad_combinations_with_422(api: Api, body: dict[str, Any]) -> None:
    """A password only with the current one, nothing but name/password, no e-mail or role changes."""
    account = api.signup()
    token = api.tokens(account)["access_token"]
    r = api.http.patch("/api/v1/users/me", json=body, headers=bearer(token))
    assert_problem(r, 422, "validation")
    assert api.me(token).json()["roles"] == ["customer"]


def test_wrong_current_password_is_403_and_changes_nothing(api: Api) -> None:
    """403 (authenticated, but the change is refused); a 401 would tell the client to drop its token."""
    account = api.signup()
    token = api.tokens(account)["access_token"]
    r = api.http.patch(
        "/api/v1/users/me",
        json={"password": "brand-new-password", "current_password": "wrong-one!!"},
        headers={**bearer(token), "X-Forwarded-For": account.ip},
    )
    assert_problem(r, 403, "invalid-current-password")
    assert api.login(account.email, account.password).status_code == 201
    assert api.login(account.email, "brand-new-password").status_code == 401


def test_guessing_the_current_password_is_throttled_like_logins(api: Api) -> None:
    """A stolen access token must not become an unthrottled password oracle: wrong current passwords count
    as failed logins of the account, and the sixth attempt is 429 even with the right password."""
    account = api.signup()
    token = api.tokens(account)["access_token"]
    for i in range(5):
        r = api.http.patch(
            "/api/v1/users/me",
            json={"password": "brand-new-password", "current_password": f"bad{i}"},
            headers={**bearer(token), "X-Forwarded-For": account.ip},
        )
        assert_problem(r, 403)
    r = api.http.patch(
        "/api/v1/users/me",
        json={"password": "brand-new-password", "current_password": PASSWORD},
        headers={**bearer(token), "X-Forwarded-For": account.ip},
    )
    assert_problem(r, 429, "rate-limited")
    assert int(r.headers["retry-after"]) > 0


def test_password_change_works_and_revokes_the_other_sessions(api: Api) -> None:
    """After a change the old password fails, the new one works, the session that made the change stays,
    and every other session (maybe an attacker's) is revoked: its refresh token and access token stop."""
    account = api.signup()
    mine = api.tokens(account)
    other = api.tokens(account)
    r = api.http.patch(
        "/api/v1/users/me",
        json={"password": "a-new-password!", "current_password": PASSWORD, "name": "Both"},
        headers=bearer(mine["access_token"]),
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Both"
    assert api.login(account.email, PASSWORD).status_code == 401
    assert api.login(account.email, "a-new-password!").status_code == 201
    assert api.me(mine["access_token"]).status_code == 200
    assert api.refresh(mine["refresh_token"]).status_code == 201
    assert_problem(api.me(other["access_token"]), 401)
    assert_problem(api.refresh(other["refresh_token"]), 401)


def test_get_user_by_id_for_self_and_admin_but_404_for_others(api: Api, usvc: InProcessService) -> None:
    """Another user's profile is 404, exactly like a missing one: existence of accounts is not revealed."""
    alice, bob = api.signup(), api.signup()
    alice_token = api.tokens(alice)["access_token"]
    r = api.http.get(f"/api/v1/users/{alice.id}", headers=bearer(alice_token))
    assert r.status_code == 200
    assert r.json()["email"] == alice.email
    other = api.http.get(f"/api/v1/users/{bob.id}", headers=bearer(alice_token))
    missing = api.http.get(f"/api/v1/users/{uuid.uuid4()}", headers=bearer(alice_token))
    assert_problem(other, 404)
    assert_problem(missing, 404)
    assert other.json()["detail"] == missing.json()["detail"]

    admin = api.login(usvc.env["ADMIN_EMAIL"], usvc.env["ADMIN_PASSWORD"])
    assert admin.status_code == 201, admin.text
    admin_token = admin.json()["access_token"]
    r = api.http.get(f"/api/v1/users/{bob.id}", headers=bearer(admin_token))
    assert r.status_code == 200
    assert r.json()["email"] == bob.email
    assert_problem(api.http.get(f"/api/v1/users/{uuid.uuid4()}", headers=bearer(admin_token)), 404)


def test_get_user_needs_a_token_and_a_uuid(api: Api) -> None:
    assert_problem(api.http.get(f"/api/v1/users/{uuid.uuid4()}"), 401)
    token = api.tokens(api.signup())["access_token"]
    assert_problem(api.http.get("/api/v1/users/not-a-uuid", headers=bearer(token)), 422)


def test_session_wide_users_fixture_serves_the_admin(users: ServiceProcess, admin_token: str) -> None:
    """The shared fixture other services' tests rely on: the configured admin can log in and is admin."""
    r = httpx.get(f"{users.url}/api/v1/users/me", headers=bearer(admin_token))
    assert r.status_code == 200, r.text
    assert "admin" in r.json()["roles"]


def test_a_wrong_method_is_405_listing_every_allowed_method(api: Api) -> None:
    """/users/me has two routes (GET, PATCH); the Allow header must name both (RFC 9110), not only the
    first route's method as Starlette alone would."""
    r = api.http.request("DELETE", "/api/v1/users/me")
    assert_problem(r, 405)
    assert r.headers["allow"] == "GET, PATCH"


def test_the_published_name_rule_is_the_one_the_server_applies(api: Api) -> None:
    """The OpenAPI pattern must not use `\\s`: JSON Schema (ECMAScript) and Python disagree on what it
    matches (U+0085), so a client validating against the schema would send names the server refuses."""
    spec = api.http.get("/openapi.json").json()
    pattern = spec["components"]["schemas"]["SignUp"]["properties"]["name"]["pattern"]
    assert "\\s" not in pattern
    assert re.fullmatch(pattern, "Zoë Ada-Lovelace") is not None
