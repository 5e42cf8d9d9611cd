#!/usr/bin/env bash
# The Slurm tests (issue 7): the batch scripts in slurm/ submitted with
# sbatch to a real one-node Slurm started here, their outputs compared with
# the same runs under plain mpirun. `make test-slurm` runs this.
#
#   1. ph.sbatch      H0-H1 of the default torus on maxmin landmarks, rows
#                     sharded over 2 tasks
#   2. train.sbatch   a short training (2 tasks)
#   3. sweep.sbatch   a 2-task job array over γ (0 and 2)
#   4. wall time      train.sbatch with a 1-minute limit and the warning
#                     signal 50 s before it: it must checkpoint, requeue and
#                     finish in a second allocation, identical to one
#                     uninterrupted run
#   5. every config train.sbatch all: each gan_/diffusion_ config of the
#                     synthetic data, and latent diffusion on the torus after
#                     its VAE, 10 steps each, one run.h5 per run
#   6. a failing rank ph.sbatch on a matrix whose last row (rank 1's block)
#                     holds a NaN: the job must end FAILED with a non-zero
#                     exit code in `scontrol show job`, the error in its
#                     output file, and no output file
#   7. sample.sbatch  MALA samples and geodesic paths of the model of (2),
#                     submitted to start after it, 2 tasks, against one
#                     process on the same checkpoint
#   8. an evaluated sweep  sweep.sbatch with SEEDS="0 1 2" EVAL=1 over γ (0
#                     and 1) for two models (the VAE of the default config
#                     and the GAN of gan_circle.toml), 20 steps each: 12
#                     array tasks, each trained and scored by tglml eval;
#                     then tglml report over both: 4 settings of 3 seeds
#
# Outputs are compared with tests/slurm/h5py same-ness (h5same.py: every
# dataset bit for bit, every attribute) but for the rank count, threads and
# step times.
#
# Needs: root (slurmd runs jobs as their user; CI runs as root), the release
# binary (target/release/tglml; `make test-slurm` builds it) and the Python
# of scripts/setup.sh (h5py). Installs slurm-wlm and munge with apt-get when
# they are missing. Every daemon it starts is stopped on exit, failure
# included. Environment: TGLML_SLURM_KEEP=1 keeps the work folder (it is kept
# anyway when a check fails).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
say() { echo "[slurm-test] $*"; }
die() { echo "[slurm-test] error: $*" >&2; exit 1; }

# --- what this needs ----------------------------------------------------------
[[ $(id -u) == 0 ]] || die "the Slurm tests start slurmd, which must run as root (run as root; make test-cargo runs the other tests without it)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge) >/dev/null \
        || die "apt-get install slurm-wlm munge failed"
fi
TGLML=$ROOT/target/release/tglml
[[ -x $TGLML ]] || die "$TGLML is missing: run cargo build --release (make test-slurm does)"
PY=${TGLML_PYTHON:-$(sed -n 's/^TGLML_PYTHON = "\(.*\)"$/\1/p' .cargo/config.toml 2>/dev/null)}
[[ -n $PY && -x $PY ]] || die "no Python with h5py: run bash scripts/setup.sh (it records TGLML_PYTHON in .cargo/config.toml)"
export TGLML

# --- the cluster ----------------------------------------------------------------
WORK=$(mktemp -d /tmp/tglml-slurm.XXXXXX)
failures=0
source "$ROOT/tests/slurm/cluster.sh"
finish() {
    cluster_down
    if ((failures == 0)) && [[ ${TGLML_SLURM_KEEP:-0} != 1 ]]; then
        rm -rf "$WORK"
    else
        say "work folder kept: $WORK (job outputs *.out, daemon logs in cluster/log)"
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM
cluster_up "$WORK/cluster" || die "the test cluster did not start"

# The jobs inherit this environment (sbatch --export=ALL).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_hwloc_base_binding_policy=none TGLML_PROGRESS=plain HDF5_USE_FILE_LOCKING=FALSE
ref() { mpirun -np 2 --oversubscribe "$TGLML" "$@" > "$WORK/ref.log" 2>&1 || { cat "$WORK/ref.log"; die "reference run failed: tglml $*"; }; }
pass() { say "PASS: $*"; }
fail() { say "FAIL: $*"; failures=$((failures + 1)); }
same() {
    local what=$1 a=$2 b=$3
    if "$PY" "$ROOT/tests/slurm/h5same.py" "$a" "$b" --ignore n_ranks --ignore threads_per_rank --ignore step_seconds > "$WORK/same.log" 2>&1; then
        pass "$what: $(tail -1 "$WORK/same.log")"
    else
        fail "$what:"; cat "$WORK/same.log"
    fi
}
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }

# --- inputs ---------------------------------------------------------------------
"$TGLML" data synth --out "$WORK/synth.h5" > "$WORK/synth.log" 2>&1 || die "tglml data synth failed"
"$PY" - "$WORK/synth.h5" "$WORK/nan.h5" <<'PY' || die "could not write nan.h5"
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1], "r")["x"][()]
x[-1, 0] = np.nan                      # in the last rank's block of rows
with h5py.File(sys.argv[2], "w") as f:
    f["x"] = x
PY
PH_ARGS=(--landmarks 150 --maxdim 1)
TRAIN_ARGS=(--steps 300 --set train.checkpoint_every=100)
WALL_STEPS=8000

# --- submit everything; the queue runs the jobs two at a time -------------------
cd "$WORK"
sub() { sbatch --parsable "$@" | cut -d';' -f1; }
J_WALL=$(sub --time=1 --signal=B:USR1@50 -o wall.out "$ROOT/slurm/train.sbatch" "$ROOT/configs/default.toml" wall -- --steps $WALL_STEPS --set train.checkpoint_every=0)
J_PH=$(sub -o ph.out "$ROOT/slurm/ph.sbatch" synth.h5 ph-slurm.h5 -- "${PH_ARGS[@]}")
J_TRAIN=$(sub -o train.out "$ROOT/slurm/train.sbatch" "$ROOT/configs/default.toml" train-slurm -- "${TRAIN_ARGS[@]}")
J_SWEEP=$(sub --array=0-1 -o sweep-%a.out "$ROOT/slurm/sweep.sbatch" "$ROOT/configs/default.toml" sweep-slurm train.topo.gamma 0 2 -- "${TRAIN_ARGS[@]}")
# The configs of the synthetic data (the Fashion-MNIST ones need the packed
# images and hours): gan_ and diffusion_ ones, and latent diffusion on the
# torus with its VAE config.
mkdir -p "$WORK/configs"
cp "$ROOT"/configs/{gan,diffusion}_{circle,torus}.toml "$ROOT"/configs/{latent_diffusion_torus,torus}.toml "$WORK/configs/"
export TGLML_CONFIGS="$WORK/configs"
J_ALL=$(sub -o all.out "$ROOT/slurm/train.sbatch" all all-slurm -- --steps 10 --set model.samples=100)
J_FAIL=$(sub -o fail.out "$ROOT/slurm/ph.sbatch" nan.h5 fail.h5 -- --landmarks 50)
SAMPLE_ARGS=(--sampler mala --n 300 --threads 1)
PATH_ARGS=(--set interpolate.pairs=4 --set interpolate.steps=50 --points 8 --threads 1)
J_SAMPLE=$(sub --dependency=afterok:"$J_TRAIN" -o sample.out "$ROOT/slurm/sample.sbatch" sample train-slurm sample-slurm.h5 -- "${SAMPLE_ARGS[@]}")
J_PATHS=$(sub --dependency=afterok:"$J_TRAIN" -o paths.out "$ROOT/slurm/sample.sbatch" interpolate train-slurm paths-slurm.h5 -- "${PATH_ARGS[@]}")
# 8. γ × 3 seeds for two models, each run evaluated; the report after both.
EVAL_SWEEP=(--steps 20 --set model.samples=200)
J_EV_VAE=$(SEEDS="0 1 2" EVAL=1 EVAL_ARGS="--set eval.landmarks=40 --set eval.ks=[5,20,5]" PATHS_ARGS="--method linear --points 6 --set interpolate.pairs=2" sub --export=ALL --array=0-5 -o evsweep-vae-%a.out "$ROOT/slurm/sweep.sbatch" "$ROOT/configs/default.toml" evsweep/vae train.topo.gamma 0 1 -- "${EVAL_SWEEP[@]}")
J_EV_GAN=$(SEEDS="0 1 2" EVAL=1 EVAL_ARGS="--set eval.landmarks=40" sub --export=ALL --array=0-5 -o evsweep-gan-%a.out "$ROOT/slurm/sweep.sbatch" "$ROOT/configs/gan_circle.toml" evsweep/gan train.topo.gamma 0 1 -- "${EVAL_SWEEP[@]}")
say "submitted: wall time $J_WALL, ph $J_PH, train $J_TRAIN, sweep $J_SWEEP (array 0-1), every config $J_ALL, failing $J_FAIL, sample $J_SAMPLE and interpolate $J_PATHS (after train)"

