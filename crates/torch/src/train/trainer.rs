//! The training loop: data-parallel over MPI ranks, the global topological
//! loss, checkpoints and the run file.
//!
//! Each rank holds only its block of the data's rows ([`super::data`]).
//! Step t draws a global batch of G = batch_size × ranks training rows
//! (seeded by (seed, t), independent of the number of ranks); rank r takes
//! positions r·B..(r+1)·B of it. The reparameterisation noise of a row is
//! drawn from a stream keyed by (seed, t, position), so it does not depend
//! on which rank holds the row. Each rank's loss is its share of the
//! global-batch mean (sums divided by G). The topological loss is global:
//! the latent means of the whole batch are all-gathered (detached), the
//! pairing is computed once on the whole batch (the same on every rank),
//! and each rank back-propagates through its own rows only. After the
//! gradients are summed over ranks (one flattened float64 buffer), the
//! update equals single-process training on the whole batch.
//!
//! The loop fetches each batch one step ahead, and a second thread
//! ([`super::ahead`]) computes what the topological loss needs of the data
//! alone (its landmarks, its diagrams) while the current step trains.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use super::ahead::Ahead;
use super::average::Average;
use super::checkpoint::{self, Checkpoint, Named};
use super::classifier::{ClassifierModel, ClassifierSpec};
use super::data::{TestSplit, TrainData};
use super::diffusion::{DiffusionModel, DiffusionSpec};
use super::gan::{GanModel, GanSpec};
use super::model::{Batch, Model, Phase};
use super::norm::Tape;
use super::optim::{Adam, AdamConfig};
use super::topo_loss::{
    gamma, to_vec as values, topo_loss_with, Normalize, Shape, TopoKind, TopoLossConfig,
};
use super::vae::{kind_of, VaeModel, VaeSpec};
use tglml::config::{Config, ModelConfig, ModelKind, Monitor, Network, OptimizerName, TrainConfig};
use tglml::dist::Comm;
use tglml::error::{Error, Result};
use tglml::io::{H5Writer, Stamp};
use tglml::progress::Progress;

pub(crate) fn device_of(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "auto" => {
            if tch::Cuda::is_available() {
                let n = tch::Cuda::device_count().max(1) as usize;
                Ok(Device::Cuda(tglml::dist::local_rank() % n))
            } else if name == "cuda" {
                Err(Error::invalid(
                    "train.device",
                    "\"cuda\" asked for, but libtorch sees no CUDA device (see README, Building for CUDA)",
                ))
            } else {
                Ok(Device::Cpu)
            }
        }
        other => Err(Error::invalid(
            "train.device",
            format!("unknown device {other:?}"),
        )),
    }
}

fn topo_config(t: &TrainConfig) -> TopoLossConfig {
    TopoLossConfig {
        kind: match t.topo.kind.as_str() {
            "landscape" => TopoKind::Landscape,
            "signature" => TopoKind::Signature,
            _ => TopoKind::Wasserstein,
        },
        dims: t.topo.dims.clone(),
        weights: t.topo.weights.clone(),
        p: t.topo.p,
        normalize: match t.topo.normalize.as_str() {
            "max" => Normalize::Max,
            "mean" => Normalize::Mean,
            _ => Normalize::None,
        },
        landscape_levels: t.topo.landscape_levels,
        landscape_resolution: t.topo.landscape_resolution,
    }
}

/// The global batch of step `step`: G distinct training rows.
fn global_batch(seed: u64, step: u64, n: usize, g: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ step);
    rand::seq::index::sample(&mut rng, n, g.min(n)).into_vec()
}

/// The global batch of step `step` (G training positions): with
/// train.epochs, batch `step % per_epoch` of the seeded permutation of
/// epoch `step / per_epoch`; else [`global_batch`]'s fresh sample.
fn batch_positions(t: &TrainConfig, step: u64, n: usize, g: usize, per_epoch: u64) -> Vec<usize> {
    if t.epochs == 0 {
        return global_batch(t.seed, step, n, g);
    }
    let (epoch, k) = (step / per_epoch, (step % per_epoch) as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ 0xE90C);
    rng.set_stream(epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rand::Rng::random_range(&mut rng, 0..=i));
    }
    order[k * g..(k + 1) * g].to_vec()
}

/// The best checkpoint of a run with validation, beside checkpoint.h5.
pub const BEST: &str = "best.h5";

/// The validation rows and the validations so far (train.validation_fraction).
struct Validator {
    /// The rows, on rank 0.
    x: Option<Array2<f64>>,
    /// Their KL_0.1 density estimate (rank 0), computed once.
    px: Option<Vec<f64>>,
    every: u64,
    monitor: Monitor,
    patience: u64,
    /// The topological part of `monitor = "loss"`.
    topo: Option<ValidationTopo>,
    /// (step, reconstruction, KL_0.1, topological) of each validation (the
    /// topological loss NaN where the monitor does not need it).
    rows: Vec<[f64; 4]>,
}

/// What the topological part of the validation loss needs: the loss's
/// settings, its γ and the rows of a batch.
struct ValidationTopo {
    cfg: TopoLossConfig,
    gamma: f64,
    batch: usize,
    landmarks: usize,
    kind: Kind,
}

impl Validator {
    /// The checkpoint log's columns (names without '.').
    const COLUMNS: [&'static str; 4] = [
        "validation_step",
        "validation_reconstruction",
        "validation_kl01",
        "validation_topological",
    ];

    fn score(&self, r: &[f64; 4]) -> f64 {
        match self.monitor {
            Monitor::Reconstruction => r[1],
            Monitor::Kl01 => r[2],
            Monitor::Loss => r[1] + self.topo.as_ref().map_or(0.0, |t| t.gamma) * r[3],
        }
    }

