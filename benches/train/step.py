#!/usr/bin/env python3
"""Training step time (issue 13, goal 3): `tglml train` beside PyTorch eager
on the same model, batch, data and thread count, in one run.

Models (both as `tglml train` builds them: an MLP encoder giving mu and
log-variance, z = mu + exp(logvar / 2) * eps, a mirrored decoder; loss
(sum of 1/2 ||x - x_hat||^2 + beta * KL) / batch; Adam, lr 1e-3):
  * deepae: Fashion-MNIST (784 values), widths 784-1000-500-250-2, batch 64,
    an autoencoder (eps = 0, beta = 0, as model.vae.variational = false);
  * mlp: Spheres (101 values), widths 101-256-128-16, batch 256, a VAE
    (beta = 1, eps standard normal);
  * conv: Fashion-MNIST, model.network = "conv" (two stride-2 4x4
    convolutions, 32 and 64 channels, and the mirrored transposed ones),
    latent 16, batch 64, a VAE;
  * topoae: the deepae with batch norm after each hidden ReLU, a tanh
    output, images in [-1, 1] and Adam's weight decay
    (configs/fashion_mnist_topoae.toml).
The PyTorch peer is the loop a user writes: rows drawn by index from the
data held as one float32 tensor, forward, backward, torch.optim.Adam (its
default CPU implementation), loss.item(); steps timed one by one with
time.perf_counter. Ours: the per-step times `tglml train` logs in
/train/step_seconds of run.h5 (the whole step: batch, forward, backward,
gradient all-reduce, Adam, log). The first W steps of each run are
dropped; medians over R runs of S steps.

Usage: python benches/train/step.py [--steps S] [--repeat R] [--threads 1,2]
       [--models deepae,conv,mlp,topoae]   (make bench-train-step; the benchmark venv
       with torch: bash scripts/setup-bench.sh --torch)
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TGLML = os.path.join(ROOT, "target", "release", "tglml")
FASHION = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
WARMUP = 10

MODELS = {
    "deepae": dict(data="fashion", hidden=[1000, 500, 250], latent=2, batch=64,
                   variational=False, beta=0.0),
    "mlp": dict(data="spheres", hidden=[256, 128], latent=16, batch=256,
                variational=True, beta=1.0),
    "conv": dict(data="fashion", arch="conv", hidden=[], latent=16, batch=64,
                 variational=True, beta=1.0),
    # Topological Autoencoders' recipe (configs/fashion_mnist_topoae.toml):
    # the DeepAE with batch norm after each hidden ReLU, a tanh output,
    # images in [-1, 1], Adam with (coupled) weight decay.
    "topoae": dict(data="fashion", hidden=[1000, 500, 250], latent=2, batch=64,
                   variational=False, beta=0.0, bn=True, tanh=True, wd=0.00392),
}


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return "unknown"


def make_data(kind, d):
    """The data file both sides read: Fashion-MNIST packed by tglml, or the
    Spheres dataset made by tglml."""
    path = os.path.join(d, f"{kind}.h5")
    if kind == "fashion":
        cmd = [TGLML, "data", "pack", FASHION, "--out", path]
    else:
        cmd = [TGLML, "data", "synth", "--set", 'synth.kind="spheres"', "--out", path]
    subprocess.run(cmd, check=True, capture_output=True,
                   env=dict(os.environ, TGLML_PROGRESS="off"))
    return path


def ours(m, data, threads, steps, out):
    cmd = [TGLML, "train", "--threads", str(threads), "--steps", str(steps),
           "--set", f'train.data="{data}"', "--set", f"model.hidden={m['hidden']}",
           "--set", f'model.network="{m.get("arch", "mlp")}"',
           "--set", f"model.latent_dim={m['latent']}", "--set", f"train.batch_size={m['batch']}",
           "--set", f"model.vae.variational={str(m['variational']).lower()}",
           "--set", f"model.vae.beta={m['beta']}", "--set", "train.topo.gamma=0",
           "--set", "train.checkpoint_every=0", "--set", "train.hash_every=0",
           # Only the size of the evaluation after the last step (W(H0) and
           # KL of the test split), which no step time includes: 1% keeps it
           # short.
           "--set", "train.test_fraction=0.01",
           "--overwrite", "--out", out]
    if m.get("bn"):
        cmd += ["--set", 'model.vae.batch_norm="after"', "--set", 'model.vae.output="tanh"',
                "--set", f"train.weight_decay={m['wd']}", "--set", "train.standardize=false",
                "--set", "train.fixed_scale=[0.5, 0.5]"]
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env=dict(os.environ, TGLML_PROGRESS="off"))
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)}\n{p.stderr}")
    import h5py
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        return [float(s) for s in f["train/step_seconds"][WARMUP:]]


def pytorch(m, data, threads, steps, seed, fused=False):
    import h5py
    import numpy as np
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with h5py.File(data, "r") as f:
        x = np.asarray(f["x"][()], dtype=np.float64)
    if m.get("bn"):
        x = (x - 0.5) / 0.5  # train.fixed_scale = [0.5, 0.5]
    else:
        x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)  # train.standardize
    x = torch.from_numpy(x.astype(np.float32))
    if m.get("arch") == "conv":
        enc = nn.Sequential(nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),
                            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten())
        feat = 64 * 7 * 7
        dec = nn.Sequential(nn.Linear(m["latent"], feat), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Flatten())
    else:
        def block(a, b):
            return (nn.Linear(a, b), nn.ReLU()) + ((nn.BatchNorm1d(b),) if m.get("bn") else ())
        widths = [x.shape[1]] + m["hidden"]
        enc = nn.Sequential(*[layer for a, b in zip(widths, widths[1:]) for layer in block(a, b)])
        feat = widths[-1]
        back = [m["latent"]] + m["hidden"][::-1]
        dec = nn.Sequential(*[layer for a, b in zip(back, back[1:]) for layer in block(a, b)],
                            nn.Linear(back[-1], x.shape[1]),
                            *((nn.Tanh(),) if m.get("tanh") else ()))
    mu_l, lv_l = nn.Linear(feat, m["latent"]), nn.Linear(feat, m["latent"])
    params = [*enc.parameters(), *mu_l.parameters(), *lv_l.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=fused, weight_decay=m.get("wd", 0.0))
    g = torch.Generator().manual_seed(seed)
    b, times = m["batch"], []
    for _ in range(steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, x.shape[0], (b,), generator=g)
        xb = x[idx]
        h = enc(xb)
        mu, lv = mu_l(h), lv_l(h)
        eps = torch.randn(b, m["latent"]) if m["variational"] else torch.zeros(b, m["latent"])
        z = mu + (lv * 0.5).exp() * eps
        out = dec(z)
        recon = ((out - xb).square().sum(1) * 0.5).sum()
        kl = ((mu.square() + lv.exp() - lv - 1.0).sum(1) * 0.5).sum()
        loss = (recon + kl * m["beta"]) / b
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    return times[WARMUP:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=110)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default="deepae,conv,mlp,topoae")
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:  # one PyTorch run in its own process: JSON of its step times
        w = json.loads(a.worker)
        print(json.dumps(pytorch(MODELS[w["model"]], w["data"], w["threads"], w["steps"], w["seed"],
                                 w["fused"])))
        return
    import torch
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            m = MODELS[name]
            data = make_data(m["data"], d)
            for t in (int(s) for s in a.threads.split(",")):
                ts, ps, fs = [], [], []
                for r in range(a.repeat):  # alternate, so that drift hits every side
                    ts += ours(m, data, t, a.steps, os.path.join(d, f"{name}{t}{r}"))
                    for fused, into in ((False, ps), (True, fs)):
                        w = json.dumps(dict(model=name, data=data, threads=t, steps=a.steps,
                                            seed=r, fused=fused))
                        p = subprocess.run([sys.executable, __file__, "--worker", w], check=True,
                                           capture_output=True, text=True,
                                           env=dict(os.environ, OMP_NUM_THREADS=str(t)))
                        into += json.loads(p.stdout)
                row = dict(model=name, threads=t, tglml_ms=statistics.median(ts) * 1e3,
                           pytorch_ms=statistics.median(ps) * 1e3,
                           pytorch_fused_ms=statistics.median(fs) * 1e3,
                           tglml_s=ts, pytorch_s=ps, pytorch_fused_s=fs)
                row["ratio"] = row["tglml_ms"] / row["pytorch_ms"]
                row["ratio_fused"] = row["tglml_ms"] / row["pytorch_fused_ms"]
                rows.append(row)
                print(f"[bench-train-step] {name} {t} thread(s): tglml {row['tglml_ms']:.2f} ms, "
                      f"PyTorch {row['pytorch_ms']:.2f} ms (ratio {row['ratio']:.2f}), "
                      f"PyTorch fused Adam {row['pytorch_fused_ms']:.2f} ms "
                      f"(ratio {row['ratio_fused']:.2f})", file=sys.stderr, flush=True)
    for name in {r["model"] for r in rows}:
        one = [r for r in rows if r["model"] == name]
        if len(one) == 2:
            for side in ("tglml", "pytorch", "pytorch_fused"):
                one[1][f"{side}_speedup"] = one[0][f"{side}_ms"] / one[1][f"{side}_ms"]
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "unknown")
    rev = sh(["git", "rev-parse", "--short=12", "HEAD"]) + (
        " (uncommitted changes)" if sh(["git", "status", "--porcelain", "--untracked-files=no"]) else "")
    md = [f"# Training step benchmark: results of {date[:10]}", "",
          "Made by `make bench-train-step` (`benches/train/step.py`); what it measures: its docstring.", "",
          f"- date: {date}; machine: {cpu}, {os.cpu_count()} CPUs; `{sh(['uname', '-a'])}`",
          f"- load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
          f"- tglml revision {rev}; {sh(['rustc', '-V'])}; PyTorch {torch.__version__}, "
          f"python {platform.python_version()}",
          f"- {a.repeat} runs of {a.steps} steps per side, the first {WARMUP} of each dropped; medians",
          "- goal: ours ≤ 1.0× PyTorch's; the second thread ≥ 1.6× where PyTorch's gives that", "",
          "PyTorch: `torch.optim.Adam` as a user gets it (its default on CPU: one tensor at a time); "
          "PyTorch fused: the same with `fused=True`.", "",
          "| model | threads | tglml ms | PyTorch ms | PyTorch fused ms | tglml / PyTorch | "
          "tglml / PyTorch fused | 1 → 2 threads: tglml | PyTorch | PyTorch fused |",
          "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        sp = [f"{r[k + '_speedup']:.2f}×" if k + "_speedup" in r else "–"
              for k in ("tglml", "pytorch", "pytorch_fused")]
        md.append(f"| {r['model']} | {r['threads']} | {r['tglml_ms']:.2f} | {r['pytorch_ms']:.2f} | "
                  f"{r['pytorch_fused_ms']:.2f} | {r['ratio']:.2f} | {r['ratio_fused']:.2f} | "
                  f"{sp[0]} | {sp[1]} | {sp[2]} |")
    stem = os.path.join(a.out_dir, f"step-results-{date[:10]}")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(stem + ".json", "w") as f:
        json.dump(dict(date=date, cpu=cpu, revision=rev, torch=torch.__version__,
                       models=MODELS, rows=rows), f, indent=1)
        f.write("\n")
    print("\n".join(md[-len(rows) - 2:]))


if __name__ == "__main__":
    main()
