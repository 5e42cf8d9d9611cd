//! Issue 2, acceptance 2: `tglml data synth` writes the same file alone and
//! under `mpirun -np 1, 2, 4` (compared with h5dump, an independent reader;
//! only the attributes naming the rank and thread counts may differ).

mod common;

use common::*;

fn check_identical(name: &str, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let alone = dir.path().join(format!("{name}-alone.h5"));
    let mut all_args: Vec<&str> = vec!["data", "synth"];
    all_args.extend_from_slice(args);
    let run = |np: Option<usize>, out: &std::path::Path| {
        let mut a = all_args.clone();
        a.extend(["--out", path_str(out)]);
        let o = match np {
            None => tglml(&a),
            Some(np) => mpirun(np, &a),
        };
        ok(&o);
    };
    run(None, &alone);
    let reference = h5dump_comparable(&alone);
    assert!(reference.contains("DATASET \"x\""), "{name}: no /x");
    for np in [1usize, 2, 4] {
        let out = dir.path().join(format!("{name}-np{np}.h5"));
        run(Some(np), &out);
        let dump = h5dump_comparable(&out);
        assert!(
            dump == reference,
            "{name}: the file written by {np} ranks differs from the one-process file"
        );
        let full = h5dump(&out);
        assert!(
            full.contains(&format!("ATTRIBUTE \"n_ranks\" {{\n      DATATYPE  H5T_STD_U64LE\n      DATASPACE  SCALAR\n      DATA {{\n      (0): {np}\n")),
            "{name}: n_ranks attribute should be {np}"
        );
    }
}

#[test]
fn torus_is_identical_for_1_2_4_ranks() {
    // 5,000 points = 5 blocks: uneven shares for 2 and 4 ranks.
    check_identical(
        "torus",
        &[
            "--kind", "torus", "--n", "5000", "--noise", "0.05", "--seed", "3",
        ],
    );
}

#[test]
fn circles_are_identical_for_1_2_4_ranks() {
    check_identical(
        "circles",
        &["--kind", "circles", "--n", "3000", "--seed", "11"],
    );
}

#[test]
fn swiss_roll_is_identical_for_1_2_4_ranks() {
    check_identical("swiss", &["--kind", "swiss-roll", "--n", "2500"]);
}

#[test]
fn spheres_are_identical_for_1_2_4_ranks() {
    check_identical("spheres", &["--kind", "spheres"]);
}

#[test]
fn small_set_with_fewer_blocks_than_ranks() {
    // One block, four ranks: three ranks contribute nothing.
    check_identical("tiny", &["--kind", "sphere", "--n", "7"]);
}
