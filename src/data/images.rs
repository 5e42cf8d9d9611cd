//! Image folders (a folder of `.png`/`.jpg` files, as CelebA is distributed)
//! to a sample matrix, one row per image.
//!
//! Each image is decoded (the format is detected from the file's content),
//! converted to 8-bit RGB or 8-bit grayscale, cropped, resized with a
//! triangle (bilinear) filter, scaled to [0, 1] and flattened in height,
//! width, channel order: row `r` of the matrix holds, for an RGB image of
//! width `w`, the value of channel `c` of pixel `(x, y)` at column
//! `(y * w + x) * 3 + c`.
//!
//! Conventions worth knowing when comparing with other tools:
//!
//! * An alpha channel is dropped (not blended against a background), as
//!   Pillow's `convert("RGB")` does; 16-bit images are reduced to 8 bits.
//! * Grayscale conversion of a colour image uses the ITU-R 601-2 luma of
//!   Pillow's `convert("L")` (and torchvision's `Grayscale`) with Pillow's
//!   integer rounding, `L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`, that is
//!   0.299 R + 0.587 G + 0.114 B rounded, so it matches Pillow exactly; a
//!   grayscale file is read as it is.
//! * EXIF orientation tags are not applied (neither does Pillow's
//!   `Image.open`, nor torchvision's loaders).
//! * Resizing is `image::imageops::resize` with `FilterType::Triangle`: a
//!   tent filter widened by the scale factor when shrinking (so it averages
//!   over the source pixels, antialiased), weights renormalised at the image
//!   borders, computed in `f32` and rounded to 8 bits. It is close to, but
//!   not bit-identical with, Pillow's or torchvision's bilinear resize.

use std::ops::Range;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageBuffer, Pixel};
use ndarray::Array2;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Which part of each image to keep before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// The whole image.
    None,
    /// The largest centred square: side `min(width, height)`, offsets
    /// `((width − side) / 2, (height − side) / 2)` rounded down.
    Center,
    /// A box of `width × height` pixels whose top-left pixel is
    /// `(left, top)`; it must lie inside the image.
    Box {
        /// Column of the box's left edge (0 = the image's left edge).
        left: u32,
        /// Row of the box's top edge (0 = the image's top edge).
        top: u32,
        /// Width of the box in pixels.
        width: u32,
        /// Height of the box in pixels.
        height: u32,
    },
}

/// How each image becomes a row: crop, then resize to `size`, in colour or
/// grayscale.
///
/// CelebA's usual preprocessing of its 178 × 218 aligned images keeps a
/// centred 140 × 140 box, whose top-left corner is (19, 39), and resizes it
/// to 64 × 64 ([`ImageSpec::celeba64`]):
///
/// ```
/// use tglml::data::images::{Crop, ImageSpec};
/// let spec = ImageSpec {
///     size: (64, 64),
///     crop: Crop::Box { left: 19, top: 39, width: 140, height: 140 },
///     grayscale: false,
/// };
/// assert_eq!(spec, ImageSpec::celeba64());
/// assert_eq!(spec.features(), 64 * 64 * 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    /// Output size `(width, height)` in pixels, after cropping. When it
    /// equals the cropped size, pixels are copied without resampling.
    pub size: (u32, u32),
    /// The part of each image to keep before resizing.
    pub crop: Crop,
    /// One luma channel instead of three RGB channels.
    pub grayscale: bool,
}

impl ImageSpec {
    /// CelebA's common 64 × 64 RGB preprocessing: the centred 140 × 140 box
    /// at (19, 39) of the 178 × 218 aligned images, resized to 64 × 64.
    pub fn celeba64() -> Self {
        ImageSpec {
            size: (64, 64),
            crop: Crop::Box {
                left: 19,
                top: 39,
                width: 140,
                height: 140,
            },
            grayscale: false,
        }
    }

    /// Channels per pixel: 1 for grayscale, 3 for RGB.
    pub fn channels(&self) -> usize {
        if self.grayscale {
            1
        } else {
            3
        }
    }

    /// Values per image (the row length): width × height × channels.
    pub fn features(&self) -> usize {
        self.size.0 as usize * self.size.1 as usize * self.channels()
    }
}

