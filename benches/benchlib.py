"""Shared pieces of the benchmark drivers (benches/ph/run.py and
benches/diagrams/run.py): the small spawner process that measures each
tool's peak memory, machine-load measurement, and formatting.

Kept free of numpy and other large imports: the spawner must start small
(see spawner_loop)."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A run during which the rest of the machine used more than BUSY cores on
# average, and more than BUSY_S CPU seconds in all (short runs see some
# noise), is marked in the report: its timings are suspect.
BUSY = 0.25
BUSY_S = 0.25

# Workers run with single-threaded BLAS/OpenMP so that the only threads are
# the ones a tool is asked for.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


def vm_hwm_kib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def spawner_loop():
    """The --spawner process: reads one JSON request a line on stdin (cmd,
    stdout/stderr paths, timeout), runs it and answers with one JSON line:
    exit code, ru_maxrss (KiB) from os.wait4, wall seconds.

    Why a separate process: on Linux a child's ru_maxrss starts from the
    high-water mark of the process that forked it (the kernel carries it over
    fork and exec), so children of the driver, which holds numpy and the
    inputs, would all report at least the driver's peak. This process is
    started before the driver imports anything large and stays small."""
    env = dict(os.environ, **WORKER_ENV)
    for line in sys.stdin:
        req = json.loads(line)
        with open(req["stdout"], "w") as out, open(req["stderr"], "w") as err:
            busy0 = busy_cpu_seconds()
            t0 = time.monotonic()
            p = subprocess.Popen(req["cmd"], stdout=out, stderr=err, env=env,
                                 cwd=ROOT)
            timed_out = False
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == p.pid:
                    break
                if not timed_out and time.monotonic() - t0 > req["timeout"]:
                    p.kill()
                    timed_out = True
                time.sleep(0.01)
            wall = time.monotonic() - t0
            busy = busy_cpu_seconds() - busy0
            p.returncode = os.waitstatus_to_exitcode(status)
        # CPU time the rest of the machine used meanwhile, in cores: a
        # concurrent build shows up here (the timings are then suspect).
        other = max(0.0, busy - ru.ru_utime - ru.ru_stime) / max(wall, 1e-9)
        print(json.dumps({"rc": p.returncode, "maxrss_kib": ru.ru_maxrss,
                          "wall_s": wall, "other_cpu": other,
                          "timed_out": timed_out}), flush=True)


def busy_cpu_seconds():
    """Machine-wide non-idle CPU seconds so far (/proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")


def wait_idle(limit, say):
    """Waits (up to `limit` seconds) until the rest of the machine is quiet:
    less than BUSY cores busy over one second. Returns the seconds waited."""
    t0 = time.monotonic()
    told = False
    while True:
        b0 = busy_cpu_seconds()
        time.sleep(1.0)
        busy = busy_cpu_seconds() - b0
        waited = time.monotonic() - t0 - 1.0
        if busy < BUSY or waited >= limit:
            if busy >= BUSY:
                say(f"machine still busy ({busy:.2f} cores) after {limit:.0f} s;"
                    " running anyway (the run will be marked)")
            return round(waited, 1)
        if not told:
            say(f"machine busy ({busy:.2f} cores); waiting up to {limit:.0f} s")
            told = True


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              cwd=ROOT).stdout.strip()
    except OSError:
        return "unavailable"


def fmt_s(s):
    return f"{s:.4f}" if s < 1 else f"{s:.3f}" if s < 100 else f"{s:.1f}"


def fmt_mib(m):
    return "–" if m is None else f"{m:.1f}"
