//! Distance matrices.
//!
//! Values are `f32`, as in Ripser: distances are computed in `f64` from the
//! coordinates and rounded once, so results match tools that do the same
//! (Ripser and giotto-ph on a float64 distance matrix).

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::guard::{self, Size};

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
        let x = x.as_standard_layout();
        if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(
                format!("point {i}, coordinate {j}"),
                format!("coordinates must be finite, got {v}"),
            ));
        }
        guard::need(
            &format!("the distance matrix of {n} points"),
            Size::triangle(n as u64, 4),
            "the number of points (e.g. with --landmarks N)",
        )?;
        // Filled in place, row by row in parallel: the matrix is held once
        // (rows collected and then concatenated would hold it twice, which
        // the memory estimate does not allow for).
        let mut lower = vec![0f32; n * n.saturating_sub(1) / 2];
        let mut rows: Vec<(usize, &mut [f32])> = Vec::with_capacity(n);
        let mut rest: &mut [f32] = &mut lower;
        for i in 0..n {
            let (row, tail) = rest.split_at_mut(i);
            rows.push((i, row));
            rest = tail;
        }
        rows.into_par_iter()
            .try_for_each(|(i, row)| -> Result<()> {
                let a = x.row(i);
                let a = a.as_slice().expect("standard layout");
                for (j, d) in row.iter_mut().enumerate() {
                    *d = euclidean(a, x.row(j).as_slice().expect("standard layout"));
                }
                // A distance that float32 cannot hold would give a wrong
                // diagram silently: refuse it. A zero is fine only between
                // equal points.
                for (j, &d) in row.iter().enumerate() {
                    let b = x.row(j);
                    let b = b.as_slice().expect("standard layout");
                    if !d.is_finite() || (d < f32::MIN_POSITIVE && (d != 0.0 || a != b)) {
                        return Err(out_of_f32(i, j, euclidean_f64(a, b)));
                    }
                }
                Ok(())
            })?;
        Ok(DistanceMatrix { n, lower })
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
        guard::need(
            &format!("the distance matrix of {n} points"),
            Size::triangle(n as u64, 4),
            "the number of points",
        )?;
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
                let d = v as f32;
                if (v.is_finite() && d.is_infinite()) || (v > 0.0 && d < f32::MIN_POSITIVE) {
                    return Err(out_of_f32(i, j, v));
                }
                lower.push(d);
            }
        }
        Ok(DistanceMatrix { n, lower })
    }

    /// From a sparse list of edges: rows (i, j, distance) with whole-number
    /// point indices; pairs not listed are not edges (infinitely far).
    /// `n` points, or max index + 1 when `None`. A pair listed twice must
    /// have the same distance.
    pub fn from_edge_list(rows: ArrayView2<'_, f64>, n: Option<usize>) -> Result<Self> {
        if rows.ncols() != 3 {
            return Err(Error::invalid(
                "edge list",
                format!(
                    "expected rows (i, j, distance): 3 columns, got {}",
                    rows.ncols()
                ),
            ));
        }
        let index = |r: usize, c: usize| -> Result<usize> {
            let v = rows[(r, c)];
            if v >= 0.0 && v.fract() == 0.0 && v < usize::MAX as f64 {
                Ok(v as usize)
            } else {
                Err(Error::invalid(
                    format!("edge list row {r}"),
                    format!("point index must be a whole number >= 0, got {v}"),
                ))
            }
        };
        let mut pairs = Vec::with_capacity(rows.nrows());
        let mut top = 0usize;
        for r in 0..rows.nrows() {
            let (i, j, d) = (index(r, 0)?, index(r, 1)?, rows[(r, 2)]);
            if i == j {
                return Err(Error::invalid(
                    format!("edge list row {r}"),
                    format!("an edge joins two different points, got ({i}, {i})"),
                ));
            }
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::invalid(
                    format!("edge list row {r}"),
                    format!("distance must be a finite number >= 0, got {d}"),
                ));
            }
            if d > 0.0 && !((d as f32) >= f32::MIN_POSITIVE && (d as f32).is_finite()) {
                return Err(out_of_f32(i, j, d).context(format!("edge list row {r}")));
            }
            top = top.max(i.max(j) + 1);
            pairs.push((i.max(j), i.min(j), d as f32, r));
        }
        let n = n.unwrap_or(top);
        guard::need(
            &format!("the distance matrix of {n} points (the largest point index + 1)"),
            Size::triangle(n as u64, 4),
            "the point indices of the edge list (number the points from 0 without gaps)",
        )?;
        if top > n {
            return Err(Error::invalid(
                "edge list",
                format!("point index {} out of range for {n} points", top - 1),
            ));
        }
        let mut lower = vec![f32::INFINITY; n * n.saturating_sub(1) / 2];
        for (i, j, d, r) in pairs {
            let slot = &mut lower[i * (i - 1) / 2 + j];
            if slot.is_finite() && *slot != d {
                return Err(Error::invalid(
                    format!("edge list row {r}"),
                    format!("pair ({i}, {j}) listed again with another distance ({d} vs {slot})"),
                ));
            }
            *slot = d;
        }
        Ok(DistanceMatrix { n, lower })
    }

    /// The largest finite distance (0 when there is none).
    pub fn max_finite(&self) -> f32 {
        self.lower
            .iter()
            .copied()
            .filter(|d| d.is_finite())
            .fold(0.0, f32::max)
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

/// The refusal of a distance outside float32's normal range.
fn out_of_f32(i: usize, j: usize, d: f64) -> Error {
    Error::invalid(
        format!("points {i} and {j}"),
        format!(
            "their distance ({d:e}) is outside the range of the float32 distances that persistence uses ({:e} to {:e}); rescale the data (e.g. divide it by its largest absolute value)",
            f32::MIN_POSITIVE,
            f32::MAX
        ),
    )
}

/// The Euclidean distance in float64, for messages.
fn euclidean_f64(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt()
}

/// The Euclidean distance of two rows, rounded once to f32. Summed in f64
/// over eight interleaved partial sums, so that the loop vectorises; the
/// arithmetic, hence the result, is the same on every x86-64 CPU (AVX2 only
/// widens the vectors: same operations, same order, no fused multiply-add).
#[inline]
fn euclidean(a: &[f64], b: &[f64]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { euclidean_avx2(a, b) };
        }
    }
    euclidean_lanes(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn euclidean_avx2(a: &[f64], b: &[f64]) -> f32 {
    euclidean_lanes(a, b)
}

#[inline(always)]
fn euclidean_lanes(a: &[f64], b: &[f64]) -> f32 {
    const L: usize = 8;
    let mut acc = [0.0f64; L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (p, q) in ca.zip(cb) {
        for l in 0..L {
            let d = p[l] - q[l];
            acc[l] += d * d;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (p, q) in ra.iter().zip(rb) {
        s += (p - q) * (p - q);
    }
    s.sqrt() as f32
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
    fn edge_lists() {
        let e = array![[1.0, 0.0, 5.0], [2.0, 1.0, 5.0], [1.0, 0.0, 5.0]];
        let d = DistanceMatrix::from_edge_list(e.view(), None).unwrap();
        assert_eq!(
            (d.len(), d.get(0, 1), d.get(1, 2), d.get(0, 2)),
            (3, 5.0, 5.0, f32::INFINITY)
        );
        assert_eq!(d.max_finite(), 5.0);
        let d = DistanceMatrix::from_edge_list(e.view(), Some(5)).unwrap();
        assert_eq!(d.len(), 5);
        for (bad, msg) in [
            (array![[0.0, 0.0, 1.0]], "two different points"),
            (array![[0.5, 1.0, 1.0]], "whole number"),
            (array![[0.0, 1.0, -1.0]], "finite number >= 0"),
            (array![[0.0, 1.0, 1.0], [1.0, 0.0, 2.0]], "listed again"),
        ] {
            let err = DistanceMatrix::from_edge_list(bad.view(), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{err}");
        }
        assert!(DistanceMatrix::from_edge_list(e.view(), Some(2)).is_err());
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
