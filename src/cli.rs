//! What the user typed: the `tglml` command line (clap).
//!
//! Commands turn these arguments into a validated [`crate::config::Config`]
//! (see [`CommonArgs::load`]); nothing here touches files or MPI.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    self, AtomsName, Config, EssentialName, GroundName, LandmarkMethodName, MetricName,
    OnErrorName, Override, SynthKind,
};
use crate::error::Result;

const LONG_ABOUT: &str = "\
TGLML measures the topology of data with Vietoris-Rips persistent homology and
trains generative models whose latent spaces keep it.

Every command runs the same as one process or under `mpirun -np N` (or `srun`);
rank 0 prints progress and writes the output files, which are HDF5 (see
docs/hdf5.md). Settings come from the built-in defaults (configs/default.toml),
then `--config FILE`, then `--set key=value` and the command's own flags;
`--dry-run` prints the result and exits.";

const AFTER_HELP: &str = "\
Examples:
  tglml data synth --kind torus --n 2000 --out output/torus.h5
  mpirun -np 4 tglml data synth --config configs/torus.toml --out output/torus.h5
  tglml data synth --set synth.torus.minor_radius=0.5 --dry-run
  tglml train --config configs/torus.toml --out output/torus
  tglml sample --checkpoint output/torus --sampler mala --n 1000 --out output/torus/mala.h5
  tglml interpolate --checkpoint output/torus --from 3 --to 17 --method geodesic --out output/torus/path.h5
  tglml eval --checkpoint output/fashion/vae --features output/fashion/classifier --out output/fashion/vae/eval.h5
  tglml info";

