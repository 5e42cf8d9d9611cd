"""Persistence-diagram distance benchmark: TGLML's exact Wasserstein and
bottleneck distances, GUDHI, POT and persim side by side on the same diagram
pairs (benches/diagrams/README.md).

Usage (from the repository root; `make bench-diagrams` does all of it):

    bash scripts/setup-bench.sh
    cargo bench --bench diagrams --no-run
    ~/.cache/tglml/bench-venv/bin/python benches/diagrams/run.py [options]

Options:
    --repeat R        timed calls per tool, distance and size (default 3)
    --quick           small smoke run: sizes 100 and 300, results written
                      under the scratch folder instead of benches/diagrams/
    --sizes N,N       points per diagram (default 100,1000,5000)
    --only A,B        only these distances (W1, W2, W1-L2, bottleneck)
    --tools A,B       only these tools (tglml always runs; default: all)
    --shape S         the diagrams (see `diagram` below): exponential
                      (default), uniform (every point far from the
                      diagonal) or births0 (H0-like: every birth 0)
    --hera-delta D    Hera's relative error bound (default 0.01)
    --timeout S       one call may take at most S seconds (default 120): a
                      tool whose call runs longer is stopped and recorded as
                      "timeout" for that size, and not run at larger sizes
    --scratch DIR     where the generated diagrams go (default
                      target/bench-diagrams)
    --out-dir DIR     where results-YYYY-MM-DD.{md,json} go (default
                      benches/diagrams, or the scratch folder with --quick)
    --bench-bin PATH  the benchmark program (default: asked from cargo)
    --wait-idle S     before each tool run, wait up to S seconds (default 300)
                      for the rest of the machine to be idle

What is measured (per size, per distance, per tool; one subprocess each,
which makes the R timed calls one after the other):
  * seconds: the tool's own compute time, measured inside its process around
    the call only (time.perf_counter / std::time::Instant); the median of the
    R calls is reported. For POT only `ot.emd2` is timed: the cost matrix is
    built before the clock starts (its time is reported beside).
  * peak MiB: the peak resident set size of that subprocess (ru_maxrss from
    os.wait4, through a small launcher process; see benches/ph/run.py).
  * the value, checked against GUDHI's exact value: TGLML's must agree within
    1e-9 relative (a loud warning and exit status 2 otherwise).

The diagrams are generated deterministically (numpy default_rng, fixed seeds).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from benchlib import (BUSY, BUSY_S, WORKER_ENV, busy_cpu_seconds,  # noqa: E402
                      fmt_mib, fmt_s, sh, spawner_loop, vm_hwm_kib, wait_idle)

# Timings of a run during which the rest of the machine was busy (benchlib's
# BUSY, BUSY_S) are marked as suspect in the report.
# TGLML's value must equal GUDHI's exact value within this relative error.
TOL = 1e-9


def suspect(r):
    return (r.get("other_cpu", 0.0) > BUSY
            and r["other_cpu"] * r["wall_s"] > BUSY_S)


# Workers run with benchlib's WORKER_ENV (single-threaded BLAS/OpenMP);
# every tool here is single-threaded and TGLML is given one rayon thread.

# The distances compared: name -> (metric, p, ground, description).
CASES = {
    "W1": ("wasserstein", 1.0, "linf",
           "1-Wasserstein, L∞ ground metric (GUDHI's default internal_p=inf)"),
    "W2": ("wasserstein", 2.0, "linf", "2-Wasserstein, L∞ ground metric"),
    "W1-L2": ("wasserstein", 1.0, "l2",
              "1-Wasserstein, Euclidean ground metric (persim's definition)"),
    "bottleneck": ("bottleneck", None, "linf", "bottleneck, L∞"),
}

# The tools run on each distance, ours first. The first exact peer listed in
# REFERENCE that has a value is the reference of the value check.
TOOLS = {
    "W1": ["tglml", "gudhi", "pot", "gudhi-hera"],
    "W2": ["tglml", "gudhi", "pot", "gudhi-hera"],
    "W1-L2": ["tglml", "gudhi", "persim"],
    "bottleneck": ["tglml", "gudhi", "gudhi-approx", "persim"],
}
REFERENCE = ["gudhi", "pot"]
PEERS = ["gudhi", "pot", "gudhi-hera", "gudhi-approx", "persim"]


def call_text(tool, case):
    """What a tool's timed call is, in words (for the report)."""
    metric, p, ground, _ = CASES[case]
    ip = "np.inf" if ground == "linf" else "2"
    if tool == "tglml":
        if metric == "bottleneck":
            return "`bottleneck(&a, &b, Ground::LInf, Essential::Match)`"
        g = "LInf" if ground == "linf" else "L2"
        return (f"`wasserstein(&a, &b, {p:g}, Ground::{g}, Essential::Match)`")
    if tool == "gudhi":
        if metric == "bottleneck":
            return "`gudhi.bottleneck_distance(a, b, e=0)`"
        return (f"`gudhi.wasserstein.wasserstein_distance(a, b, order={p:g}, "
                f"internal_p={ip})` (POT backend)")
    if tool == "gudhi-approx":
        return "`gudhi.bottleneck_distance(a, b)` (default e=None)"
    if tool == "gudhi-hera":
        return (f"`gudhi.hera.wasserstein_distance(a, b, order={p:g}, "
                f"internal_p={ip}, delta={HERA_DELTA:g})`")
    if tool == "pot":
        return (f"`ot.emd2(wa, wb, M, numItermax=2000000) ** (1/{p:g})` on "
                "GUDHI's (n+1)×(m+1) cost matrix (matrix untimed)")
    if tool == "persim":
        if metric == "bottleneck":
            return "`persim.bottleneck(a, b)`"
        return "`persim.wasserstein(a, b)`"
    raise ValueError(tool)


