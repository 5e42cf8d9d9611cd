"""Vietoris–Rips persistence benchmark: TGLML's engine, Ripser and giotto-ph
side by side on the same inputs (benches/ph/README.md).

Usage (from the repository root; `make bench-ph` does all of it):

    bash scripts/setup-bench.sh
    cargo bench --bench ph --no-run
    ~/.cache/tglml/bench-venv/bin/python benches/ph/run.py [options]

Options:
    --repeat R        timed calls per tool and workload (default 3)
    --quick           small smoke run: smaller inputs, R = 1, results written
                      under the scratch folder instead of benches/ph/
    --only A,B        only these workloads (names as in the table)
    --threads 1,2     thread counts for TGLML and giotto-ph (default 1,2)
    --batch-repeat K  timed calls for the 256-point batch case (default 20)
    --scratch DIR     where the generated inputs go (default target/bench-ph)
    --out-dir DIR     where results-YYYY-MM-DD.{md,json} go (default
                      benches/ph, or the scratch folder with --quick)
    --bench-bin PATH  the benchmark program (default: asked from cargo)
    --timeout S       give up on one tool run after S seconds (default 1800)
    --wait-idle S     before each tool run, wait up to S seconds (default 300)
                      for the rest of the machine to be idle

What is measured (per workload, per tool, per thread count; one subprocess
each, which makes the R timed calls one after the other):
  * seconds: the tool's own compute time, measured inside its process around
    the call only (time.perf_counter / std::time::Instant); the median of the
    R calls is reported. Ripser and giotto-ph get a float64 distance matrix
    (scipy cdist for point clouds, computed before the clock starts); TGLML
    gets the points and computes its distances inside the timed region (what
    a user calls). Workloads stored as a distance matrix give every tool the
    same matrix.
  * peak MiB: the peak resident set size of that subprocess (ru_maxrss from
    os.wait4), which includes the interpreter or program itself and its
    input; "pre-call MiB" is the process's high-water mark (VmHWM) just before
    the first timed call, reported by the process itself.
  * bar counts per dimension, which must agree across all tools.

The inputs are generated deterministically (numpy default_rng with fixed
seeds; Fashion-MNIST from the Debian package dataset-fashion-mnist).
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (BUSY, BUSY_S, WORKER_ENV, busy_cpu_seconds,  # noqa: E402
                      fmt_mib, fmt_s, sh, spawner_loop, vm_hwm_kib, wait_idle)
FASHION_DEFAULT = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

# Timings of a run during which the rest of the machine was busy (benchlib's
# BUSY, BUSY_S) are marked as suspect in the report.

def suspect(r):
    return r["other_cpu"] > BUSY and r["other_cpu"] * r["wall_s"] > BUSY_S

# Workers run with benchlib's WORKER_ENV (single-threaded BLAS/OpenMP), so
# the only threads are the ones a tool is asked for.


# ----------------------------------------------------------------------------
# Worker: one Python tool on one input, R timed calls, one JSON line
# ----------------------------------------------------------------------------



def process_worker(path, threads, repeat):
    """`tglml ph` as a user runs it: R whole processes on the input file
    (the points where the workload has them, else the distance matrix),
    each timed from before its start to after its exit, start-up, reading
    and writing included; the peak RSS is the tglml process's own."""
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        maxdim = int(f.attrs["maxdim"])
        thresh = float(f.attrs["threshold"])
        kind = "points" if "x" in f else "distance_matrix"
        n = int((f["x"] if "x" in f else f["distance_matrix"]).shape[0])
    out = os.path.join(os.path.dirname(path), "tglml-process-out.h5")
    cmd = [TGLML, "ph", "--input", path, "--maxdim", str(maxdim),
           "--threads", str(threads), "--out", out]
    if kind == "distance_matrix":
        cmd += ["--dataset", "distance_matrix", "--distance-matrix"]
    if np.isfinite(thresh):
        cmd += ["--threshold", repr(thresh)]
    env = dict(os.environ, TGLML_PROGRESS="off")
    seconds, peak = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        seconds.append(time.perf_counter() - t0)
        if status != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
        peak = max(peak, ru.ru_maxrss)
    with h5py.File(out, "r") as f:
        dgms = [f[f"diagrams/dim{k}"][()] for k in range(maxdim + 1)]
    os.remove(out)
    print(json.dumps(dict(tool="tglml-process", input=path, input_kind=kind,
                          n_points=n, maxdim=maxdim,
                          threshold=thresh if np.isfinite(thresh) else None,
                          threads=threads, seconds=seconds,
                          bars=[len(d) for d in dgms],
                          essential=[int(np.isinf(d[:, 1]).sum()) if len(d) else 0
                                     for d in dgms],
                          pre_call_kib=None, cdist_seconds=None,
                          process_peak_kib=peak, command=cmd)))


