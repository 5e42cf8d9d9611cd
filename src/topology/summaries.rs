//! Vectorisations of persistence diagrams: landscapes, Betti curves,
//! persistence images, total persistence and persistence entropy; L2
//! distances between landscapes and Betti curves. Conventions follow
//! `gudhi.representations` (tests/fixtures/diagrams/README.md), except where
//! stated.
//!
//! Only finite bars enter landscapes, images, entropy and total
//! persistence; Betti curves count essential bars too ([b, ∞) is alive for
//! every t ≥ b).

use crate::error::{Error, Result};

/// `n` evenly spaced values from `lo` to `hi`, both included (numpy's
/// linspace: `lo + i·step`, the last one exactly `hi`).
pub fn grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![lo],
        _ => {
            let step = (hi - lo) / (n - 1) as f64;
            let mut g: Vec<f64> = (0..n).map(|i| i as f64 * step + lo).collect();
            g[n - 1] = hi;
            g
        }
    }
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points.iter().copied().filter(|p| p.1.is_finite())
}

/// λ_i(t) = max(0, min(t − b_i, d_i − t)) = max(0, h_i − |t − m_i|).
#[inline]
fn tent(p: (f64, f64), t: f64) -> f64 {
    let (m, h) = ((p.0 + p.1) / 2.0, (p.1 - p.0) / 2.0);
    (h - (t - m).abs()).max(0.0)
}

/// The first `k` persistence landscapes sampled on `grid`: `out[level][i]`
/// = the (level + 1)-th largest tent value at `grid[i]`. This is the usual
/// landscape; GUDHI's `Landscape` is √2 times it.
pub fn landscapes_sampled(points: &[(f64, f64)], k: usize, grid: &[f64]) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; grid.len()]; k];
    let pts: Vec<(f64, f64)> = finite(points).collect();
    let mut top = Vec::with_capacity(k + 1);
    for (i, &t) in grid.iter().enumerate() {
        top.clear();
        for &p in &pts {
            let v = tent(p, t);
            if v > 0.0 && (top.len() < k || v > *top.last().unwrap_or(&0.0)) {
                let at = top.partition_point(|&x| x >= v);
                top.insert(at, v);
                top.truncate(k);
            }
        }
        for (level, &v) in top.iter().enumerate() {
            out[level][i] = v;
        }
    }
    out
}

/// A piecewise-linear function given by its breakpoints (t, value), sorted
/// by t, zero outside them.
pub type PiecewiseLinear = Vec<(f64, f64)>;

/// The first `k` landscapes exactly, as piecewise-linear functions. Between
/// consecutive candidate abscissae (the bars' births, deaths and midpoints,
/// and the crossings of a rising and a falling tent side) every tent is
/// linear and their order is fixed, so the k-th largest is linear there.
pub fn landscapes_exact(points: &[(f64, f64)], k: usize) -> Vec<PiecewiseLinear> {
    let pts: Vec<(f64, f64)> = finite(points).filter(|p| p.1 > p.0).collect();
    let mut xs: Vec<f64> = Vec::with_capacity(3 * pts.len() + pts.len() * pts.len());
    for &(b, d) in &pts {
        xs.extend([b, d, (b + d) / 2.0]);
    }
    for &(b1, d1) in &pts {
        for &(b2, d2) in &pts {
            // Rising side of the first meets the falling side of the second.
            let t = (b1 + d2) / 2.0;
            if t > b1 && t < d2 && t > b2.max(b1) && t < d1.min(d2) {
                xs.push(t);
            }
        }
    }
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let sampled = landscapes_sampled(&pts, k, &xs);
    sampled
        .into_iter()
        .map(|values| {
            // Keep the breakpoints where the slope changes.
            let mut f: PiecewiseLinear = Vec::new();
            for (i, (&t, &v)) in xs.iter().zip(&values).enumerate() {
                if i > 0 && i + 1 < xs.len() {
                    let (t0, v0) = (xs[i - 1], values[i - 1]);
                    let (t1, v1) = (xs[i + 1], values[i + 1]);
                    let slope_in = (v - v0) / (t - t0);
                    let slope_out = (v1 - v) / (t1 - t);
                    if (slope_in - slope_out).abs() <= 1e-12 * (1.0 + slope_in.abs()) {
                        continue;
                    }
                }
                f.push((t, v));
            }
            // Drop the zero stretches at the ends beyond the first/last knot.
            f
        })
        .collect()
}

/// Evaluates a piecewise-linear function at t.
pub fn evaluate(f: &PiecewiseLinear, t: f64) -> f64 {
    if f.is_empty() || t <= f[0].0 || t >= f[f.len() - 1].0 {
        return match f.first() {
            Some(&(t0, v0)) if t == t0 => v0,
            _ => match f.last() {
                Some(&(t1, v1)) if t == t1 => v1,
                _ => 0.0,
            },
        };
    }
    let i = f.partition_point(|&(x, _)| x <= t);
    let ((t0, v0), (t1, v1)) = (f[i - 1], f[i]);
    v0 + (v1 - v0) * (t - t0) / (t1 - t0)
}

/// The L2 distance ∫ (f − g)² dt, square-rooted, of two piecewise-linear
/// functions, computed exactly (on each common linear piece the square of
/// a linear function integrates in closed form).
pub fn l2_exact(f: &PiecewiseLinear, g: &PiecewiseLinear) -> f64 {
    let mut xs: Vec<f64> = f.iter().chain(g.iter()).map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let mut total = 0.0;
    for w in xs.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (u, v) = (
            evaluate(f, a) - evaluate(g, a),
            evaluate(f, b) - evaluate(g, b),
        );
        total += (b - a) * (u * u + u * v + v * v) / 3.0;
    }
    total.sqrt()
}

