//! `tglml eval`: a generated set against a reference set, and a run's
//! latent space against its test data, with the measures of
//! [`tglml::metrics`] (docs/hdf5.md, "eval files").
//!
//! Both sets are compared in the data's units: a file with `/scale` (the
//! samples of a standardised run, or its run.h5) is mapped back by it.
//! Every rank loads the feature network (a collective load of a classifier
//! run); rank 0 computes every measure and writes the file, which is
//! therefore the same for any rank count. Nothing is written unless every
//! measure succeeded.

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use tch::{Device, Kind};

use crate::features::FeatureNet;
use crate::generate::{choose, Trained};
use crate::train::topo_loss::to_vec;
use tglml::cli::EvalArgs;
use tglml::commands::{check_outputs, on_root, Setup};
use tglml::config::{EvalConfig, ModelKind};
use tglml::dist::Comm;
use tglml::error::{Error, Result};
use tglml::io::{H5Writer, Stamp};
use tglml::metrics::{embedding::Embedding, features as fm, topology as tm};
use tglml::topology::diagram::{self, Essential, Ground};

/// Rows of one set, in the data's units, and where they came from.
pub struct Set {
    pub x: Array2<f64>,
    /// `FILE:/dataset`.
    pub source: String,
}

fn hdf5_err(path: &Path, what: &str, e: hdf5::Error) -> Error {
    Error::hdf5(path, what.to_string(), e)
}

/// The 2-D float64 dataset `name` of `f`.
fn read_2d(f: &hdf5::File, path: &Path, name: &str) -> Result<Array2<f64>> {
    let ds = f
        .dataset(name)
        .map_err(|e| hdf5_err(path, &format!("dataset /{name}"), e))?;
    if ds.ndim() != 2 {
        return Err(Error::invalid(
            format!("{}:/{name}", path.display()),
            format!(
                "has shape {:?}; expected a 2-D matrix of rows (samples × values)",
                ds.shape()
            ),
        ));
    }
    ds.read_2d::<f64>()
        .map_err(|e| hdf5_err(path, &format!("dataset /{name} (read as float64)"), e))
}

/// Whether `f` has a dataset at `name` (not a group, no error).
fn has_dataset(f: &hdf5::File, name: &str) -> bool {
    let mut at = String::new();
    for part in name.split('/') {
        if !at.is_empty() {
            at.push('/');
        }
        at.push_str(part);
        if !f.link_exists(&at) {
            return false;
        }
    }
    f.dataset(name).is_ok()
}

/// Reads dataset `name` of `path` (the first of `names` that it holds when
/// `name` is `None`), mapped back to the data's units by the file's
/// `/scale` when it has one.
pub fn read_set(path: &Path, names: &[&str]) -> Result<Set> {
    let f = hdf5::File::open(path).map_err(|e| hdf5_err(path, "opening the file", e))?;
    let Some(name) = names.iter().copied().find(|n| has_dataset(&f, n)) else {
        let listed: Vec<String> = names.iter().map(|n| format!("/{n}")).collect();
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "holds none of {} (a `tglml sample` file has /samples/x, a run.h5 /samples, a sample matrix /x)",
                listed.join(", ")
            ),
        ));
    };
    let x = read_2d(&f, path, name)?;
    let source = format!("{}:/{name}", path.display());
    let x = in_data_units(&f, path, &source, x)?;
    Ok(Set { x, source })
}

/// Rows `x` of `source` in `f` mapped back to the data's units by `f`'s
/// `/scale`, when it has one; a standardised run's file without one is
/// refused; a value that is not finite too.
fn in_data_units(
    f: &hdf5::File,
    path: &Path,
    source: &str,
    mut x: Array2<f64>,
) -> Result<Array2<f64>> {
    if has_dataset(f, "scale/mean") && has_dataset(f, "scale/std") {
        let read = |n: &str| {
            f.dataset(n)
                .and_then(|d| d.read_1d::<f64>())
                .map_err(|e| hdf5_err(path, &format!("dataset /{n}"), e))
        };
        let (mean, std) = (read("scale/mean")?, read("scale/std")?);
        if mean.len() != x.ncols() || std.len() != x.ncols() {
            return Err(Error::invalid(
                source,
                format!(
                    "has {} values per row, but /scale/mean and /scale/std have {} and {}",
                    x.ncols(),
                    mean.len(),
                    std.len()
                ),
            ));
        }
        x = &x * &std + &mean;
    } else if standardised_run(path, f) {
        return Err(Error::invalid(
            source,
            "is from a run with train.standardize = true but holds no /scale to map it back to the data's units (a run.h5 of an older tglml): train it again, or draw samples with `tglml sample`, whose file has /scale",
        ));
    }
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            source,
            format!("row {i}, column {j} is {v}: values must be finite"),
        ));
    }
    Ok(x)
}

/// Whether `f` is a run.h5 of a run with train.standardize = true (its
/// root attributes command and config).
fn standardised_run(path: &Path, f: &hdf5::File) -> bool {
    let text = |name: &str| tglml::io::attr_string(path, f, "/", name).ok();
    if text("command").as_deref() != Some("train") {
        return false;
    }
    text("config")
        .and_then(|c| c.parse::<toml::Table>().ok())
        .and_then(|t| t.get("train")?.get("standardize")?.as_bool())
        .unwrap_or(false)
}

