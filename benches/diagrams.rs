//! Persistence-diagram distance benchmark: TGLML's exact p-Wasserstein and
//! bottleneck distances on one pair of diagrams, timed per call. A plain
//! program (no libtest harness); `benches/diagrams/run.py` runs it beside
//! GUDHI, POT and persim (see benches/diagrams/README.md).
//!
//! Usage (arguments after `--` with cargo):
//!
//! ```text
//! cargo bench --bench diagrams -- --input FILE.h5 --metric wasserstein [--p P]
//!                                 [--ground linf|l2] [--repeat R] [--timeout S]
//! cargo bench --bench diagrams -- --input FILE.h5 --metric bottleneck
//!                                 [--repeat R] [--timeout S]
//! ```
//!
//! `--input`: an HDF5 file with `/a` and `/b`, float64 (m, 2) arrays of
//! (birth, death) rows (death may be +inf).
//!
//! Each repeat times, with `std::time::Instant`, one call of
//! `tglml::topology::diagram::wasserstein(&a, &b, p, ground, Essential::Match)`
//! or `bottleneck(&a, &b, Ground::LInf, Essential::Match)`, the optimal
//! matching included (the API always returns it). Reading the file is not
//! timed. `--timeout S`: a call still running after S seconds ends the
//! program with exit status 124 (a message on stderr). Output: one JSON line
//! on stdout.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use ndarray::Ix2;
use tglml::topology::diagram::{bottleneck, wasserstein, Essential, Ground, Matching};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Metric {
    Wasserstein,
    Bottleneck,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum GroundArg {
    /// max(|Δbirth|, |Δdeath|) (GUDHI's internal_p = inf).
    Linf,
    /// Euclidean (GUDHI's internal_p = 2; persim's Wasserstein).
    L2,
}

#[derive(Parser, Debug)]
#[command(about = "Time TGLML's persistence-diagram distances on one pair (JSON line on stdout)")]
struct Args {
    /// HDF5 input with /a and /b, float64 (m, 2) (birth, death) rows.
    #[arg(long)]
    input: PathBuf,
    /// The distance.
    #[arg(long, value_enum)]
    metric: Metric,
    /// Wasserstein order p (>= 1); ignored for the bottleneck distance.
    #[arg(long, default_value_t = 1.0)]
    p: f64,
    /// Ground metric between points (the bottleneck distance is L∞ only).
    #[arg(long, value_enum, default_value_t = GroundArg::Linf)]
    ground: GroundArg,
    /// Timed runs.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Give up (exit status 124) when one call runs longer than this many
    /// seconds; 0 = no limit.
    #[arg(long, default_value_t = 0.0)]
    timeout: f64,
    /// Size of rayon's global thread pool (default: rayon's choice).
    #[arg(long)]
    threads: Option<usize>,
    /// Passed by `cargo bench` to every benchmark program; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn read_diagram(f: &hdf5::File, name: &str, path: &std::path::Path) -> Result<Vec<(f64, f64)>> {
    let x = f
        .dataset(name)
        .and_then(|d| d.read::<f64, Ix2>())
        .with_context(|| format!("{}: reading /{name}", path.display()))?;
    if x.ncols() != 2 && x.nrows() > 0 {
        bail!(
            "{}: /{name} must have 2 columns, has {}",
            path.display(),
            x.ncols()
        );
    }
    Ok(x.rows().into_iter().map(|r| (r[0], r[1])).collect())
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

/// A float as JSON: shortest round-trip digits; non-finite as a string.
fn json_f64(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        json_str(&x.to_string())
    }
}

fn json_list(v: &[f64]) -> String {
    let items: Vec<String> = v.iter().map(|&x| json_f64(x)).collect();
    format!("[{}]", items.join(", "))
}

/// Ends the process (status 124) when a call outlives `limit`: the main
/// thread sends `true` when a call starts and `false` when it ends.
fn watchdog(limit: Duration) -> mpsc::Sender<bool> {
    let (tx, rx) = mpsc::channel::<bool>();
    std::thread::spawn(move || {
        while let Ok(true) = rx.recv() {
            match rx.recv_timeout(limit) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    eprintln!(
                        "diagrams bench: one call ran longer than {} s; giving up",
                        limit.as_secs_f64()
                    );
                    std::process::exit(124);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    });
    tx
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
    let f = hdf5::File::open(&args.input)
        .with_context(|| format!("opening {}", args.input.display()))?;
    let a = read_diagram(&f, "a", &args.input)?;
    let b = read_diagram(&f, "b", &args.input)?;
    drop(f);
    let ground = match args.ground {
        GroundArg::Linf => Ground::LInf,
        GroundArg::L2 => Ground::L2,
    };
    if args.metric == Metric::Bottleneck && ground != Ground::LInf {
        bail!("the bottleneck distance is L∞ only (--ground linf)");
    }
    let call = || -> Result<Matching> {
        Ok(match args.metric {
            Metric::Wasserstein => wasserstein(&a, &b, args.p, ground, Essential::Match)?,
            Metric::Bottleneck => bottleneck(&a, &b, ground, Essential::Match)?,
        })
    };
    let dog = (args.timeout > 0.0).then(|| watchdog(Duration::from_secs_f64(args.timeout)));
    let pre_call_kib = vm_hwm_kib();

    let mut seconds = Vec::with_capacity(args.repeat);
    let mut last: Option<Matching> = None;
    for _ in 0..args.repeat {
        if let Some(d) = &dog {
            let _ = d.send(true);
        }
        let t0 = Instant::now();
        let m = call()?;
        seconds.push(t0.elapsed().as_secs_f64());
        if let Some(d) = &dog {
            let _ = d.send(false);
        }
        if let Some(prev) = &last {
            if prev.value.to_bits() != m.value.to_bits() {
                bail!("the value differs between repeats");
            }
        }
        last = Some(m);
    }
    let m = last.expect("repeat >= 1");
    let mut line = String::from("{");
    let _ = write!(
        line,
        "\"tool\": \"tglml\", \"input\": {}, \"metric\": \"{}\", \"p\": {}, \"ground\": \"{}\", \
         \"n_a\": {}, \"n_b\": {}, \"threads\": {}, \"seconds\": {}, \"value\": {}, \
         \"pairs\": {}, \"pre_call_kib\": {}",
        json_str(&args.input.display().to_string()),
        match args.metric {
            Metric::Wasserstein => "wasserstein",
            Metric::Bottleneck => "bottleneck",
        },
        match args.metric {
            Metric::Wasserstein => json_f64(args.p),
            Metric::Bottleneck => "null".into(),
        },
        match ground {
            Ground::LInf => "linf",
            Ground::L2 => "l2",
            Ground::L1 => "l1",
        },
        a.len(),
        b.len(),
        rayon::current_num_threads(),
        json_list(&seconds),
        json_f64(m.value),
        m.pairs.len(),
        pre_call_kib.map_or("null".into(), |k| k.to_string()),
    );
    line.push('}');
    println!("{line}");
    Ok(())
}
