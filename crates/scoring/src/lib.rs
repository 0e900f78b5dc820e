//! Scoring for Gaussian anomaly detection on deep features: Mahalanobis distances, score-map
//! resampling, and the [`Detector`] (the method of method.md sections 2-4 composed over the
//! tapped levels, with a two-phase streaming fit).
//!
//! * Distances: [`mahalanobis`], [`mahalanobis_rows`], [`score_map_shared`],
//!   [`score_map_per_position`] - `sqrt(max((x-mu)^T P (x-mu), 0))`, never NaN (bad input is a
//!   typed [`ScoringError`]).
//! * Maps: [`upsample_bilinear`] (identical to PyTorch `F.interpolate(mode="bilinear",
//!   align_corners=False)`), [`gaussian_blur`] (as `scipy.ndimage.gaussian_filter`,
//!   `mode="reflect"`, `truncate=4`), [`combine_levels`] (upsample, unweighted mean).
//! * The detector: [`DetectorParams`] -> [`ValidDetectorParams`] -> [`DetectorFitter`]
//!   (phase 1: PCA moments, phase 2: Gaussian moments of the projected features; nothing keeps
//!   the training maps) -> [`Detector`] (serde) -> [`Detector::score`] -> [`DetectorScore`].
//!
//! Per level `l` the detector holds an image model (PCA of the global-average-pooled vectors
//! and a Gaussian of the reduced ones) and a pixel model (a PCA shared by all positions and
//! either one Gaussian per position, [`SpatialModel::PerPosition`], or one for the level,
//! [`SpatialModel::Shared`]). The pixel PCA is fitted on all training position vectors of the
//! level ([`PixelPca::PerLevel`], default) or reused from the image model
//! ([`PixelPca::FromPooled`]). The image score is the sum over levels of the pooled distances
//! ([`ImageScore::Pooled`], default) or the maximum of the final map ([`ImageScore::MapMax`]).
//!
//! # Example
//! ```
//! use ndarray::Array3;
//! use scoring::{DetectorFitter, DetectorParams, ImageScore, SpatialModel};
//! use opca_reduction::{ReductionParams, Selection};
//!
//! // Two levels: (c, h, w) = (4, 4, 4) and (6, 2, 2); synthetic "features".
//! let shapes = [(4, 4, 4), (6, 2, 2)];
//! let image = |seed: usize| -> Vec<Array3<f32>> {
//!     shapes
//!         .iter()
//!         .map(|&(c, h, w)| {
//!             Array3::from_shape_fn((c, h, w), |(k, i, j)| {
//!                 (((seed * 31 + k * 7 + i * 3 + j) % 11) as f32 * 0.37).sin()
//!             })
//!         })
//!         .collect()
//! };
//! let params = DetectorParams::default()
//!     .with_reduction(ReductionParams::default().with_selection("none".parse::<Selection>()?))
//!     .with_spatial(SpatialModel::Shared)
//!     .with_image_score(ImageScore::MapMax)
//!     .validate()?;
//! let mut fitter = DetectorFitter::new(params, &shapes)?;
//! // Phase 1 and phase 2 see the same training images (re-extracted or cached).
//! for phase in 0..2 {
//!     for seed in 0..8 {
//!         let maps = image(seed);
//!         let views: Vec<_> = maps.iter().map(|m| m.view()).collect();
//!         if phase == 0 { fitter.push_phase1(&views)? } else { fitter.push_phase2(&views)? }
//!     }
//!     if phase == 0 { fitter.finish_phase1()?; }
//! }
//! let detector = fitter.finish()?;
//! detector.validate()?;
//!
//! let test = image(100);
//! let views: Vec<_> = test.iter().map(|m| m.view()).collect();
//! let score = detector.score(&views, 16, 16)?;
//! assert_eq!(score.map.dim(), (16, 16));
//! assert_eq!(score.per_level_pooled.len(), 2);
//! assert!(score.image.is_finite() && score.image >= 0.0);
//! assert_eq!(score.image, score.map.iter().cloned().fold(f64::MIN, f64::max));
//! # Ok::<(), scoring::ScoringError>(())
//! ```
#![deny(missing_docs)]

mod calibration;
mod detector;
mod error;
mod mahalanobis;
mod options;
mod resample;

pub use calibration::{NormalScores, QuantileSketch, check_target_fpr};
pub use detector::{
    Detector, DetectorFitter, DetectorParams, DetectorScore, FitPhase, ImageModel, LevelModel,
    LevelShape, MIN_TRAINING_IMAGES, PixelGaussians, PixelModel, ValidDetectorParams,
};
pub use error::ScoringError;
pub use mahalanobis::{mahalanobis, mahalanobis_rows, score_map_per_position, score_map_shared};
pub use options::{ImageScore, PixelPca, SpatialModel};
pub use resample::{MAX_BLUR_RADIUS, combine_levels, gaussian_blur, upsample_bilinear};

/// Result alias of this crate.
pub type Result<T, E = ScoringError> = std::result::Result<T, E>;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