    /// The first validation with the lowest score (NaN never is).
    fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, r) in self.rows.iter().enumerate() {
            let s = self.score(r);
            if best.is_none_or(|b| s < self.score(&self.rows[b])) {
                best = Some(i).filter(|_| !s.is_nan()).or(best);
            }
        }
        best
    }

    /// Validations after the best (all of them when none is).
    fn since_best(&self) -> usize {
        self.best()
            .map_or(self.rows.len(), |b| self.rows.len() - 1 - b)
    }

    /// Whether early stopping has run out of patience.
    fn exhausted(&self) -> bool {
        self.patience > 0 && self.since_best() as u64 >= self.patience
    }

    /// Validates after step `step` (collective; rank 0 computes); returns
    /// whether it is a new best.
    /// `latent_scale`: the learned unit of the latent distances now (the
    /// topological loss's, when it has one).
    fn run(
        &mut self,
        comm: &Comm,
        model: &dyn Model,
        step: u64,
        latent_scale: Option<f64>,
    ) -> Result<bool> {
        let local = match (&self.x, &self.px) {
            (Some(x), Some(px)) => match model.validate(x) {
                Some(Ok((recon, z))) => {
                    let pz = crate::eval::densities(&z, &[0.1]);
                    let topo = match &self.topo {
                        Some(vt) => validation_topological(x, &z, vt, latent_scale),
                        None => Ok(f64::NAN),
                    };
                    topo.map(|topo| vec![recon, crate::eval::kl_of(px, &pz[0]), topo])
                }
                Some(Err(e)) => Err(e),
                None => Err(Error::invalid(
                    "train.validation_fraction",
                    "this model has no validation",
                )),
            },
            _ => Ok(vec![0.0; 3]),
        };
        let mut v =
            comm.agree(local.map_err(|e| e.context(format!("validation after step {step}"))))?;
        comm.broadcast_f64_from(0, &mut v)?;
        self.rows.push([step as f64, v[0], v[1], v[2]]);
        Ok(self.best() == Some(self.rows.len() - 1))
    }

    fn columns(&self) -> Vec<(String, Vec<f64>)> {
        Self::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), self.rows.iter().map(|r| r[i]).collect()))
            .collect()
    }

    /// The validations stored in a checkpoint's log (none when it has no
    /// such columns; the topological loss NaN where it has none, as in a
    /// checkpoint of an older tglml).
    fn restore(&mut self, log: &[(String, Vec<f64>)]) {
        let col = |n: &str| log.iter().find(|(m, _)| m == n).map(|(_, c)| c);
        let cols: Option<Vec<&Vec<f64>>> = Self::COLUMNS[..3].iter().map(|n| col(n)).collect();
        if let Some(c) = cols.filter(|c| c.iter().all(|v| v.len() == c[0].len())) {
            let topo = col(Self::COLUMNS[3]).filter(|t| t.len() == c[0].len());
            self.rows = (0..c[0].len())
                .map(|i| [c[0][i], c[1][i], c[2][i], topo.map_or(f64::NAN, |t| t[i])])
                .collect();
        }
    }

    /// The line the progress report shows after a validation.
    fn line(&self) -> String {
        let r = self.rows.last().expect("after a validation");
        let best = self.best().map(|b| self.rows[b][0] as u64);
        format!(
            "train: validation after step {}: reconstruction {:.5}, KL_0.1 {:.5}{} (best {} at step {}{})",
            r[0],
            r[1],
            r[2],
            if self.monitor == Monitor::Loss {
                format!(", topological {:.5}, loss {:.5}", r[3], self.score(r))
            } else {
                String::new()
            },
            self.monitor.name(),
            best.map_or("none".to_string(), |s| s.to_string()),
            if self.patience > 0 {
                format!(", {} of patience {} used", self.since_best(), self.patience)
            } else {
                String::new()
            }
        )
    }
}

/// What the topological loss needs of a data batch alone: the rows it
/// compares (maxmin landmarks of the batch, or all of it) and their
/// [`Shape`].
struct DataSide {
    /// Landmark positions in the batch (`None`: every row).
    landmarks: Option<Vec<usize>>,
    shape: Shape,
}

impl DataSide {
    /// For the global batch `xb` as a tensor of `kind` holds it (its rows
    /// rounded to float32 for `Kind::Float`), with `landmarks` maxmin
    /// landmarks when 0 < landmarks < its rows.
    fn of(xb: &Array2<f64>, landmarks: usize, kind: Kind, maxdim: usize) -> Result<DataSide> {
        let landmarks = if landmarks > 0 && landmarks < xb.nrows() {
            let l = tglml::topology::landmarks::select(
                xb.view(),
                landmarks,
                tglml::topology::landmarks::LandmarkMethod::MaxMin,
            )?;
            Some(l.indices)
        } else {
            None
        };
        let mut rows = match &landmarks {
            Some(at) => xb.select(ndarray::Axis(0), at),
            None => xb.clone(),
        };
        if kind == Kind::Float {
            rows.mapv_inplace(|v| v as f32 as f64);
        }
        let shape = Shape::of(rows.view(), maxdim)?;
        Ok(DataSide { landmarks, shape })
    }

    /// The rows the loss compares: of the batch `xb` (as a tensor of
    /// `kind` on `dev`) and of its codes `z` (one row per row of `xb`).
    fn compared(&self, xb: &Array2<f64>, z: Tensor, kind: Kind, dev: Device) -> (Tensor, Tensor) {
        match &self.landmarks {
            // Maxmin landmarks of the batch in data space: the same rows
            // on every rank.
            Some(at) => {
                let idx: Vec<i64> = at.iter().map(|&i| i as i64).collect();
                let sel = Tensor::from_slice(&idx).to_device(dev);
                (rows_tensor(xb, at, kind, dev), z.index_select(0, &sel))
            }
            None => {
                let all: Vec<usize> = (0..xb.nrows()).collect();
                (rows_tensor(xb, &all, kind, dev), z)
            }
        }
    }
}

fn rows_tensor(x: &Array2<f64>, rows: &[usize], kind: Kind, dev: Device) -> Tensor {
    let d = x.ncols();
    let t = if kind == Kind::Float {
        // Rounded once, as to_kind would (to nearest), without a float64
        // copy first.
        let mut v: Vec<f32> = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            v.extend(x.row(r).iter().map(|&a| a as f32));
        }
        Tensor::from_slice(&v)
    } else {
        let mut v: Vec<f64> = Vec::with_capacity(rows.len() * d);
        for &r in rows {
            v.extend(x.row(r).iter());
        }
        Tensor::from_slice(&v).to_kind(kind)
    };
    t.view([rows.len() as i64, d as i64]).to_device(dev)
}

/// Refuses a checkpoint whose values cannot be those of a run of this
/// configuration: weights that are not finite, a step beyond
/// `train.steps`, a data position other than its step, a log of another
/// length than its step count.
fn check_resumed(path: &Path, ck: &Checkpoint, steps: u64) -> Result<()> {
    let bad = |m: String| Error::invalid(path.display().to_string(), m);
    for (name, t) in &ck.tensors {
        if t.isfinite().all().int64_value(&[]) == 0 {
            return Err(bad(format!(
                "/model/{name} holds values that are not finite (NaN or infinite): the run it came from diverged; resume from an earlier checkpoint or start over with --overwrite"
            )));
        }
    }
    if ck.step > steps {
        return Err(bad(format!(
            "is at step {}, beyond train.steps = {steps}: raise --steps to continue it",
            ck.step
        )));
    }
    if ck.data_position != ck.step {
        return Err(bad(format!(
            "its data position ({}) is not its step ({}): not a checkpoint of tglml train, or damaged",
            ck.data_position, ck.step
        )));
    }
    if let Some((_, col)) = ck.log.iter().find(|(n, _)| n == "step") {
        if col.len() as u64 != ck.step {
            return Err(bad(format!(
                "its training log has {} rows for {} steps: damaged",
                col.len(),
                ck.step
            )));
        }
    }
    Ok(())
}

