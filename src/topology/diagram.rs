//! Persistence diagrams as values: checked point lists, distances between
//! them (p-Wasserstein and bottleneck, exact, with the optimal matching) in
//! the conventions of GUDHI.
//!
//! A point is (birth, death) with birth finite and death ≥ birth, death
//! possibly +∞ (an essential class). Points may lie on the diagonal and may
//! repeat. The ground metric between points is L∞ (GUDHI's and Hera's
//! default) or L2 ([`Ground`]); a point's distance to the diagonal is that
//! of its projection, (death − birth)/2 under L∞ and (death − birth)/√2
//! under L2. Essential classes are matched among themselves in sorted
//! order of birth; when the two diagrams have different numbers of them the
//! distance is +∞, unless they are left out ([`Essential::Ignore`]).

use crate::error::{Error, Result};

/// Checks a diagram: births finite, deaths not NaN, death ≥ birth.
/// `what` names it in errors (a file and dataset).
pub fn check(points: &[(f64, f64)], what: &str) -> Result<()> {
    for (i, &(b, d)) in points.iter().enumerate() {
        if !b.is_finite() {
            return Err(Error::invalid(
                format!("{what}, point {i}"),
                format!("birth must be finite, got {b}"),
            ));
        }
        if d.is_nan() {
            return Err(Error::invalid(format!("{what}, point {i}"), "death is NaN"));
        }
        if d < b {
            return Err(Error::invalid(
                format!("{what}, point {i}"),
                format!("death {d} is before birth {b}"),
            ));
        }
    }
    Ok(())
}

/// The ground metric between diagram points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground {
    /// max(|Δbirth|, |Δdeath|): GUDHI's and Hera's default (internal_p = ∞).
    LInf,
    /// Euclidean (internal_p = 2).
    L2,
    /// |Δbirth| + |Δdeath| (internal_p = 1): with p = 1 the cost of a pair
    /// is the sum the topological loss of `train` differentiates.
    L1,
}

impl Ground {
    #[inline]
    pub fn dist(self, a: (f64, f64), b: (f64, f64)) -> f64 {
        let (x, y) = ((a.0 - b.0).abs(), (a.1 - b.1).abs());
        match self {
            Ground::LInf => x.max(y),
            Ground::L2 => x.hypot(y),
            Ground::L1 => x + y,
        }
    }

    /// Distance to the diagonal (to the projection of the point).
    #[inline]
    pub fn to_diagonal(self, a: (f64, f64)) -> f64 {
        let pers = a.1 - a.0;
        match self {
            Ground::LInf => pers / 2.0,
            Ground::L2 => pers / std::f64::consts::SQRT_2,
            Ground::L1 => pers,
        }
    }
}

/// What to do with essential classes (points at death = +∞).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Essential {
    /// Match them among themselves by sorted birth; +∞ if the counts differ.
    Match,
    /// Leave them out: compare the finite parts only.
    Ignore,
}

/// One pair of an optimal matching: indices into the two diagrams; `None`
/// for the diagonal.
pub type Matched = (Option<usize>, Option<usize>);

/// A distance with the matching that realises it.
#[derive(Debug, Clone, PartialEq)]
pub struct Matching {
    /// The distance.
    pub value: f64,
    /// Every point of both diagrams appears once: matched to a point of the
    /// other diagram, or to the diagonal.
    pub pairs: Vec<Matched>,
}

fn split(points: &[(f64, f64)]) -> (Vec<usize>, Vec<usize>) {
    let mut finite = Vec::new();
    let mut essential = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if p.1.is_infinite() {
            essential.push(i);
        } else {
            finite.push(i);
        }
    }
    (finite, essential)
}

/// Essential classes matched by sorted birth: the pairs and the costs
/// |Δbirth| (None when the counts differ).
fn match_essential(
    a: &[(f64, f64)],
    ea: &[usize],
    b: &[(f64, f64)],
    eb: &[usize],
) -> Option<(Vec<Matched>, Vec<f64>)> {
    if ea.len() != eb.len() {
        return None;
    }
    let mut sa = ea.to_vec();
    let mut sb = eb.to_vec();
    sa.sort_by(|&i, &j| a[i].0.total_cmp(&a[j].0).then(i.cmp(&j)));
    sb.sort_by(|&i, &j| b[i].0.total_cmp(&b[j].0).then(i.cmp(&j)));
    let costs = sa
        .iter()
        .zip(&sb)
        .map(|(&i, &j)| (a[i].0 - b[j].0).abs())
        .collect();
    Some((
        sa.into_iter()
            .zip(sb)
            .map(|(i, j)| (Some(i), Some(j)))
            .collect(),
        costs,
    ))
}

/// The exact p-Wasserstein distance (p ≥ 1) and an optimal matching.
pub fn wasserstein(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    p: f64,
    ground: Ground,
    essential: Essential,
) -> Result<Matching> {
    if !(p >= 1.0 && p.is_finite()) {
        return Err(Error::invalid(
            "wasserstein order p",
            format!("must be a finite number >= 1, got {p}"),
        ));
    }
    check(a, "first diagram")?;
    check(b, "second diagram")?;
    // Costs are powers of differences: for values near the ends of the
    // float64 range (a death of 1e154 squared, a difference of ±1e308)
    // they overflow to inf and the assignment goes wrong. W_p is
    // homogeneous, W_p(cA, cB) = c·W_p(A, B): compute such diagrams at a
    // power-of-two scale (exact) that brings them near 1, and scale back.
    if let Some(m) = rescaled(a, b, p, |a, b| wasserstein(a, b, p, ground, essential)) {
        return m;
    }
    let (fa, ea) = split(a);
    let (fb, eb) = split(b);
    let mut pairs = Vec::with_capacity(a.len() + b.len());
    let mut total = 0.0;
    if essential == Essential::Match {
        let Some((ep, costs)) = match_essential(a, &ea, b, &eb) else {
            return Ok(Matching {
                value: f64::INFINITY,
                pairs: Vec::new(),
            });
        };
        pairs.extend(ep);
        total += costs.iter().map(|c| c.powf(p)).sum::<f64>();
    }
    // Finite parts: a min-cost flow between the points and the diagonal.
    let (n, m) = (fa.len(), fb.len());
    let size = n + m;
    if size > 0 {
        let pow = |x: f64| -> f64 {
            if p == 1.0 {
                x
            } else if p == 2.0 {
                x * x
            } else {
                x.powf(p)
            }
        };
        let da: Vec<f64> = fa.iter().map(|&i| pow(ground.to_diagonal(a[i]))).collect();
        let db: Vec<f64> = fb.iter().map(|&j| pow(ground.to_diagonal(b[j]))).collect();
        let pair = |r: usize, c: usize| pow(ground.dist(a[fa[r]], b[fb[c]]));
        let first_birth = fa
            .first()
            .map(|&i| a[i].0)
            .or_else(|| fb.first().map(|&j| b[j].0));
        let one_birth = first_birth
            .is_some_and(|b0| fa.iter().all(|&i| a[i].0 == b0) && fb.iter().all(|&j| b[j].0 == b0));
        let partner = if one_birth {
            // Every point on one vertical line (H0 diagrams): pair and
            // diagonal costs are |Δdeath|^p-type convex functions on a
            // line, so an optimal matching is monotone and a dynamic
            // programme over the sorted deaths finds it exactly.
            // The ground distance of two points of one birth is |Δdeath|
            // in every ground metric (L1, L2's hypot(0, Δ), L∞), exactly:
            // no hypot per pair.
            let ya: Vec<f64> = fa.iter().map(|&i| a[i].1).collect();
            let yb: Vec<f64> = fb.iter().map(|&j| b[j].1).collect();
            on_a_line(
                &ya,
                &yb,
                &da,
                &db,
                pow,
                (LINE_TABLE_CELLS, LINE_PIECE_CELLS),
            )
        } else {
            min_cost_matching(n, m, pair, &da, &db)
        };
        let mut used_b = vec![false; m];
        for (r, &c) in partner.iter().enumerate() {
            match c {
                Some(c) => {
                    used_b[c] = true;
                    total += pair(r, c);
                    pairs.push((Some(fa[r]), Some(fb[c])));
                }
                None => {
                    total += da[r];
                    pairs.push((Some(fa[r]), None));
                }
            }
        }
        for (c, used) in used_b.iter().enumerate() {
            if !used {
                total += db[c];
                pairs.push((None, Some(fb[c])));
            }
        }
    }
    Ok(Matching {
        value: total.powf(1.0 / p),
        pairs,
    })
}

