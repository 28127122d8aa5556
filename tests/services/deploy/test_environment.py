"""Every launcher asks ``deployment_environment`` for a service's settings, and gets what the catalog says.

``environments.json`` records, per target, what each launcher hands each service: the one-machine runner
(plain settings and secret files, with and without the caller's overrides), the test harness (alone, and
with the token issuer running), the cluster's chart values and Secrets (dev, prod: EKS; local: kind). It was
recorded from the four hand-written builders this module replaced, and differs from them in one deliberate
place: in a cluster, TRUSTED_PROXIES is set only for the services whose catalog entry trusts a forwarded
client address (the gateway and the users service: the only ones that read it).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from shop_platform.k8s import components, values
from shop_platform.k8s.keys import keyring_from_seeds

from services import catalog
from services.deploy import serve
from services.deploy.environment import SECRET_SETTINGS, DeployTarget, deployment_environment, split_secrets
from services.deploy.keyring import KeyRing
from services.runner import stack as runner
from services.runner.layout import Layout
from tests.platform.k8s.conftest import layer_for
from tests.support.procs import ROOT, ServiceProcess
from tests.support.stack import TestStack

SNAPSHOT = Path(__file__).with_name("environments.json")


def _seed(i: int) -> str:
    return base64.b64encode(hashlib.sha256(str(i).encode()).digest()).decode()


RING = keyring_from_seeds(
    _seed(0),
    {n: _seed(i + 1) for i, n in enumerate(catalog.service_key_holders())},
    {"card_fingerprint_key": "ab" * 32, "session_key": "cd" * 32},
)


def _scrub(env: dict[str, str], tmp: str) -> dict[str, Any]:
    """Key material replaced by what it is, public key sets by their owners, temporary paths by <tmp>, the
    checkout by <root>."""
    marks = {json.dumps(RING.jwt_keys): "<jwt_keys>", **{pem: f"<private:{n}>" for n, pem in RING.service_keys.items()}}
    out: dict[str, Any] = {}
    for name, value in sorted(env.items()):
        if name.upper() == "SERVICE_PUBLIC_KEYS":
            out[name] = sorted(json.loads(value))
        else:
            # The checkout's own path (PYTHONPATH) differs between clones: recorded as <root>.
            out[name] = marks.get(value, value).replace(tmp, "<tmp>").replace(str(ROOT), "<root>")
    return out


class _PG:
    def url(self, name: str) -> str:
        return f"postgresql://pg/{name}"

    def psql(self, sql: str) -> None:
        raise AssertionError(f"every database is given: {sql}")


def current(tmp: Path) -> dict[str, Any]:
    where = str(tmp)
    result: dict[str, Any] = {}
    layout = Layout(tmp)
    db = runner.Database("postgresql://admin:pw@127.0.0.1:5999/postgres", "given", roles={"users": "upw"})
    admin = runner.Admin("a@b.c", "secretpw", generated=False)
    overrides = {
        "TRUSTED_PROXIES": "10.1.0.0/16",
        "LOG_LEVEL": "DEBUG",
        "RATE_LIMIT_STATE_PATH": "/var/x",
        "HOME": "/home/x",
    }
    for label, base in (("one-machine", {}), ("one-machine-overrides", overrides)):
        result[label] = {
            s.name: {
                "env": _scrub(runner.service_env(layout, s.name, dict(base), db), where),
                "secret_files": _scrub(runner.service_secrets(s.name, RING, db, admin), where),
            }
            for s in catalog.SERVICES
        }
    result["one-machine-secret-names"] = sorted(name.lower() for name in SECRET_SETTINGS)
    for label, running in (("tests-alone", {}), ("tests-with-users", {"users": 1111, "products": 2222})):
        harness = TestStack(_PG(), RING, tmp)  # type: ignore[arg-type]  # only url() and psql() are used
        # Never started: the harness reads only their URLs.
        harness.running = {name: ServiceProcess(name, {}, tmp, port=port) for name, port in running.items()}
        result[label] = {
            s.name: _scrub(harness.env_for(s.name, database_url=f"postgresql://pg/{s.name}"), where)
            for s in catalog.SERVICES
        }
    for stack in ("dev", "prod", "local"):
        layer = layer_for(stack)
        inputs = {
            s.name: values.ServiceInputs(
                image_repository="repo", role_arn="arn:role", db_host="db.host", db_user=f"{s.name}_app"
            )
            for s in catalog.SERVICES
        }
        result[f"cluster-{stack}"] = {
            s.name: {
                "env": _scrub(values.service_values(s, layer, inputs[s.name])["env"], where),
                "secret": _scrub(components._secret_data(s.name, [RING, {}]), where),
            }
            for s in catalog.SERVICES
        }
    return result


def test_every_launcher_hands_each_service_the_recorded_environment(tmp_path: Path) -> None:
    assert current(tmp_path) == json.loads(SNAPSHOT.read_text())


def test_the_token_issuer_alone_gets_the_first_administrator_in_its_cluster_secret() -> None:
    for svc in catalog.SERVICES:
        extra = ["admin@shop.local", "pw"] if svc.issues_user_tokens else []
        data = components._secret_data(svc.name, [RING, {}, *extra])
        assert ("ADMIN_PASSWORD" in data) is svc.issues_user_tokens, svc.name


@pytest.mark.parametrize("svc", catalog.SERVICES, ids=lambda s: s.name)
def test_secret_settings_are_exactly_the_key_ring_database_and_administrator(svc: catalog.Service) -> None:
    """Whatever the target, a setting is secret by its name alone: the runner writes those as files and strips
    them from the caller's environment, the cluster puts them in the Secret and never in the chart values."""
    target = DeployTarget(
        environment="dev",
        log_level="INFO",
        service_urls={"users": "http://u"},
        forwarder_addresses="10.0.0.0/8",
        rate_limit_state_path="/x",
        keyring=KeyRing.generate(),
        database=lambda s: {"DATABASE_URL": "postgresql://x"},
        admin=("a@b.c", "pw"),
    )
    plain, secret = split_secrets(deployment_environment(svc.name, target))
    assert not {"ENVIRONMENT", "LOG_LEVEL", "SERVICE_URLS"} - set(plain)
    assert set(secret) <= SECRET_SETTINGS
    for name in catalog.SECRETS:
        assert (name.upper() in secret) is (name in svc.secrets)
    assert ("JWT_SIGNING_KEYS" in secret) is svc.issues_user_tokens
    assert ("TRUSTED_PROXIES" in plain) is svc.trusts_forwarded_for
    assert ("JWKS_URL" in plain) is (svc.verifies_user_tokens and not svc.issues_user_tokens)
    assert ("DATABASE_URL" in secret) is svc.owns_database


