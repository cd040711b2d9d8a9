#!/usr/bin/env bash
# gmml_fast quick start for a fresh Debian/Ubuntu machine (Python >= 3.10).
#
#   bash run.sh main [options]   install what is needed, then pretrain a ViT with GMML on Fashion-MNIST
#                                (options go to `python -m gmml_fast.train pretrain`, see --help)
#   bash run.sh test             install what is needed (with the dev tools), then run the whole
#                                test suite: nbdev_test (every notebook) and pytest (tests/)
#
# Both are idempotent and set up the same environment: the virtual environment (.venv, or
# $GMML_FAST_VENV) with the package and its development tools (nbdev_export, nbdev_test, pytest) is
# created once and reinstalled only when settings.ini or setup.py changed, and the Debian package
# dataset-fashion-mnist is installed only when missing and root or passwordless sudo is available.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=${GMML_FAST_VENV:-.venv}
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
PYTHON=${PYTHON:-python3}
FMNIST_FILE=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

say() { echo "[run.sh] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1; fi
}

apt_install() {  # install Debian packages that are missing; fails if that is impossible here
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { say "no apt-get: cannot install ${missing[*]}"; return 1; }
  as_root true || { say "not root and no passwordless sudo: cannot install ${missing[*]}"; return 1; }
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  }
}

ensure_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 python3-venv python3-pip
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
    say "Python >= 3.10 is required, found $("$PYTHON" --version 2>&1)"; exit 1; }
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV" 2>/dev/null || {
      rm -rf "$VENV"
      apt_install python3-venv "python3.$("$PYTHON" -c 'import sys; print(sys.version_info[1])')-venv" || true
      "$PYTHON" -m venv "$VENV"
    }
  fi
}

ensure_package() {  # the package with its dev tools, reinstalled only when the packaging files changed
  local want stamp="$VENV/.install-stamp"
  want="dev $(cat settings.ini setup.py | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  say "installing gmml_fast with its dev tools into $VENV (first time: several minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
}

ensure_data() {
  if [ -n "${GMML_FAST_FASHION_MNIST:-}" ] || [ -f "$FMNIST_FILE" ]; then return 0; fi
  apt_install dataset-fashion-mnist || say "warning: Fashion-MNIST is not installed; install the Debian package " \
    "dataset-fashion-mnist or set GMML_FAST_FASHION_MNIST to a folder holding its four IDX files"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  main)
    ensure_python; ensure_venv; ensure_package; ensure_data
    exec "$VENV/bin/python" -m gmml_fast.train pretrain "$@"
    ;;
  test)
    ensure_python; ensure_venv; ensure_package; ensure_data
    export MPLBACKEND=Agg PATH="$VENV/bin:$PATH"
    say "nbdev_test: running every notebook in nbs/"
    # one torch thread per notebook process: two processes with two threads each on two cores oversubscribe badly
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nbdev_test --n_workers "${GMML_FAST_NB_WORKERS:-2}" "$@"
    say "pytest tests/"
    exec python -m pytest tests -q -p no:cacheprovider
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
