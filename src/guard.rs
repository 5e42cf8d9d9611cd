//! One size and memory check for every command (docs/reliability.md).
//!
//! Anything whose size an input or a setting decides (a dataset of n × d
//! values, a distance matrix, a grid of a summary, a network's parameters)
//! is estimated with [`Size`] and checked with [`need`] *before* it is
//! allocated. A size that overflows 64 bits, or that exceeds the memory
//! budget, is refused with the estimate, the budget, and the key or flag to
//! change, instead of an allocation abort or a visit from the OOM killer.
//!
//! The budget is `run.memory_budget_gib`: 0 means half of this node's
//! memory shared among the ranks on the node; a budget above the node's
//! memory is refused ([`configure`]). Every command sets it once, in
//! `commands::prepare`; library code and tests that never call
//! [`configure`] get the default.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The budget in bytes; 0 until [`configure`] is called.
static BUDGET: AtomicU64 = AtomicU64::new(0);

/// The key that sets the budget, named in every refusal.
pub const BUDGET_KEY: &str = "run.memory_budget_gib";

/// Sets the budget from `run.memory_budget_gib` (0 = the default share of
/// the node) and returns it in bytes. A budget above this node's physical
/// memory is refused: it could only end in the OOM killer.
pub fn configure(gib: f64) -> Result<u64> {
    let node = crate::runtime::node_memory_bytes();
    if let Some(node) = node {
        if gib > 0.0 && gib * GIB > node as f64 {
            return Err(Error::invalid(
                BUDGET_KEY,
                format!(
                    "{gib} GiB is more than this node's memory ({:.1} GiB); set at most that, or 0 for the default (half of it, shared by the ranks of the node)",
                    node as f64 / GIB
                ),
            ));
        }
    }
    let bytes = crate::runtime::memory_budget_bytes(gib);
    BUDGET.store(bytes, Ordering::Relaxed);
    Ok(bytes)
}

/// The budget in bytes: the configured one, else the default share.
pub fn budget() -> u64 {
    match BUDGET.load(Ordering::Relaxed) {
        0 => crate::runtime::memory_budget_bytes(0.0),
        b => b,
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// A size in bytes computed with checked arithmetic: `None` once any step
/// overflowed (which [`need`] reports as a size beyond any budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(Option<u64>);

impl Size {
    /// `count` elements of `elem` bytes each.
    pub fn of(count: u64, elem: u64) -> Size {
        Size(count.checked_mul(elem))
    }

    /// The product of `dims` elements of `elem` bytes each (an array's
    /// shape).
    pub fn array(dims: &[u64], elem: u64) -> Size {
        dims.iter()
            .try_fold(elem, |acc, &d| acc.checked_mul(d))
            .map_or(Size(None), |b| Size(Some(b)))
    }

    /// The strict lower triangle of an n × n matrix, `elem` bytes a value.
    pub fn triangle(n: u64, elem: u64) -> Size {
        let pairs = if n % 2 == 0 {
            (n / 2).checked_mul(n.saturating_sub(1))
        } else {
            n.checked_mul(n.saturating_sub(1) / 2)
        };
        Size(pairs.and_then(|p| p.checked_mul(elem)))
    }

    /// Plain bytes.
    pub fn bytes(b: u64) -> Size {
        Size(Some(b))
    }

    /// This size plus `other`.
    #[must_use]
    pub fn plus(self, other: Size) -> Size {
        Size(self.0.zip(other.0).and_then(|(a, b)| a.checked_add(b)))
    }

    /// This size `k` times.
    #[must_use]
    pub fn times(self, k: u64) -> Size {
        Size(self.0.and_then(|a| a.checked_mul(k)))
    }

    /// The bytes, `None` when the computation overflowed.
    pub fn get(self) -> Option<u64> {
        self.0
    }
}

/// Refuses `what` (e.g. "the distance matrix of 2,000,000 points") when
/// its estimated `size` exceeds the budget; `key` names the setting or flag
/// that sizes it, which the message tells the user to lower.
pub fn need(what: &str, size: Size, key: &str) -> Result<()> {
    need_share(what, size, 1, key)
}

/// Like [`need`] for one of `parts` things that run at once on a rank's
/// threads (the objects of a collection): each gets 1/`parts` of the
/// budget.
pub fn need_share(what: &str, size: Size, parts: usize, key: &str) -> Result<()> {
    let parts = parts.max(1);
    let budget = budget() / parts as u64;
    let share = if parts > 1 {
        format!(" (its share: one of {parts} computed at once on the rank's threads)")
    } else {
        String::new()
    };
    match size.0 {
        Some(b) if b <= budget => Ok(()),
        est => Err(Error::invalid(
            "memory budget",
            format!(
                "{what} would need {}, over the memory budget of {}{share} ({BUDGET_KEY}); lower {key}",
                est.map_or("more than 2^64 bytes".to_string(), human),
                human(budget)
            ),
        )),
    }
}

/// Bytes as a person reads them: "512.0 MiB", "3.20 GiB".
pub fn human(b: u64) -> String {
    let b = b as f64;
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} bytes")
    }
}

/// The most threads per rank that `run.threads` may ask for: four times
/// the CPUs this process may use (beyond that a rank only loses time to
/// switching between its own threads).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Refuses a thread count above [`max_threads`].
pub fn check_threads(threads: usize) -> Result<()> {
    let max = max_threads();
    if threads > max {
        return Err(Error::invalid(
            "run.threads (--threads)",
            format!(
                "{threads} threads per rank is more than 4 × the {} CPUs this process may use; set at most {max}, or 0 for the automatic choice",
                max / 4
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_overflow_to_a_refusal() {
        assert_eq!(Size::array(&[3, 4], 8).get(), Some(96));
        assert_eq!(Size::triangle(5, 4).get(), Some(40));
        assert_eq!(Size::triangle(4, 4).get(), Some(24));
        // 10^9 points: 2·10^18 bytes still fit in u64; the 10^11 points of
        // an edge list's vertex index 99,999,999,999 do not.
        assert_eq!(
            Size::triangle(1_000_000_000, 4).get(),
            Some(1_999_999_998_000_000_000)
        );
        assert!(Size::triangle(100_000_000_000, 4).get().is_none());
        assert!(Size::triangle(u64::MAX, 4).get().is_none());
        assert!(Size::array(&[u64::MAX, 2], 1).get().is_none());
        assert!(Size::of(1, 1)
            .plus(Size::array(&[u64::MAX, 2], 1))
            .get()
            .is_none());
        let e = need("x", Size(None), "--n").unwrap_err().to_string();
        assert!(
            e.contains("more than 2^64 bytes") && e.contains("lower --n"),
            "{e}"
        );
        let e = need("the matrix", Size::bytes(u64::MAX / 2), "synth.n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the matrix would need") && e.contains(BUDGET_KEY),
            "{e}"
        );
        assert!(need("small", Size::bytes(1024), "k").is_ok());
    }

    #[test]
    fn a_budget_above_the_node_is_refused() {
        let Some(node) = crate::runtime::node_memory_bytes() else {
            return;
        };
        let gib = 2.0 * node as f64 / GIB;
        let e = configure(gib).unwrap_err().to_string();
        assert!(e.contains("more than this node's memory"), "{e}");
        assert!(check_threads(max_threads() + 1).is_err());
        assert!(check_threads(1).is_ok());
    }
}
