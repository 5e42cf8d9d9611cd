//! PNG plots of results, written atomically like every output.

use std::path::Path;

use ndarray::Array2;

use crate::error::{Error, Result};

/// A scatter plot of the first two latent coordinates (one point per test
/// sample, coloured by label when there are labels), written atomically as
/// a PNG.
pub fn scatter_png(z: &Array2<f64>, labels: Option<&[i64]>, path: &Path) -> Result<()> {
    const SIZE: u32 = 640;
    const MARGIN: f64 = 20.0;
    const PALETTE: [[u8; 3]; 10] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ];
    let mut img = image::RgbImage::from_pixel(SIZE, SIZE, image::Rgb([255, 255, 255]));
    if z.nrows() > 0 {
        let col = |j: usize| -> Vec<f64> {
            if j < z.ncols() {
                z.column(j).to_vec()
            } else {
                vec![0.0; z.nrows()]
            }
        };
        let (xs, ys) = (col(0), col(1));
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (lo, if hi > lo { hi - lo } else { 1.0 })
        };
        let ((x0, xw), (y0, yw)) = (range(&xs), range(&ys));
        let span = SIZE as f64 - 2.0 * MARGIN;
        for i in 0..z.nrows() {
            let px = MARGIN + (xs[i] - x0) / xw * span;
            let py = SIZE as f64 - MARGIN - (ys[i] - y0) / yw * span;
            let c = labels.map_or([0, 0, 0], |l| {
                PALETTE[(l[i].rem_euclid(PALETTE.len() as i64)) as usize]
            });
            for dx in -1i64..=1 {
                for dy in -1i64..=1 {
                    let (u, v) = (px as i64 + dx, py as i64 + dy);
                    if (0..SIZE as i64).contains(&u) && (0..SIZE as i64).contains(&v) {
                        img.put_pixel(u as u32, v as u32, image::Rgb(c));
                    }
                }
            }
        }
    }
    let tmp = super::output::temp_name(path)?;
    super::output::track(&tmp);
    let done = img
        .save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| Error::external(format!("{}: writing the plot", tmp.display()), e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "renaming", e)));
    if done.is_err() {
        super::output::remove_one(&tmp);
    }
    super::output::untrack(&tmp);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_plot_draws_every_label() {
        let dir = tempfile::tempdir().unwrap();
        let z = ndarray::array![[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]];
        let path = dir.path().join("latent.png");
        scatter_png(&z, Some(&[0, 1, 2]), &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 640));
        for c in [[31u8, 119, 180], [255, 127, 14], [44, 160, 44]] {
            assert!(img.pixels().any(|p| p.0 == c), "colour {c:?} drawn");
        }
        // Corners of the data range land at the margins.
        assert_eq!(img.get_pixel(20, 619).0, [31, 119, 180]);
        assert_eq!(img.get_pixel(619, 20).0, [255, 127, 14]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file"
        );
    }
}
