#!/usr/bin/env python3
"""Cost of the topological loss (issue 6, item 4): median step time of
`tglml train` with and without the loss, side by side in one command.

Setting: the Spheres data (10,000 points in R^101), MLP 101-256-128-16,
batch 256, latent dimension 16, the H0 Wasserstein, H0 signature and
H0 + H1 Wasserstein losses (gamma 1 from step 0), one thread, CPU; R runs of S steps each, the first 10 steps of each run
dropped; medians of the per-step times that `tglml train` logs in
/train/step_seconds of run.h5. Goal of the issue: at most 25% overhead.

A further variant computes the H0 + H1 loss on L maxmin landmarks of each
batch (train.topo.landmarks, default L = 64), the cheaper approximation.

The peer (issue 13, goal 4), when torch and torch-topological import (the
benchmark environment of `bash scripts/setup-bench.sh --torch`): the same
VAE in PyTorch eager (benches/train/step.py's model), its loss plus
torch-topological's on the batch and its latent means, both spaces'
distances divided by their maximum as TGLML's normalize = "max":
VietorisRipsComplex (giotto-ph) on the distance matrices, then
WassersteinDistance(p=2, q=2) (POT's exact transport; its ground metric
between points is L-infinity, ours L2: the same work, not the same
value) for the Wasserstein variants, SignatureLoss(p=2, dimensions=0) for
the signature one. Timed step by step in its own process.

The loop computes what the loss needs of the data batch alone (its
diagrams, its landmarks) one step ahead on a second thread (issue 13,
goal 4). So that a reader sees what that thread buys, ours also runs
pinned to one CPU (`taskset -c 0`, the column "one CPU"): the same work
with no second core to hide it on.

The GAN (issue 14, acceptance 4; `--models`): generator 16-128-256-101,
discriminator 101-256-128-1, the same data, batch and thread count, with
and without the loss between the real and the generated batch; its
overhead is against the GAN's own step. The diffusion model: a denoiser
101-256-256-101 (SiLU, the 32-dimensional time embedding joined to every
layer's input), with and without the loss between the real batch and the
prediction x̂₀ of it (a second noising of the batch below topo_t_max); and
latent diffusion in the 16-dimensional latent space of a VAE trained here
first (the VAE's rows' widths, 50 steps), the loss between the real batch
and x̂₀ of its latent means. No peer is timed for these.

Usage: python3 benches/train/run.py [--steps S] [--repeat R] [--landmarks L]
                                    [--models vae,gan,diffusion,latent-diffusion]  (make bench-train)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TGLML = os.path.join(ROOT, "target", "release", "tglml")


def run(gamma, steps, out, extra=(), one_cpu=False):
    args = (["taskset", "-c", "0"] if one_cpu else []) + [TGLML, "train", "--steps", str(steps), "--threads", "1",
            "--set", 'synth.kind="spheres"', "--set", "train.batch_size=256",
            "--set", "model.latent_dim=16", "--set", "model.hidden=[256, 128]",
            "--set", "train.topo.dims=[0, 1]", "--set", "train.topo.weights=[1.0, 1.0]",
            "--set", f"train.topo.gamma={gamma}", "--set", "train.topo.ramp_steps=0",
            "--set", "train.checkpoint_every=0", *extra, "--overwrite", "--out", out]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, TGLML_PROGRESS="off"))
    if p.returncode != 0:
        sys.exit(p.stderr)
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        return list(f["train/step_seconds"][10:])


def peer(variant, data, steps, seed):
    """PyTorch + torch-topological steps of `variant`; the step times."""
    import h5py
    import numpy as np
    import torch
    from torch import nn
    from torch_topological.nn import SignatureLoss, VietorisRipsComplex, WassersteinDistance
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    with h5py.File(data, "r") as f:
        x = np.asarray(f["x"][()], dtype=np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)  # train.standardize
    x = torch.from_numpy(x.astype(np.float32))
    widths, latent, b = [x.shape[1], 256, 128], 16, 256
    enc = nn.Sequential(*[layer for a, c in zip(widths, widths[1:])
                          for layer in (nn.Linear(a, c), nn.ReLU())])
    mu_l, lv_l = nn.Linear(128, latent), nn.Linear(128, latent)
    back = [latent, 128, 256]
    dec = nn.Sequential(*[layer for a, c in zip(back, back[1:])
                          for layer in (nn.Linear(a, c), nn.ReLU())], nn.Linear(256, x.shape[1]))
    params = [*enc.parameters(), *mu_l.parameters(), *lv_l.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    dims = {"h0w": 0, "h01w": 1, "h0sig": 0}.get(variant)
    vr = VietorisRipsComplex(dim=dims) if dims is not None else None
    wd, sig = WassersteinDistance(p=2, q=2), SignatureLoss(p=2, dimensions=0)
    g = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        xb = x[torch.randint(0, x.shape[0], (b,), generator=g)]
        h = enc(xb)
        mu, lv = mu_l(h), lv_l(h)
        z = mu + (lv * 0.5).exp() * torch.randn(b, latent)
        recon = ((dec(z) - xb).square().sum(1) * 0.5).sum()
        kl = ((mu.square() + lv.exp() - lv - 1.0).sum(1) * 0.5).sum()
        loss = (recon + kl) / b
        if vr is not None:
            dx = torch.cdist(xb, xb)
            dz = torch.cdist(mu, mu)
            dx, dz = dx / dx.max(), dz / dz.max()
            px, pz = vr(dx, treat_as_distances=True), vr(dz, treat_as_distances=True)
            loss = loss + (sig([xb, px], [mu, pz]) if variant == "h0sig" else wd(px, pz))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    return times[10:]


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--peer-worker":
        w = json.loads(sys.argv[2])
        print(json.dumps(peer(w["variant"], w["data"], w["steps"], w["seed"])))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--landmarks", type=int, default=64,
                    help="also time the loss on this many landmarks of each batch")
    ap.add_argument("--models", default="vae,gan,diffusion,latent-diffusion",
                    help="the models to time: vae (with the peer), gan, diffusion, latent-diffusion")
    a = ap.parse_args()
    models = a.models.split(",")
    h0 = ["--set", "train.topo.dims=[0]", "--set", "train.topo.weights=[1.0]"]
    # (name, gamma, extra arguments, the peer's variant or None, the variant
    # whose step the overhead is measured against)
    vae0 = "without the topological loss"
    variants = [
        (vae0, 0, [], "base", vae0),
        ("H0 Wasserstein loss", 1, h0, "h0w", vae0),
        ("H0 signature loss", 1, h0 + ["--set", 'train.topo.kind="signature"'], "h0sig", vae0),
        ("H0 + H1 Wasserstein loss", 1, [], "h01w", vae0),
        (f"H0 + H1 Wasserstein on {a.landmarks} maxmin landmarks of each batch", 1,
         ["--set", f"train.topo.landmarks={a.landmarks}"], None, vae0),
    ] if "vae" in models else []
    if "gan" in models:
        # The GAN (issue 14): generator 16-128-256-101 (the widths of the
        # VAE's decoder), discriminator 101-256-128-1 (its encoder's), the
        # loss between the real and the generated batch.
        gan = ["--set", 'model.kind="gan"', "--set", "model.hidden=[128, 256]",
               "--set", "model.gan.disc_hidden=[256, 128]"]
        gan0 = "GAN without the topological loss"
        variants += [
            (gan0, 0, gan, None, gan0),
            ("GAN, H0 Wasserstein loss", 1, gan + h0, None, gan0),
            ("GAN, H0 + H1 Wasserstein loss", 1, gan, None, gan0),
        ]
    # (few samples by DDIM after training: the report is not timed)
    denoiser = ["--set", "model.hidden=[256, 256]", "--set", "model.samples=16",
                "--set", 'model.diffusion.sampler="ddim"', "--set", "model.diffusion.sample_steps=10"]
    if "diffusion" in models:
        dif = ["--set", 'model.kind="diffusion"', *denoiser]
        dif0 = "diffusion without the topological loss"
        variants += [
            (dif0, 0, dif, None, dif0),
            ("diffusion, H0 Wasserstein loss on x̂₀", 1, dif + h0, None, dif0),
            ("diffusion, H0 + H1 Wasserstein loss on x̂₀", 1, dif, None, dif0),
        ]
    tmp = tempfile.TemporaryDirectory()
    if "latent-diffusion" in models:
        vae_out = os.path.join(tmp.name, "vae")
        run(1, 50, vae_out)
        lat = ["--set", 'model.kind="latent-diffusion"', *denoiser,
               "--set", f'model.vae_checkpoint="{os.path.join(vae_out, "checkpoint.h5")}"']
        lat0 = "latent diffusion without the topological loss"
        variants += [
            (lat0, 0, lat, None, lat0),
            ("latent diffusion, H0 Wasserstein loss on x̂₀", 1, lat + h0, None, lat0),
            ("latent diffusion, H0 + H1 Wasserstein loss on x̂₀", 1, lat, None, lat0),
        ]
    try:
        import torch  # noqa: F401
        import torch_topological  # noqa: F401
        with_peer = True
    except ImportError:
        with_peer = False
        print("(no torch / torch-topological here: ours only; bash scripts/setup-bench.sh --torch)")
    times = {v[0]: [] for v in variants}
    one_cpu = {v[0]: [] for v in variants}
    peer_times = {v[0]: [] for v in variants}
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "spheres.h5")
        subprocess.run([TGLML, "data", "synth", "--set", 'synth.kind="spheres"', "--out", data],
                       check=True, capture_output=True, env=dict(os.environ, TGLML_PROGRESS="off"))
        for r in range(a.repeat):  # interleaved, so that drift hits every variant
            for k, (name, gamma, extra, pv, _) in enumerate(variants):
                times[name] += run(gamma, a.steps, os.path.join(d, f"v{k}r{r}"), extra)
                one_cpu[name] += run(gamma, a.steps, os.path.join(d, f"v{k}r{r}c"), extra, True)
                if with_peer and pv:
                    w = json.dumps(dict(variant=pv, data=data, steps=a.steps, seed=r))
                    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--peer-worker", w],
                                       check=True, capture_output=True, text=True,
                                       env=dict(os.environ, OMP_NUM_THREADS="1"))
                    peer_times[name] += json.loads(p.stdout)
    pbase = statistics.median(peer_times[vae0]) if with_peer and "vae" in models else None
    print("| variant | tglml ms | overhead | loss's share of the step | tglml on one CPU ms | overhead | "
          "PyTorch + torch-topological ms | overhead | tglml / peer | tglml on one CPU / peer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, _, _, pv, base_name in variants:
        m = statistics.median(times[name])
        m1 = statistics.median(one_cpu[name])
        base = statistics.median(times[base_name])
        base1 = statistics.median(one_cpu[base_name])
        first = name == base_name
        over = "–" if first else f"{100 * (m / base - 1):+.0f}%"
        share = "–" if first else f"{100 * (1 - base / m):.0f}%"
        over1 = "–" if first else f"{100 * (m1 / base1 - 1):+.0f}%"
        if with_peer and pv:
            pm = statistics.median(peer_times[name])
            pover = "–" if first else f"{100 * (pm / pbase - 1):+.0f}%"
            cells = f"{pm * 1e3:.2f} | {pover} | {m / pm:.2f} | {m1 / pm:.2f}"
        else:
            cells = "– | – | – | –"
        print(f"| {name} | {m * 1e3:.2f} | {over} | {share} | {m1 * 1e3:.2f} | {over1} | {cells} |")
    print(f"({len(times[variants[0][0]])} steps per variant and side; goals of issue 13: "
          "the H0 loss at most +25%; the H0 + H1 Wasserstein step at most 0.33x the peer's)")


if __name__ == "__main__":
    main()
