//! Central moments of a sample set, mergeable (Chan et al. style) without loss of stability.
//!
//! For a set of `n` vectors `x_i` with mean `c` and `z_i = x_i - c` we keep
//! `M2 = sum z z^T`, `T3 = sum ||z||^2 z` and `Q4 = sum ||z||^4`. Moving the centre to
//! `c + e` (`z' = z - e`, using `sum z = 0`) gives exactly
//!
//! * `M2' = M2 + n e e^T`
//! * `T3' = T3 - tr(M2) e - 2 M2 e - n ||e||^2 e`
//! * `Q4' = Q4 + 4 e^T M2 e + n ||e||^4 - 4 e.T3 + 2 ||e||^2 tr(M2)`
//!
//! so two sets are merged by moving both to the pooled mean and adding. Each chunk is
//! centred on its own mean before its sums are formed, so no large raw moments ever cancel.

use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Central moments (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CentralMoments {
    pub n: u64,
    pub mean: Array1<f64>,
    pub m2: Array2<f64>,
    pub t3: Array1<f64>,
    pub q4: f64,
}

impl CentralMoments {
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

    /// Moments of the rows of `x` (already checked finite).
    pub fn from_rows(x: ArrayView2<'_, f64>) -> Self {
        let (n, d) = x.dim();
        if n == 0 {
            return Self::empty(d);
        }
        let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(d));
        let z = &x - &mean.view().insert_axis(Axis(0));
        let m2 = z.t().dot(&z);
        let r = z.map_axis(Axis(1), |row| row.dot(&row));
        let t3 = z.t().dot(&r);
        let q4 = r.dot(&r);
        Self {
            n: n as u64,
            mean,
            m2,
            t3,
            q4,
        }
    }

    /// Move the centre from `mean` to `mean + e`.
    fn recentre(&mut self, e: &Array1<f64>) {
        let n = self.n as f64;
        let tr = self.m2.diag().sum();
        let m2e = self.m2.dot(e);
        let ee = e.dot(e);
        let e_m2_e = e.dot(&m2e);
        let e_t3 = e.dot(&self.t3);
        self.q4 += 4.0 * e_m2_e + n * ee * ee - 4.0 * e_t3 + 2.0 * ee * tr;
        self.t3.scaled_add(-tr - n * ee, e);
        self.t3.scaled_add(-2.0, &m2e);
        let ecol = e.view().insert_axis(Axis(1));
        let erow = e.view().insert_axis(Axis(0));
        self.m2.scaled_add(n, &ecol.dot(&erow));
        self.mean += e;
    }

    /// Merge `other` into `self` (same dimension, checked by the caller).
    pub fn merge(&mut self, other: &CentralMoments) {
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
        let ea = &delta * (nb / n);
        let eb = &delta * (-na / n);
        let mut b = other.clone();
        self.recentre(&ea);
        b.recentre(&eb);
        // use the same pooled mean for both (avoid drifting by rounding)
        self.m2 += &b.m2;
        self.t3 += &b.t3;
        self.q4 += b.q4;
        self.n += other.n;
    }

    /// Empirical covariance `M2 / n` (divided by N).
    pub fn covariance(&self) -> Array2<f64> {
        if self.n == 0 {
            return self.m2.clone();
        }
        let mut s = &self.m2 / (self.n as f64);
        crate::linalg::symmetrize(&mut s);
        s
    }
}
