#!/usr/bin/env bash
# Issue 17: Topological Autoencoders' recipe and TGLML on their measures
# (make topoae). Trains
#   fashion: configs/fashion_mnist_topoae.toml (the DeepAE recipe, read
#            from Debian's IDX files) with γ = 0 (their plain autoencoder)
#            and each γ of GAMMAS (their topological term), for each seed of
#            SEEDS; about an hour per run on one thread here;
#   spheres: configs/spheres.toml and each variant of SPHERE_VARIANTS, for
#            each seed of SEEDS, then `tglml eval` of every run (ℓ-Trust:
#            trustworthiness, mean over k = 10..200 step 10);
# into output/topoae/, then writes benches/topoae/results.md with
# scripts/topoae.py (which reads every run it finds there).
#
# Environment: ONLY=fashion|spheres (one part), SEEDS (default "0 1 2"),
# GAMMAS (default "1"), THREADS (default 1), TGLML (the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
TGLML=${TGLML:-target/release/tglml}
SEEDS=${SEEDS:-0 1 2}
GAMMAS=${GAMMAS:-1}
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

if [[ ${ONLY:-fashion} == fashion || -z ${ONLY:-} ]]; then
    for seed in $SEEDS; do
        train "fashion-plain-s$seed" configs/fashion_mnist_topoae.toml --set "train.seed=$seed"
        for g in $GAMMAS; do
            train "fashion-g$g-s$seed" configs/fashion_mnist_topoae.toml --set "train.seed=$seed" \
                --set "train.topo.gamma=$g"
        done
    done
fi
if [[ ${ONLY:-spheres} == spheres || -z ${ONLY:-} ]]; then
    # name|settings (each a --set KEY=VALUE)
    SPHERE_VARIANTS=${SPHERE_VARIANTS:-"base|
ae-ls|model.vae.variational=false train.topo.latent_scale=\"learned\""}
    while IFS='|' read -r name sets; do
        args=()
        for kv in $sets; do args+=(--set "$kv"); done
        for seed in $SEEDS; do
            train "spheres-$name-s$seed" configs/spheres.toml --set "train.seed=$seed" "${args[@]}"
            evaluate "spheres-$name-s$seed"
        done
    done <<< "$SPHERE_VARIANTS"
fi
PY=${PY:-$(sed -n 's/^TGLML_PYTHON = "\(.*\)"/\1/p' .cargo/config.toml)}
"${PY:-python3}" scripts/topoae.py "$OUT" benches/topoae
