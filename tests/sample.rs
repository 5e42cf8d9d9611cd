//! Issue 15: `tglml sample` and `tglml interpolate` on trained models: the
//! same file for any rank count, decoded points that are the decoder's
//! (recomputed in NumPy from the checkpoint), and bad input refused with
//! one message and nothing written.

mod common;

use std::path::Path;

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `tglml ARGS` under `mpirun -np NP` and asserts success.
fn run_np(np: usize, args: &[&str]) -> String {
    let r = mpirun(np, args);
    ok(&r);
    stderr(&r)
}

/// A small VAE (hidden [16], 2-D latent space) trained 20 steps on a torus
/// data file, without standardisation (so NumPy can feed the file's rows to
/// the encoder).
fn train_vae(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("torus.h5");
    ok(&tglml(&[
        "data",
        "synth",
        "--kind",
        "torus",
        "--n",
        "1200",
        "--out",
        &s(&data),
    ]));
    let run = dir.join("vae");
    ok(&tglml(&[
        "train",
        "--steps",
        "20",
        "--set",
        &format!("train.data={:?}", s(&data)),
        "--set",
        "train.standardize=false",
        "--set",
        "model.hidden=[16]",
        "--set",
        "train.batch_size=64",
        "--threads",
        "1",
        "--out",
        &s(&run),
    ]));
    (data, run)
}

/// The NumPy check of a VAE's maps (hidden [16], ReLU, Gaussian decoder).
const NUMPY_VAE: &str = "import h5py, numpy as np\n\
m = h5py.File(CK)['model']\n\
W = lambda k: m[k][()].astype(np.float64)\n\
enc = lambda x: np.maximum(x @ W('enc.fc0.weight').T + W('enc.fc0.bias'), 0) @ W('enc.mu.weight').T + W('enc.mu.bias')\n\
dec = lambda z: np.maximum(z @ W('dec.fc0.weight').T + W('dec.fc0.bias'), 0) @ W('dec.out.weight').T + W('dec.out.bias')\n";

