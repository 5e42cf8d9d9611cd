//! Issue 17: Topological Autoencoders' recipe made possible: batch norm
//! synchronised over ranks, weight decay, a validation split with early
//! stopping and best.h5, epochs, and IDX files read directly.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The settings of these tests: a float64 autoencoder with batch norm
/// after each hidden ReLU, validation every epoch on KL_0.1 with patience
/// 3, Adam with weight decay, on 1,200 points of the default synthetic set.
const RECIPE: [&str; 13] = [
    "model.vae.variational=false",
    "model.vae.batch_norm=\"after\"",
    "train.dtype=\"float64\"",
    "train.validation_fraction=0.2",
    "train.monitor=\"kl_0.1\"",
    "train.patience=3",
    "train.weight_decay=1e-4",
    "train.lr=0.01",
    "train.topo.ramp_steps=0",
    "train.topo.dims=[0, 1]",
    "train.topo.weights=[1.0, 0.5]",
    "train.checkpoint_every=0",
    "synth.n=1200",
];

fn train(np: usize, out: &Path, sets: &[String], resume: bool) -> std::process::Output {
    let mut a: Vec<String> = vec!["train".into(), "--threads".into(), "1".into()];
    for x in RECIPE
        .iter()
        .map(|x| x.to_string())
        .chain(sets.iter().cloned())
    {
        a.extend(["--set".to_string(), x]);
    }
    a.extend(["--out".to_string(), s(out)]);
    if resume {
        a.push("--resume".into());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let r = if np == 1 {
        tglml(&refs)
    } else {
        mpirun(np, &refs)
    };
    ok(&r);
    r
}

/// The resumed run in `split` wrote what the uninterrupted one in `whole`
/// did: the last and best checkpoints' weights, the validations and the
/// evaluation, bit for bit.
fn assert_resumed_as_whole(whole: &Path, split: &Path) {
    for (file, group) in [
        ("checkpoint.h5", "model"),
        ("best.h5", "model"),
        ("run.h5", "validation"),
        ("run.h5", "eval"),
    ] {
        let (worst, same) = compare_group(&whole.join(file), &split.join(file), group);
        assert!(same, "{file}/{group} differs after resume: {worst:e}");
    }
}

/// Acceptance 1: with batch norm on, -np 2 and -np 4 equal -np 1 with the
/// same global batch within 1e-9 after 50 float64 steps: parameters and
/// running statistics (checkpoint.h5), best.h5 and the validations; with
/// Adam's coupled and AdamW's decoupled weight decay.
#[test]
fn batch_norm_trains_alike_on_any_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    for opt in ["adam", "adamw"] {
        let run = |np: usize| {
            let out = dir.path().join(format!("{opt}-{np}"));
            let sets = vec![
                format!("train.optimizer=\"{opt}\""),
                format!("train.batch_size={}", 96 / np),
                "train.steps=50".to_string(),
                "train.validate_every=10".to_string(),
                "train.patience=0".to_string(),
            ];
            train(np, &out, &sets, false);
            out
        };
        let one = run(1);
        for np in [2, 4] {
            let many = run(np);
            for (file, group) in [
                ("checkpoint.h5", "model"),
                ("best.h5", "model"),
                ("run.h5", "validation"),
            ] {
                let (worst, _) = compare_group(&one.join(file), &many.join(file), group);
                eprintln!("{opt} -np {np} vs -np 1, {file}/{group}: {worst:.3e}");
                assert!(worst <= 1e-9, "{opt} -np {np} {file}/{group}: {worst}");
            }
        }
        // The running statistics moved and were stored.
        let code = format!(
            "import h5py\nm = h5py.File({:?})['model']\nprint(float(abs(m['enc.bn0.running_mean'][()]).max()), float(abs(m['dec.bn1.running_var'][()] - 1).max()))",
            s(&one.join("checkpoint.h5"))
        );
        let o = python_cmd().args(["-c", &code]).output().unwrap();
        ok(&o);
        let moved: Vec<f64> = stdout(&o)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(moved.iter().all(|&m| m > 1e-3), "{moved:?}");
    }
}

