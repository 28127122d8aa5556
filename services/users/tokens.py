"""Access tokens (EdDSA JWTs with ``kid``), the JWKS, and opaque refresh tokens.

Access tokens are signed with the active key; every configured key is published, so tokens signed with
the previous key keep verifying while they live (rotation without logging anyone out). Refresh tokens
are 256 random bits; only their SHA-256 is stored, so a database leak does not yield usable tokens
(a fast hash is enough for a uniformly random 256-bit secret: there is nothing to guess).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.kit import keys
from services.users.settings import Settings


class Signer:
    def __init__(self, settings: Settings) -> None:
        self._keys = settings.signing_keys
        self._active = settings.active_kid
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.ttl = settings.access_token_ttl_s

    @property
    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return {kid: key.public_key() for kid, key in self._keys.items()}

    def jwks(self) -> dict[str, Any]:
        # Active key first: clients that only look at the first key still get the right one.
        kids = sorted(self._keys, key=lambda k: k != self._active)
        return {"keys": [keys.jwk(self._keys[kid].public_key(), kid) for kid in kids]}

    def access_token(self, user_id: uuid.UUID, session_id: uuid.UUID, roles: Iterable[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": str(session_id),
            "roles": sorted(roles),
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._keys[self._active], algorithm="EdDSA", headers={"kid": self._active})


def new_refresh_token() -> tuple[str, bytes]:
    """A fresh refresh token and the digest that is stored in its place."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return token, refresh_digest(token)


def refresh_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