/// The power of two `c` by which diagrams `a` and `b` must be scaled for
/// the p-th powers of their costs, summed over all points, to stay well
/// inside float64's range; `None` when they already are (the common case,
/// left bit for bit as it was).
fn rescaling(a: &[(f64, f64)], b: &[(f64, f64)], p: f64) -> Option<f64> {
    let big = a
        .iter()
        .chain(b)
        .flat_map(|&(x, y)| [x, y])
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if big == 0.0 {
        return None;
    }
    // Costs are at most 2·big (a difference of two values); their p-th
    // powers summed over n + m points must stay below f64::MAX, and the
    // smallest nonzero ones above the normal range's floor.
    let count = (a.len() + b.len()).max(1) as f64;
    let top = (2.0 * big).log2() * p + count.log2();
    if top < 900.0 && big.log2() * p > -900.0 {
        return None;
    }
    // Bring the largest value to about 1: c = 2^-round(log2 big).
    let e = big.log2().round();
    Some(2f64.powi(-(e as i32)))
}

/// `distance` of `a` and `b` computed at the scale [`rescaling`] asks for,
/// its value scaled back (the matching is the same at any scale); `None`
/// when the diagrams need no rescaling.
fn rescaled(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    p: f64,
    distance: impl FnOnce(&[(f64, f64)], &[(f64, f64)]) -> Result<Matching>,
) -> Option<Result<Matching>> {
    let c = rescaling(a, b, p)?;
    let sc =
        |d: &[(f64, f64)]| -> Vec<(f64, f64)> { d.iter().map(|&(x, y)| (x * c, y * c)).collect() };
    Some(distance(&sc(a), &sc(b)).map(|m| Matching {
        value: m.value / c,
        pairs: m.pairs,
    }))
}

/// Min-cost matching of the finite parts. Sending a_i to the diagonal costs
/// `da[i]`, b_j costs `db[j]`; matching them costs `pair_cost(i, j)`.
/// Subtracting the diagonal costs turns this into a rectangular assignment
/// problem: every row (a point of the smaller side) takes either a column
/// of the other side at cost w = c − δ_row − δ_col, or a private "diagonal"
/// column of its own at cost 0; only edges with w < 0 are kept (any other
/// pair is beaten by sending both points to the diagonal), so the graph is
/// sparse. Solved by successive shortest augmenting paths (one Dijkstra per
/// row, stopped at the first free column, Jonker–Volgenant dual updates).
/// Returns for every a_i its partner (`Some(j)`, or `None` for the
/// diagonal).
fn min_cost_matching(
    n: usize,
    m: usize,
    pair_cost: impl Fn(usize, usize) -> f64,
    da: &[f64],
    db: &[f64],
) -> Vec<Option<usize>> {
    // Rows are augmented in decreasing order of their diagonal cost: the
    // most persistent points, which compete for the same partners, settle
    // first (on H0 diagrams, whose points all lie on one line, this keeps
    // each shortest-path search short).
    let order = |d: &[f64]| -> Vec<usize> {
        let mut o: Vec<usize> = (0..d.len()).collect();
        o.sort_by(|&x, &y| d[y].total_cmp(&d[x]).then(x.cmp(&y)));
        o
    };
    if n <= m {
        let ra = order(da);
        let got = sparse_assignment(n, m, |r, j| {
            let i = ra[r];
            pair_cost(i, j) - da[i] - db[j]
        });
        let mut of_a = vec![None; n];
        for (r, c) in got.into_iter().enumerate() {
            of_a[ra[r]] = c;
        }
        of_a
    } else {
        let rb = order(db);
        let of_b = sparse_assignment(m, n, |r, i| {
            let j = rb[r];
            pair_cost(i, j) - da[i] - db[j]
        });
        let mut of_a = vec![None; n];
        for (r, i) in of_b.into_iter().enumerate() {
            if let Some(i) = i {
                of_a[i] = Some(rb[r]);
            }
        }
        of_a
    }
}

/// The 1-Wasserstein distance (L∞ ground metric, GUDHI's default) between
/// two diagrams whose points all share one birth, given by their
/// persistences (death − birth) sorted in increasing order: the value of
/// the dynamic programme of `on_a_line` in O(m) memory, without the
/// matching. For searches that evaluate many such distances (the latent
/// scale of `train`'s W(H0)); [`wasserstein`] gives the matching too.
pub fn one_birth_w1(a: &[f64], b: &[f64]) -> f64 {
    debug_assert!(a.windows(2).all(|w| w[0] <= w[1]) && b.windows(2).all(|w| w[0] <= w[1]));
    let half = |v: &[f64]| v.iter().map(|y| y / 2.0).collect::<Vec<f64>>();
    let (da, db) = (half(a), half(b));
    let line = Line {
        ya: a,
        yb: b,
        da: &da,
        db: &db,
        pow: |x: f64| x,
        piece_cells: 0,
    };
    line.last_row(0..a.len(), 0..b.len(), true)[b.len()]
}

/// Problems of at most this many dynamic-programme cells are solved with
/// the whole table of choices in memory (1 byte a cell); larger ones by Hirschberg's
/// divide and conquer, in O(n + m) memory, pieces of at most
/// [`LINE_PIECE_CELLS`] cells again by the table.
const LINE_TABLE_CELLS: usize = 1 << 20;
const LINE_PIECE_CELLS: usize = 1 << 16;

/// Exact min-cost matching of points that all share one birth: sorted by
/// death, matched pairs never cross in an optimal matching (the costs are
/// convex functions of the death difference), so dp[i][j] = the best cost
/// of the first i points of a and j of b, each step taking a to the
/// diagonal, b to the diagonal, or the pair (i, j). Up to `table_cells`
/// cells the whole table is kept and the path read back from it; beyond,
/// the path is found by halving (Hirschberg): the best costs of the first
/// half of a's points against every prefix of b's and of the second half
/// against every suffix meet at a point of an optimal path, which splits
/// the problem in two, so memory stays O(n + m) and time about 2·n·m.
fn on_a_line(
    death_a: &[f64],
    death_b: &[f64],
    da: &[f64],
    db: &[f64],
    pow: impl Fn(f64) -> f64,
    (table_cells, piece_cells): (usize, usize),
) -> Vec<Option<usize>> {
    let (n, m) = (death_a.len(), death_b.len());
    let mut oa: Vec<usize> = (0..n).collect();
    oa.sort_by(|&x, &y| death_a[x].total_cmp(&death_a[y]).then(x.cmp(&y)));
    let mut ob: Vec<usize> = (0..m).collect();
    ob.sort_by(|&x, &y| death_b[x].total_cmp(&death_b[y]).then(x.cmp(&y)));
    let sorted = |o: &[usize], v: &[f64]| o.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let (ya, yb) = (sorted(&oa, death_a), sorted(&ob, death_b));
    let (sa, sb) = (sorted(&oa, da), sorted(&ob, db));
    let line = Line {
        ya: &ya,
        yb: &yb,
        da: &sa,
        db: &sb,
        pow,
        piece_cells,
    };
    let mut partner = vec![None; n];
    let mut put = |r: usize, c: usize| partner[oa[r]] = Some(ob[c]);
    if (n + 1).saturating_mul(m + 1) <= table_cells {
        line.table(0..n, 0..m, &mut put);
    } else {
        line.halve(0..n, 0..m, &mut put);
    }
    partner
}

/// The points of [`on_a_line`] (and of [`one_birth_w1`]) sorted by death:
/// their deaths, diagonal costs, and the pair cost as a function of the
/// death difference.
struct Line<'a, P> {
    ya: &'a [f64],
    yb: &'a [f64],
    da: &'a [f64],
    db: &'a [f64],
    pow: P,
    /// [`Line::halve`] solves pieces of at most this many cells by the table.
    piece_cells: usize,
}

