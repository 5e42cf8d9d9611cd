//! Synthetic datasets with known topology.
//!
//! Points are generated in blocks of [`BLOCK`] points; block `b` draws from
//! its own ChaCha8 stream (`seed`, stream `b + 1`), and global structure (the
//! shifts of the SPHERES set) from stream 0. Any split of the blocks over
//! ranks or threads therefore yields the same points, bit for bit: the file
//! is the same for every rank count.
//!
//! Every point also receives Gaussian noise draws (scaled by `noise`, which
//! may be 0), so the same seed gives the same clean points at every noise
//! level: robustness studies compare like with like.

use std::f64::consts::PI;
use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::config::{SynthConfig, SynthKind};

/// Points per generation block (the unit of work split over ranks).
pub const BLOCK: usize = 1024;

/// A generated dataset (or one rank's share of it), row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Points {
    /// Coordinates, `n × dim`, row-major.
    pub x: Vec<f64>,
    /// Discrete labels (`circles`: circle index; `spheres`: sphere index,
    /// `count` for the enclosing sphere); empty for kinds without labels.
    pub y: Vec<i64>,
    /// Intrinsic coordinates, `n × n_params`, row-major (`circles`: angle;
    /// `torus`: θ, φ; `swiss-roll`: t, height); empty where none.
    pub params: Vec<f64>,
}

/// What a configuration generates: sizes and global structure.
#[derive(Debug, Clone)]
pub struct Plan {
    cfg: SynthConfig,
    n: usize,
    dim: usize,
    /// `spheres`: the centre of every sphere, `(count + 1) × dim` row-major,
    /// the enclosing sphere's (the origin) last.
    centers: Vec<f64>,
}

impl Plan {
    /// Plans the dataset of `cfg` (validated by `config::load`).
    /// Refuses a configuration whose dataset would not fit in the memory
    /// budget ([`crate::guard`]): rank 0 holds the whole matrix twice
    /// while it gathers and writes it, beside its own block. Call before
    /// [`Plan::new`], which allocates the centres of "spheres".
    pub fn check_size(cfg: &SynthConfig) -> crate::error::Result<()> {
        use crate::guard::{need, Size};
        let (n, dim, key) = match cfg.kind {
            SynthKind::Circles | SynthKind::Torus | SynthKind::SwissRoll => {
                (Some(cfg.n as u64), Some(3), "synth.n (--n)")
            }
            SynthKind::Sphere => (
                Some(cfg.n as u64),
                (cfg.sphere.dim as u64).checked_add(1),
                "synth.n (--n) or synth.sphere.dim",
            ),
            SynthKind::Spheres => {
                let s = &cfg.spheres;
                (
                    (s.count as u64)
                        .checked_mul(s.points_per_sphere as u64)
                        .and_then(|k| k.checked_add(s.outer_points as u64)),
                    (s.dim as u64).checked_add(1),
                    "synth.spheres.dim, .count, .points_per_sphere or .outer_points",
                )
            }
        };
        let size = match (n, dim) {
            (Some(n), Some(d)) => {
                // Coordinates, up to two intrinsic parameters and a label
                // per point, three times (block, gathered, written array);
                // the centres of "spheres".
                let centres = Size::array(&[cfg.spheres.count as u64 + 1, d], 8);
                let points = Size::array(&[n, d.saturating_add(3)], 8).times(3);
                if cfg.kind == SynthKind::Spheres {
                    points.plus(centres)
                } else {
                    points
                }
            }
            _ => Size::array(&[u64::MAX, 2], 1),
        };
        need(
            &format!(
                "the {} dataset ({} points in {} dimensions)",
                cfg.kind.name(),
                n.map_or("over 2^64".into(), |n| n.to_string()),
                dim.map_or("over 2^64".into(), |d| d.to_string())
            ),
            size,
            key,
        )
    }

    /// The plan of `cfg` (check its size first with [`Plan::check_size`]).
    pub fn new(cfg: &SynthConfig) -> Plan {
        let (n, dim) = match cfg.kind {
            SynthKind::Circles => (cfg.n, 2),
            SynthKind::Torus | SynthKind::SwissRoll => (cfg.n, 3),
            SynthKind::Sphere => (cfg.n, cfg.sphere.dim + 1),
            SynthKind::Spheres => {
                let s = &cfg.spheres;
                (s.count * s.points_per_sphere + s.outer_points, s.dim + 1)
            }
        };
        let mut centers = Vec::new();
        if cfg.kind == SynthKind::Spheres {
            let s = &cfg.spheres;
            let std = s.shift_scale / (s.dim as f64).sqrt();
            let mut rng = stream(cfg.seed, 0);
            centers = (0..s.count * dim)
                .map(|_| std * rng.sample::<f64, _>(StandardNormal))
                .collect();
            centers.extend(std::iter::repeat_n(0.0, dim));
        }
        Plan {
            cfg: cfg.clone(),
            n,
            dim,
            centers,
        }
    }

