//! Run configuration: one TOML schema for every command.
//!
//! The defaults are the embedded file `configs/default.toml`, which documents
//! every key. A run's effective configuration is built in three layers:
//!
//! 1. the defaults;
//! 2. the user's `--config FILE`, which may set any subset of keys;
//! 3. command-line overrides: `--set section.key=value`, then the named flags
//!    of the command (`--n`, `--kind`, …), in that order.
//!
//! A key that the defaults do not have is an error naming the key, the file and
//! its line (or the `--set` argument); so is a value of the wrong type or out
//! of range. Nothing is written before the configuration is accepted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The embedded default configuration (`configs/default.toml`).
pub const DEFAULT_TOML: &str = include_str!("../configs/default.toml");

/// The effective configuration of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-level settings (threads).
    pub run: RunConfig,
    /// `tglml data synth`.
    pub synth: SynthConfig,
    /// `tglml ph`.
    pub ph: PhConfig,
    /// `tglml diagram`.
    pub diagram: DiagramConfig,
    /// `tglml diagram summarize`.
    pub summary: SummaryConfig,
    /// `tglml data pack`.
    pub pack: PackConfig,
    /// `tglml train`: the model.
    pub model: ModelConfig,
    /// `tglml train`: data, optimisation, the topological loss.
    pub train: TrainConfig,
    /// `tglml sample`: samplers, Langevin walks and the latent density.
    pub sample: SampleConfig,
    /// `tglml interpolate`: paths between latent points.
    pub interpolate: InterpolateConfig,
    /// `tglml eval`: the measures of samples and latent spaces.
    pub eval: EvalConfig,
}

/// `[eval]`: what `tglml eval` measures, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub features: String,
    pub feature_input: Vec<usize>,
    pub feature_batch: usize,
    pub is_splits: usize,
    pub prdc_k: usize,
    pub prdc_rows: usize,
    pub landmarks: usize,
    pub dims: Vec<usize>,
    pub p: f64,
    pub tau_fraction: f64,
    pub image_shape: Vec<usize>,
    pub cubical_tau: f64,
    pub cubical_rows: usize,
    pub embedding_rows: usize,
    pub ks: Vec<usize>,
    pub robustness: bool,
    pub robust_rows: usize,
    pub attack_eps: Vec<f64>,
    pub pgd_steps: usize,
    pub shift_noise: Vec<f64>,
    pub shift_blur: Vec<f64>,
    pub shift_rotation: Vec<f64>,
    pub shift_contrast: Vec<f64>,
    pub seed: u64,
}

/// `[sample]`: drawing from a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    pub sampler: SamplerName,
    pub n: usize,
    pub seed: u64,
    pub start: StartName,
    pub eta: f64,
    pub steps: usize,
    pub burn_in: usize,
    pub thin: usize,
    pub diffusion_steps: usize,
    /// `[sample.density]`.
    pub density: DensityConfig,
}

/// `sample.sampler` (and `--sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerName {
    /// z ~ N(0, I), decoded.
    Prior,
    /// The unadjusted Langevin walk on the latent density, decoded.
    Langevin,
    /// Langevin with the Metropolis correction (MALA), decoded.
    Mala,
    /// A diffusion model's ancestral (DDPM) sampler.
    Diffusion,
    /// A diffusion model's deterministic DDIM sampler.
    Ddim,
}

impl SamplerName {
    /// Its name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SamplerName::Prior => "prior",
            SamplerName::Langevin => "langevin",
            SamplerName::Mala => "mala",
            SamplerName::Diffusion => "diffusion",
            SamplerName::Ddim => "ddim",
        }
    }
}

/// `sample.start`: where the Langevin chains start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartName {
    /// At training codes (a seeded choice).
    Codes,
    /// At draws of N(0, I).
    Prior,
}

/// `[sample.density]`: the latent density of the walks and of the
/// geodesic's barrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DensityConfig {
    pub kind: DensityName,
    pub components: Vec<usize>,
    pub bandwidth: f64,
    pub reg_covar: f64,
    pub max_iter: usize,
    pub tol: f64,
    pub max_codes: usize,
    pub score_steps: usize,
}

/// `sample.density.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DensityName {
    /// A Gaussian mixture fitted by EM, K chosen by BIC.
    Gmm,
    /// A Gaussian kernel density estimate.
    Kde,
    /// A latent-diffusion model's own score.
    Score,
}

/// `[interpolate]`: paths between two latent points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterpolateConfig {
    pub method: PathMethod,
    pub points: usize,
    pub pairs: usize,
    pub seed: u64,
    pub steps: usize,
    pub lr: f64,
    pub barrier: f64,
    pub init: PathInit,
    pub neighbours: usize,
    pub max_codes: usize,
}

/// `interpolate.method` (and `--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum PathMethod {
    /// The straight latent line.
    Linear,
    /// Spherical interpolation (slerp).
    Slerp,
    /// The geodesic under the decoder's pull-back metric.
    Geodesic,
}

impl PathMethod {
    /// Its name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PathMethod::Linear => "linear",
            PathMethod::Slerp => "slerp",
            PathMethod::Geodesic => "geodesic",
        }
    }
}

/// `interpolate.init`: the geodesic's start path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathInit {
    /// The shortest path through the k-NN graph of the training codes.
    Graph,
    /// The straight line.
    Linear,
}

/// `[model]`: the generative model `tglml train` trains, and its network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub network: Network,
    pub hidden: Vec<usize>,
    pub latent_dim: usize,
    pub samples: usize,
    /// `[model.vae]`.
    pub vae: VaeConfig,
    /// `[model.gan]`.
    pub gan: GanConfig,
    /// `[model.diffusion]` (also latent diffusion's).
    pub diffusion: DiffusionConfig,
    /// `[model.classifier]`.
    pub classifier: ClassifierConfig,
    /// Latent diffusion: the checkpoint.h5 of the trained VAE whose latent
    /// space it generates in.
    pub vae_checkpoint: String,
}

/// `[model.diffusion]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionConfig {
    pub timesteps: usize,
    pub schedule: Schedule,
    pub beta_start: f64,
    pub beta_end: f64,
    pub time_dim: usize,
    pub ema: f64,
    pub topo_t_max: usize,
    pub sampler: Sampler,
    pub sample_steps: usize,
    /// `[lo, hi]`: every x̂₀ is clipped to it while sampling; empty = none.
    pub clip_x0: Vec<f64>,
}

/// The noise schedule β₁..β_T (`model.diffusion.schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// β linear from beta_start to beta_end (Ho et al. 2020).
    Linear,
    /// ᾱ(t) = cos²(((t/T) + s)/(1 + s) · π/2), s = 0.008 (Nichol & Dhariwal 2021).
    Cosine,
}

/// How samples are drawn (`model.diffusion.sampler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampler {
    /// Ancestral sampling through all T steps.
    Ddpm,
    /// Deterministic DDIM (η = 0) through sample_steps steps.
    Ddim,
}

/// `[model.gan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanConfig {
    pub disc_hidden: Vec<usize>,
    pub r1: f64,
    pub beta1: f64,
}