/// The names of the training log's columns: the step, each phase's loss
/// terms, γ, the step's seconds, and the topological loss per dimension.
/// `/train/<name>` in run.h5 and `/log/<name>` in checkpoint.h5.
fn log_names(phases: &[Phase], dims: &[usize]) -> Vec<String> {
    let mut names = vec!["step".to_string()];
    names.extend(
        phases
            .iter()
            .flat_map(|p| p.terms.iter().map(|t| t.to_string())),
    );
    names.extend(["gamma".to_string(), "step_seconds".to_string()]);
    names.extend(dims.iter().map(|k| format!("topo_h{k}")));
    names
}

/// The training log (rows in the order of `names`) as named columns.
fn log_columns(log: &[Vec<f64>], names: &[String]) -> Vec<(String, Vec<f64>)> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), log.iter().map(|r| r[i]).collect()))
        .collect()
}

/// The log rows stored in a checkpoint of step `steps`, or `None` when a
/// column of `names` is missing or of another length (a checkpoint
/// without a log, or of another configuration).
fn log_rows(cols: &[(String, Vec<f64>)], names: &[String], steps: u64) -> Option<Vec<Vec<f64>>> {
    let found: Vec<&Vec<f64>> = names
        .iter()
        .map(|name| {
            cols.iter()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c)
                .filter(|c| c.len() as u64 == steps)
        })
        .collect::<Option<_>>()?;
    Some(
        (0..steps as usize)
            .map(|i| found.iter().map(|c| c[i]).collect())
            .collect(),
    )
}

/// How `tglml train` ended without error.
pub enum Finish {
    /// Every step done; rank 0's summary.
    Complete(String),
    /// Stopped early on a signal after a checkpoint; rank 0's message.
    Interrupted(String),
}

/// The files `tglml train` writes into `out` (checked before training).
pub fn output_files(out: &Path, config: &Config) -> Vec<PathBuf> {
    let kind = config.model.kind;
    let mut files = vec!["checkpoint.h5", "run.h5"];
    if config.train.validation_fraction > 0.0 {
        files.push(BEST);
    }
    if kind != ModelKind::Classifier {
        files.push(super::model::SAMPLES_PLOT);
    }
    if kind == ModelKind::Vae {
        files.push(VaeModel::PLOT);
    }
    files.iter().map(|f| out.join(f)).collect()
}

/// Refuses an output folder that is a file, or that holds a checkpoint
/// when neither `--resume` nor `--overwrite` was given.
pub fn check_fresh_start(out: &Path, resume: bool, overwrite: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::invalid(
            out.display().to_string(),
            "is a file; --out names the folder of checkpoint.h5 and run.h5",
        ));
    }
    let ck = out.join("checkpoint.h5");
    if resume || overwrite || !ck.exists() {
        return Ok(());
    }
    let what = match checkpoint::load(&ck) {
        Ok(c) => format!("a checkpoint at step {}", c.step),
        Err(_) => "a file that is not a readable checkpoint".to_string(),
    };
    Err(Error::invalid(
        ck.display().to_string(),
        format!(
            "holds {what}: continue that run with --resume, or start over with --overwrite (which replaces it), or choose another --out"
        ),
    ))
}

