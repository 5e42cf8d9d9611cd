//! Issue 16: `tglml eval` and the classifier model kind. A small
//! classifier trained on Fashion-MNIST images gives the features; the
//! file's FID, Inception Score and precision/recall/density/coverage equal
//! a NumPy computation of their definitions on features that NumPy
//! recomputes from the classifier's checkpoint; a set against itself
//! scores as identical; -np 1 and -np 2 write the same file; bad input is
//! refused with one message and nothing written.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Rows `rows` of the Fashion-MNIST test images as sample matrices:
/// `name.h5` with /x (pixels in [0, 1]) and /y, written by h5py.
fn fashion_subsets(dir: &Path, parts: &[(&str, usize, usize)]) -> Vec<PathBuf> {
    let packed = dir.join("t10k.h5");
    if !packed.exists() {
        ok(&tglml(&[
            "data",
            "pack",
            path_str(&fashion_mnist("t10k-images-idx3-ubyte.gz")),
            "--labels",
            path_str(&fashion_mnist("t10k-labels-idx1-ubyte.gz")),
            "--out",
            &s(&packed),
        ]));
    }
    let mut code = format!(
        "import h5py\nsrc = h5py.File({:?})\nx, y = src['x'][()], src['y'][()]\n",
        s(&packed)
    );
    let mut out = Vec::new();
    for (name, a, b) in parts {
        let p = dir.join(format!("{name}.h5"));
        code += &format!(
            "with h5py.File({:?}, 'w') as f:\n    f['x'] = x[{a}:{b}]\n    f['y'] = y[{a}:{b}]\n",
            s(&p)
        );
        out.push(p);
    }
    let r = python_cmd().arg("-c").arg(&code).output().unwrap();
    ok(&r);
    out
}

/// A classifier (MLP 784–32–10, standardised pixels) trained 60 steps on
/// the first 3,000 test images.
fn train_classifier(dir: &Path, data: &Path) -> PathBuf {
    let run = dir.join("classifier");
    let r = tglml(&[
        "train",
        "--steps",
        "60",
        "--set",
        "model.kind=\"classifier\"",
        "--set",
        "model.hidden=[32]",
        "--set",
        &format!("train.data={:?}", s(data)),
        "--set",
        "train.batch_size=64",
        "--set",
        "train.topo.gamma=0.0",
        "--threads",
        "1",
        "--out",
        &s(&run),
    ]);
    ok(&r);
    let err = stderr(&r);
    assert!(err.contains("test accuracy"), "{err}");
    run
}

/// NumPy: the classifier's features and probabilities of a set, then FID,
/// IS (10 splits) and precision/recall/density/coverage (k = 5) by their
/// definitions, printed as one line of numbers.
const NUMPY_EVAL: &str = r#"
import sys, h5py, numpy as np
ck, run, gen, ref, out = sys.argv[1:6]
m = h5py.File(ck)['model']
W = lambda k: m[k][()].astype(np.float64)
r = h5py.File(run)
mean, std = r['scale/mean'][()], r['scale/std'][()]
def feats(x):
    h = np.maximum(((x - mean) / std) @ W('cls.fc0.weight').T + W('cls.fc0.bias'), 0)
    l = h @ W('cls.head.weight').T + W('cls.head.bias')
    p = np.exp(l - l.max(1, keepdims=True)); p /= p.sum(1, keepdims=True)
    return h, p
fg, pg = feats(h5py.File(gen)['x'][()].astype(np.float64))
fr, pr = feats(h5py.File(ref)['x'][()].astype(np.float64))
def fid(a, b):
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(sa @ cb @ sa)
    return ((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(np.clip(lam, 0, None)).sum()
def inception(p, splits=10):
    parts = np.array_split(p, splits)
    s = [np.exp((q * (np.log(q) - np.log(q.mean(0, keepdims=True)))).sum(1).mean()) for q in parts]
    return np.mean(s), np.std(s)
def dist(a, b):
    return np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0))
def prdc(real, fake, k=5):
    rr = np.sort(dist(real, real), 1)[:, k]
    ff = np.sort(dist(fake, fake), 1)[:, k]
    rf = dist(real, fake)
    precision = (rf < rr[:, None]).any(0).mean()
    recall = (rf < ff[None, :]).any(1).mean()
    density = (1.0 / k) * (rf < rr[:, None]).sum(0).mean()
    coverage = (rf.min(1) < rr).mean()
    return precision, recall, density, coverage