/// The `tglml` command line.
#[derive(Debug, Parser)]
#[command(
    name = "tglml",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TGLML_GIT_REVISION"), ")"),
    about = "Topology-guided generative modelling: persistent homology, topological losses, MPI-parallel training",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments (see [`Cli::parse_from_args`]).
    pub fn parse_args() -> std::result::Result<Cli, clap::Error> {
        Cli::parse_from_args(std::env::args_os())
    }

    /// Parses `args` (the program name first). Every command reads a
    /// negative number as a value: `--n -5` is refused by the flag's type
    /// with a message naming the flag, not taken for an unknown argument.
    pub fn parse_from_args<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        fn negatives(c: clap::Command) -> clap::Command {
            c.allow_negative_numbers(true).mut_subcommands(negatives)
        }
        let mut command = negatives(Cli::command());
        let matches = command.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Vietoris–Rips persistent homology of a point cloud or distance matrix.
    ///
    /// Reads a matrix from .npy (float32/float64, shape (n, d)), CSV, or HDF5
    /// (dataset /x by default, e.g. a `tglml data synth` file); computes the
    /// persistence diagrams H0..H<maxdim> with the critical edges of every
    /// bar (the point pairs whose distances are its birth and death), on
    /// landmarks if asked; writes /diagrams/dim<k> and
    /// /critical_edges/dim<k> (layout: docs/hdf5.md). Before computing, the
    /// memory is estimated and a run over run.memory_budget_gib is refused
    /// with the estimate. Under mpirun, rank 0 computes and writes.
    Ph(PhArgs),
    /// Compare and summarise persistence diagrams (files of `tglml ph`).
    #[command(subcommand)]
    Diagram(DiagramCommand),
    /// Train a generative model with the topological loss, data-parallel over MPI ranks.
    ///
    /// The model is [model] (kind = "vae" | "gan" | "diffusion" |
    /// "latent-diffusion"); its loss gets γ(t)·L_topo, L_topo between the
    /// persistence diagrams of each data batch and of the model's points
    /// for it: a VAE's latent codes, a GAN's generated batch, a diffusion
    /// model's prediction x̂₀ (keys of [model], [train] and [train.topo];
    /// `--dry-run` lists them). Under mpirun each rank takes batch_size
    /// rows of every global batch, the topological loss is computed on the
    /// whole global batch, and the gradients are summed over ranks, so
    /// -np 2 with batch B trains like -np 1 with 2B. Writes
    /// DIR/checkpoint.h5 (every train.checkpoint_every steps and at the
    /// end; `--resume` continues from it exactly), DIR/run.h5 (the training
    /// log /train/*, the test split /eval/x, /samples; a VAE's /eval/z with
    /// the scores KL_0.01, KL_0.1, KL_1 and W(H0) as attributes of /eval)
    /// and DIR/samples.png (a grid of 64 images, or a scatter over the
    /// test split).
    ///
    /// A folder that already holds a checkpoint is refused unless
    /// `--resume` or `--overwrite` says what to do with it.
    ///
    /// SIGUSR1 or SIGTERM (Slurm's warning before the wall-time limit,
    /// forwarded by mpirun; see slurm/train.sbatch) or a first Ctrl-C stops
    /// every rank after the same step: the checkpoint is written, no run.h5,
    /// and the exit status is 75; run again with `--resume` to continue.
    Train(TrainArgs),
    /// Draw samples from a trained model (a `tglml train` folder).
    ///
    /// The model, its data and their units are the checkpoint's (its stored
    /// configuration); [sample] says how to draw (`--dry-run` lists the
    /// keys). Samplers: prior (z ~ N(0, I) through the decoder), langevin and
    /// mala (walks on a latent density fitted to the training codes,
    /// [sample.density]: a Gaussian mixture, a KDE, or a latent-diffusion
    /// model's own score; started at training codes or prior draws, with
    /// burn-in and thinning; MALA's acceptance rate is printed and stored),
    /// diffusion and ddim (a diffusion model's own samplers). Writes
    /// /samples/z and /samples/x (and /chains for the walks; layout:
    /// docs/hdf5.md) and FILE.png: a grid of images for 28 × 28 data, else
    /// the samples over the data, and FILE.latent.png, the samples over the
    /// training codes, for a 2-D latent space. Under mpirun the chains (or
    /// blocks of samples) are spread over the ranks; the file is the same
    /// for any rank count.
    Sample(SampleArgs),
    /// Paths between the latent codes of data rows, decoded.
    ///
    /// Methods: linear, slerp, and geodesic (the shortest curve under the
    /// decoder's pull-back metric: the decoded path's discrete energy is
    /// minimised with the ends fixed, from the shortest path through a
    /// k-nearest-neighbour graph of the training codes, optionally with a
    /// density barrier; keys of [interpolate]). The ends are rows of the
    /// training data file (`--from I --to J`, or lists `--from 1,5 --to
    /// 2,9`), latent points (`--from-z 0.5,-1 --to-z 2,0.3`), or
    /// interpolate.pairs seeded random pairs. Writes /paths/z,
    /// /paths/x, /paths/energy and /paths/length (docs/hdf5.md) and
    /// FILE.png: a strip of images per path for 28 × 28 data, or the paths
    /// over the training codes for a 2-D latent space. Under mpirun the
    /// pairs are spread over the ranks; the file is the same for any rank
    /// count.
    Interpolate(InterpolateArgs),
    /// Measure generated samples and a latent space against real data.
    ///
    /// Compares a generated set with a reference set, both in the data's
    /// units: FID, Inception Score and precision/recall/density/coverage on
    /// the features of eval.features (a `tglml train` run with model.kind =
    /// "classifier", or a TorchScript file); W_p and bottleneck distances,
    /// Betti-curve distance and topological accuracy between the Rips
    /// diagrams of maxmin landmarks of both sets; for images, the cubical
    /// persistence of each image and its Betti numbers. With --checkpoint,
    /// the generated set defaults to the run's /samples and the reference
    /// to its test split, and the run's latent codes of the test split are
    /// scored (trustworthiness, continuity, MRRE, RMSE, stress, KL_σ).
    /// Writes FILE.h5 (docs/hdf5.md); keys of [eval].
    Eval(EvalArgs),
    /// Tables of every evaluation below some folders: mean ± std over seeds.
    ///
    /// Reads every `tglml eval` file (*.h5 whose root attribute command is
    /// "eval") below the folders, groups them by the configuration of the
    /// run each evaluated (its /run config, all keys but train.seed; the
    /// keys in which the groups differ name them) and writes OUT/report.md
    /// (a Markdown table per measure family), OUT/metrics.csv (one row per
    /// evaluation) and OUT/summary.csv (one row per setting: mean and
    /// sample standard deviation over its seeds).
    Report(ReportArgs),
    /// Print versions, MPI ranks, threads and CUDA availability.
    ///
    /// Use it to check a cluster build: under `mpirun` or `srun` it shows how
    /// many ranks started and how many threads each uses, and whether
    /// libtorch sees CUDA devices (see README, "Building for CUDA").
    Info(CommonArgs),
}

