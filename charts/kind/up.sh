#!/usr/bin/env bash
# The `local` stack on kind: create the cluster, build and load the service images, `pulumi up -s local`.
#   charts/kind/up.sh            (or: make kind-up)
# Needs docker, kind (>= versions.KIND_MIN_VERSION: its node image is built for it), kubectl and the pulumi
# CLI; Python deps from `make venv`. Host port 80 is privileged: rootless Docker/Podman cannot bind it.
# Environment: CLUSTER (default shop), TAG (default: kubernetes.imageTag in Pulumi.local.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
CLUSTER=${CLUSTER:-shop}

for tool in docker kind kubectl pulumi; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$PY" ] || { echo "up.sh: run 'make venv' first" >&2; exit 1; }
# A local (file) backend encrypts the stack's secrets with a passphrase; without one in the environment the
# non-interactive `up` at the end would stop at a prompt.
if pulumi whoami -v 2>/dev/null | grep -q 'Backend URL: file://' \
    && [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  echo "up.sh: the local Pulumi backend needs PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE)" >&2
  exit 1
fi

node_image=$("$PY" -c 'from shop_platform.versions import KIND_NODE_IMAGE; print(KIND_NODE_IMAGE)')
kind_min=$("$PY" -c 'from shop_platform.versions import KIND_MIN_VERSION; print(KIND_MIN_VERSION)')
kind_version=$(kind version | sed -n 's/^kind v\([0-9.]*\).*/\1/p')
if [ "$(printf '%s\n%s\n' "$kind_min" "$kind_version" | sort -V | head -1)" != "$kind_min" ]; then
  echo "up.sh: kind $kind_version is older than $kind_min (the release $node_image is built for)" >&2
  exit 1
fi
tag=${TAG:-$("$PY" -c 'import yaml; print(yaml.safe_load(open("Pulumi.local.yaml"))["config"]["retail-platform:kubernetes"]["imageTag"])')}
services=$("$PY" -c 'from services.catalog import SERVICES; print(" ".join(s.name for s in SERVICES))')

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config charts/kind/cluster.yaml --image "$node_image" --wait 120s
fi

for svc in $services; do
  echo "== image shop/$svc:$tag"
  # No attestation manifests: with Docker's containerd image store `docker save` omits them and
  # `kind load docker-image` fails with "content digest ... not found" (kubernetes-sigs/kind#3795).
  docker build --provenance=false --sbom=false -f services/Dockerfile --build-arg SERVICE="$svc" -t "shop/$svc:$tag" .
  kind load docker-image "shop/$svc:$tag" --name "$CLUSTER"
done

# The stack targets the kind context explicitly (stacks/local.py), never whatever kubectl points at.
pulumi stack select local --create
pulumi up --stack local --yes

cat <<MSG
The shop answers on http://localhost/api/v1/... (NGINX Gateway Fabric on the host's port 80).
Admin:    pulumi stack output adminEmail -s local; pulumi stack output adminPassword -s local --show-secrets
Grafana:  kubectl --context kind-$CLUSTER -n monitoring port-forward svc/kps-grafana 3002:3002
          (admin password: kubectl --context kind-$CLUSTER -n monitoring get secret kps-grafana -o jsonpath='{.data.admin-password}' | base64 -d)
Kibana:   kubectl --context kind-$CLUSTER -n logging port-forward svc/kibana-kb-http 5601:5601
          (user elastic: kubectl --context kind-$CLUSTER -n logging get secret logs-es-elastic-user -o jsonpath='{.data.elastic}' | base64 -d)
          (none with kind.profile light: no log pipeline)
Tear down: charts/kind/down.sh
MSG
