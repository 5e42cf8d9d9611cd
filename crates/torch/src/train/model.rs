//! The seam between the training loop ([`super::trainer`]) and a model.
//!
//! A model says which optimizer phases a step runs (one for a VAE, two
//! for a GAN: the discriminator's, then the generator's), which of its
//! variables each phase trains, and the loss of each phase on a batch:
//! its named terms and, in the phase that carries it, the live points
//! that the topological loss compares with the data batch (the latent
//! codes of a VAE, the generated points of a GAN, a diffusion model's
//! prediction x̂₀). The loop owns everything else: batches, noise, the
//! topological loss and its weight γ(t), the gradient all-reduce of each
//! phase, the optimizers, the stop flag, checkpoints and the run file.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Kind, Tensor};

use super::data::TestSplit;
use tglml::error::Result;
use tglml::io::H5Writer;

/// One optimizer phase of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Its name: its optimizer's in checkpoints (`/optimizer/<name>`).
    pub name: &'static str,
    /// The VarStore name prefixes of the variables it trains (`"enc."`);
    /// every trainable variable belongs to exactly one phase.
    pub prefixes: Vec<&'static str>,
    /// The names of its loss terms, in the order of [`PhaseLoss::terms`]:
    /// the log's columns `/train/<name>`.
    pub terms: Vec<&'static str>,
    /// Whether the topological loss is added to this phase's loss (its
    /// [`PhaseLoss::live`] then holds the points it compares).
    pub topological: bool,
    /// Adam's β₁ for its optimizer (train.lr is the rate).
    pub beta1: f64,
}

/// What a step gives the model: this rank's rows of the global batch, and
/// noise keyed by the rows' positions in it.
pub struct Batch<'a> {
    /// This rank's rows (B × D), of the training kind, on the device.
    pub x: &'a Tensor,
    pub step: u64,
    /// The rows' positions in the global batch.
    pub rows: Range<usize>,
    pub seed: u64,
    pub kind: Kind,
    pub device: Device,
    /// Whether the loop adds the topological loss at this step (a model
    /// may skip computing its live points when not).
    pub topological: bool,
    /// The labels of this rank's rows (int64, B), when the data have them.
    pub labels: Option<&'a Tensor>,
    /// Where batch-norm layers record themselves for the backward pass
    /// (their statistics are the global batch's; [`super::norm`]).
    pub norm: &'a super::norm::Tape<'a>,
}

impl Batch<'_> {
    /// Standard normal draws, `cols` per row (B × cols), from stream
    /// `stream` of (seed, step, position): a row's draws do not depend on
    /// which rank holds it or how many ranks there are.
    pub fn normal(&self, stream: u64, cols: usize) -> Tensor {
        let v = normal_rows(self.seed, self.step, stream, self.rows.clone(), cols);
        Tensor::from_slice(&v)
            .view([self.rows.len() as i64, cols as i64])
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// One integer uniform on 0..n per row, from stream `stream` of
    /// (seed, step, position), as [`Self::normal`]'s draws.
    pub fn uniform_index(&self, stream: u64, n: usize) -> Vec<usize> {
        self.rows
            .clone()
            .map(|pos| row_rng(self.seed, self.step, stream, pos).random_range(0..n))
            .collect()
    }
}

/// The generator of row `pos` of step `step` in stream `stream`.
fn row_rng(seed: u64, step: u64, stream: u64, pos: usize) -> ChaCha8Rng {
    let key = seed ^ 0xE95 ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(step.wrapping_mul(1 << 20).wrapping_add(pos as u64));
    rng
}

/// The draws of [`Batch::normal`], row-major.
pub(crate) fn normal_rows(
    seed: u64,
    step: u64,
    stream: u64,
    rows: Range<usize>,
    cols: usize,
) -> Vec<f64> {
    let mut v = Vec::with_capacity(rows.len() * cols);
    for pos in rows {
        let mut rng = row_rng(seed, step, stream, pos);
        for _ in 0..cols {
            v.push(rng.sample::<f64, _>(StandardNormal));
        }
    }
    v
}

