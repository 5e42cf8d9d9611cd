//! The topology engine: Vietoris–Rips persistent homology with critical
//! edges. Pure Rust (ndarray + rayon): no MPI, no libtorch, so it can be used,
//! tested and benchmarked on its own.
//!
//! - [`distance`]: distance matrices from point clouds or given matrices;
//! - [`rips`]: persistence diagrams (H0..H3) with the critical edges of every
//!   pair, Ripser's algorithm (cohomology, clearing, emergent pairs, implicit
//!   coboundaries);
//! - [`cubical`]: H0 and H1 of images, the sublevel filtration of the pixel
//!   grid (GUDHI's cubical complex of top-dimensional cells).

pub mod cubical;
pub mod diagram;
pub mod distance;
pub mod landmarks;
pub mod rips;
pub mod summaries;

pub use distance::DistanceMatrix;
pub use rips::{
    estimate_memory, h0_diagram, rips_persistence, rips_persistence_with_progress, Bar, Diagrams,
    MemoryEstimate, Progress, RipsOptions,
};