/// Runs `tglml train`. When `stop` is set on any rank (a signal), every
/// rank finishes the current step, rank 0 writes a checkpoint, and the run
/// ends as [`Finish::Interrupted`]; `--resume` continues it exactly.
pub fn run(
    comm: &Comm,
    config: &Config,
    threads: usize,
    out: &Path,
    resume: bool,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Finish> {
    let t = &config.train;
    let t_start = Instant::now();
    // The step's parallel calls (Rips, landmarks) run on this thread's own
    // pool, without a hand-off per call.
    let _pool = tglml::runtime::adopt_current_thread(threads);
    let kind = kind_of(&t.dtype)?;
    let dev = device_of(&t.device)?;
    let data = TrainData::load(comm, config)?;
    let (p, rank) = (comm.size(), comm.rank());
    let b = t.batch_size;
    let g = b * p;
    if g > data.n_train() {
        return Err(Error::invalid(
            "train.batch_size",
            format!(
                "the global batch ({b} × {p} ranks = {g}) is larger than the training split ({} rows)",
                data.n_train()
            ),
        ));
    }
    // Steps per epoch: whole global batches of the training split.
    let per_epoch = (data.n_train() / g) as u64;
    let steps = if t.epochs > 0 {
        t.epochs * per_epoch
    } else {
        t.steps
    };
    let held = comm.all_reduce_max_u64(data.held().0 as u64);
    if comm.is_root() {
        eprintln!(
            "train: {} rows of {} values ({} for training); each of {p} ranks holds at most {held} rows",
            data.held().1,
            data.dim(),
            data.n_train()
        );
    }
    tch::manual_seed(t.seed as i64);
    let mut vs = nn::VarStore::new(dev);
    let (model, average) = build_model(comm, &vs, &config.model, t, data.dim(), b, kind)?;
    let phases = model.phases();
    // A learned unit of the latent space for the topological loss
    // (train.topo.latent_scale = "learned"): s = exp(θ), θ trained by the
    // phase that carries the loss.
    let log_scale = (t.topo.latent_scale == "learned").then(|| {
        let theta = t.topo.latent_scale_init.ln();
        vs.root().var(LOG_SCALE, &[1], nn::Init::Const(theta))
    });
    vs.set_kind(kind);
    let (param_names, params) = phase_params(&vs, &phases)?;
    let mut adams = params
        .iter()
        .zip(&phases)
        .map(|(ps, ph)| {
            Adam::new(
                ps,
                AdamConfig {
                    lr: t.lr,
                    beta1: ph.beta1,
                    weight_decay: t.weight_decay,
                    decoupled_weight_decay: t.optimizer == OptimizerName::Adamw,
                    ..AdamConfig::default()
                },
            )
        })
        .collect::<Result<Vec<Adam>>>()?;
    let mut grads: Vec<GradSum> = params
        .iter()
        .zip(&phases)
        .map(|(ps, ph)| GradSum::new(ps, ph.terms.len() + 2, p))
        .collect();
    let columns = log_names(&phases, &t.topo.dims);
    let ck_path = out.join("checkpoint.h5");
    let best_path = out.join(BEST);
    let mut start = 0u64;
    let mut log: Vec<Vec<f64>> = Vec::new();
    // The validation rows (rank 0) and their density estimate, once.
    let mut validator = if t.validation_fraction > 0.0 {
        let x = data.validation_split(comm)?;
        let px = x
            .as_ref()
            .map(|x| crate::eval::densities(x, &[0.1]).remove(0));
        let topo = (t.monitor == Monitor::Loss).then(|| ValidationTopo {
            cfg: topo_config(t),
            gamma: t.topo.gamma,
            batch: g,
            landmarks: t.topo.landmarks,
            kind,
        });
        Some(Validator {
            x,
            px,
            every: if t.validate_every > 0 {
                t.validate_every
            } else {
                per_epoch
            },
            monitor: t.monitor,
            patience: t.patience,
            topo,
            rows: Vec::new(),
        })
    } else {
        None
    };
    if resume {
        let mut named: Vec<Named<&mut Adam>> = phases
            .iter()
            .zip(&param_names)
            .zip(adams.iter_mut())
            .map(|((ph, names), adam)| Named {
                name: ph.name,
                params: names,
                adam,
            })
            .collect();
        let ck = comm.agree(checkpoint::restore(&ck_path, &mut vs, &mut named))?;
        // Resuming with other settings (more steps, another γ) is allowed;
        // say so, since the run is then not the one the checkpoint began.
        if comm.is_root() && ck.config_toml != config.to_toml() {
            eprintln!(
                "train: resuming from step {} of {} with a configuration that differs from the checkpoint's",
                ck.step,
                ck_path.display()
            );
        }
        comm.agree(check_resumed(&ck_path, &ck, steps))?;
        start = ck.step;
        if comm.is_root() {
            eprintln!(
                "train: resuming from step {} of {} ({})",
                ck.step,
                steps,
                ck_path.display()
            );
        }
        match log_rows(&ck.log, &columns, ck.step) {
            Some(rows) => log = rows,
            None if comm.is_root() => eprintln!(
                "train: {} has no training log for its {} steps (another train.topo.dims, or an older tglml); run.h5's log starts at step {}",
                ck_path.display(),
                ck.step,
                ck.step
            ),
            None => {}
        }
        if let Some(v) = validator.as_mut() {
            v.restore(&ck.log);
        }
    }
    let mut stopped_early = validator.as_ref().is_some_and(|v| v.exhausted());
    let stamp = Stamp {
        command: "train".to_string(),
        config_toml: config.to_toml(),
        n_ranks: p,
        threads_per_rank: threads,
    };
    let topo_cfg = topo_config(t);
    let bar = Progress::new(
        comm.is_root(),
        "train",
        if stopped_early {
            0
        } else {
            steps.saturating_sub(start)
        },
        "steps",
    );
    let mut last_saved: Option<PathBuf> = None;
    // The steps with the topological loss, and what they need of the data
    // alone, computed a step ahead on a second thread.
    let carried = phases.iter().any(|ph| ph.topological);
    let topo_on = |step: u64| {
        carried && gamma(step, t.topo.gamma, t.topo.ramp_steps) > 0.0 && !t.topo.dims.is_empty()
    };
    type Queue = Option<Ahead<(u64, Result<DataSide>)>>;
    let mut ahead: Queue = if (start..steps).any(topo_on) {
        Some(Ahead::new("tglml-data-side", threads).map_err(|e| {
            Error::external("starting the thread of the topological loss's data side", e)
        })?)
    } else {
        None
    };
    let (landmarks, maxdim) = (t.topo.landmarks, topo_cfg.maxdim());
    // Every rank gets the whole global batch's rows (the topological loss
    // needs them all) and trains on its own B; collective, in step order.
    type Fetched = (std::sync::Arc<Array2<f64>>, Option<Vec<i64>>);
    let fetch = |ahead: &mut Queue, step: u64| -> Result<Fetched> {
        let batch = batch_positions(t, step, data.n_train(), g, per_epoch);
        let xb = std::sync::Arc::new(data.batch(comm, &batch)?);
        if let (Some(a), true) = (ahead.as_mut(), topo_on(step)) {
            let rows = xb.clone();
            a.give(move || (step, DataSide::of(&rows, landmarks, kind, maxdim)));
        }
        Ok((xb, data.batch_labels(&batch)))
    };
    let mut next = if start < steps && !stopped_early {
        Some(fetch(&mut ahead, start)?)
    } else {
        None
    };
    let last_good = |saved: &Option<PathBuf>| {
        saved
            .as_ref()
            .map_or("none written yet".to_string(), |p| p.display().to_string())
    };
    // Freed memory back to the system every few seconds: without it glibc
    // can keep gigabytes of it resident over a long run.
    let mut trim = tglml::runtime::MemoryTrim::new(std::time::Duration::from_secs(5));
    for step in start..steps {
        if stopped_early {
            break;
        }
        trim.tick();
        let t0 = Instant::now();
        let (xb, yb) = next.take().expect("fetched a step ahead");
        if step + 1 < steps {
            next = Some(fetch(&mut ahead, step + 1)?);
        }
        let mine: Vec<usize> = (rank * b..(rank + 1) * b).collect();
        let x_local = rows_tensor(&xb, &mine, kind, dev);
        let y_local = yb.map(|y| Tensor::from_slice(&y[rank * b..(rank + 1) * b]).to_device(dev));
        let gam = gamma(step, t.topo.gamma, t.topo.ramp_steps);
        let mut row = vec![step as f64];
        let mut topo_parts = vec![0.0; t.topo.dims.len()];
        let mut stopping = false;
        for (k, phase) in phases.iter().enumerate() {
            // Each phase's batch-norm layers, for their part of its
            // backward pass.
            let tape = Tape::new(comm, g);
            let batch = Batch {
                x: &x_local,
                step,
                rows: rank * b..(rank + 1) * b,
                seed: t.seed,
                kind,
                device: dev,
                topological: topo_on(step),
                labels: y_local.as_ref(),
                norm: &tape,
            };
            let at = if phases.len() == 1 {
                format!("training step {step}")
            } else {
                format!("training step {step}, phase {:?}", phase.name)
            };
            // A failure inside libtorch (an allocation, a shape) is an
            // error that reaches every rank, not a panic.
            let forward = tglml::runtime::fallible(&format!("{at}, forward pass"), || {
                crate::test_torch_fault_point(rank);
                let l = model.loss(k, &batch);
                let live = l.live.as_ref().map(values);
                (l, live)
            });
            // A NaN or infinite loss stops every rank at the same step.
            let checked = forward.and_then(|(l, live)| {
                let live_ok = live
                    .as_ref()
                    .is_none_or(|v| v.iter().all(|x| x.is_finite()));
                if l.terms.iter().all(|v| v.is_finite()) && live_ok {
                    Ok((l, live))
                } else {
                    let sums: Vec<String> = phase
                        .terms
                        .iter()
                        .zip(&l.terms)
                        .map(|(n, v)| format!("{n} sum {v:e}"))
                        .collect();
                    Err(Error::invalid(
                        at.clone(),
                        format!(
                            "the loss is not finite (this rank's {}{}); last good checkpoint: {}",
                            sums.join(", "),
                            match &live {
                                Some(_) if !live_ok => ", live points not finite",
                                Some(_) => ", live points finite",
                                None => "",
                            },
                            last_good(&last_saved)
                        ),
                    ))
                }
            });
            let (l, live_local) = comm.agree(checked)?;
            let mut loss = &l.sum / g as f64;
            if phase.topological {
                if let Some(th) = &log_scale {
                    // Gives θ a (zero) gradient on steps without the loss
                    // (γ = 0 during the ramp), so every parameter has one
                    // to all-reduce.
                    loss += th.sum(kind) * 0.0;
                }
                if topo_on(step) {
                    // Taken whatever follows, so that the queue stays in
                    // step with the loop.
                    let side = match ahead.as_mut().and_then(|a| a.take()) {
                        Some((at, side)) if at == step => side,
                        _ => unreachable!(
                            "the data side of step {step} was given to the background thread"
                        ),
                    };
                    let side =
                        comm.agree(side.map_err(|e| {
                            e.context(format!("{at}, topological loss (data batch)"))
                        }))?;
                    let (Some(live), Some(live_local)) = (&l.live, &live_local) else {
                        unreachable!(
                            "the phase {:?} carries the topological loss but gave no live points",
                            phase.name
                        )
                    };
                    let tl = global_topo_loss(
                        comm, &xb, &side, live, live_local, &topo_cfg, &log_scale, g, kind, dev,
                    )
                    .map_err(|e| e.context(format!("{at}, topological loss")));
                    let tl = comm.agree(tl)?;
                    topo_parts = tl.per_dim.clone();
                    loss += tl.total * gam;
                }
            }
            Adam::zero_grad(&params[k]);
            let what = format!("{at}, backward pass");
            let backward = if tape.is_empty() {
                tglml::runtime::fallible(&what, || loss.backward())
            } else {
                super::norm::backward_kept(&loss, &what)
            };
            // The batch-norm layers' part (collective on every rank, even
            // after a failure here, so that none waits alone).
            let norm = tape.backward(backward.is_err());
            let backward = backward.and(norm);
            // Then the loss sums and this rank's stop flag: one all-reduce
            // gives every rank the same decision to stop after this step.
            // A failed backward pass rides in the same all-reduce: every
            // rank learns of it, and the failing rank's message reaches
            // rank 0.
            let stop_here = f64::from(u8::from(stop.load(std::sync::atomic::Ordering::Relaxed)));
            let mut scalars = l.terms.clone();
            scalars.push(stop_here);
            scalars.push(f64::from(u8::from(backward.is_err())));
            let summed = grads[k].all_reduce(comm, &params[k], &scalars);
            let nt = l.terms.len();
            if summed[nt + 1] > 0.0 {
                comm.agree(backward)?;
            }
            stopping |= summed[nt] > 0.0;
            let total = loss.double_value(&[]);
            if !total.is_finite() {
                let parts: Vec<String> = phase
                    .terms
                    .iter()
                    .zip(&summed)
                    .map(|(n, v)| format!("{n} {:.4e}", v / g as f64))
                    .collect();
                comm.agree::<()>(Err(Error::invalid(
                    at.clone(),
                    format!(
                        "the loss is {total} ({}, topological {topo_parts:?}); last good checkpoint: {}",
                        parts.join(", "),
                        last_good(&last_saved)
                    ),
                )))?;
            }
            adams[k].step(&params[k]);
            row.extend(summed[..nt].iter().map(|v| v / g as f64));
        }
        model.after_step(step);
        if let Some(a) = &average {
            a.update(step);
        }
        if t.hash_every > 0 && (step + 1) % t.hash_every == 0 {
            let h = checkpoint::param_hash(&vs);
            let all = comm.all_gather_u64(h);
            if let Some(r) = all.iter().position(|&x| x != all[0]) {
                return Err(Error::invalid(
                    format!("training step {}", step + 1),
                    format!(
                        "the parameters of rank {r} differ from rank 0's (hash {:016x} vs {:016x}): the ranks diverged",
                        all[r], all[0]
                    ),
                ));
            }
        }
        row.push(gam);
        row.push(t0.elapsed().as_secs_f64());
        row.extend(topo_parts);
        log.push(row);
        bar.inc(1);
        let is_last = step + 1 == steps;
        let periodic = t.checkpoint_every > 0 && (step + 1) % t.checkpoint_every == 0;
        let mut new_best = false;
        if let Some(v) = validator.as_mut() {
            if (step + 1) % v.every == 0 {
                let unit = log_scale.as_ref().map(|th| th.double_value(&[]).exp());
                let mut validate = || v.run(comm, model.as_ref(), step + 1, unit);
                new_best = match &average {
                    Some(a) => a.swapped(validate),
                    None => validate(),
                }?;
                stopped_early = v.exhausted();
                bar.note(&v.line());
            }
        }
        // checkpoint.h5 (periodic, last, on a signal, on early stopping)
        // and best.h5 (a new best validation): one snapshot for both.
        let to_checkpoint = is_last || periodic || stopping || stopped_early;
        if to_checkpoint || new_best {
            let saved = if comm.is_root() {
                let named: Vec<Named<&Adam>> = phases
                    .iter()
                    .zip(&param_names)
                    .zip(&adams)
                    .map(|((ph, names), adam)| Named {
                        name: ph.name,
                        params: names,
                        adam,
                    })
                    .collect();
                Checkpoint::capture(&vs, &named).and_then(|mut ck| {
                    ck.step = step + 1;
                    ck.data_position = step + 1;
                    ck.config_toml = config.to_toml();
                    ck.log = log_columns(&log, &columns);
                    if let Some(v) = &validator {
                        ck.log.extend(v.columns());
                    }
                    if new_best {
                        checkpoint::save(&best_path, &stamp, &ck)?;
                    }
                    if to_checkpoint {
                        checkpoint::save(&ck_path, &stamp, &ck).map(Some)
                    } else {
                        Ok(None)
                    }
                })
            } else {
                Ok(None)
            };
            if let Some(p) = comm.agree(saved)? {
                last_saved = Some(p);
            }
        }
        if stopping && !is_last {
            bar.finish();
            return Ok(Finish::Interrupted(format!(
                "train: stopped on a signal ({}) after step {} of {}; checkpoint {}; continue with the same command and --resume",
                tglml::runtime::STOP_SIGNALS,
                step + 1,
                steps,
                ck_path.display()
            )));
        }
    }
    bar.finish();
    tglml::runtime::return_free_memory();
    // Evaluation and the run file (rank 0), with the best validation's
    // weights when the run validated.
    let test = data.test_split(comm, config)?;
    let outcome = match &test {
        Some(test) => {
            let mut summary = format!(
                "trained {} steps (this run: {} steps from step {start}, {:.1} s)",
                log.len(),
                (log.len() as u64).saturating_sub(start),
                t_start.elapsed().as_secs_f64()
            );
            let best = match &validator {
                Some(v) => load_best(&best_path, v, &vs).map(Some),
                None => Ok(None),
            };
            if let Some(a) = &average {
                a.install();
                summary.push_str(&format!(
                    "; evaluated with the weights' moving average (train.ema = {})",
                    t.ema
                ));
            }
            best.and_then(|best| {
                if let (Some(v), Some(line)) = (&validator, best) {
                    summary = format!(
                        "{summary}{}; {line}",
                        if stopped_early {
                            format!(
                                "; stopped early: {} validations without a better {}",
                                v.since_best(),
                                v.monitor.name()
                            )
                        } else {
                            String::new()
                        }
                    );
                }
                write_run(
                    out,
                    &stamp,
                    model.as_ref(),
                    test,
                    data.scale(),
                    &log,
                    &columns,
                    validator.as_ref(),
                    summary,
                )
            })
            .map(Some)
        }
        None => Ok(None),
    };
    Ok(Finish::Complete(comm.agree(outcome)?.unwrap_or_default()))
}

/// Puts the weights of best.h5 (the best validation) into `vs` (rank 0,
/// for the final evaluation) after checking that it is the best of the
/// validations `v` lists; returns the summary's words for it.
fn load_best(path: &Path, v: &Validator, vs: &nn::VarStore) -> Result<String> {
    let Some(b) = v.best() else {
        return Ok(if v.rows.is_empty() {
            format!(
                "no validation ran (every {} steps): the final evaluation uses the last weights",
                v.every
            )
        } else {
            format!(
                "no validation gave a finite {}: the final evaluation uses the last weights",
                v.monitor.name()
            )
        });
    };
    let want = v.rows[b][0] as u64;
    let ck = checkpoint::load(path)?;
    if ck.step != want {
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "is the checkpoint of step {}, but the best validation of this run was after step {want}: it was written by another run or configuration; start over with --overwrite",
                ck.step
            ),
        ));
    }
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in &ck.tensors {
            let Some(dst) = vars.get(name) else {
                return Err(Error::invalid(
                    path.display().to_string(),
                    format!("holds /model/{name}, which this model does not have"),
                ));
            };
            dst.shallow_clone()
                .copy_(&t.to_kind(dst.kind()).to_device(dst.device()));
        }
        Ok(())
    })?;
    Ok(format!(
        "the final evaluation uses {} (step {want}, validation {} {:.5})",
        path.display(),
        v.monitor.name(),
        v.score(&v.rows[b])
    ))
}

