"""Forged and broken access tokens against a protected route, the JWKS, and signing-key rotation.

Every forgery below starts from the claims of a real, live session, so the only thing wrong with each
token is the attack itself; the control case re-signs those claims properly and gets a 200.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.kit import keys
from services.kit.auth import JWKSClient, TokenVerifier
from tests.services.users.conftest import TRUST_LOOPBACK
from tests.services.users.support import Api, assert_problem, b64url, b64url_json
from tests.support.inprocess import InProcessService
from tests.support.procs import ServiceProcess
from tests.support.stack import TestStack


@pytest.fixture(scope="module")
def live(api: Api) -> dict[str, Any]:
    """Claims and header of a real access token of a live session."""
    token = api.tokens(api.signup())["access_token"]
    return {
        "claims": jwt.decode(token, options={"verify_signature": False}),
        "header": jwt.get_unverified_header(token),
        "token": token,
    }


def _sign(keyring: KeyRing, claims: dict[str, Any], kid: str | None = None, pem: str | None = None) -> str:
    kid = kid or keyring.active_kid
    return jwt.encode(claims, keys.load_private(pem or keyring.jwt_keys[kid]), algorithm="EdDSA", headers={"kid": kid})


def _hs256(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    """HMAC-signed token built by hand (PyJWT refuses to HMAC with a PEM, which is the point of the attack)."""
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


def _public(keyring: KeyRing) -> tuple[bytes, str]:
    public = keys.load_private(keyring.jwt_keys[keyring.active_kid]).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, str(keys.jwk(public, keyring.active_kid)["x"])


def _with(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**claims, **changes}
    return {k: v for k, v in out.items() if v is not None}


Forge = Callable[[KeyRing, dict[str, Any]], str]

ATTACKS: dict[str, Forge] = {
    "alg none": lambda kr, c: f"{b64url_json({'alg': 'none', 'typ': 'JWT', 'kid': kr.active_kid})}.{b64url_json(c)}.",
    "alg None, no kid": lambda kr, c: f"{b64url_json({'alg': 'None'})}.{b64url_json(c)}.",
    "HS256 keyed with the public key PEM": lambda kr, c: _hs256(_public(kr)[0], c, kr.active_kid),
    "HS256 keyed with the JWK x": lambda kr, c: _hs256(_public(kr)[1].encode(), c, kr.active_kid),
    "HS256 keyed with the raw public key": lambda kr, c: _hs256(
        keys.load_private(kr.jwt_keys[kr.active_kid])
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
        c,
        kr.active_kid,
    ),
    "expired": lambda kr, c: _sign(kr, _with(c, iat=int(time.time()) - 3600, exp=int(time.time()) - 60)),
    "wrong aud": lambda kr, c: _sign(kr, _with(c, aud="some-other-api")),
    "wrong iss": lambda kr, c: _sign(kr, _with(c, iss="https://evil.example")),
    "unknown kid": lambda kr, c: _sign(kr, c, kid="not-a-known-kid", pem=keys.generate_private_pem()),
    "known kid, another key": lambda kr, c: _sign(kr, c, kid=kr.active_kid, pem=keys.generate_private_pem()),
    "no kid": lambda kr, c: jwt.encode(c, keys.load_private(kr.jwt_keys[kr.active_kid]), algorithm="EdDSA"),
    "missing sid": lambda kr, c: _sign(kr, _with(c, sid=None)),
    "missing exp": lambda kr, c: _sign(kr, _with(c, exp=None)),
    "missing sub": lambda kr, c: _sign(kr, _with(c, sub=None)),
    "sid not a uuid": lambda kr, c: _sign(kr, _with(c, sid="session-1")),
    "no signature": lambda kr, c: _sign(kr, c).rsplit(".", 1)[0] + ".",
}


def _tampered(keyring: KeyRing, claims: dict[str, Any]) -> str:
    header, _, signature = _sign(keyring, claims).split(".")
    return f"{header}.{b64url_json(_with(claims, roles=['admin', 'customer']))}.{signature}"


ATTACKS["tampered payload (roles: admin)"] = _tampered


def test_control_a_properly_signed_copy_of_the_live_claims_is_accepted(
    api: Api, keyring: KeyRing, live: dict[str, Any]
) -> None:
    """Without this, every 401 below could be an artefact of the forging code rather than the verifier."""
    r = api.me(_sign(keyring, live["claims"]))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_forged_or_broken_tokens_are_401(api: Api, keyring: KeyRing, live: dict[str, Any], attack: str) -> None:
    token = ATTACKS[attack](keyring, dict(live["claims"]))
    r = api.me(token)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_valid_token_for_another_session_id_is_refused(api: Api, keyring: KeyRing, live: dict[str, Any]) -> None:
    """Correctly signed, but the session it names does not exist (or was revoked): this service checks."""
    forged = _sign(keyring, _with(live["claims"], sid="00000000-0000-4000-8000-000000000000"))
    assert_problem(api.me(forged), 401)


def test_jwks_publishes_the_signing_keys_only(api: Api, keyring: KeyRing) -> None:
    """Public OKP/Ed25519 keys with their kid; never a private component (`d`)."""
    r = api.http.get("/.well-known/jwks.json")
    assert r.status_code == 200
    assert "max-age" in r.headers["cache-control"]
    entries = r.json()["keys"]
    assert [e["kid"] for e in entries] == [keyring.active_kid]
    for entry in entries:
        assert entry == {
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": entry["kid"],
            "x": entry["x"],
        }


@pytest.fixture(scope="module")
def rotated(stack: TestStack, usvc: InProcessService, keyring: KeyRing, logdir: Path) -> Iterator[ServiceProcess]:
    """A second users replica on the same database, deployed with the rotated keyring (a new active key;
    the old one stays in JWT_SIGNING_KEYS)."""
    env = {**usvc.env, **deployment_environment("users", DeployTarget(keyring=keyring.rotated())), **TRUST_LOOPBACK}
    proc = ServiceProcess("users", env, logdir).start()
    yield proc
    proc.stop()


def test_tokens_signed_with_the_old_key_still_verify_after_rotation(
    api: Api, rotated: ServiceProcess, keyring: KeyRing
) -> None:
    """Rotation logs nobody out: the new replica signs with the new key, publishes both, and accepts
    tokens signed with the old key until they expire; other services verifying through the JWKS too."""
    new_api = Api.at(rotated.url)
    account = api.signup()
    old_token = api.tokens(account)["access_token"]
    new_token = new_api.tokens(account)["access_token"]
    new_kid = rotated.env["JWT_ACTIVE_KID"]
    assert jwt.get_unverified_header(old_token)["kid"] == keyring.active_kid
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid != keyring.active_kid

    assert new_api.me(old_token).status_code == 200
    assert new_api.me(new_token).status_code == 200
    kids = [k["kid"] for k in new_api.http.get("/.well-known/jwks.json").json()["keys"]]
    assert kids == [new_kid, keyring.active_kid]  # active first, the retiring key still published

    async def verify_like_another_service() -> list[str]:
        jwks = JWKSClient(f"{rotated.url}/.well-known/jwks.json")
        verifier = TokenVerifier(jwks, issuer="retail-platform", audience="retail-api")
        try:
            return [str((await verifier.verify(t)).user_id) for t in (old_token, new_token)]
        finally:
            await jwks.aclose()

    assert asyncio.run(verify_like_another_service()) == [account.id, account.id]
