//! Densities on a latent space with log p(z) and ∇ log p(z): a Gaussian
//! mixture fitted by EM (full covariances; K by BIC; k-means++ start) and
//! a Gaussian kernel density estimate (Scott's bandwidth or a set one).
//! Both are mixtures of Gaussians, so one type, [`Gmm`], holds them; a KDE
//! is the mixture of n equal components at the codes, with one shared
//! covariance.
//!
//! EM follows the same steps as scikit-learn's `GaussianMixture` with
//! `covariance_type = "full"` (its fixture test compares the
//! log-likelihood within 1e-6): responsibilities by log-sum-exp; in the M
//! step the component masses get 10·ε added, as scikit-learn does, so
//! that an empty component keeps a finite mean; `reg_covar` is added to
//! each covariance's diagonal; the weights are the masses over their sum.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use ndarray_linalg::{Cholesky, UPLO};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};
use crate::guard::{self, Size};

/// A density on R^d with its log and the gradient of its log.
pub trait Density {
    /// The dimension d.
    fn dim(&self) -> usize;
    /// log p(z) and ∇ log p(z) at one point.
    fn log_prob_grad(&self, z: ArrayView1<f64>) -> (f64, Array1<f64>);
    /// log p(z) alone.
    fn log_prob(&self, z: ArrayView1<f64>) -> f64 {
        self.log_prob_grad(z).0
    }
    /// ∇ log p(z) alone (what the unadjusted walk needs; a density whose
    /// log is dear to compute, such as a diffusion model's, makes it cheap).
    fn grad_log_prob(&self, z: ArrayView1<f64>) -> Array1<f64> {
        self.log_prob_grad(z).1
    }
}

/// The covariances of a mixture's components, as lower Cholesky factors.
#[derive(Debug, Clone, PartialEq)]
enum Factors {
    /// One per component (a fitted mixture).
    Each(Vec<Array2<f64>>),
    /// One for all (a kernel density estimate).
    Shared(Array2<f64>),
}

/// A mixture of K Gaussians in R^d.
#[derive(Debug, Clone, PartialEq)]
pub struct Gmm {
    /// Mixing weights, summing to 1 (K).
    pub weights: Array1<f64>,
    /// Component means (K × d).
    pub means: Array2<f64>,
    factors: Factors,
    /// log weight − Σ log diag(L) − (d/2)·log 2π per component.
    offsets: Array1<f64>,
}

/// What EM did: its iterations and the mean log-likelihood per sample
/// after each (at the parameters it returned).
#[derive(Debug, Clone, PartialEq)]
pub struct EmTrace {
    pub iterations: usize,
    pub converged: bool,
    pub mean_log_likelihood: Vec<f64>,
}

/// The settings of EM.
#[derive(Debug, Clone, PartialEq)]
pub struct EmSettings {
    /// At most this many iterations (E step + M step).
    pub max_iter: usize,
    /// Stop when the mean log-likelihood per sample changes by less.
    pub tol: f64,
    /// Added to every covariance's diagonal.
    pub reg_covar: f64,
}

impl Default for EmSettings {
    /// scikit-learn's defaults.
    fn default() -> Self {
        EmSettings {
            max_iter: 100,
            tol: 1e-3,
            reg_covar: 1e-6,
        }
    }
}

fn cholesky(cov: &Array2<f64>, what: &str) -> Result<Array2<f64>> {
    cov.cholesky(UPLO::Lower).map_err(|e| {
        Error::invalid(
            what,
            format!("a covariance is not positive definite ({e}); raise reg_covar, or use fewer components"),
        )
    })
}

/// y = L⁻¹ v for a lower triangular L (forward substitution), in place.
fn forward(l: &Array2<f64>, v: &mut [f64]) {
    let d = v.len();
    for i in 0..d {
        let mut s = v[i];
        for j in 0..i {
            s -= l[[i, j]] * v[j];
        }
        v[i] = s / l[[i, i]];
    }
}