impl Command {
    /// Whether the command needs libtorch, which only the tglml-torch
    /// binary links ([`crate::commands::Torch`]).
    pub fn needs_torch(&self) -> bool {
        matches!(
            self,
            Command::Train(_)
                | Command::Sample(_)
                | Command::Interpolate(_)
                | Command::Eval(_)
                | Command::Info(_)
        )
    }
}

/// `tglml data …`
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate a synthetic dataset with known topology and write it to HDF5.
    ///
    /// Kinds: circles (several circles in the plane), torus (uniform by area
    /// in R^3), swiss-roll, sphere (S^dim in R^(dim+1)) and spheres (the
    /// SPHERES set of Topological Autoencoders, Moor et al. 2020: ten
    /// 100-spheres of radius 5 in R^101 with 500 points each, randomly
    /// shifted, inside a 100-sphere of radius 25 with 5,000 points). Each
    /// kind's parameters are the keys of [synth.<kind>] in the config
    /// (`--dry-run` lists them). The file holds `/x` (n, d) float64 and,
    /// where they exist, labels `/y` and intrinsic coordinates `/params`
    /// (layout: docs/hdf5.md). The same seed writes the same file for any
    /// number of MPI ranks.
    Synth(SynthArgs),
    /// Convert data sources into one HDF5 file that ranks read in parts.
    ///
    /// Sources are files or folders: a folder is searched recursively for
    /// meshes and structures (in sorted order), or, holding none, is a
    /// folder of images. Meshes (.off, .obj, .ply ASCII
    /// or binary) and protein structures (.pdb, .ent, .cif, .mmcif) become
    /// a collection of point clouds: a mesh gives pack.mesh_points points
    /// sampled uniformly by area (seed pack.seed + object number); a
    /// structure gives one cloud per model (NMR ensembles: one per model),
    /// or per model and chain with pack.per_chain, of its Cα atoms or heavy
    /// atoms (pack.atoms). The collection is stored as /points (N, 3),
    /// /offsets (objects + 1) and /names. Matrix sources become a sample
    /// matrix /x (n, d) with labels /y where known: an IDX file (MNIST,
    /// Fashion-MNIST; gzip or raw; bytes scaled to [0, 1]) with
    /// --labels FILE, a .npy or CSV file, or a folder of PNG/JPEG images
    /// (cropped per pack.image_crop, resized to pack.image_width ×
    /// pack.image_height). Collections and matrices cannot be mixed in
    /// one file. Layouts: docs/hdf5.md.
    Pack(PackArgs),
}

/// `tglml data pack`
#[derive(Debug, Clone, Args)]
pub struct PackArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Files or folders to convert.
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<PathBuf>,

    /// Labels for a matrix source: an IDX file of integers (one per
    /// sample).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Points per mesh (key pack.mesh_points).
    #[arg(long, value_name = "N")]
    pub mesh_points: Option<u64>,

    /// Atoms of structures (key pack.atoms).
    #[arg(long, value_enum)]
    pub atoms: Option<AtomsName>,

    /// One object per model and chain (key pack.per_chain).
    #[arg(long)]
    pub per_chain: bool,

    /// Keep the first N samples of a matrix source (key pack.limit; 0 = all).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Output HDF5 file (written under a temporary name, then renamed).
    #[arg(long, value_name = "FILE.h5", default_value = "output/pack.h5")]
    pub out: PathBuf,
}

impl PackArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(n) = self.mesh_points {
            o.push(Override::flag("--mesh-points", "pack.mesh_points", int(n)));
        }
        if let Some(a) = self.atoms {
            let name = match a {
                AtomsName::Ca => "ca",
                AtomsName::Heavy => "heavy",
            };
            o.push(Override::flag("--atoms", "pack.atoms", name));
        }
        if self.per_chain {
            o.push(Override::flag("--per-chain", "pack.per_chain", true));
        }
        if let Some(n) = self.limit {
            o.push(Override::flag("--limit", "pack.limit", int(n)));
        }
        o
    }
}