/// `[model.classifier]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Labels are 0..classes.
    pub classes: usize,
}

/// Which model (`model.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// A VAE (or, with `model.vae.variational = false`, an autoencoder).
    Vae,
    /// A GAN (non-saturating loss, R1 penalty).
    Gan,
    /// A denoising diffusion model (DDPM, ε-prediction) on the data.
    Diffusion,
    /// The same diffusion model in the latent space of a trained VAE
    /// (`model.vae_checkpoint`), its samples decoded by the VAE.
    LatentDiffusion,
    /// A classifier of the data's labels (cross-entropy): the feature
    /// network of `tglml eval` (FID, IS, precision and recall).
    Classifier,
}

impl ModelKind {
    /// Its name in configs.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vae => "vae",
            ModelKind::Gan => "gan",
            ModelKind::Diffusion => "diffusion",
            ModelKind::LatentDiffusion => "latent-diffusion",
            ModelKind::Classifier => "classifier",
        }
    }

    /// The keys of `[model]` that only this kind reads: a whole section
    /// (a prefix ending in "."), or one key.
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            ModelKind::Vae => &["model.vae."],
            ModelKind::Gan => &["model.gan."],
            ModelKind::Diffusion => &["model.diffusion."],
            ModelKind::LatentDiffusion => &["model.diffusion.", "model.vae_checkpoint"],
            ModelKind::Classifier => &["model.classifier."],
        }
    }

    /// Whether `key` is one of [`Self::own_keys`].
    pub fn owns(self, key: &str) -> bool {
        self.own_keys().iter().any(|k| {
            if k.ends_with('.') {
                key.starts_with(k)
            } else {
                key == *k
            }
        })
    }

    /// Every kind.
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Vae,
        ModelKind::Gan,
        ModelKind::Diffusion,
        ModelKind::LatentDiffusion,
        ModelKind::Classifier,
    ];
}

/// The network's shape (`model.network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// Fully connected layers of the widths `model.hidden`.
    Mlp,
    /// Convolutions for 28 × 28 images.
    Conv,
}

/// `[model.vae]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    pub likelihood: Likelihood,
    pub variational: bool,
    pub beta: f64,
    pub batch_norm: BatchNorm,
    pub output: OutputActivation,
    pub init: LinearInit,
}

/// How the VAE's linear layers start (`model.vae.init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinearInit {
    /// tch's default: weights uniform in ±√(6 / fan_in) (Kaiming for
    /// ReLU), biases uniform in ±1/√fan_in.
    Kaiming,
    /// torch.nn.Linear's default: weights and biases uniform in
    /// ±1/√fan_in.
    Pytorch,
}

/// Batch normalisation of an MLP's hidden layers (`model.vae.batch_norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNorm {
    /// None.
    None,
    /// After each hidden layer's activation (Topological Autoencoders').
    After,
    /// Between each hidden layer's linear map and its activation.
    Before,
}

/// The activation of a decoder's last layer (`model.vae.output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputActivation {
    /// None (the Gaussian mean is the linear output).
    Linear,
    /// tanh: means in (−1, 1), for data scaled to [−1, 1].
    Tanh,
    /// The logistic sigmoid: means in (0, 1).
    Sigmoid,
}

/// `train.optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerName {
    /// torch.optim.Adam (weight decay as an L2 term of the gradient).
    Adam,
    /// torch.optim.AdamW (decoupled weight decay).
    Adamw,
}

/// What early stopping watches on the validation rows (`train.monitor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Monitor {
    /// The model's mean reconstruction loss per row.
    #[serde(rename = "reconstruction")]
    Reconstruction,
    /// KL_0.1 between the data and latent density estimates.
    #[serde(rename = "kl_0.1")]
    Kl01,
    /// The training objective on the validation rows: the mean
    /// reconstruction loss per row plus γ (train.topo.gamma, the full
    /// value whatever the ramp) times the mean topological loss over the
    /// validation rows' full batches of the global batch size, taken in
    /// order (what Topological Autoencoders' early stopping watches).
    #[serde(rename = "loss")]
    Loss,
}

impl Monitor {
    /// Its name in configs and in the run file.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::Reconstruction => "reconstruction",
            Monitor::Kl01 => "kl_0.1",
            Monitor::Loss => "loss",
        }
    }
}

/// p(x|z) of a VAE (`model.vae.likelihood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Likelihood {
    /// Unit-variance Gaussian.
    Gaussian,
    /// Independent Bernoulli on [0, 1] data.
    Bernoulli,
}

/// `[train]`: data, optimisation and the topological loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub data: String,
    pub test_data: String,
    pub labels: String,
    pub test_labels: String,
    pub steps: u64,
    pub epochs: u64,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    pub dtype: String,
    pub device: String,
    pub standardize: bool,
    pub fixed_scale: Vec<f64>,
    pub test_fraction: f64,
    pub validation_fraction: f64,
    pub validate_every: u64,
    pub monitor: Monitor,
    pub patience: u64,
    pub optimizer: OptimizerName,
    pub weight_decay: f64,
    pub ema: f64,
    pub checkpoint_every: u64,
    pub hash_every: u64,
    pub topo: TopoConfig,
}

/// `[train.topo]`: the topological loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopoConfig {
    pub kind: String,
    pub dims: Vec<usize>,
    pub weights: Vec<f64>,
    pub p: u32,
    pub normalize: String,
    pub latent_scale: String,
    pub latent_scale_init: f64,
    pub gamma: f64,
    pub ramp_steps: u64,
    pub landscape_levels: usize,
    pub landscape_resolution: usize,
    pub landmarks: usize,
}

/// `[pack]`: converting sources (meshes, structures, images, IDX) to HDF5.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    pub mesh_points: usize,
    pub seed: u64,
    pub atoms: AtomsName,
    pub per_chain: bool,
    pub flatten_models: bool,
    pub limit: usize,
    pub image_width: u32,
    pub image_height: u32,
    pub image_crop: Vec<u32>,
    pub grayscale: bool,
}

/// Which atoms of a structure become points (`pack.atoms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AtomsName {
    /// Cα atoms of amino-acid residues.
    Ca,
    /// Every atom but hydrogens and water.
    Heavy,
}

/// What a failed object does to a collection run (`ph.on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OnErrorName {
    /// Every rank stops; non-zero exit; no output file.
    Abort,
    /// Record the object as skipped and go on; exit 0 with a warning.
    Skip,
}

/// `[summary]`: vectorisations of diagrams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryConfig {
    pub landscapes: usize,
    pub resolution: usize,
    pub betti: bool,
    pub image: bool,
    pub image_resolution: usize,
    pub image_bandwidth: f64,
}

/// `[diagram]`: distances between persistence diagrams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagramConfig {
    pub metric: MetricName,
    pub p: f64,
    pub ground: GroundName,
    pub essential: EssentialName,
}

/// `diagram.metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MetricName {
    /// The p-Wasserstein distance.
    Wasserstein,
    /// The bottleneck distance.
    Bottleneck,
}

/// `diagram.ground`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GroundName {
    /// max(|Δbirth|, |Δdeath|).
    Linf,
    /// Euclidean.
    L2,
}

