//! The ImageNet classifier on top of a backbone: global average pooling of the last
//! level, the final fully connected layer (read from the same weights), softmax.
//!
//! It exists to check weights, not to classify for its own sake: a network whose
//! convolutions and classifier were trained on ImageNet names the objects in real photos
//! (see [`crate::pretrained`]).

use std::path::PathBuf;

use image::RgbImage;
use ndarray::{Array2, ArrayView1, ArrayView4, Axis};
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::{BackboneError, Result};
use crate::extractor::{BackboneIdentity, FeatureExtractor};
use crate::preprocess::{Preprocess, preprocess};
use crate::spec::BackboneSpec;
use crate::weights::WeightsSource;

/// Number of ImageNet-1k classes.
pub const IMAGENET_CLASSES: usize = 1000;

/// One class of a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Class index (0-based; ImageNet-1k order for ImageNet classifiers).
    pub class: usize,
    /// Softmax probability.
    pub probability: f64,
    /// The logit.
    pub logit: f32,
}

/// Softmax of `logits` (computed in f64, max-shifted) and the `k` most probable classes,
/// most probable first (ties: lower class index first). Non-finite logits are an error.
pub fn top_k(logits: ArrayView1<f32>, k: usize) -> Result<Vec<Prediction>> {
    if logits.is_empty() {
        return Err(BackboneError::Input("no logits to rank".into()));
    }
    if logits.iter().any(|v| !v.is_finite()) {
        return Err(BackboneError::Input(
            "logits contain NaN or infinite values".into(),
        ));
    }
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let exp: Vec<f64> = logits.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..exp.len()).collect();
    order.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]).then(a.cmp(&b)));
    Ok(order
        .into_iter()
        .take(k)
        .filter_map(|class| {
            Some(Prediction {
                class,
                probability: exp.get(class)? / sum,
                logit: *logits.get(class)?,
            })
        })
        .collect())
}

/// A backbone with its classifier: images to class probabilities.
///
/// The forward pass is the [`FeatureExtractor`]'s up to the last level (EfficientNets:
/// the head, 8; ResNets: `layer4`, 4); the global average pool and the fully connected
/// layer run here in f64.
pub struct Classifier {
    extractor: FeatureExtractor,
    /// `[classes, channels]`.
    weight: Array2<f32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("extractor", &self.extractor)
            .field("classes", &self.num_classes())
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// The preprocessing of the ImageNet evaluation recipe for `spec`'s input size `s`
    /// (torchvision's `Resize(256)` + `CenterCrop(224)`, scaled): resize to
    /// `round(s / 0.875)` square, then keep the central `s` x `s`. Unlike torchvision the
    /// resize is to a square (the aspect ratio is not kept), as everywhere in this crate.
    pub fn imagenet_preprocess(spec: &BackboneSpec) -> Preprocess {
        let s = spec.default_input_size();
        let resize = (f64::from(s) / 0.875).round() as u32;
        Preprocess::new(resize).with_center_crop(Some(s))
    }

    /// Builds a classifier: the backbone (levels = the last level only), and the final
    /// fully connected layer from the same weights: the last `Gemm` node of an ONNX file
    /// (`[classes, channels]` with `transB = 1`, or transposed with `transB = 0`; `alpha`
    /// and `beta` applied), a PyTorch state dict's `fc` (ResNets) / `classifier`
    /// (EfficientNets) `Linear`, the embedded Lite0's `_fc`, or for synthetic weights
    /// `synthetic_classifier_weights` with 1000 classes (feature `test-support`).
    ///
    /// Errors: everything [`FeatureExtractor::new`] reports, and
    /// [`BackboneError::NoClassifier`] when the file has no `Gemm` or one that does not
    /// fit the network's last level.
    pub fn new(
        spec: BackboneSpec,
        weights: WeightsSource,
        preprocess: Preprocess,
        device: Device,
    ) -> Result<Self> {
        let last = spec.num_levels().saturating_sub(1);
        let (extractor, loaded) =
            FeatureExtractor::build(spec, &weights, &[last], preprocess, device)?;
        let c = loaded.classifier?;
        let channels = c.weight.len() / c.classes.max(1);
        let weight = Array2::from_shape_vec((c.classes, channels), c.weight).map_err(|e| {
            BackboneError::NoClassifier {
                path: PathBuf::from("<classifier>"),
                reason: e.to_string(),
            }
        })?;
        let bias = c.bias;
        Ok(Self {
            extractor,
            weight,
            bias,
        })
    }

    /// [`Classifier::new`] with [`Classifier::imagenet_preprocess`].
    pub fn imagenet(spec: BackboneSpec, weights: WeightsSource, device: Device) -> Result<Self> {
        let p = Self::imagenet_preprocess(&spec);
        Self::new(spec, weights, p, device)
    }

    /// The backbone (tapping only the last level).
    pub fn extractor(&self) -> &FeatureExtractor {
        &self.extractor
    }

    /// What identifies the weights (name, SHA-256, input size).
    pub fn identity(&self) -> BackboneIdentity {
        self.extractor.identity()
    }

    /// Number of classes of the classifier layer.
    pub fn num_classes(&self) -> usize {
        self.weight.nrows()
    }

    /// Logits `(b, classes)` of a preprocessed batch `(b, 3, s, s)` (as for
    /// [`FeatureExtractor::extract`]): last level, global average pool, fully connected
    /// layer (sums in f64).
    pub fn logits(&self, batch: ArrayView4<f32>) -> Result<Array2<f32>> {
        let levels = self.extractor.extract(batch)?;
        let feat = levels
            .into_iter()
            .next()
            .ok_or_else(|| BackboneError::Backend("the last level was not computed".into()))?;
        let (b, c, h, w) = feat.dim();
        if c != self.weight.ncols() || h * w == 0 {
            return Err(BackboneError::Backend(format!(
                "last level has shape ({b}, {c}, {h}, {w}), the classifier expects {} channels",
                self.weight.ncols()
            )));
        }
        let area = (h * w) as f64;
        let mut out = Array2::<f32>::zeros((b, self.num_classes()));
        for (img, mut row) in feat.outer_iter().zip(out.outer_iter_mut()) {
            let pooled: Vec<f64> = img
                .outer_iter()
                .map(|ch| ch.iter().map(|&v| f64::from(v)).sum::<f64>() / area)
                .collect();
            for ((o, wrow), &bias) in row
                .iter_mut()
                .zip(self.weight.axis_iter(Axis(0)))
                .zip(&self.bias)
            {
                let dot: f64 = wrow
                    .iter()
                    .zip(&pooled)
                    .map(|(&wv, &p)| f64::from(wv) * p)
                    .sum();
                *o = (dot + f64::from(bias)) as f32;
            }
        }
        Ok(out)
    }

    /// The `k` most probable classes of an 8-bit RGB image (any size), preprocessed with
    /// this classifier's [`Preprocess`] and the ImageNet mean/std.
    pub fn classify(&self, image: &RgbImage, k: usize) -> Result<Vec<Prediction>> {
        if image.width() == 0 || image.height() == 0 {
            return Err(BackboneError::Input("empty image".into()));
        }
        let x = preprocess(image, self.extractor.preprocess()).insert_axis(Axis(0));
        let logits = self.logits(x.view())?;
        let row = logits
            .outer_iter()
            .next()
            .ok_or_else(|| BackboneError::Backend("no logits returned".into()))?;
        top_k(row, k)
    }
}
