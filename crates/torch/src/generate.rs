//! `tglml sample` and `tglml interpolate`: a trained model loaded from its
//! checkpoint (the model and data of its stored configuration), the
//! samplers and paths of [`tglml::sample`] and [`crate::geodesic`] on its
//! latent space, and their HDF5 file and pictures (docs/hdf5.md).
//!
//! The same file for any rank count: every rank loads the model and the
//! training codes alike; the work units (chains, pairs, blocks of
//! [`BLOCK`] diffusion samples) are cut independently of the ranks, each
//! draws its randomness from its own stream, the ranks take contiguous
//! runs of them, and rank 0 gathers them in order. Encoding and decoding
//! go through blocks of [`BLOCK`] rows on rank 0 or on every rank alike,
//! so libtorch sees the same shapes whatever the rank count.

use std::path::{Path, PathBuf};

use ndarray::{s, Array1, Array2, Array3, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use crate::geodesic;
use crate::score::ScoreDensity;
use crate::train::diffusion::{self, Parts};
use crate::train::model::{normal_rows, samples_png, scatter_over, value_range, Generative, Model};
use crate::train::topo_loss::to_vec;
use crate::train::{checkpoint, data::TrainData, trainer, vae::kind_of};
use tglml::cli::{InterpolateArgs, SampleArgs};
use tglml::commands::{check_outputs, on_root, Setup};
use tglml::config::{
    Config, DensityConfig, DensityName, PathInit, PathMethod, Sampler, SamplerName, StartName,
};
use tglml::dist::landmarks::shard_range;
use tglml::dist::Comm;
use tglml::error::{Error, Result};
use tglml::io::{H5Writer, Stamp};
use tglml::progress::Progress;
use tglml::runtime::fallible;
use tglml::sample::density::{Density, EmSettings, Gmm};
use tglml::sample::langevin::{self, Chains, Walk};
use tglml::sample::path;

/// Rows per block of encoding, decoding and diffusion sampling.
pub const BLOCK: usize = 256;

/// The checkpoint file of `--checkpoint` (a folder or the file).
fn checkpoint_file(given: &Path) -> Result<PathBuf> {
    // A run with validation is used as its final evaluation used it: with
    // the weights of its best validation.
    let file = if given.is_dir() {
        let best = given.join(trainer::BEST);
        if best.is_file() {
            best
        } else {
            given.join("checkpoint.h5")
        }
    } else {
        given.to_path_buf()
    };
    if file.is_file() {
        return Ok(file);
    }
    Err(Error::invalid(
        "--checkpoint",
        format!(
            "{} {}; expected the --out folder of a `tglml train` run (or its checkpoint.h5)",
            given.display(),
            if given.is_dir() {
                "holds no checkpoint.h5"
            } else {
                "does not exist"
            }
        ),
    ))
}

/// A trained model, as its checkpoint and stored configuration make it.
pub struct Trained {
    /// The run's configuration (as stored in the checkpoint).
    pub config: Config,
    /// The checkpoint file.
    pub path: PathBuf,
    /// The run's data, split and standardised as in training.
    pub data: TrainData,
    model: Box<dyn Model>,
    _vs: nn::VarStore,
    kind: Kind,
    device: Device,
}

impl Trained {
    /// Loads the checkpoint of `given` (collective): its configuration, its
    /// data, its model with the stored variables.
    pub fn load(comm: &Comm, given: &Path) -> Result<Trained> {
        let path = comm.agree(checkpoint_file(given))?;
        let stored = comm.agree(checkpoint::load(&path).and_then(|ck| {
            tglml::config::load_text(
                Some((
                    &ck.config_toml,
                    &format!("{} (its stored configuration)", path.display()),
                )),
                &[],
            )
        }))?;
        let t = &stored.train;
        let kind = kind_of(&t.dtype)?;
        let device = trainer::device_of(&t.device)?;
        let data = TrainData::load(comm, &stored).map_err(|e| {
            e.context(format!(
                "the data of {} (train.data of its stored configuration)",
                path.display()
            ))
        })?;
        let mut vs = nn::VarStore::new(device);
        let (model, average) =
            trainer::build_model(comm, &vs, &stored.model, t, data.dim(), t.batch_size, kind)?;
        if t.topo.latent_scale == "learned" {
            let _ = vs
                .root()
                .var(trainer::LOG_SCALE, &[1], nn::Init::Const(0.0));
        }
        vs.set_kind(kind);
        comm.agree(checkpoint::restore(&path, &mut vs, &mut []))?;
        // A model trained with train.ema is used with its averaged weights.
        if let Some(a) = &average {
            a.install();
        }
        Ok(Trained {
            config: stored,
            path,
            data,
            model,
            _vs: vs,
            kind,
            device,
        })
    }

    fn gen(&self) -> &dyn Generative {
        self.model.generative()
    }

    /// A classifier's features and class probabilities.
    pub fn classifier(&self) -> Option<&dyn crate::train::classifier::Classify> {
        self.model.classifier()
    }

    /// The hash of its parameters ([`checkpoint::param_hash`]).
    pub fn param_hash(&self) -> u64 {
        checkpoint::param_hash(&self._vs)
    }

    /// Rows as a tensor of the model's kind, on its device.
    pub fn tensor(&self, a: ArrayView2<f64>) -> Tensor {
        crate::geodesic::to_tensor(a)
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// `f` over the rows of `x` in blocks of [`BLOCK`], without gradients.
    fn blocks(
        &self,
        what: &str,
        x: ArrayView2<f64>,
        f: &dyn Fn(&Tensor) -> Option<Tensor>,
    ) -> Result<Array2<f64>> {
        let mut out: Vec<f64> = Vec::new();
        let mut cols = 0;
        for start in (0..x.nrows()).step_by(BLOCK) {
            let end = (start + BLOCK).min(x.nrows());
            let t = self.tensor(x.slice(s![start..end, ..]));
            let y = fallible(what, || tch::no_grad(|| f(&t)))?
                .ok_or_else(|| Error::invalid(what, "the model has no such map"))?;
            cols = y.size()[1] as usize;
            out.extend(to_vec(&y));
        }
        let rows = x.nrows();
        if rows == 0 {
            cols = 0;
        }
        Array2::from_shape_vec((rows, cols), out).map_err(|e| Error::external(what, e))
    }

    fn encode(&self, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        self.blocks("encoding", x, &|t| self.gen().encode(t))
    }

    fn decode(&self, z: ArrayView2<f64>) -> Result<Array2<f64>> {
        self.blocks("decoding", z, &|t| self.gen().decode(t).map(|x| x.detach()))
    }

    /// Whether it encodes and decodes (an autoencoder, or latent
    /// diffusion through its autoencoder).
    pub fn autoencodes(&self) -> bool {
        self.has_encoder() && self.gen().has_decoder()
    }

    /// The codes and reconstructions of float64 CPU rows in the data's
    /// units (reconstructions in them too), differentiable in the rows:
    /// standardised as in training, encoded, decoded and mapped back.
    /// `None` without an encoder and a decoder.
    pub fn autoencode(&self, x: &Tensor) -> Option<(Tensor, Tensor)> {
        let scale = self.data.scale().map(|(m, s)| {
            let row = |a: &ndarray::Array1<f64>| {
                Tensor::from_slice(a.as_slice().expect("contiguous")).view([1, -1])
            };
            (row(m), row(s))
        });
        let xm = match &scale {
            Some((m, s)) => (x - m) / s,
            None => x.shallow_clone(),
        };
        let z = self
            .gen()
            .encode(&xm.to_kind(self.kind).to_device(self.device))?;
        let r = self
            .gen()
            .decode(&z)?
            .to_kind(Kind::Double)
            .to_device(Device::Cpu);
        let r = match &scale {
            Some((m, s)) => r * s + m,
            None => r,
        };
        Some((z.to_kind(Kind::Double).to_device(Device::Cpu), r))
    }

    /// The decoder on float64 CPU rows, differentiable (for the geodesics).
    fn decoder(&self) -> impl Fn(&Tensor) -> Tensor + '_ {
        move |z: &Tensor| {
            self.gen()
                .decode(&z.to_kind(self.kind).to_device(self.device))
                .expect("checked: the model has a decoder")
                .to_kind(Kind::Double)
                .to_device(Device::Cpu)
        }
    }

    /// Refuses a classifier, which generates nothing.
    fn generates(&self) -> Result<()> {
        if self.config.model.kind == tglml::config::ModelKind::Classifier {
            return Err(Error::invalid(
                "--checkpoint",
                format!(
                    "{} is a classifier: it generates nothing (it is the feature network of `tglml eval --features`); give the run of a generative model",
                    self.what()
                ),
            ));
        }
        Ok(())
    }

    /// What the model is, for messages.
    fn what(&self) -> String {
        format!(
            "{} (model.kind = \"{}\")",
            self.path.display(),
            self.config.model.kind.name()
        )
    }

    /// Up to `max` training rows (0 = all; a seeded choice, in training
    /// order) and their codes, on every rank (collective); `key` names the
    /// setting of `max`.
    fn training_codes(
        &self,
        comm: &Comm,
        max: usize,
        seed: u64,
        key: &str,
    ) -> Result<(Array2<f64>, Option<Array2<f64>>)> {
        let pos = choose(self.data.n_train(), max, seed);
        comm.agree(tglml::guard::need(
            &format!("{} training rows for the codes", pos.len()),
            tglml::guard::Size::array(&[pos.len() as u64, self.data.dim() as u64 + 8], 8),
            key,
        ))?;
        let x = self.data.batch(comm, &pos)?;
        let z = if self.gen().latent_dim().is_some() && self.has_encoder() {
            Some(comm.agree(self.encode(x.view()))?)
        } else {
            None
        };
        Ok((x, z))
    }

    fn has_encoder(&self) -> bool {
        self.gen().has_encoder()
    }

    fn has_decoder(&self) -> bool {
        self.gen().latent_dim().is_some() && self.gen().has_decoder()
    }

    /// The output file's stamp.
    fn stamp(comm: &Comm, setup: &Setup) -> Stamp {
        Stamp {
            command: setup.command.to_string(),
            config_toml: setup.config.to_toml(),
            n_ranks: comm.size(),
            threads_per_rank: setup.threads,
        }
    }

    /// `/model` attributes (the checkpoint) and `/scale` (the data's
    /// standardisation, when the run had one).
    fn write_provenance(&self, w: &H5Writer) -> Result<()> {
        w.group("/model")?;
        w.attr_str("/model", "checkpoint", &self.path.display().to_string())?;
        w.attr_str("/model", "kind", self.config.model.kind.name())?;
        w.attr_str("/model", "config", &self.config.to_toml())?;
        if let Some((mean, std)) = self.data.scale() {
            w.dataset("/scale/mean", mean)?;
            w.dataset("/scale/std", std)?;
        }
        Ok(())
    }
}

/// Up to `max` of the positions 0..n (0 = all), a seeded choice, sorted.
pub(crate) fn choose(n: usize, max: usize, seed: u64) -> Vec<usize> {
    if max == 0 || max >= n {
        return (0..n).collect();
    }
    let mut all: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0DE5);
    for i in 0..max {
        let j = rng.random_range(i..n);
        all.swap(i, j);
    }
    let mut chosen = all[..max].to_vec();
    chosen.sort_unstable();
    chosen
}