/// `diagram.essential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EssentialName {
    /// Matched among themselves; inf when the counts differ.
    Match,
    /// Left out.
    Ignore,
}

/// `[run]`: process-level settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Threads per rank (rayon and libtorch); 0 = automatic.
    pub threads: usize,
    /// The memory budget of every command, GiB per rank; 0 = automatic
    /// (see [`crate::guard`]).
    pub memory_budget_gib: f64,
}

/// The synthetic datasets of `tglml data synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SynthKind {
    /// Several circles in the plane.
    Circles,
    /// A 2-torus in R^3, uniform by area.
    Torus,
    /// The Swiss roll surface in R^3.
    SwissRoll,
    /// A uniform sample of S^dim in R^(dim+1).
    Sphere,
    /// The SPHERES set of Topological Autoencoders (Moor et al. 2020).
    Spheres,
}

impl SynthKind {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            SynthKind::Circles => "circles",
            SynthKind::Torus => "torus",
            SynthKind::SwissRoll => "swiss-roll",
            SynthKind::Sphere => "sphere",
            SynthKind::Spheres => "spheres",
        }
    }
}

/// `[synth]`: synthetic datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynthConfig {
    pub kind: SynthKind,
    pub n: usize,
    pub noise: f64,
    pub seed: u64,
    pub circles: CirclesParams,
    pub torus: TorusParams,
    pub sphere: SphereParams,
    pub swiss_roll: SwissRollParams,
    pub spheres: SpheresParams,
}

/// `[synth.circles]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CirclesParams {
    pub count: usize,
    pub radius: f64,
    pub spacing: f64,
}

/// `[synth.torus]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorusParams {
    pub major_radius: f64,
    pub minor_radius: f64,
}

/// `[synth.sphere]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SphereParams {
    pub dim: usize,
    pub radius: f64,
}

/// `[synth.swiss_roll]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwissRollParams {
    pub turns: f64,
    pub height: f64,
}

/// `[synth.spheres]`: the SPHERES construction of Moor et al. (2020).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpheresParams {
    pub count: usize,
    pub dim: usize,
    pub radius: f64,
    pub points_per_sphere: usize,
    pub outer_radius: f64,
    pub outer_points: usize,
    pub shift_scale: f64,
}

/// `[ph]`: Rips persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhConfig {
    pub maxdim: usize,
    pub threshold: Threshold,
    pub landmarks: usize,
    pub landmark_method: LandmarkMethodName,
    pub seed: u64,
    pub clearing: bool,
    pub emergent_pairs: bool,
    pub apparent_pairs: bool,
    pub coefficients: u32,
    pub neighbor_lists: bool,
    pub dense_h0: bool,
    pub on_error: OnErrorName,
}

/// How landmarks are chosen (`ph.landmark_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LandmarkMethodName {
    /// Farthest-point sampling from point 0 (deterministic).
    Maxmin,
    /// Uniform sampling with `ph.seed`.
    Random,
}

impl LandmarkMethodName {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LandmarkMethodName::Maxmin => "maxmin",
            LandmarkMethodName::Random => "random",
        }
    }
}

/// A Rips threshold: a length, or `"auto"` (the enclosing radius).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    /// The enclosing radius of the cloud.
    Auto,
    /// Leave out edges longer than this.
    Value(f64),
}

impl Threshold {
    /// `None` for auto.
    pub fn value(self) -> Option<f64> {
        match self {
            Threshold::Auto => None,
            Threshold::Value(v) => Some(v),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Threshold::Auto => s.serialize_str("auto"),
            Threshold::Value(v) => s.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Float(f64),
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number or \"auto\""))?
        {
            Raw::Float(v) => Ok(Threshold::Value(v)),
            Raw::Int(v) => Ok(Threshold::Value(v as f64)),
            Raw::Text(t) if t == "auto" => Ok(Threshold::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "expected a number or \"auto\", got \"{t}\""
            ))),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        // The embedded defaults are checked by a unit test; failing here is a
        // build defect, not a user error.
        let table: toml::Table = toml::from_str(DEFAULT_TOML).expect("configs/default.toml parses");
        from_table(table, &BTreeMap::new()).expect("configs/default.toml matches Config")
    }
}

impl Config {
    /// The configuration as TOML text (stamped into every output file).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a Config always serialises to TOML")
    }
}

/// One command-line override of a configuration key.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// What the user typed, for error messages (`--set synth.n=5`, `--n 5`).
    pub origin: String,
    /// Dotted key path (`synth.n`).
    pub key: String,
    /// The new value.
    pub value: toml::Value,
}

impl Override {
    /// Parses a `--set KEY=VALUE` argument. The value is read as a TOML value
    /// (`5`, `0.1`, `true`, `"text"`, `[1, 2]`); anything that is not valid
    /// TOML is taken as a plain string, so `--set synth.kind=torus` works.
    pub fn parse_set(arg: &str) -> Result<Override> {
        let origin = format!("--set {arg}");
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(Error::Config {
                origin,
                message: "expected KEY=VALUE, e.g. --set synth.n=5000".into(),
            });
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
            return Err(Error::Config {
                origin,
                message: format!("`{key}` is not a dotted key such as synth.n"),
            });
        }
        let raw = raw.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(Override {
            origin,
            key: key.to_string(),
            value,
        })
    }

    /// An override from a named command-line flag.
    pub fn flag(flag: &str, key: &str, value: impl Into<toml::Value>) -> Override {
        let value = value.into();
        Override {
            origin: format!("{flag} {value}"),
            key: key.to_string(),
            value,
        }
    }
}

/// Builds the effective configuration: defaults, then `file`, then `overrides`.
pub fn load(file: Option<&Path>, overrides: &[Override]) -> Result<Config> {
    let text = match file {
        Some(path) => Some((
            std::fs::read_to_string(path)
                .map_err(|e| Error::io(path, "reading the config file", e))?,
            path.display().to_string(),
        )),
        None => None,
    };
    load_text(
        text.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
        overrides,
    )
}

/// [`load`] of a config text (`text`, and where it came from for
/// messages), such as the one a checkpoint stores.
pub fn load_text(file: Option<(&str, &str)>, overrides: &[Override]) -> Result<Config> {
    let mut table: toml::Table = toml::from_str(DEFAULT_TOML).expect("configs/default.toml parses");
    // Where each key that differs from the defaults was set, for messages.
    let mut origins: BTreeMap<String, String> = BTreeMap::new();

    if let Some((text, origin)) = file {
        let origin = origin.to_string();
        let user: toml::Table = toml::from_str(text).map_err(|e| Error::Config {
            origin: origin.clone(),
            message: format!("not valid TOML: {}", e.to_string().trim_end()),
        })?;
        let lines = KeyLines::new(text);
        merge_file(&mut table, user, "", &origin, &lines, &mut origins)?;
    }
    for o in overrides {
        set_key(&mut table, o)?;
        origins.insert(o.key.clone(), o.origin.clone());
    }
    let merged = table.clone();
    let config = from_table(table, &origins)?;
    other_model_keys(&config, &merged, &origins)?;
    validate(&config, &origins)?;
    Ok(config)
}

