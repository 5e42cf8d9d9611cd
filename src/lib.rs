//! TGLML: topology-guided generative modelling.
//!
//! Rooms (see the repository's README and docs/):
//! - [`config`]: the run configuration (TOML, defaults, overrides);
//! - [`data`]: datasets (synthetic, and later real loaders);
//! - [`dist`]: every MPI call, behind a communicator that also works alone;
//! - [`io`]: HDF5 outputs, atomic and stamped;
//! - [`commands`]: the `tglml` subcommands; [`cli`]: their arguments;
//!   [`entry`]: the start of a process.
//!
//! Training (libtorch) is the crate tglml-torch (crates/torch), which this
//! crate does not depend on.

pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod dist;
pub mod entry;
pub mod error;
pub mod guard;
pub mod io;
pub mod metrics;
pub mod progress;
pub mod runtime;
pub mod sample;
pub mod topology;

pub use error::{Error, Result};
