"""The local CA: identities that chain to it, name themselves, renew with a third of their life left, and are
replaced whole (key and certificate together)."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.runner import tls
from tests.support.handshake import Refused, handshake

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def _ca(tmp_path: Path, clock: Clock | None = None, **kw: dt.timedelta) -> tls.LocalCA:
    return tls.LocalCA(tmp_path / "private", tmp_path / "shared", clock=clock or Clock(), **kw)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_an_identity_names_itself_as_common_name_workload_id_and_localhost(tmp_path: Path) -> None:
    cert = _cert(_ca(tmp_path).issue("orders"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "orders"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://retail-platform.local/orders"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_an_identity_file_is_readable_by_its_owner_only_and_the_ca_key_stays_private(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    path = ca.issue("users")
    assert stat.S_IMODE(path.stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / "private" / "ca.key").stat().st_mode) == 0o600
    assert not (tmp_path / "shared" / "ca.key").exists()
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o711  # enter, not list


def _server(ca: tls.LocalCA, name: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca.ca_file)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(ca.identity_file(name))
    return ctx


def _client(ca: tls.LocalCA, identity: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca.ca_file)
    ctx.load_cert_chain(identity)
    return ctx


def test_two_identities_complete_a_mutual_tls_handshake_over_the_ca(tmp_path: Path) -> None:
    """Real OpenSSL, both sides verifying: the certificates are what ``ssl`` accepts for server and client."""
    ca = tls.LocalCA(tmp_path / "private", tmp_path / "shared")  # the real clock: OpenSSL checks the dates
    ca.issue("products")
    peer, _ = handshake(_server(ca, "products"), _client(ca, ca.issue("orders")))
    assert ("URI", "spiffe://retail-platform.local/orders") in peer["subjectAltName"]  # type: ignore[operator]


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(tmp_path: Path) -> None:
    ours = tls.LocalCA(tmp_path / "a", tmp_path / "a-shared")
    foreign = tls.LocalCA(tmp_path / "b", tmp_path / "b-shared")
    ours.issue("products")
    with pytest.raises(Refused, match="certificate"):
        handshake(_server(ours, "products"), _client(ours, foreign.issue("orders")))


def test_an_identity_is_renewed_once_a_third_of_its_life_is_left_and_not_before(tmp_path: Path) -> None:
    clock = Clock()
    ca = _ca(tmp_path, clock, leaf_lifetime=dt.timedelta(hours=24))
    assert ca.renew_due({"gateway": None}) == ["gateway"]  # missing: issued
    first = _cert(ca.identity_file("gateway")).serial_number
    clock.now = NOW + dt.timedelta(hours=15)  # 9h05 left of 24h05: more than a third
    assert ca.renew_due({"gateway": None}) == []
    clock.now = NOW + dt.timedelta(hours=16, minutes=5)  # 8h left: a third
    assert ca.renew_due({"gateway": None}) == ["gateway"]
    assert _cert(ca.identity_file("gateway")).serial_number != first


def test_identities_of_a_replaced_ca_are_renewed(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    ca.issue("search")
    for name in ("ca.key", "ca.pem"):
        (tmp_path / "private" / name).unlink()
    fresh = _ca(tmp_path)
    assert fresh.due("search")
    assert fresh.renew_due({"search": None}) == ["search"]


def test_a_ca_near_its_end_is_replaced_before_it_would_outlive_an_identity(tmp_path: Path) -> None:
    clock = Clock()
    ca = _ca(tmp_path, clock)
    old = ca.ensure().serial_number
    clock.now = NOW + tls.CA_LIFETIME - tls.LEAF_LIFETIME / 2
    assert _ca(tmp_path, clock).ensure().serial_number != old


def test_a_renewed_file_is_swapped_in_whole(tmp_path: Path) -> None:
    """The key and certificate are one file replaced by rename: an open reader keeps the old inode, and the
    path never holds a key without its certificate."""
    ca = _ca(tmp_path)
    path = ca.issue("payments")
    with path.open("rb") as old:
        ca.issue("payments")
        assert old.read() != path.read_bytes()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(path)  # key and certificate match
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_an_identity_is_handed_to_its_owner_before_it_appears(tmp_path: Path) -> None:
    path = _ca(tmp_path).issue("users", tls.Owner(65534, 65534))
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


@pytest.mark.parametrize("name", ["", "Orders", "../x", "a/b", "x" * 64])
def test_an_identity_name_must_be_a_plain_lower_case_word(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        _ca(tmp_path).issue(name)


def test_an_identity_may_not_outlive_half_the_ca(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        _ca(tmp_path, leaf_lifetime=tls.CA_LIFETIME)
