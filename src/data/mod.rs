//! Data sources: everything that becomes a sample matrix or a collection of
//! point clouds.

pub mod idx;
pub mod images;
pub mod matrix;
pub mod mesh;
pub mod protein;
pub mod synth;
