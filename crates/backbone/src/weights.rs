//! Weights: every source (embedded, ONNX, PyTorch `.pth`, `.safetensors`, synthetic) is
//! read ONCE into
//! [`LoadedWeights`]: the folded convolutions in the plan's forward order, the final
//! classifier layer when the source has one, and the SHA-256 of the bytes that were read.
//! [`FeatureExtractor`](crate::FeatureExtractor) and [`Classifier`](crate::Classifier)
//! both build on that.
//!
//! Imports go one way: `weights` uses `onnx` and `torch` (the readers), `model` (the
//! source-independent [`ConvWeights`]) and `spec`; none of them uses `weights`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{BackboneError, Result};
use crate::model::ConvWeights;
use crate::onnx::{OnnxConv, OnnxGemm, read_onnx};
use crate::spec::{BackboneSpec, PaddingMode, Plan};
use crate::torch::StateDict;

/// The committed EfficientNet-Lite0 ONNX file (Apache-2.0, see `weights/`).
static LITE0_ONNX: &[u8] = include_bytes!("../weights/efficientnet-lite0/efficientnet-lite0.onnx");

/// How [`WeightsSource::Embedded`] names its file in errors.
const EMBEDDED_NAME: &str = "<embedded efficientnet-lite0.onnx>";

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WeightsSource {
    /// Weights compiled into this crate (EfficientNet-Lite0 only).
    Embedded,
    /// An ONNX file of the same architecture (logits-only exports are fine): the
    /// convolutions are read in graph order, batch norms folded, and assigned to the
    /// native network in forward order with every shape checked.
    Onnx(PathBuf),
    /// A PyTorch state dict (`.pth` / `.pt`, `torch.save`'s zip or legacy format, e.g.
    /// torchvision's published `resnet18-f37072fd.pth` or efficientnet_pytorch's
    /// `efficientnet-b4-6ed6700e.pth`), read through `burn-store`: parameters looked up by
    /// their names (torchvision for ResNets; timm or efficientnet_pytorch for
    /// EfficientNets), batch norms folded, every shape checked. The padding / epsilon
    /// convention follows from the names where they tell ([`crate::Convention`]).
    Pytorch(PathBuf),
    /// The same state dicts as [`WeightsSource::Pytorch`] in a `.safetensors` file.
    Safetensors(PathBuf),
    /// Deterministic synthetic weights (tests and benchmarks only, feature
    /// `test-support`; see [`synthetic_conv_weights`]).
    #[cfg(feature = "test-support")]
    Synthetic(u64),
}

impl WeightsSource {
    /// The source for a weights file, by its extension: `.pth` / `.pt` (any case) ->
    /// [`WeightsSource::Pytorch`], `.safetensors` -> [`WeightsSource::Safetensors`],
    /// anything else -> [`WeightsSource::Onnx`].
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if is_pytorch_file(&path) {
            Self::Pytorch(path)
        } else if is_safetensors_file(&path) {
            Self::Safetensors(path)
        } else {
            Self::Onnx(path)
        }
    }
}

/// Whether `path` has the `.safetensors` extension (any case).
pub fn is_safetensors_file(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("safetensors"))
}

/// Whether `path` has a PyTorch checkpoint extension (`.pth` or `.pt`, any case).
pub fn is_pytorch_file(path: &Path) -> bool {
    path.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x.eq_ignore_ascii_case("pth") || x.eq_ignore_ascii_case("pt"))
}

/// The final fully connected layer of a network, `[classes, channels]` row-major.
#[derive(Debug, Clone)]
pub(crate) struct ClassifierWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub classes: usize,
}

/// Weights read from one source, in a source-independent form.
#[derive(Debug)]
pub(crate) struct LoadedWeights {
    /// Folded convolutions, in the plan's forward order (shapes checked).
    pub convs: Vec<ConvWeights>,
    /// The classifier layer, or why there is none (a features-only file is fine for
    /// feature extraction; only [`Classifier`](crate::Classifier) reports this error).
    pub classifier: Result<ClassifierWeights>,
    /// SHA-256 (hex) of the bytes read (`synthetic:<seed>` for synthetic weights).
    pub sha256: String,
}

/// Deterministic synthetic weights of a conv (index `k` in forward order):
/// `w[i] = sin(seed + 0.37 i + 1.1 k) * 2 / sqrt(fan_in)`,
/// `b[j] = 0.1 sin(seed + 0.73 j + 1.1 k + 0.5)`, computed in f64 then rounded to f32.
/// The fixture generator computes the same formula.
#[cfg(feature = "test-support")]
pub fn synthetic_conv_weights(seed: u64, k: usize, shape: [usize; 4]) -> (Vec<f32>, Vec<f32>) {
    let n: usize = shape.iter().product();
    let fan_in = (shape[1] * shape[2] * shape[3]).max(1) as f64;
    let scale = 2.0 / fan_in.sqrt();
    let s = seed as f64 + 1.1 * k as f64;
    let w = (0..n)
        .map(|i| ((s + 0.37 * i as f64).sin() * scale) as f32)
        .collect();
    let b = (0..shape[0])
        .map(|j| (0.1 * (s + 0.73 * j as f64 + 0.5).sin()) as f32)
        .collect();
    (w, b)
}