def exactness(tool):
    return {"gudhi-hera": f"approx. (relative error ≤ {HERA_DELTA:g}: "
                          f"delta={HERA_DELTA:g})",
            "gudhi-approx": "near-exact (additive e = smallest double; last "
                            "bits may be wrong)"}.get(tool, "exact")


# ----------------------------------------------------------------------------
# Worker: one Python tool, one distance, one input, R timed calls, JSON line
# ----------------------------------------------------------------------------



def gudhi_cost_matrix(X, Y, order, internal_p):
    """GUDHI's (n+1) x (m+1) cost matrix and OT weights, exactly as
    gudhi/wasserstein/wasserstein.py builds them (_dist_to_diag,
    _build_dist_matrix and the weights in wasserstein_distance)."""
    import numpy as np
    import scipy.spatial.distance as sc
    Cxd = ((X[:, 1] - X[:, 0]) * 2 ** (1.0 / internal_p - 1)) ** order
    Cdy = ((Y[:, 1] - Y[:, 0]) * 2 ** (1.0 / internal_p - 1)) ** order
    if np.isinf(internal_p):
        C = sc.cdist(X, Y, metric="chebyshev") ** order
    else:
        C = sc.cdist(X, Y, metric="minkowski", p=internal_p) ** order
    Cf = np.hstack((C, Cxd[:, None]))
    Cdy = np.append(Cdy, 0)
    M = np.vstack((Cf, Cdy[None, :]))
    n, m = len(X), len(Y)
    wa = np.ones(n + 1)
    wa[-1] = m
    wb = np.ones(m + 1)
    wb[-1] = n
    return M, wa, wb


