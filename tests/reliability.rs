//! Issue 12: bad input and faults, as a careless or hostile user would
//! make them, against every command (docs/reliability.md). Each case must
//! end with a non-zero exit within seconds, one error line naming the
//! file, key or rank, and the working folder exactly as it was: every file
//! byte-identical (hashed), nothing added (no output, no temporary file, no
//! empty folder). Cases run alone and, where marked, under `mpirun -np 2`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use tglml::dist::Fnv1a;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Every path below `dir` (relative) with the hash of its bytes, folders
/// marked as such: two snapshots are equal when nothing was written,
/// replaced, added or left behind.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(rel, "folder".into());
                stack.push(p);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("link to {}", s(&std::fs::read_link(&p).unwrap())),
                );
            } else {
                let h = Fnv1a::of(&std::fs::read(&p).unwrap());
                out.insert(rel, format!("{h:016x}"));
            }
        }
    }
    out
}

/// The test's inputs, made once per test in a fresh folder.
struct Inputs {
    dir: tempfile::TempDir,
}

impl Inputs {
    fn new() -> Inputs {
        let dir = tempfile::tempdir().unwrap();
        let inputs = Inputs { dir };
        let t = inputs.path("t.h5");
        ok(&tglml(&[
            "data",
            "synth",
            "--n",
            "120",
            "--threads",
            "1",
            "--out",
            &s(&t),
        ]));
        ok(&tglml(&[
            "ph",
            "--input",
            &s(&t),
            "--threads",
            "1",
            "--out",
            &s(&inputs.path("d.h5")),
        ]));
        std::os::unix::fs::symlink(&t, inputs.path("link.h5")).unwrap();
        write_npy(
            &inputs.path("t.npy"),
            4,
            2,
            &[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        );
        write_npy(&inputs.path("zero.npy"), 5, 0, &[]);
        let cloud = |scale: f64| -> String {
            (0..30)
                .map(|i| {
                    let a = i as f64 * 0.3;
                    format!("{},{}\n", a.cos() * scale, a.sin() * scale)
                })
                .collect()
        };
        std::fs::write(inputs.path("huge.csv"), cloud(1e40)).unwrap();
        std::fs::write(inputs.path("tiny.csv"), cloud(1e-50)).unwrap();
        std::fs::write(inputs.path("asym.csv"), "0,1,2\n1,0,3\n2,4,0\n").unwrap();
        std::fs::write(inputs.path("edges.csv"), "0,1,1.0\n1,99999999999,2.0\n").unwrap();
        std::fs::write(
            inputs.path("tet.off"),
            "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n",
        )
        .unwrap();
        std::fs::create_dir(inputs.path("images")).unwrap();
        let img =
            image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([(x * 40) as u8, (y * 60) as u8, 9]));
        img.save(inputs.path("images/a.png")).unwrap();
        // A diagram with a death of 1e200 (its square and its Gaussians
        // overflow), one of 1e154 (W2's cost overflows), and a collection's
        // stacked diagrams.
        let diagram = |name: &str, rows: ndarray::Array2<f64>, offsets: bool| {
            let f = hdf5::File::create(inputs.path(name)).unwrap();
            let g = f.create_group("diagrams").unwrap();
            g.new_dataset_builder()
                .with_data(&rows)
                .create("dim0")
                .unwrap();
            if offsets {
                f.create_group("offsets")
                    .unwrap()
                    .new_dataset_builder()
                    .with_data(&ndarray::array![0i64, 1, rows.nrows() as i64])
                    .create("dim0")
                    .unwrap();
            }
        };
        diagram(
            "death1e200.h5",
            ndarray::array![[0.0, 1e200], [0.0, 1.0]],
            false,
        );
        diagram(
            "death1e154.h5",
            ndarray::array![[0.0, 3e154], [0.0, 1e154]],
            false,
        );
        diagram("death_small.h5", ndarray::array![[0.0, 2e154]], false);
        diagram(
            "collection.h5",
            ndarray::array![[0.0, 1.0], [0.0, 2.0]],
            true,
        );
        // A collection whose /offsets are floats.
        {
            let f = hdf5::File::create(inputs.path("float_offsets.h5")).unwrap();
            let pts = ndarray::Array2::<f64>::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f64);
            f.new_dataset_builder()
                .with_data(&pts)
                .create("points")
                .unwrap();
            f.new_dataset_builder()
                .with_data(&ndarray::array![0.0f64, 2.5, 6.0])
                .create("offsets")
                .unwrap();
            let names: Vec<hdf5::types::VarLenUnicode> =
                ["a", "b"].iter().map(|n| n.parse().unwrap()).collect();
            f.new_dataset_builder()
                .with_data(&ndarray::Array1::from_vec(names))
                .create("names")
                .unwrap();
        }
        inputs
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        s(&self.path(name))
    }
}