def worker(tool, path, threads, repeat):
    if tool == "tglml-process":
        process_worker(path, threads, repeat)
        return
    import h5py
    import numpy as np
    from scipy.spatial.distance import cdist

    with h5py.File(path, "r") as f:
        maxdim = int(f.attrs["maxdim"])
        thresh = float(f.attrs["threshold"])
        if "x" in f:
            x = f["x"][()]
            t0 = time.perf_counter()
            dm = cdist(x, x)
            cdist_s = time.perf_counter() - t0
            kind = "points"
        else:
            dm = f["distance_matrix"][()]
            cdist_s = None
            kind = "distance_matrix"
    dm = np.ascontiguousarray(dm, dtype=np.float64)
    if tool == "ripser":
        from ripser import ripser

        def call():
            return ripser(dm, maxdim=maxdim, thresh=thresh,
                          distance_matrix=True)["dgms"]
        threads = 1
    elif tool == "giotto-ph":
        from gph import ripser_parallel

        def call():
            return ripser_parallel(dm, maxdim=maxdim, thresh=thresh,
                                   metric="precomputed",
                                   return_generators=True,
                                   n_threads=threads)["dgms"]
    else:
        raise SystemExit(f"unknown tool {tool}")
    pre = vm_hwm_kib()
    seconds, counts = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        dgms = call()
        seconds.append(time.perf_counter() - t0)
        c = [len(d) for d in dgms]
        if counts is not None and c != counts:
            raise SystemExit("bar counts differ between repeats")
        counts = c
        essential = [int(np.isinf(np.asarray(d)[:, 1]).sum()) if len(d) else 0
                     for d in dgms]
    print(json.dumps(dict(tool=tool, input=path, input_kind=kind,
                          n_points=int(dm.shape[0]), maxdim=maxdim,
                          threshold=thresh if np.isfinite(thresh) else None,
                          threads=threads, seconds=seconds, bars=counts,
                          essential=essential, pre_call_kib=pre,
                          cdist_seconds=cdist_s)))


# ----------------------------------------------------------------------------
# Workloads
# ----------------------------------------------------------------------------

def fashion_path():
    try:
        out = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.endswith("train-images-idx3-ubyte.gz"):
                return line
    except (OSError, subprocess.CalledProcessError):
        pass
    return FASHION_DEFAULT


def read_idx_images(path, count):
    """The first `count` images of an IDX3 file (gzip or not), uint8 rows."""
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        magic, n, rows, cols = (int(v) for v in
                                np.frombuffer(f.read(16), dtype=">u4"))
        if magic != 0x00000803:
            raise ValueError(f"{path}: bad IDX3 magic {magic:#010x}")
        count = min(count, n)
        buf = f.read(count * rows * cols)
    return np.frombuffer(buf, dtype=np.uint8).reshape(count, rows * cols)


def torus(n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    th = rng.uniform(0.0, 2.0 * np.pi, n)
    ph = rng.uniform(0.0, 2.0 * np.pi, n)
    R, r = 2.0, 1.0
    return np.c_[(R + r * np.cos(th)) * np.cos(ph),
                 (R + r * np.cos(th)) * np.sin(ph), r * np.sin(th)]


def sphere(n, seed):
    import numpy as np
    g = np.random.default_rng(seed).normal(size=(n, 3))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


def cube(n, d, seed):
    import numpy as np
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, d))


