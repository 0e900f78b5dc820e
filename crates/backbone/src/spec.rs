//! Backbone names and architecture configurations.
//!
//! Every supported network is built from a plain configuration
//! ([`EfficientNetConfig`] or [`ResNetConfig`]): widening, deepening, switching the
//! activation, squeeze-excitation, the padding rule or the residual block kind is a
//! configuration change, not new code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BackboneError;

/// Activation function of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Activation {
    /// `max(x, 0)` (ResNets).
    Relu,
    /// `min(max(x, 0), 6)` (EfficientNet-Lite).
    Relu6,
    /// `x * sigmoid(x)` (SiLU; EfficientNet B0-B7).
    Swish,
}

/// Padding rule of the convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PaddingMode {
    /// TensorFlow "SAME": output `ceil(in / stride)`, the extra pixel at the bottom/right
    /// (Google's EfficientNet / EfficientNet-Lite checkpoints).
    TfSame,
    /// PyTorch symmetric padding `((stride - 1) + (kernel - 1)) / 2` on each side
    /// (timm `efficientnet_*`, torchvision ResNets).
    Symmetric,
}

/// The conventions a network's weights were trained with: the padding rule and the
/// batch-norm epsilon. They cannot be read from every weights file (timm names
/// `efficientnet_b4` and `tf_efficientnet_b4` alike), so where the names and shapes do not
/// tell, the caller states it with [`BackboneSpec::with_convention`] and the loader refuses
/// to guess ([`BackboneError::Convention`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Convention {
    /// TensorFlow's: "same" padding (the extra pixel bottom/right), batch-norm epsilon
    /// 1e-3. Google's EfficientNet / EfficientNet-Lite checkpoints and their PyTorch ports
    /// (efficientnet_pytorch, timm's `tf_*` models). Text form `tf`.
    Tf,
    /// PyTorch's: symmetric padding, batch-norm epsilon 1e-5 (timm's `efficientnet_*`,
    /// torchvision's ResNets). Text form `pytorch`.
    Pytorch,
}

impl Convention {
    /// The padding rule of the convention.
    pub fn padding(self) -> PaddingMode {
        match self {
            Convention::Tf => PaddingMode::TfSame,
            Convention::Pytorch => PaddingMode::Symmetric,
        }
    }
    /// The batch-norm epsilon of the convention (1e-3 / 1e-5).
    pub fn bn_eps(self) -> f64 {
        match self {
            Convention::Tf => 1e-3,
            Convention::Pytorch => 1e-5,
        }
    }
    /// The text form (`tf` / `pytorch`).
    pub fn as_str(self) -> &'static str {
        match self {
            Convention::Tf => "tf",
            Convention::Pytorch => "pytorch",
        }
    }
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Convention {
    type Err = BackboneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tf" | "tensorflow" => Ok(Convention::Tf),
            "pytorch" | "torch" => Ok(Convention::Pytorch),
            other => Err(BackboneError::Convention {
                path: std::path::PathBuf::new(),
                backbone: String::new(),
                reason: format!("unknown convention {other:?} (expected tf or pytorch)"),
            }),
        }
    }
}

/// One stage of an EfficientNet (unscaled, as in the B0 definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MbStage {
    /// Number of blocks before depth scaling.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio of the inverted bottleneck (1: no expansion conv).
    pub expand_ratio: usize,
    /// Output channels before width scaling.
    pub out_channels: usize,
}

/// Configuration of an EfficientNet-family network (B0-B7, Lite0-4, custom).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    /// Channel (width) multiplier.
    pub width_multiplier: f64,
    /// Depth multiplier (repeats are `ceil(repeats * depth)`).
    pub depth_multiplier: f64,
    /// Unscaled stages (the B0 definition).
    pub stages: Vec<MbStage>,
    /// Stem channels before scaling (32).
    pub stem_channels: usize,
    /// Head channels before scaling (1280).
    pub head_channels: usize,
    /// EfficientNet-Lite: stem and head channels and the repeats of the first and last
    /// stage are not scaled.
    pub fix_stem_head: bool,
    /// Squeeze-excitation ratio (of the block's input channels), `None` for no SE.
    pub se_ratio: Option<f64>,
    /// Activation.
    pub activation: Activation,
    /// Padding rule.
    pub padding: PaddingMode,
}

