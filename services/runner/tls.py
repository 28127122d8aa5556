"""The one-machine stack's certificate authority and its short-lived identities (localhost only).

Every process of the stack that speaks TLS (each service, the nginx edge, Prometheus, the embedded
PostgreSQL, the runner's own probes) has an identity: one PEM file holding its private key and a
certificate from this CA. The certificate names the identity three ways: the subject's common name (what
PostgreSQL's ``clientcert=verify-full`` compares with the role), ``spiffe://retail-platform.local/<name>``
(a workload identity in the form the cluster's mesh uses), and ``localhost``/``127.0.0.1``/``::1`` (what a
client on this machine dials, so hostname verification holds). Each certificate serves as both a server and
a client certificate: every hop is mutual.

Identities are short-lived (``LEAF_LIFETIME``) and renewed by the runner once a third of their life is
left (``LocalCA.renew_due``). A renewed file replaces the old one by ``rename``: a reader sees the old key
and certificate or the new ones, never a mix. The CA itself lives a year; its key never leaves the run
directory (mode 0600, readable by whoever runs ``up``). Nothing here is meant for the internet: on AWS the
ALB's ACM certificate faces clients and the mesh issues workload certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=365)
LEAF_LIFETIME = dt.timedelta(hours=24)
# Renewed with a third of its life left: a runner that misses a check (suspended laptop) still renews
# long before any process holds an expired certificate.
RENEW_WHEN_LEFT = 1 / 3
TRUST_DOMAIN = "retail-platform.local"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def spiffe_id(name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/{name}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Owner:
    """Who may read an identity's file: its process's OS user and group."""

    uid: int
    gid: int

    @classmethod
    def of_user(cls, user: str | None) -> Owner | None:
        """The OS user ``user``'s ids; None for None (the file stays the writer's)."""
        if user is None:
            return None
        entry = pwd.getpwnam(user)
        return cls(entry.pw_uid, entry.pw_gid)


def _write_atomically(path: Path, data: bytes, mode: int, owner: Owner | None) -> None:
    """Write ``data`` to ``path`` by renaming a finished file over it, so a reader never sees half of it;
    mode and owner are set before the rename, so no reader sees it with the writer's rights either."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, owner.uid, owner.gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class LocalCA:
    """The CA of one run directory: ``ca.pem`` (public, what every party trusts) and ``ca.key`` beside it in
    ``private_dir``; identities as ``<identities_dir>/<name>.pem`` (key and certificate, mode 0400).

    ``clock`` exists for the tests of renewal; everything else uses the real time."""

    def __init__(
        self,
        private_dir: Path,
        identities_dir: Path,
        *,
        leaf_lifetime: dt.timedelta = LEAF_LIFETIME,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        if leaf_lifetime <= dt.timedelta(0) or leaf_lifetime > CA_LIFETIME / 2:
            raise ValueError(f"an identity's lifetime must be positive and at most half the CA's, got {leaf_lifetime}")
        self.private_dir = private_dir
        self.identities_dir = identities_dir
        self.leaf_lifetime = leaf_lifetime
        self._clock = clock
        self._ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None

    @property
    def ca_file(self) -> Path:
        """The CA certificate, readable by every process of the stack (published next to the identities)."""
        return self.identities_dir / "ca.pem"

    @property
    def _ca_key_file(self) -> Path:
        return self.private_dir / "ca.key"

    def identity_file(self, name: str) -> Path:
        return self.identities_dir / f"{name}.pem"

    def files(self, name: str) -> tuple[Path, Path]:
        """(identity file, CA certificate) of ``name``: what a process is told to serve and call with."""
        return self.identity_file(name), self.ca_file

    def ensure(self) -> x509.Certificate:
        """Load the CA, or create it when absent or within an identity's lifetime of expiring (then every
        identity is reissued at the next ``renew_due``, since none chains to the new CA)."""
        if self._ca is None:
            self._ca = self._load()
        if self._ca is None or self._ca[0].not_valid_after_utc <= self._clock() + self.leaf_lifetime:
            self._ca = self._create()
        return self._ca[0]

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
        public = self.private_dir / "ca.pem"
        if not (public.exists() and self._ca_key_file.exists()):
            return None
        cert = x509.load_pem_x509_certificate(public.read_bytes())
        key = serialization.load_pem_private_key(self._ca_key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self._ca_key_file}: not an EC private key")
        self._publish(cert)
        return cert, key

    def _create(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        now = self._clock()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "retail-platform local CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomically(self._ca_key_file, _key_pem(key), 0o600, None)
        _write_atomically(self.private_dir / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644, None)
        self._publish(cert)
        return cert, key

    def _publish(self, cert: x509.Certificate) -> None:
        self.identities_dir.mkdir(parents=True, exist_ok=True)
        # Enter, not list: a process finds its own file by name and learns no other identity's.
        self.identities_dir.chmod(0o711)
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if not self.ca_file.exists() or self.ca_file.read_bytes() != pem:
            _write_atomically(self.ca_file, pem, 0o644, None)

    def issue(self, name: str, owner: Owner | None = None) -> Path:
        """A new key and certificate for ``name``, replacing its file."""
        if not _NAME.match(name):
            raise ValueError(f"identity names are lower-case words (a-z, 0-9, -), got {name!r}")
        ca_cert = self.ensure()
        assert self._ca is not None
        ca_key = self._ca[1]
        now = self._clock()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.leaf_lifetime)
            .add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.UniformResourceIdentifier(spiffe_id(name)),
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        path = self.identity_file(name)
        _write_atomically(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM), 0o400, owner)
        return path

    def due(self, name: str) -> bool:
        """Whether ``name``'s file is missing, unreadable, from another CA, or has a third of its life left."""
        ca_cert = self.ensure()
        try:
            cert = x509.load_pem_x509_certificate(self.identity_file(name).read_bytes())
        except (OSError, ValueError):
            return True
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return True
        life = cert.not_valid_after_utc - cert.not_valid_before_utc
        return cert.not_valid_after_utc - self._clock() <= life * RENEW_WHEN_LEFT

    def renew_due(self, owners: Mapping[str, Owner | None]) -> list[str]:
        """Issue every identity that is ``due``; the names renewed (for the runner to tell whom to reload).
        ``owners`` maps each identity to the OS user that reads it (None: the caller's)."""
        renewed = []
        for name, owner in owners.items():
            if self.due(name):
                self.issue(name, owner)
                renewed.append(name)
        return renewed
