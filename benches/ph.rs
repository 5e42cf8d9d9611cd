//! Vietoris–Rips persistence benchmark: TGLML's engine on one input, timed
//! per call. A plain program (no libtest harness); `benches/ph/run.py` runs
//! it beside Ripser and giotto-ph (see benches/ph/README.md).
//!
//! Usage (arguments after `--` with cargo):
//!
//! ```text
//! cargo bench --bench ph -- --input FILE.h5 [--threads N] [--repeat R]
//! cargo bench --bench ph -- --batch N --dim D [--seed S] [--threads N] [--repeat R]
//!                           [--save-batch FILE.h5]
//! ```
//!
//! `--input`: an HDF5 file with `/x` (float64, n × d: a point cloud) or
//! `/distance_matrix` (float64, n × n) and root attributes `maxdim` (int) and
//! `threshold` (float, `inf` = none), the layout of tests/fixtures/ph/*.h5.
//!
//! `--batch`: N points in D dimensions drawn in-process (standard normal,
//! ChaCha8 seeded with S), H0 and H1 (the training-loss case). The same batch
//! is timed R times. `--save-batch` also writes it in the `--input` layout so
//! that other tools can be run on the same points.
//!
//! Each repeat times, with `std::time::Instant`, what a user calls: the
//! distance matrix (from the points, or from the full matrix) and then
//! `rips_persistence`. Reading the file is not timed. Output: one JSON line
//! on stdout.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ndarray::{Array2, Ix2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tglml::topology::{rips_persistence, Diagrams, DistanceMatrix, RipsOptions};

#[derive(Parser, Debug)]
#[command(about = "Time TGLML's Rips persistence on one input (JSON line on stdout)")]
struct Args {
    /// HDF5 input: /x (n × d points) or /distance_matrix (n × n), root
    /// attributes maxdim and threshold (inf = none).
    #[arg(long, conflicts_with = "batch")]
    input: Option<PathBuf>,
    /// Batch mode: this many random points generated in-process (H0 + H1).
    #[arg(long, requires = "dim")]
    batch: Option<usize>,
    /// Batch mode: dimension of the points.
    #[arg(long)]
    dim: Option<usize>,
    /// Batch mode: seed of the ChaCha8 generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Batch mode: also write the batch to this HDF5 file (the --input layout).
    #[arg(long, requires = "batch")]
    save_batch: Option<PathBuf>,
    /// Size of rayon's global thread pool (default: rayon's choice, one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Read /distance_matrix when the input also has /x (the peers' input).
    #[arg(long)]
    use_dm: bool,
    /// Passed by `cargo bench` to every benchmark program; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// What one repeat computes from.
enum Input {
    Points(Array2<f64>),
    Square(Array2<f64>),
}

impl Input {
    fn distances(&self) -> Result<DistanceMatrix> {
        Ok(match self {
            Input::Points(x) => DistanceMatrix::from_points(x.view())?,
            Input::Square(m) => DistanceMatrix::from_square(m.view())?,
        })
    }

