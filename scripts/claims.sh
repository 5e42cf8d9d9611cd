#!/usr/bin/env bash
# Usage: bash scripts/claims.sh [OUT_ROOT]        (make claims)
#
# The experiment behind docs/claims.md: the VAE, the GAN and the diffusion
# model, each with its topological loss (γ of its config) and without it
# (γ = 0), 3 seeds each, on a synthetic set of known topology (the torus of
# configs/*torus.toml) and on Fashion-MNIST (configs/*fashion_mnist.toml),
# every run evaluated by `tglml eval` (slurm/sweep.sbatch with SEEDS, EVAL,
# SAMPLE_ARGS, PATHS_ARGS), then `tglml report` into docs/reports/claims-torus
# and docs/reports/claims-fashion.
#
# The budget fits a 2-core machine in about an hour (two chains side by side,
# one thread each): the torus models train their configs' steps; on
# Fashion-MNIST the autoencoder trains 1,000 steps (of 3,000), the GAN 2,000
# (of 10,000), the diffusion model 300 (of 3,000) and draws 500 DDIM samples
# of 50 steps. These are small budgets: a claim measured here says what holds
# at them. PHASE=train trains only; PHASE=eval evaluates trained runs again
# (runs, samples and paths that exist are kept: REUSE=1). ONLY=torus or
# ONLY=fashion runs one of the two chains (and its report); MODELS (default
# "vae gan diffusion") the Fashion-MNIST models of the chain.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-output/claims}
PHASE=${PHASE:-all}
export TGLML=${TGLML:-target/release/tglml} NP=1 SEEDS="0 1 2" REUSE=1
[[ $PHASE == train ]] && export EVAL=0 || export EVAL=1
D=/usr/share/datasets/fashion-mnist
mkdir -p output "$OUT"
for split in train:train t10k:test; do
    src=${split%%:*} dst=output/fmnist-${split##*:}.h5
    [[ -f $dst ]] || "$TGLML" data pack "$D/$src-images-idx3-ubyte.gz" --labels "$D/$src-labels-idx1-ubyte.gz" --out "$dst"
done
T="--threads 1 --overwrite"
# sweep NAME CONFIG "GAMMAS" STEPS [SAMPLE_ARGS [PATHS_ARGS [EVAL_ARGS]]]:
# train.topo.gamma 0 and each of GAMMAS, 3 seeds each.
sweep() {
    local name=$1 config=$2 gammas=$3 steps=$4
    # shellcheck disable=SC2086
    SAMPLE_ARGS=${5:-} PATHS_ARGS=${6:-} EVAL_ARGS="--threads 1 ${7:-}" \
        bash slurm/sweep.sbatch "configs/$config.toml" "$OUT/$name" train.topo.gamma 0 $gammas -- --steps "$steps" $T
}
torus() {
    sweep torus/vae torus 1 2000 "" "--set interpolate.pairs=8 --threads 1"
    # Stability across the loss's weight: the VAE at four more values.
    sweep torus-gamma/vae torus "0.1 0.3 3 10" 2000 "" "--set interpolate.pairs=8 --threads 1"
    sweep torus/gan gan_torus 1 3000
    sweep torus/diffusion diffusion_torus 1 3000
}
fashion() {
    local classifier=$OUT/fashion/classifier
    if [[ ! -f $classifier/run.h5 ]]; then
        "$TGLML" train --config configs/fashion_mnist_classifier.toml $T --out "$classifier"
    fi
    local feats="--features $classifier"
    for m in ${MODELS:-vae gan diffusion}; do
        case $m in
            vae) sweep fashion/vae fashion_mnist 1 1000 "--sampler langevin --n 1000 --threads 1" \
                "--set interpolate.pairs=8 --threads 1" "$feats" ;;
            gan) sweep fashion/gan gan_fashion_mnist 0.1 2000 "--sampler prior --n 1000 --threads 1" "" "$feats" ;;
            diffusion) sweep fashion/diffusion diffusion_fashion_mnist 0.1 300 \
                "--sampler ddim --n 500 --set sample.diffusion_steps=50 --threads 1" "" "$feats" ;;
        esac
    done
}
ONLY=${ONLY:-}
start=$SECONDS
pids=()
for chain in torus fashion; do
    [[ -z $ONLY || $ONLY == "$chain" ]] || continue
    $chain > "$OUT/$chain.log" 2>&1 &
    pids+=("$!:$chain")
done
for p in "${pids[@]}"; do
    wait "${p%%:*}" || { echo "the ${p##*:} chain failed: $OUT/${p##*:}.log" >&2; exit 1; }
done
echo "claims: $PHASE in $((SECONDS - start)) s"
if [[ $PHASE != train ]]; then
    B="--baseline train.topo.gamma=0"
    if [[ -z $ONLY || $ONLY == torus ]]; then
        "$TGLML" report "$OUT/torus" $B --out docs/reports/claims-torus
        "$TGLML" report "$OUT/torus-gamma" $B --out docs/reports/claims-torus-gamma
    fi
    [[ -z $ONLY || $ONLY == fashion ]] &&
        "$TGLML" report "$OUT/fashion/vae" "$OUT/fashion/gan" "$OUT/fashion/diffusion" $B --out docs/reports/claims-fashion
    [[ -z $ONLY ]] && python3 scripts/claims.py > docs/claims-tables.md
fi
