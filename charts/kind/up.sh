#!/usr/bin/env bash
# The `local` stack on kind: create the cluster, build and load the service images, `pulumi up -s local`.
#   charts/kind/up.sh            (or: make kind-up)
# Needs docker, kind (>= 0.24), kubectl and the pulumi CLI; Python deps from `make venv`.
# Environment: CLUSTER (default shop), TAG (default: kubernetes.imageTag in Pulumi.local.yaml).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
CLUSTER=${CLUSTER:-shop}

for tool in docker kind kubectl pulumi; do
  command -v "$tool" >/dev/null || { echo "up.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$PY" ] || { echo "up.sh: run 'make venv' first" >&2; exit 1; }

node_image=$(PYTHONPATH=platform "$PY" -c 'from shop_platform.versions import KIND_NODE_IMAGE; print(KIND_NODE_IMAGE)')
tag=${TAG:-$("$PY" -c 'import yaml; print(yaml.safe_load(open("Pulumi.local.yaml"))["config"]["retail-platform:kubernetes"]["imageTag"])')}
services=$("$PY" -c 'from services.catalog import SERVICES; print(" ".join(s.name for s in SERVICES))')

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config charts/kind/cluster.yaml --image "$node_image" --wait 120s
fi

for svc in $services; do
  echo "== image shop/$svc:$tag"
  docker build -f services/Dockerfile --target "$svc" -t "shop/$svc:$tag" .
  kind load docker-image "shop/$svc:$tag" --name "$CLUSTER"
done

# The stack targets the kind context explicitly (stacks/local.py), never whatever kubectl points at.
pulumi stack select local --create
pulumi up --stack local --yes

cat <<MSG
The shop answers on http://localhost/api/v1/... (NGINX Gateway Fabric on the host's port 80).
Admin:    pulumi stack output adminEmail -s local; pulumi stack output adminPassword -s local --show-secrets
Grafana:  kubectl --context kind-$CLUSTER -n monitoring port-forward svc/kps-grafana 3002:3002
          (admin password: kubectl -n monitoring get secret kps-grafana -o jsonpath='{.data.admin-password}' | base64 -d)
Kibana:   kubectl --context kind-$CLUSTER -n logging port-forward svc/kibana-kb-http 5601:5601
          (user elastic: kubectl -n logging get secret logs-es-elastic-user -o jsonpath='{.data.elastic}' | base64 -d)
Tear down: charts/kind/down.sh
MSG
