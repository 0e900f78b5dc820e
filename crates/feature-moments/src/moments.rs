//! Streaming first and second moments (mean and `sum (x-mu)(x-mu)^T`), Chan-style merges.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, Axis};

use crate::error::MomentsError;

/// Rows per gemm chunk when a large batch is pushed.
pub const CHUNK_ROWS: usize = 512;

/// Number of single vectors buffered before they are folded into the moments:
/// `clamp(dim, 16, 256)`, so the buffer never holds more than `max(16 d, d^2)` values.
pub fn buffer_rows(dim: usize) -> usize {
    dim.clamp(16, 256)
}

/// `true` if every value of the iterator is finite (converted to `f64`).
pub fn all_finite<A: Copy + Into<f64>>(mut it: impl Iterator<Item = A>) -> bool {
    it.all(|v| v.into().is_finite())
}

/// A mergeable summary of a set of samples, built one chunk of rows at a time.
///
/// [`StreamingAccumulator`] folds chunks of rows into any such summary; [`Moments`] is the
/// first/second-order one. Crates that need more (e.g. fourth-order terms for Ledoit-Wolf)
/// wrap [`Moments`] and implement this trait.
pub trait ChunkMoments: Clone {
    /// The summary of no samples, of dimension `dim`.
    fn empty(dim: usize) -> Self;
    /// The summary of the rows of `x` (shape `(n, dim)`, already checked finite).
    fn from_rows(x: ArrayView2<'_, f64>) -> Self;
    /// Merge `other` (same dimension) into `self`, exactly as if its samples had been added.
    fn merge(&mut self, other: &Self);
    /// Number of samples summarised.
    fn count(&self) -> u64;
}

/// Count, mean and `M2 = sum (x - mean)(x - mean)^T` of a sample set.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Number of samples.
    pub n: u64,
    /// Their mean (zeros when `n == 0`).
    pub mean: Array1<f64>,
    /// The centred cross-products `sum (x - mean)(x - mean)^T`.
    pub m2: Array2<f64>,
}

impl Moments {
    /// The empty set of dimension `d`.
    pub fn empty(d: usize) -> Self {
        Self {
            n: 0,
            mean: Array1::zeros(d),
            m2: Array2::zeros((d, d)),
        }
    }

    /// Moments of the rows of `x` (already checked finite), centred on their own mean.
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

    /// Merge `other` (same dimension) into `self` with Chan et al.'s exact formula
    /// `M2 = M2a + M2b + delta delta^T na nb / n`, `mean = mean_a + delta nb / n`.
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

impl ChunkMoments for Moments {
    fn empty(dim: usize) -> Self {
        Moments::empty(dim)
    }
    fn from_rows(x: ArrayView2<'_, f64>) -> Self {
        Moments::from_rows(x)
    }
    fn merge(&mut self, other: &Self) {
        Moments::merge(self, other);
    }
    fn count(&self) -> u64 {
        self.n
    }
}

/// Streaming accumulator of a [`ChunkMoments`] summary (by default [`Moments`]) in f64 with
/// `O(d^2)` memory whatever the number of samples.
///
/// Numerics: samples are folded in chunks, each centred on its own mean, and merged with
/// exact pairwise formulas, so nothing large cancels and the streamed result equals the
/// one-shot [`Moments::from_rows`] to rounding. Single vectors are buffered (at most
/// `clamp(dim, 16, 256)` of them) and folded as a chunk.
#[derive(Debug, Clone)]
pub struct StreamingAccumulator<M = Moments> {
    dim: usize,
    moments: M,
    buf: Vec<f64>,
    buf_rows: usize,
}

impl<M: ChunkMoments> StreamingAccumulator<M> {
    /// An empty accumulator for samples of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            moments: M::empty(dim),
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
        self.moments.count() + self.buf_rows as u64
    }