/// The seven stages of EfficientNet-B0 (Tan & Le 2019, table 1).
pub fn efficientnet_b0_stages() -> Vec<MbStage> {
    let s = |repeats, kernel, stride, expand_ratio, out_channels| MbStage {
        repeats,
        kernel,
        stride,
        expand_ratio,
        out_channels,
    };
    vec![
        s(1, 3, 1, 1, 16),
        s(2, 3, 2, 6, 24),
        s(2, 5, 2, 6, 40),
        s(3, 3, 2, 6, 80),
        s(3, 5, 1, 6, 112),
        s(4, 5, 2, 6, 192),
        s(1, 3, 1, 6, 320),
    ]
}

impl EfficientNetConfig {
    /// timm's `efficientnet_bN` (SE 0.25, swish, symmetric padding).
    pub fn timm(width: f64, depth: f64) -> Self {
        Self {
            width_multiplier: width,
            depth_multiplier: depth,
            stages: efficientnet_b0_stages(),
            stem_channels: 32,
            head_channels: 1280,
            fix_stem_head: false,
            se_ratio: Some(0.25),
            activation: Activation::Swish,
            padding: PaddingMode::Symmetric,
        }
    }
    /// Google's TensorFlow EfficientNet-BN as efficientnet_pytorch ports it (the paper's
    /// weights; also timm's `tf_efficientnet_bN`): SE 0.25, swish, TF "same" padding,
    /// batch-norm epsilon 1e-3.
    pub fn tf(width: f64, depth: f64) -> Self {
        Self {
            padding: PaddingMode::TfSame,
            ..Self::timm(width, depth)
        }
    }
    /// Google's EfficientNet-Lite (no SE, ReLU6, TF "same" padding, fixed stem/head).
    pub fn lite(width: f64, depth: f64) -> Self {
        Self {
            width_multiplier: width,
            depth_multiplier: depth,
            stages: efficientnet_b0_stages(),
            stem_channels: 32,
            head_channels: 1280,
            fix_stem_head: true,
            se_ratio: None,
            activation: Activation::Relu6,
            padding: PaddingMode::TfSame,
        }
    }
    /// Channels after width scaling (TF/timm `round_filters`, divisor 8).
    pub fn round_channels(&self, c: usize) -> usize {
        let v = c as f64 * self.width_multiplier;
        let d = 8.0;
        let mut n = ((v + d / 2.0) / d).floor() * d;
        if n < d {
            n = d;
        }
        if n < 0.9 * v {
            n += d;
        }
        n as usize
    }
    fn repeats(&self, stage: usize) -> usize {
        let r = self.stages.get(stage).map_or(0, |s| s.repeats);
        if self.fix_stem_head && (stage == 0 || stage + 1 == self.stages.len()) {
            r
        } else {
            (r as f64 * self.depth_multiplier).ceil() as usize
        }
    }
    fn stem(&self) -> usize {
        if self.fix_stem_head {
            self.stem_channels
        } else {
            self.round_channels(self.stem_channels)
        }
    }
    fn head(&self) -> usize {
        if self.fix_stem_head {
            self.head_channels
        } else {
            self.round_channels(self.head_channels)
        }
    }
}

/// Configuration of a ResNet-family network (torchvision layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Blocks in layer1..layer4.
    pub layers: [usize; 4],
    /// Bottleneck blocks (ResNet-50 and up) instead of basic blocks.
    pub bottleneck: bool,
    /// torchvision's `width_per_group` (64; 128 for WideResNet-50-2).
    pub width_per_group: usize,
}

/// An architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Architecture {
    /// EfficientNet family.
    EfficientNet(EfficientNetConfig),
    /// ResNet family.
    ResNet(ResNetConfig),
}

