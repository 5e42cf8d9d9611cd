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
}

impl Ground {
    #[inline]
    fn dist(self, a: (f64, f64), b: (f64, f64)) -> f64 {
        let (x, y) = ((a.0 - b.0).abs(), (a.1 - b.1).abs());
        match self {
            Ground::LInf => x.max(y),
            Ground::L2 => x.hypot(y),
        }
    }

    /// Distance to the diagonal (to the projection of the point).
    #[inline]
    fn to_diagonal(self, a: (f64, f64)) -> f64 {
        let pers = a.1 - a.0;
        match self {
            Ground::LInf => pers / 2.0,
            Ground::L2 => pers / std::f64::consts::SQRT_2,
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
        let partner = min_cost_matching(n, m, pair, &da, &db);
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

/// Min-cost flow on the compact network of the finite parts: source → a_i
/// (1) → b_j (1) → sink, a_i → Δ_B (to the diagonal), Δ_A → b_j (from the
/// diagonal), Δ_A → Δ_B (free). Edges a_i → b_j are kept only where
/// d(a_i, b_j)^p ≤ δ(a_i)^p + δ(b_j)^p: in an optimal matching any other
/// pair is beaten by sending both points to the diagonal. Successive
/// shortest paths with Dijkstra on reduced costs; returns for every a_i its
/// partner (`Some(j)` or `None` for the diagonal) and for every b_j whether
/// it went to the diagonal.
fn min_cost_matching(
    n: usize,
    m: usize,
    pair_cost: impl Fn(usize, usize) -> f64,
    da: &[f64],
    db: &[f64],
) -> Vec<Option<usize>> {
    // Nodes: 0 source, 1..=n a, n+1..=n+m b, n+m+1 Δ_A, n+m+2 Δ_B, n+m+3 sink.
    let (src, dga, dgb, sink) = (0, n + m + 1, n + m + 2, n + m + 3);
    let nodes = n + m + 4;
    struct E {
        to: usize,
        cap: i64,
        cost: f64,
    }
    let mut edges: Vec<E> = Vec::new();
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    let add =
        |edges: &mut Vec<E>, adj: &mut Vec<Vec<usize>>, u: usize, v: usize, cap: i64, cost: f64| {
            adj[u].push(edges.len());
            edges.push(E { to: v, cap, cost });
            adj[v].push(edges.len());
            edges.push(E {
                to: u,
                cap: 0,
                cost: -cost,
            });
        };
    for (i, &di) in da.iter().enumerate() {
        add(&mut edges, &mut adj, src, 1 + i, 1, 0.0);
        add(&mut edges, &mut adj, 1 + i, dgb, 1, di);
        for (j, &dj) in db.iter().enumerate() {
            let c = pair_cost(i, j);
            if c <= di + dj {
                add(&mut edges, &mut adj, 1 + i, 1 + n + j, 1, c);
            }
        }
    }
    add(&mut edges, &mut adj, src, dga, m as i64, 0.0);
    for (j, &dj) in db.iter().enumerate() {
        add(&mut edges, &mut adj, dga, 1 + n + j, 1, dj);
        add(&mut edges, &mut adj, 1 + n + j, sink, 1, 0.0);
    }
    add(&mut edges, &mut adj, dga, dgb, n.min(m) as i64, 0.0);
    add(&mut edges, &mut adj, dgb, sink, n as i64, 0.0);

    let mut pot = vec![0.0f64; nodes];
    let mut dist = vec![f64::INFINITY; nodes];
    let mut prev_edge = vec![usize::MAX; nodes];
    let mut heap = std::collections::BinaryHeap::new();
    let mut flow = 0usize;
    let need = n + m;
    while flow < need {
        dist.fill(f64::INFINITY);
        prev_edge.fill(usize::MAX);
        dist[src] = 0.0;
        heap.clear();
        heap.push((std::cmp::Reverse(OrdF64(0.0)), src));
        while let Some((std::cmp::Reverse(OrdF64(d)), u)) = heap.pop() {
            if d > dist[u] {
                continue;
            }
            // Every node nearer than the sink is final: stop (the potential
            // update below caps the others at the sink's distance).
            if u == sink {
                break;
            }
            for &e in &adj[u] {
                let ed = &edges[e];
                if ed.cap <= 0 {
                    continue;
                }
                // Reduced costs are ≥ 0 up to rounding: clamp.
                let nd = d + (ed.cost + pot[u] - pot[ed.to]).max(0.0);
                if nd < dist[ed.to] {
                    dist[ed.to] = nd;
                    prev_edge[ed.to] = e;
                    heap.push((std::cmp::Reverse(OrdF64(nd)), ed.to));
                }
            }
        }
        if !dist[sink].is_finite() {
            break;
        }
        let reach = dist[sink];
        for v in 0..nodes {
            pot[v] += dist[v].min(reach);
        }
        // Bottleneck capacity along the path.
        let mut push = i64::MAX;
        let mut v = sink;
        while v != src {
            let e = prev_edge[v];
            push = push.min(edges[e].cap);
            v = edges[e ^ 1].to;
        }
        let mut v = sink;
        while v != src {
            let e = prev_edge[v];
            edges[e].cap -= push;
            edges[e ^ 1].cap += push;
            v = edges[e ^ 1].to;
        }
        flow += push as usize;
    }
    // Read the matching: a_i's saturated edge to some b_j.
    (0..n)
        .map(|i| {
            adj[1 + i].iter().find_map(|&e| {
                let ed = &edges[e];
                (e % 2 == 0 && ed.cap == 0 && ed.to > n && ed.to <= n + m).then(|| ed.to - 1 - n)
            })
        })
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
pub fn bottleneck(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    ground: Ground,
    essential: Essential,
) -> Result<Matching> {
    check(a, "first diagram")?;
    check(b, "second diagram")?;
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
        // Candidate values: every pairwise distance and diagonal distance;
        // the bottleneck is the smallest candidate that admits a perfect
        // matching.
        let mut cand: Vec<f64> = Vec::with_capacity(n * m + n + m + 1);
        cand.push(0.0);
        for x in &pa {
            cand.push(ground.to_diagonal(*x));
            for y in &pb {
                cand.push(ground.dist(*x, *y));
            }
        }
        for y in &pb {
            cand.push(ground.to_diagonal(*y));
        }
        cand.sort_by(f64::total_cmp);
        cand.dedup();
        let (mut lo, mut hi) = (0usize, cand.len() - 1);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if perfect_matching(&pa, &pb, cand[mid], ground).is_some() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let delta = cand[lo];
        let assignment = perfect_matching(&pa, &pb, delta, ground)
            .expect("the largest candidate admits a matching");
        for (r, c) in assignment.into_iter().enumerate() {
            match (r < n, c < m) {
                (true, true) => pairs.push((Some(fa[r]), Some(fb[c]))),
                (true, false) => pairs.push((Some(fa[r]), None)),
                (false, true) => pairs.push((None, Some(fb[c]))),
                (false, false) => {}
            }
        }
        value = value.max(delta);
    }
    Ok(Matching { value, pairs })
}

/// A perfect matching of the augmented bipartite graph (rows: a, then
/// diagonal slots for b; columns: b, then diagonal slots for a) using only
/// edges of length ≤ delta, by Hopcroft–Karp; `None` if there is none.
fn perfect_matching(
    a: &[(f64, f64)],
    b: &[(f64, f64)],
    delta: f64,
    ground: Ground,
) -> Option<Vec<usize>> {
    let (n, m) = (a.len(), b.len());
    let size = n + m;
    // Adjacency of each row.
    let adj: Vec<Vec<usize>> = (0..size)
        .map(|r| {
            let mut v = Vec::new();
            if r < n {
                for (c, y) in b.iter().enumerate() {
                    if ground.dist(a[r], *y) <= delta {
                        v.push(c);
                    }
                }
                if ground.to_diagonal(a[r]) <= delta {
                    v.push(m + r);
                }
            } else {
                let k = r - n;
                if ground.to_diagonal(b[k]) <= delta {
                    v.push(k);
                }
                // Diagonal to diagonal is free.
                v.extend(m..m + n);
            }
            v
        })
        .collect();
    hopcroft_karp(size, &adj)
}

/// Maximum bipartite matching (rows and columns 0..size); the column of
/// every row if the matching is perfect.
fn hopcroft_karp(size: usize, adj: &[Vec<usize>]) -> Option<Vec<usize>> {
    const NONE: usize = usize::MAX;
    let mut match_row = vec![NONE; size];
    let mut match_col = vec![NONE; size];
    let mut dist = vec![0usize; size];
    let mut matched = 0;
    loop {
        // BFS from free rows.
        let mut queue = std::collections::VecDeque::new();
        for r in 0..size {
            if match_row[r] == NONE {
                dist[r] = 0;
                queue.push_back(r);
            } else {
                dist[r] = NONE;
            }
        }
        let mut found = false;
        while let Some(r) = queue.pop_front() {
            for &c in &adj[r] {
                let r2 = match_col[c];
                if r2 == NONE {
                    found = true;
                } else if dist[r2] == NONE {
                    dist[r2] = dist[r] + 1;
                    queue.push_back(r2);
                }
            }
        }
        if !found {
            break;
        }
        // DFS along layers (iterative, with per-row edge cursors).
        let mut cursor = vec![0usize; size];
        for start in 0..size {
            if match_row[start] != NONE {
                continue;
            }
            let mut stack = vec![start];
            while let Some(&r) = stack.last() {
                if cursor[r] == adj[r].len() {
                    dist[r] = NONE;
                    stack.pop();
                    continue;
                }
                let c = adj[r][cursor[r]];
                cursor[r] += 1;
                let r2 = match_col[c];
                if r2 == NONE {
                    // Augment along the stack.
                    let mut col = c;
                    for &row in stack.iter().rev() {
                        let prev = match_row[row];
                        match_row[row] = col;
                        match_col[col] = row;
                        col = prev;
                    }
                    matched += 1;
                    break;
                } else if dist[r2] == dist[r] + 1 {
                    stack.push(r2);
                }
            }
        }
    }
    (matched == size).then_some(match_row)
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
                let mut seen_a = vec![0; a.len()];
                let mut seen_b = vec![0; b.len()];
                let mut s = 0.0;
                for &(i, j) in &got.pairs {
                    let c = match (i, j) {
                        (Some(i), Some(j)) => L.dist(a[i], b[j]),
                        (Some(i), None) => L.to_diagonal(a[i]),
                        (None, Some(j)) => L.to_diagonal(b[j]),
                        (None, None) => unreachable!(),
                    };
                    s += c.powf(p);
                    if let Some(i) = i {
                        seen_a[i] += 1;
                    }
                    if let Some(j) = j {
                        seen_b[j] += 1;
                    }
                }
                assert!(seen_a.iter().chain(&seen_b).all(|&k| k == 1), "case {case}");
                assert!(
                    (s.powf(1.0 / p) - bw).abs() <= 1e-12 * bw.max(1.0),
                    "case {case}"
                );
                let b_got = bn(&a, &b);
                assert!(
                    (b_got - bb).abs() <= 1e-15,
                    "case {case}: bottleneck {b_got} vs {bb}"
                );
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
            let ps = [1.0, 1.5, 2.0, 4.0, 8.0, 64.0];
            for k in 1..ps.len() {
                assert!(
                    w(&a, &b, ps[k]) <= w(&a, &b, ps[k - 1]) + 1e-12,
                    "case {case}: W_p is non-increasing in p"
                );
            }
            let big = w(&a, &b, 200.0);
            let bott = bn(&a, &b);
            let count = (a.len() + b.len()).max(1) as f64;
            assert!(
                bott <= big + 1e-12 && big <= bott * count.powf(1.0 / 200.0) + 1e-12,
                "case {case}: W_200 {big} vs bottleneck {bott}"
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