/// A change made to a checkpoint file.
type Damage = fn(&hdf5::File);

/// A .npy file of float64 rows.
fn write_npy(path: &Path, n: usize, d: usize, values: &[f64]) {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    while (header.len() + 11) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Asserts that `o` (which took `took`) is a clean refusal: non-zero exit
/// within `limit`, exactly one error line, containing `want`, and the
/// folder as it was.
fn assert_refused(
    label: &str,
    o: &Output,
    took: Duration,
    want: &str,
    before: &BTreeMap<String, String>,
    dir: &Path,
) {
    let err = stderr(o);
    assert!(!o.status.success(), "{label}: exited 0\n{err}");
    assert!(
        took < Duration::from_secs(20),
        "{label}: took {took:?} to fail"
    );
    assert_eq!(
        error_lines(&err),
        1,
        "{label}: one error line expected:\n{err}"
    );
    assert!(err.contains(want), "{label}: expected {want:?} in:\n{err}");
    let after = snapshot(dir);
    assert_eq!(
        &after, before,
        "{label}: the folder changed (a file replaced, added or left behind)"
    );
}

/// Runs `args` alone and, with `mpi`, under `mpirun -np 2`, and asserts a
/// clean refusal naming `want` each time.
fn refuse(inputs: &Inputs, mpi: bool, want: &str, args: &[&str]) {
    let before = snapshot(inputs.dir.path());
    for np in if mpi { vec![1, 2] } else { vec![1] } {
        let how = if np == 1 { "alone" } else { "mpirun -np 2" };
        let t0 = Instant::now();
        let o = if np == 1 {
            tglml(args)
        } else {
            mpirun(2, args)
        };
        assert_refused(
            &format!("{} ({how})", args.join(" ")),
            &o,
            t0.elapsed(),
            want,
            &before,
            inputs.dir.path(),
        );
    }
}

/// Class 1: sizes that an input or a setting makes too large are refused
/// before anything is allocated, with the estimate and the key to change.
#[test]
fn sizes_are_guarded() {
    let i = Inputs::new();
    let out = i.p("out/x.h5");
    let budget = "over the memory budget";
    refuse(
        &i,
        true,
        "lower synth.n (--n)",
        &["data", "synth", "--n", "10000000000", "--out", &out],
    );
    refuse(
        &i,
        false,
        "lower synth.spheres.dim",
        &[
            "data",
            "synth",
            "--kind",
            "spheres",
            "--set",
            "synth.spheres.dim=1000000000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "run.threads (--threads)",
        &[
            "ph",
            "--input",
            &i.p("t.h5"),
            "--threads",
            "100000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "lower pack.image_width and pack.image_height",
        &[
            "data",
            "pack",
            &i.p("images"),
            "--set",
            "pack.image_width=100000",
            "--set",
            "pack.image_height=100000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        false,
        "lower pack.mesh_points (--mesh-points)",
        &[
            "data",
            "pack",
            &i.p("tet.off"),
            "--mesh-points",
            "1000000000000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "the distance matrix of 100000000000 points (the largest point index + 1)",
        &[
            "ph",
            "--edge-list",
            "--input",
            &i.p("edges.csv"),
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "lower summary.resolution (--resolution)",
        &[
            "diagram",
            "summarize",
            &i.p("d.h5"),
            "--betti",
            "--resolution",
            "100000000000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        false,
        budget,
        &[
            "diagram",
            "summarize",
            &i.p("d.h5"),
            "--landscapes",
            "1000000000",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "lower model.hidden or train.batch_size",
        &[
            "train",
            "--set",
            "model.hidden=[100000000]",
            "--threads",
            "1",
            "--out",
            &i.p("run"),
        ],
    );
    refuse(
        &i,
        true,
        "more than this node's memory",
        &[
            "ph",
            "--input",
            &i.p("t.h5"),
            "--set",
            "run.memory_budget_gib=100000",
            "--out",
            &out,
        ],
    );
}

/// `tglml info` takes no input; its settings are checked all the same.
#[test]
fn info_checks_its_settings() {
    let i = Inputs::new();
    refuse(
        &i,
        true,
        "more than this node's memory",
        &["info", "--set", "run.memory_budget_gib=100000"],
    );
}

/// Class 2: an output that is an input (same path, a symbolic link, a
/// .npy input, a summary written over its input) is refused before any
/// work, and a rerun of `train` into a folder with a checkpoint needs
/// `--resume` or `--overwrite`.
#[test]
fn inputs_are_never_overwritten() {
    let i = Inputs::new();
    let same = "is the input";
    refuse(
        &i,
        true,
        same,
        &["ph", "--input", &i.p("t.h5"), "--out", &i.p("t.h5")],
    );
    refuse(
        &i,
        false,
        same,
        &["ph", "--input", &i.p("t.npy"), "--out", &i.p("t.npy")],
    );
    refuse(
        &i,
        true,
        "through a link",
        &["ph", "--input", &i.p("t.h5"), "--out", &i.p("link.h5")],
    );
    refuse(
        &i,
        true,
        same,
        &["diagram", "summarize", &i.p("d.h5"), "--out", &i.p("d.h5")],
    );
    refuse(
        &i,
        false,
        same,
        &[
            "diagram",
            "distance",
            &i.p("d.h5"),
            &i.p("d.h5"),
            "--out",
            &i.p("d.h5"),
        ],
    );
    refuse(
        &i,
        false,
        same,
        &["data", "pack", &i.p("t.npy"), "--out", &i.p("t.npy")],
    );
    // A trained folder: a rerun without --resume is refused, the
    // checkpoint untouched; --overwrite starts over.
    let run = i.path("run");
    let r = s(&run);
    let train = |extra: &[&str]| {
        let mut a = short_train(&r).to_vec();
        a.extend(extra);
        tglml(&a)
    };
    ok(&train(&[]));
    let before = snapshot(i.dir.path());
    for np in [1, 2] {
        let args = short_train(&r);
        let t0 = Instant::now();
        let o = if np == 1 {
            tglml(&args)
        } else {
            mpirun(2, &args)
        };
        assert_refused(
            &format!("rerun into a trained folder, {np} rank(s)"),
            &o,
            t0.elapsed(),
            "holds a checkpoint at step 3: continue that run with --resume, or start over with --overwrite",
            &before,
            i.dir.path(),
        );
    }
    let o = train(&["--overwrite"]);
    ok(&o);
    assert!(
        stderr(&o).contains("this run: 3 steps from step 0"),
        "{}",
        stderr(&o)
    );
}

/// Class 3 and acceptance 2: a panic on one rank ends the whole job at
/// once with one message naming the rank and the place; the other rank
/// does not wait in its collective until the allocation runs out.
#[test]
fn a_panic_on_one_rank_ends_the_job() {
    let i = Inputs::new();
    // ("0", 1): one process without mpirun; then each rank of two.
    for (rank, np) in [("0", 1), ("0", 2), ("1", 2)] {
        let before = snapshot(i.dir.path());
        let args = ["ph", "--input", &i.p("t.h5"), "--out", &i.p("out/p.h5")];
        let (mut cmd, _session) = mpirun_cmd(2, &args);
        if np == 1 {
            cmd = Command::new(bin());
            cmd.args(args).env("HDF5_USE_FILE_LOCKING", "FALSE");
        }
        cmd.env("TGLML_TEST_PANIC", rank);
        let (o, took) = output_within(cmd, Duration::from_secs(60));
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(took < Duration::from_secs(10), "took {took:?}:\n{err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("internal error"))
            .collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains(&format!("rank {rank}:")) && lines[0].contains("src/runtime.rs:"),
            "{err}"
        );
        assert_eq!(snapshot(i.dir.path()), before);
    }
    // The panic of the issue (a death above 1e154, index out of bounds in
    // the Wasserstein code) is gone: W2 is homogeneous, so it equals
    // 1e154 × W2 of the diagrams divided by 1e154, computed in closed form:
    // A = {(0, 3), (0, 1)}, B = {(0, 2)}: (0,3)–(0,2) costs 1 (L∞), (0,1)
    // goes to the diagonal at 1/2: W2 = sqrt(1 + 1/4).
    for np in [1, 2] {
        let a = i.p("death1e154.h5");
        let b = i.p("death_small.h5");
        let args = ["diagram", "distance", &a, &b, "--dim", "0", "--p", "2"];
        let o = if np == 1 {
            tglml(&args)
        } else {
            mpirun(2, &args)
        };
        ok(&o);
        let v: f64 = stdout(&o).trim().parse().unwrap();
        let want = 1e154 * (1.25f64).sqrt();
        assert!((v - want).abs() <= 1e-12 * want, "{v:e} vs {want:e}");
    }
}

/// A failure inside libtorch on one rank (a shape error that makes tch
/// panic, forced by `TGLML_TEST_TORCH_FAULT=1`) is an error that reaches
/// every rank through the agreement: one message naming the rank and the
/// step, exit 1, no MPI abort, nothing left behind.
#[test]
fn a_libtorch_failure_is_an_error_on_every_rank() {
    let i = Inputs::new();
    let before = snapshot(i.dir.path());
    let run = i.p("run");
    let (mut cmd, _session) = mpirun_cmd(2, &short_train(&run));
    cmd.env("TGLML_TEST_TORCH_FAULT", "1");
    let (o, took) = output_within(cmd, Duration::from_secs(60));
    assert_refused(
        "a libtorch failure on rank 1",
        &o,
        took,
        "rank 1: training step 0, forward pass: libtorch failed:",
        &before,
        i.dir.path(),
    );
}

/// A 3-step training of 300 torus points into `out`.
fn short_train(out: &str) -> [&str; 9] {
    [
        "train",
        "--steps",
        "3",
        "--threads",
        "1",
        "--set",
        "synth.n=300",
        "--out",
        out,
    ]
}

/// `mpirun -np 1 tglml A : -np 1 tglml B` (MPMD): two ranks with
/// different arguments.
fn mpmd(a: &[&str], b: &[&str]) -> Output {
    let (mut cmd, session) = mpirun_cmd(1, a);
    cmd.arg(":")
        .args(["-np", "1", "--oversubscribe", "--bind-to", "none", bin()])
        .args(b);
    let (o, _) = output_within(cmd, Duration::from_secs(60));
    drop(session);
    o
}

/// Runs `cmd` to its end, or kills it after `limit` (a job that hangs must
/// fail the test, not block the suite); returns its output and how long it
/// ran.
fn output_within(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    use std::io::Read;
    use std::process::Stdio;
    let t0 = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > limit {
            // SIGTERM first: mpirun forwards it to its ranks.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = t0.elapsed();
    let o = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (o, took)
}

/// Class 4: ranks started with different configurations or arguments stop
/// at once, saying what differs.
#[test]
fn ranks_must_agree() {
    let i = Inputs::new();
    let before = snapshot(i.dir.path());
    let run = i.p("run");
    let base = short_train(&run);
    let mut other = base.to_vec();
    other.extend(["--set", "model.hidden=[8]"]);
    let ph = ["ph", "--input", &i.p("t.h5"), "--out", &i.p("p.h5")];
    let mut ph2 = ph.to_vec();
    ph2.extend(["--maxdim", "2"]);
    let ph3 = ["ph", "--input", &i.p("t.h5"), "--out", &i.p("q.h5")];
    // A typo on one rank only: that rank's parse error, no hang.
    let mut typo = ph.to_vec();
    typo.push("--bogus");
    let cases: [(&str, &[&str], &[&str], &str); 4] = [
        (
            "train with another model.hidden on rank 1",
            &base,
            &other,
            "in `[model]`: rank 0 has `hidden = [128, 64]`, rank 1 has `hidden = [8]`",
        ),
        (
            "ph with another --maxdim on rank 1",
            &ph,
            &ph2,
            "in `[ph]`: rank 0 has `maxdim = 1`, rank 1 has `maxdim = 2`",
        ),
        (
            "ph with another --out on rank 1",
            &ph,
            &ph3,
            "rank 1 has `out: ",
        ),
        (
            "a typo on rank 1",
            &ph,
            &typo,
            "rank 1: command line: error: unexpected argument '--bogus'",
        ),
    ];
    for (label, a, b, want) in cases {
        let t0 = Instant::now();
        let o = mpmd(a, b);
        assert_refused(label, &o, t0.elapsed(), want, &before, i.dir.path());
    }
}

/// Class 5: input that would give a wrong result with exit 0 is refused.
#[test]
fn wrong_results_are_refused() {
    let i = Inputs::new();
    let out = i.p("out.h5");
    let range = "outside the range of the float32 distances";
    refuse(
        &i,
        true,
        range,
        &["ph", "--input", &i.p("huge.csv"), "--out", &out],
    );
    refuse(
        &i,
        false,
        range,
        &["ph", "--input", &i.p("tiny.csv"), "--out", &out],
    );
    refuse(
        &i,
        true,
        "its total_persistence_2 has the value inf",
        &[
            "diagram",
            "summarize",
            &i.p("death1e200.h5"),
            "--set",
            "summary.image=false",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        false,
        "its persistence image has the value",
        &[
            "diagram",
            "summarize",
            &i.p("death1e200.h5"),
            "--image",
            "--set",
            "summary.landscapes=0",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "holds the diagrams of a collection of 2 objects",
        &[
            "diagram",
            "distance",
            &i.p("collection.h5"),
            &i.p("d.h5"),
            "--dim",
            "0",
        ],
    );
    refuse(
        &i,
        true,
        "model.vae.likelihood = \"bernoulli\": needs data in [0, 1]",
        &[
            "train",
            "--set",
            "model.vae.likelihood=\"bernoulli\"",
            "--threads",
            "1",
            "--out",
            &i.p("run"),
        ],
    );
    refuse(
        &i,
        false,
        "has 5 rows of 0 values",
        &["ph", "--input", &i.p("zero.npy"), "--out", &out],
    );
    refuse(
        &i,
        true,
        "is not a symmetric distance matrix: entry (2, 1) is 4, entry (1, 2) is 3",
        &[
            "ph",
            "--distance-matrix",
            "--input",
            &i.p("asym.csv"),
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "500 landmarks asked of 120 points",
        &[
            "ph",
            "--input",
            &i.p("t.h5"),
            "--landmarks",
            "500",
            "--out",
            &out,
        ],
    );
    refuse(
        &i,
        true,
        "must hold integers (row offsets)",
        &["ph", "--input", &i.p("float_offsets.h5"), "--out", &out],
    );
}

/// Class 6: bad output paths are found before the work; a failed `train`
/// leaves no folder; a damaged checkpoint is refused on `--resume`;
/// negative numbers are named.
#[test]
fn weak_spots_are_closed() {
    let i = Inputs::new();
    let t = i.p("t.h5");
    refuse(
        &i,
        true,
        "is a folder; an output must name a file",
        &["ph", "--input", &t, "--out", &i.p("images")],
    );
    let long = i.p(&format!("{}.h5", "x".repeat(248)));
    refuse(
        &i,
        true,
        "the file name is too long",
        &["ph", "--input", &t, "--out", &long],
    );
    refuse(
        &i,
        true,
        "cannot be made a folder",
        &["ph", "--input", &t, "--out", &i.p("t.h5/sub/p.h5")],
    );
    refuse(
        &i,
        false,
        "cannot be made a folder",
        &["data", "synth", "--out", &i.p("t.npy/x.h5")],
    );
    refuse(
        &i,
        true,
        "is a file; --out names the folder",
        &["train", "--threads", "1", "--out", &t],
    );
    // A failure inside training (the test file is not there) leaves no
    // folder behind.
    refuse(
        &i,
        true,
        "absent.h5",
        &[
            "train",
            "--steps",
            "2",
            "--threads",
            "1",
            "--set",
            &format!("train.data={:?}", i.p("absent.h5")),
            "--out",
            &i.p("run/a/b"),
        ],
    );
    // A .npy header whose shape overflows: named as a damaged header.
    let mut npy = std::fs::read(i.path("t.npy")).unwrap();
    let text = String::from_utf8_lossy(&npy[10..]).replace("(4, 2)", "(9223372036854775807, 4)");
    npy.truncate(10);
    npy.extend(text.as_bytes());
    std::fs::write(i.path("overflow.npy"), npy).unwrap();
    refuse(
        &i,
        false,
        "has more values than any file can hold: a damaged header",
        &["ph", "--input", &i.p("overflow.npy"), "--out", &i.p("x.h5")],
    );
    refuse(
        &i,
        false,
        "invalid value '-5' for '--n <N>'",
        &["data", "synth", "--n", "-5", "--out", &i.p("x.h5")],
    );

    // Damaged checkpoints: NaN weights, a step beyond train.steps, a data
    // position other than the step, a log of another length.
    let run = i.path("run");
    let r = s(&run);
    let args = [
        "train",
        "--steps",
        "4",
        "--threads",
        "1",
        "--set",
        "synth.n=300",
        "--out",
        &r,
    ];
    ok(&tglml(&args));
    let ck = run.join("checkpoint.h5");
    let pristine = std::fs::read(&ck).unwrap();
    let resume = [
        "train",
        "--steps",
        "6",
        "--threads",
        "1",
        "--set",
        "synth.n=300",
        "--resume",
        "--out",
        &r,
    ];
    let damage = |f: &dyn Fn(&hdf5::File)| {
        std::fs::write(&ck, &pristine).unwrap();
        let h = hdf5::File::open_rw(&ck).unwrap();
        f(&h);
    };
    let cases: Vec<(&str, Damage)> = vec![
        (
            "holds values that are not finite",
            (|h: &hdf5::File| {
                let g = h.group("model").unwrap();
                let name = g.member_names().unwrap()[0].clone();
                let ds = g.dataset(&name).unwrap();
                let mut v: Vec<f32> = ds.read_raw().unwrap();
                v[0] = f32::NAN;
                let shape = ds.shape();
                ds.write_raw(&v).unwrap();
                assert_eq!(ds.shape(), shape);
            }),
        ),
        (
            "beyond train.steps = 6",
            (|h: &hdf5::File| h.attr("step").unwrap().write_scalar(&1000u64).unwrap()),
        ),
        (
            "its training log has 2 rows for 4 steps",
            (|h: &hdf5::File| {
                h.unlink("log/step").unwrap();
                h.group("log")
                    .unwrap()
                    .new_dataset_builder()
                    .with_data(&ndarray::array![0.0f64, 1.0])
                    .create("step")
                    .unwrap();
            }),
        ),
        (
            "its data position (99) is not its step (4)",
            (|h: &hdf5::File| {
                h.attr("data_position")
                    .unwrap()
                    .write_scalar(&99u64)
                    .unwrap()
            }),
        ),
    ];
    for (want, f) in &cases {
        damage(f);
        let before = snapshot(i.dir.path());
        let t0 = Instant::now();
        let o = tglml(&resume);
        assert_refused(want, &o, t0.elapsed(), want, &before, i.dir.path());
    }
}

/// Class 6: a Ctrl-C (SIGINT) or SIGTERM while `data pack` writes removes
/// its temporary file and the folders it made, and exits 130 / 143.
#[test]
fn a_signal_leaves_no_temporary_file() {
    let i = Inputs::new();
    let images = Path::new("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
    if !images.exists() {
        panic!(
            "{} is missing: run `bash scripts/setup.sh`",
            images.display()
        );
    }
    for (sig, status) in [("INT", 130), ("TERM", 143)] {
        let before = snapshot(i.dir.path());
        let child = Command::new(bin())
            .args(["data", "pack", &s(images), "--out", &i.p("new/fm.h5")])
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the temporary file exists, then signal.
        let t0 = Instant::now();
        let new = i.path("new");
        while t0.elapsed() < Duration::from_secs(20)
            && !entries(&new).iter().any(|e| e.contains(".tmp-"))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            entries(&new).iter().any(|e| e.contains(".tmp-")),
            "the temporary file never appeared: {:?}",
            entries(&new)
        );
        let k = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(k.success());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(status), "{}", stderr(&o));
        assert_eq!(
            snapshot(i.dir.path()),
            before,
            "SIG{sig} left something behind"
        );
    }
}
