//! Denoising diffusion (DDPM with ε-prediction, Ho et al. 2020), on the
//! data or in the latent space of a trained, frozen VAE (latent
//! diffusion).
//!
//! Noise levels are indexed i = 0..T (the papers' t = i + 1): ᾱ_i =
//! Π_{j ≤ i} (1 − β_j), and x_i = √ᾱ_i·x₀ + √(1 − ᾱ_i)·ε. A step trains one
//! phase ("model", the denoiser ε_θ) on the loss ‖ε − ε_θ(x_i, i)‖² (mean
//! over coordinates, summed over rows), each row with its own i and ε drawn
//! from (seed, step, position). The denoiser is an MLP whose every layer
//! also takes the sinusoidal embedding of i.
//!
//! The topological loss compares the data batch with the model's prediction
//! of it, x̂₀ = (x_i − √(1 − ᾱ_i)·ε_θ(x_i, i)) / √ᾱ_i, at small noise levels
//! (i < topo_t_max, as TopoDiffusionNet applies its loss to x̂₀ of lightly
//! noised images). A diagram is a property of a set, so every row of the
//! batch needs a prediction: on steps with the loss the batch is noised a
//! second time, every row at its own level below the bound, and x̂₀ of that
//! is the live set. (Restricting the loss to the rows whose training level
//! happens to be below the bound would compare the data batch with a
//! random tenth of its predictions.) Latent diffusion compares the data
//! batch with x̂₀ in the latent space, as the VAE's own loss compares the
//! data with its latent codes.
//!
//! The weights' exponential moving average (EMA) is a second, untrained
//! copy of the denoiser (`ema.*`, in the checkpoint); samples use it, by
//! ancestral DDPM sampling through all T levels or by deterministic DDIM
//! (η = 0, Song et al. 2021) through fewer.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use super::checkpoint;
use super::data::TestSplit;
use super::model::{normal_tensor, Batch, Generative, Model, Phase, PhaseLoss};
use super::topo_loss::to_vec;
use super::vae::{Arch, Vae, VaeSpec};
use tglml::config::{DiffusionConfig, ModelKind, Network, Sampler, Schedule};
use tglml::error::{Error, Result};
use tglml::io::H5Writer;

/// β_i and ᾱ_i of the T noise levels.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    pub beta: Vec<f64>,
    pub alpha_bar: Vec<f64>,
}

