//! `tglml ph`: Rips persistence of one point cloud or distance matrix.
//!
//! Rank 0 reads, computes and writes; the other ranks wait for the outcome
//! (distributed persistence over collections and shards is `dist`'s job,
//! later). Every check that can refuse the run (input, landmarks, memory
//! budget) happens before the output file is created.

use std::path::Path;
use std::time::Instant;

use ndarray::{Array2, Axis};

use super::Setup;
use crate::cli::PhArgs;
use crate::config::{LandmarkMethodName, PhConfig};
use crate::data::matrix::read_matrix;
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::io::collection::is_collection;
use crate::io::{H5Writer, Stamp};
use crate::progress::Progress;
use crate::runtime;
use crate::topology::landmarks::{self, LandmarkMethod, Landmarks};
use crate::topology::{
    estimate_memory, rips_persistence_with_progress, Diagrams, DistanceMatrix, RipsOptions,
};

pub fn run(comm: &Comm, setup: &Setup, args: &PhArgs) -> Result<()> {
    if is_collection(&args.input) {
        return super::ph_collection::run(comm, setup, args);
    }
    if comm.size() > 1 && shardable(setup, args) {
        return run_sharded(comm, setup, args);
    }
    let outcome = if comm.is_root() {
        compute_and_write(setup, args).map(Some)
    } else {
        Ok(None)
    };
    if let Some(summary) = comm.agree(outcome)? {
        eprintln!("{summary}");
    }
    runtime::report_peak_memory(comm, "ph");
    Ok(())
}

fn compute_and_write(setup: &Setup, args: &PhArgs) -> Result<String> {
    let cfg = &setup.config.ph;
    let t0 = Instant::now();
    let input = read_matrix(&args.input, Some(&args.dataset))?;
    let what = args.input.display().to_string();
    if let Some(((i, j), v)) = input.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            what,
            format!("row {i}, column {j}: values must be finite, got {v}"),
        ));
    }
    let mut chosen: Option<Landmarks> = None;
    // Rows of the input cloud (critical edges index these).
    let n_points;
    let dist = if args.edge_list {
        let dist = DistanceMatrix::from_edge_list(input.view(), None)
            .map_err(|e| e.context(what.clone()))?;
        eprintln!(
            "ph: read {} edges on {} points from {}",
            input.nrows(),
            dist.len(),
            args.input.display()
        );
        n_points = dist.len();
        dist
    } else {
        let (n, d) = input.dim();
        n_points = n;
        eprintln!("ph: read {n} × {d} from {}", args.input.display());
        check_landmarks(cfg, n)?;
        if args.distance_matrix {
            check_symmetric(&input, &what)?;
        }
        // Landmarks (point clouds only).
        let points = if cfg.landmarks > 0 && cfg.landmarks < n {
            if args.distance_matrix {
                return Err(Error::invalid(
                    "--landmarks",
                    "landmarks are chosen on point clouds, not on a distance matrix",
                ));
            }
            let l = landmarks::select(input.view(), cfg.landmarks, landmark_method(cfg))?;
            eprintln!(
                "ph: {} {} landmarks, covering radius {:.6} (landmark diagram within bottleneck distance {:.6} of the full one)",
                l.indices.len(),
                cfg.landmark_method.name(),
                l.covering_radius,
                2.0 * l.covering_radius
            );
            let sub = input.select(Axis(0), &l.indices);
            chosen = Some(l);
            sub
        } else {
            input
        };
        if args.distance_matrix {
            DistanceMatrix::from_square(points.view()).map_err(|e| e.context(what.clone()))?
        } else {
            DistanceMatrix::from_points(points.view())?
        }
    };
    finish(setup, &args.out, &what, dist, chosen, n_points, 1, t0)
}