/// The VarStore name of the learned latent unit's log (train.topo.latent_scale).
pub(crate) const LOG_SCALE: &str = "topo_log_scale";

/// The model of `[model]`, its memory checked against the budget first.
pub(crate) fn build_model(
    comm: &Comm,
    vs: &nn::VarStore,
    m: &ModelConfig,
    t: &TrainConfig,
    input_dim: usize,
    batch: usize,
    kind: Kind,
) -> Result<(Box<dyn Model>, Option<Average>)> {
    let elem = if kind == Kind::Double { 8 } else { 4 };
    let guard = |n_params: Option<u64>, size: tglml::guard::Size| {
        // train.ema: a second copy of every weight.
        let size = match n_params {
            Some(n) if t.ema > 0.0 => size.plus(tglml::guard::Size::of(n, elem)),
            _ => size,
        };
        comm.agree(tglml::guard::need(
            &format!(
                "training the network ({} parameters, batches of {batch} rows)",
                n_params.map_or("over 2^64".to_string(), |n: u64| n.to_string())
            ),
            size,
            "model.hidden or train.batch_size",
        ))
    };
    let (samples, seed) = (m.samples, t.seed);
    let model: Box<dyn Model> = match m.kind {
        ModelKind::Vae => {
            let spec = VaeSpec::of(m, input_dim);
            let (n_params, size) = spec.memory(batch, elem);
            guard(n_params, size)?;
            let v = &m.vae;
            Box::new(
                comm.agree(
                    tglml::runtime::fallible("building the network", || {
                        VaeModel::new(
                            &vs.root(),
                            &spec,
                            v.variational,
                            v.beta,
                            samples,
                            seed,
                            kind,
                        )
                    })
                    .and_then(|built| built),
                )?,
            )
        }
        ModelKind::Gan => {
            if m.network == Network::Conv {
                for (key, w) in [
                    ("model.hidden", &m.hidden),
                    ("model.gan.disc_hidden", &m.gan.disc_hidden),
                ] {
                    if w.len() != 2 {
                        return Err(Error::invalid(
                            key,
                            format!("a convolutional GAN (model.network = \"conv\") takes two channel counts here (the generator's at 7 × 7 and at 14 × 14 and 28 × 28; the discriminator's at 14 × 14 and 7 × 7), got {w:?}"),
                        ));
                    }
                }
            }
            let spec = GanSpec {
                input_dim,
                latent_dim: m.latent_dim,
                gen_hidden: m.hidden.clone(),
                disc_hidden: m.gan.disc_hidden.clone(),
                r1: m.gan.r1,
                beta1: m.gan.beta1,
                conv: m.network == Network::Conv,
            };
            let (n_params, size) = spec.memory(batch, elem);
            guard(n_params, size)?;
            Box::new(
                comm.agree(
                    tglml::runtime::fallible("building the networks", || {
                        GanModel::new(&vs.root(), &spec, samples, seed, kind)
                    })
                    .and_then(|built| built),
                )?,
            )
        }
        ModelKind::Classifier => {
            let spec = ClassifierSpec {
                conv: m.network == Network::Conv,
                input_dim,
                hidden: m.hidden.clone(),
                classes: m.classifier.classes,
            };
            let (n_params, size) = spec.memory(batch, elem);
            guard(n_params, size)?;
            Box::new(
                comm.agree(
                    tglml::runtime::fallible("building the network", || {
                        ClassifierModel::new(&vs.root(), &spec, kind)
                    })
                    .and_then(|built| built),
                )?,
            )
        }
        ModelKind::Diffusion | ModelKind::LatentDiffusion => {
            let ck =
                (m.kind == ModelKind::LatentDiffusion).then(|| PathBuf::from(&m.vae_checkpoint));
            let spec = DiffusionSpec {
                cfg: &m.diffusion,
                input_dim,
                network: m.network,
                hidden: &m.hidden,
                vae_checkpoint: ck.as_deref(),
            };
            let dim = comm.agree(DiffusionModel::dim_of(&spec))?;
            let (n_params, size) =
                DiffusionModel::memory(dim, m.network, &m.hidden, &m.diffusion, batch, elem);
            guard(n_params, size)?;
            Box::new(
                comm.agree(
                    tglml::runtime::fallible("building the networks", || {
                        DiffusionModel::new(vs, &spec, samples, seed, kind)
                    })
                    .and_then(|built| built),
                )?,
            )
        }
    };
    Ok((model, Average::attach(vs, t.ema)))
}

