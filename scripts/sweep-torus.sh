#!/usr/bin/env bash
# Usage: bash scripts/sweep-torus.sh [OUT_ROOT]        (make sweep-torus)
#
# A small evaluated sweep, committed as docs/reports/torus-sweep/: γ ∈ {0, 1}
# × train.seed ∈ {0, 1, 2} for the VAE of configs/torus.toml (300 steps) and
# the GAN of configs/gan_torus.toml (500 steps), each run scored by `tglml
# eval --checkpoint` (slurm/sweep.sbatch with SEEDS and EVAL, run outside
# Slurm under mpirun -np NP, default 1), then `tglml report` into
# docs/reports/torus-sweep/. A budget for a 2-core machine (about 2 minutes),
# not a result about the models.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-output/sweep-torus}
export TGLML=${TGLML:-target/release/tglml} NP=${NP:-1} SEEDS="0 1 2" EVAL=1 EVAL_ARGS="--threads 1"
bash slurm/sweep.sbatch configs/torus.toml "$OUT/vae" train.topo.gamma 0 1 -- --steps 300 --threads 1 --overwrite
bash slurm/sweep.sbatch configs/gan_torus.toml "$OUT/gan" train.topo.gamma 0 1 -- --steps 500 --threads 1 --overwrite
"$TGLML" report "$OUT" --baseline train.topo.gamma=0 --out docs/reports/torus-sweep
