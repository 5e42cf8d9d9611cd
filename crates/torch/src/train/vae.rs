//! The VAE: MLP or small convolutional encoder/decoder, Gaussian or
//! Bernoulli likelihood, latent dimension and β configurable.
//!
//! The encoder gives the mean μ and log-variance of q(z|x); the decoder maps
//! z to the likelihood's parameters (the mean of a unit-variance Gaussian,
//! or Bernoulli logits). Losses are sums over a sample's features, so the
//! caller divides by the global batch size.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::data::TestSplit;
use super::model::{Batch, Generative, Model, Phase, PhaseLoss};
use super::norm::{BatchNorm, Mode};
use crate::eval::{kl_sigmas, w_h0};
use tglml::error::{Error, Result};
use tglml::io::H5Writer;

/// Encoder/decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Fully connected layers of the configured widths (ReLU).
    Mlp,
    /// Two stride-2 convolutions (32, 64 channels) for 28 × 28 images, and
    /// the mirrored transposed convolutions.
    Conv,
}

pub use tglml::config::{BatchNorm as NormPlace, Likelihood, LinearInit, OutputActivation};

/// The model's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeSpec {
    pub arch: Arch,
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub latent_dim: usize,
    pub likelihood: Likelihood,
    /// Batch normalisation of the MLP's hidden layers.
    pub batch_norm: NormPlace,
    /// The decoder's last activation.
    pub output: OutputActivation,
    /// How the linear layers start.
    pub init: LinearInit,
}

/// A linear layer `fan_in → fan_out` under `p`, started as `init` says.
fn linear(p: nn::Path, fan_in: i64, fan_out: i64, init: LinearInit) -> nn::Linear {
    let config = match init {
        LinearInit::Kaiming => nn::LinearConfig::default(),
        LinearInit::Pytorch => {
            let r = 1.0 / (fan_in as f64).sqrt();
            let u = nn::Init::Uniform { lo: -r, up: r };
            nn::LinearConfig {
                ws_init: u,
                bs_init: Some(u),
                bias: true,
            }
        }
    };
    nn::linear(p, fan_in, fan_out, config)
}

/// Hidden layers of an MLP: each a linear map and a ReLU, with batch
/// normalisation before or after the ReLU where configured.
struct Mlp {
    layers: Vec<(nn::Linear, Option<BatchNorm>)>,
    place: NormPlace,
}

impl Mlp {
    /// Layers `fc0, fc1, …` (and `bn0, …`) under `p`, from `input` through
    /// `widths`.
    fn new(
        p: &nn::Path,
        input: usize,
        widths: &[usize],
        place: NormPlace,
        init: LinearInit,
    ) -> Self {
        let mut d = input as i64;
        let layers = widths
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let lin = linear(p / format!("fc{i}"), d, h as i64, init);
                d = h as i64;
                let bn =
                    (place != NormPlace::None).then(|| BatchNorm::new(&(p / format!("bn{i}")), h));
                (lin, bn)
            })
            .collect();
        Mlp { layers, place }
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        let mut h = x.shallow_clone();
        for (lin, bn) in &self.layers {
            let a = lin.forward(&h);
            h = match (bn, self.place) {
                (Some(bn), NormPlace::Before) => bn.forward(&a, mode).relu(),
                (Some(bn), _) => bn.forward(&a.relu(), mode),
                (None, _) => a.relu(),
            };
        }
        h
    }
}

/// An encoder's or decoder's body.
enum Body {
    Mlp(Mlp),
    Seq(nn::Sequential),
}

impl Body {
    fn forward(&self, x: &Tensor, mode: Mode) -> Tensor {
        match self {
            Body::Mlp(m) => m.forward(x, mode),
            Body::Seq(s) => s.forward(x),
        }
    }
}

/// A VAE whose variables live in a VarStore (names `enc.*`, `dec.*`).
pub struct Vae {
    spec: VaeSpec,
    enc: Body,
    enc_mu: nn::Linear,
    enc_logvar: nn::Linear,
    dec: Body,
    /// The decoder's last linear map (MLP; the conv decoder ends in its
    /// transposed convolution, inside `dec`).
    dec_out: Option<nn::Linear>,
}

