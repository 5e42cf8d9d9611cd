//! Reading a dense matrix (a point cloud n × d, or a distance matrix) from
//! .npy, CSV or HDF5, with errors that say which file, which line or which
//! dataset, and what was expected.

use std::io::Read;
use std::path::Path;

use ndarray::{Array2, Ix2};

use crate::error::{Error, Result};

/// Reads a 2-D float matrix. IDX files (names containing `-ubyte`, or the
/// extensions .idx, .idx1, .idx3; gzip or raw) give one row per sample,
/// bytes scaled to [0, 1]. Otherwise the format follows the extension: `.npy`
/// (float32 or float64), `.csv`/`.txt` (comma- or whitespace-separated
/// numbers; one header line of names is skipped), `.h5`/`.hdf5` (the
/// dataset `dataset`, default `x`).
pub fn read_matrix(path: &Path, dataset: Option<&str>) -> Result<Array2<f64>> {
    let m = read_any(path, dataset)?;
    if m.ncols() == 0 && m.nrows() > 0 {
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "has {} rows of 0 values: a sample matrix needs at least one column",
                m.nrows()
            ),
        ));
    }
    Ok(m)
}

fn read_any(path: &Path, dataset: Option<&str>) -> Result<Array2<f64>> {
    if row_source(path) == Some(RowSource::Idx) {
        let n = crate::data::idx::read_idx_header(path)?.samples();
        return read_rows(path, dataset.unwrap_or("x"), 0..n);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => read_npy(path),
        "csv" | "txt" | "tsv" => read_csv(path),
        "h5" | "hdf5" | "he5" => read_h5(path, dataset.unwrap_or("x")),
        _ => Err(Error::invalid(
            path.display().to_string(),
            "unknown format: expected a .npy, .csv, .txt or .h5 file",
        )),
    }
}

/// Inputs that can be read by row ranges, so that each MPI rank reads only
/// its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSource {
    /// A 2-D dataset of an HDF5 file.
    Hdf5,
    /// An IDX file (MNIST, Fashion-MNIST), gzip or raw.
    Idx,
}

/// The kind of `path` if it can be read by row ranges.
pub fn row_source(path: &Path) -> Option<RowSource> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if name.contains("-ubyte") || matches!(ext.as_str(), "idx" | "idx1" | "idx3") {
        Some(RowSource::Idx)
    } else if matches!(ext.as_str(), "h5" | "hdf5" | "he5") {
        Some(RowSource::Hdf5)
    } else {
        None
    }
}

/// Rows and columns of a row source (HDF5: the 2-D dataset `dataset`;
/// IDX: samples × values per sample).
pub fn row_count(path: &Path, dataset: &str) -> Result<(usize, usize)> {
    match row_source(path) {
        Some(RowSource::Idx) => {
            let h = crate::data::idx::read_idx_header(path)?;
            Ok((h.samples(), h.row_len()))
        }
        Some(RowSource::Hdf5) => {
            let f = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "opening the file", e))?;
            let ds = f
                .dataset(dataset)
                .map_err(|e| Error::hdf5(path, format!("dataset /{dataset}"), e))?;
            match ds.shape()[..] {
                [n, d] => Ok((n, d)),
                ref shape => Err(Error::invalid(
                    format!("{}: dataset /{dataset}", path.display()),
                    format!("expected a 2-D matrix (n, d), got shape {shape:?}"),
                )),
            }
        }
        None => Err(Error::invalid(
            path.display().to_string(),
            "not readable by row ranges: expected an HDF5 (.h5) or IDX file",
        )),
    }
}

/// Rows `range` of a row source, as float64 (IDX bytes scaled to [0, 1]).
pub fn read_rows(path: &Path, dataset: &str, range: std::ops::Range<usize>) -> Result<Array2<f64>> {
    let (n, d) = row_count(path, dataset)?;
    if range.end > n || range.start > range.end {
        return Err(Error::invalid(
            path.display().to_string(),
            format!("rows {}..{} requested of {n}", range.start, range.end),
        ));
    }
    // A header or an HDF5 dataset can claim any size (a chunked dataset
    // of 10^12 rows with nothing written is a small file): check the rows
    // asked for before they are allocated.
    crate::guard::need(
        &format!(
            "{}: rows {}..{} of {d} values",
            path.display(),
            range.start,
            range.end
        ),
        crate::guard::Size::array(&[range.len() as u64, d as u64], 8),
        "the rows read at once (more ranks, or landmarks)",
    )?;
    match row_source(path) {
        Some(RowSource::Idx) => {
            let h = crate::data::idx::read_idx_header(path)?;
            let scale = if h.dtype == crate::data::idx::IdxType::U8 {
                1.0 / 255.0
            } else {
                1.0
            };
            crate::data::idx::read_idx_rows(path, range.start, range.len(), scale)
        }
        _ => {
            if range.is_empty() {
                return Ok(Array2::zeros((0, d)));
            }
            let f = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "opening the file", e))?;
            let ds = f
                .dataset(dataset)
                .map_err(|e| Error::hdf5(path, format!("dataset /{dataset}"), e))?;
            ds.read_slice::<f64, _, Ix2>(ndarray::s![range.start..range.end, ..])
                .map_err(|e| {
                    Error::hdf5(
                        path,
                        format!(
                            "dataset /{dataset}, rows {}..{} (reading as float64)",
                            range.start, range.end
                        ),
                        e,
                    )
                })
        }
    }
}