/// Arguments every command takes.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// TOML configuration file; the keys it leaves out keep their defaults
    /// (configs/default.toml lists and explains every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Override one configuration key, e.g. `--set synth.n=5000`. Repeatable;
    /// applied after `--config`. The value is read as TOML (numbers, true,
    /// "strings", [lists]); a bare word is taken as a string.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Print the effective configuration (TOML) and exit without running.
    #[arg(long)]
    pub dry_run: bool,

    /// Threads per MPI rank for rayon and libtorch (key run.threads; 0 =
    /// SLURM_CPUS_PER_TASK, else the node's cores divided by its ranks).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl CommonArgs {
    /// Builds the effective configuration: defaults, `--config`, `--set`,
    /// then `flags` (the command's named options).
    pub fn load(&self, flags: Vec<Override>) -> Result<Config> {
        let mut overrides = self
            .set
            .iter()
            .map(|s| Override::parse_set(s))
            .collect::<Result<Vec<_>>>()?;
        if let Some(t) = self.threads {
            overrides.push(Override::flag("--threads", "run.threads", t as i64));
        }
        overrides.extend(flags);
        config::load(self.config.as_deref(), &overrides)
    }
}

/// `tglml data synth`
#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Which dataset (key synth.kind).
    #[arg(long, value_enum)]
    pub kind: Option<SynthKind>,

    /// Number of points (key synth.n; not used by `spheres`).
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,

    /// Standard deviation of Gaussian noise on every coordinate (key synth.noise).
    #[arg(long, value_name = "SIGMA")]
    pub noise: Option<f64>,

    /// Random seed (key synth.seed).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,

    /// Output HDF5 file; written under a temporary name and renamed when
    /// complete. Parent folders are created.
    #[arg(long, value_name = "FILE.h5", default_value = "output/synth.h5")]
    pub out: PathBuf,
}

impl SynthArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(k) = self.kind {
            o.push(Override::flag("--kind", "synth.kind", k.name()));
        }
        if let Some(n) = self.n {
            o.push(Override::flag("--n", "synth.n", int(n)));
        }
        if let Some(s) = self.noise {
            o.push(Override::flag("--noise", "synth.noise", s));
        }
        if let Some(s) = self.seed {
            o.push(Override::flag("--seed", "synth.seed", int(s)));
        }
        o
    }
}

/// `tglml diagram …`
#[derive(Debug, Subcommand)]
pub enum DiagramCommand {
    /// The Wasserstein or bottleneck distance between the H_k diagrams of
    /// two files.
    ///
    /// Exact: p-Wasserstein by an optimal assignment (points may go to the
    /// diagonal), bottleneck by a search over candidate values with maximum
    /// matchings, both in GUDHI's conventions (ground metric L∞ by default,
    /// essential classes matched by sorted birth, +inf when their numbers
    /// differ). Prints the value on stdout; `--out` also writes it with the
    /// optimal matching (docs/hdf5.md).
    Distance(DistanceArgs),
    /// Landscapes, Betti curves, persistence images, total persistence and
    /// entropy of every diagram of a file, each curve stored with its grid.
    ///
    /// Landscapes are the usual ones (GUDHI's `Landscape` is √2 times
    /// them); Betti curves count bars with birth ≤ t < death; images follow
    /// gudhi.representations.PersistenceImage with persistence weighting.
    /// Layout: docs/hdf5.md.
    Summarize(SummarizeArgs),
}

/// `tglml diagram summarize`
#[derive(Debug, Clone, Args)]
pub struct SummarizeArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Diagram file (written by `tglml ph`).
    #[arg(value_name = "IN.h5")]
    pub input: PathBuf,

    /// Landscape levels K (key summary.landscapes; 0 = none).
    #[arg(long, value_name = "K")]
    pub landscapes: Option<u64>,

    /// Compute Betti curves (key summary.betti).
    #[arg(long)]
    pub betti: bool,

    /// Compute persistence images (key summary.image).
    #[arg(long)]
    pub image: bool,

    /// Grid points of landscapes and Betti curves (key summary.resolution).
    #[arg(long, value_name = "R")]
    pub resolution: Option<u64>,

    /// Output HDF5 file.
    #[arg(long, value_name = "OUT.h5", default_value = "output/summary.h5")]
    pub out: PathBuf,
}

