//! Issue 6: data-parallel training with the global topological loss,
//! exact resume, and bad input.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Relative max difference of every model tensor of two checkpoints (read
/// with h5py), and whether they are bit-identical.
fn compare_checkpoints(a: &Path, b: &Path) -> (f64, bool) {
    compare_group(a, b, "model")
}

/// Adds `delta` to the first value of the float32 dataset `obj` of `path`.
fn nudge(path: &Path, obj: &str, delta: f32) {
    let f = hdf5::File::open_rw(path).unwrap();
    let ds = f.dataset(obj).unwrap();
    let mut v: Vec<f32> = ds.read_raw().unwrap();
    v[0] += delta;
    ds.write_raw(&v).unwrap();
}

const COMMON: [&str; 10] = [
    "--set",
    "train.topo.dims=[0, 1]",
    "--set",
    "train.topo.weights=[1.0, 0.5]",
    "--set",
    "train.topo.ramp_steps=0",
    "--set",
    "synth.n=1200",
    "--threads",
    "1",
];

/// `mpirun -np NP tglml train --steps STEPS` with [`COMMON`], `--set S` for
/// each of `sets`, and `--out OUT`; asserts success.
fn train_np(np: usize, steps: u32, sets: &[String], out: &Path) -> std::process::Output {
    let mut a: Vec<String> = vec!["train".into(), "--steps".into(), steps.to_string()];
    a.extend(COMMON.iter().map(|x| x.to_string()));
    for set in sets {
        a.extend(["--set".to_string(), set.clone()]);
    }
    a.extend(["--out".to_string(), s(out)]);
    let r = mpirun(np, &a.iter().map(String::as_str).collect::<Vec<_>>());
    ok(&r);
    r
}

/// 30 float64 steps with `sets` under `-np 1` (batch 96) and `-np 2`
/// (batch 48 per rank); returns the two checkpoints.
fn one_and_two_ranks(dir: &Path, tag: &str, sets: &[&str]) -> (PathBuf, PathBuf) {
    let run = |np: usize, batch: usize| {
        let out = dir.join(format!("{tag}-{np}"));
        let mut all = vec![
            "train.dtype=\"float64\"".to_string(),
            format!("train.batch_size={batch}"),
        ];
        all.extend(sets.iter().map(|x| x.to_string()));
        train_np(np, 30, &all, &out);
        out.join("checkpoint.h5")
    };
    (run(1, 96), run(2, 48))
}

/// The landmark option of the loss (maxmin landmarks of the global batch)
/// keeps the equality: the landmarks are chosen on the global batch.
#[test]
fn ranks_agree_with_landmarks_of_the_global_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = one_and_two_ranks(dir.path(), "lm", &["train.topo.landmarks=40"]);
    let (worst, _) = compare_checkpoints(&one, &two);
    assert!(worst <= 1e-9, "{worst}");
}

/// A learned latent scale (train.topo.latent_scale = "learned") keeps the
/// equality: each rank adds 1/p of the scale's gradient. The scale moves,
/// also through the ramp's first step, where γ = 0.
#[test]
fn ranks_agree_with_a_learned_latent_scale() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = one_and_two_ranks(
        dir.path(),
        "ls",
        &[
            "train.topo.latent_scale=\"learned\"",
            // γ = 0 on the first steps: θ then gets no gradient from the loss.
            "train.topo.ramp_steps=10",
        ],
    );
    let (worst, _) = compare_checkpoints(&one, &two);
    assert!(worst <= 1e-9, "{worst}");
    let code = format!(
        "import h5py; print(h5py.File({:?})['model/topo_log_scale'][0])",
        s(&one)
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let theta: f64 = stdout(&o).trim().parse().unwrap();
    assert!(theta != 0.0, "the latent scale was trained: theta {theta}");
}

