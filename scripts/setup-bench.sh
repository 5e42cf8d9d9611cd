#!/usr/bin/env bash
# TGLML benchmark setup: the Python environment that `make bench-ph` runs
# Ripser and giotto-ph in (benches/ph/README.md) and that `make
# bench-diagrams` runs GUDHI, POT and persim in (benches/diagrams/README.md).
# Idempotent: a second run only checks.
#
# Usage: bash scripts/setup-bench.sh [--torch]
#
# --torch also installs PyTorch (the full torch==2.13.0 wheel with its CUDA
# libraries, about 4.7 GB: the CPU-only libtorch of scripts/setup.sh cannot
# be imported from Python) and torch-topological, the peers of `make
# bench-train` (benches/train/README.md), and pytorch-fid, which
# tests/fixtures/metrics/make_fixture.py uses. Never needed by `make test`.
#
# What it does: creates a virtual environment in a cache outside the
# repository (default ~/.cache/tglml/bench-venv; set TGLML_CACHE to move it)
# with numpy, scipy, h5py, ripser, giotto-ph, gudhi, pot, persim, prdc and
# scikit-learn (make topoae-peers), and
# checks that they import. A marker file, written last, records the package
# list it was made with: an interrupted install is redone, and an environment
# made by an older version of this script (fewer packages) gets the missing
# ones installed once.
#
# Environment: TGLML_CACHE (cache folder), PYTHON (the interpreter to make the
# environment from; default python3).
set -euo pipefail

PACKAGES=(numpy scipy h5py ripser giotto-ph gudhi pot persim prdc scikit-learn)
# Keep torch in step with TORCH_VERSION of scripts/setup.sh: the peer must
# run the same libtorch as TGLML. pytorch-fid (tests/fixtures/metrics) needs
# torchvision; pin the one built for that torch, or pip upgrades torch.
TORCH_PACKAGES=(torch==2.13.0 torch-topological torchvision==0.28.0 pytorch-fid)
WITH_TORCH=0
for arg in "$@"; do
    case "$arg" in
        --torch) WITH_TORCH=1 ;;
        *) echo "[setup-bench] error: unknown argument $arg (usage: setup-bench.sh [--torch])" >&2; exit 2 ;;
    esac
done
CACHE=${TGLML_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tglml}
VENV="$CACHE/bench-venv"
MARKER="$VENV/.complete"
WANT="${PACKAGES[*]}"

say() { echo "[setup-bench] $*"; }
die() { echo "[setup-bench] error: $*" >&2; exit 1; }

PY=${PYTHON:-python3}
if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]]; then
    say "benchmark environment: present in $VENV"
elif [[ -f "$MARKER" && -x "$VENV/bin/python" ]]; then
    # Made by an older version of this script: add what is missing (packages
    # already there are left as they are). The marker goes first so that an
    # interrupted upgrade is redone from scratch next time.
    say "upgrading the benchmark environment in $VENV (once): installing ${PACKAGES[*]}"
    rm -f "$MARKER"
    "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}"
else
    say "creating the benchmark environment in $VENV (once; reused afterwards)"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
        die "$PY cannot create virtual environments; install python3-venv or set PYTHON"
    fi
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    say "installing ${PACKAGES[*]}"
    "$VENV/bin/python" -m pip install -q "${PACKAGES[@]}"
fi
# Check every time: a broken environment is reported, not used.
versions=$("$VENV/bin/python" -c '
import h5py, numpy, scipy, ripser, gph, gudhi, ot, persim, prdc, sklearn
from importlib.metadata import version
persim_version = version("persim")  # persim has no __version__
prdc_version = version("prdc")  # nor has prdc
print(f"numpy {numpy.__version__}, scipy {scipy.__version__}, h5py {h5py.__version__}, "
      f"ripser {ripser.__version__}, giotto-ph {gph.__version__}, gudhi {gudhi.__version__}, "
      f"pot {ot.__version__}, persim {persim_version}, prdc {prdc_version}, "
      f"scikit-learn {sklearn.__version__}")') \
    || { rm -f "$MARKER"; die "the environment in $VENV does not import ${PACKAGES[*]}; run again to rebuild it"; }
if [[ ! -f "$MARKER" ]]; then
    echo "$WANT" > "$MARKER"
    say "installed: $versions"
else
    say "versions: $versions"
fi
say "python: $VENV/bin/python"
if [[ $WITH_TORCH == 1 ]]; then
    TORCH_MARKER="$VENV/.complete-torch"
    if [[ ! -f "$TORCH_MARKER" || "$(cat "$TORCH_MARKER")" != "${TORCH_PACKAGES[*]}" ]]; then
        say "installing ${TORCH_PACKAGES[*]} (once; the torch wheel is about 4.7 GB)"
        rm -f "$TORCH_MARKER"
        "$VENV/bin/python" -m pip install -q "${TORCH_PACKAGES[@]}"
    fi
    tversions=$("$VENV/bin/python" -c '
import torch, torch_topological, pytorch_fid.fid_score
from importlib.metadata import version
print("torch", torch.__version__ + ", torch-topological", version("torch-topological")
      + ", pytorch-fid", version("pytorch-fid"))') \
        || { rm -f "$TORCH_MARKER"; die "torch, torch-topological or pytorch-fid does not import in $VENV; run again to reinstall"; }
    echo "${TORCH_PACKAGES[*]}" > "$TORCH_MARKER"
    say "versions: $tversions"
fi