/// `FILE.h5` → `FILE<suffix>.png`.
fn picture(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "samples".to_string());
    out.with_file_name(format!("{stem}{suffix}.png"))
}

/// A latent density fitted to codes (or a latent-diffusion model's own).
enum Fitted<'a> {
    Mixture {
        gmm: Gmm,
        /// (K, BIC) of each K tried (a GMM).
        bic: Vec<(usize, f64)>,
    },
    Score(ScoreDensity<'a>),
}

impl Fitted<'_> {
    fn density(&self) -> &dyn Density {
        match self {
            Fitted::Mixture { gmm, .. } => gmm,
            Fitted::Score(s) => s,
        }
    }

    fn describe(&self, cfg: &DensityConfig) -> String {
        match (self, cfg.kind) {
            (Fitted::Mixture { gmm, .. }, DensityName::Gmm) => format!(
                "a Gaussian mixture of {} components (BIC over K = {}..={})",
                gmm.components(),
                cfg.components[0],
                cfg.components[1]
            ),
            (Fitted::Mixture { gmm, .. }, _) => {
                format!("a Gaussian KDE on {} codes", gmm.components())
            }
            (Fitted::Score(_), _) => "the latent-diffusion model's score".to_string(),
        }
    }

    fn write(&self, w: &H5Writer, cfg: &DensityConfig) -> Result<()> {
        let kind = match cfg.kind {
            DensityName::Gmm => "gmm",
            DensityName::Kde => "kde",
            DensityName::Score => "score",
        };
        w.group("/density")?;
        w.attr_str("/density", "kind", kind)?;
        if let Fitted::Mixture { gmm, bic } = self {
            if cfg.kind == DensityName::Gmm {
                w.dataset("/density/weights", &gmm.weights)?;
                w.dataset("/density/means", &gmm.means)?;
                let (k, d) = gmm.means.dim();
                let mut covs = Array3::zeros((k, d, d));
                for c in 0..k {
                    covs.index_axis_mut(Axis(0), c).assign(&gmm.covariance(c));
                }
                w.dataset("/density/covariances", &covs)?;
                let table = Array2::from_shape_fn((bic.len(), 2), |(i, j)| {
                    if j == 0 {
                        bic[i].0 as f64
                    } else {
                        bic[i].1
                    }
                });
                w.dataset("/density/bic", &table)?;
            }
        }
        Ok(())
    }
}

