//! The error type of this crate.

use thiserror::Error;

/// Everything that can go wrong when parsing parameters, accumulating samples or fitting a
/// Gaussian.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum GaussianError {
    /// An input value is NaN or infinite.
    #[error("non-finite value (NaN or infinity) in {what}")]
    NonFinite {
        /// Which input held the value (e.g. "input rows", "covariance").
        what: &'static str,
    },
    /// A vector, batch or map does not have the dimension the accumulator / model expects.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which input was wrong.
        what: &'static str,
        /// The expected size.
        expected: usize,
        /// The size that was given.
        got: usize,
    },
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
    /// Two accumulators of different shapes were merged.
    #[error("cannot merge accumulators: {0}")]
    Merge(String),
    /// A (deserialised) model is internally inconsistent.
    #[error("invalid fitted model: {0}")]
    InvalidModel(String),
}