def fashion(n):
    import numpy as np
    return read_idx_images(fashion_path(), n).astype(np.float64) / 255.0


def threshold_dm(n, seed, pct):
    import numpy as np
    from scipy.spatial.distance import cdist
    p = cube(n, 3, seed)
    dm = cdist(p, p)
    thr = float(np.percentile(dm[np.triu_indices(n, k=1)], pct))
    return dm, thr


def workloads(quick):
    """(name, description, builder) with builder() -> dict(x=... or dm=...,
    maxdim, threshold). Sizes shrink with --quick."""
    q = quick
    n_t1, n_t2, n_c, n_s, n_f, n_u = ((200, 120, 200, 100, 200, 400) if q
                                      else (1000, 400, 1000, 300, 1000, 2000))
    return [
        (f"torus{n_t1}_h1", f"torus (R=2, r=1) {n_t1} pts in R^3, maxdim 1",
         lambda: dict(x=torus(n_t1, 101), maxdim=1)),
        (f"torus{n_t2}_h2", f"torus (R=2, r=1) {n_t2} pts in R^3, maxdim 2",
         lambda: dict(x=torus(n_t2, 102), maxdim=2)),
        (f"cube50_{n_c}_h1", f"{n_c} uniform pts in [0,1]^50, maxdim 1",
         lambda: dict(x=cube(n_c, 50, 103), maxdim=1)),
        (f"sphere{n_s}_h2", f"{n_s} uniform pts on S^2 in R^3, maxdim 2",
         lambda: dict(x=sphere(n_s, 104), maxdim=2)),
        (f"fashion{n_f}_h1", f"first {n_f} Fashion-MNIST training images, "
         "pixel/255, 784-d, maxdim 1",
         lambda: dict(x=fashion(n_f), maxdim=1)),
        (f"uniform3d_{n_u}_p10_h1", f"{n_u} uniform pts in [0,1]^3 given as a "
         "distance matrix, threshold = 10th percentile of pairwise distances, "
         "maxdim 1",
         lambda: dict(zip(("dm", "threshold"), threshold_dm(n_u, 105, 10)),
                      maxdim=1)),
    ]


BATCH = dict(n=256, d=16, seed=7)


def write_h5(path, w, with_dm=False):
    import h5py
    import numpy as np
    from scipy.spatial.distance import cdist
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        if "x" in w:
            x = np.ascontiguousarray(w["x"], np.float64)
            f.create_dataset("x", data=x)
            if with_dm:
                # The same float64 matrix the peers build (see worker()).
                f.create_dataset("distance_matrix", data=cdist(x, x))
        else:
            f.create_dataset("distance_matrix",
                             data=np.ascontiguousarray(w["dm"], np.float64))
        f.attrs["maxdim"] = np.int64(w["maxdim"])
        f.attrs["threshold"] = np.float64(w.get("threshold", np.inf))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# Running tools
# ----------------------------------------------------------------------------

def find_bench_bin():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "ph", "--no-run",
         "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit("cargo bench --bench ph --no-run failed")
    exe = None
    for line in out.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact"
                and msg.get("target", {}).get("name") == "ph"
                and "bench" in msg.get("target", {}).get("kind", [])
                and msg.get("executable")):
            exe = msg["executable"]
    if not exe:
        raise SystemExit("cargo did not report the ph benchmark executable")
    return exe






class Spawner:
    """Client of spawner_loop (start it before importing numpy)."""

    def __init__(self):
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--spawner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, cmd, timeout):
        """Runs cmd; returns (JSON of its last `{` stdout line, peak RSS KiB,
        wall seconds)."""
        out_path = os.path.join(SCRATCH, "child.out")
        err_path = os.path.join(SCRATCH, "child.err")
        self.p.stdin.write(json.dumps({"cmd": cmd, "stdout": out_path,
                                       "stderr": err_path,
                                       "timeout": timeout}) + "\n")
        self.p.stdin.flush()
        ans = json.loads(self.p.stdout.readline())
        with open(out_path) as f:
            stdout = f.read()
        if ans["timed_out"]:
            raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)}")
        if ans["rc"] != 0:
            with open(err_path) as f:
                raise RuntimeError(f"exit {ans['rc']}: {' '.join(cmd)}\n"
                                   + f.read()[-3000:])
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"no JSON from {' '.join(cmd)}:\n"
                               + stdout[-2000:])
        res = json.loads(lines[-1])
        res["other_cpu"] = ans["other_cpu"]
        return res, ans["maxrss_kib"], ans["wall_s"]

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def tool_runs(threads_list):
    runs = [("tglml", t) for t in threads_list]
    runs += [("tglml-process", t) for t in threads_list] + [("ripser", 1)]
    runs += [("giotto-ph", t) for t in threads_list]
    return runs