/// y = L⁻ᵀ v (backward substitution), in place.
fn backward(l: &Array2<f64>, v: &mut [f64]) {
    let d = v.len();
    for i in (0..d).rev() {
        let mut s = v[i];
        for j in i + 1..d {
            s -= l[[j, i]] * v[j];
        }
        v[i] = s / l[[i, i]];
    }
}

/// log Σ exp(a_k), stable.
fn log_sum_exp(a: &[f64]) -> f64 {
    let m = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + a.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Checks that `data` (n × d) has finite values and at least `min` rows.
fn check_data(data: ArrayView2<f64>, min: usize, what: &str) -> Result<()> {
    if data.ncols() == 0 {
        return Err(Error::invalid(what, "the codes have no columns"));
    }
    if data.nrows() < min {
        return Err(Error::invalid(
            what,
            format!(
                "{} codes cannot fit this density: it needs at least {min}",
                data.nrows()
            ),
        ));
    }
    if let Some((i, _)) = data
        .rows()
        .into_iter()
        .enumerate()
        .find(|(_, r)| r.iter().any(|v| !v.is_finite()))
    {
        return Err(Error::invalid(
            what,
            format!("code {i} has a value that is not finite"),
        ));
    }
    Ok(())
}

impl Gmm {
    /// A mixture with these weights, means (K × d) and covariances (K of
    /// d × d, symmetric positive definite).
    pub fn new(weights: Array1<f64>, means: Array2<f64>, covs: &[Array2<f64>]) -> Result<Gmm> {
        let k = weights.len();
        if means.nrows() != k || covs.len() != k || k == 0 {
            return Err(Error::invalid(
                "mixture",
                format!(
                    "{k} weights, {} means and {} covariances: they must agree (and K ≥ 1)",
                    means.nrows(),
                    covs.len()
                ),
            ));
        }
        let f = covs
            .iter()
            .map(|c| cholesky(c, "mixture"))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::from_factors(weights, means, Factors::Each(f)))
    }

    fn from_factors(weights: Array1<f64>, means: Array2<f64>, factors: Factors) -> Gmm {
        let d = means.ncols() as f64;
        let half_log_2pi = 0.5 * d * (2.0 * std::f64::consts::PI).ln();
        let log_det = |l: &Array2<f64>| l.diag().iter().map(|v| v.ln()).sum::<f64>();
        let offsets = match &factors {
            Factors::Each(f) => weights
                .iter()
                .zip(f)
                .map(|(w, l)| w.ln() - log_det(l) - half_log_2pi)
                .collect(),
            Factors::Shared(l) => {
                let c = log_det(l) + half_log_2pi;
                weights.mapv(|w| w.ln() - c)
            }
        };
        Gmm {
            weights,
            means,
            factors,
            offsets,
        }
    }

    /// The number of components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    fn factor(&self, k: usize) -> &Array2<f64> {
        match &self.factors {
            Factors::Each(f) => &f[k],
            Factors::Shared(l) => l,
        }
    }

    /// The covariance of component k (L·Lᵀ).
    pub fn covariance(&self, k: usize) -> Array2<f64> {
        let l = self.factor(k);
        l.dot(&l.t())
    }

    /// log(w_k N(z | μ_k, Σ_k)) for every k, into `out`; `ys` (K·d
    /// values) is left holding L_k⁻¹(z − μ_k) of every k, row by row.
    fn weighted_logs(&self, z: ArrayView1<f64>, out: &mut [f64], ys: &mut [f64]) {
        let d = z.len();
        for ((k, o), y) in out.iter_mut().enumerate().zip(ys.chunks_mut(d)) {
            for (j, v) in y.iter_mut().enumerate() {
                *v = z[j] - self.means[[k, j]];
            }
            forward(self.factor(k), y);
            *o = self.offsets[k] - 0.5 * y.iter().map(|v| v * v).sum::<f64>();
        }
    }

    /// The mean log-likelihood per row of `data` (n × d).
    pub fn mean_log_likelihood(&self, data: ArrayView2<f64>) -> f64 {
        self.log_responsibilities(data).0 / data.nrows() as f64
    }

    /// (Σ_i log p(x_i), log responsibilities n × K).
    fn log_responsibilities(&self, data: ArrayView2<f64>) -> (f64, Array2<f64>) {
        let (n, k, d) = (data.nrows(), self.components(), data.ncols());
        let mut resp = Array2::<f64>::zeros((n, k));
        let total: f64 = {
            use rayon::prelude::*;
            resp.as_slice_mut()
                .expect("a new standard array")
                .par_chunks_mut(k)
                .enumerate()
                .map(|(i, row)| {
                    let mut ys = vec![0.0; k * d];
                    self.weighted_logs(data.row(i), row, &mut ys);
                    let lse = log_sum_exp(row);
                    row.iter_mut().for_each(|v| *v -= lse);
                    lse
                })
                .collect::<Vec<f64>>()
                .iter()
                .sum()
        };
        (total, resp)
    }

    /// The number of free parameters of a full-covariance mixture.
    pub fn parameters(k: usize, d: usize) -> usize {
        (k - 1) + k * d + k * d * (d + 1) / 2
    }

    /// The Bayesian information criterion on `data`: −2·log L + p·ln n.
    pub fn bic(&self, data: ArrayView2<f64>) -> f64 {
        self.bic_of(self.mean_log_likelihood(data), data.dim())
    }

    /// The BIC from the mean log-likelihood of (n, d) data.
    fn bic_of(&self, mean_ll: f64, (n, d): (usize, usize)) -> f64 {
        let n = n as f64;
        -2.0 * mean_ll * n + Self::parameters(self.components(), d) as f64 * n.ln()
    }

    /// The M step from responsibilities (n × K, probabilities).
    fn m_step(data: ArrayView2<f64>, resp: &Array2<f64>, reg_covar: f64) -> Result<Gmm> {
        let k = resp.ncols();
        let nk = resp.sum_axis(Axis(0)) + 10.0 * f64::EPSILON;
        let means = resp.t().dot(&data) / nk.view().insert_axis(Axis(1));
        let mut covs = Vec::with_capacity(k);
        for c in 0..k {
            let diff = &data - &means.row(c);
            let weighted = &diff * &resp.column(c).insert_axis(Axis(1));
            let mut cov = weighted.t().dot(&diff) / nk[c];
            cov.diag_mut().mapv_inplace(|v| v + reg_covar);
            covs.push(cholesky(&cov, "sample.density.reg_covar")?);
        }
        let weights = &nk / nk.sum();
        Ok(Self::from_factors(weights, means, Factors::Each(covs)))
    }

    /// EM from `self` on `data`: E step, M step, until the mean
    /// log-likelihood changes by less than `tol` from one parameter set to
    /// the next, or `max_iter` M steps. The trace holds the mean
    /// log-likelihood of the parameters after each M step.
    pub fn em(&self, data: ArrayView2<f64>, s: &EmSettings) -> Result<(Gmm, EmTrace)> {
        check_data(data, 1, "sample.density")?;
        let (n, k) = (data.nrows() as u64, self.components() as u64);
        guard::need(
            "the responsibilities of EM",
            Size::array(&[n, k, 2], 8),
            "sample.density.components",
        )?;
        let mut g = self.clone();
        let mut trace = EmTrace {
            iterations: 0,
            converged: false,
            mean_log_likelihood: vec![],
        };
        // One E step per parameter set: its responsibilities feed the next
        // M step, and its log-likelihood is the trace's entry.
        let (total, mut log_resp) = g.log_responsibilities(data);
        let mut prev = total / data.nrows() as f64;
        for _ in 0..s.max_iter {
            g = Self::m_step(data, &log_resp.mapv(f64::exp), s.reg_covar)?;
            trace.iterations += 1;
            let (total, next) = g.log_responsibilities(data);
            log_resp = next;
            let ll = total / data.nrows() as f64;
            trace.mean_log_likelihood.push(ll);
            if (ll - prev).abs() < s.tol {
                trace.converged = true;
                break;
            }
            prev = ll;
        }
        Ok((g, trace))
    }

    /// n exact draws (ChaCha8 `seed`): each row's component by the
    /// weights, then μ_k + L_k·ε; the draws and their components.
    pub fn sample(&self, n: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = self.dim();
        let mut x = Array2::zeros((n, d));
        let mut comp = vec![0; n];
        for (mut row, c) in x.axis_iter_mut(Axis(0)).zip(comp.iter_mut()) {
            let u: f64 = rng.random();
            let mut acc = self.weights[0];
            while u >= acc && *c + 1 < self.components() {
                *c += 1;
                acc += self.weights[*c];
            }
            let e: Array1<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
            row.assign(&(&self.means.row(*c) + &self.factor(*c).dot(&e)));
        }
        (x, comp)
    }

    /// The k-means++ start (seeded): K centres, the first uniform, each
    /// next with probability ∝ the squared distance to the nearest chosen
    /// one; every row assigned to its nearest centre; one M step.
    pub fn kmeans_pp(data: ArrayView2<f64>, k: usize, seed: u64, reg_covar: f64) -> Result<Gmm> {
        check_data(data, k.max(1), "sample.density.components")?;
        let n = data.nrows();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sq = |a: ArrayView1<f64>, b: ArrayView1<f64>| -> f64 {
            a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
        };
        let mut centres = vec![rng.random_range(0..n)];
        let mut near: Vec<f64> = (0..n)
            .map(|i| sq(data.row(i), data.row(centres[0])))
            .collect();
        while centres.len() < k {
            let total: f64 = near.iter().sum();
            let next = if total > 0.0 {
                let mut u = rng.random::<f64>() * total;
                let mut pick = n - 1;
                for (i, &w) in near.iter().enumerate() {
                    if u < w {
                        pick = i;
                        break;
                    }
                    u -= w;
                }
                pick
            } else {
                rng.random_range(0..n)
            };
            centres.push(next);
            for (i, v) in near.iter_mut().enumerate() {
                *v = v.min(sq(data.row(i), data.row(next)));
            }
        }
        let mut resp = Array2::<f64>::zeros((n, k));
        for i in 0..n {
            let best = (0..k)
                .min_by(|&a, &b| {
                    sq(data.row(i), data.row(centres[a]))
                        .total_cmp(&sq(data.row(i), data.row(centres[b])))
                })
                .expect("k ≥ 1");
            resp[[i, best]] = 1.0;
        }
        Self::m_step(data, &resp, reg_covar)
    }

    /// EM from the k-means++ start for every K in `ks`; the mixture of the
    /// lowest BIC, and (K, BIC) of each.
    pub fn fit_by_bic(
        data: ArrayView2<f64>,
        ks: &[usize],
        seed: u64,
        s: &EmSettings,
    ) -> Result<(Gmm, Vec<(usize, f64)>)> {
        let mut best: Option<(f64, Gmm)> = None;
        let mut table = vec![];
        for &k in ks {
            if k == 0 {
                return Err(Error::invalid(
                    "sample.density.components",
                    "K must be at least 1",
                ));
            }
            let (g, trace) = Self::kmeans_pp(data, k, seed, s.reg_covar)?.em(data, s)?;
            // The trace ends with the returned parameters' log-likelihood.
            let b = match trace.mean_log_likelihood.last() {
                Some(&ll) => g.bic_of(ll, data.dim()),
                None => g.bic(data),
            };
            table.push((k, b));
            if best.as_ref().is_none_or(|(bb, _)| b < *bb) {
                best = Some((b, g));
            }
        }
        let (_, g) =
            best.ok_or_else(|| Error::invalid("sample.density.components", "no K to try"))?;
        Ok((g, table))
    }

    /// A Gaussian kernel density estimate at the codes: bandwidth matrix
    /// h²·Σ̂ (Σ̂ the codes' covariance) with h = `bandwidth`, or Scott's
    /// factor n^(−1/(d+4)) when `None` (as scipy's gaussian_kde).
    pub fn kde(data: ArrayView2<f64>, bandwidth: Option<f64>) -> Result<Gmm> {
        check_data(data, 2, "sample.density")?;
        let (n, d) = (data.nrows(), data.ncols());
        let h = match bandwidth {
            Some(h) if h.is_finite() && h > 0.0 => h,
            Some(h) => {
                return Err(Error::invalid(
                    "sample.density.bandwidth",
                    format!("must be a finite number > 0, got {h}"),
                ))
            }
            None => (n as f64).powf(-1.0 / (d as f64 + 4.0)),
        };
        let mean = data.mean_axis(Axis(0)).expect("n ≥ 2");
        let diff = &data - &mean;
        let cov = diff.t().dot(&diff) / (n - 1) as f64 * (h * h);
        let l = cholesky(&cov, "sample.density.bandwidth")?;
        Ok(Self::from_factors(
            Array1::from_elem(n, 1.0 / n as f64),
            data.to_owned(),
            Factors::Shared(l),
        ))
    }
}

