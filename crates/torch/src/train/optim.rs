//! Adam and AdamW over tch tensors, with a state that can be read and set.
//!
//! tch's own optimizers keep their moments and step count inside libtorch,
//! out of reach, so a checkpoint could not resume them. [`Adam`] keeps them
//! as plain tensors: [`Adam::state`] reads them, [`Adam::set_state`] puts
//! them back (see [`crate::train::checkpoint`]).
//!
//! The update is PyTorch's `torch.optim.Adam` (single-tensor algorithm, no
//! AMSGrad, no `maximize`), operation for operation, so that a run matches
//! PyTorch's to rounding (tested against a PyTorch 2.13 fixture within 1e-12
//! relative). For step `t` (from 1), gradient `g`, parameter `p`:
//!
//! ```text
//! g  = g + weight_decay * p                   (L2 penalty, Adam)
//! p  = p * (1 - lr * weight_decay)            (decoupled instead, AdamW)
//! m  = m + (1 - beta1) * (g - m)              (torch's lerp)
//! v  = beta2 * v + (1 - beta2) * g * g
//! p  = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```

use tch::{Kind, Tensor};

use tglml::error::{Error, Result};

/// Hyperparameters of [`Adam`]; the defaults are PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 1e-3).
    pub lr: f64,
    /// Decay of the first moment (default 0.9).
    pub beta1: f64,
    /// Decay of the second moment (default 0.999).
    pub beta2: f64,
    /// Added to the denominator (default 1e-8).
    pub eps: f64,
    /// Weight decay (default 0): an L2 penalty added to the gradient as
    /// `torch.optim.Adam` does, or, with `decoupled_weight_decay`, a
    /// shrinking of the parameters as `torch.optim.AdamW` does.
    pub weight_decay: f64,
    /// `true`: AdamW's decoupled weight decay; `false` (default): Adam's.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

impl AdamConfig {
    /// Checks the ranges PyTorch checks: `lr`, `eps`, `weight_decay` finite
    /// and non-negative, each beta in [0, 1).
    pub fn validate(&self) -> Result<()> {
        let nonneg = [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ];
        for (name, x) in nonneg {
            if !(x.is_finite() && x >= 0.0) {
                return Err(Error::invalid(
                    format!("Adam {name}"),
                    format!("must be a finite number >= 0, got {x}"),
                ));
            }
        }
        for (name, x) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&x) {
                return Err(Error::invalid(
                    format!("Adam {name}"),
                    format!("must be in [0, 1), got {x}"),
                ));
            }
        }
        Ok(())
    }
}

/// Adam (or AdamW) over a fixed list of parameter tensors.
///
/// The list given to [`Adam::new`] fixes the order of the moments; every
/// later call ([`Adam::step`], [`Adam::set_state`]) takes the parameters in
/// that same order. [`crate::train::checkpoint::trainable`] gives the order
/// that checkpoints use.
#[derive(Debug)]
pub struct Adam {
    /// The hyperparameters; `config.lr` may be changed between steps
    /// (schedules).
    pub config: AdamConfig,
    step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// One pass per parameter where the tensors allow ([`fused_step`]);
    /// `false` only in tests, to check the tensor-operation path.
    fused: bool,
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Float => "f32".into(),
        Kind::Double => "f64".into(),
        Kind::Int64 => "i64".into(),
        other => format!("{other:?}"),
    }
}

impl Adam {
    /// An optimizer for `params` (moments zero, step 0), after checking
    /// `config`.
    pub fn new(params: &[Tensor], config: AdamConfig) -> Result<Self> {
        config.validate()?;
        let (m, v) = tch::no_grad(|| {
            let zeros = || params.iter().map(|p| p.zeros_like()).collect::<Vec<_>>();
            (zeros(), zeros())
        });
        Ok(Adam {
            config,
            step: 0,
            m,
            v,
            fused: true,
        })
    }

