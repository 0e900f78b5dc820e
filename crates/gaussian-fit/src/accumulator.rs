//! One-pass streaming accumulation of everything the Gaussian fit needs, built on the shared
//! `feature-moments` streaming accumulator.

use feature_moments::{MomentsError, StreamingAccumulator};
use ndarray::{ArrayView1, ArrayView2, ArrayView3};

use crate::error::GaussianError;
use crate::moments::CentralMoments;

pub(crate) use feature_moments::all_finite;

/// The shared crate's error as this crate's error (same variants and messages).
pub(crate) fn from_moments_error(e: MomentsError) -> GaussianError {
    match e {
        MomentsError::NonFinite { what } => GaussianError::NonFinite { what },
        MomentsError::DimensionMismatch {
            what,
            expected,
            got,
        } => GaussianError::DimensionMismatch {
            what,
            expected,
            got,
        },
        MomentsError::Merge { expected, got } => {
            GaussianError::Merge(format!("dimension {expected} vs {got}"))
        }
        other => GaussianError::InvalidModel(other.to_string()),
    }
}

/// Streaming accumulator for one Gaussian: in ONE pass over the samples it keeps the count,
/// mean, `sum (x-mu)(x-mu)^T`, `sum ||x-mu||^2 (x-mu)` and `sum ||x-mu||^4` (everything mean,
/// empirical covariance and Ledoit-Wolf need), in f64, with `O(d^2)` memory whatever the number
/// of samples.
///
/// Numerics: samples are folded in chunks; each chunk is centred on its own mean and merged
/// with exact Chan-style update formulas (see the crate docs), so no raw moments cancel and the
/// streamed result equals the one-shot fit to rounding (about `1e-12` relative).
/// Single vectors are buffered (at most `clamp(dim, 16, 256)` of them) and folded as a chunk.
#[derive(Debug, Clone)]
pub struct GaussianAccumulator {
    inner: StreamingAccumulator<CentralMoments>,
}

impl GaussianAccumulator {
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

    /// Add every row of `rows` (shape `(n, dim)`) as a sample. On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), GaussianError> {
        self.inner.push_rows(rows).map_err(from_moments_error)
    }

    /// Add one sample. On error nothing is added.
    pub fn push_vector<A: Copy + Into<f64>>(
        &mut self,
        x: ArrayView1<'_, A>,
    ) -> Result<(), GaussianError> {
        self.inner.push_vector(x).map_err(from_moments_error)
    }

    /// Add every position `(i, j)` of a `(dim, h, w)` map as one sample (shared model).
    /// On error nothing is added.
    pub fn push_map<A: Copy + Into<f64>>(
        &mut self,
        map: ArrayView3<'_, A>,
    ) -> Result<(), GaussianError> {
        self.inner.push_map(map).map_err(from_moments_error)
    }

    /// Merge the samples of `other` into `self`.
    pub fn merge(&mut self, other: &GaussianAccumulator) -> Result<(), GaussianError> {
        self.inner.merge(&other.inner).map_err(from_moments_error)
    }

    /// The central moments of everything pushed so far (buffer included).
    pub(crate) fn moments_snapshot(&self) -> CentralMoments {
        self.inner.snapshot()
    }
}