/// Refuses a key of another model kind's section (`[model.gan]` in a VAE
/// run) set to something other than its default: it would be silently
/// ignored. (Defaults pass, so that an effective configuration, which
/// lists every section, loads again as a file.)
fn other_model_keys(
    c: &Config,
    merged: &toml::Table,
    origins: &BTreeMap<String, String>,
) -> Result<()> {
    let defaults: toml::Table = toml::from_str(DEFAULT_TOML).expect("configs/default.toml parses");
    let at = |t: &toml::Table, key: &str| -> Option<toml::Value> {
        let mut v = t.get(key.split('.').next()?)?;
        for seg in key.split('.').skip(1) {
            v = v.as_table()?.get(seg)?;
        }
        Some(v.clone())
    };
    let kind = c.model.kind;
    for (key, origin) in origins {
        let Some(owner) = ModelKind::ALL
            .iter()
            .find(|k| **k != kind && k.owns(key) && !kind.owns(key))
        else {
            continue;
        };
        if at(merged, key) != at(&defaults, key) {
            let users: Vec<String> = ModelKind::ALL
                .iter()
                .filter(|k| k.owns(key))
                .map(|k| format!("\"{}\"", k.name()))
                .collect();
            return Err(Error::Config {
                origin: origin.clone(),
                message: format!(
                    "key `{key}` belongs to model.kind = {}, but model.kind is \"{}\": remove it, or set model.kind = \"{}\"",
                    users.join(" or "),
                    kind.name(),
                    owner.name()
                ),
            });
        }
    }
    Ok(())
}

/// Line numbers of the keys of a TOML text, for error messages.
struct KeyLines<'a> {
    text: &'a str,
    doc: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> KeyLines<'a> {
    fn new(text: &'a str) -> Self {
        KeyLines {
            text,
            doc: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// The 1-based line of the dotted key `path`, where it can be found.
    fn line(&self, path: &str) -> Option<usize> {
        let mut table = self.doc.as_ref()?.get_ref();
        let segs: Vec<&str> = path.split('.').collect();
        for (i, seg) in segs.iter().enumerate() {
            let (key, value) = table.get_key_value(*seg)?;
            if i + 1 == segs.len() {
                let start = key.span().start;
                return Some(self.text[..start].matches('\n').count() + 1);
            }
            table = value.get_ref().as_table()?;
        }
        None
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Keys that moved: (old, new, why), named in the unknown-key message.
const MOVED: [(&str, &str, &str); 7] = [
    (
        "ph.memory_budget_gib",
        "run.memory_budget_gib",
        "the budget of every command",
    ),
    ("train.model", "model.network", MODEL_MOVED),
    ("train.hidden", "model.hidden", MODEL_MOVED),
    ("train.latent_dim", "model.latent_dim", MODEL_MOVED),
    ("train.likelihood", "model.vae.likelihood", MODEL_MOVED),
    ("train.variational", "model.vae.variational", MODEL_MOVED),
    ("train.beta", "model.vae.beta", MODEL_MOVED),
];

const MODEL_MOVED: &str = "the model's settings are in [model]";

/// " (`OLD` moved to `NEW`, why)" for a key that moved, else "".
fn moved(key: &str) -> String {
    MOVED
        .iter()
        .find(|(old, _, _)| *old == key)
        .map_or(String::new(), |(_, new, why)| {
            format!(" (`{key}` moved to `{new}`, {why})")
        })
}

fn expected_keys(table: &toml::Table) -> String {
    let keys: Vec<&str> = table.keys().map(String::as_str).collect();
    keys.join(", ")
}

fn merge_file(
    base: &mut toml::Table,
    user: toml::Table,
    prefix: &str,
    origin: &str,
    lines: &KeyLines<'_>,
    origins: &mut BTreeMap<String, String>,
) -> Result<()> {
    for (key, value) in user {
        let path = join(prefix, &key);
        let at = match lines.line(&path) {
            Some(line) => format!("{origin}:{line}"),
            None => origin.to_string(),
        };
        let Some(slot) = base.get_mut(&key) else {
            let section = if prefix.is_empty() {
                "the top level".to_string()
            } else {
                format!("[{prefix}]")
            };
            return Err(Error::Config {
                origin: at,
                message: format!(
                    "unknown key `{path}`: {section} has the keys {}{}",
                    expected_keys(base),
                    moved(&path)
                ),
            });
        };
        match (slot, value) {
            (toml::Value::Table(b), toml::Value::Table(u)) => {
                merge_file(b, u, &path, origin, lines, origins)?;
            }
            (toml::Value::Table(_), _) => {
                return Err(Error::Config {
                    origin: at,
                    message: format!("`{path}` is a section: write it as [{path}]"),
                });
            }
            (slot, value) => {
                *slot = value;
                origins.insert(path, at);
            }
        }
    }
    Ok(())
}

fn set_key(base: &mut toml::Table, o: &Override) -> Result<()> {
    let segs: Vec<&str> = o.key.split('.').collect();
    let mut table = base;
    for (i, seg) in segs.iter().enumerate() {
        let prefix = segs[..i].join(".");
        let keys = expected_keys(table);
        let Some(slot) = table.get_mut(*seg) else {
            let section = if prefix.is_empty() {
                "the top level".to_string()
            } else {
                format!("[{prefix}]")
            };
            return Err(Error::Config {
                origin: o.origin.clone(),
                message: format!(
                    "unknown key `{}`: {section} has the keys {keys}{}",
                    o.key,
                    moved(&o.key)
                ),
            });
        };
        let last = i + 1 == segs.len();
        match (slot, last) {
            (toml::Value::Table(t), false) => table = t,
            (toml::Value::Table(_), true) => {
                return Err(Error::Config {
                    origin: o.origin.clone(),
                    message: format!("`{}` is a section; set one of its keys ({keys})", o.key),
                });
            }
            (_, false) => {
                return Err(Error::Config {
                    origin: o.origin.clone(),
                    message: format!("`{}` is not a section", segs[..=i].join(".")),
                });
            }
            (slot, true) => {
                *slot = o.value.clone();
                return Ok(());
            }
        }
    }
    Ok(())
}

fn from_table(table: toml::Table, origins: &BTreeMap<String, String>) -> Result<Config> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        Error::Config {
            origin: origin_of(origins, &key),
            message: format!("key `{key}`: {}", e.inner().to_string().trim_end()),
        }
    })
}

fn origin_of(origins: &BTreeMap<String, String>, key: &str) -> String {
    origins
        .get(key)
        .cloned()
        .unwrap_or_else(|| "configs/default.toml (built in)".to_string())
}

