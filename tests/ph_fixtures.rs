//! Issue 3, acceptance 1: our diagrams equal Ripser's (ripser.py) on the
//! reference clouds of tests/fixtures/ph (made by make_fixtures.py there,
//! with the versions in versions.txt): same bar counts per dimension, values
//! within 1e-6 relative. giotto-ph's diagrams, stored beside them, are
//! checked too.

use std::path::PathBuf;

use ndarray::{Array2, Ix2};
use tglml::topology::{rips_persistence, DistanceMatrix, RipsOptions};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ph")
        .join(format!("{name}.h5"))
}

fn sorted(mut v: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    v
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
}

fn check(name: &str) {
    let path = fixture(name);
    let f = hdf5::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let maxdim: i64 = f.attr("maxdim").unwrap().read_scalar().unwrap();
    let threshold: f64 = f.attr("threshold").unwrap().read_scalar().unwrap();
    let dist = if let Ok(ds) = f.dataset("x") {
        let x: Array2<f64> = ds.read::<f64, Ix2>().unwrap();
        DistanceMatrix::from_points(x.view()).unwrap()
    } else {
        let m: Array2<f64> = f
            .dataset("distance_matrix")
            .unwrap()
            .read::<f64, Ix2>()
            .unwrap();
        DistanceMatrix::from_square(m.view()).unwrap()
    };
    let opts = RipsOptions {
        maxdim: maxdim as usize,
        threshold: threshold.is_finite().then_some(threshold),
        ..Default::default()
    };
    let got = rips_persistence(&dist, &opts).unwrap();
    for tool in ["ripser", "gph"] {
        for k in 0..=maxdim as usize {
            let want: Array2<f64> = f
                .dataset(&format!("{tool}/dim{k}"))
                .unwrap()
                .read::<f64, Ix2>()
                .unwrap();
            let want = sorted(want.rows().into_iter().map(|r| (r[0], r[1])).collect());
            let ours = sorted(got.dims[k].iter().map(|b| (b.birth, b.death)).collect());
            assert_eq!(ours.len(), want.len(), "{name}: H{k} bar count vs {tool}");
            for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
                assert!(
                    close(a.0, b.0) && close(a.1, b.1),
                    "{name}: H{k} bar {i}: ours {a:?}, {tool} {b:?}"
                );
            }
        }
    }
}

#[test]
fn noisy_circle() {
    check("circle");
}

#[test]
fn three_circles() {
    check("circles");
}

#[test]
fn torus_h1_h2() {
    check("torus");
}

#[test]
fn sphere_h2() {
    check("sphere");
}

#[test]
fn uniform_cube_50d() {
    check("cube50");
}

#[test]
fn fashion_mnist_1000() {
    check("fashion_mnist");
}

#[test]
fn distance_matrix_with_threshold() {
    check("dm_threshold");
}

#[test]
fn ties() {
    check("tiny_ties");
}
