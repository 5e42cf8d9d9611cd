//! The differentiable topological loss between a data batch X and its
//! latent codes Z.
//!
//! The pairing (which simplices create and destroy each class) is computed
//! by the Rips engine of [`tglml::topology`] on detached distances; the
//! values that enter the loss are then read from the live distance tensors
//! at the critical edges, so gradients flow through the distances of each
//! pair's critical edges to the encoder. Three forms:
//!
//! - [`TopoKind::Wasserstein`]: the optimal matching between D_k(X) and
//!   D_k(Z) (found on detached values, points may go to the diagonal); the
//!   loss sums |b_Z − b_X|^p + |d_Z − d_X|^p over matched pairs plus the
//!   distance^p of unmatched points to the diagonal (p = 1: ground metric
//!   L1, diagonal distance d − b; p = 2: L2, (d − b)²/2). This is exactly
//!   W_p^p for that ground metric.
//! - [`TopoKind::Landscape`]: the squared L2 distance between the first K
//!   persistence landscapes of X and Z sampled on a common grid (spacing
//!   times the sum of squares), differentiable through the same values.
//! - [`TopoKind::Signature`]: the loss of Topological Autoencoders (Moor et
//!   al. 2020): ½‖D_X[π_X] − D_Z[π_X]‖² + ½‖D_Z[π_Z] − D_X[π_Z]‖², π the
//!   critical edges of each space's persistence pairs.
//!
//! Distances of each space can be divided by their batch maximum or mean
//! (differentiably) before comparison; each homology dimension has a
//! weight. Essential classes are left out (with the enclosing-radius
//! threshold only H0's single infinite bar is essential).

use tch::{Kind, Tensor};

use tglml::error::{Error, Result};
use tglml::topology::diagram::{wasserstein, Essential, Ground};
use tglml::topology::{h0_diagram, rips_persistence, Diagrams, DistanceMatrix, RipsOptions};

/// Which topological loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopoKind {
    /// W_p^p between the diagrams, through the optimal matching.
    Wasserstein,
    /// Squared L2 between persistence landscapes.
    Landscape,
    /// Topological Autoencoders' signature loss.
    Signature,
}

/// How each space's distances are scaled before comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// As they are.
    None,
    /// Divided by the batch's largest distance.
    Max,
    /// Divided by the batch's mean distance (off the diagonal).
    Mean,
}

/// Settings of the loss.
#[derive(Debug, Clone, PartialEq)]
pub struct TopoLossConfig {
    pub kind: TopoKind,
    /// Homology dimensions compared (0, 1, 2).
    pub dims: Vec<usize>,
    /// Weight w_k of each entry of `dims`.
    pub weights: Vec<f64>,
    /// Order p of the Wasserstein form: 1 or 2.
    pub p: u32,
    pub normalize: Normalize,
    /// Landscape form: levels K and grid points.
    pub landscape_levels: usize,
    pub landscape_resolution: usize,
}

impl Default for TopoLossConfig {
    fn default() -> Self {
        TopoLossConfig {
            kind: TopoKind::Wasserstein,
            dims: vec![0, 1],
            weights: vec![1.0, 1.0],
            p: 2,
            normalize: Normalize::None,
            landscape_levels: 3,
            landscape_resolution: 64,
        }
    }
}

impl TopoLossConfig {
    /// The highest homology dimension compared (0 when none is).
    pub fn maxdim(&self) -> usize {
        self.dims.iter().copied().max().unwrap_or(0)
    }
}

/// The loss and its parts.
pub struct TopoLoss {
    /// Σ_k w_k · L_k (a scalar tensor, differentiable w.r.t. Z).
    pub total: Tensor,
    /// L_k per entry of `dims` (detached values).
    pub per_dim: Vec<f64>,
}

/// γ(t) = γ_max · min(1, t / t_ramp) (γ_max from step 0 when t_ramp = 0).
pub fn gamma(step: u64, gamma_max: f64, ramp_steps: u64) -> f64 {
    if ramp_steps == 0 {
        gamma_max
    } else {
        gamma_max * (step as f64 / ramp_steps as f64).min(1.0)
    }
}