impl SummarizeArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(k) = self.landscapes {
            o.push(Override::flag("--landscapes", "summary.landscapes", int(k)));
        }
        if self.betti {
            o.push(Override::flag("--betti", "summary.betti", true));
        }
        if self.image {
            o.push(Override::flag("--image", "summary.image", true));
        }
        if let Some(r) = self.resolution {
            o.push(Override::flag("--resolution", "summary.resolution", int(r)));
        }
        o
    }
}

/// `tglml diagram distance`
#[derive(Debug, Clone, Args)]
pub struct DistanceArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// First diagram file (written by `tglml ph`).
    #[arg(value_name = "A.h5")]
    pub a: PathBuf,

    /// Second diagram file.
    #[arg(value_name = "B.h5")]
    pub b: PathBuf,

    /// Homology dimension to compare.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub dim: usize,

    /// Distance (key diagram.metric).
    #[arg(long, value_enum)]
    pub metric: Option<MetricName>,

    /// Wasserstein order (key diagram.p).
    #[arg(long, value_name = "P")]
    pub p: Option<f64>,

    /// Ground metric between points (key diagram.ground).
    #[arg(long, value_enum)]
    pub ground: Option<GroundName>,

    /// Essential classes: match or ignore (key diagram.essential).
    #[arg(long, value_enum)]
    pub essential: Option<EssentialName>,

    /// Also write the value and the optimal matching to this HDF5 file.
    #[arg(long, value_name = "FILE.h5")]
    pub out: Option<PathBuf>,
}

impl DistanceArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(m) = self.metric {
            let name = match m {
                MetricName::Wasserstein => "wasserstein",
                MetricName::Bottleneck => "bottleneck",
            };
            o.push(Override::flag("--metric", "diagram.metric", name));
        }
        if let Some(p) = self.p {
            o.push(Override::flag("--p", "diagram.p", p));
        }
        if let Some(g) = self.ground {
            let name = match g {
                GroundName::Linf => "linf",
                GroundName::L2 => "l2",
            };
            o.push(Override::flag("--ground", "diagram.ground", name));
        }
        if let Some(e) = self.essential {
            let name = match e {
                EssentialName::Match => "match",
                EssentialName::Ignore => "ignore",
            };
            o.push(Override::flag("--essential", "diagram.essential", name));
        }
        o
    }
}

/// `tglml ph`
#[derive(Debug, Clone, Args)]
pub struct PhArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Input: a matrix (.npy, .csv/.txt, .h5 dataset --dataset, IDX .gz
    /// or -ubyte) or a collection of point clouds (.h5 of `tglml data
    /// pack`; then every object's diagrams are computed, spread over the
    /// ranks).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,

    /// HDF5 input: the dataset to read.
    #[arg(long, value_name = "NAME", default_value = "x")]
    pub dataset: String,

    /// The input is a square distance matrix, not a point cloud.
    #[arg(long, conflicts_with = "edge_list")]
    pub distance_matrix: bool,

    /// The input is a sparse distance matrix: rows (i, j, distance) with
    /// point indices from 0; pairs not listed are not edges.
    #[arg(long)]
    pub edge_list: bool,

    /// Highest homology dimension, 0..3 (key ph.maxdim).
    #[arg(long, value_name = "K")]
    pub maxdim: Option<u64>,

    /// Leave out edges longer than T (key ph.threshold; default: the
    /// enclosing radius).
    #[arg(long, value_name = "T")]
    pub threshold: Option<f64>,

    /// Compute on N landmarks (key ph.landmarks; 0 = all points).
    #[arg(long, value_name = "N")]
    pub landmarks: Option<u64>,

    /// How landmarks are chosen (key ph.landmark_method).
    #[arg(long, value_enum, value_name = "METHOD")]
    pub landmark_method: Option<LandmarkMethodName>,

    /// Seed of random landmarks (key ph.seed).
    #[arg(long, value_name = "SEED")]
    pub seed: Option<u64>,

    /// Coefficients Z/P for a prime P (key ph.coefficients; default 2).
    #[arg(long, value_name = "P")]
    pub coefficients: Option<u64>,

    /// Collections: what a failing object does (key ph.on_error): abort
    /// (every rank stops, non-zero exit, no output) or skip (recorded in
    /// the output; exit 0 with a warning).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub on_error: Option<OnErrorName>,

    /// Output HDF5 file (written under a temporary name, then renamed).
    #[arg(long, value_name = "FILE.h5", default_value = "output/ph.h5")]
    pub out: PathBuf,
}