/// train.topo.latent_scale_init sets where the learned scale starts:
/// θ = ln s. One step inside the ramp (γ = 0, so θ gets a zero gradient
/// and Adam leaves it) keeps θ at ln 0.25 (as a float32); a scale ≤ 0 is refused
/// with its key.
#[test]
fn a_learned_latent_scale_starts_at_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("init");
    let sets = [
        "train.dtype=\"float64\"".to_string(),
        "train.topo.latent_scale=\"learned\"".to_string(),
        "train.topo.latent_scale_init=0.25".to_string(),
        "train.topo.ramp_steps=10".to_string(),
    ];
    train_np(1, 1, &sets, &out);
    let code = format!(
        "import h5py; print(repr(float(h5py.File({:?})['model/topo_log_scale'][0])))",
        s(&out.join("checkpoint.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let theta: f64 = stdout(&o).trim().parse().unwrap();
    // The variables are made in float32, then cast to the run's dtype.
    assert_eq!(theta, 0.25f64.ln() as f32 as f64);
    let mut a: Vec<&str> = vec!["train", "--steps", "1"];
    a.extend(COMMON);
    let bad_out = s(&dir.path().join("bad"));
    a.extend([
        "--set",
        "train.topo.latent_scale_init=0",
        "--out",
        bad_out.as_str(),
    ]);
    let r = tglml(&a);
    assert!(!r.status.success());
    assert!(
        stderr(&r).contains("train.topo.latent_scale_init"),
        "{}",
        stderr(&r)
    );
}

/// Acceptance 1: -np 2 (4) with per-rank batch B equals -np 1 with batch
/// 2B (4B) after 50 steps within 1e-9 relative in float64, with the global
/// topological loss (H0 and H1) on. The float32 difference is printed.
#[test]
fn ranks_train_like_one_process_on_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in ["float64", "float32"] {
        let run = |np: usize, batch: usize| {
            let out = dir.path().join(format!("{dtype}-{np}"));
            let sets = [
                format!("train.dtype=\"{dtype}\""),
                format!("train.batch_size={batch}"),
            ];
            train_np(np, 50, &sets, &out);
            out.join("checkpoint.h5")
        };
        let one = run(1, 96);
        for np in [2, 4] {
            let many = run(np, 96 / np);
            let (worst, _) = compare_checkpoints(&one, &many);
            eprintln!(
                "{dtype}: -np {np} vs -np 1, largest relative parameter difference {worst:.3e}"
            );
            if dtype == "float64" {
                assert!(worst <= 1e-9, "{dtype} -np {np}: {worst}");
            }
        }
    }
}

/// Acceptance 2: K steps, stop, resume, K more equals 2K steps in one go,
/// bit for bit (CPU, one thread).
#[test]
fn resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let run = |steps: &str, out: &Path, resume: bool| {
        let mut a: Vec<&str> = vec!["train", "--steps", steps];
        a.extend(COMMON);
        let o = s(out);
        a.extend(["--set", "train.batch_size=64", "--out", &o]);
        if resume {
            a.push("--resume");
        }
        let r = tglml(&a);
        ok(&r);
        r
    };
    let split = dir.path().join("split");
    let whole = dir.path().join("whole");
    let perturbed = dir.path().join("perturbed");
    run("20", &split, false);
    // A copy of the step-20 checkpoint with one weight changed by 1e-3.
    std::fs::create_dir(&perturbed).unwrap();
    std::fs::copy(split.join("checkpoint.h5"), perturbed.join("checkpoint.h5")).unwrap();
    let first = {
        let f = hdf5::File::open(perturbed.join("checkpoint.h5")).unwrap();
        f.group("model").unwrap().member_names().unwrap()[0].clone()
    };
    nudge(
        &perturbed.join("checkpoint.h5"),
        &format!("model/{first}"),
        1e-3,
    );
    let resumed = run("40", &split, true);
    // Batches and noise depend only on (seed, step), so a run that ignored
    // the checkpoint and started from step 0 would end with the same bits:
    // the resumed run must say where it started and how much it ran, and a
    // changed checkpoint must change the result.
    let err = stderr(&resumed);
    assert!(err.contains("train: resuming from step 20 of 40"), "{err}");
    assert!(
        err.contains("trained 40 steps (this run: 20 steps from step 20"),
        "{err}"
    );
    run("40", &perturbed, true);
    run("40", &whole, false);
    assert!(
        whole.join("latent.png").exists(),
        "the latent scatter plot is written"
    );
    let (worst, same) =
        compare_checkpoints(&split.join("checkpoint.h5"), &whole.join("checkpoint.h5"));
    assert!(same, "resumed run differs: {worst:e}");
    let (worst, same) = compare_checkpoints(
        &perturbed.join("checkpoint.h5"),
        &whole.join("checkpoint.h5"),
    );
    assert!(
        !same && worst > 1e-7,
        "a resumed run from a changed checkpoint must differ: {worst:e}"
    );
}