def worker(tool, path, case, repeat, timeout):
    import h5py
    import numpy as np

    metric, p, ground, _ = CASES[case]
    internal_p = np.inf if ground == "linf" else 2.0
    with h5py.File(path, "r") as f:
        a = np.ascontiguousarray(f["a"][()], dtype=np.float64)
        b = np.ascontiguousarray(f["b"][()], dtype=np.float64)
    prep_s = None
    if tool == "gudhi" and metric == "wasserstein":
        import gudhi.wasserstein

        def call():
            return gudhi.wasserstein.wasserstein_distance(
                a, b, order=p, internal_p=internal_p)
    elif tool == "gudhi" and metric == "bottleneck":
        import gudhi

        def call():
            return gudhi.bottleneck_distance(a, b, e=0)
    elif tool == "gudhi-approx" and metric == "bottleneck":
        import gudhi

        def call():
            return gudhi.bottleneck_distance(a, b)
    elif tool == "gudhi-hera" and metric == "wasserstein":
        import gudhi.hera

        def call():
            return gudhi.hera.wasserstein_distance(
                a, b, order=p, internal_p=internal_p, delta=HERA_DELTA)
    elif tool == "pot" and metric == "wasserstein":
        import ot
        # The diagrams are finite: GUDHI's _finite_part keeps every row.
        t0 = time.perf_counter()
        M, wa, wb = gudhi_cost_matrix(a, b, p, internal_p)
        prep_s = time.perf_counter() - t0

        def call():
            return ot.emd2(wa, wb, M, numItermax=2000000) ** (1.0 / p)
    elif tool == "persim" and metric == "bottleneck":
        import persim

        def call():
            return persim.bottleneck(a, b)
    elif tool == "persim" and case == "W1-L2":
        import persim

        def call():
            return persim.wasserstein(a, b)
    else:
        raise SystemExit(f"no {tool} run for {case}")
    # A call still running after `timeout` seconds ends the process
    # (SIGALRM, default action): C++ code holding the GIL cannot be
    # interrupted otherwise.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    pre = vm_hwm_kib()
    seconds, values, caught = [], [], []
    for _ in range(repeat):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            t0 = time.perf_counter()
            v = call()
            seconds.append(time.perf_counter() - t0)
            signal.setitimer(signal.ITIMER_REAL, 0)
        values.append(float(v))
        caught += [f"{x.category.__name__}: {x.message}" for x in w]
    if len({v.hex() for v in values}) != 1:
        raise SystemExit(f"values differ between repeats: {values}")
    print(json.dumps(dict(tool=tool, input=path, metric=metric, p=p,
                          ground=ground, n_a=len(a), n_b=len(b),
                          seconds=seconds, value=values[-1],
                          prep_seconds=prep_s,
                          warnings=sorted(set(caught)),
                          pre_call_kib=pre)))


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------

# The diagram shapes of --shape, in words (for the report).
SHAPES = {
    "exponential": "births uniform in [0, 1), persistence exponential with "
                   "scale 0.3, 2% of the points within 1e-3 of the diagonal",
    "uniform": "births uniform in [0, 1), persistence uniform in [0, 1) "
               "(most points far from the diagonal)",
    "births0": "every birth 0 (an H0 diagram), deaths uniform in [0, 1)",
}


def diagram(n, seed, shape="exponential"):
    """n finite points of the given shape (SHAPES); rows shuffled."""
    import numpy as np
    rng = np.random.default_rng(seed)
    if shape == "exponential":
        k = max(1, n // 50)
        births = rng.uniform(0.0, 1.0, n)
        pers = np.r_[rng.exponential(0.3, n - k), rng.uniform(0.0, 1e-3, k)]
    elif shape == "uniform":
        births = rng.uniform(0.0, 1.0, n)
        pers = rng.uniform(0.0, 1.0, n)
    elif shape == "births0":
        births = np.zeros(n)
        pers = rng.uniform(0.0, 1.0, n)
    else:
        raise ValueError(shape)
    x = np.c_[births, births + pers]
    return x[rng.permutation(n)]


def write_pair(path, n, shape):
    import h5py
    import numpy as np
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.create_dataset("a", data=diagram(n, 4000 + n, shape))
        f.create_dataset("b", data=diagram(n, 5000 + n, shape))
        f.attrs["n"] = np.int64(n)
        f.attrs["shape"] = shape
        f.attrs["seeds"] = np.array([4000 + n, 5000 + n], dtype=np.int64)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------
# Running tools (the launcher is the one of benches/ph/run.py)
# ----------------------------------------------------------------------------

def find_bench_bin():
    out = subprocess.run(
        ["cargo", "bench", "--bench", "diagrams", "--no-run",
         "--message-format=json"],
        cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit("cargo bench --bench diagrams --no-run failed")
    exe = None
    for line in out.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact"
                and msg.get("target", {}).get("name") == "diagrams"
                and "bench" in msg.get("target", {}).get("kind", [])
                and msg.get("executable")):
            exe = msg["executable"]
    if not exe:
        raise SystemExit("cargo did not report the diagrams benchmark "
                         "executable")
    return exe






class ToolTimeout(Exception):
    pass


class Spawner:
    """Client of spawner_loop (start it before importing numpy)."""

    def __init__(self):
        self.p = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--spawner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, cmd, timeout):
        """Runs cmd; returns (JSON of its last `{` stdout line, peak RSS KiB,
        wall seconds, other load). Raises ToolTimeout when a call outlived its
        limit: exit status 124 (TGLML's watchdog), SIGALRM (the Python
        workers' timer) or the launcher's own limit `timeout`."""
        out_path = os.path.join(SCRATCH, "child.out")
        err_path = os.path.join(SCRATCH, "child.err")
        self.p.stdin.write(json.dumps({"cmd": cmd, "stdout": out_path,
                                       "stderr": err_path,
                                       "timeout": timeout}) + "\n")
        self.p.stdin.flush()
        ans = json.loads(self.p.stdout.readline())
        with open(out_path) as f:
            stdout = f.read()
        if ans["timed_out"] or ans["rc"] in (124, -signal.SIGALRM):
            raise ToolTimeout(ans)
        if ans["rc"] != 0:
            with open(err_path) as f:
                raise RuntimeError(f"exit {ans['rc']}: {' '.join(cmd)}\n"
                                   + f.read()[-3000:])
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"no JSON from {' '.join(cmd)}:\n"
                               + stdout[-2000:])
        return json.loads(lines[-1]), ans

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def command(tool, case, h5, repeat, timeout, bench_bin):
    metric, p, ground, _ = CASES[case]
    if tool == "tglml":
        cmd = [bench_bin, "--input", h5, "--metric", metric, "--repeat",
               str(repeat), "--timeout", str(timeout), "--threads", "1"]
        if metric == "wasserstein":
            cmd += ["--p", str(p), "--ground", ground]
        return cmd
    return [sys.executable, os.path.abspath(__file__), "--worker", tool,
            "--input", h5, "--case", case, "--repeat", str(repeat),
            "--timeout", str(timeout), "--hera-delta", repr(HERA_DELTA)]




