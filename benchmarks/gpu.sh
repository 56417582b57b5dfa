#!/usr/bin/env bash
# GPU benchmark: the official fastMRI VarNet (12 cascades) on 15-coil 640x368 slices, ours vs
# fastMRI's loop in the same run, our batch sizes against the memory model, and the output
# difference against the CPU. Under 5 minutes on an NVIDIA GPU. Writes benchmarks/results/gpu.md
# and gpu.json (or the folder given as the first argument).
#
#   bash benchmarks/gpu.sh [OUT_DIR]
#
# Without an NVIDIA GPU it says so and exits with status 2, measuring nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py="$(command -v python3)"; fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "benchmarks/gpu.sh: no NVIDIA GPU found (nvidia-smi missing or sees no device): nothing measured"
  exit 2
fi
nvidia-smi -L
# 290 s: the whole script stays under 5 minutes even if something hangs
exec timeout 290 "$py" benchmarks/gpu_bench.py --out "$out"