/// Known backbone names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum BackboneName {
    /// EfficientNet-Lite0 (embedded ImageNet weights).
    EfficientNetLite0,
    /// EfficientNet-Lite1.
    EfficientNetLite1,
    /// EfficientNet-Lite2.
    EfficientNetLite2,
    /// EfficientNet-Lite3.
    EfficientNetLite3,
    /// EfficientNet-Lite4.
    EfficientNetLite4,
    /// EfficientNet-B0 (Google's TF weights as efficientnet_pytorch ports them: TF "same"
    /// padding, batch-norm epsilon 1e-3).
    EfficientNetB0,
    /// EfficientNet-B1 (efficientnet_pytorch / TF).
    EfficientNetB1,
    /// EfficientNet-B2 (efficientnet_pytorch / TF).
    EfficientNetB2,
    /// EfficientNet-B3 (efficientnet_pytorch / TF).
    EfficientNetB3,
    /// EfficientNet-B4 (efficientnet_pytorch / TF; the paper's backbone and weights).
    EfficientNetB4,
    /// EfficientNet-B5 (efficientnet_pytorch / TF).
    EfficientNetB5,
    /// EfficientNet-B6 (efficientnet_pytorch / TF).
    EfficientNetB6,
    /// EfficientNet-B7 (efficientnet_pytorch / TF).
    EfficientNetB7,
    /// timm's `efficientnet_b0` (PyTorch-trained: symmetric padding, epsilon 1e-5).
    EfficientNetB0Timm,
    /// timm's `efficientnet_b1`.
    EfficientNetB1Timm,
    /// timm's `efficientnet_b2`.
    EfficientNetB2Timm,
    /// timm's `efficientnet_b3`.
    EfficientNetB3Timm,
    /// timm's `efficientnet_b4` (the ONNX Model Zoo's EfficientNet-B4).
    EfficientNetB4Timm,
    /// timm's `efficientnet_b5`.
    EfficientNetB5Timm,
    /// timm's `efficientnet_b6`.
    EfficientNetB6Timm,
    /// timm's `efficientnet_b7`.
    EfficientNetB7Timm,
    /// ResNet-18 (torchvision).
    ResNet18,
    /// ResNet-34 (torchvision).
    ResNet34,
    /// ResNet-50 (torchvision).
    ResNet50,
    /// Wide ResNet-50-2 (torchvision).
    WideResNet50,
}

const ALL: [(BackboneName, &str); 25] = [
    (BackboneName::EfficientNetLite0, "efficientnet-lite0"),
    (BackboneName::EfficientNetLite1, "efficientnet-lite1"),
    (BackboneName::EfficientNetLite2, "efficientnet-lite2"),
    (BackboneName::EfficientNetLite3, "efficientnet-lite3"),
    (BackboneName::EfficientNetLite4, "efficientnet-lite4"),
    (BackboneName::EfficientNetB0, "efficientnet-b0"),
    (BackboneName::EfficientNetB1, "efficientnet-b1"),
    (BackboneName::EfficientNetB2, "efficientnet-b2"),
    (BackboneName::EfficientNetB3, "efficientnet-b3"),
    (BackboneName::EfficientNetB4, "efficientnet-b4"),
    (BackboneName::EfficientNetB5, "efficientnet-b5"),
    (BackboneName::EfficientNetB6, "efficientnet-b6"),
    (BackboneName::EfficientNetB7, "efficientnet-b7"),
    (BackboneName::EfficientNetB0Timm, "efficientnet-b0-timm"),
    (BackboneName::EfficientNetB1Timm, "efficientnet-b1-timm"),
    (BackboneName::EfficientNetB2Timm, "efficientnet-b2-timm"),
    (BackboneName::EfficientNetB3Timm, "efficientnet-b3-timm"),
    (BackboneName::EfficientNetB4Timm, "efficientnet-b4-timm"),
    (BackboneName::EfficientNetB5Timm, "efficientnet-b5-timm"),
    (BackboneName::EfficientNetB6Timm, "efficientnet-b6-timm"),
    (BackboneName::EfficientNetB7Timm, "efficientnet-b7-timm"),
    (BackboneName::ResNet18, "resnet18"),
    (BackboneName::ResNet34, "resnet34"),
    (BackboneName::ResNet50, "resnet50"),
    (BackboneName::WideResNet50, "wide-resnet50"),
];

impl BackboneName {
    /// Every known name.
    pub fn all() -> Vec<BackboneName> {
        ALL.iter().map(|(n, _)| *n).collect()
    }
    /// The canonical string (`efficientnet-lite0`, ...).
    pub fn as_str(self) -> &'static str {
        ALL.iter()
            .find(|(n, _)| *n == self)
            .map_or("unknown", |(_, s)| s)
    }
}

impl fmt::Display for BackboneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackboneName {
    type Err = BackboneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let norm = match norm.as_str() {
            "resnet-18" => "resnet18".to_string(),
            "resnet-34" => "resnet34".to_string(),
            "resnet-50" => "resnet50".to_string(),
            "wide-resnet50-2" | "wideresnet50" | "wide-resnet-50" | "wrn50" => {
                "wide-resnet50".to_string()
            }
            _ => norm,
        };
        ALL.iter()
            .find(|(_, n)| *n == norm)
            .map(|(b, _)| *b)
            .ok_or_else(|| {
                BackboneError::UnknownBackbone(
                    s.to_string(),
                    ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", "),
                )
            })
    }
}

