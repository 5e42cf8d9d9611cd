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
    save_atomic(&img, path)
}

/// Writes `img` to `path` as a PNG through a temporary file (removed on
/// failure).
fn save_atomic(img: &image::RgbImage, path: &Path) -> Result<()> {
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

/// A grid of grey images, `cols` per row, 2 pixels of white between them,
/// each image scaled up `zoom` times: the first `cols`² (at most) rows of
/// `images`, each a `side` × `side` image in row-major order, its values
/// mapped from [lo, hi] to black..white (`range`; values outside it are
/// clipped), written atomically as a PNG.
pub fn image_grid_png(
    images: &Array2<f64>,
    side: usize,
    cols: usize,
    range: (f64, f64),
    path: &Path,
) -> Result<()> {
    if side == 0 || images.ncols() != side * side || cols == 0 {
        return Err(Error::invalid(
            path.display().to_string(),
            format!(
                "an image grid needs rows of {side} × {side} values, got {}",
                images.ncols()
            ),
        ));
    }
    const ZOOM: usize = 2;
    const GAP: usize = 2;
    let n = images.nrows().min(cols * cols);
    let rows = n.div_ceil(cols).max(1);
    let cell = side * ZOOM + GAP;
    let (w, h) = ((cols * cell + GAP) as u32, (rows * cell + GAP) as u32);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let (lo, hi) = range;
    let span = if hi > lo { hi - lo } else { 1.0 };
    for k in 0..n {
        let (r0, c0) = (GAP + (k / cols) * cell, GAP + (k % cols) * cell);
        for (j, &v) in images.row(k).iter().enumerate() {
            let g = (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8;
            // Fashion-MNIST's convention: ink is bright; drawn dark on white.
            let g = 255 - g;
            let (y, x) = (j / side, j % side);
            for dy in 0..ZOOM {
                for dx in 0..ZOOM {
                    img.put_pixel(
                        (c0 + x * ZOOM + dx) as u32,
                        (r0 + y * ZOOM + dy) as u32,
                        image::Rgb([g, g, g]),
                    );
                }
            }
        }
    }
    save_atomic(&img, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each image lands in its cell, its values mapped to grey (high
    /// values dark), clipped to the range.
    #[test]
    fn image_grid_places_each_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        // Three 2 × 2 images: all low, all high, one high pixel (top right).
        let x = ndarray::array![
            [0.0, 0.0, 0.0, 0.0],
            [1.0, 1.0, 2.0, 1.0],
            [0.0, 0.5, 0.0, 0.0]
        ];
        image_grid_png(&x, 2, 2, (0.0, 1.0), &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 2 columns, 2 rows of cells of 2·2 + 2 pixels, and the border.
        assert_eq!(img.dimensions(), (14, 14));
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]); // image 0
        assert_eq!(img.get_pixel(8, 2).0, [0, 0, 0]); // image 1, clipped
        assert_eq!(img.get_pixel(11, 5).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 8).0, [127, 127, 127]); // image 2: (0, 1), 255 − 128
        assert_eq!(img.get_pixel(2, 8).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(6, 6).0, [255, 255, 255]); // a gap
        assert!(image_grid_png(&x, 3, 2, (0.0, 1.0), &path).is_err());
    }

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