/// NumPy's forward passes of RECIPE's encoder and decoder (two hidden
/// layers, batch norm after the ReLU with its running statistics, a linear
/// output) from the variables `prefix + 'enc.…'` (`'dec.…'`) of an h5py
/// group `m`: `encode(m, prefix, x)`, `decode(m, prefix, z)`.
const NUMPY_ENCODER: &str = "import h5py, numpy as np\n\
def encode(m, prefix, h):\n\
\x20   for i in range(2):\n\
\x20       g = lambda n: m[prefix + 'enc.%s%d.%s' % (n[0], i, n[1])][()]\n\
\x20       h = np.maximum(h @ g(('fc', 'weight')).T + g(('fc', 'bias')), 0)\n\
\x20       h = (h - g(('bn', 'running_mean'))) / np.sqrt(g(('bn', 'running_var')) + 1e-5) * g(('bn', 'weight')) + g(('bn', 'bias'))\n\
\x20   return h @ m[prefix + 'enc.mu.weight'][()].T + m[prefix + 'enc.mu.bias'][()]\n\
def decode(m, prefix, h):\n\
\x20   for i in range(2):\n\
\x20       g = lambda n: m[prefix + 'dec.%s%d.%s' % (n[0], i, n[1])][()]\n\
\x20       h = np.maximum(h @ g(('fc', 'weight')).T + g(('fc', 'bias')), 0)\n\
\x20       h = (h - g(('bn', 'running_mean'))) / np.sqrt(g(('bn', 'running_var')) + 1e-5) * g(('bn', 'weight')) + g(('bn', 'bias'))\n\
\x20   return h @ m[prefix + 'dec.out.weight'][()].T + m[prefix + 'dec.out.bias'][()]\n";

/// Acceptance 1: a run stopped inside a patience window (two validations
/// after the best, patience 3) and resumed ends bit for bit as the run in
/// one go: the early stop at the same step, checkpoint.h5, best.h5 and the
/// validations. The final evaluation uses best.h5: NumPy's forward pass of
/// its encoder (batch norm with the running statistics) gives run.h5's
/// latent codes.
#[test]
fn early_stopping_resumes_exactly_inside_a_patience_window() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    let sets = |epochs: u64| {
        vec![
            format!("train.epochs={epochs}"),
            "train.batch_size=96".into(),
        ]
    };
    let r = train(1, &whole, &sets(20), false);
    let err = stderr(&r);
    // 864 training rows, batch 96: 9 steps an epoch; the best validation
    // after step 9, no better one after 18, 27, 36: stopped after step 36.
    assert!(
        err.contains("stopped early: 3 validations without a better kl_0.1"),
        "{err}"
    );
    assert!(err.contains("trained 36 steps"), "{err}");
    let r = train(1, &split, &sets(3), false);
    let err = stderr(&r);
    assert!(
        err.contains("validation after step 27") && err.contains("2 of patience 3 used"),
        "the first part must end inside the patience window: {err}"
    );
    let r = train(1, &split, &sets(20), true);
    let err = stderr(&r);
    assert!(err.contains("resuming from step 27 of 180"), "{err}");
    assert!(
        err.contains("stopped early") && err.contains("trained 36 steps"),
        "{err}"
    );
    assert_resumed_as_whole(&whole, &split);
    // A finished, early-stopped run resumed again trains no more.
    let r = train(1, &split, &sets(20), true);
    assert!(stderr(&r).contains("this run: 0 steps"), "{}", stderr(&r));

    let code = format!(
        "{NUMPY_ENCODER}m = h5py.File({:?})['model']; r = h5py.File({:?})\n\
         z = encode(m, '', r['eval/x'][()])\n\
         print(float(np.max(np.abs(z - r['eval/z'][()]))), r['validation'].attrs['best_step'])\n",
        s(&whole.join("best.h5")),
        s(&whole.join("run.h5")),
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    let mut it = out.split_whitespace();
    let d: f64 = it.next().unwrap().parse().unwrap();
    assert!(d < 1e-9, "run.h5's codes are not best.h5's encoder: {d}");
    assert_eq!(it.next().unwrap(), "9", "{out}");
}