/// The datasets a generated set is read from, in order.
const SAMPLE_SETS: [&str; 3] = ["samples/x", "samples", "x"];
/// The datasets a reference set is read from, in order (a sample matrix, a
/// run.h5's test split).
const REFERENCE_SETS: [&str; 4] = ["x", "eval/x", "samples/x", "samples"];

/// Features of a set, and its class probabilities when the network is a
/// classifier.
struct Features {
    f: Array2<f64>,
    probs: Option<Array2<f64>>,
}

enum Network {
    Classifier(Box<Trained>),
    Script(FeatureNet),
}

/// The feature network of eval.features.
struct FeatureSource {
    net: Network,
    given: String,
    /// A hash of the network's weights (a classifier: its parameters,
    /// [`crate::train::checkpoint::param_hash`]; TorchScript: the file's
    /// bytes), hex.
    hash: String,
    input: Vec<i64>,
    batch: usize,
}

impl FeatureSource {
    /// Loads it on every rank (collective).
    fn load(comm: &Comm, given: &str, cfg: &EvalConfig) -> Result<FeatureSource> {
        let p = Path::new(given);
        let run = p.is_dir() || p.extension().is_some_and(|e| e == "h5");
        let (net, hash) = if run {
            let t = Trained::load(comm, p).map_err(|e| e.context("eval.features"))?;
            if t.config.model.kind != ModelKind::Classifier {
                return Err(Error::invalid(
                    format!("eval.features = {given:?}"),
                    format!(
                        "is a model.kind = \"{}\" run; features come from a model.kind = \"classifier\" run (configs/fashion_mnist_classifier.toml) or a TorchScript file",
                        t.config.model.kind.name()
                    ),
                ));
            }
            let hash = format!("{:016x}", t.param_hash());
            (Network::Classifier(Box::new(t)), hash)
        } else {
            let net = comm.agree(FeatureNet::load(p, Device::Cpu))?;
            let bytes = std::fs::read(p)
                .map_err(|e| Error::external(format!("reading {}", p.display()), e))?;
            let mut h = tglml::dist::Fnv1a::new();
            h.eat(&bytes);
            (Network::Script(net), format!("{:016x}", h.finish()))
        };
        Ok(FeatureSource {
            net,
            given: given.to_string(),
            hash,
            input: cfg.feature_input.iter().map(|&v| v as i64).collect(),
            batch: cfg.feature_batch,
        })
    }

    fn kind(&self) -> &'static str {
        match self.net {
            Network::Classifier(_) => "classifier",
            Network::Script(_) => "torchscript",
        }
    }

    /// The features of `set` (`what` names it in messages).
    fn of(&self, set: &Set, what: &str) -> Result<Features> {
        match &self.net {
            Network::Script(net) => Ok(Features {
                f: net
                    .features(set.x.view(), &self.input, self.batch)
                    .map_err(|e| e.context(format!("the {what} ({})", set.source)))?,
                probs: None,
            }),
            Network::Classifier(t) => {
                let c = t.classifier().expect("checked at load: a classifier");
                if set.x.ncols() != c.input_dim() {
                    return Err(Error::invalid(
                        format!("the {what} ({})", set.source),
                        format!(
                            "has {} values per row, but the feature network (classifier {}) takes {}",
                            set.x.ncols(),
                            self.given,
                            c.input_dim()
                        ),
                    ));
                }
                let x = match t.data.scale() {
                    Some((mean, std)) => (&set.x - mean) / std,
                    None => set.x.clone(),
                };
                let (mut f, mut p) = (Vec::new(), Vec::new());
                let mut width = 0;
                for start in (0..x.nrows()).step_by(self.batch) {
                    let end = (start + self.batch).min(x.nrows());
                    let rows = t.tensor(x.slice(ndarray::s![start..end, ..]));
                    let (feat, probs) = tglml::runtime::fallible("the feature network", || {
                        tch::no_grad(|| {
                            let feat = c.features(&rows);
                            let probs = c.logits_of_features(&feat).softmax(1, Kind::Double);
                            (feat, probs)
                        })
                    })?;
                    width = feat.size()[1] as usize;
                    f.extend(to_vec(&feat));
                    p.extend(to_vec(&probs));
                }
                let n = x.nrows();
                let shape = |v: Vec<f64>, w: usize| {
                    Array2::from_shape_vec((n, w), v).map_err(|e| Error::external("features", e))
                };
                Ok(Features {
                    f: shape(f, width)?,
                    probs: Some(shape(p, c.classes())?),
                })
            }
        }
    }
}

/// What an evaluation writes: attributes by object, and datasets.
#[derive(Default)]
struct Results {
    groups: Vec<String>,
    numbers: Vec<(String, String, f64)>,
    texts: Vec<(String, String, String)>,
    arrays: Vec<(String, Array2<f64>)>,
    /// Lines of the summary printed at the end.
    lines: Vec<String>,
}

