//! Training checkpoints in HDF5: model variables, Adam's state, the random
//! generator's state and the position in the data, written atomically.
//!
//! A checkpoint is written through [`H5Writer`]: under a temporary name
//! beside its destination, renamed into place only when complete, so a failed
//! or interrupted save leaves no file and never replaces an older checkpoint.
//!
//! # Layout (format version 2)
//!
//! | object | content |
//! | --- | --- |
//! | root attributes | the [`Stamp`]'s (`tglml_version`, `git_revision`, `command`, `config`, `n_ranks`, `threads_per_rank`), `kind` = `"checkpoint"`, `format_version` = 2, `step`, `data_position` (u64) |
//! | `/model/<name>` | one dataset per VarStore variable, named by its full VarStore name with its dots (`/model/enc.fc1.weight`: one dataset, no groups per dot), of the tensor's dtype (f32, f64 or i64) and shape (a 0-dim tensor is a scalar dataset) |
//! | `/optimizer/<name>` | one group per optimizer, named by its training phase (`model` for a VAE; `discriminator`, `generator` for a GAN), with the u64 attribute `step` (its Adam step count) |
//! | `/optimizer/<name>/m/<i>`, `/optimizer/<name>/v/<i>` | that optimizer's Adam first and second moments of its parameter `i` (0, 1, … in its order), each with the string attribute `param`, the VarStore name of that parameter |
//! | `/rng_state` | opaque bytes (u8, 1-D) |
//! | `/extra` | a group whose f64 attributes are free named values (a learning-rate schedule's state, …) |
//! | `/log/<name>` | the training log so far, one f64 column per metric (optional: a file without `/log` loads with an empty log) |
//!
//! Values are stored bit for bit: the datasets have the tensors' own types.
//!
//! Version 1 (before optimizers were named) kept one optimizer's moments in
//! `/optimizer/m` and `/optimizer/v` and its step in the root attribute
//! `adam_step`; it is refused with a message that says so.
//!
//! # Parameter order
//!
//! Each optimizer's moments follow the order of the parameter list it was
//! made with, which [`Named::params`] names; [`Checkpoint::capture`] and
//! [`restore`] check the names and shapes against the VarStore. A
//! trainable variable belongs to at most one optimizer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use ndarray::{ArrayD, IxDyn};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::train::optim::Adam;
use tglml::error::{Error, Result};
use tglml::io::{H5Writer, Stamp};

/// The root attribute `kind` of a checkpoint.
pub const KIND: &str = "checkpoint";
/// The layout version this build writes and reads.
pub const FORMAT_VERSION: u64 = 2;

/// Everything needed to resume training.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Optimizer steps done (the training loop's count).
    pub step: u64,
    /// Every VarStore variable (trainable or not) by its VarStore name.
    /// [`load`] returns them sorted by name, on the CPU.
    pub tensors: Vec<(String, Tensor)>,
    /// The optimizers' states, one per training phase (by name; [`load`]
    /// returns them sorted by name).
    pub optimizers: Vec<OptimizerState>,
    /// The random generator's state, opaque.
    pub rng_state: Vec<u8>,
    /// Where the data stream is (samples or batches consumed: the trainer's
    /// choice).
    pub data_position: u64,
    /// The effective configuration as TOML text. [`load`] fills it from the
    /// root attribute `config`. [`save`] writes the [`Stamp`]'s
    /// configuration there, and refuses a non-empty `config_toml` that
    /// differs from it.
    pub config_toml: String,
    /// Free named values, stored as f64 attributes of `/extra`.
    pub extra: Vec<(String, f64)>,
    /// The training log up to `step`: named f64 columns, stored as
    /// `/log/<name>`, so that a resumed run's log covers the whole training.
    pub log: Vec<(String, Vec<f64>)>,
}

/// One optimizer's state: `/optimizer/<name>`.
#[derive(Debug, Default)]
pub struct OptimizerState {
    /// Its name: its training phase's.
    pub name: String,
    /// Its Adam step count.
    pub step: u64,
    /// The VarStore name of each parameter it covers, in its order.
    pub params: Vec<String>,
    /// Adam's first moments, in the order of `params`.
    pub m: Vec<Tensor>,
    /// Adam's second moments, in the order of `params`.
    pub v: Vec<Tensor>,
}

/// An optimizer of a run, for [`Checkpoint::capture`] and [`restore`]: its
/// name, the VarStore names of its parameters in its order, and the
/// optimizer (`&Adam` or `&mut Adam`).
pub struct Named<'a, A> {
    pub name: &'a str,
    pub params: &'a [String],
    pub adam: A,
}

/// The variables of `vs` (trainable or not), sorted by name (shallow
/// clones: they share storage with the VarStore).
pub fn variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The trainable variables of `vs` sorted by name: the parameter order of
/// checkpoints. Build the optimizer over these tensors, in this order.
pub fn trainable(vs: &VarStore) -> Vec<(String, Tensor)> {
    variables(vs)
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect()
}

impl Checkpoint {
    /// A snapshot (deep copies) of `vs`'s variables and of each
    /// optimizer's state; the other fields are left at their defaults for
    /// the caller to fill.
    ///
    /// Fails when an optimizer does not fit the trainable variables it
    /// names (count, names or shapes), or two name one variable.
    pub fn capture(vs: &VarStore, optimizers: &[Named<&Adam>]) -> Result<Self> {
        let params: BTreeMap<String, Tensor> = trainable(vs).into_iter().collect();
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        let snap = |t: &Tensor| tch::no_grad(|| t.detach().copy());
        let mut states = Vec::with_capacity(optimizers.len());
        for o in optimizers {
            let (step, m, v) = o.adam.state();
            let misfit = |detail: String| {
                Error::invalid(
                    "checkpoint",
                    format!(
                        "the optimizer {:?} does not fit the parameters it is named with: {detail}",
                        o.name
                    ),
                )
            };
            if m.len() != o.params.len() {
                return Err(misfit(format!(
                    "it has {} parameters, {} names",
                    m.len(),
                    o.params.len()
                )));
            }
            for (i, (name, t)) in o.params.iter().zip(m).enumerate() {
                let Some(p) = params.get(name) else {
                    return Err(misfit(format!(
                        "its parameter {i}, {name}, is not a trainable variable"
                    )));
                };
                if p.size() != t.size() || p.kind() != t.kind() {
                    return Err(misfit(format!(
                        "its parameter {i} is {} {:?}, {name} is {} {:?}",
                        kind_name(t.kind()),
                        t.size(),
                        kind_name(p.kind()),
                        p.size()
                    )));
                }
                if let Some(other) = owner.insert(name, o.name) {
                    return Err(misfit(format!(
                        "{name} belongs to the optimizer {other:?} too"
                    )));
                }
            }
            states.push(OptimizerState {
                name: o.name.to_string(),
                step,
                params: o.params.to_vec(),
                m: m.iter().map(snap).collect(),
                v: v.iter().map(snap).collect(),
            });
        }
        Ok(Checkpoint {
            tensors: variables(vs)
                .into_iter()
                .map(|(n, t)| (n, snap(&t)))
                .collect(),
            optimizers: states,
            ..Default::default()
        })
    }
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "f32".into(),
        Kind::Double => "f64".into(),
        Kind::Int64 => "i64".into(),
        other => format!("{other:?}"),
    }
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::invalid(path.display().to_string(), message)
}