# ----------------------------------------------------------------------------
# Environment and report
# ----------------------------------------------------------------------------



def environment():
    from importlib.metadata import version
    import h5py
    import numpy
    import scipy
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
            "gudhi": version("gudhi"),
            "pot": version("pot"),
            "persim": version("persim"),
        },
    }






def summarise(results):
    """Adds medians, MiB, reference values, relative differences and the
    ratios ours / this tool to every row."""
    by = {(r["n"], r["case"], r["tool"]): r for r in results}
    for r in results:
        if r["status"] != "ok":
            continue
        r["median_s"] = statistics.median(r["seconds"])
        r["min_s"] = min(r["seconds"])
        r["peak_mib"] = r["peak_kib"] / 1024.0
        r["pre_call_mib"] = (r["pre_call_kib"] / 1024.0
                             if r.get("pre_call_kib") else None)
    for r in results:
        ref = None
        for t in REFERENCE:
            q = by.get((r["n"], r["case"], t))
            if q and q["status"] == "ok":
                ref = q
                break
        r["reference"] = ref["tool"] if ref else None
        if ref and r["status"] == "ok":
            x, y = r["value"], ref["value"]
            r["rel_diff"] = abs(x - y) / abs(y) if y else abs(x - y)
        else:
            r["rel_diff"] = None
        # ours / this tool: a number, or a bound when one side timed out.
        r["ratio"] = None
        ours = by.get((r["n"], r["case"], "tglml"))
        if r["tool"] == "tglml" or not ours:
            continue
        if ours["status"] == "ok" and r["status"] == "ok":
            r["ratio"] = {"time": ours["median_s"] / r["median_s"],
                          "memory": ours["peak_mib"] / r["peak_mib"]}
        elif ours["status"] == "timeout" and r["status"] == "ok":
            r["ratio"] = {"time_above": ours["limit_s"] / r["median_s"]}
        elif ours["status"] == "ok" and r["status"] == "timeout":
            r["ratio"] = {"time_below": ours["median_s"] / r["limit_s"]}


def fmt_ratio(r, what="time"):
    ra = r.get("ratio")
    if not ra:
        return "–"
    if what == "memory":
        return f"{ra['memory']:.2f}" if "memory" in ra else "–"
    if "time" in ra:
        return f"{ra['time']:.2f}"
    if "time_above" in ra:
        return f"> {ra['time_above']:.0f}" if ra["time_above"] >= 10 \
            else f"> {ra['time_above']:.1f}"
    return f"< {ra['time_below']:.2f}"