impl Results {
    fn group(&mut self, g: &str) {
        if !self.groups.iter().any(|x| x == g) {
            self.groups.push(g.to_string());
        }
    }

    fn num(&mut self, g: &str, name: &str, v: f64) {
        self.group(g);
        self.numbers.push((g.to_string(), name.to_string(), v));
    }

    fn text(&mut self, g: &str, name: &str, v: &str) {
        self.group(g);
        self.texts
            .push((g.to_string(), name.to_string(), v.to_string()));
    }

    fn write(&self, w: &H5Writer) -> Result<()> {
        for g in &self.groups {
            w.group(g)?;
        }
        for (path, a) in &self.arrays {
            w.dataset(path, a)?;
        }
        for (g, n, v) in &self.numbers {
            w.attr_f64(g, n, *v)?;
        }
        for (g, n, v) in &self.texts {
            w.attr_str(g, n, v)?;
        }
        Ok(())
    }
}

/// The rows `rows` of `x`.
fn pick(x: &Array2<f64>, rows: &[usize]) -> Array2<f64> {
    x.select(Axis(0), rows)
}

/// FID, IS and precision/recall/density/coverage (`/features`); returns
/// the reference set's features.
fn feature_measures(
    r: &mut Results,
    cfg: &EvalConfig,
    src: &FeatureSource,
    reference: &Set,
    samples: &Set,
) -> Result<Array2<f64>> {
    eprintln!(
        "eval: features of {} reference and {} generated rows ({})",
        reference.x.nrows(),
        samples.x.nrows(),
        src.given
    );
    let fr = src.of(reference, "reference set")?;
    let fs = src.of(samples, "generated set")?;
    let g = "/features";
    r.text(g, "network", &src.given);
    r.text(g, "kind", src.kind());
    r.text(g, "hash", &src.hash);
    r.num(g, "dim", fr.f.ncols() as f64);
    let gr = fm::Gaussian::of(
        fr.f.view(),
        &format!("the reference set's features ({})", reference.source),
    )?;
    let gs = fm::Gaussian::of(
        fs.f.view(),
        &format!("the generated set's features ({})", samples.source),
    )?;
    let fid = fm::frechet(&gr, &gs)?;
    r.num(g, "fid", fid);
    let mut line = format!("FID {fid:.4}");
    if let (Some(ps), Some(pr)) = (&fs.probs, &fr.probs) {
        let splits = cfg.is_splits.min(ps.nrows()).max(1);
        let (m, s) = fm::inception_score(ps.view(), splits)?;
        let (rm, rs) = fm::inception_score(pr.view(), cfg.is_splits.min(pr.nrows()).max(1))?;
        r.num(g, "is_mean", m);
        r.num(g, "is_std", s);
        r.num(g, "is_reference_mean", rm);
        r.num(g, "is_reference_std", rs);
        r.num(g, "is_splits", splits as f64);
        line += &format!(", IS {m:.3} ± {s:.3} (reference {rm:.3})");
    }
    let sub_r = choose(fr.f.nrows(), cfg.prdc_rows, cfg.seed);
    let sub_s = choose(fs.f.nrows(), cfg.prdc_rows, cfg.seed);
    let k = cfg.prdc_k;
    tglml::guard::need(
        &format!(
            "precision/recall on {} and {} rows",
            sub_r.len(),
            sub_s.len()
        ),
        tglml::guard::Size::array(
            &[
                (sub_r.len() + sub_s.len()) as u64,
                sub_r.len().max(sub_s.len()) as u64,
                2,
            ],
            8,
        ),
        "eval.prdc_rows",
    )?;
    let p = fm::prdc(pick(&fr.f, &sub_r).view(), pick(&fs.f, &sub_s).view(), k)
        .map_err(|e| e.context("eval.prdc_k"))?;
    r.num(g, "precision", p.precision);
    r.num(g, "recall", p.recall);
    r.num(g, "density", p.density);
    r.num(g, "coverage", p.coverage);
    r.num(g, "prdc_k", k as f64);
    r.num(g, "prdc_reference_rows", sub_r.len() as f64);
    r.num(g, "prdc_samples_rows", sub_s.len() as f64);
    line += &format!(
        ", precision {:.3}, recall {:.3}, density {:.3}, coverage {:.3}",
        p.precision, p.recall, p.density, p.coverage
    );
    r.lines.push(line);
    Ok(fr.f)
}

/// The Rips diagrams (H0..=maxdim) of up to `m` maxmin landmarks of `x`.
fn landmark_diagrams(x: &Array2<f64>, m: usize, maxdim: usize) -> Result<Vec<Vec<(f64, f64)>>> {
    use tglml::topology::landmarks::{select, LandmarkMethod};
    let l = select(x.view(), m.min(x.nrows()), LandmarkMethod::MaxMin)?;
    let rows = pick(x, &l.indices);
    let d = tglml::topology::DistanceMatrix::from_points(rows.view())?;
    let dg = tglml::topology::rips_persistence(
        &d,
        &tglml::topology::RipsOptions {
            maxdim,
            ..Default::default()
        },
    )?;
    Ok(dg
        .dims
        .iter()
        .map(|bars| bars.iter().map(|b| (b.birth, b.death)).collect())
        .collect())
}