impl<P: Fn(f64) -> f64> Line<'_, P> {
    fn pair(&self, i: usize, j: usize) -> f64 {
        (self.pow)((self.ya[i] - self.yb[j]).abs())
    }

    /// The programme on a[ra] × b[rb] with the whole table of choices (the
    /// costs in two rows); reports each matched pair to `put`.
    fn table(
        &self,
        ra: std::ops::Range<usize>,
        rb: std::ops::Range<usize>,
        put: &mut impl FnMut(usize, usize),
    ) {
        let (n, m) = (ra.len(), rb.len());
        let (a0, b0) = (ra.start, rb.start);
        let w = m + 1;
        // Costs of the previous and the current row; every cell's choice
        // is kept for the path back.
        let mut prev = vec![0.0f64; w];
        let mut row = vec![0.0f64; w];
        // 0: a_i to the diagonal, 1: b_j to the diagonal, 2: the pair.
        let mut how = vec![0u8; (n + 1) * w];
        for i in 0..=n {
            for j in 0..=m {
                if i == 0 && j == 0 {
                    row[0] = 0.0;
                    continue;
                }
                let mut best = f64::INFINITY;
                let mut choice = 0u8;
                if i > 0 {
                    best = prev[j] + self.da[a0 + i - 1];
                }
                if j > 0 {
                    let c = row[j - 1] + self.db[b0 + j - 1];
                    if c < best {
                        best = c;
                        choice = 1;
                    }
                }
                if i > 0 && j > 0 {
                    let c = prev[j - 1] + self.pair(a0 + i - 1, b0 + j - 1);
                    if c < best {
                        best = c;
                        choice = 2;
                    }
                }
                row[j] = best;
                how[i * w + j] = choice;
            }
            std::mem::swap(&mut prev, &mut row);
        }
        let (mut i, mut j) = (n, m);
        while i > 0 || j > 0 {
            match how[i * w + j] {
                0 => i -= 1,
                1 => j -= 1,
                _ => {
                    put(a0 + i - 1, b0 + j - 1);
                    i -= 1;
                    j -= 1;
                }
            }
        }
    }

    /// The last row of the programme on a[ra] × b[rb], forward (prefixes:
    /// entry j is the best cost of all of a[ra] with the first j of b[rb])
    /// or backward (suffixes: entry j the best cost of a[ra] with b[rb]
    /// from its j-th point on).
    fn last_row(
        &self,
        ra: std::ops::Range<usize>,
        rb: std::ops::Range<usize>,
        forward: bool,
    ) -> Vec<f64> {
        let m = rb.len();
        // Position k of the sweep: the k-th point of b[rb] in sweep order.
        let bj = |k: usize| {
            if forward {
                rb.start + k
            } else {
                rb.end - 1 - k
            }
        };
        let mut row = vec![0.0f64; m + 1];
        for k in 0..m {
            row[k + 1] = row[k] + self.db[bj(k)];
        }
        let mut sweep = |i: usize| {
            let x = self.da[i];
            let mut diag = row[0];
            row[0] += x;
            for k in 0..m {
                let j = bj(k);
                let up = row[k + 1] + x;
                let left = row[k] + self.db[j];
                let pair = diag + self.pair(i, j);
                diag = row[k + 1];
                row[k + 1] = up.min(left).min(pair);
            }
        };
        if forward {
            ra.for_each(&mut sweep);
        } else {
            ra.rev().for_each(&mut sweep);
        }
        if !forward {
            row.reverse();
        }
        row
    }

    /// Hirschberg's halving on a[ra] × b[rb].
    fn halve(
        &self,
        ra: std::ops::Range<usize>,
        rb: std::ops::Range<usize>,
        put: &mut impl FnMut(usize, usize),
    ) {
        if ra.is_empty() || rb.is_empty() {
            return;
        }
        if ra.len() == 1 || (ra.len() + 1).saturating_mul(rb.len() + 1) <= self.piece_cells {
            self.table(ra, rb, put);
            return;
        }
        let mid = ra.start + ra.len() / 2;
        let f = self.last_row(ra.start..mid, rb.clone(), true);
        let g = self.last_row(mid..ra.end, rb.clone(), false);
        // The first column where an optimal path crosses row `mid`.
        let mut cut = 0;
        for k in 1..f.len() {
            if f[k] + g[k] < f[cut] + g[cut] {
                cut = k;
            }
        }
        let split = rb.start + cut;
        self.halve(ra.start..mid, rb.start..split, put);
        self.halve(mid..ra.end, split..rb.end, put);
    }
}

/// Rows 0..rows, shared columns 0..cols with costs `w(i, j)` (kept where
/// negative), and private columns cols + i at cost 0. Every row is
/// assigned; returns the shared column of each row or `None` (private).
fn sparse_assignment(
    rows: usize,
    cols: usize,
    w: impl Fn(usize, usize) -> f64,
) -> Vec<Option<usize>> {
    const NONE: u32 = u32::MAX;
    assert!(
        rows + cols < NONE as usize,
        "diagrams too large for a 32-bit index"
    );
    // Sparse rows: the kept shared edges, then the private column.
    let mut start = Vec::with_capacity(rows + 1);
    let mut col_of: Vec<u32> = Vec::new();
    let mut cost: Vec<f64> = Vec::new();
    start.push(0usize);
    let mut row: Vec<(f64, u32)> = Vec::with_capacity(cols + 1);
    for i in 0..rows {
        row.clear();
        for j in 0..cols {
            let c = w(i, j);
            if c < 0.0 {
                row.push((c, j as u32));
            }
        }
        row.push((0.0, (cols + i) as u32));
        // Cheapest first: a scan stops at the first edge that cannot beat
        // the nearest free column (column duals are ≤ 0).
        row.sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        for &(c, j) in &row {
            col_of.push(j);
            cost.push(c);
        }
        start.push(col_of.len());
    }
    let ncols = cols + rows;
    let mut u = vec![0.0f64; rows];
    let mut v = vec![0.0f64; ncols];
    let mut col4row = vec![NONE; rows];
    let mut row4col = vec![NONE; ncols];
    let mut dist = vec![0.0f64; ncols];
    let mut pred = vec![NONE; ncols];
    // Epoch stamps: a column is touched (dist valid) / scanned in this round.
    let mut touched = vec![0u32; ncols];
    let mut scanned = vec![0u32; ncols];
    let mut scanned_cols: Vec<u32> = Vec::new();
    let mut scanned_rows: Vec<u32> = Vec::new();
    // Min-heap on (distance, assigned?, column): free columns first on ties.
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(OrdF64, bool, u32)>> =
        std::collections::BinaryHeap::new();
    for cur in 0..rows {
        let epoch = cur as u32 + 1;
        heap.clear();
        scanned_cols.clear();
        scanned_rows.clear();
        let mut min_val = 0.0f64;
        let mut best_free = f64::INFINITY;
        let mut i = cur;
        let sink = loop {
            let ui = u[i];
            for e in start[i]..start[i + 1] {
                // Nothing at or beyond the nearest free column found so far
                // can lie on the shortest path; v ≤ 0, so neither can the
                // rest of this row.
                let base = min_val + cost[e] - ui;
                if base >= best_free {
                    break;
                }
                let j = col_of[e] as usize;
                if scanned[j] == epoch {
                    continue;
                }
                let r = base - v[j];
                if r >= best_free {
                    continue;
                }
                if row4col[j] == NONE {
                    best_free = r;
                }
                if touched[j] != epoch || r < dist[j] {
                    touched[j] = epoch;
                    dist[j] = r;
                    pred[j] = i as u32;
                    heap.push(std::cmp::Reverse((OrdF64(r), row4col[j] != NONE, j as u32)));
                }
            }
            // The row's private column is always pushed, so the heap holds a
            // free column until one is scanned.
            let j = loop {
                let std::cmp::Reverse((OrdF64(d), _, j)) =
                    heap.pop().expect("a free column is always reachable");
                let j = j as usize;
                if scanned[j] != epoch && d <= dist[j] {
                    break j;
                }
            };
            min_val = dist[j];
            scanned[j] = epoch;
            scanned_cols.push(j as u32);
            if row4col[j] == NONE {
                break j;
            }
            i = row4col[j] as usize;
            scanned_rows.push(i as u32);
        };
        // Dual updates (reduced costs stay ≥ 0, tight on the matching).
        u[cur] += min_val;
        for &r in &scanned_rows {
            let r = r as usize;
            u[r] += min_val - dist[col4row[r] as usize];
        }
        for &c in &scanned_cols {
            let c = c as usize;
            v[c] -= min_val - dist[c];
        }
        // Augment along the predecessor chain.
        let mut j = sink;
        loop {
            let i = pred[j] as usize;
            row4col[j] = i as u32;
            let prev = std::mem::replace(&mut col4row[i], j as u32);
            if i == cur {
                break;
            }
            j = prev as usize;
        }
    }
    col4row
        .into_iter()
        .map(|c| ((c as usize) < cols).then_some(c as usize))
        .collect()
}

