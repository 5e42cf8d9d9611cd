//! The GAN: an MLP generator G(z) and an MLP discriminator D, trained with
//! the non-saturating loss and an R1 penalty on real data (Mescheder et al.
//! 2018), in two phases per step: the discriminator's, then the
//! generator's. The generator's phase carries the topological loss between
//! the diagrams of the real batch and of the generated batch G(z), both in
//! data space.
//!
//! Why non-saturating + R1 and not WGAN-GP: one discriminator step per
//! generator step (WGAN-GP wants several critic steps), the penalty needs
//! the gradient at the real points only (no interpolates between real and
//! generated rows, which would tie rows of different ranks together), and
//! R1 is the regulariser with a convergence proof for this loss.
//!
//! Losses are sums over a rank's rows; the loop divides by the global
//! batch size:
//! - discriminator: softplus(−D(x)) + softplus(D(G(z))) + (r1 / 2)·‖∇ₓD(x)‖²,
//!   G(z) detached;
//! - generator: softplus(−D(G(z))).

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::data::TestSplit;
use super::model::{mlp_params, Batch, Generative, Model, Phase, PhaseLoss};
use super::topo_loss::to_vec;
use tglml::error::{Error, Result};
use tglml::io::H5Writer;

/// The GAN's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GanSpec {
    /// Dimension of the data (the generator's output, the discriminator's
    /// input).
    pub input_dim: usize,
    /// Dimension of z.
    pub latent_dim: usize,
    /// Widths of the generator's hidden layers (z → … → x).
    pub gen_hidden: Vec<usize>,
    /// Widths of the discriminator's hidden layers (x → … → 1).
    pub disc_hidden: Vec<usize>,
    /// Weight of the R1 penalty (0: none).
    pub r1: f64,
    /// Adam's β₁ of both networks' optimizers.
    pub beta1: f64,
    /// DCGAN-style convolutions for 28 × 28 images instead of MLPs: the
    /// generator's channels at 7 × 7 and at 14 × 14 and 28 × 28 are `gen_hidden`, the
    /// discriminator's at 14 × 14 and 7 × 7 `disc_hidden`.
    pub conv: bool,
}

impl GanSpec {
    fn widths(&self) -> (Vec<u64>, Vec<u64>) {
        let gen: Vec<u64> = std::iter::once(self.latent_dim as u64)
            .chain(self.gen_hidden.iter().map(|&h| h as u64))
            .chain(std::iter::once(self.input_dim as u64))
            .collect();
        let disc: Vec<u64> = std::iter::once(self.input_dim as u64)
            .chain(self.disc_hidden.iter().map(|&h| h as u64))
            .chain(std::iter::once(1))
            .collect();
        (gen, disc)
    }

    /// The estimated memory of training it on batches of `batch` rows with
    /// values of `elem` bytes: parameters with their gradients, Adam's two
    /// moments and the float64 all-reduce buffer, and the activations of
    /// both networks (the discriminator runs on real and generated rows,
    /// with a second backward pass for R1). `None` inside the size when
    /// the widths overflow.
    pub fn memory(&self, batch: usize, elem: u64) -> (Option<u64>, tglml::guard::Size) {
        if self.conv {
            let l = self.latent_dim as u64;
            let (g0, g1) = (self.gen_hidden[0] as u64, self.gen_hidden[1] as u64);
            let (d0, d1) = (self.disc_hidden[0] as u64, self.disc_hidden[1] as u64);
            // linear z → g0·7·7, conv 3 × 3 g0 → g1, g1 → g1 and g1 → 1;
            // conv 4 × 4 1 → d0 and d0 → d1, linear d1·7·7 → 1.
            let terms = [
                (l + 1, g0 * 49),
                (g0 * 9 + 1, g1),
                (g1 * 9 + 1, g1),
                (g1 * 9 + 1, 1),
                (16 + 1, d0),
                (d0 * 16 + 1, d1),
                (d1 * 49 + 1, 1),
            ];
            let params = terms.iter().try_fold(0u64, |acc, &(a, b)| {
                a.checked_mul(b).and_then(|p| acc.checked_add(p))
            });
            let acts = [
                l,
                g0 * 49,
                g0 * 196,
                g1 * 196,
                g1 * 784,
                g1 * 784,
                784,
                d0 * 196,
                d1 * 49,
                1,
            ]
            .iter()
            .try_fold(0u64, |a, &w| a.checked_add(w))
            .and_then(|s| s.checked_mul(4));
            return (
                params,
                super::model::training_memory(params, acts, batch, elem),
            );
        }
        let (gen, disc) = self.widths();
        let params = mlp_params(&gen)
            .zip(mlp_params(&disc))
            .and_then(|(a, b)| a.checked_add(b));
        let acts = gen
            .iter()
            .chain(&disc)
            .try_fold(0u64, |a, &w| a.checked_add(w))
            .and_then(|s| s.checked_mul(4));
        (
            params,
            super::model::training_memory(params, acts, batch, elem),
        )
    }
}