impl NoiseSchedule {
    /// The schedule of `c` (its kind, T, and the linear one's end points).
    pub fn new(c: &DiffusionConfig) -> Self {
        let t = c.timesteps;
        let beta: Vec<f64> = match c.schedule {
            Schedule::Linear => (0..t)
                .map(|i| {
                    let f = if t > 1 {
                        i as f64 / (t - 1) as f64
                    } else {
                        0.0
                    };
                    c.beta_start + (c.beta_end - c.beta_start) * f
                })
                .collect(),
            Schedule::Cosine => {
                let s = 0.008;
                let f = |i: usize| {
                    ((i as f64 / t as f64 + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (0..t).map(|i| (1.0 - f(i + 1) / f(i)).min(0.999)).collect()
            }
        };
        let mut alpha_bar = Vec::with_capacity(t);
        let mut acc = 1.0;
        for b in &beta {
            acc *= 1.0 - b;
            alpha_bar.push(acc);
        }
        NoiseSchedule { beta, alpha_bar }
    }

    /// The levels DDIM visits with `steps` steps, increasing: evenly
    /// spaced from 0 to T − 1 (rounded), without repeats.
    pub fn ddim_levels(&self, steps: usize) -> Vec<usize> {
        let t = self.beta.len();
        let mut v: Vec<usize> = if steps <= 1 {
            vec![t - 1]
        } else {
            (0..steps)
                .map(|k| ((k as f64) * (t - 1) as f64 / (steps - 1) as f64).round() as usize)
                .collect()
        };
        v.dedup();
        v
    }
}

/// A column (n × 1) of `f(level)` per row.
fn per_row(levels: &[usize], f: impl Fn(usize) -> f64, kind: Kind, dev: Device) -> Tensor {
    let v: Vec<f64> = levels.iter().map(|&i| f(i)).collect();
    Tensor::from_slice(&v)
        .view([levels.len() as i64, 1])
        .to_kind(kind)
        .to_device(dev)
}

/// The sinusoidal embedding of the levels (n × dim): sin(i·ω_k) then
/// cos(i·ω_k), ω_k = 10000^(−k/(dim/2)).
pub fn embed(levels: &[usize], dim: usize, kind: Kind, dev: Device) -> Tensor {
    let half = dim / 2;
    let mut v = Vec::with_capacity(levels.len() * dim);
    for &i in levels {
        let freqs = (0..half).map(|k| (-(10000f64.ln()) * k as f64 / half as f64).exp());
        let angles: Vec<f64> = freqs.map(|w| i as f64 * w).collect();
        v.extend(angles.iter().map(|a| a.sin()));
        v.extend(angles.iter().map(|a| a.cos()));
    }
    Tensor::from_slice(&v)
        .view([levels.len() as i64, dim as i64])
        .to_kind(kind)
        .to_device(dev)
}

/// The denoiser ε_θ(x, i): fully connected layers (SiLU between them),
/// each taking the previous layer's output joined with the embedding of i.
struct Denoiser {
    /// (weight, bias) per layer.
    layers: Vec<(Tensor, Tensor)>,
}

/// The (inputs, outputs) of the denoiser's layers for data of `dim`
/// values: widths `hidden`, the embedding's `time_dim` joined to each
/// layer's input.
fn layer_shapes(dim: usize, hidden: &[usize], time_dim: usize) -> Vec<(usize, usize)> {
    let widths: Vec<usize> = std::iter::once(dim)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(dim))
        .collect();
    widths.windows(2).map(|w| (w[0] + time_dim, w[1])).collect()
}

impl Denoiser {
    /// Under `path`, initialised as PyTorch's linear layers (uniform in
    /// ±1/√fan_in).
    fn new(path: nn::Path, shapes: &[(usize, usize)]) -> Self {
        let layers = shapes
            .iter()
            .enumerate()
            .map(|(k, &(fan_in, fan_out))| {
                let p = &path / format!("fc{k}");
                let (o, i) = (fan_out as i64, fan_in as i64);
                let r = 1.0 / (fan_in as f64).sqrt();
                let u = Init::Uniform { lo: -r, up: r };
                (p.var("weight", &[o, i], u), p.var("bias", &[o], u))
            })
            .collect();
        Denoiser { layers }
    }

    fn forward(&self, x: &Tensor, temb: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        let last = self.layers.len() - 1;
        for (k, (w, b)) in self.layers.iter().enumerate() {
            h = Tensor::cat(&[&h, temb], 1).linear(w, Some(b));
            if k < last {
                h = h.silu();
            }
        }
        h
    }
}

/// A small U-Net for 28 × 28 images (one channel): channels c₀ at 28 × 28
/// and c₁ at 14 × 14 and 7 × 7 (`model.hidden = [c₀, c₁]`), one residual
/// block per level on the way down, in the middle and on the way up (with
/// the skip connections joined), group normalisation (8 groups of at least
/// two channels, per image: independent of how a batch is split over
/// ranks) and SiLU; the time
/// embedding goes through a two-layer MLP into every block.
struct UNet {
    time: nn::Sequential,
    input: nn::Conv2D,
    down0: ResBlock,
    pool0: nn::Conv2D,
    down1: ResBlock,
    pool1: nn::Conv2D,
    mid: ResBlock,
    up1: nn::Conv2D,
    dec1: ResBlock,
    up0: nn::Conv2D,
    dec0: ResBlock,
    out_norm: nn::GroupNorm,
    output: nn::Conv2D,
}

/// GroupNorm → SiLU → conv 3 × 3, plus the time embedding's projection,
/// twice; the input added back (through a 1 × 1 conv when the channels
/// change).
struct ResBlock {
    norm0: nn::GroupNorm,
    conv0: nn::Conv2D,
    time: nn::Linear,
    norm1: nn::GroupNorm,
    conv1: nn::Conv2D,
    skip: Option<nn::Conv2D>,
}

const GROUPS: i64 = 8;

fn conv3(p: nn::Path, cin: i64, cout: i64, stride: i64) -> nn::Conv2D {
    let c = nn::ConvConfig {
        stride,
        padding: 1,
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, 3, c)
}

impl ResBlock {
    fn new(p: nn::Path, cin: i64, cout: i64, temb: i64) -> Self {
        ResBlock {
            norm0: nn::group_norm(&p / "norm0", GROUPS, cin, Default::default()),
            conv0: conv3(&p / "conv0", cin, cout, 1),
            time: nn::linear(&p / "time", temb, cout, Default::default()),
            norm1: nn::group_norm(&p / "norm1", GROUPS, cout, Default::default()),
            conv1: conv3(&p / "conv1", cout, cout, 1),
            skip: (cin != cout).then(|| nn::conv2d(&p / "skip", cin, cout, 1, Default::default())),
        }
    }

    fn forward(&self, x: &Tensor, temb: &Tensor) -> Tensor {
        let h = x.apply(&self.norm0).silu().apply(&self.conv0);
        let h = h + temb.apply(&self.time).unsqueeze(-1).unsqueeze(-1);
        let h = h.apply(&self.norm1).silu().apply(&self.conv1);
        match &self.skip {
            Some(s) => h + x.apply(s),
            None => h + x,
        }
    }
}

impl UNet {
    fn new(p: nn::Path, c0: i64, c1: i64, time_dim: i64) -> Self {
        let e = 4 * c0;
        UNet {
            time: nn::seq()
                .add(nn::linear(&p / "time0", time_dim, e, Default::default()))
                .add_fn(|x| x.silu())
                .add(nn::linear(&p / "time1", e, e, Default::default())),
            input: conv3(&p / "input", 1, c0, 1),
            down0: ResBlock::new(&p / "down0", c0, c0, e),
            pool0: conv3(&p / "pool0", c0, c0, 2),
            down1: ResBlock::new(&p / "down1", c0, c1, e),
            pool1: conv3(&p / "pool1", c1, c1, 2),
            mid: ResBlock::new(&p / "mid", c1, c1, e),
            up1: conv3(&p / "up1", c1, c1, 1),
            dec1: ResBlock::new(&p / "dec1", 2 * c1, c1, e),
            up0: conv3(&p / "up0", c1, c1, 1),
            dec0: ResBlock::new(&p / "dec0", c1 + c0, c0, e),
            out_norm: nn::group_norm(&p / "out_norm", GROUPS, c0, Default::default()),
            output: conv3(&p / "output", c0, 1, 1),
        }
    }

    /// ε̂ of x (n × 784) at the embedded levels `temb` (n × time_dim).
    fn forward(&self, x: &Tensor, temb: &Tensor) -> Tensor {
        let t = temb.apply(&self.time);
        let t = t.silu();
        let x = x.view([-1, 1, 28, 28]).apply(&self.input);
        let s0 = self.down0.forward(&x, &t); // c0 × 28 × 28
        let s1 = self.down1.forward(&s0.apply(&self.pool0), &t); // c1 × 14 × 14
        let m = self.mid.forward(&s1.apply(&self.pool1), &t); // c1 × 7 × 7
        let up = |h: &Tensor, conv: &nn::Conv2D| {
            h.upsample_nearest2d([h.size()[2] * 2, h.size()[3] * 2], None, None)
                .apply(conv)
        };
        let h = self
            .dec1
            .forward(&Tensor::cat(&[up(&m, &self.up1), s1], 1), &t);
        let h = self
            .dec0
            .forward(&Tensor::cat(&[up(&h, &self.up0), s0], 1), &t);
        h.apply(&self.out_norm)
            .silu()
            .apply(&self.output)
            .flatten(1, -1)
    }
}

/// The denoiser ε_θ(x, i) of a model.network.
enum Net {
    Mlp(Denoiser),
    Unet(Box<UNet>),
}

impl Net {
    fn new(
        path: nn::Path,
        network: Network,
        dim: usize,
        hidden: &[usize],
        time_dim: usize,
    ) -> Result<Net> {
        match network {
            Network::Mlp => Ok(Net::Mlp(Denoiser::new(
                path,
                &layer_shapes(dim, hidden, time_dim),
            ))),
            Network::Conv => {
                unet_channels(dim, hidden)?;
                Ok(Net::Unet(Box::new(UNet::new(
                    path,
                    hidden[0] as i64,
                    hidden[1] as i64,
                    time_dim as i64,
                ))))
            }
        }
    }

    fn forward(&self, x: &Tensor, temb: &Tensor) -> Tensor {
        match self {
            Net::Mlp(n) => n.forward(x, temb),
            Net::Unet(n) => n.forward(x, temb),
        }
    }
}

/// Checks a U-Net's settings: 28 × 28 images, two channel counts that
/// group normalisation (8 groups) can divide.
fn unet_channels(dim: usize, hidden: &[usize]) -> Result<()> {
    if dim != 784 {
        return Err(Error::invalid(
            "model.network",
            format!("\"conv\" (a U-Net) takes 28 × 28 images (784 values), the data have {dim}"),
        ));
    }
    // At least two channels per group: with one, a group's normalisation
    // removes every per-channel constant, so the biases before it have a
    // gradient that is zero but for rounding, which Adam's normalised step
    // turns into moves that depend on the rounding (and so on the number
    // of ranks).
    let unit = 2 * GROUPS as usize;
    if hidden.len() != 2 || hidden.iter().any(|&c| c == 0 || c % unit != 0) {
        return Err(Error::invalid(
            "model.hidden",
            format!("a diffusion U-Net (model.network = \"conv\") takes two channel counts, at 28 × 28 and at 14 × 14 and 7 × 7, each a multiple of {unit} (group normalisation in {GROUPS} groups of at least 2 channels); got {hidden:?}"),
        ));
    }
    Ok(())
}

/// Samples n points of `dim` values with the noise prediction `eps(x, i)`
/// (every row at level i) by `sampler`: ancestral DDPM through all levels
/// (variance β̃_i = β_i(1 − ᾱ_{i−1})/(1 − ᾱ_i)), or DDIM with η = 0 through
/// `steps` levels. `noise(k)` is the k-th n × dim standard normal draw
/// (k = 0: x_{T−1}; DDPM's step from level i draws noise(i)).
///
/// Each step goes through the prediction x̂₀ = (x_i − √(1 − ᾱ_i)·ε̂)/√ᾱ_i:
/// DDPM's mean is the posterior mean of q(x_{i−1} | x_i, x̂₀), DDIM's next
/// point √ᾱ'·x̂₀ + √(1 − ᾱ')·ε̂. With `clip = Some((lo, hi))`, x̂₀ is
/// clipped to [lo, hi] first and ε̂ taken back from the clipped x̂₀ (as
/// improved-diffusion's clip_denoised); without it, both forms are the
/// ε-form of Ho et al. up to rounding.
pub fn sample(
    sched: &NoiseSchedule,
    sampler: Sampler,
    steps: usize,
    clip: Option<(f64, f64)>,
    eps: &dyn Fn(&Tensor, usize) -> Tensor,
    noise: &dyn Fn(usize) -> Tensor,
) -> Tensor {
    // (x̂₀, ε̂) at level i.
    let predict = |x: &Tensor, i: usize| {
        let ab = sched.alpha_bar[i];
        let e = eps(x, i);
        let x0 = (x - &e * (1.0 - ab).sqrt()) / ab.sqrt();
        match clip {
            Some((lo, hi)) => {
                let x0 = x0.clamp(lo, hi);
                let e = (x - &x0 * ab.sqrt()) / (1.0 - ab).sqrt();
                (x0, e)
            }
            None => (x0, e),
        }
    };
    tch::no_grad(|| {
        let t = sched.beta.len();
        let mut x = noise(0);
        match sampler {
            Sampler::Ddpm => {
                for i in (0..t).rev() {
                    let (b, ab) = (sched.beta[i], sched.alpha_bar[i]);
                    let (x0, _) = predict(&x, i);
                    // At level 0 the posterior mean is x̂₀ itself
                    // (ᾱ_{−1} = 1).
                    if i == 0 {
                        x = x0;
                        break;
                    }
                    let prev = sched.alpha_bar[i - 1];
                    // μ̃ = √ᾱ_{i−1}·β_i/(1 − ᾱ_i)·x̂₀ + √α_i·(1 − ᾱ_{i−1})/(1 − ᾱ_i)·x_i.
                    let mean = x0 * (prev.sqrt() * b / (1.0 - ab))
                        + &x * ((1.0 - b).sqrt() * (1.0 - prev) / (1.0 - ab));
                    let var = b * (1.0 - prev) / (1.0 - ab);
                    x = mean + noise(i) * var.sqrt();
                }
            }
            Sampler::Ddim => {
                let levels = sched.ddim_levels(steps);
                for k in (0..levels.len()).rev() {
                    let (x0, e) = predict(&x, levels[k]);
                    let prev = if k > 0 {
                        sched.alpha_bar[levels[k - 1]]
                    } else {
                        1.0
                    };
                    x = x0 * prev.sqrt() + e * (1.0 - prev).sqrt();
                }
            }
        }
        x
    })
}

/// The frozen VAE of latent diffusion.
struct Frozen {
    vae: Vae,
}

/// A diffusion model as the training loop trains it.
pub struct DiffusionModel {
    cfg: DiffusionConfig,
    sched: NoiseSchedule,
    /// Dimension of the space it generates in (the data's, or the VAE's
    /// latent dimension).
    dim: usize,
    net: Net,
    /// The EMA copy (`None` with model.diffusion.ema = 0): the same
    /// network under `ema.*`, frozen, and its variables paired with the
    /// trained ones.
    ema: Option<(Net, Vec<(Tensor, Tensor)>)>,
    frozen: Option<Frozen>,
    device: Device,
    samples: usize,
    seed: u64,
    kind: Kind,
}

/// The settings a diffusion model is built from.
pub struct DiffusionSpec<'a> {
    pub cfg: &'a DiffusionConfig,
    /// The data's dimension.
    pub input_dim: usize,
    /// The denoiser's network: an MLP, or a U-Net for 28 × 28 images.
    pub network: Network,
    /// The MLP's hidden widths, or the U-Net's two channel counts.
    pub hidden: &'a [usize],
    /// Latent diffusion: the VAE checkpoint (model.vae_checkpoint).
    pub vae_checkpoint: Option<&'a Path>,
}

/// The VAE of the checkpoint at `path` (its architecture from its stored
/// configuration, on data of `input_dim` values).
fn vae_spec_of(path: &Path, input_dim: usize) -> Result<(VaeSpec, checkpoint::Checkpoint)> {
    let what = |m: String| Error::invalid(format!("model.vae_checkpoint {}", path.display()), m);
    let ck = checkpoint::load(path).map_err(|e| {
        e.context(format!(
            "model.vae_checkpoint = {:?}",
            path.display().to_string()
        ))
    })?;
    let stored = tglml::config::load_text(
        Some((
            &ck.config_toml,
            &format!("{} (its stored configuration)", path.display()),
        )),
        &[],
    )
    .map_err(|e| e.context("model.vae_checkpoint"))?;
    let m = &stored.model;
    if m.kind != ModelKind::Vae {
        return Err(what(format!(
            "is the checkpoint of a model.kind = \"{}\" run; latent diffusion needs a VAE's (model.kind = \"vae\")",
            m.kind.name()
        )));
    }
    let spec = VaeSpec::of(m, input_dim);
    Ok((spec, ck))
}

/// Builds the VAE of `path` under `root` (`vae.*`), its variables set to
/// the checkpoint's (as `kind`) and frozen.
fn frozen_vae(vs: &nn::VarStore, path: &Path, input_dim: usize, kind: Kind) -> Result<Frozen> {
    let (spec, ck) = vae_spec_of(path, input_dim)?;
    let vae = Vae::new(&(vs.root() / "vae"), &spec)?;
    let what = |m: String| {
        Error::invalid(
            format!("model.vae_checkpoint {}", path.display()),
            format!("is of another architecture than a VAE of its own configuration on this data ({input_dim} values per row): {m}"),
        )
    };
    let stored: std::collections::BTreeMap<&str, &Tensor> = ck
        .tensors
        .iter()
        .map(|(n, t)| (n.as_str(), t))
        .filter(|(n, _)| *n != "topo_log_scale" && !n.starts_with(super::average::PREFIX))
        .collect();
    // A VAE trained with train.ema is used with its averaged weights.
    let averaged: std::collections::BTreeMap<&str, &Tensor> = ck
        .tensors
        .iter()
        .filter_map(|(n, t)| n.strip_prefix(super::average::PREFIX).map(|own| (own, t)))
        .collect();
    // The data dimension it was trained on: its decoder's output.
    let trained_on = match spec.arch {
        Arch::Mlp => stored.get("dec.out.bias").map(|b| b.size()[0]),
        Arch::Conv => Some(784),
    };
    if let Some(k) = trained_on.filter(|&k| k != input_dim as i64) {
        return Err(Error::invalid(
            format!("model.vae_checkpoint {}", path.display()),
            format!(
                "is a VAE of data with {k} values per row, but this run's data have {input_dim}: train.data (or [synth]) must be the data the VAE was trained on"
            ),
        ));
    }
    let mut used = 0;
    for (name, mut var) in checkpoint::variables(vs) {
        let Some(own) = name.strip_prefix("vae.") else {
            continue;
        };
        let Some(t) = averaged.get(own).or(stored.get(own)) else {
            return Err(what(format!("it has no variable {own}")));
        };
        if t.size() != var.size() {
            return Err(what(format!(
                "its variable {own} is {:?}, this VAE's is {:?}",
                t.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.set_data(&t.to_kind(kind).to_device(var.device())));
        let _ = var.set_requires_grad(false);
        used += 1;
    }
    if used != stored.len() {
        let extra: Vec<&str> = stored
            .keys()
            .filter(|n| !vs.variables().contains_key(&format!("vae.{n}")))
            .copied()
            .collect();
        return Err(what(format!("it has variables this VAE lacks: {extra:?}")));
    }
    Ok(Frozen { vae })
}

impl DiffusionModel {
    /// Builds the denoiser (and its EMA copy) under `vs`'s root; latent
    /// diffusion also loads its frozen VAE.
    pub fn new(
        vs: &nn::VarStore,
        spec: &DiffusionSpec,
        samples: usize,
        seed: u64,
        kind: Kind,
    ) -> Result<Self> {
        let frozen = match spec.vae_checkpoint {
            Some(p) => Some(frozen_vae(vs, p, spec.input_dim, kind)?),
            None => None,
        };
        let dim = frozen
            .as_ref()
            .map_or(spec.input_dim, |f| f.vae.spec().latent_dim);
        let build = |name: &str| {
            Net::new(
                vs.root() / name,
                spec.network,
                dim,
                spec.hidden,
                spec.cfg.time_dim,
            )
        };
        let net = build("eps")?;
        let ema = if spec.cfg.ema > 0.0 {
            let copy = build("ema")?;
            let vars = vs.variables();
            let mut pairs = Vec::new();
            for (name, e) in checkpoint::variables(vs) {
                if let Some(rest) = name.strip_prefix("ema.") {
                    let live = vars[&format!("eps.{rest}")].shallow_clone();
                    let e = e.set_requires_grad(false);
                    tch::no_grad(|| e.shallow_clone().copy_(&live));
                    pairs.push((e, live));
                }
            }
            Some((copy, pairs))
        } else {
            None
        };
        Ok(DiffusionModel {
            cfg: spec.cfg.clone(),
            sched: NoiseSchedule::new(spec.cfg),
            dim,
            net,
            ema,
            frozen,
            device: vs.device(),
            samples,
            seed,
            kind,
        })
    }

    /// The parameter count and estimated training memory of the denoiser
    /// on data of `input_dim` values (latent diffusion: `dim` is the
    /// latent dimension; the frozen VAE adds its parameters once).
    pub fn memory(
        dim: usize,
        network: Network,
        hidden: &[usize],
        cfg: &DiffusionConfig,
        batch: usize,
        elem: u64,
    ) -> (Option<u64>, tglml::guard::Size) {
        let (params, acts) = match network {
            Network::Mlp => {
                let shapes = layer_shapes(dim, hidden, cfg.time_dim);
                let params = shapes.iter().try_fold(0u64, |acc, &(i, o)| {
                    (i as u64)
                        .checked_add(1)
                        .and_then(|a| a.checked_mul(o as u64))
                        .and_then(|p| acc.checked_add(p))
                });
                let acts = std::iter::once(dim)
                    .chain(hidden.iter().copied())
                    .try_fold(0u64, |a, w| a.checked_add((w + cfg.time_dim) as u64));
                (params, acts)
            }
            Network::Conv => {
                // Convolutions 3 × 3 between up to 3·c₁ channels, about 16
                // of them; activations about 12 maps of c₁ at 28 × 28.
                let c = hidden.iter().copied().max().unwrap_or(1) as u64;
                let params = c
                    .checked_mul(c)
                    .and_then(|cc| cc.checked_mul(9 * 16 * 3))
                    .and_then(|p| p.checked_add((cfg.time_dim as u64 + 1) * 4 * c));
                let acts = c.checked_mul(784 * 12);
                (params, acts)
            }
        };
        // The forward and backward passes; a second noising on steps with
        // the topological loss; the EMA copy.
        let acts = acts.and_then(|a| a.checked_mul(4));
        let size = super::model::training_memory(params, acts, batch, elem)
            .plus(tglml::guard::Size::of(params.unwrap_or(u64::MAX), elem));
        (params, size)
    }

    /// Dimension of the space the model of `spec` generates in: the
    /// data's, or the latent dimension of the VAE it reads.
    pub fn dim_of(spec: &DiffusionSpec) -> Result<usize> {
        match spec.vae_checkpoint {
            Some(p) => Ok(vae_spec_of(p, spec.input_dim)?.0.latent_dim),
            None => Ok(spec.input_dim),
        }
    }

    /// The rows the model learns to generate: the data, or the frozen
    /// VAE's latent means of it.
    fn clean(&self, x: &Tensor) -> Tensor {
        match &self.frozen {
            Some(f) => tch::no_grad(|| f.vae.encode(x).0),
            None => x.shallow_clone(),
        }
    }

    /// x₀ noised to `levels` with `eps`: (x_i, √ᾱ, √(1 − ᾱ)).
    fn noised(&self, x0: &Tensor, eps: &Tensor, levels: &[usize]) -> (Tensor, Tensor, Tensor) {
        let (k, d) = (x0.kind(), x0.device());
        let a = per_row(levels, |i| self.sched.alpha_bar[i].sqrt(), k, d);
        let s = per_row(levels, |i| (1.0 - self.sched.alpha_bar[i]).sqrt(), k, d);
        (x0 * &a + eps * &s, a, s)
    }

    fn predict(&self, net: &Net, x: &Tensor, levels: &[usize]) -> Tensor {
        net.forward(x, &embed(levels, self.cfg.time_dim, x.kind(), x.device()))
    }

    /// `n` samples in the space it generates in, with the EMA weights.
    fn generate(&self, n: usize) -> Tensor {
        let net = self.ema.as_ref().map_or(&self.net, |(e, _)| e);
        let (kind, dev, dim, seed) = (self.kind, self.device, self.dim, self.seed);
        let eps = |x: &Tensor, i: usize| self.predict(net, x, &vec![i; x.size()[0] as usize]);
        // Stream 1 of (seed, step u64::MAX − k), as the other models'
        // samples.
        let noise = |k: usize| normal_tensor(seed, u64::MAX - k as u64, 1, n, dim, kind, dev);
        sample(
            &self.sched,
            self.cfg.sampler,
            self.cfg.sample_steps,
            self.clip(),
            &eps,
            &noise,
        )
    }

    /// model.diffusion.clip_x0 as a range.
    fn clip(&self) -> Option<(f64, f64)> {
        match self.cfg.clip_x0[..] {
            [lo, hi] => Some((lo, hi)),
            _ => None,
        }
    }
}

impl Model for DiffusionModel {
    fn phases(&self) -> Vec<Phase> {
        vec![Phase {
            name: "model",
            prefixes: vec!["eps."],
            terms: vec!["noise"],
            topological: true,
            beta1: 0.9,
        }]
    }

    fn loss(&self, _phase: usize, batch: &Batch) -> PhaseLoss {
        let x0 = self.clean(batch.x);
        let kind = batch.kind;
        // Stream 0: ε; 2: the level; 3 and 4: the second noising's.
        let levels = batch.uniform_index(2, self.cfg.timesteps);
        let eps = batch.normal(0, self.dim);
        let (xt, _, _) = self.noised(&x0, &eps, &levels);
        let pred = self.predict(&self.net, &xt, &levels);
        let noise = (pred - &eps)
            .square()
            .mean_dim([1i64].as_slice(), false, kind)
            .sum(kind);
        let live = batch.topological.then(|| {
            let low = batch.uniform_index(3, self.cfg.topo_t_max);
            let eps2 = batch.normal(4, self.dim);
            let (xt2, a, s) = self.noised(&x0, &eps2, &low);
            let e = self.predict(&self.net, &xt2, &low);
            (xt2 - e * s) / a
        });
        PhaseLoss {
            terms: vec![noise.double_value(&[])],
            sum: noise,
            live,
        }
    }

    /// The EMA update, decay min(ema, (1 + n)/(10 + n)) after n steps.
    fn after_step(&self, step: u64) {
        let Some((_, pairs)) = &self.ema else {
            return;
        };
        super::average::follow(pairs, super::average::decay(self.cfg.ema, step));
    }

    fn extra_files(&self, out: &Path) -> Vec<PathBuf> {
        vec![out.join(super::model::SAMPLES_PLOT)]
    }

    /// `/samples`: model.samples points by model.diffusion.sampler with the
    /// EMA weights (latent diffusion: decoded by the VAE, the latent
    /// samples in `/samples_latent`), and their picture
    /// ([`super::model::write_samples`]).
    fn report(&self, w: &H5Writer, out: &Path, split: &TestSplit) -> Result<String> {
        let n = self.samples;
        let z = self.generate(n);
        let x = match &self.frozen {
            Some(f) => {
                let lat = Array2::from_shape_vec((n, self.dim), to_vec(&z))
                    .map_err(|e| Error::external("samples", e))?;
                w.dataset("/samples_latent", &lat)?;
                tch::no_grad(|| f.vae.decode_mean(&z))
            }
            None => z,
        };
        let d = split.x.ncols();
        let samples = Array2::from_shape_vec((n, d), to_vec(&x))
            .map_err(|e| Error::external("samples", e))?;
        super::model::write_samples(w, out, split, &samples)?;
        let how = match self.cfg.sampler {
            Sampler::Ddpm => format!("DDPM, {} steps", self.cfg.timesteps),
            Sampler::Ddim => format!(
                "DDIM, {} steps",
                self.sched.ddim_levels(self.cfg.sample_steps).len()
            ),
        };
        Ok(format!("; {n} samples ({how}) in /samples"))
    }

    fn generative(&self) -> &dyn Generative {
        self
    }
}

/// The noise prediction ε̂(x, i) of rows x (n × d) at one level i.
pub type Eps<'a> = dyn Fn(&Tensor, usize) -> Tensor + 'a;

/// A diffusion model as a sampler: what [`sample`] needs.
pub struct Parts<'a> {
    pub sched: &'a NoiseSchedule,
    /// The dimension it generates in.
    pub dim: usize,
    /// model.diffusion.clip_x0.
    pub clip: Option<(f64, f64)>,
    /// ε̂(x, i) with the weights it samples with (the EMA copy if any), at
    /// one level i for every row of x.
    pub eps: Box<Eps<'a>>,
}

/// Latent diffusion's latent space is its VAE's; a diffusion model on the
/// data has none.
impl Generative for DiffusionModel {
    fn latent_dim(&self) -> Option<usize> {
        self.frozen.as_ref().map(|_| self.dim)
    }

    fn has_encoder(&self) -> bool {
        self.frozen.is_some()
    }

    fn has_decoder(&self) -> bool {
        self.frozen.is_some()
    }

    fn encode(&self, x: &Tensor) -> Option<Tensor> {
        self.frozen.as_ref().map(|f| f.vae.encode(x).0)
    }

    fn decode(&self, z: &Tensor) -> Option<Tensor> {
        self.frozen.as_ref().map(|f| f.vae.decode_mean(z))
    }

    fn diffusion(&self) -> Option<Parts<'_>> {
        let net = self.ema.as_ref().map_or(&self.net, |(e, _)| e);
        Some(Parts {
            sched: &self.sched,
            dim: self.dim,
            clip: self.clip(),
            eps: Box::new(move |x: &Tensor, i: usize| {
                self.predict(net, x, &vec![i; x.size()[0] as usize])
            }),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn cfg(schedule: Schedule, t: usize) -> DiffusionConfig {
        DiffusionConfig {
            timesteps: t,
            schedule,
            beta_start: 1e-4,
            beta_end: 0.02,
            time_dim: 8,
            ema: 0.9,
            topo_t_max: 10,
            sampler: Sampler::Ddpm,
            sample_steps: 50,
            clip_x0: vec![],
        }
    }

    /// The exact ε̂ for data N(m, var·I) at level i:
    /// √(1 − ᾱ)·(x − √ᾱ·m)/(ᾱ·var + 1 − ᾱ) (`m` broadcast over the rows).
    pub(crate) fn gaussian_eps(
        sched: &NoiseSchedule,
        m: Tensor,
        var: f64,
    ) -> impl Fn(&Tensor, usize) -> Tensor + '_ {
        move |x: &Tensor, i: usize| {
            let a = sched.alpha_bar[i];
            (x - &m * a.sqrt()) * ((1.0 - a).sqrt() / (a * var + 1.0 - a))
        }
    }

    /// The schedules' closed forms: the linear β's end points and ᾱ as
    /// their product; the cosine schedule's ᾱ_i = f(i + 1)/f(0) wherever
    /// β is not clipped.
    #[test]
    fn schedules_have_their_closed_forms() {
        let s = NoiseSchedule::new(&cfg(Schedule::Linear, 1000));
        assert_eq!((s.beta[0], s.beta[999]), (1e-4, 0.02));
        let prod: f64 = s.beta.iter().map(|b| 1.0 - b).product();
        assert!((s.alpha_bar[999] - prod).abs() < 1e-15);
        let c = NoiseSchedule::new(&cfg(Schedule::Cosine, 200));
        let f = |i: f64| {
            ((i / 200.0 + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        for i in [0usize, 50, 150] {
            let want = f(i as f64 + 1.0) / f(0.0);
            assert!(
                (c.alpha_bar[i] - want).abs() < 1e-12,
                "{i}: {} vs {want}",
                c.alpha_bar[i]
            );
        }
        assert!(c.beta.iter().all(|&b| b > 0.0 && b <= 0.999));
        assert_eq!(s.ddim_levels(4), vec![0, 333, 666, 999]);
        assert_eq!(s.ddim_levels(1), vec![999]);
    }

    /// With the exact noise prediction of Gaussian data N(m, σ²),
    /// E[ε | x_i] = k_i·(x_i − a_i·m) with k_i = s_i/(a_i²σ² + s_i²) (a = √ᾱ,
    /// s = √(1 − ᾱ)), every step of either sampler is affine in x plus
    /// Gaussian noise, so the mean and variance of its samples follow a
    /// scalar recursion from x_{T−1} ~ N(0, 1). The samples' moments match
    /// it within four standard errors (DDIM's variance is a few percent
    /// below σ² at 100 steps: its discretisation, which the recursion
    /// predicts), and both are near N(m, σ²).
    #[test]
    fn samplers_draw_what_the_moment_recursion_predicts() {
        let (m, sd, n) = (1.5f64, 0.3f64, 20000usize);
        for (schedule, sampler) in [
            (Schedule::Linear, Sampler::Ddpm),
            (Schedule::Linear, Sampler::Ddim),
            (Schedule::Cosine, Sampler::Ddpm),
            (Schedule::Cosine, Sampler::Ddim),
        ] {
            let sched = NoiseSchedule::new(&cfg(schedule, 1000));
            let coef = |i: usize| {
                let ab = sched.alpha_bar[i];
                let (a, s) = (ab.sqrt(), (1.0 - ab).sqrt());
                (a, s, s / (a * a * sd * sd + s * s))
            };
            let eps = gaussian_eps(&sched, Tensor::from(m), sd * sd);
            let noise = |k: usize| {
                normal_tensor(7, u64::MAX - k as u64, 1, n, 1, Kind::Double, Device::Cpu)
            };
            let x = sample(&sched, sampler, 100, None, &eps, &noise);
            // The recursion of (mean, variance): x' = A·x + B (+ noise).
            let (mut mu, mut var) = (0.0f64, 1.0f64);
            match sampler {
                Sampler::Ddpm => {
                    for i in (0..1000).rev() {
                        let (a, s, k) = coef(i);
                        let b = sched.beta[i];
                        let r = b / s;
                        let big_a = (1.0 - r * k) / (1.0 - b).sqrt();
                        let big_b = r * k * a * m / (1.0 - b).sqrt();
                        mu = big_a * mu + big_b;
                        var *= big_a * big_a;
                        if i > 0 {
                            var += b * (1.0 - sched.alpha_bar[i - 1]) / (s * s);
                        }
                    }
                }
                Sampler::Ddim => {
                    let lv = sched.ddim_levels(100);
                    for j in (0..lv.len()).rev() {
                        let (a, s, k) = coef(lv[j]);
                        let ap = if j > 0 {
                            sched.alpha_bar[lv[j - 1]]
                        } else {
                            1.0
                        };
                        let (a2, s2) = (ap.sqrt(), (1.0 - ap).sqrt());
                        // x₀ = (x − s·k(x − a·m))/a, x' = a2·x₀ + s2·k(x − a·m).
                        let big_a = (1.0 - s * k) / a * a2 + s2 * k;
                        let big_b = (s * k * a * m) / a * a2 - s2 * k * a * m;
                        mu = big_a * mu + big_b;
                        var *= big_a * big_a;
                    }
                }
            }
            let mean = x.mean(Kind::Double).double_value(&[]);
            let std = x.std(true).double_value(&[]);
            let want_sd = var.sqrt();
            let what =
                format!("{schedule:?} {sampler:?}: mean {mean} vs {mu}, std {std} vs {want_sd}");
            assert!(
                (mean - mu).abs() < 4.0 * want_sd / (n as f64).sqrt(),
                "{what}"
            );
            assert!(
                (std - want_sd).abs() < 4.0 * want_sd / (2.0 * n as f64).sqrt(),
                "{what}"
            );
            assert!(
                (mu - m).abs() < 0.01 && (want_sd - sd).abs() < 0.015,
                "{what}"
            );
            eprintln!("{what}");
        }
    }

    /// Clipping x̂₀: a range the prediction never leaves changes nothing
    /// (the same samples within rounding), and with a denoiser that is
    /// far off (ε̂ = −2x), which without clipping ends far outside the
    /// data's range, every sample ends inside [lo, hi] (the last step
    /// returns the clipped x̂₀).
    #[test]
    fn clipping_x0_bounds_the_samples_and_is_inert_when_it_does_not_bite() {
        let (m, sd, n) = (0.5f64, 0.1f64, 2000usize);
        for (schedule, sampler) in [
            (Schedule::Linear, Sampler::Ddpm),
            (Schedule::Cosine, Sampler::Ddim),
        ] {
            let sched = NoiseSchedule::new(&cfg(schedule, 200));
            let exact = gaussian_eps(&sched, Tensor::from(m), sd * sd);
            let wrong = |x: &Tensor, _: usize| x * -2.0;
            let noise = |k: usize| {
                normal_tensor(3, u64::MAX - k as u64, 1, n, 1, Kind::Double, Device::Cpu)
            };
            let max = |t: &Tensor| f64::try_from(t.abs().max()).unwrap();
            let plain = sample(&sched, sampler, 50, None, &exact, &noise);
            let wide = sample(&sched, sampler, 50, Some((-1e6, 1e6)), &exact, &noise);
            assert!(max(&(&plain - &wide)) < 1e-9, "{schedule:?} {sampler:?}");
            let off = sample(&sched, sampler, 50, None, &wrong, &noise);
            assert!(max(&(&off - m)) > 10.0, "{schedule:?} {sampler:?}");
            let clipped = sample(&sched, sampler, 50, Some((0.0, 1.0)), &wrong, &noise);
            let (lo, hi) = (
                f64::try_from(clipped.min()).unwrap(),
                f64::try_from(clipped.max()).unwrap(),
            );
            assert!(
                lo >= 0.0 && hi <= 1.0,
                "{schedule:?} {sampler:?}: [{lo}, {hi}]"
            );
        }
    }

    /// x̂₀ of the live points is x₀ when the prediction is the drawn ε, so
    /// the noising and its inversion agree; the EMA moves by (1 − decay).
    #[test]
    fn prediction_inverts_the_noising_and_ema_follows() {
        let vs = nn::VarStore::new(Device::Cpu);
        let c = cfg(Schedule::Linear, 100);
        let spec = DiffusionSpec {
            cfg: &c,
            input_dim: 3,
            network: Network::Mlp,
            hidden: &[8],
            vae_checkpoint: None,
        };
        let m = DiffusionModel::new(&vs, &spec, 4, 1, Kind::Float).unwrap();
        let x0 = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let e = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let levels = [0, 10, 50, 90, 99];
        let (xt, a, s) = m.noised(&x0, &e, &levels);
        let back = (xt - e * s) / a;
        assert!(f64::try_from((back - &x0).abs().max()).unwrap() < 1e-12);
        // EMA: equal at the start; after a change θ → θ + 1 and one step
        // (decay min(0.9, 2/11)), it moved 9/11 of the way.
        let Net::Mlp(net) = &m.net else {
            unreachable!()
        };
        let Some((Net::Mlp(ema), _)) = &m.ema else {
            unreachable!()
        };
        let (we, w) = (&ema.layers[0].0, &net.layers[0].0);
        assert!(f64::try_from((we - w).abs().max()).unwrap() == 0.0);
        let before = we.copy();
        tch::no_grad(|| {
            let _ = w.shallow_clone().g_add_scalar_(1.0);
        });
        m.after_step(0);
        let moved = f64::try_from((we - &before).mean(Kind::Float)).unwrap();
        assert!((moved - 9.0 / 11.0).abs() < 1e-6, "{moved}");
        // The phase trains the denoiser only; the EMA copy is untrained.
        let trained: Vec<String> = checkpoint::trainable(&vs)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(trained.iter().all(|n| n.starts_with("eps.")), "{trained:?}");
        assert_eq!(checkpoint::variables(&vs).len(), 2 * trained.len());
    }
}
