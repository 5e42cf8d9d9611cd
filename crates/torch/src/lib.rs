//! TGLML's libtorch half: training (the VAE, the differentiable topological
//! loss, our Adam, checkpoints, the data-parallel loop) and the commands
//! that need it, for the tglml-torch binary that `tglml` hands them to
//! ([`tglml::commands::Torch`]).

pub mod eval;
pub mod evaluate;
pub mod features;
pub mod generate;
pub mod geodesic;
pub mod robust;
pub mod score;
pub mod train;

use std::path::Path;

use tglml::cli::{EvalArgs, InterpolateArgs, SampleArgs, TrainArgs};
use tglml::commands::{check_outputs, Exit, Setup, Torch};
use tglml::dist::Comm;
use tglml::error::Result;
use train::trainer::{self, Finish};

/// The libtorch commands, run here.
pub struct Commands;

impl Torch for Commands {
    fn train(&self, comm: &Comm, setup: &Setup, a: &TrainArgs) -> Result<Exit> {
        set_threads(setup.threads);
        let t = &setup.config.train;
        let inputs: Vec<&Path> = [&t.data, &t.test_data]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(Path::new)
            .collect();
        comm.agree(if comm.is_root() {
            trainer::check_fresh_start(&a.out, a.resume, a.overwrite)
        } else {
            Ok(())
        })?;
        let files = trainer::output_files(&a.out, &setup.config);
        let outs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        check_outputs(comm, &outs, &inputs)?;
        let finish = trainer::run(
            comm,
            &setup.config,
            setup.threads,
            &a.out,
            a.resume,
            &setup.stop,
        )?;
        let (message, exit) = match finish {
            Finish::Complete(s) => (s, Exit::Done),
            Finish::Interrupted(s) => (s, Exit::Interrupted),
        };
        if comm.is_root() {
            eprintln!("{message}");
        }
        Ok(exit)
    }

    fn sample(&self, comm: &Comm, setup: &Setup, a: &SampleArgs) -> Result<()> {
        set_threads(setup.threads);
        let _pool = tglml::runtime::adopt_current_thread(setup.threads);
        generate::sample(comm, setup, a)
    }

    fn interpolate(&self, comm: &Comm, setup: &Setup, a: &InterpolateArgs) -> Result<()> {
        set_threads(setup.threads);
        let _pool = tglml::runtime::adopt_current_thread(setup.threads);
        generate::interpolate(comm, setup, a)
    }

    fn eval(&self, comm: &Comm, setup: &Setup, a: &EvalArgs) -> Result<()> {
        set_threads(setup.threads);
        let _pool = tglml::runtime::adopt_current_thread(setup.threads);
        evaluate::eval(comm, setup, a)
    }

    fn info(&self) -> (Option<usize>, String) {
        let devices = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        let line = format!(
            "libtorch: CUDA available: {}, cuDNN: {}",
            tch::Cuda::is_available(),
            tch::Cuda::cudnn_is_available()
        );
        (Some(devices), line)
    }
}

/// Sizes libtorch's intra-op pool to `threads` (rayon's is sized by
/// [`tglml::runtime::init_threads`]).
pub fn set_threads(threads: usize) {
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
}

/// A test-only fault inside libtorch: when `TGLML_TEST_TORCH_FAULT` names
/// this rank, a tensor operation with mismatched shapes (which makes tch
/// panic) runs here, inside [`tglml::runtime::fallible`] where the caller
/// put it.
pub fn test_torch_fault_point(rank: usize) {
    if std::env::var("TGLML_TEST_TORCH_FAULT").is_ok_and(|v| v.trim() == rank.to_string()) {
        let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
        let b = tch::Tensor::zeros([4, 5], (tch::Kind::Float, tch::Device::Cpu));
        let _ = a.matmul(&b);
    }
}

#[cfg(test)]
mod tests {
    use tglml::runtime::fallible;

    #[test]
    fn a_libtorch_panic_becomes_a_short_error() {
        let e = fallible("multiplying", || {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            let b = tch::Tensor::zeros([4, 5], (tch::Kind::Float, tch::Device::Cpu));
            a.matmul(&b)
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "multiplying: libtorch failed: mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"
        );
        assert_eq!(fallible("fine", || 7).unwrap(), 7);
    }
}
