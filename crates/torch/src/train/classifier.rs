//! The classifier (`model.kind = "classifier"`): the feature network of
//! `tglml eval`, trained on the data's labels with the cross-entropy.
//!
//! An MLP of the widths `model.hidden`, or (`model.network = "conv"`, for
//! 28 × 28 images) two stride-2 convolutions of 32 and 64 channels followed
//! by fully connected layers of those widths; ReLU after each. The output
//! of the last hidden layer is the feature vector (FID, precision and
//! recall compare them), a linear head on it gives the class logits (their
//! softmax is the Inception Score's p(y|x)).

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::data::TestSplit;
use super::model::{Batch, Generative, Model, Phase, PhaseLoss};
use crate::train::topo_loss::to_vec;
use tglml::error::{Error, Result};
use tglml::io::H5Writer;

/// The network's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSpec {
    pub conv: bool,
    pub input_dim: usize,
    pub hidden: Vec<usize>,
    pub classes: usize,
}

/// Channels and side of the convolutional part's output (64 × 7 × 7).
const CONV_OUT: usize = 64 * 7 * 7;

impl ClassifierSpec {
    /// Parameters and the training memory on batches of `batch` rows of
    /// `elem`-byte values ([`super::model::training_memory`]).
    pub fn memory(&self, batch: usize, elem: u64) -> (Option<u64>, tglml::guard::Size) {
        let first = if self.conv {
            CONV_OUT as u64
        } else {
            self.input_dim as u64
        };
        let mut widths = vec![first];
        widths.extend(self.hidden.iter().map(|&h| h as u64));
        widths.push(self.classes as u64);
        let conv_params: u64 = if self.conv {
            (16 + 1) * 32 + (32 * 16 + 1) * 64
        } else {
            0
        };
        let params = super::model::mlp_params(&widths).and_then(|p| p.checked_add(conv_params));
        let conv_acts: u64 = if self.conv {
            784 + 32 * 14 * 14 + CONV_OUT as u64
        } else {
            0
        };
        let acts = widths
            .iter()
            .try_fold(conv_acts, |a, &w| a.checked_add(w))
            .and_then(|s| s.checked_mul(2));
        (
            params,
            super::model::training_memory(params, acts, batch, elem),
        )
    }
}

/// A classifier whose variables live under `cls.`.
pub struct Classifier {
    spec: ClassifierSpec,
    body: nn::Sequential,
    head: nn::Linear,
}

impl Classifier {
    /// Builds its variables under `root`.
    pub fn new(root: &nn::Path, spec: &ClassifierSpec) -> Result<Self> {
        if spec.hidden.is_empty() {
            return Err(Error::invalid(
                "model.hidden",
                "a classifier needs at least one hidden width (its last hidden layer gives the features)",
            ));
        }
        if spec.conv && spec.input_dim != 784 {
            return Err(Error::invalid(
                "model.network",
                format!(
                    "\"conv\" takes 28 × 28 images (784 values), the data have {}",
                    spec.input_dim
                ),
            ));
        }
        let p = root / "cls";
        let mut body = nn::seq();
        let mut d = spec.input_dim as i64;
        if spec.conv {
            let c = nn::ConvConfig {
                stride: 2,
                padding: 1,
                ..Default::default()
            };
            body = body
                .add_fn(|x| x.view([-1, 1, 28, 28]))
                .add(nn::conv2d(&p / "conv0", 1, 32, 4, c))
                .add_fn(|x| x.relu())
                .add(nn::conv2d(&p / "conv1", 32, 64, 4, c))
                .add_fn(|x| x.relu().flatten(1, -1));
            d = CONV_OUT as i64;
        }
        for (i, &h) in spec.hidden.iter().enumerate() {
            body = body
                .add(nn::linear(
                    &p / format!("fc{i}"),
                    d,
                    h as i64,
                    Default::default(),
                ))
                .add_fn(|x| x.relu());
            d = h as i64;
        }
        let head = nn::linear(&p / "head", d, spec.classes as i64, Default::default());
        Ok(Classifier {
            spec: spec.clone(),
            body,
            head,
        })
    }
}

/// What a trained classifier offers `tglml eval`.
pub trait Classify {
    /// Its number of classes.
    fn classes(&self) -> usize;
    /// Values per input row.
    fn input_dim(&self) -> usize;
    /// The features of rows `x` (the last hidden layer, n × width).
    fn features(&self, x: &Tensor) -> Tensor;
    /// The class logits of feature rows (n × classes).
    fn logits_of_features(&self, f: &Tensor) -> Tensor;
}

impl Classify for Classifier {
    fn classes(&self) -> usize {
        self.spec.classes
    }

    fn input_dim(&self) -> usize {
        self.spec.input_dim
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.body.forward(x)
    }

    fn logits_of_features(&self, f: &Tensor) -> Tensor {
        self.head.forward(f)
    }
}

/// The classifier as the training loop trains it: one phase, the terms
/// cross-entropy and the count of correct predictions (the log shows the
/// batch accuracy), no topological loss.
pub struct ClassifierModel {
    net: Classifier,
    kind: Kind,
}

impl ClassifierModel {
    pub fn new(root: &nn::Path, spec: &ClassifierSpec, kind: Kind) -> Result<Self> {
        Ok(ClassifierModel {
            net: Classifier::new(root, spec)?,
            kind,
        })
    }
}

/// Predicted classes and the number right of `logits` against `labels`.
fn predictions(logits: &Tensor, labels: &Tensor) -> (Tensor, f64) {
    let pred = logits.argmax(1, false);
    let right = pred
        .eq_tensor(labels)
        .to_kind(Kind::Double)
        .sum(Kind::Double)
        .double_value(&[]);
    (pred, right)
}

