//! `tglml diagram distance`: distances between the diagrams of two files.
//! Rank 0 computes; the other ranks wait for the outcome.

use ndarray::Array2;

use super::Setup;
use crate::cli::{DistanceArgs, SummarizeArgs};
use crate::config::{EssentialName, GroundName, MetricName};
use crate::dist::Comm;
use crate::error::Result;
use crate::guard::{self, Size};
use crate::io::diagrams::read_diagram;
use crate::io::{H5Writer, Stamp};
use crate::topology::diagram::{bottleneck, wasserstein, Essential, Ground, Matching};
use crate::topology::summaries::{
    betti_curve, entropy, grid, landscapes_sampled, persistence_image, total_persistence, ImageSpec,
};

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

pub fn summarize(comm: &Comm, setup: &Setup, args: &SummarizeArgs) -> Result<()> {
    let outcome = if comm.is_root() {
        summarize_and_write(setup, args).map(Some)
    } else {
        Ok(None)
    };
    if let Some(msg) = comm.agree(outcome)? {
        eprintln!("{msg}");
    }
    Ok(())
}

fn summarize_and_write(setup: &Setup, args: &SummarizeArgs) -> Result<String> {
    let cfg = &setup.config.summary;
    let f = hdf5::File::open(&args.input)
        .map_err(|e| crate::Error::hdf5(&args.input, "opening the file", e))?;
    let mut dims: Vec<usize> = f
        .group("diagrams")
        .and_then(|g| g.member_names())
        .map_err(|e| crate::Error::hdf5(&args.input, "group /diagrams", e))?
        .iter()
        .filter_map(|n| n.strip_prefix("dim").and_then(|k| k.parse().ok()))
        .collect();
    dims.sort_unstable();
    drop(f);
    let stamp = Stamp {
        command: setup.command.to_string(),
        config_toml: setup.config.to_toml(),
        n_ranks: 1,
        threads_per_rank: setup.threads,
    };
    // Read and check everything before creating the output.
    let diagrams: Vec<(usize, Vec<(f64, f64)>)> = dims
        .iter()
        .map(|&k| read_diagram(&args.input, k).map(|d| (k, d)))
        .collect::<Result<_>>()?;
    // Every array is sized by settings: check them all before any is made.
    let (r, k, ir) = (
        cfg.resolution as u64,
        cfg.landscapes as u64,
        cfg.image_resolution as u64,
    );
    let per_dim = Size::array(&[k.saturating_add(2), r], 8)
        .times(2)
        .plus(Size::array(&[ir, ir], 8).times(2));
    guard::need(
        &format!(
            "the summaries of {} diagrams ({k} landscapes and Betti curves on {r} grid points, {ir} × {ir} images)",
            diagrams.len()
        ),
        per_dim.times(diagrams.len() as u64),
        "summary.resolution (--resolution), summary.landscapes (--landscapes) or summary.image_resolution",
    )?;
    let w = H5Writer::create(&args.out, &stamp)?;
    w.attr_str("/", "input", &args.input.display().to_string())?;
    for (k, pts) in &diagrams {
        let g = format!("/dim{k}");
        let finite: Vec<(f64, f64)> = pts.iter().copied().filter(|p| p.1.is_finite()).collect();
        let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let hi = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let t = grid(lo, hi, cfg.resolution);
        if cfg.landscapes > 0 {
            let l = landscapes_sampled(pts, cfg.landscapes, &t).concat();
            all_finite(&args.input, *k, "landscapes", &l)?;
            let arr = Array2::from_shape_vec((cfg.landscapes, t.len()), l)
                .map_err(|e| crate::Error::external("landscapes", e))?;
            w.dataset(&format!("{g}/landscapes"), &arr)?;
            w.dataset(
                &format!("{g}/landscapes_grid"),
                &ndarray::Array1::from_vec(t.clone()),
            )?;
        }
        if cfg.betti {
            w.dataset(
                &format!("{g}/betti"),
                &ndarray::Array1::from_vec(betti_curve(pts, &t)),
            )?;
            w.dataset(
                &format!("{g}/betti_grid"),
                &ndarray::Array1::from_vec(t.clone()),
            )?;
        }
        if cfg.image {
            let blo = finite.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let bhi = finite.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
            let pmax = finite.iter().map(|p| p.1 - p.0).fold(0.0, f64::max);
            let (blo, bhi) = match (blo.is_finite(), bhi > blo) {
                (true, true) => (blo, bhi),
                (true, false) => (blo - 0.5, blo + 0.5), // all births equal
                (false, _) => (0.0, 1.0),                // no finite bar
            };
            let pmax = if pmax > 0.0 { pmax } else { 1.0 };
            let bandwidth = if cfg.image_bandwidth > 0.0 {
                cfg.image_bandwidth
            } else {
                pmax / cfg.image_resolution as f64
            };
            let r = cfg.image_resolution;
            let spec = ImageSpec {
                bandwidth,
                resolution: (r, r),
                range: (blo, bhi, 0.0, pmax),
            };
            let values = persistence_image(pts, &spec);
            all_finite(&args.input, *k, "persistence image", &values)?;
            let img = Array2::from_shape_vec((r, r), values)
                .map_err(|e| crate::Error::external("image", e))?;
            w.dataset(&format!("{g}/image"), &img)?;
            w.dataset(
                &format!("{g}/image_birth_grid"),
                &ndarray::Array1::from_vec(grid(blo, bhi, r)),
            )?;
            w.dataset(
                &format!("{g}/image_persistence_grid"),
                &ndarray::Array1::from_vec(grid(0.0, pmax, r)),
            )?;
            w.attr_f64(&format!("{g}/image"), "bandwidth", bandwidth)?;
        }
        if !w.file().link_exists(&g) {
            w.file()
                .create_group(&g)
                .map_err(|e| crate::Error::hdf5(&args.out, g.clone(), e))?;
        }
        w.attr_u64(&g, "n_bars", pts.len() as u64)?;
        for (name, v) in [
            ("total_persistence_1", total_persistence(pts, 1.0)),
            ("total_persistence_2", total_persistence(pts, 2.0)),
            ("entropy", entropy(pts)),
        ] {
            all_finite(&args.input, *k, name, &[v])?;
            w.attr_f64(&g, name, v)?;
        }
    }
    let path = w.commit()?;
    Ok(format!(
        "wrote {}: summaries of H{:?}",
        path.display(),
        dims
    ))
}

/// Refuses a summary with a value that is not finite: a diagram whose
/// values are so large that their squares or Gaussians overflow float64
/// (a death of 1e200) would otherwise be written as NaN or inf.
fn all_finite(input: &std::path::Path, k: usize, what: &str, values: &[f64]) -> Result<()> {
    match values.iter().find(|v| !v.is_finite()) {
        None => Ok(()),
        Some(v) => Err(crate::Error::invalid(
            format!("{}: /diagrams/dim{k}", input.display()),
            format!(
                "its {what} has the value {v}: the diagram's values are too large (or too small) for float64 arithmetic; rescale the data it was computed from"
            ),
        )),
    }
}
