//! Cubical persistence of 2-D images: the sublevel filtration of the pixel
//! grid, H0 and H1 over Z/2.
//!
//! The complex is GUDHI's for `CubicalComplex(top_dimensional_cells=…)`:
//! every pixel is a square (a 2-cell) with the pixel's value; every edge and
//! vertex of the grid gets the smallest value of the squares around it, so
//! that a face enters no later than the cells it bounds. (Two pixels that
//! share only a corner are therefore joined once both are in: sublevel sets
//! are 8-connected.) The cells are sorted by value, then dimension, then
//! position, and the boundary matrix is reduced (standard algorithm, with
//! clearing: the squares first, and an edge that kills a cycle is not
//! reduced again). A pair (σ, τ) gives the bar (f(σ), f(τ)) in the dimension
//! of σ; an unpaired cell an essential bar (f(σ), ∞): the whole grid is
//! contractible, so there is exactly one, in H0, at the smallest value.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// The H0 and H1 bars of an image, (birth, death) with death = ∞ for the
/// essential class, sorted by birth then death. Zero-length bars (a cell
/// paired with a cell of the same value) are left out: they depend on how
/// ties are ordered, the diagram without them does not.
#[derive(Debug, Clone, PartialEq)]
pub struct CubicalDiagrams {
    pub dim0: Vec<(f64, f64)>,
    pub dim1: Vec<(f64, f64)>,
}

impl CubicalDiagrams {
    /// The Betti numbers (β₀, β₁) of the sublevel set {f ≤ t}: the bars
    /// with birth ≤ t < death.
    pub fn betti(&self, t: f64) -> (usize, usize) {
        let count = |d: &[(f64, f64)]| d.iter().filter(|&&(b, e)| b <= t && t < e).count();
        (count(&self.dim0), count(&self.dim1))
    }
}

/// The cubical persistence of `image` (rows × columns, finite values).
pub fn persistence(image: ArrayView2<f64>) -> Result<CubicalDiagrams> {
    let (h, w) = image.dim();
    if h == 0 || w == 0 {
        return Err(Error::invalid("image", "an image needs at least one pixel"));
    }
    if let Some(((i, j), v)) = image.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(
            "image",
            format!("pixel ({i}, {j}) is {v}: values must be finite"),
        ));
    }
    let (rows, cols) = (2 * h + 1, 2 * w + 1);
    let cells = rows.saturating_mul(cols);
    // Per cell: its value, order and pivot slots, and a column of at most
    // 4 entries while it is reduced.
    crate::guard::need(
        &format!("the cubical complex of a {h} × {w} image ({cells} cells)"),
        crate::guard::Size::array(&[cells as u64, 8 * 4 + 4 * 8], 1),
        "the image size",
    )?;
    let dim = |r: usize, c: usize| (r % 2) + (c % 2);
    // A cell's value: its pixel's, or the smallest of the pixels around it.
    let value = |r: usize, c: usize| -> f64 {
        let rs: &[usize] = if r % 2 == 1 {
            &[r]
        } else {
            &[r.wrapping_sub(1), r + 1]
        };
        let cs: &[usize] = if c % 2 == 1 {
            &[c]
        } else {
            &[c.wrapping_sub(1), c + 1]
        };
        let mut m = f64::INFINITY;
        for &rr in rs {
            for &cc in cs {
                if rr < rows && cc < cols {
                    m = m.min(image[[rr / 2, cc / 2]]);
                }
            }
        }
        m
    };
    let vals: Vec<f64> = (0..cells).map(|k| value(k / cols, k % cols)).collect();
    let mut order: Vec<usize> = (0..cells).collect();
    order.sort_by(|&a, &b| {
        vals[a]
            .total_cmp(&vals[b])
            .then(dim(a / cols, a % cols).cmp(&dim(b / cols, b % cols)))
            .then(a.cmp(&b))
    });
    let mut pos = vec![0usize; cells];
    for (p, &k) in order.iter().enumerate() {
        pos[k] = p;
    }
    // The boundary of cell k as filtration positions, sorted.
    let boundary = |k: usize| -> Vec<usize> {
        let (r, c) = (k / cols, k % cols);
        let mut b: Vec<usize> = Vec::with_capacity(4);
        if r % 2 == 1 {
            b.push(pos[(r - 1) * cols + c]);
            b.push(pos[(r + 1) * cols + c]);
        }
        if c % 2 == 1 {
            b.push(pos[r * cols + c - 1]);
            b.push(pos[r * cols + c + 1]);
        }
        b.sort_unstable();
        b
    };
    // pivot_of[p] = the column (a position) whose lowest entry is p.
    let mut pivot_of: Vec<usize> = vec![usize::MAX; cells];
    let mut reduced: Vec<Option<Vec<usize>>> = vec![None; cells];
    let mut killer = vec![false; cells];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    // Squares first, then edges (clearing), each in filtration order.
    for d in [2usize, 1] {
        for p in 0..cells {
            let k = order[p];
            if dim(k / cols, k % cols) != d || killer[p] {
                continue;
            }
            let mut col = boundary(k);
            while let Some(&low) = col.last() {
                let q = pivot_of[low];
                if q == usize::MAX {
                    break;
                }
                col = symmetric_difference(&col, reduced[q].as_ref().expect("a pivot's column"));
            }
            if let Some(&low) = col.last() {
                pivot_of[low] = p;
                killer[low] = true;
                pairs.push((low, p));
                reduced[p] = Some(col);
            }
        }
    }
    let mut out = CubicalDiagrams {
        dim0: vec![],
        dim1: vec![],
    };
    let mut paired = vec![false; cells];
    for &(b, e) in &pairs {
        paired[b] = true;
        paired[e] = true;
        let (vb, ve) = (vals[order[b]], vals[order[e]]);
        if ve > vb {
            let k = order[b];
            match dim(k / cols, k % cols) {
                0 => out.dim0.push((vb, ve)),
                _ => out.dim1.push((vb, ve)),
            }
        }
    }
    for (p, &k) in order.iter().enumerate() {
        if !paired[p] {
            match dim(k / cols, k % cols) {
                0 => out.dim0.push((vals[k], f64::INFINITY)),
                1 => out.dim1.push((vals[k], f64::INFINITY)),
                _ => {}
            }
        }
    }
    let by = |a: &(f64, f64), b: &(f64, f64)| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1));
    out.dim0.sort_by(by);
    out.dim1.sort_by(by);
    Ok(out)
}

