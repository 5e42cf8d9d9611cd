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
        let d = x.ncols();
        let flat = x.as_slice().expect("standard layout");
        let point = |i: usize| &flat[i * d..(i + 1) * d];
        rows.into_par_iter()
            .try_for_each(|(i, row)| -> Result<()> {
                let a = point(i);
                distances_to(a, flat, d, row);
                // A distance that float32 cannot hold would give a wrong
                // diagram silently: refuse it. A zero is fine only between
                // equal points.
                for (j, &v) in row.iter().enumerate() {
                    if !v.is_finite() || (v < f32::MIN_POSITIVE && (v != 0.0 || a != point(j))) {
                        return Err(out_of_f32(i, j, euclidean_f64(a, point(j))));
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

/// The Euclidean distances of `a` to the first `out.len()` points of
/// `flat` (rows of `d` coordinates), each rounded once to f32. Summed in
/// f64 over eight interleaved partial sums, so that the loop vectorises;
/// the arithmetic, hence the result, is the same on every x86-64 CPU (AVX2
/// only widens the vectors: same operations, same order, no fused
/// multiply-add). The CPU is asked once per row, and the whole row is one
/// AVX2 loop.
fn distances_to(a: &[f64], flat: &[f64], d: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { distances_to_avx2(a, flat, d, out) };
        }
    }
    distances_to_lanes(a, flat, d, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn distances_to_avx2(a: &[f64], flat: &[f64], d: usize, out: &mut [f32]) {
    distances_with(a, flat, d, out, |a, b| {
        // SAFETY: this function runs only where AVX2 is supported.
        unsafe { squared_avx2(a, b) }
    })
}

/// [`squared_lanes`] with its eight partial sums held as two 4-wide
/// vectors: lanes 0–3 and 4–7, the same operations in the same order
/// (the compiler's own vectorisation of it shuffled the lanes each step).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn squared_avx2(a: &[f64], b: &[f64]) -> f64 {
    use std::arch::x86_64::*;
    const L: usize = 8;
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
    for (p, q) in ca.zip(cb) {
        // SAFETY: p and q hold 8 values each (chunks_exact).
        let (p0, p1, q0, q1) = unsafe {
            (
                _mm256_loadu_pd(p.as_ptr()),
                _mm256_loadu_pd(p.as_ptr().add(4)),
                _mm256_loadu_pd(q.as_ptr()),
                _mm256_loadu_pd(q.as_ptr().add(4)),
            )
        };
        let (d0, d1) = (_mm256_sub_pd(p0, q0), _mm256_sub_pd(p1, q1));
        lo = _mm256_add_pd(lo, _mm256_mul_pd(d0, d0));
        hi = _mm256_add_pd(hi, _mm256_mul_pd(d1, d1));
    }
    let mut t = [0.0f64; 4];
    // SAFETY: t holds 4 values.
    unsafe { _mm256_storeu_pd(t.as_mut_ptr(), _mm256_add_pd(lo, hi)) };
    let mut s = (t[0] + t[1]) + (t[2] + t[3]);
    for (p, q) in ra.iter().zip(rb) {
        s += (p - q) * (p - q);
    }
    s
}

fn distances_to_lanes(a: &[f64], flat: &[f64], d: usize, out: &mut [f32]) {
    distances_with(a, flat, d, out, squared_lanes)
}

#[inline(always)]
fn distances_with(
    a: &[f64],
    flat: &[f64],
    d: usize,
    out: &mut [f32],
    squared: impl Fn(&[f64], &[f64]) -> f64,
) {
    if d == 0 {
        out.fill(0.0);
        return;
    }
    // Squared sums a block at a time, then their square roots in one
    // vectorised pass (a square root per pair in the loop stalled it).
    const BLOCK: usize = 64;
    let mut sq = [0.0f64; BLOCK];
    for (k, block) in out.chunks_mut(BLOCK).enumerate() {
        let points = flat[k * BLOCK * d..].chunks_exact(d);
        for (s, b) in sq.iter_mut().zip(points).take(block.len()) {
            *s = squared(a, b);
        }
        for (v, s) in block.iter_mut().zip(&sq) {
            *v = s.sqrt() as f32;
        }
    }
}

/// The squared Euclidean distance of two rows (see [`distances_to`]).
#[inline(always)]
fn squared_lanes(a: &[f64], b: &[f64]) -> f64 {
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
    s
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

    /// The vector path gives the portable path's values bit for bit, for
    /// every remainder of the 8-wide chunks and across the blocks of
    /// square roots; both are the float64 distance rounded once.
    #[test]
    fn vector_and_portable_paths_agree() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 * 20.0 - 10.0
        };
        for d in [0usize, 1, 3, 7, 8, 9, 16, 17, 101] {
            let n = 150;
            let flat: Vec<f64> = (0..n * d).map(|_| next()).collect();
            let a: Vec<f64> = (0..d).map(|_| next()).collect();
            let mut fast = vec![0f32; n];
            let mut portable = vec![0f32; n];
            distances_to(&a, &flat, d, &mut fast);
            distances_to_lanes(&a, &flat, d, &mut portable);
            assert_eq!(fast, portable, "d = {d}");
            // Before the rounding to f32, too.
            #[cfg(target_arch = "x86_64")]
            if d > 0 && std::is_x86_feature_detected!("avx2") {
                for b in flat.chunks_exact(d) {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    let fast = unsafe { squared_avx2(&a, b) };
                    assert_eq!(fast.to_bits(), squared_lanes(&a, b).to_bits(), "d = {d}");
                }
            }
            for (j, v) in portable.iter().enumerate() {
                let exact = euclidean_f64(&a, &flat[j * d..(j + 1) * d]);
                assert!(
                    (*v as f64 - exact).abs() <= exact * 1e-7,
                    "d = {d}, point {j}"
                );
            }
        }
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
