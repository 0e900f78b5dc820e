//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the backbone crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackboneError {
    /// An image file could not be read or decoded (missing, corrupt, truncated, unsupported).
    #[error("cannot load image {path}: {reason}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A weights file could not be read or parsed.
    #[error("cannot read weights file {path}: {reason}")]
    WeightsFile {
        /// The file (or `<embedded>`).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A weights file does not match the architecture.
    #[error("weights file {path} does not match {backbone}: {reason}")]
    WeightsMismatch {
        /// The file (or `<embedded>`).
        path: PathBuf,
        /// The backbone the weights were meant for.
        backbone: String,
        /// The parameter and expected vs found shapes.
        reason: String,
    },
    /// The padding / batch-norm convention of the weights cannot be told from the file, or
    /// contradicts the one asked for (see `Convention`).
    #[error("{reason}")]
    Convention {
        /// The file (empty when no file is involved).
        path: PathBuf,
        /// The backbone (empty when none is involved).
        backbone: String,
        /// The whole message: the file and backbone where involved, what is unknown or
        /// contradictory, and the option that decides.
        reason: String,
    },
    /// The requested weights source is not available for this backbone.
    #[error("no weights for {backbone}: {reason}")]
    NoWeights {
        /// The backbone.
        backbone: String,
        /// Why.
        reason: String,
    },
    /// An unknown backbone name.
    #[error("unknown backbone {0:?} (known: {1})")]
    UnknownBackbone(String, String),
    /// A bad device string or an unavailable device.
    #[error("device {device:?}: {reason}")]
    Device {
        /// The device asked for.
        device: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Invalid levels (empty, out of range or repeated).
    #[error("invalid levels {levels:?} for {backbone} (valid: 0..={max}): {reason}")]
    Levels {
        /// The levels asked for.
        levels: Vec<usize>,
        /// The backbone.
        backbone: String,
        /// The largest valid level.
        max: usize,
        /// Why they are invalid.
        reason: String,
    },
    /// Invalid preprocessing parameters.
    #[error("invalid preprocessing: {0}")]
    Preprocess(String),
    /// An input batch with the wrong shape or non-finite values.
    #[error("invalid input batch: {0}")]
    Input(String),
    /// The weights have no usable classifier layer (features-only export, or a final
    /// layer that does not fit the network).
    #[error("no classifier in {path}: {reason}")]
    NoClassifier {
        /// The file (or `<embedded>`).
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The pretrained check failed: the weights do not classify the bundled photos as
    /// ImageNet-trained weights do.
    #[error(
        "{backbone} weights (sha256 {weights_sha256}) failed the ImageNet-pretrained check: {details}"
    )]
    NotPretrained {
        /// The backbone.
        backbone: String,
        /// SHA-256 of the weights.
        weights_sha256: String,
        /// Which photo was misclassified, as what.
        details: String,
    },
    /// The compute backend failed.
    #[error("backend error: {0}")]
    Backend(String),
}

/// Result alias of this crate.
pub type Result<T, E = BackboneError> = std::result::Result<T, E>;