/// `train.monitor = "loss"`: with γ = 0 it is the reconstruction (the
/// same validations, best step and final evaluation as monitoring the
/// reconstruction); with γ > 0 and a learned latent scale, run.h5's
/// /validation/loss is reconstruction + γ · /validation/topological at
/// every validation, and a run stopped between validations and resumed
/// ends bit for bit as the run in one go.
#[test]
fn the_loss_monitor_adds_gamma_times_the_topological_loss() {
    let dir = tempfile::tempdir().unwrap();
    let sets = |monitor: &str, gamma: &str, epochs: u64| {
        vec![
            format!("train.monitor=\"{monitor}\""),
            format!("train.topo.gamma={gamma}"),
            format!("train.epochs={epochs}"),
            "train.batch_size=96".into(),
            "train.patience=0".into(),
            "train.topo.latent_scale=\"learned\"".into(),
        ]
    };
    // (step, reconstruction, KL_0.1, topological, loss) per validation and
    // the best step, of run.h5.
    let read = |out: &Path| -> (Vec<Vec<f64>>, String) {
        let code = format!(
            "import h5py, numpy as np\nv = h5py.File({:?})['validation']\n\
             cols = [v[k][()] for k in ('step', 'reconstruction', 'kl_0.1', 'topological', 'loss') if k in v]\n\
             for r in zip(*cols): print(' '.join(repr(float(a)) for a in r))\n\
             print(v.attrs['best_step'])\n",
            s(&out.join("run.h5"))
        );
        let o = python_cmd().args(["-c", &code]).output().unwrap();
        ok(&o);
        let text = stdout(&o);
        let mut lines: Vec<&str> = text.lines().collect();
        let best = lines.pop().unwrap().to_string();
        let rows = lines
            .iter()
            .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
            .collect();
        (rows, best)
    };
    let plain = dir.path().join("reconstruction");
    let loss0 = dir.path().join("loss-gamma0");
    train(1, &plain, &sets("reconstruction", "0", 4), false);
    train(1, &loss0, &sets("loss", "0", 4), false);
    let (a, best_a) = read(&plain);
    let (b, best_b) = read(&loss0);
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(best_a, best_b);
    for (ra, rb) in a.iter().zip(&b) {
        assert_eq!(ra[..3], rb[..3], "γ = 0 trained differently");
        assert_eq!(
            rb[4], rb[1],
            "with γ = 0 the loss is the reconstruction: {rb:?}"
        );
        assert!(rb[3].is_finite() && rb[3] > 0.0, "{rb:?}");
    }
    let (_, same) = compare_group(&plain.join("run.h5"), &loss0.join("run.h5"), "eval");
    assert!(same, "γ = 0: the final evaluations differ");

    let gamma = 0.25;
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    train(1, &whole, &sets("loss", &gamma.to_string(), 4), false);
    let (w, _) = read(&whole);
    for r in &w {
        let want = r[1] + gamma * r[3];
        assert!(
            (r[4] - want).abs() <= 1e-12 * want.abs(),
            "loss {} vs reconstruction + γ·topological {want}: {r:?}",
            r[4]
        );
    }
    // Stopped after 2 of the 4 epochs (2 validations) and resumed.
    train(1, &split, &sets("loss", &gamma.to_string(), 2), false);
    let r = train(1, &split, &sets("loss", &gamma.to_string(), 4), true);
    assert!(
        stderr(&r).contains("resuming from step 18"),
        "{}",
        stderr(&r)
    );
    assert_resumed_as_whole(&whole, &split);
}