impl PhArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(k) = self.maxdim {
            o.push(Override::flag("--maxdim", "ph.maxdim", int(k)));
        }
        if let Some(t) = self.threshold {
            o.push(Override::flag("--threshold", "ph.threshold", t));
        }
        if let Some(n) = self.landmarks {
            o.push(Override::flag("--landmarks", "ph.landmarks", int(n)));
        }
        if let Some(m) = self.landmark_method {
            o.push(Override::flag(
                "--landmark-method",
                "ph.landmark_method",
                m.name(),
            ));
        }
        if let Some(s) = self.seed {
            o.push(Override::flag("--seed", "ph.seed", int(s)));
        }
        if let Some(p) = self.coefficients {
            o.push(Override::flag("--coefficients", "ph.coefficients", int(p)));
        }
        if let Some(e) = self.on_error {
            let name = match e {
                OnErrorName::Abort => "abort",
                OnErrorName::Skip => "skip",
            };
            o.push(Override::flag("--on-error", "ph.on_error", name));
        }
        o
    }
}

/// `tglml train`
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Continue from DIR/checkpoint.h5 (same configuration).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,

    /// Start from step 0 although DIR holds a checkpoint (it and run.h5 are
    /// replaced when the new run writes them). Without --resume or
    /// --overwrite, a folder with a checkpoint is refused, so that a rerun
    /// never destroys a trained model by accident.
    #[arg(long)]
    pub overwrite: bool,

    /// Training steps (key train.steps; also sets train.epochs = 0, so that
    /// it counts in a config that trains by epochs).
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,

    /// Output folder for checkpoint.h5 and run.h5.
    #[arg(long, value_name = "DIR", default_value = "output/train")]
    pub out: PathBuf,
}

impl TrainArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(n) = self.steps {
            o.push(Override::flag("--steps", "train.steps", int(n)));
            o.push(Override::flag("--steps", "train.epochs", int(0)));
        }
        o
    }
}

/// `tglml sample`
#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The trained model: a `tglml train` output folder (its best.h5, the
    /// best validation, when it has one; else its checkpoint.h5), or a
    /// checkpoint file.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,

    /// How to draw (key sample.sampler).
    #[arg(long, value_enum)]
    pub sampler: Option<config::SamplerName>,

    /// Samples to draw (key sample.n).
    #[arg(long, value_name = "N")]
    pub n: Option<u64>,

    /// Output HDF5 file; its pictures go beside it (FILE.png).
    #[arg(long, value_name = "FILE.h5", default_value = "output/samples.h5")]
    pub out: PathBuf,
}

impl SampleArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(s) = self.sampler {
            o.push(Override::flag("--sampler", "sample.sampler", s.name()));
        }
        if let Some(n) = self.n {
            o.push(Override::flag("--n", "sample.n", int(n)));
        }
        o
    }
}

