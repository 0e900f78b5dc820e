//! # backbone
//!
//! Turns images into per-level CNN feature maps for the Gaussian anomaly-detection
//! pipeline. Networks are native [burn](https://burn.dev) code built from a configuration
//! (EfficientNet B0-B7 and Lite0-4, ResNet-18/34/50, Wide ResNet-50-2); weights come from
//! ONNX files read at run time (any export of the same architecture, logits-only is
//! fine: convolutions are taken in graph order, batch norms folded, every shape checked),
//! or from PyTorch state dicts (`.pth` or `.safetensors`: torchvision's ResNets, timm's
//! or efficientnet_pytorch's EfficientNets, read through burn-store, parameters matched by
//! name), or from the embedded EfficientNet-Lite0 ImageNet weights; every source is read
//! once ([`WeightsSource`]). `efficientnet-bN` are the paper's weights (Google's TF
//! EfficientNets as efficientnet_pytorch ports them: TF "same" padding, batch-norm epsilon
//! 1e-3), `efficientnet-bN-timm` timm's; where a file cannot tell its [`Convention`], it is
//! stated with [`BackboneSpec::with_convention`] or refused. Levels are chosen at run time
//! and the forward pass stops at the deepest one (ResNets: 0 = the stem after max-pool,
//! 1..4 = layer1..layer4, as the paper counts them).
//!
//! Preprocessing reproduces PIL's antialiased `BILINEAR` resize bit-exactly, then the
//! ImageNet normalisation.
//!
//! [`Classifier`] adds the weights' own ImageNet classifier (global average pool + the
//! final `Gemm`), and [`pretrained::check`] uses it to tell ImageNet-trained weights from
//! others by classifying two bundled photos.
//!
//! ```
//! use backbone::{BackboneSpec, Device, FeatureExtractor, Preprocess, WeightsSource};
//! use ndarray::Array4;
//!
//! let spec: BackboneSpec = "efficientnet-lite0".parse()?;
//! let fx = FeatureExtractor::new(
//!     spec.clone(),
//!     WeightsSource::Embedded,
//!     &[3, 4],
//!     Preprocess::new(spec.default_input_size()),
//!     "cpu".parse::<Device>()?,
//! )?;
//! assert_eq!(fx.level_shapes(), vec![(40, 28, 28), (80, 14, 14)]);
//! let batch = Array4::<f32>::zeros((1, 3, 224, 224));
//! let levels = fx.extract(batch.view())?;
//! assert_eq!(levels[1].dim(), (1, 80, 14, 14));
//! # Ok::<(), backbone::BackboneError>(())
//! ```
#![deny(missing_docs)]

mod classifier;
mod cpu;
mod device;
mod error;
mod extractor;
mod fused;
mod model;
mod onnx;
mod preprocess;
pub mod pretrained;
mod spec;
mod torch;
mod weights;

pub use classifier::{Classifier, IMAGENET_CLASSES, Prediction, top_k};
pub use device::Device;
pub use error::{BackboneError, Result};
pub use extractor::{BackboneIdentity, Batch, FeatureExtractor};
pub use preprocess::{
    IMAGENET_MEAN, IMAGENET_STD, Preprocess, load_image, normalize, preprocess, resize_and_crop,
    resize_bilinear_pil,
};
pub use spec::{
    Activation, Architecture, BackboneName, BackboneSpec, Convention, EfficientNetConfig, MbStage,
    PaddingMode,
    ResNetConfig, efficientnet_b0_stages,
};
pub use weights::{WeightsSource, is_pytorch_file, is_safetensors_file};
#[cfg(feature = "test-support")]
pub use weights::{synthetic_classifier_weights, synthetic_conv_weights};
