//! HDF5 output: atomic files with a provenance stamp.
//!
//! Every file TGLML writes is created under a temporary name beside its
//! destination and renamed into place only when complete, so an interrupted
//! or failed run never leaves a file that looks finished. Every file carries
//! the root attributes documented in `docs/hdf5.md`: `tglml_version`,
//! `git_revision`, `command`, `config` (the effective configuration as TOML
//! text), `n_ranks` and `threads_per_rank`.

pub mod collection;
pub mod diagrams;
pub mod output;
pub mod plot;

use std::path::{Path, PathBuf};

use hdf5::types::{H5Type, VarLenUnicode};
use ndarray::{ArrayView, Dimension};

use crate::error::{Error, Result};

/// The crate version stamped into outputs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from (`-dirty` when the work tree
/// had uncommitted changes to tracked files).
pub const GIT_REVISION: &str = env!("TGLML_GIT_REVISION");

/// Provenance written as root attributes of every output file.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// The command that wrote the file (`data synth`).
    pub command: String,
    /// The effective configuration, as TOML text.
    pub config_toml: String,
    /// The number of MPI ranks of the run.
    pub n_ranks: usize,
    /// Threads per rank of the run.
    pub threads_per_rank: usize,
}

/// An HDF5 file being written under a temporary name; [`H5Writer::commit`]
/// renames it to its destination. Dropped without commit, it is deleted.
pub struct H5Writer {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<hdf5::File>,
    /// Folders made for this file (outermost first): removed again, if
    /// empty, when the file is not committed.
    made: Vec<PathBuf>,
}

impl H5Writer {
    /// Starts writing `dest` (parent folders are created) and stamps it.
    /// The temporary file and the folders made for it are tracked
    /// ([`output::track`]), so that a signal or a panic removes them.
    pub fn create(dest: &Path, stamp: &Stamp) -> Result<Self> {
        let tmp = output::temp_name(dest)?;
        let made = output::create_folders(&output::parent_of(dest))?;
        output::track(&tmp);
        let mut w = H5Writer {
            dest: dest.to_path_buf(),
            tmp,
            file: None,
            made,
        };
        w.file = Some(
            hdf5::File::create(&w.tmp).map_err(|e| Error::hdf5(&w.tmp, "creating the file", e))?,
        );
        w.attr_str("/", "tglml_version", VERSION)?;
        w.attr_str("/", "git_revision", GIT_REVISION)?;
        w.attr_str("/", "command", &stamp.command)?;
        w.attr_str("/", "config", &stamp.config_toml)?;
        w.attr_u64("/", "n_ranks", stamp.n_ranks as u64)?;
        w.attr_u64("/", "threads_per_rank", stamp.threads_per_rank as u64)?;
        Ok(w)
    }

    /// The open file (under its temporary name).
    pub fn file(&self) -> &hdf5::File {
        self.file.as_ref().expect("open until commit")
    }

