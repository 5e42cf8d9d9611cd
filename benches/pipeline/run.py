#!/usr/bin/env python3
"""Scaling and memory of the MPI persistence pipeline (issue 5, items 3 and 5).

1. Scaling: `tglml ph` on a collection of the CGAL meshes of Debian's
   libcgal-demo (every surface mesh of data/meshes, 2,000 points each, H0-H2
   on 300 maxmin landmarks per object) under `mpirun -np P` for P = 1, 2, 4,
   one thread per rank; median wall time over R runs, speedup T1/TP and
   parallel efficiency T1/(P * TP).
2. Memory: `tglml ph` on 20,000 Fashion-MNIST images (Debian's
   dataset-fashion-mnist, packed to HDF5) with 500 maxmin landmarks under
   P = 1, 2, 4 ranks; every rank's peak resident memory as tglml reports it
   (VmHWM), beside the size of the rank's shard of the matrix.

Usage: python3 benches/pipeline/run.py [--repeat R] [--out-dir DIR]
(`make bench-pipeline`). Needs the release binary (cargo build --release)
and the data of scripts/setup.sh / scripts/fetch-data.sh. Writes
benches/pipeline/results-YYYY-MM-DD.md and .json.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benches"))
import benchlib  # noqa: E402

TGLML = os.path.join(ROOT, "target", "release", "tglml")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           TGLML_PROGRESS="off")


def cache():
    c = os.environ.get("TGLML_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.environ["HOME"], ".cache"), "tglml")
    return c


def run(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return wall, p.stderr


def mpirun(np_, args):
    return run(["mpirun", "-np", str(np_), "--oversubscribe", "--bind-to", "none", TGLML] + args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--scratch", default=os.path.join(ROOT, "target", "bench-pipeline"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "benches", "pipeline"))
    a = ap.parse_args()
    ranks = [int(x) for x in a.ranks.split(",")]
    os.makedirs(a.scratch, exist_ok=True)
    meshes_dir = os.path.join(cache(), "debian-data", "cgal", "data", "meshes")
    if not os.path.isdir(meshes_dir):
        sys.exit(f"{meshes_dir} is missing: run `bash scripts/fetch-data.sh`")
    meshes = sorted(os.path.join(meshes_dir, f) for f in os.listdir(meshes_dir)
                    if f.endswith((".off", ".ply")) and f not in ("prim.off", "b9.ply"))
    col = os.path.join(a.scratch, "meshes.h5")
    run([TGLML, "data", "pack", *meshes, "--mesh-points", "2000", "--out", col])
    fm = os.path.join(a.scratch, "fmnist.h5")
    img = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    run([TGLML, "data", "pack", img, "--limit", "20000", "--out", fm])
    load0 = os.getloadavg()
    say = lambda m: print(m, flush=True)  # noqa: E731
    benchlib.wait_idle(120, say)

    scaling = {}
    for p in ranks:
        times = []
        for r in range(a.repeat):
            wall, _ = mpirun(p, ["ph", "--input", col, "--maxdim", "2", "--landmarks", "300",
                                 "--threads", "1", "--out", os.path.join(a.scratch, f"meshes-ph-{p}.h5")])
            times.append(wall)
            say(f"collection, {p} rank(s), run {r + 1}: {wall:.2f} s")
        scaling[p] = times
    memory = {}
    for p in ranks:
        _, err = mpirun(p, ["ph", "--input", fm, "--landmarks", "500", "--maxdim", "1",
                            "--threads", "1", "--out", os.path.join(a.scratch, f"fmnist-ph-{p}.h5")])
        m = re.search(r"peak memory per rank \(MiB\): ([0-9. ]+)", err)
        memory[p] = [float(x) for x in m.group(1).split()] if m else None
        say(f"fashion-mnist, {p} rank(s): peak MiB per rank {memory[p]}")
    # Baseline: a tglml rank that holds almost no data (100 points sharded
    # over 2 ranks); libtorch's static initialisation dominates it.
    tiny = os.path.join(a.scratch, "tiny.h5")
    run([TGLML, "data", "synth", "--n", "100", "--out", tiny])
    _, err = mpirun(2, ["ph", "--input", tiny, "--landmarks", "10", "--maxdim", "0",
                        "--out", os.path.join(a.scratch, "tiny-ph.h5")])
    m = re.search(r"peak memory per rank \(MiB\): ([0-9. ]+)", err)
    base = max(float(x) for x in m.group(1).split()) if m else None
    load1 = os.getloadavg()

    date = datetime.date.today().isoformat()
    t1 = statistics.median(scaling[ranks[0]])
    lines = [f"# MPI persistence pipeline: scaling and memory, {date}", "",
             "Made by `make bench-pipeline` (`benches/pipeline/run.py`); see benches/pipeline/README.md.", "",
             f"- machine: {benchlib.sh(['uname', '-a'])}; {os.cpu_count()} CPUs",
             f"- load average at start {load0[0]:.2f}, at end {load1[0]:.2f}",
             f"- TGLML revision: {benchlib.sh(['git', 'rev-parse', '--short=12', 'HEAD'])}",
             f"- collection: {len(meshes)} CGAL meshes x 2,000 points; `tglml ph --maxdim 2 --landmarks 300 --threads 1`; {a.repeat} runs per rank count, medians",
             "", "## Scaling (collection)", "",
             "| ranks | median s | min s | speedup | parallel efficiency |", "| ---: | ---: | ---: | ---: | ---: |"]
    for p in ranks:
        med = statistics.median(scaling[p])
        lines.append(f"| {p} | {med:.2f} | {min(scaling[p]):.2f} | {t1 / med:.2f} | {t1 / (p * med):.2f} |")
    lines += ["", f"With {os.cpu_count()} cores, more ranks than cores share them: the efficiency beyond "
              f"{os.cpu_count()} ranks measures overhead, not speedup.", "",
              "## Peak memory per rank (20,000 Fashion-MNIST images, 500 landmarks)", "",
              "| ranks | peak MiB per rank | the rank's shard of /x, MiB |", "| ---: | --- | --- |"]
    for p in ranks:
        shard = [20000 * 784 * 8 / p / 2**20] * p
        lines.append(f"| {p} | {' '.join(f'{x:.1f}' for x in memory[p]) if memory[p] else '?'} | "
                     f"{' '.join(f'{x:.1f}' for x in shard)} |")
    lines += ["", f"A tglml rank that holds almost no data (100 points over 2 ranks) peaks at {base} MiB "
              "(libtorch's static initialisation dominates it).",
              "The landmark set adds 500 x 784 x 8 B = 3.0 MiB on every rank; rank 0 also holds the "
              "landmark distance matrix and the persistence computation."]
    os.makedirs(a.out_dir, exist_ok=True)
    md = os.path.join(a.out_dir, f"results-{date}.md")
    with open(md, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.out_dir, f"results-{date}.json"), "w") as f:
        json.dump({"date": date, "scaling_seconds": scaling, "memory_mib": memory,
                   "meshes": len(meshes), "baseline_kib": base}, f, indent=1)
    print("\n".join(lines))
    print(f"\nwrote {md}")


if __name__ == "__main__":
    main()