/// Persistence of `dist` (the points, or the landmarks `chosen` among
/// `n_points`), then the output file; returns the summary line.
#[allow(clippy::too_many_arguments)]
fn finish(
    setup: &Setup,
    out: &Path,
    what: &str,
    dist: DistanceMatrix,
    chosen: Option<Landmarks>,
    n_points: usize,
    n_ranks: usize,
    t0: Instant,
) -> Result<String> {
    let cfg = &setup.config.ph;
    if dist.len() < 2 {
        return Err(Error::invalid(
            what,
            format!("needs at least 2 points, got {}", dist.len()),
        ));
    }
    let m = dist.len();
    let opts = rips_options(cfg);
    let est = estimate_memory(&dist, &opts);
    crate::guard::need(
        &format!(
            "persistence of {m} points ({} edges and up to {:?} simplices of dimension 1..{})",
            est.edges,
            est.simplices,
            cfg.maxdim.max(1)
        ),
        crate::guard::Size::bytes(est.bytes),
        "--threshold, or use --landmarks N",
    )?;
    eprintln!(
        "ph: memory estimate {} ({} edges), budget {}",
        crate::guard::human(est.bytes),
        est.edges,
        crate::guard::human(crate::guard::budget())
    );
    let t1 = Instant::now();
    let stages = StageProgress::default();
    let diagrams = rips_persistence_with_progress(&dist, &opts, &|p| stages.update(p))?;
    stages.finish();
    let counts: Vec<String> = diagrams
        .dims
        .iter()
        .enumerate()
        .map(|(k, b)| format!("H{k}: {}", b.len()))
        .collect();
    eprintln!(
        "ph: persistence of {m} points up to H{} in {:.2} s ({}), threshold {}",
        cfg.maxdim,
        t1.elapsed().as_secs_f64(),
        counts.join(", "),
        diagrams.threshold
    );
    let stamp = Stamp {
        command: setup.command.to_string(),
        config_toml: setup.config.to_toml(),
        n_ranks,
        threads_per_rank: setup.threads,
    };
    let path = write(out, &stamp, &diagrams, chosen.as_ref(), n_points, est.bytes)?;
    Ok(format!(
        "wrote {} in {:.2} s",
        path.display(),
        t0.elapsed().as_secs_f64()
    ))
}

/// Refuses more landmarks than points (the output's stamped configuration
/// would name a number that was not used).
fn check_landmarks(cfg: &PhConfig, n: usize) -> Result<()> {
    if cfg.landmarks > n {
        return Err(Error::invalid(
            "ph.landmarks (--landmarks)",
            format!(
                "{} landmarks asked of {n} points: at most {n} (or 0 for all points)",
                cfg.landmarks
            ),
        ));
    }
    Ok(())
}

