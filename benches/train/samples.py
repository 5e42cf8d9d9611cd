#!/usr/bin/env python3
"""Do generated samples keep the data's topology? (issue 14, acceptance 2)

For each config (default: the GAN and the diffusion model on a noisy circle
and on a torus in R^3, configs/{gan,diffusion}_{circle,torus}.toml, all with
10,000 points so that the held-out split has 1,000) and seeds 0..S-1, trains the model twice, with
the topological loss as configured and with gamma = 0 (the baseline, the
same budget otherwise), then compares the 1,000 points the model generates
after training (run.h5 /samples) with the 1,000 held-out real points
(/eval/x; both in the standardised units the model trained in):

- W2 between their H0 diagrams and between their H1 diagrams, by
  `tglml ph --maxdim 1` on each set (all points, no landmarks) and
  `tglml diagram distance --p 2 --dim k` (ground metric L-infinity, GUDHI's
  convention);
- the number of H1 bars whose persistence exceeds a threshold tau, against
  the data's own count (1 for a circle, 2 for a torus). tau comes from the
  held-out data alone, by the largest gap: with the data's H1 persistences
  p1 >= p2 >= ..., k maximises p_k / p_(k+1) over k = 1..10 and tau is
  their geometric mean sqrt(p_k p_(k+1)); the data then have k bars above
  tau, and the table prints k, so the rule can be judged. (A fraction of
  the largest persistence, 0.25 x p1 until 2026-12-01, puts 18-20 of the
  torus data's own bars above it: its noise bars are about half of p1.)

Prints one row per run and a summary per config: mean W2 per variant, and
in how many seeds each variant's H1 count equals the data's. Writes the
table as Markdown to --md when given. Nothing is tuned to pass: the
settings are the configs' own.

Usage: python3 benches/train/samples.py [--configs A.toml,B.toml] [--seeds 3] [--out output/samples]
                                        [--md FILE] [--set KEY=VALUE ...]   (make compare-samples)
"""
import argparse
import os
import statistics
import subprocess
import sys

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TGLML=path overrides the binary (e.g. a copy, so that a rebuild during a
# long comparison does not change it halfway).
TGLML = os.environ.get("TGLML", os.path.join(ROOT, "target", "release", "tglml"))
ENV = dict(os.environ, TGLML_PROGRESS="off")


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)}\n{p.stderr}")
    return p.stdout


def diagrams(run_h5, dataset, out):
    run([TGLML, "ph", "--input", run_h5, "--dataset", dataset, "--maxdim", "1", "--out", out])
    with h5py.File(out, "r") as f:
        return f["diagrams/dim1"][()]


def w2(a, b, dim):
    return float(run([TGLML, "diagram", "distance", a, b, "--p", "2", "--dim", str(dim)]).strip())


def gap_threshold(h1):
    """tau between the data's k-th and (k+1)-th largest H1 persistence,
    where their ratio is largest (k <= 10)."""
    pers = np.sort((h1[:, 1] - h1[:, 0])[np.isfinite(h1[:, 1])])[::-1]
    if len(pers) == 0:
        return 0.0
    if len(pers) == 1:
        return pers[0] / 2
    top = pers[:11]
    ratios = top[:-1] / np.maximum(top[1:], 1e-300)
    k = int(np.argmax(ratios))
    return float(np.sqrt(top[k] * top[k + 1]))


def count_above(h1, tau):
    pers = h1[:, 1] - h1[:, 0]
    return int(np.sum(np.isfinite(pers) & (pers > tau)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default=",".join(
        os.path.join(ROOT, "configs", c) for c in (
            "gan_circle.toml", "gan_torus.toml", "diffusion_circle.toml", "diffusion_torus.toml")))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "samples"))
    ap.add_argument("--md", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    a.revision = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip()
    lines = ["| config | seed | variant | W2 H0 | W2 H1 | H1 bars > tau | data's H1 bars > tau | tau |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    summary = []
    for config in a.configs.split(","):
        name = os.path.splitext(os.path.basename(config))[0]
        res = {"topological": [], "gamma = 0": []}
        for seed in range(a.seeds):
            for variant, extra in (("topological", []), ("gamma = 0", ["--set", "train.topo.gamma=0"])):
                out = os.path.join(a.out, name, f"{'topo' if not extra else 'plain'}-seed{seed}")
                sets = [x for kv in a.set for x in ("--set", kv)]
                run([TGLML, "train", "--config", config, "--set", f"train.seed={seed}",
                     *sets, *extra, "--overwrite", "--out", out])
                h5 = os.path.join(out, "run.h5")
                gen, real = os.path.join(out, "dgm-samples.h5"), os.path.join(out, "dgm-heldout.h5")
                h1_gen, h1_real = diagrams(h5, "samples", gen), diagrams(h5, "eval/x", real)
                tau = gap_threshold(h1_real)
                row = dict(w0=w2(gen, real, 0), w1=w2(gen, real, 1), tau=tau,
                           bars=count_above(h1_gen, tau), data_bars=count_above(h1_real, tau))
                res[variant].append(row)
                line = (f"| {name} | {seed} | {variant} | {row['w0']:.4f} | {row['w1']:.4f} | "
                        f"{row['bars']} | {row['data_bars']} | {tau:.3f} |")
                lines.append(line)
                print(line, flush=True)
        for variant, rows in res.items():
            hits = sum(r["bars"] == r["data_bars"] for r in rows)
            summary.append(f"| {name} | {variant} | {statistics.mean(r['w0'] for r in rows):.4f} | "
                           f"{statistics.mean(r['w1'] for r in rows):.4f} | {hits} of {len(rows)} |")
    table = "\n".join(lines)
    summ = "\n".join(["| config | variant | mean W2 H0 | mean W2 H1 | seeds with the data's H1 count |",
                      "| --- | --- | ---: | ---: | ---: |", *summary])
    print()
    print(summ)
    if a.md:
        with open(a.md, "w") as f:
            f.write(header(a) + table + "\n\n" + summ + "\n")


def header(a):
    """Date, revision, machine and settings of this run, for the results file."""
    import datetime
    import platform
    rev = a.revision  # at the start, the binary's
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    return (f"# Do generated samples keep the data's topology? (`make compare-samples`)\n\n"
            f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}\n"
            f"- revision: {rev}; machine: {cpu}, {os.cpu_count()} CPUs\n"
            f"- configs: {a.configs}; seeds: {a.seeds}; extra settings: {a.set or 'none'}\n"
            f"- what it measures: the docstring of benches/train/samples.py\n\n")


if __name__ == "__main__":
    main()