/// The pieces of one forward pass.
pub struct Forward {
    /// Latent means μ (n × latent).
    pub mu: Tensor,
    /// Per-sample reconstruction loss (n).
    pub recon: Tensor,
    /// Per-sample KL(q(z|x) ‖ N(0, I)) (n).
    pub kl: Tensor,
}

impl VaeSpec {
    /// The VAE of the model config `m` on data of `input_dim` values.
    pub fn of(m: &tglml::config::ModelConfig, input_dim: usize) -> Self {
        VaeSpec {
            arch: match m.network {
                tglml::config::Network::Mlp => Arch::Mlp,
                tglml::config::Network::Conv => Arch::Conv,
            },
            input_dim,
            hidden: m.hidden.clone(),
            latent_dim: m.latent_dim,
            likelihood: m.vae.likelihood,
            batch_norm: m.vae.batch_norm,
            output: m.vae.output,
            init: m.vae.init,
        }
    }

    /// The estimated memory of training this network on batches of
    /// `batch` rows with values of `elem` bytes: parameters, gradients and
    /// Adam's two moments, the float64 all-reduce buffer, and activations
    /// (forward and backward) of every layer. `None` inside the size when
    /// the widths overflow; checked by [`tglml::guard::need`] before
    /// anything is built.
    pub fn memory(&self, batch: usize, elem: u64) -> (Option<u64>, tglml::guard::Size) {
        let l = self.latent_dim as u64;
        let widths: Vec<u64> = match self.arch {
            Arch::Mlp => std::iter::once(self.input_dim as u64)
                .chain(self.hidden.iter().map(|&h| h as u64))
                .collect(),
            Arch::Conv => vec![784, 32 * 14 * 14, 64 * 7 * 7],
        };
        // Weights of one direction: consecutive widths, then the last to
        // 2·latent (μ and log σ²); the decoder mirrors it.
        let mut params = Some(0u64);
        let mut add = |a: u64, b: u64| {
            params = params
                .zip(a.checked_add(1).and_then(|a1| a1.checked_mul(b)))
                .and_then(|(p, w)| p.checked_add(w));
        };
        for w in widths.windows(2) {
            add(w[0], w[1]);
            add(w[1], w[0]);
        }
        let last = *widths.last().unwrap_or(&1);
        add(last, l.saturating_mul(2));
        add(l, last);
        let acts = widths
            .iter()
            .try_fold(0u64, |a, &w| a.checked_add(w))
            .and_then(|s| s.checked_mul(2));
        (
            params,
            super::model::training_memory(params, acts, batch, elem),
        )
    }
}

impl Vae {
    /// Builds the model's variables under `root`.
    pub fn new(root: &nn::Path, spec: &VaeSpec) -> Result<Self> {
        if spec.latent_dim == 0 || spec.input_dim == 0 {
            return Err(Error::invalid(
                "model",
                "input and latent dimensions must be at least 1",
            ));
        }
        let enc_p = root / "enc";
        let dec_p = root / "dec";
        let (enc, feat) = match spec.arch {
            Arch::Mlp => (
                Body::Mlp(Mlp::new(
                    &enc_p,
                    spec.input_dim,
                    &spec.hidden,
                    spec.batch_norm,
                    spec.init,
                )),
                spec.hidden.last().map_or(spec.input_dim, |&h| h) as i64,
            ),
            Arch::Conv => {
                if spec.input_dim != 784 {
                    return Err(Error::invalid(
                        "model.network",
                        format!(
                            "\"conv\" takes 28 × 28 images (784 values), the data have {}",
                            spec.input_dim
                        ),
                    ));
                }
                let c = nn::ConvConfig {
                    stride: 2,
                    padding: 1,
                    ..Default::default()
                };
                let s = nn::seq()
                    .add_fn(|x| x.view([-1, 1, 28, 28]))
                    .add(nn::conv2d(&enc_p / "conv0", 1, 32, 4, c))
                    .add_fn(|x| x.relu())
                    .add(nn::conv2d(&enc_p / "conv1", 32, 64, 4, c))
                    .add_fn(|x| x.relu())
                    .add_fn(|x| x.flatten(1, -1));
                (Body::Seq(s), 64 * 7 * 7)
            }
        };
        let l = spec.latent_dim as i64;
        let enc_mu = linear(&enc_p / "mu", feat, l, spec.init);
        let enc_logvar = linear(&enc_p / "logvar", feat, l, spec.init);
        let hidden_rev: Vec<usize> = spec.hidden.iter().rev().copied().collect();
        let (dec, dec_out) = match spec.arch {
            Arch::Mlp => (
                Body::Mlp(Mlp::new(
                    &dec_p,
                    spec.latent_dim,
                    &hidden_rev,
                    spec.batch_norm,
                    spec.init,
                )),
                Some(linear(
                    &dec_p / "out",
                    hidden_rev.last().map_or(l as usize, |&h| h) as i64,
                    spec.input_dim as i64,
                    spec.init,
                )),
            ),
            Arch::Conv => {
                let c = nn::ConvTransposeConfig {
                    stride: 2,
                    padding: 1,
                    ..Default::default()
                };
                let s = nn::seq()
                    .add(linear(&dec_p / "fc", l, 64 * 7 * 7, spec.init))
                    .add_fn(|x| x.relu().view([-1, 64, 7, 7]))
                    .add(nn::conv_transpose2d(&dec_p / "deconv0", 64, 32, 4, c))
                    .add_fn(|x| x.relu())
                    .add(nn::conv_transpose2d(&dec_p / "deconv1", 32, 1, 4, c))
                    .add_fn(|x| x.flatten(1, -1));
                (Body::Seq(s), None)
            }
        };
        Ok(Vae {
            spec: spec.clone(),
            enc,
            enc_mu,
            enc_logvar,
            dec,
            dec_out,
        })
    }

