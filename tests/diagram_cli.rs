//! `tglml diagram distance` as a user meets it (issue 4): the value printed
//! and written with its matching; bad input named by file and dataset.

mod common;

use common::*;

fn diagram_file(
    dir: &std::path::Path,
    name: &str,
    rows: &[[f64; 2]],
    dim: usize,
) -> std::path::PathBuf {
    let p = dir.join(name);
    let f = hdf5::File::create(&p).unwrap();
    let a =
        ndarray::Array2::from_shape_vec((rows.len(), 2), rows.iter().flatten().copied().collect())
            .unwrap();
    f.create_group("diagrams")
        .unwrap()
        .new_dataset_builder()
        .with_data(&a)
        .create(format!("dim{dim}").as_str())
        .unwrap();
    p
}

#[test]
fn distance_is_printed_and_written_with_its_matching() {
    let dir = tempfile::tempdir().unwrap();
    let a = diagram_file(dir.path(), "a.h5", &[[0.0, 2.0], [0.0, f64::INFINITY]], 1);
    let b = diagram_file(
        dir.path(),
        "b.h5",
        &[[0.0, 1.0], [1.0, f64::INFINITY], [3.0, 3.5]],
        1,
    );
    let out = dir.path().join("d.h5");
    let o = mpirun(
        2,
        &[
            "diagram",
            "distance",
            path_str(&a),
            path_str(&b),
            "--p",
            "1",
            "--out",
            path_str(&out),
        ],
    );
    ok(&o);
    // Essential: |0 - 1| = 1; (0,2) to (0,1): 1; (3, 3.5) to the diagonal: 0.25.
    assert_eq!(stdout(&o).trim(), "2.25");
    let f = hdf5::File::open(&out).unwrap();
    let v: f64 = f.attr("value").unwrap().read_scalar().unwrap();
    assert_eq!(v, 2.25);
    let m: ndarray::Array2<i64> = f.dataset("matching").unwrap().read_2d().unwrap();
    let mut rows: Vec<(i64, i64)> = m.rows().into_iter().map(|r| (r[0], r[1])).collect();
    rows.sort();
    assert_eq!(rows, vec![(-1, 2), (0, 0), (1, 1)]);
    let o = tglml(&[
        "diagram",
        "distance",
        path_str(&a),
        path_str(&b),
        "--metric",
        "bottleneck",
    ]);
    ok(&o);
    assert_eq!(stdout(&o).trim(), "1");
    let o = tglml(&[
        "diagram",
        "distance",
        path_str(&a),
        path_str(&b),
        "--essential",
        "ignore",
        "--metric",
        "bottleneck",
    ]);
    assert_eq!(stdout(&o).trim(), "1");
}

