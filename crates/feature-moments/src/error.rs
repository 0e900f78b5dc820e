//! The error type of this crate and the input checks that produce it.

use thiserror::Error;

/// Bad samples: what can go wrong when pushing samples into, or merging, a
/// [`MomentAccumulator`](crate::MomentAccumulator), or when a crate built on it checks the
/// vectors it is given ([`ensure_dim`], [`ensure_finite`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MomentsError {
    /// An input value is NaN or infinite.
    #[error("non-finite value (NaN or infinity) in {what}")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
    },
    /// A vector, batch or map does not have the dimension the accumulator (or model) expects.
    #[error("dimension mismatch in {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which input was wrong.
        what: &'static str,
        /// The expected size.
        expected: usize,
        /// The size that was given.
        got: usize,
    },
    /// Two accumulators of different shapes were merged.
    #[error("cannot merge accumulators whose {what} differ: {expected} vs {got}")]
    Merge {
        /// Which size differs (e.g. "dimensions").
        what: &'static str,
        /// The size of the accumulator merged into.
        expected: usize,
        /// The size of the accumulator merged from.
        got: usize,
    },
}

/// `true` if every value of the iterator is finite (converted to `f64`).
pub fn all_finite<A: Copy + Into<f64>>(values: impl IntoIterator<Item = A>) -> bool {
    values.into_iter().all(|v| v.into().is_finite())
}

/// [`MomentsError::NonFinite`] naming `what` unless every value is finite.
pub fn ensure_finite<A: Copy + Into<f64>>(
    values: impl IntoIterator<Item = A>,
    what: &'static str,
) -> Result<(), MomentsError> {
    if all_finite(values) {
        Ok(())
    } else {
        Err(MomentsError::NonFinite { what })
    }
}

/// [`MomentsError::DimensionMismatch`] naming `what` unless `got == expected`.
pub fn ensure_dim(what: &'static str, expected: usize, got: usize) -> Result<(), MomentsError> {
    if got == expected {
        Ok(())
    } else {
        Err(MomentsError::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}