/// Pairwise Euclidean distances of the rows of `x` (n × d), differentiable.
/// Through the Gram matrix (‖a‖² + ‖b‖² − 2a·b, one matrix product; the
/// n × n × d differences are never formed), clamped away from 0 so that
/// the square root has no infinite gradient on the diagonal.
pub fn pairwise_distances(x: &Tensor) -> Tensor {
    let sq = x
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, x.kind());
    let gram = x.matmul(&x.transpose(0, 1));
    (&sq + sq.transpose(0, 1) - gram * 2.0)
        .clamp_min(1e-24)
        .sqrt()
}

fn normalized(d: &Tensor, how: Normalize) -> Tensor {
    match how {
        Normalize::None => d.shallow_clone(),
        Normalize::Max => d / d.max(),
        Normalize::Mean => {
            let n = d.size()[0];
            let off = n * (n - 1);
            if off == 0 {
                d.shallow_clone()
            } else {
                // The diagonal holds 1e-12 from the clamp: remove it.
                let s = d.sum(d.kind()) - d.diagonal(0, 0, 1).sum(d.kind());
                d / (s / off as f64)
            }
        }
    }
}

/// One space's live distances: the values at given edges that enter the
/// loss, differentiable for the latent space. (Its diagrams and farthest
/// pair are its [`Shape`], computed apart.)
///
/// The latent codes' live distances are computed at the edges the loss
/// reads (critical edges, and the farthest pair for `normalize = "max"`),
/// not as an n × n matrix: the backward pass then costs O(edges · d)
/// instead of O(n² · d) (at 256 codes, a few hundred edges instead of
/// 65,536 entries). `normalize = "mean"` needs every distance, and keeps
/// the live matrix.
struct Space {
    live: Live,
}

enum Live {
    /// The live normalised matrix (n × n).
    Matrix(Tensor),
    /// ‖z_a − z_b‖ / scale, from the codes.
    Points { z: Tensor, scale: Tensor },
}

impl Space {
    /// The data batch: no gradient, and the values at edges computed as
    /// the latent space's are (so that identical sets cost exactly 0).
    fn data(x: &Tensor, shape: &Shape, how: Normalize) -> Self {
        Self::latent(&x.detach(), shape, how, None)
    }

    /// The latent codes, divided by `latent_scale` after normalisation.
    fn latent(z: &Tensor, shape: &Shape, how: Normalize, latent_scale: Option<&Tensor>) -> Self {
        if how == Normalize::Mean {
            let d = normalized(&pairwise_distances(z), how);
            let d = match latent_scale {
                Some(s) => d / s,
                None => d,
            };
            return Space {
                live: Live::Matrix(d),
            };
        }
        let one = Tensor::ones([], (z.kind(), z.device()));
        // The normaliser, live: the distance of the farthest pair.
        let scale = match how {
            Normalize::Max => Self::norms(z, &[shape.far], &one).reshape([] as [i64; 0]),
            _ => one,
        };
        let scale = match latent_scale {
            Some(s) => scale * s,
            None => scale,
        };
        Space {
            live: Live::Points {
                z: z.shallow_clone(),
                scale,
            },
        }
    }

