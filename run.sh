#!/usr/bin/env bash
# gmml_fast quick start for a fresh Debian/Ubuntu machine (Python >= 3.10).
#
#   bash run.sh main [options]   install what is needed, then pretrain a ViT with GMML on Fashion-MNIST
#                                (options go to `python -m gmml_fast.train pretrain`, see --help)
#   bash run.sh notebooks [NB..] run the notebooks (default: all of nbs/) and store their outputs in them
#                                (options go to tools/run_notebooks.py, e.g. --n_workers 1)
#   bash run.sh docs             build the documentation site into _docs/ (open _docs/index.html)
#   bash run.sh test             install what is needed (dev + docs tools, Chromium), then run the test suite:
#                                nbdev_test (every notebook), the docs build, pytest (tests/); the end-to-end and
#                                multi-process tests marked slow run with GMML_FAST_SLOW=1 (CI sets it)
#
# All are idempotent and set up the same environment: the virtual environment (.venv, or $GMML_FAST_VENV) with
# the package and the extras a command needs (dev: nbdev, pytest; docs: Sphinx, myst-nb, Selenium) is created once
# and reinstalled only when settings.ini or setup.py changed or an extra is missing; the Debian packages
# dataset-fashion-mnist (and, for docs/test, chromium + chromium-driver) are installed only when missing and root
# or passwordless sudo is available.
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

ensure_package() {  # $1: the extras to have, comma-separated (default: dev); reinstalled only when needed
  local want=${1:-dev} stamp="$VENV/.install-stamp" hash have="" have_hash="" all e
  hash=$(cat settings.ini setup.py | sha256sum | cut -c1-16)
  [ -f "$stamp" ] && read -r have have_hash < "$stamp" || true     # the stamp: "<extras> <hash>", e.g. "dev,docs 0123..."
  all=$(printf '%s\n' ${want//,/ } ${have//,/ } | sort -u | paste -sd, -)
  if [ "$have_hash" = "$hash" ]; then
    local missing=0
    for e in ${want//,/ }; do case ",$have," in *",$e,"*) ;; *) missing=1 ;; esac; done
    [ $missing = 0 ] && return 0
  fi
  say "installing gmml_fast with its extras [$all] into $VENV (first time: several minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e ".[$all]"
  echo "$all $hash" > "$stamp"
}

ensure_browser() {  # headless Chromium and its driver, for the docs' browser test (tests/test_docs.py)
  apt_install chromium chromium-driver || say "warning: chromium/chromium-driver are not installed; the browser test will be skipped"
}

ensure_data() {
  if [ -n "${GMML_FAST_FASHION_MNIST:-}" ] || [ -f "$FMNIST_FILE" ]; then return 0; fi
  apt_install dataset-fashion-mnist || say "warning: Fashion-MNIST is not installed; install the Debian package " \
    "dataset-fashion-mnist or set GMML_FAST_FASHION_MNIST to a folder holding its four IDX files"
}

build_docs() {  # the site from the notebooks' stored outputs (nothing is executed) into _docs/
  say "building the documentation site into _docs/"
  "$VENV/bin/python" docs/build.py -q
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  main)
    ensure_python; ensure_venv; ensure_package dev; ensure_data
    exec "$VENV/bin/python" -m gmml_fast.train pretrain "$@"
    ;;
  notebooks)
    ensure_python; ensure_venv; ensure_package dev; ensure_data
    exec "$VENV/bin/python" tools/run_notebooks.py "$@"
    ;;
  docs)
    ensure_python; ensure_venv; ensure_package dev,docs; ensure_browser
    build_docs
    say "open _docs/index.html (or: $VENV/bin/python -m http.server -d _docs)"
    ;;
  test)
    ensure_python; ensure_venv; ensure_package dev,docs; ensure_data; ensure_browser
    export MPLBACKEND=Agg PATH="$VENV/bin:$PATH"
    say "nbdev_test: running every notebook in nbs/"
    # one torch thread per notebook process: two processes with two threads each on two cores oversubscribe badly
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} nbdev_test --n_workers "${GMML_FAST_NB_WORKERS:-2}" "$@"
    build_docs
    say "pytest tests/"
    # the browser test (tests/test_docs.py) checks the site just built instead of building its own
    GMML_FAST_DOCS_BUILT=1 exec python -m pytest tests -q -p no:cacheprovider --durations=15
    ;;
  *)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 2 ;;
esac