/// A backbone: name, architecture and native input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackboneSpec {
    /// Display name.
    pub name: String,
    /// Architecture configuration.
    pub architecture: Architecture,
    /// Native (default) input size in pixels (square).
    pub input_size: u32,
    /// The convention the caller states the weights follow ([`BackboneSpec::with_convention`]);
    /// `None`: told from the weights file, which is refused where its names and shapes do
    /// not tell (timm-named EfficientNet state dicts).
    #[serde(default)]
    pub convention: Option<Convention>,
}

impl BackboneSpec {
    /// The spec of a known backbone.
    pub fn from_name(name: BackboneName) -> Self {
        use BackboneName as N;
        let eff = |c: EfficientNetConfig| Architecture::EfficientNet(c);
        let res = |layers, bottleneck, width_per_group| {
            Architecture::ResNet(ResNetConfig {
                layers,
                bottleneck,
                width_per_group,
            })
        };
        let (architecture, input_size) = match name {
            N::EfficientNetLite0 => (eff(EfficientNetConfig::lite(1.0, 1.0)), 224),
            N::EfficientNetLite1 => (eff(EfficientNetConfig::lite(1.0, 1.1)), 240),
            N::EfficientNetLite2 => (eff(EfficientNetConfig::lite(1.1, 1.2)), 260),
            N::EfficientNetLite3 => (eff(EfficientNetConfig::lite(1.2, 1.4)), 280),
            N::EfficientNetLite4 => (eff(EfficientNetConfig::lite(1.4, 1.8)), 300),
            N::EfficientNetB0 => (eff(EfficientNetConfig::tf(1.0, 1.0)), 224),
            N::EfficientNetB1 => (eff(EfficientNetConfig::tf(1.0, 1.1)), 240),
            N::EfficientNetB2 => (eff(EfficientNetConfig::tf(1.1, 1.2)), 260),
            N::EfficientNetB3 => (eff(EfficientNetConfig::tf(1.2, 1.4)), 300),
            N::EfficientNetB4 => (eff(EfficientNetConfig::tf(1.4, 1.8)), 380),
            N::EfficientNetB5 => (eff(EfficientNetConfig::tf(1.6, 2.2)), 456),
            N::EfficientNetB6 => (eff(EfficientNetConfig::tf(1.8, 2.6)), 528),
            N::EfficientNetB7 => (eff(EfficientNetConfig::tf(2.0, 3.1)), 600),
            N::EfficientNetB0Timm => (eff(EfficientNetConfig::timm(1.0, 1.0)), 224),
            N::EfficientNetB1Timm => (eff(EfficientNetConfig::timm(1.0, 1.1)), 240),
            N::EfficientNetB2Timm => (eff(EfficientNetConfig::timm(1.1, 1.2)), 260),
            N::EfficientNetB3Timm => (eff(EfficientNetConfig::timm(1.2, 1.4)), 300),
            N::EfficientNetB4Timm => (eff(EfficientNetConfig::timm(1.4, 1.8)), 380),
            N::EfficientNetB5Timm => (eff(EfficientNetConfig::timm(1.6, 2.2)), 456),
            N::EfficientNetB6Timm => (eff(EfficientNetConfig::timm(1.8, 2.6)), 528),
            N::EfficientNetB7Timm => (eff(EfficientNetConfig::timm(2.0, 3.1)), 600),
            N::ResNet18 => (res([2, 2, 2, 2], false, 64), 224),
            N::ResNet34 => (res([3, 4, 6, 3], false, 64), 224),
            N::ResNet50 => (res([3, 4, 6, 3], true, 64), 224),
            N::WideResNet50 => (res([3, 4, 6, 3], true, 128), 224),
        };
        Self {
            name: name.as_str().to_string(),
            architecture,
            input_size,
            convention: None,
        }
    }

    /// A custom architecture (any configuration of the two families).
    pub fn custom(name: impl Into<String>, architecture: Architecture, input_size: u32) -> Self {
        Self {
            name: name.into(),
            architecture,
            input_size,
            convention: None,
        }
    }

