//! The exponential moving average of a model's weights (`train.ema`).
//!
//! Beside each variable `name` of the model (trained weights and
//! batch-norm running statistics alike) the VarStore holds `avg.name`,
//! not trained, that follows it: after step n (counted from 1) every
//! average moves to `d·avg + (1 − d)·live` with `d = min(ema, (1 + n) /
//! (10 + n))`, so the first steps are not dominated by the initial
//! weights. The averages are ordinary variables, so checkpoints store them
//! and a resumed run continues them exactly. Validation, best.h5's choice
//! and every use of a trained model (the final evaluation, `tglml eval`,
//! `generate`, a latent diffusion's frozen VAE) see the averaged weights;
//! only the optimizer steps the live ones.

use tch::{nn, Tensor};

/// The VarStore name prefix of the averages.
pub const PREFIX: &str = "avg.";

/// The decay of step `step` (0-based) for the setting `ema`:
/// min(ema, (1 + n) / (10 + n)) with n = step + 1.
pub fn decay(ema: f64, step: u64) -> f64 {
    let n = (step + 1) as f64;
    ema.min((1.0 + n) / (10.0 + n))
}

/// Moves each `avg` of `pairs` (average, live) towards its live tensor:
/// avg ← d·avg + (1 − d)·live.
pub fn follow(pairs: &[(Tensor, Tensor)], d: f64) {
    tch::no_grad(|| {
        for (avg, live) in pairs {
            let _ = avg.shallow_clone().lerp_(live, 1.0 - d);
        }
    });
}

/// The averages of a VarStore's variables, paired with them.
pub struct Average {
    ema: f64,
    /// (average, live), in name order.
    pairs: Vec<(Tensor, Tensor)>,
}

impl Average {
    /// Adds `avg.<name>` for every variable of `vs` that has none, equal
    /// to it, when `ema` > 0 (build the model first, then this, then load
    /// a checkpoint); the averages of `vs` paired with their variables, or
    /// `None` when `ema` is 0.
    pub fn attach(vs: &nn::VarStore, ema: f64) -> Option<Average> {
        if ema <= 0.0 {
            return None;
        }
        let vars = vs.variables();
        let mut names: Vec<&String> = vars.keys().filter(|n| !n.starts_with(PREFIX)).collect();
        names.sort();
        let mut pairs = Vec::with_capacity(names.len());
        for name in names {
            let live = &vars[name];
            let avg = match vars.get(&format!("{PREFIX}{name}")) {
                Some(a) => a.shallow_clone(),
                None => {
                    // A VarStore name cannot hold a '.': one sub-path per part.
                    let mut parts: Vec<&str> = PREFIX.trim_end_matches('.').split('.').collect();
                    parts.extend(name.split('.'));
                    let (last, dirs) = parts.split_last().expect("a name");
                    let path = dirs.iter().fold(vs.root(), |p, d| p / *d);
                    let a = path.zeros_no_train(last, &live.size());
                    tch::no_grad(|| a.shallow_clone().copy_(&live.to_kind(a.kind())));
                    a
                }
            };
            pairs.push((avg, live.shallow_clone()));
        }
        Some(Average { ema, pairs })
    }

    /// The update after training step `step` (0-based).
    pub fn update(&self, step: u64) {
        follow(&self.pairs, decay(self.ema, step));
    }

    /// Runs `f` with the averages in the live variables, then puts the
    /// live values back (bit for bit).
    pub fn swapped<R>(&self, f: impl FnOnce() -> R) -> R {
        let kept: Vec<Tensor> = tch::no_grad(|| {
            self.pairs
                .iter()
                .map(|(avg, live)| {
                    let k = live.copy();
                    live.shallow_clone().copy_(avg);
                    k
                })
                .collect()
        });
        let r = f();
        tch::no_grad(|| {
            for ((_, live), k) in self.pairs.iter().zip(&kept) {
                live.shallow_clone().copy_(k);
            }
        });
        r
    }

    /// Puts the averages into the live variables for good (a trained
    /// model about to be used).
    pub fn install(&self) {
        tch::no_grad(|| {
            for (avg, live) in &self.pairs {
                live.shallow_clone().copy_(avg);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The averages follow the recursion written out by hand over a
    /// sequence of live values, for a trained weight and a buffer;
    /// `swapped` shows them and restores the live values; `install` keeps
    /// them.
    #[test]
    fn averages_follow_the_recursion_and_swap_back() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .sub("enc")
            .var("weight", &[3], nn::Init::Const(1.0));
        let b = vs.root().sub("bn").ones_no_train("running_var", &[2]);
        let avg = Average::attach(&vs, 0.9).expect("ema > 0");
        // Attaching twice adds nothing and pairs the same averages.
        let again = Average::attach(&vs, 0.9).expect("ema > 0");
        assert_eq!(again.pairs.len(), 2);
        assert_eq!(vs.variables().len(), 4);
        assert!(!vs.variables()["avg.enc.weight"].requires_grad());
        let mut want_w = 1.0f64;
        let mut want_b = 1.0f64;
        for step in 0..40u64 {
            let (vw, vb) = (step as f64 * 0.5 - 3.0, (step as f64).sin());
            tch::no_grad(|| {
                let _ = w.shallow_clone().fill_(vw);
                let _ = b.shallow_clone().fill_(vb);
            });
            avg.update(step);
            let n = (step + 1) as f64;
            let d = if (1.0 + n) / (10.0 + n) < 0.9 {
                (1.0 + n) / (10.0 + n)
            } else {
                0.9
            };
            want_w = d * want_w + (1.0 - d) * vw;
            want_b = d * want_b + (1.0 - d) * vb;
        }
        let vars = vs.variables();
        let got_w = Vec::<f64>::try_from(vars["avg.enc.weight"].to_kind(Kind::Double)).unwrap();
        let got_b = Vec::<f64>::try_from(vars["avg.bn.running_var"].to_kind(Kind::Double)).unwrap();
        assert!(
            got_w.iter().all(|g| (g - want_w).abs() < 1e-5),
            "{got_w:?} vs {want_w}"
        );
        assert!(
            got_b.iter().all(|g| (g - want_b).abs() < 1e-5),
            "{got_b:?} vs {want_b}"
        );
        let live_w = w.double_value(&[0]);
        let seen = avg.swapped(|| w.double_value(&[0]));
        assert!((seen - want_w).abs() < 1e-5);
        assert_eq!(w.double_value(&[0]), live_w);
        avg.install();
        assert!((w.double_value(&[0]) - want_w).abs() < 1e-5);
        assert!((b.double_value(&[1]) - want_b).abs() < 1e-5);
        assert!(Average::attach(&nn::VarStore::new(Device::Cpu), 0.0).is_none());
    }
}
