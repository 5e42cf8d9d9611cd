//! Paths between two latent points before any decoder is involved: linear
//! and spherical interpolation, and the shortest path through a
//! k-nearest-neighbour graph of training codes (the start of a geodesic:
//! it runs where the codes are, so it goes around a hole in them instead
//! of across it), resampled to evenly spaced points.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, Result};

/// `points` points from a to b on the straight line (both ends included).
pub fn linear(a: ArrayView1<f64>, b: ArrayView1<f64>, points: usize) -> Array2<f64> {
    let mut out = Array2::zeros((points, a.len()));
    for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        let t = fraction(i, points);
        row.assign(&(&a * (1.0 - t) + &b * t));
    }
    out
}

fn fraction(i: usize, points: usize) -> f64 {
    if points <= 1 {
        0.0
    } else {
        i as f64 / (points - 1) as f64
    }
}

/// Spherical interpolation (slerp) from a to b: the angle between them
/// swept evenly and the norm interpolated linearly (as for Gaussian
/// latents, whose mass lies near a sphere); the straight line when they
/// are (anti)parallel or one is zero.
pub fn slerp(a: ArrayView1<f64>, b: ArrayView1<f64>, points: usize) -> Array2<f64> {
    let (na, nb) = (a.dot(&a).sqrt(), b.dot(&b).sqrt());
    if na == 0.0 || nb == 0.0 {
        return linear(a, b, points);
    }
    let cos = (a.dot(&b) / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.sin().abs() < 1e-9 {
        return linear(a, b, points);
    }
    let (ua, ub) = (&a / na, &b / nb);
    let mut out = Array2::zeros((points, a.len()));
    for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        let t = fraction(i, points);
        let dir = (&ua * ((1.0 - t) * omega).sin() + &ub * (t * omega).sin()) / omega.sin();
        row.assign(&(dir * (na * (1.0 - t) + nb * t)));
    }
    out
}

