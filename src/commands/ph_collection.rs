//! `tglml ph` on a collection of point clouds (`tglml data pack`): the
//! diagrams of every object, spread over the ranks.
//!
//! Objects go to ranks by estimated cost (heaviest first, each to the
//! least-loaded rank), not by count; each rank reads only its objects' rows
//! and computes them on its rayon threads; rank 0 shows progress over all
//! ranks, gathers the diagrams (with critical edges) and writes one file
//! with the diagrams of every dimension in CSR form (docs/hdf5.md,
//! "Diagrams of a collection"). An object's diagrams do not depend on the
//! number of ranks or threads, so the file is the same for any of them.

use std::sync::Mutex;
use std::time::Instant;

use ndarray::{Array1, Array2, Axis};

use super::Setup;
use crate::cli::PhArgs;
use crate::config::{OnErrorName, PhConfig};
use crate::dist::jobs::{balance, run_tasks, OnError};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::guard::{self, Size};
use crate::io::collection::Collection;
use crate::io::{H5Writer, Stamp};
use crate::runtime;
use crate::topology::landmarks;
use crate::topology::{estimate_memory, rips_persistence, DistanceMatrix};

/// The persistence of one object, as gathered to rank 0.
#[derive(Debug, Clone, PartialEq)]
struct ObjectDiagrams {
    n_points: u64,
    n_landmarks: u64,
    covering_radius: f64,
    threshold: f64,
    /// Per dimension: (birth, death, birth edge i, j, death edge k, l),
    /// point indices of the object (-1 where there is no edge).
    dims: Vec<Vec<(f64, f64, [i64; 4])>>,
}

pub fn run(comm: &Comm, setup: &Setup, args: &PhArgs) -> Result<()> {
    let cfg = &setup.config.ph;
    let t0 = Instant::now();
    if args.distance_matrix || args.edge_list {
        return Err(Error::invalid(
            args.input.display().to_string(),
            "is a collection of point clouds: --distance-matrix and --edge-list do not apply",
        ));
    }
    let col = comm.agree(Collection::open(&args.input))?;
    let k = col.len();
    // Cost estimate: the points persistence works on, to the power of the
    // number of vertices of the largest simplices it builds.
    let costs: Vec<f64> = (0..k)
        .map(|i| {
            let m = match cfg.landmarks {
                0 => col.count(i),
                l => l.min(col.count(i)),
            } as f64;
            m.powi(cfg.maxdim as i32 + 2)
        })
        .collect();
    let parts = balance(&costs, comm.size());
    if comm.is_root() {
        eprintln!(
            "ph: {k} objects of {} over {} rank(s) (balanced by estimated cost)",
            args.input.display(),
            comm.size()
        );
    }
    let on_error = match cfg.on_error {
        OnErrorName::Abort => OnError::Abort,
        OnErrorName::Skip => OnError::Skip,
    };
    // Objects run in parallel on the threads: each gets its share of the
    // rank's memory budget.
    let share = setup.threads.max(1);
    let col = Mutex::new(col);
    let results = run_tasks(comm, &parts[comm.rank()], k, "ph objects", on_error, |i| {
        let (pts, name) = {
            let c = col.lock().unwrap_or_else(|e| e.into_inner());
            (c.object(i), c.names[i].clone())
        };
        object_diagrams(pts?, cfg, share).map_err(|e| e.context(format!("object {i} ({name})")))
    });
    let col = col.into_inner().unwrap_or_else(|e| e.into_inner());
    runtime::report_peak_memory(comm, "ph");
    let mut bytes = Vec::new();
    for (i, r) in &results {
        encode(&mut bytes, *i, r);
    }
    let gathered = comm.gather_concat(&bytes)?;
    let outcome = match gathered {
        Some(all) => {
            let decoded = decode(&all, k, cfg.maxdim + 1)?;
            write_output(setup, args, &col, &decoded, comm.size(), t0).map(Some)
        }
        None => Ok(None),
    };
    if let Some(summary) = comm.agree(outcome)? {
        eprintln!("{summary}");
    }
    Ok(())
}

