//! Topology measures between the persistence diagrams of a real and a
//! generated set (one homology dimension at a time): the Betti-curve
//! distance and topological accuracy. (W_p and bottleneck distances are
//! [`crate::topology::diagram`]'s.)

use crate::error::{Error, Result};
use crate::topology::diagram::{self, Essential, Ground};

/// The L2 distance between the Betti curves β_a(t) and β_b(t) (the number
/// of bars alive at t: birth ≤ t < death) over [lo, hi]:
/// √(∫_lo^hi (β_a − β_b)² dt), computed exactly (both curves are step
/// functions; essential bars count up to hi). Use one [lo, hi] for every
/// pair of diagrams that are compared with each other, e.g. from the real
/// set's smallest birth to its largest finite death.
pub fn betti_distance(a: &[(f64, f64)], b: &[(f64, f64)], lo: f64, hi: f64) -> Result<f64> {
    diagram::check(a, "first diagram")?;
    diagram::check(b, "second diagram")?;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::invalid(
            "Betti curve range",
            format!("needs finite lo < hi, got [{lo}, {hi}]"),
        ));
    }
    // Events: +1 at a's births and b's deaths, −1 at a's deaths and b's
    // births; between events the difference β_a − β_b is constant.
    let mut events: Vec<(f64, i64)> = Vec::with_capacity(2 * (a.len() + b.len()));
    for &(s, e) in a {
        events.push((s, 1));
        events.push((e, -1));
    }
    for &(s, e) in b {
        events.push((s, -1));
        events.push((e, 1));
    }
    events.sort_by(|x, y| x.0.total_cmp(&y.0));
    let (mut diff, mut t, mut sum) = (0i64, f64::NEG_INFINITY, 0.0);
    for (at, step) in events {
        let (from, to) = (t.max(lo), at.min(hi));
        if to > from {
            sum += (diff * diff) as f64 * (to - from);
        }
        diff += step;
        t = at;
    }
    if t < hi {
        sum += (diff * diff) as f64 * (hi - t.max(lo));
    }
    Ok(sum.sqrt())
}

