#!/usr/bin/env python3
"""Cost of the topological loss (issue 6, item 4): median step time of
`tglml train` with and without the loss, side by side in one command.

Setting: the Spheres data (10,000 points in R^101), MLP 101-256-128-16,
batch 256, latent dimension 16, the H0 Wasserstein, H0 signature and
H0 + H1 Wasserstein losses (gamma 1 from step 0), one thread, CPU; R runs of S steps each, the first 10 steps of each run
dropped; medians of the per-step times that `tglml train` logs in
/train/step_seconds of run.h5. Goal of the issue: at most 25% overhead.

A third variant computes the same loss on L maxmin landmarks of each batch
(train.topo.landmarks, default L = 64), the cheaper approximation.

Usage: python3 benches/train/run.py [--steps S] [--repeat R] [--landmarks L]  (make bench-train)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TGLML = os.path.join(ROOT, "target", "release", "tglml")


def run(gamma, steps, out, extra=()):
    args = [TGLML, "train", "--steps", str(steps), "--threads", "1",
            "--set", 'synth.kind="spheres"', "--set", "train.batch_size=256",
            "--set", "train.latent_dim=16", "--set", "train.hidden=[256, 128]",
            "--set", "train.topo.dims=[0, 1]", "--set", "train.topo.weights=[1.0, 1.0]",
            "--set", f"train.topo.gamma={gamma}", "--set", "train.topo.ramp_steps=0",
            "--set", "train.checkpoint_every=0", *extra, "--overwrite", "--out", out]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, TGLML_PROGRESS="off"))
    if p.returncode != 0:
        sys.exit(p.stderr)
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        return list(f["train/step_seconds"][10:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--landmarks", type=int, default=64,
                    help="also time the loss on this many landmarks of each batch")
    a = ap.parse_args()
    h0 = ["--set", "train.topo.dims=[0]", "--set", "train.topo.weights=[1.0]"]
    variants = [
        ("without the topological loss", 0, []),
        ("H0 Wasserstein loss", 1, h0),
        ("H0 signature loss", 1, h0 + ["--set", 'train.topo.kind="signature"']),
        ("H0 + H1 Wasserstein loss", 1, []),
        (f"H0 + H1 Wasserstein on {a.landmarks} maxmin landmarks of each batch", 1,
         ["--set", f"train.topo.landmarks={a.landmarks}"]),
    ]
    times = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.repeat):  # interleaved, so that drift hits every variant
            for k, (name, gamma, extra) in enumerate(variants):
                times[name] += run(gamma, a.steps, os.path.join(d, f"v{k}r{r}"), extra)
    base = statistics.median(times[variants[0][0]])
    print("| variant | median step ms | overhead |")
    print("| --- | ---: | ---: |")
    for name, _, _ in variants:
        m = statistics.median(times[name])
        over = "–" if name == variants[0][0] else f"{100 * (m / base - 1):+.0f}%"
        print(f"| {name} | {m * 1e3:.2f} | {over} |")
    print(f"({len(times[variants[0][0]])} steps per variant; goal of issue 13: the H0 loss at most +25%)")


if __name__ == "__main__":
    main()