    /// μ and log σ² of q(z|x) (batch norm: the running statistics).
    pub fn encode(&self, x: &Tensor) -> (Tensor, Tensor) {
        self.encode_with(x, Mode::Eval)
    }

    fn encode_with(&self, x: &Tensor, mode: Mode) -> (Tensor, Tensor) {
        let h = self.enc.forward(x, mode);
        (self.enc_mu.forward(&h), self.enc_logvar.forward(&h))
    }

    /// The decoder's output: the Gaussian mean after model.vae.output, or
    /// the Bernoulli logits.
    fn decode_with(&self, z: &Tensor, mode: Mode) -> Tensor {
        let h = self.dec.forward(z, mode);
        let o = match &self.dec_out {
            Some(lin) => lin.forward(&h),
            None => h,
        };
        match self.spec.output {
            OutputActivation::Linear => o,
            OutputActivation::Tanh => o.tanh(),
            OutputActivation::Sigmoid => o.sigmoid(),
        }
    }

    /// One pass with the reparameterisation z = μ + σ·ε (`eps`: n × latent
    /// standard normal draws from the caller, so that they do not depend
    /// on how the batch is split over ranks), normalising by `mode`.
    pub fn forward(&self, x: &Tensor, eps: &Tensor, mode: Mode) -> Forward {
        let (mu, logvar) = self.encode_with(x, mode);
        let z = &mu + (&logvar * 0.5).exp() * eps;
        let out = self.decode_with(&z, mode);
        let sum1 = |t: Tensor| t.sum_dim_intlist([1i64].as_slice(), false, x.kind());
        let recon = match self.spec.likelihood {
            Likelihood::Gaussian => sum1((out - x).square()) * 0.5,
            Likelihood::Bernoulli => sum1(out.binary_cross_entropy_with_logits::<Tensor>(
                x,
                None,
                None,
                tch::Reduction::None,
            )),
        };
        let kl = sum1(mu.square() + logvar.exp() - &logvar - 1.0) * 0.5;
        Forward { mu, recon, kl }
    }

    /// The decoder's mean of p(x|z) (Bernoulli: the probabilities).
    pub fn decode_mean(&self, z: &Tensor) -> Tensor {
        let o = self.decode_with(z, Mode::Eval);
        match self.spec.likelihood {
            Likelihood::Gaussian => o,
            Likelihood::Bernoulli => o.sigmoid(),
        }
    }

    /// The settings it was built with.
    pub fn spec(&self) -> &VaeSpec {
        &self.spec
    }
}

/// The VAE as the training loop trains it: one phase (its encoder and
/// decoder under one Adam), the terms reconstruction and KL (weighted by
/// β; an autoencoder, `variational = false`, decodes z = μ and has no KL
/// weight), the latent means μ compared with the data by the topological
/// loss.
pub struct VaeModel {
    vae: Vae,
    variational: bool,
    beta: f64,
    /// Points in run.h5's `/samples` (model.samples).
    samples: usize,
    seed: u64,
    kind: Kind,
}