/// Refuses a `--distance-matrix` input that is not symmetric (only one
/// triangle would be read: the other's values would be ignored silently).
fn check_symmetric(m: &Array2<f64>, what: &str) -> Result<()> {
    let n = m.nrows().min(m.ncols());
    for i in 0..n {
        for j in 0..i {
            let (a, b) = (m[(i, j)], m[(j, i)]);
            if a != b && ((a - b).abs() > 1e-12 * a.abs().max(b.abs()) || (a - b).is_nan()) {
                return Err(Error::invalid(
                    what,
                    format!(
                        "is not a symmetric distance matrix: entry ({i}, {j}) is {a}, entry ({j}, {i}) is {b}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The engine's options from `[ph]`.
pub(super) fn rips_options(cfg: &PhConfig) -> RipsOptions {
    RipsOptions {
        maxdim: cfg.maxdim,
        threshold: cfg.threshold.value(),
        clearing: cfg.clearing,
        emergent_pairs: cfg.emergent_pairs,
        apparent_pairs: cfg.apparent_pairs,
        modulus: cfg.coefficients,
        neighbor_lists: cfg.neighbor_lists,
        dense_h0: cfg.dense_h0,
    }
}

/// The landmark method of `[ph]`.
pub(super) fn landmark_method(cfg: &PhConfig) -> LandmarkMethod {
    match cfg.landmark_method {
        LandmarkMethodName::Maxmin => LandmarkMethod::MaxMin,
        LandmarkMethodName::Random => LandmarkMethod::Random { seed: cfg.seed },
    }
}

/// One progress bar per stage of the engine (rank 0 only: `compute_and_write`
/// runs there).
#[derive(Default)]
struct StageProgress {
    current: std::sync::Mutex<Option<((usize, &'static str), Progress)>>,
}

impl StageProgress {
    fn update(&self, p: crate::topology::Progress) {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let key = (p.dim, p.stage);
        if cur.as_ref().map(|c| c.0) != Some(key) {
            if let Some((_, old)) = cur.take() {
                old.finish();
            }
            let unit = if p.stage == "columns" {
                "simplices"
            } else {
                "columns"
            };
            let bar = Progress::new(true, &format!("ph H{} {}", p.dim, p.stage), p.total, unit)
                .quiet_if_fast();
            *cur = Some((key, bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            bar.set(p.done);
        }
    }

    fn finish(&self) {
        if let Some((_, bar)) = self
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish();
        }
    }
}

/// Writes the layout of docs/hdf5.md, "Persistence diagrams (`tglml ph`)".
fn write(
    out: &Path,
    stamp: &Stamp,
    dg: &Diagrams,
    landmarks: Option<&Landmarks>,
    n_points: usize,
    memory_estimate: u64,
) -> Result<std::path::PathBuf> {
    let w = H5Writer::create(out, stamp)?;
    w.attr_u64("/", "memory_estimate_bytes", memory_estimate)?;
    w.attr_u64("/", "maxdim", (dg.dims.len() - 1) as u64)?;
    w.attr_f64("/", "threshold", dg.threshold)?;
    w.attr_u64("/", "n_points", n_points as u64)?;
    w.attr_u64("/", "coefficients", dg.coefficients as u64)?;
    // Point indices of the original cloud (through the landmarks, if any).
    let index = |i: usize| -> i64 { landmarks.map_or(i, |l| l.indices[i]) as i64 };
    for (k, bars) in dg.dims.iter().enumerate() {
        let mut values = Array2::<f64>::zeros((bars.len(), 2));
        let mut edges = Array2::<i64>::from_elem((bars.len(), 4), -1);
        for (r, b) in bars.iter().enumerate() {
            values[(r, 0)] = b.birth;
            values[(r, 1)] = b.death;
            if let Some([i, j]) = b.birth_edge {
                edges[(r, 0)] = index(i);
                edges[(r, 1)] = index(j);
            }
            if let Some([i, j]) = b.death_edge {
                edges[(r, 2)] = index(i);
                edges[(r, 3)] = index(j);
            }
        }
        w.dataset(&format!("/diagrams/dim{k}"), &values)?;
        w.dataset(&format!("/critical_edges/dim{k}"), &edges)?;
    }
    if let Some(l) = landmarks {
        let idx: Vec<i64> = l.indices.iter().map(|&i| i as i64).collect();
        w.dataset("/landmarks/indices", &ndarray::Array1::from_vec(idx))?;
        w.attr_f64("/landmarks", "covering_radius", l.covering_radius)?;
    }
    w.commit()
}

/// Whether a matrix input can be read by row ranges and its landmarks chosen
/// across ranks: an HDF5 dataset or an IDX file, a point cloud, maxmin
/// landmarks.
fn shardable(setup: &Setup, args: &PhArgs) -> bool {
    let cfg = &setup.config.ph;
    !args.distance_matrix
        && !args.edge_list
        && cfg.landmarks > 0
        && cfg.landmark_method == LandmarkMethodName::Maxmin
        && matches!(
            crate::data::matrix::row_source(&args.input),
            Some(crate::data::matrix::RowSource::Hdf5 | crate::data::matrix::RowSource::Idx)
        )
}

/// `tglml ph` on one large matrix under mpirun: every rank reads only its
/// block of rows, the ranks choose maxmin landmarks together (the same as
/// serial maxmin, bit for bit), and rank 0 computes the persistence of the
/// landmarks and writes the file, as a single process would.
fn run_sharded(comm: &Comm, setup: &Setup, args: &PhArgs) -> Result<()> {
    use crate::data::matrix::{read_rows, row_count};
    use crate::dist::landmarks::{maxmin, shard_range};
    let cfg = &setup.config.ph;
    let t0 = Instant::now();
    let what = args.input.display().to_string();
    let (n, d) = comm.agree(row_count(&args.input, &args.dataset))?;
    check_landmarks(cfg, n)?;
    let range = shard_range(n, comm.rank(), comm.size());
    let shard = comm.agree(
        read_rows(&args.input, &args.dataset, range.clone()).and_then(|x| {
            match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
                Some(((i, j), v)) => Err(Error::invalid(
                    what.clone(),
                    format!(
                        "row {}, column {j}: values must be finite, got {v}",
                        range.start + i
                    ),
                )),
                None => Ok(x),
            }
        }),
    )?;
    if comm.is_root() {
        eprintln!(
            "ph: {n} × {d} from {} over {} ranks ({} rows on rank 0)",
            args.input.display(),
            comm.size(),
            shard.nrows()
        );
    }
    let m = cfg.landmarks.min(n);
    let bar =
        Progress::new(comm.is_root(), "maxmin landmarks", m as u64, "landmarks").quiet_if_fast();
    let chosen = comm.agree(maxmin(comm, shard.view(), range.start, m, &|k| {
        bar.set(k as u64)
    }))?;
    bar.finish();
    drop(shard);
    // The shards are gone; what each rank held at most is its peak.
    runtime::report_peak_memory(comm, "ph");
    let outcome = if comm.is_root() {
        eprintln!(
            "ph: {} maxmin landmarks, covering radius {:.6} (landmark diagram within bottleneck distance {:.6} of the full one)",
            chosen.indices.len(),
            chosen.covering_radius,
            2.0 * chosen.covering_radius
        );
        DistanceMatrix::from_points(chosen.points.view())
            .and_then(|dist| {
                let l = Landmarks {
                    indices: chosen.indices.clone(),
                    covering_radius: chosen.covering_radius,
                };
                finish(setup, &args.out, &what, dist, Some(l), n, comm.size(), t0)
            })
            .map(Some)
    } else {
        Ok(None)
    };
    if let Some(summary) = comm.agree(outcome)? {
        eprintln!("{summary}");
    }
    Ok(())
}
