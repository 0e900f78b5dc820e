//! Streaming first and second moments (mean and `sum (x-mu)(x-mu)^T`), Chan-style merges.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, Axis};

use crate::error::ReductionError;

/// Rows per gemm chunk for large batches.
const CHUNK_ROWS: usize = 512;

fn buffer_rows(dim: usize) -> usize {
    dim.clamp(16, 256)
}

pub(crate) fn all_finite<A: Copy + Into<f64>>(mut it: impl Iterator<Item = A>) -> bool {
    it.all(|v| v.into().is_finite())
}

/// Count, mean and `M2 = sum (x - mean)(x - mean)^T` of a sample set.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Moments {
    pub n: u64,
    pub mean: Array1<f64>,
    pub m2: Array2<f64>,
}

impl Moments {
    pub fn empty(d: usize) -> Self {
        Self {
            n: 0,
            mean: Array1::zeros(d),
            m2: Array2::zeros((d, d)),
        }
    }

    /// Moments of the rows of `x` (checked finite), centred on their own mean.
    pub fn from_rows(x: ArrayView2<'_, f64>) -> Self {
        let (n, d) = x.dim();
        let Some(mean) = x.mean_axis(Axis(0)) else {
            return Self::empty(d);
        };
        let z = &x - &mean.view().insert_axis(Axis(0));
        let m2 = z.t().dot(&z);
        Self {
            n: n as u64,
            mean,
            m2,
        }
    }

    /// Chan et al.: `M2 = M2a + M2b + delta delta^T na nb / n`.
    pub fn merge(&mut self, other: &Moments) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = other.clone();
            return;
        }
        let na = self.n as f64;
        let nb = other.n as f64;
        let n = na + nb;
        let delta = &other.mean - &self.mean;
        let dc = delta.view().insert_axis(Axis(1));
        let dr = delta.view().insert_axis(Axis(0));
        self.m2 += &other.m2;
        self.m2.scaled_add(na * nb / n, &dc.dot(&dr));
        self.mean.scaled_add(nb / n, &delta);
        self.n += other.n;
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
    dim: usize,
    moments: Moments,
    buf: Vec<f64>,
    buf_rows: usize,
}

impl MomentAccumulator {
    /// An empty accumulator for samples of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            moments: Moments::empty(dim),
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

    /// Add every row of `rows` (shape `(n, dim)`). On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), ReductionError> {
        if rows.ncols() != self.dim {
            return Err(ReductionError::DimensionMismatch {
                what: "columns of the pushed rows",
                expected: self.dim,
                got: rows.ncols(),
            });
        }
        if !all_finite(rows.iter().copied()) {
            return Err(ReductionError::NonFinite {
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
            self.moments.merge(&Moments::from_rows(x.view()));
        }
        Ok(())
    }

    /// Add one sample. On error nothing is added.
    pub fn push_vector<A: Copy + Into<f64>>(
        &mut self,
        x: ArrayView1<'_, A>,
    ) -> Result<(), ReductionError> {
        if x.len() != self.dim {
            return Err(ReductionError::DimensionMismatch {
                what: "length of the pushed vector",
                expected: self.dim,
                got: x.len(),
            });
        }
        if !all_finite(x.iter().copied()) {
            return Err(ReductionError::NonFinite {
                what: "pushed vector",
            });
        }
        self.push_checked(x);
        Ok(())
    }

    /// Add every position `(i, j)` of a `(dim, h, w)` map as one sample of dimension `dim`.
    /// On error nothing is added.
    pub fn push_map<A: Copy + Into<f64>>(
        &mut self,
        map: ArrayView3<'_, A>,
    ) -> Result<(), ReductionError> {
        let (c, h, w) = map.dim();
        if c != self.dim {
            return Err(ReductionError::DimensionMismatch {
                what: "channels of the pushed map",
                expected: self.dim,
                got: c,
            });
        }
        if !all_finite(map.iter().copied()) {
            return Err(ReductionError::NonFinite { what: "pushed map" });
        }
        // (c, h, w) -> (c, h*w) in row-major order whatever the input's memory layout
        let rows = Array2::from_shape_fn((c, h * w), |(ch, k)| map[[ch, k / w, k % w]].into());
        self.push_rows(rows.t())
    }

    fn push_checked<A: Copy + Into<f64>>(&mut self, x: ArrayView1<'_, A>) {
        self.buf.extend(x.iter().map(|&v| v.into()));
        self.buf_rows += 1;
        if self.buf_rows >= buffer_rows(self.dim) {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.buf_rows == 0 {
            return;
        }
        if let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf) {
            let m = Moments::from_rows(x);
            self.moments.merge(&m);
        }
        self.buf.clear();
        self.buf_rows = 0;
    }

    /// Merge the samples of `other` (same dimension) into `self`.
    pub fn merge(&mut self, other: &MomentAccumulator) -> Result<(), ReductionError> {
        if other.dim != self.dim {
            return Err(ReductionError::Merge(self.dim, other.dim));
        }
        self.flush();
        let m = other.snapshot();
        self.moments.merge(&m);
        Ok(())
    }

    /// Everything pushed so far, buffer included.
    pub(crate) fn snapshot(&self) -> Moments {
        let mut m = self.moments.clone();
        if self.buf_rows > 0
            && let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf)
        {
            m.merge(&Moments::from_rows(x));
        }
        m
    }
}
