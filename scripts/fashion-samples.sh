#!/usr/bin/env bash
# Usage: bash scripts/fashion-samples.sh [OUT_ROOT [CONFIG_NAME...]]     (make fashion-samples)
#
# Trains each generative model on the 60,000 Fashion-MNIST training images
# (configs/{gan,diffusion,latent_diffusion}_fashion_mnist.toml; latent
# diffusion after the autoencoder of configs/fashion_mnist.toml), each into
# OUT_ROOT/<config> (default output/fashion), and copies each run's grid of
# 64 samples to docs/images/fashion/<config>.png, with the configs, the
# revision and the times in docs/images/fashion/README.md. A run whose
# checkpoint exists continues from it (a finished one only draws its
# samples again; delete the folder to retrain). Packs the
# images from Debian's dataset-fashion-mnist first when output/fmnist-*.h5
# are missing. CONFIG_NAMEs (e.g. gan_fashion_mnist) limit it to those
# configs, in the order given; latent diffusion needs fashion_mnist before it. One process per run, on all the cores (NP=2 runs each under
# mpirun -np 2 instead).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-output/fashion}
shift || true
NAMES=("$@")
[[ ${#NAMES[@]} -gt 0 ]] || NAMES=(fashion_mnist gan_fashion_mnist diffusion_fashion_mnist latent_diffusion_fashion_mnist)
TGLML=${TGLML:-target/release/tglml}
D=/usr/share/datasets/fashion-mnist
for split in train:train t10k:test; do
    src=${split%%:*} dst=output/fmnist-${split##*:}.h5
    [[ -f $dst ]] || "$TGLML" data pack "$D/$src-images-idx3-ubyte.gz" --labels "$D/$src-labels-idx1-ubyte.gz" --out "$dst"
done
DOCS=docs/images/fashion
mkdir -p "$DOCS" "$OUT"
rev=$(git describe --always --dirty)
notes=()
for name in "${NAMES[@]}"; do
    out=$OUT/$name
    opts=()
    [[ $name == latent_* ]] && opts=(--set "model.vae_checkpoint=\"$OUT/fashion_mnist/checkpoint.h5\"")
    # A run with a checkpoint continues from it (--resume): a finished one
    # only samples again, with the sampling keys of the config as it is now
    # (model.samples, model.diffusion.sampler, sample_steps, clip_x0).
    mode=--overwrite what=trained
    [[ -f $out/checkpoint.h5 ]] && mode=--resume what=resumed
    echo "== $name ($what): tglml train --config configs/$name.toml ${opts[*]} $mode --out $out"
    start=$SECONDS
    if [[ -n "${NP:-}" ]]; then
        mpirun -np "$NP" --oversubscribe "$TGLML" train --config "configs/$name.toml" "${opts[@]}" $mode --out "$out"
    else
        "$TGLML" train --config "configs/$name.toml" "${opts[@]}" $mode --out "$out"
    fi
    echo "$name ($what): $((SECONDS - start)) s" >> "$OUT/times.txt"
    cp "$out/samples.png" "$DOCS/$name.png"
    notes+=("| [\`configs/$name.toml\`](../../../configs/$name.toml) | ![$name]($name.png) |")
done
{
    echo "# Fashion-MNIST samples (\`make fashion-samples\`)"
    echo
    echo "64 samples of each model after training on the 60,000 training images"
    echo "(scripts/fashion-samples.sh; revision $rev, $(date -u +%F), $(nproc) CPUs:"
    echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)). The VAE row is the"
    echo "autoencoder that latent diffusion decodes with (a 2-D latent space: its own"
    echo "samples decode N(0, I), which it was not trained to match)."
    echo
    echo "Times of the runs (trained: from scratch; resumed: continued from the"
    echo "checkpoint, or only sampled again when it had finished):"
    echo
    sed 's/^/- /' "$OUT/times.txt" 2>/dev/null || true
    echo
    echo "| config | samples |"
    echo "| --- | --- |"
    printf '%s\n' "${notes[@]}"
} > "$DOCS/README.md"
echo "wrote $DOCS/README.md and the grids beside it"
