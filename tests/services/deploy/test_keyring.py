"""The deployment's keys: each process gets only the keys its catalog entry needs."""

from __future__ import annotations

import json

from services import catalog
from services.deploy.environment import DeployTarget, deployment_environment
from services.deploy.keyring import KeyRing
from services.kit import keys


def _keys_of(ring: KeyRing, service: str) -> dict[str, str]:
    return deployment_environment(service, DeployTarget(keyring=ring))


def test_the_gateway_is_given_no_service_key_and_no_service_accepts_one_from_it() -> None:
    """The gateway forwards public routes and calls no /internal route: it gets no signing key, and no service
    is handed a public key under its name, so a compromised gateway cannot charge or refund a payment."""
    ring = KeyRing.generate()
    assert "SERVICE_PRIVATE_KEY" not in _keys_of(ring, catalog.GATEWAY)
    assert catalog.GATEWAY not in ring.service_keys
    for svc in catalog.SERVICES:
        assert catalog.GATEWAY not in json.loads(_keys_of(ring, svc.name)["SERVICE_PUBLIC_KEYS"]), svc.name


def test_each_service_gets_its_own_key_only_if_it_calls_internal_routes_and_exactly_its_callers_keys() -> None:
    ring = KeyRing.generate()
    for svc in catalog.SERVICES:
        env = _keys_of(ring, svc.name)
        if catalog.callees_of(svc.name):
            assert keys.public_pem(env["SERVICE_PRIVATE_KEY"]) == keys.public_pem(ring.service_keys[svc.name])
        else:
            assert "SERVICE_PRIVATE_KEY" not in env, svc.name
        published = json.loads(env["SERVICE_PUBLIC_KEYS"])
        assert set(published) == set(catalog.callers_of(svc.name))
        assert all(published[c] == keys.public_pem(ring.service_keys[c]) for c in published)