def test_a_new_catalog_entry_is_started_and_configured_on_every_target(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Adding a service is one catalog entry (plus its package and tests): its image command, its settings on
    one machine, in the tests and in a cluster, and its place among the runner's processes follow."""
    cart = catalog.Service(
        name="cart",
        port=8006,
        owns_database=True,
        description="test-only extra service",
        public_prefixes=("/api/v1/carts",),
    )
    monkeypatch.setattr(catalog, "SERVICES", (*catalog.SERVICES, cart))
    catalog.by_name.cache_clear()
    try:
        layout = Layout(tmp_path)
        assert ("cart", "cart", 8006) in runner.instances(layout, gateway_replicas=2)
        assert serve.container_target(cart) == ("services.cart.main:app", "0.0.0.0", 8006)
        db = runner.Database("postgresql://admin:pw@127.0.0.1:5999/postgres", "given")
        one_machine = runner.service_env(layout, "cart", {}, db)
        assert json.loads(one_machine["SERVICE_URLS"])["cart"] == "https://127.0.0.1:8006"
        assert one_machine["JWKS_URL"] == "https://127.0.0.1:8001" + catalog.JWKS_PATH
        secrets = runner.service_secrets("cart", RING, db, runner.Admin("a@b.c", "pw", generated=False))
        assert secrets["database_url"].endswith("/cart")
        assert json.loads(secrets["service_public_keys"]) == {}
        assert "cart" in json.loads(runner.service_env(layout, "orders", {}, db)["SERVICE_URLS"])
        cluster = values.service_values(cart, layer_for("dev"), values.ServiceInputs("repo", db_user="cart_app"))
        assert cluster["env"]["DB_IAM_USER"] == "cart_app"
        assert cluster["port"] == 8006
    finally:
        monkeypatch.undo()
        catalog.by_name.cache_clear()
