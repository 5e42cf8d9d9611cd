//! The PNG plots of `tglml report` ([`crate::io::plot`]): each measure
//! against each swept numeric key (one line per setting of the other keys,
//! error bars of one sample standard deviation over the seeds), the
//! robustness curves, and per setting (its first evaluation) the diagrams
//! of data and samples, the latent scatter, the samples and the
//! interpolation paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::report::{mean_std, Evaluation, Group, MEASURES};
use crate::error::Result;
use crate::io::plot::{self, value_range, Axes, Series};

/// A picture of the report: its file (in the report's folder) and caption.
pub struct Figure {
    pub file: String,
    pub caption: String,
    /// The section of report.md it goes to.
    pub section: &'static str,
}

/// The 2-D float64 dataset `name` of the file at `path`, if it has one.
fn array(path: &Path, name: &str) -> Option<Array2<f64>> {
    let f = hdf5::File::open(path).ok()?;
    f.dataset(name).ok()?.read_2d::<f64>().ok()
}

fn number(path: &Path, group: &str, attr: &str) -> Option<f64> {
    let f = hdf5::File::open(path).ok()?;
    f.group(group)
        .ok()?
        .attr(attr)
        .ok()?
        .read_scalar::<f64>()
        .ok()
}

fn text(path: &Path, group: &str, attr: &str) -> Option<String> {
    let f = hdf5::File::open(path).ok()?;
    let g = f.group(group).ok()?;
    crate::io::attr_string(path, &g, "", attr).ok()
}

/// A file name part of a setting's name.
fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').chars().take(80).collect()
}

/// The (height, width) of an evaluation's image rows, if its rows are
/// images.
fn image_shape(e: &Path) -> Option<(usize, usize)> {
    let h = number(e, "preview", "image_height")? as usize;
    let w = number(e, "preview", "image_width")? as usize;
    Some((h, w))
}

/// The rows of a preview as a grid (images) or a scatter over `over`.
fn rows_png(
    e: &Path,
    rows: &Array2<f64>,
    over: Option<&Array2<f64>>,
    cols: usize,
    label: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    if let Some((h, _)) = image_shape(e).filter(|(h, w)| h == w && h * w == rows.ncols()) {
        let range = over.map_or_else(|| value_range(rows), value_range);
        return plot::image_grid_png(rows, h, cols, range, title, path);
    }
    let mut sets = Vec::new();
    if let Some(o) = over {
        sets.extend(plot::by_label(o, None, &|_| "reference".into()));
    }
    sets.extend(plot::by_label(rows, None, &|_| label.into()));
    plot::coordinates_png(path, title, "data units", &sets)
}