    /// ‖z_a − z_b‖ / scale for each pair (a, b), differentiable; clamped
    /// away from 0 as [`pairwise_distances`] is.
    fn norms(z: &Tensor, pairs: &[[usize; 2]], scale: &Tensor) -> Tensor {
        let dev = z.device();
        let side = |k: usize| {
            let i: Vec<i64> = pairs.iter().map(|p| p[k] as i64).collect();
            z.index_select(0, &Tensor::from_slice(&i).to_device(dev))
        };
        (side(0) - side(1))
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, z.kind())
            .clamp_min(1e-24)
            .sqrt()
            / scale
    }

    /// The distances of `pairs`, live where this space has gradients.
    fn at(&self, pairs: &[[usize; 2]]) -> Tensor {
        let from = |m: &Tensor| {
            let n = m.size()[0];
            let idx: Vec<i64> = pairs
                .iter()
                .map(|p| p[0] as i64 * n + p[1] as i64)
                .collect();
            m.view([-1])
                .index_select(0, &Tensor::from_slice(&idx).to_device(m.device()))
        };
        match &self.live {
            Live::Matrix(m) => from(m),
            Live::Points { z, scale } => Self::norms(z, pairs, scale),
        }
    }

    fn tensor(&self) -> &Tensor {
        match &self.live {
            Live::Matrix(m) => m,
            Live::Points { z, .. } => z,
        }
    }

    fn kind(&self) -> Kind {
        self.tensor().kind()
    }

    fn device(&self) -> tch::Device {
        self.tensor().device()
    }
}

/// What the loss needs of one point set besides its live distances: its
/// diagrams up to the highest dimension compared (their critical edges
/// are the pairing) and its farthest pair (the normaliser of `normalize =
/// "max"`). Computed by [`tglml::topology`] from the points' distances,
/// with no libtorch, so on any thread: the trainer computes the next data
/// batch's shape on a second thread while the current step trains.
///
/// The distances are the raw ones: a positive scale (the normalisation, a
/// latent scale) leaves the pairing as it is, and the loss reads its
/// values again, live, at the critical edges.
pub struct Shape {
    diagrams: Diagrams,
    far: [usize; 2],
}

impl Shape {
    /// The shape of the rows of `points` (n × d, finite), with diagrams up
    /// to dimension `maxdim`: H0 alone by Prim's tree, higher dimensions
    /// by the Rips engine at its default threshold (the enclosing radius,
    /// which cuts no edge of H0's tree).
    pub fn of(points: ndarray::ArrayView2<'_, f64>, maxdim: usize) -> Result<Shape> {
        let n = points.nrows();
        let dist = DistanceMatrix::from_points(points)?;
        // The first farthest pair in the order of the lower triangle.
        let mut far = ([0, 0], f32::NEG_INFINITY);
        for i in 1..n {
            for j in 0..i {
                let v = dist.get(i, j);
                if v > far.1 {
                    far = ([i, j], v);
                }
            }
        }
        let far = far.0;
        let diagrams = if maxdim == 0 {
            h0_diagram(n, |u, v| dist.get(u, v))
        } else {
            rips_persistence(
                &dist,
                &RipsOptions {
                    maxdim,
                    ..RipsOptions::default()
                },
            )?
        };
        Ok(Shape { diagrams, far })
    }

    /// The shape of the rows of a tensor (n × d), as it holds them.
    pub fn of_tensor(x: &Tensor, maxdim: usize) -> Result<Shape> {
        let size = x.size();
        if size.len() != 2 {
            return Err(Error::invalid(
                "topological loss",
                format!("a point set is an n × d tensor, got the shape {size:?}"),
            ));
        }
        let (n, d) = (size[0] as usize, size[1] as usize);
        let points = ndarray::Array2::from_shape_vec((n, d), to_vec(x))
            .map_err(|e| Error::external("topological loss", e))?;
        Shape::of(points.view(), maxdim)
    }
}

/// The finite bars of dimension k as critical edges: (birth edge, death
/// edge), H0 births having none.
fn finite_edges(dg: &Diagrams, k: usize) -> Vec<(Option<[usize; 2]>, [usize; 2])> {
    dg.dims
        .get(k)
        .map(|bars| {
            bars.iter()
                .filter_map(|b| b.death_edge.map(|d| (b.birth_edge, d)))
                .collect()
        })
        .unwrap_or_default()
}

