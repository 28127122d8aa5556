"""``python -m services.deploy.serve``: how every service process is served, in an image and on one machine.

One image recipe serves every service (services/Dockerfile, ``--build-arg SERVICE=<name>``, kept in the
image as the ``SERVICE`` variable), and the one-machine runner and the tests start their processes with the
same entry (``services.runner.process.uvicorn_argv``):

- no argument: serve ``SERVICE``'s app on every interface and its catalog port (the container's command; this
  process is the container's PID 1 and receives the stop signal itself);
- ``--app MODULE:ATTR --port N [--host H]``: serve that app there (the runner, the tests);
- ``--check``: fail unless ``SERVICE`` names a catalog service (run at build time: a typo fails the build);
- ``--healthcheck``: exit 0 when the service answers ``/healthz`` on its port (the image's HEALTHCHECK).

Served the same way everywhere: no access log (the kit logs each request with its route and request ID), no
proxy headers (each service decides whom to believe about the client address, ``TRUSTED_PROXIES``), and
in-flight requests get ``GRACEFUL_SHUTDOWN_S`` after the stop signal.

With a TLS identity (``TLS_IDENTITY_FILE`` and ``TLS_CA_FILE``, set by the one-machine runner) the process
serves HTTPS only, with the identity's server context (``services.kit.tls``): TLS 1.3, and a client
certificate from the stack's CA required at the handshake. A connection without one (plaintext HTTP, TLS
without a certificate, a certificate from another CA) ends before any request is read, on every path,
``/internal/*`` included. The context is the process's own shared one, so a renewed identity file loaded by
the kit's reload loop is what the next handshake presents, without a restart.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import urllib.request
from collections.abc import Callable, Sequence

import uvicorn

from services import catalog
from services.catalog import Service
from services.kit import tls
from services.kit.settings import TLSSettings

# Kubernetes waits terminationGracePeriodSeconds (charts/service) before SIGKILL: in-flight requests get 20s.
GRACEFUL_SHUTDOWN_S = 20


def server_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory`` (uvicorn 0.54 ``Config.load``, called in each worker process): the
    listener serves with the process's identity, the very context the kit's reload loop renews in place."""
    identity = tls.identity(TLSSettings())
    assert identity is not None, "only installed when the process has an identity"
    return identity.server_context()


def serve(app: str, *, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve ``app`` (``module:attribute``) until stopped: HTTPS with a client certificate required when the
    process has a TLS identity, plain HTTP otherwise (a cluster, where the mesh encrypts every hop)."""
    has_identity = tls.identity(TLSSettings()) is not None
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # A module-level function, not a closure: with workers, uvicorn pickles the config to each one.
        ssl_context_factory=server_context if has_identity else None,
    )


def container_target(svc: Service) -> tuple[str, str, int]:
    """(app, host, port) of one service in its container: every interface, its catalog port."""
    return f"services.{svc.name}.main:app", "0.0.0.0", svc.port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.deploy.serve", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check that SERVICE is a catalog service")
    mode.add_argument("--healthcheck", action="store_true", help="probe the running service's /healthz")
    mode.add_argument("--app", help="serve this ASGI app (module:attribute) instead of SERVICE's")
    parser.add_argument("--host", default="127.0.0.1", help="with --app: the address to listen on")
    parser.add_argument("--port", type=int, help="with --app: the port to listen on")
    parser.add_argument("--workers", type=int, default=1, help="with --app: worker processes sharing the port")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    if args.app:
        if args.port is None:
            parser.error("--app needs --port")
        serve(args.app, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
        return 0
    name = os.environ.get("SERVICE", "")
    try:
        svc = catalog.get(name)
    except KeyError as exc:
        print(f"serve: SERVICE={name!r}: {exc.args[0]} (build with --build-arg SERVICE=<name>)", file=sys.stderr)
        return 2
    if args.check:
        return 0
    if args.healthcheck:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{svc.port}/healthz", timeout=2):
                return 0
        except OSError as exc:
            print(f"serve: {svc.name} /healthz: {exc}", file=sys.stderr)
            return 1
    app, host, port = container_target(svc)
    serve(app, host=host, port=port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
