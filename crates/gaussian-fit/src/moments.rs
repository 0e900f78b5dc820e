//! Central moments of a sample set, mergeable (Chan et al. style) without loss of stability.
//!
//! Count, mean and `M2 = sum z z^T` come from the shared [`feature_moments::Moments`]; on top
//! of them, for Ledoit-Wolf, we keep `T3 = sum ||z||^2 z` and `Q4 = sum ||z||^4`, where for
//! a set of `n` vectors `x_i` with mean `c`, `z_i = x_i - c`. Moving the centre to `c + e`
//! (`z' = z - e`, using `sum z = 0`) gives exactly
//!
//! * `M2' = M2 + n e e^T`
//! * `T3' = T3 - tr(M2) e - 2 M2 e - n ||e||^2 e`
//! * `Q4' = Q4 + 4 e^T M2 e + n ||e||^4 - 4 e.T3 + 2 ||e||^2 tr(M2)`
//!
//! so two sets are merged by moving both to the pooled mean and adding (for `M2` this is
//! Chan et al.'s `M2a + M2b + delta delta^T na nb / n`, done by the shared crate). Each chunk
//! is centred on its own mean before its sums are formed, so no large raw moments ever cancel.

use feature_moments::{ChunkMoments, Moments};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Central moments (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CentralMoments {
    /// Count, mean and `M2`.
    pub base: Moments,
    pub t3: Array1<f64>,
    pub q4: f64,
}

impl CentralMoments {
    /// The empty set of dimension `d`.
    pub fn empty(d: usize) -> Self {
        Self {
            base: Moments::empty(d),
            t3: Array1::zeros(d),
            q4: 0.0,
        }
    }

    /// Moments of the rows of `x` (already checked finite).
    pub fn from_rows(x: ArrayView2<'_, f64>) -> Self {
        let (n, d) = x.dim();
        if n == 0 {
            return Self::empty(d);
        }
        let base = Moments::from_rows(x);
        let z = &x - &base.mean.view().insert_axis(Axis(0));
        let r = z.map_axis(Axis(1), |row| row.dot(&row));
        let t3 = z.t().dot(&r);
        let q4 = r.dot(&r);
        Self { base, t3, q4 }
    }

    /// `(T3, Q4)` after moving the centre from `mean` to `mean + e` (uses the old `M2`).
    fn recentred_higher(&self, e: &Array1<f64>) -> (Array1<f64>, f64) {
        let n = self.base.n as f64;
        let m2 = &self.base.m2;
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

    /// Merge `other` into `self` (same dimension, checked by the caller).
    pub fn merge(&mut self, other: &CentralMoments) {
        if other.base.n == 0 {
            return;
        }
        if self.base.n == 0 {
            *self = other.clone();
            return;
        }
        let na = self.base.n as f64;
        let nb = other.base.n as f64;
        let n = na + nb;
        let delta = &other.base.mean - &self.base.mean;
        // new mean = mean_a + delta * nb / n; offsets of each set to it
        let (t3a, q4a) = self.recentred_higher(&(&delta * (nb / n)));
        let (t3b, q4b) = other.recentred_higher(&(&delta * (-na / n)));
        self.t3 = t3a + &t3b;
        self.q4 = q4a + q4b;
        self.base.merge(&other.base);
    }

    /// Empirical covariance `M2 / n` (divided by N).
    pub fn covariance(&self) -> Array2<f64> {
        if self.base.n == 0 {
            return self.base.m2.clone();
        }
        let mut s = &self.base.m2 / (self.base.n as f64);
        crate::linalg::symmetrize(&mut s);
        s
    }
}

impl ChunkMoments for CentralMoments {
    fn empty(dim: usize) -> Self {
        CentralMoments::empty(dim)
    }
    fn from_rows(x: ArrayView2<'_, f64>) -> Self {
        CentralMoments::from_rows(x)
    }
    fn merge(&mut self, other: &Self) {
        CentralMoments::merge(self, other);
    }
    fn count(&self) -> u64 {
        self.base.n
    }
}