/// Each phase's parameters, their names and tensors: the trainable
/// variables under its prefixes (the learned latent unit goes with the
/// phase that carries the topological loss), in
/// [`checkpoint::trainable`]'s order. A variable in no phase or in two is
/// a bug of the model.
type PhaseParams = (Vec<Vec<String>>, Vec<Vec<Tensor>>);
fn phase_params(vs: &nn::VarStore, phases: &[Phase]) -> Result<PhaseParams> {
    if phases.iter().filter(|p| p.topological).count() > 1 {
        return Err(Error::invalid(
            "model",
            "more than one optimizer phase carries the topological loss (an internal error)",
        ));
    }
    let mut names: Vec<Vec<String>> = phases.iter().map(|_| Vec::new()).collect();
    let mut out: Vec<Vec<Tensor>> = phases.iter().map(|_| Vec::new()).collect();
    for (name, tensor) in checkpoint::trainable(vs) {
        let owners: Vec<usize> = (0..phases.len())
            .filter(|&k| {
                if name == LOG_SCALE {
                    phases[k].topological
                } else {
                    phases[k].prefixes.iter().any(|p| name.starts_with(p))
                }
            })
            .collect();
        match owners.as_slice() {
            [k] => {
                names[*k].push(name);
                out[*k].push(tensor);
            }
            _ => {
                return Err(Error::invalid(
                    "model",
                    format!(
                        "the variable {name:?} belongs to {} optimizer phases; every trainable variable belongs to exactly one (an internal error)",
                        owners.len()
                    ),
                ))
            }
        }
    }
    Ok((names, out))
}