def command(tool, threads, repeat, bench_bin, h5=None, batch=None,
            use_dm=False):
    if tool == "tglml":
        cmd = [bench_bin, "--threads", str(threads), "--repeat", str(repeat)]
        if batch:
            return cmd + ["--batch", str(batch["n"]), "--dim", str(batch["d"]),
                          "--seed", str(batch["seed"])]
        return cmd + ["--input", h5] + (["--use-dm"] if use_dm else [])
    return [sys.executable, os.path.abspath(__file__), "--worker", tool,
            "--input", h5, "--threads", str(threads), "--repeat", str(repeat)]




# ----------------------------------------------------------------------------
# Environment and report
# ----------------------------------------------------------------------------



def environment():
    import h5py
    import numpy
    import scipy
    import gph
    import ripser
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = sh(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = sh(["git", "status", "--porcelain", "--untracked-files=no"])
    if dirty:
        rev += " + uncommitted changes in " + ", ".join(
            ln.split(maxsplit=1)[-1] for ln in dirty.splitlines())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
        .isoformat(timespec="seconds"),
        "uname": sh(["uname", "-a"]),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "tglml_revision": rev,
        "versions": {
            "rustc": sh(["rustc", "-V"]).removeprefix("rustc "),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "h5py": h5py.__version__,
            "ripser": ripser.__version__,
            "giotto-ph": gph.__version__,
        },
    }




# Our two rows: the engine timed inside the benchmark program, and `tglml ph`
# timed as a whole process (start-up, reading, writing included).
OURS = {"tglml": "ours (in-process)", "tglml-process": "`tglml ph` as a process"}
TGLML = os.path.join(ROOT, "target", "release", "tglml")


def fmt_r(r):
    return "–" if r is None else f"{r:.2f}"


def summarise(results):
    """Adds median, peak MiB and ratios (ours / peer) to every result row."""
    by = {}
    for r in results:
        r["median_s"] = statistics.median(r["seconds"])
        r["min_s"] = min(r["seconds"])
        r["peak_mib"] = r["peak_kib"] / 1024.0
        r["pre_call_mib"] = (r["pre_call_kib"] / 1024.0
                             if r.get("pre_call_kib") else None)
        # Distances: ours computes them inside the timed call; the peers'
        # cdist matrix is made before their clock starts (informational).
        if r["tool"] == "tglml-process":
            r["distance_s"] = None
        elif r["tool"] == "tglml":
            r["distance_s"] = statistics.median(r["distance_seconds"])
            r["persistence_only_s"] = statistics.median(
                a - b for a, b in zip(r["seconds"], r["distance_seconds"]))
        else:
            r["distance_s"] = r.get("cdist_seconds")
        by[(r["workload"], r["tool"], r["threads"])] = r
    for r in results:
        r["ratios"] = {}
        if r["tool"] not in OURS:
            continue
        for peer, pt in (("ripser", 1), ("giotto-ph", r["threads"])):
            p = by.get((r["workload"], peer, pt))
            if p:
                r["ratios"][peer] = {
                    "time": r["median_s"] / p["median_s"],
                    "memory": r["peak_mib"] / p["peak_mib"]}


def check_counts(results):
    """Per workload: do all runs report the same bars per dimension?"""
    agree = {}
    for r in results:
        agree.setdefault(r["workload"], {})[
            f"{r['tool']} {r['threads']}t"] = r["bars"]
    out = {}
    for w, d in agree.items():
        distinct = {tuple(v) for v in d.values()}
        out[w] = {"agree": len(distinct) == 1, "bars": d}
    return out


