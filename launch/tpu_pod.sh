#!/usr/bin/env bash
# Run an xlra command on every worker of a Cloud TPU VM slice (creating the slice if needed).
#   TPU_NAME=xlra-v5e ZONE=us-west4-a ACCEL=v5litepod-16 launch/tpu_pod.sh \
#     xlra pipeline --config=configs/pipeline.py:paper --workdir=gs://BUCKET/runs/paper
# JAX discovers the slice from the TPU metadata (xlra.parallel.distributed), so every worker runs
# the same command; process 0 writes logs and reports. The workdir must be shared (GCS or NFS)
# for multi-host orbax checkpoints.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
ACCEL=${ACCEL:-v5litepod-16}
VERSION=${TPU_VERSION:-v2-alpha-tpuv5-lite}
REPO_DIR=${REPO_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
[ $# -gt 0 ] || { echo "usage: $0 COMMAND..." >&2; exit 2; }

if ! gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone "$ZONE" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$ZONE" --accelerator-type "$ACCEL" --version "$VERSION"
fi
ssh_all() { gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$1"; }

# Copy the working tree (not the venv) to every worker, then install it with the TPU extra.
tar -C "$REPO_DIR" --exclude=.venv --exclude=.git --exclude='runs' -czf /tmp/xlra_src.tgz .
gcloud compute tpus tpu-vm scp /tmp/xlra_src.tgz "$TPU_NAME":/tmp/xlra_src.tgz --zone "$ZONE" --worker=all
ssh_all "mkdir -p ~/xlra && tar -C ~/xlra -xzf /tmp/xlra_src.tgz && cd ~/xlra && \
  (test -d .venv || python3 -m venv .venv) && . .venv/bin/activate && pip install -q -e '.[tpu]'"
ssh_all "cd ~/xlra && . .venv/bin/activate && $(printf '%q ' "$@")"
