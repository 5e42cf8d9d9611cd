//! Batch normalisation whose training statistics are those of the whole
//! global batch, over every MPI rank.
//!
//! In training mode a layer normalises its input `a` (rows × features) with
//! the mean μ and the biased variance σ² of the global batch: each rank
//! sums its own rows, the sums are all-reduced (two small float64
//! all-reduces per layer: Σa, then Σ(a − μ)²), and every rank gets the same
//! μ and σ². Its running statistics follow torch.nn.BatchNorm1d
//! (momentum 0.1, the unbiased variance, ε = 1e-5), the same on every rank.
//!
//! The gradient of the global loss with respect to a rank's rows depends on
//! the other ranks' rows through μ and σ²: with x̂ = (a − μ)/σ and g the
//! gradient with μ and σ held fixed,
//!
//! ```text
//! ∂L/∂a_i = g_i − mean_j(g_j) − x̂_i · mean_j(g_j x̂_j)     (j over the global batch)
//! ```
//!
//! libtorch's autograd cannot all-reduce in the middle of a backward pass
//! (tch exposes no hooks), so the layer cuts the graph: it normalises a
//! detached leaf copy `u` of `a`, with μ and σ as constants, and records
//! (a, u, x̂) on the step's [`Tape`]. The training loop's backward pass
//! stops at the leaves; [`Tape::backward`] then walks the records from the
//! last to the first, all-reduces the two sums of g = u.grad (one
//! all-reduce per layer), and back-propagates the corrected gradient from
//! `a` to the layer before. A record's leaf has its whole gradient when it
//! is reached, since everything that used it was recorded after it. The
//! result is the gradient of the global-batch loss, exactly (to rounding)
//! what one process computes on the whole batch. On one rank the local
//! batch is the global one: the layers then use libtorch's own batch_norm,
//! which the cut path equals to rounding (tested).

use std::cell::RefCell;

use tch::{nn, Kind, Tensor};

use tglml::dist::Comm;
use tglml::error::Result;

/// PyTorch's defaults.
const MOMENTUM: f64 = 0.1;
const EPS: f64 = 1e-5;

/// One batch normalisation layer: a learned scale and shift per feature
/// (`weight`, `bias`) and the running statistics (`running_mean`,
/// `running_var`, not trained; stored in checkpoints with the weights).
#[derive(Debug)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

/// How a forward pass normalises.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// With the global batch's statistics, recorded on the tape.
    Train(&'a Tape<'a>),
    /// With the running statistics (evaluation, sampling).
    Eval,
}

struct Record {
    a: Tensor,
    u: Tensor,
    xhat: Tensor,
}

/// The batch-norm layers of one training forward pass, for their part of
/// the backward pass.
pub struct Tape<'a> {
    comm: &'a Comm,
    /// Rows of the global batch.
    rows: usize,
    /// Whether layers cut the graph (more than one rank, or [`Tape::cut`]);
    /// on one rank the local batch is the global one and libtorch's own
    /// batch_norm does it all in one graph, faster.
    cutting: bool,
    records: RefCell<Vec<Record>>,
}

/// Column sums of `t` (n × d) as float64.
fn column_sums(t: &Tensor) -> Vec<f64> {
    let s = t
        .sum_dim_intlist([0i64].as_slice(), false, Kind::Double)
        .to_device(tch::Device::Cpu);
    Vec::<f64>::try_from(&s).expect("a float64 vector")
}

/// Column sums of `t` all-reduced over the ranks.
fn global_column_sums(comm: &Comm, t: &Tensor) -> Vec<f64> {
    let mut v = column_sums(t);
    comm.all_reduce_sum_f64(&mut v);
    v
}

fn like(values: &[f64], t: &Tensor) -> Tensor {
    Tensor::from_slice(values)
        .to_kind(t.kind())
        .to_device(t.device())
}

extern "C" {
    fn free(p: *mut std::ffi::c_void);
}

/// `t.backward()` keeping the graph (PyTorch's `retain_graph=True`), which
/// tch does not offer: the layers' backward passes go again through parts
/// of the graph that the loss's own pass went through (a VAE's latent
/// means feed both the topological loss and the decoder).
pub fn backward_retaining_graph(t: &Tensor) -> std::result::Result<(), String> {
    // SAFETY: `t` is a live tensor for the whole call; at_backward reports
    // a C++ exception through torch-sys's last-error slot, which is read
    // and freed here as tch itself does.
    unsafe {
        torch_sys::at_backward(t.as_ptr() as *mut _, 1, 0);
        let e = torch_sys::get_and_reset_last_err();
        if e.is_null() {
            Ok(())
        } else {
            let msg = std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned();
            free(e as *mut std::ffi::c_void);
            Err(msg)
        }
    }
}