    /// The destination path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Writes `data` as dataset `path` (`/x`, `/group/name`); missing groups
    /// on the way are created.
    pub fn dataset<'a, T, D>(
        &self,
        path: &str,
        data: impl Into<ArrayView<'a, T, D>>,
    ) -> Result<hdf5::Dataset>
    where
        T: H5Type + 'a,
        D: Dimension,
    {
        let (group, name) = self.parent_group(path)?;
        group
            .new_dataset_builder()
            .with_data(data)
            .create(name.as_str())
            .map_err(|e| Error::hdf5(&self.dest, path, e))
    }

    /// Like [`H5Writer::dataset`], chunked by `chunk_rows` rows (all
    /// columns) and deflate-compressed: for large arrays read back by row
    /// ranges (hyperslabs). Empty arrays are written unchunked.
    pub fn dataset_chunked<'a, T, D>(
        &self,
        path: &str,
        data: impl Into<ArrayView<'a, T, D>>,
        chunk_rows: usize,
    ) -> Result<hdf5::Dataset>
    where
        T: H5Type + 'a,
        D: Dimension,
    {
        let data = data.into();
        if data.is_empty() {
            return self.dataset(path, data);
        }
        let mut chunk: Vec<usize> = data.shape().to_vec();
        chunk[0] = chunk_rows.clamp(1, chunk[0]);
        let (group, name) = self.parent_group(path)?;
        group
            .new_dataset_builder()
            .with_data(data)
            .chunk(chunk)
            .deflate(4)
            .create(name.as_str())
            .map_err(|e| Error::hdf5(&self.dest, path, e))
    }

    /// Creates the group `path` (and the missing ones above it), for
    /// attributes of its own.
    pub fn group(&self, path: &str) -> Result<()> {
        self.parent_group(&format!("{}/-", path.trim_end_matches('/')))
            .map(|_| ())
    }

    /// A 1-D dataset of UTF-8 strings.
    pub fn strings(&self, path: &str, values: &[String]) -> Result<hdf5::Dataset> {
        let v: Vec<VarLenUnicode> = values
            .iter()
            .map(|s| {
                s.parse().map_err(|e| {
                    Error::invalid(
                        format!("{}: {path}", self.dest.display()),
                        format!("{s:?} is not storable as an HDF5 string: {e}"),
                    )
                })
            })
            .collect::<Result<_>>()?;
        self.dataset(path, &ndarray::Array1::from_vec(v))
    }

    /// A UTF-8 string attribute `name` on the object at `obj` (`/` = root).
    pub fn attr_str(&self, obj: &str, name: &str, value: &str) -> Result<()> {
        let what = format!("attribute {name} of {obj}");
        let v: VarLenUnicode = value.parse().map_err(|e| {
            Error::invalid(what.clone(), format!("not storable as an HDF5 string: {e}"))
        })?;
        let loc = self.location(obj)?;
        loc.new_attr::<VarLenUnicode>()
            .create(name)
            .and_then(|a| a.write_scalar(&v))
            .map_err(|e| Error::hdf5(&self.dest, what, e))
    }

    /// A 64-bit unsigned integer attribute.
    pub fn attr_u64(&self, obj: &str, name: &str, value: u64) -> Result<()> {
        self.attr_scalar(obj, name, value)
    }

    /// A float64 attribute.
    pub fn attr_f64(&self, obj: &str, name: &str, value: f64) -> Result<()> {
        self.attr_scalar(obj, name, value)
    }

    fn attr_scalar<T: H5Type>(&self, obj: &str, name: &str, value: T) -> Result<()> {
        let loc = self.location(obj)?;
        loc.new_attr::<T>()
            .create(name)
            .and_then(|a| a.write_scalar(&value))
            .map_err(|e| Error::hdf5(&self.dest, format!("attribute {name} of {obj}"), e))
    }

    fn location(&self, obj: &str) -> Result<hdf5::Location> {
        let f = self.file();
        if obj == "/" {
            return Ok((***f).clone());
        }
        if let Ok(d) = f.dataset(obj) {
            return Ok((**d).clone());
        }
        f.group(obj)
            .map(|g| (*g).clone())
            .map_err(|e| Error::hdf5(&self.dest, obj, e))
    }

    fn parent_group(&self, path: &str) -> Result<(hdf5::Group, String)> {
        let trimmed = path.trim_start_matches('/');
        let mut group: hdf5::Group = (**self.file()).clone();
        let mut parts: Vec<&str> = trimmed.split('/').collect();
        let name = parts.pop().unwrap_or_default().to_string();
        for part in parts {
            group = match group.group(part) {
                Ok(g) => g,
                Err(_) => group
                    .create_group(part)
                    .map_err(|e| Error::hdf5(&self.dest, path, e))?,
            };
        }
        Ok((group, name))
    }

    /// Closes the file and renames it to its destination.
    pub fn commit(mut self) -> Result<PathBuf> {
        let file = self.file.take().expect("open until commit");
        let done = file
            .close()
            .map_err(|e| Error::hdf5(&self.tmp, "closing the file", e))
            .and_then(|()| {
                std::fs::rename(&self.tmp, &self.dest)
                    .map_err(|e| Error::io(&self.dest, "renaming the finished file into place", e))
            });
        if done.is_err() {
            self.discard();
        } else {
            output::untrack(&self.tmp);
            for d in std::mem::take(&mut self.made) {
                output::untrack(&d);
            }
        }
        done.map(|()| self.dest.clone())
    }

    /// Removes the temporary file and the folders made for it (if empty).
    fn discard(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = file.close();
        }
        output::remove_one(&self.tmp);
        output::untrack(&self.tmp);
        for d in std::mem::take(&mut self.made).iter().rev() {
            output::remove_one(d);
            output::untrack(d);
        }
    }
}

