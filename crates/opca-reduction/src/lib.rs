//! PCA with the OPCA selection rule (Rippel et al.'s NPCA: keep the TRAILING, low-variance
//! components) for Gaussian anomaly detection on deep features.
//!
//! * [`ReductionParams`] -> [`ValidReductionParams`] -> [`FittedReduction`], linfa style.
//! * [`Selection`]: `opca:t` (smallest trailing tail holding `>= t` of the variance),
//!   `pca:t` (leading components first reaching `>= t`), `none` (all).
//! * [`MomentAccumulator`] (feature-moments' accumulator, re-exported): streamed first pass
//!   (mean and covariance, f64, `O(d^2)` memory); the streamed fit equals the one-shot
//!   [`ValidReductionParams::fit_rows`] to rounding. Its [`MomentsError`] (bad samples) is
//!   wrapped in [`ReductionError::Moments`].
//! * Projection `z = W^T (x - mean)` of a vector, a batch or a whole `(c, h, w)` map.
//!
//! # Conventions
//! * The covariance is divided by N; eigenvalues are descending; negatives and round-off
//!   (below `d * f64::EPSILON * lambda_max`) are set to exactly 0.
//! * Thresholds are compared with a plain `>=` in f64 (see [`select_components`] for the
//!   summation order, which makes the share of all components exactly 1).
//! * Zero-variance directions (fewer samples than dimensions is normal for the image model):
//!   with [`PcaRank::Full`] (the default) OPCA keeps every one of them (their share is 0, so
//!   the tail extends past them); with [`PcaRank::Sample`] the rule ranks only the
//!   `min(n - 1, d)` sample-supported eigenpairs, as scikit-learn's `PCA()` does. They are
//!   ordinary unit directions, so projections stay finite; the Gaussian fit downstream gives
//!   them a positive variance (Ledoit-Wolf) or floors it, so no score is NaN.
//! * Total variance 0 (e.g. a single sample, or identical samples): every rule keeps all `d`
//!   components.
//! * At least [`MIN_SAMPLES`] (1) sample is required.
//! * Eigenvector signs are arbitrary in any eigensolver; here the largest-magnitude entry of
//!   each component is made positive.
//!
//! # Example
//! ```
//! use ndarray::array;
//! use opca_reduction::{MomentAccumulator, ReductionParams, Selection};
//!
//! let x = array![[1.0f32, 0.0, 2.0], [2.0, 1.0, 2.5], [3.0, 0.0, 3.0], [4.0, 1.0, 4.5]];
//! let params = ReductionParams::default()
//!     .with_selection("opca:0.05".parse::<Selection>()?)
//!     .validate()?;
//!
//! let mut acc = MomentAccumulator::new(3);
//! acc.push_rows(x.view())?;
//! let fitted = params.fit(&acc)?;
//! assert_eq!(fitted.input_dim(), 3);
//! let kept: f64 = fitted.kept_eigenvalues().sum();
//! assert!(kept / fitted.eigenvalues().sum() >= 0.05);
//!
//! let z = fitted.transform_rows(x.view())?;
//! assert_eq!(z.dim(), (4, fitted.output_dim()));
//! # Ok::<(), opca_reduction::ReductionError>(())
//! ```
#![deny(missing_docs)]

mod error;
mod fitted;
mod params;

pub use error::ReductionError;
pub use feature_moments::{MomentAccumulator, MomentsError};
pub use fitted::{
    FittedReduction, MIN_SAMPLES, ZERO_EIGENVALUE_REL, clamp_eigenvalues, select_components,
};
pub use params::{PcaRank, ReductionParams, Selection, ValidReductionParams};

/// Result alias of this crate.
pub type Result<T, E = ReductionError> = std::result::Result<T, E>;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
