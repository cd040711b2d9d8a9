#!/usr/bin/env bash
# The GPU checks in one command that ends within 560 s on one GPU: the tests with CUDA branches (tests/test_cuda.py), then
# the GPU study benchmarks/gpu.py (throughput, peak memory, 2-process DDP, a short Fashion-MNIST pretraining), which writes
# benchmarks/results/gpu.{json,md}. Usage, from anywhere in the repository (every argument goes to gpu.py, see --help;
# the study runs as `python -m benchmarks.gpu` from the repository root, so this tree's code runs, installed or not):
#
#   bash benchmarks/gpu_check.sh --fmnist /usr/share/datasets/fashion-mnist [--epochs 5] [--bs 256] [--overwrite]
#
# Without a CUDA device it stops at once with one line and exit code 1; the study's arguments are checked before the
# tests run, so that a mistake costs no GPU time. Exit code: the tests', else the study's.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
case "${1:-}" in -h|--help) exec "$PY" -m benchmarks.gpu --help ;; esac
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || {
  echo "gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine, or check the study with: $PY -m benchmarks.gpu --dry_run --fmnist PATH --out DIR" >&2; exit 1; }
"$PY" -m benchmarks.gpu "$@" --preflight || exit $?
end=$((SECONDS + 560))                          # one deadline for tests and study together
timeout 560 "$PY" -m pytest -q -rs tests/test_cuda.py; tests=$?
left=$((end - SECONDS))
# the study plans to finish 40 s early (its last unit may overrun); the timeout is the hard stop, its partial JSON stays
timeout "$left" "$PY" -m benchmarks.gpu --budget_s $((left > 100 ? left - 40 : 60)) "$@"; study=$?
echo "gpu_check: tests/test_cuda.py exit code $tests, benchmarks/gpu.py exit code $study"
exit $(( tests != 0 ? tests : study ))