# --- the same runs under plain mpirun, meanwhile --------------------------------
say "reference runs under mpirun -np 2"
ref ph --input synth.h5 --out ph-mpirun.h5 "${PH_ARGS[@]}"
ref train --config "$ROOT/configs/default.toml" --out train-mpirun "${TRAIN_ARGS[@]}"
for g in 0 2; do
    ref train --config "$ROOT/configs/default.toml" --set train.topo.gamma=$g --out "sweep-mpirun/gamma-$g" "${TRAIN_ARGS[@]}"
done
ref train --config "$ROOT/configs/default.toml" --out wall-mpirun --steps $WALL_STEPS --set train.checkpoint_every=0

# --- wait for the queue -----------------------------------------------------------
# A requeued job waits (BeginTime) about two minutes before it may start
# again; a real cluster can afford that, this test does not: once the
# wall-time job is back in the queue it may start now, with a limit that
# lets it finish.
say "waiting for the jobs"
t0=$SECONDS
requeued=0
while [[ -n $(squeue -h -o %i 2>/dev/null) ]]; do
    if ((requeued == 0)) && [[ $(job_field "$J_WALL" Restarts) -ge 1 && $(job_field "$J_WALL" JobState) == PENDING ]]; then
        scontrol update JobId="$J_WALL" StartTime=now TimeLimit=10
        requeued=1
        say "wall-time job $J_WALL requeued after its warning signal; released"
    fi
    ((SECONDS - t0 < 600)) || { fail "the jobs did not finish within 10 minutes"; squeue; break; }
    sleep 2
done

# --- checks ---------------------------------------------------------------------
check_ok() {
    local id=$1 what=$2 state code
    state=$(job_field "$id" JobState) code=$(job_field "$id" ExitCode)
    if [[ $state == COMPLETED && $code == 0:0 ]]; then
        pass "$what: job $id COMPLETED, exit code $code"
    else
        fail "$what: job $id $state, exit code $code; its output:"; cat "$3"
    fi
}
check_ok "$J_PH" "ph.sbatch" ph.out
same "ph.sbatch vs mpirun" ph-slurm.h5 ph-mpirun.h5
check_ok "$J_TRAIN" "train.sbatch" train.out
same "train.sbatch vs mpirun: checkpoint" train-slurm/checkpoint.h5 train-mpirun/checkpoint.h5
same "train.sbatch vs mpirun: run file" train-slurm/run.h5 train-mpirun/run.h5
for a in 0 1; do
    g=$([[ $a == 0 ]] && echo 0 || echo 2)
    check_ok "${J_SWEEP}_$a" "sweep.sbatch task $a (gamma $g)" "sweep-$a.out"
    same "sweep.sbatch task $a vs mpirun: checkpoint" "sweep-slurm/gamma-$g/checkpoint.h5" "sweep-mpirun/gamma-$g/checkpoint.h5"
    same "sweep.sbatch task $a vs mpirun: run file" "sweep-slurm/gamma-$g/run.h5" "sweep-mpirun/gamma-$g/run.h5"
done

