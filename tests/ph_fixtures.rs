//! Issue 3, acceptance 1: our diagrams equal Ripser's (ripser.py) on the
//! reference clouds of tests/fixtures/ph (made by make_fixtures.py there,
//! with the versions in versions.txt): same bar counts per dimension, values
//! within 1e-6 relative. giotto-ph's diagrams, stored beside them, are
//! checked too, and so are GUDHI's (issue 12), an implementation that
//! shares neither Ripser's algorithm nor its float32 distances; see
//! `check_gudhi` for its conventions.

use std::path::PathBuf;

use ndarray::{Array2, Ix2};
use tglml::topology::{rips_persistence, Diagrams, DistanceMatrix, RipsOptions};

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
    check_gudhi(name, &f, maxdim as usize, &got);
}

/// Our diagrams against GUDHI's (`/gudhi/dim{k}`), in GUDHI's conventions
/// as make_fixtures.py applies them (README.md there, "GUDHI recipe"):
///
/// - GUDHI's diagram is that of the Rips complex with edges up to
///   `max_edge_length` L (group attribute: the threshold, inf, the enclosing
///   radius, or for `cube50` (recipe `collapse_ref`) just above the largest
///   value of ripser.py's diagram), and it reports a class still alive at L
///   as essential (death inf), as it does any bar born at or below L and
///   dying above it; bars born above L are absent. So our diagram is cut at
///   L the same way before comparing ([`truncate`]). (With the stored L
///   this changes no bar: L is our threshold or lies above every value.)
/// - GUDHI works in float64 distances, ours (like ripser.py's) are rounded
///   once to float32: values agree within one float32 rounding, 2^-24
///   relative, so the tolerance is 2^-23 relative (ripser.py's and
///   giotto-ph's are compared at 1e-6). Values are compared after sorting
///   both diagrams by their float32-rounded (birth, death): two float64
///   values that round to one float32 are a tie for us and may be ordered
///   (and paired) the other way.
/// - `min_persistence = 0`: GUDHI leaves out zero-length bars, as we do.
///   (A float64 bar shorter than a float32 rounding would be zero-length
///   for us; the bar counts would then differ. No fixture has one.)
/// - H0: every bar born at 0, one essential (0, inf) per component, as
///   ours.
fn check_gudhi(name: &str, f: &hdf5::File, maxdim: usize, got: &Diagrams) {
    let g = f.group("gudhi").unwrap();
    let l: f64 = g.attr("max_edge_length").unwrap().read_scalar().unwrap();
    let key = |p: &(f64, f64)| (p.0 as f32, p.1 as f32);
    let order = |v: &mut Vec<(f64, f64)>| {
        v.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            ka.0.total_cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(a.0.total_cmp(&b.0))
                .then(a.1.total_cmp(&b.1))
        })
    };
    let tol = f64::from(f32::EPSILON); // 2^-23
    for k in 0..=maxdim {
        let want: Array2<f64> = g
            .dataset(&format!("dim{k}"))
            .unwrap()
            .read::<f64, Ix2>()
            .unwrap();
        let mut want: Vec<(f64, f64)> = want.rows().into_iter().map(|r| (r[0], r[1])).collect();
        let mut ours = truncate(got.dims[k].iter().map(|b| (b.birth, b.death)), l);
        order(&mut want);
        order(&mut ours);
        assert_eq!(
            ours.len(),
            want.len(),
            "{name}: H{k} bar count vs gudhi (max_edge_length {l})"
        );
        let near = |a: f64, b: f64| a == b || (a - b).abs() <= tol * a.abs().max(b.abs());
        for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
            assert!(
                near(a.0, b.0) && near(a.1, b.1),
                "{name}: H{k} bar {i}: ours {a:?}, gudhi {b:?}"
            );
        }
    }
}

/// A diagram cut at the edge length `l`: the diagram of the complex of the
/// edges up to `l`. Bars born above `l` go; bars alive at `l` become
/// essential. Compared in float32, the precision of our values: a float64
/// distance is at most `l` iff its float32 rounding is at most that of `l`
/// for the fixtures' edges (README.md there: the edge sets agree).
fn truncate(bars: impl Iterator<Item = (f64, f64)>, l: f64) -> Vec<(f64, f64)> {
    let l = l as f32;
    bars.filter(|&(b, _)| b as f32 <= l)
        .map(|(b, d)| (b, if d as f32 > l { f64::INFINITY } else { d }))
        .collect()
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
