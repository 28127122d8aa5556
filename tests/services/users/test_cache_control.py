"""Profiles are personal data: no browser or proxy cache may keep them."""

from __future__ import annotations

from tests.services.users.support import Api, bearer


def test_profiles_are_never_stored_by_caches(api: Api) -> None:
    """``/users/me`` (read and change) and ``/users/{id}`` carry ``Cache-Control: no-store``; the public JWKS
    keeps its own cache policy."""
    account = api.signup()
    token = api.tokens(account)["access_token"]
    for r in (
        api.me(token),
        api.http.patch("/api/v1/users/me", json={"name": "N"}, headers=bearer(token)),
        api.http.get(f"/api/v1/users/{account.id}", headers=bearer(token)),
    ):
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store", r.request.url
    assert "max-age" in api.http.get("/.well-known/jwks.json").headers["cache-control"]