/// Births and deaths of `edges`, read from the space `d` (differentiable
/// where it is; H0 births are 0).
fn bar_values(d: &Space, edges: &[(Option<[usize; 2]>, [usize; 2])]) -> (Tensor, Tensor) {
    let dev = d.device();
    let deaths_at: Vec<[usize; 2]> = edges.iter().map(|e| e.1).collect();
    let deaths = d.at(&deaths_at);
    let has_birth: Vec<f64> = edges
        .iter()
        .map(|e| if e.0.is_some() { 1.0 } else { 0.0 })
        .collect();
    let births_at: Vec<[usize; 2]> = edges.iter().map(|e| e.0.unwrap_or([0, 0])).collect();
    let births = d.at(&births_at)
        * Tensor::from_slice(&has_birth)
            .to_kind(d.kind())
            .to_device(dev);
    (births, deaths)
}

/// The values of a tensor of any shape, flattened, as f64.
pub(crate) fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        t.detach()
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .expect("a 1-D float64 CPU tensor converts to Vec<f64>")
}

/// The topological loss between X (n × D, data; no gradient needed) and Z
/// (n × d, latent codes), both on the same device and of the same float
/// kind.
///
/// `latent_scale`, when given, is a positive scalar tensor that divides the
/// latent distances after their normalisation (a learned unit of Z).
pub fn topo_loss(
    x: &Tensor,
    z: &Tensor,
    cfg: &TopoLossConfig,
    latent_scale: Option<&Tensor>,
) -> Result<TopoLoss> {
    let data = Shape::of_tensor(x, cfg.maxdim())?;
    topo_loss_with(x, &data, z, cfg, latent_scale)
}

/// [`topo_loss`] with X's shape given: [`Shape::of`] X's rows as the
/// tensor `x` holds them, up to `cfg.maxdim()`.
pub fn topo_loss_with(
    x: &Tensor,
    data: &Shape,
    z: &Tensor,
    cfg: &TopoLossConfig,
    latent_scale: Option<&Tensor>,
) -> Result<TopoLoss> {
    if cfg.dims.len() != cfg.weights.len() {
        return Err(Error::invalid(
            "topological loss",
            format!(
                "{} dimensions but {} weights",
                cfg.dims.len(),
                cfg.weights.len()
            ),
        ));
    }
    let n = data.diagrams.n_points;
    if x.size()[0] as usize != n || z.size()[0] as usize != n {
        return Err(Error::invalid(
            "topological loss",
            format!(
                "X has {} rows, its shape {n} points, Z {} rows",
                x.size()[0],
                z.size()[0]
            ),
        ));
    }
    let latent = Shape::of_tensor(z, cfg.maxdim())?;
    let dx = Space::data(x, data, cfg.normalize);
    let dz = Space::latent(z, &latent, cfg.normalize, latent_scale);
    let mut total = Tensor::zeros([], (z.kind(), z.device()));
    let mut per_dim = Vec::with_capacity(cfg.dims.len());
    for (&k, &w) in cfg.dims.iter().zip(&cfg.weights) {
        let ex = finite_edges(&data.diagrams, k);
        let ez = finite_edges(&latent.diagrams, k);
        let lk = match cfg.kind {
            TopoKind::Wasserstein => wasserstein_term(&dx, &dz, &ex, &ez, cfg.p)?,
            TopoKind::Landscape => landscape_term(&dx, &dz, &ex, &ez, cfg)?,
            TopoKind::Signature => signature_term(&dx, &dz, &ex, &ez),
        };
        per_dim.push(lk.double_value(&[]));
        total += lk * w;
    }
    Ok(TopoLoss { total, per_dim })
}

type Edges = [(Option<[usize; 2]>, [usize; 2])];

