"""The keys one deployment needs, generated once and handed to every process that needs them.

- user-token signing keys (the catalog's token issuer signs; everyone else verifies through its JWKS),
- one Ed25519 key per internal caller for service-to-service tokens (each callee gets only its callers'
  public keys, as the catalog allows; a service that calls no ``/internal`` route, the gateway above all,
  gets no private key at all, so it holds nothing any service accepts),
- the deployment secrets of ``catalog.SECRETS`` (the card fingerprint key: an HMAC key, never a card number;
  the storefront's session key), 32 random bytes each, by name: a new name in the catalog needs nothing here.

Who receives which is the catalog's to say (``services.deploy.environment``). The one-machine stack keeps
the ring in a directory readable only by the user; a cluster derives it from seeds in the stack's state and
hands each service its share in a Kubernetes Secret. Either way a replica never invents its own.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from services import catalog
from services.kit import keys


@dataclass(frozen=True)
class KeyRing:
    jwt_keys: dict[str, str]  # kid -> private PEM
    active_kid: str
    service_keys: dict[str, str]  # service -> private PEM
    secrets: dict[str, str]  # catalog.SECRETS name -> hex value

    @classmethod
    def generate(cls) -> KeyRing:
        pem = keys.generate_private_pem()
        kid = keys.thumbprint_kid(pem)
        return cls(
            jwt_keys={kid: pem},
            active_kid=kid,
            service_keys={name: keys.generate_private_pem() for name in catalog.service_key_holders()},
            secrets={name: secrets.token_hex(32) for name in catalog.SECRETS},
        )

    def rotated(self) -> KeyRing:
        """A new active signing key; the old one stays in the JWKS so issued tokens keep verifying."""
        pem = keys.generate_private_pem()
        kid = keys.thumbprint_kid(pem)
        return KeyRing({**self.jwt_keys, kid: pem}, kid, self.service_keys, self.secrets)

    def completed(self) -> KeyRing:
        """The ring with a new value for every catalog secret it does not hold yet (a ring saved before the
        catalog named that secret); the values it holds are kept."""
        missing = {name: secrets.token_hex(32) for name in catalog.SECRETS if name not in self.secrets}
        return KeyRing(self.jwt_keys, self.active_kid, self.service_keys, {**self.secrets, **missing})

    def secret(self, name: str) -> str:
        """One of the catalog's deployment secrets (``catalog.SECRETS``) by name."""
        if name not in catalog.SECRETS:
            raise KeyError(f"{name!r} is not a deployment secret; the catalog names {sorted(catalog.SECRETS)}")
        try:
            return self.secrets[name]
        except KeyError:
            raise KeyError(f"the key ring holds no {name!r}: complete it (KeyRing.completed)") from None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {
                    "jwt_keys": self.jwt_keys,
                    "active_kid": self.active_kid,
                    "service_keys": self.service_keys,
                    "secrets": self.secrets,
                },
                f,
            )

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        doc = json.loads(path.read_text())
        # A ring saved before secrets were kept by name held the card fingerprint key on its own.
        held = doc.get("secrets") or {"card_fingerprint_key": doc["card_fingerprint_key"]}
        return cls(doc["jwt_keys"], doc["active_kid"], doc["service_keys"], dict(held))
