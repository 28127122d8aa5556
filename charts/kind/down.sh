#!/usr/bin/env bash
# Tear the `local` stack down: destroy what Pulumi created (so the stack's state stays truthful), then delete
# the kind cluster. KEEP_STATE=1 skips the destroy (the cluster is deleted either way).
#   charts/kind/down.sh          (or: make kind-down)
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-shop}

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  if [ "${KEEP_STATE:-0}" != 1 ] && command -v pulumi >/dev/null; then
    pulumi destroy --stack local --yes || echo "down.sh: pulumi destroy failed; deleting the cluster anyway" >&2
  fi
  kind delete cluster --name "$CLUSTER"
else
  echo "down.sh: no kind cluster named $CLUSTER"
  # Nothing left to delete in a cluster that is gone: drop the objects from the stack's state.
  if [ "${KEEP_STATE:-0}" != 1 ] && command -v pulumi >/dev/null; then
    PULUMI_K8S_DELETE_UNREACHABLE=true pulumi destroy --stack local --yes || true
  fi
fi
