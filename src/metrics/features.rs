//! Metrics on the features (or class probabilities) of a feature network:
//! FID, the Inception Score, and precision, recall, density and coverage.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use ndarray_linalg::{Eigh, UPLO};

use super::{distances, finite, kth_smallest};
use crate::error::{Error, Result};

/// The Gaussian of a feature set: its mean and covariance (ddof 1, as
/// NumPy's `np.cov` and pytorch-fid).
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    pub mean: Array1<f64>,
    pub cov: Array2<f64>,
    /// Rows it was estimated from.
    pub n: usize,
}

impl Gaussian {
    /// The mean and covariance of the rows of `x` (n × d). Refused when
    /// n ≤ d: the covariance is then singular, and the FID of pytorch-fid
    /// would be a number of the regularisation it adds, not of the data.
    pub fn of(x: ArrayView2<f64>, what: &str) -> Result<Gaussian> {
        let (n, d) = x.dim();
        finite(x, what)?;
        if d == 0 {
            return Err(Error::invalid(what, "the features have no columns"));
        }
        if n <= d {
            return Err(Error::invalid(
                what,
                format!(
                    "{n} samples of {d} features: the covariance of fewer samples than features plus one is singular, and the Fréchet distance is then undefined; use more than {d} samples (or features of lower dimension)"
                ),
            ));
        }
        let mean = x.mean_axis(Axis(0)).expect("n ≥ 1");
        let c = &x - &mean;
        let cov = c.t().dot(&c) / (n - 1) as f64;
        Ok(Gaussian { mean, cov, n })
    }
}

/// The eigenvalues of a symmetric matrix, and its eigenvectors (columns).
fn eigh(m: &Array2<f64>, what: &str) -> Result<(Array1<f64>, Array2<f64>)> {
    m.eigh(UPLO::Lower)
        .map_err(|e| Error::invalid(what, format!("eigendecomposition failed: {e}")))
}

/// The Fréchet distance between two Gaussians,
/// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½, with tr (Σ₁Σ₂)^½ =
/// Σ √λ over the eigenvalues λ of Σ₁^½ Σ₂ Σ₁^½ (symmetric, positive
/// semi-definite; its eigenvalues are those of Σ₁Σ₂), so no complex matrix
/// square root is needed.
pub fn frechet(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.mean.len() != b.mean.len() {
        return Err(Error::invalid(
            "features",
            format!(
                "the two sets have features of {} and {} values; a Fréchet distance needs the same feature space",
                a.mean.len(),
                b.mean.len()
            ),
        ));
    }
    let (la, va) = eigh(&a.cov, "features")?;
    let root = {
        let s = la.mapv(|v| v.max(0.0).sqrt());
        (&va * &s).dot(&va.t())
    };
    let m = root.dot(&b.cov).dot(&root);
    let m = (&m + &m.t()) * 0.5;
    let (lm, _) = eigh(&m, "features")?;
    let tr_root: f64 = lm.iter().map(|v| v.max(0.0).sqrt()).sum();
    let dm = &a.mean - &b.mean;
    Ok(dm.dot(&dm) + a.cov.diag().sum() + b.cov.diag().sum() - 2.0 * tr_root)
}

