#!/usr/bin/env bash
# Run one xlra command as N JAX processes on this machine (CPU, gloo collectives), e.g.
#   launch/local_multiprocess.sh 2 xlra sft --config=configs/sft.py:tiny --workdir=runs/mp
# Each process gets XLRA_COORDINATOR / XLRA_NUM_PROCESSES / XLRA_PROCESS_ID (read by
# xlra.parallel.distributed) and DEVICES_PER_PROCESS fake CPU devices. Logs go to WORKDIR-less files
# launch_logs/proc_<i>.log; the script fails if any process fails.
set -euo pipefail
n=${1:?number of processes}; shift
port=${XLRA_PORT:-$((20000 + RANDOM % 20000))}
per=${DEVICES_PER_PROCESS:-1}
mkdir -p launch_logs
pids=()
for ((i = 0; i < n; i++)); do
  XLRA_COORDINATOR=127.0.0.1:$port XLRA_NUM_PROCESSES=$n XLRA_PROCESS_ID=$i JAX_PLATFORMS=cpu \
    XLA_FLAGS="--xla_force_host_platform_device_count=$per" "$@" > "launch_logs/proc_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "process $i failed; see launch_logs/proc_$i.log" >&2; status=1; }
done
exit $status
