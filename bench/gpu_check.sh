#!/usr/bin/env bash
# Every check of the GPU path in one call, for a session lent a GPU machine (its device time is
# short: one prepared command, its logs kept). Runs with the machine's own python3 and torch.
#
#   bash bench/gpu_check.sh          # logs in $OUT (the device tool's folder) or /tmp/gpu_check
#
# 1. bench/bench_paper.py: the whole hinton-mnist paper profile, eager and with CUDA graphs
#    (first: the issue's figure);
# 2. tests/test_gpu.py: data and jitter on the device, the fused update, the sync count, CUDA
#    graphs against eager steps (SGD and Adam), a graphed hinton-mnist run;
# 3. bench/bench_concurrent.py: the teacher and the hard student at once against in turn,
#    eager and with CUDA graphs.
#
# Each step has its own time limit (a device call may run 600 s at most): a step that hangs is
# killed and the next one still runs, its log ending in "timed out".
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 KD_CACHE_DIR=/tmp/kd-gpu-cache
py=${PYTHON:-python3}
step() {  # step SECONDS LOG COMMAND...: run it within SECONDS, its output appended to LOG
  local limit=$1 log=$out/$2
  shift 2
  timeout -k 5 "$limit" "$@" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 124 ] && echo "timed out after ${limit} s: $*" | tee -a "$log"
  return 0
}
{ nvidia-smi -L; "$py" -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee "$out/device.log"
step 300 bench_paper.log "$py" bench/bench_paper.py --device cuda --graphs both
step 150 test_gpu.log "$py" -m pytest -q -p no:cacheprovider tests/test_gpu.py
step 60 bench_concurrent.log "$py" bench/bench_concurrent.py --device cuda --epochs 3
step 60 bench_concurrent.log "$py" bench/bench_concurrent.py --device cuda --epochs 3 --graphs