fn wasserstein_term(dx: &Space, dz: &Space, ex: &Edges, ez: &Edges, p: u32) -> Result<Tensor> {
    let ground = match p {
        1 => Ground::L1,
        2 => Ground::L2,
        _ => {
            return Err(Error::invalid(
                "topological loss",
                format!("the Wasserstein form takes p = 1 or 2, got {p}"),
            ))
        }
    };
    let (_, vx, birth_x) = edge_values(dx, ex);
    let (lz, vz, birth_z) = edge_values(dz, ez);
    // Bar k's raw (birth, death): the death at position k of the values,
    // the birth after the deaths (H0: none, 0).
    let raw = |v: &[f64], at: &[Option<usize>], k: usize| (at[k].map_or(0.0, |i| v[i]), v[k]);
    // The pairing was computed on the float32 distances of the whole
    // matrix; read again at the edges, a bar of (almost) zero persistence
    // can come out with its death a rounding error before its birth. It is
    // matched as the zero-persistence bar it is.
    let bars = |v: &[f64], at: &[Option<usize>]| -> Vec<(f64, f64)> {
        (0..at.len())
            .map(|k| {
                let (b, d) = raw(v, at, k);
                (b, d.max(b))
            })
            .collect()
    };
    let m = wasserstein(
        &bars(&vx, &birth_x),
        &bars(&vz, &birth_z),
        p as f64,
        ground,
        Essential::Ignore,
    )?;
    // The loss is a sum of terms w·pw(c_d·live[i_d] + c_b·live[i_b] + c0)
    // over Z's live edge values (X's bars are constants), plus what X's
    // unmatched bars cost: one gather and one weighted sum, whatever the
    // number of bars. pw is |·| (p = 1) or (·)² (p = 2); the distance^p of
    // a point to the diagonal is d − b (L1) or (d − b)²/2 (L2).
    let pw = |x: f64| if p == 1 { x.abs() } else { x * x };
    let to_diag = if p == 1 { 1.0 } else { 0.5 };
    let mut terms = Terms::default();
    let mut constant = 0.0;
    for &(i, j) in &m.pairs {
        match (i, j) {
            (Some(i), Some(j)) => {
                let (bx, tx) = raw(&vx, &birth_x, i);
                match birth_z[j] {
                    Some(bj) => terms.push(bj, 1.0, bj, 0.0, -bx, 1.0),
                    None => constant += pw(-bx),
                }
                terms.push(j, 1.0, j, 0.0, -tx, 1.0);
            }
            (Some(i), None) => {
                let (bx, tx) = raw(&vx, &birth_x, i);
                constant += to_diag * pw(tx - bx);
            }
            (None, Some(j)) => match birth_z[j] {
                Some(bj) => terms.push(j, 1.0, bj, -1.0, 0.0, to_diag),
                None => terms.push(j, 1.0, j, 0.0, 0.0, to_diag),
            },
            (None, None) => {}
        }
    }
    let (kind, dev) = (dz.kind(), dz.device());
    let mut loss = Tensor::from(constant).to_kind(kind).to_device(dev);
    if !terms.w.is_empty() {
        let t = terms.w.len() as i64;
        let f = |v: &[f64]| Tensor::from_slice(v).to_kind(kind).to_device(dev);
        let idx = Tensor::from_slice(&[terms.at_d, terms.at_b].concat()).to_device(dev);
        let coef = f(&[terms.c_d, terms.c_b].concat()).view([2, t]);
        let x = (lz.index_select(0, &idx).view([2, t]) * coef).sum_dim_intlist(
            [0i64].as_slice(),
            false,
            kind,
        ) + f(&terms.c0);
        let x = if p == 1 { x.abs() } else { x.square() };
        loss += (x * f(&terms.w)).sum(kind);
    }
    Ok(loss)
}

/// The terms of [`wasserstein_term`]'s loss, as columns.
#[derive(Default)]
struct Terms {
    at_d: Vec<i64>,
    c_d: Vec<f64>,
    at_b: Vec<i64>,
    c_b: Vec<f64>,
    c0: Vec<f64>,
    w: Vec<f64>,
}

impl Terms {
    fn push(&mut self, at_d: usize, c_d: f64, at_b: usize, c_b: f64, c0: f64, w: f64) {
        self.at_d.push(at_d as i64);
        self.c_d.push(c_d);
        self.at_b.push(at_b as i64);
        self.c_b.push(c_b);
        self.c0.push(c0);
        self.w.push(w);
    }
}

