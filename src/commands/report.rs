//! `tglml report`: every `tglml eval` file below some folders, grouped by
//! the setting of the run it evaluated, as Markdown and CSV tables of the
//! mean and sample standard deviation over seeds.
//!
//! A setting is the run's configuration (the eval file's `/run` attribute
//! `config`) without `train.seed`; the keys in which the settings differ
//! name them. An evaluation without a run (two files compared) is its own
//! setting, named by its sets.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::Setup;
use crate::cli::ReportArgs;
use crate::dist::Comm;
use crate::error::{Error, Result};

/// The files `tglml report` writes into `out`.
pub fn files(out: &Path) -> Vec<PathBuf> {
    ["report.md", "metrics.csv", "summary.csv"]
        .iter()
        .map(|f| out.join(f))
        .collect()
}

/// Which way a measure improves, for the comparisons with a baseline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Better {
    Lower,
    Higher,
}

/// The direction of each measure of [`MEASURES`] (density, whose ideal is
/// 1, has none).
fn better(col: &str) -> Option<Better> {
    use Better::*;
    Some(match col {
        "is" | "precision" | "recall" | "coverage" | "topo_acc_h1" | "trustworthiness"
        | "continuity" => Higher,
        "density" => return None,
        _ => Lower,
    })
}

/// The 0.975 quantile of Student's t with 1..=30 degrees of freedom.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Welch's t of mean `a` against mean `b` (values of each), its degrees
/// of freedom (Welch–Satterthwaite), and whether |t| exceeds the two-sided
/// 5% critical value (degrees of freedom rounded down, at least 1; 1.96
/// beyond 30). Equal means of constant sets: t = 0; different ones: ±∞.
pub(super) fn welch(a: &[f64], b: &[f64]) -> (f64, f64, bool) {
    let (ma, sa) = mean_std(a);
    let (mb, sb) = mean_std(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (sa * sa / na, sb * sb / nb);
    let se = (va + vb).sqrt();
    if se == 0.0 {
        let t = if ma == mb {
            0.0
        } else {
            (ma - mb).signum() * f64::INFINITY
        };
        return (t, f64::INFINITY, ma != mb);
    }
    let t = (ma - mb) / se;
    let df = (va + vb).powi(2) / (va * va / (na - 1.0).max(1.0) + vb * vb / (nb - 1.0).max(1.0));
    let crit = if df >= 31.0 {
        1.96
    } else {
        T975[(df.floor() as usize).clamp(1, 30) - 1]
    };
    (t, df, t.abs() > crit)
}

/// The measures a report shows, as (column, HDF5 group, attribute, heading).
pub(super) const MEASURES: [(&str, &str, &str, &str); 32] = [
    ("fid", "features", "fid", "FID"),
    ("is", "features", "is_mean", "IS"),
    ("precision", "features", "precision", "precision"),
    ("recall", "features", "recall", "recall"),
    ("density", "features", "density", "density"),
    ("coverage", "features", "coverage", "coverage"),
    ("w_h0", "topology/h0", "wasserstein", "W_p H0"),
    ("w_h1", "topology/h1", "wasserstein", "W_p H1"),
    (
        "bottleneck_h0",
        "topology/h0",
        "bottleneck",
        "bottleneck H0",
    ),
    (
        "bottleneck_h1",
        "topology/h1",
        "bottleneck",
        "bottleneck H1",
    ),
    ("betti_h0", "topology/h0", "betti_distance", "Betti H0"),
    ("betti_h1", "topology/h1", "betti_distance", "Betti H1"),
    (
        "topo_acc_h1",
        "topology/h1",
        "topological_accuracy",
        "top. acc. H1",
    ),
    ("cubical_tv_b0", "cubical", "tv_b0", "cubical TV β0"),
    ("cubical_tv_b1", "cubical", "tv_b1", "cubical TV β1"),
    ("trustworthiness", "embedding", "trustworthiness", "trust."),
    ("continuity", "embedding", "continuity", "cont."),
    ("mrre_zx", "embedding", "mrre_zx", "MRRE Z→X"),
    ("stress", "embedding", "stress", "stress"),
    ("kl_0.1", "embedding", "kl_0.1", "KL_0.1"),
    (
        "path_curvature",
        "interpolation",
        "curvature",
        "path curvature",
    ),
    ("path_step_cv", "interpolation", "step_cv", "step CV"),
    ("path_realism", "interpolation", "realism", "path realism"),
    (
        "path_betti_changes",
        "interpolation",
        "betti_changes",
        "Betti changes / path",
    ),
    ("rmse_clean", "robustness/pgd", "rmse_clean", "RMSE clean"),
    (
        "fgsm_rise",
        "robustness/fgsm",
        "rmse_increase_at_max",
        "FGSM rise",
    ),
    (
        "pgd_rise",
        "robustness/pgd",
        "rmse_increase_at_max",
        "PGD rise",
    ),
    (
        "pgd_latent",
        "robustness/pgd",
        "displacement_rel_at_max",
        "PGD latent shift",
    ),
    (
        "noise_rise",
        "robustness/noise",
        "rmse_increase_at_max",
        "noise rise",
    ),
    (
        "blur_rise",
        "robustness/blur",
        "rmse_increase_at_max",
        "blur rise",
    ),
    (
        "rotation_rise",
        "robustness/rotation",
        "rmse_increase_at_max",
        "rotation rise",
    ),
    (
        "contrast_rise",
        "robustness/contrast",
        "rmse_increase_at_max",
        "contrast rise",
    ),
];

/// The tables' sections: (title, columns of [`MEASURES`]).
const SECTIONS: [(&str, &[&str]); 5] = [
    (
        "Samples (features)",
        &["fid", "is", "precision", "recall", "density", "coverage"],
    ),
    (
        "Topology of the samples",
        &[
            "w_h0",
            "w_h1",
            "bottleneck_h0",
            "bottleneck_h1",
            "betti_h0",
            "betti_h1",
            "topo_acc_h1",
            "cubical_tv_b0",
            "cubical_tv_b1",
        ],
    ),
    (
        "Latent space (test split against its codes)",
        &[
            "trustworthiness",
            "continuity",
            "mrre_zx",
            "stress",
            "kl_0.1",
        ],
    ),
    (
        "Interpolation (decoded paths: curvature and step CV of the path, realism = distance to the nearest real point over real data's own, cubical Betti changes)",
        &[
            "path_curvature",
            "path_step_cv",
            "path_realism",
            "path_betti_changes",
        ],
    ),
    (
        "Robustness (reconstruction RMSE of the clean test rows, data units, and its rise at the largest severity of each grid; PGD latent shift over the codes' spread)",
        &[
            "rmse_clean",
            "fgsm_rise",
            "pgd_rise",
            "pgd_latent",
            "noise_rise",
            "blur_rise",
            "rotation_rise",
            "contrast_rise",
        ],
    ),
];

/// One evaluation file.
pub(super) struct Evaluation {
    pub(super) file: PathBuf,
    /// The run's flattened configuration, `train.seed` left out (`None`
    /// without a run).
    setting: Option<BTreeMap<String, String>>,
    pub(super) seed: Option<String>,
    /// Without a run: its sets.
    sets: String,
    pub(super) values: BTreeMap<&'static str, f64>,
}

fn str_attr(path: &Path, loc: &hdf5::Location, name: &str) -> Option<String> {
    crate::io::attr_string(path, loc, "", name).ok()
}

/// Flattens a TOML table into `section.key` → value text.
fn flatten(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(sub) => flatten(&key, sub, out),
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Reads `path` if it is an eval file (`None` if it is another HDF5 file).
fn read(path: &Path) -> Result<Option<Evaluation>> {
    let Ok(f) = hdf5::File::open(path) else {
        return Ok(None);
    };
    if str_attr(path, &f, "command").as_deref() != Some("eval") {
        return Ok(None);
    }
    let (setting, seed) = match f
        .group("run")
        .ok()
        .and_then(|g| str_attr(path, &g, "config"))
    {
        Some(text) => {
            let t: toml::Table = text.parse().map_err(|e| {
                Error::invalid(
                    format!("{}:/run attribute config", path.display()),
                    format!("is not a TOML configuration: {e}"),
                )
            })?;
            let mut flat = BTreeMap::new();
            flatten("", &t, &mut flat);
            let seed = flat.remove("train.seed");
            (Some(flat), seed)
        }
        None => (None, None),
    };
    let sets = f
        .group("sets")
        .ok()
        .map(|g| {
            format!(
                "{} vs {}",
                str_attr(path, &g, "samples").unwrap_or_default(),
                str_attr(path, &g, "reference").unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut values = BTreeMap::new();
    for (col, group, attr, _) in MEASURES {
        if let Some(v) = f
            .group(group)
            .ok()
            .and_then(|g| g.attr(attr).ok())
            .and_then(|a| a.read_scalar::<f64>().ok())
        {
            values.insert(col, v);
        }
    }
    Ok(Some(Evaluation {
        file: path.to_path_buf(),
        setting,
        seed,
        sets,
        values,
    }))
}

/// Every `.h5` file below `dir`, sorted.
fn h5_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "reading the folder", e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            h5_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "h5") {
            out.push(p);
        }
    }
    Ok(())
}

/// Mean and sample standard deviation (ddof 1; 0 for one value).
pub(super) fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, var.sqrt())
}

