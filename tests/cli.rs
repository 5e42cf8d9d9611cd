//! The `tglml` binary as a user meets it: help, dry runs, and bad input
//! (issue 2, acceptance 3), alone and under mpirun.

mod common;

use common::*;
use std::path::Path;

#[test]
fn help_explains_every_command() {
    for args in [
        &["--help"][..],
        &["data", "--help"],
        &["data", "synth", "--help"],
        &["info", "--help"],
    ] {
        let o = tglml(args);
        ok(&o);
        let text = stdout(&o);
        assert!(text.contains("Usage: tglml"), "{args:?}: {text}");
    }
    let text = stdout(&tglml(&["data", "synth", "--help"]));
    for needle in [
        "--config",
        "--set",
        "--dry-run",
        "--kind",
        "--out",
        "swiss-roll",
        "Moor et al. 2020",
    ] {
        assert!(
            text.contains(needle),
            "synth --help lacks {needle}:\n{text}"
        );
    }
    let o = tglml(&["--version"]);
    ok(&o);
    assert!(stdout(&o).starts_with("tglml 0."), "{}", stdout(&o));
}

#[test]
fn dry_run_prints_the_effective_config_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[synth]\nkind = \"sphere\"\nn = 10\n[synth.sphere]\ndim = 3\n",
    )
    .unwrap();
    let out = dir.path().join("sub/x.h5");
    let o = tglml(&[
        "data",
        "synth",
        "--config",
        path_str(&cfg),
        "--set",
        "synth.n=77",
        "--noise",
        "0.5",
        "--dry-run",
        "--out",
        path_str(&out),
    ]);
    ok(&o);
    let printed = stdout(&o);
    let table: toml::Table = toml::from_str(&printed).expect("dry run prints TOML");
    let synth = table["synth"].as_table().unwrap();
    assert_eq!(synth["kind"].as_str(), Some("sphere"));
    assert_eq!(synth["n"].as_integer(), Some(77));
    assert_eq!(synth["noise"].as_float(), Some(0.5));
    assert_eq!(synth["sphere"]["dim"].as_integer(), Some(3));
    assert!(printed.contains(&format!("# output: {}", out.display())));
    assert_eq!(
        entries(dir.path()),
        vec!["c.toml"],
        "a dry run creates nothing"
    );
}

/// One bad-input case: the arguments, and what the single message must say.
struct Case {
    name: &'static str,
    args: Vec<String>,
    expect: Vec<String>,
}

fn bad_input_cases(dir: &std::path::Path) -> Vec<Case> {
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "# my run\n[synth]\nkind = \"torus\"\nnoize = 0.1\n").unwrap();
    let wrong_type = dir.join("wrong.toml");
    std::fs::write(&wrong_type, "[synth]\nn = \"lots\"\n").unwrap();
    let out = dir.join("out/x.h5");
    let out = out.to_str().unwrap().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let typo = typo.to_str().unwrap().to_string();
    let wrong = wrong_type.to_str().unwrap().to_string();
    vec![
        Case {
            name: "unknown key in a config file",
            args: s(&["data", "synth", "--config", &typo, "--out", &out]),
            expect: vec![
                format!("{typo}:4: unknown key `synth.noize`"),
                "noise".into(),
            ],
        },
        Case {
            name: "missing config file",
            args: s(&[
                "data",
                "synth",
                "--config",
                "/nonexistent/run.toml",
                "--out",
                &out,
            ]),
            expect: s(&[
                "/nonexistent/run.toml: reading the config file",
                "No such file",
            ]),
        },
        Case {
            name: "unparsable value in a config file",
            args: s(&["data", "synth", "--config", &wrong, "--out", &out]),
            expect: vec![format!("{wrong}:2: key `synth.n`: invalid type")],
        },
        Case {
            name: "unparsable --set value",
            args: s(&["data", "synth", "--set", "synth.noise=loud", "--out", &out]),
            expect: s(&["--set synth.noise=loud: key `synth.noise`: invalid type"]),
        },
        Case {
            name: "unknown --set key",
            args: s(&[
                "data",
                "synth",
                "--set",
                "synth.sphere.radus=2",
                "--out",
                &out,
            ]),
            expect: s(&[
                "--set synth.sphere.radus=2: unknown key `synth.sphere.radus`",
                "radius",
            ]),
        },
        Case {
            name: "out-of-range value",
            args: s(&["data", "synth", "--n", "0", "--out", &out]),
            expect: s(&["--n 0: key `synth.n`: must be at least 1"]),
        },
        Case {
            name: "unparsable flag",
            args: s(&["data", "synth", "--n", "many", "--out", &out]),
            expect: s(&["invalid value 'many' for '--n <N>'"]),
        },
    ]
}