fn check_name(path: &Path, what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(bad(
            path,
            format!("{what} {name:?} cannot be stored (empty, '.', '..', or contains '/' or NUL)"),
        ));
    }
    Ok(())
}

/// Checks what can be checked before anything is written.
fn validate(path: &Path, stamp: &Stamp, ck: &Checkpoint) -> Result<()> {
    if !ck.config_toml.is_empty() && ck.config_toml != stamp.config_toml {
        return Err(bad(
            path,
            "the checkpoint's config_toml differs from the stamp's configuration \
             (the file stores one: the stamp's)",
        ));
    }
    let mut shapes: BTreeMap<&str, (Vec<i64>, Kind)> = BTreeMap::new();
    for (name, t) in &ck.tensors {
        check_name(path, "model tensor", name)?;
        if shapes.insert(name.as_str(), (t.size(), t.kind())).is_some() {
            return Err(bad(path, format!("model tensor {name} is given twice")));
        }
    }
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut seen_opt = BTreeSet::new();
    for o in &ck.optimizers {
        check_name(path, "optimizer", &o.name)?;
        if !seen_opt.insert(o.name.as_str()) {
            return Err(bad(path, format!("optimizer {:?} is given twice", o.name)));
        }
        let n = o.params.len();
        if o.m.len() != n || o.v.len() != n {
            return Err(bad(
                path,
                format!(
                    "optimizer {:?}: {n} parameter names, {} m and {} v tensors",
                    o.name,
                    o.m.len(),
                    o.v.len()
                ),
            ));
        }
        for (i, name) in o.params.iter().enumerate() {
            let Some((shape, kind)) = shapes.get(name.as_str()) else {
                return Err(bad(
                    path,
                    format!(
                        "optimizer {:?}: parameter {i} is {name}, which is not a model tensor",
                        o.name
                    ),
                ));
            };
            for (which, t) in [("m", &o.m[i]), ("v", &o.v[i])] {
                if &t.size() != shape || t.kind() != *kind {
                    return Err(bad(
                        path,
                        format!(
                            "optimizer {:?}: {which}[{i}] is {} {:?}, its parameter {name} is {} {shape:?}",
                            o.name,
                            kind_name(t.kind()),
                            t.size(),
                            kind_name(*kind)
                        ),
                    ));
                }
            }
            if let Some(other) = owner.insert(name, &o.name) {
                return Err(bad(
                    path,
                    format!(
                        "{name} belongs to the optimizers {other:?} and {:?}",
                        o.name
                    ),
                ));
            }
        }
    }
    // Names become attribute or dataset names: non-empty, unique, and
    // without characters HDF5 would read as something else.
    let names_ok = |what: &str, names: Vec<&str>, banned: &[char], said: &str| {
        let mut seen = BTreeSet::new();
        match names
            .into_iter()
            .find(|n| n.is_empty() || n.contains(banned) || !seen.insert(*n))
        {
            Some(name) => Err(bad(
                path,
                format!("{what} name {name:?} is empty, has {said} or is given twice"),
            )),
            None => Ok(()),
        }
    };
    let extra = ck.extra.iter().map(|(n, _)| n.as_str()).collect();
    names_ok("extra value", extra, &['\0'], "NUL")?;
    let log = ck.log.iter().map(|(n, _)| n.as_str()).collect();
    names_ok("log column", log, &['\0', '/', '.'], "NUL, '/' or '.',")?;
    Ok(())
}

/// Writes `t` (any device, any layout) as dataset `obj`.
fn write_tensor(w: &H5Writer, obj: &str, t: &Tensor) -> Result<()> {
    let t = t.detach().to_device(Device::Cpu).contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let n = t.numel();
    fn array<T: tch::kind::Element + Default + Clone>(
        t: &Tensor,
        n: usize,
        shape: &[usize],
    ) -> ArrayD<T> {
        let mut buf = vec![T::default(); n];
        t.copy_data(&mut buf, n);
        ArrayD::from_shape_vec(IxDyn(shape), buf).expect("numel matches the shape")
    }
    match t.kind() {
        Kind::Float => w.dataset(obj, &array::<f32>(&t, n, &shape))?,
        Kind::Double => w.dataset(obj, &array::<f64>(&t, n, &shape))?,
        Kind::Int64 => w.dataset(obj, &array::<i64>(&t, n, &shape))?,
        other => {
            return Err(bad(
                w.dest(),
                format!(
                    "{obj} has dtype {}: checkpoints store f32, f64 and i64 tensors",
                    kind_name(other)
                ),
            ))
        }
    };
    Ok(())
}

/// Writes `ck` to `path` atomically (see the module documentation for the
/// layout) and returns the path. On failure no file is left and an existing
/// file at `path` is untouched.
pub fn save(path: &Path, stamp: &Stamp, ck: &Checkpoint) -> Result<PathBuf> {
    validate(path, stamp, ck)?;
    let w = H5Writer::create(path, stamp)?;
    w.attr_str("/", "kind", KIND)?;
    w.attr_u64("/", "format_version", FORMAT_VERSION)?;
    w.attr_u64("/", "step", ck.step)?;
    w.attr_u64("/", "data_position", ck.data_position)?;
    let mut groups = vec![
        "model".to_string(),
        "optimizer".to_string(),
        "extra".to_string(),
    ];
    for o in &ck.optimizers {
        for g in ["", "/m", "/v"] {
            groups.push(format!("optimizer/{}{g}", o.name));
        }
    }
    for g in &groups {
        w.file()
            .create_group(g)
            .map_err(|e| Error::hdf5(path, format!("/{g}"), e))?;
    }
    for (name, t) in &ck.tensors {
        write_tensor(&w, &format!("/model/{name}"), t)?;
    }
    for o in &ck.optimizers {
        w.attr_u64(&format!("/optimizer/{}", o.name), "step", o.step)?;
        for (i, name) in o.params.iter().enumerate() {
            for (which, t) in [("m", &o.m[i]), ("v", &o.v[i])] {
                let obj = format!("/optimizer/{}/{which}/{i}", o.name);
                write_tensor(&w, &obj, t)?;
                w.attr_str(&obj, "param", name)?;
            }
        }
    }
    w.dataset("/rng_state", &ndarray::ArrayView1::from(&ck.rng_state[..]))?;
    for (name, value) in &ck.extra {
        w.attr_f64("/extra", name, *value)?;
    }
    for (name, col) in &ck.log {
        w.dataset(
            &format!("/log/{name}"),
            &ndarray::ArrayView1::from(&col[..]),
        )?;
    }
    w.commit()
}

