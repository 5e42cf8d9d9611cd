//! Geodesics under a decoder's pull-back metric: the discrete curve
//! z_0 … z_{K−1} with fixed ends that minimises the energy
//! E = (K − 1)·Σ_i ‖g(z_{i+1}) − g(z_i)‖² of its decoded points, whose
//! minimisers are evenly paced discretisations of shortest curves on the
//! decoded manifold (for a fixed K, E ≥ L², with equality for constant
//! speed). Adam moves the interior points from a start path
//! ([`tglml::sample::path`]: a straight line, or the shortest path through
//! a k-NN graph of training codes); an optional barrier −λ·Σ log p(z_i)
//! keeps them where a latent density is high.

use crate::train::optim::{Adam, AdamConfig};
use crate::train::topo_loss::to_vec;
use ndarray::{Array2, ArrayView2};
use tch::{Kind, Tensor};
use tglml::error::{Error, Result};
use tglml::sample::density::Density;

/// A decoder g: latent rows (n × l) → data rows (n × D), differentiable.
pub type Decoder<'a> = dyn Fn(&Tensor) -> Tensor + 'a;

/// The settings of the optimisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Adam steps.
    pub steps: usize,
    /// Adam's learning rate (in latent units).
    pub lr: f64,
    /// Weight λ of the density barrier (0: none).
    pub barrier: f64,
}

/// A path and what it measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The latent points (K × l).
    pub z: Array2<f64>,
    /// Their decoded points (K × D).
    pub x: Array2<f64>,
    /// (K − 1)·Σ‖g(z_{i+1}) − g(z_i)‖² after each step (the first entry:
    /// the start path's).
    pub energies: Vec<f64>,
    /// The length of the decoded curve, Σ‖g(z_{i+1}) − g(z_i)‖ over the
    /// path refined 16 times (each latent segment cut into 16 straight
    /// pieces), so that it approaches the continuous curve's length.
    pub length: f64,
}

/// Rows as a float64 CPU tensor.
pub(crate) fn to_tensor(a: ArrayView2<f64>) -> Tensor {
    let (r, c) = a.dim();
    Tensor::from_slice(a.as_standard_layout().as_slice().expect("standard layout"))
        .view([r as i64, c as i64])
}

fn to_array(t: &Tensor) -> Array2<f64> {
    let s = t.size();
    Array2::from_shape_vec((s[0] as usize, s[1] as usize), to_vec(t)).expect("its shape")
}

/// (K − 1)·Σ‖x_{i+1} − x_i‖² of decoded rows x (K × D).
fn energy(x: &Tensor) -> Tensor {
    let k = x.size()[0];
    let d = x.narrow(0, 1, k - 1) - x.narrow(0, 0, k - 1);
    d.square().sum(Kind::Double) * ((k - 1) as f64)
}

/// The decoded length of the latent polyline z, each segment cut into
/// `refine` pieces.
pub fn decoded_length(decoder: &Decoder, z: ArrayView2<f64>, refine: usize) -> f64 {
    let (k, l) = z.dim();
    let m = (k - 1) * refine + 1;
    let fine = Array2::from_shape_fn((m, l), |(i, j)| {
        let seg = (i / refine).min(k - 2);
        let t = (i - seg * refine) as f64 / refine as f64;
        z[[seg, j]] * (1.0 - t) + z[[seg + 1, j]] * t
    });
    let x = tch::no_grad(|| decoder(&to_tensor(fine.view())));
    let d = x.narrow(0, 1, m as i64 - 1) - x.narrow(0, 0, m as i64 - 1);
    d.square()
        .sum_dim_intlist(1, false, Kind::Double)
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[])
}