/// Each pixel's feature vector (dimension 1) scaled to unit mean square,
/// per image (ProGAN's pixel normalisation).
fn pixel_norm(x: &Tensor) -> Tensor {
    x / (x.square().mean_dim(Some(&[1i64][..]), true, x.kind()) + 1e-8).sqrt()
}

/// A GAN whose variables live in a VarStore (names `gen.*`, `disc.*`).
pub struct Gan {
    spec: GanSpec,
    gen: nn::Sequential,
    disc: nn::Sequential,
}

impl Gan {
    /// Builds the networks' variables under `root`.
    pub fn new(root: &nn::Path, spec: &GanSpec) -> Result<Self> {
        if spec.latent_dim == 0 || spec.input_dim == 0 {
            return Err(Error::invalid(
                "model",
                "input and latent dimensions must be at least 1",
            ));
        }
        let (gw, dw) = spec.widths();
        let layers = |p: nn::Path, w: &[u64], act: fn(&Tensor) -> Tensor| {
            let mut s = nn::seq();
            for (i, pair) in w.windows(2).enumerate() {
                s = s.add(nn::linear(
                    &p / format!("fc{i}"),
                    pair[0] as i64,
                    pair[1] as i64,
                    Default::default(),
                ));
                if i + 2 < w.len() {
                    s = s.add_fn(act);
                }
            }
            s
        };
        if spec.conv {
            if spec.input_dim != 784 {
                return Err(Error::invalid(
                    "model.network",
                    format!(
                        "\"conv\" takes 28 × 28 images (784 values), the data have {}",
                        spec.input_dim
                    ),
                ));
            }
            let (g, d) = (root / "gen", root / "disc");
            let conv3 = nn::ConvConfig {
                padding: 1,
                ..Default::default()
            };
            let down = nn::ConvConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            };
            let l = spec.latent_dim as i64;
            let (g0, g1) = (spec.gen_hidden[0] as i64, spec.gen_hidden[1] as i64);
            let (d0, d1) = (spec.disc_hidden[0] as i64, spec.disc_hidden[1] as i64);
            // DCGAN's shape, 7 × 7 → 14 × 14 → 28 × 28, with two changes.
            // Pixel normalisation (ProGAN) instead of batch normalisation,
            // whose batch statistics would depend on how the batch is split
            // over ranks: each pixel's feature vector of each image scaled
            // to unit mean square. Nearest-neighbour upsampling and a
            // 3 × 3 convolution instead of a transposed convolution, whose
            // uneven overlaps draw a checkerboard (Odena et al. 2016). A
            // sigmoid output (pixels in [0, 1], as train.standardize =
            // false keeps them).
            let up = |x: &Tensor| {
                let (h, w) = (x.size()[2], x.size()[3]);
                x.upsample_nearest2d([2 * h, 2 * w], None, None)
            };
            let gen = nn::seq()
                .add(nn::linear(&g / "fc", l, g0 * 49, Default::default()))
                .add_fn(move |x| pixel_norm(&x.relu().view([-1, g0, 7, 7])))
                .add_fn(up)
                .add(nn::conv2d(&g / "conv0", g0, g1, 3, conv3))
                .add_fn(|x| pixel_norm(&x.relu()))
                .add_fn(up)
                .add(nn::conv2d(&g / "conv1", g1, g1, 3, conv3))
                .add_fn(|x| pixel_norm(&x.relu()))
                .add(nn::conv2d(&g / "conv2", g1, 1, 3, conv3))
                .add_fn(|x| x.sigmoid().flatten(1, -1));
            let disc = nn::seq()
                .add_fn(|x| x.view([-1, 1, 28, 28]))
                .add(nn::conv2d(&d / "conv0", 1, d0, 4, down))
                .add_fn(|x| x.maximum(&(x * 0.2)))
                .add(nn::conv2d(&d / "conv1", d0, d1, 4, down))
                .add_fn(|x| x.maximum(&(x * 0.2)).flatten(1, -1))
                .add(nn::linear(&d / "fc", d1 * 49, 1, Default::default()));
            return Ok(Gan {
                spec: spec.clone(),
                gen,
                disc,
            });
        }
        Ok(Gan {
            spec: spec.clone(),
            gen: layers(root / "gen", &gw, |x| x.relu()),
            // Leaky ReLU of slope 0.2, as DCGAN's discriminator.
            disc: layers(root / "disc", &dw, |x| x.maximum(&(x * 0.2))),
        })
    }

    /// G(z): n × input_dim.
    pub fn generate(&self, z: &Tensor) -> Tensor {
        self.gen.forward(z)
    }

    /// D(x): the logits, n.
    pub fn discriminate(&self, x: &Tensor) -> Tensor {
        self.disc.forward(x).squeeze_dim(1)
    }
}