check_ok "$J_ALL" "train.sbatch all" all.out
# One run per gan_/diffusion_ config, two (the VAE, then it) per latent_diffusion_ one.
want=$(cd "$TGLML_CONFIGS" && echo $(( $(ls gan_*.toml diffusion_*.toml | wc -l) + 2 * $(ls latent_diffusion_*.toml | wc -l) )))
got=$(ls all-slurm/*/run.h5 2>/dev/null | wc -l)
if [[ $got -ge 1 && $got == "$want" ]] && grep -q 'model.vae_checkpoint=' all.out && grep -q "all: every run done" all.out; then
    pass "train.sbatch all: $got runs, each with its run.h5 ($(ls all-slurm | tr '\n' ' '))"
else
    fail "train.sbatch all: $got of $want run files; its output:"; cat all.out
fi

check_ok "$J_WALL" "wall time" wall.out
restarts=$(job_field "$J_WALL" Restarts)
if [[ ${restarts:-0} -ge 1 ]] && grep -q "^train: stopped on a signal" wall.out && grep -q -- "--resume (job $J_WALL, allocation 2" wall.out; then
    pass "wall time: stopped on SIGUSR1 ($(grep -o 'after step [0-9]* of [0-9]*' wall.out | head -1)), requeued, resumed in allocation 2 (Restarts=$restarts)"
else
    fail "wall time: the job was not stopped and resumed (Restarts=${restarts:-?}); its output:"; cat wall.out
fi
same "wall time: interrupted + resumed vs uninterrupted: checkpoint" wall/checkpoint.h5 wall-mpirun/checkpoint.h5
same "wall time: interrupted + resumed vs uninterrupted: run file" wall/run.h5 wall-mpirun/run.h5

check_ok "$J_SAMPLE" "sample.sbatch sample" sample.out
check_ok "$J_PATHS" "sample.sbatch interpolate" paths.out
# One process on the same checkpoint (the files name it).
"$TGLML" sample --checkpoint train-slurm --out sample-one.h5 "${SAMPLE_ARGS[@]}" > sample-one.log 2>&1 || { cat sample-one.log; fail "sample on one process failed"; }
"$TGLML" interpolate --checkpoint train-slurm --out paths-one.h5 "${PATH_ARGS[@]}" > paths-one.log 2>&1 || { cat paths-one.log; fail "interpolate on one process failed"; }
same "sample.sbatch (2 tasks) vs one process: samples" sample-slurm.h5 sample-one.h5
same "sample.sbatch (2 tasks) vs one process: paths" paths-slurm.h5 paths-one.h5

for a in 0 1 2 3 4 5; do
    check_ok "${J_EV_VAE}_$a" "evaluated sweep, VAE task $a" "evsweep-vae-$a.out"
    check_ok "${J_EV_GAN}_$a" "evaluated sweep, GAN task $a" "evsweep-gan-$a.out"
done
# Every plot report.md shows is a PNG file there.
plots_ok() {
    local shown n=0
    shown=$(grep -o '^!\[[^]]*\]([^)]*)' "$1/report.md" | sed 's/.*(\(.*\))/\1/')
    for f in $shown; do
        [[ $(head -c 4 "$1/$f" | od -An -c | tr -d ' ') == 211PNG ]] || return 1
        n=$((n + 1))
    done
    ((n >= 20))
}
if "$TGLML" report evsweep --baseline train.topo.gamma=0 --out evsweep/report > report.log 2>&1 \
    && grep -q "12 evaluations in 4 settings" report.log \
    && [[ $(grep -c '^| model.kind = "[a-z]*", train.topo.gamma = [01]\.0 | 3 |' evsweep/report/report.md) == 16 ]] \
    && [[ $(wc -l < evsweep/report/metrics.csv) == 13 ]] \
    && grep -q '^| model.kind = "gan", train.topo.gamma = 1.0 | W_p H0 |' evsweep/report/report.md \
    && [[ -f evsweep/vae/gamma-1/seed-2/paths.h5 ]] && grep -q '^| model.kind = "vae", train.topo.gamma = 1.0 | 3 | [0-9]' <(sed -n '/^## Interpolation/,/^## Robustness/p' evsweep/report/report.md) \
    && plots_ok evsweep/report; then
    pass "tglml report over the evaluated sweep: $(cat report.log)"
else
    fail "tglml report over the evaluated sweep:"; cat report.log; cat evsweep/report/report.md 2>/dev/null
fi

state=$(job_field "$J_FAIL" JobState) code=$(job_field "$J_FAIL" ExitCode)
if [[ $state == FAILED && $code != 0:0 ]] && grep -q "tglml: error: rank 1: .*values must be finite, got NaN" fail.out && [[ ! -e fail.h5 ]] \
    && [[ -z $(find . -maxdepth 1 -name '*fail*' ! -name fail.out) ]]; then
    pass "failing rank: job $J_FAIL $state, exit code $code, error in fail.out ($(grep -o 'rank 1: .*' fail.out | head -1 | cut -c1-90)), no output file"
else
    fail "failing rank: job $J_FAIL $state, exit code $code, fail.h5 $([[ -e fail.h5 ]] && echo exists || echo absent); its output:"; cat fail.out
fi

cd "$ROOT"
if ((failures)); then
    say "$failures check(s) failed"
    exit 1
fi
say "all Slurm checks passed in $SECONDS s"