/// [`normal_rows`] as a `n × cols` tensor of `kind` on `device`.
pub(crate) fn normal_tensor(
    seed: u64,
    step: u64,
    stream: u64,
    n: usize,
    cols: usize,
    kind: Kind,
    device: Device,
) -> Tensor {
    Tensor::from_slice(&normal_rows(seed, step, stream, 0..n, cols))
        .view([n as i64, cols as i64])
        .to_kind(kind)
        .to_device(device)
}

/// Parameters of an MLP through `widths` (weights and biases), `None` on
/// overflow.
pub(crate) fn mlp_params(widths: &[u64]) -> Option<u64> {
    widths.windows(2).try_fold(0u64, |acc, w| {
        w[0].checked_add(1)
            .and_then(|a| a.checked_mul(w[1]))
            .and_then(|p| acc.checked_add(p))
    })
}

/// The memory estimate of training a network of `params` parameters whose
/// layers hold `acts` activations per row, on batches of `batch` rows of
/// `elem`-byte values: each parameter with its gradient, Adam's two
/// moments (4 × elem) and its float64 all-reduce slot (16 bytes), and the
/// activations three times (forward, backward, a spare). `None` (an
/// overflow of the widths) gives a size no budget holds.
pub fn training_memory(
    params: Option<u64>,
    acts: Option<u64>,
    batch: usize,
    elem: u64,
) -> tglml::guard::Size {
    use tglml::guard::Size;
    match (params, acts) {
        (Some(p), Some(a)) => Size::of(p, elem.saturating_mul(4).saturating_add(16))
            .plus(Size::array(&[a, batch as u64, 3], elem)),
        _ => Size::array(&[u64::MAX, 2], 1),
    }
}

/// The file of the samples' picture.
pub const SAMPLES_PLOT: &str = "samples.png";

/// Writes `/samples` into `w` and their picture to `out`/[`SAMPLES_PLOT`]
/// ([`samples_png`] over the test split).
pub fn write_samples(
    w: &H5Writer,
    out: &Path,
    split: &TestSplit,
    samples: &ndarray::Array2<f64>,
) -> Result<()> {
    w.dataset("/samples", samples)?;
    samples_png(
        &split.x,
        samples,
        &format!("samples at the end of training ({} drawn)", samples.nrows()),
        "data units",
        &out.join(SAMPLES_PLOT),
    )
}

/// The picture of `samples` at `path`, titled `title`: a grid of the first
/// 64 when they are 28 × 28 images (grey levels over the value range of
/// `reference`), else a scatter of the samples over `reference`, their
/// first two coordinates (in `unit`).
pub fn samples_png(
    reference: &ndarray::Array2<f64>,
    samples: &ndarray::Array2<f64>,
    title: &str,
    unit: &str,
    path: &Path,
) -> Result<()> {
    if samples.ncols() == 784 {
        return tglml::io::plot::image_grid_png(
            samples,
            28,
            8,
            value_range(reference),
            title,
            path,
        );
    }
    scatter_over(
        reference,
        samples,
        &vec![1; samples.nrows()],
        &|_| "samples".into(),
        title,
        unit,
        path,
    )
}

/// A scatter of `points` (grouped by `labels`, one per point, each group
/// named by `name`) over `reference` ("reference"), their first two
/// coordinates (in `unit`), titled `title`.
pub fn scatter_over(
    reference: &ndarray::Array2<f64>,
    points: &ndarray::Array2<f64>,
    labels: &[i64],
    name: &dyn Fn(i64) -> String,
    title: &str,
    unit: &str,
    path: &Path,
) -> Result<()> {
    use tglml::io::plot::{by_label, coordinates_png};
    let mut sets = by_label(reference, None, &|_| "reference".into());
    sets.extend(by_label(points, Some(labels), name));
    coordinates_png(path, title, unit, &sets)
}

