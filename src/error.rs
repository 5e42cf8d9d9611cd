//! The library's error type.
//!
//! Every variant carries the context a user needs to act on it: which file,
//! which dataset, which configuration key, which rank. Commands return
//! [`Error`]; `main` prints it once (on rank 0) and exits non-zero.

use std::path::PathBuf;

/// Everything that can go wrong in TGLML, with context.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem: `origin` names the file (and line) or the
    /// command-line override that caused it.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },

    /// A file-system operation failed on `path`.
    #[error("{path}: {action}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// An HDF5 operation failed on `path` (and `object`, a dataset or attribute
    /// name, where there is one).
    #[error("{path}: {object}: {source}", path = path.display())]
    Hdf5 {
        path: PathBuf,
        object: String,
        #[source]
        source: hdf5::Error,
    },

    /// An input value is outside what the operation accepts.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },

    /// Another MPI rank failed; its message is reported here.
    #[error("rank {rank}: {message}")]
    Remote { rank: usize, message: String },

    /// The MPI layer refused an operation (for example a message too large
    /// for MPI's 32-bit counts).
    #[error("MPI: {0}")]
    Mpi(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` while doing `action` ("reading", "renaming", …).
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// An HDF5 error on `object` in the file `path`.
    pub fn hdf5(path: impl Into<PathBuf>, object: impl Into<String>, source: hdf5::Error) -> Self {
        Error::Hdf5 {
            path: path.into(),
            object: object.into(),
            source,
        }
    }

    /// A value that is not acceptable: `what` names it (a key, an argument).
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            message: message.into(),
        }
    }
}
