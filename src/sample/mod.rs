//! Sampling that respects a learned latent structure (pure Rust, no
//! libtorch): densities fitted to latent codes ([`density`]) and Langevin
//! walks on them ([`langevin`]), paths between latent points ([`path`]).

pub mod density;
pub mod langevin;
pub mod path;