    /// States the convention the weights were trained with (the padding rule and the
    /// batch-norm epsilon, see [`Convention`]); the architecture's padding follows it.
    /// Needed for weights whose names and shapes do not tell (timm-named EfficientNet
    /// state dicts: `efficientnet_bN` is [`Convention::Pytorch`], `tf_efficientnet_bN`
    /// [`Convention::Tf`]); a file that does tell and disagrees is refused.
    /// ResNets only exist in the PyTorch convention.
    pub fn with_convention(mut self, convention: Convention) -> Result<Self, BackboneError> {
        match &mut self.architecture {
            Architecture::EfficientNet(c) => c.padding = convention.padding(),
            Architecture::ResNet(_) if convention == Convention::Pytorch => {}
            Architecture::ResNet(_) => {
                return Err(BackboneError::Convention {
                    path: std::path::PathBuf::new(),
                    backbone: self.name.clone(),
                    reason: format!(
                        "{}: ResNets have no TF convention (torchvision's symmetric padding, epsilon 1e-5)",
                        self.name
                    ),
                });
            }
        }
        self.convention = Some(convention);
        Ok(self)
    }

    /// The convention of this architecture: the one stated with
    /// [`BackboneSpec::with_convention`], else the one of its padding rule.
    pub fn effective_convention(&self) -> Convention {
        self.convention.unwrap_or(match &self.architecture {
            Architecture::EfficientNet(c) if c.padding == PaddingMode::TfSame => Convention::Tf,
            _ => Convention::Pytorch,
        })
    }

    /// Number of levels that can be tapped (9 for EfficientNets: stem, 7 stages, head;
    /// 5 for ResNets, numbered as the paper and Rippel et al.'s code count them: 0 = the
    /// stem after its max-pool, 1..4 = layer1..layer4).
    pub fn num_levels(&self) -> usize {
        match &self.architecture {
            Architecture::EfficientNet(c) => c.stages.len() + 2,
            Architecture::ResNet(_) => 5,
        }
    }

    /// Default taps: 3..=7 for EfficientNets (the paper's "3-7"), 0..=3 for ResNets (the
    /// paper's ResNet-18 "0-3": the stem after max-pool and layer1..layer3).
    pub fn default_levels(&self) -> Vec<usize> {
        match &self.architecture {
            Architecture::EfficientNet(_) => (3..=7).filter(|&l| l < self.num_levels()).collect(),
            Architecture::ResNet(_) => (0..4).collect(),
        }
    }

    /// Native input size (224 for Lite0 and ResNets, 380 for B4).
    pub fn default_input_size(&self) -> u32 {
        self.input_size
    }

    /// Whether weights ship inside this crate (only EfficientNet-Lite0).
    pub fn has_embedded_weights(&self) -> bool {
        self.name == BackboneName::EfficientNetLite0.as_str()
            && self.architecture
                == BackboneSpec::from_name(BackboneName::EfficientNetLite0).architecture
    }

    /// The convolution plan (forward order) of this architecture.
    pub(crate) fn plan(&self) -> Plan {
        match &self.architecture {
            Architecture::EfficientNet(c) => plan_efficientnet(c),
            Architecture::ResNet(c) => plan_resnet(c),
        }
    }

    /// Parameter names and shapes of the published, UNFOLDED model in timm /
    /// torchvision naming (convolution weights, batch-norm weight/bias/running stats,
    /// squeeze-excitation biases, classifier for 1000 classes), in forward order.
    /// Used to check the configuration against the published architectures.
    pub fn published_parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let plan = self.plan();
        let mut out = Vec::new();
        for c in &plan.convs {
            out.push((
                format!("{}.weight", c.name),
                vec![c.out_ch, c.in_ch / c.groups, c.kernel, c.kernel],
            ));
            if let Some(bn) = &c.bn_name {
                for p in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{bn}.{p}"), vec![c.out_ch]));
                }
            } else {
                out.push((format!("{}.bias", c.name), vec![c.out_ch]));
            }
        }
        let fc = match plan.kind {
            PlanKind::EfficientNet => "classifier",
            PlanKind::ResNet => "fc",
        };
        out.push((format!("{fc}.weight"), vec![1000, plan.final_channels]));
        out.push((format!("{fc}.bias"), vec![1000]));
        out
    }

    /// `(channels, height, width)` of each level for a square input of `size` pixels
    /// (all levels, 0..num_levels()).
    pub fn all_level_shapes(&self, size: u32) -> Vec<(usize, usize, usize)> {
        self.plan().level_shapes(size as usize)
    }
}

