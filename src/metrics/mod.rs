//! Evaluation metrics (issue 16), pure Rust on feature and point arrays:
//! - [`features`]: what FID, IS and precision/recall read from a feature
//!   network: the Fréchet distance of the feature Gaussians (FID), the
//!   Inception Score of class probabilities, and precision, recall,
//!   density and coverage of k-nearest-neighbour balls (Kynkäänniemi et
//!   al. 2019; Naeem et al. 2020);
//! - [`embedding`]: how a latent space keeps its data's neighbourhoods and
//!   distances, as Topological Autoencoders (Moor et al. 2020) measure
//!   them: trustworthiness, continuity, the mean relative rank errors,
//!   ℓ-RMSE and stress;
//! - [`topology`]: the Betti-curve distance and topological accuracy
//!   between the diagrams of a real and a generated set;
//! - [`path`]: the regularity, realism and topological consistency of
//!   decoded interpolation paths;
//! - [`shift`]: distribution shifts (noise, blur, rotation, contrast) for
//!   the robustness curves.
//!
//! Each is checked against its reference tool on the fixtures of
//! tests/fixtures/metrics/ (pytorch-fid, prdc, scikit-learn, NumPy).

pub mod embedding;
pub mod features;
pub mod path;
pub mod shift;
pub mod topology;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

/// Euclidean distances between the rows of `a` and of `b` (|a| × |b|),
/// rows in parallel; the memory is checked first (`key` names the setting
/// that sizes it).
pub fn distances(a: ArrayView2<f64>, b: ArrayView2<f64>, key: &str) -> Result<Array2<f64>> {
    if a.ncols() != b.ncols() {
        return Err(Error::invalid(
            key,
            format!(
                "the two sets have {} and {} values per row",
                a.ncols(),
                b.ncols()
            ),
        ));
    }
    crate::guard::need(
        &format!("a {} × {} distance matrix", a.nrows(), b.nrows()),
        crate::guard::Size::array(&[a.nrows() as u64, b.nrows() as u64], 8),
        key,
    )?;
    let mut out = Array2::zeros((a.nrows(), b.nrows()));
    {
        use rayon::prelude::*;
        out.as_slice_mut()
            .expect("a new standard array")
            .par_chunks_mut(b.nrows().max(1))
            .enumerate()
            .for_each(|(i, row)| {
                let ai = a.row(i);
                for (j, o) in row.iter_mut().enumerate() {
                    let bj = b.row(j);
                    *o = ai
                        .iter()
                        .zip(bj.iter())
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum::<f64>()
                        .sqrt();
                }
            });
    }
    Ok(out)
}

/// The k-th smallest value of each row (k ≥ 1; the row's own zero counts
/// when `a` and `b` are the same set, as prdc counts it).
fn kth_smallest(d: &Array2<f64>, k: usize) -> Vec<f64> {
    d.rows()
        .into_iter()
        .map(|r| {
            let mut v = r.to_vec();
            let k = (k - 1).min(v.len() - 1);
            v.select_nth_unstable_by(k, f64::total_cmp);
            v[k]
        })
        .collect()
}