/// A CSV field (quoted when it holds a comma, a quote or a line break).
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A setting's group: its name, its configuration (none for files
/// compared without a run), its evaluations.
pub(super) struct Group<'a> {
    pub(super) name: String,
    pub(super) setting: Option<&'a BTreeMap<String, String>>,
    pub(super) evals: Vec<&'a Evaluation>,
}

impl Group<'_> {
    /// The values of measure `col` over its evaluations (those that have it).
    pub(super) fn values(&self, col: &str) -> Vec<f64> {
        self.evals
            .iter()
            .filter_map(|e| e.values.get(col).copied())
            .collect()
    }
}

/// Groups the evaluations by setting (the whole configuration but the
/// seed), each named by the fewest keys that tell the settings apart:
/// `model.kind` first, then the other keys in which settings differ, in
/// name order, each taken only if it separates settings that the keys
/// before it did not.
fn group(evals: &[Evaluation]) -> (Vec<Group<'_>>, Vec<String>) {
    let mut settings: Vec<&BTreeMap<String, String>> = Vec::new();
    for s in evals.iter().filter_map(|e| e.setting.as_ref()) {
        if !settings.contains(&s) {
            settings.push(s);
        }
    }
    let mut keys: BTreeSet<&String> = BTreeSet::new();
    for s in &settings {
        keys.extend(s.keys());
    }
    let mut candidates: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            let first = settings[0].get(*k);
            settings.iter().any(|s| s.get(*k) != first)
        })
        .collect();
    candidates.sort_by_key(|k| (k.as_str() != "model.kind", k.as_str()));
    let value = |s: &BTreeMap<String, String>, k: &str| {
        s.get(k).cloned().unwrap_or_else(|| "(unset)".to_string())
    };
    let distinct = |ks: &[&String]| {
        settings
            .iter()
            .map(|s| ks.iter().map(|k| value(s, k)).collect::<Vec<_>>())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let mut naming: Vec<&String> = Vec::new();
    for k in candidates {
        if distinct(&naming) == settings.len() {
            break;
        }
        let mut more = naming.clone();
        more.push(k);
        if distinct(&more) > distinct(&naming) {
            naming = more;
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    for e in evals {
        let name = match &e.setting {
            Some(_) if naming.is_empty() => "all runs".to_string(),
            Some(s) => naming
                .iter()
                .map(|k| format!("{k} = {}", value(s, k)))
                .collect::<Vec<_>>()
                .join(", "),
            None => format!("files: {}", e.sets),
        };
        let found = groups
            .iter_mut()
            .find(|g| g.setting == e.setting.as_ref() && g.name == name);
        match found {
            Some(g) => g.evals.push(e),
            None => groups.push(Group {
                name,
                setting: e.setting.as_ref(),
                evals: vec![e],
            }),
        }
    }
    (groups, naming.into_iter().cloned().collect())
}

/// One measure of one setting against its baseline.
struct Comparison {
    setting: String,
    column: &'static str,
    heading: &'static str,
    /// Mean, std, n.
    base: (f64, f64, usize),
    this: (f64, f64, usize),
    t: f64,
    df: f64,
    verdict: &'static str,
}

/// Whether two configuration values are the same (numbers by value: "0"
/// and "0.0").
fn same_value(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim_matches('"') == b.trim_matches('"'),
    }
}

/// Every setting against its baseline (`KEY=VALUE`): the one whose
/// configuration differs from it only in KEY, which is VALUE there.
fn compare(groups: &[Group], spec: &str) -> Result<(String, String, Vec<Comparison>)> {
    let Some((key, value)) = spec.split_once('=') else {
        return Err(Error::invalid(
            format!("--baseline {spec}"),
            "must be KEY=VALUE, e.g. train.topo.gamma=0",
        ));
    };
    let (key, value) = (key.trim(), value.trim());
    let is_base = |g: &Group| {
        g.setting
            .and_then(|s| s.get(key))
            .is_some_and(|v| same_value(v, value))
    };
    if !groups.iter().any(is_base) {
        return Err(Error::invalid(
            format!("--baseline {spec}"),
            format!("no setting has {key} = {value}"),
        ));
    }
    let mut rows = Vec::new();
    for g in groups.iter().filter(|g| !is_base(g)) {
        let Some(s) = g.setting else { continue };
        let base = groups.iter().find(|b| {
            is_base(b)
                && b.setting.is_some_and(|bs| {
                    let keys: BTreeSet<&String> = bs.keys().chain(s.keys()).collect();
                    keys.into_iter().all(|k| k == key || bs.get(k) == s.get(k))
                })
        });
        let Some(base) = base else { continue };
        for (col, _, _, heading) in MEASURES {
            let (a, b) = (g.values(col), base.values(col));
            if a.is_empty() || b.is_empty() {
                continue;
            }
            let (t, df, significant) = welch(&a, &b);
            let verdict = match (better(col), significant) {
                (None, _) => "no direction",
                (Some(_), false) => "inconclusive",
                (Some(Better::Lower), true) if t < 0.0 => "better",
                (Some(Better::Higher), true) if t > 0.0 => "better",
                (Some(_), true) => "worse",
            };
            let stats = |v: &[f64]| {
                let (m, sd) = mean_std(v);
                (m, sd, v.len())
            };
            rows.push(Comparison {
                setting: g.name.clone(),
                column: col,
                heading,
                base: stats(&b),
                this: stats(&a),
                t,
                df,
                verdict,
            });
        }
    }
    Ok((key.to_string(), value.to_string(), rows))
}

/// Runs `tglml report` (rank 0 reads and writes).
pub fn run(comm: &Comm, _setup: &Setup, a: &ReportArgs) -> Result<()> {
    super::on_root(comm, || report(a))
}

fn report(a: &ReportArgs) -> Result<String> {
    let mut paths = Vec::new();
    for d in &a.dirs {
        if !d.is_dir() {
            return Err(Error::invalid(
                d.display().to_string(),
                "is not a folder; give the folders that hold the runs and their evaluations",
            ));
        }
        h5_files(d, &mut paths)?;
    }
    let mut evals = Vec::new();
    for p in &paths {
        if let Some(e) = read(p)? {
            evals.push(e);
        }
    }
    if evals.is_empty() {
        let dirs: Vec<String> = a.dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::invalid(
            "report",
            format!(
                "no `tglml eval` file (an .h5 whose root attribute command is \"eval\") under {} ({} .h5 files searched): run `tglml eval --checkpoint RUN --out RUN/eval.h5` on the runs first",
                dirs.join(", "),
                paths.len()
            ),
        ));
    }
    let (groups, naming) = group(&evals);
    let cols: Vec<&str> = MEASURES.iter().map(|m| m.0).collect();
    // metrics.csv: one row per evaluation.
    let mut m = format!("file,setting,seed,{}\n", cols.join(","));
    for g in &groups {
        for e in &g.evals {
            let vals: Vec<String> = cols
                .iter()
                .map(|c| e.values.get(c).map_or(String::new(), |v| format!("{v}")))
                .collect();
            m += &format!(
                "{},{},{},{}\n",
                csv(&e.file.display().to_string()),
                csv(&g.name),
                e.seed.as_deref().unwrap_or(""),
                vals.join(",")
            );
        }
    }
    // summary.csv: per setting, mean and std of each measure.
    let mut s = "setting,n".to_string();
    for c in &cols {
        s += &format!(",{c}_mean,{c}_std");
    }
    s.push('\n');
    let stats = |g: &Group, c: &str| -> Option<(f64, f64, usize)> {
        let v = g.values(c);
        (!v.is_empty()).then(|| {
            let (mu, sd) = mean_std(&v);
            (mu, sd, v.len())
        })
    };
    for g in &groups {
        s += &format!("{},{}", csv(&g.name), g.evals.len());
        for c in &cols {
            match stats(g, c) {
                Some((mu, sd, _)) => s += &format!(",{mu},{sd}"),
                None => s += ",,",
            }
        }
        s.push('\n');
    }
    // report.md.
    let dirs: Vec<String> = a.dirs.iter().map(|d| d.display().to_string()).collect();
    let mut md = format!(
        "# TGLML evaluation report\n\n{} evaluations in {} settings, from {} (`tglml report`). Each cell: mean ± sample standard deviation (ddof 1) over the seeds of a setting, with their number n; – where the measure was not computed. Columns and units: docs/hdf5.md (\"Evaluation\").\n",
        evals.len(),
        groups.len(),
        dirs.join(", ")
    );
    for (title, section) in SECTIONS {
        let shown: Vec<&&str> = section
            .iter()
            .filter(|c| groups.iter().any(|g| stats(g, c).is_some()))
            .collect();
        if shown.is_empty() {
            continue;
        }
        md += &format!("\n## {title}\n\n| setting | n |");
        for c in &shown {
            let head = MEASURES.iter().find(|m| m.0 == **c).expect("a measure").3;
            md += &format!(" {head} |");
        }
        md += "\n| --- | --- |";
        md += &" --- |".repeat(shown.len());
        md.push('\n');
        for g in &groups {
            md += &format!("| {} | {} |", g.name.replace('|', "\\|"), g.evals.len());
            for c in &shown {
                match stats(g, c) {
                    Some((mu, sd, n)) if n > 1 => md += &format!(" {mu:.4} ± {sd:.4} |"),
                    Some((mu, _, _)) => md += &format!(" {mu:.4} |"),
                    None => md += " – |",
                }
            }
            md.push('\n');
        }
    }
    let comparisons = match &a.baseline {
        Some(b) => Some(compare(&groups, b)?),
        None => None,
    };
    if let Some((key, value, rows)) = &comparisons {
        md += &format!(
            "\n## Against {key} = {value}\n\nEach setting against the one that differs from it only in {key} = {value}: the means over seeds (± sample std), their difference, Welch's t and a verdict at the two-sided 5% level (Student's t with the Welch–Satterthwaite degrees of freedom): **better** or **worse** in the measure's direction (lower is better, but for IS, precision, recall, coverage, topological accuracy, trustworthiness and continuity; density has none), else inconclusive. With 3 seeds only large effects pass.\n\n| setting | measure | baseline | setting | difference | t | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n"
        );
        for c in rows {
            md += &format!(
                "| {} | {} | {:.4} ± {:.4} | {:.4} ± {:.4} | {:+.4} | {:.2} | {} |\n",
                c.setting.replace('|', "\\|"),
                c.heading,
                c.base.0,
                c.base.1,
                c.this.0,
                c.this.1,
                c.this.0 - c.base.0,
                c.t,
                c.verdict
            );
        }
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| Error::io(&a.out, "creating the report's folder", e))?;
    let figs = super::figures::draw(&a.out, &groups, &naming)?;
    let mut section = "";
    if !figs.is_empty() {
        md += "\n# Plots\n";
    }
    for f in &figs {
        if f.section != section {
            section = f.section;
            md += &format!("\n## {section}\n\n");
        }
        md += &format!("![{}]({})\n\n*{}*\n\n", f.file, f.file, f.caption);
    }
    md += "\n## Evaluations\n\n";
    for g in &groups {
        for e in &g.evals {
            md += &format!(
                "- {} — {}{}\n",
                e.file.display(),
                g.name,
                e.seed
                    .as_ref()
                    .map_or(String::new(), |s| format!(", train.seed = {s}"))
            );
        }
    }
    let out = files(&a.out);
    // Every file is complete before the first is written; each is written
    // atomically.
    crate::io::output::write_text(&out[1], &m)?;
    crate::io::output::write_text(&out[2], &s)?;
    crate::io::output::write_text(&out[0], &md)?;
    if let Some((_, _, rows)) = &comparisons {
        let mut c = "setting,measure,baseline_mean,baseline_std,baseline_n,mean,std,n,difference,welch_t,df,verdict\n".to_string();
        for r in rows {
            c += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{}\n",
                csv(&r.setting),
                r.column,
                r.base.0,
                r.base.1,
                r.base.2,
                r.this.0,
                r.this.1,
                r.this.2,
                r.this.0 - r.base.0,
                r.t,
                r.df,
                r.verdict
            );
        }
        crate::io::output::write_text(&a.out.join("comparisons.csv"), &c)?;
    }
    Ok(format!(
        "report: {} evaluations in {} settings; wrote {}, {}, {} and {} plots",
        evals.len(),
        groups.len(),
        out[0].display(),
        out[1].display(),
        out[2].display(),
        figs.len()
    ))
}