/// `train.ema`: the moving average of the weights and running statistics
/// is stored beside them (`avg.*`), continues exactly on resume, and is
/// what is validated and evaluated: NumPy's encoder with best.h5's
/// averages gives run.h5's codes (and with its trained weights does not),
/// and a later use of the run (`tglml interpolate`, which loads best.h5)
/// decodes with them too.
#[test]
fn the_weights_moving_average_is_checkpointed_validated_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let sets = |epochs: u64| {
        vec![
            format!("train.epochs={epochs}"),
            "train.batch_size=96".into(),
            "train.patience=0".into(),
            "train.ema=0.9".into(),
        ]
    };
    let whole = dir.path().join("whole");
    let split = dir.path().join("split");
    let r = train(1, &whole, &sets(4), false);
    assert!(
        stderr(&r).contains("evaluated with the weights' moving average (train.ema = 0.9)"),
        "{}",
        stderr(&r)
    );
    train(1, &split, &sets(2), false);
    train(1, &split, &sets(4), true);
    assert_resumed_as_whole(&whole, &split);

    let path = dir.path().join("path.h5");
    let r = tglml(&[
        "interpolate",
        "--checkpoint",
        &s(&whole),
        "--from",
        "3",
        "--to",
        "5",
        "--points",
        "3",
        "--set",
        "interpolate.steps=5",
        "--out",
        &s(&path),
    ]);
    ok(&r);
    let code = format!(
        "{NUMPY_ENCODER}m = h5py.File({:?})['model']; r = h5py.File({:?})\n\
         x, z = r['eval/x'][()], r['eval/z'][()]\n\
         avg, live = encode(m, 'avg.', x), encode(m, '', x)\n\
         assert sorted(k for k in m if not k.startswith('avg.') and k != 'topo_log_scale') == sorted(k[4:] for k in m if k.startswith('avg.'))\n\
         p = h5py.File({:?})['paths']\n\
         pz, px = p['z'][()].reshape(-1, 2), p['x'][()]\n\
         px = px.reshape(pz.shape[0], -1)\n\
         print(float(np.max(np.abs(avg - z))), float(np.max(np.abs(live - z))), float(np.max(np.abs(decode(m, 'avg.', pz) - px))), float(np.max(np.abs(decode(m, '', pz) - px))))\n",
        s(&whole.join("best.h5")),
        s(&whole.join("run.h5")),
        s(&path),
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let v: Vec<f64> = stdout(&o)
        .split_whitespace()
        .map(|t| t.parse().unwrap())
        .collect();
    eprintln!(
        "run.h5's codes vs the averages' encoder {:.2e}, the trained weights' {:.2e}; interpolate's points vs the averages' decoder {:.2e}, the trained weights' {:.2e}",
        v[0], v[1], v[2], v[3]
    );
    assert!(
        v[0] < 1e-9 && v[2] < 1e-9,
        "not the averaged networks: {v:?}"
    );
    assert!(
        v[1] > 1e-3 && v[3] > 1e-3,
        "the averages equal the trained weights: {v:?}"
    );
}