    /// The number of parameter tensors.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    /// Whether the optimizer has no parameters.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// One update of `params` (the list given to [`Adam::new`], in the same
    /// order) from their `.grad()`, under `no_grad`.
    ///
    /// The step count advances once per call. A parameter without a gradient
    /// (never reached by a backward pass) is left alone, moments included;
    /// PyTorch skips it too but also keeps its step count back, which a
    /// single count cannot: after such a skip its bias correction differs
    /// from PyTorch's. Parameters whose gradients [`Adam::zero_grad`] zeroed
    /// are updated, as in PyTorch after `zero_grad(set_to_none=False)`.
    ///
    /// # Panics
    /// If `params` does not match the list given to [`Adam::new`] in count,
    /// shapes or dtypes (a programming error).
    pub fn step(&mut self, params: &[Tensor]) {
        assert_eq!(
            params.len(),
            self.m.len(),
            "Adam::step: {} parameters given, the optimizer was made for {}",
            params.len(),
            self.m.len()
        );
        for (i, (p, m)) in params.iter().zip(&self.m).enumerate() {
            assert!(
                p.size() == m.size() && p.kind() == m.kind(),
                "Adam::step: parameter {i} is {} {:?}, the optimizer has {} {:?} for it",
                kind_name(p.kind()),
                p.size(),
                kind_name(m.kind()),
                m.size()
            );
        }
        self.step += 1;
        // Python floats: `beta ** step` and `x ** 0.5` are C's pow.
        let t = self.step as f64;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay: wd,
            decoupled_weight_decay: decoupled,
        } = self.config;
        let bias_correction1 = 1.0 - beta1.powf(t);
        let bias_correction2 = 1.0 - beta2.powf(t);
        let step_size = lr / bias_correction1;
        let bias_correction2_sqrt = bias_correction2.powf(0.5);
        let c = Consts {
            lr,
            beta1,
            beta2,
            eps,
            wd,
            decoupled,
            step_size,
            bias_correction2_sqrt,
        };
        tch::no_grad(|| {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let grad = p.grad();
                if !grad.defined() {
                    continue;
                }
                if !(self.fused && fused_step(p, &grad, m, v, &c)) {
                    tensor_step(p, grad, m, v, &c);
                }
            }
        });
    }

    /// Zeroes the gradients of `params` that have one (tch's semantics: the
    /// gradient tensors stay, filled with zeros).
    pub fn zero_grad(params: &[Tensor]) {
        for p in params {
            let mut p = p.shallow_clone();
            p.zero_grad();
        }
    }

    /// The step count and the first and second moments, in parameter order.
    pub fn state(&self) -> (u64, &[Tensor], &[Tensor]) {
        (self.step, &self.m, &self.v)
    }

    /// Checks that `m` and `v` could be given to [`Adam::set_state`]: one
    /// tensor per parameter, each of the parameter's shape and dtype.
    pub fn check_state(&self, m: &[Tensor], v: &[Tensor]) -> Result<()> {
        for (which, given) in [("m", m), ("v", v)] {
            if given.len() != self.m.len() {
                return Err(Error::invalid(
                    "Adam state",
                    format!(
                        "{} {which} tensors given, the optimizer has {} parameters",
                        given.len(),
                        self.m.len()
                    ),
                ));
            }
            for (i, (g, mine)) in given.iter().zip(&self.m).enumerate() {
                if g.size() != mine.size() {
                    return Err(Error::invalid(
                        "Adam state",
                        format!(
                            "{which}[{i}] has shape {:?}, the parameter has {:?}",
                            g.size(),
                            mine.size()
                        ),
                    ));
                }
                if g.kind() != mine.kind() {
                    return Err(Error::invalid(
                        "Adam state",
                        format!(
                            "{which}[{i}] has dtype {}, the parameter has {}",
                            kind_name(g.kind()),
                            kind_name(mine.kind())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Replaces the step count and the moments (copied into the optimizer's
    /// own tensors, on its device). Nothing changes unless every tensor has
    /// its parameter's shape and dtype ([`Adam::check_state`]).
    pub fn set_state(&mut self, step: u64, m: Vec<Tensor>, v: Vec<Tensor>) -> Result<()> {
        self.check_state(&m, &v)?;
        tch::no_grad(|| {
            for (dst, src) in self.m.iter_mut().zip(&m) {
                dst.copy_(src);
            }
            for (dst, src) in self.v.iter_mut().zip(&v) {
                dst.copy_(src);
            }
        });
        self.step = step;
        Ok(())
    }
}

/// The constants of one Adam step.
struct Consts {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    step_size: f64,
    bias_correction2_sqrt: f64,
}

/// One parameter's update by tensor operations, PyTorch's single-tensor
/// Adam one for one (any device or layout).
fn tensor_step(p: &Tensor, grad: Tensor, m: &mut Tensor, v: &mut Tensor, c: &Consts) {
    let mut p = p.shallow_clone();
    let grad = if c.wd != 0.0 {
        if c.decoupled {
            p *= 1.0 - c.lr * c.wd;
            grad
        } else {
            // grad.add(param, alpha=weight_decay)
            &grad + &p * c.wd
        }
    } else {
        grad
    };
    // exp_avg.lerp_(grad, 1 - beta1)
    let _ = m.lerp_(&grad, 1.0 - c.beta1);
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2);
    // ATen's addcmul_ and addcdiv_ kernels (value folded into the
    // first factor, as the kernels do) round as PyTorch does.
    *v *= c.beta2;
    let _ = v.addcmul_(&(&grad * (1.0 - c.beta2)), &grad);
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let denom = v.sqrt() / c.bias_correction2_sqrt + c.eps;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    let _ = p.addcdiv_(&(&*m * -c.step_size), &denom);
}

/// The float types of [`fused_step`].
trait AdamFloat:
    Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    const KIND: Kind;
    fn of(x: f64) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! adam_float {
    ($t:ty, $kind:expr) => {
        impl AdamFloat for $t {
            const KIND: Kind = $kind;
            fn of(x: f64) -> Self {
                x as $t
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
        }
    };
}
adam_float!(f32, Kind::Float);
adam_float!(f64, Kind::Double);

/// One parameter's update in one pass over its elements, with no
/// temporary tensor: the same operations as
/// [`tensor_step`] element by element (scalars rounded to the tensor's
/// type first, as ATen does; ATen's vectorised lerp fuses a multiply-add
/// where this rounds twice, a difference in the last bit). The unfused
/// step costs ~5 passes and 4 allocations per tensor: for the 2.8M
/// parameters of a DeepAE, 25 ms of PyTorch's 43 ms step here. Returns
/// `false`, touching nothing, unless all four tensors are contiguous CPU
/// tensors of one float type.
fn fused_step(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, c: &Consts) -> bool {
    let kind = p.kind();
    let usable = |t: &Tensor| {
        t.device() == tch::Device::Cpu
            && t.kind() == kind
            && t.is_contiguous()
            && t.numel() == p.numel()
    };
    if ![p, g, m, v].into_iter().all(usable) {
        return false;
    }
    match kind {
        Kind::Float => fused::<f32>(p, g, m, v, c),
        Kind::Double => fused::<f64>(p, g, m, v, c),
        _ => return false,
    }
    true
}

fn fused<T: AdamFloat>(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, c: &Consts) {
    debug_assert_eq!(p.kind(), T::KIND);
    let n = p.numel();
    // SAFETY: four distinct contiguous CPU tensors of `n` elements of type
    // T (checked by the caller; m and v are the optimizer's own, the
    // gradient is not the parameter), alive for this call; no other code
    // reads or writes them meanwhile (CPU tensor operations are
    // synchronous, and this runs between the backward pass and the next
    // forward pass).
    let (ps, gs, ms, vs) = unsafe {
        (
            std::slice::from_raw_parts_mut(p.data_ptr() as *mut T, n),
            std::slice::from_raw_parts(g.data_ptr() as *const T, n),
            std::slice::from_raw_parts_mut(m.data_ptr() as *mut T, n),
            std::slice::from_raw_parts_mut(v.data_ptr() as *mut T, n),
        )
    };
    let w = T::of(1.0 - c.beta1);
    let small = (1.0 - c.beta1).abs() < 0.5;
    let w_rest = T::of(1.0) - w; // ATen's lerp: 1 - weight, in T
    let (beta2, one_minus_beta2) = (T::of(c.beta2), T::of(1.0 - c.beta2));
    let (bc2, eps, neg_step) = (
        T::of(c.bias_correction2_sqrt),
        T::of(c.eps),
        T::of(-c.step_size),
    );
    let (wd, shrink) = (T::of(c.wd), T::of(1.0 - c.lr * c.wd));
    let (l2, decoupled) = (c.wd != 0.0 && !c.decoupled, c.wd != 0.0 && c.decoupled);
    let k = Elementwise {
        w,
        w_rest,
        beta2,
        one_minus_beta2,
        bc2,
        eps,
        neg_step,
        wd,
        shrink,
    };
    // The loop-invariant choices as constants, so that each loop is
    // branch-free and vectorised.
    let pass = match (small, l2, decoupled) {
        (true, false, false) => Elementwise::<T>::pass::<true, false, false>,
        (true, true, _) => Elementwise::<T>::pass::<true, true, false>,
        (true, false, true) => Elementwise::<T>::pass::<true, false, true>,
        (false, false, false) => Elementwise::<T>::pass::<false, false, false>,
        (false, true, _) => Elementwise::<T>::pass::<false, true, false>,
        (false, false, true) => Elementwise::<T>::pass::<false, false, true>,
    };
    // One thread: the pass is bound by memory bandwidth, and at 2 threads
    // rayon's second worker competes with libtorch's OpenMP threads, which
    // spin after each parallel region (4.9 ms parallel, 3.4 ms serial for a
    // DeepAE's 2.8M parameters; benches/train/README.md).
    pass(&k, ps, gs, ms, vs);
}

/// The constants of [`fused`], in the parameters' type.
struct Elementwise<T> {
    w: T,
    w_rest: T,
    beta2: T,
    one_minus_beta2: T,
    bc2: T,
    eps: T,
    neg_step: T,
    wd: T,
    shrink: T,
}

impl<T: AdamFloat> Elementwise<T> {
    /// One chunk: SMALL, ATen's lerp for a weight below 0.5; L2, Adam's
    /// weight decay; DECOUPLED, AdamW's.
    fn pass<const SMALL: bool, const L2: bool, const DECOUPLED: bool>(
        &self,
        p: &mut [T],
        g: &[T],
        m: &mut [T],
        v: &mut [T],
    ) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = if L2 { g + *p * self.wd } else { g };
            if DECOUPLED {
                *p = *p * self.shrink;
            }
            // lerp(m, g, w)
            *m = if SMALL {
                *m + self.w * (g - *m)
            } else {
                g - (g - *m) * self.w_rest
            };
            *v = *v * self.beta2;
            *v = *v + g * self.one_minus_beta2 * g;
            let denom = v.sqrt() / self.bc2 + self.eps;
            *p = *p + *m * self.neg_step / denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/optim/adam_reference.txt"
    );

    /// One run of the fixture: configuration, parameters per step, final
    /// moments and step count.
    #[derive(Default)]
    struct Run {
        config: AdamConfig,
        params: BTreeMap<(usize, usize), Vec<f64>>,
        m: BTreeMap<usize, Vec<f64>>,
        v: BTreeMap<usize, Vec<f64>>,
        steps: u64,
    }

    struct Fixture {
        shapes: Vec<Vec<i64>>,
        runs: BTreeMap<String, Run>,
    }

    fn floats<'a>(it: impl Iterator<Item = &'a str>) -> Vec<f64> {
        it.map(|s| s.parse::<f64>().unwrap()).collect()
    }

    fn fixture() -> Fixture {
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        let mut shapes = Vec::new();
        let mut runs: BTreeMap<String, Run> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut w = line.split_whitespace();
            let head = w.next().unwrap();
            if head == "shape" {
                let i: usize = w.next().unwrap().parse().unwrap();
                assert_eq!(i, shapes.len());
                shapes.push(w.map(|s| s.parse().unwrap()).collect());
                continue;
            }
            let run = runs.entry(head.to_string()).or_default();
            match w.next().unwrap() {
                "config" => {
                    let kv: BTreeMap<&str, &str> = w.map(|s| s.split_once('=').unwrap()).collect();
                    run.config = AdamConfig {
                        lr: kv["lr"].parse().unwrap(),
                        beta1: kv["beta1"].parse().unwrap(),
                        beta2: kv["beta2"].parse().unwrap(),
                        eps: kv["eps"].parse().unwrap(),
                        weight_decay: kv["weight_decay"].parse().unwrap(),
                        decoupled_weight_decay: kv["decoupled"] == "1",
                    };
                }
                "param" => {
                    let step = w.next().unwrap().parse().unwrap();
                    let i = w.next().unwrap().parse().unwrap();
                    run.params.insert((step, i), floats(w));
                }
                "m" => {
                    let i = w.next().unwrap().parse().unwrap();
                    run.m.insert(i, floats(w));
                }
                "v" => {
                    let i = w.next().unwrap().parse().unwrap();
                    run.v.insert(i, floats(w));
                }
                "steps" => run.steps = w.next().unwrap().parse().unwrap(),
                other => panic!("unknown fixture line kind {other}"),
            }
        }
        Fixture { shapes, runs }
    }

    fn leaf(values: &[f64], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values)
            .reshape(shape)
            .set_requires_grad(true)
    }

    /// The fixture's loss, operation for operation.
    fn loss(p: &[Tensor]) -> Tensor {
        let (p0, p1, p2) = (&p[0], &p[1], &p[2]);
        (p0.sin() * p0 * p0).sum(Kind::Double)
            + (p1.cos() * p1.pow_tensor_scalar(3)).sum(Kind::Double)
            + p2 * p0.tanh().sum(Kind::Double) * p1.sum(Kind::Double)
            + (p2 * 0.5).exp()
    }

    fn values(t: &Tensor) -> Vec<f64> {
        let t = t.detach().contiguous();
        let mut out = vec![0.0; t.numel()];
        t.copy_data(&mut out, t.numel());
        out
    }

    /// Compares within 1e-12 relative; returns the largest relative error
    /// and the number of bit-identical values.
    fn compare(what: &str, got: &[f64], want: &[f64]) -> (f64, usize) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let mut worst: f64 = 0.0;
        let mut exact = 0;
        for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
            if g.to_bits() == w.to_bits() {
                exact += 1;
                continue;
            }
            let rel = (g - w).abs() / w.abs().max(f64::MIN_POSITIVE);
            assert!(
                rel <= 1e-12,
                "{what}[{k}]: ours {g:e}, PyTorch {w:e} (rel {rel:e})"
            );
            worst = worst.max(rel);
        }
        (worst, exact)
    }

    fn init_params(fx: &Fixture, run: &Run) -> Vec<Tensor> {
        (0..fx.shapes.len())
            .map(|i| leaf(&run.params[&(0, i)], &fx.shapes[i]))
            .collect()
    }

    fn train(adam: &mut Adam, params: &[Tensor], steps: usize) {
        for _ in 0..steps {
            Adam::zero_grad(params);
            loss(params).backward();
            adam.step(params);
        }
    }

    #[test]
    fn matches_pytorch_adam_and_adamw() {
        let fx = fixture();
        assert_eq!(
            fx.runs.keys().collect::<Vec<_>>(),
            ["adam", "adam_wd", "adamw_wd"]
        );
        // Both ways of computing a step: one pass per tensor, and tensor
        // operations.
        for ((name, run), fused) in fx.runs.iter().flat_map(|r| [(r, true), (r, false)]) {
            let params = init_params(&fx, run);
            let mut adam = Adam::new(&params, run.config).unwrap();
            adam.fused = fused;
            let (mut worst, mut exact, mut total) = (0.0f64, 0, 0);
            let mut tally = |(w, e): (f64, usize), n: usize| {
                worst = worst.max(w);
                exact += e;
                total += n;
            };
            for step in 1..=run.steps as usize {
                train(&mut adam, &params, 1);
                for (i, p) in params.iter().enumerate() {
                    let want = &run.params[&(step, i)];
                    let what = format!("{name} step {step} param {i}");
                    tally(compare(&what, &values(p), want), want.len());
                }
            }
            let (step, m, v) = adam.state();
            assert_eq!(step, run.steps);
            for i in 0..params.len() {
                tally(
                    compare(&format!("{name} m {i}"), &values(&m[i]), &run.m[&i]),
                    run.m[&i].len(),
                );
                tally(
                    compare(&format!("{name} v {i}"), &values(&v[i]), &run.v[&i]),
                    run.v[&i].len(),
                );
            }
            eprintln!("{name} (fused: {fused}): {exact}/{total} values bit-identical to PyTorch, largest relative difference {worst:e}");
        }
    }

    /// The one-pass step and the tensor-operation step agree on float32
    /// and float64 parameters of many elements,
    /// with each kind of weight decay, to the last bits (ATen's lerp fuses
    /// a multiply-add that the one-pass step rounds twice).
    #[test]
    fn the_fused_step_agrees_with_tensor_operations() {
        tch::manual_seed(3);
        for kind in [Kind::Float, Kind::Double] {
            for (wd, decoupled) in [(0.0, false), (0.01, false), (0.01, true)] {
                let config = AdamConfig {
                    weight_decay: wd,
                    decoupled_weight_decay: decoupled,
                    ..AdamConfig::default()
                };
                let init = Tensor::randn([70_001], (kind, tch::Device::Cpu));
                let make = || init.copy().set_requires_grad(true);
                let (a, b) = ([make()], [make()]);
                let mut fa = Adam::new(&a, config).unwrap();
                let mut fb = Adam::new(&b, config).unwrap();
                fb.fused = false;
                for step in 0..5 {
                    let grad = Tensor::randn([70_001], (kind, tch::Device::Cpu)) * (step + 1);
                    for (p, opt) in [(&a, &mut fa), (&b, &mut fb)] {
                        Adam::zero_grad(p);
                        (&p[0] * &grad).sum(kind).backward();
                        opt.step(p);
                    }
                }
                let tol = if kind == Kind::Float { 1e-6 } else { 1e-14 };
                let f64s = |t: &Tensor| values(&t.to_kind(Kind::Double));
                let (pa, pb) = (f64s(&a[0]), f64s(&b[0]));
                let worst = pa
                    .iter()
                    .zip(&pb)
                    .map(|(x, y)| (x - y).abs() / y.abs().max(1e-3))
                    .fold(0.0, f64::max);
                assert!(
                    worst <= tol,
                    "{kind:?} wd {wd} decoupled {decoupled}: {worst:e}"
                );
                assert!(pa != f64s(&init), "the parameters moved");
            }
        }
    }

    #[test]
    fn set_state_resumes_bit_exactly() {
        let fx = fixture();
        let run = &fx.runs["adam_wd"];
        let straight = init_params(&fx, run);
        let mut adam = Adam::new(&straight, run.config).unwrap();
        train(&mut adam, &straight, 5);

        let resumed = init_params(&fx, run);
        let mut first = Adam::new(&resumed, run.config).unwrap();
        train(&mut first, &resumed, 2);
        let (step, m, v) = first.state();
        let (m, v): (Vec<_>, Vec<_>) = (
            m.iter().map(|t| t.copy()).collect(),
            v.iter().map(|t| t.copy()).collect(),
        );
        drop(first);
        let mut second = Adam::new(&resumed, run.config).unwrap();
        second.set_state(step, m, v).unwrap();
        assert_eq!(second.state().0, 2);
        train(&mut second, &resumed, 3);
        for (a, b) in straight.iter().zip(&resumed) {
            let (a, b) = (values(a), values(b));
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{a:?} != {b:?}"
            );
        }
    }

    #[test]
    fn set_state_rejects_mismatches_and_changes_nothing() {
        let params = vec![
            leaf(&[1.0, 2.0, 3.0], &[3]),
            leaf(&[1.0, 2.0, 3.0, 4.0], &[2, 2]),
        ];
        let mut adam = Adam::new(&params, AdamConfig::default()).unwrap();
        let z = |shape: &[i64], kind| Tensor::zeros(shape, (kind, tch::Device::Cpu));
        let d = Kind::Double;

        let err = adam
            .set_state(3, vec![z(&[3], d)], vec![z(&[3], d), z(&[2, 2], d)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 m tensors given") && err.contains("2 parameters"),
            "{err}"
        );

        let err = adam
            .set_state(
                3,
                vec![z(&[3], d), z(&[4], d)],
                vec![z(&[3], d), z(&[2, 2], d)],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m[1] has shape [4], the parameter has [2, 2]"),
            "{err}"
        );

        let err = adam
            .set_state(
                3,
                vec![z(&[3], d), z(&[2, 2], d)],
                vec![z(&[3], d), z(&[2, 2], Kind::Float)],
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("v[1] has dtype f32, the parameter has f64"),
            "{err}"
        );

        let (step, m, v) = adam.state();
        assert_eq!(step, 0);
        assert!(m
            .iter()
            .chain(v)
            .all(|t| values(t).iter().all(|&x| x == 0.0)));

        let ones = |shape: &[i64]| Tensor::ones(shape, (d, tch::Device::Cpu));
        adam.set_state(
            7,
            vec![ones(&[3]), ones(&[2, 2])],
            vec![ones(&[3]), ones(&[2, 2])],
        )
        .unwrap();
        let (step, m, _) = adam.state();
        assert_eq!(step, 7);
        assert_eq!(values(&m[1]), vec![1.0; 4]);
    }

    #[test]
    fn config_is_checked() {
        let p = [leaf(&[1.0], &[1])];
        for bad in [
            AdamConfig {
                lr: -1.0,
                ..Default::default()
            },
            AdamConfig {
                beta1: 1.0,
                ..Default::default()
            },
            AdamConfig {
                beta2: -0.1,
                ..Default::default()
            },
            AdamConfig {
                eps: f64::NAN,
                ..Default::default()
            },
            AdamConfig {
                weight_decay: -0.1,
                ..Default::default()
            },
        ] {
            assert!(Adam::new(&p, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parameters_without_gradient_are_left_alone() {
        let used = leaf(&[1.0, -2.0], &[2]);
        let unused = leaf(&[5.0], &[1]);
        let params = [used.shallow_clone(), unused.shallow_clone()];
        let mut adam = Adam::new(
            &params,
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        (&used * &used).sum(Kind::Double).backward();
        adam.step(&params);
        assert_eq!(values(&unused), vec![5.0]);
        assert_eq!(values(&adam.state().1[1]), vec![0.0]);
        // The first Adam step moves every coordinate by about lr.
        let u = values(&used);
        assert!(
            (u[0] - 0.9).abs() < 1e-6 && (u[1] + 1.9).abs() < 1e-6,
            "{u:?}"
        );
        Adam::zero_grad(&params);
        assert_eq!(values(&used.grad()), vec![0.0, 0.0]);
        assert!(!unused.grad().defined());
    }
}