/// Essential classes matched when both diagrams have as many, else left out.
fn essential_of(a: &[(f64, f64)], b: &[(f64, f64)]) -> Essential {
    let ess = |d: &[(f64, f64)]| d.iter().filter(|p| p.1.is_infinite()).count();
    if ess(a) == ess(b) {
        Essential::Match
    } else {
        Essential::Ignore
    }
}

fn bars(d: &[(f64, f64)]) -> Array2<f64> {
    Array2::from_shape_fn((d.len(), 2), |(i, j)| if j == 0 { d[i].0 } else { d[i].1 })
}

/// Diagram distances, Betti-curve distances and topological accuracy of
/// the landmarks' Rips diagrams (`/topology/h<k>`).
fn topology_measures(
    r: &mut Results,
    cfg: &EvalConfig,
    reference: &Set,
    samples: &Set,
) -> Result<()> {
    let maxdim = *cfg.dims.iter().max().expect("validated: non-empty");
    eprintln!(
        "eval: Rips persistence (H0..H{maxdim}) of {} maxmin landmarks of each set",
        cfg.landmarks
    );
    let (dr, ds) = rayon::join(
        || landmark_diagrams(&reference.x, cfg.landmarks, maxdim),
        || landmark_diagrams(&samples.x, cfg.landmarks, maxdim),
    );
    let (dr, ds) = (dr?, ds?);
    r.num("/topology", "landmarks", cfg.landmarks as f64);
    r.num("/topology", "p", cfg.p);
    r.text("/topology", "ground", "linf");
    let mut parts = Vec::new();
    for &k in &cfg.dims {
        let (a, b) = (&dr[k], &ds[k]);
        let g = format!("/topology/h{k}");
        let ess = essential_of(a, b);
        let w = diagram::wasserstein(a, b, cfg.p, Ground::LInf, ess)?.value;
        let bn = diagram::bottleneck(a, b, Ground::LInf, ess)?.value;
        let finite_max = |d: &[(f64, f64)], f: &dyn Fn(&(f64, f64)) -> f64| {
            d.iter()
                .filter(|p| p.1.is_finite())
                .map(f)
                .fold(0.0, f64::max)
        };
        let hi = finite_max(a, &|p| p.1).max(finite_max(b, &|p| p.1));
        let betti = if hi > 0.0 {
            tm::betti_distance(a, b, 0.0, hi)?
        } else {
            0.0
        };
        let tau = cfg.tau_fraction * finite_max(a, &|p| p.1 - p.0);
        let acc = tm::topological_accuracy(a, b, tau)?;
        r.num(&g, "wasserstein", w);
        r.num(&g, "bottleneck", bn);
        r.num(&g, "betti_distance", betti);
        r.num(&g, "betti_range_hi", hi);
        r.num(&g, "tau", tau);
        r.num(&g, "topological_accuracy", acc.unwrap_or(f64::NAN));
        r.num(&g, "reference_bars", a.len() as f64);
        r.num(&g, "samples_bars", b.len() as f64);
        r.arrays.push((format!("{g}/reference"), bars(a)));
        r.arrays.push((format!("{g}/samples"), bars(b)));
        parts.push(format!(
            "H{k}: W{} {w:.4}, bottleneck {bn:.4}, Betti {betti:.4}, accuracy {}",
            cfg.p,
            acc.map_or("n/a (no significant bar)".to_string(), |v| format!(
                "{v:.3}"
            ))
        ));
    }
    r.lines.push(parts.join("; "));
    Ok(())
}

/// β0 and β1 (bars of persistence above `tau`) of the cubical complex of
/// each row of `x` as an `h` × `w` image.
fn cubical_betti(x: &Array2<f64>, h: usize, w: usize, tau: f64) -> Result<Array2<f64>> {
    let rows: Vec<Result<(usize, usize)>> = (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let img = x
                .row(i)
                .to_owned()
                .into_shape_with_order((h, w))
                .map_err(|e| Error::external("image", e))?;
            let d = tglml::topology::cubical::persistence(img.view())?;
            let count = |bars: &[(f64, f64)]| bars.iter().filter(|p| p.1 - p.0 > tau).count();
            Ok((count(&d.dim0), count(&d.dim1)))
        })
        .collect();
    let mut out = Array2::zeros((x.nrows(), 2));
    for (i, b) in rows.into_iter().enumerate() {
        let (b0, b1) = b?;
        out[[i, 0]] = b0 as f64;
        out[[i, 1]] = b1 as f64;
    }
    Ok(out)
}

/// The total variation distance between the distributions of the values
/// of column `j` of `a` and of `b` (integers).
fn tv_distance(a: &Array2<f64>, b: &Array2<f64>, j: usize) -> f64 {
    use std::collections::BTreeMap;
    let mut h: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for v in a.column(j) {
        h.entry(*v as i64).or_default().0 += 1.0 / a.nrows() as f64;
    }
    for v in b.column(j) {
        h.entry(*v as i64).or_default().1 += 1.0 / b.nrows() as f64;
    }
    0.5 * h.values().map(|(p, q)| (p - q).abs()).sum::<f64>()
}

