//! Landmark selection: a small subset of points whose Rips persistence
//! approximates that of the whole cloud.
//!
//! With covering radius ε (every point within ε of a landmark), the landmark
//! diagram is within bottleneck distance 2ε of the full one (stability of
//! Rips persistence under Gromov–Hausdorff perturbation), so ε is returned
//! with the indices and written beside every landmark diagram.

use ndarray::ArrayView2;
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// How landmarks are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandmarkMethod {
    /// Farthest-point (maxmin) sampling from point 0: each new landmark is the
    /// point farthest from those chosen (ties: the smallest index).
    MaxMin,
    /// Uniform sampling without replacement with a seed.
    Random { seed: u64 },
}

/// Chosen landmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct Landmarks {
    /// Indices into the cloud, in the order chosen (maxmin) or increasing
    /// (random). Maxmin returns fewer than asked when the cloud has fewer
    /// distinct points.
    pub indices: Vec<usize>,
    /// max over points of the distance to the nearest landmark.
    pub covering_radius: f64,
}

/// The squared Euclidean distance of two rows, summed in order (the same
/// arithmetic everywhere, so distributed and serial selection agree bit for
/// bit).
#[inline]
pub fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}

/// Selects `m` landmarks of the rows of `x` (all of them when m ≥ n).
pub fn select(x: ArrayView2<'_, f64>, m: usize, method: LandmarkMethod) -> Result<Landmarks> {
    let n = x.nrows();
    if n == 0 {
        return Err(Error::invalid("landmarks", "the point cloud is empty"));
    }
    if m == 0 {
        return Err(Error::invalid(
            "landmarks",
            "the number of landmarks must be at least 1",
        ));
    }
    let x = x.as_standard_layout();
    let rows: Vec<&[f64]> = x
        .rows()
        .into_iter()
        .map(|r| r.to_slice().expect("standard layout"))
        .collect();
    let m = m.min(n);
    match method {
        LandmarkMethod::MaxMin => Ok(maxmin(&rows, m)),
        LandmarkMethod::Random { seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut indices = sample(&mut rng, n, m).into_vec();
            indices.sort_unstable();
            let mut nearest = vec![f64::INFINITY; n];
            for &l in &indices {
                update(&rows, &mut nearest, l);
            }
            Ok(Landmarks {
                indices,
                covering_radius: nearest.iter().copied().fold(0.0, f64::max).sqrt(),
            })
        }
    }
}

fn maxmin(rows: &[&[f64]], m: usize) -> Landmarks {
    let n = rows.len();
    let mut nearest = vec![f64::INFINITY; n];
    let mut indices = Vec::with_capacity(m);
    let mut next = 0usize;
    loop {
        indices.push(next);
        update(rows, &mut nearest, next);
        let (far, d2) = farthest(&nearest);
        // Stop early when every point coincides with a landmark: more
        // landmarks would only repeat points.
        if indices.len() == m || d2 == 0.0 {
            return Landmarks {
                indices,
                covering_radius: d2.sqrt(),
            };
        }
        next = far;
    }
}

/// nearest[i] = min(nearest[i], |x_i − x_l|²).
fn update(rows: &[&[f64]], nearest: &mut [f64], l: usize) {
    update_nearest(rows, nearest, rows[l]);
}

/// nearest[i] = min(nearest[i], |x_i − landmark|²), in parallel over rows
/// (shared with the distributed selection of `dist::landmarks`, so both
/// do the same arithmetic).
pub fn update_nearest(rows: &[&[f64]], nearest: &mut [f64], xl: &[f64]) {
    nearest
        .par_iter_mut()
        .zip(rows.par_iter())
        .for_each(|(d, r)| {
            let s = squared_distance(r, xl);
            if s < *d {
                *d = s;
            }
        });
}

/// The index with the largest value (ties: the smallest index) and the value.
pub fn farthest(nearest: &[f64]) -> (usize, f64) {
    nearest.par_iter().enumerate().map(|(i, &d)| (i, d)).reduce(
        || (usize::MAX, f64::NEG_INFINITY),
        |a, b| {
            if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
                b
            } else {
                a
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    /// Maxmin by the book, on a full distance table.
    fn brute_maxmin(x: &Array2<f64>, m: usize) -> (Vec<usize>, f64) {
        let n = x.nrows();
        let d = |i: usize, j: usize| -> f64 {
            x.row(i)
                .iter()
                .zip(x.row(j).iter())
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut chosen = vec![0usize];
        while chosen.len() < m {
            let mut best = (0usize, -1.0f64);
            for i in 0..n {
                let di = chosen
                    .iter()
                    .map(|&l| d(i, l))
                    .fold(f64::INFINITY, f64::min);
                if di > best.1 {
                    best = (i, di);
                }
            }
            if best.1 == 0.0 {
                break;
            }
            chosen.push(best.0);
        }
        let eps = (0..n)
            .map(|i| {
                chosen
                    .iter()
                    .map(|&l| d(i, l))
                    .fold(f64::INFINITY, f64::min)
            })
            .fold(0.0, f64::max);
        (chosen, eps)
    }

    #[test]
    fn maxmin_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for case in 0..30 {
            let n = rng.random_range(1..80);
            // Integer coordinates make ties.
            let x = Array2::from_shape_fn((n, 3), |_| {
                if case % 2 == 0 {
                    rng.random_range(0..3) as f64
                } else {
                    rng.random()
                }
            });
            let m = rng.random_range(1..=n);
            let got = select(x.view(), m, LandmarkMethod::MaxMin).unwrap();
            let (want, eps) = brute_maxmin(&x, m);
            assert_eq!(got.indices, want, "case {case}");
            assert!(
                (got.covering_radius - eps).abs() <= 1e-12 * eps.max(1.0),
                "case {case}"
            );
        }
    }

    #[test]
    fn random_is_seeded_and_covers() {
        let x = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 13) % 17) as f64);
        let a = select(x.view(), 20, LandmarkMethod::Random { seed: 1 }).unwrap();
        assert_eq!(
            a,
            select(x.view(), 20, LandmarkMethod::Random { seed: 1 }).unwrap()
        );
        assert_ne!(
            a.indices,
            select(x.view(), 20, LandmarkMethod::Random { seed: 2 })
                .unwrap()
                .indices
        );
        assert_eq!(a.indices.len(), 20);
        assert!(a.indices.windows(2).all(|w| w[0] < w[1]));
        let all = select(x.view(), 500, LandmarkMethod::Random { seed: 1 }).unwrap();
        assert_eq!((all.indices.len(), all.covering_radius), (200, 0.0));
    }

    #[test]
    fn bad_requests() {
        let x = Array2::<f64>::zeros((0, 2));
        assert!(select(x.view(), 3, LandmarkMethod::MaxMin).is_err());
        let x = Array2::<f64>::zeros((4, 2));
        assert!(select(x.view(), 0, LandmarkMethod::MaxMin).is_err());
    }
}