/// Topological accuracy: the fraction of the real diagram's significant
/// bars (persistence > τ; essential bars included) that an optimal
/// bottleneck matching (L∞ ground metric, essential classes matched by
/// birth) pairs with a significant bar of the generated diagram. `None`
/// when the real diagram has no significant bar. Bottleneck matchings are
/// not unique; this one is [`diagram::bottleneck`]'s.
pub fn topological_accuracy(
    real: &[(f64, f64)],
    gen: &[(f64, f64)],
    tau: f64,
) -> Result<Option<f64>> {
    if !(tau.is_finite() && tau >= 0.0) {
        return Err(Error::invalid(
            "τ",
            format!("the significance threshold must be a finite number ≥ 0, got {tau}"),
        ));
    }
    let significant = |p: &(f64, f64)| p.1 - p.0 > tau;
    let total = real.iter().filter(|p| significant(p)).count();
    if total == 0 {
        return Ok(None);
    }
    // Essential classes are matched when their counts agree; otherwise the
    // finite parts are matched and every real essential bar counts as lost.
    let ess = |d: &[(f64, f64)]| d.iter().filter(|p| p.1.is_infinite()).count();
    let essential = if ess(real) == ess(gen) {
        Essential::Match
    } else {
        Essential::Ignore
    };
    let m = diagram::bottleneck(real, gen, Ground::LInf, essential)?;
    let kept = m
        .pairs
        .iter()
        .filter(|(i, j)| match (i, j) {
            (Some(i), Some(j)) => significant(&real[*i]) && significant(&gen[*j]),
            _ => false,
        })
        .count();
    Ok(Some(kept as f64 / total as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Closed forms: one bar against none is √(its length in range); two
    /// overlapping bars differ where only one is alive; an essential bar
    /// counts to the end of the range.
    #[test]
    fn betti_distance_has_its_closed_forms() {
        let d = betti_distance(&[(0.0, 1.0)], &[], 0.0, 2.0).unwrap();
        assert!((d - 1.0).abs() < 1e-15, "{d}");
        // [0, 2) against [1, 3) on [0, 4]: differ on [0, 1) and [2, 3).
        let d = betti_distance(&[(0.0, 2.0)], &[(1.0, 3.0)], 0.0, 4.0).unwrap();
        assert!((d - 2f64.sqrt()).abs() < 1e-15, "{d}");
        // Two bars alive on [1, 2) against none: β = 2 there, 1 elsewhere.
        let d = betti_distance(&[(0.0, 2.0), (1.0, 3.0)], &[], 0.0, 3.0).unwrap();
        assert!((d - (1.0 + 4.0 + 1.0f64).sqrt()).abs() < 1e-15, "{d}");
        let d = betti_distance(&[(0.5, f64::INFINITY)], &[(0.0, 1.0)], 0.0, 2.0).unwrap();
        // Differ on [0, 0.5) (−1) and [1, 2) (+1): √1.5.
        assert!((d - 1.5f64.sqrt()).abs() < 1e-15, "{d}");
        assert_eq!(
            betti_distance(&[(0.0, 1.0)], &[(0.0, 1.0)], -1.0, 5.0).unwrap(),
            0.0
        );
        // A sampled curve on a fine grid agrees (the grid's Riemann sum).
        let (a, b) = ([(0.1, 0.7), (0.3, 0.9), (0.2, 0.25)], [(0.15, 0.8)]);
        let n = 200_000;
        let grid = crate::topology::summaries::grid(0.0, 1.0, n);
        let (ba, bb) = (
            crate::topology::summaries::betti_curve(&a, &grid),
            crate::topology::summaries::betti_curve(&b, &grid),
        );
        let riemann: f64 = ba
            .iter()
            .zip(&bb)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f64>()
            / n as f64;
        let exact = betti_distance(&a, &b, 0.0, 1.0).unwrap();
        assert!(
            (exact - riemann.sqrt()).abs() < 1e-4,
            "{exact} vs {}",
            riemann.sqrt()
        );
        assert!(betti_distance(&a, &b, 1.0, 1.0).is_err());
    }

    /// Closed forms: a generated diagram that holds one of the real set's
    /// two significant bars (and noise) scores 1/2; one that holds both
    /// scores 1; noise alone 0; no significant real bar gives None.
    #[test]
    fn topological_accuracy_counts_the_matched_significant_bars() {
        let real = [(0.0, 1.0), (0.2, 1.5), (0.3, 0.35)];
        let one = [(0.05, 1.1), (0.4, 0.45), (0.6, 0.62)];
        assert_eq!(topological_accuracy(&real, &one, 0.2).unwrap(), Some(0.5));
        let both = [(0.05, 1.1), (0.25, 1.4)];
        assert_eq!(topological_accuracy(&real, &both, 0.2).unwrap(), Some(1.0));
        let noise = [(0.1, 0.15), (0.5, 0.55)];
        assert_eq!(topological_accuracy(&real, &noise, 0.2).unwrap(), Some(0.0));
        assert_eq!(
            topological_accuracy(&[(0.0, 0.1)], &noise, 0.2).unwrap(),
            None
        );
        // The essential H0 bar counts when both have one; a lost one when
        // only the real set has it.
        let r = [(0.0, f64::INFINITY), (0.1, 0.9)];
        assert_eq!(
            topological_accuracy(&r, &[(0.0, f64::INFINITY), (0.1, 0.12)], 0.2).unwrap(),
            Some(0.5)
        );
        assert_eq!(
            topological_accuracy(&r, &[(0.1, 0.9)], 0.2).unwrap(),
            Some(0.5)
        );
        assert!(topological_accuracy(&r, &r, f64::NAN).is_err());
    }
}
