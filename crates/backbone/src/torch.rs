//! PyTorch state dicts as a weights source: `.pth` / `.pt` files (`torch.save`'s zip
//! container or its legacy format) through [`burn_store`]'s `PytorchReader`, and
//! `.safetensors` files through its safetensors reader (which checks the header's
//! offsets and sizes against the file).
//!
//! Two naming layouts are recognised, by the stem's name:
//! - the published names of the plan (torchvision for the ResNets: `conv1.weight`,
//!   `bn1.{weight,bias,running_mean,running_var}`, `layerX.Y.convZ` / `bnZ`,
//!   `layerX.Y.downsample.0` / `.1`, `fc`; timm for the EfficientNets: `conv_stem`,
//!   `blocks.S.B.conv_pw` ..., `classifier`), see
//!   [`BackboneSpec::published_parameter_shapes`](crate::BackboneSpec::published_parameter_shapes);
//! - efficientnet_pytorch's (lukemelas) for the EfficientNets: `_conv_stem` / `_bn0`,
//!   `_blocks.N._expand_conv` / `_bn0`, `_depthwise_conv` / `_bn1`, `_se_reduce` /
//!   `_se_expand`, `_project_conv` / `_bn2` (N counts the blocks over all stages),
//!   `_conv_head` / `_bn1`, `_fc`.
//!
//! The convention (padding rule and batch-norm epsilon, [`Convention`]) follows from the
//! layout where it can: efficientnet_pytorch is always TF ("same" padding, epsilon 1e-3),
//! torchvision's ResNets PyTorch (epsilon 1e-5). timm names the PyTorch-trained
//! `efficientnet_bN` and the TF-ported `tf_efficientnet_bN` alike, so a timm-named
//! EfficientNet needs the convention stated ([`BackboneSpec::with_convention`]) and is
//! refused otherwise. A file whose convention contradicts the spec's is refused.
//! Batch norms are folded into the convolutions in f64 with the convention's epsilon.
//! Every shape is checked; a missing or misshapen parameter is an error naming the file
//! and the parameter.

use std::collections::HashMap;
use std::path::Path;

use burn_store::pytorch::PytorchReader;
use burn_store::{ModuleStore, SafetensorsStore, TensorSnapshot};

use crate::error::{BackboneError, Result};
use crate::model::ConvWeights;
use crate::spec::{BackboneSpec, BlockPlan, Convention, Plan, PlanKind};

/// The naming layout of a state dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// The plan's own names (torchvision ResNets, timm EfficientNets).
    Published,
    /// efficientnet_pytorch's (lukemelas) EfficientNet names.
    EfficientnetPytorch,
}

/// `(convolution, batch norm)` names of every convolution of `plan`, in plan order, in
/// efficientnet_pytorch's naming (`_blocks.N` counts the blocks over all stages).
fn efficientnet_pytorch_names(plan: &Plan) -> Vec<(String, Option<String>)> {
    let mut names: Vec<(String, Option<String>)> = plan
        .convs
        .iter()
        .map(|c| (c.name.clone(), c.bn_name.clone()))
        .collect();
    let mut set = |i: usize, conv: String, bn: Option<String>| {
        if let Some(slot) = names.get_mut(i) {
            *slot = (conv, bn);
        }
    };
    set(plan.stem, "_conv_stem".into(), Some("_bn0".into()));
    let blocks = plan.stages.iter().flatten();
    for (n, block) in blocks.enumerate() {
        if let BlockPlan::Mb {
            expand,
            dw,
            se,
            project,
            ..
        } = block
        {
            let p = format!("_blocks.{n}.");
            if let Some(e) = expand {
                set(*e, format!("{p}_expand_conv"), Some(format!("{p}_bn0")));
            }
            set(*dw, format!("{p}_depthwise_conv"), Some(format!("{p}_bn1")));
            if let Some((r, e)) = se {
                set(*r, format!("{p}_se_reduce"), None);
                set(*e, format!("{p}_se_expand"), None);
            }
            set(*project, format!("{p}_project_conv"), Some(format!("{p}_bn2")));
        }
    }
    if let Some(h) = plan.head {
        set(h, "_conv_head".into(), Some("_bn1".into()));
    }
    names
}

/// A state dict read from a `.pth` / `.pt` or `.safetensors` file.
pub(crate) struct StateDict {
    path: std::path::PathBuf,
    backbone: String,
    tensors: HashMap<String, TensorSnapshot>,
}

impl StateDict {
    /// Reads a `.pth` / `.pt` file (all tensors, lazily materialised).
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