f = h5py.File(out)
got = dict(f['features'].attrs)
want = dict(zip(['fid'], [fid(fr, fg)]))
want['is_mean'], want['is_std'] = inception(pg)
want['precision'], want['recall'], want['density'], want['coverage'] = prdc(fr, fg)
for k, v in want.items():
    g = float(got[k])
    tol = 1e-6 * max(abs(v), 1.0)
    assert abs(g - v) <= tol, (k, g, v)
print(' '.join(f'{k}={want[k]:.6g}' for k in sorted(want)))
"#;

/// The feature measures equal NumPy's on features recomputed from the
/// checkpoint; a set against itself scores as identical; -np 1 and -np 2
/// write the same file.
#[test]
fn eval_matches_numpy_and_a_set_matches_itself() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fashion_subsets(
        dir.path(),
        &[("train", 0, 3000), ("gen", 3000, 3400), ("ref", 3400, 4000)],
    );
    let (train, gen, refr) = (&sets[0], &sets[1], &sets[2]);
    let run = train_classifier(dir.path(), train);
    let small = [
        "--set",
        "eval.landmarks=48",
        "--set",
        "eval.cubical_rows=40",
        "--set",
        "eval.prdc_rows=0",
        "--threads",
        "1",
    ];
    let file = |tag: &str| dir.path().join(format!("{tag}.h5"));
    for np in [1, 2] {
        let out = file(&format!("eval-{np}"));
        let mut args = vec![
            "eval",
            "--features",
            path_str(&run),
            "--samples",
            path_str(gen),
            "--reference",
            path_str(refr),
            "--out",
            path_str(&out),
        ];
        args.extend(small);
        let r = mpirun(np, &args);
        ok(&r);
        assert!(stderr(&r).contains("FID"), "{}", stderr(&r));
    }
    assert_eq!(
        h5dump_comparable(&file("eval-1")),
        h5dump_comparable(&file("eval-2")),
        "-np 2 wrote another file than -np 1"
    );
    let r = python_cmd()
        .arg("-c")
        .arg(NUMPY_EVAL)
        .args([
            s(&run.join("checkpoint.h5")),
            s(&run.join("run.h5")),
            s(gen),
            s(refr),
            s(&file("eval-1")),
        ])
        .output()
        .unwrap();
    ok(&r);
    eprintln!("NumPy agrees: {}", stdout(&r).trim());

    // A set against itself: FID 0, every ball holds its own point, the
    // diagrams are equal.
    let same = file("same");
    let mut args = vec![
        "eval",
        "--features",
        path_str(&run),
        "--samples",
        path_str(refr),
        "--reference",
        path_str(refr),
        "--out",
        path_str(&same),
    ];
    args.extend(small);
    ok(&tglml(&args));
    let check = format!(
        "import h5py\nf = h5py.File({:?})\n\
         a = dict(f['features'].attrs)\n\
         assert abs(a['fid']) < 1e-8, a['fid']\n\
         for k in ['precision', 'recall', 'coverage', 'density']:\n    assert abs(a[k] - 1) < 1e-12, (k, a[k])\n\
         for k in ['h0', 'h1']:\n    t = dict(f['topology/' + k].attrs)\n    assert t['wasserstein'] == 0 and t['bottleneck'] == 0 and t['betti_distance'] == 0, t\n\
         c = dict(f['cubical'].attrs)\n\
         assert c['tv_b0'] == 0 and c['tv_b1'] == 0, c\n\
         assert len(f['features'].attrs['hash']) == 16\n",
        s(&same)
    );
    let r = python_cmd().arg("-c").arg(&check).output().unwrap();
    ok(&r);
}

/// NumPy: the interpolation measures from the paths file, and the FGSM
/// and contrast robustness curves from the VAE's weights (784–16–2, ReLU,
/// Gaussian decoder, float64, not standardised), by their definitions.
const NUMPY_PATHS_ROBUSTNESS: &str = r#"
import sys, h5py, numpy as np
ck, run, paths, out = sys.argv[1:5]
m = h5py.File(ck)['model']
W = lambda k: m[k][()].astype(np.float64)
def forward(x):
    a1 = x @ W('enc.fc0.weight').T + W('enc.fc0.bias'); h1 = np.maximum(a1, 0)
    z = h1 @ W('enc.mu.weight').T + W('enc.mu.bias')
    a2 = z @ W('dec.fc0.weight').T + W('dec.fc0.bias'); h2 = np.maximum(a2, 0)
    r = h2 @ W('dec.out.weight').T + W('dec.out.bias')
    return a1, z, a2, r
