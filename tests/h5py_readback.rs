//! Issue 2: an independent read-back of `tglml data synth` files with h5py
//! (tests/python/check_synth.py), for every kind, from a run under mpirun.

mod common;

use common::*;

fn check(kind: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{kind}.h5"));
    let mut args = vec!["data", "synth", "--kind", kind, "--out", path_str(&out)];
    args.extend_from_slice(extra);
    ok(&mpirun(2, &args));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/check_synth.py");
    let o = python_cmd()
        .args([script, path_str(&out), kind])
        .output()
        .expect("python runs");
    ok(&o);
    assert!(
        stdout(&o).starts_with(&format!("ok {kind}:")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn h5py_reads_torus() {
    check("torus", &[]);
}

#[test]
fn h5py_reads_noisy_torus() {
    check("torus", &["--noise", "0.05", "--n", "4000"]);
}

#[test]
fn h5py_reads_circles() {
    check("circles", &["--n", "1500"]);
}

#[test]
fn h5py_reads_swiss_roll() {
    check("swiss-roll", &[]);
}

#[test]
fn h5py_reads_sphere() {
    check("sphere", &["--set", "synth.sphere.dim=5"]);
}

#[test]
fn h5py_reads_spheres() {
    check("spheres", &[]);
}
