//! `tglml data synth`: generate a synthetic dataset, write one HDF5 file.
//!
//! Each rank generates a contiguous range of blocks (see
//! [`crate::data::synth`]); rank 0 gathers them in rank order and writes.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use ndarray::{Array1, Array2};

use super::Setup;
use crate::data::synth::{Plan, Points, BLOCK};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::io::{H5Writer, Stamp};
use crate::progress::Progress;

pub fn run(comm: &Comm, setup: &Setup, out: &Path) -> Result<()> {
    let cfg = &setup.config.synth;
    comm.agree(Plan::check_size(cfg))?;
    let plan = Plan::new(cfg);
    let blocks = plan.blocks_of_rank(comm.rank(), comm.size());
    let local_points = (blocks.end * BLOCK).min(plan.n()) - (blocks.start * BLOCK).min(plan.n());
    let label = if comm.size() > 1 {
        format!("synth {} (rank 0 of {})", cfg.kind.name(), comm.size())
    } else {
        format!("synth {}", cfg.kind.name())
    };
    let progress = Progress::new(comm.is_root(), &label, local_points as u64, "points");
    let local = plan.generate(blocks, &|k| progress.inc(k as u64));
    progress.finish();

    let x = comm.gather_concat(&local.x)?;
    let y = comm.gather_concat(&local.y)?;
    let params = comm.gather_concat(&local.params)?;
    let written = match (x, y, params) {
        (Some(x), Some(y), Some(params)) => {
            let all = Points { x, y, params };
            let stamp = Stamp {
                command: setup.command.to_string(),
                config_toml: setup.config.to_toml(),
                n_ranks: comm.size(),
                threads_per_rank: setup.threads,
            };
            write(&plan, &all, out, &stamp).map(Some)
        }
        _ => Ok(None),
    };
    if let Some(path) = comm.agree(written)? {
        eprintln!(
            "wrote {}: {} points in R^{} ({})",
            path.display(),
            plan.n(),
            plan.dim(),
            cfg.kind.name()
        );
    }
    Ok(())
}

/// Writes the layout of docs/hdf5.md, "Sample matrix (`tglml data synth`)".
fn write(plan: &Plan, p: &Points, out: &Path, stamp: &Stamp) -> Result<std::path::PathBuf> {
    let shape_err = |what: &str, e: ndarray::ShapeError| Error::external(what, e);
    let w = H5Writer::create(out, stamp)?;
    let x = Array2::from_shape_vec((plan.n(), plan.dim()), p.x.clone())
        .map_err(|e| shape_err("/x", e))?;
    w.dataset("/x", &x)?;
    if plan.has_labels() {
        w.dataset("/y", &Array1::from_vec(p.y.clone()))?;
    }
    let names = plan.param_names();
    if !names.is_empty() {
        let params = Array2::from_shape_vec((plan.n(), names.len()), p.params.clone())
            .map_err(|e| shape_err("/params", e))?;
        let ds = w.dataset("/params", &params)?;
        let names: Vec<VarLenUnicode> = names
            .iter()
            .map(|s| s.parse().expect("ASCII names"))
            .collect();
        ds.new_attr_builder()
            .with_data(&names)
            .create("names")
            .map_err(|e| Error::hdf5(out, "attribute names of /params", e))?;
    }
    if !plan.centers().is_empty() {
        let rows = plan.centers().len() / plan.dim();
        let centers = Array2::from_shape_vec((rows, plan.dim()), plan.centers().to_vec())
            .map_err(|e| shape_err("/centers", e))?;
        w.dataset("/centers", &centers)?;
    }
    w.commit()
}
