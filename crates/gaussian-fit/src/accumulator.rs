//! One-pass streaming accumulation of everything the Gaussian fit needs.

use ndarray::{ArrayView1, ArrayView2, ArrayView3, Axis};

use crate::error::GaussianError;
use crate::moments::CentralMoments;

/// Rows processed per gemm chunk when a large batch is pushed.
const CHUNK_ROWS: usize = 512;

/// Number of single vectors buffered before they are folded into the moments:
/// `clamp(dim, 16, 256)`, so the buffer never holds more than `max(16 d, d^2)` values.
fn buffer_rows(dim: usize) -> usize {
    dim.clamp(16, 256)
}

/// Check that every value of an iterator is finite.
pub(crate) fn all_finite<A: Copy + Into<f64>>(mut it: impl Iterator<Item = A>) -> bool {
    it.all(|v| v.into().is_finite())
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
    dim: usize,
    moments: CentralMoments,
    buf: Vec<f64>,
    buf_rows: usize,
}

impl GaussianAccumulator {
    /// An empty accumulator for samples of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            moments: CentralMoments::empty(dim),
            buf: Vec::new(),
            buf_rows: 0,
        }
    }

    /// The sample dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of samples accumulated so far.
    pub fn n_samples(&self) -> u64 {
        self.moments.n + self.buf_rows as u64
    }

    /// Add every row of `rows` (shape `(n, dim)`) as a sample. On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), GaussianError> {
        if rows.ncols() != self.dim {
            return Err(GaussianError::DimensionMismatch {
                what: "columns of the pushed rows",
                expected: self.dim,
                got: rows.ncols(),
            });
        }
        if !all_finite(rows.iter().copied()) {
            return Err(GaussianError::NonFinite {
                what: "pushed rows",
            });
        }
        if rows.nrows() < buffer_rows(self.dim) {
            for row in rows.outer_iter() {
                self.push_checked(row);
            }
            return Ok(());
        }
        for chunk in rows.axis_chunks_iter(Axis(0), CHUNK_ROWS) {
            let x = chunk.mapv(|v| v.into());
            self.moments.merge(&CentralMoments::from_rows(x.view()));
        }
        Ok(())
    }

    /// Add one sample. On error nothing is added.
    pub fn push_vector<A: Copy + Into<f64>>(
        &mut self,
        x: ArrayView1<'_, A>,
    ) -> Result<(), GaussianError> {
        if x.len() != self.dim {
            return Err(GaussianError::DimensionMismatch {
                what: "length of the pushed vector",
                expected: self.dim,
                got: x.len(),
            });
        }
        if !all_finite(x.iter().copied()) {
            return Err(GaussianError::NonFinite {
                what: "pushed vector",
            });
        }
        self.push_checked(x);
        Ok(())
    }

    /// Add every position `(i, j)` of a `(dim, h, w)` map as one sample (shared model).
    /// On error nothing is added.
    pub fn push_map<A: Copy + Into<f64>>(
        &mut self,
        map: ArrayView3<'_, A>,
    ) -> Result<(), GaussianError> {
        let (c, h, w) = map.dim();
        if c != self.dim {
            return Err(GaussianError::DimensionMismatch {
                what: "channels of the pushed map",
                expected: self.dim,
                got: c,
            });
        }
        if !all_finite(map.iter().copied()) {
            return Err(GaussianError::NonFinite { what: "pushed map" });
        }
        // (c, h, w) -> (c, h*w) in row-major order whatever the input's memory layout
        let rows =
            ndarray::Array2::from_shape_fn((c, h * w), |(ch, k)| map[[ch, k / w, k % w]].into());
        self.push_rows(rows.t())
    }

    /// Push a checked (finite, right length) vector into the buffer.
    pub(crate) fn push_checked<A: Copy + Into<f64>>(&mut self, x: ArrayView1<'_, A>) {
        self.buf.extend(x.iter().map(|&v| v.into()));
        self.buf_rows += 1;
        if self.buf_rows >= buffer_rows(self.dim) {
            self.flush();
        }
    }

    /// Fold the buffered vectors into the moments.
    fn flush(&mut self) {
        if self.buf_rows == 0 {
            return;
        }
        if let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf) {
            let m = CentralMoments::from_rows(x);
            self.moments.merge(&m);
        }
        self.buf.clear();
        self.buf_rows = 0;
    }

    /// Merge the samples of `other` into `self`.
    pub fn merge(&mut self, other: &GaussianAccumulator) -> Result<(), GaussianError> {
        if other.dim != self.dim {
            return Err(GaussianError::Merge(format!(
                "dimension {} vs {}",
                self.dim, other.dim
            )));
        }
        self.flush();
        let m = other.moments_snapshot();
        self.moments.merge(&m);
        Ok(())
    }

    /// The central moments of everything pushed so far (buffer included).
    pub(crate) fn moments_snapshot(&self) -> CentralMoments {
        let mut m = self.moments.clone();
        if self.buf_rows > 0
            && let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf)
        {
            m.merge(&CentralMoments::from_rows(x));
        }
        m
    }
}
