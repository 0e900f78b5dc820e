//! Streaming central moments up to fourth order (count, mean, `M2`, `T3`, `Q4`) with exact
//! Chan-style merges.
//!
//! For a set of `n` vectors `x_i` with mean `c` and `z_i = x_i - c`, [`Moments`] keeps
//! `M2 = sum z z^T`, `T3 = sum ||z||^2 z` and `Q4 = sum ||z||^4` (Ledoit-Wolf's `beta` needs
//! `sum_i ||x_i x_i^T - S||_F^2 = Q4 - n ||S||_F^2`). Moving the centre to `c + e`
//! (`z' = z - e`, using `sum z = 0`) gives exactly
//!
//! * `M2' = M2 + n e e^T`
//! * `T3' = T3 - tr(M2) e - 2 M2 e - n ||e||^2 e`
//! * `Q4' = Q4 + 4 e^T M2 e + n ||e||^4 - 4 e.T3 + 2 ||e||^2 tr(M2)`
//!
//! so two sets are merged by moving both to the pooled mean and adding (for `M2` this is
//! Chan et al.'s `M2a + M2b + delta delta^T na nb / n`). Each chunk is centred on its own mean
//! before its sums are formed, so no large raw moments ever cancel.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3, Axis};

use crate::error::{MomentsError, ensure_dim, ensure_finite};
use crate::linalg::symmetrize;

/// Rows per gemm chunk when a large batch is pushed.
const CHUNK_ROWS: usize = 512;

/// Number of single vectors buffered before they are folded into the moments:
/// `clamp(dim, 16, 256)`, so the buffer never holds more than `max(16 d, d^2)` values.
fn buffer_rows(dim: usize) -> usize {
    dim.clamp(16, 256)
}

/// `z^T r` with exactly the sums of ndarray's `z.t().dot(&r)` (the values this crate has
/// always produced), but, when `z`'s columns are strided (row-major `z`, where ndarray would
/// take one cache miss per element), accumulated row by row: `t[i] += z[k, i] r[k]` for
/// k = 0, 1, ..., the order of ndarray's sequential dot on strided data.
fn transposed_times(z: &Array2<f64>, r: &Array1<f64>) -> Array1<f64> {
    let contiguous_columns = z.ncols() == 0 || z.column(0).as_slice().is_some();
    if contiguous_columns || r.as_slice().is_none() {
        return z.t().dot(r);
    }
    let mut t = Array1::zeros(z.ncols());
    for (row, &rk) in z.outer_iter().zip(r) {
        t.zip_mut_with(&row, |ti, &zi| *ti += zi * rk);
    }
    t
}

/// Count, mean and central moments of a sample set (see the module docs for the formulas).
#[derive(Debug, Clone, PartialEq)]
pub struct Moments {
    /// Number of samples.
    pub n: u64,
    /// Their mean (zeros when `n == 0`).
    pub mean: Array1<f64>,
    /// The centred cross-products `M2 = sum (x - mean)(x - mean)^T`.
    pub m2: Array2<f64>,
    /// `T3 = sum ||x - mean||^2 (x - mean)` (needed to merge `q4`).
    pub t3: Array1<f64>,
    /// `Q4 = sum ||x - mean||^4`.
    pub q4: f64,
}

impl Moments {
    /// The empty set of dimension `d`.
    pub fn empty(d: usize) -> Self {
        Self {
            n: 0,
            mean: Array1::zeros(d),
            m2: Array2::zeros((d, d)),
            t3: Array1::zeros(d),
            q4: 0.0,
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
        let r = z.map_axis(Axis(1), |row| row.dot(&row));
        let t3 = transposed_times(&z, &r);
        let q4 = r.dot(&r);
        Self {
            n: n as u64,
            mean,
            m2,
            t3,
            q4,
        }
    }

    /// `(T3, Q4)` after moving the centre from `mean` to `mean + e` (uses the old `M2`).
    fn recentred_higher(&self, e: &Array1<f64>) -> (Array1<f64>, f64) {
        let n = self.n as f64;
        let m2 = &self.m2;
        let tr = m2.diag().sum();
        let m2e = m2.dot(e);
        let ee = e.dot(e);
        let e_m2_e = e.dot(&m2e);
        let e_t3 = e.dot(&self.t3);
        let q4 = self.q4 + 4.0 * e_m2_e + n * ee * ee - 4.0 * e_t3 + 2.0 * ee * tr;
        let mut t3 = self.t3.clone();
        t3.scaled_add(-tr - n * ee, e);
        t3.scaled_add(-2.0, &m2e);
        (t3, q4)
    }

    /// Merge `other` (same dimension) into `self`, exactly as if its samples had been added:
    /// `mean = mean_a + delta nb / n`, `M2 = M2a + M2b + delta delta^T na nb / n`, and `T3`,
    /// `Q4` of both sets moved to the pooled mean and added.
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
        // new mean = mean_a + delta * nb / n; offsets of each set to it
        let (t3a, q4a) = self.recentred_higher(&(&delta * (nb / n)));
        let (t3b, q4b) = other.recentred_higher(&(&delta * (-na / n)));
        self.t3 = t3a + &t3b;
        self.q4 = q4a + q4b;
        let dc = delta.view().insert_axis(Axis(1));
        let dr = delta.view().insert_axis(Axis(0));
        self.m2 += &other.m2;
        self.m2.scaled_add(na * nb / n, &dc.dot(&dr));
        self.mean.scaled_add(nb / n, &delta);
        self.n += other.n;
    }