/// The ε̂ of a diffusion model's parts on float64 CPU rows.
fn eps_f64<'a>(
    parts: &'a Parts<'a>,
    kind: Kind,
    dev: Device,
) -> impl Fn(&Tensor, usize) -> Tensor + 'a {
    move |x: &Tensor, i: usize| {
        (parts.eps)(&x.to_kind(kind).to_device(dev), i)
            .to_kind(Kind::Double)
            .to_device(Device::Cpu)
    }
}

/// Fits `cfg`'s density to `codes` (the same on every rank: plain Rust on
/// the same numbers). The score density is built by the caller.
fn fit_mixture(cfg: &DensityConfig, codes: ArrayView2<f64>, seed: u64) -> Result<Fitted<'static>> {
    match cfg.kind {
        DensityName::Gmm => {
            let ks: Vec<usize> = (cfg.components[0]..=cfg.components[1]).collect();
            let (gmm, bic) = Gmm::fit_by_bic(
                codes,
                &ks,
                seed,
                &EmSettings {
                    max_iter: cfg.max_iter,
                    tol: cfg.tol,
                    reg_covar: cfg.reg_covar,
                },
            )?;
            Ok(Fitted::Mixture { gmm, bic })
        }
        DensityName::Kde => {
            let h = (cfg.bandwidth > 0.0).then_some(cfg.bandwidth);
            Ok(Fitted::Mixture {
                gmm: Gmm::kde(codes, h)?,
                bic: vec![],
            })
        }
        DensityName::Score => unreachable!("the caller builds the score density"),
    }
}

