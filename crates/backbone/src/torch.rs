//! PyTorch state dicts (`.pth` / `.pt`, the zip-pickle format of `torch.save`) as a
//! weights source, read through [`burn_store`]'s `PytorchReader`.
//!
//! Parameters are looked up by the published names of the plan (torchvision for the
//! ResNets: `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}`,
//! `layerX.Y.convZ` / `bnZ`, `layerX.Y.downsample.0` / `.1`, `fc.weight` / `fc.bias`;
//! timm for the EfficientNets), see
//! [`BackboneSpec::published_parameter_shapes`](crate::BackboneSpec::published_parameter_shapes).
//! Batch norms are folded into the convolutions in f64 with torchvision's / timm's
//! epsilon (1e-5; 1e-3 for TF-"same" padded configurations, timm's `tf_*` ports).
//! Every shape is checked; a missing or misshapen parameter is an error naming the file
//! and the parameter.

use std::collections::HashMap;
use std::path::Path;

use burn_store::TensorSnapshot;
use burn_store::pytorch::PytorchReader;

use crate::error::{BackboneError, Result};
use crate::model::ConvWeights;
use crate::spec::{BackboneSpec, PaddingMode, Plan, PlanKind};

/// Batch-norm epsilon of the published PyTorch models of a plan.
fn bn_eps(plan: &Plan) -> f64 {
    match plan.convs.first().map(|c| c.padding) {
        Some(PaddingMode::TfSame) => 1e-3,
        _ => 1e-5,
    }
}

/// A state dict read from a `.pth` file.
pub(crate) struct StateDict {
    path: std::path::PathBuf,
    backbone: String,
    tensors: HashMap<String, TensorSnapshot>,
}