/// The discrete L2 distance of two sampled curves (or stacks of curves) on
/// the same grid: sqrt(Σ (a − b)²). Both must have the same shape.
pub fn l2_sampled(a: &[Vec<f64>], b: &[Vec<f64>]) -> Result<f64> {
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.len() != y.len()) {
        return Err(Error::invalid(
            "L2 distance",
            "the curves are not on the same grid",
        ));
    }
    Ok(a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)))
        .sum::<f64>()
        .sqrt())
}

/// The Betti curve on `grid`: the number of bars with b ≤ t < d (GUDHI's
/// convention), essential bars included.
pub fn betti_curve(points: &[(f64, f64)], grid: &[f64]) -> Vec<f64> {
    grid.iter()
        .map(|&t| points.iter().filter(|&&(b, d)| b <= t && t < d).count() as f64)
        .collect()
}

/// Parameters of a persistence image (GUDHI's `PersistenceImage` with the
/// weight "persistence").
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Gaussian standard deviation σ.
    pub bandwidth: f64,
    /// Pixels along birth (x) and along persistence (y).
    pub resolution: (usize, usize),
    /// (birth lo, birth hi, persistence lo, persistence hi).
    pub range: (f64, f64, f64, f64),
}

/// The persistence image in (birth, persistence) coordinates, weighted by
/// persistence: pixel (j, i) = Σ pers · exp(−((b − x_i)² + (pers − y_j)²)
/// / (2σ²)) / (2πσ²), with x and y the linspace grids of the range (values
/// at grid points, as GUDHI). Row-major, persistence rows, birth fastest.
pub fn persistence_image(points: &[(f64, f64)], spec: &ImageSpec) -> Vec<f64> {
    let (rx, ry) = spec.resolution;
    let xs = grid(spec.range.0, spec.range.1, rx);
    let ys = grid(spec.range.2, spec.range.3, ry);
    let s2 = 2.0 * spec.bandwidth * spec.bandwidth;
    let norm = spec.bandwidth * spec.bandwidth * 2.0 * std::f64::consts::PI;
    let mut img = vec![0.0; rx * ry];
    for (b, d) in finite(points) {
        let pers = d - b;
        for (j, &y) in ys.iter().enumerate() {
            let gy = (pers - y) * (pers - y);
            for (i, &x) in xs.iter().enumerate() {
                let gx = (b - x) * (b - x);
                img[j * rx + i] += pers * (-(gx + gy) / s2).exp() / norm;
            }
        }
    }
    img
}

/// Σ (d − b)^p over finite bars.
pub fn total_persistence(points: &[(f64, f64)], p: f64) -> f64 {
    finite(points).map(|(b, d)| (d - b).powf(p)).sum()
}

/// Persistence entropy −Σ q ln q, q = (d − b)/Σ(d − b), over finite bars;
/// zero-persistence bars contribute 0 (GUDHI returns NaN for them).
pub fn entropy(points: &[(f64, f64)]) -> f64 {
    let total = total_persistence(points, 1.0);
    if total <= 0.0 {
        return 0.0;
    }
    -finite(points)
        .map(|(b, d)| (d - b) / total)
        .filter(|&q| q > 0.0)
        .map(|q| q * q.ln())
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn grid_is_numpy_linspace() {
        assert_eq!(grid(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(grid(2.0, 3.0, 1), vec![2.0]);
        assert!(grid(0.0, 1.0, 0).is_empty());
    }

    #[test]
    fn exact_landscapes_agree_with_dense_sampling() {
        let mut rng = ChaCha8Rng::seed_from_u64(51);
        for _ in 0..30 {
            let n = rng.random_range(0..12);
            let pts: Vec<(f64, f64)> = (0..n)
                .map(|_| {
                    let b: f64 = rng.random();
                    (b, b + rng.random::<f64>())
                })
                .collect();
            let exact = landscapes_exact(&pts, 3);
            let g = grid(-0.5, 2.5, 301);
            let sampled = landscapes_sampled(&pts, 3, &g);
            for level in 0..3 {
                for (i, &t) in g.iter().enumerate() {
                    let e = evaluate(&exact[level], t);
                    assert!(
                        (e - sampled[level][i]).abs() < 1e-12,
                        "level {level}, t {t}: {e} vs {}",
                        sampled[level][i]
                    );
                }
            }
            // The exact L2 distance to the zero function equals the integral
            // of the square, which the trapezoid rule approaches.
            let z = l2_exact(&exact[0], &Vec::new());
            let step = g[1] - g[0];
            let trap: f64 = sampled[0]
                .windows(2)
                .map(|w| (w[0] * w[0] + w[1] * w[1]) / 2.0 * step)
                .sum();
            assert!((z * z - trap).abs() < 1e-3, "{} vs {trap}", z * z);
        }
    }

    #[test]
    fn betti_counts_half_open_intervals() {
        let pts = [(0.0, 1.0), (0.5, f64::INFINITY)];
        assert_eq!(
            betti_curve(&pts, &[0.0, 0.5, 1.0, 5.0]),
            vec![1.0, 2.0, 1.0, 1.0]
        );
    }

    #[test]
    fn entropy_and_total_persistence() {
        let pts = [(0.0, 1.0), (0.0, 1.0), (2.0, 2.0), (0.0, f64::INFINITY)];
        assert_eq!(total_persistence(&pts, 1.0), 2.0);
        assert!((entropy(&pts) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(entropy(&[]), 0.0);
    }
}