impl VaeModel {
    /// Builds the network's variables under `root`.
    pub fn new(
        root: &nn::Path,
        spec: &VaeSpec,
        variational: bool,
        beta: f64,
        samples: usize,
        seed: u64,
        kind: Kind,
    ) -> Result<Self> {
        Ok(VaeModel {
            vae: Vae::new(root, spec)?,
            variational,
            beta,
            samples,
            seed,
            kind,
        })
    }

    /// The scatter of the test split's latent means.
    pub const PLOT: &'static str = "latent.png";
}

impl Model for VaeModel {
    fn phases(&self) -> Vec<Phase> {
        vec![Phase {
            name: "model",
            prefixes: vec!["enc.", "dec."],
            terms: vec!["reconstruction", "kl"],
            topological: true,
            beta1: 0.9,
        }]
    }

    fn loss(&self, _phase: usize, batch: &Batch) -> PhaseLoss {
        let latent = self.vae.spec.latent_dim;
        let eps = if self.variational {
            batch.normal(0, latent)
        } else {
            Tensor::zeros(
                [batch.rows.len() as i64, latent as i64],
                (batch.kind, batch.device),
            )
        };
        let beta = if self.variational { self.beta } else { 0.0 };
        let f = self.vae.forward(batch.x, &eps, Mode::Train(batch.norm));
        let recon_sum = f.recon.sum(batch.kind);
        let kl_sum = f.kl.sum(batch.kind);
        let terms = vec![recon_sum.double_value(&[]), kl_sum.double_value(&[])];
        PhaseLoss {
            sum: &recon_sum + &kl_sum * beta,
            terms,
            live: Some(f.mu),
        }
    }

    fn extra_files(&self, out: &Path) -> Vec<PathBuf> {
        vec![out.join(Self::PLOT), out.join(super::model::SAMPLES_PLOT)]
    }

    /// The mean reconstruction loss per row of `x` (z = μ, batch norm's
    /// running statistics) and the latent means, by blocks of rows.
    fn validate(&self, x: &Array2<f64>) -> Option<Result<(f64, Array2<f64>)>> {
        let (n, d) = x.dim();
        let latent = self.vae.spec.latent_dim;
        let dev = self.vae.enc_mu.ws.device();
        let mut codes = Vec::with_capacity(n * latent);
        let mut recon = 0.0;
        for start in (0..n).step_by(1024) {
            let rows = 1024.min(n - start);
            let block = x.slice(ndarray::s![start..start + rows, ..]);
            let block = block.as_standard_layout();
            let xt = Tensor::from_slice(block.as_slice().expect("standard layout"))
                .view([rows as i64, d as i64])
                .to_kind(self.kind)
                .to_device(dev);
            let eps = Tensor::zeros([rows as i64, latent as i64], (self.kind, dev));
            let f = tch::no_grad(|| self.vae.forward(&xt, &eps, Mode::Eval));
            recon += f.recon.sum(Kind::Double).double_value(&[]);
            codes.extend(crate::train::topo_loss::to_vec(&f.mu));
        }
        Some(
            Array2::from_shape_vec((n, latent), codes)
                .map(|z| (recon / n.max(1) as f64, z))
                .map_err(|e| Error::external("validation", e)),
        )
    }