/// The GAN as the training loop trains it.
pub struct GanModel {
    gan: Gan,
    device: tch::Device,
    /// Samples in run.h5's `/samples` (model.samples).
    samples: usize,
    seed: u64,
    kind: Kind,
}

impl GanModel {
    /// Builds the networks under `root`.
    pub fn new(
        root: &nn::Path,
        spec: &GanSpec,
        samples: usize,
        seed: u64,
        kind: Kind,
    ) -> Result<Self> {
        Ok(GanModel {
            gan: Gan::new(root, spec)?,
            device: root.device(),
            samples,
            seed,
            kind,
        })
    }

    /// z of this rank's rows of a step: stream 0 of (seed, step, position),
    /// the same in both phases.
    fn z(&self, batch: &Batch) -> Tensor {
        batch.normal(0, self.gan.spec.latent_dim)
    }
}

impl Model for GanModel {
    fn phases(&self) -> Vec<Phase> {
        vec![
            Phase {
                name: "discriminator",
                prefixes: vec!["disc."],
                terms: vec!["d_real", "d_fake", "r1"],
                topological: false,
                beta1: self.gan.spec.beta1,
            },
            Phase {
                name: "generator",
                prefixes: vec!["gen."],
                terms: vec!["g_loss"],
                topological: true,
                beta1: self.gan.spec.beta1,
            },
        ]
    }

    fn loss(&self, phase: usize, batch: &Batch) -> PhaseLoss {
        let kind = batch.kind;
        if phase == 0 {
            // G(z) as a constant: no graph through the generator.
            let fake = tch::no_grad(|| self.gan.generate(&self.z(batch)));
            let x = batch.x.detach().set_requires_grad(self.gan.spec.r1 > 0.0);
            let d_real = self.gan.discriminate(&x);
            let real = (-&d_real).softplus().sum(kind);
            let gen = self.gan.discriminate(&fake).softplus().sum(kind);
            let r1 = if self.gan.spec.r1 > 0.0 {
                let g = Tensor::run_backward(&[d_real.sum(kind)], &[&x], true, true);
                g[0].square().sum(kind) * 0.5
            } else {
                Tensor::zeros([], (kind, batch.device))
            };
            let terms = vec![
                real.double_value(&[]),
                gen.double_value(&[]),
                r1.double_value(&[]),
            ];
            PhaseLoss {
                sum: real + gen + r1 * self.gan.spec.r1,
                terms,
                live: None,
            }
        } else {
            let fake = self.gan.generate(&self.z(batch));
            let g = (-self.gan.discriminate(&fake)).softplus().sum(kind);
            PhaseLoss {
                terms: vec![g.double_value(&[])],
                sum: g,
                live: Some(fake),
            }
        }
    }

    fn extra_files(&self, out: &Path) -> Vec<PathBuf> {
        vec![out.join(super::model::SAMPLES_PLOT)]
    }

