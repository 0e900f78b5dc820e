//! Multivariate Gaussian fit for Gaussian anomaly detection on deep features.
//!
//! * [`GaussianParams`] -> [`ValidGaussianParams`] -> [`FittedGaussian`] (mean, covariance,
//!   precision, Ledoit-Wolf shrinkage), linfa style.
//! * Covariance estimators ([`CovarianceEstimator`]): Ledoit-Wolf exactly as scikit-learn's
//!   `LedoitWolf` (default), the empirical covariance, or `S + eps I` (PaDiM's ridge).
//!   The empirical covariance `S` is always divided by N (as scikit-learn's
//!   `empirical_covariance`).
//! * Streaming: feature-moments' [`MomentAccumulator`] (re-exported) takes the samples in ONE
//!   pass with `O(d^2)` memory (count, mean, `sum (x-mu)(x-mu)^T`, `sum ||x-mu||^2 (x-mu)`,
//!   `sum ||x-mu||^4`: Ledoit-Wolf's `beta` needs
//!   `sum_i ||x_i x_i^T - S||_F^2 = sum_i ||x_i - mu||^4 - n ||S||_F^2`). Chunks are centred on
//!   their own mean and merged with exact Chan-style formulas, so the streamed fit equals the
//!   one-shot [`ValidGaussianParams::fit_rows`] to rounding. Its [`MomentsError`] (bad
//!   samples) is wrapped in [`GaussianError::Moments`].
//! * Per-position mode (PaDiM): [`PerPositionAccumulator`] / [`PerPositionGaussians`], one
//!   Gaussian per position of a `(dim, h, w)` map, fitted in parallel (rayon).
//!
//! # Degenerate data
//! * At least [`MIN_SAMPLES`] (2) samples are required.
//! * Ledoit-Wolf: `beta` is clamped to `[0, delta]`, and the shrinkage is 0 when `beta <= 0`
//!   or `delta <= 0` (e.g. a dimension of 1, or an isotropic sample covariance).
//! * Precision: the inverse of the covariance with its eigenvalues floored at
//!   `1e-9 * tr(Sigma) / p`, identity when `tr(Sigma) = 0` (all samples equal). A precision
//!   is therefore always finite; zero-variance directions get a very large but finite weight.
//!   Computed by symmetric eigendecomposition (faer), or by Cholesky when a lower bound on the
//!   eigenvalues known from the estimator (`s * m` for Ledoit-Wolf, `eps` for the ridge)
//!   already reaches the floor, so that flooring cannot change the result.
//! * NaN / infinite inputs are rejected ([`MomentsError::NonFinite`], wrapped in
//!   [`GaussianError::Moments`]); so is data whose squares overflow.
//!
//! # Example
//! ```
//! use gaussian_fit::{CovarianceEstimator, GaussianParams, MomentAccumulator};
//! use ndarray::array;
//!
//! let x = array![[1.0f32, 2.0], [2.0, 1.0], [3.0, 5.0], [4.0, 3.0], [0.5, 0.0]];
//! let params = GaussianParams::default()
//!     .with_estimator("ledoit-wolf".parse::<CovarianceEstimator>()?)
//!     .validate()?;
//! let one_shot = params.fit_rows(x.view())?;
//!
//! // The same fit, streamed one sample at a time.
//! let mut acc = MomentAccumulator::new(2);
//! for row in x.rows() {
//!     acc.push_vector(row)?;
//! }
//! let streamed = params.fit(&acc)?;
//! assert!((one_shot.shrinkage() - streamed.shrinkage()).abs() < 1e-12);
//! assert!((0.0..=1.0).contains(&one_shot.shrinkage()));
//!
//! // precision * covariance = I
//! let eye = one_shot.precision().dot(one_shot.covariance());
//! assert!((eye[[0, 0]] - 1.0).abs() < 1e-9 && eye[[0, 1]].abs() < 1e-9);
//! # Ok::<(), gaussian_fit::GaussianError>(())
//! ```
#![deny(missing_docs)]

mod error;
mod fitted;
mod linalg;
mod params;
mod per_position;

pub use error::GaussianError;
pub use feature_moments::{MomentAccumulator, MomentsError};
pub use fitted::{FittedGaussian, MIN_SAMPLES};
pub use linalg::PRECISION_FLOOR;
pub use params::{CovarianceEstimator, GaussianParams, ValidGaussianParams};
pub use per_position::{PerPositionAccumulator, PerPositionGaussians};

/// Result alias of this crate.
pub type Result<T, E = GaussianError> = std::result::Result<T, E>;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