impl Density for Gmm {
    fn dim(&self) -> usize {
        self.means.ncols()
    }

    /// ∇ log p(z) = Σ_k r_k(z)·(−Σ_k⁻¹(z − μ_k)), r_k the responsibilities.
    fn log_prob_grad(&self, z: ArrayView1<f64>) -> (f64, Array1<f64>) {
        let (k, d) = (self.components(), self.dim());
        let mut logs = vec![0.0; k];
        let mut ys = vec![0.0; k * d];
        self.weighted_logs(z, &mut logs, &mut ys);
        let lse = log_sum_exp(&logs);
        let mut grad = Array1::<f64>::zeros(d);
        for ((c, &l), y) in logs.iter().enumerate().zip(ys.chunks_mut(d)) {
            let r = (l - lse).exp();
            if r == 0.0 {
                continue;
            }
            // Σ⁻¹(z − μ) = L⁻ᵀ (L⁻¹(z − μ)), the inner solve already done.
            backward(self.factor(c), y);
            grad.iter_mut().zip(y.iter()).for_each(|(g, v)| *g -= r * v);
        }
        (lse, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn mat2(v: &[f64]) -> Array2<f64> {
        Array2::from_shape_vec((2, 2), v.to_vec()).unwrap()
    }

    /// The fixture of tests/fixtures/gmm (scikit-learn 1.9.1's
    /// GaussianMixture from a given start, 1, 5 and 60 EM iterations):
    /// the same start and iterations give its mean log-likelihood within
    /// 1e-6 relative, and its weights, means and covariances.
    #[test]
    fn em_matches_scikit_learn() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gmm/gmm_reference.txt"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let nums = |l: &str| -> Vec<f64> {
            l.split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap())
                .collect()
        };
        let mut points = vec![];
        let (mut w0, mut m0, mut c0) = (vec![], vec![], vec![]);
        // (iterations, score, weights, means, covariances)
        type Run = (usize, f64, Vec<f64>, Vec<f64>, Vec<Array2<f64>>);
        let mut runs: Vec<Run> = vec![];
        for l in text.lines() {
            let tag = l.split_whitespace().next().unwrap();
            let v = nums(l);
            match tag {
                "point" => points.extend(v),
                "init_weight" => w0 = v,
                "init_mean" => m0.extend(&v[1..]),
                "init_cov" => c0.push(mat2(&v[1..])),
                "run" => runs.push((v[0] as usize, 0.0, vec![], vec![], vec![])),
                "score" => runs.last_mut().unwrap().1 = v[0],
                "weight" => runs.last_mut().unwrap().2 = v,
                "mean" => runs.last_mut().unwrap().3.extend(&v[1..]),
                "cov" => runs.last_mut().unwrap().4.push(mat2(&v[1..])),
                _ => panic!("{l}"),
            }
        }
        let x = Array2::from_shape_vec((points.len() / 2, 2), points).unwrap();
        assert_eq!(x.nrows(), 1500);
        let start = Gmm::new(
            Array1::from(w0),
            Array2::from_shape_vec((3, 2), m0).unwrap(),
            &c0,
        )
        .unwrap();
        assert_eq!(runs.len(), 3);
        for (iters, score, w, m, c) in runs {
            let s = EmSettings {
                max_iter: iters,
                tol: 0.0,
                reg_covar: 1e-6,
            };
            let (g, trace) = start.em(x.view(), &s).unwrap();
            assert_eq!(trace.iterations, iters);
            let ll = g.mean_log_likelihood(x.view());
            assert!(
                (ll - score).abs() <= 1e-6 * score.abs(),
                "{iters}: {ll} vs {score}"
            );
            assert_eq!(*trace.mean_log_likelihood.last().unwrap(), ll);
            for k in 0..3 {
                assert!((g.weights[k] - w[k]).abs() < 1e-6, "{iters}: weight {k}");
                for j in 0..2 {
                    assert!(
                        (g.means[[k, j]] - m[2 * k + j]).abs() < 1e-6,
                        "{iters}: mean {k}"
                    );
                }
                let diff = (&g.covariance(k) - &c[k]).mapv(f64::abs);
                assert!(diff.iter().all(|&v| v < 1e-6), "{iters}: cov {k}");
            }
            eprintln!("EM {iters} iterations: {ll} vs scikit-learn {score}");
        }
    }

    /// On 20,000 draws of a known 3-component mixture, BIC over K = 1..5
    /// picks 3, and EM from the k-means++ start recovers the weights,
    /// means and covariances within 5 standard errors of their sampling
    /// error (a component's share n·w of the rows: √(w(1−w)/n) for a
    /// weight, √(Σ_jj/(n·w)) for a mean, √((Σ_ij² + Σ_ii·Σ_jj)/(n·w)) for
    /// a covariance entry).
    #[test]
    fn em_recovers_a_known_mixture_and_bic_picks_its_k() {
        let w = [0.5, 0.3, 0.2];
        let m = array![[0.0, 0.0], [4.0, 0.0], [1.0, 4.0]];
        let c = [
            mat2(&[1.0, 0.5, 0.5, 1.0]),
            mat2(&[0.5, 0.0, 0.0, 1.5]),
            mat2(&[0.8, -0.3, -0.3, 0.4]),
        ];
        let n = 20000;
        let x = Gmm::new(Array1::from(w.to_vec()), m.clone(), &c)
            .unwrap()
            .sample(n, 11)
            .0;
        let (g, table) =
            Gmm::fit_by_bic(x.view(), &[1, 2, 3, 4, 5], 0, &EmSettings::default()).unwrap();
        assert_eq!(g.components(), 3, "{table:?}");
        let nf = n as f64;
        for k in 0..3 {
            // The fitted component nearest to the true mean k.
            let f = (0..3)
                .min_by(|&a, &b| {
                    let da = (&g.means.row(a) - &m.row(k)).mapv(|v| v * v).sum();
                    let db = (&g.means.row(b) - &m.row(k)).mapv(|v| v * v).sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            let se_w = (w[k] * (1.0 - w[k]) / nf).sqrt();
            assert!(
                (g.weights[f] - w[k]).abs() < 5.0 * se_w,
                "weight {k}: {}",
                g.weights[f]
            );
            let nk = nf * w[k];
            let cov = g.covariance(f);
            for i in 0..2 {
                let se_m = (c[k][[i, i]] / nk).sqrt();
                assert!((g.means[[f, i]] - m[[k, i]]).abs() < 5.0 * se_m, "mean {k}");
                for j in 0..2 {
                    let se_c = ((c[k][[i, j]].powi(2) + c[k][[i, i]] * c[k][[j, j]]) / nk).sqrt();
                    assert!(
                        (cov[[i, j]] - c[k][[i, j]]).abs() < 5.0 * se_c,
                        "cov {k} ({i}, {j}): {} vs {}",
                        cov[[i, j]],
                        c[k][[i, j]]
                    );
                }
            }
        }
    }

    /// log p of a one-component mixture is the Gaussian's closed form;
    /// ∇ log p of a mixture matches central differences of log p; a KDE
    /// is the mean of Gaussians at the codes (brute force), with Scott's
    /// factor n^(−1/(d+4)).
    #[test]
    fn log_densities_and_gradients_have_their_closed_forms() {
        let cov = mat2(&[2.0, 0.6, 0.6, 1.0]);
        let g = Gmm::new(array![1.0], array![[1.0, -1.0]], std::slice::from_ref(&cov)).unwrap();
        let z = array![0.3, 0.4];
        let (dx, dy) = (z[0] - 1.0, z[1] + 1.0);
        let det: f64 = 2.0 * 1.0 - 0.36;
        let q = (1.0 * dx * dx - 2.0 * 0.6 * dx * dy + 2.0 * dy * dy) / det;
        let want = -0.5 * q - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln();
        let (lp, grad) = g.log_prob_grad(z.view());
        assert!((lp - want).abs() < 1e-12, "{lp} vs {want}");
        let want_grad = [-(1.0 * dx - 0.6 * dy) / det, -(-0.6 * dx + 2.0 * dy) / det];
        assert!((grad[0] - want_grad[0]).abs() < 1e-12 && (grad[1] - want_grad[1]).abs() < 1e-12);

        let mix = Gmm::new(
            array![0.3, 0.7],
            array![[0.0, 0.0], [2.0, 1.0]],
            &[cov.clone(), mat2(&[0.5, -0.1, -0.1, 0.3])],
        )
        .unwrap();
        for z in [array![0.5, 0.5], array![1.7, 0.2], array![-3.0, 4.0]] {
            let (_, grad) = mix.log_prob_grad(z.view());
            for j in 0..2 {
                let h = 1e-6;
                let (mut a, mut b) = (z.clone(), z.clone());
                a[j] += h;
                b[j] -= h;
                let fd = (mix.log_prob(a.view()) - mix.log_prob(b.view())) / (2.0 * h);
                assert!(
                    (grad[j] - fd).abs() < 1e-6 * fd.abs().max(1.0),
                    "{z} {j}: {} vs {fd}",
                    grad[j]
                );
            }
        }

        let codes = array![[0.0, 0.0], [1.0, 0.5], [0.2, 2.0], [-1.0, 1.0], [0.5, -0.5]];
        let kde = Gmm::kde(codes.view(), None).unwrap();
        let h = 5f64.powf(-1.0 / 6.0);
        let mean = codes.mean_axis(Axis(0)).unwrap();
        let diff = &codes - &mean;
        let bw = diff.t().dot(&diff) / 4.0 * (h * h);
        let z = array![0.4, 0.6];
        let brute: f64 = (0..5)
            .map(|i| {
                let one = Gmm::new(
                    array![1.0],
                    codes.slice(ndarray::s![i..i + 1, ..]).to_owned(),
                    std::slice::from_ref(&bw),
                )
                .unwrap();
                one.log_prob(z.view()).exp() / 5.0
            })
            .sum();
        assert!((kde.log_prob(z.view()) - brute.ln()).abs() < 1e-12);
    }

    /// Bad input: fewer codes than components, a code that is not finite,
    /// a bandwidth ≤ 0: one message naming the problem.
    #[test]
    fn densities_that_cannot_be_fitted_are_refused() {
        let x = array![[0.0, 0.0], [1.0, 1.0]];
        let e = Gmm::kmeans_pp(x.view(), 3, 0, 1e-6)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 codes cannot fit this density: it needs at least 3"),
            "{e}"
        );
        let bad = array![[0.0, f64::NAN], [1.0, 1.0], [2.0, 0.0]];
        let e = Gmm::kde(bad.view(), None).unwrap_err().to_string();
        assert!(e.contains("code 0 has a value that is not finite"), "{e}");
        let e = Gmm::kde(x.view(), Some(0.0)).unwrap_err().to_string();
        assert!(
            e.contains("sample.density.bandwidth") && e.contains("> 0"),
            "{e}"
        );
    }
}
