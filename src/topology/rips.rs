//! Vietoris–Rips persistence with critical edges (Ripser's algorithm).
//!
//! Read top-down, as Ripser: the simplex type and its order, the binomial
//! table (the combinatorial number system), cofacet enumeration, union-find
//! for H0, then the cohomology reduction for H1 and up.
//!
//! Ideas, each from Bauer, "Ripser: efficient computation of Vietoris–Rips
//! persistence barcodes" (J. Appl. Comput. Topol. 2021):
//! - simplices are integers in the combinatorial number system, never stored
//!   as vertex lists; coboundaries are enumerated on the fly (implicit
//!   matrix); only the reduction matrix V is kept;
//! - persistent *cohomology*, columns in reverse filtration order;
//! - clearing ([`RipsOptions::clearing`]): a simplex that is the pivot of a
//!   column in dimension k is not a column in dimension k + 1;
//! - emergent pairs ([`RipsOptions::emergent_pairs`]): a column whose
//!   youngest same-diameter cofacet is not yet a pivot is paired with it
//!   without building its coboundary;
//! - apparent pairs ([`RipsOptions::apparent_pairs`]): a pair (σ, τ) where
//!   τ is the pivot of σ's coboundary and σ the last facet of τ is known
//!   without any reduction; such columns are skipped and such pivots are
//!   recognised on the fly instead of being stored;
//! - columns are assembled (and apparent pairs recognised) in parallel with
//!   rayon; the result does not depend on the number of threads.
//! - H0 by union-find over the edges; the threshold defaults to the enclosing
//!   radius.
//!
//! Ties are broken as in Ripser (filtration order: diameter, then the larger
//! index first), so results are deterministic.

use std::cmp::Ordering;

use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use super::distance::DistanceMatrix;
use crate::error::{Error, Result};

/// Options of [`rips_persistence`]. Each speed-up is a switch, on by default,
/// so an ablation is a configuration change.
#[derive(Debug, Clone, PartialEq)]
pub struct RipsOptions {
    /// Highest homology dimension computed (0..=3).
    pub maxdim: usize,
    /// Edges longer than this are left out; `None` = the enclosing radius.
    pub threshold: Option<f64>,
    /// Clearing (Chen–Kerber; Bauer): skip columns known to reduce to zero.
    pub clearing: bool,
    /// Emergent pairs (Bauer): pair a column without reducing it when its
    /// pivot is known in advance.
    pub emergent_pairs: bool,
    /// Apparent pairs (Bauer; giotto-ph): zero-persistence pairs recognised
    /// locally are neither reduced nor stored; most pairs of a Rips
    /// filtration are apparent.
    pub apparent_pairs: bool,
    /// Coefficients: the prime p of Z/p (default 2). Z/2 takes the fast
    /// path; other primes a serial reduction with coefficients, without
    /// apparent pairs.
    pub modulus: u32,
    /// Neighbour lists (as Ripser's sparse mode): when the threshold keeps
    /// under a quarter of all pairs, cofacets are sought among the
    /// neighbours of one vertex rather than among all points.
    pub neighbor_lists: bool,
    /// H0 alone (`maxdim` 0) by Prim's algorithm on the dense matrix:
    /// O(n²) time and O(n) memory, no sorted edge list; the same bars and
    /// critical edges as the union-find over sorted edges.
    pub dense_h0: bool,
}

impl Default for RipsOptions {
    fn default() -> Self {
        RipsOptions {
            maxdim: 1,
            threshold: None,
            clearing: true,
            emergent_pairs: true,
            apparent_pairs: true,
            modulus: 2,
            neighbor_lists: true,
            dense_h0: true,
        }
    }
}

/// One bar of a persistence diagram, with its critical edges: the vertex
/// pairs whose distances are its birth and its death.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Birth value (0 for H0).
    pub birth: f64,
    /// Death value; `f64::INFINITY` for essential classes.
    pub death: f64,
    /// The edge (i, j), i > j, of length `birth`; `None` for H0.
    pub birth_edge: Option<[usize; 2]>,
    /// The edge (k, l), k > l, of length `death`; `None` when essential.
    pub death_edge: Option<[usize; 2]>,
}

impl Bar {
    /// An essential class of H0 (a connected component): born at 0, never
    /// dies.
    pub const ESSENTIAL_H0: Bar = Bar {
        birth: 0.0,
        death: f64::INFINITY,
        birth_edge: None,
        death_edge: None,
    };
}

/// The persistence diagrams of a Rips filtration.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagrams {
    /// `dims[k]`: the bars of H_k, sorted by (birth, death, edges).
    pub dims: Vec<Vec<Bar>>,
    /// The threshold used.
    pub threshold: f64,
    /// Number of points.
    pub n_points: usize,
    /// The prime p of the coefficients Z/p.
    pub coefficients: u32,
}

// ---------------------------------------------------------------------------
// Simplices and their order

/// A simplex: its diameter (as the bits of a non-negative f32, which order
/// like the values) and its index in the combinatorial number system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Simplex {
    diam: u32,
    idx: u64,
}

impl Simplex {
    fn new(diam: f32, idx: u64) -> Self {
        debug_assert!(diam >= 0.0);
        Simplex {
            diam: diam.to_bits(),
            idx,
        }
    }

    fn diameter(self) -> f32 {
        f32::from_bits(self.diam)
    }
}

/// Column order = reverse filtration order: larger diameter first, then
/// smaller index first. The maximum of a set of cofacets in this order is its
/// pivot (the earliest in the filtration), so a max-heap yields pivots.
impl Ord for Simplex {
    fn cmp(&self, other: &Self) -> Ordering {
        other.diam.cmp(&self.diam).then(self.idx.cmp(&other.idx))
    }
}

impl PartialOrd for Simplex {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ---------------------------------------------------------------------------
// The combinatorial number system

/// Binomial coefficients C(v, k) for v ≤ n, k ≤ kmax; a k-simplex with
/// vertices v_k > … > v_0 has index Σ_i C(v_i, i + 1).
struct Binomial {
    stride: usize,
    table: Vec<u64>,
}

impl Binomial {
    fn new(n: usize, kmax: usize) -> Result<Self> {
        let stride = n + 1;
        let mut table = vec![0u64; stride * (kmax + 1)];
        table[..=n].fill(1);
        for k in 1..=kmax {
            for v in 1..=n {
                let sum = table[(k - 1) * stride + v - 1].checked_add(table[k * stride + v - 1]);
                table[k * stride + v] = sum.ok_or_else(|| {
                    Error::invalid(
                        "rips",
                        format!("{n} points with simplices of {kmax} vertices overflow the 64-bit simplex index; lower maxdim or use landmarks"),
                    )
                })?;
            }
        }
        Ok(Binomial { stride, table })
    }

    #[inline]
    fn get(&self, v: usize, k: usize) -> u64 {
        self.table[k * self.stride + v]
    }
}

// ---------------------------------------------------------------------------
// The complex: vertices of simplices, diameters, cofacets

struct Complex<'a> {
    dist: &'a DistanceMatrix,
    binom: Binomial,
    n: usize,
    threshold: f32,
    /// When the threshold leaves a sparse graph: each vertex's neighbours
    /// within the threshold, largest first. Cofacets are then sought among
    /// the neighbours of one vertex instead of among all points.
    neighbors: Option<Vec<Vec<u32>>>,
}

