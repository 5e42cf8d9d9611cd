//! Reading the persistence diagrams that `tglml ph` writes
//! (`/diagrams/dim{k}`, docs/hdf5.md), with errors that name the file and
//! the dataset.

use std::path::Path;

use ndarray::Ix2;

use crate::error::{Error, Result};
use crate::topology::diagram;

/// The H_k diagram of a `tglml ph` file, as (birth, death) points, checked.
pub fn read_diagram(path: &Path, k: usize) -> Result<Vec<(f64, f64)>> {
    let name = format!("/diagrams/dim{k}");
    let f = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "opening the file", e))?;
    // A collection's file stacks the bars of all its objects under the
    // same name: read as one diagram, they would give a wrong answer.
    if f.link_exists(&format!("/offsets/dim{k}")) {
        let objects = f
            .dataset(&format!("/offsets/dim{k}"))
            .map(|d| d.size().saturating_sub(1))
            .unwrap_or(0);
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "holds the diagrams of a collection of {objects} objects (stacked in {name}, split by /offsets/dim{k}), not one diagram; write one object's rows to a file of its own (docs/hdf5.md, \"Collections\") and compare those"
            ),
        ));
    }
    let ds = f.dataset(&name).map_err(|e| {
        let have = f
            .group("diagrams")
            .and_then(|g| g.member_names())
            .map(|m| m.join(", "))
            .unwrap_or_else(|_| "no /diagrams group".into());
        Error::hdf5(path, format!("dataset {name} (the file has: {have})"), e)
    })?;
    let shape = ds.shape();
    if shape.len() != 2 || shape[1] != 2 {
        return Err(Error::invalid(
            format!("{}: dataset {name}", path.display()),
            format!("expected (m, 2) rows of (birth, death), got shape {shape:?}"),
        ));
    }
    let a = ds
        .read::<f64, Ix2>()
        .map_err(|e| Error::hdf5(path, format!("dataset {name} (reading as float64)"), e))?;
    let points: Vec<(f64, f64)> = a.rows().into_iter().map(|r| (r[0], r[1])).collect();
    diagram::check(&points, &format!("{}: dataset {name}", path.display()))?;
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, rows: ndarray::Array2<f64>) -> std::path::PathBuf {
        let p = dir.path().join("d.h5");
        let f = hdf5::File::create(&p).unwrap();
        f.create_group("diagrams")
            .unwrap()
            .new_dataset_builder()
            .with_data(&rows)
            .create("dim1")
            .unwrap();
        p
    }

    #[test]
    fn reads_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, ndarray::array![[0.0, 1.0], [0.5, f64::INFINITY]]);
        assert_eq!(
            read_diagram(&p, 1).unwrap(),
            vec![(0.0, 1.0), (0.5, f64::INFINITY)]
        );
        let e = read_diagram(&p, 2).unwrap_err().to_string();
        assert!(
            e.contains("dataset /diagrams/dim2 (the file has: dim1)"),
            "{e}"
        );
        let p = file(&dir, ndarray::array![[0.0, 1.0], [0.5, 0.2]]);
        let e = read_diagram(&p, 1).unwrap_err().to_string();
        assert!(
            e.contains("d.h5: dataset /diagrams/dim1, point 1: death 0.2 is before birth 0.5"),
            "{e}"
        );
        let p = file(&dir, ndarray::array![[f64::NAN, 1.0]]);
        assert!(read_diagram(&p, 1)
            .unwrap_err()
            .to_string()
            .contains("birth must be finite"));
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            f.create_group("offsets")
                .unwrap()
                .new_dataset_builder()
                .with_data(&ndarray::array![0i64, 1, 2])
                .create("dim1")
                .unwrap();
        }
        let e = read_diagram(&p, 1).unwrap_err().to_string();
        assert!(e.contains("a collection of 2 objects"), "{e}");
        let p = file(&dir, ndarray::array![[0.0, 1.0, 2.0]]);
        assert!(read_diagram(&p, 1)
            .unwrap_err()
            .to_string()
            .contains("expected (m, 2)"));
    }
}