/// The values of the critical edges of `edges` in the space `d`, read in
/// one call: the death edges first (position k for bar k), then the birth
/// edges that exist. Returns them live (differentiable where the space
/// is), as f64 values, and each bar's position of its birth (`None` for
/// H0's births at 0).
fn edge_values(d: &Space, edges: &Edges) -> (Tensor, Vec<f64>, Vec<Option<usize>>) {
    let mut pairs: Vec<[usize; 2]> = edges.iter().map(|e| e.1).collect();
    let births: Vec<Option<usize>> = edges
        .iter()
        .map(|e| {
            e.0.map(|b| {
                pairs.push(b);
                pairs.len() - 1
            })
        })
        .collect();
    if pairs.is_empty() {
        return (
            Tensor::zeros([0], (d.kind(), d.device())),
            Vec::new(),
            births,
        );
    }
    let live = d.at(&pairs);
    let values = to_vec(&live);
    (live, values, births)
}

/// The first K landscapes of the bars (births b, deaths d) on `grid`:
/// (K × T), λ_k(t) = k-th largest of max(0, min(t − b_i, d_i − t)).
fn landscapes(b: &Tensor, d: &Tensor, grid: &Tensor, k: usize) -> Tensor {
    let t = grid.unsqueeze(0);
    let tents = (t.shallow_clone() - b.unsqueeze(1))
        .minimum(&(d.unsqueeze(1) - t))
        .clamp_min(0.0);
    let bars = tents.size()[0];
    let tents = if (bars as usize) < k {
        let pad = Tensor::zeros(
            [k as i64 - bars, grid.size()[0]],
            (grid.kind(), grid.device()),
        );
        Tensor::cat(&[tents, pad], 0)
    } else {
        tents
    };
    tents.topk(k as i64, 0, true, true).0
}

fn landscape_term(
    dx: &Space,
    dz: &Space,
    ex: &Edges,
    ez: &Edges,
    cfg: &TopoLossConfig,
) -> Result<Tensor> {
    if cfg.landscape_levels == 0 || cfg.landscape_resolution < 2 {
        return Err(Error::invalid(
            "topological loss",
            "landscapes need at least 1 level and 2 grid points",
        ));
    }
    let (bx, tx) = bar_values(dx, ex);
    let (bz, tz) = bar_values(dz, ez);
    let all = Tensor::cat(&[&bx, &tx, &bz, &tz], 0);
    if all.size()[0] == 0 {
        return Ok(Tensor::zeros([], (dz.kind(), dz.device())));
    }
    // The grid spans every birth and death of both diagrams; its ends are
    // themselves bar values, so the grid moves with them (differentiably).
    let (lo, hi) = (all.min(), all.max());
    let r = cfg.landscape_resolution;
    let unit = Tensor::linspace(0.0, 1.0, r as i64, (dz.kind(), dz.device()));
    let grid = &lo + (&hi - &lo) * unit;
    let step = (&hi - &lo) / (r - 1) as f64;
    let lx = landscapes(&bx, &tx, &grid, cfg.landscape_levels);
    let lz = landscapes(&bz, &tz, &grid, cfg.landscape_levels);
    Ok((lz - lx).square().sum(dz.kind()) * step)
}

