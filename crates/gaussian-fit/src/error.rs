//! The error type of this crate.

use feature_moments::MomentsError;
use thiserror::Error;

/// Everything that can go wrong when parsing parameters, accumulating samples or fitting a
/// Gaussian.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum GaussianError {
    /// Bad samples or inputs (non-finite values, wrong dimensions, merges of accumulators of
    /// different shapes), from pushing into a [`MomentAccumulator`](crate::MomentAccumulator)
    /// or [`PerPositionAccumulator`](crate::PerPositionAccumulator), or from the inputs of a
    /// fit; also a covariance that overflows (`what` says so).
    #[error(transparent)]
    Moments(#[from] MomentsError),
    /// A feature dimension (or a spatial size) of zero was requested.
    #[error("{what} must be at least 1, got 0")]
    ZeroSize {
        /// Which size was zero.
        what: &'static str,
    },
    /// Fewer samples than the fit needs (a Gaussian needs at least 2).
    #[error("too few samples to fit a Gaussian: need at least {needed}, got {got}")]
    TooFewSamples {
        /// The minimum number of samples.
        needed: u64,
        /// The number accumulated.
        got: u64,
    },
    /// An invalid parameter value (e.g. a negative or non-finite ridge).
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A text form of an estimator could not be parsed.
    #[error("cannot parse covariance estimator {text:?}: {reason}")]
    Parse {
        /// The text that was given.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The precision matrix could not be formed (eigendecomposition failed to converge or
    /// produced non-finite values, e.g. because covariance entries overflow).
    #[error("cannot form the precision matrix: {0}")]
    Precision(String),
    /// A (deserialised) model is internally inconsistent.
    #[error("invalid fitted model: {0}")]
    InvalidModel(String),
}