/// `train.data` and `train.test_data` take Debian's IDX files directly,
/// with the label files beside them: the same training and evaluation as
/// from the packed HDF5 files, bit for bit.
#[test]
fn idx_files_train_as_their_packed_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let images = fashion_mnist("t10k-images-idx3-ubyte.gz");
    let labels = fashion_mnist("t10k-labels-idx1-ubyte.gz");
    let packed = dir.path().join("t10k.h5");
    ok(&tglml(&[
        "data",
        "pack",
        &s(&images),
        "--labels",
        &s(&labels),
        "--out",
        &s(&packed),
    ]));
    let run = |data: &PathBuf, tag: &str| {
        let out = dir.path().join(tag);
        let sets = [
            format!("train.data={:?}", s(data)),
            "train.test_fraction=0.05".to_string(),
            "train.standardize=false".to_string(),
            "train.fixed_scale=[0.5, 0.5]".to_string(),
            "model.hidden=[32]".to_string(),
            "model.vae.batch_norm=\"before\"".to_string(),
            "model.vae.output=\"tanh\"".to_string(),
            "model.samples=10".to_string(),
            "train.topo.gamma=0".to_string(),
        ];
        let mut a: Vec<String> = vec!["train".into(), "--steps".into(), "5".into()];
        for x in sets {
            a.extend(["--set".to_string(), x]);
        }
        a.extend(["--out".to_string(), s(&out)]);
        ok(&tglml(&a.iter().map(String::as_str).collect::<Vec<_>>()));
        out
    };
    let from_idx = run(&images, "idx");
    let from_h5 = run(&packed, "h5");
    let (_, same) = compare_group(
        &from_idx.join("checkpoint.h5"),
        &from_h5.join("checkpoint.h5"),
        "model",
    );
    assert!(same, "IDX and HDF5 trained differently");
    let (_, same) = compare_group(&from_idx.join("run.h5"), &from_h5.join("run.h5"), "eval");
    assert!(same, "IDX and HDF5 evaluated differently");
    let code = format!(
        "import h5py, numpy as np\nr = h5py.File({:?})\nprint(r['eval/y'].shape[0], float(r['eval/x'][()].min()), float(r['scale/mean'][0]), float(r['scale/std'][0]))",
        s(&from_idx.join("run.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    assert_eq!(
        stdout(&o).trim(),
        "500 -1.0 0.5 0.5",
        "labels and [-1, 1] scaling"
    );
}

/// Bad settings of the new keys: one clear line each, nothing written.
#[test]
fn bad_recipe_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let train_labels = fashion_mnist("train-labels-idx1-ubyte.gz");
    let t10k = fashion_mnist("t10k-images-idx3-ubyte.gz");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["train.patience=5".into()], "train.patience"),
        (
            vec!["train.fixed_scale=[0.5, 0.5]".into()],
            "standardize = false",
        ),
        (
            vec![
                "train.fixed_scale=[0.5, 0]".into(),
                "train.standardize=false".into(),
            ],
            "std > 0",
        ),
        (
            vec![
                "model.network=\"conv\"".into(),
                "model.vae.batch_norm=\"after\"".into(),
            ],
            "model.vae.batch_norm",
        ),
        (
            vec![
                "model.vae.likelihood=\"bernoulli\"".into(),
                "model.vae.output=\"tanh\"".into(),
            ],
            "model.vae.output",
        ),
        (
            vec![
                "model.kind=\"gan\"".into(),
                "train.validation_fraction=0.1".into(),
            ],
            "train.validation_fraction",
        ),
        (
            vec!["train.validation_fraction=0.0001".into()],
            "at least 2",
        ),
        (
            vec![
                "train.validation_fraction=0.02".into(),
                "train.monitor=\"loss\"".into(),
            ],
            "no batch of",
        ),
        (
            vec![
                format!("train.data={:?}", s(&t10k)),
                format!("train.labels={:?}", s(&train_labels)),
            ],
            "has 10000 rows but its labels",
        ),
        (
            vec![
                format!("train.labels={:?}", s(&t10k)),
                format!("train.data={:?}", s(&t10k)),
            ],
            "expected a 1-D IDX file of labels",
        ),
        (
            vec!["train.ema=1".into()],
            "key `train.ema`: must be in [0, 1)",
        ),
        (
            vec!["model.kind=\"diffusion\"".into(), "train.ema=0.99".into()],
            "model.diffusion.ema",
        ),
    ];
    for (sets, want) in cases {
        let mut a: Vec<String> = vec!["train".into(), "--steps".into(), "3".into()];
        for x in &sets {
            a.extend(["--set".to_string(), x.clone()]);
        }
        a.extend(["--out".to_string(), s(&out)]);
        let r = tglml(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!r.status.success(), "{sets:?} was accepted");
        let err = stderr(&r);
        assert_eq!(error_lines(&err), 1, "{sets:?}: {err}");
        assert!(err.contains(want), "{sets:?}: expected {want:?} in {err}");
        assert!(!out.exists(), "{sets:?}: wrote {}", out.display());
    }
}

/// `--steps N` counts in a config that trains by epochs (it sets
/// train.epochs = 0), configs/fashion_mnist_topoae.toml is the recipe and
/// configs/fashion_mnist_tglml.toml parses.
#[test]
fn steps_flag_overrides_epochs_and_the_recipe_config_parses() {
    // The merged configuration `tglml train --dry-run` prints, with `extra`
    // arguments, checked to hold each of `wants`.
    let dry_run = |config: &str, extra: &[&str], wants: &[&str]| {
        let mut a = vec!["train", "--config", config, "--dry-run"];
        a.extend(extra);
        let r = tglml(&a);
        ok(&r);
        let toml = stdout(&r);
        for want in wants {
            assert!(toml.contains(want), "{config} {extra:?}: {want}: {toml}");
        }
    };
    dry_run(
        "configs/fashion_mnist_topoae.toml",
        &[],
        &[
            "epochs = 100",
            "hidden = [1000, 500, 250]",
            "batch_norm = \"after\"",
            "output = \"tanh\"",
            "patience = 10",
            "validation_fraction = 0.15",
            "fixed_scale = [0.5, 0.5]",
            "init = \"pytorch\"",
            "latent_scale_init = 0.017857",
        ],
    );
    dry_run(
        "configs/fashion_mnist_topoae.toml",
        &["--steps", "7"],
        &["steps = 7", "epochs = 0"],
    );
    // TGLML's setting beside it.
    dry_run(
        "configs/fashion_mnist_tglml.toml",
        &[],
        &[
            "batch_norm = \"before\"",
            "monitor = \"kl_0.1\"",
            "gamma = 0.02343",
        ],
    );
}
