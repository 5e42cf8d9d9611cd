//! Distance matrices.
//!
//! Values are `f32`, as in Ripser: distances are computed in `f64` from the
//! coordinates and rounded once, so results match tools that do the same
//! (Ripser and giotto-ph on a float64 distance matrix).

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// A symmetric distance matrix with zero diagonal, stored as its strict lower
/// triangle: `d(i, j)` for `i > j` at `i (i - 1) / 2 + j`, which is also the
/// edge's index in the combinatorial number system.
#[derive(Debug, Clone, PartialEq)]
pub struct DistanceMatrix {
    n: usize,
    lower: Vec<f32>,
}

impl DistanceMatrix {
    /// Euclidean distances between the rows of `x` (n × d). Coordinates must
    /// be finite.
    pub fn from_points(x: ArrayView2<'_, f64>) -> Result<Self> {
        let (n, _) = x.dim();
        if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(
                format!("point {i}, coordinate {j}"),
                format!("coordinates must be finite, got {v}"),
            ));
        }
        let rows: Vec<Vec<f32>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let a = x.row(i);
                (0..i)
                    .map(|j| {
                        let b = x.row(j);
                        let s: f64 = a.iter().zip(b.iter()).map(|(p, q)| (p - q) * (p - q)).sum();
                        s.sqrt() as f32
                    })
                    .collect()
            })
            .collect();
        Ok(DistanceMatrix {
            n,
            lower: rows.concat(),
        })
    }

    /// From a full square matrix (only the strict lower triangle is read;
    /// the caller's matrix should be symmetric). Entries must be finite and
    /// non-negative; `+inf` means "no edge".
    pub fn from_square(m: ArrayView2<'_, f64>) -> Result<Self> {
        let (n, c) = m.dim();
        if n != c {
            return Err(Error::invalid(
                "distance matrix",
                format!("must be square, got {n} × {c}"),
            ));
        }
        let mut lower = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        for i in 0..n {
            for j in 0..i {
                let v = m[(i, j)];
                if v.is_nan() || v < 0.0 {
                    return Err(Error::invalid(
                        format!("distance matrix entry ({i}, {j})"),
                        format!("must be a number >= 0, got {v}"),
                    ));
                }
                lower.push(v as f32);
            }
        }
        Ok(DistanceMatrix { n, lower })
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The distance between points `i` and `j`.
    #[inline]
    pub fn get(&self, i: usize, j: usize) -> f32 {
        match i.cmp(&j) {
            std::cmp::Ordering::Greater => self.lower[i * (i - 1) / 2 + j],
            std::cmp::Ordering::Less => self.lower[j * (j - 1) / 2 + i],
            std::cmp::Ordering::Equal => 0.0,
        }
    }

    /// The distance of edge `index` (combinatorial number system).
    #[inline]
    pub fn edge(&self, index: usize) -> f32 {
        self.lower[index]
    }

    /// The enclosing radius min_i max_j d(i, j): beyond it the Rips complex
    /// is a cone, so it is the default threshold (as in Ripser).
    pub fn enclosing_radius(&self) -> f32 {
        (0..self.n)
            .map(|i| (0..self.n).map(|j| self.get(i, j)).fold(0.0f32, f32::max))
            .fold(f32::INFINITY, f32::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn points_and_square_agree() {
        let x = array![[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]];
        let d = DistanceMatrix::from_points(x.view()).unwrap();
        assert_eq!(
            (d.get(1, 0), d.get(0, 2), d.get(2, 1), d.get(1, 1)),
            (5.0, 10.0, 5.0, 0.0)
        );
        let m = array![[0.0, 5.0, 10.0], [5.0, 0.0, 5.0], [10.0, 5.0, 0.0]];
        assert_eq!(DistanceMatrix::from_square(m.view()).unwrap(), d);
        assert_eq!(d.enclosing_radius(), 5.0);
    }

    #[test]
    fn bad_values_are_named() {
        let x = array![[0.0, 0.0], [f64::NAN, 1.0]];
        let e = DistanceMatrix::from_points(x.view())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("point 1, coordinate 0: coordinates must be finite"),
            "{e}"
        );
        let m = array![[0.0, -1.0], [-1.0, 0.0]];
        assert!(DistanceMatrix::from_square(m.view()).is_err());
        assert!(DistanceMatrix::from_square(array![[0.0, 1.0]].view()).is_err());
    }
}
