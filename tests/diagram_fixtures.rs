//! Issue 4, acceptance 1: distances and summaries equal GUDHI's on the
//! fixtures of tests/fixtures/diagrams (made by make_fixtures.py there, with
//! the versions in versions.txt; semantics in its README).

use std::path::PathBuf;

use ndarray::{Array1, Array2, Ix1, Ix2};
use tglml::topology::diagram::{bottleneck, wasserstein, Essential, Ground};
use tglml::topology::summaries::{
    betti_curve, entropy, landscapes_sampled, persistence_image, total_persistence, ImageSpec,
};

fn fixture(name: &str) -> hdf5::File {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/diagrams")
        .join(name);
    hdf5::File::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn points(ds: hdf5::Dataset) -> Vec<(f64, f64)> {
    if ds.shape()[0] == 0 {
        return Vec::new();
    }
    let a: Array2<f64> = ds.read::<f64, Ix2>().unwrap();
    a.rows().into_iter().map(|r| (r[0], r[1])).collect()
}

/// Equal within 1e-9 relative (1e-300 absolute for values at zero).
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a - b).abs() < 1e-300
}

#[test]
fn wasserstein_and_bottleneck_equal_gudhi() {
    let f = fixture("distances.h5");
    let pairs = f.group("pairs").unwrap();
    let names = pairs.member_names().unwrap();
    assert!(names.len() >= 60, "fixture has {} pairs", names.len());
    for name in names {
        let g = pairs.group(&name).unwrap();
        let a = points(g.dataset("a").unwrap());
        let b = points(g.dataset("b").unwrap());
        let attr = |k: &str| -> f64 { g.attr(k).unwrap().read_scalar().unwrap() };
        let desc: hdf5::types::VarLenUnicode =
            g.attr("description").unwrap().read_scalar().unwrap();
        let ctx = format!("pair {name} ({})", desc.as_str());
        for (p, key) in [(1.0, "w1"), (2.0, "w2")] {
            let ours = wasserstein(&a, &b, p, Ground::LInf, Essential::Match)
                .unwrap()
                .value;
            assert!(
                close(ours, attr(&format!("{key}_linf"))),
                "{ctx}: {key} L∞ {ours} vs {}",
                attr(&format!("{key}_linf"))
            );
            let ours = wasserstein(&a, &b, p, Ground::L2, Essential::Match)
                .unwrap()
                .value;
            assert!(
                close(ours, attr(&format!("{key}_l2"))),
                "{ctx}: {key} L2 {ours} vs {}",
                attr(&format!("{key}_l2"))
            );
            // GUDHI short-cuts an empty diagram before leaving out essential
            // classes; the fixture's "finite_explicit" is the finite parts'
            // distance computed by GUDHI on the finite rows.
            let ours = wasserstein(&a, &b, p, Ground::LInf, Essential::Ignore)
                .unwrap()
                .value;
            let want = attr(&format!("{key}_linf_finite_explicit"));
            assert!(close(ours, want), "{ctx}: {key} finite {ours} vs {want}");
        }
        let ours = bottleneck(&a, &b, Ground::LInf, Essential::Match)
            .unwrap()
            .value;
        assert!(
            close(ours, attr("bottleneck")),
            "{ctx}: bottleneck {ours} vs {}",
            attr("bottleneck")
        );
        let ours = bottleneck(&a, &b, Ground::LInf, Essential::Ignore)
            .unwrap()
            .value;
        assert!(
            close(ours, attr("bottleneck_finite")),
            "{ctx}: bottleneck finite {ours} vs {}",
            attr("bottleneck_finite")
        );
    }
}

#[test]
fn summaries_equal_gudhi_representations() {
    let f = fixture("summaries.h5");
    let diagrams = f.group("diagrams").unwrap();
    for name in diagrams.member_names().unwrap() {
        let pts = points(diagrams.dataset(&name).unwrap());
        let r = f.group(&format!("results/{name}")).unwrap();
        let ds = |k: &str| r.dataset(k).unwrap();
        let scalar = |k: &str| -> f64 { r.attr(k).unwrap().read_scalar().unwrap() };

        // Landscapes: GUDHI's are √2 times the usual ones.
        let lgrid: Array1<f64> = ds("landscape_grid").read::<f64, Ix1>().unwrap();
        let want: Array2<f64> = ds("landscape").read::<f64, Ix2>().unwrap();
        let k = want.nrows();
        let ours = landscapes_sampled(&pts, k, lgrid.as_slice().unwrap());
        for level in 0..k {
            for i in 0..lgrid.len() {
                let o = ours[level][i] * std::f64::consts::SQRT_2;
                assert!(
                    (o - want[(level, i)]).abs() <= 1e-12,
                    "diagram {name}: landscape {level} at {}: {o} vs {}",
                    lgrid[i],
                    want[(level, i)]
                );
            }
        }
        // The grid itself is numpy's linspace of (lo, hi, R).
        let (lo, hi) = (scalar("lo"), scalar("hi"));
        assert_eq!(
            tglml::topology::summaries::grid(lo, hi, lgrid.len()),
            lgrid.to_vec(),
            "diagram {name}: grid"
        );

        let bgrid: Array1<f64> = ds("betti_grid").read::<f64, Ix1>().unwrap();
        let want: Array1<f64> = ds("betti").read::<f64, Ix1>().unwrap();
        assert_eq!(
            betti_curve(&pts, bgrid.as_slice().unwrap()),
            want.to_vec(),
            "diagram {name}: Betti curve"
        );

        for key in ["image", "image_rect"] {
            let d = ds(key);
            let bw: f64 = d.attr("bandwidth").unwrap().read_scalar().unwrap();
            let res: Vec<i64> = d.attr("resolution").unwrap().read_raw().unwrap();
            let range: Vec<f64> = d.attr("im_range").unwrap().read_raw().unwrap();
            let want: Vec<f64> = d.read_raw().unwrap();
            let spec = ImageSpec {
                bandwidth: bw,
                resolution: (res[0] as usize, res[1] as usize),
                range: (range[0], range[1], range[2], range[3]),
            };
            let ours = persistence_image(&pts, &spec);
            assert_eq!(ours.len(), want.len(), "diagram {name}: {key} size");
            for (i, (o, w)) in ours.iter().zip(&want).enumerate() {
                assert!(
                    (o - w).abs() <= 1e-9 * w.abs().max(1e-3),
                    "diagram {name}: {key} pixel {i}: {o} vs {w}"
                );
            }
        }

        assert!((total_persistence(&pts, 1.0) - scalar("total_persistence_p1")).abs() <= 1e-12);
        assert!((total_persistence(&pts, 2.0) - scalar("total_persistence_p2")).abs() <= 1e-12);
        // GUDHI's entropy is NaN when a bar has zero persistence (0·ln 0);
        // ours counts it as 0, which is GUDHI's value without such bars.
        assert!(
            (entropy(&pts) - scalar("entropy_offdiag")).abs() <= 1e-12,
            "diagram {name}: entropy"
        );
    }
}
