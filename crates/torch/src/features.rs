//! A feature network given by path: a TorchScript module (a user's
//! Inception-v3 on a cluster, or any network saved with
//! `torch.jit.script(net).save(path)` or `torch.jit.trace`), whose outputs
//! are the features FID and precision/recall compare
//! ([`tglml::metrics::features`]). Nothing is downloaded: the file is the
//! user's.

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use tch::{CModule, Device, Kind, Tensor};

use crate::train::topo_loss::to_vec;
use tglml::error::{Error, Result};

/// A loaded TorchScript feature network.
pub struct FeatureNet {
    module: CModule,
    path: PathBuf,
    device: Device,
}

/// The first line of a libtorch error (the rest is a C++ backtrace).
fn first_line(e: impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

impl FeatureNet {
    /// Loads the module at `path` for evaluation on `device`.
    pub fn load(path: &Path, device: Device) -> Result<FeatureNet> {
        let what = format!("feature network {}", path.display());
        if !path.is_file() {
            return Err(Error::invalid(what, "no such file"));
        }
        let mut module = CModule::load_on_device(path, device).map_err(|e| {
            Error::invalid(
                &what,
                format!(
                    "is not a TorchScript module ({}); save the network with torch.jit.script(net).save(path) or torch.jit.trace(net, example).save(path), not torch.save",
                    first_line(e)
                ),
            )
        })?;
        module
            .f_set_eval()
            .map_err(|e| Error::invalid(&what, first_line(e)))?;
        Ok(FeatureNet {
            module,
            path: path.to_path_buf(),
            device,
        })
    }

    /// The features of the rows of `x` (n × values), each row reshaped to
    /// `input` (e.g. [784], or [1, 28, 28] for a convolutional network) and
    /// fed as float32 in batches of `batch` rows; the module must return
    /// one row of features per input row.
    pub fn features(&self, x: ArrayView2<f64>, input: &[i64], batch: usize) -> Result<Array2<f64>> {
        let what = format!("feature network {}", self.path.display());
        let per_row: i64 = input.iter().product();
        if per_row != x.ncols() as i64 {
            return Err(Error::invalid(
                &what,
                format!(
                    "an input of shape {input:?} takes {per_row} values per row, the data have {}",
                    x.ncols()
                ),
            ));
        }
        let mut out: Vec<f64> = Vec::new();
        let mut width = 0usize;
        for start in (0..x.nrows()).step_by(batch.max(1)) {
            let end = (start + batch.max(1)).min(x.nrows());
            let block = x.slice(ndarray::s![start..end, ..]);
            let mut shape = vec![(end - start) as i64];
            shape.extend_from_slice(input);
            let t = Tensor::from_slice(
                block
                    .as_standard_layout()
                    .as_slice()
                    .expect("standard layout"),
            )
            .view(shape.as_slice())
            .to_kind(Kind::Float)
            .to_device(self.device);
            let y = tch::no_grad(|| self.module.forward_ts(&[t])).map_err(|e| {
                Error::invalid(&what, format!("failed on the data: {}", first_line(e)))
            })?;
            let s = y.size();
            if s.len() != 2 || s[0] != (end - start) as i64 {
                return Err(Error::invalid(
                    &what,
                    format!("returns shape {s:?} for {} rows; a feature network must return (rows, features)", end - start),
                ));
            }
            width = s[1] as usize;
            out.extend(to_vec(&y.to_kind(Kind::Double)));
        }
        Array2::from_shape_vec((x.nrows(), width), out).map_err(|e| Error::external(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/torchscript")
            .join(name)
    }

    /// The features of a TorchScript module saved by PyTorch equal
    /// PyTorch's own outputs (tests/fixtures/torchscript/, make_fixture.py);
    /// a file that is not TorchScript, a wrong input shape and a missing
    /// file are refused with one message each.
    #[test]
    fn a_torchscript_network_gives_pytorchs_features() {
        let net = FeatureNet::load(&fixture("features.pt"), Device::Cpu).unwrap();
        let f = hdf5::File::open(fixture("reference.h5")).unwrap();
        let x: Array2<f64> = f.dataset("x").unwrap().read_2d().unwrap();
        let want: Array2<f64> = f.dataset("features").unwrap().read_2d().unwrap();
        let got = net.features(x.view(), &[784], 3).unwrap();
        let worst = (&got - &want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(worst < 1e-6, "largest difference {worst}");
        let e = FeatureNet::load(&fixture("not_torchscript.pt"), Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("is not a TorchScript module") && e.contains("not torch.save"),
            "{e}"
        );
        eprintln!("{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        let e = net
            .features(x.view(), &[1, 28, 27], 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("takes 756 values per row, the data have 784"),
            "{e}"
        );
        let e = FeatureNet::load(&fixture("missing.pt"), Device::Cpu)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