def table(results, workloads_info):
    lines = [
        "| workload | ours' input | tool | threads | median s | min s | "
        "distances s | peak MiB | pre-call MiB | time ours/ripser | "
        "time ours/giotto-ph | mem ours/ripser | mem ours/giotto-ph |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |"]
    for r in results:
        ra = r["ratios"]
        kind = workloads_info[r["workload"]]["ours_input"]
        lines.append(
            f"| {r['workload']} | {kind} | {r['tool']} | {r['threads']} | "
            f"{fmt_s(r['median_s'])}{' ⚠' if suspect(r) else ''} | {fmt_s(r['min_s'])} | "
            f"{fmt_dist(r)} | {r['peak_mib']:.1f} | {fmt_mib(r['pre_call_mib'])} | "
            f"{fmt_r(ra.get('ripser', {}).get('time'))} | "
            f"{fmt_r(ra.get('giotto-ph', {}).get('time'))} | "
            f"{fmt_r(ra.get('ripser', {}).get('memory'))} | "
            f"{fmt_r(ra.get('giotto-ph', {}).get('memory'))} |")
    return "\n".join(lines)


def fmt_dist(r):
    d = r.get("distance_s")
    if d is None:
        return "–"
    return fmt_s(d) if r["tool"] == "tglml" else f"({fmt_s(d)})"




def counts_table(counts):
    lines = ["| workload | bars per dimension (H0 / H1 / ...) | all tools agree |",
             "| --- | --- | --- |"]
    for w, c in counts.items():
        if c["agree"]:
            bars = " / ".join(map(str, next(iter(c["bars"].values()))))
        else:
            bars = "; ".join(f"{k}: {' / '.join(map(str, v))}"
                             for k, v in c["bars"].items())
        lines.append(f"| {w} | {bars} | "
                     f"{'yes' if c['agree'] else '**NO**'} |")
    return "\n".join(lines)


def losses(results):
    """Lines naming every (workload, threads, peer) where ours is slower,
    with the ratio when ours' distance computation is left out."""
    by = {(r["workload"], r["tool"], r["threads"]): r for r in results}
    out = []
    for r in results:
        for peer, ra in r["ratios"].items():
            if ra["time"] > 1.0:
                pt = 1 if peer == "ripser" else r["threads"]
                p = by[(r["workload"], peer, pt)]
                line = (f"- {r['workload']}: {OURS[r['tool']]} ({r['threads']} thread"
                        f"{'s' if r['threads'] > 1 else ''}) takes "
                        f"{ra['time']:.2f}x the time of {peer} ({pt} "
                        f"thread{'s' if pt > 1 else ''})")
                if "persistence_only_s" in r:
                    line += (f"; without ours' distance matrix "
                             f"{r['persistence_only_s'] / p['median_s']:.2f}x")
                out.append(line)
    return out or ["- none: ours is at least as fast as every peer on every "
                   "workload"]