/// Minimises the energy from `start` (K × l, K ≥ 3; its first and last
/// rows are the fixed ends) with Adam; `density` is the barrier's (read
/// when `s.barrier > 0`).
pub fn geodesic(
    decoder: &Decoder,
    start: ArrayView2<f64>,
    s: &Settings,
    density: Option<&dyn Density>,
) -> Result<Path> {
    let k = start.nrows();
    if k < 3 {
        return Err(Error::invalid(
            "interpolate.points",
            format!("a geodesic needs at least 3 points (2 ends and one to move), got {k}"),
        ));
    }
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return Err(Error::invalid(
            "interpolate.lr",
            format!("must be a finite number > 0, got {}", s.lr),
        ));
    }
    if s.barrier > 0.0 && density.is_none() {
        return Err(Error::invalid(
            "interpolate.barrier",
            "a density barrier needs a latent density",
        ));
    }
    let all = to_tensor(start);
    let first = all.narrow(0, 0, 1);
    let last = all.narrow(0, k as i64 - 1, 1);
    let inner = all
        .narrow(0, 1, k as i64 - 2)
        .copy()
        .set_requires_grad(true);
    let params = [inner.shallow_clone()];
    let mut adam = Adam::new(
        &params,
        AdamConfig {
            lr: s.lr,
            ..AdamConfig::default()
        },
    )?;
    let path = |inner: &Tensor| Tensor::cat(&[&first, inner, &last], 0);
    let mut energies = Vec::with_capacity(s.steps + 1);
    for step in 0..=s.steps {
        let e = energy(&decoder(&path(&inner)));
        energies.push(e.double_value(&[]));
        if step == s.steps {
            break;
        }
        let loss = if s.barrier > 0.0 {
            // The gradient of −λ·Σ log p(z_i) through a linear surrogate
            // (the density is plain Rust, its gradient known).
            let zi = to_array(&inner.detach());
            let d = density.expect("checked above");
            let mut g = Array2::<f64>::zeros(zi.dim());
            for (i, row) in zi.rows().into_iter().enumerate() {
                g.row_mut(i).assign(&d.grad_log_prob(row));
            }
            e - (&inner * to_tensor(g.view())).sum(Kind::Double) * s.barrier
        } else {
            e
        };
        Adam::zero_grad(&params);
        loss.backward();
        adam.step(&params);
    }
    let z = to_array(&path(&inner.detach()));
    let x = to_array(&tch::no_grad(|| decoder(&to_tensor(z.view()))));
    let length = decoded_length(decoder, z.view(), 16);
    Ok(Path {
        z,
        x,
        energies,
        length,
    })
}