/// f64 with a total order for the heap.
#[derive(Clone, Copy, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// The exact bottleneck distance and an optimal matching.
///
/// A point may go to the diagonal when its distance to it is ≤ δ, so a
/// matching of cost ≤ δ exists iff the graph of pairs at distance ≤ δ has a
/// matching that covers every "heavy" point (distance to the diagonal > δ)
/// of both diagrams; by the Mendelsohn–Dulmage theorem, iff one matching
/// covers the heavy points of the first diagram and another those of the
/// second. The answer is the smallest candidate value (a distance to the
/// diagonal, or a pair distance not beaten by both points' diagonal
/// distances) that passes; candidates are searched by repeated selection,
/// each test a Hopcroft–Karp run on the heavy points only.
pub fn bottleneck(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    ground: Ground,
    essential: Essential,
) -> Result<Matching> {
    check(a, "first diagram")?;
    check(b, "second diagram")?;
    // As in `wasserstein`: differences near float64's ends overflow.
    if let Some(m) = rescaled(a, b, 1.0, |a, b| bottleneck(a, b, ground, essential)) {
        return m;
    }
    let (fa, ea) = split(a);
    let (fb, eb) = split(b);
    let mut pairs = Vec::new();
    let mut value: f64 = 0.0;
    if essential == Essential::Match {
        let Some((ep, costs)) = match_essential(a, &ea, b, &eb) else {
            return Ok(Matching {
                value: f64::INFINITY,
                pairs: Vec::new(),
            });
        };
        pairs.extend(ep);
        value = costs.iter().copied().fold(0.0, f64::max);
    }
    let (n, m) = (fa.len(), fb.len());
    if n + m > 0 {
        let pa: Vec<(f64, f64)> = fa.iter().map(|&i| a[i]).collect();
        let pb: Vec<(f64, f64)> = fb.iter().map(|&j| b[j]).collect();
        let da: Vec<f64> = pa.iter().map(|&x| ground.to_diagonal(x)).collect();
        let db: Vec<f64> = pb.iter().map(|&y| ground.to_diagonal(y)).collect();
        let (ia, ib) = (BoxIndex::new(&pa), BoxIndex::new(&pb));
        let feasible = |delta: f64| {
            let (adj_a, heavy_a) = heavy_graph(&pa, &da, &pb, &ib, delta, ground);
            if hopcroft_karp(&adj_a, m).0 < heavy_a.len() {
                return false;
            }
            let (adj_b, heavy_b) = heavy_graph(&pb, &db, &pa, &ia, delta, ground);
            hopcroft_karp(&adj_b, n).0 == heavy_b.len()
        };
        // The answer is the smallest feasible candidate: 0, a distance to
        // the diagonal, or a pair distance no larger than the larger of the
        // two points' diagonal distances (a longer pair is never needed:
        // both points can go to the diagonal). First bracket it between
        // two consecutive diagonal distances, searching down from the
        // largest (which always passes: no point is heavy there) in
        // doubling steps, so the tests see few heavy points while the
        // answer is large.
        let mut diag: Vec<f64> = da.iter().chain(&db).copied().collect();
        diag.push(0.0);
        diag.sort_unstable_by(|x, y| y.total_cmp(x));
        diag.dedup();
        // Invariant: diag[good] passes; diag[bad] fails (bad = len: none).
        let (mut good, mut bad) = (0usize, diag.len());
        let mut step = 1;
        while good + step < bad {
            if feasible(diag[good + step]) {
                good += step;
                step *= 2;
            } else {
                bad = good + step;
                break;
            }
        }
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            if feasible(diag[mid]) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        let hi = diag[good];
        let delta = if bad == diag.len() {
            hi // 0 passes
        } else {
            // The answer is in (lo, hi]: hi, or a pair distance in
            // between, which has an endpoint farther than lo from the
            // diagonal (all such pairs are found by box queries).
            let lo = diag[bad];
            let mut cand = vec![hi];
            let mut near = Vec::new();
            for (p, d, other, index) in [(&pa, &da, &pb, &ib), (&pb, &db, &pa, &ia)] {
                for (x, &dx) in p.iter().zip(d) {
                    if dx <= lo {
                        continue;
                    }
                    near.clear();
                    index.within(other, *x, hi, ground, &mut near);
                    cand.extend(
                        near.iter()
                            .map(|&j| ground.dist(*x, other[j as usize]))
                            .filter(|&c| c > lo && c <= hi),
                    );
                }
            }
            // Binary search over the unsorted candidates: select the
            // median of the open range, test it, keep the half that holds
            // the answer. Invariant: the answer is in cand[l..h]; hi (the
            // largest) passes.
            let (mut l, mut h) = (0usize, cand.len());
            while h - l > 1 {
                let mid = l + (h - l - 1) / 2;
                let (_, &mut x, _) = cand[l..h].select_nth_unstable_by(mid - l, f64::total_cmp);
                if feasible(x) {
                    h = mid + 1;
                } else {
                    l = mid + 1;
                }
            }
            cand[l]
        };
        let (partner_a, partner_b) = cover_heavy((&pa, &da, &ia), (&pb, &db, &ib), delta, ground);
        for (i, p) in partner_a.iter().enumerate() {
            pairs.push((Some(fa[i]), p.map(|j| fb[j])));
        }
        for (j, p) in partner_b.iter().enumerate() {
            if p.is_none() {
                pairs.push((None, Some(fb[j])));
            }
        }
        value = value.max(delta);
    }
    Ok(Matching { value, pairs })
}

/// The points of a diagram sorted by birth and by death: the points within
/// `delta` of a query lie in the box of half-width `delta` around it (for
/// every ground metric), which is a window of either order; the narrower
/// window is scanned and each of its points tested with the exact distance.
struct BoxIndex {
    by_birth: Vec<u32>,
    births: Vec<f64>,
    by_death: Vec<u32>,
    deaths: Vec<f64>,
}

impl BoxIndex {
    fn new(p: &[(f64, f64)]) -> Self {
        let sorted = |key: fn(&(f64, f64)) -> f64| {
            let mut order: Vec<u32> = (0..p.len() as u32).collect();
            order.sort_unstable_by(|&i, &j| key(&p[i as usize]).total_cmp(&key(&p[j as usize])));
            let keys = order.iter().map(|&i| key(&p[i as usize])).collect();
            (order, keys)
        };
        let (by_birth, births) = sorted(|x| x.0);
        let (by_death, deaths) = sorted(|x| x.1);
        BoxIndex {
            by_birth,
            births,
            by_death,
            deaths,
        }
    }

    /// Appends to `out` the points of `p` (the diagram indexed) within
    /// `delta` of `q`.
    fn within(
        &self,
        p: &[(f64, f64)],
        q: (f64, f64),
        delta: f64,
        ground: Ground,
        out: &mut Vec<u32>,
    ) {
        // Widen the windows by a few ulps so rounding in `q ± delta` never
        // drops a point; the exact test below decides.
        let window = |keys: &[f64], c: f64| {
            let slack = (c.abs() + delta) * 1e-14;
            let lo = keys.partition_point(|&k| k < c - delta - slack);
            let hi = keys.partition_point(|&k| k <= c + delta + slack);
            lo..hi.max(lo)
        };
        let wb = window(&self.births, q.0);
        let wd = window(&self.deaths, q.1);
        let order = if wb.len() <= wd.len() {
            &self.by_birth[wb]
        } else {
            &self.by_death[wd]
        };
        out.extend(
            order
                .iter()
                .copied()
                .filter(|&j| ground.dist(q, p[j as usize]) <= delta),
        );
    }
}

/// The heavy points of `x` (diagonal distance > delta) and, for each, the
/// points of `y` within delta (`iy` indexes `y`).
fn heavy_graph(
    x: &[(f64, f64)],
    dx: &[f64],
    y: &[(f64, f64)],
    iy: &BoxIndex,
    delta: f64,
    ground: Ground,
) -> (Vec<Vec<u32>>, Vec<usize>) {
    let heavy: Vec<usize> = (0..x.len()).filter(|&i| dx[i] > delta).collect();
    let adj = heavy
        .iter()
        .map(|&i| {
            let mut near = Vec::new();
            iy.within(y, x[i], delta, ground, &mut near);
            near
        })
        .collect();
    (adj, heavy)
}