/// Chains `ids` of `walk` from `starts` (one row per chain), in groups so
/// that rank 0 can report progress; the same states as one call.
fn run_chains(
    density: &Fitted,
    starts: ArrayView2<f64>,
    ids: std::ops::Range<usize>,
    walk: &Walk,
    seed: u64,
    bar: &Progress,
) -> Result<Chains> {
    const GROUP: usize = 64;
    // Groups of chains (one empty group when this rank has none).
    let groups: Vec<std::ops::Range<usize>> = if ids.is_empty() {
        vec![ids.clone()]
    } else {
        ids.clone()
            .step_by(GROUP)
            .map(|first| first..(first + GROUP).min(ids.end))
            .collect()
    };
    let mut parts: Vec<Chains> = Vec::with_capacity(groups.len());
    for g in groups {
        let rows = starts.slice(s![g.start - ids.start..g.end - ids.start, ..]);
        let c = match density {
            Fitted::Mixture { gmm, .. } => langevin::run(gmm, rows, g.clone(), walk, seed)?,
            Fitted::Score(sd) => fallible("the latent-diffusion score", || {
                langevin::run_serial(sd, rows, g.clone(), walk, seed)
            })??,
        };
        bar.inc(g.len() as u64);
        parts.push(c);
    }
    let d = starts.ncols();
    let states: Vec<_> = parts.iter().map(|c| c.states.view()).collect();
    Ok(Chains {
        states: ndarray::concatenate(Axis(0), &states)
            .unwrap_or_else(|_| Array3::zeros((0, walk.kept(), d))),
        accepted: parts.iter().flat_map(|c| c.accepted.clone()).collect(),
        proposals: (walk.burn_in + walk.steps) as u64,
    })
}

/// Records of `len` values per unit from every rank, in rank order, on
/// rank 0 (`None` elsewhere); collective.
fn gather_records(
    comm: &Comm,
    local: &[f64],
    units: usize,
    len: usize,
) -> Result<Option<Array2<f64>>> {
    let all = comm.gather_concat(local)?;
    all.map(|v| {
        Array2::from_shape_vec((units, len), v)
            .map_err(|e| Error::external("gathering the ranks' results", e))
    })
    .transpose()
}

