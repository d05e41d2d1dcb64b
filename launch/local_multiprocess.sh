#!/usr/bin/env bash
# Run one xlra command as N JAX processes on this machine (CPU, gloo collectives), e.g.
#   DEVICES_PER_PROCESS=2 launch/local_multiprocess.sh 2 xlra sft --config=configs/sft.py:ci --workdir=runs/mp
# Each process gets XLRA_COORDINATOR / XLRA_NUM_PROCESSES / XLRA_PROCESS_ID (read by
# xlra.parallel.distributed) and DEVICES_PER_PROCESS fake CPU devices (default 1); XLRA_PORT picks
# the coordinator's port (default: a free one). Each process logs to $LOG_DIR/proc_<i>.log (default
# launch_logs/). If one process fails the others are stopped (they would wait for it in a collective),
# and the script exits non-zero.
set -euo pipefail
n=${1:?number of processes}; shift
[ $# -gt 0 ] || { echo "usage: $0 N COMMAND..." >&2; exit 2; }
port=${XLRA_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
per=${DEVICES_PER_PROCESS:-1}
logs=${LOG_DIR:-launch_logs}
mkdir -p "$logs"
pids=()
for ((i = 0; i < n; i++)); do
  XLRA_COORDINATOR=127.0.0.1:$port XLRA_NUM_PROCESSES=$n XLRA_PROCESS_ID=$i JAX_PLATFORMS=cpu \
    XLA_FLAGS="--xla_force_host_platform_device_count=$per" setsid "$@" > "$logs/proc_$i.log" 2>&1 &
  pids+=($!)
done
stop_all() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || true; done; }  # each its own group
trap 'stop_all; exit 130' INT TERM
remaining=("${pids[@]}")
while [ ${#remaining[@]} -gt 0 ]; do
  running=()
  for p in "${remaining[@]}"; do
    if kill -0 "$p" 2>/dev/null; then running+=("$p"); elif ! wait "$p"; then
      echo "process $p failed; stopping the others (logs: $logs/proc_*.log)" >&2
      stop_all
      wait 2>/dev/null || true
      exit 1
    fi
  done
  remaining=("${running[@]+"${running[@]}"}")
  [ ${#remaining[@]} -eq 0 ] || sleep 0.5
done