/// Cubical persistence of images (`/cubical`).
fn cubical_measures(
    r: &mut Results,
    cfg: &EvalConfig,
    reference: &Set,
    samples: &Set,
) -> Result<()> {
    let (h, w) = (cfg.image_shape[0], cfg.image_shape[1]);
    // The same choice for both sets (of the same size: the same rows).
    let sub_r = choose(reference.x.nrows(), cfg.cubical_rows, cfg.seed ^ 2);
    let sub_s = choose(samples.x.nrows(), cfg.cubical_rows, cfg.seed ^ 2);
    eprintln!(
        "eval: cubical persistence of {} reference and {} generated {h} × {w} images",
        sub_r.len(),
        sub_s.len()
    );
    let br = cubical_betti(&pick(&reference.x, &sub_r), h, w, cfg.cubical_tau)?;
    let bs = cubical_betti(&pick(&samples.x, &sub_s), h, w, cfg.cubical_tau)?;
    let g = "/cubical";
    r.num(g, "tau", cfg.cubical_tau);
    let mean = |b: &Array2<f64>, j: usize| b.column(j).mean().unwrap_or(f64::NAN);
    let mut line = String::from("cubical Betti numbers (mean β0, β1):");
    for (name, b) in [("reference", &br), ("samples", &bs)] {
        r.num(g, &format!("{name}_mean_b0"), mean(b, 0));
        r.num(g, &format!("{name}_mean_b1"), mean(b, 1));
        line += &format!(" {name} {:.2}, {:.2};", mean(b, 0), mean(b, 1));
    }
    let (t0, t1) = (tv_distance(&br, &bs, 0), tv_distance(&br, &bs, 1));
    r.num(g, "tv_b0", t0);
    r.num(g, "tv_b1", t1);
    line += &format!(" total variation β0 {t0:.3}, β1 {t1:.3}");
    r.arrays.push((format!("{g}/reference_betti"), br));
    r.arrays.push((format!("{g}/samples_betti"), bs));
    r.lines.push(line);
    Ok(())
}

/// The embedding measures of a run's test split against its latent codes
/// (`/embedding`).
fn embedding_measures(r: &mut Results, cfg: &EvalConfig, run: &Path, f: &hdf5::File) -> Result<()> {
    if !has_dataset(f, "eval/z") {
        return Ok(());
    }
    let x = read_2d(f, run, "eval/x")?;
    let z = read_2d(f, run, "eval/z")?;
    let sub = choose(x.nrows(), cfg.embedding_rows, cfg.seed ^ 4);
    // The rank measures need k < n/2: a grid beyond it is cut there (and
    // said), a grid wholly beyond it refused.
    let grid: Vec<usize> = (cfg.ks[0]..=cfg.ks[1]).step_by(cfg.ks[2]).collect();
    let ks: Vec<usize> = grid
        .iter()
        .copied()
        .filter(|&k| 2 * k < sub.len())
        .collect();
    if ks.is_empty() {
        return Err(Error::invalid(
            "eval.ks",
            format!(
                "the neighbourhood measures need k < rows/2, but {} has {} test rows (eval.embedding_rows = {}) and the grid starts at k = {}",
                run.display(),
                sub.len(),
                cfg.embedding_rows,
                grid[0]
            ),
        ));
    }
    if ks.len() < grid.len() {
        eprintln!(
            "eval: {} test rows: the k grid of the embedding measures stops at {} (k < rows/2; eval.ks = {:?})",
            sub.len(),
            ks[ks.len() - 1],
            cfg.ks
        );
    }
    eprintln!(
        "eval: embedding measures of {} test rows against their codes ({})",
        sub.len(),
        run.display()
    );
    let (xs, zs) = (pick(&x, &sub), pick(&z, &sub));
    r.arrays.push(("/embedding/z".into(), zs.clone()));
    if has_dataset(f, "eval/y") {
        let y = f
            .dataset("eval/y")
            .and_then(|d| d.read_1d::<i64>())
            .map_err(|e| hdf5_err(run, "dataset /eval/y", e))?;
        r.arrays.push((
            "/embedding/labels".into(),
            Array2::from_shape_fn((sub.len(), 1), |(i, _)| y[sub[i]] as f64),
        ));
    }
    let e = Embedding::new(xs.view(), zs.view())?;
    let a = e.averaged(&ks)?;
    let g = "/embedding";
    r.text(g, "run", &run.display().to_string());
    r.num(g, "rows", sub.len() as f64);
    r.arrays.push((
        format!("{g}/ks"),
        Array2::from_shape_fn((ks.len(), 1), |(i, _)| ks[i] as f64),
    ));
    r.num(g, "trustworthiness", a.trustworthiness);
    r.num(g, "continuity", a.continuity);
    r.num(g, "mrre_zx", a.mrre_zx);
    r.num(g, "mrre_xz", a.mrre_xz);
    r.num(g, "rmse", e.rmse());
    r.num(g, "stress", e.stress());
    let kl = crate::eval::kl_sigmas(&x, &z, &[0.01, 0.1, 1.0]);
    for (name, v) in ["kl_0.01", "kl_0.1", "kl_1"].iter().zip(&kl) {
        r.num(g, name, *v);
    }
    r.lines.push(format!(
        "embedding ({} rows; KL on all {}): trustworthiness {:.3}, continuity {:.3}, MRRE {:.3}/{:.3}, RMSE {:.3}, stress {:.3}, KL_0.1 {:.4}",
        sub.len(),
        x.nrows(),
        a.trustworthiness,
        a.continuity,
        a.mrre_zx,
        a.mrre_xz,
        e.rmse(),
        e.stress(),
        kl[1]
    ));
    Ok(())
}

