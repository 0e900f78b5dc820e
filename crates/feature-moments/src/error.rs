//! The error type of this crate.

use thiserror::Error;

/// Everything that can go wrong when pushing samples into, or merging, a
/// [`StreamingAccumulator`](crate::StreamingAccumulator).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MomentsError {
    /// An input value is NaN or infinite.
    #[error("non-finite value (NaN or infinity) in {what}")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
    },
    /// A vector, batch or map does not have the dimension the accumulator expects.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which input was wrong.
        what: &'static str,
        /// The expected size.
        expected: usize,
        /// The size that was given.
        got: usize,
    },
    /// Two accumulators of different dimensions were merged.
    #[error("cannot merge accumulators of dimension {expected} and {got}")]
    Merge {
        /// The dimension of the accumulator merged into.
        expected: usize,
        /// The dimension of the accumulator merged from.
        got: usize,
    },
}
