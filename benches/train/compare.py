#!/usr/bin/env python3
"""Topology preserved? TGLML against the same model without the
topological loss (gamma = 0), over several seeds (issue 6, item 3).

For a config (default configs/spheres.toml) trains both variants for seeds
0..S-1 and reads the scores that `tglml train` writes as attributes of
/eval in run.h5: KL_0.01, KL_0.1, KL_1 (the density measure of Moor et al.
2020, on the test split), W(H0) (W1 between the H0 diagrams of the test
points and of their latent means, the data's distances divided by their
maximum, the latent diagram at the scale that fits best: a latent space has
no natural unit) and W(H0) at s = 1 (both spaces divided by their maximum;
docs/hdf5.md, "Reading w_h0").
Prints per-seed scores and means, and writes the latent scatter data
(/eval/z, /eval/y) path of every run.

Usage: python3 benches/train/compare.py [--config configs/spheres.toml] [--seeds 3] [--out output/compare]
                                       [--set KEY=VALUE ...]  (passed to both variants)
(make compare-topology)
"""
import argparse
import os
import statistics
import subprocess
import sys

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TGLML = os.path.join(ROOT, "target", "release", "tglml")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "spheres.toml"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "compare"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for both variants (repeatable)")
    a = ap.parse_args()
    rows = {"tglml": [], "plain": []}
    for seed in range(a.seeds):
        for name, extra in (("tglml", []), ("plain", ["--set", "train.topo.gamma=0"])):
            out = os.path.join(a.out, f"{name}-seed{seed}")
            sets = [x for kv in a.set for x in ("--set", kv)]
            cmd = [TGLML, "train", "--config", a.config, "--set", f"train.seed={seed}",
                   *sets, *extra, "--overwrite", "--out", out]
            p = subprocess.run(cmd, capture_output=True, text=True,
                               env=dict(os.environ, TGLML_PROGRESS="off"))
            if p.returncode != 0:
                sys.exit(p.stderr)
            with h5py.File(os.path.join(out, "run.h5"), "r") as f:
                at = dict(f["eval"].attrs)
            rows[name].append(at)
            print(f"seed {seed} {name:6s} KL_0.01 {at['kl_0.01']:.4f}  KL_0.1 {at['kl_0.1']:.4f}  "
                  f"KL_1 {at['kl_1']:.4f}  W(H0) {at['w_h0']:.4f}  W(H0) at s=1 {at['w_h0_max']:.4f}"
                  f"   ({out}/run.h5)", flush=True)
    print(f"\nmeans over {a.seeds} seeds ({os.path.relpath(a.config, ROOT)}):")
    for name in rows:
        m = {k: statistics.mean(r[k] for r in rows[name])
             for k in ("kl_0.01", "kl_0.1", "kl_1", "w_h0", "w_h0_max")}
        print(f"  {name:6s} KL_0.01 {m['kl_0.01']:.4f}  KL_0.1 {m['kl_0.1']:.4f}  KL_1 {m['kl_1']:.4f}  "
              f"W(H0) {m['w_h0']:.4f}  W(H0) at s=1 {m['w_h0_max']:.4f}")


if __name__ == "__main__":
    main()