/// The symmetric difference of two sorted position lists (Z/2 addition).
fn symmetric_difference(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Closed forms: a pit in a plateau is one component born at the pit;
    /// a ring of low values around a centre of middle values, in a high
    /// plateau, has one H1 bar from the ring's value to the centre's.
    #[test]
    fn known_images_have_their_bars() {
        let mut img = Array2::from_elem((5, 5), 1.0);
        img[[2, 2]] = 0.0;
        let d = persistence(img.view()).unwrap();
        assert_eq!(d.dim0, vec![(0.0, f64::INFINITY)]);
        assert!(d.dim1.is_empty());
        let mut ring = Array2::from_elem((7, 7), 1.0);
        for i in 1..6 {
            for j in 1..6 {
                ring[[i, j]] = if i == 1 || i == 5 || j == 1 || j == 5 {
                    0.2
                } else {
                    0.7
                };
            }
        }
        let d = persistence(ring.view()).unwrap();
        assert_eq!(d.dim0, vec![(0.2, f64::INFINITY)]);
        assert_eq!(d.dim1, vec![(0.2, 0.7)]);
        assert_eq!(d.betti(0.5), (1, 1));
        assert_eq!(d.betti(0.8), (1, 0));
        assert!(persistence(Array2::<f64>::zeros((0, 3)).view()).is_err());
        let mut bad = Array2::<f64>::zeros((2, 2));
        bad[[1, 0]] = f64::NAN;
        let e = persistence(bad.view()).unwrap_err().to_string();
        assert!(e.contains("pixel (1, 0) is NaN"), "{e}");
    }

    /// The diagrams (bars of positive length) and the Betti numbers at 0.5
    /// equal GUDHI's CubicalComplex on 50 Fashion-MNIST test images and 6
    /// synthetic ones (tests/fixtures/cubical/, make_fixture.py beside it).
    #[test]
    fn diagrams_match_gudhi() {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/cubical/reference.h5"
        );
        let f = hdf5::File::open(p).expect("the cubical fixture");
        let images: ndarray::Array3<f64> = f
            .dataset("images")
            .unwrap()
            .read::<f64, ndarray::Ix3>()
            .unwrap();
        let rows = |name: &str| -> Vec<(f64, f64)> {
            let a: Array2<f64> = f.dataset(name).unwrap().read_2d().unwrap();
            a.rows().into_iter().map(|r| (r[0], r[1])).collect()
        };
        let mut bars = 0;
        for i in 0..images.dim().0 {
            let d = persistence(images.index_axis(ndarray::Axis(0), i)).unwrap();
            assert_eq!(
                d.dim0,
                rows(&format!("diagrams/{i}/dim0_pos")),
                "image {i}, H0"
            );
            assert_eq!(
                d.dim1,
                rows(&format!("diagrams/{i}/dim1_pos")),
                "image {i}, H1"
            );
            let betti: Vec<i64> = f
                .dataset(&format!("betti/{i}"))
                .unwrap()
                .read_raw()
                .unwrap();
            let (b0, b1) = d.betti(0.5);
            assert_eq!(
                vec![b0 as i64, b1 as i64],
                betti,
                "image {i}, Betti numbers at 0.5"
            );
            bars += d.dim0.len() + d.dim1.len();
        }
        eprintln!("{} images, {bars} bars: equal to GUDHI's", images.dim().0);
    }
}
