# TGLML: the commands of README.md.
#   make run    set up (once), build, and run the main job on the built-in defaults
#   make test   set up (once), build, lint, and run the whole test suite (cargo tests, then the Slurm tests)
#   make test-slurm  the batch scripts of slurm/ on a one-node Slurm started here (tests/slurm/run.sh; root)
#   make bench-ph  Rips persistence benchmark vs Ripser and giotto-ph (benches/ph/README.md)
#   make bench-diagrams  diagram distances benchmark vs GUDHI, POT and persim (benches/diagrams/README.md)
#   make bench-diagrams-scale  W1, W2 at 5,000 and 20,000 points of three shapes vs POT and Hera (delta 1e-6)
#   make bench-pipeline  MPI persistence pipeline: scaling over ranks, memory per rank (benches/pipeline/README.md)
#   make bench-startup   start-up time and memory of each command (benches/startup/run.py)
#   make bench-train-step  a training step beside PyTorch eager (benches/train/step.py; needs setup-bench.sh --torch, 4.7 GB)
#   make bench-train     step time of training with and without the topological loss (benches/train/run.py)
#   make compare-topology  TGLML vs the same model without the loss, 3 seeds, KL_sigma and W(H0) (benches/train/compare.py)
#   make fashion-samples   each model on Fashion-MNIST, 64-sample grids into docs/images/fashion (scripts/fashion-samples.sh)
#   make compare-samples   GAN and diffusion with and without the loss, 3 seeds: W2 of H0/H1 of samples vs held-out (benches/train/samples.py)
#   make sample-torus      samplers and paths of a trained torus VAE: distance to the data and the torus, 3 seeds (benches/sample/torus.py)
#   make sweep-torus       an evaluated γ × 3-seed sweep of a VAE and a GAN on the torus, tglml report into docs/reports/torus-sweep
#   make eval-fashion      tglml eval of every Fashion-MNIST model with the project's classifier (benches/eval/fashion-results.md)
#   make claims            VAE, GAN, diffusion with and without the loss, 3 seeds, torus and Fashion-MNIST (docs/claims.md; about 2 h)
#   make topoae            Topological Autoencoders' recipe and TGLML on their measures (benches/topoae/results.md; hours)
#   make topoae-peers      PCA, Isomap, t-SNE and the Spheres runs on ℓ-Trust and KL_0.1 (benches/topoae/spheres-peers.md; 2 min)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# OpenMPI refuses to run as root without these (CI and containers run as root).
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

