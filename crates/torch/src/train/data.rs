//! The training data as the ranks hold it: each rank reads only its block of
//! the data's rows; the rows of each global batch are exchanged every step.
//!
//! The data's n rows are cut into chunks of K rows (K depends on n only);
//! rank r of p holds the chunks `shard_range(chunks, r, p)`, read from the
//! file as one block (HDF5 hyperslab or IDX byte range). A seeded
//! permutation of all n rows, the same on every rank, splits them: the
//! first n − n_test permuted rows are the training split (its positions
//! 0, 1, … are what batches draw), the rest the test split. Standardisation
//! uses the training split's mean and standard deviation, summed per chunk
//! and then over chunks in chunk order, so they are the same numbers for
//! every rank count. A global batch's rows are all-gathered from the ranks
//! that hold them (every rank needs all of them: the topological loss is
//! computed on the whole batch); the test split is gathered on rank 0 at the
//! end, for the evaluation.
//!
//! Synthetic data ([synth], `train.data = ""`) are generated in memory by
//! every rank (they are cheap to make), which then keeps only its block.

use std::ops::Range;
use std::path::Path;

use ndarray::{s, Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use tglml::config::{Config, Likelihood};
use tglml::dist::landmarks::shard_range;
use tglml::dist::Comm;
use tglml::error::{Error, Result};

/// The training split, held in blocks over the ranks.
pub struct TrainData {
    /// This rank's rows `block` of the data, standardised.
    rows: Array2<f64>,
    block: Range<usize>,
    /// The data row of each training-split position.
    train_rows: Vec<usize>,
    /// The data rows of the held-out test split, in test order (empty when
    /// `train.test_data` names a separate file).
    test_rows: Vec<usize>,
    /// The data rows of the validation split (train.validation_fraction),
    /// in validation order.
    validation_rows: Vec<usize>,
    /// Labels of all data rows (held-out test labels come from here).
    labels: Option<Vec<i64>>,
    /// Standardisation (mean, std), applied to the test split too.
    scale: Option<(Array1<f64>, Array1<f64>)>,
    dim: usize,
    n: usize,
}

/// The evaluation split, exactly as fed to the encoder.
pub struct TestSplit {
    pub x: Array2<f64>,
    pub labels: Option<Vec<i64>>,
}

/// Rows per chunk for n rows: at least 256, at most 1,024 chunks.
fn chunk_rows(n: usize) -> usize {
    256.max(n.div_ceil(1024))
}

/// This rank's block of rows: whole chunks, contiguous.
fn block_of(n: usize, rank: usize, size: usize) -> Range<usize> {
    let k = chunk_rows(n);
    let chunks = shard_range(n.div_ceil(k), rank, size);
    (chunks.start * k).min(n)..(chunks.end * k).min(n)
}

/// Reads (or generates) rows `block` of the configured data, and the total
/// row count, the dimension and the labels of all rows.
#[allow(clippy::type_complexity)]
fn read_block(
    cfg: &Config,
    comm: &Comm,
) -> Result<(Array2<f64>, Range<usize>, usize, Option<Vec<i64>>)> {
    let t = &cfg.train;
    let (rank, size) = (comm.rank(), comm.size());
    if t.data.is_empty() {
        tglml::data::synth::Plan::check_size(&cfg.synth)?;
        let plan = tglml::data::synth::Plan::new(&cfg.synth);
        let pts = plan.generate_all();
        let (n, d) = (plan.n(), plan.dim());
        let x = Array2::from_shape_vec((n, d), pts.x).map_err(|e| Error::external("synth", e))?;
        let block = block_of(n, rank, size);
        let y = (!pts.y.is_empty()).then_some(pts.y);
        return Ok((x.slice(s![block.clone(), ..]).to_owned(), block, n, y));
    }
    let path = Path::new(&t.data);
    let labels = read_labels(path, &t.labels, "train.labels")?;
    if tglml::data::matrix::row_source(path).is_some() {
        let (n, _) = tglml::data::matrix::row_count(path, "x")?;
        let block = block_of(n, rank, size);
        let x = tglml::data::matrix::read_rows(path, "x", block.clone())?;
        Ok((x, block, n, labels))
    } else {
        // Formats without row access (CSV, NPY): read whole, keep the block.
        let x = tglml::data::matrix::read_matrix(path, Some("x"))?;
        let n = x.nrows();
        let block = block_of(n, rank, size);
        Ok((x.slice(s![block.clone(), ..]).to_owned(), block, n, labels))
    }
}

/// Values per sample of a data file (without reading its rows where the
/// format allows).
fn test_columns(path: &Path) -> Result<usize> {
    if tglml::data::matrix::row_source(path).is_some() {
        Ok(tglml::data::matrix::row_count(path, "x")?.1)
    } else {
        Ok(tglml::data::matrix::read_matrix(path, Some("x"))?.ncols())
    }
}

/// The IDX label file beside an IDX image file, by Debian's (and the
/// original distribution's) naming: `…-images-idx3-ubyte[.gz]` →
/// `…-labels-idx1-ubyte[.gz]`, if it exists.
pub(crate) fn sibling_labels(path: &Path) -> Option<std::path::PathBuf> {
    let name = path.file_name()?.to_str()?;
    let at = name.find("-images-idx3-ubyte")?;
    let other = format!(
        "{}-labels-idx1-ubyte{}",
        &name[..at],
        &name[at + "-images-idx3-ubyte".len()..]
    );
    let p = path.with_file_name(other);
    p.exists().then_some(p)
}

/// The labels of the data file `path`: the file `explicit` names (an IDX
/// label file or an HDF5 file with `/y`; the config key `key`), else an
/// HDF5 file's own `/y`, else an IDX image file's sibling label file; `None`
/// when there are none.
pub(crate) fn read_labels(path: &Path, explicit: &str, key: &str) -> Result<Option<Vec<i64>>> {
    let hdf5_y = |p: &Path, required: bool| -> Result<Option<Vec<i64>>> {
        let f = hdf5::File::open(p).map_err(|e| Error::hdf5(p, "opening the file", e))?;
        if !f.link_exists("y") {
            return if required {
                Err(Error::invalid(
                    format!("{key} = {:?}", p.display().to_string()),
                    "has no dataset /y (labels)",
                ))
            } else {
                Ok(None)
            };
        }
        f.dataset("y")
            .and_then(|d| d.read_raw::<i64>())
            .map(Some)
            .map_err(|e| Error::hdf5(p, "dataset /y (labels, read as int64)", e))
    };
    use tglml::data::matrix::{row_source, RowSource};
    if !explicit.is_empty() {
        let p = Path::new(explicit);
        return match row_source(p) {
            Some(RowSource::Hdf5) => hdf5_y(p, true),
            Some(RowSource::Idx) => tglml::data::idx::read_idx_labels(p)
                .map(Some)
                .map_err(|e| e.context(key.to_string())),
            None => Err(Error::invalid(
                format!("{key} = {explicit:?}"),
                "expected an IDX label file (…-labels-idx1-ubyte[.gz]) or an HDF5 file with /y",
            )),
        };
    }
    match row_source(path) {
        Some(RowSource::Hdf5) => hdf5_y(path, false),
        Some(RowSource::Idx) => match sibling_labels(path) {
            Some(p) => tglml::data::idx::read_idx_labels(&p).map(Some),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

impl TrainData {
    /// Reads this rank's block, splits, and standardises (collective).
    pub fn load(comm: &Comm, cfg: &Config) -> Result<TrainData> {
        let t = &cfg.train;
        let (mut rows, block, n, labels) = comm.agree(read_block(cfg, comm))?;
        if let Some(y) = labels.as_ref().filter(|y| y.len() != n) {
            return Err(Error::invalid(
                "train.data",
                format!(
                    "{:?} has {n} rows but its labels ({}) have {}",
                    t.data,
                    if t.labels.is_empty() {
                        "found beside it"
                    } else {
                        t.labels.as_str()
                    },
                    y.len()
                ),
            ));
        }
        let bad = rows
            .indexed_iter()
            .find(|(_, v)| !v.is_finite())
            .map(|((i, j), v)| {
                Error::invalid(
                    "train.data",
                    format!(
                        "row {}, column {j}: values must be finite, got {v}",
                        block.start + i
                    ),
                )
            });
        comm.agree(bad.map_or(Ok(()), Err))?;
        let dims = comm.all_gather_u64(rows.ncols() as u64);
        let dim = dims.iter().copied().max().unwrap_or(0) as usize;
        // A separate test file is read at the end; check it fits now, not
        // after the training.
        let fits = if comm.is_root() && !t.test_data.is_empty() {
            test_columns(Path::new(&t.test_data)).and_then(|d| {
                if d == dim {
                    if cfg.model.kind == tglml::config::ModelKind::Classifier {
                        let path = Path::new(&t.test_data);
                        let rows = tglml::data::matrix::row_count(path, "x").map(|r| r.0);
                        let labels = read_labels(path, &t.test_labels, "train.test_labels")?;
                        let n = rows.unwrap_or(labels.as_ref().map_or(0, |y| y.len()));
                        check_labels(labels.as_deref(), cfg, &t.test_data, n)?;
                    }
                    Ok(())
                } else {
                    Err(Error::invalid(
                        format!("train.test_data = {:?}", t.test_data),
                        format!("has {d} values per sample, the training data {dim}"),
                    ))
                }
            })
        } else {
            Ok(())
        };
        comm.agree(fits)?;

        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(t.seed ^ 0x5EED_5EED);
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let separate = !t.test_data.is_empty();
        let n_test = if separate {
            0
        } else {
            ((n as f64) * t.test_fraction).round() as usize
        };
        let (tr, te) = order.split_at(n - n_test);
        let n_val = ((tr.len() as f64) * t.validation_fraction).round() as usize;
        let (tr, va) = tr.split_at(tr.len() - n_val);
        if t.validation_fraction > 0.0 && va.len() < 2 {
            return Err(Error::invalid(
                "train.validation_fraction",
                format!(
                    "= {} of {} training rows holds out {} rows; the validation needs at least 2",
                    t.validation_fraction,
                    tr.len() + va.len(),
                    va.len()
                ),
            ));
        }
        let g = t.batch_size * comm.size();
        if t.validation_fraction > 0.0 && t.monitor == tglml::config::Monitor::Loss && va.len() < g
        {
            return Err(Error::invalid(
                "train.monitor",
                format!(
                    "= \"loss\" takes the topological loss over full batches of the validation rows, but train.validation_fraction = {} holds out {} rows, no batch of {g} (train.batch_size × ranks); raise the fraction or watch another monitor",
                    t.validation_fraction,
                    va.len()
                ),
            ));
        }
        if tr.len() < t.batch_size {
            return Err(Error::invalid(
                "train.batch_size",
                format!(
                    "{} per rank, but the training split has {} rows",
                    t.batch_size,
                    tr.len()
                ),
            ));
        }
        let scale = if t.standardize {
            let mut is_train = vec![false; n];
            for &r in tr {
                is_train[r] = true;
            }
            let s = standardisation(comm, &rows, &block, &is_train, tr.len(), dim)?;
            for mut row in rows.rows_mut() {
                for ((v, m), sd) in row.iter_mut().zip(&s.0).zip(&s.1) {
                    *v = (*v - m) / sd;
                }
            }
            Some(s)
        } else if let [mean, std] = t.fixed_scale[..] {
            rows.mapv_inplace(|v| (v - mean) / std);
            Some((Array1::from_elem(dim, mean), Array1::from_elem(dim, std)))
        } else {
            None
        };
        // A Bernoulli likelihood is a cross-entropy against values in
        // [0, 1]; anything else trains on a meaningless loss.
        let outside = match cfg.model.vae.likelihood {
            Likelihood::Bernoulli => rows.indexed_iter().find(|(_, v)| !(0.0..=1.0).contains(*v)),
            Likelihood::Gaussian => None,
        };
        comm.agree(outside.map_or(Ok(()), |((i, j), v)| {
            Err(Error::invalid(
                "model.vae.likelihood = \"bernoulli\"",
                format!(
                    "needs data in [0, 1], but row {}, column {j} is {v}{}; use \"gaussian\", or data scaled to [0, 1]",
                    block.start + i,
                    if t.standardize {
                        " after standardisation (train.standardize = true; set it to false for data already in [0, 1])"
                    } else {
                        ""
                    }
                ),
            ))
        }))?;
        if cfg.model.kind == tglml::config::ModelKind::Classifier {
            check_labels(labels.as_deref(), cfg, &t.data, n)?;
        }
        Ok(TrainData {
            rows,
            block,
            train_rows: tr.to_vec(),
            test_rows: te.to_vec(),
            validation_rows: va.to_vec(),
            labels,
            scale,
            dim,
            n,
        })
    }

    /// Rows in the training split.
    pub fn n_train(&self) -> usize {
        self.train_rows.len()
    }

    /// The data row of training position `pos`.
    pub fn train_row(&self, pos: usize) -> usize {
        self.train_rows[pos]
    }

    /// The labels of the rows at training positions `positions`, in that
    /// order (`None`: the data have no labels). Every rank holds all labels.
    pub fn batch_labels(&self, positions: &[usize]) -> Option<Vec<i64>> {
        let y = self.labels.as_ref()?;
        Some(positions.iter().map(|&p| y[self.train_rows[p]]).collect())
    }

    /// Values per row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Rows this rank holds, and rows in all.
    pub fn held(&self) -> (usize, usize) {
        (self.block.len(), self.n)
    }

    /// The rows at training positions `positions`, in that order, on every
    /// rank (collective: the ranks that hold them send them).
    pub fn batch(&self, comm: &Comm, positions: &[usize]) -> Result<Array2<f64>> {
        let rows: Vec<usize> = positions.iter().map(|&p| self.train_rows[p]).collect();
        self.gather(comm, &rows, false)
            .map(|x| x.expect("all-gathered"))
    }

    /// Data rows `rows` (0-based rows of the data, in that order),
    /// standardised, on every rank (collective). A row past the data is
    /// refused, naming `key`.
    pub fn rows(&self, comm: &Comm, rows: &[usize], key: &str) -> Result<Array2<f64>> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.n) {
            return Err(Error::invalid(
                key,
                format!(
                    "row {r} is out of range: the data have {} rows (0..={})",
                    self.n,
                    self.n.saturating_sub(1)
                ),
            ));
        }
        self.gather(comm, rows, false)
            .map(|x| x.expect("all-gathered"))
    }

    /// The validation split's rows, standardised, on rank 0 (`None` on the
    /// others, and when there is no validation split). Collective.
    pub fn validation_split(&self, comm: &Comm) -> Result<Option<Array2<f64>>> {
        if self.validation_rows.is_empty() {
            return Ok(None);
        }
        self.gather(comm, &self.validation_rows, true)
    }

    /// The standardisation (mean, std per feature), if the run used one.
    pub fn scale(&self) -> Option<&(Array1<f64>, Array1<f64>)> {
        self.scale.as_ref()
    }

    /// The test split, standardised like the training split, on rank 0
    /// (`None` on the others). Collective.
    pub fn test_split(&self, comm: &Comm, cfg: &Config) -> Result<Option<TestSplit>> {
        let t = &cfg.train;
        if t.test_data.is_empty() {
            let x = self.gather(comm, &self.test_rows, true)?;
            return Ok(x.map(|x| TestSplit {
                x,
                labels: self
                    .labels
                    .as_ref()
                    .map(|y| self.test_rows.iter().map(|&r| y[r]).collect()),
            }));
        }
        let outcome = if comm.is_root() {
            let path = Path::new(&t.test_data);
            tglml::data::matrix::read_matrix(path, Some("x")).and_then(|mut x| {
                if let Some((mean, std)) = &self.scale {
                    x = (&x - mean) / std;
                }
                let labels = read_labels(path, &t.test_labels, "train.test_labels")?;
                if let Some(y) = labels.as_ref().filter(|y| y.len() != x.nrows()) {
                    return Err(Error::invalid(
                        "train.test_data",
                        format!(
                            "{:?} has {} rows but {} labels",
                            t.test_data,
                            x.nrows(),
                            y.len()
                        ),
                    ));
                }
                if cfg.model.kind == tglml::config::ModelKind::Classifier {
                    check_labels(labels.as_deref(), cfg, &t.test_data, x.nrows())?;
                }
                Ok(Some(TestSplit { x, labels }))
            })
        } else {
            Ok(None)
        };
        comm.agree(outcome)
    }

    /// Data rows `rows` (in that order) from the ranks that hold them: on
    /// every rank, or with `root_only` on rank 0 only.
    fn gather(&self, comm: &Comm, rows: &[usize], root_only: bool) -> Result<Option<Array2<f64>>> {
        let d = self.dim;
        if comm.size() == 1 {
            let idx: Vec<usize> = rows.iter().map(|&r| r - self.block.start).collect();
            return Ok(Some(self.rows.select(Axis(0), &idx)));
        }
        // (slot, values) of each wanted row this rank holds.
        let mut mine: Vec<f64> = Vec::new();
        for (slot, &r) in rows.iter().enumerate() {
            if self.block.contains(&r) {
                mine.push(slot as f64);
                mine.extend(self.rows.row(r - self.block.start).iter());
            }
        }
        let all = if root_only {
            comm.gather_concat(&mine)?
        } else {
            Some(comm.all_gather_varcount_f64(&mine)?)
        };
        let Some(all) = all else { return Ok(None) };
        let mut out = Array2::zeros((rows.len(), d));
        let mut seen = vec![false; rows.len()];
        for rec in all.chunks_exact(d + 1) {
            let slot = rec[0] as usize;
            out.row_mut(slot)
                .iter_mut()
                .zip(&rec[1..])
                .for_each(|(o, v)| *o = *v);
            seen[slot] = true;
        }
        if let Some(slot) = seen.iter().position(|s| !s) {
            return Err(Error::invalid(
                "training data",
                format!("row {} was held by no rank", rows[slot]),
            ));
        }
        Ok(Some(out))
    }
}

/// A classifier's labels: present, one per row, each in 0..classes.
/// `file` names the data ("" = the [synth] set).
pub(crate) fn check_labels(
    labels: Option<&[i64]>,
    cfg: &Config,
    file: &str,
    n: usize,
) -> Result<()> {
    let what = if file.is_empty() {
        format!(
            "the [synth] dataset (synth.kind = \"{}\")",
            cfg.synth.kind.name()
        )
    } else {
        file.to_string()
    };
    let classes = cfg.model.classifier.classes;
    let Some(y) = labels else {
        return Err(Error::invalid(
            "model.kind = \"classifier\"",
            format!("trains on labels, but {what} has none (an HDF5 sample matrix needs /y: `tglml data pack` writes it from IDX label files)"),
        ));
    };
    if y.len() != n {
        return Err(Error::invalid(
            what,
            format!("has {} labels for {n} rows", y.len()),
        ));
    }
    if let Some((i, v)) = y
        .iter()
        .enumerate()
        .find(|(_, &v)| !(0..classes as i64).contains(&v))
    {
        return Err(Error::invalid(
            what,
            format!("row {i} has label {v}, outside 0..{classes} (model.classifier.classes = {classes})"),
        ));
    }
    Ok(())
}

/// Mean and standard deviation (ddof 0; 0 → 1) of the training rows over
/// all ranks: sums per chunk, added in chunk order (the same for any rank
/// count). Collective.
fn standardisation(
    comm: &Comm,
    rows: &Array2<f64>,
    block: &Range<usize>,
    is_train: &[bool],
    n_train: usize,
    dim: usize,
) -> Result<(Array1<f64>, Array1<f64>)> {
    let k = chunk_rows(is_train.len());
    let chunks = is_train.len().div_ceil(k);
    // Σ f(row) over the training rows of every chunk, on every rank.
    let per_chunk = |f: &dyn Fn(usize, f64) -> f64| -> Result<Vec<f64>> {
        let mut local: Vec<f64> = Vec::new();
        let mut start = block.start;
        while start < block.end {
            let end = (start + k).min(block.end);
            let mut sum = vec![0.0; dim];
            for r in (start..end).filter(|&r| is_train[r]) {
                for (j, v) in rows.row(r - block.start).iter().enumerate() {
                    sum[j] += f(j, *v);
                }
            }
            local.extend(sum);
            start = end;
        }
        let all = comm.all_gather_varcount_f64(&local)?;
        debug_assert_eq!(all.len(), chunks * dim);
        let mut total = vec![0.0; dim];
        for c in all.chunks_exact(dim) {
            total.iter_mut().zip(c).for_each(|(t, v)| *t += v);
        }
        Ok(total)
    };
    let nt = n_train as f64;
    let mean: Vec<f64> = per_chunk(&|_, v| v)?.into_iter().map(|s| s / nt).collect();
    let var = per_chunk(&|j, v| (v - mean[j]) * (v - mean[j]))?;
    let std: Vec<f64> = var
        .into_iter()
        .map(|s| (s / nt).sqrt())
        .map(|s| if s > 0.0 { s } else { 1.0 })
        .collect();
    Ok((Array1::from_vec(mean), Array1::from_vec(std)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_whole_chunks_covering_every_row_once() {
        for n in [1, 255, 256, 257, 2000, 100_000, 2_000_000] {
            let k = chunk_rows(n);
            assert!(n.div_ceil(k) <= 1024);
            for p in [1, 2, 3, 4, 7] {
                let mut next = 0;
                for r in 0..p {
                    let b = block_of(n, r, p);
                    assert_eq!(b.start, next, "n {n} p {p} r {r}");
                    assert!(b.start % k == 0 || b.is_empty());
                    next = b.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn standardisation_matches_the_two_pass_formula_on_one_rank() {
        let comm = Comm::solo();
        let n = 700;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            ((i * 7 + j * 13) % 17) as f64 - 4.0 + j as f64
        });
        let is_train: Vec<bool> = (0..n).map(|i| i % 5 != 0).collect();
        let nt = is_train.iter().filter(|&&b| b).count();
        let (mean, std) = standardisation(&comm, &x, &(0..n), &is_train, nt, 3).unwrap();
        let tr: Vec<usize> = (0..n).filter(|&i| is_train[i]).collect();
        let xt = x.select(Axis(0), &tr);
        let m = xt.mean_axis(Axis(0)).unwrap();
        let s = xt.std_axis(Axis(0), 0.0);
        for j in 0..3 {
            assert!((mean[j] - m[j]).abs() < 1e-12 * m[j].abs().max(1.0));
            assert!((std[j] - s[j]).abs() < 1e-12 * s[j]);
        }
    }
}