/// Acceptance 4 (issue 4): NaN, death < birth, malformed or missing
/// datasets: one clear message naming the file and dataset, non-zero exit.
#[test]
fn bad_diagrams_are_named_with_file_and_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let good = diagram_file(dir.path(), "good.h5", &[[0.0, 1.0]], 1);
    let nan = diagram_file(dir.path(), "nan.h5", &[[0.0, 1.0], [f64::NAN, 1.0]], 1);
    let backwards = diagram_file(dir.path(), "back.h5", &[[0.5, 0.25]], 1);
    let wide = dir.path().join("wide.h5");
    {
        let f = hdf5::File::create(&wide).unwrap();
        f.create_group("diagrams")
            .unwrap()
            .new_dataset_builder()
            .with_data(&ndarray::array![[0.0, 1.0, 2.0]])
            .create("dim1")
            .unwrap();
    }
    let not_h5 = dir.path().join("text.h5");
    std::fs::write(&not_h5, "not hdf5").unwrap();
    let out = dir.path().join("out/d.h5");
    let cases: Vec<(&std::path::Path, usize, String)> = vec![
        (&nan, 1, format!("{}: dataset /diagrams/dim1, point 1: birth must be finite, got NaN", nan.display())),
        (&backwards, 1, format!("{}: dataset /diagrams/dim1, point 0: death 0.25 is before birth 0.5", backwards.display())),
        (&wide, 1, format!("{}: dataset /diagrams/dim1: expected (m, 2) rows of (birth, death), got shape [1, 3]", wide.display())),
        (&good, 2, format!("{}: dataset /diagrams/dim2 (the file has: dim1)", good.display())),
        (&not_h5, 1, format!("{}: opening the file", not_h5.display())),
    ];
    for (bad, dim, expect) in cases {
        let o = mpirun(
            2,
            &[
                "diagram",
                "distance",
                path_str(&good),
                path_str(bad),
                "--dim",
                &dim.to_string(),
                "--out",
                path_str(&out),
            ],
        );
        let err = stderr(&o);
        assert!(!o.status.success(), "{expect}");
        assert!(err.contains(&expect), "expected `{expect}` in:\n{err}");
        assert_eq!(error_lines(&err), 1, "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn summarize_writes_every_curve_with_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let pts = [[0.0, 1.0], [0.25, 0.75], [0.5, 2.0], [0.0, f64::INFINITY]];
    let input = diagram_file(dir.path(), "in.h5", &pts, 1);
    let out = dir.path().join("s.h5");
    let o = mpirun(
        2,
        &[
            "diagram",
            "summarize",
            path_str(&input),
            "--landscapes",
            "2",
            "--resolution",
            "9",
            "--out",
            path_str(&out),
        ],
    );
    ok(&o);
    let f = hdf5::File::open(&out).unwrap();
    let grid: Vec<f64> = f
        .dataset("dim1/landscapes_grid")
        .unwrap()
        .read_raw()
        .unwrap();
    assert_eq!(
        grid,
        vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
        "from the smallest birth to the largest finite death"
    );
    let l: ndarray::Array2<f64> = f.dataset("dim1/landscapes").unwrap().read_2d().unwrap();
    // λ1 at t = 0.5: max(tent(0,1) = 0.5, tent(.25,.75) = 0.25, tent(.5,2) = 0) = 0.5; λ2 = 0.25.
    assert_eq!((l[(0, 2)], l[(1, 2)]), (0.5, 0.25));
    // λ1 at t = 1.25: only (0.5, 2): min(0.75, 0.75) = 0.75.
    assert_eq!(l[(0, 5)], 0.75);
    let betti: Vec<f64> = f.dataset("dim1/betti").unwrap().read_raw().unwrap();
    // t = 0.5: [0,1), [.25,.75), [.5,2), [0,inf) are alive; t = 0.75: [.25,.75) has died.
    assert_eq!(betti, vec![2.0, 3.0, 4.0, 3.0, 2.0, 2.0, 2.0, 2.0, 1.0]);
    let img = f.dataset("dim1/image").unwrap();
    assert_eq!(img.shape(), vec![20, 20]);
    let g = f.group("dim1").unwrap();
    let tp: f64 = g
        .attr("total_persistence_1")
        .unwrap()
        .read_scalar()
        .unwrap();
    assert_eq!(tp, 1.0 + 0.5 + 1.5);
}

/// `--essential ignore` against `match` (issue 12), on inputs where they
/// differ, each value computed by hand (ground metric L∞: a pair costs
/// max(|Δbirth|, |Δdeath|), a finite point (b, d) costs (d − b)/2 to the
/// diagonal; matched essential classes cost |Δbirth|).
#[test]
fn essential_ignore_and_match_differ() {
    let dir = tempfile::tempdir().unwrap();
    let inf = f64::INFINITY;
    // One essential class against two.
    let a = diagram_file(dir.path(), "a.h5", &[[0.0, 1.0], [0.5, inf]], 1);
    let b = diagram_file(dir.path(), "b.h5", &[[0.0, 1.5], [0.5, inf], [1.0, inf]], 1);
    // Two each, with different births, C's out of order in the file.
    let c = diagram_file(dir.path(), "c.h5", &[[0.0, 4.0], [3.0, inf], [1.0, inf]], 1);
    let d = diagram_file(dir.path(), "d.h5", &[[0.0, 4.0], [2.0, inf], [7.0, inf]], 1);
    let value = |x: &std::path::Path, y: &std::path::Path, extra: &[&str]| -> f64 {
        let mut args = vec!["diagram", "distance", path_str(x), path_str(y)];
        args.extend_from_slice(extra);
        let o = tglml(&args);
        ok(&o);
        let s = stdout(&o);
        s.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{args:?}: stdout {s:?}: {e}"))
    };
    let (w1, w2, bn) = (
        ["--p", "1"].as_slice(),
        ["--p", "2"].as_slice(),
        ["--metric", "bottleneck"].as_slice(),
    );
    let with = |m: &[&'static str], e: &'static str| -> Vec<&'static str> {
        let mut v = m.to_vec();
        v.extend(["--essential", e]);
        v
    };
    let cases = [
        // A, B. match: the numbers of essential classes differ, so +inf for
        // every metric. ignore: (0, 1) against (0, 1.5): paired, max(0,
        // 0.5) = 0.5, beats both to the diagonal (0.5 + 0.75 under W1, max
        // 0.75 under the bottleneck).
        (&a, &b, with(w1, "match"), inf),
        (&a, &b, with(w1, "ignore"), 0.5),
        (&a, &b, with(bn, "match"), inf),
        (&a, &b, with(bn, "ignore"), 0.5),
        // C, D. Finite parts equal (cost 0). match: births sorted, 1 ↔ 2
        // and 3 ↔ 7 (costs 1 and 4; file order would pair 3 ↔ 2, 1 ↔ 7: 1
        // and 6): W1 = 5 (below), W2 = √17, bottleneck 4. ignore: 0.
        (&c, &d, with(w2, "match"), 17f64.sqrt()),
        (&c, &d, with(bn, "match"), 4.0),
        (&c, &d, with(w1, "ignore"), 0.0),
        (&c, &d, with(bn, "ignore"), 0.0),
    ];
    // One process each, run side by side (each start loads libtorch).
    std::thread::scope(|s| {
        let runs: Vec<_> = cases
            .iter()
            .map(|(x, y, extra, want)| (s.spawn(|| value(x, y, extra)), (x, y, extra), want))
            .collect();
        for (run, (x, y, extra), &want) in runs {
            let v = run.join().unwrap();
            assert!(
                v == want || (v - want).abs() <= 1e-12 * want,
                "{} {} {extra:?}: got {v}, want {want}",
                x.display(),
                y.display()
            );
        }
    });
    // The written value and matching, under mpirun; match is the default
    // (W1 = 5 for C, D: above).
    let out = dir.path().join("ab.h5");
    let o = mpirun(
        2,
        &[
            "diagram",
            "distance",
            path_str(&a),
            path_str(&b),
            "--out",
            path_str(&out),
        ],
    );
    ok(&o);
    assert_eq!(stdout(&o).trim(), "inf");
    let f = hdf5::File::open(&out).unwrap();
    let v: f64 = f.attr("value").unwrap().read_scalar().unwrap();
    assert_eq!(v, inf);
    let out = dir.path().join("cd.h5");
    let o = mpirun(
        2,
        &[
            "diagram",
            "distance",
            path_str(&c),
            path_str(&d),
            "--p",
            "1",
            "--out",
            path_str(&out),
        ],
    );
    ok(&o);
    let f = hdf5::File::open(&out).unwrap();
    let v: f64 = f.attr("value").unwrap().read_scalar().unwrap();
    assert_eq!(v, 5.0);
    let m: ndarray::Array2<i64> = f.dataset("matching").unwrap().read_2d().unwrap();
    let mut rows: Vec<(i64, i64)> = m.rows().into_iter().map(|r| (r[0], r[1])).collect();
    rows.sort();
    // C's (0,4) with D's; C's births 1 (row 2) with 2 (row 1), 3 (row 1)
    // with 7 (row 2).
    assert_eq!(rows, vec![(0, 0), (1, 2), (2, 1)]);
}
