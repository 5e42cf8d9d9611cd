//! Collections of point clouds in one HDF5 file (docs/hdf5.md,
//! "Collections"), as `tglml data pack` writes them: every object's points
//! stacked in `/points` (N, d), object i being rows offsets[i]..offsets[i+1]
//! (CSR form, `/offsets`, objects + 1 entries), with `/names`. Ranks read
//! only their objects' rows (hyperslabs).

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{s, Array1, Array2, Ix1, Ix2};

use super::H5Writer;
use crate::error::{Error, Result};

/// An open collection: the index (offsets, names); points are read per
/// object.
pub struct Collection {
    path: PathBuf,
    points: hdf5::Dataset,
    /// Row offsets of the objects in `/points` (objects + 1 entries).
    pub offsets: Vec<u64>,
    /// The objects' names.
    pub names: Vec<String>,
    /// Coordinates per point.
    pub dim: usize,
}

/// Whether `path` is an HDF5 file holding a collection (`/offsets` and
/// `/points`). False for anything that cannot be opened.
pub fn is_collection(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !matches!(ext.as_str(), "h5" | "hdf5" | "he5") || !path.is_file() {
        return false;
    }
    hdf5::File::open(path)
        .map(|f| f.link_exists("offsets") && f.link_exists("points"))
        .unwrap_or(false)
}

impl Collection {
    /// Opens and checks a collection file: `/points` 2-D, `/offsets`
    /// non-decreasing from 0 to the number of points, `/names` one per
    /// object.
    pub fn open(path: &Path) -> Result<Self> {
        let f = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "opening the file", e))?;
        let what = |d: &str| format!("{}: dataset /{d}", path.display());
        let points = f
            .dataset("points")
            .map_err(|e| Error::hdf5(path, "dataset /points", e))?;
        let shape = points.shape();
        if shape.len() != 2 {
            return Err(Error::invalid(
                what("points"),
                format!("expected a 2-D array (points, coordinates), got shape {shape:?}"),
            ));
        }
        // HDF5 converts floats to integers silently (1.7 -> 1): refuse a
        // float /offsets instead of reading other rows than meant.
        let ds = f
            .dataset("offsets")
            .map_err(|e| Error::hdf5(path, "dataset /offsets", e))?;
        let class = ds.dtype().and_then(|t| t.to_descriptor());
        if !matches!(
            class,
            Ok(hdf5::types::TypeDescriptor::Integer(_) | hdf5::types::TypeDescriptor::Unsigned(_))
        ) {
            return Err(Error::invalid(
                what("offsets"),
                format!(
                    "must hold integers (row offsets), got {}",
                    class.map_or("an unreadable type".to_string(), |c| format!("{c:?}"))
                ),
            ));
        }
        let offsets: Vec<i64> = ds
            .read::<i64, Ix1>()
            .map_err(|e| Error::hdf5(path, "dataset /offsets (integers)", e))?
            .to_vec();
        if offsets.first() != Some(&0) {
            return Err(Error::invalid(
                what("offsets"),
                "must start with 0 (objects + 1 row offsets into /points)",
            ));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::invalid(
                what("offsets"),
                format!(
                    "must not decrease: entry {} is {}, entry {} is {}",
                    i,
                    offsets[i],
                    i + 1,
                    offsets[i + 1]
                ),
            ));
        }
        let last = *offsets.last().expect("non-empty");
        if last as usize != shape[0] {
            return Err(Error::invalid(
                what("offsets"),
                format!("ends at {last}, but /points has {} rows", shape[0]),
            ));
        }
        let names: Vec<String> = f
            .dataset("names")
            .and_then(|d| d.read::<VarLenUnicode, Ix1>())
            .map_err(|e| Error::hdf5(path, "dataset /names (strings)", e))?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect();
        if names.len() + 1 != offsets.len() {
            return Err(Error::invalid(
                what("names"),
                format!(
                    "{} names for {} objects (/offsets has {} entries)",
                    names.len(),
                    offsets.len() - 1,
                    offsets.len()
                ),
            ));
        }
        Ok(Collection {
            path: path.to_path_buf(),
            points,
            offsets: offsets.into_iter().map(|o| o as u64).collect(),
            names,
            dim: shape[1],
        })
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no objects.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The number of points of object `i`.
    pub fn count(&self, i: usize) -> usize {
        (self.offsets[i + 1] - self.offsets[i]) as usize
    }

    /// The points of object `i` (its rows of `/points` only).
    pub fn object(&self, i: usize) -> Result<Array2<f64>> {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        if a == b {
            return Ok(Array2::zeros((0, self.dim)));
        }
        self.points
            .read_slice::<f64, _, Ix2>(s![a..b, ..])
            .map_err(|e| {
                Error::hdf5(
                    &self.path,
                    format!(
                        "dataset /points, rows {a}..{b} (object {i}, {})",
                        self.names[i]
                    ),
                    e,
                )
            })
    }
}

/// Writes objects as a collection into an open writer: `/points`,
/// `/offsets`, `/names`, and the root attributes `kind` = "collection" and
/// `n_objects`.
pub fn write_collection(w: &H5Writer, objects: &[(String, Array2<f64>)]) -> Result<()> {
    let dim = objects.first().map_or(3, |o| o.1.ncols());
    if let Some((name, o)) = objects.iter().find(|o| o.1.ncols() != dim) {
        return Err(Error::invalid(
            format!("object {name}"),
            format!(
                "has {} coordinates per point, the first object {dim}",
                o.ncols()
            ),
        ));
    }
    let total: usize = objects.iter().map(|o| o.1.nrows()).sum();
    let mut points = Array2::<f64>::zeros((total, dim));
    let mut offsets = Vec::with_capacity(objects.len() + 1);
    offsets.push(0i64);
    let mut at = 0usize;
    for (_, o) in objects {
        points.slice_mut(s![at..at + o.nrows(), ..]).assign(o);
        at += o.nrows();
        offsets.push(at as i64);
    }
    w.dataset_chunked("/points", &points, 4096)?;
    w.dataset("/offsets", &Array1::from_vec(offsets))?;
    let names: Vec<String> = objects.iter().map(|o| o.0.clone()).collect();
    w.strings("/names", &names)?;
    w.attr_str("/", "kind", "collection")?;
    w.attr_u64("/", "n_objects", objects.len() as u64)?;
    Ok(())
}
