"""A process's TLS contexts: mutual by construction, and following a renewed identity without a restart."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from services.kit import tls
from services.kit.settings import KitSettings
from services.runner.tls import LocalCA
from tests.support.handshake import Refused, handshake


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path / "private", tmp_path / "shared")


def test_no_identity_settings_means_no_tls_in_the_process() -> None:
    assert tls.identity(KitSettings(service_name="products")) is None


def test_one_identity_per_process_is_shared_by_everything_that_asks(ca: LocalCA) -> None:
    settings = KitSettings(service_name="orders", tls_identity_file=ca.issue("orders"), tls_ca_file=ca.ca_file)
    first = tls.identity(settings)
    assert first is not None
    assert tls.identity(settings) is first
    assert first.client_context() is first.client_context()


def test_server_and_client_contexts_authenticate_each_other(ca: LocalCA) -> None:
    server = tls.Identity(ca.issue("products"), ca.ca_file)
    client = tls.Identity(ca.issue("orders"), ca.ca_file)
    seen, _ = handshake(server.server_context(), client.client_context())
    assert ("URI", "spiffe://retail-platform.local/orders") in seen["subjectAltName"]  # type: ignore[operator]


def test_a_server_context_refuses_a_client_without_a_certificate(ca: LocalCA) -> None:
    server = tls.Identity(ca.issue("products"), ca.ca_file)
    anonymous = ssl.create_default_context(cafile=ca.ca_file)
    with pytest.raises(Refused, match="certificate"):
        handshake(server.server_context(), anonymous)


def test_a_renewed_identity_is_served_on_the_next_handshake_by_the_same_context(ca: LocalCA) -> None:
    server = tls.Identity(ca.issue("gateway"), ca.ca_file)
    client = tls.Identity(ca.issue("edge"), ca.ca_file)
    listening = server.server_context()
    _, before = handshake(listening, client.client_context())
    assert server.reload_if_changed() is False  # nothing renewed: nothing loaded
    ca.issue("gateway")
    assert server.reload_if_changed() is True
    _, after = handshake(listening, client.client_context())
    serial = [x509.load_der_x509_certificate(d).serial_number for d in (before, after)]
    assert serial[0] != serial[1]
    assert x509.load_pem_x509_certificate(ca.identity_file("gateway").read_bytes()).serial_number == serial[1]


def test_an_unloadable_identity_file_keeps_the_loaded_one(ca: LocalCA, tmp_path: Path) -> None:
    path = ca.issue("search")
    identity = tls.Identity(path, ca.ca_file)
    ctx = identity.client_context()
    path.chmod(0o600)
    path.write_text("not a certificate")
    assert identity.reload_if_changed() is False
    server = tls.Identity(ca.issue("products"), ca.ca_file)
    handshake(server.server_context(), ctx)  # still presents the old, valid identity