/// The topological loss of the global batch: the data side (X's rows or
/// landmarks, and their shape) against the live points of every rank,
/// this rank's rows live and the others' as constants (all-gathered), so
/// that each rank back-propagates through its own rows only.
#[allow(clippy::too_many_arguments)]
fn global_topo_loss(
    comm: &Comm,
    xb: &Array2<f64>,
    side: &DataSide,
    live: &Tensor,
    live_local: &[f64],
    cfg: &TopoLossConfig,
    log_scale: &Option<Tensor>,
    g: usize,
    kind: Kind,
    dev: Device,
) -> Result<super::topo_loss::TopoLoss> {
    let (p, rank) = (comm.size(), comm.rank());
    let size = live.size();
    let (b, d) = (size[0], size[1]);
    let all = comm.all_gather_f64_slice(live_local)?;
    let all = Tensor::from_slice(&all)
        .view([g as i64, d])
        .to_kind(kind)
        .to_device(dev);
    // Own rows live, the others constants.
    let mut parts: Vec<Tensor> = Vec::with_capacity(3);
    if rank > 0 {
        parts.push(all.narrow(0, 0, rank as i64 * b));
    }
    parts.push(live.shallow_clone());
    if rank + 1 < p {
        parts.push(all.narrow(0, (rank as i64 + 1) * b, (p - rank - 1) as i64 * b));
    }
    let (x_all, z_mix) = side.compared(xb, Tensor::cat(&parts, 0), kind, dev);
    // Every rank sees all of the batch's distances, so each would add the
    // whole gradient of θ; 1/p of it each sums to one.
    let scale = log_scale.as_ref().map(|th| {
        let fixed = th.detach();
        (&fixed + (th - &fixed) / p as f64).exp()
    });
    topo_loss_with(&x_all, &side.shape, &z_mix, cfg, scale.as_ref())
}

/// The topological part of the validation loss (train.monitor = "loss"):
/// the mean of the topological loss (Σ_k w_k · L_k, before γ) between the
/// rows of `x` and their codes `z`, over the full batches of `vt.batch`
/// rows in order (the rest left out, as a data loader that drops the last
/// batch leaves it), with maxmin landmarks of each batch as in training;
/// with no gradient, on rank 0.
fn validation_topological(
    x: &Array2<f64>,
    z: &Array2<f64>,
    vt: &ValidationTopo,
    latent_scale: Option<f64>,
) -> Result<f64> {
    let (n, b) = (x.nrows(), vt.batch);
    let full = n / b.max(1);
    if full == 0 || z.nrows() != n {
        return Err(Error::invalid(
            "validation loss",
            format!(
                "{n} validation rows and {} codes hold no batch of {b}",
                z.nrows()
            ),
        ));
    }
    let dev = Device::Cpu;
    let scale = latent_scale.map(|s| Tensor::from(s).to_kind(vt.kind));
    let mut sum = 0.0;
    for k in 0..full {
        let rows = k * b..(k + 1) * b;
        let xb = x.slice(ndarray::s![rows.clone(), ..]).to_owned();
        let side = DataSide::of(&xb, vt.landmarks, vt.kind, vt.cfg.maxdim())?;
        let zb = z.slice(ndarray::s![rows, ..]).to_owned();
        let all: Vec<usize> = (0..b).collect();
        let (xt, zt) = side.compared(&xb, rows_tensor(&zb, &all, vt.kind, dev), vt.kind, dev);
        let l = tch::no_grad(|| topo_loss_with(&xt, &side.shape, &zt, &vt.cfg, scale.as_ref()))?;
        sum += l.total.double_value(&[]);
    }
    Ok(sum / full as f64)
}

/// The gradient all-reduce of a step: every parameter's gradient and a few
/// scalars (loss sums, flags) in one float64 buffer, made once, summed over
/// the ranks in one collective and copied back. Each gradient is converted
/// into the buffer and back in one pass, with no allocation per step. With
/// one rank nothing is copied: the sum of one gradient is itself (and a
/// float32 value survives float64 exactly).
struct GradSum {
    /// The gradients, then the scalars (float64, CPU, contiguous); `None`
    /// with one rank.
    flat: Option<Tensor>,
    /// Elements per parameter, in parameter order.
    sizes: Vec<usize>,
    /// Scalars per step.
    scalars: usize,
}

impl GradSum {
    fn new(params: &[Tensor], scalars: usize, ranks: usize) -> Self {
        let sizes: Vec<usize> = params.iter().map(|p| p.numel()).collect();
        let n: usize = sizes.iter().sum();
        let flat =
            (ranks > 1).then(|| Tensor::zeros([(n + scalars) as i64], (Kind::Double, Device::Cpu)));
        GradSum {
            flat,
            sizes,
            scalars,
        }
    }

    /// Sums the gradients of `params` over the ranks (in place) and returns
    /// the sums of `scalars`.
    fn all_reduce(&mut self, comm: &Comm, params: &[Tensor], scalars: &[f64]) -> Vec<f64> {
        assert_eq!(scalars.len(), self.scalars, "the scalars of a step");
        let Some(flat) = &mut self.flat else {
            return scalars.to_vec();
        };
        let mut at = 0i64;
        tch::no_grad(|| {
            for (prm, &k) in params.iter().zip(&self.sizes) {
                flat.narrow(0, at, k as i64)
                    .copy_(&prm.grad().reshape([-1]));
                at += k as i64;
            }
        });
        let n = flat.numel();
        // SAFETY: `flat` is a contiguous float64 CPU tensor of `n` elements
        // that this struct owns; no other tensor views it while the slice
        // lives (the copies above have finished: CPU ops are synchronous).
        let values = unsafe { std::slice::from_raw_parts_mut(flat.data_ptr() as *mut f64, n) };
        let k = self.scalars;
        values[n - k..].copy_from_slice(scalars);
        comm.all_reduce_sum_f64(values);
        let out = values[n - k..].to_vec();
        let mut at = 0i64;
        tch::no_grad(|| {
            for (prm, &k) in params.iter().zip(&self.sizes) {
                let mut g = prm.grad();
                let shape = g.size();
                g.copy_(&flat.narrow(0, at, k as i64).view(shape.as_slice()));
                at += k as i64;
            }
        });
        out
    }
}

