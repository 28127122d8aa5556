"""Token verification: only EdDSA tokens from a known key, for our issuer and audience, are accepted."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from services.kit import keys
from services.kit.auth import JWKSClient, ServiceTokenIssuer, ServiceTokenVerifier, StaticKeys, TokenVerifier
from services.kit.errors import Problem

ISS, AUD = "retail-platform", "retail-api"
PEM = keys.generate_private_pem()
KID = keys.thumbprint_kid(PEM)
PUBLIC = keys.load_private(PEM).public_key()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": AUD,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "roles": ["customer"],
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], kid: str = KID, pem: str = PEM) -> str:
    return jwt.encode(claims, keys.load_private(pem), algorithm="EdDSA", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _verify(token: str) -> object:
    verifier = TokenVerifier(StaticKeys({KID: PUBLIC}), issuer=ISS, audience=AUD)
    return asyncio.run(verifier.verify(token))


def test_a_valid_token_yields_the_principal() -> None:
    """The positive case, so the rejections below are not vacuous."""
    claims = _claims(roles=["admin"])
    principal = _verify(_sign(claims))
    assert str(principal.user_id) == claims["sub"]  # type: ignore[attr-defined]
    assert principal.is_admin  # type: ignore[attr-defined]


def _forged_hs256_with_public_key() -> str:
    """The classic key-confusion attack: HMAC-sign with the public key bytes a verifier might misuse."""
    pub_pem = PUBLIC.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    body = _b64(json.dumps(_claims()).encode())
    import hashlib
    import hmac

    sig = hmac.new(pub_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


def _alg_none() -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": KID}).encode())
    return f"{header}.{_b64(json.dumps(_claims()).encode())}."


def _tampered() -> str:
    token = _sign(_claims())
    header, _, sig = token.split(".")
    return f"{header}.{_b64(json.dumps(_claims(roles=['admin'])).encode())}.{sig}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_alg_none(), "algorithm"),
        (_forged_hs256_with_public_key(), "algorithm"),
        (_sign(_claims(exp=int(time.time()) - 5)), "expired"),
        (_sign(_claims(aud="someone-else")), "not valid"),
        (_sign(_claims(iss="https://evil.example")), "not valid"),
        (_sign(_claims(sid=None)), "not valid"),
        (_sign(_claims(), kid="unknown-kid"), "unknown key"),
        (_sign(_claims(), pem=keys.generate_private_pem()), "not valid"),
        (_tampered(), "not valid"),
        ("not-a-jwt", "malformed"),
    ],
    ids=[
        "alg-none",
        "hs256-public-key",
        "expired",
        "wrong-aud",
        "wrong-iss",
        "no-sid",
        "unknown-kid",
        "other-key-same-kid",
        "tampered",
        "garbage",
    ],
)
def test_attacks_and_bad_tokens_are_refused_with_401(token: str, reason: str) -> None:
    """Every service verifies tokens itself; each of these would be an account takeover if accepted."""
    with pytest.raises(Problem) as info:
        _verify(token)
    assert info.value.status == 401
    assert reason in info.value.detail


def test_jwks_client_refreshes_on_unknown_kid_but_not_more_than_allowed() -> None:
    """A rotation publishes a new kid: the first token signed with it must verify without waiting for the
    cache to expire. But made-up kids must not turn every request into a JWKS fetch."""
    new_pem = keys.generate_private_pem()
    new_kid = keys.thumbprint_kid(new_pem)
    published = [keys.jwk(PUBLIC, KID)]
    fetches = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json={"keys": list(published)})

    async def run() -> None:
        client = JWKSClient(
            "http://users/.well-known/jwks.json",
            ttl=300,
            min_refresh_interval=0.2,
            client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        )
        verifier = TokenVerifier(client, issuer=ISS, audience=AUD)
        await verifier.verify(_sign(_claims()))
        assert fetches == 1
        await asyncio.sleep(0.25)
        published.append(keys.jwk(keys.load_private(new_pem).public_key(), new_kid))
        await verifier.verify(_sign(_claims(), kid=new_kid, pem=new_pem))
        assert fetches == 2
        for _ in range(20):
            with pytest.raises(Problem):
                await verifier.verify(_sign(_claims(), kid=f"bogus-{uuid.uuid4()}"))
        assert fetches <= 3

    asyncio.run(run())


def test_service_tokens_only_from_callers_the_catalog_allows() -> None:
    """Products accepts internal calls from orders and search only: a token from payments (a real service
    with a real key) must be refused, as must a token meant for another callee."""
    orders_pem, payments_pem = keys.generate_private_pem(), keys.generate_private_pem()
    verifier = ServiceTokenVerifier(
        "products", {"orders": keys.public_pem(orders_pem), "payments": keys.public_pem(payments_pem)}
    )
    assert verifier.verify(ServiceTokenIssuer("orders", orders_pem).token_for("products"), "reservations") == "orders"
    for token in (
        ServiceTokenIssuer("payments", payments_pem).token_for("products"),
        ServiceTokenIssuer("orders", orders_pem).token_for("payments"),
        ServiceTokenIssuer("orders", payments_pem).token_for("products"),
    ):
        with pytest.raises(Problem) as info:
            verifier.verify(token, "reservations")
        assert info.value.status == 401


class _CountingKeys:
    """A key source that counts look-ups (one per full verification) and can drop its key."""

    def __init__(self) -> None:
        self.keys = {KID: PUBLIC}
        self.lookups = 0

    async def key_for(self, kid: str) -> Any:
        self.lookups += 1
        return self.keys.get(kid)


def test_a_token_is_verified_once_per_process_and_a_forgery_never_rides_on_it() -> None:
    """The second presentation of a token is answered from the cache; a token differing in any byte
    (here: another signature) is verified, and refused, on its own."""
    source = _CountingKeys()
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD)
    token = _sign(_claims())
    head, body, _ = token.split(".")
    forged = f"{head}.{body}.{_b64(b'x' * 64)}"

    async def run() -> None:
        first = await verifier.verify(token)
        assert await verifier.verify(token) == first
        assert source.lookups == 1
        for _ in range(2):
            with pytest.raises(Problem) as refused:
                await verifier.verify(forged)
            assert refused.value.status == 401
        assert source.lookups == 3  # refusals are not cached

    asyncio.run(run())


def test_a_cached_token_stops_at_its_exp_and_a_dropped_key_within_the_cache_ttl() -> None:
    """The stated bounds: never past ``exp``; a key removed from the key set still accepts tokens this
    process has seen for at most ``cache_ttl_s``, then they are refused."""
    source = _CountingKeys()
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD, cache_ttl_s=0.5)
    now = int(time.time())
    short = _sign(_claims(iat=now, exp=now + 1))
    long = _sign(_claims())

    async def run() -> None:
        await verifier.verify(short)
        await verifier.verify(long)
        source.keys.clear()  # the key is rotated out
        await verifier.verify(long)  # within cache_ttl_s: still the cached answer
        await asyncio.sleep(0.6)
        with pytest.raises(Problem):
            await verifier.verify(long)
        await asyncio.sleep(max(0.0, now + 1.1 - time.time()))
        source.keys[KID] = PUBLIC
        with pytest.raises(Problem) as expired:
            await verifier.verify(short)
        assert "expired" in str(expired.value.detail)

    asyncio.run(run())


def test_the_token_cache_is_bounded() -> None:
    verifier = TokenVerifier(StaticKeys({KID: PUBLIC}), issuer=ISS, audience=AUD, cache_max_entries=3)

    async def run() -> None:
        for _ in range(10):
            await verifier.verify(_sign(_claims()))
            assert len(verifier._accepted) <= 3

    asyncio.run(run())