impl StateDict {
    /// Reads the file (all tensors, lazily materialised).
    pub(crate) fn open(path: &Path, spec: &BackboneSpec) -> Result<Self> {
        let reader = PytorchReader::new(path).map_err(|e| BackboneError::WeightsFile {
            path: path.to_path_buf(),
            reason: format!("not a readable PyTorch state dict: {e}"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            backbone: spec.name.clone(),
            tensors: reader.into_tensors(),
        })
    }

    fn mismatch(&self, reason: String) -> BackboneError {
        BackboneError::WeightsMismatch {
            path: self.path.clone(),
            backbone: self.backbone.clone(),
            reason,
        }
    }

    /// The tensor `name` as f32 values, its shape checked against `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.tensors.get(name).ok_or_else(|| {
            self.mismatch(format!(
                "parameter `{name}` (shape {shape:?}) is missing from the state dict"
            ))
        })?;
        self.values(name, t, shape)
    }

    fn values(&self, name: &str, t: &TensorSnapshot, shape: &[usize]) -> Result<Vec<f32>> {
        if t.shape.as_slice() != shape {
            return Err(self.mismatch(format!(
                "parameter `{name}`: expected shape {shape:?}, found {:?}",
                t.shape.as_slice()
            )));
        }
        let data = t.to_data().map_err(|e| BackboneError::WeightsFile {
            path: self.path.clone(),
            reason: format!("parameter `{name}`: cannot read its data: {e:?}"),
        })?;
        if !data.dtype.is_float() {
            return Err(self.mismatch(format!(
                "parameter `{name}` has dtype {:?}, expected floating point",
                data.dtype
            )));
        }
        let v =
            data.convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| BackboneError::WeightsFile {
                    path: self.path.clone(),
                    reason: format!("parameter `{name}`: {e:?}"),
                })?;
        let n: usize = shape.iter().product();
        if v.len() != n {
            return Err(BackboneError::WeightsFile {
                path: self.path.clone(),
                reason: format!(
                    "parameter `{name}` declares shape {shape:?} ({n} values) but holds {} (truncated file?)",
                    v.len()
                ),
            });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(self.mismatch(format!(
                "parameter `{name}` contains NaN or infinite values"
            )));
        }
        Ok(v)
    }

    /// The convolutions of `plan`, batch norms folded, in plan order.
    pub(crate) fn convs(&self, plan: &Plan) -> Result<Vec<ConvWeights>> {
        // A convolution weight the plan does not have means another network or variant.
        let mut known: Vec<&str> = plan.convs.iter().map(|c| c.name.as_str()).collect();
        known.sort_unstable();
        let mut extra: Vec<&String> = self
            .tensors
            .iter()
            .filter(|(k, t)| {
                t.shape.num_dims() == 4
                    && k.strip_suffix(".weight")
                        .is_some_and(|base| known.binary_search(&base).is_err())
            })
            .map(|(k, _)| k)
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(self.mismatch(format!(
                "the state dict has {} convolution weight(s) the architecture lacks, e.g. `{first}` (is it another network, or another variant of the family?)",
                extra.len()
            )));
        }
        let eps = bn_eps(plan);
        let mut out = Vec::with_capacity(plan.convs.len());
        for def in &plan.convs {
            let shape = def.weight_shape();
            let out_ch = def.out_ch;
            let mut weight = self.get(&format!("{}.weight", def.name), &shape)?;
            let bias_name = format!("{}.bias", def.name);
            let mut bias = match (&def.bn_name, self.tensors.get(&bias_name)) {
                (_, Some(t)) => self.values(&bias_name, t, &[out_ch])?,
                (Some(_), None) => vec![0.0; out_ch],
                (None, None) => self.get(&bias_name, &[out_ch])?,
            };
            if let Some(bn) = &def.bn_name {
                let p = |k: &str| self.get(&format!("{bn}.{k}"), &[out_ch]);
                let (gamma, beta, mean, var) = (
                    p("weight")?,
                    p("bias")?,
                    p("running_mean")?,
                    p("running_var")?,
                );
                if let Some(o) = var.iter().position(|&v| v < 0.0) {
                    return Err(self.mismatch(format!(
                        "parameter `{bn}.running_var` has a negative value at channel {o}"
                    )));
                }
                let per = weight.len() / out_ch.max(1);
                for ((ws, b), (((g, be), m), v)) in weight
                    .chunks_mut(per.max(1))
                    .zip(bias.iter_mut())
                    .zip(gamma.iter().zip(&beta).zip(&mean).zip(&var))
                {
                    let s = f64::from(*g) / (f64::from(*v) + eps).sqrt();
                    for w in ws {
                        *w = (f64::from(*w) * s) as f32;
                    }
                    *b = ((f64::from(*b) - f64::from(*m)) * s + f64::from(*be)) as f32;
                }
            }
            out.push(ConvWeights { weight, bias });
        }
        Ok(out)
    }

    /// The classifier (`fc` for ResNets, `classifier` for EfficientNets):
    /// `(weight [classes, channels] row-major, bias, classes)`.
    pub(crate) fn classifier(&self, plan: &Plan) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let fc = match plan.kind {
            PlanKind::ResNet => "fc",
            PlanKind::EfficientNet => "classifier",
        };
        let no = |reason: String| BackboneError::NoClassifier {
            path: self.path.clone(),
            reason,
        };
        let wname = format!("{fc}.weight");
        let t = self.tensors.get(&wname).ok_or_else(|| {
            no(format!(
                "the state dict has no `{wname}` (a features-only checkpoint? the check needs the classifier)"
            ))
        })?;
        let channels = plan.final_channels;
        let classes = match t.shape.as_slice() {
            [c, i] if *i == channels && *c > 0 => *c,
            s => {
                return Err(no(format!(
                    "`{wname}` has shape {s:?}, expected [classes, {channels}] (the network's last level has {channels} channels)"
                )));
            }
        };
        let weight = self.values(&wname, t, &[classes, channels])?;
        let bname = format!("{fc}.bias");
        let bias = match self.tensors.get(&bname) {
            Some(b) => self.values(&bname, b, &[classes])?,
            None => vec![0.0; classes],
        };
        Ok((weight, bias, classes))
    }
}