    /// Number of points.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Ambient dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Names of the intrinsic coordinates written to `/params`.
    pub fn param_names(&self) -> &'static [&'static str] {
        match self.cfg.kind {
            SynthKind::Circles => &["angle"],
            SynthKind::Torus => &["theta", "phi"],
            SynthKind::SwissRoll => &["t", "height"],
            SynthKind::Sphere | SynthKind::Spheres => &[],
        }
    }

    /// Whether the kind has discrete labels (`/y`).
    pub fn has_labels(&self) -> bool {
        matches!(self.cfg.kind, SynthKind::Circles | SynthKind::Spheres)
    }

    /// `spheres`: sphere centres, `(count + 1) × dim` row-major.
    pub fn centers(&self) -> &[f64] {
        &self.centers
    }

    /// Number of blocks.
    pub fn n_blocks(&self) -> usize {
        self.n.div_ceil(BLOCK)
    }

    /// The blocks rank `rank` of `size` generates: a contiguous range.
    pub fn blocks_of_rank(&self, rank: usize, size: usize) -> Range<usize> {
        let nb = self.n_blocks();
        (rank * nb / size)..((rank + 1) * nb / size)
    }

    /// Generates the points of `blocks`, in order, with rayon; `tick` is
    /// called with the number of points of each finished block.
    pub fn generate(&self, blocks: Range<usize>, tick: &(dyn Fn(usize) + Sync)) -> Points {
        let parts: Vec<Points> = blocks
            .into_par_iter()
            .map(|b| {
                let p = self.block(b);
                tick(p.x.len() / self.dim);
                p
            })
            .collect();
        let mut all = Points::default();
        for p in parts {
            all.x.extend(p.x);
            all.y.extend(p.y);
            all.params.extend(p.params);
        }
        all
    }

    /// Generates the whole dataset.
    pub fn generate_all(&self) -> Points {
        self.generate(0..self.n_blocks(), &|_| {})
    }

    fn block(&self, b: usize) -> Points {
        let start = b * BLOCK;
        let end = (start + BLOCK).min(self.n);
        let mut rng = stream(self.cfg.seed, b as u64 + 1);
        let count = end - start;
        let mut out = Points {
            x: Vec::with_capacity(count * self.dim),
            y: Vec::with_capacity(if self.has_labels() { count } else { 0 }),
            params: Vec::with_capacity(count * self.param_names().len()),
        };
        for i in start..end {
            let first = out.x.len();
            self.point(i, &mut rng, &mut out);
            for v in &mut out.x[first..] {
                *v += self.cfg.noise * rng.sample::<f64, _>(StandardNormal);
            }
        }
        out
    }

    /// Appends point `i` (clean) to `out`.
    fn point(&self, i: usize, rng: &mut ChaCha8Rng, out: &mut Points) {
        let c = &self.cfg;
        match c.kind {
            SynthKind::Circles => {
                let p = &c.circles;
                let k = i * p.count / self.n;
                let angle = 2.0 * PI * rng.random::<f64>();
                out.x.push(k as f64 * p.spacing + p.radius * angle.cos());
                out.x.push(p.radius * angle.sin());
                out.y.push(k as i64);
                out.params.push(angle);
            }
            SynthKind::Torus => {
                // Uniform by area: accept φ with probability (R + r cos φ)/(R + r).
                let (big, small) = (c.torus.major_radius, c.torus.minor_radius);
                let theta = 2.0 * PI * rng.random::<f64>();
                let phi = loop {
                    let phi = 2.0 * PI * rng.random::<f64>();
                    if rng.random::<f64>() * (big + small) < big + small * phi.cos() {
                        break phi;
                    }
                };
                let ring = big + small * phi.cos();
                out.x
                    .extend([ring * theta.cos(), ring * theta.sin(), small * phi.sin()]);
                out.params.extend([theta, phi]);
            }
            SynthKind::SwissRoll => {
                let p = &c.swiss_roll;
                let t = 1.5 * PI * (1.0 + 2.0 * p.turns * rng.random::<f64>());
                let h = p.height * rng.random::<f64>();
                out.x.extend([t * t.cos(), h, t * t.sin()]);
                out.params.extend([t, h]);
            }
            SynthKind::Sphere => {
                sphere_point(rng, self.dim, c.sphere.radius, &[], &mut out.x);
            }
            SynthKind::Spheres => {
                let s = &c.spheres;
                let small = s.count * s.points_per_sphere;
                let (k, radius) = if i < small {
                    (i / s.points_per_sphere, s.radius)
                } else {
                    (s.count, s.outer_radius)
                };
                let center = &self.centers[k * self.dim..(k + 1) * self.dim];
                sphere_point(rng, self.dim, radius, center, &mut out.x);
                out.y.push(k as i64);
            }
        }
    }
}