    fn n_points(&self) -> usize {
        match self {
            Input::Points(x) | Input::Square(x) => x.nrows(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Input::Points(_) => "points",
            Input::Square(_) => "distance_matrix",
        }
    }
}

struct Workload {
    name: String,
    input: Input,
    maxdim: usize,
    threshold: Option<f64>,
}

fn read_input(path: &PathBuf, use_dm: bool) -> Result<Workload> {
    let f = hdf5::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let maxdim: i64 = f
        .attr("maxdim")
        .and_then(|a| a.read_scalar())
        .with_context(|| format!("{}: root attribute maxdim", path.display()))?;
    let threshold: f64 = f
        .attr("threshold")
        .and_then(|a| a.read_scalar())
        .with_context(|| format!("{}: root attribute threshold", path.display()))?;
    let input = if use_dm && f.link_exists("distance_matrix") {
        Input::Square(f.dataset("distance_matrix")?.read::<f64, Ix2>()?)
    } else if f.link_exists("x") {
        Input::Points(f.dataset("x")?.read::<f64, Ix2>()?)
    } else if f.link_exists("distance_matrix") {
        Input::Square(f.dataset("distance_matrix")?.read::<f64, Ix2>()?)
    } else {
        bail!("{}: neither /x nor /distance_matrix", path.display());
    };
    if maxdim < 0 {
        bail!("{}: maxdim must be >= 0, got {maxdim}", path.display());
    }
    Ok(Workload {
        name: path.display().to_string(),
        input,
        maxdim: maxdim as usize,
        threshold: threshold.is_finite().then_some(threshold),
    })
}

fn make_batch(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_simple_fn((n, d), || StandardNormal.sample(&mut rng))
}

fn save_batch(path: &PathBuf, x: &Array2<f64>, seed: u64) -> Result<()> {
    let f = hdf5::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.new_dataset_builder().with_data(x).create("x")?;
    f.new_attr::<i64>().create("maxdim")?.write_scalar(&1i64)?;
    f.new_attr::<f64>()
        .create("threshold")?
        .write_scalar(&f64::INFINITY)?;
    f.new_attr::<i64>()
        .create("seed")?
        .write_scalar(&(seed as i64))?;
    Ok(())
}

/// Peak resident set size of this process so far (VmHWM), in KiB.
fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list<T: std::fmt::Display>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .context("building rayon's global pool")?;
    }
    let work = match (&args.input, args.batch) {
        (Some(path), None) => read_input(path, args.use_dm)?,
        (None, Some(n)) => {
            let d = args.dim.context("--batch needs --dim")?;
            let x = make_batch(n, d, args.seed);
            if let Some(path) = &args.save_batch {
                save_batch(path, &x, args.seed)?;
            }
            Workload {
                name: format!("batch {n}x{d} seed {}", args.seed),
                input: Input::Points(x),
                maxdim: 1,
                threshold: None,
            }
        }
        _ => bail!("give either --input FILE or --batch N --dim D"),
    };
    let opts = RipsOptions {
        maxdim: work.maxdim,
        threshold: work.threshold,
        ..Default::default()
    };
    let pre_call_kib = vm_hwm_kib();

    let mut seconds = Vec::with_capacity(args.repeat);
    let mut dist_seconds = Vec::with_capacity(args.repeat);
    let mut last: Option<Diagrams> = None;
    for _ in 0..args.repeat {
        let t0 = Instant::now();
        let dist = work.input.distances()?;
        let t1 = Instant::now();
        let dgm = rips_persistence(&dist, &opts)?;
        let t2 = Instant::now();
        seconds.push((t2 - t0).as_secs_f64());
        dist_seconds.push((t1 - t0).as_secs_f64());
        if let Some(prev) = &last {
            if prev
                .dims
                .iter()
                .map(Vec::len)
                .ne(dgm.dims.iter().map(Vec::len))
            {
                bail!("bar counts differ between repeats");
            }
        }
        last = Some(dgm);
    }
    let dgm = last.expect("repeat >= 1");
    let bars: Vec<usize> = dgm.dims.iter().map(Vec::len).collect();
    let essential: Vec<usize> = dgm
        .dims
        .iter()
        .map(|d| d.iter().filter(|b| b.death.is_infinite()).count())
        .collect();
    let mut line = String::from("{");
    let _ = write!(
        line,
        "\"tool\": \"tglml\", \"input\": {}, \"input_kind\": \"{}\", \"n_points\": {}, \
         \"maxdim\": {}, \"threshold\": {}, \"threads\": {}, \"seconds\": {}, \
         \"distance_seconds\": {}, \"bars\": {}, \"essential\": {}, \"pre_call_kib\": {}",
        json_str(&work.name),
        work.input.kind(),
        work.input.n_points(),
        work.maxdim,
        match work.threshold {
            Some(t) => t.to_string(),
            None => "null".into(),
        },
        rayon::current_num_threads(),
        json_list(&seconds),
        json_list(&dist_seconds),
        json_list(&bars),
        json_list(&essential),
        pre_call_kib.map_or("null".into(), |k| k.to_string()),
    );
    line.push('}');
    println!("{line}");
    Ok(())
}
