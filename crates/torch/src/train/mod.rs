//! Training (tch / libtorch): the VAE, the GAN, the diffusion models, the differentiable topological loss,
//! our Adam (whose state can be saved), checkpoints, and the data-parallel
//! training loop.

pub mod ahead;
pub mod average;
pub mod checkpoint;
pub mod classifier;
pub mod data;
pub mod diffusion;
pub mod gan;
pub mod model;
pub mod norm;
pub mod optim;
pub mod topo_loss;
pub mod trainer;
pub mod vae;