/// The image files of `dir`: files (not sub-folders; the folder is not
/// searched recursively) whose extension is `png`, `jpg` or `jpeg` in any
/// case, sorted by file name. An empty result is an error.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |e| Error::io(dir, "listing the folder", e);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let is_image = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e == "png" || e == "jpg" || e == "jpeg"
        });
        // `is_file` follows symbolic links.
        if is_image && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::invalid(
            dir.display().to_string(),
            "no .png, .jpg or .jpeg images in the folder",
        ));
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Decodes one image and applies `spec`: crop, resize (triangle filter),
/// RGB or grayscale; returns its `spec.features()` values in [0, 1] in
/// height, width, channel order.
pub fn load_image(path: &Path, spec: &ImageSpec) -> Result<Vec<f64>> {
    let what = || path.display().to_string();
    check_size(path, spec)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, "reading", e))?
        .decode()
        .map_err(|e| Error::invalid(what(), format!("cannot decode the image: {e}")))?;
    let (iw, ih) = (img.width(), img.height());
    let (left, top, cw, ch) = match spec.crop {
        Crop::None => (0, 0, iw, ih),
        Crop::Center => {
            let side = iw.min(ih);
            ((iw - side) / 2, (ih - side) / 2, side, side)
        }
        Crop::Box {
            left,
            top,
            width,
            height,
        } => {
            let inside = width > 0
                && height > 0
                && left as u64 + width as u64 <= iw as u64
                && top as u64 + height as u64 <= ih as u64;
            if !inside {
                return Err(Error::invalid(
                    what(),
                    format!(
                        "the crop box of {width}×{height} pixels at ({left}, {top}) does not \
                         fit in the image of {iw}×{ih} pixels"
                    ),
                ));
            }
            (left, top, width, height)
        }
    };
    if cw == 0 || ch == 0 {
        return Err(Error::invalid(
            what(),
            format!("the image is empty ({iw}×{ih} pixels)"),
        ));
    }
    Ok(if spec.grayscale {
        prepare(to_luma8(img), (left, top, cw, ch), spec.size)
    } else {
        prepare(to_rgb8(img), (left, top, cw, ch), spec.size)
    })
}

/// The output size must be positive.
fn check_size(path: &Path, spec: &ImageSpec) -> Result<()> {
    let (w, h) = spec.size;
    if w == 0 || h == 0 {
        return Err(Error::invalid(
            path.display().to_string(),
            format!("the output size must be positive, got {w}×{h}"),
        ));
    }
    Ok(())
}

/// `img` as 8-bit grayscale: a grayscale image keeps its values (reduced to
/// 8 bits, alpha dropped), a colour image gets Pillow's ITU-R 601-2 luma.
fn to_luma8(img: DynamicImage) -> image::GrayImage {
    match img {
        DynamicImage::ImageLuma8(i) => i,
        DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => img.to_luma8(),
        colour => {
            let rgb = to_rgb8(colour);
            let (w, h) = rgb.dimensions();
            let luma = rgb
                .into_raw()
                .chunks_exact(3)
                .map(|p| luma601(p[0], p[1], p[2]))
                .collect();
            image::GrayImage::from_raw(w, h, luma).expect("one value per pixel")
        }
    }
}

/// Pillow's `L = R·299/1000 + G·587/1000 + B·114/1000`, in its 16-bit fixed
/// point with rounding.
fn luma601(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

/// `img` as 8-bit RGB, without a copy where it already is.
fn to_rgb8(img: DynamicImage) -> image::RgbImage {
    match img {
        DynamicImage::ImageRgb8(i) => i,
        other => other.to_rgb8(),
    }
}

/// Crops `(left, top, width, height)`, resizes to `size` and scales to [0, 1].
fn prepare<P>(
    img: ImageBuffer<P, Vec<u8>>,
    (left, top, width, height): (u32, u32, u32, u32),
    size: (u32, u32),
) -> Vec<f64>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    let whole = (left, top, width, height) == (0, 0, img.width(), img.height());
    let cropped = if whole {
        img
    } else {
        imageops::crop_imm(&img, left, top, width, height).to_image()
    };
    let out = if size == (width, height) {
        cropped
    } else {
        imageops::resize(&cropped, size.0, size.1, FilterType::Triangle)
    };
    out.into_raw()
        .into_iter()
        .map(|v| v as f64 / 255.0)
        .collect()
}

