//! Maxmin (farthest-point) landmarks of a sample matrix sharded over ranks.
//!
//! Every rank holds a contiguous block of rows (its shard); no rank ever
//! holds more than its shard and the landmarks chosen so far. Each step the
//! owner of the new landmark broadcasts its row, every rank updates the
//! squared distance of its rows to the nearest landmark (with the same
//! arithmetic as [`crate::topology::landmarks`]), and the ranks agree on the
//! farthest row: the largest squared distance, ties to the smallest global
//! index. The result is exactly that of serial maxmin on the whole matrix:
//! the same indices in the same order and the same covering radius, bit for
//! bit, for any number of ranks.

use ndarray::{Array2, ArrayView2};

use super::Comm;
use crate::error::{Error, Result};
use crate::topology::landmarks::{farthest, update_nearest};

/// Landmarks chosen across ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardedLandmarks {
    /// Global row indices, in the order chosen.
    pub indices: Vec<usize>,
    /// The landmark rows (indices.len() × d), on every rank.
    pub points: Array2<f64>,
    /// max over all rows of the distance to the nearest landmark.
    pub covering_radius: f64,
}

/// Row range [start, end) of rank `rank` among `size` ranks for `n` rows:
/// contiguous blocks whose sizes differ by at most one.
pub fn shard_range(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let start = (n as u128 * rank as u128 / size as u128) as usize;
    let end = (n as u128 * (rank as u128 + 1) / size as u128) as usize;
    start..end
}

/// Maxmin landmarks (from global row 0) of the matrix whose rows
/// `offset..offset + shard.nrows()` this rank holds; at most `m`, fewer
/// when the matrix has fewer distinct rows. `progress` is called on rank 0
/// with the number chosen so far. Collective: call on every rank.
pub fn maxmin(
    comm: &Comm,
    shard: ArrayView2<'_, f64>,
    offset: usize,
    m: usize,
    progress: &dyn Fn(usize),
) -> Result<ShardedLandmarks> {
    let shard = shard.as_standard_layout();
    let rows: Vec<&[f64]> = shard
        .rows()
        .into_iter()
        .map(|r| r.to_slice().expect("standard layout"))
        .collect();
    let starts = comm.all_gather_u64(offset as u64);
    let counts = comm.all_gather_u64(rows.len() as u64);
    let dims = comm.all_gather_u64(shard.ncols() as u64);
    let d = shard.ncols();
    if let Some(r) = dims.iter().position(|&x| x as usize != d) {
        return Err(Error::invalid(
            "distributed landmarks",
            format!("rank {r} holds rows of {} columns, rank 0 of {d}", dims[r]),
        ));
    }
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return Err(Error::invalid("landmarks", "the point cloud is empty"));
    }
    if m == 0 {
        return Err(Error::invalid(
            "landmarks",
            "the number of landmarks must be at least 1",
        ));
    }
    let owner = |g: usize| -> usize {
        (0..counts.len())
            .find(|&r| g as u64 >= starts[r] && (g as u64) < starts[r] + counts[r])
            .expect("every global row has an owner")
    };
    let m = m.min(n as usize);
    let mut nearest = vec![f64::INFINITY; rows.len()];
    let mut indices = Vec::with_capacity(m);
    let mut points = Vec::with_capacity(m * d);
    let mut row = vec![0.0f64; d];
    let mut next = 0usize;
    loop {
        let o = owner(next);
        if o == comm.rank() {
            row.copy_from_slice(rows[next - offset]);
        }
        comm.broadcast_f64_from(o, &mut row)?;
        indices.push(next);
        points.extend_from_slice(&row);
        update_nearest(&rows, &mut nearest, &row);
        let (far, d2) = if rows.is_empty() {
            (usize::MAX, f64::NEG_INFINITY)
        } else {
            let (i, v) = farthest(&nearest);
            (offset + i, v)
        };
        let all_d2 = comm.all_gather_f64(d2);
        let all_far = comm.all_gather_u64(far as u64);
        let mut best = (u64::MAX, f64::NEG_INFINITY);
        for (&i, &v) in all_far.iter().zip(&all_d2) {
            if v > best.1 || (v == best.1 && i < best.0) {
                best = (i, v);
            }
        }
        progress(indices.len());
        if indices.len() == m || best.1 == 0.0 {
            let k = indices.len();
            return Ok(ShardedLandmarks {
                indices,
                points: Array2::from_shape_vec((k, d), points).expect("k × d values"),
                covering_radius: best.1.sqrt(),
            });
        }
        next = best.0 as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::landmarks::{select, LandmarkMethod};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn shards_cover_the_rows_once() {
        for n in [0usize, 1, 5, 7, 100] {
            for size in 1..6 {
                let mut next = 0;
                for r in 0..size {
                    let s = shard_range(n, r, size);
                    assert_eq!(s.start, next);
                    assert!(s.len() <= n / size + 1);
                    next = s.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    /// One rank: the same landmarks and radius as the serial selection
    /// (several ranks: tests/ph_collections.rs under mpirun).
    #[test]
    fn solo_equals_serial_maxmin() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for case in 0..20 {
            let n = rng.random_range(1..120);
            let x = Array2::from_shape_fn((n, 4), |_| {
                if case % 2 == 0 {
                    rng.random_range(0..3) as f64
                } else {
                    rng.random()
                }
            });
            let m = rng.random_range(1..=n);
            let want = select(x.view(), m, LandmarkMethod::MaxMin).unwrap();
            let got = maxmin(&Comm::solo(), x.view(), 0, m, &|_| {}).unwrap();
            assert_eq!(got.indices, want.indices, "case {case}");
            assert_eq!(
                got.covering_radius.to_bits(),
                want.covering_radius.to_bits()
            );
            assert_eq!(got.points, x.select(ndarray::Axis(0), &want.indices));
        }
    }
}