    /// The empirical covariance `M2 / n` (divided by N), made exactly symmetric; all zeros
    /// when `n == 0`.
    pub fn covariance(&self) -> Array2<f64> {
        if self.n == 0 {
            return self.m2.clone();
        }
        let mut s = &self.m2 / (self.n as f64);
        symmetrize(&mut s);
        s
    }
}

/// Streaming accumulator of [`Moments`] in f64 with `O(d^2)` memory whatever the number of
/// samples.
///
/// Numerics: samples are folded in chunks, each centred on its own mean, and merged with
/// exact pairwise formulas, so nothing large cancels and the streamed result equals the
/// one-shot [`Moments::from_rows`] to rounding. Single vectors are buffered (at most
/// `clamp(dim, 16, 256)` of them) and folded as a chunk.
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

    /// Add every row of `rows` (shape `(n, dim)`) as a sample. On error nothing is added.
    pub fn push_rows<A: Copy + Into<f64>>(
        &mut self,
        rows: ArrayView2<'_, A>,
    ) -> Result<(), MomentsError> {
        ensure_dim("columns of the pushed rows", self.dim, rows.ncols())?;
        ensure_finite(rows.iter().copied(), "pushed rows")?;
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
    ) -> Result<(), MomentsError> {
        ensure_dim("length of the pushed vector", self.dim, x.len())?;
        ensure_finite(x.iter().copied(), "pushed vector")?;
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
        ensure_dim("channels of the pushed map", self.dim, c)?;
        ensure_finite(map.iter().copied(), "pushed map")?;
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
            let m = Moments::from_rows(x);
            self.moments.merge(&m);
        }
        self.buf.clear();
        self.buf_rows = 0;
    }

    /// Merge the samples of `other` (same dimension) into `self`.
    pub fn merge(&mut self, other: &MomentAccumulator) -> Result<(), MomentsError> {
        if other.dim != self.dim {
            return Err(MomentsError::Merge {
                what: "dimensions",
                expected: self.dim,
                got: other.dim,
            });
        }
        self.flush();
        let m = other.snapshot();
        self.moments.merge(&m);
        Ok(())
    }

    /// The moments of everything pushed so far, buffer included.
    pub fn snapshot(&self) -> Moments {
        let mut m = self.moments.clone();
        if self.buf_rows > 0
            && let Ok(x) = ArrayView2::from_shape((self.buf_rows, self.dim), &self.buf)
        {
            m.merge(&Moments::from_rows(x));
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, ShapeBuilder, array};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    /// Textbook two-pass reference, independent of the chunked code: mean, M2, T3, Q4.
    fn two_pass(x: &Array2<f64>) -> (Array1<f64>, Array2<f64>, Array1<f64>, f64) {
        let (n, d) = x.dim();
        let mut mean = Array1::zeros(d);
        for r in x.outer_iter() {
            mean += &r;
        }
        mean /= n as f64;
        let mut m2 = Array2::zeros((d, d));
        let mut t3 = Array1::zeros(d);
        let mut q4 = 0.0;
        for r in x.outer_iter() {
            let mut norm2 = 0.0;
            for i in 0..d {
                norm2 += (r[i] - mean[i]) * (r[i] - mean[i]);
                for j in 0..d {
                    m2[[i, j]] += (r[i] - mean[i]) * (r[j] - mean[j]);
                }
            }
            for i in 0..d {
                t3[i] += norm2 * (r[i] - mean[i]);
            }
            q4 += norm2 * norm2;
        }
        (mean, m2, t3, q4)
    }

    #[test]
    fn transposed_times_has_ndarrays_sums_bit_for_bit() {
        let mut seed = 11u64;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        };
        for (n, d) in [(1, 1), (3, 1), (20, 1), (20, 3), (257, 40), (9, 300)] {
            let z = Array2::from_shape_fn((n, d), |_| rnd() * 1e3);
            let r = Array1::from_shape_fn(n, |_| rnd() * 1e6);
            let mut zf = Array2::zeros((n, d).f()); // column-major copy
            zf.assign(&z);
            for z in [z, zf] {
                let want = z.t().dot(&r);
                let got = transposed_times(&z, &r);
                let bits = |a: &Array1<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "({n}, {d})");
            }
        }
    }

    #[test]
    fn small_example_by_hand() {
        let x = array![[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]];
        let m = Moments::from_rows(x.view());
        assert_eq!(m.n, 3);
        assert_eq!(m.mean.to_vec(), vec![3.0, 6.0]);
        // z = [[-2,-4],[0,0],[2,4]] -> M2 = [[8,16],[16,32]], ||z||^2 = 20, 0, 20
        assert_eq!(m.m2, array![[8.0, 16.0], [16.0, 32.0]]);
        assert_eq!(m.t3.to_vec(), vec![0.0, 0.0]);
        assert_eq!(m.q4, 800.0);
        assert_eq!(m.covariance(), array![[8.0, 16.0], [16.0, 32.0]] / 3.0);
        // skewed: x = 0, 0, 3 -> z = -1, -1, 2: M2 = 6, T3 = -1 - 1 + 8 = 6, Q4 = 1 + 1 + 16
        let m = Moments::from_rows(array![[0.0], [0.0], [3.0]].view());
        assert_eq!((m.m2[[0, 0]], m.t3[0], m.q4), (6.0, 6.0, 18.0));
    }

    #[test]
    fn vectors_rows_and_map_agree_with_two_pass() {
        let x = Array2::from_shape_fn((700, 3), |(i, j)| {
            ((i * 7 + j * 13) % 17) as f64 * 0.5 + 1e6
        });
        let (mean, m2, t3, q4) = two_pass(&x);
        let mut by_rows = MomentAccumulator::new(3);
        by_rows.push_rows(x.view()).unwrap();
        let mut by_vec = MomentAccumulator::new(3);
        for r in x.outer_iter() {
            by_vec.push_vector(r).unwrap();
        }
        // a (3, 7, 100) map whose positions in row-major order are the rows of x
        let map = Array3::from_shape_fn((3, 7, 100), |(c, i, j)| x[[i * 100 + j, c]]);
        let mut by_map = MomentAccumulator::new(3);
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
            // |T3_i| <= sqrt(Q4 M2_ii) (Cauchy-Schwarz) sets the scale of T3
            let t3_scale = (q4 * scale).sqrt();
            assert!(
                m.t3.iter()
                    .zip(&t3)
                    .all(|(a, b)| (a - b).abs() <= 1e-9 * t3_scale)
            );
            assert!((m.q4 - q4).abs() <= 1e-9 * q4);
        }
    }

    #[test]
    fn merge_of_accumulators() {
        let x = Array2::from_shape_fn((40, 2), |(i, j)| (i as f64).sin() + j as f64);
        let mut a = MomentAccumulator::new(2);
        let mut b = MomentAccumulator::new(2);
        a.push_rows(x.slice(ndarray::s![..15, ..])).unwrap();
        b.push_rows(x.slice(ndarray::s![15.., ..])).unwrap();
        a.merge(&b).unwrap();
        let (mean, m2, t3, q4) = two_pass(&x);
        let m = a.snapshot();
        assert_eq!(m.n, 40);
        assert!(m.mean.iter().zip(&mean).all(|(a, b)| close(*a, *b)));
        assert!(m.m2.iter().zip(&m2).all(|(a, b)| close(*a, *b)));
        let t3_scale = (q4 * m2.diag().iter().cloned().fold(0.0, f64::max)).sqrt();
        assert!(
            m.t3.iter()
                .zip(&t3)
                .all(|(a, b)| (a - b).abs() <= 1e-12 * t3_scale)
        );
        assert!(close(m.q4, q4));
    }

    #[test]
    fn errors_leave_the_accumulator_unchanged() {
        let mut acc = MomentAccumulator::new(2);
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
            acc.merge(&MomentAccumulator::new(3)),
            Err(MomentsError::Merge {
                what: "dimensions",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(acc.n_samples(), 1);
        assert_eq!(acc.snapshot().mean.to_vec(), vec![1.0, 2.0]);
    }

    #[test]
    fn empty_accumulator() {
        let acc = MomentAccumulator::new(4);
        let m = acc.snapshot();
        assert_eq!(m, Moments::empty(4));
        assert_eq!(acc.dim(), 4);
        let e = Moments::from_rows(Array2::<f64>::zeros((0, 4)).view());
        assert_eq!(e, Moments::empty(4));
    }
}