    /// `/samples`: model.samples generated points (z from the seeded
    /// stream 1), and their picture ([`super::model::write_samples`]).
    fn report(&self, w: &H5Writer, out: &Path, split: &TestSplit) -> Result<String> {
        let (n, d) = (self.samples, self.gan.spec.input_dim);
        let z = super::model::normal_rows(self.seed, u64::MAX, 1, 0..n, self.gan.spec.latent_dim);
        let dev = self.device;
        let x = tch::no_grad(|| {
            self.gan.generate(
                &Tensor::from_slice(&z)
                    .view([n as i64, self.gan.spec.latent_dim as i64])
                    .to_kind(self.kind)
                    .to_device(dev),
            )
        });
        let samples = Array2::from_shape_vec((n, d), to_vec(&x))
            .map_err(|e| Error::external("samples", e))?;
        super::model::write_samples(w, out, split, &samples)?;
        Ok(format!("; {n} samples in /samples"))
    }

    fn generative(&self) -> &dyn Generative {
        self
    }
}

/// A GAN has a decoder (its generator) and no encoder.
impl Generative for GanModel {
    fn latent_dim(&self) -> Option<usize> {
        Some(self.gan.spec.latent_dim)
    }

    fn has_encoder(&self) -> bool {
        false
    }

    fn has_decoder(&self) -> bool {
        true
    }

    fn encode(&self, _: &Tensor) -> Option<Tensor> {
        None
    }

    fn decode(&self, z: &Tensor) -> Option<Tensor> {
        Some(self.gan.generate(z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With no hidden layer the discriminator is linear, D(x) = w·x + b:
    /// ∇ₓD = w at every row, so the R1 term is n·‖w‖²/2, and the
    /// non-saturating terms are the softplus sums of the logits.
    #[test]
    fn losses_have_their_closed_forms_for_a_linear_discriminator() {
        tch::manual_seed(3);
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = GanSpec {
            input_dim: 3,
            latent_dim: 2,
            gen_hidden: vec![4],
            disc_hidden: vec![],
            r1: 0.7,
            beta1: 0.9,
            conv: false,
        };
        let m = GanModel::new(&vs.root(), &spec, 5, 1, Kind::Double).unwrap();
        vs.set_kind(Kind::Double);
        let x = Tensor::randn([6, 3], (Kind::Double, tch::Device::Cpu));
        let comm = tglml::dist::Comm::solo();
        let tape = crate::train::norm::Tape::new(&comm, 6);
        let batch = Batch {
            x: &x,
            step: 4,
            rows: 0..6,
            seed: 9,
            kind: Kind::Double,
            device: tch::Device::Cpu,
            topological: true,
            labels: None,
            norm: &tape,
        };
        let d = m.loss(0, &batch);
        let w = vs.variables()["disc.fc0.weight"].copy();
        let b = vs.variables()["disc.fc0.bias"].copy();
        let logits = |t: &Tensor| (t.matmul(&w.tr()) + &b).squeeze_dim(1);
        let r1 = 6.0 * w.square().sum(Kind::Double).double_value(&[]) / 2.0;
        let real = (-logits(&x)).softplus().sum(Kind::Double).double_value(&[]);
        let fake = m.gan.generate(&batch.normal(0, 2));
        let gen = logits(&fake).softplus().sum(Kind::Double).double_value(&[]);
        for (got, want) in d.terms.iter().zip([real, gen, r1]) {
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "{got} vs {want}"
            );
        }
        let total = d.sum.double_value(&[]);
        assert!((total - (real + gen + 0.7 * r1)).abs() <= 1e-12 * total.abs());
        assert!(d.live.is_none());
        let g = m.loss(1, &batch);
        let want = (-logits(&fake))
            .softplus()
            .sum(Kind::Double)
            .double_value(&[]);
        assert!((g.terms[0] - want).abs() <= 1e-12 * want.abs());
        assert_eq!(g.live.unwrap().size(), [6, 3]);
        // The phases' variables are disjoint and cover the networks.
        let phases = m.phases();
        for (name, _) in vs.variables() {
            let owners = phases
                .iter()
                .filter(|p| p.prefixes.iter().any(|q| name.starts_with(q)))
                .count();
            assert_eq!(owners, 1, "{name}");
        }
    }
}