/// FID of two feature sets (rows): the Fréchet distance of their Gaussians.
pub fn fid(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Result<f64> {
    if a.ncols() != b.ncols() {
        return Err(Error::invalid(
            "features",
            format!(
                "the generated set has features of {} values, the reference set {}: both must come from the same feature network and layer",
                b.ncols(),
                a.ncols()
            ),
        ));
    }
    frechet(
        &Gaussian::of(a, "reference features")?,
        &Gaussian::of(b, "generated features")?,
    )
}

/// The Inception Score of class probabilities p(y|x) (n × classes, rows
/// summing to 1) in `splits` consecutive parts: for each part,
/// exp(mean_x KL(p(y|x) ‖ p(y))), p(y) its mean row; the mean and the
/// standard deviation (ddof 0) over the parts.
pub fn inception_score(probs: ArrayView2<f64>, splits: usize) -> Result<(f64, f64)> {
    let n = probs.nrows();
    finite(probs, "class probabilities")?;
    if splits == 0 || n < splits {
        return Err(Error::invalid(
            "class probabilities",
            format!("{n} rows cannot make {splits} splits (need at least one row per split)"),
        ));
    }
    if let Some((i, r)) = probs
        .rows()
        .into_iter()
        .enumerate()
        .find(|(_, r)| r.iter().any(|&v| v < 0.0) || (r.sum() - 1.0).abs() > 1e-6)
    {
        return Err(Error::invalid(
            "class probabilities",
            format!(
                "row {i} is not a probability vector (values ≥ 0 summing to 1; it sums to {}): give the classifier's softmax, not its logits",
                r.sum()
            ),
        ));
    }
    let xlogx = |p: f64, q: f64| if p > 0.0 { p * (p.ln() - q.ln()) } else { 0.0 };
    let scores: Vec<f64> = (0..splits)
        .map(|s| {
            // The parts of NumPy's array_split: the first n % splits rows
            // get one row more.
            let (base, extra) = (n / splits, n % splits);
            let start = s * base + s.min(extra);
            let len = base + usize::from(s < extra);
            let part = probs.slice(ndarray::s![start..start + len, ..]);
            let py = part.mean_axis(Axis(0)).expect("len ≥ 1");
            let kl: f64 = part
                .rows()
                .into_iter()
                .map(|r| {
                    r.iter()
                        .zip(py.iter())
                        .map(|(&p, &q)| xlogx(p, q))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / len as f64;
            kl.exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / splits as f64;
    Ok((mean, var.sqrt()))
}

/// Precision, recall, density and coverage of a generated set against a
/// real one, from k-nearest-neighbour balls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prdc {
    /// The share of generated points inside some real point's ball.
    pub precision: f64,
    /// The share of real points inside some generated point's ball.
    pub recall: f64,
    /// How many real balls hold a generated point, on average, over k.
    pub density: f64,
    /// The share of real points whose ball holds a generated point.
    pub coverage: f64,
}

/// [`Prdc`] with balls of radius the distance to the k-th nearest neighbour
/// within the same set (the point itself not counted), strict inequalities,
/// as the `prdc` package computes them.
pub fn prdc(real: ArrayView2<f64>, fake: ArrayView2<f64>, k: usize) -> Result<Prdc> {
    finite(real, "real features")?;
    finite(fake, "generated features")?;
    if k == 0 || real.nrows() <= k || fake.nrows() <= k {
        return Err(Error::invalid(
            "k",
            format!(
                "k = {k} nearest neighbours need k ≥ 1 and more than k points in each set, got {} real and {} generated",
                real.nrows(),
                fake.nrows()
            ),
        ));
    }
    let key = "the real and generated sets' sizes";
    let rr = distances(real, real, key)?;
    let ff = distances(fake, fake, key)?;
    let rf = distances(real, fake, key)?;
    // The k-th neighbour, the point itself (distance 0) being the first.
    let r_real = kth_smallest(&rr, k + 1);
    let r_fake = kth_smallest(&ff, k + 1);
    let (nr, nf) = (real.nrows(), fake.nrows());
    let inside_real = |i: usize, j: usize| rf[[i, j]] < r_real[i];
    let precision = (0..nf)
        .filter(|&j| (0..nr).any(|i| inside_real(i, j)))
        .count() as f64
        / nf as f64;
    let recall = (0..nr)
        .filter(|&i| (0..nf).any(|j| rf[[i, j]] < r_fake[j]))
        .count() as f64
        / nr as f64;
    let density = (0..nf)
        .map(|j| (0..nr).filter(|&i| inside_real(i, j)).count())
        .sum::<usize>() as f64
        / (k as f64 * nf as f64);
    let coverage = (0..nr)
        .filter(|&i| {
            let nearest = rf.row(i).iter().copied().fold(f64::INFINITY, f64::min);
            nearest < r_real[i]
        })
        .count() as f64
        / nr as f64;
    Ok(Prdc {
        precision,
        recall,
        density,
        coverage,
    })
}
