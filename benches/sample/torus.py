#!/usr/bin/env python3
"""Do the structure-aware samplers and paths stay on the data? (issue 15, acceptance 4)

For seeds 0..S-1, trains the VAE of configs/torus.toml (4,000 points of a
torus in R^3, R = 2, r = 1, into a 2-D latent space, with the H0 + H1
topological loss) with train.seed = seed, then on its checkpoint:

- `tglml interpolate` between the same 100 seeded random pairs of training
  rows (interpolate.seed = seed), 16 points per path, by four methods:
  linear, slerp, geodesic from the k-NN graph path of the training codes
  (the default, init = "graph") and geodesic from the straight line
  (init = "linear", to separate the optimisation from its start), and
  geodesic from the graph path with the density barrier at weight 1
  (interpolate.barrier = 1.0, the mixture below; one value, chosen before
  the run, not tuned);
- `tglml sample` of 1,000 points by the prior N(0, I), the unadjusted
  Langevin walk and MALA on the Gaussian mixture fitted to the codes
  (K by BIC over 1..10), the [sample] defaults otherwise.

Every decoded point is taken back to data units (the run standardised its
data; the files hold /scale/mean and /scale/std) and measured by:

- its distance to the nearest point of the data set (all 4,000 points:
  `tglml data synth --config configs/torus.toml`, the data the run trained
  on, generated again);
- its distance to the torus surface, known in closed form:
  | sqrt((sqrt(x^2 + y^2) - R)^2 + z^2) - r |.

The k-NN graph path that the geodesic starts from is measured too (its
points /paths/start_z decoded in NumPy): it tells whether the
optimisation moves the path towards or away from the data. Every decoded
length is that of the refined curve below, in data units.

For paths, the 14 interior points of each path (the ends are the decoded
codes of the two rows, the same for every method); and, since a path's
points are a sample of its curve that differs by method (a geodesic's are
evenly paced along the decoded curve, a straight line's along the latent
one, so a line can jump across a tear of the decoder between two of its
points), also the mean along the whole decoded curve: each latent segment
cut into 16 pieces, decoded here in NumPy from the checkpoint's weights
(checked against the file's /paths/x), and each piece's distance to the
nearest data point weighted by its decoded length (the integral of the
distance over arc length, divided by the length). For samples, also W2
between the H1 diagram of the 1,000 samples and that of 1,000 data points
(a seeded subset), and the number of H1 bars above the data's largest gap
(`tglml ph --maxdim 1`, `tglml diagram distance --p 2`; the threshold rule
of benches/train/samples.py). Nothing is tuned: the configs' and
[sample]/[interpolate] defaults.

Usage: python3 benches/sample/torus.py [--seeds 3] [--out output/sample-torus] [--md FILE]
                                       (make sample-torus)
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tomllib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "benches", "train"))
from samples import TGLML, count_above, gap_threshold, run, w2  # noqa: E402

CONFIG = os.path.join(ROOT, "configs", "torus.toml")
# (label, file tag, arguments)
METHODS = [
    ("linear", "linear", ["--method", "linear"]),
    ("slerp", "slerp", ["--method", "slerp"]),
    ("geodesic (graph start)", "geodesic", ["--method", "geodesic"]),
    ("geodesic (line start)", "geodesic-line",
     ["--method", "geodesic", "--set", 'interpolate.init="linear"']),
    ("geodesic + barrier (λ = 1)", "geodesic-barrier",
     ["--method", "geodesic", "--set", "interpolate.barrier=1.0"]),
]
# The geodesic's start, the k-NN graph path through the codes, measured
# from paths-geodesic.h5's /paths/start_z (not a method of its own).
GRAPH = ("graph path (the geodesic's start)", "geodesic", None)
SAMPLERS = ["prior", "langevin", "mala"]


def torus_radii():
    with open(os.path.join(ROOT, "configs", "default.toml"), "rb") as f:
        d = tomllib.load(f)["synth"]["torus"]
    with open(CONFIG, "rb") as f:
        d.update(tomllib.load(f).get("synth", {}).get("torus", {}))
    return d["major_radius"], d["minor_radius"]


def data_units(f, x):
    if "scale" in f:
        return x * f["scale/std"][()] + f["scale/mean"][()]
    return x


def nearest(points, data):
    """Distance of each point to its nearest data point (brute force, in blocks)."""
    out = []
    d2 = np.sum(data * data, axis=1)
    for i in range(0, len(points), 512):
        p = points[i:i + 512]
        dist = np.sum(p * p, axis=1)[:, None] - 2 * p @ data.T + d2[None, :]
        out.append(np.sqrt(np.maximum(dist.min(axis=1), 0)))
    return np.concatenate(out)


def to_surface(p, big, small):
    ring = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) - big
    return np.abs(np.sqrt(ring ** 2 + p[:, 2] ** 2) - small)


def numpy_decoder(checkpoint):
    """The MLP decoder of a VAE checkpoint (ReLU hidden layers), in NumPy."""
    with h5py.File(checkpoint, "r") as f:
        m = {k: f["model"][k][()].astype(np.float64) for k in f["model"]}
    layers = []
    i = 0
    while f"dec.fc{i}.weight" in m:
        layers.append((m[f"dec.fc{i}.weight"], m[f"dec.fc{i}.bias"]))
        i += 1

    def decode(z):
        h = z
        for w, b in layers:
            h = np.maximum(h @ w.T + b, 0)
        return h @ m["dec.out.weight"].T + m["dec.out.bias"]
    return decode


def along_curve(z, decode, units, data, refine=16):
    """Per path (z: paths x K x latent): the mean over the decoded curve's
    arc length of the distance to the nearest data point, and the length."""
    t = (np.arange(refine) + 0.5) / refine
    out = []
    for path in z:
        a, b = path[:-1], path[1:]
        mid = (a[:, None, :] * (1 - t)[None, :, None] + b[:, None, :] * t[None, :, None]).reshape(-1, z.shape[2])
        s = np.arange(refine) / refine
        edges = (a[:, None, :] * (1 - s)[None, :, None] + b[:, None, :] * s[None, :, None]).reshape(-1, z.shape[2])
        edges = np.vstack([edges, path[-1:]])
        xe = units(decode(edges))
        seg = np.linalg.norm(np.diff(xe, axis=0), axis=1)
        d = nearest(units(decode(mid)), data)
        out.append((float(np.sum(d * seg) / max(np.sum(seg), 1e-300)), float(np.sum(seg))))
    return out


def write_x(path, x):
    with h5py.File(path, "w") as f:
        f["x"] = x


def h1(path, out):
    run([TGLML, "ph", "--input", path, "--maxdim", "1", "--out", out])
    with h5py.File(out, "r") as f:
        return f["diagrams/dim1"][()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "output", "sample-torus"))
    ap.add_argument("--md", default=None)
    a = ap.parse_args()
    rev = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    os.makedirs(a.out, exist_ok=True)
    big, small = torus_radii()
    data_h5 = os.path.join(a.out, "data.h5")
    run([TGLML, "data", "synth", "--config", CONFIG, "--out", data_h5])
    with h5py.File(data_h5, "r") as f:
        data = f["x"][()]
    print(f"data: {len(data)} points, mean distance to the torus surface "
          f"{to_surface(data, big, small).mean():.2e}", flush=True)
    path_rows = ["| seed | method | mean distance to the nearest data point | "
                 "mean distance to the torus | the same along the curve (arc length) | "
                 "mean decoded length |",
                 "| ---: | --- | ---: | ---: | ---: | ---: |"]
    sample_rows = ["| seed | sampler | mean distance to the nearest data point | "
                   "mean distance to the torus | W2 H1 to the data | H1 bars > tau (data's) | "
                   "MALA acceptance |",
                   "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    res_paths = {m: [] for m, _, _ in METHODS + [GRAPH]}
    res_samples = {s: [] for s in SAMPLERS}
    for seed in range(a.seeds):
        run_dir = os.path.join(a.out, f"vae-seed{seed}")
        run([TGLML, "train", "--config", CONFIG, "--set", f"train.seed={seed}",
             "--overwrite", "--out", run_dir])
        decode = numpy_decoder(os.path.join(run_dir, "checkpoint.h5"))
        for name, tag, extra in METHODS + [GRAPH]:
            out = os.path.join(run_dir, f"paths-{tag}.h5")
            if extra is not None:
                run([TGLML, "interpolate", "--checkpoint", run_dir, *extra, "--points", "16",
                     "--set", "interpolate.pairs=100", "--set", f"interpolate.seed={seed}",
                     "--out", out])
            with h5py.File(out, "r") as f:
                units = lambda v, f=f: data_units(f, v)  # noqa: E731
                if extra is None:  # the graph path: the geodesic's start
                    z = f["paths/start_z"][()]
                    x = units(decode(z.reshape(-1, z.shape[2]))).reshape(*z.shape[:2], 3)
                else:
                    x = data_units(f, f["paths/x"][()])
                    z = f["paths/z"][()]
                pairs = (f["paths/from"][()], f["paths/to"][()])
                check = np.max(np.abs(units(decode(z.reshape(-1, z.shape[2]))) - x.reshape(-1, 3)))
                assert check < 1e-3, f"NumPy's decoder differs from /paths/x by {check}"
                curve = along_curve(z, decode, units, data)
                length = float(np.mean([c[1] for c in curve]))
            inner = x[:, 1:-1, :].reshape(-1, 3)
            row = dict(near=float(nearest(inner, data).mean()),
                       surf=float(to_surface(inner, big, small).mean()),
                       curve=float(np.mean([c[0] for c in curve])), length=length)
            res_paths[name].append(row)
            if name == METHODS[0][0]:
                first_pairs = pairs
            else:
                assert all(np.array_equal(p, q) for p, q in zip(pairs, first_pairs)), \
                    "the methods must join the same pairs"
            line = (f"| {seed} | {name} | {row['near']:.4f} | {row['surf']:.4f} | "
                    f"{row['curve']:.4f} | {row['length']:.4f} |")
            path_rows.append(line)
            print(line, flush=True)
        rng = np.random.default_rng(seed)
        ref = os.path.join(run_dir, "data-1000.h5")
        write_x(ref, data[rng.choice(len(data), 1000, replace=False)])
        h1_ref = h1(ref, os.path.join(run_dir, "dgm-data.h5"))
        tau = gap_threshold(h1_ref)
        for sampler in SAMPLERS:
            out = os.path.join(run_dir, f"samples-{sampler}.h5")
            run([TGLML, "sample", "--checkpoint", run_dir, "--sampler", sampler, "--n", "1000",
                 "--set", f"sample.seed={seed}", "--out", out])
            with h5py.File(out, "r") as f:
                x = data_units(f, f["samples/x"][()])
                acc = f["chains"].attrs["acceptance_rate"] if "chains" in f else None
            xs = os.path.join(run_dir, f"samples-{sampler}-units.h5")
            write_x(xs, x)
            dgm = os.path.join(run_dir, f"dgm-{sampler}.h5")
            h1_s = h1(xs, dgm)
            row = dict(near=float(nearest(x, data).mean()),
                       surf=float(to_surface(x, big, small).mean()),
                       w=w2(dgm, os.path.join(run_dir, "dgm-data.h5"), 1),
                       bars=count_above(h1_s, tau), data_bars=count_above(h1_ref, tau))
            res_samples[sampler].append(row)
            line = (f"| {seed} | {sampler} | {row['near']:.4f} | {row['surf']:.4f} | "
                    f"{row['w']:.4f} | {row['bars']} ({row['data_bars']}) | "
                    f"{'' if acc is None else f'{acc:.3f}'} |")
            sample_rows.append(line)
            print(line, flush=True)
    mean = statistics.mean
    path_summary = ["| method | mean distance to the nearest data point | mean distance to the torus | "
                    "along the curve | mean decoded length | seeds where it is closest to the data "
                    "(points; curve) |",
                    "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, rows in res_paths.items():
        def wins(key):
            return sum(all(rows[i][key] <= res_paths[o][i][key] for o in res_paths)
                       for i in range(len(rows)))
        path_summary.append(f"| {name} | {mean(r['near'] for r in rows):.4f} | "
                            f"{mean(r['surf'] for r in rows):.4f} | "
                            f"{mean(r['curve'] for r in rows):.4f} | "
                            f"{mean(r['length'] for r in rows):.4f} | "
                            f"{wins('near')}; {wins('curve')} of {len(rows)} |")
    sample_summary = ["| sampler | mean distance to the nearest data point | mean distance to the torus | "
                      "mean W2 H1 | seeds with the data's H1 count |",
                      "| --- | ---: | ---: | ---: | ---: |"]
    for name, rows in res_samples.items():
        hits = sum(r["bars"] == r["data_bars"] for r in rows)
        sample_summary.append(f"| {name} | {mean(r['near'] for r in rows):.4f} | "
                              f"{mean(r['surf'] for r in rows):.4f} | {mean(r['w'] for r in rows):.4f} | "
                              f"{hits} of {len(rows)} |")
    text = ("## Paths (100 pairs per seed, 14 interior points each)\n\n" + "\n".join(path_rows)
            + "\n\n" + "\n".join(path_summary)
            + "\n\n## Samples (1,000 per sampler and seed)\n\n" + "\n".join(sample_rows)
            + "\n\n" + "\n".join(sample_summary) + "\n")
    print()
    print(text)
    if a.md:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                    if l.startswith("model name")), platform.processor())
        with open(a.md, "w") as f:
            f.write("# Structure-aware samplers and paths on a trained torus VAE (`make sample-torus`)\n\n"
                    f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}\n"
                    f"- revision: {rev}; machine: {cpu}, {os.cpu_count()} CPUs\n"
                    f"- config: configs/torus.toml; seeds: {a.seeds}\n"
                    "- what it measures: the docstring of benches/sample/torus.py\n\n" + text)


if __name__ == "__main__":
    main()