/// Every value finite, else an error naming `what`, the row and column.
fn finite(x: ArrayView2<f64>, what: &str) -> Result<()> {
    match x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        Some(((i, j), v)) => Err(Error::invalid(
            what,
            format!("row {i}, column {j}: values must be finite, got {v}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::embedding::Embedding;
    use super::features::{fid, inception_score, prdc};
    use ndarray::{Array1, Array2};

    /// tests/fixtures/metrics/reference.h5 (make_fixture.py beside it).
    fn fixture() -> hdf5::File {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/metrics/reference.h5"
        );
        hdf5::File::open(p).expect("the metrics fixture")
    }

    fn matrix(f: &hdf5::File, name: &str) -> Array2<f64> {
        f.dataset(name).unwrap().read_2d().unwrap()
    }

    fn scalar(f: &hdf5::File, name: &str) -> f64 {
        f.dataset(name).unwrap().read_scalar().unwrap()
    }

    fn vector(f: &hdf5::File, name: &str) -> Array1<f64> {
        f.dataset(name).unwrap().read_1d().unwrap()
    }

    fn close(what: &str, got: f64, want: f64, rel: f64) {
        let err = (got - want).abs() / want.abs().max(1e-300);
        assert!(err <= rel, "{what}: {got} vs {want} (relative {err:.2e})");
    }

    /// FID equals pytorch-fid's `calculate_frechet_distance` on the same
    /// features within 1e-6 relative, also for two halves of one set.
    #[test]
    fn fid_matches_pytorch_fid() {
        let f = fixture();
        let (a, b) = (matrix(&f, "fid/a"), matrix(&f, "fid/b"));
        let got = fid(a.view(), b.view()).unwrap();
        close("FID", got, scalar(&f, "fid/value"), 1e-6);
        let half = fid(
            a.slice(ndarray::s![..500, ..]),
            a.slice(ndarray::s![500.., ..]),
        )
        .unwrap();
        close(
            "FID of two halves",
            half,
            scalar(&f, "fid/value_aa_half"),
            1e-6,
        );
        eprintln!(
            "FID {got:.10} (pytorch-fid {:.10}); halves {half:.10}",
            scalar(&f, "fid/value")
        );
        // Bad input: another feature dimension, fewer samples than features.
        let e = fid(a.view(), b.slice(ndarray::s![.., ..8]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("features of 8 values, the reference set 16"),
            "{e}"
        );
        let e = fid(a.view(), b.slice(ndarray::s![..16, ..]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("16 samples of 16 features") && e.contains("singular"),
            "{e}"
        );
    }

    /// Precision, recall, density and coverage equal the `prdc` package's
    /// for k = 3, 5, 10.
    #[test]
    fn prdc_matches_the_prdc_package() {
        let f = fixture();
        let (real, fake) = (matrix(&f, "prdc/real"), matrix(&f, "prdc/fake"));
        for k in [3, 5, 10] {
            let p = prdc(real.view(), fake.view(), k).unwrap();
            for (name, got) in [
                ("precision", p.precision),
                ("recall", p.recall),
                ("density", p.density),
                ("coverage", p.coverage),
            ] {
                close(
                    &format!("k {k} {name}"),
                    got,
                    scalar(&f, &format!("prdc/k{k}/{name}")),
                    1e-12,
                );
            }
        }
    }

    /// The Inception Score equals the NumPy formula of the fixture.
    #[test]
    fn inception_score_matches_numpy() {
        let f = fixture();
        let probs = matrix(&f, "is/probs");
        let splits: i64 = f.dataset("is/splits").unwrap().read_scalar().unwrap();
        let (m, s) = inception_score(probs.view(), splits as usize).unwrap();
        close("IS mean", m, scalar(&f, "is/mean"), 1e-10);
        close("IS std", s, scalar(&f, "is/std"), 1e-8);
        let logits = probs.mapv(|p| p.ln());
        let e = inception_score(logits.view(), 10).unwrap_err().to_string();
        assert!(e.contains("not a probability vector"), "{e}");
    }

    /// Trustworthiness and continuity equal scikit-learn's for every k of
    /// 10..=200 step 10; MRRE, ℓ-RMSE and stress Topological Autoencoders'
    /// definitions in NumPy.
    #[test]
    fn embedding_measures_match_scikit_learn_and_numpy() {
        let f = fixture();
        let (x, z) = (matrix(&f, "embed/x"), matrix(&f, "embed/z"));
        let e = Embedding::new(x.view(), z.view()).unwrap();
        let ks: Vec<i64> = f.dataset("embed/k").unwrap().read_raw().unwrap();
        let (t, c) = (
            vector(&f, "embed/trustworthiness"),
            vector(&f, "embed/continuity"),
        );
        let (zx, xz) = (vector(&f, "embed/mrre_zx"), vector(&f, "embed/mrre_xz"));
        for (i, &k) in ks.iter().enumerate() {
            let k = k as usize;
            close(
                &format!("trustworthiness k {k}"),
                e.trustworthiness(k).unwrap(),
                t[i],
                1e-12,
            );
            close(
                &format!("continuity k {k}"),
                e.continuity(k).unwrap(),
                c[i],
                1e-12,
            );
            let (a, b) = e.mrre(k).unwrap();
            close(&format!("MRRE_ZX k {k}"), a, zx[i], 1e-12);
            close(&format!("MRRE_XZ k {k}"), b, xz[i], 1e-12);
        }
        let ku: Vec<usize> = ks.iter().map(|&k| k as usize).collect();
        let avg = e.averaged(&ku).unwrap();
        close(
            "mean trustworthiness",
            avg.trustworthiness,
            t.mean().unwrap(),
            1e-12,
        );
        close("mean continuity", avg.continuity, c.mean().unwrap(), 1e-12);
        close("mean MRRE_ZX", avg.mrre_zx, zx.mean().unwrap(), 1e-12);
        close("mean MRRE_XZ", avg.mrre_xz, xz.mean().unwrap(), 1e-12);
        close("RMSE", e.rmse(), scalar(&f, "embed/rmse"), 1e-12);
        close(
            "stress",
            e.stress(),
            scalar(&f, "embed/stress_topoae"),
            1e-12,
        );
        let err = e.trustworthiness(250).unwrap_err().to_string();
        assert!(err.contains("k = 250 need 1 ≤ k < n/2 = 250"), "{err}");
    }
}