/// Samples (prior, Langevin, MALA) and paths (linear, slerp, geodesic) of a
/// trained VAE: -np 1 and -np 3 write the same file (h5dump, rank
/// attributes aside); the decoded points are the decoder's; the chains'
/// states are the samples; a geodesic keeps its ends and lowers its energy.
#[test]
fn samples_and_paths_are_the_same_on_any_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = train_vae(dir.path());
    let ck = run.join("checkpoint.h5");
    let file = |tag: &str, np: usize| dir.path().join(format!("{tag}-{np}.h5"));
    for sampler in ["prior", "langevin", "mala"] {
        for np in [1, 3] {
            let err = run_np(
                np,
                &[
                    "sample",
                    "--checkpoint",
                    &s(&run),
                    "--sampler",
                    sampler,
                    "--n",
                    "250",
                    "--set",
                    "sample.density.components=[1, 4]",
                    "--threads",
                    "1",
                    "--out",
                    &s(&file(sampler, np)),
                ],
            );
            if sampler == "mala" && np == 1 {
                eprintln!("{err}");
                assert!(err.contains("acceptance rate"), "{err}");
            }
        }
        assert_eq!(
            h5dump_comparable(&file(sampler, 1)),
            h5dump_comparable(&file(sampler, 3)),
            "{sampler}: -np 1 and -np 3 differ"
        );
        assert!(dir.path().join(format!("{sampler}-1.png")).is_file());
        assert!(dir.path().join(format!("{sampler}-1.latent.png")).is_file());
    }
    for method in ["linear", "slerp", "geodesic"] {
        for np in [1, 2] {
            run_np(
                np,
                &[
                    "interpolate",
                    "--checkpoint",
                    &s(&run),
                    "--method",
                    method,
                    "--points",
                    "8",
                    "--set",
                    "interpolate.pairs=5",
                    "--set",
                    "interpolate.steps=60",
                    "--threads",
                    "1",
                    "--out",
                    &s(&file(method, np)),
                ],
            );
        }
        assert_eq!(
            h5dump_comparable(&file(method, 1)),
            h5dump_comparable(&file(method, 2)),
            "{method}: -np 1 and -np 2 differ"
        );
    }
    // Explicit rows, and the independent check of what the files hold.
    let rows = dir.path().join("rows.h5");
    run_np(
        1,
        &[
            "interpolate",
            "--checkpoint",
            &s(&ck),
            "--from",
            "3,700",
            "--to",
            "1100,5",
            "--set",
            "interpolate.steps=60",
            "--points",
            "6",
            "--out",
            &s(&rows),
        ],
    );
    let code = format!(
        "CK = {:?}\n{NUMPY_VAE}\
         x = h5py.File({:?})['x'][()]\n\
         worst = 0.0\n\
         for f in ['prior', 'langevin', 'mala']:\n\
         \x20   h = h5py.File({:?} + '/' + f + '-1.h5')\n\
         \x20   z, xs = h['samples/z'][()], h['samples/x'][()]\n\
         \x20   assert z.shape == (250, 2) and xs.shape == (250, 3), (z.shape, xs.shape)\n\
         \x20   worst = max(worst, np.max(np.abs(dec(z) - xs)))\n\
         \x20   if f != 'prior':\n\
         \x20       st = h['chains/states'][()]\n\
         \x20       assert np.array_equal(st.reshape(-1, 2)[:250], z)\n\
         \x20       r = h['chains'].attrs['acceptance_rate']\n\
         \x20       assert (r == 1.0) == (f == 'langevin') and 0 < r <= 1, r\n\
         p = h5py.File({:?})['paths']\n\
         z, xs = p['z'][()], p['x'][()]\n\
         worst = max(worst, np.max(np.abs(dec(z.reshape(-1, 2)) - xs.reshape(-1, 3))))\n\
         ends = enc(x[[3, 700, 1100, 5]])\n\
         end_err = max(np.max(np.abs(z[:, 0] - ends[:2])), np.max(np.abs(z[:, -1] - ends[2:])))\n\
         assert list(p['from'][()]) == [3, 700] and list(p['to'][()]) == [1100, 5]\n\
         e = p['energies'][()]\n\
         assert np.all(e[:, -1] < e[:, 0]), e[:, [0, -1]]\n\
         assert np.array_equal(p['energy'][()], e[:, -1])\n\
         print(worst, end_err)\n",
        s(&ck),
        s(&data),
        s(dir.path()),
        s(&rows)
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    let v: Vec<f64> = out.split_whitespace().map(|t| t.parse().unwrap()).collect();
    eprintln!(
        "decoded points vs NumPy's decoder: {:.2e}; path ends vs NumPy's encoder: {:.2e}",
        v[0], v[1]
    );
    // float32 networks.
    assert!(v[0] < 1e-4 && v[1] < 1e-4, "{out}");
}