    /// `/eval`: the test split's latent means, KL_σ at three σ and the H0
    /// Wasserstein scores (docs/hdf5.md), `/samples`, and the scatter of
    /// the latent means.
    fn report(&self, w: &H5Writer, out: &Path, split: &TestSplit) -> Result<String> {
        let n = split.x.nrows();
        let latent = self.vae.spec.latent_dim;
        let z = if n > 0 {
            let x = split.x.as_standard_layout();
            let x = Tensor::from_slice(x.as_slice().expect("standard layout"))
                .view([n as i64, split.x.ncols() as i64])
                .to_kind(self.kind)
                .to_device(self.vae.enc_mu.ws.device());
            let (mu, _) = tch::no_grad(|| self.vae.encode(&x));
            Array2::from_shape_vec((n, latent), crate::train::topo_loss::to_vec(&mu))
                .map_err(|e| Error::external("eval", e))?
        } else {
            Array2::zeros((0, latent))
        };
        w.dataset("/eval/z", &z)?;
        let mut summary = String::new();
        if n > 1 {
            let kl = kl_sigmas(&split.x, &z, &[0.01, 0.1, 1.0]);
            for (name, v) in ["kl_0.01", "kl_0.1", "kl_1"].iter().zip(&kl) {
                w.attr_f64("/eval", name, *v)?;
            }
            let kl_01 = kl[1];
            let wh = w_h0(&split.x, &z)?;
            w.attr_f64("/eval", "w_h0", wh.w)?;
            w.attr_f64("/eval", "w_h0_scale", wh.scale)?;
            w.attr_f64("/eval", "w_h0_max", wh.w_max)?;
            summary = format!(
                "; test set ({n} points): KL_0.1 {kl_01:.4}, W(H0) {:.4} (latent scale {:.4})",
                wh.w, wh.scale
            );
        }
        // Samples: the decoder's mean (Bernoulli: probabilities) at draws
        // of N(0, I), stream 1 of the seed, after the last step.
        let k = self.samples;
        let draws = super::model::normal_rows(self.seed, u64::MAX, 1, 0..k, latent);
        let dev = self.vae.enc_mu.ws.device();
        let z0 = Tensor::from_slice(&draws)
            .view([k as i64, latent as i64])
            .to_kind(self.kind)
            .to_device(dev);
        let out_x = tch::no_grad(|| self.vae.decode_mean(&z0));
        let samples = Array2::from_shape_vec(
            (k, self.vae.spec.input_dim),
            crate::train::topo_loss::to_vec(&out_x),
        )
        .map_err(|e| Error::external("samples", e))?;
        super::model::write_samples(w, out, split, &samples)?;
        tglml::io::plot::scatter_png(
            &z,
            split.labels.as_deref(),
            &format!("latent codes of {} test rows", z.nrows()),
            &out.join(Self::PLOT),
        )?;
        Ok(format!("{summary}; {k} samples in /samples"))
    }

    fn generative(&self) -> &dyn Generative {
        self
    }
}

impl Generative for VaeModel {
    fn latent_dim(&self) -> Option<usize> {
        Some(self.vae.spec.latent_dim)
    }

    fn has_encoder(&self) -> bool {
        true
    }

    fn has_decoder(&self) -> bool {
        true
    }

    fn encode(&self, x: &Tensor) -> Option<Tensor> {
        Some(self.vae.encode(x).0)
    }

    fn decode(&self, z: &Tensor) -> Option<Tensor> {
        Some(self.vae.decode_mean(z))
    }
}