/// The quality of the interpolation paths of `paths` (`/interpolation`):
/// per path its regularity ([`tglml::metrics::path::regularity`]), its
/// realism (the mean distance of its points to their nearest reference
/// row, in feature space with a feature network, over the mean distance of
/// reference rows to their nearest other one: 1 = as close as real data
/// lies to itself) and, for images, how often the cubical Betti numbers
/// (β0, β1) of its points change from one point to the next.
fn interpolation_measures(
    r: &mut Results,
    cfg: &EvalConfig,
    paths: &Path,
    reference: &Set,
    features: Option<(&FeatureSource, &Array2<f64>)>,
) -> Result<()> {
    use tglml::metrics::path as pm;
    let f = hdf5::File::open(paths).map_err(|e| hdf5_err(paths, "opening the file", e))?;
    let source = format!("{}:/paths/x", paths.display());
    if !has_dataset(&f, "paths/x") {
        return Err(Error::invalid(
            paths.display().to_string(),
            "holds no /paths/x: give a `tglml interpolate` file to --paths",
        ));
    }
    let raw = f
        .dataset("paths/x")
        .and_then(|d| d.read_dyn::<f64>())
        .map_err(|e| hdf5_err(paths, "dataset /paths/x (read as float64)", e))?;
    let &[np, k, d] = raw.shape() else {
        return Err(Error::invalid(
            &source,
            format!(
                "has shape {:?}; expected (paths, points, values)",
                raw.shape()
            ),
        ));
    };
    if d != reference.x.ncols() {
        return Err(Error::invalid(
            &source,
            format!(
                "has {d} values per point, the reference set ({}) {}: the paths must be of the same data",
                reference.source,
                reference.x.ncols()
            ),
        ));
    }
    if np == 0 || k < 3 {
        return Err(Error::invalid(
            &source,
            format!("has {np} paths of {k} points; the measures need a path of at least 3 points"),
        ));
    }
    let flat = raw
        .into_shape_with_order((np * k, d))
        .map_err(|e| Error::external("paths", e))?;
    let x = in_data_units(&f, paths, &source, flat)?;
    eprintln!(
        "eval: interpolation quality of {np} paths of {k} points ({})",
        paths.display()
    );
    // Realism, in feature space when there is a feature network.
    let (space, points, real) = match features {
        Some((src, fr)) => {
            let set = Set {
                x: x.clone(),
                source: source.clone(),
            };
            (
                "features",
                src.of(&set, "decoded path points")?.f,
                fr.clone(),
            )
        }
        None => ("data", x.clone(), reference.x.clone()),
    };
    let n = real.nrows();
    if n < 4 {
        return Err(Error::invalid(
            &reference.source,
            format!("has {n} rows; the realism of paths needs at least 4"),
        ));
    }
    let held = choose(n, (n / 2).min(1000), cfg.seed ^ 6);
    let rest: Vec<usize> = (0..n).filter(|i| held.binary_search(i).is_err()).collect();
    let key = "eval.prdc_rows (the reference rows of the paths' realism)";
    let base = pm::nearest(pick(&real, &held).view(), pick(&real, &rest).view(), key)?;
    let base = base.iter().sum::<f64>() / base.len() as f64;
    let nn = pm::nearest(points.view(), real.view(), key)?;
    let image = cfg.image_shape.len() == 2 && cfg.image_shape[0] * cfg.image_shape[1] == d;
    let betti = if image {
        Some(cubical_betti(
            &x,
            cfg.image_shape[0],
            cfg.image_shape[1],
            cfg.cubical_tau,
        )?)
    } else {
        None
    };
    let mut per = Array2::from_elem((np, 4), f64::NAN);
    for p in 0..np {
        let rows = x.slice(ndarray::s![p * k..(p + 1) * k, ..]);
        let (c, cv) = pm::regularity(rows);
        per[[p, 0]] = c;
        per[[p, 1]] = cv;
        per[[p, 2]] = nn[p * k..(p + 1) * k].iter().sum::<f64>() / k as f64 / base;
        if let Some(b) = &betti {
            let t: Vec<(u64, u64)> = (p * k..(p + 1) * k)
                .map(|i| (b[[i, 0]] as u64, b[[i, 1]] as u64))
                .collect();
            per[[p, 3]] = pm::changes(&t) as f64;
        }
    }
    let g = "/interpolation";
    let mean = |j: usize| per.column(j).mean().unwrap_or(f64::NAN);
    r.text(g, "paths_file", &paths.display().to_string());
    r.num(g, "paths", np as f64);
    r.num(g, "points", k as f64);
    r.num(g, "curvature", mean(0));
    r.num(g, "step_cv", mean(1));
    r.num(g, "realism", mean(2));
    r.text(g, "realism_space", space);
    r.num(g, "reference_nn_distance", base);
    r.num(g, "nn_distance", nn.iter().sum::<f64>() / nn.len() as f64);
    let mut line = format!(
        "interpolation ({np} paths of {k} points): curvature {:.3}, step CV {:.3}, realism {:.3} (nearest real point in {space} space over real data's own)",
        mean(0),
        mean(1),
        mean(2)
    );
    if image {
        r.num(g, "betti_changes", mean(3));
        r.num(g, "betti_change_rate", mean(3) / (k - 1) as f64);
        r.num(g, "cubical_tau", cfg.cubical_tau);
        line += &format!(", cubical Betti changes {:.2} per path", mean(3));
    }
    r.arrays.push((format!("{g}/per_path"), per));
    let shown = np.min(8);
    r.arrays.push((
        format!("{g}/strip"),
        x.slice(ndarray::s![..shown * k, ..]).to_owned(),
    ));
    r.lines.push(line);
    Ok(())
}