f = h5py.File(out)
# Paths: regularity and nearest real rows (the run's test split).
px = h5py.File(paths)['paths/x'][()]
ref = h5py.File(run)['eval/x'][()]
per = f['interpolation/per_path'][()]
base = f['interpolation'].attrs['reference_nn_distance']
for p, path in enumerate(px):
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    curv = np.linalg.norm(path[2:] - 2 * path[1:-1] + path[:-2], axis=1).mean() / steps.mean()
    cv = steps.std() / steps.mean()
    d = np.sqrt(np.maximum((path ** 2).sum(1)[:, None] + (ref ** 2).sum(1)[None, :] - 2 * path @ ref.T, 0)).min(1)
    assert abs(per[p, 0] - curv) <= 1e-9 * max(1, curv), (p, per[p, 0], curv)
    assert abs(per[p, 1] - cv) <= 1e-9, (p, per[p, 1], cv)
    assert abs(per[p, 2] * base - d.mean()) <= 1e-9 * d.mean(), (p, per[p, 2] * base, d.mean())
# Robustness on every test row (eval.robust_rows = 0).
x = ref
lo, hi = x.min(), x.max()
_, z0, _, _ = forward(x)
spread = np.sqrt(((z0 - z0.mean(0)) ** 2).sum(1).mean())
def point(s, xs):
    _, z, _, r = forward(xs)
    disp = np.linalg.norm(z - z0, axis=1).mean()
    return [s, np.sqrt(((r - x) ** 2).mean()), disp, disp / spread]
a1, z, a2, r = forward(x)
g2 = (2 * (r - x)) @ W('dec.out.weight') * (a2 > 0)
g1 = (g2 @ W('dec.fc0.weight')) @ W('enc.mu.weight') * (a1 > 0)
grad = g1 @ W('enc.fc0.weight')
eps = [0.0, 0.01, 0.02, 0.05, 0.1]
want = {
    'fgsm': [point(e, np.clip(x + e * (hi - lo) * np.sign(grad), lo, hi) if e > 0 else x) for e in eps],
    'contrast': [point(c, x.mean(1, keepdims=True) + c * (x - x.mean(1, keepdims=True))) for c in [1.0, 0.8, 0.6, 0.4, 0.2]],
}
for name, rows in want.items():
    got = f['robustness/' + name + '/curve'][()]
    err = np.abs(got - np.array(rows)).max()
    assert err <= 1e-9, (name, err, got, rows)
print('paths', per[:, :3].round(4).tolist(), 'fgsm', np.array(want['fgsm'])[:, 1].round(4).tolist())
"#;

