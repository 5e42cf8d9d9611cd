//! A diffusion model's own density on the space it generates in (latent
//! diffusion: the VAE's latent space), as a [`Density`] for the Langevin
//! walks:
//! - ∇ log p(z) is the model's score at its lowest noise level i₀,
//!   −ε̂(z, i₀)/√(1 − ᾱ_{i₀}) (one evaluation of the denoiser);
//! - log p(z) follows z along the deterministic DDIM map (η = 0, the
//!   discretised probability-flow ODE) from level i₀ up to T − 1, where the
//!   density is N(0, I), and adds the log-determinants of the steps'
//!   Jacobians (change of variables). Each Jacobian takes d backward passes,
//!   so this is for low-dimensional spaces (latent codes); it carries the
//!   discretisation error of `steps` DDIM steps.

use ndarray::{Array1, Array2, ArrayView1};
use tch::{Kind, Tensor};

use crate::train::diffusion::NoiseSchedule;
use crate::train::topo_loss::to_vec;
use tglml::sample::density::Density;

pub use crate::train::diffusion::Eps;

/// A diffusion model's density (module doc).
pub struct ScoreDensity<'a> {
    sched: NoiseSchedule,
    eps: &'a Eps<'a>,
    dim: usize,
    /// The levels of the DDIM map, increasing from i₀ = levels[0].
    levels: Vec<usize>,
}

impl<'a> ScoreDensity<'a> {
    /// The density of ε̂ under `sched` in `dim` dimensions, log p through
    /// `steps` DDIM levels.
    pub fn new(sched: NoiseSchedule, eps: &'a Eps<'a>, dim: usize, steps: usize) -> Self {
        let levels = sched.ddim_levels(steps.max(2));
        ScoreDensity {
            sched,
            eps,
            dim,
            levels,
        }
    }

    fn row(&self, z: ArrayView1<f64>) -> Tensor {
        Tensor::from_slice(&z.to_vec())
            .view([1, self.dim as i64])
            .to_kind(Kind::Double)
    }

    /// ε̂ at level i and its Jacobian ∂ε̂/∂x (d × d) at one point.
    fn eps_jacobian(&self, x: &Array1<f64>, i: usize) -> (Array1<f64>, Array2<f64>) {
        let d = self.dim;
        let t = self.row(x.view()).set_requires_grad(true);
        let e = (self.eps)(&t, i);
        let mut jac = Array2::zeros((d, d));
        for j in 0..d {
            let g = Tensor::run_backward(
                &[e.select(1, j as i64).sum(Kind::Double)],
                &[&t],
                true,
                false,
            )
            .pop()
            .expect("one gradient");
            jac.row_mut(j).assign(&Array1::from(to_vec(&g)));
        }
        (Array1::from(to_vec(&e)), jac)
    }
}

impl ScoreDensity<'_> {
    /// The score −ε̂/√(1 − ᾱ_{i₀}) from ε̂ at the lowest level.
    fn score_of(&self, eps: Array1<f64>) -> Array1<f64> {
        eps * (-1.0 / (1.0 - self.sched.alpha_bar[self.levels[0]]).sqrt())
    }
}