/// [`backward_retaining_graph`] as the training loop calls it: a failure
/// inside libtorch is an error naming `what`.
pub fn backward_kept(t: &Tensor, what: &str) -> Result<()> {
    tglml::runtime::fallible(what, || backward_retaining_graph(t))
        .and_then(|r| r.map_err(|m| tglml::error::Error::external(what.to_string(), m)))
}

impl BatchNorm {
    /// A layer over `features` under `path` (weight 1, bias 0, running mean
    /// 0 and variance 1, as PyTorch starts them).
    pub fn new(path: &nn::Path, features: usize) -> Self {
        let f = features as i64;
        BatchNorm {
            weight: path.var("weight", &[f], nn::Init::Const(1.0)),
            bias: path.var("bias", &[f], nn::Init::Const(0.0)),
            running_mean: path.zeros_no_train("running_mean", &[f]),
            running_var: path.ones_no_train("running_var", &[f]),
        }
    }

    /// Normalises `a` (rows × features).
    pub fn forward(&self, a: &Tensor, mode: Mode) -> Tensor {
        match mode {
            Mode::Eval => {
                let sd = (&self.running_var + EPS).sqrt();
                (a - &self.running_mean) / sd * &self.weight + &self.bias
            }
            Mode::Train(tape) => tape.normalise(self, a),
        }
    }
}

impl<'a> Tape<'a> {
    /// An empty tape for a global batch of `rows` rows.
    pub fn new(comm: &'a Comm, rows: usize) -> Self {
        Tape {
            comm,
            rows,
            cutting: comm.size() > 1,
            records: RefCell::new(Vec::new()),
        }
    }

    /// A tape whose layers cut the graph also on one rank (tests: the cut
    /// path against libtorch's batch_norm).
    pub fn cut(comm: &'a Comm, rows: usize) -> Self {
        Tape {
            cutting: true,
            ..Tape::new(comm, rows)
        }
    }

    /// Whether a layer recorded anything.
    pub fn is_empty(&self) -> bool {
        self.records.borrow().is_empty()
    }

    fn normalise(&self, bn: &BatchNorm, a: &Tensor) -> Tensor {
        if !self.cutting {
            return a.batch_norm(
                Some(&bn.weight),
                Some(&bn.bias),
                Some(&bn.running_mean),
                Some(&bn.running_var),
                true,
                MOMENTUM,
                EPS,
                false,
            );
        }
        let n = self.rows as f64;
        let u = a.detach().set_requires_grad(true);
        let (mean, var) = tch::no_grad(|| {
            let mean: Vec<f64> = global_column_sums(self.comm, &u)
                .iter()
                .map(|s| s / n)
                .collect();
            let mean_t = like(&mean, &u);
            let dev = (&u - &mean_t).square();
            let var: Vec<f64> = global_column_sums(self.comm, &dev)
                .iter()
                .map(|s| s / n)
                .collect();
            (mean_t, like(&var, &u))
        });
        tch::no_grad(|| {
            // running ← (1 − m)·running + m·batch (unbiased variance).
            let unbiased = &var * (n / (n - 1.0).max(1.0));
            let rm = &bn.running_mean * (1.0 - MOMENTUM) + &mean * MOMENTUM;
            let rv = &bn.running_var * (1.0 - MOMENTUM) + unbiased * MOMENTUM;
            bn.running_mean.shallow_clone().copy_(&rm);
            bn.running_var.shallow_clone().copy_(&rv);
        });
        let xhat = (&u - &mean) / (var + EPS).sqrt();
        self.records.borrow_mut().push(Record {
            a: a.shallow_clone(),
            u: u.shallow_clone(),
            xhat: xhat.detach(),
        });
        &xhat * &bn.weight + &bn.bias
    }