/// The interpolation measures and the robustness curves (FGSM's gradient
/// step, contrast) equal NumPy's; an image run has every curve, and cubical
/// Betti changes along its paths.
#[test]
fn interpolation_and_robustness_match_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fashion_subsets(dir.path(), &[("train", 0, 1000)]);
    let run = dir.path().join("vae");
    ok(&tglml(&[
        "train",
        "--steps",
        "30",
        "--set",
        &format!("train.data={:?}", s(&sets[0])),
        "--set",
        "train.standardize=false",
        "--set",
        "train.dtype=\"float64\"",
        "--set",
        "model.hidden=[16]",
        "--set",
        "train.batch_size=64",
        "--threads",
        "1",
        "--out",
        path_str(&run),
    ]));
    let paths = dir.path().join("paths.h5");
    ok(&tglml(&[
        "interpolate",
        "--checkpoint",
        path_str(&run),
        "--method",
        "linear",
        "--points",
        "6",
        "--set",
        "interpolate.pairs=3",
        "--threads",
        "1",
        "--out",
        path_str(&paths),
    ]));
    let out = dir.path().join("eval.h5");
    let r = tglml(&[
        "eval",
        "--checkpoint",
        path_str(&run),
        "--paths",
        path_str(&paths),
        "--set",
        "eval.landmarks=32",
        "--set",
        "eval.cubical_rows=20",
        "--set",
        "eval.robust_rows=0",
        "--set",
        "eval.ks=[5,20,5]",
        "--threads",
        "1",
        "--out",
        path_str(&out),
    ]);
    ok(&r);
    let err = stderr(&r);
    assert!(
        err.contains("interpolation (3 paths of 6 points)") && err.contains("robustness"),
        "{err}"
    );
    let r = python_cmd()
        .arg("-c")
        .arg(NUMPY_PATHS_ROBUSTNESS)
        .args([
            s(&run.join("checkpoint.h5")),
            s(&run.join("run.h5")),
            s(&paths),
            s(&out),
        ])
        .output()
        .unwrap();
    ok(&r);
    eprintln!("NumPy agrees: {}", stdout(&r).trim());
    let check = format!(
        "import h5py, numpy as np\nf = h5py.File({:?})\n\
         assert sorted(f['robustness']) == ['blur', 'contrast', 'fgsm', 'noise', 'pgd', 'rotation'], list(f['robustness'])\n\
         for k in f['robustness']:\n    c = f['robustness/' + k + '/curve'][()]\n    assert c.shape == (5, 4) and np.all(np.isfinite(c)), (k, c)\n\
         assert np.allclose(f['robustness/pgd/curve'][0], f['robustness/fgsm/curve'][0])\n\
         i = dict(f['interpolation'].attrs)\n\
         assert 0 <= i['betti_changes'] <= 5 and i['realism_space'] == 'data', i\n\
         assert f['preview/samples'].shape[1] == 784 and f['embedding/z'].shape[1] == 2\n",
        s(&out)
    );
    ok(&python_cmd().arg("-c").arg(&check).output().unwrap());
}

/// One line of error, and no output file.
fn refused(args: &[&str], out: &Path, want: &str) {
    let r = tglml(args);
    assert!(!r.status.success(), "accepted: {args:?}");
    let err = stderr(&r);
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert_eq!(error_lines(&err), 1, "more than one line: {err}");
    assert!(!out.exists(), "{} was written", out.display());
}

/// Bad input: another dimension, fewer samples than features, a file that
/// is not TorchScript, a run that is not a classifier, no sets, a
/// classifier's data without labels.
#[test]
fn bad_input_is_refused_with_one_message_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let sets = fashion_subsets(
        dir.path(),
        &[("train", 0, 2000), ("few", 2000, 2020), ("ref", 3000, 3300)],
    );
    let (train, few, refr) = (&sets[0], &sets[1], &sets[2]);
    let run = train_classifier(dir.path(), train);
    let out = dir.path().join("eval.h5");
    let o = path_str(&out);
    // Another dimension: 10 values per row.
    let narrow = dir.path().join("narrow.h5");
    let code = format!(
        "import h5py, numpy as np\nwith h5py.File({:?}, 'w') as f:\n    f['x'] = np.random.default_rng(0).random((300, 10))\n",
        s(&narrow)
    );
    ok(&python_cmd().arg("-c").arg(&code).output().unwrap());
    refused(
        &[
            "eval",
            "--samples",
            path_str(&narrow),
            "--reference",
            path_str(refr),
            "--out",
            o,
        ],
        &out,
        "has 10 values per row, the reference set",
    );
    // 20 samples of 32 features: a singular covariance.
    refused(
        &[
            "eval", "--features", path_str(&run), "--samples", path_str(few), "--reference",
            path_str(refr), "--out", o,
        ],
        &out,
        "20 samples of 32 features: the covariance of fewer samples than features plus one is singular",
    );
    // A torch.save file given as TorchScript.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchscript/not_torchscript.pt");
    refused(
        &[
            "eval",
            "--features",
            path_str(&fixture),
            "--samples",
            path_str(refr),
            "--reference",
            path_str(refr),
            "--out",
            o,
        ],
        &out,
        "is not a TorchScript module",
    );
    // A run of another kind as the feature network.
    let vae = dir.path().join("vae");
    ok(&tglml(&[
        "train",
        "--steps",
        "2",
        "--set",
        &format!("train.data={:?}", s(train)),
        "--set",
        "model.hidden=[8]",
        "--threads",
        "1",
        "--out",
        path_str(&vae),
    ]));
    refused(
        &[
            "eval",
            "--features",
            path_str(&vae),
            "--samples",
            path_str(refr),
            "--reference",
            path_str(refr),
            "--out",
            o,
        ],
        &out,
        "is a model.kind = \"vae\" run; features come from a model.kind = \"classifier\" run",
    );
    // A standardised run's file without /scale (as an older tglml wrote).
    let old = dir.path().join("old-run.h5");
    let code = format!(
        "import h5py, shutil\nshutil.copy({:?}, {:?})\nwith h5py.File({:?}, 'a') as f:\n    del f['scale']\n",
        s(&vae.join("run.h5")),
        s(&old),
        s(&old)
    );
    ok(&python_cmd().arg("-c").arg(&code).output().unwrap());
    refused(
        &[
            "eval",
            "--samples",
            path_str(&old),
            "--reference",
            path_str(&vae.join("run.h5")),
            "--out",
            o,
        ],
        &out,
        "holds no /scale to map it back to the data's units",
    );
    // A classifier given to sample: it generates nothing.
    let drawn = dir.path().join("drawn.h5");
    refused(
        &[
            "sample",
            "--checkpoint",
            path_str(&run),
            "--out",
            path_str(&drawn),
        ],
        &drawn,
        "is a classifier: it generates nothing",
    );
    // No sets at all.
    refused(&["eval", "--out", o], &out, "needs the sets to compare");
    // Paths that are not a `tglml interpolate` file.
    refused(
        &[
            "eval",
            "--samples",
            path_str(refr),
            "--reference",
            path_str(refr),
            "--paths",
            path_str(few),
            "--out",
            o,
        ],
        &out,
        "holds no /paths/x: give a `tglml interpolate` file to --paths",
    );
    // A classifier on data without labels (the synthetic torus).
    let cls = dir.path().join("nolabels");
    let r = tglml(&[
        "train",
        "--steps",
        "2",
        "--set",
        "model.kind=\"classifier\"",
        "--set",
        "synth.kind=\"torus\"",
        "--set",
        "train.topo.gamma=0.0",
        "--out",
        path_str(&cls),
    ]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("model.kind = \"classifier\"")
            && err.contains("trains on labels, but the [synth] dataset"),
        "{err}"
    );
    assert!(!cls.join("checkpoint.h5").exists());
}