/// The run file of a finished training (rank 0): the log under `/train`
/// and the model's report; returns the summary for the user.
#[allow(clippy::too_many_arguments)]
fn write_run(
    out: &Path,
    stamp: &Stamp,
    model: &dyn Model,
    test: &TestSplit,
    scale: Option<&(Array1<f64>, Array1<f64>)>,
    log: &[Vec<f64>],
    names: &[String],
    validator: Option<&Validator>,
    summary: String,
) -> Result<String> {
    let w = H5Writer::create(&out.join("run.h5"), stamp)?;
    if let Some(v) = validator {
        let col = |i: usize| Array1::from_iter(v.rows.iter().map(|r| r[i]));
        w.dataset(
            "/validation/step",
            &v.rows.iter().map(|r| r[0] as i64).collect::<Array1<i64>>(),
        )?;
        w.dataset("/validation/reconstruction", &col(1))?;
        w.dataset("/validation/kl_0.1", &col(2))?;
        if v.monitor == Monitor::Loss {
            w.dataset("/validation/topological", &col(3))?;
            w.dataset(
                "/validation/loss",
                &Array1::from_iter(v.rows.iter().map(|r| v.score(r))),
            )?;
        }
        w.attr_str("/validation", "monitor", v.monitor.name())?;
        if let Some(b) = v.best() {
            w.attr_u64("/validation", "best_step", v.rows[b][0] as u64)?;
        }
    }
    for (name, col) in log_columns(log, names) {
        if name == "step" {
            let steps: Array1<i64> = col.iter().map(|&s| s as i64).collect();
            w.dataset("/train/step", &steps)?;
        } else {
            w.dataset(&format!("/train/{name}"), &Array1::from_vec(col))?;
        }
    }
    // The test split (every model's reference), then the model's own; the
    // standardisation that maps /eval/x and /samples back to the data's
    // units, when the run had one.
    if let Some((mean, std)) = scale {
        w.dataset("/scale/mean", mean)?;
        w.dataset("/scale/std", std)?;
    }
    w.dataset("/eval/x", &test.x)?;
    if let Some(y) = &test.labels {
        w.dataset("/eval/y", &Array1::from_vec(y.clone()))?;
    }
    let report = model.report(&w, out, test)?;
    let path = w.commit()?;
    let mut wrote = vec![path.display().to_string()];
    wrote.extend(
        model
            .extra_files(out)
            .iter()
            .map(|p| p.display().to_string()),
    );
    Ok(format!("{summary}{report}; wrote {}", wrote.join(" and ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The edges of the Euclidean minimum spanning tree of the rows of
    /// `x` (Prim's algorithm, brute force): the critical edges of H0.
    fn mst(x: &Array2<f64>) -> Vec<(usize, usize)> {
        let n = x.nrows();
        let d = |i: usize, j: usize| dist(x, i, j);
        let mut inside = vec![false; n];
        inside[0] = true;
        let mut edges = Vec::new();
        for _ in 1..n {
            let mut best = (f64::INFINITY, 0, 0);
            for i in (0..n).filter(|&i| inside[i]) {
                for j in (0..n).filter(|&j| !inside[j]) {
                    if d(i, j) < best.0 {
                        best = (d(i, j), i, j);
                    }
                }
            }
            inside[best.2] = true;
            edges.push((best.1, best.2));
        }
        edges
    }

    /// The Euclidean distance between rows `i` and `j` of `a`.
    fn dist(a: &Array2<f64>, i: usize, j: usize) -> f64 {
        (&a.row(i) - &a.row(j)).mapv(|v| v * v).sum().sqrt()
    }

    /// The validation loss's topological part is the mean over the full
    /// batches, in order, of the H0 signature loss: ½ Σ over the edges of
    /// each minimum spanning tree (of X, of Z/s) of (‖x_i − x_j‖ −
    /// ‖z_i − z_j‖/s)², computed here by brute force; the last, partial
    /// batch is left out.
    #[test]
    fn the_validation_loss_is_the_mean_signature_over_full_batches() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut draw = |n: usize, d: usize| {
            Array2::from_shape_fn((n, d), |_| rand::Rng::random_range(&mut rng, -1.0..1.0))
        };
        let (n, b, s) = (53, 12, 0.37);
        let (x, z) = (draw(n, 5), draw(n, 2));
        let vt = ValidationTopo {
            cfg: TopoLossConfig {
                kind: TopoKind::Signature,
                dims: vec![0],
                weights: vec![1.0],
                normalize: Normalize::None,
                ..TopoLossConfig::default()
            },
            gamma: 1.0,
            batch: b,
            landmarks: 0,
            kind: Kind::Double,
        };
        let got = validation_topological(&x, &z, &vt, Some(s)).unwrap();
        let mut want = 0.0;
        for k in 0..n / b {
            let xb = x.slice(ndarray::s![k * b..(k + 1) * b, ..]).to_owned();
            let zb = z.slice(ndarray::s![k * b..(k + 1) * b, ..]).to_owned();
            let zs = zb.mapv(|v| v / s);
            for (i, j) in mst(&xb).into_iter().chain(mst(&zs)) {
                want += 0.5 * (dist(&xb, i, j) - dist(&zs, i, j)).powi(2);
            }
        }
        want /= (n / b) as f64;
        assert!(
            (got - want).abs() <= 1e-12 * want,
            "validation topological {got} vs brute force {want}"
        );
        // Fewer rows than a batch: an error, not a mean of nothing.
        let few = x.slice(ndarray::s![..b - 1, ..]).to_owned();
        let zf = z.slice(ndarray::s![..b - 1, ..]).to_owned();
        assert!(validation_topological(&few, &zf, &vt, None).is_err());
    }

    /// Each epoch's batches are whole global batches of one permutation:
    /// no training row twice within an epoch, every epoch another order.
    #[test]
    fn epochs_visit_each_row_at_most_once() {
        let mut t: TrainConfig = tglml::config::Config::default().train;
        t.epochs = 3;
        let (n, g) = (103, 10);
        let per_epoch = (n / g) as u64;
        let mut orders = Vec::new();
        for e in 0..3u64 {
            let mut seen: Vec<usize> = (0..per_epoch)
                .flat_map(|k| batch_positions(&t, e * per_epoch + k, n, g, per_epoch))
                .collect();
            orders.push(seen.clone());
            assert_eq!(seen.len(), 100);
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 100, "a row twice in epoch {e}");
            assert!(seen.iter().all(|&r| r < n));
        }
        assert_ne!(orders[0], orders[1]);
    }

    #[test]
    fn batches_do_not_depend_on_ranks() {
        let b = global_batch(3, 7, 100, 20);
        assert_eq!(b, global_batch(3, 7, 100, 20));
        assert_eq!(b.len(), 20);
    }
}