/// A path that is not optimised (linear, slerp, a graph path): its
/// decoded points, energy and length in the same measures.
pub fn measure(decoder: &Decoder, z: Array2<f64>) -> Path {
    let t = to_tensor(z.view());
    let xt = tch::no_grad(|| decoder(&t));
    let energies = vec![energy(&xt).double_value(&[])];
    let length = decoded_length(decoder, z.view(), 16);
    Path {
        x: to_array(&xt),
        z,
        energies,
        length,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use tglml::sample::path;

    /// The sphere's chart (θ, φ) ↦ (sin θ cos φ, sin θ sin φ, cos θ).
    fn sphere(z: &Tensor) -> Tensor {
        let (th, ph) = (z.select(1, 0), z.select(1, 1));
        Tensor::stack(&[th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], 1)
    }

    /// On the unit sphere, between two points of latitude 45° and 120°
    /// apart in longitude: the straight latent line follows the parallel
    /// (longer than the great circle by over 5%); the geodesic's decoded
    /// length is within 1% of the great-circle distance arccos(a·b).
    #[test]
    fn the_geodesic_on_a_sphere_is_the_great_circle() {
        let q = std::f64::consts::FRAC_PI_4;
        let (a, b) = (array![q, 0.0], array![q, 2.0 * std::f64::consts::PI / 3.0]);
        let start = path::linear(a.view(), b.view(), 24);
        let line = measure(&sphere, start.clone());
        let xa = [q.sin(), 0.0, q.cos()];
        let xb = [q.sin() * b[1].cos(), q.sin() * b[1].sin(), q.cos()];
        let great = (xa[0] * xb[0] + xa[1] * xb[1] + xa[2] * xb[2]).acos();
        assert!(line.length > 1.05 * great, "{} vs {great}", line.length);
        let s = Settings {
            steps: 1500,
            lr: 0.01,
            barrier: 0.0,
        };
        let g = geodesic(&sphere, start.view(), &s, None).unwrap();
        eprintln!(
            "sphere: great circle {great:.5}, straight line {:.5}, geodesic {:.5} (energy {:.5} → {:.5})",
            line.length,
            g.length,
            g.energies[0],
            g.energies.last().unwrap()
        );
        assert!(
            (g.length - great).abs() < 0.01 * great,
            "{} vs {great}",
            g.length
        );
        assert_eq!(g.z.row(0), a);
        assert_eq!(g.z.row(23), b);
        assert!(g.energies.last().unwrap() < &g.energies[0]);
    }
    /// A wall x₃ = 4·exp(−z₁²/0.09)·(1 − exp(−(z₂ − 1.5)²/0.09)) along
    /// z₁ = 0 with a gap (a thin neck) at z₂ = 1.5, and codes in two
    /// clusters joined through the neck: the straight line between the
    /// clusters climbs the wall; the geodesic from the k-NN graph's path
    /// passes the neck (never higher than 0.5) and is shorter.
    #[test]
    fn the_geodesic_passes_a_neck_that_the_straight_line_misses() {
        let wall = |z: &Tensor| {
            let (u, v) = (z.select(1, 0), z.select(1, 1));
            let h = (-(&u * &u) / 0.09).exp() * (1.0 - (-(&v - 1.5).square() / 0.09).exp()) * 4.0;
            Tensor::stack(&[u, v, h], 1)
        };
        let mut codes = vec![];
        for i in 0..200 {
            let (r, t) = (0.5 * ((i % 10) as f64 / 10.0), i as f64 * 2.399);
            codes.push([-1.5 + r * t.cos(), r * t.sin()]);
            codes.push([1.5 + r * t.cos(), r * t.sin()]);
        }
        let corners = [[-1.5, 0.0], [-0.5, 1.5], [0.5, 1.5], [1.5, 0.0]];
        for w in corners.windows(2) {
            for i in 0..40 {
                let t = i as f64 / 40.0;
                codes.push([
                    w[0][0] * (1.0 - t) + w[1][0] * t,
                    w[0][1] * (1.0 - t) + w[1][1] * t,
                ]);
            }
        }
        let codes = Array2::from_shape_vec((codes.len(), 2), codes.concat()).unwrap();
        let (a, b) = (array![-1.5, 0.0], array![1.5, 0.0]);
        let start =
            path::graph_path(codes.view(), 8, a.view(), b.view(), 32, "interpolate.k").unwrap();
        let s = Settings {
            steps: 1000,
            lr: 0.01,
            barrier: 0.0,
        };
        let g = geodesic(&wall, start.view(), &s, None).unwrap();
        let line = measure(&wall, path::linear(a.view(), b.view(), 32));
        let top = |p: &Path| p.x.column(2).fold(0.0f64, |m, &v| m.max(v));
        eprintln!(
            "neck: straight line length {:.3}, height {:.3}; geodesic length {:.3}, height {:.3}",
            line.length,
            top(&line),
            g.length,
            top(&g)
        );
        assert!(top(&line) > 3.0, "{}", top(&line));
        assert!(top(&g) < 0.5, "{}", top(&g));
        assert!(g.length < line.length);
    }
    /// The density barrier: with the identity decoder the geodesic is the
    /// straight line (its midpoint stays on it); a barrier with a density
    /// centred above the line pulls the midpoint up, and a stronger one
    /// further.
    #[test]
    fn the_density_barrier_pulls_the_path_to_the_density() {
        use tglml::sample::density::Gmm;
        let id = |z: &Tensor| z.shallow_clone();
        let (a, b) = (array![-1.0, 0.0], array![1.0, 0.0]);
        let start = path::linear(a.view(), b.view(), 11);
        let p = Gmm::new(
            array![1.0],
            array![[0.0, 1.0]],
            &[array![[0.25, 0.0], [0.0, 0.25]]],
        )
        .unwrap();
        let mid = |barrier: f64| {
            let s = Settings {
                steps: 800,
                lr: 0.01,
                barrier,
            };
            let g = geodesic(&id, start.view(), &s, Some(&p)).unwrap();
            g.z[[5, 1]]
        };
        let (m0, m1, m2) = (mid(0.0), mid(0.02), mid(0.1));
        eprintln!("barrier: midpoint height {m0:.4} (0), {m1:.4} (0.02), {m2:.4} (0.1)");
        assert!(m0.abs() < 1e-9, "{m0}");
        assert!(m1 > 0.01 && m2 > m1, "{m1} {m2}");
        let e = geodesic(
            &id,
            start.view(),
            &Settings {
                steps: 1,
                lr: 0.01,
                barrier: 1.0,
            },
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("interpolate.barrier"), "{e}");
    }
}