impl Drop for H5Writer {
    fn drop(&mut self) {
        if self.file.is_some() || !self.made.is_empty() {
            self.discard();
        }
    }
}

/// The UTF-8 string attribute `name` of `loc` (the object `obj` of the
/// file at `path`, for the message).
pub fn attr_string(path: &Path, loc: &hdf5::Location, obj: &str, name: &str) -> Result<String> {
    loc.attr(name)
        .and_then(|a| a.read_scalar::<VarLenUnicode>())
        .map(|s| s.as_str().to_string())
        .map_err(|e| Error::hdf5(path, format!("attribute {name} of {obj}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            command: "test".into(),
            config_toml: "[run]\nthreads = 0\n".into(),
            n_ranks: 3,
            threads_per_rank: 2,
        }
    }

    #[test]
    fn commit_renames_and_stamps() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.h5");
        let w = H5Writer::create(&dest, &stamp()).unwrap();
        let x = ndarray::array![[1.0f64, 2.0], [3.0, 4.0]];
        w.dataset("/x", &x).unwrap();
        w.dataset("/g/h/y", &ndarray::array![7i64, 8]).unwrap();
        w.attr_f64("/x", "scale", 0.5).unwrap();
        assert!(!dest.exists(), "not visible before commit");
        w.commit().unwrap();
        let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("out.h5")],
            "no temporary file left"
        );

        let f = hdf5::File::open(&dest).unwrap();
        let read: ndarray::Array2<f64> = f.dataset("x").unwrap().read_2d().unwrap();
        assert_eq!(read, x);
        let y: ndarray::Array1<i64> = f.dataset("g/h/y").unwrap().read_1d().unwrap();
        assert_eq!(y.to_vec(), vec![7, 8]);
        let v: VarLenUnicode = f.attr("tglml_version").unwrap().read_scalar().unwrap();
        assert_eq!(v.as_str(), VERSION);
        let c: VarLenUnicode = f.attr("config").unwrap().read_scalar().unwrap();
        assert_eq!(c.as_str(), stamp().config_toml);
        let n: u64 = f.attr("n_ranks").unwrap().read_scalar().unwrap();
        assert_eq!(n, 3);
        let s: f64 = f
            .dataset("x")
            .unwrap()
            .attr("scale")
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(s, 0.5);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.h5");
        {
            let w = H5Writer::create(&dest, &stamp()).unwrap();
            w.dataset("/x", &ndarray::array![1.0f64]).unwrap();
            // A failure here: the writer goes out of scope without commit.
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn folders_made_for_an_unfinished_file_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/out.h5");
        drop(H5Writer::create(&dest, &stamp()).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        H5Writer::create(&dest, &stamp()).unwrap().commit().unwrap();
        assert!(dest.exists());
    }

    #[test]
    fn failed_rename_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is a non-empty folder: the rename must fail.
        let dest = dir.path().join("taken");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("x"), b"").unwrap();
        let err = H5Writer::create(&dest, &stamp())
            .unwrap()
            .commit()
            .unwrap_err();
        assert!(
            err.to_string().contains("renaming the finished file"),
            "{err}"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
    }

    #[test]
    fn existing_file_is_replaced_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.h5");
        std::fs::write(&dest, b"old").unwrap();
        drop(H5Writer::create(&dest, &stamp()).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        H5Writer::create(&dest, &stamp()).unwrap().commit().unwrap();
        assert!(hdf5::File::open(&dest).is_ok());
    }
}