def fmt_status(r):
    if r["status"] == "timeout":
        if r.get("skipped"):
            return f"timeout (not run: timed out at {r['skipped']} points)"
        return f"timeout (> {r['limit_s']:g} s)"
    if r["status"] == "error":
        return "error"
    return None


def fmt_value(r):
    return repr(r["value"]) if r["status"] == "ok" else "–"


def fmt_diff(r):
    if r["tool"] == r.get("reference"):
        return "(reference)"
    d = r.get("rel_diff")
    if d is None:
        return "–"
    mark = " **!**" if r["tool"] == "tglml" and d > TOL else ""
    return f"{d:.1e}{mark}"


def table(results):
    lines = [
        "| points | distance | tool | median s | min s | peak MiB | "
        "pre-call MiB | value | rel. diff to reference | time ours/this | "
        "mem ours/this |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: "
        "| ---: |"]
    for r in results:
        st = fmt_status(r)
        if st:
            lines.append(f"| {r['n']:,} | {r['case']} | {r['tool']} | {st} | "
                         f"– | – | – | – | – | {fmt_ratio(r)} | – |")
            continue
        lines.append(
            f"| {r['n']:,} | {r['case']} | {r['tool']} | "
            f"{fmt_s(r['median_s'])}{' ⚠' if suspect(r) else ''} | "
            f"{fmt_s(r['min_s'])} | {r['peak_mib']:.1f} | "
            f"{fmt_mib(r['pre_call_mib'])} | {fmt_value(r)} | {fmt_diff(r)} | "
            f"{fmt_ratio(r)} | {fmt_ratio(r, 'memory')} |")
    return "\n".join(lines)


def ratio_table(results, sizes):
    """Time ratios ours / peer, one row per (size, distance)."""
    by = {(r["n"], r["case"], r["tool"]): r for r in results}
    lines = ["| points | distance | ours median s | "
             + " | ".join(PEERS) + " | ours / fastest peer |",
             "| ---: | --- | ---: | " + " | ".join("---:" for _ in PEERS)
             + " | ---: |"]
    for n in sizes:
        for case in CASES:
            ours = by.get((n, case, "tglml"))
            if not ours:
                continue
            o = (fmt_s(ours["median_s"]) if ours["status"] == "ok"
                 else fmt_status(ours))
            cells = []
            for p in PEERS:
                r = by.get((n, case, p))
                cells.append("·" if r is None else fmt_ratio(r))
            lines.append(f"| {n:,} | {case} | {o} | " + " | ".join(cells)
                         + f" | {fastest(by, n, case)} |")
    return "\n".join(lines)


def fastest(by, n, case):
    """Ours over the fastest peer that finished (exact or not): a number, a
    bound when ours timed out, or – when no peer finished."""
    ours = by.get((n, case, "tglml"))
    done = [by[(n, case, p)] for p in PEERS
            if (n, case, p) in by and by[(n, case, p)]["status"] == "ok"]
    if not ours or not done:
        return "–"
    best = min(done, key=lambda r: r["median_s"])
    if ours["status"] == "ok":
        return f"{ours['median_s'] / best['median_s']:.2f} ({best['tool']})"
    if ours["status"] == "timeout":
        return f"> {ours['limit_s'] / best['median_s']:.2f} ({best['tool']})"
    return "–"


def losses(results):
    """Lines naming every (size, distance, peer) where ours is slower."""
    out = []
    for r in results:
        ra = r.get("ratio")
        if not ra:
            continue
        what = f"- {r['n']:,} points, {r['case']}: ours "
        if "time" in ra and ra["time"] > 1.0:
            out.append(what + f"takes {ra['time']:.2f}x the time of "
                       f"{r['tool']} ({fmt_s(r['median_s'])} s)")
        elif "time_above" in ra:
            out.append(what + f"timed out (one call > {r['limit_s']:g} s) "
                       f"where {r['tool']} takes {fmt_s(r['median_s'])} s: "
                       f"more than {fmt_ratio(r)[2:]}x slower")
    return out or ["- none: ours is at least as fast as every peer at every "
                   "size"]


