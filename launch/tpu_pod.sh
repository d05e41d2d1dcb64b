#!/usr/bin/env bash
# Run an xlra command on every worker of a Cloud TPU VM slice (creating the slice if needed).
#   TPU_NAME=xlra-v5e ZONE=us-west4-a ACCEL=v5litepod-16 launch/tpu_pod.sh \
#     xlra pipeline --config=configs/pipeline.py:paper --workdir=/mnt/xlra/runs/paper ...
# Every worker runs the same command with XLRA_DISTRIBUTED=auto, so xlra.parallel.distributed calls
# jax.distributed.initialize(), which finds the slice through the TPU VM metadata; process 0 writes
# logs and reports, every process takes part in the orbax checkpoints.
# The workdir, the Hugging Face checkpoints and the data must be paths that every worker sees the
# same (a Filestore NFS share, or a bucket mounted with gcsfuse): xlra writes its workdir with
# ordinary file I/O, so gs:// URLs are refused here. MOUNT=/mnt/xlra BUCKET=my-bucket mounts
# gs://my-bucket there on every worker with gcsfuse (installed if missing) before the command.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
ACCEL=${ACCEL:-v5litepod-16}
VERSION=${TPU_VERSION:-v2-alpha-tpuv5-lite}
REPO_DIR=${REPO_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
[ $# -gt 0 ] || { echo "usage: $0 COMMAND..." >&2; exit 2; }
for arg in "$@"; do
  case "$arg" in *=gs://*|gs://*)
    echo "$arg: xlra reads and writes local paths; mount the bucket (MOUNT=/mnt/xlra BUCKET=...) and pass the mounted path" >&2
    exit 2;;
  esac
done

if ! gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone "$ZONE" >/dev/null 2>&1; then
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone "$ZONE" --accelerator-type "$ACCEL" --version "$VERSION"
fi
ssh_all() { gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "$1"; }

if [ -n "${BUCKET:-}" ]; then
  mount_dir=${MOUNT:-/mnt/xlra}
  ssh_all "command -v gcsfuse >/dev/null || (export GCSFUSE_REPO=gcsfuse-\$(lsb_release -c -s) && \
    echo \"deb https://packages.cloud.google.com/apt \$GCSFUSE_REPO main\" | sudo tee /etc/apt/sources.list.d/gcsfuse.list && \
    curl -s https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add - && \
    sudo apt-get update -q && sudo apt-get install -y -q gcsfuse); \
    sudo mkdir -p $mount_dir && sudo chown \$USER $mount_dir && \
    (mountpoint -q $mount_dir || gcsfuse --implicit-dirs $BUCKET $mount_dir)"
fi

# Copy the working tree (not the venv) to every worker, then install it with the TPU extra.
tar -C "$REPO_DIR" --exclude=.venv --exclude=.git --exclude='runs' --exclude=launch_logs -czf /tmp/xlra_src.tgz .
gcloud compute tpus tpu-vm scp /tmp/xlra_src.tgz "$TPU_NAME":/tmp/xlra_src.tgz --zone "$ZONE" --worker=all
ssh_all "mkdir -p ~/xlra && tar -C ~/xlra -xzf /tmp/xlra_src.tgz && cd ~/xlra && \
  (test -d .venv || python3 -m venv .venv) && . .venv/bin/activate && pip install -q -e '.[tpu]'"
ssh_all "cd ~/xlra && . .venv/bin/activate && XLRA_DISTRIBUTED=auto $(printf '%q ' "$@")"