/// A matching of pairs within delta covering every heavy point of both
/// diagrams (delta must pass the test): Hopcroft–Karp covers the heavy
/// points of `a`; each uncovered heavy point of `b` then gets an
/// alternating path that ends at a free point of `a` or frees a light
/// point of `b` (one exists by the Mendelsohn–Dulmage argument). Returns
/// the partner of every point of `a` and of `b`.
/// Each side is given as (points, diagonal distances, index).
fn cover_heavy(
    (pa, da, ia): (&[(f64, f64)], &[f64], &BoxIndex),
    (pb, db, ib): (&[(f64, f64)], &[f64], &BoxIndex),
    delta: f64,
    ground: Ground,
) -> (Vec<Option<usize>>, Vec<Option<usize>>) {
    const NONE: u32 = u32::MAX;
    let (n, m) = (pa.len(), pb.len());
    let (adj_a, heavy_a) = heavy_graph(pa, da, pb, ib, delta, ground);
    let (_, rows) = hopcroft_karp(&adj_a, m);
    let mut mate_a = vec![NONE; n];
    let mut mate_b = vec![NONE; m];
    for (k, &c) in rows.iter().enumerate() {
        if c != NONE {
            mate_a[heavy_a[k]] = c;
            mate_b[c as usize] = heavy_a[k] as u32;
        }
    }
    // Neighbours (in a) of the heavy points of b.
    let (adj_b, heavy_b) = heavy_graph(pb, db, pa, ia, delta, ground);
    let mut slot_b = vec![NONE; m];
    for (k, &j) in heavy_b.iter().enumerate() {
        slot_b[j] = k as u32;
    }
    let mut seen_a = vec![0u32; n];
    let mut from_a = vec![NONE; n];
    let mut queue: Vec<u32> = Vec::new();
    for (round, &start) in heavy_b.iter().enumerate() {
        if mate_b[start] != NONE {
            continue;
        }
        let stamp = round as u32 + 1;
        queue.clear();
        queue.push(start as u32);
        let mut head = 0;
        // The a-end of the path found, with the b it is reached from.
        let mut end: Option<usize> = None;
        'search: while head < queue.len() {
            let jb = queue[head] as usize;
            head += 1;
            for &ia in &adj_b[slot_b[jb] as usize] {
                let ia = ia as usize;
                if seen_a[ia] == stamp {
                    continue;
                }
                seen_a[ia] = stamp;
                from_a[ia] = jb as u32;
                let next = mate_a[ia];
                if next == NONE || db[next as usize] <= delta {
                    end = Some(ia);
                    break 'search;
                }
                queue.push(next);
            }
        }
        let mut ia = end.expect("a matching that covers the heavy points exists at delta");
        // Flip the path back to `start`; a light b at its end loses its mate.
        if mate_a[ia] != NONE {
            mate_b[mate_a[ia] as usize] = NONE;
        }
        loop {
            let jb = from_a[ia] as usize;
            let prev = mate_b[jb];
            mate_a[ia] = jb as u32;
            mate_b[jb] = ia as u32;
            if jb == start {
                break;
            }
            ia = prev as usize;
        }
    }
    let conv = |v: Vec<u32>| {
        v.into_iter()
            .map(|x| (x != NONE).then_some(x as usize))
            .collect()
    };
    (conv(mate_a), conv(mate_b))
}