fn read_h5(path: &Path, name: &str) -> Result<Array2<f64>> {
    let f = hdf5::File::open(path).map_err(|e| Error::hdf5(path, "opening the file", e))?;
    let ds = f
        .dataset(name)
        .map_err(|e| Error::hdf5(path, format!("dataset /{name}"), e))?;
    let shape = ds.shape();
    if shape.len() != 2 {
        return Err(Error::invalid(
            format!("{}: dataset /{name}", path.display()),
            format!("expected a 2-D matrix (n, d), got shape {shape:?}"),
        ));
    }
    crate::guard::need(
        &format!(
            "{}: dataset /{name} ({} × {})",
            path.display(),
            shape[0],
            shape[1]
        ),
        crate::guard::Size::array(&[shape[0] as u64, shape[1] as u64], 8),
        "the size of the input (use landmarks or a subset)",
    )?;
    ds.read::<f64, Ix2>()
        .map_err(|e| Error::hdf5(path, format!("dataset /{name} (reading as float64)"), e))
}

/// Reads a NumPy .npy file (format versions 1–3) holding a 2-D float32 or
/// float64 array, in C or Fortran order.
pub fn read_npy(path: &Path) -> Result<Array2<f64>> {
    let what = || path.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::io(path, "reading", e))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::invalid(
            what(),
            "not a .npy file (no \\x93NUMPY magic)",
        ));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => {
            return Err(Error::invalid(
                what(),
                format!("unsupported .npy format version {major}"),
            ))
        }
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| Error::invalid(what(), "truncated .npy header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Result<String> {
        let pat = format!("'{key}':");
        let at = header.find(&pat).ok_or_else(|| {
            Error::invalid(
                what(),
                format!(".npy header lacks '{key}': {}", header.trim()),
            )
        })?;
        Ok(header[at + pat.len()..].trim_start().to_string())
    };
    let descr = field("descr")?;
    let descr = descr.split('\'').nth(1).unwrap_or("").to_string();
    let fortran = field("fortran_order")?.starts_with("True");
    let shape_text = field("shape")?;
    let shape_text = &shape_text[1..shape_text.find(')').unwrap_or(1)];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::invalid(what(), format!("unreadable .npy shape ({shape_text})")))?;
    if shape.len() != 2 {
        return Err(Error::invalid(
            what(),
            format!("expected a 2-D array (n, d), got shape {shape:?}"),
        ));
    }
    let (n, d) = (shape[0], shape[1]);
    let Some(count) = n.checked_mul(d) else {
        return Err(Error::invalid(
            what(),
            format!("the .npy header's shape ({n}, {d}) has more values than any file can hold: a damaged header"),
        ));
    };
    let data = &bytes[start + header_len..];
    let values: Vec<f64> = match descr.as_str() {
        "<f8" | "=f8" | "|f8" => chunks(data, 8, count, what)?
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        "<f4" | "=f4" | "|f4" => chunks(data, 4, count, what)?
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        other => {
            return Err(Error::invalid(
                what(),
                format!("expected float32 ('<f4') or float64 ('<f8') data, got dtype '{other}'"),
            ))
        }
    };
    let a = if fortran {
        Array2::from_shape_vec((d, n), values)
            .map(|a| a.reversed_axes().as_standard_layout().into_owned())
    } else {
        Array2::from_shape_vec((n, d), values)
    };
    a.map_err(|e| Error::external(what(), e))
}

fn chunks<'a>(
    data: &'a [u8],
    size: usize,
    count: usize,
    what: impl Fn() -> String,
) -> Result<std::slice::ChunksExact<'a, u8>> {
    if data.len() < size * count {
        return Err(Error::invalid(
            what(),
            format!(
                "truncated .npy data: {} bytes for {count} values of {size} bytes",
                data.len()
            ),
        ));
    }
    Ok(data[..size * count].chunks_exact(size))
}

