#!/usr/bin/env python3
"""The H0 scores of run files recomputed independently: H0 deaths of
/eval/x and /eval/z from scipy's minimum spanning tree (distances over their
maximum), W1 between the diagrams with GUDHI (L∞ ground metric, POT backend).

For each run prints Σ d_X and Σ d_Z (total H0 persistence of data and
latent), the estimate (Σ d_X + Σ d_Z)/2 that W1 takes when every bar is
cheaper to send to the diagonal than to match (d_Z ≪ d_X), then GUDHI's W1
at s = 1 beside the `w_h0_max` attribute, GUDHI's W1 at tglml's
`w_h0_scale` beside `w_h0`, and the smallest GUDHI W1 over a log grid of
scales within a factor 10^0.2 of it (81 by default: a check that tglml's
search found the minimum; `--grid 0` skips it, e.g. for 10,000 test points,
where each GUDHI call takes seconds).

W1 at scale s can never exceed (Σ d_X + s Σ d_Z)/2, the cost of sending every
bar to the diagonal; a GUDHI value above it is marked "!" (POT's network simplex stopped
at its iteration limit before the optimum, which happens with thousands of
points).

Usage: python3 benches/train/h0_sums.py [--grid N] RUN_DIR... (needs numpy,
scipy, h5py and gudhi with POT: the environment of scripts/setup-bench.sh)
"""
import argparse
import os

import h5py
import numpy as np
from gudhi.wasserstein import wasserstein_distance
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import pdist, squareform


def deaths(a):
    d = squareform(pdist(a))
    d /= d.max()
    m = minimum_spanning_tree(d).toarray()
    return np.sort(m[m > 0])


def w1(dx, dz, s):
    a = np.c_[np.zeros_like(dx), dx]
    b = np.c_[np.zeros_like(dz), s * dz]
    return wasserstein_distance(a, b, order=1, internal_p=np.inf)


def main():
    ap = argparse.ArgumentParser(description="Recompute the H0 scores of run files.")
    ap.add_argument("--grid", type=int, default=81, help="scales in the check grid (0: none)")
    ap.add_argument("runs", nargs="+", metavar="RUN_DIR")
    a = ap.parse_args()
    print(f"{'run':36s} {'sum d_X':>8s} {'sum d_Z':>8s} {'(X+Z)/2':>8s} | {'W s=1':>8s} {'w_h0_max':>8s} "
          f"| {'scale':>7s} {'W at it':>8s} {'w_h0':>8s} {'grid min':>8s}")
    for run in a.runs:
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            x, z = f["eval/x"][()], f["eval/z"][()]
            at = dict(f["eval"].attrs)
        dx, dz = deaths(x), deaths(z)
        s = at["w_h0_scale"]
        bound = (dx.sum() + dz.sum()) / 2

        def mark(scale):
            w = w1(dx, dz, scale)
            over = w > (dx.sum() + scale * dz.sum()) / 2 * (1 + 1e-12)
            return f"{w:8.3f}" + ("!" if over else " ")

        grid = min((w1(dx, dz, s * 10 ** e) for e in np.linspace(-0.2, 0.2, a.grid)), default=float("nan"))
        print(f"{run:36s} {dx.sum():8.2f} {dz.sum():8.2f} {bound:8.2f} | "
              f"{mark(1.0)} {at['w_h0_max']:8.3f} | {s:7.3f} {mark(s)} "
              f"{at['w_h0']:8.3f} {grid:8.3f}")


if __name__ == "__main__":
    main()
