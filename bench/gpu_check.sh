#!/usr/bin/env bash
# Every check of the GPU path in one call, for a session lent a GPU machine (its device time is
# short: one prepared command, its logs kept). Runs with the machine's own python3 and torch.
#
#   bash bench/gpu_check.sh          # logs in $OUT (the device tool's folder) or /tmp/gpu_check
#
# 1. tests/test_gpu.py: data and jitter on the device, the fused update, the sync count, CUDA
#    graphs against eager steps (SGD and Adam), a graphed hinton-mnist run;
# 2. bench/bench_paper.py: the whole hinton-mnist paper profile, eager and with CUDA graphs;
# 3. bench/bench_concurrent.py: the teacher and the hard student at once against in turn,
#    eager and with CUDA graphs.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 KD_CACHE_DIR=/tmp/kd-gpu-cache
py=${PYTHON:-python3}
{ nvidia-smi -L; "$py" -c 'import torch; print("torch", torch.__version__)'; } 2>&1 | tee "$out/device.log"
"$py" -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tee "$out/test_gpu.log"
"$py" bench/bench_paper.py --device cuda --graphs both 2>&1 | tee "$out/bench_paper.log"
"$py" bench/bench_concurrent.py --device cuda --epochs 3 2>&1 | tee "$out/bench_concurrent.log"
"$py" bench/bench_concurrent.py --device cuda --epochs 3 --graphs 2>&1 | tee -a "$out/bench_concurrent.log"
