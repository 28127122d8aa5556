"""Key material: Ed25519 keys in PEM, their JWKs, and a generator for provisioning.

Keys are provisioned per deployment (a Kubernetes Secret, a Secrets Manager secret, or the local stack's
key directory) and read from configuration; a replica never generates its own, or tokens signed by one
replica would fail on the next. ``python -m services.kit.keys`` prints a fresh key for provisioning.
"""

from __future__ import annotations

import base64
import hashlib
import sys
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def generate_private_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def load_private(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM-encoded private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing keys must be Ed25519 (EdDSA)")
    return key


def load_public(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM-encoded public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("verification keys must be Ed25519 (EdDSA)")
    return key


def public_pem(private_pem: str) -> str:
    return (
        load_private(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(public: Ed25519PublicKey, kid: str) -> dict[str, Any]:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}


def thumbprint_kid(private_pem: str) -> str:
    """A stable key id derived from the public key (so the same key always has the same ``kid``)."""
    raw = (
        load_private(private_pem).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return hashlib.sha256(raw).hexdigest()[:16]


if __name__ == "__main__":  # pragma: no cover - a provisioning helper
    sys.stdout.write(generate_private_pem())
