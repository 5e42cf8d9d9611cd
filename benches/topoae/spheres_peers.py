#!/usr/bin/env python3
"""How far established embeddings get on Spheres' test split, on the
measures of issue 17: ℓ-Trust (scikit-learn's `trustworthiness`, mean over
k = 10..200 step 10, as Topological Autoencoders compute it), ℓ-Cont (the
same with the two spaces swapped) and KL_0.1 (their_latents.py's NumPy
KL_σ, independent of tglml).

The test splits are the runs' /eval/x (the points tglml scored; one per
train.seed). PCA, Isomap and t-SNE (perplexities 30 and 100; scikit-learn,
random_state 0) embed each split in 2-D; each run given is scored too, from
its /eval/z, beside tglml's own numbers (its run.h5 /eval and, where
`tglml eval` ran, eval.h5 /embedding), so the two implementations can be
compared.

Usage: python benches/topoae/spheres_peers.py RUN_DIR... > benches/topoae/spheres-peers.md
(make topoae-peers: the Spheres runs in output/topoae/)
"""
import datetime
import os
import platform
import sys

import h5py
import numpy as np
import sklearn
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, Isomap, trustworthiness

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from their_latents import densities, kl  # noqa: E402

KS = range(10, 201, 10)


def measures(x, e, px):
    trust = np.mean([trustworthiness(x, e, n_neighbors=k) for k in KS])
    cont = np.mean([trustworthiness(e, x, n_neighbors=k) for k in KS])
    return trust, cont, kl(px[1], densities(e)[1])


def main():
    runs = sys.argv[1:]
    if not runs:
        sys.exit(__doc__)
    # Each run's test split (they differ with train.seed); the peers embed
    # every split once, so each row is a mean over the same splits.
    splits, of_run = [], []
    for run in runs:
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            x = f["eval/x"][:]
        k = next((i for i, s in enumerate(splits) if np.array_equal(s, x)), None)
        if k is None:
            splits.append(x)
            k = len(splits) - 1
        of_run.append(k)
    peers = [("PCA", lambda x: PCA(2).fit_transform(x)),
             ("Isomap (5 neighbours)", lambda x: Isomap(n_components=2).fit_transform(x)),
             ("t-SNE (perplexity 30)", lambda x: TSNE(2, random_state=0).fit_transform(x)),
             ("t-SNE (perplexity 100)", lambda x: TSNE(2, perplexity=100, random_state=0).fit_transform(x))]
    densities_of = [densities(x) for x in splits]
    rows = []
    for name, embed in peers:
        per = [measures(x, embed(x), px) for x, px in zip(splits, densities_of)]
        rows.append((name, per, None))
    for run, k in zip(runs, of_run):
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            z = f["eval/z"][:]
            own = [None, float(f["eval"].attrs["kl_0.1"])]
        ev = os.path.join(run, "eval.h5")
        if os.path.exists(ev):
            with h5py.File(ev, "r") as f:
                own[0] = float(f["embedding"].attrs["trustworthiness"])
        rows.append((f"tglml {os.path.basename(os.path.normpath(run))} (split {k + 1})",
                     [measures(splits[k], z, densities_of[k])], own))
    fmt = lambda v: "–" if v is None else f"{v:.4f}"  # noqa: E731
    print("# Spheres: established 2-D embeddings on issue 17's measures\n")
    print(f"Made by `make topoae-peers` (benches/topoae/spheres_peers.py) on "
          f"{datetime.date.today().isoformat()}; scikit-learn {sklearn.__version__}, "
          f"NumPy {np.__version__}, Python {platform.python_version()}; {len(splits)} test "
          f"split(s) of {splits[0].shape[0]} points in R^{splits[0].shape[1]} (one per "
          "train.seed of the runs). Issue 17 asks for ℓ-Trust ≥ 0.70 and KL_0.1 ≤ 0.25; their "
          "TopoAE's published latents: 0.661 and 0.315. A peer's numbers are means over the "
          "splits (each split's ℓ-Trust in the fifth column); a run is scored on its own split, by this script and "
          "by tglml.\n")
    print("| embedding | ℓ-Trust | ℓ-Cont | KL_0.1 | ℓ-Trust per split | tglml's ℓ-Trust | tglml's KL_0.1 |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for name, per, own in rows:
        mean = [float(np.mean([p[i] for p in per])) for i in range(3)]
        print(f"| {name} | " + " | ".join(fmt(v) for v in mean)
              + " | " + " / ".join(f"{p[0]:.4f}" for p in per)
              + " | " + " | ".join(fmt(v) for v in (own or [None, None])) + " |")


if __name__ == "__main__":
    main()
