#!/usr/bin/env python3
"""Scores Topological Autoencoders' published Fashion-MNIST test latents
(Moor et al. 2020) with tglml's KL_σ (crates/torch/src/eval.rs: distances
divided by their largest, f(i) = Σ_j exp(−D̃[i, j]² / σ), p = f / Σ f,
KL_σ = Σ_i p_X(i) ln(p_X(i) / p_Z(i))), independently of tglml: NumPy, in
blocks of rows (a few hundred MB at most).

Also prints KL_σ(p_X ‖ uniform): the score of a latent space whose density
estimate is flat, e.g. when a few far outliers set the latent unit.

Usage: python benches/topoae/their_latents.py THEIR_REPO [T10K_IMAGES]
  THEIR_REPO   a clone of github.com/BorgwardtLab/topological-autoencoders
               (its data/visualizations/FashionMNIST/*/latents.csv: one row
               per test image, in test-set order, columns 0, 1, labels)
  T10K_IMAGES  default /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
"""
import gzip
import os
import sys

import numpy as np

SIGMAS = (0.01, 0.1, 1.0)


def sq_distance_blocks(a, block=500):
    norms = (a * a).sum(1)
    for s in range(0, len(a), block):
        d = np.maximum(norms[s:s + block, None] + norms[None, :] - 2 * a[s:s + block] @ a.T, 0)
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0
        yield s, d


def densities(a):
    largest = max(d.max() for _, d in sq_distance_blocks(a))
    f = np.zeros((len(SIGMAS), len(a)))
    for s, d in sq_distance_blocks(a):
        for k, sigma in enumerate(SIGMAS):
            f[k, s:s + d.shape[0]] = np.exp(-(d / largest) / sigma).sum(1)
    return f / f.sum(1, keepdims=True)


def kl(p, q):
    return float((p * (np.log(p) - np.log(q))).sum())


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    repo = sys.argv[1]
    images = sys.argv[2] if len(sys.argv) > 2 else \
        "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    with gzip.open(images) as fh:
        x = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float64)
    x = x / 255 * 2 - 1  # their Normalize((0.5,), (0.5,)); KL_σ does not depend on it
    px = densities(x)
    flat = np.full(len(x), 1 / len(x))
    print("| latents | KL_0.01 | KL_0.1 | KL_1 |\n| --- | ---: | ---: | ---: |")
    print("| a flat density (uniform) | " + " | ".join(f"{kl(p, flat):.4f}" for p in px) + " |")
    for model in ("Vanilla", "TopoAE"):
        path = os.path.join(repo, "data", "visualizations", "FashionMNIST", model, "latents.csv")
        z = np.loadtxt(path, delimiter=",", skiprows=1)[:, :2]
        if len(z) != len(x):
            sys.exit(f"{path}: {len(z)} rows, the test set has {len(x)}")
        pz = densities(z)
        print(f"| their {model} | " + " | ".join(f"{kl(a, b):.4f}" for a, b in zip(px, pz)) + " |")


if __name__ == "__main__":
    main()