/// Reads the tensor stored in dataset `obj`.
fn read_tensor(path: &Path, file: &hdf5::File, obj: &str) -> Result<Tensor> {
    let h5 = |e| Error::hdf5(path, obj, e);
    let ds = file.dataset(obj).map_err(h5)?;
    let shape: Vec<i64> = ds.shape().iter().map(|&d| d as i64).collect();
    let desc = ds.dtype().and_then(|t| t.to_descriptor()).map_err(h5)?;
    let flat = match desc {
        TypeDescriptor::Float(FloatSize::U4) => {
            Tensor::from_slice(&ds.read_raw::<f32>().map_err(h5)?)
        }
        TypeDescriptor::Float(FloatSize::U8) => {
            Tensor::from_slice(&ds.read_raw::<f64>().map_err(h5)?)
        }
        TypeDescriptor::Integer(IntSize::U8) => {
            Tensor::from_slice(&ds.read_raw::<i64>().map_err(h5)?)
        }
        other => {
            return Err(bad(
                path,
                format!("{obj} has type {other}, a checkpoint tensor is f32, f64 or i64"),
            ))
        }
    };
    flat.f_reshape(shape.as_slice())
        .map_err(|e| bad(path, format!("{obj}: {e}")))
}

fn attr_u64(path: &Path, loc: &hdf5::Location, obj: &str, name: &str) -> Result<u64> {
    loc.attr(name)
        .and_then(|a| a.read_scalar::<u64>())
        .map_err(|e| Error::hdf5(path, format!("attribute {name} of {obj}"), e))
}

/// Reads the moments in the group `gname` (`/optimizer/<name>/m` or
/// `…/v`) in index order, with their parameter names.
fn read_moments(path: &Path, file: &hdf5::File, gname: &str) -> Result<Vec<(String, Tensor)>> {
    let gname = gname.to_string();
    let group = file
        .group(&gname)
        .map_err(|e| Error::hdf5(path, &gname, e))?;
    let names = group
        .member_names()
        .map_err(|e| Error::hdf5(path, &gname, e))?;
    let mut idx: Vec<usize> = Vec::with_capacity(names.len());
    for n in &names {
        match n.parse::<usize>() {
            Ok(i) if i.to_string() == *n => idx.push(i),
            _ => return Err(bad(path, format!("{gname}/{n} is not a parameter index"))),
        }
    }
    idx.sort_unstable();
    if idx.iter().enumerate().any(|(k, &i)| k != i) {
        return Err(bad(
            path,
            format!("{gname} holds indices {idx:?}, expected 0..{}", idx.len()),
        ));
    }
    idx.iter()
        .map(|i| {
            let obj = format!("{gname}/{i}");
            let t = read_tensor(path, file, &obj)?;
            let ds = file.dataset(&obj).map_err(|e| Error::hdf5(path, &obj, e))?;
            let name = tglml::io::attr_string(path, &ds, &obj, "param")?;
            Ok((name, t))
        })
        .collect()
}

/// Reads a checkpoint written by [`save`]. Errors name the file: one that
/// is not HDF5 (or truncated, or corrupt), one that is not a checkpoint,
/// one whose layout is incomplete or inconsistent.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let file = hdf5::File::open(path).map_err(|e| {
        Error::hdf5(
            path,
            "cannot be opened as HDF5 (missing, truncated or corrupt?)",
            e,
        )
    })?;
    match tglml::io::attr_string(path, &file, "/", "kind") {
        Ok(k) if k == KIND => {}
        Ok(k) => {
            return Err(bad(
                path,
                format!("not a TGLML checkpoint (its root attribute kind is {k:?})"),
            ))
        }
        Err(_) => {
            return Err(bad(
                path,
                "not a TGLML checkpoint (no root attribute kind = \"checkpoint\")",
            ))
        }
    }
    let version = attr_u64(path, &file, "/", "format_version")?;
    if version != FORMAT_VERSION {
        let why = if version == 1 {
            " (written by a tglml from before the training loop had named optimizers, one per phase)"
        } else {
            ""
        };
        return Err(bad(
            path,
            format!(
                "checkpoint format version {version}{why}; this build reads version {FORMAT_VERSION}: continue that run with the tglml that wrote it, or start over with --overwrite"
            ),
        ));
    }
    let step = attr_u64(path, &file, "/", "step")?;
    let data_position = attr_u64(path, &file, "/", "data_position")?;
    let config_toml = tglml::io::attr_string(path, &file, "/", "config")?;

    let model = file
        .group("model")
        .map_err(|e| Error::hdf5(path, "/model", e))?;
    let names = model
        .member_names()
        .map_err(|e| Error::hdf5(path, "/model", e))?;
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = read_tensor(path, &file, &format!("/model/{name}"))?;
        tensors.push((name, t));
    }

    let by_name: BTreeMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let group = file
        .group("optimizer")
        .map_err(|e| Error::hdf5(path, "/optimizer", e))?;
    let mut optimizers = Vec::new();
    for name in group
        .member_names()
        .map_err(|e| Error::hdf5(path, "/optimizer", e))?
    {
        let g = format!("/optimizer/{name}");
        let opt = file.group(&g).map_err(|e| Error::hdf5(path, &g, e))?;
        let step = attr_u64(path, &opt, &g, "step")?;
        let m = read_moments(path, &file, &format!("{g}/m"))?;
        let v = read_moments(path, &file, &format!("{g}/v"))?;
        if m.len() != v.len() {
            return Err(bad(
                path,
                format!("{g}/m has {} tensors, {g}/v has {}", m.len(), v.len()),
            ));
        }
        for (i, ((mn, mt), (vn, vt))) in m.iter().zip(&v).enumerate() {
            if mn != vn {
                return Err(bad(
                    path,
                    format!("{g}/m/{i} is for {mn}, {g}/v/{i} for {vn}"),
                ));
            }
            let Some(p) = by_name.get(mn.as_str()) else {
                return Err(bad(
                    path,
                    format!("{g}/m/{i} is for {mn}, which has no dataset /model/{mn}"),
                ));
            };
            for (which, t) in [("m", mt), ("v", vt)] {
                if t.size() != p.size() || t.kind() != p.kind() {
                    return Err(bad(
                        path,
                        format!(
                            "{g}/{which}/{i} is {} {:?}, /model/{mn} is {} {:?}",
                            kind_name(t.kind()),
                            t.size(),
                            kind_name(p.kind()),
                            p.size()
                        ),
                    ));
                }
            }
        }
        let (params, m): (Vec<String>, Vec<Tensor>) = m.into_iter().unzip();
        optimizers.push(OptimizerState {
            name,
            step,
            params,
            m,
            v: v.into_iter().map(|(_, t)| t).collect(),
        });
    }

    let rng = file
        .dataset("rng_state")
        .map_err(|e| Error::hdf5(path, "/rng_state", e))?;
    if rng.ndim() != 1 {
        return Err(bad(path, "/rng_state is not 1-D"));
    }
    let rng_state = rng
        .read_raw::<u8>()
        .map_err(|e| Error::hdf5(path, "/rng_state (bytes)", e))?;

    let extra_group = file
        .group("extra")
        .map_err(|e| Error::hdf5(path, "/extra", e))?;
    let mut extra = Vec::new();
    for name in extra_group
        .attr_names()
        .map_err(|e| Error::hdf5(path, "/extra", e))?
    {
        let value = extra_group
            .attr(&name)
            .and_then(|a| a.read_scalar::<f64>())
            .map_err(|e| Error::hdf5(path, format!("attribute {name} of /extra"), e))?;
        extra.push((name, value));
    }

    let mut log = Vec::new();
    if let Ok(group) = file.group("log") {
        for name in group
            .member_names()
            .map_err(|e| Error::hdf5(path, "/log", e))?
        {
            let col = group
                .dataset(&name)
                .and_then(|d| d.read_raw::<f64>())
                .map_err(|e| Error::hdf5(path, format!("/log/{name}"), e))?;
            log.push((name, col));
        }
    }

    Ok(Checkpoint {
        step,
        tensors,
        optimizers,
        rng_state,
        data_position,
        config_toml,
        extra,
        log,
    })
}

