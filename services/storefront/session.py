"""The shopper's session, kept in one encrypted cookie.

Why a cookie and not a server-side table: the storefront then owns no state, any replica serves any
shopper, and a cart survives restarts. Why encrypted and not only signed: the access and refresh tokens
ride in it, and the browser must never be able to read a bearer token (AES-256-GCM authenticates as well,
so a tampered cookie is simply a fresh, empty session). The CSRF secret lives here too: a form is accepted
only when it carries the token derived from it (``csrf_token``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_NONCE = 12
# Bumped when the cookie's layout changes: an old cookie then decodes to a fresh session, never an error.
_VERSION = b"v1"


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    email: str
    name: str


class Session(BaseModel):
    """What the cookie holds. Small on purpose: browsers refuse cookies over 4 KiB."""

    model_config = ConfigDict(extra="forbid")

    csrf_secret: str = Field(default_factory=lambda: secrets.token_urlsafe(24))
    cart: dict[uuid.UUID, int] = Field(default_factory=dict)
    user: User | None = None
    access_token: str | None = None
    access_expires_at: float = 0.0
    refresh_token: str | None = None
    flash: str | None = None

    @property
    def logged_in(self) -> bool:
        return self.user is not None and self.refresh_token is not None

    def access_fresh(self, now: float | None = None) -> bool:
        """The access token is usable for the next call (with a margin for the call's own duration)."""
        return self.access_token is not None and self.access_expires_at - 30 > (now or time.time())

    def forget_user(self) -> None:
        self.user = None
        self.access_token = None
        self.refresh_token = None
        self.access_expires_at = 0.0
        # A new CSRF secret on every change of identity: a token scraped before login is worthless after.
        self.csrf_secret = secrets.token_urlsafe(24)


class SessionCodec:
    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"storefront session cookie").derive(
            secret.encode()
        )
        self._aead = AESGCM(key)

    def encode(self, session: Session) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = self._aead.encrypt(nonce, session.model_dump_json(exclude_defaults=False).encode(), _VERSION)
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decode(self, cookie: str | None) -> Session:
        """Any cookie that is absent, tampered with, from an old key or an old layout is a fresh session."""
        if not cookie or len(cookie) > 8192:
            return Session()
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _VERSION)
            return Session.model_validate_json(plain)
        except (ValueError, InvalidTag, ValidationError):
            return Session()


def csrf_token(session: Session) -> str:
    """The token every form carries: an HMAC of a per-session secret, so it needs no server-side table."""
    return hmac.new(session.csrf_secret.encode(), b"storefront-form", hashlib.sha256).hexdigest()


def csrf_valid(session: Session, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(csrf_token(session), submitted)