/// The float kind of a dtype name ("float32", "float64").
pub fn kind_of(name: &str) -> Result<Kind> {
    match name {
        "float32" => Ok(Kind::Float),
        "float64" => Ok(Kind::Double),
        other => Err(Error::invalid(
            "train.dtype",
            format!("expected \"float32\" or \"float64\", got {other:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The KL term equals the closed form for a Gaussian against N(0, I),
    /// and the Gaussian reconstruction term is ½‖x − x̂‖².
    #[test]
    fn losses_have_their_closed_forms() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = VaeSpec {
            arch: Arch::Mlp,
            input_dim: 5,
            hidden: vec![8],
            latent_dim: 2,
            likelihood: Likelihood::Gaussian,
            batch_norm: NormPlace::None,
            output: OutputActivation::Linear,
            init: LinearInit::Kaiming,
        };
        let m = Vae::new(&vs.root(), &spec).unwrap();
        let x = Tensor::randn([3, 5], (Kind::Float, tch::Device::Cpu));
        let eps = Tensor::zeros([3, 2], (Kind::Float, tch::Device::Cpu));
        let f = m.forward(&x, &eps, Mode::Eval);
        let (mu, logvar) = m.encode(&x);
        let mu = Vec::<f32>::try_from(mu.view([-1])).unwrap();
        let lv = Vec::<f32>::try_from(logvar.view([-1])).unwrap();
        let kl = Vec::<f32>::try_from(f.kl).unwrap();
        for r in 0..3 {
            let want: f32 = (0..2)
                .map(|j| {
                    let (m, l) = (mu[r * 2 + j], lv[r * 2 + j]);
                    0.5 * (m * m + l.exp() - l - 1.0)
                })
                .sum();
            assert!((kl[r] - want).abs() <= 1e-5 * want.abs().max(1.0));
        }
        // With ε = 0, z = μ: the reconstruction is ½‖x − dec(μ)‖².
        let (mu_t, _) = m.encode(&x);
        let xr = m.decode_with(&mu_t, Mode::Eval);
        let want = Vec::<f32>::try_from(
            (xr - &x)
                .square()
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
                * 0.5,
        )
        .unwrap();
        let got = Vec::<f32>::try_from(f.recon).unwrap();
        assert_eq!(got, want);
        let names: Vec<String> = vs.variables().keys().cloned().collect();
        assert!(names.iter().any(|n| n == "enc.fc0.weight"), "{names:?}");
    }

    /// With batch norm (before or after the ReLU) the gradients of every
    /// variable and the running statistics equal those of torch's own
    /// batch_norm in one autograd graph, though the layers cut the graph
    /// and the latent means feed the loss twice (the decoder and a direct
    /// term, as the topological loss uses them).
    #[test]
    fn batch_norm_gradients_equal_torch_autograd() {
        use crate::train::norm::{backward_kept, Tape};
        for place in [NormPlace::After, NormPlace::Before] {
            tch::manual_seed(5);
            let mut vs = nn::VarStore::new(tch::Device::Cpu);
            let spec = mlp_spec(4, vec![6, 5], place, LinearInit::Kaiming);
            let m = Vae::new(&vs.root(), &spec).unwrap();
            vs.set_kind(Kind::Double);
            let opts = (Kind::Double, tch::Device::Cpu);
            let x = Tensor::randn([9, 4], opts);
            let w = Tensor::randn([9, 2], opts);
            let eps = Tensor::zeros([9, 2], opts);
            let vars = vs.variables();
            // A copy of every variable, as fresh leaves, before training
            // mode moves the running statistics.
            let copy: std::collections::HashMap<String, Tensor> = vars
                .iter()
                .map(|(k, v)| {
                    let c = v.detach().copy();
                    let c = if v.requires_grad() {
                        c.set_requires_grad(true)
                    } else {
                        c
                    };
                    (k.clone(), c)
                })
                .collect();
            let comm = tglml::dist::Comm::solo();
            let tape = Tape::cut(&comm, 9);
            let f = m.forward(&x, &eps, Mode::Train(&tape));
            let loss = f.recon.sum(Kind::Double) + (f.mu.square() * &w).sum(Kind::Double);
            backward_kept(&loss, "test").unwrap();
            tape.backward(false).unwrap();

            // Torch's batch norm through the copies.
            let layer = |h: &Tensor, side: &str, i: usize| {
                let v = |n: &str| &copy[&format!("{side}.{n}")];
                let a = h.linear(v(&format!("fc{i}.weight")), Some(v(&format!("fc{i}.bias"))));
                let bn = |t: &Tensor| {
                    t.batch_norm(
                        Some(v(&format!("bn{i}.weight"))),
                        Some(v(&format!("bn{i}.bias"))),
                        Some(v(&format!("bn{i}.running_mean"))),
                        Some(v(&format!("bn{i}.running_var"))),
                        true,
                        0.1,
                        1e-5,
                        false,
                    )
                };
                match place {
                    NormPlace::Before => bn(&a).relu(),
                    _ => bn(&a.relu()),
                }
            };
            let mut h = x.shallow_clone();
            for i in 0..2 {
                h = layer(&h, "enc", i);
            }
            let mu = h.linear(&copy["enc.mu.weight"], Some(&copy["enc.mu.bias"]));
            let lv = h.linear(&copy["enc.logvar.weight"], Some(&copy["enc.logvar.bias"]));
            let mut h = &mu + (&lv * 0.5).exp() * &eps;
            for i in 0..2 {
                h = layer(&h, "dec", i);
            }
            let out = h
                .linear(&copy["dec.out.weight"], Some(&copy["dec.out.bias"]))
                .tanh();
            let loss2 =
                (out - &x).square().sum(Kind::Double) * 0.5 + (mu.square() * &w).sum(Kind::Double);
            loss2.backward();
            let mut checked = 0;
            for (name, v) in &vars {
                let (got, want) = if v.requires_grad() {
                    (v.grad(), copy[name].grad())
                } else {
                    (v.shallow_clone(), copy[name].shallow_clone())
                };
                let d = (&got - &want).abs().max().double_value(&[]);
                let scale = want.abs().max().double_value(&[]).max(1e-300);
                assert!(
                    d <= 1e-10 * scale.max(1.0),
                    "{place:?} {name}: differs by {d}"
                );
                checked += 1;
            }
            assert_eq!(checked, 30, "{:?}", vars.keys().collect::<Vec<_>>());
        }
    }

    #[test]
    fn conv_model_maps_images_to_images() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = VaeSpec {
            arch: Arch::Conv,
            input_dim: 784,
            hidden: vec![],
            latent_dim: 4,
            likelihood: Likelihood::Bernoulli,
            batch_norm: NormPlace::None,
            output: OutputActivation::Linear,
            init: LinearInit::Kaiming,
        };
        let m = Vae::new(&vs.root(), &spec).unwrap();
        let x = Tensor::rand([2, 784], (Kind::Float, tch::Device::Cpu));
        let f = m.forward(
            &x,
            &Tensor::zeros([2, 4], (Kind::Float, tch::Device::Cpu)),
            Mode::Eval,
        );
        assert_eq!(f.mu.size(), vec![2, 4]);
        assert_eq!(f.recon.size(), vec![2]);
        let bad = VaeSpec {
            input_dim: 100,
            ..spec
        };
        assert!(Vae::new(&vs.root(), &bad).is_err());
    }

    /// A Gaussian MLP autoencoder with a 2-D latent space and a tanh output.
    fn mlp_spec(
        input_dim: usize,
        hidden: Vec<usize>,
        batch_norm: NormPlace,
        init: LinearInit,
    ) -> VaeSpec {
        VaeSpec {
            arch: Arch::Mlp,
            input_dim,
            hidden,
            latent_dim: 2,
            likelihood: Likelihood::Gaussian,
            batch_norm,
            output: OutputActivation::Tanh,
            init,
        }
    }

    /// "pytorch" starts every linear layer as torch.nn.Linear does (weights
    /// and biases uniform in ±1/√fan_in: the bound reached, the standard
    /// deviation 1/√(3·fan_in)); "kaiming" keeps tch's ±√(6/fan_in) weights.
    #[test]
    fn linear_init_follows_the_setting() {
        let weight_bound = |init, fan_in: f64| match init {
            LinearInit::Pytorch => 1.0 / fan_in.sqrt(),
            LinearInit::Kaiming => (6.0 / fan_in).sqrt(),
        };
        for init in [LinearInit::Pytorch, LinearInit::Kaiming] {
            tch::manual_seed(3);
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let spec = mlp_spec(784, vec![400, 100], NormPlace::After, init);
            Vae::new(&vs.root(), &spec).unwrap();
            let vars = vs.variables();
            let mut linears = 0;
            for (name, t) in &vars {
                let Some(layer) = name.strip_suffix(".weight") else {
                    continue;
                };
                if name.contains(".bn") {
                    continue;
                }
                linears += 1;
                let fan_in = t.size()[1] as f64;
                let bias = &vars[&format!("{layer}.bias")];
                for (what, v, bound) in [
                    ("weight", t, weight_bound(init, fan_in)),
                    ("bias", bias, 1.0 / fan_in.sqrt()),
                ] {
                    let v = super::super::topo_loss::to_vec(v);
                    let n = v.len() as f64;
                    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                    let sd = (v.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
                    let want = bound / 3f64.sqrt();
                    assert!(max <= bound, "{init:?} {name} {what}: max {max} > {bound}");
                    // The standard deviation of U(−b, b), within 5 standard
                    // errors (sd's relative error ≈ 0.45/√n for a uniform),
                    // where there are enough values to tell.
                    let tol = 5.0 * 0.45 / n.sqrt();
                    if n > 1000.0 {
                        assert!(
                            (sd / want - 1.0).abs() < tol,
                            "{init:?} {name} {what}: sd {sd}, want {want} (tolerance {tol})"
                        );
                    }
                }
            }
            // fc0, fc1, mu, logvar of the encoder; fc0, fc1, out of the decoder.
            assert_eq!(linears, 7, "{init:?}");
        }
    }
}
