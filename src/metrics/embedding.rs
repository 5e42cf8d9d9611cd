//! How a latent space keeps its data's neighbourhoods and distances, as
//! Topological Autoencoders (Moor et al. 2020) measure it.
//!
//! Ranks: r_X(i, j) is the position of j among the points sorted by their
//! distance to i in the data space X (a stable sort: ties keep the index
//! order; i itself has rank 0, its nearest other point rank 1), r_Z(i, j)
//! the same in the latent space Z; N_k^X(i) and N_k^Z(i) are the points of
//! ranks 1..=k.

use ndarray::{Array2, ArrayView2};

use super::{distances, finite};
use crate::error::{Error, Result};

/// The neighbourhood measures averaged over a grid of k, as Topological
/// Autoencoders report them (k = 10, 20, …, 200).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Averaged {
    pub trustworthiness: f64,
    pub continuity: f64,
    pub mrre_zx: f64,
    pub mrre_xz: f64,
}

/// The distances and ranks of a data set and its embedding (rows matched),
/// computed once for every measure and every k.
pub struct Embedding {
    dx: Array2<f64>,
    dz: Array2<f64>,
    /// r_X and r_Z (n × n).
    rx: Array2<u32>,
    rz: Array2<u32>,
    /// The points of each row by rank in X and in Z (n × n; column 0 is the
    /// point itself where distances are distinct from 0).
    by_x: Array2<u32>,
    by_z: Array2<u32>,
}

/// For each row of `d`: the points in order of distance (stable) and each
/// point's rank.
fn order_and_ranks(d: &Array2<f64>) -> (Array2<u32>, Array2<u32>) {
    let n = d.nrows();
    let mut order = Array2::<u32>::zeros((n, n));
    let mut ranks = Array2::<u32>::zeros((n, n));
    {
        use rayon::prelude::*;
        let rows: Vec<(Vec<u32>, Vec<u32>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let row = d.row(i);
                let mut idx: Vec<u32> = (0..n as u32).collect();
                // Stable: equal distances keep the index order.
                idx.sort_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]));
                let mut r = vec![0u32; n];
                for (pos, &j) in idx.iter().enumerate() {
                    r[j as usize] = pos as u32;
                }
                (idx, r)
            })
            .collect();
        for (i, (idx, r)) in rows.into_iter().enumerate() {
            order.row_mut(i).assign(&ndarray::Array1::from(idx));
            ranks.row_mut(i).assign(&ndarray::Array1::from(r));
        }
    }
    (order, ranks)
}

impl Embedding {
    /// `x` (n × D) and its embedding `z` (n × d), the same n rows. The
    /// memory (two distance and four rank matrices) is checked first.
    pub fn new(x: ArrayView2<f64>, z: ArrayView2<f64>) -> Result<Embedding> {
        let n = x.nrows();
        if z.nrows() != n {
            return Err(Error::invalid(
                "embedding",
                format!(
                    "{n} data rows but {} latent rows; they must be matched",
                    z.nrows()
                ),
            ));
        }
        if n < 4 {
            return Err(Error::invalid(
                "embedding",
                format!("{n} points are too few for neighbourhood measures (at least 4)"),
            ));
        }
        finite(x, "data")?;
        finite(z, "latent codes")?;
        crate::guard::need(
            &format!("the distances and ranks of {n} points in two spaces"),
            crate::guard::Size::array(&[n as u64, n as u64, 2 * 8 + 4 * 4], 1),
            "the number of evaluated points",
        )?;
        let key = "the number of evaluated points";
        let dx = distances(x, x, key)?;
        let dz = distances(z, z, key)?;
        let (by_x, rx) = order_and_ranks(&dx);
        let (by_z, rz) = order_and_ranks(&dz);
        Ok(Embedding {
            dx,
            dz,
            rx,
            rz,
            by_x,
            by_z,
        })
    }

    fn n(&self) -> usize {
        self.dx.nrows()
    }

    fn check_k(&self, k: usize) -> Result<()> {
        let n = self.n();
        if k == 0 || 2 * k >= n {
            return Err(Error::invalid(
                "k",
                format!(
                    "neighbourhoods of k = {k} need 1 ≤ k < n/2 = {} ({n} points)",
                    n / 2
                ),
            ));
        }
        Ok(())
    }

