#!/usr/bin/env python3
"""Why W(H0) can favour a collapsed latent: the H0 deaths of /eval/x and
/eval/z of run files (distances over their maximum, as `w_h0` uses them),
from scipy's minimum spanning tree, an independent computation.

For each run: Σ d_X and Σ d_Z (total H0 persistence of data and latent),
the largest d_Z, and the W(H0) estimate (Σ d_X + Σ d_Z)/2 that holds when
every bar is cheaper to send to the diagonal than to match (d_Z ≪ d_X),
beside the `w_h0` attribute tglml wrote.

Usage: python3 benches/train/h0_sums.py RUN_DIR... (needs numpy, scipy, h5py:
the environment of scripts/setup-bench.sh)
"""
import os
import sys

import h5py
import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform


def deaths(a):
    d = squareform(pdist(a))
    d /= d.max()
    m = minimum_spanning_tree(d).toarray()
    return np.sort(m[m > 0])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(f"{'run':40s} {'sum d_X':>8s} {'sum d_Z':>8s} {'max d_Z':>8s} {'(X+Z)/2':>8s} {'w_h0':>8s}")
    for run in sys.argv[1:]:
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            x, z = f["eval/x"][()], f["eval/z"][()]
            w = f["eval"].attrs["w_h0"]
        dx, dz = deaths(x), deaths(z)
        print(f"{run:40s} {dx.sum():8.2f} {dz.sum():8.2f} {dz.max():8.3f} {(dx.sum() + dz.sum()) / 2:8.2f} {w:8.2f}")


if __name__ == "__main__":
    main()