/// The robustness curves of an autoencoder run (`/robustness`,
/// [`crate::robust`]) on eval.robust_rows rows of its test split `set`.
fn robustness_measures(r: &mut Results, cfg: &EvalConfig, t: &Trained, set: &Set) -> Result<()> {
    let sub = choose(set.x.nrows(), cfg.robust_rows, cfg.seed ^ 8);
    let x = pick(&set.x, &sub);
    let image = (cfg.image_shape.len() == 2
        && cfg.image_shape[0] * cfg.image_shape[1] == x.ncols())
    .then(|| (cfg.image_shape[0], cfg.image_shape[1]));
    eprintln!(
        "eval: robustness of the encoder on {} test rows (FGSM, PGD, {})",
        x.nrows(),
        if image.is_some() {
            "noise, blur, rotation, contrast"
        } else {
            "noise"
        }
    );
    let curves = crate::robust::curves(t, &x, cfg, image)?;
    let g = "/robustness";
    r.num(g, "rows", x.nrows() as f64);
    r.num(g, "pgd_steps", cfg.pgd_steps as f64);
    let mut parts = Vec::new();
    for c in &curves {
        let cg = format!("{g}/{}", c.name);
        let rows = Array2::from_shape_fn((c.rows.len(), 4), |(i, j)| c.rows[i][j]);
        r.text(&cg, "unit", c.unit);
        if let (Some(first), Some(last)) = (c.rows.first(), c.rows.last()) {
            r.num(&cg, "rmse_clean", first[1]);
            r.num(&cg, "rmse_at_max", last[1]);
            r.num(&cg, "rmse_increase_at_max", last[1] - first[1]);
            r.num(&cg, "displacement_rel_at_max", last[3]);
            parts.push(format!("{} {:.3}→{:.3}", c.name, first[1], last[1]));
        }
        r.arrays.push((format!("{cg}/curve"), rows));
    }
    r.lines.push(format!(
        "robustness (reconstruction RMSE, first → last severity): {}",
        parts.join(", ")
    ));
    Ok(())
}

/// The run.h5 of `--checkpoint DIR`.
fn run_file(dir: &Path) -> Result<PathBuf> {
    let f = if dir.is_dir() {
        dir.join("run.h5")
    } else {
        dir.with_file_name("run.h5")
    };
    if f.is_file() {
        Ok(f)
    } else {
        Err(Error::invalid(
            "--checkpoint",
            format!(
                "{} has no run.h5: the run has not finished (tglml train writes run.h5 after its last step)",
                dir.display()
            ),
        ))
    }
}

/// What `tglml eval` measures besides the two sets.
struct Extra<'a> {
    /// The feature network.
    features: Option<&'a FeatureSource>,
    /// The evaluated run's run.h5.
    run: Option<&'a Path>,
    /// Its model, when its robustness is measured.
    model: Option<&'a Trained>,
    /// Interpolation paths (`--paths`).
    paths: Option<&'a Path>,
}

/// Up to `n` rows of `x`, the first ones: what a report draws.
fn preview(x: &Array2<f64>, n: usize) -> Array2<f64> {
    x.slice(ndarray::s![..n.min(x.nrows()), ..]).to_owned()
}

