#!/usr/bin/env python3
"""Collects the runs of scripts/topoae.sh (output/topoae/) into
benches/topoae/results.md, with each run's latent scatter PNG beside it.

Each run folder NAME with a run.h5 is summarised as runs/NAME.json in the
results folder (written when it is read, with the date, the tglml
revision and the machine); results.md is made from every summary there,
so the runs of earlier days and other machines stay in the table after
their output folders are gone. A summary holds the test-set scores of
/eval (KL_0.01, KL_0.1, KL_1, W(H0)), the steps trained, the best
validation (/validation, when the run validated), its wall time
(NAME/wall_seconds, written by topoae.sh) and, where `tglml eval` scored
it (NAME/eval.h5), trustworthiness and continuity (means over
k = 10..200 step 10). Names: fashion-<setting>-s<seed>,
spheres-<setting>-s<seed>. A run read again replaces its summary.

Usage: python scripts/topoae.py [RUNS_DIR] [RESULTS_DIR]
"""
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

import h5py

NAME = re.compile(r"(fashion|spheres)-(.+)-s(\d+)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Topological Autoencoders' published test-set numbers: their published
# latents re-scored with tglml's measures (Fashion-MNIST:
# benches/topoae/their_latents.py, whose output is their-latents.md; Spheres:
# issue 17's note). Their paper's Table 1 gives KL_0.1 0.067 and 0.039.
AUTHORS = {
    "fashion": {"plain AE (their latents)": {"kl_0.1": 0.0675, "kl_0.01": 0.4894, "kl_1": 0.0012},
                "TopoAE (their latents)": {"kl_0.1": 0.0390, "kl_0.01": 0.3367, "kl_1": 0.0009}},
    "spheres": {"TopoAE (their latents)": {"kl_0.1": 0.315, "trust": 0.661}},
}


def read(run):
    r = {}
    with h5py.File(os.path.join(run, "run.h5"), "r") as f:
        at = f["eval"].attrs
        for k in ("kl_0.01", "kl_0.1", "kl_1", "w_h0"):
            r[k] = float(at[k])
        r["steps"] = int(f["train/step"].shape[0])
        if "validation" in f:
            r["best_step"] = int(f["validation"].attrs.get("best_step", -1))
            r["validations"] = int(f["validation/step"].shape[0])
    ev = os.path.join(run, "eval.h5")
    if os.path.exists(ev):
        with h5py.File(ev, "r") as f:
            r["trust"] = float(f["embedding"].attrs["trustworthiness"])
            r["cont"] = float(f["embedding"].attrs["continuity"])
    w = os.path.join(run, "wall_seconds")
    if os.path.exists(w):
        r["wall"] = float(open(w).read())
    return r


def fmt(v, spec=".4f"):
    return "–" if v is None else format(v, spec)


def machine():
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "unknown")
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.platform()}"


def main():
    runs_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "output", "topoae")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "benches", "topoae")
    summaries = os.path.join(out_dir, "runs")
    os.makedirs(summaries, exist_ok=True)
    rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    here = machine()
    names = sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []
    for name in names:
        run = os.path.join(runs_dir, name)
        if not NAME.fullmatch(name) or not os.path.exists(os.path.join(run, "run.h5")):
            continue
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            scored = "eval" in f and "kl_0.1" in f["eval"].attrs
        if not scored:
            # A run without a test set (a candidate of restarts() in
            # topoae.sh, still being continued): nothing to summarise yet.
            print(f"{name}: run.h5 has no test-set scores; left out", file=sys.stderr)
            continue
        r = read(run)
        r.update(name=name, written=now, revision=rev, machine=here)
        with open(os.path.join(summaries, f"{name}.json"), "w") as f:
            json.dump(r, f, indent=1, sort_keys=True)
            f.write("\n")
        png = os.path.join(run, "latent.png")
        if os.path.exists(png):
            shutil.copyfile(png, os.path.join(out_dir, f"{name}-latent.png"))
    groups = {}
    for file in sorted(os.listdir(summaries)):
        m = NAME.fullmatch(file.removesuffix(".json"))
        if not m or not file.endswith(".json"):
            continue
        with open(os.path.join(summaries, file)) as f:
            r = json.load(f)
        r["seed"] = int(m.group(3))
        groups.setdefault(m.group(1), {}).setdefault(m.group(2), []).append(r)
    dates = sorted({r["written"][:10] for g in groups.values() for rs in g.values() for r in rs})
    md = ["# Topological Autoencoders' measures: results", "",
          "Made by `make topoae` (scripts/topoae.sh, then scripts/topoae.py); what each "
          "column means: scripts/topoae.py's docstring.", "",
          f"- written {now} from the run summaries in runs/ (read from the run folders on "
          f"{', '.join(dates)}; each gives the date, tglml revision and machine it was read on); "
          f"this time on {here}", ""]
    cols = ["kl_0.1", "kl_0.01", "kl_1", "w_h0", "trust", "cont"]
    for data in ("fashion", "spheres"):
        if data not in groups:
            continue
        md += [f"## {'Fashion-MNIST (10,000 test images)' if data == 'fashion' else 'Spheres (1,000 test points)'}", "",
               "| setting | seed | KL_0.1 | KL_0.01 | KL_1 | W(H0) | ℓ-Trust | continuity | steps | best validation step | wall s |",
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for setting, rs in sorted(groups[data].items()):
            for r in sorted(rs, key=lambda r: r["seed"]):
                md.append(f"| {setting} | {r['seed']} | " + " | ".join(fmt(r.get(c)) for c in cols)
                          + f" | {r['steps']} | {r.get('best_step', '–')} | {fmt(r.get('wall'), '.0f')} |")
            if len(rs) > 1:
                means = [statistics.mean(r[c] for r in rs) if all(c in r for r in rs) else None
                         for c in cols]
                md.append(f"| **{setting}: mean of {len(rs)}** | | " + " | ".join(
                    f"**{fmt(v)}**" if v is not None else "–" for v in means) + " | | | |")
        for who, nums in AUTHORS[data].items():
            md.append(f"| Moor et al.: {who} | | {fmt(nums.get('kl_0.1'))} | "
                      f"{fmt(nums.get('kl_0.01'))} | {fmt(nums.get('kl_1'))} | – | "
                      f"{fmt(nums.get('trust'))} | | | | |")
        md.append("")
        md += [f"![{r['name']}]({r['name']}-latent.png)" for rs in groups[data].values()
               for r in rs if os.path.exists(os.path.join(out_dir, f"{r['name']}-latent.png"))]
        md.append("")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"wrote {os.path.join(out_dir, 'results.md')}")


if __name__ == "__main__":
    main()
