"""Each service's settings on a target, derived from the catalog: the one function every launcher calls.

The one-machine runner (``services.runner.stack``), the cluster's chart values and Secrets
(``shop_platform.k8s.values``, ``shop_platform.k8s.components``) and the test harness
(``tests.support.stack``) describe their target in a ``DeployTarget`` and ask ``deployment_environment``
what one service gets. Which service gets what is decided here, from the catalog's facts only
(``issues_user_tokens``, ``secrets``, ``trusts_forwarded_for``, ``forwards_public_routes``,
``internal_apis``, ``owns_database``); what the values look like is the target's business (a URL on
127.0.0.1, a Service name in the namespace, an RDS address).

Secret settings (``SECRET_SETTINGS``) are never environment variables where a deployment runs: each
becomes a file in the service's ``SECRETS_DIR`` (``services.kit.settings``); only tests pass them in the
environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from services import catalog
from services.catalog import Service
from services.deploy.keyring import KeyRing
from services.kit import keys

SECRET_SETTINGS = frozenset(
    {
        "SERVICE_PRIVATE_KEY",
        "SERVICE_PUBLIC_KEYS",
        "JWT_SIGNING_KEYS",
        "JWT_ACTIVE_KID",
        "DATABASE_URL",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
        *(name.upper() for name in catalog.SECRETS),
    }
)


@dataclass(frozen=True, slots=True)
class DeployTarget:
    """What differs between the places the services run. Every part is optional: a setting whose part is
    absent is left out (the cluster's chart values carry no keys; its Secrets carry nothing else)."""

    environment: str | None = None  # ENVIRONMENT
    log_level: str | None = None  # LOG_LEVEL
    # How a service reaches its peers: base URL by name (SERVICE_URLS, one machine and tests), or a
    # template of name and catalog port (SERVICE_URL_TEMPLATE, a Kubernetes Service per catalog entry).
    service_urls: Mapping[str, str] | None = None
    service_url_template: str | None = None
    # The addresses a forwarded client address is believed from (TRUSTED_PROXIES), for the services that
    # trust one: where the edge and the forwarder run (loopback on one machine, the pod network in a cluster).
    forwarder_addresses: str | None = None
    rate_limit_state_path: str | None = None  # the forwarder's shared rate-limit table (RATE_LIMIT_STATE_PATH)
    keyring: KeyRing | None = None
    # A database-owning service's connection settings on this target (a URL, or RDS with IAM authentication).
    database: Callable[[Service], Mapping[str, str]] | None = None
    admin: tuple[str, str] | None = None  # (email, password) of the first administrator: the token issuer's
    # (identity file, CA certificate) of a process by name, on a target whose services do mutual TLS
    # themselves (one machine: ``services.runner.tls.LocalCA``); in a cluster the mesh does it.
    tls_files: Callable[[str], tuple[Path, Path]] | None = None


def deployment_environment(service: str, target: DeployTarget) -> dict[str, str]:
    """Every setting of ``service`` on ``target``, by environment name: plain and secret ones alike
    (``split_secrets`` tells them apart)."""
    svc = catalog.get(service)
    issuer = catalog.token_issuer()
    env: dict[str, str] = {}
    if target.environment is not None:
        env["ENVIRONMENT"] = target.environment
    if target.log_level is not None:
        env["LOG_LEVEL"] = target.log_level
    if target.service_urls is not None:
        env["SERVICE_URLS"] = json.dumps(dict(target.service_urls))
    if target.service_url_template is not None:
        env["SERVICE_URL_TEMPLATE"] = target.service_url_template
    if svc is not issuer and svc.verifies_user_tokens and (issuer_url := _url_of(issuer, target)) is not None:
        env["JWKS_URL"] = issuer_url + catalog.JWKS_PATH
    if svc.owns_database and target.database is not None:
        env.update(target.database(svc))
    if svc.trusts_forwarded_for and target.forwarder_addresses is not None:
        env["TRUSTED_PROXIES"] = target.forwarder_addresses
    if svc.forwards_public_routes and target.rate_limit_state_path is not None:
        env["RATE_LIMIT_STATE_PATH"] = target.rate_limit_state_path
    if target.keyring is not None:
        env.update(_keys(svc, target.keyring))
    if target.tls_files is not None:
        identity, ca = target.tls_files(svc.name)
        env["TLS_IDENTITY_FILE"], env["TLS_CA_FILE"] = str(identity), str(ca)
    if svc.issues_user_tokens and target.admin is not None:
        env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = target.admin
    return env


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain settings, secret settings) of one service's environment."""
    plain = {k: v for k, v in env.items() if k not in SECRET_SETTINGS}
    return plain, {k: v for k, v in env.items() if k in SECRET_SETTINGS}


def _url_of(svc: Service, target: DeployTarget) -> str | None:
    if target.service_urls is not None:
        return target.service_urls.get(svc.name)
    if target.service_url_template is not None:
        return target.service_url_template.format(name=svc.name, port=svc.port)
    return None


def _keys(svc: Service, ring: KeyRing) -> dict[str, str]:
    """Only what the service needs: its callers' public keys (the catalog's allow-list), its own private key
    if it calls ``/internal`` routes, the user-token signing keys if it issues them, the secrets it names."""
    env = {
        "SERVICE_PUBLIC_KEYS": json.dumps(
            {caller: keys.public_pem(ring.service_keys[caller]) for caller in catalog.callers_of(svc.name)}
        )
    }
    if svc.name in catalog.service_key_holders():
        env["SERVICE_PRIVATE_KEY"] = ring.service_keys[svc.name]
    if svc.issues_user_tokens:
        env["JWT_SIGNING_KEYS"] = json.dumps(ring.jwt_keys)
        env["JWT_ACTIVE_KID"] = ring.active_kid
    for name in svc.secrets:
        env[name.upper()] = ring.secret(name)
    return env