/// A diffusion model's own samplers, blocks of 256 samples spread over
/// the ranks (300 samples: two blocks), and the Langevin walk on a latent
/// diffusion model's score: the same file for -np 1 and -np 2.
#[test]
fn diffusion_samplers_are_the_same_on_any_rank_count() {
    let dir = tempfile::tempdir().unwrap();
    let train = |out: &Path, sets: &[String]| {
        let mut a: Vec<String> = [
            "train",
            "--steps",
            "20",
            "--threads",
            "1",
            "--set",
            "synth.n=1200",
            "--set",
            "train.batch_size=64",
            "--set",
            "model.hidden=[16]",
        ]
        .iter()
        .map(|x| x.to_string())
        .collect();
        for set in sets {
            a.extend(["--set".to_string(), set.clone()]);
        }
        a.extend(["--out".to_string(), s(out)]);
        ok(&tglml(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    };
    let vae = dir.path().join("vae");
    train(&vae, &[]);
    let diffusion = |kind: &str| {
        vec![
            format!("model.kind={kind:?}"),
            "model.diffusion.timesteps=100".to_string(),
            "model.diffusion.sample_steps=10".to_string(),
            "model.diffusion.topo_t_max=10".to_string(),
        ]
    };
    let dm = dir.path().join("dm");
    train(&dm, &diffusion("diffusion"));
    let ld = dir.path().join("ld");
    let mut sets = diffusion("latent-diffusion");
    sets.push(format!(
        "model.vae_checkpoint={:?}",
        s(&vae.join("checkpoint.h5"))
    ));
    train(&ld, &sets);
    let cases: [(&Path, &str, &[&str]); 4] = [
        (&dm, "diffusion", &["--n", "300"]),
        (
            &dm,
            "ddim",
            &["--n", "300", "--set", "sample.diffusion_steps=10"],
        ),
        (
            &ld,
            "ddim",
            &["--n", "300", "--set", "sample.diffusion_steps=10"],
        ),
        (
            &ld,
            "mala",
            &[
                "--n",
                "12",
                "--set",
                "sample.density.kind=\"score\"",
                "--set",
                "sample.density.score_steps=5",
                "--set",
                "sample.steps=6",
                "--set",
                "sample.thin=2",
                "--set",
                "sample.burn_in=4",
            ],
        ),
    ];
    for (i, (run, sampler, extra)) in cases.iter().enumerate() {
        let file = |np: usize| dir.path().join(format!("case{i}-{np}.h5"));
        for np in [1, 2] {
            let out = s(&file(np));
            let mut a = vec![
                "sample",
                "--checkpoint",
                path_str(run),
                "--sampler",
                sampler,
                "--threads",
                "1",
                "--out",
                &out,
            ];
            a.extend(extra.iter());
            run_np(np, &a);
        }
        assert_eq!(
            h5dump_comparable(&file(1)),
            h5dump_comparable(&file(2)),
            "case {i} ({sampler}): -np 1 and -np 2 differ"
        );
    }
    // Latent diffusion's samples have latent rows and their decoded points;
    // a diffusion model on the data has data rows only.
    let code = format!(
        "import h5py\n\
         a = h5py.File({:?}); b = h5py.File({:?})\n\
         print(sorted(a['samples']), a['samples/x'].shape, sorted(b['samples']), b['samples/z'].shape, b['samples/x'].shape)",
        s(&dir.path().join("case0-1.h5")),
        s(&dir.path().join("case2-1.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    assert_eq!(
        stdout(&o).trim(),
        "['x'] (300, 3) ['x', 'z'] (300, 2) (300, 3)"
    );
}

/// Bad input: one message naming what is wrong, nothing written.
#[test]
fn bad_sampling_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, vae) = train_vae(dir.path());
    let dm = dir.path().join("dm");
    ok(&tglml(&[
        "train",
        "--steps",
        "5",
        "--threads",
        "1",
        "--set",
        "synth.n=600",
        "--set",
        "model.kind=\"diffusion\"",
        "--set",
        "model.hidden=[8]",
        "--set",
        "model.diffusion.timesteps=50",
        "--set",
        "model.diffusion.sample_steps=5",
        "--set",
        "model.diffusion.topo_t_max=10",
        "--set",
        "train.batch_size=32",
        "--out",
        &s(&dm),
    ]));
    let gan = dir.path().join("gan");
    ok(&tglml(&[
        "train",
        "--steps",
        "5",
        "--threads",
        "1",
        "--set",
        "synth.n=600",
        "--set",
        "model.kind=\"gan\"",
        "--set",
        "model.hidden=[8]",
        "--set",
        "model.gan.disc_hidden=[8]",
        "--set",
        "train.batch_size=32",
        "--out",
        &s(&gan),
    ]));
    let outs = dir.path().join("outs");
    std::fs::create_dir(&outs).unwrap();
    let out = s(&outs.join("o.h5"));
    let (v, d, g) = (s(&vae), s(&dm), s(&gan));
    let (nothing, empty) = (s(&dir.path().join("nothing")), s(&outs));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["interpolate", "--checkpoint", &d],
            "has no decoder: a diffusion model on the data has no latent space",
        ),
        (
            vec!["interpolate", "--checkpoint", &g],
            "(model.kind = \"gan\") has no encoder, so data rows have no latent codes to join",
        ),
        (
            vec!["interpolate", "--checkpoint", &g, "--from-z", "0,1", "--to-z", "1,0"],
            "give latent end points with --from-z/--to-z and set interpolate.init = \"linear\"",
        ),
        (
            vec!["interpolate", "--checkpoint", &v, "--from-z", "0,1,2", "--to-z", "1,0"],
            "--from-z: a latent point of 2 finite values (the model's latent dimension) is expected, got [0.0, 1.0, 2.0]",
        ),
        (
            vec![
                "interpolate",
                "--checkpoint",
                &v,
                "--from",
                "3",
                "--to",
                "1200",
            ],
            "--from/--to: row 1200 is out of range: the data have 1200 rows (0..=1199)",
        ),
        (
            vec![
                "interpolate",
                "--checkpoint",
                &v,
                "--from",
                "3,4",
                "--to",
                "5",
            ],
            "need as many end rows as start rows, got 2 and 1",
        ),
        (
            vec!["sample", "--checkpoint", &v, "--set", "sample.eta=0"],
            "key `sample.eta`: must be a finite number > 0, got 0",
        ),
        (
            vec!["sample", "--checkpoint", &v, "--set", "sample.eta=-0.1"],
            "key `sample.eta`: must be a finite number > 0, got -0.1",
        ),
        (
            vec![
                "sample",
                "--checkpoint",
                &v,
                "--set",
                "sample.density.max_codes=4",
                "--set",
                "sample.density.components=[5, 8]",
            ],
            "sample.density.components: 4 codes cannot fit this density: it needs at least 5",
        ),
        (
            vec!["sample", "--checkpoint", &d, "--sampler", "langevin"],
            "has no latent space with a decoder",
        ),
        (
            vec!["sample", "--checkpoint", &v, "--sampler", "ddim"],
            "(model.kind = \"vae\") is not a diffusion model",
        ),
        (
            vec!["sample", "--checkpoint", &g, "--sampler", "mala"],
            "(model.kind = \"gan\") has no encoder, so there are no training codes",
        ),
        (
            vec![
                "sample",
                "--checkpoint",
                &v,
                "--set",
                "sample.density.kind=\"score\"",
            ],
            "is a latent-diffusion model's own density",
        ),
        (
            vec!["sample", "--checkpoint", &nothing],
            "does not exist; expected the --out folder of a `tglml train` run",
        ),
        (
            vec!["sample", "--checkpoint", &empty],
            "holds no checkpoint.h5",
        ),
        (
            vec!["sample", "--checkpoint", &v, "--n", "100000000000"],
            "100000000000 samples of 5 values",
        ),
        (
            vec!["interpolate", "--checkpoint", &v, "--set", "interpolate.pairs=10000000000"],
            "10000000000 paths of 16 points",
        ),
    ];
    // A GAN interpolates between latent points: -np 1 and -np 2 alike.
    for np in [1, 2] {
        run_np(
            np,
            &[
                "interpolate",
                "--checkpoint",
                &g,
                "--from-z",
                "-1.5,0.25",
                "--to-z",
                "2,-0.5",
                "--set",
                "interpolate.init=\"linear\"",
                "--set",
                "interpolate.steps=30",
                "--threads",
                "1",
                "--out",
                &s(&dir.path().join(format!("gan-path-{np}.h5"))),
            ],
        );
    }
    assert_eq!(
        h5dump_comparable(&dir.path().join("gan-path-1.h5")),
        h5dump_comparable(&dir.path().join("gan-path-2.h5"))
    );
    let code = format!(
        "import h5py\np = h5py.File({:?})['paths']\nprint(p['z'][0, 0].tolist(), p['z'][0, -1].tolist(), p['from'][()].tolist())",
        s(&dir.path().join("gan-path-1.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    assert_eq!(stdout(&o).trim(), "[-1.5, 0.25] [2.0, -0.5] [-1]");
    for (args, expected) in cases {
        let mut a = args.clone();
        a.extend(["--out", &out]);
        let r = mpirun(2, &a);
        assert!(!r.status.success(), "{args:?} succeeded");
        let err = stderr(&r);
        assert_eq!(error_lines(&err), 1, "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in\n{err}"
        );
        assert_eq!(entries(&outs), Vec::<String>::new(), "{args:?} left files");
    }
}