impl Model for ClassifierModel {
    fn phases(&self) -> Vec<Phase> {
        vec![Phase {
            name: "model",
            prefixes: vec!["cls."],
            terms: vec!["cross_entropy", "accuracy"],
            topological: false,
            beta1: 0.9,
        }]
    }

    fn loss(&self, _phase: usize, batch: &Batch) -> PhaseLoss {
        let labels = batch
            .labels
            .expect("checked when the data were loaded: a classifier's data have labels");
        let logits = self.net.head.forward(&self.net.body.forward(batch.x));
        let ce = logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Sum, -100, 0.0);
        let (_, right) = tch::no_grad(|| predictions(&logits, labels));
        PhaseLoss {
            terms: vec![ce.double_value(&[]), right],
            sum: ce,
            live: None,
        }
    }

    fn extra_files(&self, _out: &Path) -> Vec<PathBuf> {
        Vec::new()
    }

    /// `/eval`: the test split's predicted classes, class probabilities,
    /// confusion matrix (rows: true class) and accuracy.
    fn report(&self, w: &H5Writer, _out: &Path, split: &TestSplit) -> Result<String> {
        let n = split.x.nrows();
        let labels = split
            .labels
            .as_ref()
            .expect("checked when the data were loaded: a classifier's test split has labels");
        let c = self.net.spec.classes;
        let dev = self.net.head.ws.device();
        let mut pred: Vec<i64> = Vec::with_capacity(n);
        let mut probs: Vec<f64> = Vec::with_capacity(n * c);
        let block = crate::generate::BLOCK;
        for start in (0..n).step_by(block) {
            let end = (start + block).min(n);
            let rows = split.x.slice(ndarray::s![start..end, ..]);
            let x = Tensor::from_slice(
                rows.as_standard_layout()
                    .as_slice()
                    .expect("standard layout"),
            )
            .view([(end - start) as i64, split.x.ncols() as i64])
            .to_kind(self.kind)
            .to_device(dev);
            let logits = tch::no_grad(|| self.net.head.forward(&self.net.body.forward(&x)));
            pred.extend(
                Vec::<i64>::try_from(logits.argmax(1, false).to_device(tch::Device::Cpu))
                    .map_err(|e| Error::external("predictions", e))?,
            );
            probs.extend(to_vec(&logits.softmax(1, Kind::Double)));
        }
        let mut confusion = Array2::<i64>::zeros((c, c));
        for (&y, &p) in labels.iter().zip(&pred) {
            confusion[[y as usize, p as usize]] += 1;
        }
        let right = labels.iter().zip(&pred).filter(|(y, p)| y == p).count();
        let accuracy = if n > 0 {
            right as f64 / n as f64
        } else {
            f64::NAN
        };
        w.dataset("/eval/predicted", &Array1::from_vec(pred))?;
        w.dataset(
            "/eval/probabilities",
            &Array2::from_shape_vec((n, c), probs).map_err(|e| Error::external("eval", e))?,
        )?;
        w.dataset("/eval/confusion", &confusion)?;
        w.attr_f64("/eval", "accuracy", accuracy)?;
        Ok(format!(
            "; test accuracy {:.2}% ({right} of {n})",
            100.0 * accuracy
        ))
    }

    fn generative(&self) -> &dyn Generative {
        self
    }

    fn classifier(&self) -> Option<&dyn Classify> {
        Some(&self.net)
    }
}

/// A classifier generates nothing: no latent space, no maps.
impl Generative for ClassifierModel {
    fn latent_dim(&self) -> Option<usize> {
        None
    }

    fn has_encoder(&self) -> bool {
        false
    }

    fn has_decoder(&self) -> bool {
        false
    }

    fn encode(&self, _x: &Tensor) -> Option<Tensor> {
        None
    }

    fn decode(&self, _z: &Tensor) -> Option<Tensor> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss is the summed cross-entropy −Σ log softmax(logits)[y], and
    /// the features are the input of the head.
    #[test]
    fn the_loss_is_the_cross_entropy_of_the_head_on_the_features() {
        tch::manual_seed(3);
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = ClassifierSpec {
            conv: false,
            input_dim: 5,
            hidden: vec![7, 4],
            classes: 3,
        };
        let m = ClassifierModel::new(&vs.root(), &spec, Kind::Double).unwrap();
        vs.set_kind(Kind::Double);
        let x = Tensor::randn([6, 5], (Kind::Double, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 2, 1, 0]);
        let comm = tglml::dist::Comm::solo();
        let tape = crate::train::norm::Tape::new(&comm, 6);
        let batch = Batch {
            x: &x,
            step: 0,
            rows: 0..6,
            seed: 1,
            kind: Kind::Double,
            device: tch::Device::Cpu,
            topological: false,
            labels: Some(&y),
            norm: &tape,
        };
        let l = m.loss(0, &batch);
        let f = m.net.features(&x);
        assert_eq!(f.size(), vec![6, 4]);
        let logits = to_vec(&m.net.logits_of_features(&f));
        let yv = [0usize, 1, 2, 2, 1, 0];
        let mut want = 0.0;
        let mut right = 0.0;
        for r in 0..6 {
            let row = &logits[r * 3..r * 3 + 3];
            let lse = row.iter().map(|v| v.exp()).sum::<f64>().ln();
            want += lse - row[yv[r]];
            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            right += f64::from(u8::from(best == yv[r]));
        }
        assert!(
            (l.terms[0] - want).abs() < 1e-12 * want,
            "{} vs {want}",
            l.terms[0]
        );
        assert_eq!(l.terms[1], right);
        assert!(l.live.is_none());
        let bad = ClassifierSpec {
            hidden: vec![],
            ..spec
        };
        assert!(Classifier::new(&vs.root(), &bad).is_err());
    }
}
