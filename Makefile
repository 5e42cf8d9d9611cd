# TGLML: the commands of README.md.
#   make run    set up (once), build, and run the main job on the built-in defaults
#   make test   set up (once), build, lint, and run the whole test suite
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# OpenMPI refuses to run as root without these (CI and containers run as root).
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

TGLML := target/release/tglml
OUT ?= output

.PHONY: setup build run test lint test-unit help

help:
	@sed -n '2,3p' Makefile

setup:
	@bash scripts/setup.sh --no-build

build: setup
	@echo "== build (cargo build --release)"
	@cargo build --release

run: build
	@echo "== main job: tglml data synth (built-in defaults) -> $(OUT)/synth.h5"
	@$(TGLML) data synth --out $(OUT)/synth.h5
	@h5ls -r $(OUT)/synth.h5

lint: setup
	@echo "== cargo fmt --check"
	@cargo fmt --check
	@echo "== cargo clippy --all-targets -- -D warnings"
	@cargo clippy --all-targets -- -D warnings

test: build lint
	@echo "== cargo test --release (unit, CLI, mpirun 1/2/4 ranks, h5py read-back)"
	@cargo test --release
