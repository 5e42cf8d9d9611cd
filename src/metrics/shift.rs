//! Distribution shifts of test rows, for the robustness curves of `tglml
//! eval`: Gaussian noise on any rows; Gaussian blur, rotation and contrast
//! on images (rows holding an `h` × `w` image in row-major order).

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// A kind of shift; its severity is in the unit [`Shift::unit`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// x + N(0, (s · range)²) independently per value.
    Noise,
    /// Separable Gaussian blur of standard deviation s pixels, radius
    /// ⌈3s⌉, edges repeated.
    Blur,
    /// Rotation by s degrees (counter-clockwise as displayed, rows going
    /// down) about the image's centre, bilinear; the value range's minimum
    /// where the source falls outside the image.
    Rotation,
    /// m + s (x − m), m the image's mean.
    Contrast,
}

impl Shift {
    pub const ALL: [Shift; 4] = [Shift::Noise, Shift::Blur, Shift::Rotation, Shift::Contrast];

    pub fn name(self) -> &'static str {
        match self {
            Shift::Noise => "noise",
            Shift::Blur => "blur",
            Shift::Rotation => "rotation",
            Shift::Contrast => "contrast",
        }
    }

    /// The unit of its severity.
    pub fn unit(self) -> &'static str {
        match self {
            Shift::Noise => "standard deviation, fraction of the value range",
            Shift::Blur => "standard deviation, pixels",
            Shift::Rotation => "degrees",
            Shift::Contrast => "factor (1 = unchanged)",
        }
    }

    /// Whether it needs images.
    pub fn images_only(self) -> bool {
        self != Shift::Noise
    }
}

/// `x` shifted by `shift` at `severity`: `image` is (h, w) for image rows,
/// `range` the data's (min, max), `seed` the noise's.
pub fn apply(
    x: ArrayView2<f64>,
    shift: Shift,
    severity: f64,
    image: Option<(usize, usize)>,
    range: (f64, f64),
    seed: u64,
) -> Result<Array2<f64>> {
    let hw = match (shift.images_only(), image) {
        (false, _) => (0, 0),
        (true, Some((h, w))) if h * w == x.ncols() => (h, w),
        (true, _) => {
            return Err(Error::invalid(
                format!("the {} shift", shift.name()),
                format!(
                    "needs image rows (eval.image_shape, height × width values), but rows have {} values",
                    x.ncols()
                ),
            ))
        }
    };
    let rows: Vec<Vec<f64>> = (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let v = x.index_axis(Axis(0), i).to_vec();
            match shift {
                Shift::Noise => {
                    let mut rng = ChaCha8Rng::seed_from_u64(
                        seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    let s = severity * (range.1 - range.0);
                    v.iter()
                        .map(|&a| {
                            let n: f64 = StandardNormal.sample(&mut rng);
                            a + s * n
                        })
                        .collect()
                }
                Shift::Blur => blur(&v, hw.0, hw.1, severity),
                Shift::Rotation => rotate(&v, hw.0, hw.1, severity, range.0),
                Shift::Contrast => {
                    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
                    v.iter().map(|&a| m + severity * (a - m)).collect()
                }
            }
        })
        .collect();
    Array2::from_shape_vec(x.dim(), rows.concat()).map_err(|e| Error::external("shift", e))
}

/// The normalised Gaussian kernel of standard deviation `s` (radius ⌈3s⌉).
fn kernel(s: f64) -> Vec<f64> {
    let r = (3.0 * s).ceil() as i64;
    let k: Vec<f64> = (-r..=r)
        .map(|d| (-(d * d) as f64 / (2.0 * s * s)).exp())
        .collect();
    let total: f64 = k.iter().sum();
    k.into_iter().map(|v| v / total).collect()
}

fn blur(v: &[f64], h: usize, w: usize, s: f64) -> Vec<f64> {
    if s <= 0.0 {
        return v.to_vec();
    }
    let k = kernel(s);
    let r = (k.len() / 2) as i64;
    let pass = |src: &[f64], along_rows: bool| -> Vec<f64> {
        let mut dst = vec![0.0; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    let d = t as i64 - r;
                    let (yy, xx) = if along_rows {
                        (y as i64, (x as i64 + d).clamp(0, w as i64 - 1))
                    } else {
                        ((y as i64 + d).clamp(0, h as i64 - 1), x as i64)
                    };
                    acc += kv * src[yy as usize * w + xx as usize];
                }
                dst[y * w + x] = acc;
            }
        }
        dst
    };
    pass(&pass(v, true), false)
}