fn object_diagrams(pts: Array2<f64>, cfg: &PhConfig, parts: usize) -> Result<ObjectDiagrams> {
    let n = pts.nrows();
    if let Some(((i, j), v)) = pts.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            format!("point {i}, coordinate {j}"),
            format!("must be finite, got {v}"),
        ));
    }
    if n < 2 {
        return Err(Error::invalid(
            "points",
            format!("needs at least 2 points, got {n}"),
        ));
    }
    let chosen = if cfg.landmarks > 0 && cfg.landmarks < n {
        Some(landmarks::select(
            pts.view(),
            cfg.landmarks,
            super::ph::landmark_method(cfg),
        )?)
    } else {
        None
    };
    let sub = match &chosen {
        Some(l) => pts.select(Axis(0), &l.indices),
        None => pts,
    };
    let m = sub.nrows() as u64;
    guard::need_share(
        &format!("the distance matrix of {m} points"),
        Size::triangle(m, 4),
        parts,
        "--landmarks N",
    )?;
    let dist = DistanceMatrix::from_points(sub.view())?;
    let opts = super::ph::rips_options(cfg);
    let est = estimate_memory(&dist, &opts);
    guard::need_share(
        &format!(
            "persistence ({} edges, up to {:?} simplices)",
            est.edges, est.simplices
        ),
        Size::bytes(est.bytes),
        parts,
        "--threshold, or use --landmarks N",
    )?;
    let dg = rips_persistence(&dist, &opts)?;
    let index = |i: usize| -> i64 { chosen.as_ref().map_or(i, |l| l.indices[i]) as i64 };
    let dims = dg
        .dims
        .iter()
        .map(|bars| {
            bars.iter()
                .map(|b| {
                    let mut e = [-1i64; 4];
                    if let Some([i, j]) = b.birth_edge {
                        e[0] = index(i);
                        e[1] = index(j);
                    }
                    if let Some([i, j]) = b.death_edge {
                        e[2] = index(i);
                        e[3] = index(j);
                    }
                    (b.birth, b.death, e)
                })
                .collect()
        })
        .collect();
    Ok(ObjectDiagrams {
        n_points: n as u64,
        n_landmarks: m,
        covering_radius: chosen.as_ref().map_or(0.0, |l| l.covering_radius),
        threshold: dg.threshold,
        dims,
    })
}

// Wire format of the gather (little-endian): task u64, ok u8; ok: n_points
// u64, n_landmarks u64, covering_radius f64, threshold f64, dims u32, per
// dimension: bars u64, bars × (birth f64, death f64, 4 × i64); failed:
// message length u64, UTF-8 bytes.