/// Resamples the polyline `nodes` (m × d) to `points` points evenly
/// spaced in arc length, ends included.
pub fn resample(nodes: ArrayView2<f64>, points: usize) -> Array2<f64> {
    let m = nodes.nrows();
    let d = nodes.ncols();
    let mut cum = vec![0.0; m];
    for i in 1..m {
        let seg = &nodes.row(i) - &nodes.row(i - 1);
        cum[i] = cum[i - 1] + seg.dot(&seg).sqrt();
    }
    let total = cum[m - 1];
    let mut out = Array2::zeros((points, d));
    let mut j = 0;
    for i in 0..points {
        let s = fraction(i, points) * total;
        while j + 2 < m && cum[j + 1] < s {
            j += 1;
        }
        let seg = if m == 1 { 0.0 } else { cum[j + 1] - cum[j] };
        let t = if seg > 0.0 {
            ((s - cum[j]) / seg).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let next = (j + 1).min(m - 1);
        out.row_mut(i)
            .assign(&(&nodes.row(j) * (1.0 - t) + &nodes.row(next) * t));
    }
    out
}

#[derive(PartialEq)]
struct Visit(f64, usize);

impl Eq for Visit {}

impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Visit {
    /// The smallest distance first (BinaryHeap is a max-heap); ties by
    /// the node, so the order is total and deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}

/// The shortest path from a to b through the symmetric k-nearest-neighbour
/// graph of `codes` (n × d) with a and b added as nodes (Euclidean edge
/// lengths), as its polyline a, codes…, b resampled to `points` points.
/// An error names `key` (the setting of k) when the graph does not
/// connect a to b.
pub fn graph_path(
    codes: ArrayView2<f64>,
    k: usize,
    a: ArrayView1<f64>,
    b: ArrayView1<f64>,
    points: usize,
    key: &str,
) -> Result<Array2<f64>> {
    let n = codes.nrows();
    if k == 0 || n == 0 {
        return Err(Error::invalid(
            key,
            format!("a k-nearest-neighbour graph needs k ≥ 1 and codes; got k = {k}, {n} codes"),
        ));
    }
    crate::guard::need(
        "the k-nearest-neighbour graph",
        crate::guard::Size::array(&[(n + 2) as u64, 2 * k as u64, 16], 1),
        key,
    )?;
    // Nodes 0..n: codes; n: a; n + 1: b.
    let mut all = Array2::zeros((n + 2, codes.ncols()));
    all.slice_mut(ndarray::s![..n, ..]).assign(&codes);
    all.row_mut(n).assign(&a);
    all.row_mut(n + 1).assign(&b);
    let m = n + 2;
    let neighbours: Vec<Vec<(usize, f64)>> = {
        use rayon::prelude::*;
        (0..m)
            .into_par_iter()
            .map(|i| {
                let mut d: Vec<(usize, f64)> = (0..m)
                    .filter(|&j| j != i && !(i >= n && j >= n))
                    .map(|j| {
                        let v = &all.row(i) - &all.row(j);
                        (j, v.dot(&v).sqrt())
                    })
                    .collect();
                let kk = k.min(d.len());
                if kk < d.len() {
                    d.select_nth_unstable_by(kk, |x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                }
                d.truncate(kk);
                d
            })
            .collect()
    };
    let mut adj: Vec<Vec<(usize, f64)>> = vec![vec![]; m];
    for (i, ns) in neighbours.iter().enumerate() {
        for &(j, w) in ns {
            adj[i].push((j, w));
            adj[j].push((i, w));
        }
    }
    let mut dist = vec![f64::INFINITY; m];
    let mut prev = vec![usize::MAX; m];
    let mut heap = BinaryHeap::new();
    dist[n] = 0.0;
    heap.push(Visit(0.0, n));
    while let Some(Visit(d, i)) = heap.pop() {
        if d > dist[i] {
            continue;
        }
        if i == n + 1 {
            break;
        }
        for &(j, w) in &adj[i] {
            let nd = d + w;
            if nd < dist[j] {
                dist[j] = nd;
                prev[j] = i;
                heap.push(Visit(nd, j));
            }
        }
    }
    if !dist[n + 1].is_finite() {
        return Err(Error::invalid(
            key,
            format!("the {k}-nearest-neighbour graph of the {n} codes does not connect the two end points; raise it"),
        ));
    }
    let mut order = vec![n + 1];
    while *order.last().expect("non-empty") != n {
        order.push(prev[*order.last().expect("non-empty")]);
    }
    order.reverse();
    let nodes = all.select(Axis(0), &order);
    Ok(resample(nodes.view(), points))
}

/// The length Σ‖p_{i+1} − p_i‖ of a polyline (m × d).
pub fn length(p: ArrayView2<f64>) -> f64 {
    (1..p.nrows())
        .map(|i| {
            let v = &p.row(i) - &p.row(i - 1);
            v.dot(&v).sqrt()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn linear_and_slerp_have_their_closed_forms() {
        let (a, b) = (array![1.0, 0.0], array![0.0, 2.0]);
        let l = linear(a.view(), b.view(), 3);
        assert_eq!(l, array![[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]]);
        let s = slerp(a.view(), b.view(), 3);
        // Halfway: at 45°, norm 1.5.
        let h = 1.5 / 2f64.sqrt();
        assert!(
            (s[[1, 0]] - h).abs() < 1e-12 && (s[[1, 1]] - h).abs() < 1e-12,
            "{s}"
        );
        assert!((&s.row(0) - &a).iter().all(|v| v.abs() < 1e-12));
        assert!((&s.row(2) - &b).iter().all(|v| v.abs() < 1e-12));
    }

    /// Codes on a ring of radius 1 (none inside): the graph path between
    /// opposite points goes around it (length near π, every point near
    /// radius 1), where the straight line crosses the hole (length 2).
    #[test]
    fn the_graph_path_goes_around_a_hole() {
        let n = 400;
        let codes = Array2::from_shape_fn((n, 2), |(i, j)| {
            let t = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
            if j == 0 {
                t.cos()
            } else {
                t.sin()
            }
        });
        let (a, b) = (array![1.0, 0.0], array![-1.0, 0.0]);
        let p = graph_path(codes.view(), 5, a.view(), b.view(), 50, "interpolate.k").unwrap();
        assert_eq!(p.nrows(), 50);
        assert_eq!(p.row(0), a);
        assert_eq!(p.row(49), b);
        let len = length(p.view());
        assert!((len - std::f64::consts::PI).abs() < 0.01, "{len}");
        for r in p.rows() {
            assert!((r.dot(&r).sqrt() - 1.0).abs() < 0.01, "{r}");
        }
        // Evenly spaced.
        let steps: Vec<f64> = (1..50)
            .map(|i| {
                let v = &p.row(i) - &p.row(i - 1);
                v.dot(&v).sqrt()
            })
            .collect();
        let (lo, hi) = steps
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &s| (l.min(s), h.max(s)));
        assert!(hi - lo < 1e-3, "{lo} {hi}");
        // Two clusters far apart with k = 1: not connected.
        let two = array![[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]];
        let e = graph_path(
            two.view(),
            1,
            array![0.05, 0.0].view(),
            array![10.05, 0.0].view(),
            5,
            "interpolate.k",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("interpolate.k") && e.contains("does not connect"),
            "{e}"
        );
    }
}
