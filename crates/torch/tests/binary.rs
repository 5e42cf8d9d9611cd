//! The tglml-torch binary itself: it runs, links libtorch, and reports it.
//! (Its presence here also makes `cargo test` build it, which the tests of
//! the root crate need: `tglml train` hands over to it.)

#[test]
fn tglml_torch_runs_and_reports_libtorch() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tglml-torch"))
        .args(["info", "--threads", "1"])
        .env("HDF5_USE_FILE_LOCKING", "FALSE")
        .output()
        .expect("tglml-torch runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("libtorch: CUDA available: "), "{text}");
    assert!(text.contains("rank 0: local rank 0, 1 threads, "), "{text}");
}