impl Complex<'_> {
    /// The largest vertex v < top with C(v, k) <= idx.
    fn max_vertex(&self, idx: u64, k: usize, top: usize) -> usize {
        // Binary search on v in [k - 1, top).
        let (mut lo, mut hi) = (k - 1, top);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.binom.get(mid, k) <= idx {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The vertices of the `dim`-simplex `idx`, largest first.
    fn vertices(&self, mut idx: u64, dim: usize, out: &mut Vec<usize>) {
        out.clear();
        let mut top = self.n;
        for k in (1..=dim + 1).rev() {
            let v = self.max_vertex(idx, k, top);
            out.push(v);
            idx -= self.binom.get(v, k);
            top = v;
        }
    }

    /// The bar of the pair (s, p): s a `dim`-simplex, p its pivot (a
    /// `dim + 1`-simplex); `None` when it has zero persistence.
    fn finite_bar(
        &self,
        s: Simplex,
        p: Simplex,
        dim: usize,
        scratch: &mut Vec<usize>,
    ) -> Option<Bar> {
        if p.diam == s.diam {
            return None;
        }
        self.vertices(s.idx, dim, scratch);
        let birth_edge = self.diameter_edge(scratch);
        self.vertices(p.idx, dim + 1, scratch);
        let death_edge = self.diameter_edge(scratch);
        Some(Bar {
            birth: s.diameter() as f64,
            death: p.diameter() as f64,
            birth_edge: Some(birth_edge),
            death_edge: Some(death_edge),
        })
    }

    /// The essential bar born with s, whose `vertices` are given.
    fn essential_bar(&self, s: Simplex, vertices: &[usize]) -> Bar {
        Bar {
            birth: s.diameter() as f64,
            death: f64::INFINITY,
            birth_edge: Some(self.diameter_edge(vertices)),
            death_edge: None,
        }
    }

    /// The edge of largest length among `vertices` (ties: the largest edge
    /// index), as (i, j) with i > j.
    fn diameter_edge(&self, vertices: &[usize]) -> [usize; 2] {
        let mut best = (0u32, 0usize, [0usize; 2]);
        for (a, &i) in vertices.iter().enumerate() {
            for &j in &vertices[a + 1..] {
                let (hi, lo) = if i > j { (i, j) } else { (j, i) };
                let key = (self.dist.get(hi, lo).to_bits(), hi * (hi - 1) / 2 + lo);
                if (key.0, key.1) >= (best.0, best.1) {
                    best = (key.0, key.1, [hi, lo]);
                }
            }
        }
        best.2
    }

    /// The pivot of the unreduced coboundary of `s` if it has s's diameter:
    /// its first cofacet of equal diameter in decreasing index order, with
    /// the vertex it adds.
    fn zero_cofacet(
        &self,
        s: Simplex,
        _dim: usize,
        vertices: &[usize],
    ) -> Option<(Simplex, usize)> {
        // A cofacet has s's diameter iff the new vertex w is within that
        // diameter of every vertex of s: test that (stopping at the first
        // distance too long) before computing any index.
        let sd = s.diameter();
        let test = |w: usize| -> Option<(Simplex, usize)> {
            // w ∈ s has distance 0 to itself but is no cofacet: skip it.
            if vertices.contains(&w) || !vertices.iter().all(|&u| self.dist.get(w, u) <= sd) {
                return None;
            }
            // The index, only for the cofacet found.
            let len = vertices.len();
            let j = vertices.iter().take_while(|&&v| v > w).count();
            let mut idx = self.binom.get(w, len + 1 - j);
            for (p, &v) in vertices.iter().enumerate() {
                idx += if p < j {
                    self.binom.get(v, len + 1 - p)
                } else {
                    self.binom.get(v, len - p)
                };
            }
            Some((Simplex { diam: s.diam, idx }, w))
        };
        match &self.neighbors {
            Some(nb) => {
                let pick = vertices.iter().copied().min_by_key(|&v| nb[v].len())?;
                nb[pick].iter().find_map(|&w| test(w as usize))
            }
            None => (0..self.n).rev().find_map(test),
        }
    }

    /// For a simplex with `vertices` (largest first) and a new vertex w
    /// placed after the first j of them: the cofacet's index is
    /// `above[j] + C(w, len + 1 - j) + below[j]`.
    fn index_parts(&self, vertices: &[usize]) -> ([u64; 6], [u64; 6]) {
        let len = vertices.len();
        let mut above = [0u64; 6];
        let mut below = [0u64; 6];
        for j in 0..len {
            above[j + 1] = above[j] + self.binom.get(vertices[j], len + 1 - j);
        }
        for j in (0..len).rev() {
            below[j] = below[j + 1] + self.binom.get(vertices[j], len - j);
        }
        (above, below)
    }

    /// The last facet of `r` in the filtration among those of r's diameter
    /// (the one with the smallest index): the first column that has r in
    /// its coboundary; with the position of the vertex it lacks.
    fn zero_facet(&self, r: Simplex, vertices: &[usize]) -> Option<(Simplex, usize)> {
        // A facet keeps r's diameter iff it keeps one of r's longest edges.
        // Facets without a larger vertex have smaller indices, so the first
        // position p (largest vertex first) whose removal keeps such an edge
        // gives the answer.
        let k = vertices.len();
        let mut longest = [(0usize, 0usize); 10];
        let mut m = 0;
        for a in 0..k {
            for b in a + 1..k {
                if self.dist.get(vertices[a], vertices[b]).to_bits() == r.diam {
                    longest[m] = (a, b);
                    m += 1;
                }
            }
        }
        let p = (0..k).find(|&p| longest[..m].iter().any(|&(a, b)| a != p && b != p))?;
        let mut idx = 0u64;
        let mut pos = k - 1;
        for (a, &v) in vertices.iter().enumerate() {
            if a != p {
                idx += self.binom.get(v, pos);
                pos -= 1;
            }
        }
        Some((Simplex { diam: r.diam, idx }, p))
    }

    /// The apparent cofacet of the `dim`-simplex `s` (with `vertices`), if
    /// (s, τ) is an apparent pair.
    fn apparent_cofacet(
        &self,
        s: Simplex,
        dim: usize,
        vertices: &[usize],
        scratch: &mut Vec<usize>,
    ) -> Option<Simplex> {
        let (c, w) = self.zero_cofacet(s, dim, vertices)?;
        scratch.clear();
        let at = vertices
            .iter()
            .position(|&v| v < w)
            .unwrap_or(vertices.len());
        scratch.extend_from_slice(&vertices[..at]);
        scratch.push(w);
        scratch.extend_from_slice(&vertices[at..]);
        (self.zero_facet(c, scratch)?.0.idx == s.idx).then_some(c)
    }

    /// The apparent facet of the `dim`-simplex `r` (with `vertices`), if
    /// (σ, r) is an apparent pair.
    fn apparent_facet(
        &self,
        r: Simplex,
        dim: usize,
        vertices: &[usize],
        scratch: &mut Vec<usize>,
    ) -> Option<Simplex> {
        let (f, skip) = self.zero_facet(r, vertices)?;
        scratch.clear();
        scratch.extend(
            vertices
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, &v)| v),
        );
        (self.zero_cofacet(f, dim - 1, scratch)?.0.idx == r.idx).then_some(f)
    }

    /// [`Self::for_each_cofacet`] on a sparse graph: the candidates are the
    /// neighbours of the vertex of `s` with the fewest, in decreasing order
    /// (so cofacet indices decrease, as in the dense walk).
    fn for_each_cofacet_sparse(
        &self,
        s: Simplex,
        vertices: &[usize],
        neighbors: &[Vec<u32>],
        above_only: bool,
        mut f: impl FnMut(Simplex, usize) -> bool,
    ) {
        let len = vertices.len();
        let (above, below) = self.index_parts(vertices);
        let pick = vertices
            .iter()
            .copied()
            .min_by_key(|&v| neighbors[v].len())
            .expect("a simplex has vertices");
        let sd = s.diameter();
        let mut j = 0;
        for &w in &neighbors[pick] {
            let w = w as usize;
            while j < len && vertices[j] > w {
                j += 1;
            }
            if above_only && j > 0 {
                return;
            }
            if j < len && vertices[j] == w {
                continue;
            }
            let mut diam = sd;
            for &u in vertices {
                diam = diam.max(self.dist.get(w, u));
            }
            if diam <= self.threshold {
                let idx = above[j] + self.binom.get(w, len + 1 - j) + below[j];
                if !f(Simplex::new(diam, idx), w) {
                    return;
                }
            }
        }
    }

    /// Calls `f` for every cofacet of `s` (a `dim`-simplex with `vertices`)
    /// within the threshold, in decreasing index order. With `above_only`,
    /// only the cofacets whose new vertex is above all of s's vertices: each
    /// (dim+1)-simplex is then met from exactly one facet.
    fn for_each_cofacet(
        &self,
        s: Simplex,
        dim: usize,
        vertices: &[usize],
        above_only: bool,
        mut f: impl FnMut(Simplex, usize) -> bool,
    ) {
        if let Some(neighbors) = &self.neighbors {
            self.for_each_cofacet_sparse(s, vertices, neighbors, above_only, f);
            return;
        }
        // Walk the candidate vertex v downwards. idx_below encodes the
        // vertices of s below v (k of them); idx_above those above, shifted
        // up one position because the cofacet has one more vertex below them.
        let mut idx_below = s.idx;
        let mut idx_above = 0u64;
        let mut v = self.n as isize - 1;
        let mut k = dim + 1;
        let sd = s.diameter();
        loop {
            if v < k as isize {
                return;
            }
            if above_only && self.binom.get(v as usize, k) <= idx_below {
                return;
            }
            // Skip the vertices of s.
            while self.binom.get(v as usize, k) <= idx_below {
                idx_below -= self.binom.get(v as usize, k);
                idx_above += self.binom.get(v as usize, k + 1);
                v -= 1;
                k -= 1;
            }
            let w = v as usize;
            v -= 1;
            let mut diam = sd;
            for &u in vertices {
                diam = diam.max(self.dist.get(w, u));
            }
            if diam <= self.threshold {
                let idx = idx_above + self.binom.get(w, k + 1) + idx_below;
                if !f(Simplex::new(diam, idx), w) {
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// H0: union-find

struct UnionFind {
    parent: Vec<usize>,
    rank: Vec<u8>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n).collect(),
            rank: vec![0; n],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn link(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        match self.rank[a].cmp(&self.rank[b]) {
            Ordering::Greater => self.parent[b] = a,
            Ordering::Less => self.parent[a] = b,
            Ordering::Equal => {
                self.parent[a] = b;
                self.rank[b] += 1;
            }
        }
    }
}

fn edge_vertices(idx: u64) -> [usize; 2] {
    // i (i - 1) / 2 <= idx < (i + 1) i / 2
    let idx = idx as usize;
    let mut i = (((8 * idx + 1) as f64).sqrt() as usize).div_ceil(2);
    while i * (i - 1) / 2 > idx {
        i -= 1;
    }
    while (i + 1) * i / 2 <= idx {
        i += 1;
    }
    [i, idx - i * (i - 1) / 2]
}

/// Bars in the order of [`Diagrams::dims`]: by birth, death, then edges.
fn sort_bars(bars: &mut [Bar]) {
    bars.sort_by(|a, b| {
        a.birth
            .total_cmp(&b.birth)
            .then(a.death.total_cmp(&b.death))
            .then(a.birth_edge.cmp(&b.birth_edge))
            .then(a.death_edge.cmp(&b.death_edge))
    });
}

/// H0 by Prim's algorithm over the edges within `threshold`, O(n²) time and
/// O(n) memory. Edges compare in filtration order (diameter, then the
/// larger index first, as the union-find takes them): a strict total
/// order, under which the minimum spanning forest is unique, so its edges
/// are exactly the union-find's H0 deaths, and the bars and critical edges
/// are the same. A new tree (an essential class) starts where no edge
/// within the threshold reaches the rest; zero-length deaths give no bar.
/// `dist(u, v)` is asked once for each pair, as the tree grows.
fn h0_prim(n: usize, mut dist: impl FnMut(usize, usize) -> f32, threshold: f32) -> Vec<Bar> {
    // The key of edge {u, v}: diameter bits, then the complement of its
    // index (a larger index earlier); u128::MAX for an absent edge.
    let mut key = |u: usize, v: usize| -> u128 {
        let d = dist(u, v);
        if d <= threshold {
            let (i, j) = if u > v { (u, v) } else { (v, u) };
            let idx = (i * (i - 1) / 2 + j) as u64;
            ((d.to_bits() as u128) << 64) | (u64::MAX - idx) as u128
        } else {
            u128::MAX
        }
    };
    let mut best = vec![u128::MAX; n];
    let mut from = vec![0usize; n];
    // The vertices not yet in the forest, in index order (ties between
    // absent edges go to the smallest index: a new tree starts there).
    let mut rest: Vec<usize> = (1..n).collect();
    let mut bars = Vec::with_capacity(n);
    bars.push(Bar::ESSENTIAL_H0);
    let mut last = 0usize;
    while !rest.is_empty() {
        // Relax the edges of the vertex just added, and find the next.
        let (mut at, mut min) = (0usize, u128::MAX);
        for (slot, &v) in rest.iter().enumerate() {
            let k = key(last, v);
            if k < best[v] {
                best[v] = k;
                from[v] = last;
            }
            if best[v] < min {
                min = best[v];
                at = slot;
            }
        }
        let v = rest.remove(at);
        if min == u128::MAX {
            bars.push(Bar::ESSENTIAL_H0);
        } else {
            let d = f32::from_bits((min >> 64) as u32);
            if d > 0.0 {
                let u = from[v];
                bars.push(Bar {
                    birth: 0.0,
                    death: d as f64,
                    birth_edge: None,
                    death_edge: Some([u.max(v), u.min(v)]),
                });
            }
        }
        last = v;
    }
    bars
}

/// H0 of the Vietoris–Rips filtration of `n` points whose distances are
/// `dist(u, v)` (asked once per pair), by Prim's tree, with no threshold
/// and no distance matrix of its own: the bars and critical edges of
/// [`rips_persistence`] with `maxdim = 0` on those distances (its default
/// threshold, the enclosing radius, cuts no edge of the tree: every point
/// is within it of the centre). For the topological loss, which reads its
/// distances from a tensor each step.
pub fn h0_diagram(n: usize, dist: impl FnMut(usize, usize) -> f32) -> Diagrams {
    let mut bars = if n == 0 {
        Vec::new()
    } else {
        h0_prim(n, dist, f32::INFINITY)
    };
    sort_bars(&mut bars);
    Diagrams {
        dims: vec![bars],
        threshold: f64::INFINITY,
        n_points: n,
        coefficients: 2,
    }
}

// ---------------------------------------------------------------------------
// Memory estimate

/// What a run will hold, estimated before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// Edges within the threshold (exact).
    pub edges: u64,
    /// Upper bound on the simplices of each dimension 1..=maxdim kept in
    /// memory (Σ_v C(deg v, k) / (k + 1): exact when neighbourhoods are
    /// cliques, an over-estimate otherwise).
    pub simplices: Vec<u64>,
    /// Estimated bytes: the distance matrix plus about 48 bytes per kept
    /// simplex (its entry, and its pivot-table slot).
    pub bytes: u64,
}

/// Bytes per simplex kept: a 16-byte entry in the column list and about 32
/// bytes of pivot table and reduction matrix.
const BYTES_PER_SIMPLEX: u64 = 48;

/// Working memory besides the matrix and the simplices: per-vertex arrays
/// (degrees, neighbour lists, union-find: about 64 bytes a vertex) and a
/// fixed 16 MiB for the diagrams, buffers and allocator slack. Without it
/// the estimate of a run dominated by its distance matrix fell just below
/// the measured peak (tests/ph_cli.rs, memory_estimate_bounds_the_measured_peak).
const BYTES_PER_VERTEX: u64 = 64;
const WORKING_BYTES: u64 = 16 << 20;

/// Estimates the memory of [`rips_persistence`] on `dist` with `opts`.
pub fn estimate_memory(dist: &DistanceMatrix, opts: &RipsOptions) -> MemoryEstimate {
    let n = dist.len();
    let threshold = opts
        .threshold
        .map_or_else(|| dist.enclosing_radius(), |t| t as f32)
        .min(dist.max_finite());
    let degrees: Vec<u64> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| j != i && dist.get(i, j) <= threshold)
                .count() as u64
        })
        .collect();
    let edges = degrees.iter().sum::<u64>() / 2;
    let simplices: Vec<u64> = (1..=opts.maxdim.max(1))
        .map(|k| {
            let total: f64 = degrees.iter().map(|&d| choose(d, k as u64)).sum();
            (total / (k as f64 + 1.0)).min(u64::MAX as f64) as u64
        })
        .collect();
    let kept: u64 = simplices.iter().fold(0u64, |a, &b| a.saturating_add(b));
    let matrix = (n as u64 * n.saturating_sub(1) as u64 / 2) * 4;
    MemoryEstimate {
        edges,
        simplices,
        bytes: matrix
            .saturating_add(kept.saturating_mul(BYTES_PER_SIMPLEX))
            .saturating_add((n as u64).saturating_mul(BYTES_PER_VERTEX))
            .saturating_add(WORKING_BYTES),
    }
}