/// `tglml sample`.
pub fn sample(comm: &Comm, setup: &Setup, a: &SampleArgs) -> Result<()> {
    let s = &setup.config.sample;
    let out = a.out.as_path();
    let (png, latent_png) = (picture(out, ""), picture(out, ".latent"));
    let ck = comm.agree(checkpoint_file(&a.checkpoint))?;
    check_outputs(comm, &[out, &png, &latent_png], &[&ck])?;
    let t = Trained::load(comm, &a.checkpoint)?;
    t.generates()?;
    let g = t.gen();
    let n = s.n;
    let sampler = s.sampler;
    let refuse = |m: String| {
        Err(Error::invalid(
            format!("sample.sampler = \"{}\"", sampler.name()),
            m,
        ))
    };
    let latent = g.latent_dim();
    match sampler {
        SamplerName::Prior | SamplerName::Langevin | SamplerName::Mala => {
            if latent.is_none() || !t.has_decoder() {
                return refuse(format!(
                    "{} has no latent space with a decoder (a diffusion model on the data); use --sampler diffusion or ddim",
                    t.what()
                ));
            }
        }
        SamplerName::Diffusion | SamplerName::Ddim => {
            if g.diffusion().is_none() {
                return refuse(format!(
                    "{} is not a diffusion model; use --sampler prior, langevin or mala",
                    t.what()
                ));
            }
        }
    }
    // The samples on rank 0: latent and data rows, and their float copies.
    let width = latent.unwrap_or(0) + t.data.dim();
    comm.agree(tglml::guard::need(
        &format!("{n} samples of {width} values"),
        tglml::guard::Size::array(&[n as u64, width as u64, 3], 8),
        "sample.n",
    ))?;
    let walks = matches!(sampler, SamplerName::Langevin | SamplerName::Mala);
    let dcfg = &s.density;
    if walks {
        if dcfg.kind == DensityName::Score && g.diffusion().is_none() {
            return Err(Error::invalid(
                "sample.density.kind = \"score\"",
                format!(
                    "is a latent-diffusion model's own density, but {} is not one; use \"gmm\" or \"kde\"",
                    t.what()
                ),
            ));
        }
        if (dcfg.kind != DensityName::Score || s.start == StartName::Codes) && !t.has_encoder() {
            return refuse(format!(
                "{} has no encoder, so there are no training codes to fit sample.density to or start chains at; use --sampler prior",
                t.what()
            ));
        }
    }
    if sampler == SamplerName::Ddim {
        let steps = t.config.model.diffusion.timesteps;
        if !(1..=steps).contains(&s.diffusion_steps) {
            return Err(Error::invalid(
                "sample.diffusion_steps",
                format!(
                    "must be in 1..={steps} (the model's timesteps), got {}",
                    s.diffusion_steps
                ),
            ));
        }
    }
    // Reference rows for the pictures, and the codes the walks need.
    let (ref_x, codes) =
        t.training_codes(comm, dcfg.max_codes, s.seed, "sample.density.max_codes")?;
    let parts = g.diffusion();
    let eps = parts.as_ref().map(|p| eps_f64(p, t.kind, t.device));
    let (rank, p) = (comm.rank(), comm.size());
    let mut chains: Option<(Chains, String)> = None;
    let mut fitted: Option<Fitted> = None;
    // Rank 0's samples: latent rows (if any), and data rows where they are
    // not decoded from them (a diffusion model on the data).
    let (z, x): (Option<Array2<f64>>, Option<Array2<f64>>) = match sampler {
        SamplerName::Prior => {
            let l = latent.expect("checked");
            let z = Array2::from_shape_vec((n, l), normal_rows(s.seed, 0, 0, 0..n, l))
                .map_err(|e| Error::external("prior draws", e))?;
            (Some(z), None)
        }
        SamplerName::Langevin | SamplerName::Mala => {
            let l = latent.expect("checked");
            let f = match dcfg.kind {
                DensityName::Score => {
                    let parts = parts.as_ref().expect("checked");
                    Fitted::Score(ScoreDensity::new(
                        parts.sched.clone(),
                        eps.as_ref().expect("a diffusion model"),
                        parts.dim,
                        dcfg.score_steps,
                    ))
                }
                _ => comm.agree(fit_mixture(
                    dcfg,
                    codes.as_ref().expect("checked").view(),
                    s.seed,
                ))?,
            };
            let walk = Walk {
                eta: s.eta,
                steps: s.steps,
                burn_in: s.burn_in,
                thin: s.thin,
                metropolis: sampler == SamplerName::Mala,
            };
            walk.check("sample")?;
            let kept = walk.kept();
            let count = n.div_ceil(kept);
            let starts = match s.start {
                StartName::Codes => {
                    let c = codes.as_ref().expect("checked");
                    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x57A27);
                    let rows: Vec<usize> =
                        (0..count).map(|_| rng.random_range(0..c.nrows())).collect();
                    c.select(Axis(0), &rows)
                }
                StartName::Prior => {
                    Array2::from_shape_vec((count, l), normal_rows(s.seed, 0, 1, 0..count, l))
                        .map_err(|e| Error::external("chain starts", e))?
                }
            };
            let mine = shard_range(count, rank, p);
            if comm.is_root() {
                eprintln!(
                    "sample: {count} chains of {} steps ({} burn-in, every {}-th of {} kept) on {}",
                    walk.burn_in + walk.steps,
                    walk.burn_in,
                    walk.thin,
                    walk.steps,
                    f.describe(dcfg)
                );
            }
            let bar = Progress::new(comm.is_root(), "sample", mine.len() as u64, "chains");
            let local = comm.agree(run_chains(
                &f,
                starts.slice(s![mine.clone(), ..]),
                mine.clone(),
                &walk,
                s.seed,
                &bar,
            ))?;
            bar.finish();
            // One record per chain: accepted, then its states.
            let mut rec = Vec::with_capacity(mine.len() * (1 + kept * l));
            for (c, acc) in local.accepted.iter().enumerate() {
                rec.push(*acc as f64);
                rec.extend(local.states.index_axis(Axis(0), c).iter());
            }
            let all = gather_records(comm, &rec, count, 1 + kept * l)?;
            // Rank 0 assembles the chains (collectively agreed, so that a
            // failure there cannot leave the other ranks waiting).
            let assembled = comm.agree(match all {
                Some(all) => (|| -> Result<_> {
                    let states = all
                        .slice(s![.., 1..])
                        .to_owned()
                        .into_shape_with_order((count, kept, l))
                        .map_err(|e| Error::external("chains", e))?;
                    let c = Chains {
                        accepted: all.column(0).iter().map(|&v| v as u64).collect(),
                        states,
                        proposals: (walk.burn_in + walk.steps) as u64,
                    };
                    let z = c.rows().slice(s![..n, ..]).to_owned();
                    Ok(Some((c, z)))
                })(),
                None => Ok(None),
            })?;
            let z = assembled.map(|(c, z)| {
                chains = Some((c, f.describe(dcfg)));
                z
            });
            fitted = Some(f);
            (z, None)
        }
        SamplerName::Diffusion | SamplerName::Ddim => {
            let parts = parts.as_ref().expect("checked");
            let (dim, kind, dev) = (parts.dim, t.kind, t.device);
            let blocks = n.div_ceil(BLOCK);
            let mine = shard_range(blocks, rank, p);
            let bar = Progress::new(comm.is_root(), "sample", mine.len() as u64, "blocks");
            let local: Result<Vec<f64>> = (|| {
                let mut v = Vec::new();
                for b in mine.clone() {
                    let rows = b * BLOCK..((b + 1) * BLOCK).min(n);
                    let m = rows.len();
                    // Row-keyed noise: stream 1 of (seed, u64::MAX − k).
                    let noise = |k: usize| {
                        Tensor::from_slice(&normal_rows(
                            s.seed,
                            u64::MAX - k as u64,
                            1,
                            rows.clone(),
                            dim,
                        ))
                        .view([m as i64, dim as i64])
                        .to_kind(kind)
                        .to_device(dev)
                    };
                    let (how, steps) = match sampler {
                        SamplerName::Ddim => (Sampler::Ddim, s.diffusion_steps),
                        _ => (Sampler::Ddpm, 0),
                    };
                    let y = fallible("diffusion sampling", || {
                        diffusion::sample(parts.sched, how, steps, parts.clip, &*parts.eps, &noise)
                    })?;
                    v.extend(to_vec(&y));
                    bar.inc(1);
                }
                Ok(v)
            })();
            let local = comm.agree(local)?;
            bar.finish();
            match gather_records(comm, &local, n, dim)? {
                Some(gen) if latent.is_some() => (Some(gen), None),
                Some(gen) => (None, Some(gen)),
                None => (None, None),
            }
        }
    };
    on_root(comm, || {
        let x = match x {
            Some(x) => x,
            None => t.decode(z.as_ref().expect("rank 0 holds the samples").view())?,
        };
        let w = H5Writer::create(out, &Trained::stamp(comm, setup))?;
        t.write_provenance(&w)?;
        w.dataset("/samples/x", &x)?;
        if let Some(z) = &z {
            w.dataset("/samples/z", z)?;
        }
        w.attr_str("/samples", "sampler", sampler.name())?;
        let mut summary = format!("{n} samples ({})", sampler.name());
        if let Some((c, how)) = &chains {
            w.dataset("/chains/states", &c.states)?;
            let acc: Array1<i64> = c.accepted.iter().map(|&v| v as i64).collect();
            w.dataset("/chains/accepted", &acc)?;
            w.attr_f64("/chains", "acceptance_rate", c.acceptance_rate())?;
            w.attr_u64("/chains", "proposals", c.proposals)?;
            w.attr_f64("/chains", "eta", s.eta)?;
            w.attr_u64("/chains", "burn_in", s.burn_in as u64)?;
            w.attr_u64("/chains", "thin", s.thin as u64)?;
            summary = format!(
                "{summary}: {} chains on {how}, acceptance rate {:.3}",
                c.states.dim().0,
                c.acceptance_rate()
            );
        }
        if let Some(f) = &fitted {
            f.write(&w, dcfg)?;
        }
        let title = format!(
            "samples of the {} sampler ({} drawn)",
            sampler.name(),
            x.nrows()
        );
        samples_png(&ref_x, &x, &title, "data units", &png)?;
        let mut pictures = vec![png.display().to_string()];
        if let (Some(z), Some(codes)) = (&z, &codes) {
            if z.ncols() == 2 {
                let title = format!("{title}: latent states over the training codes");
                samples_png(codes, z, &title, "latent units", &latent_png)?;
                pictures.push(latent_png.display().to_string());
            }
        }
        let path = w.commit()?;
        Ok(format!(
            "sample: {summary}; wrote {} and {}",
            path.display(),
            pictures.join(", ")
        ))
    })
}