impl Density for ScoreDensity<'_> {
    fn dim(&self) -> usize {
        self.dim
    }

    fn grad_log_prob(&self, z: ArrayView1<f64>) -> Array1<f64> {
        let i0 = self.levels[0];
        let e = tch::no_grad(|| (self.eps)(&self.row(z), i0));
        self.score_of(Array1::from(to_vec(&e)))
    }

    fn log_prob_grad(&self, z: ArrayView1<f64>) -> (f64, Array1<f64>) {
        let d = self.dim;
        let mut x = z.to_owned();
        let mut log_det = 0.0;
        // ε̂ at z itself (the first step's), for the score.
        let mut at_z = None;
        for w in self.levels.windows(2) {
            let (a, b) = (self.sched.alpha_bar[w[0]], self.sched.alpha_bar[w[1]]);
            let (e, jac) = self.eps_jacobian(&x, w[0]);
            if at_z.is_none() {
                at_z = Some(e.clone());
            }
            // x' = √ᾱ'·x̂₀ + √(1 − ᾱ')·ε̂, x̂₀ = (x − √(1 − ᾱ)·ε̂)/√ᾱ:
            // x' = c·x + k·ε̂, with c = √(ᾱ'/ᾱ), k = √(1 − ᾱ') − c·√(1 − ᾱ).
            let c = (b / a).sqrt();
            let k = (1.0 - b).sqrt() - c * (1.0 - a).sqrt();
            let j = Array2::<f64>::eye(d) * c + jac * k;
            let jt = Tensor::from_slice(j.as_slice().expect("standard layout"))
                .view([d as i64, d as i64]);
            log_det += jt.slogdet().1.double_value(&[]);
            x = &x * c + &e * k;
        }
        let normal = -0.5 * (x.dot(&x) + d as f64 * (2.0 * std::f64::consts::PI).ln());
        let score = match at_z {
            Some(e) => self.score_of(e),
            None => self.grad_log_prob(z),
        };
        (normal + log_det, score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::diffusion::tests::gaussian_eps;
    use ndarray::array;
    use tglml::config::{DiffusionConfig, Sampler, Schedule};

    /// For data N(m, s²I), the exact ε̂ at level i is
    /// √(1 − ᾱ)·(x − √ᾱ·m)/(ᾱ·s² + 1 − ᾱ), and the density at level i₀ is
    /// N(√ᾱ·m, ᾱ·s² + 1 − ᾱ): the score is its gradient exactly, and
    /// log p through all 1,000 levels is its log within 0.01, closer than
    /// through 50 (the error is DDIM's discretisation).
    #[test]
    fn the_score_density_of_gaussian_data_has_its_closed_form() {
        let c = DiffusionConfig {
            timesteps: 1000,
            schedule: Schedule::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            time_dim: 8,
            ema: 0.0,
            topo_t_max: 10,
            sampler: Sampler::Ddim,
            sample_steps: 50,
            clip_x0: vec![],
        };
        let sched = NoiseSchedule::new(&c);
        let (m, s2) = (array![1.0, -0.5], 0.3f64);
        let eps = gaussian_eps(&sched, Tensor::from_slice(&m.to_vec()).view([1, 2]), s2);
        let p = ScoreDensity::new(sched.clone(), &eps, 2, 1000);
        let coarse = ScoreDensity::new(sched.clone(), &eps, 2, 50);
        let a0 = sched.alpha_bar[0];
        let v = a0 * s2 + 1.0 - a0;
        let exact = |z: &Array1<f64>| {
            let d = z - &(&m * a0.sqrt());
            -0.5 * d.dot(&d) / v - (2.0 * std::f64::consts::PI * v).ln()
        };
        let points = [array![1.0, -0.5], array![1.5, 0.0], array![0.2, -1.2]];
        for z in &points {
            let (lp, g) = p.log_prob_grad(z.view());
            let want_g = -(z - &(&m * a0.sqrt())) / v;
            assert!(
                (&g - &want_g).iter().all(|d| d.abs() < 1e-9),
                "{g} vs {want_g}"
            );
            let lc = coarse.log_prob(z.view());
            eprintln!(
                "score density at {z}: log p {lp:.5} (1,000 levels), {lc:.5} (50 levels), exact {:.5}",
                exact(z)
            );
            assert!((lp - exact(z)).abs() < 0.01, "{lp} vs {}", exact(z));
            assert!((lp - exact(z)).abs() < (lc - exact(z)).abs(), "{lp} {lc}");
        }
        // The unadjusted walk on it (one thread: libtorch tensors are not
        // shared between threads) draws the density: 100 chains from the
        // origin, mean and variance within 5 standard errors of the
        // walk's own stationary law N(√ᾱ·m, v/(1 − η/(2v))).
        let walk = tglml::sample::langevin::Walk {
            eta: 0.02,
            steps: 2000,
            burn_in: 300,
            thin: 40,
            metropolis: false,
        };
        let starts = Array2::zeros((100, 2));
        let x = tglml::sample::langevin::run_serial(&p, starts.view(), 0..100, &walk, 7)
            .unwrap()
            .rows();
        let want_v = v / (1.0 - walk.eta / (2.0 * v));
        let n = x.nrows() as f64;
        for j in 0..2 {
            let col = x.column(j);
            let mean = col.mean().unwrap();
            let var = col.mapv(|u| (u - mean) * (u - mean)).sum() / (n - 1.0);
            let want_m = m[j] * a0.sqrt();
            eprintln!("ULA on the score density, axis {j}: mean {mean:.4} ({want_m:.4}), variance {var:.4} ({want_v:.4})");
            assert!(
                (mean - want_m).abs() < 5.0 * (want_v / n).sqrt(),
                "{mean} vs {want_m}"
            );
            assert!(
                (var - want_v).abs() < 5.0 * want_v * (2.0 / n).sqrt(),
                "{var} vs {want_v}"
            );
        }
    }
}
