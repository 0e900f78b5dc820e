//! The error type of this crate.

use feature_moments::MomentsError;
use thiserror::Error;

/// Everything that can go wrong when parsing parameters, accumulating samples, fitting or
/// applying a reduction.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ReductionError {
    /// Bad samples or vectors (non-finite values, wrong dimensions, merges of accumulators of
    /// different dimensions), from pushing into the [`MomentAccumulator`](crate::MomentAccumulator)
    /// or from the inputs of a fit or a projection.
    #[error(transparent)]
    Moments(#[from] MomentsError),
    /// A feature dimension of zero.
    #[error("the feature dimension must be at least 1, got 0")]
    ZeroDimension,
    /// No samples were accumulated (a PCA needs at least 1).
    #[error("too few samples to fit a PCA: need at least {needed}, got {got}")]
    TooFewSamples {
        /// The minimum number of samples.
        needed: u64,
        /// The number accumulated.
        got: u64,
    },
    /// A variance threshold outside `(0, 1]` (or not finite).
    #[error("variance threshold must be in (0, 1], got {0}")]
    ThresholdOutOfRange(f64),
    /// A text form of a selection rule could not be parsed.
    #[error("cannot parse selection {text:?}: {reason}")]
    Parse {
        /// The text that was given.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The eigendecomposition failed (did not converge, or the covariance overflowed).
    #[error("eigendecomposition failed: {0}")]
    Decomposition(String),
    /// A (deserialised) model is internally inconsistent.
    #[error("invalid fitted reduction: {0}")]
    InvalidModel(String),
}
