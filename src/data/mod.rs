//! Data sources: everything that becomes a sample matrix or a collection of
//! point clouds. For now, the synthetic datasets of `tglml data synth`.

pub mod matrix;
pub mod synth;