    /// Reads the bytes of a `.safetensors` file (`path` names it in errors). The header's
    /// length, JSON, dtypes and every tensor's offsets are checked against the bytes by the
    /// `safetensors` crate before anything is materialised.
    pub(crate) fn from_safetensors(path: &Path, bytes: Vec<u8>, spec: &BackboneSpec) -> Result<Self> {
        let mut store = SafetensorsStore::from_bytes(Some(bytes));
        let tensors = store
            .get_all_snapshots()
            .map_err(|e| BackboneError::WeightsFile {
                path: path.to_path_buf(),
                reason: format!("not a readable safetensors file: {e}"),
            })?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            backbone: spec.name.clone(),
            tensors,
        })
    }

    fn layout(&self, plan: &Plan) -> Layout {
        if plan.kind == PlanKind::EfficientNet && self.tensors.contains_key("_conv_stem.weight") {
            Layout::EfficientnetPytorch
        } else {
            Layout::Published
        }
    }

    /// The convention to fold with: the file's where its layout tells, else the one the
    /// spec states; a contradiction or an unknown convention is refused.
    fn convention(&self, plan: &Plan, spec: &BackboneSpec) -> Result<Convention> {
        let refuse = |reason: String| BackboneError::Convention {
            path: self.path.clone(),
            backbone: self.backbone.clone(),
            reason: format!(
                "weights file {} for {}: {reason}",
                self.path.display(),
                self.backbone
            ),
        };
        let wanted = spec.effective_convention();
        let (file, what) = match (self.layout(plan), plan.kind) {
            (Layout::EfficientnetPytorch, _) => (
                Convention::Tf,
                "an efficientnet_pytorch (lukemelas) state dict: Google's TF weights, TF \"same\" padding, batch-norm epsilon 1e-3",
            ),
            (Layout::Published, PlanKind::ResNet) => (
                Convention::Pytorch,
                "a torchvision-named ResNet: symmetric padding, batch-norm epsilon 1e-5",
            ),
            (Layout::Published, PlanKind::EfficientNet) => {
                return spec.convention.ok_or_else(|| refuse(
                    "timm-named EfficientNet state dict: timm's `efficientnet_*` (PyTorch convention: symmetric padding, batch-norm epsilon 1e-5) and `tf_efficientnet_*` (TF convention: TF \"same\" padding, epsilon 1e-3) have the same names and shapes, so the convention cannot be told from the file; state it (`BackboneSpec::with_convention(Convention::Pytorch | Convention::Tf)`; gaussad: the weights-convention option, `pytorch` or `tf`)".into(),
                ));
            }
        };
        if file != wanted {
            let hint = match file {
                Convention::Tf => "use a TF-convention backbone (efficientnet-bN, efficientnet-liteN)",
                Convention::Pytorch => "use a PyTorch-convention backbone (efficientnet-bN-timm, resnetN)",
            };
            return Err(refuse(format!(
                "the file is {what}, the backbone asks for the {wanted} convention; {hint}"
            )));
        }
        Ok(file)
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

    /// The convolutions of `plan` (the architecture of `spec`), batch norms folded with
    /// the convention's epsilon, in plan order.
    pub(crate) fn convs(&self, plan: &Plan, spec: &BackboneSpec) -> Result<Vec<ConvWeights>> {
        let names: Vec<(String, Option<String>)> = match self.layout(plan) {
            Layout::EfficientnetPytorch => efficientnet_pytorch_names(plan),
            Layout::Published => plan
                .convs
                .iter()
                .map(|c| (c.name.clone(), c.bn_name.clone()))
                .collect(),
        };
        // A convolution weight the plan does not have means another network or variant.
        let mut known: Vec<&str> = names.iter().map(|(c, _)| c.as_str()).collect();
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
        let eps = self.convention(plan, spec)?.bn_eps();
        let mut out = Vec::with_capacity(plan.convs.len());
        for (def, (name, bn_name)) in plan.convs.iter().zip(&names) {
            let shape = def.weight_shape();
            let out_ch = def.out_ch;
            let mut weight = self.get(&format!("{name}.weight"), &shape)?;
            let bias_name = format!("{name}.bias");
            let mut bias = match (bn_name, self.tensors.get(&bias_name)) {
                (_, Some(t)) => self.values(&bias_name, t, &[out_ch])?,
                (Some(_), None) => vec![0.0; out_ch],
                (None, None) => self.get(&bias_name, &[out_ch])?,
            };
            if let Some(bn) = bn_name {
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

    /// The classifier (`fc` for ResNets, `classifier` for timm EfficientNets, `_fc` for
    /// efficientnet_pytorch's): `(weight [classes, channels] row-major, bias, classes)`.
    pub(crate) fn classifier(&self, plan: &Plan) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let fc = match (plan.kind, self.layout(plan)) {
            (PlanKind::ResNet, _) => "fc",
            (PlanKind::EfficientNet, Layout::Published) => "classifier",
            (PlanKind::EfficientNet, Layout::EfficientnetPytorch) => "_fc",
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
