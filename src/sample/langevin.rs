//! Langevin random walks on a [`Density`]: the unadjusted walk (ULA)
//! z' = z + η·∇log p(z) + √(2η)·ε, and MALA, the same proposal accepted
//! with the Metropolis–Hastings probability
//! min(1, p(z')·q(z | z') / (p(z)·q(z' | z))), q(a | b) ∝
//! exp(−‖a − b − η·∇log p(b)‖² / (4η)).
//!
//! Chain c draws its noise (and MALA its uniforms) from the ChaCha8
//! stream c of the seed, so a chain is the same whichever rank runs it and
//! however many chains run beside it.

use ndarray::{Array1, Array2, Array3, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::density::Density;
use crate::error::{Error, Result};

/// The settings of a walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// Step size η (> 0).
    pub eta: f64,
    /// Steps after the burn-in.
    pub steps: usize,
    /// Steps dropped first.
    pub burn_in: usize,
    /// Keep every `thin`-th state after the burn-in (≥ 1).
    pub thin: usize,
    /// MALA (true) or the unadjusted walk.
    pub metropolis: bool,
}

impl Walk {
    /// Checks the settings; `key` names the section (e.g. "sample").
    pub fn check(&self, key: &str) -> Result<()> {
        if !(self.eta.is_finite() && self.eta > 0.0) {
            return Err(Error::invalid(
                format!("{key}.eta"),
                format!(
                    "the step size must be a finite number > 0, got {}",
                    self.eta
                ),
            ));
        }
        if self.thin == 0 {
            return Err(Error::invalid(
                format!("{key}.thin"),
                "must be at least 1 (1 keeps every state)",
            ));
        }
        if self.steps / self.thin == 0 {
            return Err(Error::invalid(
                format!("{key}.steps"),
                format!(
                    "{} steps thinned by {} keep no state",
                    self.steps, self.thin
                ),
            ));
        }
        Ok(())
    }

    /// The states each chain keeps.
    pub fn kept(&self) -> usize {
        self.steps / self.thin
    }
}

/// What the chains produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Chains {
    /// chains × kept × d: the kept states of every chain.
    pub states: Array3<f64>,
    /// Accepted proposals per chain (all of them for the unadjusted walk),
    /// over the burn-in and the steps.
    pub accepted: Vec<u64>,
    /// Proposals per chain.
    pub proposals: u64,
}

impl Chains {
    /// The fraction of proposals accepted, over all chains.
    pub fn acceptance_rate(&self) -> f64 {
        let a: u64 = self.accepted.iter().sum();
        a as f64 / (self.proposals * self.accepted.len() as u64).max(1) as f64
    }

    /// The kept states as rows (chain by chain), chains·kept × d.
    pub fn rows(&self) -> Array2<f64> {
        let (c, k, d) = self.states.dim();
        self.states
            .to_shape((c * k, d))
            .expect("a standard array")
            .to_owned()
    }
}

/// Runs chains `ids` (their indices among all chains, for the streams)
/// from the rows of `starts` (one per chain), in parallel over threads.
pub fn run(
    density: &(dyn Density + Sync),
    starts: ArrayView2<f64>,
    ids: std::ops::Range<usize>,
    walk: &Walk,
    seed: u64,
) -> Result<Chains> {
    check(density, starts, &ids, walk)?;
    let results: Vec<(Array2<f64>, u64)> = {
        use rayon::prelude::*;
        ids.clone()
            .into_par_iter()
            .enumerate()
            .map(|(row, id)| chain(density, starts.row(row).to_owned(), id, walk, seed))
            .collect()
    };
    Ok(assemble(results, walk, density.dim()))
}

/// [`run`] on one thread, for a density that cannot be shared between
/// threads (one evaluated by libtorch); the same chains.
pub fn run_serial(
    density: &dyn Density,
    starts: ArrayView2<f64>,
    ids: std::ops::Range<usize>,
    walk: &Walk,
    seed: u64,
) -> Result<Chains> {
    check(density, starts, &ids, walk)?;
    let results = ids
        .clone()
        .enumerate()
        .map(|(row, id)| chain(density, starts.row(row).to_owned(), id, walk, seed))
        .collect();
    Ok(assemble(results, walk, density.dim()))
}

