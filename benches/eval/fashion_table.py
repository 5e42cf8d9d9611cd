"""The table of scripts/eval-fashion.sh: reads OUT/eval/*.h5 (tglml eval)
and OUT/classifier/run.h5, prints Markdown.

Usage: python benches/eval/fashion_table.py OUT REVISION > benches/eval/fashion-results.md
"""
import datetime
import os
import platform
import sys

import h5py

out, rev = sys.argv[1], sys.argv[2]
ev = os.path.join(out, "eval")


def attrs(f, g):
    return dict(f[g].attrs) if g in f else {}


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


with h5py.File(os.path.join(out, "classifier", "run.h5")) as f:
    acc = float(f["eval"].attrs["accuracy"])
    n_test = f["eval/predicted"].shape[0]

print("# `tglml eval` on Fashion-MNIST (`make eval-fashion`)")
print()
print(f"Revision {rev}, {datetime.date.today()}, {os.cpu_count()} CPUs ({cpu()}).")
print("Made by scripts/eval-fashion.sh; a rerun replaces this file. Features: the")
print("classifier of configs/fashion_mnist_classifier.toml (its 256-value last hidden")
print(f"layer; IS from its class probabilities). Its test accuracy: **{100 * acc:.2f}%** on")
print(f"the {n_test} test images.")
print()
rows = [
    ("real", "test images vs training images"),
    ("untrained", "untrained GAN (one step) vs test images"),
    ("fashion_mnist", "autoencoder (Langevin on a GMM of its codes) vs test"),
    ("gan_fashion_mnist", "GAN (prior) vs test"),
    ("diffusion_fashion_mnist", "diffusion model (DDIM, 100 steps) vs test"),
    ("latent_diffusion_fashion_mnist", "latent diffusion (DDIM) vs test"),
]
print("| set | rows (gen / ref) | FID | IS | precision | recall | density | coverage | W2 H0 | W2 H1 | cubical TV β0 / β1 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
fids = {}
for tag, what in rows:
    path = os.path.join(ev, tag + ".h5")
    if not os.path.exists(path):
        print(f"| {what} | (missing: {path}) | | | | | | | | | |")
        continue
    with h5py.File(path) as f:
        s, ft = attrs(f, "sets"), attrs(f, "features")
        h0, h1, cu = attrs(f, "topology/h0"), attrs(f, "topology/h1"), attrs(f, "cubical")
        fids[tag] = ft.get("fid")
        num = lambda d, k, fmt="{:.3f}": fmt.format(d[k]) if k in d else "–"
        print(
            f"| {what} | {int(s['samples_rows'])} / {int(s['reference_rows'])} | {num(ft, 'fid', '{:.4f}')} "
            f"| {num(ft, 'is_mean', '{:.2f}')} | {num(ft, 'precision')} | {num(ft, 'recall')} "
            f"| {num(ft, 'density')} | {num(ft, 'coverage')} | {num(h0, 'wasserstein', '{:.2f}')} "
            f"| {num(h1, 'wasserstein', '{:.2f}')} | {num(cu, 'tv_b0')} / {num(cu, 'tv_b1')} |"
        )
print()
if fids.get("real") is not None and fids.get("untrained"):
    ratio = fids["real"] / fids["untrained"]
    print(
        f"Real against real: FID {fids['real']:.4f} is {100 * ratio:.3f}% of the untrained generator's "
        f"{fids['untrained']:.2f} (the acceptance asks for below 2%)."
    )
    print()
emb = []
for tag, what in rows[2:]:
    path = os.path.join(ev, tag + ".h5")
    if os.path.exists(path):
        with h5py.File(path) as f:
            e = attrs(f, "embedding")
            if e:
                emb.append((what.split(" (")[0].split(" vs")[0], e))
if emb:
    print("Embedding measures of the models with an encoder (test rows against their codes):")
    print()
    print("| model | rows | trustworthiness | continuity | MRRE Z→X | MRRE X→Z | RMSE | stress | KL_0.1 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for what, e in emb:
        print(
            f"| {what} | {int(e['rows'])} | {e['trustworthiness']:.3f} | {e['continuity']:.3f} | {e['mrre_zx']:.3f} "
            f"| {e['mrre_xz']:.3f} | {e['rmse']:.3f} | {e['stress']:.3f} | {e['kl_0.1']:.4f} |"
        )
    print()
times = os.path.join(ev, "times.txt")
if os.path.exists(times):
    print("Times recorded by the script (a line per invocation, then its trainings, samplings and evaluations; reused runs are not timed again):")
    print()
    for line in open(times):
        print("- " + line.strip())