/// Each rank reads only its block of a data file (whole chunks of 256 rows:
/// 1,200 rows over 2 ranks are 512 + 688); the batches' rows are exchanged
/// every step, the test split gathered on rank 0 at the end: the model, the
/// log and the evaluation equal single-process training on the whole batch.
#[test]
fn ranks_read_their_block_of_a_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.h5");
    ok(&tglml(&[
        "data",
        "synth",
        "--set",
        "synth.n=1200",
        "--set",
        "synth.kind=\"circles\"",
        "--out",
        &s(&data),
    ]));
    let run = |np: usize, batch: usize| {
        let out = dir.path().join(format!("file-{np}"));
        let sets = [
            format!("train.data={:?}", s(&data)),
            "train.dtype=\"float64\"".to_string(),
            format!("train.batch_size={batch}"),
        ];
        let r = train_np(np, 30, &sets, &out);
        (out, stderr(&r))
    };
    let (one, _) = run(1, 64);
    let (two, err) = run(2, 32);
    assert!(
        err.contains("train: 1200 rows of 2 values (1080 for training); each of 2 ranks holds at most 688 rows"),
        "{err}"
    );
    let (worst, _) = compare_checkpoints(&one.join("checkpoint.h5"), &two.join("checkpoint.h5"));
    assert!(worst <= 1e-9, "{worst}");
    // The evaluation split (rows, labels) is the same data, gathered.
    let eval = |dir: &Path| {
        let code = format!(
            "import h5py\nf = h5py.File({:?}, 'r')\nprint(f['eval/x'][()].tobytes().hex()[:4000], f['eval/x'].shape, list(f['eval/y'][()][:50]))",
            s(&dir.join("run.h5"))
        );
        let o = python_cmd().args(["-c", &code]).output().unwrap();
        ok(&o);
        stdout(&o)
    };
    assert_eq!(eval(&one), eval(&two));
}