    /// The layers' part of the backward pass, after the loss's own
    /// (collective: one all-reduce per layer on every rank, also where this
    /// rank's backward pass failed, `failed`, so that no rank waits alone).
    /// A failure inside libtorch is returned after the all-reduces.
    pub fn backward(&self, failed: bool) -> Result<()> {
        let n = self.rows as f64;
        let records = self.records.borrow();
        let mut outcome = Ok(());
        for (i, r) in records.iter().enumerate().rev() {
            let what = format!("the backward pass of batch-norm layer {i}");
            let width = r.xhat.size().last().copied().unwrap_or(0) as usize;
            // This rank's Σg and Σg·x̂ (zeros after a failure, or where no
            // gradient reached the layer).
            let local = if failed || outcome.is_err() {
                Ok(None)
            } else {
                tglml::runtime::fallible(&what, || {
                    let g = r.u.grad();
                    g.defined().then(|| {
                        let gx = &g * &r.xhat;
                        let mut v = column_sums(&g);
                        v.extend(column_sums(&gx));
                        (g, v)
                    })
                })
            };
            let (g, mut sums) = match local {
                Ok(Some((g, v))) => (Some(g), v),
                Ok(None) => (None, vec![0.0; 2 * width]),
                Err(e) => {
                    outcome = Err(e);
                    (None, vec![0.0; 2 * width])
                }
            };
            self.comm.all_reduce_sum_f64(&mut sums);
            let Some(g) = g.filter(|_| r.a.requires_grad()) else {
                continue;
            };
            outcome = tglml::runtime::fallible(&what, || {
                let mean_g = like(&sums[..width], &g) / n;
                let mean_gx = like(&sums[width..], &g) / n;
                (&g - mean_g - &r.xhat * mean_gx) * &r.a
            })
            .and_then(|surrogate| backward_kept(&surrogate.sum(r.a.kind()), &what));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Training mode on one rank equals torch's own batch_norm (in
    /// training mode) in value, gradients and running statistics: the cut
    /// graph and the corrected backward pass give what autograd gives
    /// through μ and σ².
    #[test]
    fn matches_torch_batch_norm_in_value_gradient_and_running_stats() {
        tch::manual_seed(3);
        let comm = Comm::solo();
        let mut vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "lin", 4, 3, Default::default());
        let bn = BatchNorm::new(&(vs.root() / "bn"), 3);
        vs.set_kind(Kind::Double);
        tch::no_grad(|| {
            bn.weight
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[1.5, -0.5, 2.0]));
            bn.bias
                .shallow_clone()
                .copy_(&Tensor::from_slice(&[0.1, 0.2, -0.3]));
        });
        let x = Tensor::randn([7, 4], (Kind::Double, Device::Cpu));
        let w = Tensor::randn([7, 3], (Kind::Double, Device::Cpu));
        let loss_of = |y: &Tensor| (y.tanh() * &w).sum(Kind::Double);

        // Ours, cutting the graph as on several ranks.
        let tape = Tape::cut(&comm, 7);
        let y = bn.forward(&nn::Module::forward(&lin, &x), Mode::Train(&tape));
        backward_kept(&loss_of(&y), "test").unwrap();
        tape.backward(false).unwrap();
        let ours: Vec<Tensor> = [&lin.ws, &bn.weight, &bn.bias]
            .iter()
            .map(|t| t.grad().copy())
            .collect();

        // Torch's, through an identical copy of the variables.
        let ws = lin.ws.detach().copy().set_requires_grad(true);
        let bs = lin
            .bs
            .as_ref()
            .unwrap()
            .detach()
            .copy()
            .set_requires_grad(true);
        let g = bn.weight.detach().copy().set_requires_grad(true);
        let b = bn.bias.detach().copy().set_requires_grad(true);
        let rm = Tensor::zeros([3], (Kind::Double, Device::Cpu));
        let rv = Tensor::ones([3], (Kind::Double, Device::Cpu));
        let a = x.linear(&ws, Some(&bs));
        let y2 = a.batch_norm(
            Some(&g),
            Some(&b),
            Some(&rm),
            Some(&rv),
            true,
            MOMENTUM,
            EPS,
            false,
        );
        loss_of(&y2).backward();
        let close = |p: &Tensor, q: &Tensor| {
            let d = (p - q).abs().max().double_value(&[]);
            assert!(d < 1e-12, "differ by {d}");
        };
        close(&y, &y2);
        close(&ours[0], &ws.grad());
        close(&ours[1], &g.grad());
        close(&ours[2], &b.grad());
        close(&bn.running_mean, &rm);
        close(&bn.running_var, &rv);
        // And evaluation mode normalises with the running statistics.
        let e = bn.forward(&a.detach(), Mode::Eval);
        let e2 = a.detach().batch_norm(
            Some(&g),
            Some(&b),
            Some(&rm),
            Some(&rv),
            false,
            MOMENTUM,
            EPS,
            false,
        );
        close(&e, &e2);
    }
}
