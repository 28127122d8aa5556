"""This process's TLS identity on one machine: the contexts it serves and calls with, following renewals.

Set by ``TLS_IDENTITY_FILE`` (the process's key and certificate, one PEM file from the stack's local CA,
``services.runner.tls``) and ``TLS_CA_FILE``. Every hop is mutual: a server context requires a client
certificate from the CA, a client context verifies the peer's certificate and host name and presents ours.

The runner renews identities while the stack runs and replaces each file by ``rename``. ``reload_if_changed``
loads the new key and certificate into the very contexts handed out before (OpenSSL copies them into each
new connection at its handshake, so open connections keep theirs and new ones get the new), which is why a
context is made once per process and shared: by uvicorn's listener, the service clients and the database
pool. A file caught mid-replacement cannot happen (rename), and one that fails to load leaves the contexts
as they were, to be tried again at the next check.

In a cluster these settings are unset: the mesh (Istio ambient, ``k8s/mesh.py``) does mutual TLS there.
"""

from __future__ import annotations

import logging
import os
import ssl
from pathlib import Path

from fastapi import FastAPI

from services.kit.background import Loop, periodic
from services.kit.settings import TLSSettings

log = logging.getLogger(__name__)

# The peers' certificates name localhost and 127.0.0.1 (services/runner/tls.py); TLS 1.3 only: every party is
# ours, so nothing older needs to be spoken, and 1.3 encrypts the certificates themselves.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_3


class Identity:
    def __init__(self, identity_file: Path, ca_file: Path) -> None:
        self.identity_file = identity_file
        self.ca_file = ca_file
        self._stamp = self._file_stamp()
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None

    def _file_stamp(self) -> tuple[int, int]:
        st = os.stat(self.identity_file)
        return st.st_ino, st.st_mtime_ns

    def _contexts(self) -> list[ssl.SSLContext]:
        return [c for c in (self._server, self._client) if c is not None]

    def server_context(self) -> ssl.SSLContext:
        """What a listener serves with: our certificate, and a client certificate from the CA required."""
        if self._server is None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_file))
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.minimum_version = MINIMUM_VERSION
            ctx.load_cert_chain(self.identity_file)
            self._server = ctx
        return self._server

    def client_context(self) -> ssl.SSLContext:
        """What a caller connects with: the peer verified against the CA (and its host name), ours presented."""
        if self._client is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
            ctx.minimum_version = MINIMUM_VERSION
            ctx.load_cert_chain(self.identity_file)
            self._client = ctx
        return self._client

    def reload_if_changed(self) -> bool:
        """Load a renewed identity file into every context made; True when one was loaded."""
        try:
            stamp = self._file_stamp()
        except OSError as exc:
            log.warning("tls identity %s unreadable, keeping the loaded one: %s", self.identity_file, exc)
            return False
        if stamp == self._stamp:
            return False
        try:
            for ctx in self._contexts():
                ctx.load_cert_chain(self.identity_file)
        except (OSError, ssl.SSLError) as exc:
            log.warning("tls identity %s did not load, keeping the loaded one: %s", self.identity_file, exc)
            return False
        self._stamp = stamp
        log.info("tls identity reloaded", extra={"identity_file": str(self.identity_file)})
        return True


_identities: dict[tuple[Path, Path], Identity] = {}


def identity(settings: TLSSettings) -> Identity | None:
    """The process's identity from its settings (one per file pair, shared by everything in the process),
    or None where TLS is not this process's business (a cluster, the tests' plain tier)."""
    if settings.tls_identity_file is None or settings.tls_ca_file is None:
        return None
    key = (settings.tls_identity_file, settings.tls_ca_file)
    if key not in _identities:
        _identities[key] = Identity(*key)
    return _identities[key]


def reload_loop(ident: Identity, interval_s: float) -> Loop:
    """The background loop (``create_app`` runs it in every service with an identity) that loads a renewed
    identity file into the contexts in use: the listener's, the clients' and the database pool's."""

    async def reload(app: FastAPI) -> None:
        ident.reload_if_changed()

    return periodic(interval_s, reload, name="tls_reload")