fn rotate(v: &[f64], h: usize, w: usize, degrees: f64, background: f64) -> Vec<f64> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let at = |y: i64, x: i64| -> f64 {
        if y < 0 || x < 0 || y >= h as i64 || x >= w as i64 {
            background
        } else {
            v[y as usize * w + x as usize]
        }
    };
    let mut out = vec![0.0; v.len()];
    for y in 0..h {
        for x in 0..w {
            // The source of (y, x): the inverse rotation. With rows going
            // down, a counter-clockwise turn on screen maps (dx, dy) to
            // (dx cos + dy sin, −dx sin + dy cos); its inverse is below.
            let (dy, dx) = (y as f64 - cy, x as f64 - cx);
            let sx = cx + dx * cos - dy * sin;
            let sy = cy + dx * sin + dy * cos;
            // Snap values within rounding of a pixel (exact quarter turns).
            let snap = |t: f64| {
                if (t - t.round()).abs() < 1e-9 {
                    t.round()
                } else {
                    t
                }
            };
            let (sx, sy) = (snap(sx), snap(sy));
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = (sx - x0, sy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            out[y * w + x] = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
                + fy * ((1.0 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn img() -> Array2<f64> {
        // One 3 × 4 image.
        array![[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]]
    }

    #[test]
    fn zero_severity_is_the_identity() {
        let x = img();
        for (s, v) in [
            (Shift::Noise, 0.0),
            (Shift::Blur, 0.0),
            (Shift::Rotation, 0.0),
            (Shift::Contrast, 1.0),
        ] {
            let y = apply(x.view(), s, v, Some((3, 4)), (0.0, 11.0), 1).unwrap();
            assert!(y.abs_diff_eq(&x, 1e-12), "{s:?}: {y}");
        }
    }

    /// A quarter turn of a square image is a transpose and a flip: with
    /// rows going down, a counter-clockwise turn moves the top right
    /// corner to the top left.
    #[test]
    fn quarter_turn_is_a_permutation() {
        let x = array![[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]];
        let y = apply(x.view(), Shift::Rotation, 90.0, Some((3, 3)), (0.0, 9.0), 0).unwrap();
        assert!(
            y.abs_diff_eq(
                &array![[3.0, 6.0, 9.0, 2.0, 5.0, 8.0, 1.0, 4.0, 7.0]],
                1e-12
            ),
            "{y}"
        );
        // Outside the image: the background (a 4 × 2 image turned 90°
        // draws from beyond its sides).
        let z = apply(
            img().slice(ndarray::s![.., 0..8]),
            Shift::Rotation,
            90.0,
            Some((4, 2)),
            (-5.0, 9.0),
            0,
        )
        .unwrap();
        assert!(z.iter().any(|&v| v == -5.0));
    }

    /// A single bright pixel blurs into the outer product of the 1-D
    /// kernel; the total is kept away from the edges; a constant image is
    /// unchanged.
    #[test]
    fn blur_of_a_point_is_the_gaussian() {
        let (h, w) = (9, 9);
        let mut x = Array2::zeros((1, h * w));
        x[[0, 4 * w + 4]] = 1.0;
        let y = apply(x.view(), Shift::Blur, 1.0, Some((h, w)), (0.0, 1.0), 0).unwrap();
        let k = kernel(1.0);
        assert_eq!(k.len(), 7);
        for dy in 0..7 {
            for dx in 0..7 {
                let got = y[[0, (1 + dy) * w + 1 + dx]];
                assert!((got - k[dy] * k[dx]).abs() < 1e-15);
            }
        }
        assert!((y.sum() - 1.0).abs() < 1e-12);
        let flat = Array2::from_elem((1, h * w), 0.3);
        let f = apply(flat.view(), Shift::Blur, 1.7, Some((h, w)), (0.0, 1.0), 0).unwrap();
        assert!(f.iter().all(|v| (v - 0.3).abs() < 1e-12));
    }

    #[test]
    fn contrast_pulls_to_the_mean_and_noise_has_its_scale() {
        let x = img();
        let y = apply(x.view(), Shift::Contrast, 0.5, Some((3, 4)), (0.0, 11.0), 0).unwrap();
        assert!((y[[0, 0]] - (5.5 - 2.75)).abs() < 1e-12);
        assert!((y.mean().unwrap() - 5.5).abs() < 1e-12);
        let zeros = Array2::zeros((200, 50));
        let n = apply(zeros.view(), Shift::Noise, 0.1, None, (0.0, 2.0), 7).unwrap();
        let sd = (n.iter().map(|v| v * v).sum::<f64>() / n.len() as f64).sqrt();
        assert!((sd - 0.2).abs() < 0.005, "{sd}");
        let again = apply(zeros.view(), Shift::Noise, 0.1, None, (0.0, 2.0), 7).unwrap();
        assert_eq!(n, again, "seeded");
        assert!(apply(x.view(), Shift::Blur, 1.0, None, (0.0, 1.0), 0).is_err());
    }
}