fn encode(out: &mut Vec<u8>, task: usize, r: &std::result::Result<ObjectDiagrams, String>) {
    out.extend_from_slice(&(task as u64).to_le_bytes());
    match r {
        Ok(o) => {
            out.push(1);
            out.extend_from_slice(&o.n_points.to_le_bytes());
            out.extend_from_slice(&o.n_landmarks.to_le_bytes());
            out.extend_from_slice(&o.covering_radius.to_le_bytes());
            out.extend_from_slice(&o.threshold.to_le_bytes());
            out.extend_from_slice(&(o.dims.len() as u32).to_le_bytes());
            for bars in &o.dims {
                out.extend_from_slice(&(bars.len() as u64).to_le_bytes());
                for (b, d, e) in bars {
                    out.extend_from_slice(&b.to_le_bytes());
                    out.extend_from_slice(&d.to_le_bytes());
                    for x in e {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                }
            }
        }
        Err(msg) => {
            out.push(0);
            out.extend_from_slice(&(msg.len() as u64).to_le_bytes());
            out.extend_from_slice(msg.as_bytes());
        }
    }
}

type Outcomes = Vec<Option<std::result::Result<ObjectDiagrams, String>>>;

fn decode(mut b: &[u8], k: usize, dims: usize) -> Result<Outcomes> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if b.len() < n {
            return Err(Error::Mpi("truncated diagram message".into()));
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Ok(h)
    }
    let u64_ = |b: &mut &[u8]| -> Result<u64> {
        Ok(u64::from_le_bytes(take(b, 8)?.try_into().expect("8 bytes")))
    };
    let f64_ = |b: &mut &[u8]| -> Result<f64> { Ok(f64::from_bits(u64_(b)?)) };
    let mut out: Outcomes = vec![None; k];
    while !b.is_empty() {
        let task = u64_(&mut b)? as usize;
        let ok = take(&mut b, 1)?[0];
        let r = if ok == 1 {
            let n_points = u64_(&mut b)?;
            let n_landmarks = u64_(&mut b)?;
            let covering_radius = f64_(&mut b)?;
            let threshold = f64_(&mut b)?;
            let nd = u32::from_le_bytes(take(&mut b, 4)?.try_into().expect("4 bytes")) as usize;
            if nd != dims {
                return Err(Error::Mpi(format!(
                    "object {task}: {nd} dimensions, expected {dims}"
                )));
            }
            let mut ds = Vec::with_capacity(nd);
            for _ in 0..nd {
                let bars = u64_(&mut b)? as usize;
                let mut v = Vec::with_capacity(bars);
                for _ in 0..bars {
                    let birth = f64_(&mut b)?;
                    let death = f64_(&mut b)?;
                    let mut e = [0i64; 4];
                    for x in &mut e {
                        *x = u64_(&mut b)? as i64;
                    }
                    v.push((birth, death, e));
                }
                ds.push(v);
            }
            Ok(ObjectDiagrams {
                n_points,
                n_landmarks,
                covering_radius,
                threshold,
                dims: ds,
            })
        } else {
            let len = u64_(&mut b)? as usize;
            Err(String::from_utf8_lossy(take(&mut b, len)?).into_owned())
        };
        if task >= k {
            return Err(Error::Mpi(format!("object {task} of {k}")));
        }
        out[task] = Some(r);
    }
    Ok(out)
}

