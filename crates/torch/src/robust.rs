//! Robustness of a trained autoencoder (`tglml eval`, `/robustness`):
//! test rows attacked (FGSM, PGD: L∞ perturbations that maximise the
//! reconstruction error) or shifted ([`tglml::metrics::shift`]), then
//! encoded and decoded. Each curve gives, per severity, the reconstruction
//! error against the clean rows and how far the codes moved.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::generate::Trained;
use crate::geodesic::to_tensor as tensor;
use tglml::config::EvalConfig;
use tglml::error::{Error, Result};
use tglml::metrics::shift::{self, Shift};

/// One degradation curve.
pub struct Curve {
    /// fgsm, pgd, noise, blur, rotation, contrast.
    pub name: &'static str,
    /// The unit of its severities.
    pub unit: &'static str,
    /// Per severity: (severity, reconstruction RMSE against the clean rows
    /// in the data's units, mean latent displacement ‖z' − z‖, the same
    /// over the clean codes' RMS spread around their mean).
    pub rows: Vec<[f64; 4]>,
}

/// The attacked or shifted rows' measures against the clean ones.
struct Clean<'a> {
    t: &'a Trained,
    x: Tensor,
    z: Tensor,
    spread: f64,
}

impl Clean<'_> {
    fn measure(&self, severity: f64, shifted: &Tensor) -> Result<[f64; 4]> {
        let (z, r) = tglml::runtime::fallible("encoding the shifted rows", || {
            tch::no_grad(|| self.t.autoencode(shifted))
        })?
        .expect("checked: an autoencoder");
        let rmse = (r - &self.x)
            .square()
            .mean(Kind::Double)
            .sqrt()
            .double_value(&[]);
        let disp = (z - &self.z)
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
            .sqrt()
            .mean(Kind::Double)
            .double_value(&[]);
        Ok([severity, rmse, disp, disp / self.spread])
    }

    /// ∇ of the reconstruction error ‖dec(enc(x')) − x‖² at `xa`.
    fn gradient(&self, xa: &Tensor) -> Result<Tensor> {
        tglml::runtime::fallible("the attack's gradient", || {
            let xa = xa.detach().set_requires_grad(true);
            let (_, r) = self.t.autoencode(&xa).expect("checked: an autoencoder");
            let loss = (r - &self.x).square().sum(Kind::Double);
            Tensor::run_backward(&[loss], &[&xa], false, false).remove(0)
        })
    }
}

/// Every curve of `x` (test rows in the data's units): the attacks over
/// eval.attack_eps, the shifts over their grids (the image shifts when
/// `image` is given).
pub fn curves(
    t: &Trained,
    x: &Array2<f64>,
    cfg: &EvalConfig,
    image: Option<(usize, usize)>,
) -> Result<Vec<Curve>> {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = if hi > lo { hi - lo } else { 1.0 };
    let xt = tensor(x.view());
    let (z, _) = tglml::runtime::fallible("encoding the test rows", || {
        tch::no_grad(|| t.autoencode(&xt))
    })?
    .ok_or_else(|| Error::invalid("eval.robustness", "the model has no encoder and decoder"))?;
    let centred = &z - z.mean_dim([0i64].as_slice(), true, Kind::Double);
    let spread = centred
        .square()
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
        .mean(Kind::Double)
        .sqrt()
        .double_value(&[]);
    let clean = Clean {
        t,
        x: xt.shallow_clone(),
        z,
        spread: if spread > 0.0 { spread } else { 1.0 },
    };
    let mut out = Vec::new();
    let clamp = |v: Tensor| v.clamp(lo, hi);
    // FGSM: one signed gradient step of size ε.
    let mut fgsm = Vec::new();
    for &e in &cfg.attack_eps {
        let eps = e * range;
        let xa = if eps == 0.0 {
            xt.shallow_clone()
        } else {
            clamp(&xt + clean.gradient(&xt)?.sign() * eps)
        };
        fgsm.push(clean.measure(e, &xa)?);
    }
    out.push(Curve {
        name: "fgsm",
        unit: "L∞ radius ε, fraction of the value range",
        rows: fgsm,
    });
    // PGD: a uniform start in the ε-ball, then steps of 2.5 ε / steps,
    // each projected back into the ball and the value range.
    let mut pgd = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x9D6);
    for &e in &cfg.attack_eps {
        let eps = e * range;
        if eps == 0.0 {
            pgd.push(clean.measure(e, &xt)?);
            continue;
        }
        let start: Vec<f64> = (0..x.len()).map(|_| rng.random_range(-eps..=eps)).collect();
        let mut xa =
            clamp(&xt + Tensor::from_slice(&start).view([x.nrows() as i64, x.ncols() as i64]));
        let alpha = 2.5 * eps / cfg.pgd_steps as f64;
        for _ in 0..cfg.pgd_steps {
            let g = clean.gradient(&xa)?;
            let stepped = &xa + g.sign() * alpha;
            let (low, high) = (&xt - eps, &xt + eps);
            xa = clamp(stepped.max_other(&low).min_other(&high));
        }
        pgd.push(clean.measure(e, &xa)?);
    }
    out.push(Curve {
        name: "pgd",
        unit: "L∞ radius ε, fraction of the value range",
        rows: pgd,
    });
    for s in Shift::ALL {
        if s.images_only() && image.is_none() {
            continue;
        }
        let grid = match s {
            Shift::Noise => &cfg.shift_noise,
            Shift::Blur => &cfg.shift_blur,
            Shift::Rotation => &cfg.shift_rotation,
            Shift::Contrast => &cfg.shift_contrast,
        };
        let mut rows = Vec::new();
        for &v in grid {
            let shifted = shift::apply(x.view(), s, v, image, (lo, hi), cfg.seed)?;
            rows.push(clean.measure(v, &tensor(shifted.view()))?);
        }
        out.push(Curve {
            name: s.name(),
            unit: s.unit(),
            rows,
        });
    }
    Ok(out)
}
