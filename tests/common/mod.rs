//! Helpers for the integration tests: run the built binary, alone or under
//! mpirun, and read HDF5 files with independent tools (h5dump, h5py).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `tglml` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tglml")
}

/// The environment of every process a test starts. HDF5 file locking is
/// off: HDF5 opens files without close-on-exec, so a child forked by one test
/// inherits, and holds past its parent's close, the lock of a file another
/// test was writing at that moment; that test's next open then fails with
/// "unable to lock file" (seen once in CI).
fn base_env(cmd: &mut Command) -> &mut Command {
    cmd.env("HDF5_USE_FILE_LOCKING", "FALSE")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("TGLML_PROGRESS", "plain")
}

/// Runs `tglml ARGS` as one process, without mpirun.
pub fn tglml(args: &[&str]) -> Output {
    base_env(&mut Command::new(bin()))
        .args(args)
        .output()
        .expect("the tglml binary runs")
}

/// Runs `mpirun -np NP tglml ARGS` (oversubscribed: CI has 2 cores).
pub fn mpirun(np: usize, args: &[&str]) -> Output {
    let (mut cmd, _session) = mpirun_cmd(np, args);
    cmd.output()
        .expect("mpirun runs (scripts/setup.sh installs openmpi-bin)")
}

/// The command `mpirun -np NP tglml ARGS`, to spawn, and its session folder
/// (keep it until the command ends).
pub fn mpirun_cmd(np: usize, args: &[&str]) -> (Command, tempfile::TempDir) {
    // Each launch gets its own session folder: OpenMPI 4.1 launches started at
    // the same moment (tests run in parallel) otherwise race to create
    // /tmp/ompi.HOST.UID and one of them fails.
    let session = tempfile::tempdir().expect("a temporary folder");
    let mut cmd = Command::new("mpirun");
    base_env(&mut cmd)
        .env("OMPI_MCA_orte_tmpdir_base", session.path())
        .args([
            "-np",
            &np.to_string(),
            "--oversubscribe",
            "--bind-to",
            "none",
            bin(),
        ])
        .args(args);
    (cmd, session)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success, showing the output otherwise.
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// `h5dump` of a whole file (an independent reader: the HDF5 tools).
pub fn h5dump(path: &Path) -> String {
    let o = base_env(&mut Command::new("h5dump"))
        .arg(path)
        .output()
        .expect("h5dump runs (hdf5-tools)");
    ok(&o);
    stdout(&o)
}

/// `h5dump` text without the file name line and without the attributes that
/// name the rank count and threads, which legitimately differ between runs.
pub fn h5dump_comparable(path: &Path) -> String {
    let text = h5dump(path);
    let mut out = Vec::new();
    let mut skip_until: Option<String> = None;
    for line in text.lines().skip(1) {
        if let Some(end) = &skip_until {
            if line == end {
                skip_until = None;
            }
            continue;
        }
        let t = line.trim_start();
        if t.starts_with("ATTRIBUTE \"n_ranks\"") || t.starts_with("ATTRIBUTE \"threads_per_rank\"")
        {
            let indent = &line[..line.len() - t.len()];
            skip_until = Some(format!("{indent}}}"));
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

/// The Python of the environment scripts/setup.sh creates (h5py, numpy).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TGLML_PYTHON") {
        return PathBuf::from(p);
    }
    panic!("TGLML_PYTHON is not set: run `bash scripts/setup.sh` (it records the path in .cargo/config.toml) or `make test`");
}

/// A command running that Python, with the tests' environment.
pub fn python_cmd() -> Command {
    let mut cmd = Command::new(python());
    base_env(&mut cmd);
    cmd
}

/// Lists a folder's entries (to check that failures leave nothing behind).
pub fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// The unpacked Debian test data of scripts/fetch-data.sh
/// (`$TGLML_CACHE/debian-data`, default ~/.cache/tglml/debian-data);
/// panics with the command to run when it is missing.
pub fn debian_data() -> PathBuf {
    let cache = std::env::var_os("TGLML_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("tglml")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tglml")))
        .expect("neither TGLML_CACHE nor HOME is set");
    let dir = cache.join("debian-data");
    assert!(
        dir.join(".complete").exists(),
        "{} is missing: run `bash scripts/fetch-data.sh` (scripts/setup.sh and `make test` do)",
        dir.display()
    );
    dir
}

/// Debian's Fashion-MNIST (dataset-fashion-mnist, installed by
/// scripts/setup.sh).
pub fn fashion_mnist(file: &str) -> PathBuf {
    let p = PathBuf::from("/usr/share/datasets/fashion-mnist").join(file);
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/setup.sh` (it installs dataset-fashion-mnist)",
        p.display()
    );
    p
}

/// The number of `error:` lines in a failed run's stderr, after checking
/// that no rank died in MPI (a failure must end every rank cleanly, not
/// through MPI_ERRORS_ARE_FATAL or MPI_Abort).
pub fn error_lines(err: &str) -> usize {
    assert!(
        !err.contains("MPI_ERR")
            && !err.contains("MPI_ABORT")
            && !err.contains("An error occurred in MPI"),
        "a rank died in MPI instead of stopping cleanly:\n{err}"
    );
    err.lines().filter(|l| l.contains("error:")).count()
}

/// The largest relative difference of the datasets of group `group` of two
/// HDF5 files (h5py), and whether they are bit-identical.
pub fn compare_group(a: &Path, b: &Path, group: &str) -> (f64, bool) {
    let code = format!(
        "import h5py, numpy as np\n\
         a = h5py.File({:?}, 'r')[{group:?}]; b = h5py.File({:?}, 'r')[{group:?}]\n\
         assert sorted(a) == sorted(b), (sorted(a), sorted(b))\n\
         worst = 0.0; same = True\n\
         for k in a:\n\
         \x20   x = a[k][()].astype(np.float64); y = b[k][()].astype(np.float64)\n\
         \x20   worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-300)))\n\
         \x20   same = same and a[k][()].tobytes() == b[k][()].tobytes()\n\
         print(repr(worst), same, len(a))\n",
        a.display().to_string(),
        b.display().to_string()
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let out = stdout(&o);
    let mut it = out.split_whitespace();
    let worst = it.next().unwrap().parse().unwrap();
    let same = it.next().unwrap() == "True";
    assert!(
        it.next().unwrap().parse::<usize>().unwrap() > 0,
        "{group} is empty"
    );
    (worst, same)
}
