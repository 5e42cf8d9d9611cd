//! `tglml data pack`: sources (meshes, structures, IDX, .npy/CSV, image
//! folders) into one HDF5 file: a collection of point clouds or a sample
//! matrix (docs/hdf5.md). Rank 0 converts and writes; other ranks wait for
//! the outcome.

use std::path::{Path, PathBuf};

use ndarray::{s, Array1, Array2};

use super::Setup;
use crate::cli::PackArgs;
use crate::config::{AtomsName, PackConfig};
use crate::data::{idx, images, matrix, mesh, protein};
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::io::collection::write_collection;
use crate::io::{H5Writer, Stamp};
use crate::progress::Progress;

/// What a source file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mesh,
    Structure,
    Idx,
    Matrix,
    Images,
}

fn kind_of_file(path: &Path) -> Option<Kind> {
    if matrix::row_source(path) == Some(matrix::RowSource::Idx) {
        return Some(Kind::Idx);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "off" | "obj" | "ply" => Some(Kind::Mesh),
        "pdb" | "ent" | "cif" | "mmcif" => Some(Kind::Structure),
        "npy" | "csv" | "txt" | "tsv" => Some(Kind::Matrix),
        _ => None,
    }
}

/// The files of a source, with their kind: a file as it is; a folder of
/// images (and nothing else we read) as one image source; any other folder
/// searched recursively, in sorted order. `rel` names objects relative to
/// the source.
fn expand(source: &Path) -> Result<Vec<(PathBuf, String, Kind)>> {
    let meta = std::fs::metadata(source).map_err(|e| Error::io(source, "reading", e))?;
    if meta.is_file() {
        let kind = kind_of_file(source).ok_or_else(|| {
            Error::invalid(
                source.display().to_string(),
                "unknown format: expected a mesh (.off, .obj, .ply), a structure (.pdb, .ent, \
                 .cif, .mmcif), an IDX file (*-ubyte, *-ubyte.gz), a .npy/.csv matrix, or a \
                 folder of images",
            )
        })?;
        let stem = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(source.to_path_buf(), stem, kind)]);
    }
    let mut files = Vec::new();
    walk(source, &mut files)?;
    files.sort();
    // Folders give meshes and structures; matrix files (IDX, .npy, CSV,
    // text) inside a folder are left alone: name them as sources. A
    // folder with none of those but images is an image source (CelebA's
    // folder may hold .txt attribute lists beside the images).
    let known: Vec<(PathBuf, Kind)> = files
        .iter()
        .filter_map(|f| kind_of_file(f).map(|k| (f.clone(), k)))
        .filter(|(_, k)| matches!(k, Kind::Mesh | Kind::Structure))
        .collect();
    if known.is_empty() && images::list_images(source).is_ok() {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.display().to_string());
        return Ok(vec![(source.to_path_buf(), name, Kind::Images)]);
    }
    if known.is_empty() {
        return Err(Error::invalid(
            source.display().to_string(),
            "the folder holds no meshes (.off, .obj, .ply), structures (.pdb, .ent, .cif, \
             .mmcif) or images (.png, .jpg, .jpeg); name matrix files (IDX, .npy, CSV) \
             directly",
        ));
    }
    Ok(known
        .into_iter()
        .map(|(f, k)| {
            let rel = f
                .strip_prefix(source)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            (f, rel, k)
        })
        .collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "listing", e))?;
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, "listing", e))?;
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

pub fn run(comm: &Comm, setup: &Setup, args: &PackArgs) -> Result<()> {
    let outcome = if comm.is_root() {
        pack(setup, args).map(Some)
    } else {
        Ok(None)
    };
    if let Some(summary) = comm.agree(outcome)? {
        eprintln!("{summary}");
    }
    Ok(())
}