def value_check(results):
    """(ok, lines): TGLML's values against the reference."""
    lines, ok = [], True
    for r in results:
        if r["tool"] != "tglml":
            continue
        where = f"{r['n']:,} points, {r['case']}"
        if r["status"] == "error":
            ok = False
            lines.append(f"- {where}: ours **FAILED**: not checked")
        elif r["status"] != "ok":
            lines.append(f"- {where}: ours {fmt_status(r)}: not checked")
        elif r["reference"] is None:
            lines.append(f"- {where}: no exact peer value: not checked")
        else:
            good = r["rel_diff"] <= TOL
            ok &= good
            lines.append(f"- {where}: ours {r['value']!r}, {r['reference']} "
                         f"{by_ref(results, r)!r}: relative difference "
                         f"{r['rel_diff']:.1e} "
                         + ("(ok)" if good else f"**ABOVE {TOL:g}**"))
    return ok, lines


def by_ref(results, r):
    for q in results:
        if (q["n"], q["case"], q["tool"]) == (r["n"], r["case"],
                                               r["reference"]):
            return q["value"]
    return None


def report(env, results, sizes, args, ok, check_lines):
    v = env["versions"]
    md = [f"# Persistence-diagram distance benchmark: results of "
          f"{env['date'][:10]}", "",
          "Made by `make bench-diagrams` (`benches/diagrams/run.py"
          + (f" {' '.join(sys.argv[1:])}" if sys.argv[1:] else "") + "`); "
          "how to read it: benches/diagrams/README.md.", "",
          f"- date: {env['date']}",
          f"- machine: {env['cpu']}, {env['cpus']} CPUs; `{env['uname']}`",
          f"- load average (1/5/15 min) at start: "
          f"{' / '.join(f'{x:.2f}' for x in env['loadavg_start'])}; at end: "
          f"{' / '.join(f'{x:.2f}' for x in env['loadavg_end'])}",
          f"- TGLML revision: {env['tglml_revision']}",
          f"- peak RSS floor (what `echo` reports through the same launcher):"
          f" {env['rss_floor_kib'] / 1024:.1f} MiB",
          "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
          f"- timed calls per tool, distance and size: {args.repeat}; medians "
          "reported",
          f"- time limit of one call: {args.timeout:g} s",
          f"- total wall time of the run: {env['total_wall_s']:.0f} s",
          "", "## Inputs", "",
          "Two diagrams `a`, `b` per size, n finite points each "
          f"(`target/bench-diagrams/{pair_name('<n>')}`, `/a` and `/b`): "
          f"shape `{SHAPE}`: {SHAPES[SHAPE]}; numpy `default_rng` seeds "
          "4000 + n and 5000 + n.", "", "## Calls", "",
          "| distance | tool | timed call | exact |",
          "| --- | --- | --- | --- |"]
    for case, tools in TOOLS.items():
        if case not in {r["case"] for r in results}:
            continue
        for t in tools:
            md.append(f"| {case} | {t} | {call_text(t, case)} | "
                      f"{exactness(t)} |")
    md += ["", "Distances: " + "; ".join(
        f"{c} = {d[3]}" for c, d in CASES.items()) + ". persim's "
        "Wasserstein is W1 with the Euclidean ground metric only, so it is "
        "compared on W1-L2, where GUDHI (internal_p=2) is the exact "
        "reference.", "",
        "## Time ratios ours / peer", "",
        "Median time of ours divided by the peer's (below 1: ours is "
        "faster). `> x`: ours timed out, so it is more than x times "
        "slower; `< x`: the peer timed out; `·`: the peer does not compute "
        "this distance.", "",
        ratio_table(results, sizes), "",
        "## Times, memory and values", "",
        "Median s and min s are over the timed calls. Peak MiB is the peak "
        "RSS of the whole process (interpreter or program, libraries, "
        "input); pre-call MiB is its high-water mark just before the first "
        "timed call. Relative differences are to the reference value (GUDHI's "
        "exact value; POT's where GUDHI has none).", "",
        table(results), ""]
    busy = [r for r in results if r["status"] == "ok" and suspect(r)]
    if busy:
        md += [f"⚠ = during this run the rest of the machine used more than "
               f"{BUSY} cores on average and {BUSY_S} CPU seconds in all "
               "(another job was running); its timings are suspect: "
               + "; ".join(f"{r['n']} {r['case']} {r['tool']} "
                           f"({r['other_cpu']:.2f} cores)" for r in busy), ""]
    else:
        md += [f"No run saw other load above {BUSY} cores on average "
               f"(and {BUSY_S} CPU seconds in all; machine-wide CPU time from "
               "/proc/stat minus the run's own).", ""]
    warned = [r for r in results if r.get("warnings")]
    if warned:
        md += ["Warnings raised by the tools: " + "; ".join(
            f"{r['n']} {r['case']} {r['tool']}: {' / '.join(r['warnings'])}"
            for r in warned), ""]
    md += ["## Value check (ours against the exact reference, "
           f"tolerance {TOL:g} relative)", ""] + check_lines
    md += ["", "all checked values agree" if ok else
           "**SOME VALUES DISAGREE**", "", "## Where ours is slower", ""]
    md += losses(results)
    md += ["", "## Raw numbers (seconds of every timed call)", "",
           "| points | distance | tool | seconds | peak KiB | subprocess "
           "wall s | other load (cores) |",
           "| ---: | --- | --- | --- | ---: | ---: | ---: |"]
    for r in results:
        secs = (", ".join(f"{s:.4f}" for s in r["seconds"])
                if r["status"] == "ok" else fmt_status(r))
        md.append(f"| {r['n']} | {r['case']} | {r['tool']} | {secs} | "
                  f"{r.get('peak_kib', '–')} | "
                  + (f"{r['wall_s']:.2f}" if "wall_s" in r else "–") + " | "
                  + (f"{r['other_cpu']:.2f}" if "other_cpu" in r else "–")
                  + " |")
    return "\n".join(md) + "\n"


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