/// Loads the images `range` of `dir` (indices into [`list_images`]' order)
/// as a matrix of `range.len()` rows and `spec.features()` columns (see
/// [`load_image`]), with their file names in the same order.
///
/// Images are decoded in parallel (rayon); the result does not depend on
/// the number of threads, and when several images fail the error reported
/// is that of the first in the order of the folder.
pub fn read_image_folder(
    dir: &Path,
    spec: &ImageSpec,
    range: Range<usize>,
) -> Result<(Array2<f64>, Vec<String>)> {
    check_size(dir, spec)?;
    let files = list_images(dir)?;
    if range.start > range.end || range.end > files.len() {
        return Err(Error::invalid(
            dir.display().to_string(),
            format!(
                "images {}..{} requested, but the folder has {} images",
                range.start,
                range.end,
                files.len()
            ),
        ));
    }
    let files = &files[range];
    let d = spec.features();
    let mut data = vec![0.0; files.len() * d];
    let failures: Vec<Option<Error>> = data
        .par_chunks_mut(d)
        .zip(files.par_iter())
        .map(|(row, path)| match load_image(path, spec) {
            Ok(v) => {
                row.copy_from_slice(&v);
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    if let Some(e) = failures.into_iter().flatten().next() {
        return Err(e);
    }
    let names = files
        .iter()
        .map(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    let m = Array2::from_shape_vec((files.len(), d), data)
        .map_err(|e| Error::external(dir.display().to_string(), e))?;
    Ok((m, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Largest difference, in 8-bit levels, allowed between this module's
    /// JPEG decode (zune-jpeg) and Pillow's (libjpeg-turbo); see
    /// tests/fixtures/images/README.md.
    const JPEG_MAX_DIFF: f64 = 4.0;
    /// Largest mean absolute difference (8-bit levels) allowed for JPEGs.
    const JPEG_MEAN_DIFF: f64 = 0.5;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images")
    }

    /// A record of pillow_pixels.txt.
    struct Record {
        file: String,
        op: String,
        mode: String,
        width: u32,
        height: u32,
        values: Vec<f64>,
    }

    fn pillow() -> Vec<Record> {
        let text = std::fs::read_to_string(fixtures().join("pillow_pixels.txt")).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (head, vals) = l.split_once(" : ").unwrap();
                let h: Vec<&str> = head.split_whitespace().collect();
                Record {
                    file: h[0].into(),
                    op: h[1].into(),
                    mode: h[2].into(),
                    width: h[3].parse().unwrap(),
                    height: h[4].parse().unwrap(),
                    values: vals
                        .split_whitespace()
                        .map(|v| v.parse().unwrap())
                        .collect(),
                }
            })
            .collect()
    }

    fn levels(v: &[f64]) -> Vec<f64> {
        v.iter().map(|x| x * 255.0).collect()
    }

    fn max_diff(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    fn spec(size: (u32, u32), crop: Crop, grayscale: bool) -> ImageSpec {
        ImageSpec {
            size,
            crop,
            grayscale,
        }
    }

    fn src(name: &str) -> PathBuf {
        fixtures().join("src").join(name)
    }

    #[test]
    fn png_decodes_exactly_as_pillow() {
        let records = pillow();
        let pngs: Vec<&Record> = records
            .iter()
            .filter(|r| r.op == "none" && r.file.ends_with(".png"))
            .collect();
        assert_eq!(pngs.len(), 5);
        for r in pngs {
            let s = spec((r.width, r.height), Crop::None, r.mode == "L");
            let v = load_image(&src(&r.file), &s).unwrap();
            assert_eq!(v.len(), s.features());
            assert_eq!(levels(&v), r.values, "{}", r.file);
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }

    #[test]
    fn crops_equal_pillow_crops() {
        let records = pillow();
        let crops: Vec<&Record> = records
            .iter()
            .filter(|r| r.op == "center" || r.op.starts_with("box:"))
            .collect();
        assert_eq!(crops.len(), 6);
        for r in crops {
            let crop = if r.op == "center" {
                Crop::Center
            } else {
                let b: Vec<u32> = r.op["box:".len()..]
                    .split(',')
                    .map(|v| v.parse().unwrap())
                    .collect();
                Crop::Box {
                    left: b[0],
                    top: b[1],
                    width: b[2],
                    height: b[3],
                }
            };
            let s = spec((r.width, r.height), crop, r.mode == "L");
            let v = load_image(&src(&r.file), &s).unwrap();
            assert_eq!(levels(&v), r.values, "{} {}", r.file, r.op);
        }
    }

    #[test]
    fn jpeg_close_to_pillow() {
        let records = pillow();
        let jpegs: Vec<&Record> = records
            .iter()
            .filter(|r| r.op == "none" && !r.file.ends_with(".png"))
            .collect();
        assert_eq!(jpegs.len(), 3);
        for r in jpegs {
            let s = spec((r.width, r.height), Crop::None, r.mode == "L");
            let v = levels(&load_image(&src(&r.file), &s).unwrap());
            let max = max_diff(&v, &r.values);
            let mean = v
                .iter()
                .zip(&r.values)
                .map(|(a, b)| (a - b).abs())
                .sum::<f64>()
                / v.len() as f64;
            assert!(max <= JPEG_MAX_DIFF, "{}: max difference {max}", r.file);
            assert!(mean <= JPEG_MEAN_DIFF, "{}: mean difference {mean}", r.file);
        }
    }

    #[test]
    fn grayscale_of_colour_equals_pillow_convert_l() {
        let records = pillow();
        let grays: Vec<&Record> = records.iter().filter(|r| r.op == "gray").collect();
        assert_eq!(grays.len(), 4);
        for r in grays {
            let s = spec((r.width, r.height), Crop::None, true);
            let v = levels(&load_image(&src(&r.file), &s).unwrap());
            if r.file.ends_with(".png") {
                assert_eq!(v, r.values, "{}", r.file);
            } else {
                assert!(max_diff(&v, &r.values) <= JPEG_MAX_DIFF, "{}", r.file);
            }
        }
        assert_eq!(luma601(255, 255, 255), 255);
        assert_eq!(luma601(0, 0, 0), 0);
        assert_eq!(luma601(100, 100, 100), 100);
    }

    /// Writes an 8-bit RGB PNG whose pixel (x, y) is `f(x, y)`.
    fn write_png(
        dir: &Path,
        name: &str,
        w: u32,
        h: u32,
        f: impl Fn(u32, u32) -> [u8; 3],
    ) -> PathBuf {
        let p = dir.join(name);
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(&p)
            .unwrap();
        p
    }

    /// Closed form of a 2× bilinear (triangle) downscale of the linear ramp
    /// `a + b·i`, i = 0..n: output pixel o averages source pixels 2o − 1 ..=
    /// 2o + 2 with weights 1, 3, 3, 1 (a tent of half-width 2 centred between
    /// 2o and 2o + 1), giving a + b(2o + ½); at the borders the missing
    /// pixel's weight is dropped and the rest renormalised (÷ 7).
    fn ramp_half(a: f64, b: f64, n: usize, o: usize) -> f64 {
        let m = n / 2;
        if o == 0 {
            a + b * 5.0 / 7.0 // (3·0 + 3·1 + 1·2) / 7
        } else if o == m - 1 {
            a + b * (n as f64 - 12.0 / 7.0) // (1·(n−3) + 3·(n−2) + 3·(n−1)) / 7
        } else {
            a + b * (2.0 * o as f64 + 0.5)
        }
    }

    #[test]
    fn resize_matches_closed_form_bilinear() {
        let dir = tempfile::tempdir().unwrap();
        // R = 8x, G = 4 + 8y, B constant: 16×12 → 8×6.
        let p = write_png(dir.path(), "ramp.png", 16, 12, |x, y| {
            [8 * x as u8, 4 + 8 * y as u8, 77]
        });
        let v = levels(&load_image(&p, &spec((8, 6), Crop::None, false)).unwrap());
        for y in 0..6 {
            for x in 0..8 {
                let at = (y * 8 + x) * 3;
                let r = ramp_half(0.0, 8.0, 16, x).round();
                let g = ramp_half(4.0, 8.0, 12, y).round();
                assert_eq!(&v[at..at + 3], &[r, g, 77.0], "pixel ({x}, {y})");
            }
        }
        // Interior values are exact: 16o + 4 and 16o + 8.
        assert_eq!(v[(2 * 8 + 3) * 3], 52.0);
        assert_eq!(v[(2 * 8 + 3) * 3 + 1], 40.0);
        // The same after a crop: the box (2, 2, 12, 8) is the ramp R = 16 + 8x, G = 20 + 8y.
        let crop = Crop::Box {
            left: 2,
            top: 2,
            width: 12,
            height: 8,
        };
        let v = levels(&load_image(&p, &spec((6, 4), crop, false)).unwrap());
        for y in 0..4 {
            for x in 0..6 {
                let at = (y * 6 + x) * 3;
                let r = ramp_half(16.0, 8.0, 12, x).round();
                let g = ramp_half(20.0, 8.0, 8, y).round();
                assert_eq!(&v[at..at + 3], &[r, g, 77.0], "cropped pixel ({x}, {y})");
            }
        }
        // A constant image stays constant at any scale, up or down.
        let p = write_png(dir.path(), "flat.png", 13, 9, |_, _| [200, 3, 99]);
        for size in [(5, 4), (1, 1), (26, 20), (13, 2)] {
            let v = levels(&load_image(&p, &spec(size, Crop::None, false)).unwrap());
            assert_eq!(v.len(), (size.0 * size.1 * 3) as usize);
            assert!(v.chunks(3).all(|c| c == [200.0, 3.0, 99.0]), "{size:?}");
            let g = levels(&load_image(&p, &spec(size, Crop::Center, true)).unwrap());
            // 0.299·200 + 0.587·3 + 0.114·99 = 73.05
            assert!(g.iter().all(|&x| x == 73.0), "{size:?}");
        }
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let png = std::fs::read(src("crop_20x24.png")).unwrap();
        let p = dir.path().join("cut.png");
        std::fs::write(&p, &png[..png.len() / 2]).unwrap();
        let e = load_image(&p, &spec((20, 24), Crop::None, false))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{d}/cut.png: cannot decode the image: ")),
            "{e}"
        );
        let p = dir.path().join("text.jpg");
        std::fs::write(&p, "not an image").unwrap();
        let e = load_image(&p, &spec((2, 2), Crop::None, false))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{d}/text.jpg: cannot decode the image: ")),
            "{e}"
        );
        let p = src("crop_20x24.png");
        let crop = Crop::Box {
            left: 3,
            top: 4,
            width: 10,
            height: 21,
        };
        let e = load_image(&p, &spec((4, 4), crop, false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}: the crop box of 10×21 pixels at (3, 4) does not fit in the image of \
                 20×24 pixels",
                p.display()
            )
        );
        let e = load_image(&p, &spec((0, 4), Crop::None, false))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("the output size must be positive, got 0×4"),
            "{e}"
        );
        let e = load_image(
            &dir.path().join("none.png"),
            &spec((1, 1), Crop::None, false),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Io {
                    action: "reading",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn list_images_filters_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.PNG", "a.jpg", "c.jpeg", "d.txt", "f.Jpg", "png", "g.gif"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("e.png")).unwrap();
        let names: Vec<String> = list_images(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "c.jpeg", "f.Jpg"]);
        let empty = dir.path().join("e.png");
        let e = list_images(&empty).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: no .png, .jpg or .jpeg images in the folder",
                empty.display()
            )
        );
        let e = list_images(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
    }

    #[test]
    fn folder_rows_are_the_images_in_order() {
        let dir = fixtures().join("src");
        let all = list_images(&dir).unwrap();
        assert_eq!(all.len(), 8);
        let s = spec((4, 3), Crop::Center, false);
        let (m, names) = read_image_folder(&dir, &s, 0..8).unwrap();
        assert_eq!(m.dim(), (8, 36));
        assert_eq!(
            names,
            [
                "crop_20x24.png",
                "gray_6x4.png",
                "palette_4x4.png",
                "photo_420.JPEG",
                "photo_444.jpg",
                "photo_gray.jpg",
                "rgb_7x5.png",
                "rgba_5x3.png"
            ]
        );
        for (i, p) in all.iter().enumerate() {
            assert_eq!(
                m.row(i).to_vec(),
                load_image(p, &s).unwrap(),
                "{}",
                p.display()
            );
        }
        // A sub-range, and the same result on one thread.
        let (sub, sub_names) = read_image_folder(&dir, &s, 2..5).unwrap();
        assert_eq!(sub, m.slice(ndarray::s![2..5, ..]));
        assert_eq!(sub_names, names[2..5]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (one, _) = pool.install(|| read_image_folder(&dir, &s, 0..8)).unwrap();
        assert_eq!(one, m);
        let (empty, none) = read_image_folder(&dir, &s, 8..8).unwrap();
        assert_eq!((empty.dim(), none.len()), ((0, 36), 0));
        let e = read_image_folder(&dir, &s, 6..9).unwrap_err().to_string();
        assert!(
            e.ends_with("images 6..9 requested, but the folder has 8 images"),
            "{e}"
        );

        // With two undecodable files, the first in folder order is reported.
        let tmp = tempfile::tempdir().unwrap();
        for name in ["a.png", "c.png", "e.png"] {
            std::fs::copy(src("rgb_7x5.png"), tmp.path().join(name)).unwrap();
        }
        std::fs::write(tmp.path().join("b.png"), b"\x89PNG broken").unwrap();
        std::fs::write(tmp.path().join("d.jpg"), b"broken").unwrap();
        for _ in 0..5 {
            let e = read_image_folder(tmp.path(), &s, 0..5)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "{}: cannot decode",
                    tmp.path().join("b.png").display()
                )),
                "{e}"
            );
        }
        let (ok, _) = read_image_folder(tmp.path(), &s, 2..3).unwrap();
        assert_eq!(
            ok.row(0).to_vec(),
            load_image(&src("rgb_7x5.png"), &s).unwrap()
        );
    }
}
