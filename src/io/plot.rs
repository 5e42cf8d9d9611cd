//! PNG plots of results, written atomically like every output: charts with
//! axes, titles, legends and error bars drawn by plotters into an RGB buffer
//! (the text in DejaVu Sans, compiled in by build.rs), and grids of images.

use std::path::Path;
use std::sync::Once;

use ndarray::Array2;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Colours of classes and settings, in order (matplotlib's tab10).
pub const PALETTE: [[u8; 3]; 10] = [
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

/// The font of every plot's text (build.rs found it; see TGLML_FONT).
static FONT: &[u8] = include_bytes!(env!("TGLML_FONT_FILE"));

/// Registers [`FONT`] as plotters' "sans-serif" (once).
fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A font that build.rs found but ab_glyph cannot read leaves the
        // plots without text, not a failed run.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            eprintln!("warning: the font compiled into tglml is not a TrueType font ab_glyph reads: plots have no text");
        }
    });
}

fn colour(i: usize) -> RGBColor {
    let [r, g, b] = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// A chart's title and axis labels (with units).
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// A named series of (x, y, e) points: a line through them, each with an
/// error bar y ± e (none where e is 0 or not finite).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A named set of (x, y) points, drawn as dots of one colour.
pub struct Points {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 540;

/// The finite range of `v`, padded by 5% (a unit range around a constant).
fn padded(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi <= lo {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Draws a chart with `axes` over `x` × `y` into a new RGB image (`body`
/// draws the series and returns whether there is a legend), and writes it
/// to `path`.
fn chart(
    path: &Path,
    axes: &Axes,
    x: (f64, f64),
    y: (f64, f64),
    body: &dyn Fn(&mut Chart) -> std::result::Result<bool, String>,
) -> Result<()> {
    register_font();
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    let drawn = (|| -> std::result::Result<(), String> {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .caption(axes.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc(axes.x)
            .y_desc(axes.y)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        if body(&mut c)? {
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    drawn.map_err(|e| {
        Error::invalid(path.display().to_string(), format!("drawing the plot: {e}"))
    })?;
    let img = image::RgbImage::from_raw(WIDTH, HEIGHT, buf).expect("a buffer of the image's size");
    save_atomic(&img, path)
}

/// A line chart of `series`, each with its error bars, and a legend naming
/// them.
pub fn lines_png(path: &Path, axes: &Axes, series: &[Series]) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let x = padded(all().map(|p| p.0));
    let bar = |p: &(f64, f64, f64)| if p.2.is_finite() { p.2.abs() } else { 0.0 };
    let y = padded(all().flat_map(|p| [p.1 - bar(p), p.1 + bar(p)]));
    chart(path, axes, x, y, &|c| {
        for (i, s) in series.iter().enumerate() {
            let col = colour(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter(|p| p.1.is_finite())
                .map(|p| (p.0, p.1))
                .collect();
            c.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, col.filled())))
                .map_err(|e| e.to_string())?;
            c.draw_series(
                s.points
                    .iter()
                    .filter(|p| p.1.is_finite() && bar(p) > 0.0)
                    .map(|p| {
                        ErrorBar::new_vertical(
                            p.0,
                            p.1 - bar(p),
                            p.1,
                            p.1 + bar(p),
                            col.stroke_width(1),
                            8,
                        )
                    }),
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(!series.is_empty())
    })
}

/// A scatter chart of `sets`, one colour each, with a legend naming them;
/// `diagonal` adds the line y = x (persistence diagrams).
pub fn points_png(path: &Path, axes: &Axes, sets: &[Points], diagonal: bool) -> Result<()> {
    let all = || sets.iter().flat_map(|s| s.points.iter());
    let (x, y) = if diagonal {
        let r = padded(all().flat_map(|p| [p.0, p.1]));
        (r, r)
    } else {
        (padded(all().map(|p| p.0)), padded(all().map(|p| p.1)))
    };
    let radius = if all().count() > 2000 { 1 } else { 2 };
    chart(path, axes, x, y, &|c| {
        if diagonal {
            c.draw_series(LineSeries::new(
                vec![(x.0, x.0), (x.1, x.1)],
                BLACK.mix(0.5),
            ))
            .map_err(|e| e.to_string())?;
        }
        for (i, s) in sets.iter().enumerate() {
            let col = colour(i);
            c.draw_series(
                s.points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .map(|&p| Circle::new(p, radius, col.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(s.name.as_str())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, col.filled()));
        }
        Ok(!sets.is_empty())
    })
}

/// The persistence diagrams `sets` (name, (birth, death) bars) of one
/// homology dimension over the diagonal; a bar that never dies is drawn at
/// the top edge, above every finite death.
pub fn diagram_png(
    path: &Path,
    title: &str,
    unit: &str,
    sets: &[(&str, &[(f64, f64)])],
) -> Result<()> {
    let finite = sets
        .iter()
        .flat_map(|s| s.1.iter())
        .filter(|p| p.1.is_finite())
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let top = if finite > 0.0 { 1.05 * finite } else { 1.0 };
    let pts: Vec<Points> = sets
        .iter()
        .map(|(name, bars)| {
            let essential = bars.iter().filter(|p| p.1.is_infinite()).count();
            Points {
                name: if essential > 0 {
                    format!(
                        "{name} ({} bars, {essential} never die: top edge)",
                        bars.len()
                    )
                } else {
                    format!("{name} ({} bars)", bars.len())
                },
                points: bars
                    .iter()
                    .map(|&(b, d)| (b, if d.is_finite() { d } else { top }))
                    .collect(),
            }
        })
        .collect();
    let (x, y) = (format!("birth ({unit})"), format!("death ({unit})"));
    points_png(
        path,
        &Axes {
            title,
            x: &x,
            y: &y,
        },
        &pts,
        true,
    )
}

/// The rows of `x` as points (their first two coordinates; 0 for a
/// missing second), grouped by `labels` (one per row; one group without)
/// in label order, each group named by `name`.
pub fn by_label(
    x: &Array2<f64>,
    labels: Option<&[i64]>,
    name: &dyn Fn(i64) -> String,
) -> Vec<Points> {
    let mut groups: std::collections::BTreeMap<i64, Vec<(f64, f64)>> = Default::default();
    for i in 0..x.nrows() {
        let second = if x.ncols() > 1 { x[[i, 1]] } else { 0.0 };
        groups
            .entry(labels.map_or(-1, |l| l[i]))
            .or_default()
            .push((x[[i, 0]], second));
    }
    groups
        .into_iter()
        .map(|(l, points)| Points {
            name: name(l),
            points,
        })
        .collect()
}

/// A scatter of `sets` over their first two coordinates, in `unit`.
pub fn coordinates_png(path: &Path, title: &str, unit: &str, sets: &[Points]) -> Result<()> {
    let (x, y) = (
        format!("coordinate 1 ({unit})"),
        format!("coordinate 2 ({unit})"),
    );
    points_png(
        path,
        &Axes {
            title,
            x: &x,
            y: &y,
        },
        sets,
        false,
    )
}

/// A scatter plot of the first two columns of `z` (one point per row,
/// coloured and named by label when there are labels; a single column is
/// drawn against 0), titled `title`, written atomically as a PNG.
pub fn scatter_png(
    z: &Array2<f64>,
    labels: Option<&[i64]>,
    title: &str,
    path: &Path,
) -> Result<()> {
    let name = |l: i64| {
        if l < 0 {
            "rows".to_string()
        } else {
            format!("class {l}")
        }
    };
    points_png(
        path,
        &Axes {
            title,
            x: "z1 (latent units)",
            y: "z2 (latent units)",
        },
        &by_label(z, labels, &name),
        false,
    )
}

/// Writes `img` to `path` as a PNG through a temporary file (removed on
/// failure).
fn save_atomic(img: &image::RgbImage, path: &Path) -> Result<()> {
    let tmp = super::output::temp_name(path)?;
    super::output::track(&tmp);
    // The best compression: plots are committed with reports.
    let encode = || -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        let file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let enc = PngEncoder::new_with_quality(file, CompressionType::Best, FilterType::Adaptive);
        img.write_with_encoder(enc)?;
        Ok(())
    };
    let done = encode()
        .map_err(|e| Error::external(format!("{}: writing the plot", tmp.display()), e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "renaming", e)));
    if done.is_err() {
        super::output::remove_one(&tmp);
    }
    super::output::untrack(&tmp);
    done
}

/// The smallest and largest value of `x` ((0, 1) when they do not make a
/// range): the grey scale of image grids.
pub fn value_range(x: &Array2<f64>) -> (f64, f64) {
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo < hi {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// A grid of grey images, `cols` per row, 2 pixels of white between them,
/// each image scaled up `zoom` times: the first `cols`² (at most) rows of
/// `images`, each a `side` × `side` image in row-major order, its values
/// mapped from [lo, hi] to black..white (`range`; values outside it are
/// clipped), under the line `title` (none when empty), written atomically
/// as a PNG.
pub fn image_grid_png(
    images: &Array2<f64>,
    side: usize,
    cols: usize,
    range: (f64, f64),
    title: &str,
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
    if !title.is_empty() {
        img = captioned(img, title, path)?;
    }
    save_atomic(&img, path)
}

/// `img` under a line of text.
fn captioned(img: image::RgbImage, title: &str, path: &Path) -> Result<image::RgbImage> {
    const LINE: u32 = 26;
    register_font();
    let style = ("sans-serif", 16).into_font();
    let text_w = style.box_size(title).map(|(w, _)| w).unwrap_or(0) + 12;
    let (w, h) = (img.width().max(text_w), img.height() + LINE);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    (|| -> std::result::Result<(), String> {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.draw_text(title, &style.color(&BLACK), (6, 5))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    })()
    .map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("drawing the title: {e}"),
        )
    })?;
    let mut out = image::RgbImage::from_raw(w, h, buf).expect("a buffer of the image's size");
    image::imageops::replace(&mut out, &img, 0, LINE as i64);
    Ok(out)
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
        image_grid_png(&x, 2, 2, (0.0, 1.0), "", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // 2 columns, 2 rows of cells of 2·2 + 2 pixels, and the border.
        assert_eq!(img.dimensions(), (14, 14));
        assert_eq!(img.get_pixel(2, 2).0, [255, 255, 255]); // image 0
        assert_eq!(img.get_pixel(8, 2).0, [0, 0, 0]); // image 1, clipped
        assert_eq!(img.get_pixel(11, 5).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(4, 8).0, [127, 127, 127]); // image 2: (0, 1), 255 − 128
        assert_eq!(img.get_pixel(2, 8).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(6, 6).0, [255, 255, 255]); // a gap
        assert!(image_grid_png(&x, 3, 2, (0.0, 1.0), "", &path).is_err());
        // A title adds a line of dark text above the same grid.
        image_grid_png(&x, 2, 2, (0.0, 1.0), "three images", &path).unwrap();
        let t = image::open(&path).unwrap().to_rgb8();
        assert_eq!(t.height(), 14 + 26);
        assert!(t.width() > 14, "widened to the title");
        assert!(
            (0..26).any(|y| (0..t.width()).any(|x| t.get_pixel(x, y).0[0] < 100)),
            "text drawn"
        );
        assert_eq!(t.get_pixel(8, 26 + 2).0, [0, 0, 0], "the grid below it");
    }

    /// The pixels of colour `c` in `img`, and their bounding box.
    fn of_colour(img: &image::RgbImage, c: [u8; 3]) -> (usize, (u32, u32, u32, u32)) {
        let mut n = 0;
        let mut b = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in img.enumerate_pixels() {
            if p.0 == c {
                n += 1;
                b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
        (n, b)
    }

    #[test]
    fn scatter_plot_draws_and_names_every_label() {
        let dir = tempfile::tempdir().unwrap();
        let z = ndarray::array![[0.0, 0.0], [1.0, 1.0], [0.5, 0.2]];
        let path = dir.path().join("latent.png");
        scatter_png(&z, Some(&[0, 1, 2]), "codes", &path).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
        for c in &PALETTE[..3] {
            assert!(of_colour(&img, *c).0 > 0, "colour {c:?} drawn");
        }
        assert_eq!(of_colour(&img, PALETTE[3]).0, 0, "no fourth class");
        // Class 0 at (0, 0) lies left of and below class 1 at (1, 1) (its
        // legend's dot is at the top right, so compare the lowest dots).
        let (_, b0) = of_colour(&img, PALETTE[0]);
        let (_, b1) = of_colour(&img, PALETTE[1]);
        assert!(b0.0 < b1.0 && b0.3 > b1.3, "{b0:?} vs {b1:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file"
        );
    }

    /// A series with error bars: the bar of the middle point spans its
    /// ± e, drawn in the series' colour; the axes' text is drawn.
    #[test]
    fn line_chart_draws_error_bars() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.png");
        let flat = Series {
            name: "flat".into(),
            points: vec![(0.0, 1.0, 0.0), (1.0, 1.0, 0.5), (2.0, 1.0, 0.0)],
        };
        lines_png(
            &path,
            &Axes {
                title: "a title",
                x: "x (units)",
                y: "y (units)",
            },
            &[flat],
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        let (n, b) = of_colour(&img, PALETTE[0]);
        assert!(n > 100);
        // The y range is [0.5, 1.5] padded by 5%: the error bar spans
        // 1/1.1 of the plot's height, the flat line none.
        let (_, top, _, bottom) = b;
        assert!(
            bottom - top > 300,
            "the error bar spans most of the height: {b:?}"
        );
        let dark = img.pixels().filter(|p| p.0 == [0, 0, 0]).count();
        assert!(dark > 200, "axes and text drawn ({dark} black pixels)");
    }

    #[test]
    fn diagram_puts_essential_bars_on_top() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dgm.png");
        let a = [(0.0, 1.0), (0.0, f64::INFINITY)];
        diagram_png(&path, "H0", "data units", &[("data", &a)]).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        // Left of the legend (top right): both dots at birth 0, one above
        // the other (the essential bar at the top edge, above death 1).
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for (x, y, p) in img.enumerate_pixels() {
            if p.0 == PALETTE[0] && x < WIDTH / 2 {
                xs.push(x);
                ys.push(y);
            }
        }
        let span = |v: &[u32]| v.iter().max().unwrap() - v.iter().min().unwrap();
        assert!(!xs.is_empty());
        assert!(span(&xs) <= 6, "one birth: {xs:?}");
        assert!(span(&ys) > 8, "two deaths: {ys:?}");
    }
}
