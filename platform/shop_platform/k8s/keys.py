"""Service keys for the cluster: random seeds in Pulumi state (secret), Ed25519 keys derived from them.

A ``random.RandomBytes`` seed per key is created once and kept (encrypted) in the stack's state; the PEM
keys are derived deterministically from the seeds, so every ``pulumi up`` produces the same Secrets and
nothing rotates by accident. Rotation = replace a seed (``pulumi up --replace <urn>``).
The ring is the one-machine stack's type (``services.deploy.keyring``); who gets which key is
``services.deploy.environment``'s to say, for both.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.deploy.keyring import KeyRing
from services.kit import keys


def pem_from_seed(seed_b64: str) -> str:
    seed = base64.b64decode(seed_b64)
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def keyring_from_seeds(
    jwt_seed_b64: str, service_seeds_b64: Mapping[str, str], secrets_hex: Mapping[str, str]
) -> KeyRing:
    jwt_pem = pem_from_seed(jwt_seed_b64)
    kid = keys.thumbprint_kid(jwt_pem)
    return KeyRing(
        jwt_keys={kid: jwt_pem},
        active_kid=kid,
        service_keys={name: pem_from_seed(s) for name, s in service_seeds_b64.items()},
        secrets=dict(secrets_hex),
    )