impl FromStr for BackboneSpec {
    type Err = BackboneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_name(s.parse()?))
    }
}

/// One convolution of a plan.
#[derive(Debug, Clone)]
pub(crate) struct ConvDef {
    pub name: String,
    pub bn_name: Option<String>,
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub padding: PaddingMode,
}

impl ConvDef {
    /// A 1x1, stride-1, ungrouped convolution.
    pub fn pointwise(
        name: String,
        bn_name: Option<String>,
        in_ch: usize,
        out_ch: usize,
        padding: PaddingMode,
    ) -> Self {
        Self {
            name,
            bn_name,
            in_ch,
            out_ch,
            kernel: 1,
            stride: 1,
            groups: 1,
            padding,
        }
    }
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_ch,
            self.in_ch / self.groups.max(1),
            self.kernel,
            self.kernel,
        ]
    }
    /// (pad_begin, pad_end) for an input extent `h`.
    pub fn pads(&self, h: usize) -> (usize, usize) {
        let (k, s) = (self.kernel, self.stride.max(1));
        match self.padding {
            PaddingMode::TfSame => {
                let out = h.div_ceil(s);
                let total = ((out.saturating_sub(1)) * s + k).saturating_sub(h);
                (total / 2, total - total / 2)
            }
            PaddingMode::Symmetric => {
                let p = ((s - 1) + (k - 1)) / 2;
                (p, p)
            }
        }
    }
    pub fn out_size(&self, h: usize) -> usize {
        let (a, b) = self.pads(h);
        (h + a + b).saturating_sub(self.kernel) / self.stride.max(1) + 1
    }
}