/// Every figure of the report into `out`; returns them in order.
pub fn draw(out: &Path, groups: &[Group], naming: &[String]) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let mut add = |file: String, caption: String, section: &'static str| {
        figs.push(Figure {
            file,
            caption,
            section,
        })
    };
    let at = |f: &str| -> PathBuf { out.join(f) };
    // 1. Each measure against each numeric naming key, a line per value of
    // the other naming keys.
    for key in naming {
        let numeric = groups.iter().all(|g| {
            g.setting
                .and_then(|s| s.get(key))
                .is_some_and(|v| v.parse::<f64>().is_ok())
        });
        if !numeric || groups.len() < 2 {
            continue;
        }
        for (col, _, _, head) in MEASURES {
            let mut lines: BTreeMap<String, Vec<(f64, f64, f64)>> = BTreeMap::new();
            for g in groups {
                let Some(s) = g.setting else { continue };
                let v = g.values(col);
                if v.is_empty() {
                    continue;
                }
                let (m, sd) = mean_std(&v);
                let x: f64 = s[key].parse().expect("checked: numeric");
                let others: Vec<String> = naming
                    .iter()
                    .filter(|k| *k != key)
                    .map(|k| format!("{k} = {}", s.get(k).map_or("(unset)", |v| v.as_str())))
                    .collect();
                let name = if others.is_empty() {
                    "runs".to_string()
                } else {
                    others.join(", ")
                };
                lines.entry(name).or_default().push((x, m, sd));
            }
            if lines.values().all(|p| p.len() < 2) {
                continue;
            }
            let series: Vec<Series> = lines
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series { name, points }
                })
                .collect();
            let file = format!("{}_vs_{}.png", slug(col), slug(key));
            let title = format!("{head} against {key}");
            let y = format!("{head} (mean ± std over seeds)");
            plot::lines_png(
                &at(&file),
                &Axes {
                    title: &title,
                    x: key,
                    y: &y,
                },
                &series,
            )?;
            add(file, format!("{head} against {key} (error bars: one sample standard deviation over the seeds)"), "Measures against the swept settings");
        }
    }
    // 2. Robustness curves: a line per setting.
    for name in ["fgsm", "pgd", "noise", "blur", "rotation", "contrast"] {
        for (j, what, file_part) in [
            (1usize, "reconstruction RMSE (data units)", "rmse"),
            (3, "latent displacement / codes' RMS spread", "latent"),
        ] {
            let mut series = Vec::new();
            let mut unit = String::new();
            for g in groups {
                let curves: Vec<Array2<f64>> = g
                    .evals
                    .iter()
                    .filter_map(|e| array(&e.file, &format!("robustness/{name}/curve")))
                    .collect();
                if curves.is_empty() {
                    continue;
                }
                if unit.is_empty() {
                    unit = text(&g.evals[0].file, &format!("robustness/{name}"), "unit")
                        .unwrap_or_default();
                }
                let n = curves.iter().map(|c| c.nrows()).min().unwrap_or(0);
                let points = (0..n)
                    .map(|i| {
                        let v: Vec<f64> = curves.iter().map(|c| c[[i, j]]).collect();
                        let (m, sd) = mean_std(&v);
                        (curves[0][[i, 0]], m, sd)
                    })
                    .collect();
                series.push(Series {
                    name: g.name.clone(),
                    points,
                });
            }
            if series.is_empty() {
                continue;
            }
            let file = format!("robustness_{name}_{file_part}.png");
            let title = format!("{name}: {what}");
            plot::lines_png(
                &at(&file),
                &Axes {
                    title: &title,
                    x: &unit,
                    y: what,
                },
                &series,
            )?;
            add(file, format!("Robustness to {name}: {what} against its severity ({unit}); mean ± std over seeds"), "Robustness");
        }
    }
    // 3. Per setting, its first evaluation's pictures.
    for g in groups {
        let e: &Evaluation = g.evals[0];
        let tag = slug(&g.name);
        let seed = e
            .seed
            .as_deref()
            .map_or(String::new(), |s| format!(", train.seed = {s}"));
        for k in 0..3 {
            let (Some(a), Some(b)) = (
                array(&e.file, &format!("topology/h{k}/reference")),
                array(&e.file, &format!("topology/h{k}/samples")),
            ) else {
                continue;
            };
            let bars = |x: &Array2<f64>| -> Vec<(f64, f64)> {
                (0..x.nrows()).map(|i| (x[[i, 0]], x[[i, 1]])).collect()
            };
            let (ba, bb) = (bars(&a), bars(&b));
            let file = format!("diagram_{tag}_h{k}.png");
            let title = format!("H{k}: {}{seed}", g.name);
            plot::diagram_png(
                &at(&file),
                &title,
                "data units",
                &[("reference", &ba), ("generated", &bb)],
            )?;
            add(
                file,
                format!(
                    "H{k} Rips diagrams of the reference and the generated landmarks: {}{seed}",
                    g.name
                ),
                "Persistence diagrams",
            );
        }
        if let Some(z) = array(&e.file, "embedding/z") {
            let labels: Option<Vec<i64>> = array(&e.file, "embedding/labels")
                .map(|l| l.column(0).iter().map(|&v| v as i64).collect());
            let file = format!("latent_{tag}.png");
            let title = format!("codes of {} test rows: {}{seed}", z.nrows(), g.name);
            plot::scatter_png(&z, labels.as_deref(), &title, &at(&file))?;
            add(
                file,
                format!(
                    "Latent codes of the test split (first two coordinates{}): {}{seed}",
                    if labels.is_some() {
                        ", coloured by class"
                    } else {
                        ""
                    },
                    g.name
                ),
                "Latent spaces",
            );
        }
        if let Some(x) = array(&e.file, "preview/samples") {
            let over = array(&e.file, "preview/reference");
            let file = format!("samples_{tag}.png");
            let title = format!("generated: {}{seed}", g.name);
            rows_png(
                &e.file,
                &x,
                over.as_ref(),
                8,
                "generated",
                &title,
                &at(&file),
            )?;
            add(
                file,
                format!("Generated samples: {}{seed}", g.name),
                "Samples",
            );
        }
        if let Some(x) = array(&e.file, "interpolation/strip") {
            let k = number(&e.file, "interpolation", "points").unwrap_or(1.0) as usize;
            let over = array(&e.file, "preview/reference");
            let file = format!("paths_{tag}.png");
            let title = format!(
                "{} paths of {k} points: {}{seed}",
                x.nrows() / k.max(1),
                g.name
            );
            rows_png(
                &e.file,
                &x,
                over.as_ref(),
                k.max(1),
                "decoded path points",
                &title,
                &at(&file),
            )?;
            add(
                file,
                format!(
                    "Interpolation paths, decoded (a row per path for images): {}{seed}",
                    g.name
                ),
                "Interpolation",
            );
        }
    }
    Ok(figs)
}