fn pack(setup: &Setup, args: &PackArgs) -> Result<String> {
    let cfg = &setup.config.pack;
    let mut sources = Vec::new();
    for s in &args.sources {
        sources.extend(expand(s)?);
    }
    let collection = sources
        .iter()
        .filter(|s| matches!(s.2, Kind::Mesh | Kind::Structure))
        .count();
    if collection > 0 && collection < sources.len() {
        let other = sources
            .iter()
            .find(|s| !matches!(s.2, Kind::Mesh | Kind::Structure))
            .expect("a matrix source");
        return Err(Error::invalid(
            other.0.display().to_string(),
            "cannot pack a matrix source (IDX, .npy, CSV, images) with meshes or structures in \
             one file: pack them separately",
        ));
    }
    let stamp = Stamp {
        command: setup.command.to_string(),
        config_toml: setup.config.to_toml(),
        n_ranks: 1,
        threads_per_rank: setup.threads,
    };
    if collection > 0 {
        if args.labels.is_some() {
            return Err(Error::invalid(
                "--labels",
                "labels go with a matrix source, not with meshes or structures",
            ));
        }
        if cfg.flatten_models {
            return pack_models(cfg, &sources, &args.out, &stamp);
        }
        pack_collection(cfg, &sources, &args.out, &stamp)
    } else {
        if sources.len() != 1 {
            return Err(Error::invalid(
                "sources",
                format!(
                    "a sample matrix is made from one source, got {}: {}",
                    sources.len(),
                    sources
                        .iter()
                        .map(|s| s.0.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        pack_matrix(cfg, &sources[0], args.labels.as_deref(), &args.out, &stamp)
    }
}

fn atom_selection(cfg: &PackConfig) -> protein::AtomSelection {
    match cfg.atoms {
        AtomsName::Ca => protein::AtomSelection::CAlpha,
        AtomsName::Heavy => protein::AtomSelection::Heavy,
    }
}

fn pack_collection(
    cfg: &PackConfig,
    sources: &[(PathBuf, String, Kind)],
    out: &Path,
    stamp: &Stamp,
) -> Result<String> {
    let bar = Progress::new(true, "pack", sources.len() as u64, "files").quiet_if_fast();
    let mut objects: Vec<(String, Array2<f64>)> = Vec::new();
    let (mut meshes, mut structures) = (0usize, 0usize);
    let meshes_in = sources.iter().filter(|s| s.2 == Kind::Mesh).count() as u64;
    crate::guard::need(
        &format!("{} points from each of {meshes_in} meshes", cfg.mesh_points),
        crate::guard::Size::array(&[meshes_in, cfg.mesh_points as u64, 3], 8).times(2),
        "pack.mesh_points (--mesh-points)",
    )?;
    for (path, name, kind) in sources {
        match kind {
            Kind::Mesh => {
                let m = mesh::read_mesh(path)?;
                let seed = cfg.seed.wrapping_add(objects.len() as u64);
                let pts = mesh::sample_surface(&m, cfg.mesh_points, seed).map_err(|e| {
                    Error::invalid(path.display().to_string(), format!("sampling: {e}"))
                })?;
                objects.push((name.clone(), pts));
                meshes += 1;
            }
            Kind::Structure => {
                let st = protein::read_structure(path)?;
                let clouds = protein::clouds(&st, atom_selection(cfg), cfg.per_chain);
                if clouds.is_empty() {
                    return Err(Error::invalid(
                        path.display().to_string(),
                        format!(
                            "no atoms selected by pack.atoms = \"{}\"",
                            match cfg.atoms {
                                AtomsName::Ca => "ca",
                                AtomsName::Heavy => "heavy",
                            }
                        ),
                    ));
                }
                for (sub, pts) in clouds {
                    objects.push((format!("{name}/{sub}"), pts));
                }
                structures += 1;
            }
            _ => unreachable!("checked by the caller"),
        }
        bar.inc(1);
    }
    bar.finish();
    let w = H5Writer::create(out, stamp)?;
    write_collection(&w, &objects)?;
    let path = w.commit()?;
    let points: usize = objects.iter().map(|o| o.1.nrows()).sum();
    Ok(format!(
        "wrote {}: a collection of {} objects ({points} points) from {meshes} meshes and {structures} structures",
        path.display(),
        objects.len()
    ))
}

/// Structures as a sample matrix: every model (an NMR ensemble's
/// conformations) one row of its selected atoms' coordinates, flattened in
/// file order (x1, y1, z1, x2, …); all models must select the same number
/// of atoms. `/y` holds the model numbers, `/names` FILE/model<N>.
fn pack_models(
    cfg: &PackConfig,
    sources: &[(PathBuf, String, Kind)],
    out: &Path,
    stamp: &Stamp,
) -> Result<String> {
    let sel = atom_selection(cfg);
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut names = Vec::new();
    let mut numbers = Vec::new();
    for (path, name, kind) in sources {
        if *kind != Kind::Structure {
            return Err(Error::invalid(
                path.display().to_string(),
                "pack.flatten_models takes protein structures only",
            ));
        }
        let st = protein::read_structure(path)?;
        for (sub, pts) in protein::clouds(&st, sel, false) {
            if let Some(first) = rows.first() {
                if first.len() != pts.len() {
                    return Err(Error::invalid(
                        format!("{}: {sub}", path.display()),
                        format!(
                            "selects {} atoms, the first model ({}) {}: flattened models need equal atom counts",
                            pts.nrows(),
                            names[0],
                            first.len() / 3
                        ),
                    ));
                }
            }
            numbers.push(sub.trim_start_matches("model").parse::<i64>().unwrap_or(-1));
            names.push(format!("{name}/{sub}"));
            rows.push(pts.iter().copied().collect());
        }
    }
    if rows.is_empty() {
        return Err(Error::invalid("sources", "no models with selected atoms"));
    }
    let d = rows[0].len();
    let x = Array2::from_shape_vec((rows.len(), d), rows.concat())
        .map_err(|e| Error::external("pack", e))?;
    let w = H5Writer::create(out, stamp)?;
    w.dataset_chunked("/x", &x, 1024)?;
    w.dataset("/y", &Array1::from_vec(numbers))?;
    w.strings("/names", &names)?;
    w.attr_str("/", "kind", "matrix")?;
    w.attr_u64("/", "n", x.nrows() as u64)?;
    w.attr_u64("/", "dim", x.ncols() as u64)?;
    let out = w.commit()?;
    Ok(format!(
        "wrote {}: a sample matrix of {} × {} (one row per model)",
        out.display(),
        x.nrows(),
        x.ncols()
    ))
}

fn pack_matrix(
    cfg: &PackConfig,
    source: &(PathBuf, String, Kind),
    labels: Option<&Path>,
    out: &Path,
    stamp: &Stamp,
) -> Result<String> {
    let (path, _, kind) = source;
    let limit = |n: usize| if cfg.limit == 0 { n } else { cfg.limit.min(n) };
    let mut names: Option<Vec<String>> = None;
    let x = match kind {
        Kind::Idx => {
            let h = idx::read_idx_header(path)?;
            let scale = if h.dtype == idx::IdxType::U8 {
                1.0 / 255.0
            } else {
                1.0
            };
            idx::read_idx_rows(path, 0, limit(h.samples()), scale)?
        }
        Kind::Matrix => {
            let m = matrix::read_matrix(path, None)?;
            let n = limit(m.nrows());
            m.slice(s![..n, ..]).to_owned()
        }
        Kind::Images => {
            let files = images::list_images(path)?;
            let channels = if cfg.grayscale { 1 } else { 3 };
            crate::guard::need(
                &format!(
                    "{} images of {} × {} pixels",
                    limit(files.len()),
                    cfg.image_width,
                    cfg.image_height
                ),
                crate::guard::Size::array(
                    &[
                        limit(files.len()) as u64,
                        u64::from(cfg.image_width),
                        u64::from(cfg.image_height),
                        channels,
                    ],
                    8,
                )
                .times(2),
                "pack.image_width and pack.image_height, or --limit",
            )?;
            let spec = images::ImageSpec {
                size: (cfg.image_width, cfg.image_height),
                crop: match cfg.image_crop.as_slice() {
                    [] => images::Crop::None,
                    [_] => images::Crop::Center,
                    [left, top, width, height] => images::Crop::Box {
                        left: *left,
                        top: *top,
                        width: *width,
                        height: *height,
                    },
                    _ => unreachable!("validated with the configuration"),
                },
                grayscale: cfg.grayscale,
            };
            let (x, n) = images::read_image_folder(path, &spec, 0..limit(files.len()))?;
            names = Some(n);
            x
        }
        _ => unreachable!("checked by the caller"),
    };
    let y = match labels {
        Some(l) => {
            let y = idx::read_idx_labels(l)?;
            if y.len() < x.nrows() {
                return Err(Error::invalid(
                    l.display().to_string(),
                    format!("{} labels for {} samples", y.len(), x.nrows()),
                ));
            }
            Some(Array1::from_vec(y[..x.nrows()].to_vec()))
        }
        None => None,
    };
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            path.display().to_string(),
            format!("sample {i}, value {j}: values must be finite, got {v}"),
        ));
    }
    let w = H5Writer::create(out, stamp)?;
    w.dataset_chunked("/x", &x, 1024)?;
    if let Some(y) = &y {
        w.dataset("/y", y)?;
    }
    if let Some(n) = &names {
        w.strings("/names", n)?;
    }
    w.attr_str("/", "kind", "matrix")?;
    w.attr_str("/", "source", &path.display().to_string())?;
    w.attr_u64("/", "n", x.nrows() as u64)?;
    w.attr_u64("/", "dim", x.ncols() as u64)?;
    let out = w.commit()?;
    Ok(format!(
        "wrote {}: a sample matrix of {} × {}{}",
        out.display(),
        x.nrows(),
        x.ncols(),
        if y.is_some() { " with labels" } else { "" }
    ))
}