/// Every measure of the two sets (rank 0).
fn measure(cfg: &EvalConfig, reference: &Set, samples: &Set, extra: &Extra) -> Result<Results> {
    let (features, run) = (extra.features, extra.run);
    let mut r = Results::default();
    let (nr, dr) = reference.x.dim();
    let (ns, ds) = samples.x.dim();
    if dr != ds {
        return Err(Error::invalid(
            format!("the generated set ({})", samples.source),
            format!(
                "has {ds} values per row, the reference set ({}) {dr}: both must be samples of the same data",
                reference.source
            ),
        ));
    }
    for (set, n) in [(reference, nr), (samples, ns)] {
        if n < 2 {
            return Err(Error::invalid(
                &set.source,
                format!("has {n} rows; every measure needs at least 2"),
            ));
        }
    }
    r.text("/sets", "reference", &reference.source);
    r.text("/sets", "samples", &samples.source);
    r.num("/sets", "reference_rows", nr as f64);
    r.num("/sets", "samples_rows", ns as f64);
    r.num("/sets", "dim", dr as f64);
    let reference_features = match features {
        Some(src) => Some(feature_measures(&mut r, cfg, src, reference, samples)?),
        None => {
            r.lines.push(
                "no feature network (eval.features = \"\"): FID, IS and precision/recall left out"
                    .to_string(),
            );
            None
        }
    };
    topology_measures(&mut r, cfg, reference, samples)?;
    let image = cfg.image_shape.len() == 2 && cfg.image_shape[0] * cfg.image_shape[1] == dr;
    if image {
        cubical_measures(&mut r, cfg, reference, samples)?;
    }
    // Rows for a report's pictures: a grid of images, or a scatter.
    let shown = if image { 64 } else { 1000 };
    r.arrays
        .push(("/preview/samples".into(), preview(&samples.x, shown)));
    r.arrays
        .push(("/preview/reference".into(), preview(&reference.x, shown)));
    if image {
        r.num("/preview", "image_height", cfg.image_shape[0] as f64);
        r.num("/preview", "image_width", cfg.image_shape[1] as f64);
    }
    if let Some(paths) = extra.paths {
        let feats = features.zip(reference_features.as_ref());
        interpolation_measures(&mut r, cfg, paths, reference, feats)?;
    }
    if let Some(run) = run {
        // The evaluated run, for `tglml report` (its settings and seed).
        let f = hdf5::File::open(run).map_err(|e| hdf5_err(run, "opening the file", e))?;
        let config = tglml::io::attr_string(run, &f, "/", "config")?;
        r.text("/run", "path", &run.display().to_string());
        r.text("/run", "config", &config);
        embedding_measures(&mut r, cfg, run, &f)?;
        if let Some(t) = extra.model {
            // The test split: the reference already read, unless another
            // reference was given.
            let own = format!("{}:/eval/x", run.display());
            let other = (reference.source != own)
                .then(|| read_set(run, &["eval/x"]))
                .transpose()?;
            robustness_measures(&mut r, cfg, t, other.as_ref().unwrap_or(reference))?;
        }
    }
    Ok(r)
}

/// Runs `tglml eval`.
pub fn eval(comm: &Comm, setup: &Setup, a: &EvalArgs) -> Result<()> {
    let cfg = &setup.config.eval;
    let run = match &a.checkpoint {
        Some(dir) => Some(comm.agree(run_file(dir))?),
        None => None,
    };
    let samples_path = a.samples.clone().or_else(|| run.clone());
    let reference_path = a.reference.clone().or_else(|| run.clone());
    let (Some(samples_path), Some(reference_path)) = (samples_path, reference_path) else {
        return Err(Error::invalid(
            "eval",
            "needs the sets to compare: --checkpoint DIR (its samples against its test split), or --samples FILE.h5 and --reference FILE.h5",
        ));
    };
    let mut inputs: Vec<&Path> = vec![&samples_path, &reference_path];
    if !cfg.features.is_empty() {
        inputs.push(Path::new(&cfg.features));
    }
    if let Some(p) = &a.paths {
        inputs.push(p);
    }
    check_outputs(comm, &[&a.out], &inputs)?;
    let features = if cfg.features.is_empty() {
        None
    } else {
        Some(FeatureSource::load(comm, &cfg.features, cfg)?)
    };
    // The run's own model, for its robustness (autoencoders only).
    let model = match (&a.checkpoint, cfg.robustness) {
        (Some(dir), true) => {
            let t = Trained::load(comm, dir).map_err(|e| e.context("--checkpoint"))?;
            t.autoencodes().then_some(t)
        }
        _ => None,
    };
    on_root(comm, || {
        let samples = read_set(&samples_path, &SAMPLE_SETS)?;
        let reference = if a.reference.is_some() {
            read_set(&reference_path, &REFERENCE_SETS)?
        } else {
            read_set(&reference_path, &["eval/x"])?
        };
        let extra = Extra {
            features: features.as_ref(),
            run: run.as_deref(),
            model: model.as_ref(),
            paths: a.paths.as_deref(),
        };
        let r = measure(cfg, &reference, &samples, &extra)?;
        let stamp = Stamp {
            command: setup.command.to_string(),
            config_toml: setup.config.to_toml(),
            n_ranks: comm.size(),
            threads_per_rank: setup.threads,
        };
        let w = H5Writer::create(&a.out, &stamp)?;
        r.write(&w)?;
        let path = w.commit()?;
        let mut lines = vec![format!(
            "eval: {} ({} rows) against {} ({} rows)",
            samples.source,
            samples.x.nrows(),
            reference.source,
            reference.x.nrows()
        )];
        lines.extend(r.lines.iter().cloned());
        lines.push(format!("wrote {}", path.display()));
        Ok(lines.join("\n"))
    })
}