/// `tglml interpolate`.
pub fn interpolate(comm: &Comm, setup: &Setup, a: &InterpolateArgs) -> Result<()> {
    let ip = &setup.config.interpolate;
    if a.from.len() != a.to.len() {
        return Err(Error::invalid(
            "--from/--to",
            format!(
                "need as many end rows as start rows, got {} and {}",
                a.from.len(),
                a.to.len()
            ),
        ));
    }
    let out = a.out.as_path();
    let png = picture(out, "");
    let ck = comm.agree(checkpoint_file(&a.checkpoint))?;
    check_outputs(comm, &[out, &png], &[&ck])?;
    let t = Trained::load(comm, &a.checkpoint)?;
    t.generates()?;
    let Some(l) = t.gen().latent_dim().filter(|_| t.has_decoder()) else {
        return Err(Error::invalid(
            "interpolate",
            format!(
                "{} has no decoder: a diffusion model on the data has no latent space to interpolate in (a VAE's or a latent-diffusion model's has)",
                t.what()
            ),
        ));
    };
    let latent_ends = !a.from_z.is_empty();
    let geodesic = ip.method == PathMethod::Geodesic;
    let graph = geodesic && ip.init == PathInit::Graph;
    let encoder = t.has_encoder();
    if !encoder && (!latent_ends || graph) {
        return Err(Error::invalid(
            "interpolate",
            format!(
                "{} has no encoder, so {} (a VAE's or a latent-diffusion model's has); give latent end points with --from-z/--to-z{}",
                t.what(),
                if latent_ends {
                    "there are no training codes for the k-NN graph of interpolate.init = \"graph\""
                } else {
                    "data rows have no latent codes to join"
                },
                if graph { " and set interpolate.init = \"linear\"" } else { "" }
            ),
        ));
    }
    if latent_ends {
        for (flag, z) in [("--from-z", &a.from_z), ("--to-z", &a.to_z)] {
            if z.len() != l || z.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    flag,
                    format!(
                        "a latent point of {l} finite values (the model's latent dimension) is expected, got {z:?}"
                    ),
                ));
            }
        }
    }
    let npairs = if latent_ends {
        1
    } else if a.from.is_empty() {
        ip.pairs
    } else {
        a.from.len()
    };
    // Rank 0 gathers every path: start and path in latent space, decoded
    // points, energies.
    comm.agree(tglml::guard::need(
        &format!("{npairs} paths of {} points", ip.points),
        tglml::guard::Size::array(
            &[
                npairs as u64,
                (ip.points as u64)
                    .saturating_mul((2 * l + t.data.dim()) as u64)
                    .saturating_add(ip.steps as u64 + 2),
                2,
            ],
            8,
        ),
        "interpolate.pairs or interpolate.points",
    ))?;
    // The pairs, as data rows (none for latent end points), and their
    // latent ends (rows 2i and 2i + 1).
    let (pairs, ends_z): (Vec<(i64, i64)>, Array2<f64>) = if latent_ends {
        let z: Vec<f64> = a.from_z.iter().chain(&a.to_z).copied().collect();
        let z = Array2::from_shape_vec((2, l), z).map_err(|e| Error::external("--from-z", e))?;
        (vec![(-1, -1)], z)
    } else {
        let pairs: Vec<(usize, usize)> = if a.from.is_empty() {
            let n = t.data.n_train();
            if n < 2 {
                return Err(Error::invalid(
                    "interpolate.pairs",
                    "the training split has fewer than 2 rows",
                ));
            }
            let mut rng = ChaCha8Rng::seed_from_u64(ip.seed ^ 0xBA125);
            (0..ip.pairs)
                .map(|_| {
                    let i = rng.random_range(0..n);
                    let j = (i + rng.random_range(1..n)) % n;
                    (t.data.train_row(i), t.data.train_row(j))
                })
                .collect()
        } else {
            a.from
                .iter()
                .zip(&a.to)
                .map(|(&i, &j)| (i as usize, j as usize))
                .collect()
        };
        let ends: Vec<usize> = pairs.iter().flat_map(|&(i, j)| [i, j]).collect();
        let ends_x = t.data.rows(comm, &ends, "--from/--to")?;
        let ends_z = comm.agree(t.encode(ends_x.view()))?;
        let rows = pairs.iter().map(|&(i, j)| (i as i64, j as i64)).collect();
        (rows, ends_z)
    };
    let (ref_x, codes) = t.training_codes(comm, ip.max_codes, ip.seed, "interpolate.max_codes")?;
    let scfg = &setup.config.sample;
    let parts = t.gen().diffusion();
    let eps = parts.as_ref().map(|p| eps_f64(p, t.kind, t.device));
    let barrier: Option<Fitted> = if geodesic && ip.barrier > 0.0 {
        Some(match scfg.density.kind {
            DensityName::Score => {
                let Some(parts) = parts.as_ref() else {
                    return Err(Error::invalid(
                        "sample.density.kind = \"score\"",
                        format!("the barrier's density is a latent-diffusion model's own, but {} is not one; use \"gmm\" or \"kde\"", t.what()),
                    ));
                };
                Fitted::Score(ScoreDensity::new(
                    parts.sched.clone(),
                    eps.as_ref().expect("a diffusion model"),
                    parts.dim,
                    scfg.density.score_steps,
                ))
            }
            _ => {
                let Some(codes) = codes.as_ref() else {
                    return Err(Error::invalid(
                        "interpolate.barrier",
                        format!("the barrier's density is fitted to training codes, and {} has no encoder to give them; set interpolate.barrier = 0", t.what()),
                    ));
                };
                comm.agree(fit_mixture(&scfg.density, codes.view(), scfg.seed))?
            }
        })
    } else {
        None
    };
    let k = ip.points;
    let settings = geodesic::Settings {
        steps: if geodesic { ip.steps } else { 0 },
        lr: ip.lr,
        barrier: ip.barrier,
    };
    let energies = settings.steps + 1;
    let dim = t.data.dim();
    let mine = shard_range(pairs.len(), comm.rank(), comm.size());
    let bar = Progress::new(comm.is_root(), "interpolate", mine.len() as u64, "paths");
    let decoder = t.decoder();
    // One record per pair: its start path z, its path z, x, energies, length.
    let rec_len = 2 * k * l + k * dim + energies + 1;
    let local: Result<Vec<f64>> = (|| {
        let mut rec = Vec::with_capacity(mine.len() * rec_len);
        for i in mine.clone() {
            let (za, zb) = (ends_z.row(2 * i), ends_z.row(2 * i + 1));
            let start = match ip.method {
                PathMethod::Linear => path::linear(za, zb, k),
                PathMethod::Slerp => path::slerp(za, zb, k),
                PathMethod::Geodesic => match ip.init {
                    PathInit::Graph => path::graph_path(
                        codes.as_ref().expect("checked: a graph needs codes").view(),
                        ip.neighbours,
                        za,
                        zb,
                        k,
                        "interpolate.neighbours",
                    )?,
                    PathInit::Linear => path::linear(za, zb, k),
                },
            };
            let p = fallible("the path's decoder", || {
                if geodesic {
                    geodesic::geodesic(
                        &decoder,
                        start.view(),
                        &settings,
                        barrier.as_ref().map(|f| f.density()),
                    )
                } else {
                    Ok(geodesic::measure(&decoder, start.clone()))
                }
            })??;
            rec.extend(start.iter());
            rec.extend(p.z.iter());
            rec.extend(p.x.iter());
            let mut e = p.energies.clone();
            e.resize(energies, *p.energies.last().unwrap_or(&f64::NAN));
            rec.extend(e);
            rec.push(p.length);
            bar.inc(1);
        }
        Ok(rec)
    })();
    let local = comm.agree(local)?;
    bar.finish();
    let all = gather_records(comm, &local, pairs.len(), rec_len)?;
    on_root(comm, || {
        let all = all.expect("rank 0 holds every path");
        let np = pairs.len();
        let block = |from: usize, len: usize| all.slice(s![.., from..from + len]).to_owned();
        let start = block(0, k * l)
            .into_shape_with_order((np, k, l))
            .map_err(|e| Error::external("paths", e))?;
        let z = block(k * l, k * l)
            .into_shape_with_order((np, k, l))
            .map_err(|e| Error::external("paths", e))?;
        let x = block(2 * k * l, k * dim)
            .into_shape_with_order((np, k, dim))
            .map_err(|e| Error::external("paths", e))?;
        let e = block(2 * k * l + k * dim, energies);
        let length = all.column(rec_len - 1).to_owned();
        let w = H5Writer::create(out, &Trained::stamp(comm, setup))?;
        t.write_provenance(&w)?;
        w.dataset("/paths/z", &z)?;
        w.dataset("/paths/x", &x)?;
        w.dataset("/paths/start_z", &start)?;
        w.dataset("/paths/energies", &e)?;
        w.dataset("/paths/energy", &e.column(energies - 1).to_owned())?;
        w.dataset("/paths/length", &length)?;
        let from: Array1<i64> = pairs.iter().map(|p| p.0).collect();
        let to: Array1<i64> = pairs.iter().map(|p| p.1).collect();
        w.dataset("/paths/from", &from)?;
        w.dataset("/paths/to", &to)?;
        w.attr_str("/paths", "method", ip.method.name())?;
        if let Some(f) = &barrier {
            f.write(&w, &scfg.density)?;
        }
        // The picture: strips of decoded images, or the paths over the
        // codes (a 2-D latent space), or over the data.
        if dim == 784 {
            let shown = np.min(k);
            let rows = x
                .slice(s![..shown, .., ..])
                .to_owned()
                .into_shape_with_order((shown * k, dim))
                .map_err(|e| Error::external("paths", e))?;
            let title = format!(
                "{shown} {} paths of {k} points (a row each)",
                ip.method.name()
            );
            tglml::io::plot::image_grid_png(&rows, 28, k, value_range(&ref_x), &title, &png)?;
        } else {
            let (reference, pts, unit) = if let (2, Some(codes)) = (l, codes.as_ref()) {
                (
                    codes,
                    z.to_shape((np * k, l))
                        .map_err(|e| Error::external("paths", e))?
                        .to_owned(),
                    "latent units",
                )
            } else {
                (
                    &ref_x,
                    x.to_shape((np * k, dim))
                        .map_err(|e| Error::external("paths", e))?
                        .to_owned(),
                    "data units",
                )
            };
            // At most 9 colours: paths beyond share them.
            let labels: Vec<i64> = (0..np * k).map(|r| (r / k) as i64 % 9).collect();
            let name = |l: i64| {
                let same: Vec<String> =
                    (l as usize..np).step_by(9).map(|p| p.to_string()).collect();
                format!("path {}", same.join(", "))
            };
            let title = format!("{np} {} paths of {k} points", ip.method.name());
            scatter_over(reference, &pts, &labels, &name, &title, unit, &png)?;
        }
        let path = w.commit()?;
        let mean_len = length.mean().unwrap_or(f64::NAN);
        Ok(format!(
                "interpolate: {np} {} paths of {k} points, mean decoded length {mean_len:.4}; wrote {} and {}",
                ip.method.name(),
                path.display(),
                png.display()
            ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_seeded_sorted_and_distinct() {
        let c = choose(100, 10, 3);
        assert_eq!(c.len(), 10);
        assert!(c.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(c, choose(100, 10, 3));
        assert_ne!(c, choose(100, 10, 4));
        assert_eq!(choose(5, 0, 1), vec![0, 1, 2, 3, 4]);
        assert_eq!(choose(5, 9, 1), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn pictures_go_beside_the_file() {
        assert_eq!(
            picture(Path::new("out/s.h5"), ".latent"),
            PathBuf::from("out/s.latent.png")
        );
        assert_eq!(picture(Path::new("s.h5"), ""), PathBuf::from("s.png"));
    }
}