fn check(
    density: &dyn Density,
    starts: ArrayView2<f64>,
    ids: &std::ops::Range<usize>,
    walk: &Walk,
) -> Result<()> {
    walk.check("sample")?;
    let d = density.dim();
    if starts.ncols() != d || starts.nrows() != ids.len() {
        return Err(Error::invalid(
            "sample",
            format!(
                "{} starts of {} values for {} chains in {d} dimensions",
                starts.nrows(),
                starts.ncols(),
                ids.len()
            ),
        ));
    }
    crate::guard::need(
        "the chains' states",
        crate::guard::Size::array(&[ids.len() as u64, walk.kept() as u64, d as u64], 8),
        "sample.steps",
    )
}

fn assemble(results: Vec<(Array2<f64>, u64)>, walk: &Walk, d: usize) -> Chains {
    let mut states = Array3::zeros((results.len(), walk.kept(), d));
    let mut accepted = Vec::with_capacity(results.len());
    for (c, (s, a)) in results.into_iter().enumerate() {
        states.index_axis_mut(ndarray::Axis(0), c).assign(&s);
        accepted.push(a);
    }
    Chains {
        states,
        accepted,
        proposals: (walk.burn_in + walk.steps) as u64,
    }
}

/// One chain: its kept states (kept × d) and its accepted proposals.
fn chain(
    density: &dyn Density,
    mut z: Array1<f64>,
    id: usize,
    walk: &Walk,
    seed: u64,
) -> (Array2<f64>, u64) {
    let d = z.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id as u64);
    let eta = walk.eta;
    let scale = (2.0 * eta).sqrt();
    // The unadjusted walk reads only ∇ log p.
    let eval = |z: &Array1<f64>| {
        if walk.metropolis {
            density.log_prob_grad(z.view())
        } else {
            (0.0, density.grad_log_prob(z.view()))
        }
    };
    let (mut lp, mut grad) = eval(&z);
    let mut out = Array2::zeros((walk.kept(), d));
    let mut accepted = 0u64;
    // log q(a | b) up to a constant, b's drift b + η·∇log p(b) given.
    let log_q =
        |a: &Array1<f64>, drift: &Array1<f64>| -(a - drift).mapv(|v| v * v).sum() / (4.0 * eta);
    for step in 0..walk.burn_in + walk.steps {
        let drift = &z + &(&grad * eta);
        let noise: Array1<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let prop = &drift + &(noise * scale);
        let (lp2, grad2) = eval(&prop);
        let take = if walk.metropolis {
            let back = &prop + &(&grad2 * eta);
            let log_a = lp2 + log_q(&z, &back) - lp - log_q(&prop, &drift);
            let u: f64 = rng.random();
            log_a.is_finite() && u.ln() < log_a
        } else {
            true
        };
        if take {
            z = prop;
            lp = lp2;
            grad = grad2;
            accepted += 1;
        }
        if step >= walk.burn_in {
            let k = step - walk.burn_in;
            if (k + 1) % walk.thin == 0 {
                out.row_mut(k / walk.thin).assign(&z);
            }
        }
    }
    (out, accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::density::Gmm;
    use ndarray::{array, Axis};

    fn mat2(v: &[f64]) -> Array2<f64> {
        Array2::from_shape_vec((2, 2), v.to_vec()).unwrap()
    }

    /// The two-sample Kolmogorov–Smirnov statistic.
    fn ks(a: &mut [f64], b: &mut [f64]) -> f64 {
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        let (mut i, mut j, mut d) = (0, 0, 0.0f64);
        while i < a.len() && j < b.len() {
            let v = a[i].min(b[j]);
            while i < a.len() && a[i] <= v {
                i += 1;
            }
            while j < b.len() && b[j] <= v {
                j += 1;
            }
            d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
        }
        d
    }

    fn target() -> Gmm {
        Gmm::new(
            array![0.5, 0.3, 0.2],
            array![[0.0, 0.0], [2.5, 0.0], [0.5, 2.5]],
            &[
                mat2(&[1.0, 0.3, 0.3, 0.8]),
                mat2(&[0.6, 0.0, 0.0, 1.0]),
                mat2(&[0.7, -0.2, -0.2, 0.5]),
            ],
        )
        .unwrap()
    }

    /// The component of largest responsibility of each row.
    fn nearest(g: &Gmm, x: &Array2<f64>) -> Vec<usize> {
        x.axis_iter(Axis(0))
            .map(|z| {
                (0..g.components())
                    .max_by(|&a, &b| {
                        let one = |k: usize| {
                            Gmm::new(
                                array![1.0],
                                g.means.slice(ndarray::s![k..k + 1, ..]).to_owned(),
                                &[g.covariance(k)],
                            )
                            .unwrap()
                            .log_prob(z)
                                + g.weights[k].ln()
                        };
                        one(a).total_cmp(&one(b))
                    })
                    .unwrap()
            })
            .collect()
    }

    /// MALA on a known 2-D mixture, 200 chains from N(0, 3²I) (burn-in
    /// 500, 2,000 steps thinned by 20: 20,000 states) against 20,000 exact
    /// draws: the KS statistic of each axis is below the 0.1% critical
    /// value of independent samples, and each component's mass (rows by
    /// largest responsibility) is within 4 standard errors. The walks are
    /// the same whichever ranges of chains run them.
    #[test]
    fn mala_samples_a_known_mixture() {
        let g = target();
        let (chains, kept) = (200, 100);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let starts = Array2::from_shape_fn((chains, 2), |_| {
            let e: f64 = StandardNormal.sample(&mut rng);
            3.0 * e
        });
        let walk = Walk {
            eta: 0.3,
            steps: 20 * kept,
            burn_in: 500,
            thin: 20,
            metropolis: true,
        };
        let c = run(&g, starts.view(), 0..chains, &walk, 1).unwrap();
        let rate = c.acceptance_rate();
        eprintln!("MALA acceptance rate {rate:.3} (η = {})", walk.eta);
        assert!(rate > 0.3 && rate < 1.0, "{rate}");
        let got = c.rows();
        let n = got.nrows();
        let (want, _) = g.sample(n, 2);
        let crit = 1.949 * ((2.0 * n as f64) / (n as f64 * n as f64)).sqrt();
        for j in 0..2 {
            let d = ks(&mut got.column(j).to_vec(), &mut want.column(j).to_vec());
            eprintln!("MALA axis {j}: KS {d:.4} (0.1% critical value {crit:.4})");
            assert!(d < crit, "axis {j}: KS {d} ≥ {crit}");
        }
        let (a, b) = (nearest(&g, &got), nearest(&g, &want));
        for k in 0..3 {
            let pa = a.iter().filter(|&&v| v == k).count() as f64 / n as f64;
            let pb = b.iter().filter(|&&v| v == k).count() as f64 / n as f64;
            let se = (2.0 * pb * (1.0 - pb) / n as f64).sqrt();
            assert!((pa - pb).abs() < 4.0 * se, "component {k}: {pa} vs {pb}");
        }
        // Chains 50..80 run alone are rows 50..80 of the whole run.
        let part = run(&g, starts.slice(ndarray::s![50..80, ..]), 50..80, &walk, 1).unwrap();
        assert_eq!(
            part.states,
            c.states.slice(ndarray::s![50..80, .., ..]).to_owned()
        );
    }

    /// The unadjusted walk's bias, against its closed form: on N(0, σ²)
    /// its stationary variance is σ²/(1 − η/(2σ²)), so the bias shrinks
    /// with η; MALA's variance is σ² at every η.
    #[test]
    fn the_unadjusted_walks_bias_shrinks_with_the_step() {
        let sigma2 = 2.0;
        let g = Gmm::new(
            array![1.0],
            array![[0.0, 0.0]],
            &[mat2(&[sigma2, 0.0, 0.0, sigma2])],
        )
        .unwrap();
        let chains = 400;
        let starts = Array2::zeros((chains, 2));
        let mut biases = vec![];
        for eta in [0.8, 0.4, 0.1] {
            for metropolis in [false, true] {
                let walk = Walk {
                    eta,
                    steps: 4000,
                    burn_in: 200,
                    thin: 40,
                    metropolis,
                };
                let c = run(&g, starts.view(), 0..chains, &walk, 3).unwrap();
                let x = c.rows();
                let var = x.mapv(|v| v * v).mean().unwrap();
                let want = if metropolis {
                    sigma2
                } else {
                    sigma2 / (1.0 - eta / (2.0 * sigma2))
                };
                // Standard error of a variance from n nearly independent
                // normal values: want·√(2/n).
                let se = want * (2.0 / x.len() as f64).sqrt();
                eprintln!("η {eta} MALA {metropolis}: variance {var:.4}, closed form {want:.4} (se {se:.4}), acceptance {:.3}", c.acceptance_rate());
                assert!(
                    (var - want).abs() < 5.0 * se,
                    "η {eta} MALA {metropolis}: {var} vs {want}"
                );
                if !metropolis {
                    biases.push(var - sigma2);
                }
            }
        }
        assert!(biases.windows(2).all(|w| w[1] < w[0]), "{biases:?}");
    }

    /// On the same mixture, the unadjusted walk's bias in the total
    /// variance (trace of the covariance, whose closed form is
    /// Σ w_k(tr Σ_k + ‖μ_k‖²) − ‖Σ w_k μ_k‖²) shrinks as η shrinks.
    #[test]
    fn the_unadjusted_walks_bias_on_a_mixture_shrinks_with_the_step() {
        let g = target();
        let mean = g.weights.dot(&g.means);
        let want: f64 = (0..3)
            .map(|k| {
                let c = g.covariance(k);
                g.weights[k] * (c[[0, 0]] + c[[1, 1]] + g.means.row(k).dot(&g.means.row(k)))
            })
            .sum::<f64>()
            - mean.dot(&mean);
        let starts = g.sample(400, 8).0;
        let mut errors = vec![];
        for eta in [0.8, 0.2, 0.05] {
            let walk = Walk {
                eta,
                steps: (40.0 / eta) as usize * 50,
                burn_in: 0,
                thin: (40.0 / eta) as usize,
                metropolis: false,
            };
            let x = run(&g, starts.view(), 0..400, &walk, 4).unwrap().rows();
            let m = x.mean_axis(Axis(0)).unwrap();
            let got = (&x - &m).mapv(|v| v * v).sum() / (x.nrows() - 1) as f64;
            eprintln!("ULA η {eta}: total variance {got:.4}, exact {want:.4}");
            errors.push((got - want).abs());
        }
        assert!(errors.windows(2).all(|w| w[1] < w[0]), "{errors:?}");
    }

    /// Bad settings: η ≤ 0, thin 0, too few steps to keep one state.
    #[test]
    fn bad_walks_are_refused() {
        let w = |eta, steps, thin| Walk {
            eta,
            steps,
            burn_in: 0,
            thin,
            metropolis: false,
        };
        let e = w(0.0, 10, 1).check("sample").unwrap_err().to_string();
        assert!(e.contains("sample.eta") && e.contains("> 0, got 0"), "{e}");
        let e = w(-1.0, 10, 1).check("sample").unwrap_err().to_string();
        assert!(e.contains("sample.eta"), "{e}");
        let e = w(0.1, 10, 0).check("sample").unwrap_err().to_string();
        assert!(e.contains("sample.thin"), "{e}");
        let e = w(0.1, 3, 5).check("sample").unwrap_err().to_string();
        assert!(e.contains("3 steps thinned by 5 keep no state"), "{e}");
    }
}
