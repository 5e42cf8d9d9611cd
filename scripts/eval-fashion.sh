#!/usr/bin/env bash
# Usage: bash scripts/eval-fashion.sh [OUT_ROOT]        (make eval-fashion)
#
# `tglml eval` on Fashion-MNIST (issue 16, acceptance 2), into OUT_ROOT
# (default output/fashion), benches/eval/fashion-results.md and the
# `tglml report` of the evaluations in docs/reports/fashion/:
#   1. the classifier of configs/fashion_mnist_classifier.toml (the feature
#      network), its test accuracy on the 10,000 test images;
#   2. real against real: the 10,000 test images against the 60,000 training
#      images; and the test images against the samples of an untrained
#      generator (the GAN of configs/gan_fashion_mnist.toml after one step);
#   3. each model kind (the autoencoder, the GAN, the diffusion model, latent
#      diffusion; configs/*fashion_mnist.toml), 2,000 samples of each
#      (`tglml sample`) against its test split.
# Runs that have a run.h5 are reused (delete a folder to retrain). Budget on
# a 2-core machine: the diffusion model trains DIFFUSION_STEPS steps
# (default 1000 of its config's 3000); THREADS (default 2) threads a run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-output/fashion}
TGLML=${TGLML:-target/release/tglml}
THREADS=${THREADS:-2}
DIFFUSION_STEPS=${DIFFUSION_STEPS:-1000}
N=${N:-2000}
D=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT/eval" output
for split in train:train t10k:test; do
    src=${split%%:*} dst=output/fmnist-${split##*:}.h5
    [[ -f $dst ]] || "$TGLML" data pack "$D/$src-images-idx3-ubyte.gz" --labels "$D/$src-labels-idx1-ubyte.gz" --out "$dst"
done
TIMES=$OUT/eval/times.txt
echo "# $(date -u +%FT%TZ), revision $(git describe --always --dirty), THREADS=$THREADS" >> "$TIMES"
# train NAME CONFIG [ARGS...]: trains configs/CONFIG.toml into OUT/NAME
# unless it has a run.h5.
train() {
    local name=$1 config=$2
    shift 2
    [[ -f $OUT/$name/run.h5 ]] && { echo "== $name: reusing $OUT/$name"; return; }
    echo "== $name: tglml train --config configs/$config.toml $* --out $OUT/$name"
    local start=$SECONDS
    "$TGLML" train --config "configs/$config.toml" --threads "$THREADS" "$@" --overwrite --out "$OUT/$name"
    echo "train $name: $((SECONDS - start)) s" >> "$TIMES"
}
# draw NAME SAMPLER: N samples of OUT/NAME into OUT/NAME/eval-samples.h5.
draw() {
    local name=$1 sampler=$2
    [[ -f $OUT/$name/eval-samples.h5 ]] && return
    local start=$SECONDS
    "$TGLML" sample --checkpoint "$OUT/$name" --sampler "$sampler" --n "$N" --threads "$THREADS" --out "$OUT/$name/eval-samples.h5"
    echo "sample $name ($sampler): $((SECONDS - start)) s" >> "$TIMES"
}
# evaluate TAG ARGS...: tglml eval with the classifier's features.
evaluate() {
    local tag=$1
    shift
    local start=$SECONDS
    "$TGLML" eval --features "$OUT/classifier" --threads "$THREADS" "$@" --out "$OUT/eval/$tag.h5" 2>&1 | tee "$OUT/eval/$tag.txt"
    echo "eval $tag: $((SECONDS - start)) s" >> "$TIMES"
}

train classifier fashion_mnist_classifier
train untrained_gan gan_fashion_mnist --steps 1
train fashion_mnist fashion_mnist
train gan_fashion_mnist gan_fashion_mnist
train diffusion_fashion_mnist diffusion_fashion_mnist --steps "$DIFFUSION_STEPS"
train latent_diffusion_fashion_mnist latent_diffusion_fashion_mnist \
    --set "model.vae_checkpoint=\"$OUT/fashion_mnist/checkpoint.h5\""

draw untrained_gan prior
draw fashion_mnist langevin
draw gan_fashion_mnist prior
draw diffusion_fashion_mnist ddim
draw latent_diffusion_fashion_mnist ddim

evaluate real --samples output/fmnist-test.h5 --reference output/fmnist-train.h5
evaluate untrained --samples "$OUT/untrained_gan/eval-samples.h5" --reference output/fmnist-test.h5
for name in fashion_mnist gan_fashion_mnist diffusion_fashion_mnist latent_diffusion_fashion_mnist; do
    evaluate "$name" --checkpoint "$OUT/$name" --samples "$OUT/$name/eval-samples.h5"
done

PY=${TGLML_PYTHON:-python3}
"$PY" benches/eval/fashion_table.py "$OUT" "$(git describe --always --dirty)" > benches/eval/fashion-results.md
"$TGLML" report "$OUT/eval" --out docs/reports/fashion
echo "wrote benches/eval/fashion-results.md and docs/reports/fashion/"