SCRATCH = os.path.join(ROOT, "target", "bench-diagrams")
SHAPE = "exponential"
HERA_DELTA = 0.01


def pair_name(n):
    return (f"pair{n}.h5" if SHAPE == "exponential"
            else f"pair-{SHAPE}-{n}.h5")


def main():
    global SCRATCH, SHAPE, HERA_DELTA
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    ap.add_argument("--spawner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--only", default="")
    ap.add_argument("--tools", default="")
    ap.add_argument("--shape", choices=list(SHAPES), default="exponential")
    ap.add_argument("--hera-delta", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--scratch", default=SCRATCH)
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--bench-bin", default=None)
    ap.add_argument("--wait-idle", type=float, default=300.0)
    args = ap.parse_args()
    SHAPE, HERA_DELTA = args.shape, args.hera_delta
    if args.worker:
        worker(args.worker, args.input, args.case, args.repeat, args.timeout)
        return
    if args.spawner:
        spawner_loop()
        return
    # Before anything large is imported (see spawner_loop).
    spawner = Spawner()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.quick:
        sizes = [100, 300]
    if args.repeat < 1 or args.timeout <= 0:
        raise SystemExit("--repeat must be >= 1 and --timeout > 0")
    only = set(filter(None, args.only.split(",")))
    if only - set(CASES):
        raise SystemExit(f"--only: unknown {sorted(only - set(CASES))}; "
                         f"choose from {list(CASES)}")
    cases = [c for c in CASES if not only or c in only]
    tools = set(filter(None, args.tools.split(",")))
    if tools - set(PEERS) - {"tglml"}:
        raise SystemExit(f"--tools: unknown {sorted(tools - set(PEERS))}; "
                         f"choose from {PEERS}")
    if tools:
        for c in cases:
            TOOLS[c] = [t for t in TOOLS[c] if t == "tglml" or t in tools]
    SCRATCH = os.path.abspath(args.scratch)
    os.makedirs(SCRATCH, exist_ok=True)
    out_dir = args.out_dir or (SCRATCH if args.quick else HERE)
    # A private copy: a concurrent `cargo bench` must not replace the program
    # in the middle of a run.
    bench_bin = os.path.join(SCRATCH, "diagrams-bench")
    shutil.copy2(args.bench_bin or find_bench_bin(), bench_bin)
    env = environment()
    t_start = time.monotonic()

    def say(msg):
        print(f"[bench-diagrams] {msg}", file=sys.stderr, flush=True)

    # (a) inputs
    files = {}
    for n in sizes:
        h5 = os.path.join(SCRATCH, pair_name(n))
        write_pair(h5, n, SHAPE)
        files[n] = h5
        say(f"wrote {os.path.relpath(h5, ROOT)}")

    # (b) runs; a tool that timed out on a distance is not run on it again
    # at larger sizes.
    results, timed_out_at = [], {}
    for n in sizes:
        for case in cases:
            for tool in TOOLS[case]:
                row = dict(n=n, case=case, tool=tool, exact=exactness(tool),
                           limit_s=args.timeout)
                results.append(row)
                if (case, tool) in timed_out_at:
                    row.update(status="timeout",
                               skipped=timed_out_at[(case, tool)])
                    say(f"{n:6d} {case:10s} {tool:12s} skipped (timed out at "
                        f"{timed_out_at[(case, tool)]} points)")
                    continue
                cmd = command(tool, case, files[n], args.repeat, args.timeout,
                              bench_bin)
                waited = wait_idle(args.wait_idle, say)
                # The launcher's own limit only guards against a hung child;
                # each call's limit is enforced inside the child.
                limit = 60.0 + args.repeat * args.timeout * 1.1
                try:
                    res, ans = spawner.run(cmd, limit)
                except ToolTimeout as e:
                    ans = e.args[0]
                    row.update(status="timeout", peak_kib=ans["maxrss_kib"],
                               wall_s=ans["wall_s"],
                               other_cpu=ans["other_cpu"],
                               waited_for_idle_s=waited)
                    timed_out_at[(case, tool)] = n
                    say(f"{n:6d} {case:10s} {tool:12s} TIMEOUT: one call took "
                        f"more than {args.timeout:g} s (ran "
                        f"{ans['wall_s']:.0f} s)")
                    continue
                except RuntimeError as e:
                    row.update(status="error", error=str(e)[-2000:])
                    say("!" * 72)
                    say(f"{n:6d} {case:10s} {tool:12s} FAILED: {e}")
                    say("!" * 72)
                    continue
                res.update(row)
                res.update(status="ok", peak_kib=ans["maxrss_kib"],
                           wall_s=ans["wall_s"], other_cpu=ans["other_cpu"],
                           waited_for_idle_s=waited)
                results[-1] = res
                say(f"{n:6d} {case:10s} {tool:12s} median "
                    f"{statistics.median(res['seconds']):9.4f} s  peak "
                    f"{ans['maxrss_kib'] / 1024:7.1f} MiB  value "
                    f"{res['value']!r}"
                    + (f"  (other load {ans['other_cpu']:.2f} cores!)"
                       if suspect(res) else "")
                    + (f"  warnings: {res['warnings']}"
                       if res.get("warnings") else ""))

    # The smallest peak RSS the spawner can report: a child that does nothing.
    _, ans = spawner.run(["echo", "{}"], 60)
    env["rss_floor_kib"] = ans["maxrss_kib"]
    spawner.close()

    # (c) values and report
    summarise(results)
    ok, check_lines = value_check(results)
    env["loadavg_end"] = os.getloadavg()
    env["total_wall_s"] = time.monotonic() - t_start
    md = report(env, results, sizes, args, ok, check_lines)
    stem = os.path.join(out_dir, f"results-{env['date'][:10]}"
                        + ("" if SHAPE == "exponential" else f"-{SHAPE}"))
    os.makedirs(out_dir, exist_ok=True)
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".json", "w") as f:
        json.dump({"environment": env, "results": results,
                   "value_check_ok": ok,
                   "settings": {"repeat": args.repeat, "sizes": sizes,
                                "cases": cases, "timeout_s": args.timeout,
                                "tolerance": TOL, "quick": args.quick,
                                "shape": SHAPE, "hera_delta": HERA_DELTA,
                                "tools": TOOLS}},
                  f, indent=1)
        f.write("\n")
    print(ratio_table(results, sizes))
    print()
    print("\n".join(check_lines))
    print()
    print("\n".join(losses(results)))
    say(f"wrote {os.path.relpath(stem, ROOT)}.md and .json")
    if not ok:
        say("!" * 72)
        say(f"WARNING: OURS DISAGREES WITH GUDHI'S EXACT VALUE (tolerance "
            f"{TOL:g} relative): see the value check above")
        say("!" * 72)
        sys.exit(2)


if __name__ == "__main__":
    main()