/// Issue 7 (wall-time safety): SIGUSR1 to mpirun (what Slurm sends before
/// the time limit) stops every rank after the same step with a checkpoint
/// and exit status 75, and no run file; `--resume` then ends with the same
/// parameters and the same whole-run log as an uninterrupted run.
#[test]
fn a_signal_stops_after_a_step_and_resume_ends_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (cut, whole) = (dir.path().join("cut"), dir.path().join("whole"));
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = ["train", "--steps", "1500"].map(String::from).to_vec();
        a.extend(COMMON.map(String::from));
        a.extend(
            [
                "--set",
                "train.batch_size=32",
                "--set",
                "train.checkpoint_every=20",
                "--out",
            ]
            .map(String::from),
        );
        a.push(s(out));
        a
    };
    let cut_args = args(&cut);
    let refs: Vec<&str> = cut_args.iter().map(String::as_str).collect();
    let (mut cmd, _session) = mpirun_cmd(2, &refs);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first checkpoint (step 20) shows the ranks are training, with
    // their handlers installed.
    let t0 = std::time::Instant::now();
    while !cut.join("checkpoint.h5").exists() {
        assert!(t0.elapsed().as_secs() < 60, "no checkpoint after 60 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let k = std::process::Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(k.success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "{err}");
    let stopped = err
        .lines()
        .find(|l| l.starts_with("train: stopped on a signal"))
        .unwrap_or_else(|| panic!("no stop message in:\n{err}"));
    assert!(
        stopped.contains("of 1500") && stopped.contains("--resume"),
        "{stopped}"
    );
    assert!(!err.contains("error"), "{err}");
    assert!(
        !cut.join("run.h5").exists(),
        "an interrupted run writes no run file"
    );

    let mut resume_args = refs.clone();
    resume_args.push("--resume");
    let resumed = mpirun(2, &resume_args);
    ok(&resumed);
    // It continued from the step it stopped after, not from step 0.
    let after: u64 = stopped
        .split("after step ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("no step in {stopped}"));
    assert!(after > 0 && after < 1500, "{stopped}");
    let err = stderr(&resumed);
    assert!(
        err.contains(&format!("train: resuming from step {after} of 1500"))
            && err.contains(&format!(
                "this run: {} steps from step {after}",
                1500 - after
            )),
        "{err}"
    );
    let whole_args = args(&whole);
    ok(&mpirun(
        2,
        &whole_args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let (worst, same) =
        compare_checkpoints(&cut.join("checkpoint.h5"), &whole.join("checkpoint.h5"));
    assert!(same, "resumed run differs: {worst:e}");
    // The whole log (1,500 rows) and the evaluation, the same but for the
    // step times: h5py compares every dataset and attribute.
    let same_run = python_cmd()
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slurm/h5same.py"),
            &s(&cut.join("run.h5")),
            &s(&whole.join("run.h5")),
            "--ignore",
            "step_seconds",
        ])
        .output()
        .unwrap();
    ok(&same_run);
}

/// Acceptance 5: a NaN loss stops with the step and the last good
/// checkpoint; a corrupt or mismatched checkpoint is refused on --resume
/// with nothing overwritten.
#[test]
fn bad_training_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // A learning rate that blows the parameters up.
    let r = mpirun(
        2,
        &[
            "train",
            "--steps",
            "30",
            "--set",
            "train.lr=1e200",
            "--set",
            "train.checkpoint_every=1",
            "--set",
            "train.batch_size=32",
            "--out",
            &s(&out),
        ],
    );
    assert!(!r.status.success());
    let err = stderr(&r);
    assert_eq!(error_lines(&err), 1, "{err}");
    assert!(
        err.contains("training step") && err.contains("the loss is"),
        "{err}"
    );
    assert!(
        err.contains("last good checkpoint:") && err.contains("checkpoint.h5"),
        "{err}"
    );
    // A corrupt checkpoint: refused, left as it is.
    let ck = out.join("checkpoint.h5");
    std::fs::write(&ck, b"not an HDF5 file").unwrap();
    let r = tglml(&["train", "--steps", "5", "--resume", "--out", &s(&out)]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(err.contains("checkpoint.h5"), "{err}");
    assert_eq!(std::fs::read(&ck).unwrap(), b"not an HDF5 file");
    // A checkpoint of another architecture: refused, names a tensor.
    let other = dir.path().join("other");
    ok(&tglml(&[
        "train",
        "--steps",
        "2",
        "--set",
        "model.hidden=[16]",
        "--out",
        &s(&other),
    ]));
    let before = std::fs::read(other.join("checkpoint.h5")).unwrap();
    let r = tglml(&[
        "train",
        "--steps",
        "4",
        "--resume",
        "--set",
        "model.hidden=[32]",
        "--out",
        &s(&other),
    ]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(err.contains("/model/") && err.contains("shape"), "{err}");
    assert_eq!(std::fs::read(other.join("checkpoint.h5")).unwrap(), before);
    // A test file of another width: refused before any step, under mpirun.
    let narrow = dir.path().join("narrow.h5");
    ok(&tglml(&[
        "data",
        "synth",
        "--set",
        "synth.kind=\"circles\"",
        "--out",
        &s(&narrow),
    ]));
    let fresh = dir.path().join("fresh");
    let r = mpirun(
        2,
        &[
            "train",
            "--steps",
            "100000",
            "--set",
            &format!("train.test_data={:?}", s(&narrow)),
            "--out",
            &s(&fresh),
        ],
    );
    assert!(!r.status.success());
    let err = stderr(&r);
    assert_eq!(error_lines(&err), 1, "{err}");
    assert!(
        err.contains("train.test_data")
            && err.contains("has 2 values per sample, the training data 3"),
        "{err}"
    );
    assert!(!fresh.join("checkpoint.h5").exists());
}

/// What [`trains_alike_and_resumes`] checks of one model kind.
struct KindCheck<'a> {
    label: &'a str,
    /// `--set` values that choose and size the model.
    sets: Vec<String>,
    /// Log columns run.h5's /train must hold.
    columns: &'a [&'a str],
    /// sorted(checkpoint.h5's /optimizer), as Python prints it.
    optimizers: &'a str,
    /// `(samples, eval/x)` shapes as Python prints them.
    shapes: &'a str,
    /// A float32 trained variable of the checkpoint to nudge.
    nudged: &'a str,
}

/// Issue 14, acceptance 1, for one model kind: -np 2 and -np 4 give the
/// parameters of -np 1 with the same global batch within 1e-9 relative
/// after 50 float64 steps (the topological loss on), float32 is reported;
/// the run file holds the samples and the log's columns; 15 + 15 resumed
/// steps equal 30 in one go bit for bit, and a nudged checkpoint changes
/// the result (so resume reads it). Returns the closure that runs
/// `tglml train` with the resume test's settings.
fn trains_alike_and_resumes<'a>(
    dir: &'a Path,
    k: &'a KindCheck<'a>,
) -> impl Fn(&Path, &str, bool) -> std::process::Output + 'a {
    let run = |np: usize, batch: usize, steps: u32, tag: &str, extra: &[&str]| {
        let out = dir.join(format!("{}-{tag}", k.label));
        let mut sets = vec![
            "train.dtype=\"float64\"".to_string(),
            format!("train.batch_size={batch}"),
        ];
        sets.extend(k.sets.iter().cloned());
        sets.extend(extra.iter().map(|x| x.to_string()));
        train_np(np, steps, &sets, &out);
        out
    };
    let one = run(1, 96, 50, "one", &[]);
    for np in [2, 4] {
        let many = run(np, 96 / np, 50, &format!("np{np}"), &[]);
        let (worst, _) =
            compare_checkpoints(&one.join("checkpoint.h5"), &many.join("checkpoint.h5"));
        eprintln!(
            "{} float64: -np {np} vs -np 1, largest relative parameter difference {worst:.3e}",
            k.label
        );
        assert!(worst <= 1e-9, "{} -np {np} vs -np 1: {worst}", k.label);
    }
    let f32_one = run(1, 96, 50, "f32-one", &["train.dtype=\"float32\""]);
    let f32_two = run(2, 48, 50, "f32-two", &["train.dtype=\"float32\""]);
    let (worst, _) = compare_checkpoints(
        &f32_one.join("checkpoint.h5"),
        &f32_two.join("checkpoint.h5"),
    );
    eprintln!(
        "{} float32: -np 2 vs -np 1, largest relative parameter difference {worst:.3e}",
        k.label
    );
    assert!(
        one.join("samples.png").exists(),
        "the samples' scatter plot"
    );
    let code = format!(
        "import h5py\nf = h5py.File({:?})\nprint(f['samples'].shape, f['eval/x'].shape, sorted(f['train']))\n\
         print(sorted(h5py.File({:?})['optimizer']))",
        s(&one.join("run.h5")),
        s(&one.join("checkpoint.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains(k.shapes), "{out}");
    for col in k.columns.iter().chain(&["topo_h0", "topo_h1", "gamma"]) {
        assert!(out.contains(&format!("'{col}'")), "{col}: {out}");
    }
    assert!(out.contains(k.optimizers), "{out}");

    // Resume: 15 steps, then 15 more, against 30 in one go.
    let resume = move |out: &Path, steps: &str, resume: bool| {
        let mut a: Vec<String> = vec!["train".into(), "--steps".into(), steps.into()];
        a.extend(COMMON.iter().map(|x| x.to_string()));
        let mut sets = vec!["train.batch_size=64".to_string()];
        sets.extend(k.sets.iter().cloned());
        for x in sets {
            a.extend(["--set".to_string(), x]);
        }
        a.extend(["--out".to_string(), s(out)]);
        if resume {
            a.push("--resume".into());
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        tglml(&refs)
    };
    let split = dir.join(format!("{}-split", k.label));
    let whole = dir.join(format!("{}-whole", k.label));
    let perturbed = dir.join(format!("{}-perturbed", k.label));
    ok(&resume(&split, "15", false));
    // A copy of the step-15 checkpoint with one trained weight moved.
    std::fs::create_dir(&perturbed).unwrap();
    std::fs::copy(split.join("checkpoint.h5"), perturbed.join("checkpoint.h5")).unwrap();
    nudge(&perturbed.join("checkpoint.h5"), k.nudged, 1e-2);
    let r = resume(&split, "30", true);
    ok(&r);
    assert!(
        stderr(&r).contains("resuming from step 15 of 30"),
        "{}",
        stderr(&r)
    );
    ok(&resume(&perturbed, "30", true));
    ok(&resume(&whole, "30", false));
    let (worst, same) =
        compare_checkpoints(&split.join("checkpoint.h5"), &whole.join("checkpoint.h5"));
    assert!(same, "resumed {} differs: {worst:e}", k.label);
    // Resuming reads the checkpoint: a changed one changes the result.
    let (worst, same) = compare_checkpoints(
        &perturbed.join("checkpoint.h5"),
        &whole.join("checkpoint.h5"),
    );
    assert!(
        !same && worst > 1e-7,
        "{}: a changed checkpoint must change the result: {worst:e}",
        k.label
    );
    resume
}

/// Issue 14: the GAN through the same loop ([`trains_alike_and_resumes`]),
/// and a VAE's checkpoint is refused by a GAN run's --resume.
#[test]
fn a_gan_trains_alike_on_any_rank_count_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let k = KindCheck {
        label: "gan",
        sets: [
            "model.kind=\"gan\"",
            "model.hidden=[32]",
            "model.gan.disc_hidden=[32]",
            "model.samples=50",
            "train.lr=0.0005",
        ]
        .map(String::from)
        .to_vec(),
        columns: &["d_real", "d_fake", "r1", "g_loss"],
        optimizers: "['discriminator', 'generator']",
        shapes: "(50, 3) (120, 3)",
        nudged: "model/gen.fc0.weight",
    };
    let resume = trains_alike_and_resumes(dir.path(), &k);

    // A VAE checkpoint under a GAN run's --resume: one message, nothing
    // written.
    let vae = dir.path().join("vae");
    train_np(1, 5, &["train.batch_size=32".to_string()], &vae);
    let before = std::fs::read(vae.join("checkpoint.h5")).unwrap();
    let r = resume(&vae, "10", true);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("checkpoint.h5")
            && err.contains("the model's variable gen.fc0.weight has no dataset")
            && err.contains("it holds the optimizers {\"model\"}, this model trains with {\"discriminator\", \"generator\"}"),
        "{err}"
    );
    assert_eq!(std::fs::read(vae.join("checkpoint.h5")).unwrap(), before);
}

/// The denoiser's settings of the diffusion tests: small, few levels, the
/// topological loss at every level (topo_t_max = T), EMA on.
const DIFFUSION: [&str; 7] = [
    "model.hidden=[32]",
    "model.samples=50",
    "model.diffusion.timesteps=50",
    "model.diffusion.topo_t_max=50",
    "model.diffusion.ema=0.9",
    "model.diffusion.sampler=\"ddim\"",
    "model.diffusion.sample_steps=10",
];

/// The [`KindCheck`] of a diffusion model with [`DIFFUSION`] and `sets`.
fn diffusion_check(label: &'static str, mut sets: Vec<String>) -> KindCheck<'static> {
    sets.extend(DIFFUSION.map(String::from));
    KindCheck {
        label,
        sets,
        columns: &["noise"],
        optimizers: "['model']",
        shapes: "(50, 3) (120, 3)",
        nudged: "model/eps.fc0.weight",
    }
}

/// Issue 14: the diffusion model through the same loop
/// ([`trains_alike_and_resumes`]; its EMA copy is in the checkpoint, so
/// resume equals one run in it too), and a GAN's checkpoint is refused by
/// a diffusion run's --resume.
#[test]
fn a_diffusion_model_trains_alike_on_any_rank_count_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let k = diffusion_check("diffusion", vec!["model.kind=\"diffusion\"".to_string()]);
    let resume = trains_alike_and_resumes(dir.path(), &k);
    // The EMA copy moved away from the trained weights, and is saved.
    let code = format!(
        "import h5py, numpy as np\nm = h5py.File({:?})['model']\n\
         print(sorted(m), float(np.max(np.abs(m['ema.fc0.weight'][()] - m['eps.fc0.weight'][()]))))",
        s(&dir.path().join("diffusion-whole").join("checkpoint.h5"))
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("'ema.fc1.bias'") && out.contains("'eps.fc1.bias'"),
        "{out}"
    );
    let gap: f64 = out.split_whitespace().last().unwrap().parse().unwrap();
    assert!(gap > 0.0, "the EMA copy equals the weights: {out}");

    // A GAN's checkpoint under a diffusion run's --resume: one message,
    // nothing written.
    let gan = dir.path().join("gan");
    train_np(
        1,
        3,
        &[
            "train.batch_size=32".to_string(),
            "model.kind=\"gan\"".to_string(),
        ],
        &gan,
    );
    let before = std::fs::read(gan.join("checkpoint.h5")).unwrap();
    let r = resume(&gan, "10", true);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert_eq!(error_lines(&err), 1, "{err}");
    assert!(
        err.contains("checkpoint.h5") && err.contains("eps.fc0.weight has no dataset"),
        "{err}"
    );
    assert_eq!(std::fs::read(gan.join("checkpoint.h5")).unwrap(), before);
}

/// Issue 14: latent diffusion in the latent space of a trained VAE, through
/// the same loop ([`trains_alike_and_resumes`]; the frozen VAE is copied
/// into the checkpoint and stays as trained); its samples are the VAE's
/// decodings of the latent samples. Bad input (acceptance 5): a missing
/// model.vae_checkpoint, a GAN's checkpoint, a VAE of other data, and the
/// key in another kind's run: one message each, nothing written.
#[test]
fn latent_diffusion_trains_alike_and_refuses_a_wrong_vae() {
    let dir = tempfile::tempdir().unwrap();
    let vae = dir.path().join("vae");
    train_np(
        1,
        20,
        &[
            "train.batch_size=32".to_string(),
            "model.hidden=[16]".to_string(),
        ],
        &vae,
    );
    let ck = vae.join("checkpoint.h5");
    let k = diffusion_check(
        "latent",
        vec![
            "model.kind=\"latent-diffusion\"".to_string(),
            format!("model.vae_checkpoint={:?}", s(&ck)),
        ],
    );
    let _resume = trains_alike_and_resumes(dir.path(), &k);
    // The frozen VAE in the run's checkpoint is the VAE's own; the latent
    // samples decode to /samples through it (its decoder, recomputed here
    // in NumPy from the checkpoint's weights).
    let code = format!(
        "import h5py, numpy as np\n\
         a = h5py.File({:?})['model']; b = h5py.File({:?})['model']\n\
         same = all(np.array_equal(a[k][()], b['vae.' + k][()]) for k in a if k != 'topo_log_scale')\n\
         r = h5py.File({:?})\n\
         z = r['samples_latent'][()].astype(np.float64)\n\
         h = np.maximum(z @ a['dec.fc0.weight'][()].T.astype(np.float64) + a['dec.fc0.bias'][()], 0)\n\
         x = h @ a['dec.out.weight'][()].T.astype(np.float64) + a['dec.out.bias'][()]\n\
         print(same, z.shape, float(np.max(np.abs(x - r['samples'][()]))))",
        s(&ck),
        s(&dir.path().join("latent-whole").join("checkpoint.h5")),
        s(&dir.path().join("latent-f32-one").join("run.h5")),
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("True (50, 2)"), "{out}");
    let err: f64 = out.split_whitespace().last().unwrap().parse().unwrap();
    assert!(err < 1e-5, "decoded samples: {out}");

    // Bad input: each refused with one message naming the key and file,
    // and no output folder.
    let gan = dir.path().join("gan");
    train_np(
        1,
        3,
        &[
            "train.batch_size=32".to_string(),
            "model.kind=\"gan\"".to_string(),
        ],
        &gan,
    );
    let circle = dir.path().join("circle");
    train_np(
        1,
        3,
        &[
            "train.batch_size=32".to_string(),
            "synth.kind=\"circles\"".to_string(),
        ],
        &circle,
    );
    let missing = dir.path().join("nowhere").join("checkpoint.h5");
    for (i, (vae_ck, want)) in [
        (missing.clone(), "cannot be opened as HDF5"),
        (
            gan.join("checkpoint.h5"),
            "is the checkpoint of a model.kind = \"gan\" run; latent diffusion needs a VAE's",
        ),
        (
            circle.join("checkpoint.h5"),
            "is a VAE of data with 2 values per row, but this run's data have 3",
        ),
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path().join(format!("bad{i}"));
        let r = mpirun(
            2,
            &[
                "train",
                "--steps",
                "5",
                "--set",
                "model.kind=\"latent-diffusion\"",
                "--set",
                &format!("model.vae_checkpoint={:?}", s(vae_ck)),
                "--out",
                &s(&out),
            ],
        );
        assert!(!r.status.success());
        let err = stderr(&r);
        assert_eq!(error_lines(&err), 1, "{err}");
        assert!(
            err.contains("model.vae_checkpoint") && err.contains(&s(vae_ck)) && err.contains(want),
            "{err}"
        );
        assert!(!out.exists(), "{}", out.display());
    }
    for (sets, want) in [
        (
            vec!["model.kind=\"latent-diffusion\""],
            "key `model.vae_checkpoint`: model.kind = \"latent-diffusion\" generates in the latent space of a trained VAE",
        ),
        (
            vec!["model.kind=\"gan\"", "model.diffusion.timesteps=10"],
            "key `model.diffusion.timesteps` belongs to model.kind = \"diffusion\" or \"latent-diffusion\", but model.kind is \"gan\"",
        ),
        (
            vec!["model.kind=\"diffusion\"", "model.vae_checkpoint=\"x.h5\""],
            "key `model.vae_checkpoint` belongs to model.kind = \"latent-diffusion\", but model.kind is \"diffusion\"",
        ),
    ] {
        let out = dir.path().join("badkey");
        let mut a = vec!["train", "--steps", "5"];
        for x in &sets {
            a.extend(["--set", x]);
        }
        let o = s(&out);
        a.extend(["--out", &o]);
        let r = tglml(&a);
        assert!(!r.status.success());
        let err = stderr(&r);
        assert_eq!(error_lines(&err), 1, "{err}");
        assert!(err.contains(want), "{err}");
        assert!(!out.exists());
    }
}

/// The convolutional networks (the GAN's DCGAN-style pair, the diffusion
/// model's U-Net with group normalisation) on 28 × 28 images: two ranks
/// give the parameters of one with the same global batch (float64, 4
/// steps, the topological loss on).
#[test]
fn convolutional_networks_train_alike_on_two_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images.h5");
    let code = format!(
        "import h5py, numpy as np\nr = np.random.default_rng(0)\n\
         with h5py.File({:?}, 'w') as f: f['x'] = r.random((300, 784))",
        s(&data)
    );
    ok(&python_cmd().args(["-c", &code]).output().unwrap());
    for (label, sets) in [
        (
            "conv GAN",
            vec![
                "model.kind=\"gan\"",
                "model.hidden=[8, 8]",
                "model.gan.disc_hidden=[8, 8]",
            ],
        ),
        (
            "U-Net diffusion",
            vec![
                "model.kind=\"diffusion\"",
                "model.hidden=[16, 16]",
                "model.diffusion.timesteps=20",
                "model.diffusion.topo_t_max=20",
                "model.diffusion.sampler=\"ddim\"",
                "model.diffusion.sample_steps=2",
            ],
        ),
    ] {
        let run = |np: usize, batch: usize| {
            let out = dir.path().join(format!("{label}-{np}"));
            let mut all = vec![
                "train.dtype=\"float64\"".to_string(),
                format!("train.batch_size={batch}"),
                format!("train.data={:?}", s(&data)),
                "train.standardize=false".to_string(),
                "model.network=\"conv\"".to_string(),
                "model.samples=4".to_string(),
                "train.topo.dims=[0]".to_string(),
                "train.topo.weights=[1.0]".to_string(),
            ];
            all.extend(sets.iter().map(|x| x.to_string()));
            train_np(np, 4, &all, &out);
            out
        };
        let (one, two) = (run(1, 16), run(2, 8));
        let (worst, _) =
            compare_checkpoints(&one.join("checkpoint.h5"), &two.join("checkpoint.h5"));
        eprintln!(
            "{label} float64: -np 2 vs -np 1, largest relative parameter difference {worst:.3e}"
        );
        assert!(worst <= 1e-9, "{label}: {worst}");
        assert!(one.join("samples.png").exists());
    }
}
