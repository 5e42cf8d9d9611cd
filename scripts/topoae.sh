#!/usr/bin/env bash
# Issue 17: Topological Autoencoders' recipe and TGLML on their measures
# (make topoae). Trains
#   fashion: configs/fashion_mnist_topoae.toml (the DeepAE recipe, read
#            from Debian's IDX files) as is (γ = 0: their plain autoencoder)
#            and each variant of FASHION_VARIANTS (by default their TopoAE
#            with their best run's batch, learning rate and λ, and the
#            variants of benches/topoae/README.md),
#            for each seed of SEEDS; up to an hour per run on one thread;
#   spheres: configs/spheres.toml and each variant of SPHERE_VARIANTS, for
#            each seed of SEEDS, then `tglml eval` of every run (ℓ-Trust:
#            trustworthiness, mean over k = 10..200 step 10);
# into output/topoae/, then summarises each run in benches/topoae/runs/ and
# writes benches/topoae/results.md from all summaries with
# scripts/topoae.py (which reads every run it finds there).
#
# Environment: ONLY=fashion|spheres (one part), SEEDS (default "0 1 2"),
# FASHION_VARIANTS, TGLML_VARIANTS (from configs/fashion_mnist_tglml.toml)
# and SPHERE_VARIANTS (lines "name|KEY=VALUE ...[|SEEDS]"),
# THREADS (default 1), TGLML (the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
TGLML=${TGLML:-target/release/tglml}
SEEDS=${SEEDS:-0 1 2}
THREADS=${THREADS:-1}
OUT=output/topoae
mkdir -p "$OUT"
export TGLML_PROGRESS=off

# train NAME CONFIG [--set ...]: one run into $OUT/NAME (kept when finished).
train() {
    local name=$1 config=$2
    shift 2
    if [[ -f $OUT/$name/run.h5 ]]; then
        echo "[topoae] $name: finished earlier, kept"
        return
    fi
    local t0=$SECONDS
    "$TGLML" train --config "$config" --threads "$THREADS" --overwrite --out "$OUT/$name" "$@" \
        > "$OUT/$name.log" 2>&1
    echo "$((SECONDS - t0))" > "$OUT/$name/wall_seconds"
    echo "[topoae] $name: $(tail -1 "$OUT/$name.log" | cut -c1-200)"
}

# evaluate NAME: the embedding measures of a finished run.
evaluate() {
    [[ -f $OUT/$1/eval.h5 ]] && return
    "$TGLML" eval --checkpoint "$OUT/$1" --threads "$THREADS" --set eval.robustness=false \
        --out "$OUT/$1/eval.h5" > "$OUT/$1.eval.log" 2>&1
}

# variants DATA CONFIG VARIANTS [evaluate]: each line "name|KEY=VALUE ...[|SEEDS]"
# of VARIANTS trained from CONFIG (each pair a --set) for each seed of the
# line's SEEDS (default $SEEDS), into $OUT/DATA-name-sSEED; with a fourth
# argument also scored by `tglml eval`.
variants() {
    local data=$1 config=$2 list=$3 score=${4:-}
    while IFS='|' read -r name sets seeds; do
        local args=()
        for kv in $sets; do args+=(--set "$kv"); done
        for seed in ${seeds:-$SEEDS}; do
            train "$data-$name-s$seed" "$config" --set "train.seed=$seed" "${args[@]}"
            if [[ -n $score ]]; then evaluate "$data-$name-s$seed"; fi
        done
    done <<< "$list"
}

if [[ ${ONLY:-fashion} == fashion || -z ${ONLY:-} ]]; then
    # Their TopoAE: batch 95, learning rate 0.006514, λ = 2.2258 (γ = λ/(4·95));
    # "-kl": the checkpoint chosen (and stopped) by validation KL_0.1.
    topo="train.batch_size=95 train.lr=0.006514"
    variants fashion configs/fashion_mnist_topoae.toml "${FASHION_VARIANTS:-"plain|
topoae|$topo train.topo.gamma=0.005857|0
topoae-kl|$topo train.topo.gamma=0.005857 train.monitor=\"kl_0.1\"|0
l4-kl|$topo train.topo.gamma=0.02343 train.monitor=\"kl_0.1\"
l16-kl|$topo train.topo.gamma=0.09372 train.monitor=\"kl_0.1\"|0"}"
    # TGLML's setting (4λ, batch norm before the ReLU, chosen by validation
    # KL_0.1) is a config of its own: trained from it, so the file is what
    # the results show; "l4-bnb-loss" keeps the checkpoint of the best
    # validation loss instead, as their runs did.
    variants fashion configs/fashion_mnist_tglml.toml "${TGLML_VARIANTS:-"l4-bnb-kl|
l4-bnb-loss|train.monitor=\"loss\""}"
fi
if [[ ${ONLY:-spheres} == spheres || -z ${ONLY:-} ]]; then
    # configs/spheres.toml with torch.nn.Linear's initialisation; the 14
    # variants of 2026-12-02: benches/topoae/README.md.
    variants spheres configs/spheres.toml "${SPHERE_VARIANTS:-"pt|model.vae.init=\"pytorch\"|0"}" evaluate
fi
PY=${PY:-$(sed -n 's/^TGLML_PYTHON = "\(.*\)"/\1/p' .cargo/config.toml)}
"${PY:-python3}" scripts/topoae.py "$OUT" benches/topoae