/// Block structure, indices into `Plan::convs`.
#[derive(Debug, Clone)]
pub(crate) enum BlockPlan {
    Mb {
        expand: Option<usize>,
        dw: usize,
        se: Option<(usize, usize)>,
        project: usize,
        skip: bool,
    },
    Res {
        convs: Vec<usize>,
        down: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanKind {
    EfficientNet,
    ResNet,
}

/// The forward structure of a network.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub kind: PlanKind,
    pub convs: Vec<ConvDef>,
    pub stem: usize,
    pub stages: Vec<Vec<BlockPlan>>,
    pub head: Option<usize>,
    pub activation: Activation,
    pub final_channels: usize,
}

impl Plan {
    pub fn level_shapes(&self, size: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let stem = &self.convs[self.stem];
        let mut h = stem.out_size(size);
        let mut c = stem.out_ch;
        if self.kind == PlanKind::ResNet {
            h = (h + 2 - 3) / 2 + 1; // max pool 3x3 / 2, pad 1
        }
        out.push((c, h, h));
        for stage in &self.stages {
            for b in stage {
                let ids: Vec<usize> = match b {
                    BlockPlan::Mb {
                        expand,
                        dw,
                        project,
                        ..
                    } => expand.iter().copied().chain([*dw, *project]).collect(),
                    BlockPlan::Res { convs, .. } => convs.clone(),
                };
                for i in ids {
                    h = self.convs[i].out_size(h);
                    c = self.convs[i].out_ch;
                }
            }
            out.push((c, h, h));
        }
        if let Some(hd) = self.head {
            out.push((self.convs[hd].out_ch, h, h));
        }
        out
    }
}

fn plan_efficientnet(c: &EfficientNetConfig) -> Plan {
    let mut convs = Vec::new();
    let mut push = |d: ConvDef| {
        convs.push(d);
        convs.len() - 1
    };
    let pad = c.padding;
    let stem_ch = c.stem();
    let stem = push(ConvDef {
        name: "conv_stem".into(),
        bn_name: Some("bn1".into()),
        in_ch: 3,
        out_ch: stem_ch,
        kernel: 3,
        stride: 2,
        groups: 1,
        padding: pad,
    });
    let mut in_ch = stem_ch;
    let mut stages = Vec::new();
    for (si, st) in c.stages.iter().enumerate() {
        let out_ch = c.round_channels(st.out_channels);
        let mut blocks = Vec::new();
        for bi in 0..c.repeats(si) {
            let stride = if bi == 0 { st.stride } else { 1 };
            let p = format!("blocks.{si}.{bi}");
            let mid = in_ch * st.expand_ratio;
            let expand = (st.expand_ratio != 1).then(|| {
                push(ConvDef::pointwise(
                    format!("{p}.conv_pw"),
                    Some(format!("{p}.bn1")),
                    in_ch,
                    mid,
                    pad,
                ))
            });
            let dw = push(ConvDef {
                name: format!("{p}.conv_dw"),
                bn_name: Some(format!("{p}.bn{}", if expand.is_some() { 2 } else { 1 })),
                in_ch: mid,
                out_ch: mid,
                kernel: st.kernel,
                stride,
                groups: mid,
                padding: pad,
            });
            let se = c.se_ratio.map(|r| {
                let rd = ((in_ch as f64 * r) as usize).max(1);
                let a = push(ConvDef::pointwise(
                    format!("{p}.se.conv_reduce"),
                    None,
                    mid,
                    rd,
                    pad,
                ));
                let b = push(ConvDef::pointwise(
                    format!("{p}.se.conv_expand"),
                    None,
                    rd,
                    mid,
                    pad,
                ));
                (a, b)
            });
            let project = push(ConvDef {
                name: format!(
                    "{p}.{}",
                    if expand.is_some() {
                        "conv_pwl"
                    } else {
                        "conv_pw"
                    }
                ),
                bn_name: Some(format!("{p}.bn{}", if expand.is_some() { 3 } else { 2 })),
                in_ch: mid,
                out_ch,
                kernel: 1,
                stride: 1,
                groups: 1,
                padding: pad,
            });
            blocks.push(BlockPlan::Mb {
                expand,
                dw,
                se,
                project,
                skip: stride == 1 && in_ch == out_ch,
            });
            in_ch = out_ch;
        }
        stages.push(blocks);
    }
    let head_ch = c.head();
    let head = push(ConvDef::pointwise(
        "conv_head".into(),
        Some("bn2".into()),
        in_ch,
        head_ch,
        pad,
    ));
    Plan {
        kind: PlanKind::EfficientNet,
        convs,
        stem,
        stages,
        head: Some(head),
        activation: c.activation,
        final_channels: head_ch,
    }
}

fn plan_resnet(c: &ResNetConfig) -> Plan {
    let mut convs = Vec::new();
    let mut push = |name: String, bn: String, in_ch, out_ch, kernel, stride| {
        convs.push(ConvDef {
            name,
            bn_name: Some(bn),
            in_ch,
            out_ch,
            kernel,
            stride,
            groups: 1,
            padding: PaddingMode::Symmetric,
        });
        convs.len() - 1
    };
    let stem = push("conv1".into(), "bn1".into(), 3, 64, 7, 2);
    let expansion = if c.bottleneck { 4 } else { 1 };
    let mut in_ch = 64;
    let mut stages = Vec::new();
    for (li, &n) in c.layers.iter().enumerate() {
        let planes = 64 << li;
        let out_ch = planes * expansion;
        let mut blocks = Vec::new();
        for bi in 0..n {
            let stride = if bi == 0 && li > 0 { 2 } else { 1 };
            let p = format!("layer{}.{bi}", li + 1);
            let cv = |k: usize| (format!("{p}.conv{k}"), format!("{p}.bn{k}"));
            let ids = if c.bottleneck {
                let width = planes * c.width_per_group / 64;
                let (a, b) = cv(1);
                let c1 = push(a, b, in_ch, width, 1, 1);
                let (a, b) = cv(2);
                let c2 = push(a, b, width, width, 3, stride);
                let (a, b) = cv(3);
                let c3 = push(a, b, width, out_ch, 1, 1);
                vec![c1, c2, c3]
            } else {
                let (a, b) = cv(1);
                let c1 = push(a, b, in_ch, planes, 3, stride);
                let (a, b) = cv(2);
                let c2 = push(a, b, planes, planes, 3, 1);
                vec![c1, c2]
            };
            let down = (stride != 1 || in_ch != out_ch).then(|| {
                push(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                    in_ch,
                    out_ch,
                    1,
                    stride,
                )
            });
            blocks.push(BlockPlan::Res { convs: ids, down });
            in_ch = out_ch;
        }
        stages.push(blocks);
    }
    Plan {
        kind: PlanKind::ResNet,
        convs,
        stem,
        stages,
        head: None,
        activation: Activation::Relu,
        final_channels: in_ch,
    }
}