/// The ChaCha8 stream `stream` of `seed`.
fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Appends a uniform point of the sphere of `radius` in R^dim around
/// `center` (the origin when empty): a normalised Gaussian vector.
fn sphere_point(rng: &mut ChaCha8Rng, dim: usize, radius: f64, center: &[f64], out: &mut Vec<f64>) {
    let z: Vec<f64> = loop {
        let z: Vec<f64> = (0..dim).map(|_| rng.sample(StandardNormal)).collect();
        if z.iter().any(|v: &f64| *v != 0.0) {
            break z;
        }
    };
    let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (j, v) in z.iter().enumerate() {
        out.push(center.get(j).copied().unwrap_or(0.0) + radius * v / norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Override};

    fn cfg(sets: &[&str]) -> SynthConfig {
        let o: Vec<Override> = sets
            .iter()
            .map(|s| Override::parse_set(s).unwrap())
            .collect();
        crate::config::load(None, &o).unwrap().synth
    }

    fn rows(p: &Points, dim: usize) -> Vec<&[f64]> {
        p.x.chunks(dim).collect()
    }

    #[test]
    fn any_split_gives_the_same_points() {
        for kind in ["circles", "torus", "swiss-roll", "sphere", "spheres"] {
            let c = cfg(&[
                &format!("synth.kind={kind}"),
                "synth.n=5000",
                "synth.noise=0.1",
                "synth.spheres.outer_points=600",
            ]);
            let plan = Plan::new(&c);
            let whole = plan.generate_all();
            for size in 1..=5 {
                let mut joined = Points::default();
                for r in 0..size {
                    let p = plan.generate(plan.blocks_of_rank(r, size), &|_| {});
                    joined.x.extend(p.x);
                    joined.y.extend(p.y);
                    joined.params.extend(p.params);
                }
                assert_eq!(joined, whole, "{kind} split over {size}");
            }
            assert_eq!(whole.x.len(), plan.n() * plan.dim(), "{kind}");
        }
    }

    #[test]
    fn seeds_differ_and_repeat() {
        let a = Plan::new(&cfg(&["synth.seed=1"])).generate_all();
        let b = Plan::new(&cfg(&["synth.seed=1"])).generate_all();
        let c = Plan::new(&cfg(&["synth.seed=2"])).generate_all();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn noise_is_added_to_the_same_clean_points() {
        let clean = Plan::new(&cfg(&["synth.kind=circles", "synth.noise=0"])).generate_all();
        let noisy = Plan::new(&cfg(&["synth.kind=circles", "synth.noise=0.01"])).generate_all();
        assert_eq!(clean.params, noisy.params);
        let max_dev = clean
            .x
            .iter()
            .zip(&noisy.x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(max_dev > 0.0 && max_dev < 0.1, "{max_dev}");
    }

    #[test]
    fn circles_lie_on_their_circles() {
        let c = cfg(&[
            "synth.kind=circles",
            "synth.n=3001",
            "synth.circles.count=4",
        ]);
        let plan = Plan::new(&c);
        let p = plan.generate_all();
        let mut sizes = [0usize; 4];
        for (row, (&k, &angle)) in rows(&p, 2).iter().zip(p.y.iter().zip(&p.params)) {
            sizes[k as usize] += 1;
            let cx = k as f64 * c.circles.spacing;
            let r = ((row[0] - cx).powi(2) + row[1].powi(2)).sqrt();
            assert!((r - c.circles.radius).abs() < 1e-12);
            assert!((row[1] - c.circles.radius * angle.sin()).abs() < 1e-12);
        }
        assert!(sizes.iter().all(|&s| s == 750 || s == 751), "{sizes:?}");
    }

    #[test]
    fn torus_is_on_the_surface_and_uniform_by_area() {
        let c = cfg(&["synth.kind=torus", "synth.n=20000"]);
        let (big, small) = (c.torus.major_radius, c.torus.minor_radius);
        let p = Plan::new(&c).generate_all();
        let mut outer = 0usize;
        for row in rows(&p, 3) {
            let rho = (row[0].powi(2) + row[1].powi(2)).sqrt();
            assert!(((rho - big).powi(2) + row[2].powi(2) - small * small).abs() < 1e-9);
            outer += usize::from(rho > big);
        }
        // Area of the outer half (cos φ > 0) is (πR + 2r)/(2πR) of the whole:
        // for R = 2, r = 1 that is 0.6592; uniform-in-angle would give 0.5.
        let expected = (PI * big + 2.0 * small) / (2.0 * PI * big);
        let frac = outer as f64 / 20000.0;
        assert!((frac - expected).abs() < 0.015, "{frac} vs {expected}");
    }

    #[test]
    fn swiss_roll_matches_its_parametrisation() {
        let p = Plan::new(&cfg(&["synth.kind=swiss-roll"])).generate_all();
        for (row, par) in rows(&p, 3).iter().zip(p.params.chunks(2)) {
            let (t, h) = (par[0], par[1]);
            assert!((1.5 * PI..=4.5 * PI).contains(&t));
            assert!((0.0..=21.0).contains(&h));
            assert_eq!(row, &[t * t.cos(), h, t * t.sin()]);
        }
    }

    #[test]
    fn sphere_points_have_the_radius() {
        let p = Plan::new(&cfg(&[
            "synth.kind=sphere",
            "synth.sphere.dim=4",
            "synth.sphere.radius=2.5",
        ]))
        .generate_all();
        assert_eq!(p.x.len(), 2000 * 5);
        for row in rows(&p, 5) {
            let r = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((r - 2.5).abs() < 1e-12);
        }
        // Each coordinate's mean is near 0 for a uniform sample.
        for j in 0..5 {
            let mean = rows(&p, 5).iter().map(|r| r[j]).sum::<f64>() / 2000.0;
            assert!(mean.abs() < 0.2, "coordinate {j} mean {mean}");
        }
    }

    /// Acceptance (issue 2): the SPHERES set follows Moor et al. (2020):
    /// ten 100-spheres of radius 5 in R^101 with 500 points each, shifted by
    /// Gaussian vectors of standard deviation 10/sqrt(100) = 1 per coordinate,
    /// inside one 100-sphere of radius 25 centred at the origin with 5,000
    /// points: 10,000 points in all.
    #[test]
    fn spheres_match_the_published_construction() {
        let c = Config::default().synth;
        let c = SynthConfig {
            kind: SynthKind::Spheres,
            ..c
        };
        let plan = Plan::new(&c);
        assert_eq!((plan.n(), plan.dim()), (10_000, 101));
        let p = plan.generate_all();
        assert_eq!(p.x.len(), 10_000 * 101);
        let mut counts = [0usize; 11];
        for (row, &k) in rows(&p, 101).iter().zip(&p.y) {
            counts[k as usize] += 1;
            let center = &plan.centers()[k as usize * 101..(k as usize + 1) * 101];
            let r = row
                .iter()
                .zip(center)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let expected = if k == 10 { 25.0 } else { 5.0 };
            assert!((r - expected).abs() < 1e-9, "label {k}: radius {r}");
        }
        assert_eq!(&counts[..10], &[500; 10]);
        assert_eq!(counts[10], 5000);
        assert!(
            plan.centers()[10 * 101..].iter().all(|&v| v == 0.0),
            "enclosing sphere at the origin"
        );
        // The 1,010 shift coordinates are N(0, 1): sample mean and standard
        // deviation within 5 standard errors of 0 and 1.
        let shifts = &plan.centers()[..10 * 101];
        let m = shifts.len() as f64;
        let mean = shifts.iter().sum::<f64>() / m;
        let sd = (shifts.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0)).sqrt();
        assert!(mean.abs() < 5.0 / m.sqrt(), "mean {mean}");
        assert!((sd - 1.0).abs() < 5.0 / (2.0 * m).sqrt(), "sd {sd}");
        // The small spheres lie inside the big one, as published.
        for k in 0..10 {
            let shift = &plan.centers()[k * 101..(k + 1) * 101];
            let norm = shift.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!(norm + 5.0 < 25.0, "sphere {k} pokes out: |shift| = {norm}");
        }
    }
}
