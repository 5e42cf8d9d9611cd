#!/usr/bin/env python3
"""Start-up of `tglml` (issue 13, goal 1): wall time and peak memory of whole
processes, ours beside the references that show what the start used to pay,
in one run. Goal: `tglml --help`, `tglml data`, `tglml ph` and `tglml
diagram` start in under 30 ms and 30 MiB when not under an MPI launcher.

Cases (each run R times, one after the other; median and min reported):
  * the commands, on inputs small enough that the start dominates:
    `--help`, `data synth` of 1,000 torus points, `ph` of 30 (H0, H1),
    `diagram distance` between two diagrams of `ph` (and, outside the goal,
    `ph` of 200 points, where persistence takes about 20 ms);
  * references: `/bin/true` (the floor of starting any process here),
    `tglml --help` with TGLML_MPI=always (MPI's singleton start-up, which
    every process paid before 2026-12-01), and `tglml-torch --help` (the
    same program with libtorch linked and loaded, as `tglml` was).

Wall time is from before the fork to after the wait (time.perf_counter),
GNU time's own start included (the /bin/true row); peak memory is the
command's maximum resident set size as GNU time reports it.

Usage: python3 benches/startup/run.py [--repeat R] [--out-dir DIR]
(`make bench-startup`; writes benches/startup/results-DATE.{md,json}).
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
BIN = os.path.join(ROOT, "target", "release")
GOAL_S, GOAL_MIB = 0.030, 30.0


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return "unknown"


TIME = "/usr/bin/time"  # GNU time (Debian's `time`), for the child's own peak RSS


def timed(cmd, env):
    """One run: (wall seconds, peak RSS MiB); fails loudly on an error.

    A forked child's ru_maxrss counts the parent's pages until the exec, so
    from Python it cannot go below the interpreter's ~15 MiB; under GNU time
    (a small C program) the floor is time's own, about 2 MiB (the /bin/true
    row shows it). Without GNU time, os.wait4's figure is used."""
    wrap = [TIME, "-f", "TGLML-BENCH-RSS %M"] if os.access(TIME, os.X_OK) else []
    t0 = time.perf_counter()
    p = subprocess.Popen(wrap + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    kib = ru.ru_maxrss
    for line in err.decode().splitlines():
        if line.startswith("TGLML-BENCH-RSS "):
            kib = int(line.split()[1])
    return wall, kib / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=21)
    ap.add_argument("--out-dir", default=HERE)
    a = ap.parse_args()
    tglml, torch = os.path.join(BIN, "tglml"), os.path.join(BIN, "tglml-torch")
    for b in (tglml, torch):
        if not os.path.isfile(b):
            raise SystemExit(f"{b} is missing: run `cargo build --release` (make build)")
    # Alone: no launcher variables, progress off, file locking off.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_", "SLURM_"))}
    env.update(TGLML_PROGRESS="off", HDF5_USE_FILE_LOCKING="FALSE",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.TemporaryDirectory() as d:
        synth, ph1, ph2 = (os.path.join(d, f) for f in ("s.h5", "a.h5", "b.h5"))
        small = os.path.join(d, "s30.h5")
        for n, out in (("200", synth), ("30", small)):
            subprocess.run([tglml, "data", "synth", "--n", n, "--out", out],
                           check=True, env=env, capture_output=True)
        for out, seed in ((ph1, "1"), (ph2, "2")):
            subprocess.run([tglml, "ph", "--input", synth, "--maxdim", "1",
                            "--landmarks", "150", "--seed", seed, "--out", out],
                           check=True, env=env, capture_output=True)
        cases = [
            ("tglml --help", [tglml, "--help"], {}, True),
            ("tglml data synth --n 1000", [tglml, "data", "synth", "--n", "1000",
                                           "--out", os.path.join(d, "o1.h5")], {}, True),
            ("tglml ph (30 points, H1, 1 thread)",
             [tglml, "ph", "--input", small, "--maxdim", "1", "--threads", "1",
              "--out", os.path.join(d, "o2.h5")], {}, True),
            ("tglml ph (200 points, H1, 1 thread: about 20 ms of persistence)",
             [tglml, "ph", "--input", synth, "--maxdim", "1", "--threads", "1",
              "--out", os.path.join(d, "o3.h5")], {}, False),
            ("tglml diagram distance (H1, p = 2)",
             [tglml, "diagram", "distance", ph1, ph2, "--dim", "1", "--p", "2"], {}, True),
            ("reference: /bin/true", ["/bin/true"], {}, False),
            ("reference: tglml --help, TGLML_MPI=always (MPI initialised)",
             [tglml, "--help"], {"TGLML_MPI": "always"}, False),
            ("reference: tglml-torch --help (libtorch linked)", [torch, "--help"], {}, False),
        ]
        rows = []
        for name, cmd, extra, goal in cases:
            e = dict(env, **extra)
            timed(cmd, e)  # warm the page cache
            runs = [timed(cmd, e) for _ in range(a.repeat)]
            secs, mibs = [r[0] for r in runs], [r[1] for r in runs]
            row = dict(case=name, command=cmd[1:], env=extra, goal=goal, seconds=secs,
                       peak_mib=mibs, median_s=statistics.median(secs), min_s=min(secs),
                       median_mib=statistics.median(mibs))
            if goal:
                row["meets_goal"] = row["median_s"] < GOAL_S and row["median_mib"] < GOAL_MIB
            rows.append(row)
            print(f"[bench-startup] {name:58s} median {row['median_s'] * 1e3:7.1f} ms"
                  f"  peak {row['median_mib']:6.1f} MiB", file=sys.stderr, flush=True)
    base = next(r for r in rows if r["case"] == "tglml --help")
    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "unknown")
    env_info = dict(date=date, uname=sh(["uname", "-a"]), cpu=cpu, cpus=os.cpu_count(),
                    loadavg=os.getloadavg(), python=platform.python_version(),
                    rustc=sh(["rustc", "-V"]), tglml=sh([tglml, "--version"]),
                    revision=sh(["git", "rev-parse", "--short=12", "HEAD"])
                    + (" (uncommitted changes)" if sh(["git", "status", "--porcelain",
                                                        "--untracked-files=no"]) else ""),
                    mpi=sh(["ompi_info", "--version"]).splitlines()[0:1])
    md = [f"# Start-up benchmark: results of {date[:10]}", "",
          "Made by `make bench-startup` (`benches/startup/run.py`); what it measures: "
          "the docstring of run.py.", "",
          f"- date: {date}; machine: {cpu}, {os.cpu_count()} CPUs; `{env_info['uname']}`",
          f"- load average at start: {' / '.join(f'{x:.2f}' for x in env_info['loadavg'])}",
          f"- {env_info['tglml']}, revision {env_info['revision']}; {env_info['rustc']}; "
          f"{' '.join(env_info['mpi'])}",
          f"- runs per case: {a.repeat} (after one untimed run); medians",
          f"- goal: under {GOAL_S * 1e3:.0f} ms and {GOAL_MIB:.0f} MiB", "",
          "| case | median ms | min ms | peak MiB (median) | × tglml --help | goal met |",
          "| --- | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        met = ("yes" if r["meets_goal"] else "**no**") if r["goal"] else "–"
        md.append(f"| {r['case']} | {r['median_s'] * 1e3:.1f} | {r['min_s'] * 1e3:.1f} | "
                  f"{r['median_mib']:.1f} | {r['median_s'] / base['median_s']:.2f} | {met} |")
    md += ["", "Raw seconds of every run: results-DATE.json."]
    os.makedirs(a.out_dir, exist_ok=True)
    stem = os.path.join(a.out_dir, f"results-{date[:10]}")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    with open(stem + ".json", "w") as f:
        json.dump(dict(environment=env_info, rows=rows), f, indent=1)
        f.write("\n")
    print("\n".join(md[len(md) - len(rows) - 4:]))
    print(f"[bench-startup] wrote {os.path.relpath(stem, ROOT)}.md and .json", file=sys.stderr)
    if not all(r.get("meets_goal", True) for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