/// `tglml report` over a small γ sweep (two settings × two seeds of a VAE
/// on the torus): groups by γ, and its means and standard deviations equal
/// NumPy's over metrics.csv's rows; a folder without evaluations is
/// refused, nothing written.
#[test]
fn report_groups_a_sweep_by_setting_with_numpy_means() {
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("sweep");
    for gamma in ["0.0", "1.0"] {
        for seed in ["0", "1"] {
            let run = sweep.join(format!("g{gamma}-s{seed}"));
            ok(&tglml(&[
                "train",
                "--steps",
                "15",
                "--set",
                "synth.kind=\"torus\"",
                "--set",
                "synth.n=600",
                "--set",
                "model.hidden=[16]",
                "--set",
                "train.batch_size=64",
                "--set",
                &format!("train.topo.gamma={gamma}"),
                "--set",
                &format!("train.seed={seed}"),
                "--threads",
                "1",
                "--out",
                path_str(&run),
            ]));
            ok(&tglml(&[
                "eval",
                "--checkpoint",
                path_str(&run),
                "--set",
                "eval.landmarks=32",
                "--set",
                "eval.embedding_rows=0",
                "--set",
                "eval.ks=[5,20,5]",
                "--threads",
                "1",
                "--out",
                path_str(&run.join("eval.h5")),
            ]));
        }
    }
    let out = dir.path().join("report");
    let r = tglml(&[
        "report",
        path_str(&sweep),
        "--baseline",
        "train.topo.gamma=0",
        "--out",
        path_str(&out),
    ]);
    ok(&r);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| train.topo.gamma = 0.0 | 2 |"), "{md}");
    assert!(md.contains("| train.topo.gamma = 1.0 | 2 |"), "{md}");
    let check = format!(
        "import csv, numpy as np\n\
         rows = list(csv.DictReader(open({:?})))\n\
         summ = {{r['setting']: r for r in csv.DictReader(open({:?}))}}\n\
         assert len(rows) == 4 and len(summ) == 2, (len(rows), summ.keys())\n\
         for name, s in summ.items():\n\
         \x20   mine = [r for r in rows if r['setting'] == name]\n\
         \x20   assert int(s['n']) == 2 and len(mine) == 2\n\
         \x20   for c in ['w_h0', 'w_h1', 'trustworthiness', 'kl_0.1', 'stress']:\n\
         \x20       v = np.array([float(r[c]) for r in mine])\n\
         \x20       assert abs(float(s[c + '_mean']) - v.mean()) <= 1e-12 * max(1, abs(v.mean())), (c, s[c + '_mean'], v)\n\
         \x20       assert abs(float(s[c + '_std']) - v.std(ddof=1)) <= 1e-12 * max(1, v.std()), (c, s[c + '_std'], v)\n",
        s(&out.join("metrics.csv")),
        s(&out.join("summary.csv"))
    );
    ok(&python_cmd().arg("-c").arg(&check).output().unwrap());
    // The comparison with γ = 0: Welch's t and its degrees of freedom by
    // NumPy, a verdict only beyond the 5% critical value, in the measure's
    // direction.
    let check = format!(
        "import csv, numpy as np\n\
         rows = list(csv.DictReader(open({:?})))\n\
         comp = list(csv.DictReader(open({:?})))\n\
         assert len(comp) >= 15, len(comp)\n\
         t975 = {{1: 12.706, 2: 4.303}}\n\
         for c in comp:\n\
         \x20   assert c['setting'] == 'train.topo.gamma = 1.0'\n\
         \x20   v = lambda s: np.array([float(r[c['measure']]) for r in rows if r['setting'] == s and r[c['measure']] != ''])\n\
         \x20   a, b = v('train.topo.gamma = 1.0'), v('train.topo.gamma = 0.0')\n\
         \x20   va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)\n\
         \x20   if va + vb == 0: continue\n\
         \x20   t = (a.mean() - b.mean()) / np.sqrt(va + vb)\n\
         \x20   df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))\n\
         \x20   assert abs(float(c['welch_t']) - t) <= 1e-9 * max(1, abs(t)), (c, t)\n\
         \x20   assert abs(float(c['df']) - df) <= 1e-9 * df, (c, df)\n\
         \x20   crit = t975[min(max(int(np.floor(df)), 1), 2)]\n\
         \x20   lower = c['measure'] not in ['is', 'precision', 'recall', 'coverage', 'topo_acc_h1', 'trustworthiness', 'continuity', 'density']\n\
         \x20   want = 'inconclusive' if abs(t) <= crit else ('better' if (t < 0) == lower else 'worse')\n\
         \x20   if c['measure'] != 'density': assert c['verdict'] == want, (c, want)\n",
        s(&out.join("metrics.csv")),
        s(&out.join("comparisons.csv"))
    );
    ok(&python_cmd().arg("-c").arg(&check).output().unwrap());
    // Every plot report.md shows exists as a PNG: measures against γ, the
    // robustness curves, diagrams, latent scatters and samples.
    let shown: Vec<&str> = md
        .lines()
        .filter_map(|l| l.strip_prefix("![")?.split_once("](")?.1.strip_suffix(')'))
        .collect();
    for want in [
        "w-h0_vs_train.topo.gamma.png",
        "robustness_pgd_rmse.png",
        "diagram_train.topo.gamma-1.0_h1.png",
        "latent_train.topo.gamma-0.0.png",
        "samples_train.topo.gamma-0.0.png",
    ] {
        assert!(shown.contains(&want), "{want} not in {shown:?}");
    }
    for f in &shown {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5000,
            "{f}: {} bytes",
            bytes.len()
        );
    }
    // A folder with runs but no evaluations.
    let bare = dir.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    std::fs::copy(sweep.join("g0.0-s0/run.h5"), bare.join("run.h5")).unwrap();
    let out2 = dir.path().join("report2");
    refused(
        &["report", path_str(&bare), "--out", path_str(&out2)],
        &out2.join("report.md"),
        "no `tglml eval` file",
    );
    assert!(!out2.exists());
    // A baseline that is not KEY=VALUE, or that no setting has.
    for (spec, want) in [
        ("train.topo.gamma", "must be KEY=VALUE"),
        ("train.topo.gamma=7", "no setting has train.topo.gamma = 7"),
    ] {
        let out3 = dir.path().join("report3");
        refused(
            &[
                "report",
                path_str(&sweep),
                "--baseline",
                spec,
                "--out",
                path_str(&out3),
            ],
            &out3.join("report.md"),
            want,
        );
        assert!(!out3.exists(), "{spec}: a report folder was made");
    }
}