/// Range checks that the types alone do not express.
fn validate(c: &Config, origins: &BTreeMap<String, String>) -> Result<()> {
    let fail = |key: &str, message: String| Error::Config {
        origin: origin_of(origins, key),
        message: format!("key `{key}`: {message}"),
    };
    let positive = |key: &str, v: f64| -> Result<()> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(fail(key, format!("must be a finite number > 0, got {v}")))
        }
    };
    let at_least = |key: &str, v: usize, min: usize| -> Result<()> {
        if v >= min {
            Ok(())
        } else {
            Err(fail(key, format!("must be at least {min}, got {v}")))
        }
    };
    let s = &c.synth;
    at_least("synth.n", s.n, 1)?;
    if !(s.noise.is_finite() && s.noise >= 0.0) {
        return Err(fail(
            "synth.noise",
            format!("must be a finite number >= 0, got {}", s.noise),
        ));
    }
    at_least("synth.circles.count", s.circles.count, 1)?;
    positive("synth.circles.radius", s.circles.radius)?;
    positive("synth.circles.spacing", s.circles.spacing)?;
    positive("synth.torus.major_radius", s.torus.major_radius)?;
    positive("synth.torus.minor_radius", s.torus.minor_radius)?;
    if s.torus.minor_radius >= s.torus.major_radius {
        return Err(fail(
            "synth.torus.minor_radius",
            format!(
                "must be smaller than synth.torus.major_radius ({}) for a ring torus, got {}",
                s.torus.major_radius, s.torus.minor_radius
            ),
        ));
    }
    at_least("synth.sphere.dim", s.sphere.dim, 1)?;
    positive("synth.sphere.radius", s.sphere.radius)?;
    positive("synth.swiss_roll.turns", s.swiss_roll.turns)?;
    positive("synth.swiss_roll.height", s.swiss_roll.height)?;
    let sp = &s.spheres;
    at_least("synth.spheres.count", sp.count, 1)?;
    at_least("synth.spheres.dim", sp.dim, 1)?;
    positive("synth.spheres.radius", sp.radius)?;
    at_least("synth.spheres.points_per_sphere", sp.points_per_sphere, 1)?;
    positive("synth.spheres.outer_radius", sp.outer_radius)?;
    if !(sp.shift_scale.is_finite() && sp.shift_scale >= 0.0) {
        return Err(fail(
            "synth.spheres.shift_scale",
            format!("must be a finite number >= 0, got {}", sp.shift_scale),
        ));
    }
    let p = &c.ph;
    if p.maxdim > 3 {
        return Err(fail(
            "ph.maxdim",
            format!("must be 0, 1, 2 or 3, got {}", p.maxdim),
        ));
    }
    if !(2..=65521).contains(&p.coefficients)
        || (2..p.coefficients)
            .take_while(|d| d * d <= p.coefficients)
            .any(|d| p.coefficients % d == 0)
    {
        return Err(fail(
            "ph.coefficients",
            format!("must be a prime below 65536, got {}", p.coefficients),
        ));
    }
    at_least("pack.mesh_points", c.pack.mesh_points, 1)?;
    at_least("pack.image_width", c.pack.image_width as usize, 1)?;
    at_least("pack.image_height", c.pack.image_height as usize, 1)?;
    if !matches!(c.pack.image_crop.len(), 0 | 1 | 4)
        || (c.pack.image_crop.len() == 1 && c.pack.image_crop[0] != 0)
    {
        return Err(fail(
            "pack.image_crop",
            format!(
                "must be [] (no crop), [0] (the centred square) or [left, top, width, height], got {:?}",
                c.pack.image_crop
            ),
        ));
    }
    let t = &c.train;
    let one_of = |key: &str, v: &str, allowed: &[&str]| -> Result<()> {
        if allowed.contains(&v) {
            Ok(())
        } else {
            Err(fail(key, format!("must be one of {allowed:?}, got {v:?}")))
        }
    };
    one_of("train.dtype", &t.dtype, &["float32", "float64"])?;
    one_of("train.device", &t.device, &["cpu", "cuda", "auto"])?;
    one_of(
        "train.topo.kind",
        &t.topo.kind,
        &["wasserstein", "landscape", "signature"],
    )?;
    one_of(
        "train.topo.normalize",
        &t.topo.normalize,
        &["none", "max", "mean"],
    )?;
    one_of(
        "train.topo.latent_scale",
        &t.topo.latent_scale,
        &["fixed", "learned"],
    )?;
    if !(t.topo.latent_scale_init.is_finite() && t.topo.latent_scale_init > 0.0) {
        return Err(fail(
            "train.topo.latent_scale_init",
            format!(
                "must be a finite number > 0, got {}",
                t.topo.latent_scale_init
            ),
        ));
    }
    let m = &c.model;
    at_least("model.latent_dim", m.latent_dim, 1)?;
    at_least("model.classifier.classes", m.classifier.classes, 2)?;
    if let Some(i) = m.gan.disc_hidden.iter().position(|&h| h == 0) {
        return Err(fail(
            "model.gan.disc_hidden",
            format!(
                "every width must be at least 1, got {:?} (entry {i})",
                m.gan.disc_hidden
            ),
        ));
    }
    if !(m.gan.beta1 >= 0.0 && m.gan.beta1 < 1.0) {
        return Err(fail(
            "model.gan.beta1",
            format!("must be in [0, 1), got {}", m.gan.beta1),
        ));
    }
    if !(m.gan.r1.is_finite() && m.gan.r1 >= 0.0) {
        return Err(fail(
            "model.gan.r1",
            format!("must be a finite number >= 0, got {}", m.gan.r1),
        ));
    }
    let d = &m.diffusion;
    at_least("model.diffusion.timesteps", d.timesteps, 1)?;
    if !(d.beta_start > 0.0 && d.beta_start < d.beta_end && d.beta_end < 1.0) {
        return Err(fail(
            "model.diffusion.beta_end",
            format!(
                "the linear schedule needs 0 < beta_start < beta_end < 1, got beta_start = {}, beta_end = {}",
                d.beta_start, d.beta_end
            ),
        ));
    }
    if d.time_dim < 2 || d.time_dim % 2 != 0 {
        return Err(fail(
            "model.diffusion.time_dim",
            format!(
                "must be even and at least 2 (sines and cosines), got {}",
                d.time_dim
            ),
        ));
    }
    if !(d.ema >= 0.0 && d.ema < 1.0) {
        return Err(fail(
            "model.diffusion.ema",
            format!("must be in [0, 1), got {}", d.ema),
        ));
    }
    for (key, v) in [
        ("model.diffusion.topo_t_max", d.topo_t_max),
        ("model.diffusion.sample_steps", d.sample_steps),
    ] {
        if !(1..=d.timesteps).contains(&v) {
            return Err(fail(
                key,
                format!(
                    "must be in 1..={} (model.diffusion.timesteps), got {v}",
                    d.timesteps
                ),
            ));
        }
    }
    if !(d.clip_x0.is_empty()
        || (d.clip_x0.len() == 2
            && d.clip_x0.iter().all(|v| v.is_finite())
            && d.clip_x0[0] < d.clip_x0[1]))
    {
        return Err(fail(
            "model.diffusion.clip_x0",
            format!(
                "must be [] (no clipping) or [lo, hi] with finite lo < hi, got {:?}",
                d.clip_x0
            ),
        ));
    }
    if (m.kind == ModelKind::LatentDiffusion) == m.vae_checkpoint.is_empty() {
        return Err(fail(
            "model.vae_checkpoint",
            if m.vae_checkpoint.is_empty() {
                "model.kind = \"latent-diffusion\" generates in the latent space of a trained VAE: name its checkpoint.h5 (the --out folder of a `tglml train` run with model.kind = \"vae\")".to_string()
            } else {
                format!(
                    "is read by model.kind = \"latent-diffusion\" only, but model.kind is \"{}\"",
                    m.kind.name()
                )
            },
        ));
    }
    if let Some(i) = m.hidden.iter().position(|&h| h == 0) {
        return Err(fail(
            "model.hidden",
            format!(
                "every width must be at least 1, got {:?} (entry {i})",
                m.hidden
            ),
        ));
    }
    at_least("train.batch_size", t.batch_size, 2)?;
    positive("train.lr", t.lr)?;
    if !(m.vae.beta.is_finite() && m.vae.beta >= 0.0) {
        return Err(fail(
            "model.vae.beta",
            format!("must be a finite number >= 0, got {}", m.vae.beta),
        ));
    }
    if !(t.test_fraction >= 0.0 && t.test_fraction < 1.0) {
        return Err(fail(
            "train.test_fraction",
            format!("must be in [0, 1), got {}", t.test_fraction),
        ));
    }
    if !(t.validation_fraction >= 0.0 && t.validation_fraction < 1.0) {
        return Err(fail(
            "train.validation_fraction",
            format!("must be in [0, 1), got {}", t.validation_fraction),
        ));
    }
    if t.validation_fraction > 0.0 && m.kind != ModelKind::Vae {
        return Err(fail(
            "train.validation_fraction",
            format!(
                "validation (reconstruction, KL_0.1, early stopping) is built for model.kind = \"vae\", not \"{}\"; set it to 0",
                m.kind.name()
            ),
        ));
    }
    if t.patience > 0 && t.validation_fraction == 0.0 {
        return Err(fail(
            "train.patience",
            format!(
                "= {} stops early on the validation rows, but train.validation_fraction = 0 holds none out",
                t.patience
            ),
        ));
    }
    if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
        return Err(fail(
            "train.weight_decay",
            format!("must be a finite number >= 0, got {}", t.weight_decay),
        ));
    }
    if !(t.ema >= 0.0 && t.ema < 1.0) {
        return Err(fail(
            "train.ema",
            format!("must be in [0, 1), got {}", t.ema),
        ));
    }
    if t.ema > 0.0
        && matches!(
            c.model.kind,
            ModelKind::Diffusion | ModelKind::LatentDiffusion
        )
    {
        return Err(fail(
            "train.ema",
            "is for the other models: a diffusion model averages its denoiser's weights with model.diffusion.ema".to_string(),
        ));
    }
    match t.fixed_scale[..] {
        [] => {}
        [mean, std] if mean.is_finite() && std.is_finite() && std > 0.0 => {
            if t.standardize {
                return Err(fail(
                    "train.fixed_scale",
                    "and train.standardize = true both scale the data: set standardize = false to use the fixed [mean, std]".to_string(),
                ));
            }
        }
        _ => {
            return Err(fail(
                "train.fixed_scale",
                format!(
                    "must be [] or [mean, std] with std > 0, both finite, got {:?}",
                    t.fixed_scale
                ),
            ))
        }
    }
    if m.vae.batch_norm != BatchNorm::None && m.network != Network::Mlp {
        return Err(fail(
            "model.vae.batch_norm",
            "normalises the hidden layers of model.network = \"mlp\" only".to_string(),
        ));
    }
    if m.vae.output != OutputActivation::Linear && m.vae.likelihood == Likelihood::Bernoulli {
        return Err(fail(
            "model.vae.output",
            "is for the Gaussian likelihood: a Bernoulli decoder gives logits, whose sigmoid is already its mean".to_string(),
        ));
    }
    if !(t.topo.gamma.is_finite() && t.topo.gamma >= 0.0) {
        return Err(fail(
            "train.topo.gamma",
            format!("must be a finite number >= 0, got {}", t.topo.gamma),
        ));
    }
    if t.topo.dims.len() != t.topo.weights.len() || t.topo.dims.iter().any(|&k| k > 2) {
        return Err(fail(
            "train.topo.weights",
            format!(
                "needs one weight per dimension of train.topo.dims (each 0, 1 or 2): dims {:?}, weights {:?}",
                t.topo.dims, t.topo.weights
            ),
        ));
    }
    if !matches!(t.topo.p, 1 | 2) {
        return Err(fail(
            "train.topo.p",
            format!("must be 1 or 2, got {}", t.topo.p),
        ));
    }
    at_least("summary.resolution", c.summary.resolution, 2)?;
    at_least("summary.image_resolution", c.summary.image_resolution, 2)?;
    if !(c.summary.image_bandwidth.is_finite() && c.summary.image_bandwidth >= 0.0) {
        return Err(fail(
            "summary.image_bandwidth",
            format!(
                "must be a finite number >= 0, got {}",
                c.summary.image_bandwidth
            ),
        ));
    }
    if !(c.diagram.p.is_finite() && c.diagram.p >= 1.0) {
        return Err(fail(
            "diagram.p",
            format!("must be a finite number >= 1, got {}", c.diagram.p),
        ));
    }
    if let Threshold::Value(t) = p.threshold {
        if t.is_nan() || t < 0.0 {
            return Err(fail(
                "ph.threshold",
                format!("must be a number >= 0 or \"auto\", got {t}"),
            ));
        }
    }
    let sm = &c.sample;
    at_least("sample.n", sm.n, 1)?;
    positive("sample.eta", sm.eta)?;
    at_least("sample.thin", sm.thin, 1)?;
    if sm.steps / sm.thin.max(1) == 0 {
        return Err(fail(
            "sample.steps",
            format!(
                "{} steps thinned by sample.thin = {} keep no state: steps must be at least thin",
                sm.steps, sm.thin
            ),
        ));
    }
    at_least("sample.diffusion_steps", sm.diffusion_steps, 1)?;
    let de = &sm.density;
    if !(de.components.len() == 2 && de.components[0] >= 1 && de.components[0] <= de.components[1])
    {
        return Err(fail(
            "sample.density.components",
            format!(
                "must be [min, max] with 1 <= min <= max (K tried by BIC), got {:?}",
                de.components
            ),
        ));
    }
    if !(de.bandwidth.is_finite() && de.bandwidth >= 0.0) {
        return Err(fail(
            "sample.density.bandwidth",
            format!(
                "must be a finite number >= 0 (0 = Scott's rule), got {}",
                de.bandwidth
            ),
        ));
    }
    positive("sample.density.reg_covar", de.reg_covar)?;
    positive("sample.density.tol", de.tol)?;
    at_least("sample.density.max_iter", de.max_iter, 1)?;
    at_least("sample.density.score_steps", de.score_steps, 2)?;
    let ip = &c.interpolate;
    at_least("interpolate.points", ip.points, 2)?;
    at_least("interpolate.pairs", ip.pairs, 1)?;
    positive("interpolate.lr", ip.lr)?;
    at_least("interpolate.neighbours", ip.neighbours, 1)?;
    if !(ip.barrier.is_finite() && ip.barrier >= 0.0) {
        return Err(fail(
            "interpolate.barrier",
            format!(
                "must be a finite number >= 0 (0 = none), got {}",
                ip.barrier
            ),
        ));
    }
    let ev = &c.eval;
    if ev.feature_input.is_empty() || ev.feature_input.contains(&0) {
        return Err(fail(
            "eval.feature_input",
            format!(
                "must be the shape of one input of the feature network, sizes >= 1 (e.g. [784] or [1, 28, 28]), got {:?}",
                ev.feature_input
            ),
        ));
    }
    at_least("eval.feature_batch", ev.feature_batch, 1)?;
    at_least("eval.is_splits", ev.is_splits, 1)?;
    at_least("eval.prdc_k", ev.prdc_k, 1)?;
    at_least("eval.landmarks", ev.landmarks, 2)?;
    if ev.dims.is_empty() || ev.dims.iter().any(|&k| k > 2) {
        return Err(fail(
            "eval.dims",
            format!(
                "must list homology dimensions among 0, 1, 2, got {:?}",
                ev.dims
            ),
        ));
    }
    if !(ev.p == 1.0 || ev.p == 2.0) {
        return Err(fail("eval.p", format!("must be 1 or 2, got {}", ev.p)));
    }
    if !(ev.tau_fraction.is_finite() && (0.0..1.0).contains(&ev.tau_fraction)) {
        return Err(fail(
            "eval.tau_fraction",
            format!("must be in [0, 1), got {}", ev.tau_fraction),
        ));
    }
    if !(ev.image_shape.is_empty() || (ev.image_shape.len() == 2 && !ev.image_shape.contains(&0))) {
        return Err(fail(
            "eval.image_shape",
            format!(
                "must be [height, width] (sizes >= 1) or [] (not images), got {:?}",
                ev.image_shape
            ),
        ));
    }
    if !(ev.cubical_tau.is_finite() && ev.cubical_tau >= 0.0) {
        return Err(fail(
            "eval.cubical_tau",
            format!("must be a finite number >= 0, got {}", ev.cubical_tau),
        ));
    }
    if !(ev.ks.len() == 3 && ev.ks[0] >= 1 && ev.ks[0] <= ev.ks[1] && ev.ks[2] >= 1) {
        return Err(fail(
            "eval.ks",
            format!(
                "must be [first, last, step] with 1 <= first <= last and step >= 1, got {:?}",
                ev.ks
            ),
        ));
    }
    at_least("eval.pgd_steps", ev.pgd_steps, 1)?;
    for (key, grid, lo, hi, what) in [
        (
            "eval.attack_eps",
            &ev.attack_eps,
            0.0,
            1.0,
            "fractions of the value range in [0, 1]",
        ),
        (
            "eval.shift_noise",
            &ev.shift_noise,
            0.0,
            f64::INFINITY,
            "noise standard deviations >= 0 (fractions of the value range)",
        ),
        (
            "eval.shift_blur",
            &ev.shift_blur,
            0.0,
            100.0,
            "blur standard deviations in pixels, in [0, 100]",
        ),
        (
            "eval.shift_rotation",
            &ev.shift_rotation,
            -360.0,
            360.0,
            "angles in degrees, in [-360, 360]",
        ),
        (
            "eval.shift_contrast",
            &ev.shift_contrast,
            0.0,
            f64::INFINITY,
            "contrast factors >= 0 (1 = unchanged)",
        ),
    ] {
        if let Some(v) = grid
            .iter()
            .find(|v| !(v.is_finite() && (lo..=hi).contains(*v)))
        {
            return Err(fail(
                key,
                format!("must list {what}; {v} is not ({grid:?})"),
            ));
        }
    }
    if !(c.run.memory_budget_gib.is_finite() && c.run.memory_budget_gib >= 0.0) {
        return Err(fail(
            "run.memory_budget_gib",
            format!(
                "must be a finite number >= 0, got {}",
                c.run.memory_budget_gib
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_config(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn message(r: Result<Config>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn defaults_parse_and_round_trip() {
        let c = Config::default();
        assert_eq!(c.synth.kind, SynthKind::Torus);
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(c, again);
        assert_eq!(load(None, &[]).unwrap(), c);
    }

    /// Every key of the embedded defaults has a comment on the line(s) above it.
    #[test]
    fn every_default_key_is_commented() {
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('[') {
                continue;
            }
            assert!(t.contains('='), "unexpected line {}: {t}", i + 1);
            assert!(
                i > 0 && lines[i - 1].trim().starts_with('#'),
                "configs/default.toml line {}: key `{t}` has no comment above it",
                i + 1
            );
        }
    }

    #[test]
    fn file_overrides_defaults() {
        let f = write_config("[synth]\nkind = \"circles\"\nn = 50\n[synth.circles]\ncount = 4\n");
        let c = load(Some(f.path()), &[]).unwrap();
        assert_eq!(c.synth.kind, SynthKind::Circles);
        assert_eq!(c.synth.n, 50);
        assert_eq!(c.synth.circles.count, 4);
        assert_eq!(
            c.synth.circles.radius,
            Config::default().synth.circles.radius
        );
    }

    #[test]
    fn unknown_key_in_file_names_file_line_and_key() {
        let f = write_config("# comment\n[synth]\nn = 50\nnosie = 0.1\n");
        let msg = message(load(Some(f.path()), &[]));
        let path = f.path().display().to_string();
        assert!(
            msg.starts_with(&format!("{path}:4: unknown key `synth.nosie`")),
            "{msg}"
        );
        assert!(msg.contains("noise"), "lists the valid keys: {msg}");
    }

    #[test]
    fn unknown_section_in_file() {
        let f = write_config("[sytnh]\nn = 5\n");
        let msg = message(load(Some(f.path()), &[]));
        assert!(msg.contains(":1: unknown key `sytnh`"), "{msg}");
    }

    #[test]
    fn wrong_type_in_file_names_key_and_line() {
        let f = write_config("[synth]\n\nn = \"many\"\n");
        let msg = message(load(Some(f.path()), &[]));
        let path = f.path().display().to_string();
        assert!(
            msg.starts_with(&format!("{path}:3: key `synth.n`")),
            "{msg}"
        );
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn syntax_error_in_file_is_reported_with_position() {
        let f = write_config("[synth]\nn = = 3\n");
        let msg = message(load(Some(f.path()), &[]));
        assert!(msg.contains("not valid TOML"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn missing_file_is_named() {
        let msg = message(load(Some(Path::new("/nonexistent/tglml.toml")), &[]));
        assert!(
            msg.starts_with("/nonexistent/tglml.toml: reading the config file"),
            "{msg}"
        );
    }

    #[test]
    fn set_overrides_and_plain_strings() {
        let o = [
            Override::parse_set("synth.n=123").unwrap(),
            Override::parse_set("synth.kind=swiss-roll").unwrap(),
            Override::parse_set("synth.noise = 0.25").unwrap(),
        ];
        let c = load(None, &o).unwrap();
        assert_eq!(c.synth.n, 123);
        assert_eq!(c.synth.kind, SynthKind::SwissRoll);
        assert_eq!(c.synth.noise, 0.25);
    }

    #[test]
    fn set_beats_file() {
        let f = write_config("[synth]\nn = 50\n");
        let c = load(Some(f.path()), &[Override::parse_set("synth.n=7").unwrap()]).unwrap();
        assert_eq!(c.synth.n, 7);
    }

    #[test]
    fn a_moved_key_names_its_new_place() {
        let e = message(load(
            None,
            &[Override::parse_set("ph.memory_budget_gib=2").unwrap()],
        ));
        assert!(
            e.contains("`ph.memory_budget_gib` moved to `run.memory_budget_gib`"),
            "{e}"
        );
        let f = write_config("[ph]\nmemory_budget_gib = 2\n");
        let e = message(load(Some(f.path()), &[]));
        assert!(e.contains("moved to `run.memory_budget_gib`"), "{e}");
        // The model's keys moved to [model] (issue 14).
        let f = write_config("[train]\nsteps = 5\nbeta = 0.1\n");
        let e = message(load(Some(f.path()), &[]));
        assert!(
            e.contains(":3")
                && e.contains(
                    "`train.beta` moved to `model.vae.beta`, the model's settings are in [model]"
                ),
            "{e}"
        );
        let e = message(load(
            None,
            &[Override::parse_set("train.hidden=[8]").unwrap()],
        ));
        assert!(e.contains("`train.hidden` moved to `model.hidden`"), "{e}");
    }

    /// The model's kind, network and likelihood are typed: a value that is
    /// not one of them names the key and the accepted values.
    #[test]
    fn model_keys_are_typed() {
        let c = load(None, &[]).unwrap();
        assert_eq!(
            (c.model.kind, c.model.network, c.model.vae.likelihood),
            (ModelKind::Vae, Network::Mlp, Likelihood::Gaussian)
        );
        for (set, want) in [
            (
                "model.kind=\"gann\"",
                "key `model.kind`: unknown variant `gann`, expected one of `vae`, `gan`, `diffusion`, `latent-diffusion`, `classifier`",
            ),
            (
                "model.network=\"cnn\"",
                "unknown variant `cnn`, expected `mlp` or `conv`",
            ),
            (
                "model.vae.likelihood=\"poisson\"",
                "expected `gaussian` or `bernoulli`",
            ),
        ] {
            let e = message(load(None, &[Override::parse_set(set).unwrap()]));
            assert!(e.contains(want), "{set}: {e}");
        }
    }

    /// Every configuration shipped in configs/ loads (keys, types, ranges,
    /// and no key of another model kind).
    #[test]
    fn every_shipped_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load(Some(&path), &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 6, "{n} configs");
    }

    /// A key of another model kind's section is refused, naming the key,
    /// where it was set and both kinds; the chosen kind's own keys pass.
    #[test]
    fn a_key_of_another_model_kind_is_refused() {
        let f = write_config("[model]\nkind = \"gan\"\n\n[model.vae]\nbeta = 0.5\n");
        let e = message(load(Some(f.path()), &[]));
        assert!(
            e.contains(":5")
                && e.contains("key `model.vae.beta` belongs to model.kind = \"vae\", but model.kind is \"gan\""),
            "{e}"
        );
        let e = message(load(
            None,
            &[Override::parse_set("model.gan.r1=2").unwrap()],
        ));
        assert!(
            e.contains("`model.gan.r1` belongs to model.kind = \"gan\", but model.kind is \"vae\""),
            "{e}"
        );
        let ok = load(
            None,
            &[
                Override::parse_set("model.kind=\"gan\"").unwrap(),
                Override::parse_set("model.gan.r1=2").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!((ok.model.kind, ok.model.gan.r1), (ModelKind::Gan, 2.0));
        // The effective configuration (every section, defaults elsewhere)
        // loads again.
        let f = write_config(&ok.to_toml());
        assert_eq!(load(Some(f.path()), &[]).unwrap(), ok);
    }

    #[test]
    fn set_errors_name_the_argument() {
        let msg = message(load(None, &[Override::parse_set("synth.nn=3").unwrap()]));
        assert!(
            msg.starts_with("--set synth.nn=3: unknown key `synth.nn`"),
            "{msg}"
        );
        let msg = message(load(None, &[Override::parse_set("synth.n=abc").unwrap()]));
        assert!(
            msg.starts_with("--set synth.n=abc: key `synth.n`: invalid type"),
            "{msg}"
        );
        let msg = message(load(
            None,
            &[Override::parse_set("synth.kind=cube").unwrap()],
        ));
        assert!(msg.contains("unknown variant `cube`"), "{msg}");
        let msg = message(load(None, &[Override::parse_set("synth=3").unwrap()]));
        assert!(msg.contains("is a section"), "{msg}");
        assert!(Override::parse_set("synth.n").is_err());
        assert!(Override::parse_set("synth..n=3").is_err());
    }

    #[test]
    fn threshold_accepts_numbers_and_auto() {
        assert_eq!(Config::default().ph.threshold, Threshold::Auto);
        let c = load(None, &[Override::parse_set("ph.threshold=0.5").unwrap()]).unwrap();
        assert_eq!(c.ph.threshold, Threshold::Value(0.5));
        let c = load(None, &[Override::parse_set("ph.threshold=2").unwrap()]).unwrap();
        assert_eq!(c.ph.threshold, Threshold::Value(2.0));
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
        let msg = message(load(
            None,
            &[Override::parse_set("ph.threshold=big").unwrap()],
        ));
        assert!(
            msg.contains("key `ph.threshold`: expected a number or \"auto\""),
            "{msg}"
        );
        let msg = message(load(
            None,
            &[Override::parse_set("ph.threshold=-1").unwrap()],
        ));
        assert!(msg.contains("must be a number >= 0"), "{msg}");
    }

    #[test]
    fn ranges_are_checked() {
        let msg = message(load(
            None,
            &[Override::parse_set("synth.noise=-1").unwrap()],
        ));
        assert!(
            msg.contains("key `synth.noise`: must be a finite number >= 0"),
            "{msg}"
        );
        let msg = message(load(
            None,
            &[Override::parse_set("synth.torus.minor_radius=3.0").unwrap()],
        ));
        assert!(
            msg.contains("smaller than synth.torus.major_radius"),
            "{msg}"
        );
        let msg = message(load(None, &[Override::flag("--n", "synth.n", 0)]));
        assert!(
            msg.starts_with("--n 0: key `synth.n`: must be at least 1"),
            "{msg}"
        );
        let diffusion = Override::parse_set("model.kind=\"diffusion\"").unwrap();
        for bad in ["[1.0, 0.0]", "[0.0]", "[0.0, 1.0, 2.0]"] {
            let set = format!("model.diffusion.clip_x0={bad}");
            let msg = message(load(
                None,
                &[diffusion.clone(), Override::parse_set(&set).unwrap()],
            ));
            assert!(
                msg.contains("key `model.diffusion.clip_x0`: must be [] (no clipping) or [lo, hi]"),
                "{set}: {msg}"
            );
        }
        let ok = load(
            None,
            &[
                diffusion,
                Override::parse_set("model.diffusion.clip_x0=[0.0, 1.0]").unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(ok.model.diffusion.clip_x0, [0.0, 1.0]);
    }
}
