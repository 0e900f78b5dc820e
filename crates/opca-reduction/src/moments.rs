//! Streaming first and second moments (mean and `sum (x-mu)(x-mu)^T`), Chan-style merges,
//! built on the shared `feature-moments` crate.

use feature_moments::{MomentsError, StreamingAccumulator};
use ndarray::{ArrayView1, ArrayView2, ArrayView3};

use crate::error::ReductionError;

pub(crate) use feature_moments::{Moments, all_finite};

/// The shared crate's error as this crate's error (same variants and messages).
fn from_moments_error(e: MomentsError) -> ReductionError {
    match e {
        MomentsError::NonFinite { what } => ReductionError::NonFinite { what },
        MomentsError::DimensionMismatch {
            what,
            expected,
            got,
        } => ReductionError::DimensionMismatch {
            what,
            expected,
            got,
        },
        MomentsError::Merge { expected, got } => ReductionError::Merge(expected, got),
        other => ReductionError::InvalidModel(other.to_string()),
    }
}

/// Streaming first pass of the PCA: count, mean and `sum (x - mu)(x - mu)^T` in f64 with
/// `O(d^2)` memory.
///
/// Numerics: samples are folded in chunks, each centred on its own mean, and merged with
/// Chan et al.'s exact pairwise formula, so nothing large cancels and the streamed fit equals
/// the one-shot [`fit_rows`](crate::ValidReductionParams::fit_rows) to rounding.
/// Single vectors are buffered (at most `clamp(dim, 16, 256)` of them) and folded as a chunk.
#[derive(Debug, Clone)]
pub struct MomentAccumulator {
    inner: StreamingAccumulator<Moments>,
}

impl MomentAccumulator {
    /// An empty accumulator for samples of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            inner: StreamingAccumulator::new(dim),
        }
    }

    /// The sample dimension.
    pub fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Number of samples accumulated so far.
    pub fn n_samples(&self) -> u64 {
        self.inner.n_samples()
    }

    /// Add every row of `rows` (shape `(n, dim)`). On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), ReductionError> {
        self.inner.push_rows(rows).map_err(from_moments_error)
    }

    /// Add one sample. On error nothing is added.
    pub fn push_vector<A: Copy + Into<f64>>(
        &mut self,
        x: ArrayView1<'_, A>,
    ) -> Result<(), ReductionError> {
        self.inner.push_vector(x).map_err(from_moments_error)
    }

    /// Add every position `(i, j)` of a `(dim, h, w)` map as one sample of dimension `dim`.
    /// On error nothing is added.
    pub fn push_map<A: Copy + Into<f64>>(
        &mut self,
        map: ArrayView3<'_, A>,
    ) -> Result<(), ReductionError> {
        self.inner.push_map(map).map_err(from_moments_error)
    }

    /// Merge the samples of `other` (same dimension) into `self`.
    pub fn merge(&mut self, other: &MomentAccumulator) -> Result<(), ReductionError> {
        self.inner.merge(&other.inner).map_err(from_moments_error)
    }

    /// Everything pushed so far, buffer included.
    pub(crate) fn snapshot(&self) -> Moments {
        self.inner.snapshot()
    }
}