fn check_bad_input(np: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    for case in bad_input_cases(dir.path()) {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let o = match np {
            None => tglml(&args),
            Some(np) => mpirun(np, &args),
        };
        let err = stderr(&o);
        assert!(
            !o.status.success(),
            "{} (np {np:?}) should fail:\n{err}",
            case.name
        );
        for e in &case.expect {
            assert!(
                err.contains(e.as_str()),
                "{} (np {np:?}): expected `{e}` in:\n{err}",
                case.name
            );
        }
        let ours = error_lines(&err);
        assert_eq!(
            ours, 1,
            "{} (np {np:?}): the error is printed once, got:\n{err}",
            case.name
        );
        assert!(
            !dir.path().join("out").exists(),
            "{} (np {np:?}): no output folder or file",
            case.name
        );
    }
}

#[test]
fn bad_input_fails_once_with_a_clear_message() {
    check_bad_input(None);
}

#[test]
fn bad_input_under_mpirun_fails_once_with_a_clear_message() {
    check_bad_input(Some(2));
}

#[test]
fn unwritable_output_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The output path is an existing, non-empty folder.
    let out = dir.path().join("taken");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), b"").unwrap();
    let o = mpirun(2, &["data", "synth", "--n", "100", "--out", path_str(&out)]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        // Found before any work by the output check (issue 12), not when
        // the finished file is renamed.
        err.contains(&format!(
            "{}: is a folder; an output must name a file",
            out.display()
        )),
        "{err}"
    );
    assert_eq!(error_lines(&err), 1, "{err}");
    assert_eq!(entries(dir.path()), vec!["taken"], "no temporary file left");
    assert_eq!(entries(&out), vec!["keep"]);
}

#[test]
fn synth_writes_its_file_and_shows_progress() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results/torus.h5");
    let o = tglml(&["data", "synth", "--out", path_str(&out)]);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("synth torus: 2000/2000 points (100%)"),
        "progress line: {err}"
    );
    assert!(
        err.contains(&format!(
            "wrote {}: 2000 points in R^3 (torus)",
            out.display()
        )),
        "{err}"
    );
    assert_eq!(entries(out.parent().unwrap()), vec!["torus.h5"]);
}

#[test]
fn info_reports_ranks_and_threads() {
    let o = mpirun(2, &["info", "--threads", "1"]);
    ok(&o);
    let text = stdout(&o);
    assert!(text.contains("MPI: 2 rank(s); "), "{text}");
    // Alone, no launcher: one rank without MPI's start-up (issue 13);
    // TGLML_MPI=always initialises it all the same.
    let alone = tglml(&["info", "--threads", "1"]);
    ok(&alone);
    assert!(
        stdout(&alone).contains("MPI: 1 rank(s) (no launcher: MPI not initialised); "),
        "{}",
        stdout(&alone)
    );
    let forced = std::process::Command::new(bin())
        .args(["info", "--threads", "1"])
        .env("TGLML_MPI", "always")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    ok(&forced);
    assert!(
        stdout(&forced).contains("MPI: 1 rank(s); "),
        "{}",
        stdout(&forced)
    );
    assert!(text.contains("rank 1: local rank 1, 1 threads"), "{text}");
    assert!(
        text.contains("CUDA available: false"),
        "CI has no GPU: {text}"
    );
}

/// `tglml` links no libtorch (issue 13: a start without its 0.5 s and
/// 120 MiB); the commands that need it run in tglml-torch beside it, and
/// without tglml-torch they say what is missing while every other command
/// works.
#[test]
fn libtorch_commands_run_in_tglml_torch() {
    let needed = |path: &Path| -> String {
        let o = std::process::Command::new("ldd")
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let libs = needed(Path::new(bin()));
    assert!(
        !libs.contains("libtorch") && !libs.contains("libc10"),
        "tglml links libtorch:\n{libs}"
    );
    let torch = Path::new(bin()).with_file_name("tglml-torch");
    assert!(
        needed(&torch).contains("libtorch_cpu"),
        "{}",
        torch.display()
    );

    // A tglml with no tglml-torch beside it.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("tglml");
    std::fs::copy(bin(), &lone).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&lone)
            .args(args)
            .env("HDF5_USE_FILE_LOCKING", "FALSE")
            .output()
            .unwrap()
    };
    let info = run(&["info", "--threads", "1"]);
    ok(&info);
    let expected = format!(
        "tglml-torch (the half of TGLML that links libtorch) is not at {}",
        dir.path().join("tglml-torch").display()
    );
    assert!(
        stdout(&info).contains(&format!("libtorch: not available: {expected}")),
        "{}",
        stdout(&info)
    );
    let out = dir.path().join("run");
    let train = run(&["train", "--steps", "1", "--out", out.to_str().unwrap()]);
    assert_eq!(train.status.code(), Some(1), "{}", stderr(&train));
    assert!(
        stderr(&train).contains(&expected) && stderr(&train).contains("cargo build --release"),
        "{}",
        stderr(&train)
    );
    assert!(!out.exists(), "nothing written");
    ok(&run(&["train", "--dry-run"]));
    let synth = dir.path().join("s.h5");
    ok(&run(&[
        "data",
        "synth",
        "--n",
        "50",
        "--out",
        synth.to_str().unwrap(),
    ]));
}
