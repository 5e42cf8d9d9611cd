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
        assert_eq!(
            err.lines().filter(|l| l.contains("error:")).count(),
            1,
            "{err}"
        );
        assert!(!out.exists());
    }
}
