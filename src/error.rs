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

    /// `source` happened while doing `context` (an object of a collection,
    /// a training step): the cause is kept, and [`report`] prints both.
    #[error("{context}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },

    /// A failure of another library (a shape error of ndarray, a tensor
    /// operation of libtorch) while doing `what`, with its cause kept.
    #[error("{what}")]
    External {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
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

    /// This error, as the cause of a failure while doing `context`.
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// A failure of another library while doing `what`, keeping its cause.
    pub fn external(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::External {
            what: what.into(),
            source: source.into(),
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

/// The whole chain of an error, outermost first, joined by ": ": what
/// `main` prints and what [`crate::dist::Comm::agree`] sends to rank 0. A
/// cause whose text the message already ends with (the I/O and HDF5
/// variants print their cause themselves) is not repeated.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Error::io("/x.h5", "reading", io)
            .context("object 3 (mesh.off)")
            .context("tglml ph");
        assert_eq!(
            report(&e),
            "tglml ph: object 3 (mesh.off): /x.h5: reading: gone"
        );
        let shape = ndarray::Array1::<f64>::zeros(3).into_shape_with_order((2, 2));
        let e = Error::external("/x of out.h5", shape.unwrap_err());
        assert!(report(&e).starts_with("/x of out.h5: "), "{}", report(&e));
        assert!(report(&e).len() > "/x of out.h5: ".len());
    }
}