/// Loads the checkpoint at `path` into `vs` and into the `optimizers`
/// (none: the model alone), and returns the checkpoint (its tensors too,
/// on the CPU, for inspection).
///
/// Everything is checked before anything is copied: every variable of `vs`
/// must have a dataset of the same shape and dtype, the file no dataset that
/// `vs` lacks; with optimizers, the file must hold exactly these (by name),
/// each for the same parameters in the same order, tensor for tensor.
/// Otherwise the error names the file and lists each problem (`ck.h5:
/// /model/enc.fc1.weight has shape [64, 784], the model has [32, 784]`)
/// and neither `vs` nor any optimizer is changed.
pub fn restore(
    path: &Path,
    vs: &mut VarStore,
    optimizers: &mut [Named<&mut Adam>],
) -> Result<Checkpoint> {
    let ck = load(path)?;
    let vars = variables(vs);
    let in_file: BTreeMap<&str, &Tensor> =
        ck.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let in_vs: BTreeSet<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    let mut problems: Vec<String> = Vec::new();
    for (name, t) in &vars {
        match in_file.get(name.as_str()) {
            None => problems.push(format!(
                "the model's variable {name} has no dataset /model/{name}"
            )),
            Some(src) if src.size() != t.size() => problems.push(format!(
                "/model/{name} has shape {:?}, the model has {:?}",
                src.size(),
                t.size()
            )),
            Some(src) if src.kind() != t.kind() => problems.push(format!(
                "/model/{name} has dtype {}, the model has {}",
                kind_name(src.kind()),
                kind_name(t.kind())
            )),
            Some(_) => {}
        }
    }
    for (name, _) in &ck.tensors {
        if !in_vs.contains(name.as_str()) {
            problems.push(format!("/model/{name} is not a variable of the model"));
        }
    }
    if !optimizers.is_empty() {
        let given: BTreeSet<&str> = optimizers.iter().map(|o| o.name).collect();
        let stored: BTreeSet<&str> = ck.optimizers.iter().map(|o| o.name.as_str()).collect();
        if given != stored {
            problems.push(format!(
                "it holds the optimizers {stored:?}, this model trains with {given:?} (a checkpoint of another model kind?)"
            ));
        }
    }
    for o in optimizers.iter() {
        let Some(st) = ck.optimizers.iter().find(|s| s.name == o.name) else {
            continue;
        };
        let g = format!("/optimizer/{}", o.name);
        if st.params.len() != o.params.len() {
            problems.push(format!(
                "{g} is for {} parameters, the model's has {}",
                st.params.len(),
                o.params.len()
            ));
        } else if let Some(i) = (0..o.params.len()).find(|&i| st.params[i] != o.params[i]) {
            problems.push(format!(
                "{g}/m/{i} is for {}, the optimizer's parameter {i} is {}",
                st.params[i], o.params[i]
            ));
        } else if problems.is_empty() {
            // The file's moments have their parameters' shapes (checked by
            // `load`), which match the model's: a misfit here means the
            // optimizer was not built over the parameters it is named with.
            let (_, own, _) = o.adam.state();
            for (i, name) in o.params.iter().enumerate() {
                if own
                    .get(i)
                    .is_none_or(|t| t.size() != st.m[i].size() || t.kind() != st.m[i].kind())
                {
                    problems.push(format!(
                        "{g}/m/{i} ({name}) is {} {:?}, the optimizer's parameter {i} is {}",
                        kind_name(st.m[i].kind()),
                        st.m[i].size(),
                        own.get(i).map_or("missing".to_string(), |t| format!(
                            "{} {:?}",
                            kind_name(t.kind()),
                            t.size()
                        ))
                    ));
                }
            }
            if problems.is_empty() {
                if let Err(e) = o.adam.check_state(&st.m, &st.v) {
                    problems.push(format!("the optimizer {:?} does not fit: {e}", o.name));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(bad(path, problems.join("; ")));
    }
    tch::no_grad(|| {
        for (name, t) in &vars {
            let mut dst = t.shallow_clone();
            dst.copy_(in_file[name.as_str()]);
        }
    });
    for o in optimizers.iter_mut() {
        let st = ck
            .optimizers
            .iter()
            .find(|s| s.name == o.name)
            .expect("checked above");
        let copy = |ts: &[Tensor]| ts.iter().map(|t| t.shallow_clone()).collect::<Vec<_>>();
        o.adam
            .set_state(st.step, copy(&st.m), copy(&st.v))
            .map_err(|e| bad(path, format!("setting the optimizer {:?}: {e}", o.name)))?;
    }
    Ok(ck)
}

/// 64-bit FNV-1a over named tensors, in name order: each name, its dtype,
/// its shape and its raw bytes (native order). Equal on two ranks when they
/// hold bit-identical values under the same names.
pub fn hash_tensors(named: &[(String, Tensor)]) -> u64 {
    let mut h = tglml::dist::Fnv1a::new();
    let mut eat = |bytes: &[u8]| h.eat(bytes);
    let mut order: Vec<&(String, Tensor)> = named.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in order {
        eat(name.as_bytes());
        eat(&[0]);
        eat(kind_name(t.kind()).as_bytes());
        eat(&[0]);
        for d in t.size() {
            eat(&d.to_le_bytes());
        }
        let t = t.detach().to_device(Device::Cpu).contiguous();
        let n = t.numel();
        let mut buf = vec![0u8; n * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut buf, n);
        eat(&(buf.len() as u64).to_le_bytes());
        eat(&buf);
    }
    h.finish()
}

/// [`hash_tensors`] over every variable of `vs`: compare it across ranks to
/// check that they hold identical parameters.
pub fn param_hash(vs: &VarStore) -> u64 {
    hash_tensors(&variables(vs))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tch::nn::{self, Module};

    use crate::train::optim::AdamConfig;

    fn stamp() -> Stamp {
        Stamp {
            command: "train".into(),
            config_toml: "[train]\nlr = 0.01\n".into(),
            n_ranks: 2,
            threads_per_rank: 1,
        }
    }

    fn bits(t: &Tensor) -> Vec<u8> {
        let t = t.contiguous();
        let mut buf = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.copy_data_u8(&mut buf, t.numel());
        buf
    }

    fn same(a: &Tensor, b: &Tensor) -> bool {
        a.size() == b.size() && a.kind() == b.kind() && bits(a) == bits(b)
    }

    /// A model with dotted names, f32 weights, f64 variables (one 0-dim)
    /// and a non-trainable i64 buffer.
    fn model(vs: &VarStore, hidden: i64) -> (nn::Linear, nn::Linear, Tensor, Tensor) {
        let root = vs.root();
        let fc1 = nn::linear(&root / "enc" / "fc1", 5, hidden, Default::default());
        let fc2 = nn::linear(&root / "dec" / "fc2", hidden, 3, Default::default());
        let scale = root.add("scale", Tensor::from_slice(&[0.5f64, -1.0]), true);
        let stats = &root / "stats";
        let temperature = stats.add("temperature", Tensor::from(1.5f64), true);
        let _count = stats.add("count", Tensor::from_slice(&[3i64]), false);
        (fc1, fc2, scale, temperature)
    }

    /// A trained-for-two-steps model, its optimizer and a checkpoint of both.
    fn trained(hidden: i64) -> (VarStore, Adam, Checkpoint) {
        tch::manual_seed(7);
        let vs = VarStore::new(Device::Cpu);
        let (fc1, fc2, scale, temperature) = model(&vs, hidden);
        let params: Vec<Tensor> = trainable(&vs).into_iter().map(|(_, t)| t).collect();
        let mut adam = Adam::new(
            &params,
            AdamConfig {
                lr: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        let x = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
        for _ in 0..2 {
            Adam::zero_grad(&params);
            let y = fc2.forward(&fc1.forward(&x).relu());
            let extra = scale.square().sum(Kind::Double) * &temperature;
            let loss = y.square().sum(Kind::Float) + extra.to_kind(Kind::Float);
            loss.backward();
            adam.step(&params);
        }
        // A buffer the optimizer does not touch, changed so that restoring it shows.
        tch::no_grad(|| {
            vs.variables()["stats.count"]
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[42i64]))
        });
        let mut ck = Checkpoint::capture(&vs, &[model_opt(&vs, &adam)]).unwrap();
        ck.step = 2;
        ck.rng_state = vec![0, 1, 2, 255, 254];
        ck.data_position = 8;
        ck.extra = vec![("lr_scale".into(), 0.25), ("best_loss".into(), f64::NAN)];
        (vs, adam, ck)
    }

    /// The names of every trainable variable, in [`trainable`]'s order.
    fn names(vs: &VarStore) -> &'static [String] {
        Box::leak(
            trainable(vs)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    }

    /// One optimizer, "model", over every trainable variable.
    fn model_opt<'a, A>(vs: &VarStore, adam: A) -> Named<'a, A> {
        Named {
            name: "model",
            params: names(vs),
            adam,
        }
    }

    fn fresh(hidden: i64) -> (VarStore, Adam) {
        tch::manual_seed(99);
        let vs = VarStore::new(Device::Cpu);
        let _ = model(&vs, hidden);
        let params: Vec<Tensor> = trainable(&vs).into_iter().map(|(_, t)| t).collect();
        let adam = Adam::new(
            &params,
            AdamConfig {
                lr: 0.01,
                ..Default::default()
            },
        )
        .unwrap();
        (vs, adam)
    }

    fn snapshot(vs: &VarStore) -> Vec<(String, Vec<u8>)> {
        variables(vs)
            .iter()
            .map(|(n, t)| (n.clone(), bits(t)))
            .collect()
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.h5");
        let nan_payload = f32::from_bits(0x7fc0_1234);
        let ck = Checkpoint {
            step: 11,
            tensors: vec![
                ("a.scalar".into(), Tensor::from(-0.0f64)),
                (
                    "b.empty".into(),
                    Tensor::zeros([0, 3], (Kind::Float, Device::Cpu)),
                ),
                (
                    "c.f32".into(),
                    Tensor::from_slice(&[
                        1.5f32,
                        nan_payload,
                        f32::MIN_POSITIVE / 2.0,
                        -7.0,
                        0.1,
                        1e30,
                    ])
                    .reshape([2, 3]),
                ),
                (
                    "d.f64".into(),
                    Tensor::from_slice(&[0.1f64, f64::INFINITY, -1e-310]).reshape([3, 1, 1]),
                ),
                ("e.i64".into(), Tensor::from_slice(&[i64::MIN, 3, i64::MAX])),
                // Not contiguous: stored in logical (row-major) order.
                (
                    "f.t".into(),
                    Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])
                        .reshape([2, 3])
                        .tr(),
                ),
            ],
            optimizers: vec![
                OptimizerState {
                    name: "generator".into(),
                    step: 9,
                    params: vec!["c.f32".into(), "a.scalar".into()],
                    m: vec![
                        Tensor::full([2, 3], 0.25, (Kind::Float, Device::Cpu)),
                        Tensor::from(3.0f64),
                    ],
                    v: vec![
                        Tensor::full([2, 3], 1e-9, (Kind::Float, Device::Cpu)),
                        Tensor::from(4.0f64),
                    ],
                },
                OptimizerState {
                    name: "discriminator".into(),
                    step: 4,
                    params: vec!["d.f64".into()],
                    m: vec![Tensor::full([3, 1, 1], -1.5, (Kind::Double, Device::Cpu))],
                    v: vec![Tensor::full([3, 1, 1], 2.5, (Kind::Double, Device::Cpu))],
                },
            ],
            rng_state: (0..=255).collect(),
            data_position: u64::MAX,
            config_toml: String::new(),
            extra: vec![("z".into(), 1.0 / 3.0), ("a".into(), -2.5)],
            log: vec![
                ("step".into(), vec![0.0, 1.0, 2.0]),
                ("loss".into(), vec![f64::NAN, -0.5, 1e300]),
            ],
        };
        assert_eq!(save(&path, &stamp(), &ck).unwrap(), path);
        assert_eq!(dir_names(dir.path()), ["ck.h5"]);
        let back = load(&path).unwrap();
        assert_eq!((back.step, back.data_position), (11, u64::MAX));
        // Sorted by name.
        let opts: Vec<(&str, u64, &[String])> = back
            .optimizers
            .iter()
            .map(|o| (o.name.as_str(), o.step, o.params.as_slice()))
            .collect();
        assert_eq!(
            opts,
            [
                ("discriminator", 4, &ck.optimizers[1].params[..]),
                ("generator", 9, &ck.optimizers[0].params[..])
            ]
        );
        assert_eq!(back.rng_state, ck.rng_state);
        assert_eq!(back.config_toml, stamp().config_toml);
        let mut extra = back.extra.clone();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            extra,
            vec![("a".to_string(), -2.5), ("z".to_string(), 1.0 / 3.0)]
        );
        // The log, bit for bit (HDF5 lists the columns by name).
        let bits = |c: &[f64]| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(back.log.len(), 2);
        for (name, col) in &ck.log {
            let got = back.log.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(bits(&got.1), bits(col), "{name}");
        }
        assert_eq!(back.tensors.len(), ck.tensors.len());
        for ((n1, t1), (n2, t2)) in ck.tensors.iter().zip(&back.tensors) {
            assert_eq!(n1, n2);
            assert!(same(t1, t2), "{n1}: {t1:?} vs {t2:?}");
        }
        assert_eq!(back.tensors[0].1.dim(), 0, "0-dim stays 0-dim");
        assert_eq!(back.tensors[1].1.size(), [0, 3]);
        for (a, b) in ck.optimizers.iter().zip(back.optimizers.iter().rev()) {
            for (x, y) in a.m.iter().chain(&a.v).zip(b.m.iter().chain(&b.v)) {
                assert!(same(x, y));
            }
        }
        // The layout as documented, read with hdf5 directly.
        let f = hdf5::File::open(&path).unwrap();
        assert!(
            f.dataset("model/c.f32").is_ok(),
            "dots are kept in dataset names"
        );
        assert!(f.dataset("model/a.scalar").unwrap().is_scalar());
        let step: u64 = f
            .group("optimizer/generator")
            .unwrap()
            .attr("step")
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(step, 9);
        let p: hdf5::types::VarLenUnicode = f
            .dataset("optimizer/generator/v/1")
            .unwrap()
            .attr("param")
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(p.as_str(), "a.scalar");
        let k: hdf5::types::VarLenUnicode = f.attr("kind").unwrap().read_scalar().unwrap();
        assert_eq!(k.as_str(), "checkpoint");
    }

    #[test]
    fn restore_into_fresh_model_is_identical_and_training_continues_alike() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.h5");
        let (vs, mut adam, ck) = trained(4);
        save(&path, &stamp(), &ck).unwrap();

        let (mut vs2, mut adam2) = fresh(4);
        assert_ne!(param_hash(&vs), param_hash(&vs2));
        let opt = model_opt(&vs, &mut adam2);
        let back = restore(&path, &mut vs2, &mut [opt]).unwrap();
        assert_eq!((back.step, back.data_position), (2, 8));
        assert_eq!(snapshot(&vs), snapshot(&vs2));
        assert_eq!(vs2.variables()["stats.count"].int64_value(&[0]), 42);
        assert_eq!(
            trainable(&vs2)
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            [
                "dec.fc2.bias",
                "dec.fc2.weight",
                "enc.fc1.bias",
                "enc.fc1.weight",
                "scale",
                "stats.temperature"
            ]
        );
        assert_eq!(param_hash(&vs), param_hash(&vs2));
        let ((s1, m1, v1), (s2, m2, v2)) = (adam.state(), adam2.state());
        assert_eq!((s1, s2), (2, 2));
        for (a, b) in m1.iter().chain(v1).zip(m2.iter().chain(v2)) {
            assert!(same(a, b));
        }
        // One more identical step on both gives identical parameters.
        let step = |vs: &VarStore, adam: &mut Adam| {
            let params: Vec<Tensor> = trainable(vs).into_iter().map(|(_, t)| t).collect();
            Adam::zero_grad(&params);
            params
                .iter()
                .map(|p| p.square().sum(Kind::Double))
                .fold(Tensor::from(0.0f64), |a, b| a + b)
                .backward();
            adam.step(&params);
        };
        step(&vs, &mut adam);
        step(&vs2, &mut adam2);
        assert_eq!(param_hash(&vs), param_hash(&vs2));
    }

    fn assert_unchanged_after_error(path: &Path, hidden: i64, wants: &[&str]) {
        let (mut vs, mut adam) = fresh(hidden);
        let before = snapshot(&vs);
        let params = names(&vs);
        let mut opts = [Named {
            name: "model",
            params,
            adam: &mut adam,
        }];
        let err = restore(path, &mut vs, &mut opts).unwrap_err().to_string();
        let fname = path.file_name().unwrap().to_string_lossy();
        assert!(err.contains(fname.as_ref()), "names the file: {err}");
        for w in wants {
            assert!(err.contains(w), "{w:?} missing in: {err}");
        }
        assert_eq!(snapshot(&vs), before, "VarStore unchanged");
        assert_eq!(adam.state().0, 0, "optimizer unchanged");
        assert!(adam
            .state()
            .1
            .iter()
            .all(|t| t.abs().sum(Kind::Double).double_value(&[]) == 0.0));
    }

    #[test]
    fn mismatched_shape_is_reported_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.h5");
        save(&path, &stamp(), &trained(4).2).unwrap();
        assert_unchanged_after_error(
            &path,
            6,
            &[
                "/model/enc.fc1.weight has shape [4, 5], the model has [6, 5]",
                "/model/enc.fc1.bias has shape [4], the model has [6]",
            ],
        );
    }

    #[test]
    fn missing_and_extra_tensors_are_reported_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, mut ck) = trained(4);
        let extra = dir.path().join("extra.h5");
        ck.tensors.push((
            "dec.fc3.weight".into(),
            Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        ));
        save(&extra, &stamp(), &ck).unwrap();
        assert_unchanged_after_error(
            &extra,
            4,
            &["/model/dec.fc3.weight is not a variable of the model"],
        );

        let missing = dir.path().join("missing.h5");
        ck.tensors
            .retain(|(n, _)| n != "dec.fc3.weight" && n != "scale");
        let o = &mut ck.optimizers[0];
        let i = o.params.iter().position(|n| n == "scale").unwrap();
        o.params.remove(i);
        let _ = o.m.remove(i);
        let _ = o.v.remove(i);
        save(&missing, &stamp(), &ck).unwrap();
        assert_unchanged_after_error(
            &missing,
            4,
            &["the model's variable scale has no dataset /model/scale"],
        );
    }

    #[test]
    fn dtype_mismatch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, mut ck) = trained(4);
        let path = dir.path().join("dtype.h5");
        for (n, t) in ck.tensors.iter_mut() {
            if n == "scale" {
                *t = t.to_kind(Kind::Float);
            }
        }
        let o = &mut ck.optimizers[0];
        o.params.clear();
        o.m.clear();
        o.v.clear();
        save(&path, &stamp(), &ck).unwrap();
        assert_unchanged_after_error(
            &path,
            4,
            &[
                "/model/scale has dtype f32, the model has f64",
                "/optimizer/model is for 0 parameters, the model's has 6",
            ],
        );
    }

    #[test]
    fn truncated_corrupt_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.h5");
        save(&good, &stamp(), &trained(4).2).unwrap();
        let bytes = std::fs::read(&good).unwrap();

        let truncated = dir.path().join("truncated.h5");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        assert_unchanged_after_error(&truncated, 4, &["cannot be opened as HDF5"]);

        let text = dir.path().join("notes.h5");
        std::fs::write(&text, b"not HDF5 at all\n").unwrap();
        assert_unchanged_after_error(&text, 4, &["cannot be opened as HDF5"]);

        let absent = dir.path().join("absent.h5");
        assert_unchanged_after_error(&absent, 4, &["cannot be opened as HDF5"]);

        // An HDF5 file of another kind: no checkpoint layout.
        let foreign = dir.path().join("foreign.h5");
        let w = H5Writer::create(&foreign, &stamp()).unwrap();
        w.dataset("/x", &ndarray::array![1.0f64]).unwrap();
        w.commit().unwrap();
        assert_unchanged_after_error(&foreign, 4, &["not a TGLML checkpoint"]);

        // The right kind but a part of the layout missing.
        let partial = dir.path().join("partial.h5");
        let w = H5Writer::create(&partial, &stamp()).unwrap();
        w.attr_str("/", "kind", KIND).unwrap();
        w.attr_u64("/", "format_version", FORMAT_VERSION).unwrap();
        for a in ["step", "data_position"] {
            w.attr_u64("/", a, 0).unwrap();
        }
        w.commit().unwrap();
        assert_unchanged_after_error(&partial, 4, &["/model"]);
    }

    #[test]
    fn failed_save_leaves_no_file_and_keeps_the_old_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, ck) = trained(4);

        // The destination is a (non-empty) folder: the final rename fails.
        let taken = dir.path().join("taken.h5");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("x"), b"").unwrap();
        let err = save(&taken, &stamp(), &ck).unwrap_err().to_string();
        assert!(err.contains("taken.h5"), "{err}");
        assert_eq!(dir_names(dir.path()), ["taken.h5"]);

        // A failure half-way through writing (a dtype checkpoints do not
        // store) leaves the existing checkpoint as it was.
        let path = dir.path().join("ck.h5");
        save(&path, &stamp(), &ck).unwrap();
        let before = std::fs::read(&path).unwrap();
        let mut bad_ck = trained(4).2;
        bad_ck.step = 3;
        bad_ck
            .tensors
            .push(("zz.mask".into(), Tensor::from_slice(&[1i8, 0])));
        let err = save(&path, &stamp(), &bad_ck).unwrap_err().to_string();
        assert!(
            err.contains("ck.h5") && err.contains("/model/zz.mask") && err.contains("Int8"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(dir_names(dir.path()), ["ck.h5", "taken.h5"]);
        assert_eq!(load(&path).unwrap().step, 2);
    }

    #[test]
    fn save_refuses_inconsistent_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.h5");
        type Edit = Box<dyn Fn(&mut Checkpoint)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.tensors.push(("a/b".into(), Tensor::from(1.0f32)))),
                "\"a/b\" cannot be stored",
            ),
            (
                Box::new(|c| {
                    let t = c.tensors[0].1.copy();
                    let n = c.tensors[0].0.clone();
                    c.tensors.push((n, t));
                }),
                "given twice",
            ),
            (
                Box::new(|c| {
                    c.optimizers[0].m.pop();
                }),
                "m and",
            ),
            (
                Box::new(|c| c.optimizers[0].params[0] = "nope".into()),
                "nope, which is not a model tensor",
            ),
            (
                Box::new(|c| {
                    let o = &c.optimizers[0];
                    let twin = OptimizerState {
                        name: "second".into(),
                        step: 0,
                        params: o.params[..1].to_vec(),
                        m: vec![o.m[0].copy()],
                        v: vec![o.v[0].copy()],
                    };
                    c.optimizers.push(twin);
                }),
                "belongs to the optimizers \"model\" and \"second\"",
            ),
            (
                Box::new(|c| c.optimizers[0].name = "a/b".into()),
                "optimizer \"a/b\" cannot be stored",
            ),
            (
                Box::new(|c| c.config_toml = "other".into()),
                "differs from the stamp",
            ),
        ];
        for (edit, want) in cases {
            let mut ck = trained(4).2;
            edit(&mut ck);
            let err = save(&path, &stamp(), &ck).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("ck.h5"),
                "{want:?} missing in: {err}"
            );
            assert!(dir_names(dir.path()).is_empty());
        }
    }

    #[test]
    fn capture_checks_the_optimizer_order() {
        let (vs, _, _) = trained(4);
        let mut params: Vec<Tensor> = trainable(&vs).into_iter().map(|(_, t)| t).collect();
        params.reverse();
        let adam = Adam::new(&params, AdamConfig::default()).unwrap();
        let err = Checkpoint::capture(&vs, &[model_opt(&vs, &adam)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn restore_checks_the_optimizer_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("order.h5");
        save(&path, &stamp(), &trained(4).2).unwrap();
        let (mut vs, _) = fresh(4);
        let before = snapshot(&vs);
        let mut params: Vec<Tensor> = trainable(&vs).into_iter().map(|(_, t)| t).collect();
        params.reverse();
        let mut adam = Adam::new(&params, AdamConfig::default()).unwrap();
        let opt = model_opt(&vs, &mut adam);
        let err = restore(&path, &mut vs, &mut [opt]).unwrap_err().to_string();
        assert!(
            err.contains("order.h5")
                && err.contains("/optimizer/model/m/0 (dec.fc2.bias) is f32 [3], the optimizer's parameter 0 is f64 []"),
            "{err}"
        );
        assert_eq!(snapshot(&vs), before);
        assert_eq!(adam.state().0, 0);
        // Without an optimizer the model alone is restored.
        let ck = restore(&path, &mut vs, &mut []).unwrap();
        assert_eq!(ck.optimizers[0].step, 2);
        assert_ne!(snapshot(&vs), before);
    }

    /// Two optimizers over disjoint parameters (a GAN's two phases): each
    /// comes back to its own Adam, bit for bit; a model that trains with
    /// other optimizers (another model kind) is refused, nothing changed.
    #[test]
    fn named_optimizers_come_back_to_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("two.h5");
        let split = |vs: &VarStore| {
            let all = trainable(vs);
            let (enc, rest): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|(n, _)| n.starts_with("enc."));
            let names =
                |v: &[(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            let tensors =
                |v: Vec<(String, Tensor)>| v.into_iter().map(|(_, t)| t).collect::<Vec<_>>();
            ((names(&enc), tensors(enc)), (names(&rest), tensors(rest)))
        };
        let (vs, _, _) = trained(4);
        let ((ne, te), (nr, tr)) = split(&vs);
        let (mut a, mut b) = (
            Adam::new(&te, AdamConfig::default()).unwrap(),
            Adam::new(&tr, AdamConfig::default()).unwrap(),
        );
        for (adam, ps, k) in [(&mut a, &te, 1), (&mut b, &tr, 3)] {
            for _ in 0..k {
                Adam::zero_grad(ps);
                ps.iter()
                    .map(|p| p.square().sum(Kind::Double))
                    .fold(Tensor::from(0.0f64), |x, y| x + y)
                    .backward();
                adam.step(ps);
            }
        }
        let opts = [
            Named {
                name: "encoder",
                params: &ne,
                adam: &a,
            },
            Named {
                name: "rest",
                params: &nr,
                adam: &b,
            },
        ];
        save(&path, &stamp(), &Checkpoint::capture(&vs, &opts).unwrap()).unwrap();

        let (mut vs2, _) = fresh(4);
        let ((ne2, te2), (nr2, tr2)) = split(&vs2);
        let (mut a2, mut b2) = (
            Adam::new(&te2, AdamConfig::default()).unwrap(),
            Adam::new(&tr2, AdamConfig::default()).unwrap(),
        );
        // Another model kind: one optimizer, "model".
        let all: Vec<Tensor> = trainable(&vs2).into_iter().map(|(_, t)| t).collect();
        let mut one = Adam::new(&all, AdamConfig::default()).unwrap();
        let before = snapshot(&vs2);
        let opt = model_opt(&vs2, &mut one);
        let err = restore(&path, &mut vs2, &mut [opt])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("two.h5")
                && err.contains(
                    "optimizers {\"encoder\", \"rest\"}, this model trains with {\"model\"}"
                ),
            "{err}"
        );
        assert_eq!(snapshot(&vs2), before);
        restore(
            &path,
            &mut vs2,
            &mut [
                Named {
                    name: "rest",
                    params: &nr2,
                    adam: &mut b2,
                },
                Named {
                    name: "encoder",
                    params: &ne2,
                    adam: &mut a2,
                },
            ],
        )
        .unwrap();
        assert_eq!(snapshot(&vs), snapshot(&vs2));
        for (x, y) in [(&a, &a2), (&b, &b2)] {
            let ((s1, m1, v1), (s2, m2, v2)) = (x.state(), y.state());
            assert_eq!(s1, s2);
            for (p, q) in m1.iter().chain(v1).zip(m2.iter().chain(v2)) {
                assert!(same(p, q));
            }
        }
        assert_eq!((a2.state().0, b2.state().0), (1, 3));
        // A variable in two optimizers cannot be captured.
        let both = [
            Named {
                name: "encoder",
                params: &ne,
                adam: &a,
            },
            Named {
                name: "again",
                params: &ne,
                adam: &a,
            },
        ];
        let err = Checkpoint::capture(&vs, &both).unwrap_err().to_string();
        assert!(
            err.contains("belongs to the optimizer \"encoder\" too"),
            "{err}"
        );
    }

    /// A checkpoint of format version 1 (one unnamed optimizer) is refused
    /// with a message that says what it is and what to do.
    #[test]
    fn a_version_1_checkpoint_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.h5");
        let w = H5Writer::create(&path, &stamp()).unwrap();
        w.attr_str("/", "kind", KIND).unwrap();
        w.attr_u64("/", "format_version", 1).unwrap();
        for a in ["step", "adam_step", "data_position"] {
            w.attr_u64("/", a, 3).unwrap();
        }
        w.commit().unwrap();
        assert_unchanged_after_error(
            &path,
            4,
            &[
                "checkpoint format version 1 (written by a tglml from before the training loop had named optimizers",
                "this build reads version 2",
                "--overwrite",
            ],
        );
    }

    #[test]
    fn param_hash_changes_with_one_bit() {
        let (vs, _, _) = trained(4);
        let h = param_hash(&vs);
        assert_eq!(h, param_hash(&vs), "deterministic");
        let named = variables(&vs);
        assert_eq!(
            h,
            hash_tensors(
                &named
                    .iter()
                    .rev()
                    .map(|(n, t)| (n.clone(), t.shallow_clone()))
                    .collect::<Vec<_>>()
            ),
            "order-independent"
        );
        for (name, t) in &named {
            for flip in [0u32, 17, 31] {
                let flat = t.detach().flatten(0, -1);
                let orig = flat.copy();
                let mut data = bits(&flat);
                let esize = t.kind().elt_size_in_bytes();
                let last = data.len() - esize;
                data[last + (flip as usize / 8) % esize] ^= 1 << (flip % 8);
                let changed = Tensor::from_data_size(&data, &flat.size(), flat.kind());
                tch::no_grad(|| flat.shallow_clone().copy_(&changed));
                assert_ne!(param_hash(&vs), h, "{name}: bit {flip} of the last element");
                tch::no_grad(|| flat.shallow_clone().copy_(&orig));
                assert_eq!(param_hash(&vs), h);
            }
        }
        // Same values under another name hash differently.
        let renamed: Vec<(String, Tensor)> = named
            .iter()
            .map(|(n, t)| (format!("x{n}"), t.shallow_clone()))
            .collect();
        assert_ne!(hash_tensors(&renamed), h);
    }
}
