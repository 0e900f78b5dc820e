//! The fitted Gaussian and the fit itself.

use feature_moments::{
    MomentAccumulator, Moments, MomentsError, all_finite, ensure_finite, symmetrize,
};
use ndarray::{Array1, Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::GaussianError;
use crate::linalg::floored_precision;
use crate::params::{CovarianceEstimator, ValidGaussianParams};

/// The minimum number of samples a Gaussian fit accepts.
pub const MIN_SAMPLES: u64 = 2;

/// A fitted multivariate Gaussian: mean, (shrunk) covariance and its precision. Plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedGaussian {
    estimator: CovarianceEstimator,
    n_samples: u64,
    shrinkage: f64,
    mean: Array1<f64>,
    covariance: Array2<f64>,
    precision: Array2<f64>,
}

impl FittedGaussian {
    /// The mean vector (length `dim`).
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// The covariance actually used (the shrunk one for Ledoit-Wolf, `S + eps I` for ridge).
    pub fn covariance(&self) -> &Array2<f64> {
        &self.covariance
    }

    /// The precision matrix: the inverse of [`covariance`](Self::covariance) with its
    /// eigenvalues floored at `1e-9 * tr / p` (identity when the trace is 0); see the crate
    /// docs for when Cholesky replaces the eigendecomposition.
    pub fn precision(&self) -> &Array2<f64> {
        &self.precision
    }

    /// The Ledoit-Wolf shrinkage in `[0, 1]` (0 for the empirical and ridge estimators).
    pub fn shrinkage(&self) -> f64 {
        self.shrinkage
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// The number of training samples.
    pub fn n_samples(&self) -> u64 {
        self.n_samples
    }

    /// The estimator the covariance was fitted with.
    pub fn estimator(&self) -> CovarianceEstimator {
        self.estimator
    }

    /// Check internal consistency (shapes, finiteness, shrinkage range); use it on models
    /// loaded from untrusted files.
    pub fn validate(&self) -> Result<(), GaussianError> {
        let d = self.mean.len();
        let bad = |m: String| Err(GaussianError::InvalidModel(m));
        if d == 0 {
            return bad("dimension 0".into());
        }
        if self.covariance.dim() != (d, d) || self.precision.dim() != (d, d) {
            return bad(format!(
                "mean has length {d} but covariance is {:?} and precision is {:?}",
                self.covariance.dim(),
                self.precision.dim()
            ));
        }
        if !all_finite(self.mean.iter().copied())
            || !all_finite(self.covariance.iter().copied())
            || !all_finite(self.precision.iter().copied())
        {
            return bad("non-finite values".into());
        }
        if !(0.0..=1.0).contains(&self.shrinkage) {
            return bad(format!("shrinkage {} outside [0, 1]", self.shrinkage));
        }
        if self.n_samples < MIN_SAMPLES {
            return bad(format!("n_samples {} < {MIN_SAMPLES}", self.n_samples));
        }
        self.estimator.check()
    }
}

/// Ledoit-Wolf shrinkage from the central moments (scikit-learn's `ledoit_wolf_shrinkage`):
/// `m = tr(S)/p`, `delta = ||S - m I||_F^2 / p`,
/// `beta = (sum ||x - mu||^4 / n - ||S||_F^2) / (p n)`, clamped to `[0, delta]`,
/// `s = beta / delta`, and `s = 0` when `beta <= 0` or `delta <= 0`.
pub(crate) fn ledoit_wolf_shrinkage(s: ArrayView2<'_, f64>, q4: f64, n: f64) -> f64 {
    let p = s.nrows();
    if p == 0 {
        return 0.0;
    }
    let pf = p as f64;
    let m = s.diag().sum() / pf;
    let mut delta = 0.0;
    let mut s_fro2 = 0.0;
    for ((i, j), &v) in s.indexed_iter() {
        s_fro2 += v * v;
        let c = if i == j { v - m } else { v };
        delta += c * c;
    }
    delta /= pf;
    let beta = ((q4 / n - s_fro2) / (pf * n)).min(delta);
    if !(beta > 0.0 && delta > 0.0) {
        return 0.0;
    }
    (beta / delta).clamp(0.0, 1.0)
}

pub(crate) fn fit_moments(
    estimator: CovarianceEstimator,
    m: &Moments,
) -> Result<FittedGaussian, GaussianError> {
    let d = m.mean.len();
    if d == 0 {
        return Err(GaussianError::ZeroSize {
            what: "the feature dimension",
        });
    }
    if m.n < MIN_SAMPLES {
        return Err(GaussianError::TooFewSamples {
            needed: MIN_SAMPLES,
            got: m.n,
        });
    }
    let s = m.covariance();
    if !all_finite(s.iter().copied()) || !m.q4.is_finite() || !all_finite(m.mean.iter().copied()) {
        return Err(MomentsError::NonFinite {
            what: "the covariance (the inputs are too large: their squares overflow)",
        }
        .into());
    }
    // (covariance, shrinkage, a lower bound on the covariance's eigenvalues as S is PSD)
    let (mut cov, shrinkage, min_eig) = match estimator {
        CovarianceEstimator::Empirical => (s, 0.0, 0.0),
        CovarianceEstimator::Ridge(eps) => {
            let mut c = s;
            c.diag_mut().mapv_inplace(|v| v + eps);
            (c, 0.0, eps)
        }
        CovarianceEstimator::LedoitWolf => {
            let shrink = ledoit_wolf_shrinkage(s.view(), m.q4, m.n as f64);
            let mu = s.diag().sum() / d as f64;
            let mut c = s * (1.0 - shrink);
            c.diag_mut().mapv_inplace(|v| v + shrink * mu);
            (c, shrink, shrink * mu)
        }
    };
    symmetrize(&mut cov);
    let precision = floored_precision(cov.view(), min_eig).map_err(GaussianError::Precision)?;
    Ok(FittedGaussian {
        estimator,
        n_samples: m.n,
        shrinkage,
        mean: m.mean.clone(),
        covariance: cov,
        precision,
    })
}

impl ValidGaussianParams {
    /// Fit a Gaussian to everything accumulated in `acc` (at least 2 samples).
    pub fn fit(&self, acc: &MomentAccumulator) -> Result<FittedGaussian, GaussianError> {
        fit_moments(self.estimator, &acc.snapshot())
    }

    /// One-shot fit to the rows of `rows` (shape `(n, dim)`, n >= 2); equals the streamed fit.
    pub fn fit_rows<A: Copy + Into<f64>>(
        &self,
        rows: ArrayView2<'_, A>,
    ) -> Result<FittedGaussian, GaussianError> {
        if rows.ncols() == 0 {
            return Err(GaussianError::ZeroSize {
                what: "the feature dimension",
            });
        }
        ensure_finite(rows.iter().copied(), "input rows")?;
        // One centring of the whole batch (a different code path from the chunked stream).
        let x = rows.mapv(|v| v.into());
        fit_moments(self.estimator, &Moments::from_rows(x.view()))
    }
}