fn signature_term(dx: &Space, dz: &Space, ex: &Edges, ez: &Edges) -> Tensor {
    let pairs = |edges: &Edges| -> Vec<[usize; 2]> {
        let mut v = Vec::new();
        for (b, d) in edges {
            v.extend(*b);
            v.push(*d);
        }
        v
    };
    let term = |p: &[[usize; 2]]| {
        if p.is_empty() {
            Tensor::zeros([], (dz.kind(), dz.device()))
        } else {
            (dx.at(p) - dz.at(p)).square().sum(dz.kind()) * 0.5
        }
    };
    term(&pairs(ex)) + term(&pairs(ez))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn cloud(rng: &mut ChaCha8Rng, n: usize, d: usize) -> Tensor {
        let v: Vec<f64> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_slice(&v).view([n as i64, d as i64])
    }

    fn configs() -> Vec<(&'static str, TopoLossConfig)> {
        let base = TopoLossConfig::default();
        vec![
            ("wasserstein p2", base.clone()),
            (
                "wasserstein p1 max-normalised",
                TopoLossConfig {
                    p: 1,
                    normalize: Normalize::Max,
                    ..base.clone()
                },
            ),
            (
                "landscape mean-normalised",
                TopoLossConfig {
                    kind: TopoKind::Landscape,
                    normalize: Normalize::Mean,
                    ..base.clone()
                },
            ),
            (
                "signature",
                TopoLossConfig {
                    kind: TopoKind::Signature,
                    ..base.clone()
                },
            ),
        ]
    }

    /// Autograd against central finite differences (float64; the pairing
    /// is locally constant for points in general position), for the codes
    /// and, when given, a latent scale.
    #[test]
    fn gradients_agree_with_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = cloud(&mut rng, 14, 4);
        let z0 = cloud(&mut rng, 14, 2);
        for (name, cfg) in configs() {
            for scale in [None, Some(1.7)] {
                let z = z0.copy().set_requires_grad(true);
                let s = scale.map(|v| Tensor::from_slice(&[v]).set_requires_grad(true));
                topo_loss(&x, &z, &cfg, s.as_ref())
                    .unwrap()
                    .total
                    .backward();
                // The codes' values, then the scale's.
                let mut g = to_vec(&z.grad());
                let mut base = to_vec(&z0);
                if let (Some(s), Some(v)) = (&s, scale) {
                    g.push(to_vec(&s.grad())[0]);
                    base.push(v);
                }
                let value = |v: &[f64]| {
                    let zt = Tensor::from_slice(&v[..28]).view([14, 2]);
                    let st = scale.map(|_| Tensor::from_slice(&v[28..]));
                    topo_loss(&x, &zt, &cfg, st.as_ref())
                        .unwrap()
                        .total
                        .double_value(&[])
                };
                let eps = 1e-6;
                let mut worst = 0.0f64;
                for i in 0..base.len() {
                    let f = |delta: f64| {
                        let mut v = base.clone();
                        v[i] += delta;
                        value(&v)
                    };
                    let fd = (f(eps) - f(-eps)) / (2.0 * eps);
                    worst = worst.max((fd - g[i]).abs() / fd.abs().max(1.0));
                }
                assert!(
                    worst < 1e-6,
                    "{name}, scale {scale:?}: worst relative gradient error {worst}"
                );
                assert!(g.iter().any(|&v| v != 0.0), "{name}: some gradient");
                if scale.is_some() {
                    assert!(g[28] != 0.0, "{name}: the scale has a gradient");
                }
            }
        }
    }

    /// Codes scaled by 4 with the latent scale 4 give the unscaled loss
    /// (with "max" or "mean" normalisation the codes' scale cancels by
    /// itself, so the latent scale 4 then divides the distances by 4).
    #[test]
    fn a_latent_scale_undoes_a_scaling_of_the_codes() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let x = cloud(&mut rng, 14, 4);
        let z = cloud(&mut rng, 14, 2);
        let loss = |z: &Tensor, cfg: &TopoLossConfig, s: f64| {
            let st = Tensor::from_slice(&[s]);
            topo_loss(&x, z, cfg, Some(&st))
                .unwrap()
                .total
                .double_value(&[])
        };
        for (name, cfg) in configs() {
            let want = topo_loss(&x, &z, &cfg, None)
                .unwrap()
                .total
                .double_value(&[]);
            let (undone, moved) = (loss(&(&z * 4.0), &cfg, 4.0), loss(&z, &cfg, 4.0));
            if cfg.normalize == Normalize::None {
                assert!(
                    (undone - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{name}"
                );
            } else {
                assert!(
                    (undone - moved).abs() <= 1e-12 * moved.abs().max(1.0),
                    "{name}"
                );
            }
            assert!(
                (moved - want).abs() > 1e-6 * want.abs(),
                "{name}: the scale matters"
            );
        }
    }

    #[test]
    fn identical_point_sets_cost_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = cloud(&mut rng, 20, 3);
        for (name, cfg) in configs() {
            let l = topo_loss(&x, &x.copy(), &cfg, None).unwrap();
            assert_eq!(l.total.double_value(&[]), 0.0, "{name}");
            assert!(l.per_dim.iter().all(|&v| v == 0.0), "{name}");
        }
    }

    /// The Wasserstein form equals W_p^p of the diagrams (for p = 2 and
    /// the L2 ground metric), computed independently from the engine's
    /// bars.
    #[test]
    fn wasserstein_form_is_the_distance() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = cloud(&mut rng, 16, 3);
        let z = cloud(&mut rng, 16, 2);
        let cfg = TopoLossConfig {
            dims: vec![1],
            weights: vec![1.0],
            ..Default::default()
        };
        let got = topo_loss(&x, &z, &cfg, None)
            .unwrap()
            .total
            .double_value(&[]);
        let bars = |t: &Tensor| -> Vec<(f64, f64)> {
            // The engine on the Gram distances of libtorch (float64), not
            // on the loss's own distances of the points.
            let n = t.size()[0] as usize;
            let v = to_vec(&pairwise_distances(t));
            let m = ndarray::ArrayView2::from_shape((n, n), &v).unwrap();
            let dist = DistanceMatrix::from_square(m).unwrap();
            let options = RipsOptions {
                maxdim: 1,
                ..RipsOptions::default()
            };
            let dg = rips_persistence(&dist, &options).unwrap();
            finite_edges(&dg, 1)
                .iter()
                .map(|(b, d)| {
                    let b = b.unwrap();
                    (v[b[0] * n + b[1]], v[d[0] * n + d[1]])
                })
                .collect()
        };
        let want = wasserstein(&bars(&x), &bars(&z), 2.0, Ground::L2, Essential::Ignore)
            .unwrap()
            .value
            .powi(2);
        assert!(
            (got - want).abs() <= 1e-12 * want.max(1.0),
            "{got} vs {want}"
        );
    }

    /// Gradient descent on Z alone (a Gaussian blob) towards the topology
    /// of a circle lowers the loss and creates a prominent loop.
    #[test]
    fn descent_pulls_a_blob_towards_a_circle() {
        let n = 40;
        let circle: Vec<f64> = (0..n)
            .flat_map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                [a.cos(), a.sin()]
            })
            .collect();
        let x = Tensor::from_slice(&circle).view([n as i64, 2]);
        // Z starts as a weak, noisy loop of radius 0.6 (noise ±0.2): its H1
        // bar is matched to the circle's and grows. (A loop much smaller
        // than the circle's is not matched: sending both bars to the
        // diagonal is cheaper, and the H1 term then has no gradient; the
        // H0 term still spreads a blob out.)
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let start: Vec<f64> = (0..n)
            .flat_map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                let r = 0.6 + rng.random_range(-0.2..0.2);
                [r * a.cos(), r * a.sin()]
            })
            .collect();
        let mut z = Tensor::from_slice(&start)
            .view([n as i64, 2])
            .set_requires_grad(true);
        let cfg = TopoLossConfig::default();
        let first = topo_loss(&x, &z, &cfg, None).unwrap().per_dim[1];
        for _ in 0..300 {
            let ll = topo_loss(&x, &z, &cfg, None).unwrap();
            let l = ll.total;
            l.backward();
            tch::no_grad(|| {
                let g = z.grad();
                let _ = z.f_sub_(&(g * 0.05)).unwrap();
            });
            let _ = z.grad().zero_();
        }
        let last = topo_loss(&x, &z, &cfg, None).unwrap().per_dim[1];
        assert!(last < 0.2 * first, "H1 loss {first} -> {last}");
    }

    #[test]
    fn gamma_ramps_up() {
        assert_eq!(gamma(0, 2.0, 100), 0.0);
        assert_eq!(gamma(50, 2.0, 100), 1.0);
        assert_eq!(gamma(500, 2.0, 100), 2.0);
        assert_eq!(gamma(0, 2.0, 0), 2.0);
    }
}