fn write_output(
    setup: &Setup,
    args: &PhArgs,
    col: &Collection,
    outcomes: &Outcomes,
    n_ranks: usize,
    t0: Instant,
) -> Result<String> {
    let cfg = &setup.config.ph;
    let k = col.len();
    let failed: Vec<(usize, &String)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Some(Err(m)) => Some((i, m)),
            _ => None,
        })
        .collect();
    if cfg.on_error == OnErrorName::Abort {
        if let Some((_, msg)) = failed.first() {
            return Err(Error::invalid(
                args.input.display().to_string(),
                format!(
                    "{msg}{}",
                    if failed.len() > 1 {
                        format!(" (and {} more failed objects)", failed.len() - 1)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if let Some(i) = outcomes.iter().position(|o| o.is_none()) {
            return Err(Error::Mpi(format!("object {i} was not computed")));
        }
    }
    let dims = cfg.maxdim + 1;
    let stamp = Stamp {
        command: setup.command.to_string(),
        config_toml: setup.config.to_toml(),
        n_ranks,
        threads_per_rank: setup.threads,
    };
    let w = H5Writer::create(&args.out, &stamp)?;
    w.attr_str("/", "kind", "collection diagrams")?;
    w.attr_str("/", "source", &args.input.display().to_string())?;
    w.attr_u64("/", "n_objects", k as u64)?;
    w.attr_u64("/", "n_skipped", failed.len() as u64)?;
    w.attr_u64("/", "maxdim", cfg.maxdim as u64)?;
    w.attr_u64("/", "coefficients", cfg.coefficients as u64)?;
    w.strings("/names", &col.names)?;
    let ok = |i: usize| match &outcomes[i] {
        Some(Ok(o)) => Some(o),
        _ => None,
    };
    let col_i64 = |f: &dyn Fn(&ObjectDiagrams) -> i64| -> Array1<i64> {
        (0..k).map(|i| ok(i).map_or(0, f)).collect()
    };
    let col_f64 = |f: &dyn Fn(&ObjectDiagrams) -> f64| -> Array1<f64> {
        (0..k).map(|i| ok(i).map_or(f64::NAN, f)).collect()
    };
    w.dataset("/n_points", &col_i64(&|o| o.n_points as i64))?;
    w.dataset("/thresholds", &col_f64(&|o| o.threshold))?;
    w.dataset("/landmarks/count", &col_i64(&|o| o.n_landmarks as i64))?;
    w.dataset(
        "/landmarks/covering_radius",
        &col_f64(&|o| o.covering_radius),
    )?;
    let status: Array1<i8> = (0..k)
        .map(|i| if ok(i).is_some() { 0 } else { 1 })
        .collect();
    w.dataset("/status", &status)?;
    let errors: Vec<String> = (0..k)
        .map(|i| match &outcomes[i] {
            Some(Err(m)) => m.clone(),
            None => "not computed".to_string(),
            _ => String::new(),
        })
        .collect();
    w.strings("/errors", &errors)?;
    let mut total_bars = 0usize;
    for d in 0..dims {
        let mut offsets = Vec::with_capacity(k + 1);
        offsets.push(0i64);
        let mut rows: Vec<(f64, f64, [i64; 4])> = Vec::new();
        for i in 0..k {
            if let Some(o) = ok(i) {
                rows.extend_from_slice(&o.dims[d]);
            }
            offsets.push(rows.len() as i64);
        }
        total_bars += rows.len();
        let mut values = Array2::<f64>::zeros((rows.len(), 2));
        let mut edges = Array2::<i64>::zeros((rows.len(), 4));
        for (r, (b, de, e)) in rows.iter().enumerate() {
            values[(r, 0)] = *b;
            values[(r, 1)] = *de;
            for c in 0..4 {
                edges[(r, c)] = e[c];
            }
        }
        w.dataset_chunked(&format!("/diagrams/dim{d}"), &values, 65536)?;
        w.dataset_chunked(&format!("/critical_edges/dim{d}"), &edges, 65536)?;
        w.dataset(&format!("/offsets/dim{d}"), &Array1::from_vec(offsets))?;
    }
    let path = w.commit()?;
    if !failed.is_empty() {
        eprintln!(
            "warning: {} of {k} objects skipped (ph.on_error = \"skip\"; see /status and /errors):",
            failed.len()
        );
        for (i, m) in failed.iter().take(10) {
            eprintln!("  object {i}: {m}");
        }
    }
    Ok(format!(
        "wrote {}: diagrams of {} objects ({total_bars} bars up to H{}) in {:.2} s",
        path.display(),
        k - failed.len(),
        cfg.maxdim,
        t0.elapsed().as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_round_trips() {
        let a = ObjectDiagrams {
            n_points: 10,
            n_landmarks: 5,
            covering_radius: 0.25,
            threshold: 1.5,
            dims: vec![
                vec![(0.0, 0.5, [-1, -1, 3, 1]), (0.0, f64::INFINITY, [-1; 4])],
                vec![(0.3, 0.7, [4, 2, 9, 0])],
            ],
        };
        let mut b = Vec::new();
        encode(&mut b, 2, &Ok(a.clone()));
        encode(&mut b, 0, &Err("object 0 (x): bad".into()));
        let d = decode(&b, 3, 2).unwrap();
        assert_eq!(d[2], Some(Ok(a)));
        assert_eq!(d[0], Some(Err("object 0 (x): bad".into())));
        assert_eq!(d[1], None);
        assert!(decode(&b[..b.len() - 1], 3, 2).is_err());
    }
}