pub use tglml::io::plot::value_range;

/// A phase's loss on this rank's rows.
pub struct PhaseLoss {
    /// The phase's objective summed over this rank's rows (differentiable);
    /// the loop divides it by the global batch size.
    pub sum: Tensor,
    /// The sums of its terms over this rank's rows, in [`Phase::terms`]'s
    /// order: the log's values (summed over ranks, divided by the global
    /// batch size).
    pub terms: Vec<f64>,
    /// This rank's rows of the points the topological loss compares with
    /// the data batch (B × d, live), in a phase that carries it.
    pub live: Option<Tensor>,
}

/// A model the training loop can train.
pub trait Model {
    /// The phases of a step, in the order the loop runs them.
    fn phases(&self) -> Vec<Phase>;

    /// Phase `phase`'s loss on `batch`. Runs inside
    /// [`tglml::runtime::fallible`]: a failure inside libtorch becomes an
    /// error on every rank.
    fn loss(&self, phase: usize, batch: &Batch) -> PhaseLoss;

    /// After the optimizers' updates of step `step` (0-based), on every
    /// rank alike: a model's own state, such as an average of its weights.
    fn after_step(&self, _step: u64) {}

    /// The files it writes into the output folder besides checkpoint.h5
    /// and run.h5.
    fn extra_files(&self, out: &Path) -> Vec<PathBuf>;

    /// On the validation rows `x` (train.validation_fraction; rank 0): the
    /// mean reconstruction loss per row and the latent codes, in evaluation
    /// mode. `None`: the model has no validation (refused by the config).
    fn validate(&self, _x: &ndarray::Array2<f64>) -> Option<Result<(f64, ndarray::Array2<f64>)>> {
        None
    }

    /// After training, on rank 0: its evaluation on the test split into
    /// the run file `w` (and its extra files); returns a summary for the
    /// user.
    fn report(&self, w: &H5Writer, out: &Path, test: &TestSplit) -> Result<String>;

    /// What the trained model offers `tglml sample` and `tglml
    /// interpolate`.
    fn generative(&self) -> &dyn Generative;

    /// A classifier's features and class probabilities, for `tglml eval`.
    fn classifier(&self) -> Option<&dyn super::classifier::Classify> {
        None
    }
}

/// A trained model's latent space, its maps and its own sampler, as far
/// as it has them (tensors of the model's kind, on its device).
pub trait Generative {
    /// The dimension of its latent space, where the prior N(0, I), the
    /// latent densities, the walks and the paths live (`None`: a diffusion
    /// model on the data has none).
    fn latent_dim(&self) -> Option<usize>;
    /// Whether it has an encoder ([`Self::encode`] gives codes).
    fn has_encoder(&self) -> bool;
    /// Whether it has a decoder ([`Self::decode`] decodes).
    fn has_decoder(&self) -> bool;
    /// The latent codes of data rows (a VAE's means; latent diffusion: its
    /// VAE's), differentiable in the rows (callers that need no gradient
    /// wrap it in `tch::no_grad`); `None` without an encoder.
    fn encode(&self, x: &Tensor) -> Option<Tensor>;
    /// The decoded points of latent rows (a VAE's decoder mean, a GAN's
    /// generator), differentiable; `None` without a decoder.
    fn decode(&self, z: &Tensor) -> Option<Tensor>;
    /// Its diffusion model, with the weights it samples with.
    fn diffusion(&self) -> Option<super::diffusion::Parts<'_>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_does_not_depend_on_ranks() {
        let all = normal_rows(3, 7, 0, 0..20, 2);
        let half = normal_rows(3, 7, 0, 10..20, 2);
        assert_eq!(&all[20..], &half[..]);
        // Another stream is another draw.
        assert_ne!(normal_rows(3, 7, 1, 0..20, 2), all);
    }
}