TGLML := target/release/tglml
OUT ?= output
# The benchmarks' Python environment (scripts/setup-bench.sh) and extra
# arguments for benches/ph/run.py or benches/diagrams/run.py (e.g.
# BENCH_ARGS=--quick).
BENCH_PY = $(or $(TGLML_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tglml)/bench-venv/bin/python
BENCH_ARGS ?=

.PHONY: setup build run test test-cargo test-slurm lint test-unit help bench-ph bench-diagrams bench-diagrams-scale bench-pipeline bench-startup bench-train-step bench-train compare-samples compare-topology fashion-samples sample-torus eval-fashion sweep-torus claims topoae topoae-peers

help:
	@sed -n '2,18p' Makefile

setup:
	@bash scripts/setup.sh --no-build

build: setup
	@echo "== build (cargo build --release)"
	@cargo build --release

run: build
	@echo "== main job 1/4: tglml data synth (built-in defaults) -> $(OUT)/synth.h5"
	@$(TGLML) data synth --out $(OUT)/synth.h5
	@echo "== main job 2/4: mpirun -np 2 tglml ph (H0-H2 on 400 maxmin landmarks, rows sharded over 2 ranks) -> $(OUT)/ph.h5"
	@mpirun -np 2 --oversubscribe --bind-to none $(TGLML) ph --input $(OUT)/synth.h5 --maxdim 2 --landmarks 400 --out $(OUT)/ph.h5
	@h5ls -r $(OUT)/ph.h5
	@echo "== main job 3/4: mpirun -np 2 tglml train (a VAE with the H0 topological loss on the torus, 1,000 steps) -> $(OUT)/train/"
	@mpirun -np 2 --oversubscribe --bind-to none $(TGLML) train --overwrite --out $(OUT)/train
	@h5ls -r $(OUT)/train/run.h5
	@echo "== main job 4/4: mpirun -np 2 tglml train (a GAN with the H0 + H1 topological loss on the torus, configs/gan_torus.toml, 500 steps) -> $(OUT)/gan/"
	@mpirun -np 2 --oversubscribe --bind-to none $(TGLML) train --config configs/gan_torus.toml --steps 500 --overwrite --out $(OUT)/gan
	@h5ls $(OUT)/gan/run.h5

lint: setup
	@echo "== cargo fmt --check"
	@cargo fmt --check
	@echo "== cargo clippy --all-targets -- -D warnings"
	@cargo clippy --all-targets -- -D warnings

test: test-cargo test-slurm

test-cargo: build lint
	@echo "== cargo test --release (unit, CLI, mpirun 1/2/4 ranks, h5py read-back)"
	@cargo test --release

test-slurm: build
	@echo "== Slurm: slurm/*.sbatch through sbatch on a one-node cluster (tests/slurm/run.sh)"
	@bash tests/slurm/run.sh

bench-ph: build
	@echo "== benchmark environment (scripts/setup-bench.sh)"
	@bash scripts/setup-bench.sh
	@echo "== cargo bench --bench ph --no-run"
	@cargo bench --bench ph --no-run
	@echo "== Rips persistence: TGLML vs Ripser vs giotto-ph (benches/ph/run.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/ph/run.py $(BENCH_ARGS)

bench-diagrams:
	@echo "== benchmark environment (scripts/setup-bench.sh)"
	@bash scripts/setup-bench.sh
	@echo "== cargo bench --bench diagrams --no-run"
	@cargo bench --bench diagrams --no-run
	@echo "== diagram distances: TGLML vs GUDHI vs POT vs persim (benches/diagrams/run.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/diagrams/run.py $(BENCH_ARGS)

# Issue 13's goal 5: large diagrams of three shapes, one timed call each (a
# call may take 60 s), against the exact POT and Hera at delta 1e-6.
bench-diagrams-scale:
	@echo "== benchmark environment (scripts/setup-bench.sh)"
	@bash scripts/setup-bench.sh
	@echo "== cargo bench --bench diagrams --no-run"
	@cargo bench --bench diagrams --no-run
	@for shape in uniform exponential births0; do \
	  echo "== diagram distances at scale, shape $$shape (benches/diagrams/run.py)"; \
	  $(BENCH_PY) benches/diagrams/run.py --shape $$shape --sizes 5000,20000 --only W1,W2 \
	    --tools pot,gudhi-hera --hera-delta 1e-6 --repeat 1 --timeout 60 $(BENCH_ARGS); \
	done

bench-pipeline: build
	@echo "== MPI persistence pipeline: scaling over 1, 2, 4 ranks and memory per rank (benches/pipeline/run.py $(BENCH_ARGS))"
	@python3 benches/pipeline/run.py $(BENCH_ARGS)

bench-startup: build
	@echo "== start-up of each command: time and peak memory (benches/startup/run.py $(BENCH_ARGS))"
	@python3 benches/startup/run.py $(BENCH_ARGS)

bench-train-step: build
	@echo "== benchmark environment with PyTorch (scripts/setup-bench.sh --torch; 4.7 GB once)"
	@bash scripts/setup-bench.sh --torch
	@echo "== a training step: tglml train beside PyTorch eager (benches/train/step.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/train/step.py $(BENCH_ARGS)

bench-train: build
	@echo "== cost of the topological loss: step time with and without (benches/train/run.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/train/run.py $(BENCH_ARGS)

compare-samples: build
	@echo "== samples keep the topology? a GAN and a diffusion model with and without the loss on a circle and a torus, 3 seeds (benches/train/samples.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/train/samples.py --md benches/train/samples-results.md $(BENCH_ARGS)

sample-torus: build
	@echo "== samplers and paths on a trained torus VAE: prior vs Langevin/MALA, linear/slerp vs geodesic, 3 seeds (benches/sample/torus.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/sample/torus.py --md benches/sample/torus-results.md $(BENCH_ARGS)

fashion-samples: build
	@echo "== Fashion-MNIST: each generative model on the 60,000 training images, 64-sample grids into docs/images/fashion/ (scripts/fashion-samples.sh)"
	@bash scripts/fashion-samples.sh

compare-topology: build
	@echo "== topology preserved? TGLML vs gamma = 0 on configs/spheres.toml, 3 seeds (benches/train/compare.py $(BENCH_ARGS))"
	@$(BENCH_PY) benches/train/compare.py $(BENCH_ARGS)

eval-fashion: build
	@echo "== tglml eval on Fashion-MNIST: classifier, real vs real, untrained generator, each model kind (scripts/eval-fashion.sh; about an hour on 2 cores)"
	@bash scripts/setup-bench.sh
	@TGLML_PYTHON=$(BENCH_PY) bash scripts/eval-fashion.sh

sweep-torus: build
	@echo "== an evaluated sweep (slurm/sweep.sbatch, SEEDS and EVAL) of the torus VAE and GAN, then tglml report (scripts/sweep-torus.sh)"
	@bash scripts/sweep-torus.sh

topoae: build
	@echo "== issue 17: Topological Autoencoders' DeepAE recipe and TGLML on Fashion-MNIST and Spheres, into benches/topoae/results.md (scripts/topoae.sh; ONLY=fashion|spheres, SEEDS, FASHION_VARIANTS, TGLML_VARIANTS, SPHERE_VARIANTS, RESTART_VARIANTS; 10–25 minutes per Fashion-MNIST run on one thread)"
	@bash scripts/topoae.sh

# The Spheres runs of `make topoae` (output/topoae/spheres-*) beside
# scikit-learn's embeddings of the same test split.
topoae-peers:
	@echo "== benchmark environment (scripts/setup-bench.sh)"
	@bash scripts/setup-bench.sh
	@runs=$$(ls -d $(OUT)/topoae/spheres-*/ 2>/dev/null | while read -r d; do [[ -f $$d/run.h5 ]] && echo $$d; done); \
	  [[ -n $$runs ]] || { echo "make topoae-peers: no Spheres run in $(OUT)/topoae; run ONLY=spheres make topoae first" >&2; exit 1; }; \
	  echo "== Spheres: established embeddings beside $$(echo $$runs | wc -w) runs (benches/topoae/spheres_peers.py)"; \
	  $(BENCH_PY) benches/topoae/spheres_peers.py $$runs > benches/topoae/spheres-peers.md.tmp && \
	  mv benches/topoae/spheres-peers.md.tmp benches/topoae/spheres-peers.md && cat benches/topoae/spheres-peers.md

claims: build
	@echo "== the experiment of docs/claims.md: each model with and without the loss, 3 seeds, torus and Fashion-MNIST (scripts/claims.sh; about 2 hours on 2 cores)"
	@bash scripts/claims.sh