fn choose(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

// ---------------------------------------------------------------------------
// The algorithm

/// A progress report of [`rips_persistence_with_progress`]: in dimension
/// `dim`, `stage` ("columns" while the columns are assembled, "reduction"
/// while they are reduced) has done `done` of `total` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub dim: usize,
    pub stage: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Rips persistence of `dist` up to `opts.maxdim`, with critical edges.
pub fn rips_persistence(dist: &DistanceMatrix, opts: &RipsOptions) -> Result<Diagrams> {
    rips_persistence_with_progress(dist, opts, &|_| {})
}

/// [`rips_persistence`], reporting progress to `progress` (called from
/// worker threads, often: keep it cheap).
pub fn rips_persistence_with_progress(
    dist: &DistanceMatrix,
    opts: &RipsOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Diagrams> {
    let n = dist.len();
    if opts.maxdim > 3 {
        return Err(Error::invalid(
            "maxdim",
            format!("must be 0, 1, 2 or 3, got {}", opts.maxdim),
        ));
    }
    if n < 2 {
        return Err(Error::invalid(
            "point cloud",
            format!("needs at least 2 points, got {n}"),
        ));
    }
    if !is_prime(opts.modulus) || opts.modulus > u16::MAX as u32 {
        return Err(Error::invalid(
            "coefficients",
            format!(
                "the modulus must be a prime below 65536, got {}",
                opts.modulus
            ),
        ));
    }
    // Z/p (p odd) reduces serially with coefficients, without apparent pairs.
    let zp = opts.modulus != 2;
    let zp_opts = RipsOptions {
        apparent_pairs: false,
        ..opts.clone()
    };
    let opts = if zp { &zp_opts } else { opts };
    let threshold = match opts.threshold {
        Some(t) if t.is_nan() || t < 0.0 => {
            return Err(Error::invalid(
                "threshold",
                format!("must be a number >= 0, got {t}"),
            ));
        }
        Some(t) => t as f32,
        None => dist.enclosing_radius(),
    };
    // Missing edges (sparse input) are infinitely far: never within a
    // threshold, which therefore never needs to exceed the longest edge.
    let reported = threshold;
    let threshold = threshold.min(dist.max_finite());
    if opts.maxdim == 0 && opts.dense_h0 {
        let mut bars = h0_prim(n, |u, v| dist.get(u, v), threshold);
        sort_bars(&mut bars);
        return Ok(Diagrams {
            dims: vec![bars],
            threshold: reported as f64,
            n_points: n,
            coefficients: opts.modulus,
        });
    }
    let mut dims = Vec::with_capacity(opts.maxdim + 1);

    // Edges within the threshold.
    let mut edges: Vec<Simplex> = (0..n * (n - 1) / 2)
        .into_par_iter()
        .filter_map(|e| {
            let d = dist.edge(e);
            (d <= threshold).then(|| Simplex::new(d, e as u64))
        })
        .collect();
    edges.par_sort_unstable();
    // A sparse graph (under a quarter of all pairs): neighbour lists.
    let sparse = opts.neighbor_lists && opts.maxdim >= 1 && edges.len() < n * (n - 1) / 8;
    let neighbors = sparse.then(|| {
        (0..n)
            .into_par_iter()
            .map(|v| {
                (0..n)
                    .rev()
                    .filter(|&u| u != v && dist.get(u, v) <= threshold)
                    .map(|u| u as u32)
                    .collect()
            })
            .collect::<Vec<Vec<u32>>>()
    });
    let cx = Complex {
        dist,
        binom: Binomial::new(n, opts.maxdim + 2)?,
        n,
        threshold,
        neighbors,
    };

    // H0: edges in filtration order (reverse column order).
    let mut uf = UnionFind::new(n);
    let mut bars0 = Vec::new();
    let mut mst: FxHashSet<u64> = FxHashSet::default();
    let mut others: Vec<Simplex> = Vec::new();
    for &e in edges.iter().rev() {
        let [i, j] = edge_vertices(e.idx);
        let (ri, rj) = (uf.find(i), uf.find(j));
        if ri != rj {
            uf.link(ri, rj);
            mst.insert(e.idx);
            if e.diameter() > 0.0 {
                bars0.push(Bar {
                    birth: 0.0,
                    death: e.diameter() as f64,
                    birth_edge: None,
                    death_edge: Some([i, j]),
                });
            }
        } else {
            others.push(e);
        }
    }
    for v in 0..n {
        if uf.find(v) == v {
            bars0.push(Bar::ESSENTIAL_H0);
        }
    }
    dims.push(bars0);

    let trace = std::env::var_os("TGLML_PH_TRACE").is_some();
    let mut prev = Pivots {
        dim: 1,
        stored: mst,
        apparent: false,
    };
    let mut simplices = edges;
    for dim in 1..=opts.maxdim {
        let t = std::time::Instant::now();
        let mut columns = if dim == 1 {
            // The edges that are not H0 deaths (all edges without clearing),
            // less those in apparent pairs, in column order.
            let mut c = if opts.clearing {
                std::mem::take(&mut others)
            } else {
                simplices.clone()
            };
            if opts.apparent_pairs {
                c = filter_apparent_columns(&cx, c, 1);
            }
            c
        } else {
            let keep_all = dim < opts.maxdim;
            let (next, columns) =
                assemble(&cx, &simplices, dim - 1, &prev, opts, keep_all, progress);
            simplices = next;
            columns
        };
        columns.par_sort_unstable();
        if dim == 1 && opts.maxdim == 1 {
            simplices = Vec::new();
        }
        let assembled = t.elapsed();
        let (bars, stored) = if zp {
            reduce_zp(&cx, &columns, dim, &prev, opts, progress)
        } else {
            reduce(&cx, &columns, dim, &prev, opts, progress)
        };
        if trace {
            eprintln!(
                "rips H{dim}: {} columns, assembled in {:.3} s, reduced in {:.3} s, {} stored pivots, {} bars",
                columns.len(),
                assembled.as_secs_f64(),
                (t.elapsed() - assembled).as_secs_f64(),
                stored.len(),
                bars.len()
            );
        }
        dims.push(bars);
        prev = Pivots {
            dim: dim + 1,
            stored,
            apparent: opts.apparent_pairs,
        };
    }

    for bars in &mut dims {
        sort_bars(bars);
    }
    Ok(Diagrams {
        dims,
        threshold: reported as f64,
        n_points: n,
        coefficients: opts.modulus,
    })
}

/// The pivots of the reduction in one dimension (simplices of dimension
/// `dim`): those stored in the pivot table, and, with apparent pairs, the
/// apparent cofacets, recognised on demand.
struct Pivots {
    dim: usize,
    stored: FxHashSet<u64>,
    apparent: bool,
}

impl Pivots {
    /// Whether `s` (with `vertices`) is a pivot.
    fn contains(
        &self,
        cx: &Complex<'_>,
        s: Simplex,
        vertices: &[usize],
        scratch: &mut Vec<usize>,
    ) -> bool {
        self.stored.contains(&s.idx)
            || (self.apparent && cx.apparent_facet(s, self.dim, vertices, scratch).is_some())
    }
}

/// Simplices per parallel work item.
const CHUNK: usize = 1 << 12;

/// Drops the columns that are in apparent pairs (in parallel, order kept).
fn filter_apparent_columns(cx: &Complex<'_>, columns: Vec<Simplex>, dim: usize) -> Vec<Simplex> {
    columns
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut vertices = Vec::with_capacity(dim + 1);
            let mut scratch = Vec::with_capacity(dim + 2);
            chunk
                .iter()
                .copied()
                .filter(|&s| {
                    cx.vertices(s.idx, dim, &mut vertices);
                    cx.apparent_cofacet(s, dim, &vertices, &mut scratch)
                        .is_none()
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .concat()
}

/// The `dim + 1`-simplices within the threshold, from the `dim`-simplices,
/// in parallel: all of them (when `keep_all`, for the next dimension) and
/// the columns to reduce: without the pivots of dimension `dim` (clearing)
/// and without the columns of apparent pairs. Both in a deterministic order.
fn assemble(
    cx: &Complex<'_>,
    simplices: &[Simplex],
    dim: usize,
    prev: &Pivots,
    opts: &RipsOptions,
    keep_all: bool,
    progress: &(dyn Fn(Progress) + Sync),
) -> (Vec<Simplex>, Vec<Simplex>) {
    let done = std::sync::atomic::AtomicU64::new(0);
    let total = simplices.len() as u64;
    let parts: Vec<(Vec<Simplex>, Vec<Simplex>)> = simplices
        .par_chunks(CHUNK)
        .map(|chunk| {
            let finished = done.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            progress(Progress {
                dim: dim + 1,
                stage: "columns",
                done: finished + chunk.len() as u64,
                total,
            });
            let mut all = Vec::new();
            let mut columns = Vec::new();
            let mut vertices = Vec::with_capacity(dim + 1);
            let mut cverts = Vec::with_capacity(dim + 2);
            let mut scratch = Vec::with_capacity(dim + 3);
            for &s in chunk {
                cx.vertices(s.idx, dim, &mut vertices);
                cx.for_each_cofacet(s, dim, &vertices, true, |c, w| {
                    if keep_all {
                        all.push(c);
                    }
                    // c's vertices: the new top vertex w, then s's.
                    cverts.clear();
                    cverts.push(w);
                    cverts.extend_from_slice(&vertices);
                    // A simplex is in at most one pair: if c is the column of
                    // an apparent pair it is no pivot, so that (usually
                    // quick) test comes before the clearing test.
                    let apparent = opts.apparent_pairs
                        && cx
                            .apparent_cofacet(c, dim + 1, &cverts, &mut scratch)
                            .is_some();
                    let mut cleared =
                        || opts.clearing && prev.contains(cx, c, &cverts, &mut scratch);
                    if !apparent && !cleared() {
                        columns.push(c);
                    }
                    true
                });
            }
            (all, columns)
        })
        .collect();
    let mut all = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    let mut columns = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
    for (a, c) in parts {
        all.extend(a);
        columns.extend(c);
    }
    (all, columns)
}

/// Where the column owning a pivot is: a reduced column (by position), or
/// the column of an apparent pair (never reduced, so V is empty).
enum Owner {
    Column(usize),
    Apparent(Simplex),
}

/// The reduction state of one dimension: pivots found so far and the
/// reduction matrix V of the columns that needed additions.
struct Reduction<'c, 'a> {
    cx: &'c Complex<'a>,
    columns: &'c [Simplex],
    dim: usize,
    apparent_pairs: bool,
    pivot_of: FxHashMap<u64, usize>,
    /// V_j (without j itself) of every column that needed additions: the
    /// columns whose coboundaries sum to R_j. (Storing R_j instead was
    /// measured on benches/ph: up to 3x the memory and no faster; Ripser
    /// made the same choice.)
    v_cols: FxHashMap<usize, Vec<Simplex>>,
}

/// A column being reduced.
struct Work {
    heap: RadixHeap,
    /// The columns added so far (Z/2: repeated entries cancel in pairs).
    added: Vec<Simplex>,
    /// The pivot, held outside the heap.
    pivot: Option<Simplex>,
    /// The pivot came from the emergent-pair shortcut: the heap holds only
    /// part of the coboundary.
    shortcut: bool,
}

/// Scratch vertex buffers of one thread.
#[derive(Default)]
struct Scratch {
    vertices: Vec<usize>,
    pivot: Vec<usize>,
    other: Vec<usize>,
}

impl Reduction<'_, '_> {
    /// The column owning pivot `p`, if any yet.
    fn owner(&self, p: Simplex, sc: &mut Scratch) -> Option<Owner> {
        if let Some(&i) = self.pivot_of.get(&p.idx) {
            return Some(Owner::Column(i));
        }
        if self.apparent_pairs {
            self.cx.vertices(p.idx, self.dim + 1, &mut sc.pivot);
            return self
                .cx
                .apparent_facet(p, self.dim + 1, &sc.pivot, &mut sc.other)
                .map(Owner::Apparent);
        }
        None
    }

    /// Adds the column of `owner` to `w` and moves to the next pivot.
    fn add(&self, w: &mut Work, owner: Owner, sc: &mut Scratch) {
        let (s, v) = match owner {
            Owner::Apparent(f) => (f, None),
            Owner::Column(i) => (self.columns[i], self.v_cols.get(&i)),
        };
        w.added.push(s);
        // The pivot is held outside the heap: put it back to cancel.
        if let Some(p) = w.pivot {
            w.heap.push(p);
        }
        push_coboundary(self.cx, s, self.dim, &mut sc.vertices, &mut w.heap);
        if let Some(v) = v {
            w.added.extend_from_slice(v);
            for &t in v {
                push_coboundary(self.cx, t, self.dim, &mut sc.vertices, &mut w.heap);
            }
        }
        w.pivot = pop_pivot(&mut w.heap);
    }

    /// Starts column `s`: its coboundary (or the emergent-pair shortcut),
    /// reduced against the pivots known so far. Read-only, so the columns of
    /// a block start in parallel.
    fn start(&self, s: Simplex, emergent_pairs: bool, sc: &mut Scratch) -> Work {
        let mut w = Work {
            heap: RadixHeap::new(),
            added: Vec::new(),
            pivot: None,
            shortcut: false,
        };
        self.cx.vertices(s.idx, self.dim, &mut sc.vertices);
        let mut check = emergent_pairs;
        let mut emergent = None;
        let vertices = std::mem::take(&mut sc.vertices);
        self.cx
            .for_each_cofacet(s, self.dim, &vertices, false, |c, _| {
                if check && c.diam == s.diam {
                    if self.owner(c, sc).is_none() {
                        emergent = Some(c);
                        return false;
                    }
                    check = false;
                }
                w.heap.push(c);
                true
            });
        sc.vertices = vertices;
        if let Some(c) = emergent {
            w.pivot = Some(c);
            w.shortcut = true;
            return w;
        }
        w.pivot = pop_pivot(&mut w.heap);
        self.finish(s, &mut w, sc);
        w
    }

    /// Adds earlier columns while the pivot is owned.
    fn finish(&self, s: Simplex, w: &mut Work, sc: &mut Scratch) {
        while let Some(p) = w.pivot {
            let Some(owner) = self.owner(p, sc) else {
                break;
            };
            if w.shortcut {
                // The shortcut's pivot was taken by a column of the same
                // block: build the whole coboundary and reduce it.
                w.shortcut = false;
                w.heap.clear();
                push_coboundary(self.cx, s, self.dim, &mut sc.vertices, &mut w.heap);
                w.pivot = pop_pivot(&mut w.heap);
                continue;
            }
            self.add(w, owner, sc);
        }
    }
}

/// Columns started in parallel at a time, per thread.
const BLOCK_PER_THREAD: usize = 64;

/// Reduces the coboundary columns of `columns` (dimension `dim`, in column
/// order). Returns the bars of H_dim and the stored pivots (for clearing).
///
/// Blocks of columns are started in parallel against the pivots of the
/// blocks before (read-only); each block is then finished in order, so
/// every column ends with exactly the pivot of the serial algorithm: the
/// result does not depend on the number of threads.
fn reduce(
    cx: &Complex<'_>,
    columns: &[Simplex],
    dim: usize,
    prev: &Pivots,
    opts: &RipsOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> (Vec<Bar>, FxHashSet<u64>) {
    let mut bars = Vec::new();
    let mut red = Reduction {
        cx,
        columns,
        dim,
        apparent_pairs: opts.apparent_pairs,
        pivot_of: FxHashMap::default(),
        v_cols: FxHashMap::default(),
    };
    let mut sc = Scratch::default();
    let block = BLOCK_PER_THREAD * rayon::current_num_threads();
    for (b, chunk) in columns.chunks(block).enumerate() {
        report_reduction(progress, dim, (b * block) as u64, columns.len() as u64);
        let started: Vec<Work> = chunk
            .par_iter()
            .map_init(Scratch::default, |sc, &s| {
                red.start(s, opts.emergent_pairs, sc)
            })
            .collect();
        for (k, mut w) in started.into_iter().enumerate() {
            let j = b * block + k;
            let s = columns[j];
            red.finish(s, &mut w, &mut sc);
            match w.pivot {
                Some(p) => {
                    red.pivot_of.insert(p.idx, j);
                    let kept = odd_entries(&mut w.added);
                    if !kept.is_empty() {
                        red.v_cols.insert(j, kept);
                    }
                    bars.extend(cx.finite_bar(s, p, dim, &mut sc.vertices));
                }
                None => {
                    // A cocycle that never dies: essential, unless s is
                    // itself a pivot of the dimension below (only possible
                    // without clearing).
                    cx.vertices(s.idx, dim, &mut sc.vertices);
                    if opts.clearing || !prev.contains(cx, s, &sc.vertices, &mut sc.other) {
                        bars.push(cx.essential_bar(s, &sc.vertices));
                    }
                }
            }
        }
    }
    report_reduction(progress, dim, columns.len() as u64, columns.len() as u64);
    (bars, red.pivot_of.into_keys().collect())
}

/// Reports `done` of `total` columns reduced in dimension `dim`.
fn report_reduction(progress: &(dyn Fn(Progress) + Sync), dim: usize, done: u64, total: u64) {
    progress(Progress {
        dim,
        stage: "reduction",
        done,
        total,
    });
}

/// Z/2: the entries of `v` that occur an odd number of times, sorted.
fn odd_entries(v: &mut [Simplex]) -> Vec<Simplex> {
    v.sort_unstable();
    let mut kept = Vec::new();
    let mut k = 0;
    while k < v.len() {
        let mut m = k;
        while m < v.len() && v[m] == v[k] {
            m += 1;
        }
        if (m - k) % 2 == 1 {
            kept.push(v[k]);
        }
        k = m;
    }
    kept
}

fn push_coboundary(
    cx: &Complex<'_>,
    s: Simplex,
    dim: usize,
    vertices: &mut Vec<usize>,
    heap: &mut RadixHeap,
) {
    cx.vertices(s.idx, dim, vertices);
    cx.for_each_cofacet(s, dim, vertices, false, |c, _| {
        heap.push(c);
        true
    });
}

// ---------------------------------------------------------------------------
// Z/p coefficients (p odd): a serial reduction with coefficients

/// A working-column entry with its coefficient; ordered by the simplex.
#[derive(Debug, Clone, Copy)]
struct Entry {
    s: Simplex,
    c: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.s == o.s
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.s.cmp(&o.s)
    }
}

fn is_prime(p: u32) -> bool {
    p >= 2 && (2..).take_while(|d| d * d <= p).all(|d| p % d != 0)
}

/// a^(p-2) mod p: the inverse of a in Z/p.
fn inverse(a: u64, p: u64) -> u64 {
    let (mut base, mut e, mut r) = (a % p, p - 2, 1u64);
    while e > 0 {
        if e & 1 == 1 {
            r = r * base % p;
        }
        base = base * base % p;
        e >>= 1;
    }
    r
}

/// Pushes `factor` times the coboundary of the `dim`-simplex `s`: the
/// cofacet adding vertex w has sign (-1)^(vertices of s below w).
fn push_coboundary_zp(
    cx: &Complex<'_>,
    s: Simplex,
    dim: usize,
    factor: u64,
    p: u64,
    vertices: &mut Vec<usize>,
    heap: &mut BinaryHeap<Entry>,
) {
    cx.vertices(s.idx, dim, vertices);
    let verts = std::mem::take(vertices);
    cx.for_each_cofacet(s, dim, &verts, false, |c, w| {
        let below = verts.iter().filter(|&&v| v < w).count();
        let sign = if below % 2 == 1 { p - 1 } else { 1 };
        heap.push(Entry {
            s: c,
            c: (sign * factor % p) as u32,
        });
        true
    });
    *vertices = verts;
}

/// The pivot of the working column with its coefficient (equal simplices
/// summed mod p; zero sums dropped), taken out of the heap.
fn pop_pivot_zp(heap: &mut BinaryHeap<Entry>, p: u64) -> Option<Entry> {
    loop {
        let top = heap.pop()?;
        let mut c = top.c as u64;
        while heap.peek().is_some_and(|e| e.s == top.s) {
            c += heap.pop().expect("peeked").c as u64;
        }
        if c % p != 0 {
            return Some(Entry {
                s: top.s,
                c: (c % p) as u32,
            });
        }
    }
}

/// [`reduce`] over Z/p, p odd: serial, with coefficients, emergent pairs
/// and clearing, no apparent pairs.
fn reduce_zp(
    cx: &Complex<'_>,
    columns: &[Simplex],
    dim: usize,
    prev: &Pivots,
    opts: &RipsOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> (Vec<Bar>, FxHashSet<u64>) {
    let p = opts.modulus as u64;
    let mut bars = Vec::new();
    let mut pivot_of: FxHashMap<u64, (usize, u32)> = FxHashMap::default();
    let mut v_cols: FxHashMap<usize, Vec<(Simplex, u32)>> = FxHashMap::default();
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    let mut vertices = Vec::with_capacity(dim + 2);
    let mut scratch = Vec::with_capacity(dim + 3);
    let mut v: Vec<(Simplex, u64)> = Vec::new();
    for (j, &s) in columns.iter().enumerate() {
        if j % 4096 == 0 {
            report_reduction(progress, dim, j as u64, columns.len() as u64);
        }
        heap.clear();
        v.clear();
        // Coboundary of s, with the emergent-pair shortcut.
        cx.vertices(s.idx, dim, &mut vertices);
        let verts = vertices.clone();
        let mut check = opts.emergent_pairs;
        let mut emergent = None;
        cx.for_each_cofacet(s, dim, &verts, false, |c, w| {
            let below = verts.iter().filter(|&&u| u < w).count();
            let e = Entry {
                s: c,
                c: if below % 2 == 1 { (p - 1) as u32 } else { 1 },
            };
            if check && c.diam == s.diam {
                if !pivot_of.contains_key(&c.idx) {
                    emergent = Some(e);
                    return false;
                }
                check = false;
            }
            heap.push(e);
            true
        });
        let mut pivot = match emergent {
            Some(e) => Some(e),
            None => pop_pivot_zp(&mut heap, p),
        };
        while let Some(pe) = pivot {
            let Some(&(i, ci)) = pivot_of.get(&pe.s.idx) else {
                break;
            };
            // Cancel the pivot: add f times column i, f = -c_j / c_i.
            let f = (p - pe.c as u64 * inverse(ci as u64, p) % p) % p;
            heap.push(pe);
            push_coboundary_zp(cx, columns[i], dim, f, p, &mut vertices, &mut heap);
            v.push((columns[i], f));
            if let Some(vi) = v_cols.get(&i) {
                for &(t, ct) in vi {
                    let g = f * ct as u64 % p;
                    push_coboundary_zp(cx, t, dim, g, p, &mut vertices, &mut heap);
                    v.push((t, g));
                }
            }
            pivot = pop_pivot_zp(&mut heap, p);
        }
        match pivot {
            Some(pe) => {
                pivot_of.insert(pe.s.idx, (j, pe.c));
                if !v.is_empty() {
                    v.sort_unstable_by_key(|e| e.0);
                    let mut kept: Vec<(Simplex, u32)> = Vec::new();
                    for &(t, c) in v.iter() {
                        match kept.last_mut() {
                            Some(last) if last.0 == t => last.1 = ((last.1 as u64 + c) % p) as u32,
                            _ => kept.push((t, (c % p) as u32)),
                        }
                    }
                    kept.retain(|e| e.1 != 0);
                    if !kept.is_empty() {
                        v_cols.insert(j, kept);
                    }
                }
                bars.extend(cx.finite_bar(s, pe.s, dim, &mut vertices));
            }
            None => {
                cx.vertices(s.idx, dim, &mut vertices);
                if opts.clearing || !prev.contains(cx, s, &vertices, &mut scratch) {
                    bars.push(cx.essential_bar(s, &vertices));
                }
            }
        }
    }
    report_reduction(progress, dim, columns.len() as u64, columns.len() as u64);
    (bars, pivot_of.into_keys().collect())
}

/// Takes the pivot of the working column out of the heap (Z/2: equal
/// entries cancel in pairs). The working column is then the pivot plus what
/// remains in the heap. The heap's floor stays at the pivot, so the pivot
/// can be pushed back (to cancel it when a column is added).
fn pop_pivot(heap: &mut RadixHeap) -> Option<Simplex> {
    while heap.refill() {
        let copies = heap.buckets[0].len();
        heap.buckets[0].clear();
        heap.len -= copies;
        if copies % 2 == 1 {
            return Some(RadixHeap::simplex(heap.last));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The working column: a radix heap

/// A monotone priority queue of simplices (a radix heap, Ahuja et al. 1990):
/// pops come in column order, largest first, and nothing pushed may exceed
/// the last popped element. Reduction only moves the pivot downwards, so
/// this holds; in exchange pushes cost O(1) and entries far below the pivot
/// are never touched again, where a binary heap pays O(log m) for every pop.
///
/// Keys: `(diameter bits << 64) | !index`, so that the largest simplex in
/// column order (smallest diameter, then largest index) has the smallest key.
#[derive(Default)]
struct RadixHeap {
    last: u128,
    len: usize,
    buckets: Vec<Vec<u128>>,
}

impl RadixHeap {
    fn new() -> Self {
        RadixHeap {
            last: 0,
            len: 0,
            buckets: (0..129).map(|_| Vec::new()).collect(),
        }
    }

    #[inline]
    fn key(s: Simplex) -> u128 {
        ((s.diam as u128) << 64) | (!s.idx) as u128
    }

    #[inline]
    fn simplex(k: u128) -> Simplex {
        Simplex {
            diam: (k >> 64) as u32,
            idx: !(k as u64),
        }
    }

    #[inline]
    fn bucket(&self, k: u128) -> usize {
        128 - (k ^ self.last).leading_zeros() as usize
    }

    fn clear(&mut self) {
        for b in &mut self.buckets {
            b.clear();
        }
        self.len = 0;
        self.last = 0;
    }

    #[inline]
    fn push(&mut self, s: Simplex) {
        let k = Self::key(s);
        debug_assert!(k >= self.last, "radix heap: push below the last pop");
        let b = self.bucket(k);
        self.buckets[b].push(k);
        self.len += 1;
    }

    /// Makes bucket 0 hold the smallest keys; false when empty.
    fn refill(&mut self) -> bool {
        if !self.buckets[0].is_empty() {
            return true;
        }
        let Some(b) = (1..129).find(|&b| !self.buckets[b].is_empty()) else {
            return false;
        };
        let mut items = std::mem::take(&mut self.buckets[b]);
        self.last = *items.iter().min().expect("non-empty bucket");
        for &k in &items {
            let nb = self.bucket(k);
            self.buckets[nb].push(k);
        }
        items.clear();
        // Keep the allocation of the emptied bucket.
        if self.buckets[b].is_empty() {
            self.buckets[b] = items;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// H0 by Prim's algorithm gives the union-find's diagrams bar for bar,
    /// critical edges included: random clouds, a grid (every distance tied
    /// many times), repeated points (zero-length edges), and thresholds
    /// that cut the complex into pieces.
    /// Point sets with ties everywhere and repeated points: a 7 × 7 grid,
    /// and 30 points on 10 positions of a line.
    fn tie_clouds() -> [Array2<f64>; 2] {
        [
            Array2::from_shape_fn((49, 2), |(i, j)| {
                if j == 0 {
                    (i / 7) as f64
                } else {
                    (i % 7) as f64
                }
            }),
            Array2::from_shape_fn((30, 2), |(i, j)| ((i / 3) * (j + 1)) as f64),
        ]
    }

    #[test]
    fn dense_h0_is_the_union_find() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let mut clouds: Vec<Array2<f64>> = (0..6)
            .map(|i| {
                let n = [2, 3, 17, 60, 150, 400][i];
                Array2::from_shape_fn((n, 3), |_| rng.random::<f64>())
            })
            .collect();
        clouds.extend(tie_clouds());
        for (c, x) in clouds.iter().enumerate() {
            let d = DistanceMatrix::from_points(x.view()).unwrap();
            for threshold in [None, Some(0.2), Some(1.0), Some(0.0)] {
                let run = |dense_h0| {
                    rips_persistence(
                        &d,
                        &RipsOptions {
                            maxdim: 0,
                            threshold,
                            dense_h0,
                            ..RipsOptions::default()
                        },
                    )
                    .unwrap()
                };
                let (prim, uf) = (run(true), run(false));
                assert_eq!(prim, uf, "cloud {c}, threshold {threshold:?}");
            }
        }
    }

    /// H0 by Prim's tree on given distances has the bars and critical edges
    /// of the union-find on the matrix at its default threshold.
    #[test]
    fn h0_diagram_is_rips_on_the_matrix() {
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let mut clouds: Vec<Array2<f64>> = [2, 3, 17, 60, 257]
            .iter()
            .map(|&n| Array2::from_shape_fn((n, 5), |_| rng.random::<f64>()))
            .collect();
        // Ties everywhere, repeated points.
        clouds.extend(tie_clouds());
        for (c, x) in clouds.iter().enumerate() {
            let d = DistanceMatrix::from_points(x.view()).unwrap();
            let want = rips_persistence(
                &d,
                &RipsOptions {
                    maxdim: 0,
                    dense_h0: false,
                    ..RipsOptions::default()
                },
            )
            .unwrap();
            let got = h0_diagram(x.nrows(), |u, v| d.get(u, v));
            assert_eq!(got.dims, want.dims, "cloud {c}");
        }
        assert_eq!(h0_diagram(0, |_, _| 0.0).dims, vec![vec![]]);
        assert_eq!(
            h0_diagram(1, |_, _| 0.0).dims,
            vec![vec![Bar::ESSENTIAL_H0]]
        );
    }

    /// Persistence by brute force over Z/2: see [`brute_force_mod`].
    fn brute_force(d: &DistanceMatrix, maxdim: usize, threshold: f32) -> Vec<Vec<(f64, f64)>> {
        brute_force_mod(d, maxdim, threshold, 2)
    }

    /// Persistence by brute force: every simplex listed with its vertices,
    /// the signed boundary matrix over Z/p reduced by the standard algorithm
    /// (homology). Independent of the engine but for the distances.
    fn brute_force_mod(
        d: &DistanceMatrix,
        maxdim: usize,
        threshold: f32,
        p: u64,
    ) -> Vec<Vec<(f64, f64)>> {
        let n = d.len();
        // All simplices up to maxdim + 1 within the threshold, as vertex
        // lists in increasing order.
        let mut simplices: Vec<(f32, usize, Vec<usize>)> = Vec::new();
        let mut stack: Vec<Vec<usize>> = (0..n).map(|v| vec![v]).collect();
        while let Some(s) = stack.pop() {
            let mut diam = 0.0f32;
            for a in 0..s.len() {
                for b in a + 1..s.len() {
                    diam = diam.max(d.get(s[a], s[b]));
                }
            }
            if diam > threshold {
                continue;
            }
            if s.len() < maxdim + 2 {
                for v in s[s.len() - 1] + 1..n {
                    let mut t = s.clone();
                    t.push(v);
                    stack.push(t);
                }
            }
            simplices.push((diam, s.len() - 1, s));
        }
        simplices.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let pos: std::collections::HashMap<Vec<usize>, usize> = simplices
            .iter()
            .enumerate()
            .map(|(i, s)| (s.2.clone(), i))
            .collect();
        // Columns: (row, coefficient) sorted by row; ∂[v0..vk] = Σ (-1)^i [.. v̂i ..].
        let mut cols: Vec<Vec<(usize, u64)>> = simplices
            .iter()
            .map(|s| {
                if s.2.len() < 2 {
                    return Vec::new();
                }
                let mut c: Vec<(usize, u64)> = (0..s.2.len())
                    .map(|skip| {
                        let f: Vec<usize> =
                            s.2.iter()
                                .enumerate()
                                .filter(|(i, _)| *i != skip)
                                .map(|(_, &v)| v)
                                .collect();
                        (pos[&f], if skip % 2 == 1 { p - 1 } else { 1 } % p)
                    })
                    .collect();
                c.sort_unstable();
                c
            })
            .collect();
        let inv = |a: u64| inverse(a, p);
        let mut low_owner: std::collections::HashMap<usize, usize> =
            std::collections::HashMap::new();
        let mut dgm = vec![Vec::new(); maxdim + 1];
        let mut paired = vec![false; simplices.len()];
        for j in 0..cols.len() {
            while let Some(&(low, cj)) = cols[j].last() {
                let Some(&i) = low_owner.get(&low) else { break };
                let ci = cols[i].last().expect("owner has a pivot").1;
                let f = (p - cj * inv(ci) % p) % p;
                let mut merged: std::collections::BTreeMap<usize, u64> =
                    cols[j].iter().copied().collect();
                for &(r, c) in &cols[i] {
                    let e = merged.entry(r).or_insert(0);
                    *e = (*e + f * c) % p;
                }
                cols[j] = merged.into_iter().filter(|&(_, c)| c != 0).collect();
            }
            if let Some(&(low, _)) = cols[j].last() {
                low_owner.insert(low, j);
                paired[low] = true;
                paired[j] = true;
                let k = simplices[low].1;
                if k <= maxdim && simplices[j].0 > simplices[low].0 {
                    dgm[k].push((simplices[low].0 as f64, simplices[j].0 as f64));
                }
            }
        }
        for (i, s) in simplices.iter().enumerate() {
            if !paired[i] && cols[i].is_empty() && s.1 <= maxdim {
                dgm[s.1].push((s.0 as f64, f64::INFINITY));
            }
        }
        for d in &mut dgm {
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        dgm
    }

    /// Z/p coefficients (p = 3, 5, 7) give the brute-force diagrams over Z/p,
    /// with and without clearing and emergent pairs.
    #[test]
    fn zp_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        for case in 0..80 {
            let n = rng.random_range(3..=9);
            let dims = rng.random_range(1..=4);
            let d = random_cloud(&mut rng, n, dims, case % 3 == 0);
            let p = [3u32, 5, 7][case % 3];
            let maxdim = case % 3;
            let opts = RipsOptions {
                maxdim,
                modulus: p,
                clearing: case % 2 == 0,
                emergent_pairs: case % 4 < 2,
                ..Default::default()
            };
            let got = rips_persistence(&d, &opts).unwrap();
            assert_eq!(got.coefficients, p);
            assert_eq!(
                values(&got),
                brute_force_mod(&d, maxdim, got.threshold as f32, p as u64),
                "case {case}: Z/{p}"
            );
        }
        let d = random_cloud(&mut rng, 5, 2, false);
        for bad in [0u32, 1, 4, 9, 70000] {
            assert!(
                rips_persistence(
                    &d,
                    &RipsOptions {
                        modulus: bad,
                        ..Default::default()
                    }
                )
                .is_err(),
                "modulus {bad}"
            );
        }
    }

    /// The 8 vertices ±e_i of the cross-polytope in R^4, each coordinate
    /// moved by up to `noise`, then `extra` random points of [-1, 1]^4.
    /// Unmoved, its Rips complex at scales in [√2, 2) is the boundary of the
    /// 16-cell (every pair but the antipodal ones is joined), a 3-sphere: an
    /// H3 bar [√2, 2).
    fn cross_polytope(rng: &mut ChaCha8Rng, noise: f64, extra: usize) -> DistanceMatrix {
        let n = 8 + extra;
        let x = Array2::from_shape_fn((n, 4), |(i, c)| {
            if i < 8 {
                let v = if c == i / 2 {
                    if i % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    0.0
                };
                v + noise * (2.0 * rng.random::<f64>() - 1.0)
            } else {
                2.0 * rng.random::<f64>() - 1.0
            }
        });
        DistanceMatrix::from_points(x.view()).unwrap()
    }

    /// H3 (issue 12): maxdim 3 against the brute force, over Z/2, Z/3 and
    /// Z/5, with and without a threshold and with random speed-up switches,
    /// on random clouds (integer grids for exact ties) and on cross-polytopes
    /// (exact and noisy, with extra points), whose Rips complexes are
    /// 3-spheres over a range of scales, so that H3 bars, finite and (below
    /// a threshold) essential, are really compared.
    #[test]
    fn h3_matches_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        let (mut finite3, mut essential3) = (0, 0);
        for case in 0..320 {
            let kind = case % 4;
            let d = match kind {
                0 | 1 => {
                    let noise = if case % 8 == 0 { 0.0 } else { 0.15 };
                    let extra = rng.random_range(0..=3);
                    cross_polytope(&mut rng, noise, extra)
                }
                2 => {
                    let n = rng.random_range(5..=11);
                    let dim = rng.random_range(2..=5);
                    random_cloud(&mut rng, n, dim, false)
                }
                _ => {
                    let n = rng.random_range(5..=10);
                    random_cloud(&mut rng, n, 4, true)
                }
            };
            let p = [2u32, 3, 2, 5][(case / 4) % 4];
            let threshold = ((case / 16) % 2 == 1).then(|| {
                if kind < 2 {
                    rng.random_range(1.3..2.1)
                } else {
                    0.5 + rng.random::<f64>()
                }
            });
            let mask: u8 = rng.random_range(0..16);
            let opts = RipsOptions {
                maxdim: 3,
                threshold,
                modulus: p,
                clearing: mask & 1 != 0,
                emergent_pairs: mask & 2 != 0,
                apparent_pairs: mask & 4 != 0,
                neighbor_lists: mask & 8 != 0,
                dense_h0: true,
            };
            let got = rips_persistence(&d, &opts).unwrap();
            let want = brute_force_mod(&d, 3, got.threshold as f32, p as u64);
            assert_eq!(
                values(&got),
                want,
                "case {case}: n {}, Z/{p}, threshold {threshold:?}, switches {mask:04b}",
                d.len()
            );
            finite3 += want[3].iter().filter(|b| b.1.is_finite()).count();
            essential3 += want[3].iter().filter(|b| b.1.is_infinite()).count();
        }
        // The comparison must have covered H3 bars of both kinds.
        assert!(
            finite3 >= 60 && essential3 >= 10,
            "only {finite3} finite and {essential3} essential H3 bars"
        );
    }

    fn values(d: &Diagrams) -> Vec<Vec<(f64, f64)>> {
        d.dims
            .iter()
            .map(|bars| {
                let mut v: Vec<(f64, f64)> = bars.iter().map(|b| (b.birth, b.death)).collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
                v
            })
            .collect()
    }

    fn random_cloud(rng: &mut ChaCha8Rng, n: usize, dim: usize, grid: bool) -> DistanceMatrix {
        let x = Array2::from_shape_fn((n, dim), |_| {
            if grid {
                rng.random_range(0..4) as f64
            } else {
                rng.random::<f64>()
            }
        });
        DistanceMatrix::from_points(x.view()).unwrap()
    }

    /// Acceptance 2 (issue 3): random small clouds give the same diagrams as
    /// a brute-force reduction of the explicit boundary matrix; integer grid
    /// points make many exact ties.
    #[test]
    fn matches_brute_force_on_random_clouds() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..400 {
            let n = rng.random_range(3..=9);
            let dim = rng.random_range(1..=4);
            let grid = case % 3 == 0;
            let d = random_cloud(&mut rng, n, dim, grid);
            let maxdim = case % 3;
            let threshold = if case % 4 == 0 {
                Some(rng.random::<f64>() * 1.5)
            } else {
                None
            };
            let opts = RipsOptions {
                maxdim,
                threshold,
                ..Default::default()
            };
            let got = rips_persistence(&d, &opts).unwrap();
            let want = brute_force(&d, maxdim, got.threshold as f32);
            assert_eq!(values(&got), want, "case {case}: n {n}, dim {dim}, grid {grid}, maxdim {maxdim}, threshold {threshold:?}");
        }
    }

    #[test]
    fn switches_do_not_change_results() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for case in 0..60 {
            let d = random_cloud(&mut rng, 12, 3, case % 2 == 0);
            // Half the cases with a threshold that leaves a sparse graph.
            let threshold = (case % 2 == 1).then_some(if case % 4 == 0 { 1.5 } else { 0.45 });
            let base = RipsOptions {
                maxdim: 3,
                threshold,
                ..Default::default()
            };
            let reference = rips_persistence(&d, &base).unwrap();
            // Every combination of the switches gives the same result.
            for mask in 0..15u8 {
                let o = RipsOptions {
                    clearing: mask & 1 != 0,
                    emergent_pairs: mask & 2 != 0,
                    apparent_pairs: mask & 4 != 0,
                    neighbor_lists: mask & 8 != 0,
                    ..base.clone()
                };
                assert_eq!(
                    rips_persistence(&d, &o).unwrap(),
                    reference,
                    "case {case}: {o:?}"
                );
            }
        }
    }

    /// Neighbour lists (a threshold keeping under a quarter of the pairs)
    /// give the brute-force diagrams, and the same bars as without them.
    #[test]
    fn neighbor_lists_on_sparse_graphs() {
        let mut rng = ChaCha8Rng::seed_from_u64(29);
        for case in 0..30 {
            let d = random_cloud(&mut rng, 30, 3, false);
            let t = 0.3;
            let pairs = (0..30)
                .flat_map(|i| (0..i).map(move |j| (i, j)))
                .filter(|&(i, j)| d.get(i, j) <= t as f32)
                .count();
            assert!(
                pairs < 30 * 29 / 8,
                "case {case}: the graph must be sparse for this test ({pairs} pairs)"
            );
            let opts = RipsOptions {
                maxdim: 2,
                threshold: Some(t),
                ..Default::default()
            };
            let sparse = rips_persistence(&d, &opts).unwrap();
            let dense = rips_persistence(
                &d,
                &RipsOptions {
                    neighbor_lists: false,
                    ..opts.clone()
                },
            )
            .unwrap();
            assert_eq!(sparse, dense, "case {case}");
            assert_eq!(values(&sparse), brute_force(&d, 2, t as f32), "case {case}");
        }
    }

    /// Acceptance 2 (issue 3): results are bit-identical for every number of
    /// threads (the serial run is the reference).
    #[test]
    fn threads_do_not_change_results() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let pool = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        for case in 0..12 {
            let n = [40, 60, 90][case % 3];
            let d = random_cloud(&mut rng, n, 3, case % 4 == 0);
            let opts = RipsOptions {
                maxdim: 2,
                ..Default::default()
            };
            let serial = pool(1).install(|| rips_persistence(&d, &opts).unwrap());
            for t in [2, 3, 4] {
                let parallel = pool(t).install(|| rips_persistence(&d, &opts).unwrap());
                assert!(parallel == serial, "case {case}: {t} threads differ from 1");
            }
        }
    }

    /// Invariants: birth ≤ death; one essential H0 class per connected
    /// component at the threshold; critical edges reproduce their values.
    #[test]
    fn invariants_and_critical_edges() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for case in 0..100 {
            let n = rng.random_range(2..=30);
            let d = random_cloud(&mut rng, n, 3, case % 2 == 0);
            let opts = RipsOptions {
                maxdim: 2,
                threshold: Some(rng.random::<f64>()),
                ..Default::default()
            };
            let got = rips_persistence(&d, &opts).unwrap();
            let t = got.threshold as f32;
            // Components at the threshold, by a plain graph search.
            let mut seen = vec![false; n];
            let mut components = 0;
            for s in 0..n {
                if seen[s] {
                    continue;
                }
                components += 1;
                let mut stack = vec![s];
                seen[s] = true;
                while let Some(u) = stack.pop() {
                    for (v, s) in seen.iter_mut().enumerate() {
                        if !*s && d.get(u, v) <= t {
                            *s = true;
                            stack.push(v);
                        }
                    }
                }
            }
            let essential0 = got.dims[0].iter().filter(|b| b.death.is_infinite()).count();
            assert_eq!(essential0, components, "case {case}");
            for (k, bars) in got.dims.iter().enumerate() {
                for b in bars {
                    assert!(b.birth <= b.death, "case {case}: {b:?}");
                    if let Some([i, j]) = b.birth_edge {
                        assert!(i > j);
                        assert_eq!(
                            d.get(i, j) as f64,
                            b.birth,
                            "case {case} dim {k}: birth edge"
                        );
                    } else {
                        assert_eq!((k, b.birth), (0, 0.0));
                    }
                    match b.death_edge {
                        Some([i, j]) => assert_eq!(
                            d.get(i, j) as f64,
                            b.death,
                            "case {case} dim {k}: death edge"
                        ),
                        None => assert!(b.death.is_infinite()),
                    }
                }
            }
        }
    }

    /// n evenly spaced points on the unit circle (issue 12): exactly one H1
    /// bar, [2 sin(π/n), 2 sin(⌈n/3⌉π/n)); when 3 divides n, n/3 − 1 H2
    /// bars [√3, 2 sin((n/3 + 1)π/n)), and otherwise none.
    ///
    /// Why. Two points j steps apart (j ≤ n/2) are a chord 2 sin(jπ/n) apart,
    /// increasing in j, so for r in [2 sin(kπ/n), 2 sin((k + 1)π/n)) the
    /// Rips complex is the clique complex of the graph C_n^k that joins each
    /// point to the k nearest on either side. Adamaszek ("Clique complexes
    /// and graph powers", Israel J. Math. 196, 2013; used by Adamaszek &
    /// Adams, "The Vietoris–Rips complexes of a circle", Pacific J. Math.
    /// 290, 2017) shows, for 0 < k < n/2: that complex is ≃ S^(2l+1) when
    /// l/(2l+1) < k/n < (l+1)/(2l+3), and ≃ a wedge of n − 2k − 1 copies of
    /// S^(2l) when k/n = l/(2l+1); for k ≥ n/2 it is a full simplex. With
    /// l = 0: a circle for 1 ≤ k < n/3 (n ≥ 4), carried by the cycle through
    /// consecutive points at every such k, so one bar born at k = 1, the
    /// side 2 sin(π/n); H1 = 0 from the first k ≥ n/3 on, k = ⌈n/3⌉, so the
    /// bar dies at the chord 2 sin(⌈n/3⌉π/n). For 3 | n that is √3, the
    /// side of the inscribed triangle, but for n = 40 it is 2 sin(14π/40) =
    /// 1.78201 (√3 = 1.73205). H2 ≠ 0 only at k = n/3 exactly (a wedge of
    /// n/3 − 1 2-spheres; every other k gives an odd sphere, a wedge of
    /// spheres of dimension ≥ 4, or a point), so those bars die at k = n/3 + 1.
    #[test]
    fn circle_bars_are_exact_chords() {
        use std::f64::consts::PI;
        let chord = |n: usize, k: usize| 2.0 * (k as f64 * PI / n as f64).sin();
        for n in [4usize, 5, 6, 7, 9, 12, 13, 14, 20, 30, 40, 41, 60, 99, 100] {
            let x = Array2::from_shape_fn((n, 2), |(i, j)| {
                let a = 2.0 * PI * i as f64 / n as f64;
                if j == 0 {
                    a.cos()
                } else {
                    a.sin()
                }
            });
            let d = DistanceMatrix::from_points(x.view()).unwrap();
            let maxdim = if n <= 60 { 2 } else { 1 };
            let got = rips_persistence(
                &d,
                &RipsOptions {
                    maxdim,
                    ..Default::default()
                },
            )
            .unwrap();
            let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
            assert_eq!(got.dims[1].len(), 1, "n {n}: {:?}", got.dims[1]);
            let bar = got.dims[1][0];
            let death = chord(n, n.div_ceil(3));
            assert!(
                close(bar.birth, chord(n, 1)) && close(bar.death, death),
                "n {n}: H1 {bar:?}, want [{}, {death})",
                chord(n, 1)
            );
            assert_eq!(
                got.dims[0].iter().filter(|b| b.death.is_infinite()).count(),
                1,
                "n {n}"
            );
            if maxdim == 2 {
                let h2: Vec<(f64, f64)> = got.dims[2].iter().map(|b| (b.birth, b.death)).collect();
                if n % 3 == 0 {
                    let want = (3f64.sqrt(), chord(n, n / 3 + 1));
                    assert_eq!(h2.len(), n / 3 - 1, "n {n}: H2 {h2:?}");
                    assert!(
                        h2.iter().all(|b| close(b.0, want.0) && close(b.1, want.1)),
                        "n {n}: H2 {h2:?}, want {want:?}"
                    );
                } else {
                    assert!(h2.is_empty(), "n {n}: H2 {h2:?}");
                }
            }
        }
    }

    /// n points of the real projective plane RP²: Fibonacci points of the
    /// upper hemisphere of S² (heights uniform in (0, 1), so the sample is
    /// even in area), sent by the Veronese map x ↦ x xᵀ (a 3 × 3 matrix, 9
    /// coordinates), which identifies x with −x and embeds RP² in R⁹; the
    /// distance of two images is √(2 − 2(x·y)²), at most √2.
    fn rp2_sample(n: usize) -> DistanceMatrix {
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        let pts: Vec<[f64; 3]> = (0..n)
            .map(|i| {
                let z = 1.0 - (i as f64 + 0.5) / n as f64;
                let r = (1.0 - z * z).sqrt();
                let t = golden * i as f64;
                [r * t.cos(), r * t.sin(), z]
            })
            .collect();
        let x = Array2::from_shape_fn((n, 9), |(i, c)| pts[i][c / 3] * pts[i][c % 3]);
        DistanceMatrix::from_points(x.view()).unwrap()
    }

    /// Torsion (issue 12): H1(RP²; Z) = Z/2 and H2(RP²; Z) = 0, so RP² has
    /// H1 = H2 = Z/2 over Z/2 but H1 = H2 = 0 over Z/p for p odd (universal
    /// coefficients). A sample of it must show one long H1 bar and one long
    /// H2 bar over Z/2, each at least 4 times any other bar of its
    /// dimension, and none over Z/3 or Z/5: there every H1 and H2 bar is at
    /// most a quarter of those long ones. H0 does not depend on the field.
    #[test]
    fn projective_plane_has_torsion() {
        let d = rp2_sample(150);
        let run = |p: u32| {
            rips_persistence(
                &d,
                &RipsOptions {
                    maxdim: 2,
                    modulus: p,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        // Persistences of H_k, longest first.
        let pers = |g: &Diagrams, k: usize| {
            let mut v: Vec<f64> = g.dims[k].iter().map(|b| b.death - b.birth).collect();
            v.sort_by(|a, b| b.total_cmp(a));
            v
        };
        let z2 = run(2);
        // The long bars' persistences over Z/2, of H1 and H2.
        let long: Vec<f64> = (1..=2)
            .map(|k| {
                let v = pers(&z2, k);
                assert!(v.len() >= 2, "Z/2 H{k}: {v:?}");
                assert!(v[0].is_finite(), "Z/2 H{k}: {v:?}");
                assert!(v[0] >= 4.0 * v[1], "Z/2 H{k}: no clear long bar: {v:?}");
                // Long on the scale of the diameter √2, too.
                assert!(v[0] > 0.5, "Z/2 H{k}: {v:?}");
                v[0]
            })
            .collect();
        let longest = |g: &Diagrams, k: usize| {
            g.dims[k]
                .iter()
                .copied()
                .max_by(|a, b| (a.death - a.birth).total_cmp(&(b.death - b.birth)))
                .unwrap()
        };
        // The two classes live together, as RP²'s H1 and H2 do.
        let (h1, h2) = (longest(&z2, 1), longest(&z2, 2));
        assert!(h1.birth < h2.birth && h2.birth < h1.death, "{h1:?} {h2:?}");
        for p in [3u32, 5] {
            let zp = run(p);
            assert_eq!(zp.coefficients, p);
            assert_eq!(zp.dims[0], z2.dims[0], "Z/{p}: H0");
            for (k, &l) in (1..=2).zip(&long) {
                let v = pers(&zp, k);
                assert!(
                    v.first().is_none_or(|&m| 4.0 * m <= l),
                    "Z/{p} H{k}: a long bar ({:?}) against {l} over Z/2",
                    v.first()
                );
            }
        }
    }

    /// The estimate bounds the simplices the engine really builds.
    #[test]
    fn memory_estimate_bounds_the_simplex_counts() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..20 {
            let d = random_cloud(&mut rng, 25, 3, false);
            let opts = RipsOptions {
                maxdim: 2,
                threshold: Some(0.6),
                ..Default::default()
            };
            let est = estimate_memory(&d, &opts);
            let t = 0.6f32;
            let mut edges = 0u64;
            let mut triangles = 0u64;
            for i in 0..25 {
                for j in 0..i {
                    if d.get(i, j) <= t {
                        edges += 1;
                        triangles += (0..j)
                            .filter(|&k| d.get(i, k) <= t && d.get(j, k) <= t)
                            .count() as u64;
                    }
                }
            }
            assert_eq!(est.edges, edges);
            assert!(est.simplices[0] == edges, "{est:?}");
            assert!(est.simplices[1] >= triangles, "{est:?} vs {triangles}");
        }
    }

    /// The radix heap yields the same pivots as a plain model of the working
    /// column (a parity map), under the reduction's usage: pushes never
    /// below the current pivot, the pivot pushed back to cancel it.
    #[test]
    fn radix_heap_matches_a_parity_model() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for _ in 0..200 {
            let mut heap = RadixHeap::new();
            let mut model: std::collections::BTreeMap<Simplex, u32> = Default::default();
            let mut floor: Option<Simplex> = None;
            for _round in 0..rng.random_range(1..20) {
                for _ in 0..rng.random_range(0..40) {
                    let s = Simplex::new(
                        rng.random_range(0..8) as f32 * 0.25,
                        rng.random_range(0..16),
                    );
                    // Never above the current pivot in column order.
                    if floor.is_some_and(|f| s > f) {
                        continue;
                    }
                    heap.push(s);
                    *model.entry(s).or_default() += 1;
                }
                let want = model
                    .iter()
                    .rev()
                    .find(|(_, &c)| c % 2 == 1)
                    .map(|(&s, _)| s);
                let got = pop_pivot(&mut heap);
                assert_eq!(got, want);
                // The model keeps only what lies below the pivot.
                match got {
                    Some(p) => {
                        model.retain(|&s, _| s < p);
                        // Put the pivot back, as `add` does.
                        heap.push(p);
                        model.insert(p, 1);
                        floor = Some(p);
                    }
                    None => break,
                }
            }
        }
    }

    #[test]
    fn edge_vertices_inverts_the_index() {
        let mut idx = 0u64;
        for i in 1..300usize {
            for j in 0..i {
                assert_eq!(edge_vertices(idx), [i, j]);
                idx += 1;
            }
        }
    }

    #[test]
    fn bad_input() {
        let d = DistanceMatrix::from_points(Array2::<f64>::zeros((1, 2)).view()).unwrap();
        assert!(rips_persistence(&d, &RipsOptions::default()).is_err());
        let d = DistanceMatrix::from_points(Array2::<f64>::zeros((3, 2)).view()).unwrap();
        assert!(rips_persistence(
            &d,
            &RipsOptions {
                maxdim: 4,
                ..Default::default()
            }
        )
        .is_err());
        assert!(rips_persistence(
            &d,
            &RipsOptions {
                threshold: Some(f64::NAN),
                ..Default::default()
            }
        )
        .is_err());
    }
}
