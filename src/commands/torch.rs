//! The commands that need libtorch run in tglml-torch, a second binary
//! beside `tglml` (crates/torch): `tglml train`, `tglml sample`, `tglml
//! interpolate`, `tglml eval`, and `tglml info` for its libtorch line. Every other command neither links nor loads libtorch
//! (about 0.5 s and 120 MiB at each start), and the compiler checks it: this
//! crate does not depend on tch.
//!
//! `tglml` hands such a command over with `exec`, at the very start, before
//! MPI is initialised: under mpirun or srun the process the launcher started
//! becomes tglml-torch, with the same process id, arguments and environment,
//! so the launcher sees nothing change.

use std::path::{Path, PathBuf};

use super::{Exit, Setup};
use crate::cli::{EvalArgs, InterpolateArgs, SampleArgs, TrainArgs};
use crate::dist::Comm;
use crate::error::{Error, Result};

/// The commands that need libtorch.
pub trait Torch {
    /// Replaces this process by the binary that runs the libtorch commands,
    /// if this is not it; returns if it is, or if there is none.
    fn hand_off(&self) {}
    /// `tglml train`, after [`super::prepare`].
    fn train(&self, comm: &Comm, setup: &Setup, args: &TrainArgs) -> Result<Exit>;
    /// `tglml sample`, after [`super::prepare`].
    fn sample(&self, comm: &Comm, setup: &Setup, args: &SampleArgs) -> Result<()>;
    /// `tglml interpolate`, after [`super::prepare`].
    fn interpolate(&self, comm: &Comm, setup: &Setup, args: &InterpolateArgs) -> Result<()>;
    /// `tglml eval`, after [`super::prepare`].
    fn eval(&self, comm: &Comm, setup: &Setup, args: &EvalArgs) -> Result<()>;
    /// For `tglml info`: this rank's CUDA device count, if libtorch is
    /// here, and the line on libtorch.
    fn info(&self) -> (Option<usize>, String);
}

/// The `tglml` binary's side: hands the libtorch commands to tglml-torch.
pub struct HandOff {
    path: PathBuf,
}

impl HandOff {
    /// The file name of the binary that runs the libtorch commands.
    pub const BINARY: &'static str = "tglml-torch";

    /// tglml-torch beside the running executable (`target/release/`, or
    /// wherever both were installed).
    pub fn beside_current_exe() -> Self {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        HandOff {
            path: dir.join(Self::BINARY),
        }
    }

    fn missing(&self) -> String {
        format!(
            "{} (the half of TGLML that links libtorch) is not at {}; build both with `cargo build --release` (or `make build`), which puts it beside tglml",
            Self::BINARY,
            self.path.display()
        )
    }
}

impl Torch for HandOff {
    fn hand_off(&self) {
        use std::os::unix::process::CommandExt;
        if !self.path.is_file() {
            return; // the command says so ([`Torch::train`], [`Torch::info`])
        }
        let mut cmd = std::process::Command::new(&self.path);
        cmd.args(std::env::args_os().skip(1));
        let err = cmd.exec();
        // exec returns only on failure.
        eprintln!(
            "tglml: error: could not start {}: {err}",
            self.path.display()
        );
        std::process::exit(1);
    }

    fn train(&self, _: &Comm, _: &Setup, _: &TrainArgs) -> Result<Exit> {
        Err(Error::invalid("train", self.missing()))
    }

    fn sample(&self, _: &Comm, _: &Setup, _: &SampleArgs) -> Result<()> {
        Err(Error::invalid("sample", self.missing()))
    }

    fn interpolate(&self, _: &Comm, _: &Setup, _: &InterpolateArgs) -> Result<()> {
        Err(Error::invalid("interpolate", self.missing()))
    }

    fn eval(&self, _: &Comm, _: &Setup, _: &EvalArgs) -> Result<()> {
        Err(Error::invalid("eval", self.missing()))
    }

    fn info(&self) -> (Option<usize>, String) {
        (None, format!("libtorch: not available: {}", self.missing()))
    }
}