def report(env, info, results, counts, args):
    v = env["versions"]
    md = [f"# Rips persistence benchmark: results of {env['date'][:10]}", "",
          "Made by `make bench-ph` (`benches/ph/run.py"
          + (f" {' '.join(sys.argv[1:])}" if sys.argv[1:] else "") + "`); "
          "how to read it: benches/ph/README.md.", "",
          f"- date: {env['date']}",
          f"- machine: {env['cpu']}, {env['cpus']} CPUs; `{env['uname']}`",
          f"- load average (1/5/15 min) at start: "
          f"{' / '.join(f'{x:.2f}' for x in env['loadavg_start'])}; at end: "
          f"{' / '.join(f'{x:.2f}' for x in env['loadavg_end'])}",
          f"- TGLML revision: {env['tglml_revision']}",
          f"- peak RSS floor (what `echo` reports through the same launcher):"
          f" {env['rss_floor_kib'] / 1024:.1f} MiB",
          "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
          f"- timed calls per tool and workload: {args.repeat} "
          f"(batch case: {args.batch_repeat}); medians reported",
          f"- total wall time of the run: {env['total_wall_s']:.0f} s",
          "", "## Workloads", "",
          "| workload | description | ours' input |", "| --- | --- | --- |"]
    for w, i in info.items():
        md.append(f"| {w} | {i['description']} | {i['ours_input']} |")
    md += ["", "`points`: TGLML reads the points and computes its own distance "
           "matrix inside the timed region; Ripser and giotto-ph get a float64 "
           "`scipy.spatial.distance.cdist` matrix computed before their clock "
           "starts. `dm`: every tool gets the same float64 distance matrix "
           "(TGLML converts it inside the timed region).",
           "", "## Times and memory", "",
           "Median s and min s are over the timed calls. distances s: for "
           "TGLML the part of its median call spent on the distance matrix "
           "(included in its time); in parentheses, for Ripser and giotto-ph, "
           "the untimed scipy cdist that made their input (not included). ",
           "",
           "Ratios are ours / peer (below 1: ours is faster or smaller); "
           "giotto-ph is compared at the same thread count, Ripser is "
           "single-threaded. Peak MiB is the peak RSS of the whole process "
           "(interpreter or program, libraries, input); pre-call MiB is its "
           "high-water mark just before the first timed call.", "",
           table(results, info), ""]
    busy = [r for r in results if suspect(r)]
    if busy:
        md += [f"⚠ = during this run the rest of the machine used more than "
               f"{BUSY} cores on average and {BUSY_S} CPU seconds in all "
               "(another job was running); its timings are suspect: "
               + "; ".join(f"{r['workload']} {r['tool']} {r['threads']}t "
                           f"({r['other_cpu']:.2f} cores)" for r in busy), ""]
    else:
        md += [f"No run saw other load above {BUSY} cores on average "
               f"(and {BUSY_S} CPU seconds in all; machine-wide CPU time from "
               "/proc/stat minus the run's own).", ""]
    md += ["## Bar counts", "",
           counts_table(counts), "", "## Where ours is slower", ""]
    md += losses(results)
    md += ["", "## Raw numbers (seconds of every timed call)", "",
           "| workload | tool | threads | seconds | peak KiB | subprocess "
           "wall s | other load (cores) |",
           "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for r in results:
        md.append(f"| {r['workload']} | {r['tool']} | {r['threads']} | "
                  f"{', '.join(f'{s:.4f}' for s in r['seconds'])} | "
                  f"{r['peak_kib']} | {r['wall_s']:.2f} | "
                  f"{r['other_cpu']:.2f} |")
    return "\n".join(md) + "\n"


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

SCRATCH = os.path.join(ROOT, "target", "bench-ph")


def main():
    global SCRATCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", choices=["ripser", "giotto-ph", "tglml-process"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--spawner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--ours-input", choices=("dm", "points"), default="dm",
                    help="what TGLML computes from for point clouds: the same "
                    "float64 distance matrix the peers get (dm, default: a "
                    "like-for-like comparison of the engines), or the points "
                    "(its own distance computation inside its timed call)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batch-repeat", type=int, default=20)
    ap.add_argument("--scratch", default=SCRATCH)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--bench-bin", default=None)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--wait-idle", type=float, default=300.0)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.input, int(args.threads), args.repeat)
        return
    if args.spawner:
        spawner_loop()
        return
    # Before anything large is imported (see spawner_loop).
    spawner = Spawner()
    if args.quick:
        args.repeat = 1
        args.batch_repeat = 3
    if args.repeat < 1 or args.batch_repeat < 1:
        raise SystemExit("--repeat and --batch-repeat must be >= 1")
    threads = [int(t) for t in args.threads.split(",")]
    SCRATCH = os.path.abspath(args.scratch)
    os.makedirs(SCRATCH, exist_ok=True)
    out_dir = args.out_dir or (SCRATCH if args.quick else HERE)
    # A private copy: a concurrent `cargo bench` must not replace the program
    # in the middle of a run.
    bench_bin = os.path.join(SCRATCH, "ph-bench")
    shutil.copy2(args.bench_bin or find_bench_bin(), bench_bin)
    env = environment()
    t_start = time.monotonic()

    def say(msg):
        print(f"[bench-ph] {msg}", file=sys.stderr, flush=True)

    # (a) inputs
    only = set(filter(None, args.only.split(",")))
    info, jobs = {}, []
    for name, desc, build in workloads(args.quick):
        if only and name not in only:
            continue
        h5 = os.path.join(SCRATCH, f"{name}.h5")
        w = build()
        write_h5(h5, w, with_dm=args.ours_input == "dm")
        info[name] = {"description": desc, "file": h5,
                      "ours_input": "points" if "x" in w and args.ours_input == "points" else "dm"}
        jobs.append((name, h5, None, args.repeat))
        say(f"wrote {os.path.relpath(h5, ROOT)}")
    bname = f"batch{BATCH['n']}x{BATCH['d']}_h1"
    if not only or bname in only:
        h5 = os.path.join(SCRATCH, f"{bname}.h5")
        # The batch is drawn by the benchmark program itself; this untimed
        # call saves it so that the Python tools see the same points.
        cmd = [bench_bin, "--batch", str(BATCH["n"]), "--dim", str(BATCH["d"]),
               "--seed", str(BATCH["seed"]), "--repeat", "1", "--save-batch",
               h5]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        info[bname] = {"description": f"training-loss batch: {BATCH['n']} "
                       f"standard-normal pts in R^{BATCH['d']} (ChaCha8 seed "
                       f"{BATCH['seed']}, drawn by the Rust program), maxdim 1",
                       "file": h5, "ours_input": "points (in-process batch)"}
        jobs.append((bname, h5, BATCH, args.batch_repeat))
        say(f"wrote {os.path.relpath(h5, ROOT)}")

    # (b) runs
    results = []
    for name, h5, batch, repeat in jobs:
        for tool, t in tool_runs(threads):
            cmd = command(tool, t, repeat, bench_bin, h5=h5, batch=batch,
                          use_dm=args.ours_input == "dm")
            waited = wait_idle(args.wait_idle, say)
            res, peak, wall = spawner.run(cmd, args.timeout)
            res.update(workload=name, tool=tool, threads=t,
                       peak_kib=res.get("process_peak_kib", peak),
                       wall_s=wall, waited_for_idle_s=waited)
            results.append(res)
            say(f"{name:24s} {tool:9s} {t}t  median "
                f"{statistics.median(res['seconds']):9.4f} s  peak "
                f"{peak / 1024:7.1f} MiB  bars {res['bars']}"
                + (f"  (other load {res['other_cpu']:.2f} cores!)"
                   if suspect(res) else ""))

    # The smallest peak RSS the spawner can report: a child that does nothing.
    _, floor, _ = spawner.run(["echo", "{}"], 60)
    env["rss_floor_kib"] = floor
    spawner.close()

    # (c) bar counts
    counts = check_counts(results)
    bad = [w for w, c in counts.items() if not c["agree"]]
    for w in bad:
        say("!" * 72)
        say(f"WARNING: BAR COUNTS DISAGREE on {w}: {counts[w]['bars']}")
        say("!" * 72)

    # (d) report
    summarise(results)
    env["loadavg_end"] = os.getloadavg()
    env["total_wall_s"] = time.monotonic() - t_start
    md = report(env, info, results, counts, args)
    stem = os.path.join(out_dir, f"results-{env['date'][:10]}")
    os.makedirs(out_dir, exist_ok=True)
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".json", "w") as f:
        json.dump({"environment": env, "workloads": info, "results": results,
                   "bar_counts": counts,
                   "settings": {"repeat": args.repeat,
                                "batch_repeat": args.batch_repeat,
                                "threads": threads, "quick": args.quick}},
                  f, indent=1)
        f.write("\n")
    print(table(results, info))
    print()
    print(counts_table(counts))
    print()
    print("\n".join(losses(results)))
    say(f"wrote {os.path.relpath(stem, ROOT)}.md and .json")
    if bad:
        say(f"WARNING: bar counts disagree on {', '.join(bad)}")
        sys.exit(2)


if __name__ == "__main__":
    main()