/// Reads numbers separated by commas (or tabs/spaces), one row per line.
/// Blank lines and lines starting with `#` are skipped; a first line of
/// non-numbers is taken as a header.
pub fn read_csv(path: &Path) -> Result<Array2<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?;
    let mut values = Vec::new();
    let mut width: Option<(usize, usize)> = None; // (columns, first data line)
    let mut first = true;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = if t.contains(',') {
            t.split(',').map(str::trim).collect()
        } else {
            t.split_whitespace().collect()
        };
        let parsed: Vec<std::result::Result<f64, _>> =
            fields.iter().map(|f| f.parse::<f64>()).collect();
        if first && parsed.iter().all(|p| p.is_err()) {
            first = false;
            continue; // header
        }
        first = false;
        let at = |col: usize| format!("{}:{lineno}, column {}", path.display(), col + 1);
        for (col, p) in parsed.iter().enumerate() {
            match p {
                Ok(v) => values.push(*v),
                Err(_) => {
                    return Err(Error::invalid(
                        at(col),
                        format!("expected a number, got `{}`", fields[col]),
                    ))
                }
            }
        }
        match width {
            None => width = Some((fields.len(), lineno)),
            Some((w, l)) if w != fields.len() => {
                return Err(Error::invalid(
                    format!("{}:{lineno}", path.display()),
                    format!("{} values, expected {w} as on line {l}", fields.len()),
                ))
            }
            _ => {}
        }
    }
    let Some((w, _)) = width else {
        return Err(Error::invalid(path.display().to_string(), "no data rows"));
    };
    let n = values.len() / w;
    Array2::from_shape_vec((n, w), values)
        .map_err(|e| Error::external(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
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

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn npy_f64_f32_and_fortran() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = write(&dir, "a.npy", &npy("<f8", false, "(2, 3)", &bytes));
        assert_eq!(
            read_matrix(&p, None).unwrap(),
            ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
        );
        let p = write(&dir, "f.npy", &npy("<f8", true, "(2, 3)", &bytes));
        assert_eq!(
            read_matrix(&p, None).unwrap(),
            ndarray::array![[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
        );
        let bytes: Vec<u8> = vals
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        let p = write(&dir, "b.npy", &npy("<f4", false, "(3, 2)", &bytes));
        assert_eq!(
            read_matrix(&p, None).unwrap(),
            ndarray::array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
        );
    }

    #[test]
    fn npy_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "i.npy", &npy("<i8", false, "(1, 1)", &[0; 8]));
        let e = read_matrix(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("expected float32 ('<f4') or float64 ('<f8') data, got dtype '<i8'"),
            "{e}"
        );
        let p = write(&dir, "r.npy", &npy("<f8", false, "(3,)", &[0; 24]));
        let e = read_matrix(&p, None).unwrap_err().to_string();
        assert!(
            e.contains("expected a 2-D array (n, d), got shape [3]"),
            "{e}"
        );
        let p = write(&dir, "t.npy", &npy("<f8", false, "(3, 3)", &[0; 24]));
        assert!(read_matrix(&p, None)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        let p = write(&dir, "x.npy", b"hello");
        assert!(read_matrix(&p, None)
            .unwrap_err()
            .to_string()
            .contains("not a .npy file"));
    }

    #[test]
    fn csv_header_comments_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "a.csv", b"x,y\n# comment\n1,2\n\n3, 4\n");
        assert_eq!(
            read_matrix(&p, None).unwrap(),
            ndarray::array![[1.0, 2.0], [3.0, 4.0]]
        );
        let p = write(&dir, "s.txt", b"1 2 3\n4 5 6\n");
        assert_eq!(read_matrix(&p, None).unwrap().dim(), (2, 3));
        let p = write(&dir, "ragged.csv", b"1,2\n3,4\n5\n");
        let e = read_matrix(&p, None).unwrap_err().to_string();
        assert!(
            e.ends_with("ragged.csv:3: 1 values, expected 2 as on line 1"),
            "{e}"
        );
        let p = write(&dir, "bad.csv", b"1,2\n3,x\n");
        let e = read_matrix(&p, None).unwrap_err().to_string();
        assert!(
            e.ends_with("bad.csv:2, column 2: expected a number, got `x`"),
            "{e}"
        );
        let p = write(&dir, "empty.csv", b"a,b\n");
        assert!(read_matrix(&p, None)
            .unwrap_err()
            .to_string()
            .contains("no data rows"));
    }

    #[test]
    fn h5_dataset_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.h5");
        let f = hdf5::File::create(&p).unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::array![[1.0f32, 2.0]])
            .create("x")
            .unwrap();
        f.new_dataset_builder()
            .with_data(&ndarray::array![1.0f64, 2.0])
            .create("v")
            .unwrap();
        drop(f);
        assert_eq!(read_matrix(&p, None).unwrap(), ndarray::array![[1.0, 2.0]]);
        let e = read_matrix(&p, Some("v")).unwrap_err().to_string();
        assert!(e.contains("dataset /v: expected a 2-D matrix"), "{e}");
        let e = read_matrix(&p, Some("nope")).unwrap_err().to_string();
        assert!(e.contains("dataset /nope"), "{e}");
        let e = read_matrix(Path::new("data.parquet"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown format"), "{e}");
    }
}
