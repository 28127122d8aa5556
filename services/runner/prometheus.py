"""Prometheus for the one-machine stack: scrape config from the catalog, the shared alert rules.

The files are written as JSON (a subset of YAML, which Prometheus reads) so no YAML library is needed.
The alert rules are the cluster's too (``services.deploy.alerts``), so alerts are defined once.
Debian's prometheus lacks Kubernetes service discovery, so this mode uses static targets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from services.deploy.alerts import alert_rules
from services.runner.layout import Layout

INSTALL_HINT = "install Prometheus (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus)"


def find_prometheus() -> tuple[str, str] | None:
    """``PROMETHEUS`` names the binary when it is somewhere unusual (promtool beside it); a missing path
    means "none"."""
    if "PROMETHEUS" in os.environ:
        binary = Path(os.environ["PROMETHEUS"])
        promtool = binary.with_name("promtool")
        return (str(binary), str(promtool)) if binary.is_file() and promtool.is_file() else None
    prom, tool = shutil.which("prometheus"), shutil.which("promtool")
    return (prom, tool) if prom and tool else None


def scrape_config(
    targets: list[tuple[str, str]],
    rule_files: list[str],
    tls: tuple[Path, Path] | None,
    *,
    interval: str = "5s",
) -> dict[str, Any]:
    """``targets`` are (service, host:port) pairs, one per process (the gateway has several replicas).
    Each target carries a ``service`` label. With ``tls`` (identity file, CA certificate), as the stack runs
    by default, the services are scraped over mutual TLS (they refuse anything else): Prometheus presents the
    identity (key and certificate in one file) and verifies them against the CA."""
    # prometheus/common v0.39.0 config/http_config.go (Prometheus 2.42's): the client certificate and key are
    # read from their files at every handshake (TLSConfig.getClientCertificate), and the files are hashed per
    # request and the transport rebuilt when one changed (tlsRoundTripper.RoundTrip), so a renewed identity
    # needs no reload. Go's tls.X509KeyPair takes the certificate and the key from the one file, each skipping
    # the other's PEM block.
    retail: dict[str, Any] = {
        "job_name": "retail",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": [address], "labels": {"service": name}} for name, address in sorted(targets)],
    }
    if tls is not None:
        identity, ca = tls
        retail["scheme"] = "https"
        retail["tls_config"] = {
            "ca_file": str(ca),
            "cert_file": str(identity),
            "key_file": str(identity),
            "server_name": "localhost",
            "min_version": "TLS13",
        }
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": rule_files,
        "scrape_configs": [
            retail,
            {"job_name": "prometheus", "static_configs": [{"targets": ["127.0.0.1:9090"]}]},
        ],
    }


def write(layout: Layout, targets: list[tuple[str, str]], tls: tuple[Path, Path] | None) -> Path:
    base = layout.shared / "prometheus"  # Prometheus may run as a user of its own, which must reach it
    (base / "data").mkdir(parents=True, exist_ok=True)
    rules = base / "rules.yml"
    rules.write_text(json.dumps(alert_rules(), indent=2))
    config = scrape_config(targets, [str(rules)], tls)
    config["scrape_configs"][1]["static_configs"][0]["targets"] = [f"127.0.0.1:{layout.prometheus}"]
    conf = base / "prometheus.yml"
    conf.write_text(json.dumps(config, indent=2))
    return conf


def check(promtool: str, conf: Path) -> None:
    """``promtool check config`` also checks the rule files the config names."""
    result = subprocess.run([promtool, "check", "config", str(conf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"promtool rejected {conf}:\n{result.stdout}{result.stderr}")


def command(prometheus: str, conf: Path, layout: Layout) -> list[str]:
    return [
        prometheus,
        f"--config.file={conf}",
        f"--storage.tsdb.path={conf.parent / 'data'}",
        f"--web.listen-address=127.0.0.1:{layout.prometheus}",
        "--storage.tsdb.retention.time=2d",
        "--log.format=json",
    ]
