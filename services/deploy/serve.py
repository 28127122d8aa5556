"""``python -m services.deploy.serve``: a service image's start command and health check, from the catalog.

One image recipe serves every service (services/Dockerfile, ``--build-arg SERVICE=<name>``, kept in the
image as the ``SERVICE`` variable). This module turns that name into the service's app and catalog port:

- no argument: replace this process with uvicorn (exec, so uvicorn is the container's PID 1 and receives
  the stop signal itself, as an exec-form ``CMD`` would);
- ``--check``: fail unless ``SERVICE`` names a catalog service (run at build time: a typo fails the build);
- ``--healthcheck``: exit 0 when the service answers ``/healthz`` on its port (the image's HEALTHCHECK).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request
from collections.abc import Sequence

from services import catalog
from services.catalog import Service

# Kubernetes waits terminationGracePeriodSeconds (charts/service) before SIGKILL: in-flight requests get 20s.
GRACEFUL_SHUTDOWN_S = 20


def command(svc: Service) -> list[str]:
    """uvicorn's arguments for one service in a container: every interface, its catalog port, no access log
    (the kit logs each request)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"services.{svc.name}.main:app",
        "--host",
        "0.0.0.0",
        "--port",
        str(svc.port),
        "--no-access-log",
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SHUTDOWN_S),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.deploy.serve", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check that SERVICE is a catalog service")
    mode.add_argument("--healthcheck", action="store_true", help="probe the running service's /healthz")
    args = parser.parse_args(argv)
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
    argv_ = command(svc)
    os.execv(argv_[0], argv_)  # noqa: S606 - our own interpreter, arguments from the catalog


if __name__ == "__main__":
    sys.exit(main())
