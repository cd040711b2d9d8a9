#!/usr/bin/env bash
# GPU checks in one short run (≤ 8 min on one GPU): the tests with CUDA branches, one GMML and one MAE pretraining epoch
# in float32, bf16 and bf16 compiled, and the corruption at 224 px against a per-image loop. Writes
# benchmarks/results/gpu.{json,md}. Usage, from anywhere in the repository, in the environment of `bash run.sh test`:
#
#   bash benchmarks/gpu_check.sh [--arch tiny_32] [--bs 256]
#
# Without a CUDA device it stops at once with one line and exit code 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || {
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a machine with a GPU" >&2; exit 1; }
exec timeout 480 "$PY" benchmarks/bench_gpu.py "$@"
