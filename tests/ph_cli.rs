//! `tglml ph` as a user meets it (issue 3): output equal to Ripser's, read
//! back with h5py; landmarks; bad input refused with a clear message and no
//! output file.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ph")
        .join(format!("{name}.h5"))
}

fn check_with_h5py(out: &Path, fixture: &Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_ph.py");
    let o = python_cmd()
        .args([script, path_str(out), path_str(fixture)])
        .output()
        .expect("python runs");
    ok(&o);
    assert!(stdout(&o).starts_with("ok:"), "{}", stdout(&o));
}

#[test]
fn torus_h2_equals_ripser_read_back_with_h5py() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph.h5");
    let f = fixture("torus");
    let o = tglml(&[
        "ph",
        "--input",
        path_str(&f),
        "--maxdim",
        "2",
        "--out",
        path_str(&out),
    ]);
    ok(&o);
    assert!(
        stderr(&o).contains("H0: 300, H1: 82, H2: 44"),
        "{}",
        stderr(&o)
    );
    check_with_h5py(&out, &f);
}

#[test]
fn circles_under_mpirun_equal_ripser() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph.h5");
    let f = fixture("circles");
    ok(&mpirun(
        2,
        &["ph", "--input", path_str(&f), "--out", path_str(&out)],
    ));
    check_with_h5py(&out, &f);
}

#[test]
fn landmarks_are_recorded_with_their_covering_radius() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("torus.h5");
    ok(&tglml(&[
        "data",
        "synth",
        "--kind",
        "torus",
        "--n",
        "2000",
        "--out",
        path_str(&data),
    ]));
    let out = dir.path().join("ph.h5");
    let o = tglml(&[
        "ph",
        "--input",
        path_str(&data),
        "--landmarks",
        "150",
        "--maxdim",
        "1",
        "--out",
        path_str(&out),
    ]);
    ok(&o);
    assert!(
        stderr(&o).contains("150 maxmin landmarks, covering radius"),
        "{}",
        stderr(&o)
    );
    let f = hdf5::File::open(&out).unwrap();
    let idx: Vec<i64> = f.dataset("landmarks/indices").unwrap().read_raw().unwrap();
    assert_eq!(idx.len(), 150);
    assert_eq!(idx[0], 0, "maxmin starts at point 0");
    let eps: f64 = f
        .group("landmarks")
        .unwrap()
        .attr("covering_radius")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert!(eps > 0.0 && eps < 1.0, "{eps}");
    // Critical edges name input rows, which are landmarks.
    let edges: Vec<i64> = f
        .dataset("critical_edges/dim1")
        .unwrap()
        .read_raw()
        .unwrap();
    assert!(edges.iter().all(|&e| e == -1 || idx.contains(&e)));
    let n: u64 = f.attr("n_points").unwrap().read_scalar().unwrap();
    assert_eq!(n, 2000);
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// Acceptance 3 (issue 3): bad input gets one clear message, a non-zero
/// exit, and no output file.
#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let nan = p("nan.csv", b"0,0\n1,nan\n2,2\n");
    let inf = p("inf.csv", b"0,0\n1,inf\n");
    let empty = p("empty.csv", b"x,y\n");
    let one = p("one.csv", b"1,2\n");
    let ragged = p("ragged.csv", b"1,2\n3,4\n5,6,7\n");
    let ints = p("ints.npy", &npy("<i8", "(2, 2)", &[0u8; 32]));
    let flat = p("flat.npy", &npy("<f8", "(4,)", &[0u8; 32]));
    let big = p("big.csv", "0,0\n1,0\n0,1\n1,1\n2,2\n".as_bytes());
    let out = dir.path().join("out/ph.h5");
    let out = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--input", &nan], "nan.csv: row 1, column 1: values must be finite, got NaN"),
        (vec!["--input", &inf], "inf.csv: row 1, column 1: values must be finite, got inf"),
        (vec!["--input", &empty], "empty.csv: no data rows"),
        (vec!["--input", &one], "one.csv: needs at least 2 points, got 1"),
        (vec!["--input", &ragged], "ragged.csv:3: 3 values, expected 2 as on line 1"),
        (vec!["--input", &ints], "ints.npy: expected float32 ('<f4') or float64 ('<f8') data, got dtype '<i8'"),
        (vec!["--input", &flat], "flat.npy: expected a 2-D array (n, d), got shape [4]"),
        (vec!["--input", "/nonexistent/x.npy"], "/nonexistent/x.npy: reading"),
        (
            vec!["--input", &big, "--maxdim", "2", "--set", "run.memory_budget_gib=1e-9"],
            "the distance matrix of 5 points would need 40 bytes, over the memory budget of 1 bytes (run.memory_budget_gib)",
        ),
        (vec!["--input", &big, "--maxdim", "4"], "key `ph.maxdim`: must be 0, 1, 2 or 3, got 4"),
    ];
    for (args, expect) in cases {
        let mut a = vec!["ph", "--out", out];
        a.extend(args.iter());
        let o = mpirun(2, &a);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} should fail:\n{err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected `{expect}` in:\n{err}"
        );
        assert_eq!(error_lines(&err), 1, "{args:?}: one message:\n{err}");
        assert!(!dir.path().join("out").exists(), "{args:?}: no output");
    }
}