/// Maximum bipartite matching by Hopcroft–Karp: rows with adjacency lists
/// into columns 0..cols. Returns the size and each row's column
/// (`u32::MAX` when unmatched).
fn hopcroft_karp(adj: &[Vec<u32>], cols: usize) -> (usize, Vec<u32>) {
    const NONE: u32 = u32::MAX;
    let rows = adj.len();
    let mut match_row = vec![NONE; rows];
    let mut match_col = vec![NONE; cols];
    let mut dist = vec![0u32; rows];
    let mut cursor = vec![0usize; rows];
    let mut queue: Vec<u32> = Vec::with_capacity(rows);
    let mut matched = 0;
    // Greedy start.
    for r in 0..rows {
        if let Some(&c) = adj[r].iter().find(|&&c| match_col[c as usize] == NONE) {
            match_row[r] = c;
            match_col[c as usize] = r as u32;
            matched += 1;
        }
    }
    loop {
        // BFS layers from the free rows.
        queue.clear();
        for r in 0..rows {
            if match_row[r] == NONE {
                dist[r] = 0;
                queue.push(r as u32);
            } else {
                dist[r] = NONE;
            }
        }
        let mut found = false;
        let mut head = 0;
        while head < queue.len() {
            let r = queue[head] as usize;
            head += 1;
            for &c in &adj[r] {
                let r2 = match_col[c as usize];
                if r2 == NONE {
                    found = true;
                } else if dist[r2 as usize] == NONE {
                    dist[r2 as usize] = dist[r] + 1;
                    queue.push(r2);
                }
            }
        }
        if !found {
            break;
        }
        // DFS along the layers (iterative, with per-row edge cursors).
        cursor.fill(0);
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..rows {
            if match_row[start] != NONE {
                continue;
            }
            stack.clear();
            stack.push(start);
            while let Some(&r) = stack.last() {
                if cursor[r] == adj[r].len() {
                    dist[r] = NONE;
                    stack.pop();
                    continue;
                }
                let c = adj[r][cursor[r]];
                cursor[r] += 1;
                let r2 = match_col[c as usize];
                if r2 == NONE {
                    let mut col = c;
                    for &row in stack.iter().rev() {
                        let prev = match_row[row];
                        match_row[row] = col;
                        match_col[col as usize] = row as u32;
                        col = prev;
                    }
                    matched += 1;
                    break;
                } else if dist[r2 as usize] == dist[r] + 1 {
                    stack.push(r2 as usize);
                }
            }
        }
    }
    (matched, match_row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const L: Ground = Ground::LInf;
    const M: Essential = Essential::Match;

    fn w(a: &[(f64, f64)], b: &[(f64, f64)], p: f64) -> f64 {
        wasserstein(a, b, p, L, M).unwrap().value
    }

    fn bn(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
        bottleneck(a, b, L, M).unwrap().value
    }

    fn random_diagram(rng: &mut ChaCha8Rng, max: usize, ties: bool) -> Vec<(f64, f64)> {
        let k = rng.random_range(0..=max);
        (0..k)
            .map(|_| {
                if ties {
                    let b = rng.random_range(0..4) as f64;
                    (b, b + rng.random_range(0..3) as f64)
                } else {
                    let b: f64 = rng.random();
                    (b, b + rng.random::<f64>() * 0.5)
                }
            })
            .collect()
    }

    /// Every matching of the augmented point sets, tried one by one.
    fn brute(a: &[(f64, f64)], b: &[(f64, f64)], p: f64) -> (f64, f64) {
        let (n, m) = (a.len(), b.len());
        let size = n + m;
        let cost = |r: usize, c: usize| -> f64 {
            match (r < n, c < m) {
                (true, true) => L.dist(a[r], b[c]),
                (true, false) => L.to_diagonal(a[r]),
                (false, true) => L.to_diagonal(b[c]),
                (false, false) => 0.0,
            }
        };
        let mut perm: Vec<usize> = (0..size).collect();
        let (mut best_w, mut best_b) = (f64::INFINITY, f64::INFINITY);
        // Heap's algorithm over all permutations.
        fn visit(
            perm: &[usize],
            cost: &dyn Fn(usize, usize) -> f64,
            p: f64,
            bw: &mut f64,
            bb: &mut f64,
        ) {
            let s: f64 = perm
                .iter()
                .enumerate()
                .map(|(r, &c)| cost(r, c).powf(p))
                .sum();
            let mx = perm
                .iter()
                .enumerate()
                .map(|(r, &c)| cost(r, c))
                .fold(0.0, f64::max);
            *bw = bw.min(s);
            *bb = bb.min(mx);
        }
        let mut c = vec![0usize; size];
        visit(&perm, &cost, p, &mut best_w, &mut best_b);
        let mut i = 0;
        while i < size {
            if c[i] < i {
                if i % 2 == 0 {
                    perm.swap(0, i);
                } else {
                    perm.swap(c[i], i);
                }
                visit(&perm, &cost, p, &mut best_w, &mut best_b);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        if size == 0 {
            return (0.0, 0.0);
        }
        (best_w.powf(1.0 / p), best_b)
    }

    /// Costs of a matching's pairs, after checking that it covers every
    /// point of both diagrams exactly once.
    fn pair_costs(a: &[(f64, f64)], b: &[(f64, f64)], got: &Matching, what: &str) -> Vec<f64> {
        pair_costs_in(a, b, got, what, L)
    }

    /// The cost of every pair of a matching under the ground metric `g`;
    /// asserts that it covers every point once.
    fn pair_costs_in(
        a: &[(f64, f64)],
        b: &[(f64, f64)],
        got: &Matching,
        what: &str,
        g: Ground,
    ) -> Vec<f64> {
        let mut seen_a = vec![0; a.len()];
        let mut seen_b = vec![0; b.len()];
        let mut costs = Vec::new();
        for &(i, j) in &got.pairs {
            costs.push(match (i, j) {
                (Some(i), Some(j)) if a[i].1.is_infinite() => (a[i].0 - b[j].0).abs(),
                (Some(i), Some(j)) => g.dist(a[i], b[j]),
                (Some(i), None) => g.to_diagonal(a[i]),
                (None, Some(j)) => g.to_diagonal(b[j]),
                (None, None) => panic!("{what}: a pair of two diagonals"),
            });
            if let Some(i) = i {
                seen_a[i] += 1;
            }
            if let Some(j) = j {
                seen_b[j] += 1;
            }
        }
        assert!(
            seen_a.iter().chain(&seen_b).all(|&k| k == 1),
            "{what}: every point once"
        );
        costs
    }

    /// The augmented (n + m) square cost matrix of two finite diagrams:
    /// rows a then diagonal copies of b, columns b then diagonal copies of a.
    fn augmented(a: &[(f64, f64)], b: &[(f64, f64)]) -> Vec<Vec<f64>> {
        let (n, m) = (a.len(), b.len());
        let mut c = vec![vec![f64::INFINITY; n + m]; n + m];
        for i in 0..n {
            for j in 0..m {
                c[i][j] = L.dist(a[i], b[j]);
            }
            c[i][m + i] = L.to_diagonal(a[i]);
        }
        for j in 0..m {
            c[n + j][j] = L.to_diagonal(b[j]);
            for i in 0..n {
                c[n + j][m + i] = 0.0;
            }
        }
        c
    }

    /// Textbook O(N³) Hungarian method with potentials: the minimum total
    /// cost of a perfect assignment (entries may be +∞ = no edge).
    fn hungarian(c: &[Vec<f64>]) -> f64 {
        let size = c.len();
        let big = 1e300;
        let at = |i: usize, j: usize| if c[i][j].is_finite() { c[i][j] } else { big };
        let (mut u, mut v) = (vec![0.0; size + 1], vec![0.0; size + 1]);
        let mut p = vec![0usize; size + 1];
        let mut way = vec![0usize; size + 1];
        for i in 1..=size {
            p[0] = i;
            let mut j0 = 0;
            let mut minv = vec![f64::INFINITY; size + 1];
            let mut used = vec![false; size + 1];
            loop {
                used[j0] = true;
                let (i0, mut delta, mut j1) = (p[j0], f64::INFINITY, 0);
                for j in 1..=size {
                    if !used[j] {
                        let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                        if cur < minv[j] {
                            minv[j] = cur;
                            way[j] = j0;
                        }
                        if minv[j] < delta {
                            delta = minv[j];
                            j1 = j;
                        }
                    }
                }
                for j in 0..=size {
                    if used[j] {
                        u[p[j]] += delta;
                        v[j] -= delta;
                    } else {
                        minv[j] -= delta;
                    }
                }
                j0 = j1;
                if p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = way[j0];
                p[j0] = p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
        (1..=size).map(|j| at(p[j] - 1, j - 1)).sum()
    }

    /// Whether the augmented matrix has a perfect matching on entries ≤ t
    /// (Kuhn's augmenting paths).
    fn perfect_below(c: &[Vec<f64>], t: f64) -> bool {
        fn try_row(
            r: usize,
            c: &[Vec<f64>],
            t: f64,
            seen: &mut [bool],
            owner: &mut [usize],
        ) -> bool {
            for j in 0..c.len() {
                if c[r][j] <= t && !seen[j] {
                    seen[j] = true;
                    if owner[j] == usize::MAX || try_row(owner[j], c, t, seen, owner) {
                        owner[j] = r;
                        return true;
                    }
                }
            }
            false
        }
        let mut owner = vec![usize::MAX; c.len()];
        (0..c.len()).all(|r| try_row(r, c, t, &mut vec![false; c.len()], &mut owner))
    }

    /// W_p (p = 1, 2) of `a` and `b` equals the Hungarian method's value on
    /// the augmented matrix, and the returned matching costs that value.
    fn check_against_hungarian(a: &[(f64, f64)], b: &[(f64, f64)], case: usize, what: &str) {
        let c = augmented(a, b);
        for p in [1.0, 2.0] {
            let cp: Vec<Vec<f64>> = c
                .iter()
                .map(|r| r.iter().map(|x| x.powf(p)).collect())
                .collect();
            let want = if cp.is_empty() {
                0.0
            } else {
                hungarian(&cp).powf(1.0 / p)
            };
            let got = wasserstein(a, b, p, L, M).unwrap();
            assert!(
                (got.value - want).abs() <= 1e-12 * want.max(1.0),
                "case {case} p {p} ({what}): {} vs {want}",
                got.value
            );
            let s: f64 = pair_costs(a, b, &got, what).iter().map(|x| x.powf(p)).sum();
            assert!((s.powf(1.0 / p) - got.value).abs() <= 1e-12 * want.max(1.0));
            assert!((s.powf(1.0 / p) - want).abs() <= 1e-12 * want.max(1.0));
        }
    }

    /// Medium-sized finite diagrams (clusters, duplicates, points on and
    /// near the diagonal, heavy points) against the textbook references on
    /// the augmented matrix: W1, W2 by the Hungarian method, the bottleneck
    /// by sorted candidates and Kuhn's matching.
    #[test]
    fn matches_textbook_references_on_medium_diagrams() {
        let mut rng = ChaCha8Rng::seed_from_u64(47);
        for case in 0..40 {
            let mut gen = |k: usize| -> Vec<(f64, f64)> {
                let mut v: Vec<(f64, f64)> = Vec::new();
                for _ in 0..k {
                    let b: f64 = rng.random_range(0.0..1.0);
                    let pers: f64 = match rng.random_range(0..4) {
                        0 => 0.0,
                        1 => rng.random_range(0.0..0.01),
                        2 => rng.random_range(0.0..0.3),
                        _ => rng.random_range(0.0..1.5),
                    };
                    let pt = if case % 2 == 0 {
                        ((b * 8.0).round() / 8.0, ((b + pers) * 8.0).round() / 8.0)
                    } else {
                        (b, b + pers)
                    };
                    v.push(pt);
                    if rng.random_range(0..6) == 0 {
                        v.push(pt);
                    }
                }
                v
            };
            let (na, nb) = (5 + case % 23, 3 + (case * 7) % 29);
            let a = gen(na);
            let b = gen(nb);
            let c = augmented(&a, &b);
            check_against_hungarian(&a, &b, case, "wasserstein");
            let mut cand: Vec<f64> = c
                .iter()
                .flatten()
                .copied()
                .filter(|x| x.is_finite())
                .collect();
            cand.sort_by(f64::total_cmp);
            let want = *cand.iter().find(|&&t| perfect_below(&c, t)).unwrap();
            let got = bottleneck(&a, &b, L, M).unwrap();
            assert_eq!(got.value, want, "case {case}: bottleneck");
            let worst = pair_costs(&a, &b, &got, "bottleneck")
                .into_iter()
                .fold(0.0, f64::max);
            assert_eq!(
                worst, want,
                "case {case}: the matching realises the bottleneck"
            );
        }
    }

    /// H0-like diagrams (one common birth) take the dynamic programme on a
    /// line: equal to the Hungarian method on the augmented matrix, and the
    /// matching realises the value.
    /// The value-only programme equals the full distance on one-birth
    /// diagrams (random sizes, ties, empty sides).
    #[test]
    fn distances_hold_near_the_ends_of_the_float64_range() {
        // A death of 1e154 squares to inf; W2 and the bottleneck are
        // homogeneous, so a scaled copy gives the scaled value.
        let base_a = vec![(0.0, 3.0), (0.0, 1.0), (0.0, 0.5)];
        let base_b = vec![(0.0, 2.5), (0.0, 0.25)];
        for c in [1e154, 1e300, 1e-300, 1e-160] {
            let sc = |d: &[(f64, f64)]| -> Vec<(f64, f64)> {
                d.iter().map(|&(x, y)| (x * c, y * c)).collect()
            };
            for p in [1.0, 2.0] {
                let want = wasserstein(&base_a, &base_b, p, Ground::LInf, Essential::Match)
                    .unwrap()
                    .value;
                let got = wasserstein(
                    &sc(&base_a),
                    &sc(&base_b),
                    p,
                    Ground::LInf,
                    Essential::Match,
                )
                .unwrap()
                .value;
                assert!(
                    got.is_finite() && ((got / c) - want).abs() <= 1e-12 * want,
                    "c {c:e}, p {p}: {got:e} vs {:e}",
                    want * c
                );
            }
            let want = bottleneck(&base_a, &base_b, Ground::LInf, Essential::Match)
                .unwrap()
                .value;
            let got = bottleneck(&sc(&base_a), &sc(&base_b), Ground::LInf, Essential::Match)
                .unwrap()
                .value;
            assert!(((got / c) - want).abs() <= 1e-12 * want, "c {c:e}: {got:e}");
        }
        // Births at −1e308 and deaths at +1e308: the difference overflows.
        let a = vec![(-1e308, 1e308)];
        let b = vec![(-1e308, 0.5e308)];
        let m = bottleneck(&a, &b, Ground::LInf, Essential::Match).unwrap();
        assert!((m.value - 0.5e308).abs() <= 1e-12 * 0.5e308, "{m:?}");
    }

    #[test]
    fn one_birth_value_equals_the_full_distance() {
        let mut rng = ChaCha8Rng::seed_from_u64(47);
        for case in 0..200 {
            let side = |rng: &mut ChaCha8Rng| -> Vec<f64> {
                let k = rng.random_range(0..=60);
                let mut v: Vec<f64> = (0..k)
                    .map(|_| {
                        if case % 2 == 0 {
                            rng.random_range(0..6) as f64
                        } else {
                            rng.random::<f64>()
                        }
                    })
                    .collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let (a, b) = (side(&mut rng), side(&mut rng));
            let as_dgm = |v: &[f64]| v.iter().map(|&d| (0.0, d)).collect::<Vec<_>>();
            let want = wasserstein(&as_dgm(&a), &as_dgm(&b), 1.0, L, M)
                .unwrap()
                .value;
            let got = one_birth_w1(&a, &b);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1.0),
                "case {case}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn one_birth_diagrams_match_the_hungarian_method() {
        let mut rng = ChaCha8Rng::seed_from_u64(48);
        for case in 0..60 {
            let mut gen = |k: usize| -> Vec<(f64, f64)> {
                (0..k)
                    .map(|_| {
                        let d: f64 = if case % 3 == 0 {
                            rng.random_range(0..5) as f64 / 4.0
                        } else {
                            rng.random_range(0.0..2.0)
                        };
                        (0.5, 0.5 + d)
                    })
                    .collect()
            };
            let (na, nb) = (case % 17, (case * 5) % 23);
            let (a, b) = (gen(na), gen(nb));
            check_against_hungarian(&a, &b, case, "line");
        }
    }

    /// Hirschberg's halving (forced down to pieces of a few cells) finds a
    /// matching as cheap as the whole table's and the Hungarian method's,
    /// on one-birth diagrams with ties, repeats and empty sides.
    #[test]
    fn halving_on_a_line_equals_the_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(49);
        for case in 0..120 {
            let mut gen = |k: usize| -> Vec<f64> {
                (0..k)
                    .map(|_| {
                        if case % 3 == 0 {
                            rng.random_range(0..5) as f64 / 4.0
                        } else {
                            rng.random_range(0.0..2.0)
                        }
                    })
                    .collect()
            };
            let (na, nb) = ((case * 7) % 41, (case * 11) % 37);
            let (ya, yb) = (gen(na), gen(nb));
            let dgm = |y: &[f64]| y.iter().map(|&d| (0.5, 0.5 + d)).collect::<Vec<_>>();
            let (a, b) = (dgm(&ya), dgm(&yb));
            for p in [1.0, 2.0] {
                let da: Vec<f64> = ya.iter().map(|d| (d / 2.0).powf(p)).collect();
                let db: Vec<f64> = yb.iter().map(|d| (d / 2.0).powf(p)).collect();
                let pow = |x: f64| x.powf(p);
                let pair = |r: usize, c: usize| pow((ya[r] - yb[c]).abs());
                let cost = |partner: &[Option<usize>]| -> f64 {
                    let mut used = vec![false; nb];
                    let mut t = 0.0;
                    for (r, c) in partner.iter().enumerate() {
                        match *c {
                            Some(c) => {
                                assert!(!used[c], "case {case}: column {c} twice");
                                used[c] = true;
                                t += pair(r, c);
                            }
                            None => t += da[r],
                        }
                    }
                    t + (0..nb).filter(|&c| !used[c]).map(|c| db[c]).sum::<f64>()
                };
                let run = |limits| on_a_line(&ya, &yb, &da, &db, pow, limits);
                let whole = cost(&run((usize::MAX, usize::MAX)));
                let halved = cost(&run((0, 1 + case % 9)));
                let cp: Vec<Vec<f64>> = augmented(&a, &b)
                    .iter()
                    .map(|r| r.iter().map(|x| x.powf(p)).collect())
                    .collect();
                let want = if cp.is_empty() { 0.0 } else { hungarian(&cp) };
                for (got, what) in [(whole, "table"), (halved, "halved")] {
                    assert!(
                        (got - want).abs() <= 1e-12 * want.max(1.0),
                        "case {case} p {p} {what}: {got} vs Hungarian {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn small_cases_by_hand() {
        assert_eq!(w(&[(0.0, 1.0)], &[], 1.0), 0.5);
        assert_eq!(bn(&[(0.0, 1.0)], &[]), 0.5);
        assert_eq!(w(&[(0.0, 2.0)], &[(0.0, 1.0)], 1.0), 1.0);
        assert_eq!(bn(&[(0.0, 2.0)], &[(0.0, 1.0)]), 1.0);
        assert_eq!(w(&[], &[], 2.0), 0.0);
        assert_eq!(
            w(&[(1.0, 1.0)], &[], 1.0),
            0.0,
            "a point on the diagonal costs nothing"
        );
        assert_eq!(
            w(&[(0.0, f64::INFINITY)], &[(1.0, f64::INFINITY)], 1.0),
            1.0
        );
        assert_eq!(w(&[(0.0, f64::INFINITY)], &[], 1.0), f64::INFINITY);
        assert_eq!(bn(&[(0.0, f64::INFINITY), (0.0, 1.0)], &[]), f64::INFINITY);
        assert_eq!(
            wasserstein(
                &[(0.0, f64::INFINITY), (0.0, 1.0)],
                &[],
                1.0,
                L,
                Essential::Ignore
            )
            .unwrap()
            .value,
            0.5
        );
        let l2 = wasserstein(&[(0.0, 1.0)], &[], 1.0, Ground::L2, M)
            .unwrap()
            .value;
        assert!((l2 - 1.0 / 2f64.sqrt()).abs() < 1e-15);
    }

    /// The bottleneck distance by its definition: the smallest of all
    /// candidate values (0, every diagonal distance, every pair distance)
    /// at which the augmented bipartite graph (each diagram plus the
    /// other's diagonal copies) has a perfect matching, found by a plain
    /// augmenting-path search on the dense graph.
    fn bottleneck_reference(a: &[(f64, f64)], b: &[(f64, f64)], g: Ground) -> f64 {
        let (n, m) = (a.len(), b.len());
        let edge = |r: usize, c: usize, delta: f64| match (r < n, c < m) {
            (true, true) => g.dist(a[r], b[c]) <= delta,
            (true, false) => c - m == r && g.to_diagonal(a[r]) <= delta,
            (false, true) => r - n == c && g.to_diagonal(b[c]) <= delta,
            (false, false) => true,
        };
        fn augment(
            r: usize,
            size: usize,
            edge: &dyn Fn(usize, usize) -> bool,
            seen: &mut [bool],
            mate: &mut [usize],
        ) -> bool {
            for c in 0..size {
                if edge(r, c) && !seen[c] {
                    seen[c] = true;
                    if mate[c] == usize::MAX || augment(mate[c], size, edge, seen, mate) {
                        mate[c] = r;
                        return true;
                    }
                }
            }
            false
        }
        let size = n + m;
        let perfect = |delta: f64| {
            let mut mate = vec![usize::MAX; size];
            (0..size).all(|r| {
                let mut seen = vec![false; size];
                augment(r, size, &|r, c| edge(r, c, delta), &mut seen, &mut mate)
            })
        };
        let mut cand: Vec<f64> = vec![0.0];
        cand.extend(a.iter().chain(b).map(|&x| g.to_diagonal(x)));
        for &x in a {
            cand.extend(b.iter().map(|&y| g.dist(x, y)));
        }
        cand.sort_by(f64::total_cmp);
        let first = cand.partition_point(|&c| !perfect(c));
        cand[first]
    }

    #[test]
    fn bottleneck_equals_the_definition_on_larger_diagrams() {
        // Up to 40 points: continuous values, integer grids (many ties),
        // and H0-like diagrams (every birth 0), under each ground metric.
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        for case in 0..240 {
            let kind = case % 3;
            let gen = |rng: &mut ChaCha8Rng| -> Vec<(f64, f64)> {
                let k = rng.random_range(0..=40);
                (0..k)
                    .map(|_| match kind {
                        0 => {
                            let b: f64 = rng.random();
                            (b, b + rng.random::<f64>() * 0.5)
                        }
                        1 => {
                            let b = rng.random_range(0..5) as f64;
                            (b, b + rng.random_range(0..4) as f64)
                        }
                        _ => (0.0, rng.random::<f64>()),
                    })
                    .collect()
            };
            let a = gen(&mut rng);
            let b = gen(&mut rng);
            for g in [Ground::LInf, Ground::L2, Ground::L1] {
                let want = bottleneck_reference(&a, &b, g);
                let got = bottleneck(&a, &b, g, M).unwrap();
                assert_eq!(got.value, want, "case {case} ({g:?})");
                let worst = pair_costs_in(&a, &b, &got, "bottleneck", g)
                    .into_iter()
                    .fold(0.0, f64::max);
                assert_eq!(worst, got.value, "case {case} ({g:?}): matching");
            }
        }
    }

    #[test]
    fn matches_brute_force_on_small_diagrams() {
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        for case in 0..300 {
            let a = random_diagram(&mut rng, 4, case % 3 == 0);
            let b = random_diagram(&mut rng, 4, case % 3 == 0);
            for p in [1.0, 2.0, 3.5] {
                let (bw, bb) = brute(&a, &b, p);
                let got = wasserstein(&a, &b, p, L, M).unwrap();
                assert!(
                    (got.value - bw).abs() <= 1e-12 * bw.max(1.0),
                    "case {case} p {p}: {} vs {bw}",
                    got.value
                );
                // The matching realises the value and covers every point once.
                let s: f64 = pair_costs(&a, &b, &got, "wasserstein")
                    .iter()
                    .map(|c| c.powf(p))
                    .sum();
                assert!(
                    (s.powf(1.0 / p) - bw).abs() <= 1e-12 * bw.max(1.0),
                    "case {case}"
                );
                let b_got = bottleneck(&a, &b, L, M).unwrap();
                assert!(
                    (b_got.value - bb).abs() <= 1e-15,
                    "case {case}: bottleneck {} vs {bb}",
                    b_got.value
                );
                let worst = pair_costs(&a, &b, &b_got, "bottleneck")
                    .into_iter()
                    .fold(0.0, f64::max);
                assert_eq!(worst, b_got.value, "case {case}: bottleneck matching");
            }
        }
    }

    /// Acceptance 2 (issue 4): metric properties and the order of W_p.
    #[test]
    fn metric_properties() {
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        for case in 0..60 {
            let ties = case % 4 == 0;
            let (a, b, c) = (
                random_diagram(&mut rng, 12, ties),
                random_diagram(&mut rng, 12, ties),
                random_diagram(&mut rng, 12, ties),
            );
            for p in [1.0, 2.0] {
                let (ab, ba) = (w(&a, &b, p), w(&b, &a, p));
                assert!((ab - ba).abs() <= 1e-12 * ab.max(1.0), "symmetry");
                assert_eq!(w(&a, &a, p), 0.0, "identity");
                assert!(
                    w(&a, &c, p) <= ab + w(&b, &c, p) + 1e-12,
                    "triangle inequality"
                );
            }
            assert_eq!(bn(&a, &b), bn(&b, &a));
            assert!(bn(&a, &c) <= bn(&a, &b) + bn(&b, &c) + 1e-12);
            // W_p decreases with p and tends to the bottleneck distance.
            let ps = [1.0, 1.5, 2.0, 4.0, 8.0, 16.0, 32.0];
            for k in 1..ps.len() {
                assert!(
                    w(&a, &b, ps[k]) <= w(&a, &b, ps[k - 1]) + 1e-12,
                    "case {case}: W_p is non-increasing in p"
                );
            }
            // Costs are d^p in f64, so the order is kept where d^p still
            // resolves the bottleneck term beside the largest cost (p ≤ 32
            // on these diagrams); W_p^p ≤ count · bottleneck^p bounds it.
            let big = w(&a, &b, 32.0);
            let bott = bn(&a, &b);
            let count = (a.len() + b.len()).max(1) as f64;
            assert!(
                bott <= big + 1e-12 && big <= bott * count.powf(1.0 / 32.0) + 1e-12,
                "case {case}: W_32 {big} vs bottleneck {bott}"
            );
        }
    }

    /// Stability, with the Rips engine: d_B(Dgm(X), Dgm(X')) ≤ 2 max |x_i − x'_i|.
    #[test]
    fn rips_stability() {
        use crate::topology::{rips_persistence, DistanceMatrix, RipsOptions};
        let mut rng = ChaCha8Rng::seed_from_u64(47);
        for case in 0..20 {
            let n = 40;
            let x = ndarray::Array2::from_shape_fn((n, 2), |_| rng.random::<f64>());
            let eps = 0.02 * (case as f64 + 1.0) / 20.0;
            let y = x.mapv(|v| v + eps * (2.0 * rng.random::<f64>() - 1.0));
            let shift = x
                .rows()
                .into_iter()
                .zip(y.rows())
                .map(|(a, b)| (&a - &b).mapv(|v| v * v).sum().sqrt())
                .fold(0.0, f64::max);
            let opts = RipsOptions {
                maxdim: 1,
                threshold: Some(f64::INFINITY),
                ..Default::default()
            };
            let dx =
                rips_persistence(&DistanceMatrix::from_points(x.view()).unwrap(), &opts).unwrap();
            let dy =
                rips_persistence(&DistanceMatrix::from_points(y.view()).unwrap(), &opts).unwrap();
            for k in 0..2 {
                let pa: Vec<(f64, f64)> = dx.dims[k].iter().map(|b| (b.birth, b.death)).collect();
                let pb: Vec<(f64, f64)> = dy.dims[k].iter().map(|b| (b.birth, b.death)).collect();
                let d = bn(&pa, &pb);
                // f32 distances: allow their rounding.
                assert!(
                    d <= 2.0 * shift + 1e-6,
                    "case {case} H{k}: {d} > 2 * {shift}"
                );
            }
        }
    }

    #[test]
    fn bad_diagrams_are_named() {
        let e = wasserstein(&[(0.0, f64::NAN)], &[], 1.0, L, M)
            .unwrap_err()
            .to_string();
        assert!(e.contains("first diagram, point 0: death is NaN"), "{e}");
        let e = bottleneck(&[], &[(1.0, 0.5)], L, M)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("second diagram, point 0: death 0.5 is before birth 1"),
            "{e}"
        );
        assert!(wasserstein(&[], &[], 0.5, L, M).is_err());
        assert!(check(&[(f64::NEG_INFINITY, 1.0)], "x").is_err());
    }
}