    /// The k nearest other points of i in the space of `order` (the point
    /// itself is skipped wherever it sorts).
    fn neighbours(order: &Array2<u32>, i: usize, k: usize) -> impl Iterator<Item = usize> + '_ {
        order
            .row(i)
            .into_iter()
            .map(|&j| j as usize)
            .filter(move |&j| j != i)
            .take(k)
    }

    /// Trustworthiness (Venna & Kaski): 1 − 2/(n·k·(2n − 3k − 1)) ·
    /// Σ_i Σ_{j ∈ N_k^Z(i) \ N_k^X(i)} (r̃_X(i, j) − k), r̃_X the rank in X
    /// among the other points (as scikit-learn's `trustworthiness`, which
    /// leaves the point itself out of its ranks).
    pub fn trustworthiness(&self, k: usize) -> Result<f64> {
        self.check_k(k)?;
        Ok(Self::trust(&self.by_z, &self.rx, k, self.n()))
    }

    /// Continuity: trustworthiness with the two spaces swapped.
    pub fn continuity(&self, k: usize) -> Result<f64> {
        self.check_k(k)?;
        Ok(Self::trust(&self.by_x, &self.rz, k, self.n()))
    }

    /// Neighbours in the space of `near_order`, ranks in the other one.
    fn trust(near_order: &Array2<u32>, far_ranks: &Array2<u32>, k: usize, n: usize) -> f64 {
        let mut sum = 0u64;
        for i in 0..n {
            // The rank among the other points: positions after removing i.
            let own = far_ranks[[i, i]];
            for j in Self::neighbours(near_order, i, k) {
                let r = far_ranks[[i, j]];
                let r = if r > own { r } else { r + 1 };
                if r as usize > k {
                    sum += (r as usize - k) as u64;
                }
            }
        }
        1.0 - 2.0 / (n as f64 * k as f64 * (2.0 * n as f64 - 3.0 * k as f64 - 1.0)) * sum as f64
    }

    /// The mean relative rank errors (Lee & Verleysen 2009) at k:
    /// (MRRE_ZX, MRRE_XZ) =
    /// (Σ_i Σ_{j ∈ N_k^Z(i)} |r_X − r_Z| / r_Z, Σ_i Σ_{j ∈ N_k^X(i)} |r_X − r_Z| / r_X) / C,
    /// C = n · Σ_{l=1..k} |2l − n − 1| / l (the normaliser of Topological
    /// Autoencoders' code), with the ranks of the module doc.
    pub fn mrre(&self, k: usize) -> Result<(f64, f64)> {
        self.check_k(k)?;
        let n = self.n();
        let c = n as f64
            * (1..=k)
                .map(|l| (2.0 * l as f64 - n as f64 - 1.0).abs() / l as f64)
                .sum::<f64>();
        let (mut zx, mut xz) = (0.0, 0.0);
        for i in 0..n {
            for j in Self::neighbours(&self.by_z, i, k) {
                let (rx, rz) = (self.rx[[i, j]] as f64, self.rz[[i, j]] as f64);
                zx += (rx - rz).abs() / rz;
            }
            for j in Self::neighbours(&self.by_x, i, k) {
                let (rx, rz) = (self.rx[[i, j]] as f64, self.rz[[i, j]] as f64);
                xz += (rx - rz).abs() / rx;
            }
        }
        Ok((zx / c, xz / c))
    }

    /// [`Averaged`] over `ks` (each 1 ≤ k < n/2).
    pub fn averaged(&self, ks: &[usize]) -> Result<Averaged> {
        if ks.is_empty() {
            return Err(Error::invalid("k", "no k to average over"));
        }
        let mut a = Averaged {
            trustworthiness: 0.0,
            continuity: 0.0,
            mrre_zx: 0.0,
            mrre_xz: 0.0,
        };
        for &k in ks {
            let (zx, xz) = self.mrre(k)?;
            a.trustworthiness += self.trustworthiness(k)?;
            a.continuity += self.continuity(k)?;
            a.mrre_zx += zx;
            a.mrre_xz += xz;
        }
        let m = ks.len() as f64;
        Ok(Averaged {
            trustworthiness: a.trustworthiness / m,
            continuity: a.continuity / m,
            mrre_zx: a.mrre_zx / m,
            mrre_xz: a.mrre_xz / m,
        })
    }

    /// ℓ-RMSE: √(mean over all n² pairs of (D_X − D_Z)²), raw distances.
    pub fn rmse(&self) -> f64 {
        let n = self.n();
        let s: f64 = self
            .dx
            .iter()
            .zip(self.dz.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        (s / (n * n) as f64).sqrt()
    }

    /// Stress as Topological Autoencoders compute it:
    /// √(Σ_{i<j} (D_X − D_Z)² / Σ_{i<j} D_Z²), raw distances.
    pub fn stress(&self) -> f64 {
        let n = self.n();
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (self.dx[[i, j]], self.dz[[i, j]]);
                num += (a - b) * (a - b);
                den += b * b;
            }
        }
        (num / den).sqrt()
    }
}