/// A sparse distance matrix given as an edge list (i, j, d) of the pairs
/// below the threshold gives Ripser's thresholded diagram.
#[test]
fn edge_list_input_equals_the_thresholded_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture("dm_threshold");
    let f = hdf5::File::open(&fx).unwrap();
    let m: ndarray::Array2<f64> = f.dataset("distance_matrix").unwrap().read_2d().unwrap();
    let t: f64 = f.attr("threshold").unwrap().read_scalar().unwrap();
    let mut text = String::from("i,j,d\n");
    for i in 0..m.nrows() {
        for j in 0..i {
            if (m[(i, j)] as f32) <= t as f32 {
                text.push_str(&format!("{i},{j},{:e}\n", m[(i, j)]));
            }
        }
    }
    let edges = dir.path().join("edges.csv");
    std::fs::write(&edges, text).unwrap();
    let out = dir.path().join("ph.h5");
    let o = tglml(&[
        "ph",
        "--input",
        path_str(&edges),
        "--edge-list",
        "--out",
        path_str(&out),
    ]);
    ok(&o);
    let g = hdf5::File::open(&out).unwrap();
    for k in 0..2 {
        let ours: ndarray::Array2<f64> = g
            .dataset(&format!("diagrams/dim{k}"))
            .unwrap()
            .read_2d()
            .unwrap();
        let want: ndarray::Array2<f64> = f
            .dataset(&format!("ripser/dim{k}"))
            .unwrap()
            .read_2d()
            .unwrap();
        assert_eq!(ours.dim(), want.dim(), "H{k}");
        for (a, b) in ours.iter().zip(want.iter()) {
            assert!(
                a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()),
                "H{k}: {a} vs {b}"
            );
        }
    }
}

/// Z/3 coefficients: no torsion in a torus sample, so the diagrams equal
/// Ripser's Z/2 ones; the file records the field.
#[test]
fn z3_coefficients_on_a_torus() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ph.h5");
    let f = fixture("torus");
    let o = tglml(&[
        "ph",
        "--input",
        path_str(&f),
        "--maxdim",
        "2",
        "--set",
        "ph.coefficients=3",
        "--out",
        path_str(&out),
    ]);
    ok(&o);
    check_with_h5py(&out, &f);
    let p: u64 = hdf5::File::open(&out)
        .unwrap()
        .attr("coefficients")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert_eq!(p, 3);
    let o = tglml(&[
        "ph",
        "--input",
        path_str(&f),
        "--set",
        "ph.coefficients=4",
        "--out",
        path_str(&out),
    ]);
    assert!(
        stderr(&o).contains("key `ph.coefficients`: must be a prime below 65536, got 4"),
        "{}",
        stderr(&o)
    );
}

/// Issue 12: the memory guard's estimate (the root attribute
/// `memory_estimate_bytes`, checked against `run.memory_budget_gib`) bounds
/// what `ph` really holds: the peak resident memory of a run, less that of
/// a run on 20 points (the process's fixed cost: the binary, MPI, libtorch),
/// stays below the estimate. When the distance matrix dominates the
/// estimate is also tight (measured at least half of it); when simplices
/// dominate it is a loose upper bound (clearing and apparent pairs keep far
/// fewer than it allows for).
#[test]
fn memory_estimate_bounds_the_measured_peak() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = |n: usize| {
        let p = dir.path().join(format!("s{n}.h5"));
        ok(&tglml(&[
            "data",
            "synth",
            "--kind",
            "sphere",
            "--set",
            "synth.sphere.dim=2",
            "--n",
            &n.to_string(),
            "--out",
            path_str(&p),
        ]));
        p
    };
    // (peak MiB, estimate MiB) of `tglml ph` on `input` with `args`.
    let measure = |input: &Path, args: &[&str]| -> (f64, f64) {
        let out = dir.path().join("m.h5");
        let _ = std::fs::remove_file(&out);
        let mut a = vec![
            "ph",
            "--input",
            path_str(input),
            "--threads",
            "1",
            "--out",
            path_str(&out),
        ];
        a.extend(args);
        let o = tglml(&a);
        ok(&o);
        let err = stderr(&o);
        let peak: f64 = err
            .lines()
            .find_map(|l| l.strip_prefix("ph: peak memory per rank (MiB): "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak memory line in:\n{err}"));
        let f = hdf5::File::open(&out).unwrap();
        let est: u64 = f
            .attr("memory_estimate_bytes")
            .unwrap()
            .read_scalar()
            .unwrap();
        (peak, est as f64 / (1u64 << 20) as f64)
    };
    let (base, _) = measure(&cloud(20), &["--maxdim", "1"]);
    let big = cloud(8000);
    let (peak, est) = measure(&big, &["--maxdim", "1", "--threshold", "0.05"]);
    let used = peak - base;
    eprintln!("matrix-dominated: measured {used:.1} MiB above the fixed {base:.1} MiB, estimate {est:.1} MiB");
    assert!(
        used <= est,
        "measured {used:.1} MiB > estimate {est:.1} MiB"
    );
    assert!(
        used >= 0.5 * est,
        "estimate {est:.1} MiB is loose: measured {used:.1} MiB"
    );
    let (peak, est) = measure(&cloud(1500), &["--maxdim", "2", "--threshold", "0.6"]);
    let used = peak - base;
    eprintln!("simplex-dominated: measured {used:.1} MiB above the fixed {base:.1} MiB, estimate {est:.1} MiB");
    assert!(
        used <= est,
        "measured {used:.1} MiB > estimate {est:.1} MiB"
    );
}