    /// Add every row of `rows` (shape `(n, dim)`) as a sample. On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), MomentsError> {
        if rows.ncols() != self.dim {
            return Err(MomentsError::DimensionMismatch {
                what: "columns of the pushed rows",
                expected: self.dim,
                got: rows.ncols(),
            });
        }
        if !all_finite(rows.iter().copied()) {
            return Err(MomentsError::NonFinite {
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
            self.moments.merge(&M::from_rows(x.view()));
        }
        Ok(())
    }

    /// Add one sample. On error nothing is added.
    pub fn push_vector<A: Copy + Into<f64>>(
        &mut self,
        x: ArrayView1<'_, A>,
    ) -> Result<(), MomentsError> {
        if x.len() != self.dim {
            return Err(MomentsError::DimensionMismatch {
                what: "length of the pushed vector",
                expected: self.dim,
                got: x.len(),
            });
        }
        if !all_finite(x.iter().copied()) {
            return Err(MomentsError::NonFinite {
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
    ) -> Result<(), MomentsError> {
        let (c, h, w) = map.dim();
        if c != self.dim {
            return Err(MomentsError::DimensionMismatch {
                what: "channels of the pushed map",
                expected: self.dim,
                got: c,
            });
        }
        if !all_finite(map.iter().copied()) {
            return Err(MomentsError::NonFinite { what: "pushed map" });
        }
        // (c, h, w) -> (c, h*w) in row-major order whatever the input's memory layout
        let rows = Array2::from_shape_fn((c, h * w), |(ch, k)| map[[ch, k / w, k % w]].into());
        self.push_rows(rows.t())
    }

    /// Buffer a checked (finite, right length) vector.
    fn push_checked<A: Copy + Into<f64>>(&mut self, x: ArrayView1<'_, A>) {
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
            let m = M::from_rows(x);
            self.moments.merge(&m);
        }
        self.buf.clear();
        self.buf_rows = 0;
    }

    /// Merge the samples of `other` (same dimension) into `self`.
    pub fn merge(&mut self, other: &StreamingAccumulator<M>) -> Result<(), MomentsError> {
        if other.dim != self.dim {
            return Err(MomentsError::Merge {
                expected: self.dim,
                got: other.dim,
            });
        }
        self.flush();
        let m = other.snapshot();
        self.moments.merge(&m);
        Ok(())
    }

    /// The summary of everything pushed so far, buffer included.
    pub fn snapshot(&self) -> M {
        let mut m = self.moments.clone();
        if self.buf_rows > 0
            && let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf)
        {
            m.merge(&M::from_rows(x));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    /// Textbook two-pass reference, independent of the chunked code.
    fn two_pass(x: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
        let (n, d) = x.dim();
        let mut mean = Array1::zeros(d);
        for r in x.outer_iter() {
            mean += &r;
        }
        mean /= n as f64;
        let mut m2 = Array2::zeros((d, d));
        for r in x.outer_iter() {
            for i in 0..d {
                for j in 0..d {
                    m2[[i, j]] += (r[i] - mean[i]) * (r[j] - mean[j]);
                }
            }
        }
        (mean, m2)
    }

    #[test]
    fn small_example_by_hand() {
        let x = array![[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]];
        let m = Moments::from_rows(x.view());
        assert_eq!(m.n, 3);
        assert_eq!(m.mean.to_vec(), vec![3.0, 6.0]);
        // z = [[-2,-4],[0,0],[2,4]] -> M2 = [[8,16],[16,32]]
        assert_eq!(m.m2, array![[8.0, 16.0], [16.0, 32.0]]);
    }

    #[test]
    fn vectors_rows_and_map_agree_with_two_pass() {
        let x = Array2::from_shape_fn((700, 3), |(i, j)| {
            ((i * 7 + j * 13) % 17) as f64 * 0.5 + 1e6
        });
        let (mean, m2) = two_pass(&x);
        let mut by_rows = StreamingAccumulator::<Moments>::new(3);
        by_rows.push_rows(x.view()).unwrap();
        let mut by_vec = StreamingAccumulator::<Moments>::new(3);
        for r in x.outer_iter() {
            by_vec.push_vector(r).unwrap();
        }
        // a (3, 7, 100) map whose positions in row-major order are the rows of x
        let map = Array3::from_shape_fn((3, 7, 100), |(c, i, j)| x[[i * 100 + j, c]]);
        let mut by_map = StreamingAccumulator::<Moments>::new(3);
        by_map.push_map(map.view()).unwrap();
        for acc in [&by_rows, &by_vec, &by_map] {
            let m = acc.snapshot();
            assert_eq!(acc.n_samples(), 700);
            assert!(m.mean.iter().zip(&mean).all(|(a, b)| close(*a, *b)));
            // the naive two-pass reference itself loses ~1e-10 near an offset of 1e6
            let scale = m2.diag().iter().cloned().fold(1.0, f64::max);
            assert!(
                m.m2.iter()
                    .zip(&m2)
                    .all(|(a, b)| (a - b).abs() <= 1e-9 * scale),
                "{:?} vs {:?}",
                m.m2,
                m2
            );
        }
    }

    #[test]
    fn merge_of_accumulators() {
        let x = Array2::from_shape_fn((40, 2), |(i, j)| (i as f64).sin() + j as f64);
        let mut a = StreamingAccumulator::<Moments>::new(2);
        let mut b = StreamingAccumulator::<Moments>::new(2);
        a.push_rows(x.slice(ndarray::s![..15, ..])).unwrap();
        b.push_rows(x.slice(ndarray::s![15.., ..])).unwrap();
        a.merge(&b).unwrap();
        let (mean, m2) = two_pass(&x);
        let m = a.snapshot();
        assert_eq!(m.n, 40);
        assert!(m.mean.iter().zip(&mean).all(|(a, b)| close(*a, *b)));
        assert!(m.m2.iter().zip(&m2).all(|(a, b)| close(*a, *b)));
    }

    #[test]
    fn errors_leave_the_accumulator_unchanged() {
        let mut acc = StreamingAccumulator::<Moments>::new(2);
        acc.push_vector(array![1.0f32, 2.0].view()).unwrap();
        assert_eq!(
            acc.push_vector(array![1.0, 2.0, 3.0].view()),
            Err(MomentsError::DimensionMismatch {
                what: "length of the pushed vector",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            acc.push_rows(array![[1.0, f64::NAN]].view()),
            Err(MomentsError::NonFinite {
                what: "pushed rows"
            })
        );
        assert_eq!(
            acc.push_map(Array3::<f64>::zeros((3, 1, 1)).view()),
            Err(MomentsError::DimensionMismatch {
                what: "channels of the pushed map",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            acc.merge(&StreamingAccumulator::new(3)),
            Err(MomentsError::Merge {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(acc.n_samples(), 1);
        assert_eq!(acc.snapshot().mean.to_vec(), vec![1.0, 2.0]);
    }

    #[test]
    fn empty_accumulator() {
        let acc = StreamingAccumulator::<Moments>::new(4);
        let m = acc.snapshot();
        assert_eq!(m, Moments::empty(4));
        assert_eq!(acc.dim(), 4);
        let e = Moments::from_rows(Array2::<f64>::zeros((0, 4)).view());
        assert_eq!(e, Moments::empty(4));
    }
}