/// Deterministic synthetic classifier weights of a network with `num_convs`
/// convolutions: the conv formula of [`synthetic_conv_weights`] with `k = num_convs`
/// and shape `[classes, channels, 1, 1]` (row-major `[classes, channels]`), so that the
/// fixture generator can compute the same values. Returns `(weight, bias)`.
#[cfg(feature = "test-support")]
pub fn synthetic_classifier_weights(
    seed: u64,
    num_convs: usize,
    classes: usize,
    channels: usize,
) -> (Vec<f32>, Vec<f32>) {
    synthetic_conv_weights(seed, num_convs, [classes, channels, 1, 1])
}

/// Number of classes of the synthetic classifier (ImageNet-1k's).
#[cfg(feature = "test-support")]
const SYNTHETIC_CLASSES: usize = 1000;

/// SHA-256 (hex) of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 (hex) of a file, streamed.
fn file_sha256(path: &Path) -> Result<String> {
    use std::io::Read;
    let io_err = |e: std::io::Error| BackboneError::WeightsFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        h.update(buf.get(..n).unwrap_or_default());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads `source` once for `spec` (whose convolution plan is `plan`).
pub(crate) fn load(spec: &BackboneSpec, plan: &Plan, source: &WeightsSource) -> Result<LoadedWeights> {
    match source {
        #[cfg(feature = "test-support")]
        WeightsSource::Synthetic(seed) => {
            let convs = plan
                .convs
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    let (weight, bias) = synthetic_conv_weights(*seed, k, d.weight_shape());
                    ConvWeights { weight, bias }
                })
                .collect();
            let (weight, bias) = synthetic_classifier_weights(
                *seed,
                plan.convs.len(),
                SYNTHETIC_CLASSES,
                plan.final_channels,
            );
            Ok(LoadedWeights {
                convs,
                classifier: Ok(ClassifierWeights {
                    weight,
                    bias,
                    classes: SYNTHETIC_CLASSES,
                }),
                sha256: format!("synthetic:{seed}"),
            })
        }
        WeightsSource::Embedded => {
            if !spec.has_embedded_weights() {
                return Err(BackboneError::NoWeights {
                    backbone: spec.name.clone(),
                    reason: "only efficientnet-lite0 has embedded weights; pass an ONNX file (e.g. the ONNX Model Zoo export)".into(),
                });
            }
            load_onnx(Path::new(EMBEDDED_NAME), LITE0_ONNX, spec, plan)
        }
        WeightsSource::Onnx(path) => {
            let bytes = std::fs::read(path).map_err(|e| BackboneError::WeightsFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            load_onnx(path, &bytes, spec, plan)
        }
        WeightsSource::Pytorch(path) => {
            let sha256 = file_sha256(path)?;
            from_state_dict(StateDict::open(path, spec)?, spec, plan, sha256)
        }
        WeightsSource::Safetensors(path) => {
            let bytes = std::fs::read(path).map_err(|e| BackboneError::WeightsFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let sha256 = sha256_hex(&bytes);
            from_state_dict(StateDict::from_safetensors(path, bytes, spec)?, spec, plan, sha256)
        }
    }
}

fn from_state_dict(sd: StateDict, spec: &BackboneSpec, plan: &Plan, sha256: String) -> Result<LoadedWeights> {
    Ok(LoadedWeights {
        convs: sd.convs(plan, spec)?,
        classifier: sd
            .classifier(plan)
            .map(|(weight, bias, classes)| ClassifierWeights {
                weight,
                bias,
                classes,
            }),
        sha256,
    })
}

/// The weights of an ONNX file's bytes (one parse for convolutions and classifier).
fn load_onnx(file: &Path, bytes: &[u8], spec: &BackboneSpec, plan: &Plan) -> Result<LoadedWeights> {
    let (convs, gemm) = read_onnx(bytes).map_err(|reason| BackboneError::WeightsFile {
        path: file.to_path_buf(),
        reason,
    })?;
    Ok(LoadedWeights {
        convs: match_onnx(file, spec, plan, convs)?,
        classifier: gemm
            .map_err(|reason| BackboneError::WeightsFile {
                path: file.to_path_buf(),
                reason,
            })
            .and_then(|g| from_gemm(file, g, plan.final_channels)),
        sha256: sha256_hex(bytes),
    })
}

/// Assigns ONNX convolutions to the plan, checking every shape and attribute.
fn match_onnx(
    file: &Path,
    spec: &BackboneSpec,
    plan: &Plan,
    convs: Vec<OnnxConv>,
) -> Result<Vec<ConvWeights>> {
    let mismatch = |reason: String| BackboneError::WeightsMismatch {
        path: file.to_path_buf(),
        backbone: spec.name.clone(),
        reason,
    };
    if convs.len() != plan.convs.len() {
        return Err(mismatch(format!(
            "the file has {} Conv nodes, the architecture has {} convolutions (is it another network, or another variant of the family?)",
            convs.len(),
            plan.convs.len()
        )));
    }
    refuse_symmetric_export(file, spec, plan, &convs)?;
    let mut out = Vec::with_capacity(convs.len());
    for (k, (def, c)) in plan.convs.iter().zip(convs).enumerate() {
        let expected = def.weight_shape();
        let at = format!(
            "parameter #{k} `{}.weight` (ONNX node `{}`, tensor `{}`)",
            def.name, c.node_name, c.weight_name
        );
        if c.shape != expected {
            return Err(mismatch(format!(
                "{at}: expected shape {expected:?}, found {:?}",
                c.shape
            )));
        }
        if c.strides != [def.stride, def.stride] || c.group != def.groups {
            return Err(mismatch(format!(
                "{at}: expected stride {} and groups {}, found strides {:?} and groups {}",
                def.stride, def.groups, c.strides, c.group
            )));
        }
        if def.padding == PaddingMode::Symmetric {
            let (p, _) = def.pads(0);
            if c.pads != [p; 4] {
                return Err(mismatch(format!(
                    "{at}: expected symmetric padding {p}, found pads {:?} (TF-\"same\" weights need a TfSame configuration)",
                    c.pads
                )));
            }
        }
        if c.weight.iter().chain(&c.bias).any(|v| !v.is_finite()) {
            return Err(mismatch(format!("{at}: contains NaN or infinite values")));
        }
        out.push(ConvWeights {
            weight: c.weight,
            bias: c.bias,
        });
    }
    Ok(out)
}

/// A TF-"same" configuration refuses an ONNX export whose every strided k x k
/// convolution has PyTorch's symmetric padding: that is a PyTorch-convention network
/// (e.g. timm's `efficientnet_b4`, the ONNX Model Zoo's), whose features differ. (TF
/// exports carry the "same" padding as asymmetric pads or as `Pad` nodes with zero conv
/// pads; at odd sizes TF pads can be symmetric too, but not at every strided layer of a
/// network whose input side is even.)
fn refuse_symmetric_export(file: &Path, spec: &BackboneSpec, plan: &Plan, convs: &[OnnxConv]) -> Result<()> {
    let strided: Vec<_> = plan
        .convs
        .iter()
        .zip(convs)
        .filter(|(d, _)| d.padding == PaddingMode::TfSame && d.stride > 1 && d.kernel > 1)
        .collect();
    let symmetric = |(d, c): &(&crate::spec::ConvDef, &OnnxConv)| {
        let p = ((d.stride - 1) + (d.kernel - 1)) / 2;
        p > 0 && c.pads == [p; 4]
    };
    if !strided.is_empty() && strided.iter().all(symmetric) {
        return Err(BackboneError::Convention {
            path: file.to_path_buf(),
            backbone: spec.name.clone(),
            reason: format!(
                "weights file {} for {}: every strided convolution of the file has PyTorch's symmetric padding: a PyTorch-convention export (e.g. timm's efficientnet_bN), not the TF \"same\" padding of {}; use the -timm backbone (e.g. efficientnet-b4-timm)",
                file.display(),
                spec.name,
                spec.name
            ),
        });
    }
    Ok(())
}

fn no_classifier(path: &Path, reason: String) -> BackboneError {
    BackboneError::NoClassifier {
        path: path.to_path_buf(),
        reason,
    }
}

/// Checks the last `Gemm` of an ONNX file against the network's last level.
fn from_gemm(path: &Path, gemm: Option<OnnxGemm>, channels: usize) -> Result<ClassifierWeights> {
    let g = gemm.ok_or_else(|| {
        no_classifier(
            path,
            "the graph has no Gemm node (a features-only export? the check needs the file with its ImageNet classifier)".into(),
        )
    })?;
    let at = format!("Gemm node `{}` (weight `{}`)", g.node_name, g.weight_name);
    if g.in_features != channels {
        return Err(no_classifier(
            path,
            format!(
                "{at} takes {} input features, the network's last level has {channels} channels",
                g.in_features
            ),
        ));
    }
    if g.out_features == 0 {
        return Err(no_classifier(path, format!("{at} has no outputs")));
    }
    if g.weight.iter().chain(&g.bias).any(|v| !v.is_finite()) {
        return Err(no_classifier(
            path,
            format!("{at} contains NaN or infinite values"),
        ));
    }
    Ok(ClassifierWeights {
        weight: g.weight,
        bias: g.bias,
        classes: g.out_features,
    })
}