/// `tglml interpolate`
#[derive(Debug, Args)]
pub struct InterpolateArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The trained model: a `tglml train` output folder (its best.h5, the
    /// best validation, when it has one; else its checkpoint.h5), or a
    /// checkpoint file.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,

    /// The start rows (0-based rows of the training data file), one per
    /// path; with --to. Without both: interpolate.pairs random pairs.
    #[arg(long, value_name = "I", value_delimiter = ',', requires = "to")]
    pub from: Vec<u64>,

    /// The end rows, as many as --from.
    #[arg(long, value_name = "J", value_delimiter = ',', requires = "from")]
    pub to: Vec<u64>,

    /// A latent start point instead of a data row (comma-separated, as
    /// many values as the latent dimension), with --to-z: one path. Also
    /// for a GAN, which has no encoder (then with interpolate.init =
    /// "linear" for a geodesic).
    #[arg(
        long,
        value_name = "Z",
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "to_z",
        conflicts_with_all = ["from", "to"]
    )]
    pub from_z: Vec<f64>,

    /// The latent end point, with --from-z.
    #[arg(
        long,
        value_name = "Z",
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "from_z"
    )]
    pub to_z: Vec<f64>,

    /// The path (key interpolate.method).
    #[arg(long, value_enum)]
    pub method: Option<config::PathMethod>,

    /// Points per path, both ends included (key interpolate.points).
    #[arg(long, value_name = "K")]
    pub points: Option<u64>,

    /// Output HDF5 file; its picture goes beside it (FILE.png).
    #[arg(long, value_name = "FILE.h5", default_value = "output/paths.h5")]
    pub out: PathBuf,
}

impl InterpolateArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(m) = self.method {
            o.push(Override::flag("--method", "interpolate.method", m.name()));
        }
        if let Some(k) = self.points {
            o.push(Override::flag("--points", "interpolate.points", int(k)));
        }
        o
    }
}

/// `tglml eval`
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The run to evaluate: a `tglml train` output folder. Its run.h5 gives
    /// the default generated set (/samples), the default reference (the
    /// test split /eval/x) and the latent codes (/eval/z) of the embedding
    /// measures.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,

    /// The generated set: a `tglml sample` file (/samples/x), a run.h5
    /// (/samples) or a sample matrix (/x, e.g. real images for a real
    /// against real check).
    #[arg(long, value_name = "FILE.h5")]
    pub samples: Option<PathBuf>,

    /// The reference set (as --samples; e.g. output/fmnist-train.h5).
    #[arg(long, value_name = "FILE.h5")]
    pub reference: Option<PathBuf>,

    /// The feature network (key eval.features): a classifier's run folder
    /// or a TorchScript file.
    #[arg(long, value_name = "PATH")]
    pub features: Option<String>,

    /// Interpolation paths (a `tglml interpolate` file, /paths/x) whose
    /// quality is measured against the reference set: regularity, realism
    /// (nearest real point, in feature space with a feature network) and,
    /// for images, how often cubical Betti numbers change along a path.
    #[arg(long, value_name = "FILE.h5")]
    pub paths: Option<PathBuf>,

    /// Output HDF5 file.
    #[arg(long, value_name = "FILE.h5", default_value = "output/eval.h5")]
    pub out: PathBuf,
}

impl EvalArgs {
    /// The named options as configuration overrides.
    pub fn flags(&self) -> Vec<Override> {
        let mut o = Vec::new();
        if let Some(f) = &self.features {
            o.push(Override::flag("--features", "eval.features", f.as_str()));
        }
        o
    }
}

/// `tglml report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Folders searched (recursively) for `tglml eval` files.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// The report's folder (report.md, metrics.csv, summary.csv, the PNG
    /// plots; comparisons.csv with --baseline).
    #[arg(long, value_name = "DIR", default_value = "output/report")]
    pub out: PathBuf,

    /// Compare every setting with the one that differs from it only in
    /// KEY, which has VALUE there (e.g. train.topo.gamma=0: each model
    /// against itself without the topological loss): per measure the
    /// difference of the means over seeds, Welch's t and a verdict at the
    /// two-sided 5% level (better, worse, or inconclusive).
    #[arg(long, value_name = "KEY=VALUE")]
    pub baseline: Option<String>,
}

/// TOML integers are signed 64-bit; larger values saturate, which the range
/// checks then report.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_set() {
        let cli = Cli::try_parse_from([
            "tglml",
            "data",
            "synth",
            "--set",
            "synth.n=10",
            "--n",
            "20",
            "--kind",
            "swiss-roll",
        ])
        .unwrap();
        let Command::Data(DataCommand::Synth(a)) = cli.command else {
            panic!()
        };
        let c = a.common.load(a.flags()).unwrap();
        assert_eq!(c.synth.n, 20);
        assert_eq!(c.synth.kind, SynthKind::SwissRoll);
    }
}
