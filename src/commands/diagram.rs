//! `tglml diagram distance`: distances between the diagrams of two files.
//! Rank 0 computes; the other ranks wait for the outcome.

use ndarray::Array2;

use super::Setup;
use crate::cli::DistanceArgs;
use crate::config::{EssentialName, GroundName, MetricName};
use crate::dist::Comm;
use crate::error::Result;
use crate::io::diagrams::read_diagram;
use crate::io::{H5Writer, Stamp};
use crate::topology::diagram::{bottleneck, wasserstein, Essential, Ground, Matching};

pub fn distance(comm: &Comm, setup: &Setup, args: &DistanceArgs) -> Result<()> {
    let outcome = if comm.is_root() {
        compute(setup, args).map(Some)
    } else {
        Ok(None)
    };
    if let Some(value) = comm.agree(outcome)? {
        println!("{value}");
    }
    Ok(())
}

fn compute(setup: &Setup, args: &DistanceArgs) -> Result<f64> {
    let cfg = &setup.config.diagram;
    let a = read_diagram(&args.a, args.dim)?;
    let b = read_diagram(&args.b, args.dim)?;
    let ground = match cfg.ground {
        GroundName::Linf => Ground::LInf,
        GroundName::L2 => Ground::L2,
    };
    let essential = match cfg.essential {
        EssentialName::Match => Essential::Match,
        EssentialName::Ignore => Essential::Ignore,
    };
    let m = match cfg.metric {
        MetricName::Wasserstein => wasserstein(&a, &b, cfg.p, ground, essential)?,
        MetricName::Bottleneck => bottleneck(&a, &b, ground, essential)?,
    };
    let what = match cfg.metric {
        MetricName::Wasserstein => format!("{}-Wasserstein", cfg.p),
        MetricName::Bottleneck => "bottleneck".to_string(),
    };
    eprintln!(
        "diagram distance: H{} of {} ({} points) and {} ({} points): {what} = {}",
        args.dim,
        args.a.display(),
        a.len(),
        args.b.display(),
        b.len(),
        m.value
    );
    if let Some(out) = &args.out {
        let stamp = Stamp {
            command: setup.command.to_string(),
            config_toml: setup.config.to_toml(),
            n_ranks: 1,
            threads_per_rank: setup.threads,
        };
        write(out, &stamp, args, &m)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(m.value)
}

/// Writes the layout of docs/hdf5.md, "Diagram distance".
fn write(out: &std::path::Path, stamp: &Stamp, args: &DistanceArgs, m: &Matching) -> Result<()> {
    let w = H5Writer::create(out, stamp)?;
    w.attr_f64("/", "value", m.value)?;
    w.attr_u64("/", "dim", args.dim as u64)?;
    w.attr_str("/", "a", &args.a.display().to_string())?;
    w.attr_str("/", "b", &args.b.display().to_string())?;
    let mut pairs = Array2::<i64>::from_elem((m.pairs.len(), 2), -1);
    for (r, &(i, j)) in m.pairs.iter().enumerate() {
        if let Some(i) = i {
            pairs[(r, 0)] = i as i64;
        }
        if let Some(j) = j {
            pairs[(r, 1)] = j as i64;
        }
    }
    w.dataset("/matching", &pairs)?;
    w.commit()?;
    Ok(())
}
