//! Interpolation quality of decoded paths (`tglml eval --paths`): how
//! regular a path is, how real its points look, and how often the topology
//! of its points changes along it.

use ndarray::ArrayView2;

use crate::error::Result;

/// The regularity of one path of K points (rows): the mean norm of its
/// second differences x_(i+1) − 2 x_i + x_(i−1) over its mean step length
/// (0 on a straight path of equal steps; scale-free), and the coefficient
/// of variation of its step lengths (0 for equal steps).
pub fn regularity(path: ArrayView2<f64>) -> (f64, f64) {
    let k = path.nrows();
    if k < 2 {
        return (0.0, 0.0);
    }
    let norm = |v: ndarray::Array1<f64>| v.dot(&v).sqrt();
    let steps: Vec<f64> = (1..k)
        .map(|i| norm(&path.row(i) - &path.row(i - 1)))
        .collect();
    let mean = steps.iter().sum::<f64>() / steps.len() as f64;
    if mean == 0.0 {
        return (0.0, 0.0);
    }
    let sd =
        (steps.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / steps.len() as f64).sqrt();
    let curv = if k < 3 {
        0.0
    } else {
        (1..k - 1)
            .map(|i| norm(&path.row(i + 1) - &(2.0 * &path.row(i)) + path.row(i - 1)))
            .sum::<f64>()
            / (k - 2) as f64
    };
    (curv / mean, sd / mean)
}

/// For each row of `points`, the distance to its nearest row of
/// `reference` (`key` names the setting that sizes the distance matrix).
pub fn nearest(points: ArrayView2<f64>, reference: ArrayView2<f64>, key: &str) -> Result<Vec<f64>> {
    let d = super::distances(points, reference, key)?;
    Ok(d.rows()
        .into_iter()
        .map(|r| r.iter().copied().fold(f64::INFINITY, f64::min))
        .collect())
}

/// The number of steps along a path at which its points' Betti numbers
/// (one tuple per point, in order) change.
pub fn changes<T: PartialEq>(betti: &[T]) -> usize {
    betti.windows(2).filter(|w| w[0] != w[1]).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn straight_equal_steps_are_regular() {
        let p = array![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert_eq!(regularity(p.view()), (0.0, 0.0));
        // A right-angle zigzag of unit steps: each second difference is
        // (1, −1) or (−1, 1) — norm √2 — over a mean step of 1.
        let z = array![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 1.0]];
        let (c, cv) = regularity(z.view());
        assert!((c - 2f64.sqrt()).abs() < 1e-12 && cv == 0.0);
        // Steps 1 and 3 on a line: no curvature, cv = 1/2.
        let u = array![[0.0], [1.0], [4.0]];
        let (c, cv) = regularity(u.view());
        assert!((c - 2.0 / 2.0).abs() < 1e-12, "{c}"); // ‖4 − 2 + 0‖ = 2 over mean 2
        assert!((cv - 0.5).abs() < 1e-12);
    }

    #[test]
    fn nearest_and_changes() {
        let r = array![[0.0, 0.0], [10.0, 0.0]];
        let p = array![[1.0, 0.0], [7.0, 4.0]];
        let d = nearest(p.view(), r.view(), "test").unwrap();
        assert_eq!(d, vec![1.0, 5.0]);
        assert_eq!(changes(&[(1, 0), (1, 0), (2, 0), (1, 0), (1, 0)]), 2);
        assert_eq!(changes::<(u8, u8)>(&[]), 0);
    }
}
