//! The method composed over levels: parameters, the two-phase streaming fitter, the fitted
//! detector and its scores.

use gaussian_fit::{
    FittedGaussian, GaussianError, GaussianParams, PerPositionAccumulator, PerPositionGaussians,
    ValidGaussianParams,
};
use ndarray::{Array1, Array2, ArrayView3};
use opca_reduction::{
    FittedReduction, MomentAccumulator, ReductionError, ReductionParams, ValidReductionParams,
};
use serde::{Deserialize, Serialize};

use crate::error::ScoringError;
use crate::mahalanobis::{mahalanobis, score_map_per_position, score_map_shared};
use crate::options::{ImageScore, PixelPca, SpatialModel};
use crate::resample::{MAX_BLUR_RADIUS, combine_levels, gaussian_blur};

/// The minimum number of training images a detector needs.
pub const MIN_TRAINING_IMAGES: usize = 2;

/// Shape of one level's feature map: `(channels, rows, cols)`.
pub type LevelShape = (usize, usize, usize);

/// Parameters of the detector (linfa style: [`DetectorParams::validate`] ->
/// [`ValidDetectorParams`] -> [`DetectorFitter`] -> [`Detector`]). A missing field takes its
/// default when deserialised (parameters added later keep older models readable).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorParams {
    /// Dimensionality reduction of every level (image and pixel models); default `opca:0.05`.
    pub reduction: ReductionParams,
    /// Covariance estimator of every Gaussian; default Ledoit-Wolf.
    pub gaussian: GaussianParams,
    /// Spatial model of the pixel Gaussians; default per-position.
    pub spatial: SpatialModel,
    /// Which PCA the pixel model uses; default per-level.
    pub pixel_pca: PixelPca,
    /// The image score; default pooled.
    pub image_score: ImageScore,
    /// Optional Gaussian smoothing of the final map (PaDiM uses 4 px); default off.
    pub blur_sigma: Option<f64>,
}

impl DetectorParams {
    /// The default parameters (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the reduction parameters.
    pub fn with_reduction(mut self, reduction: ReductionParams) -> Self {
        self.reduction = reduction;
        self
    }

    /// Set the Gaussian parameters.
    pub fn with_gaussian(mut self, gaussian: GaussianParams) -> Self {
        self.gaussian = gaussian;
        self
    }

    /// Set the spatial model.
    pub fn with_spatial(mut self, spatial: SpatialModel) -> Self {
        self.spatial = spatial;
        self
    }

    /// Set which PCA the pixel model uses.
    pub fn with_pixel_pca(mut self, pixel_pca: PixelPca) -> Self {
        self.pixel_pca = pixel_pca;
        self
    }

    /// Set the image score.
    pub fn with_image_score(mut self, image_score: ImageScore) -> Self {
        self.image_score = image_score;
        self
    }

    /// Set (or clear) the blur sigma of the final map, in output pixels.
    pub fn with_blur_sigma(mut self, blur_sigma: Option<f64>) -> Self {
        self.blur_sigma = blur_sigma;
        self
    }

    /// Check every parameter.
    ///
    /// # Errors
    /// [`ScoringError::Reduction`] / [`ScoringError::Gaussian`] for invalid sub-parameters,
    /// [`ScoringError::InvalidSigma`] for a negative, non-finite or huge blur sigma.
    pub fn validate(&self) -> Result<ValidDetectorParams, ScoringError> {
        let reduction = self.reduction.validate()?;
        let gaussian = self.gaussian.validate()?;
        if let Some(sigma) = self.blur_sigma
            && (!sigma.is_finite() || sigma < 0.0 || (4.0 * sigma + 0.5) > MAX_BLUR_RADIUS as f64)
        {
            return Err(ScoringError::InvalidSigma {
                sigma,
                reason: "the blur sigma must be finite, >= 0 and at most MAX_BLUR_RADIUS / 4",
            });
        }
        Ok(ValidDetectorParams {
            params: self.clone(),
            reduction,
            gaussian,
        })
    }
}

/// Checked detector parameters; create a [`DetectorFitter`] from them.
#[derive(Debug, Clone)]
pub struct ValidDetectorParams {
    params: DetectorParams,
    reduction: ValidReductionParams,
    gaussian: ValidGaussianParams,
}

impl ValidDetectorParams {
    /// The parameters that were validated.
    pub fn params(&self) -> &DetectorParams {
        &self.params
    }
}

/// The image model of one level: PCA of the pooled vectors and a Gaussian of the reduced ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageModel {
    /// Reduction fitted on the training images' global-average-pooled vectors.
    pub reduction: FittedReduction,
    /// Gaussian of the reduced pooled vectors.
    pub gaussian: FittedGaussian,
}

/// The Gaussians of a level's pixel model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PixelGaussians {
    /// One Gaussian for every position of the level.
    Shared(FittedGaussian),
    /// One Gaussian per position `(i, j)`.
    PerPosition(PerPositionGaussians),
}

impl PixelGaussians {
    /// The dimension of the Gaussian(s).
    pub fn dim(&self) -> usize {
        match self {
            Self::Shared(g) => g.dim(),
            Self::PerPosition(p) => p.dim(),
        }
    }
}

/// The pixel model of one level: a reduction shared by all positions and the Gaussian(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelModel {
    /// Reduction applied to every position vector (per-level PCA, or a copy of the image
    /// model's with [`PixelPca::FromPooled`]).
    pub reduction: FittedReduction,
    /// The Gaussian(s) of the reduced position vectors.
    pub gaussians: PixelGaussians,
}

/// Everything fitted for one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelModel {
    /// Image (detection) model.
    pub image: ImageModel,
    /// Pixel (localization) model.
    pub pixel: PixelModel,
}

/// The scores of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorScore {
    /// The image score chosen by [`DetectorParams::image_score`] (`pooled` or `map-max`).
    pub image: f64,
    /// Sum over levels of the pooled Mahalanobis distances.
    pub pooled: f64,
    /// The pooled Mahalanobis distance of every level.
    pub per_level_pooled: Vec<f64>,
    /// The pixel map `(out_h, out_w)`: mean over levels of the upsampled level maps, then the
    /// optional blur.
    pub map: Array2<f64>,
}

/// A fitted multi-level Gaussian anomaly detector. Plain data (serde); check models read
/// from untrusted files with [`Detector::validate`].
///
/// The parameters are serialised as JSON text inside whatever format holds the detector, so
/// a compact positional format (postcard, bincode) still reads detectors written before a
/// parameter existed: the missing parameter takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    #[serde(with = "params_as_json")]
    params: DetectorParams,
    level_shapes: Vec<LevelShape>,
    levels: Vec<LevelModel>,
}

mod params_as_json {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::DetectorParams;

    pub(super) fn serialize<S: Serializer>(params: &DetectorParams, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(params).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DetectorParams, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(serde::de::Error::custom)
    }
}

fn check_shapes(level_shapes: &[LevelShape]) -> Result<(), ScoringError> {
    if level_shapes.is_empty() {
        return Err(ScoringError::EmptyInput {
            what: "no levels".into(),
        });
    }
    for (l, &(c, h, w)) in level_shapes.iter().enumerate() {
        if c == 0 || h == 0 || w == 0 {
            return Err(ScoringError::EmptyInput {
                what: format!("level {l} has shape {:?} (c, h, w)", (c, h, w)),
            });
        }
    }
    Ok(())
}

/// Check the number, shapes and finiteness of one image's level maps.
fn check_maps<A: Copy + Into<f64>>(
    level_shapes: &[LevelShape],
    maps: &[ArrayView3<A>],
) -> Result<(), ScoringError> {
    if maps.len() != level_shapes.len() {
        return Err(ScoringError::LevelCount {
            expected: level_shapes.len(),
            got: maps.len(),
        });
    }
    for (l, (m, &s)) in maps.iter().zip(level_shapes).enumerate() {
        if m.dim() != s {
            return Err(ScoringError::LevelShape {
                level: l,
                expected: s,
                got: m.dim(),
            });
        }
        if !m.iter().all(|&v| v.into().is_finite()) {
            return Err(ScoringError::NonFinite {
                what: format!("feature map of level {l}"),
            });
        }
    }
    Ok(())
}

/// Global average pool of a `(c, h, w)` map in f64.
fn pool<A: Copy + Into<f64>>(map: &ArrayView3<A>) -> Array1<f64> {
    let (c, h, w) = map.dim();
    let n = (h * w) as f64;
    let mut out = Array1::<f64>::zeros(c);
    for (o, plane) in out.iter_mut().zip(map.outer_iter()) {
        *o = plane.iter().map(|&v| v.into()).sum::<f64>() / n;
    }
    out
}

struct Phase1Level {
    pooled: MomentAccumulator,
    /// `None` with [`PixelPca::FromPooled`].
    positions: Option<MomentAccumulator>,
}

enum PixelAcc {
    Shared(MomentAccumulator),
    PerPosition(PerPositionAccumulator),
}

struct Phase2Level {
    image_reduction: FittedReduction,
    pixel_reduction: FittedReduction,
    image_acc: MomentAccumulator,
    pixel_acc: PixelAcc,
}

enum FitState {
    Phase1(Vec<Phase1Level>),
    Phase2(Vec<Phase2Level>),
}

/// Which phase a [`DetectorFitter`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitPhase {
    /// Accumulating moments for the PCA bases ([`DetectorFitter::push_phase1`]).
    Phase1,
    /// Accumulating the Gaussians' moments ([`DetectorFitter::push_phase2`]).
    Phase2,
}

impl FitPhase {
    fn name(self) -> &'static str {
        match self {
            Self::Phase1 => "phase 1",
            Self::Phase2 => "phase 2",
        }
    }
}

/// The two-phase streaming fit of a [`Detector`]: memory is `O(levels * d^2)` (times
/// `h * w` for per-position models), never the training maps themselves.
///
/// 1. [`push_phase1`](Self::push_phase1) every training image (one `(c, h, w)` map per level),
///    then [`finish_phase1`](Self::finish_phase1): fits the PCA bases (image model on the
///    pooled vectors, pixel model on all position vectors of the level).
/// 2. [`push_phase2`](Self::push_phase2) the same images again (re-extracted or cached), then
///    [`finish`](Self::finish): fits the Gaussians of the projected features.
///
/// The order of the images does not matter (up to rounding).
pub struct DetectorFitter {
    params: ValidDetectorParams,
    level_shapes: Vec<LevelShape>,
    state: FitState,
    n_phase1: usize,
    n_phase2: usize,
}

impl std::fmt::Debug for DetectorFitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorFitter")
            .field("params", &self.params.params)
            .field("level_shapes", &self.level_shapes)
            .field("phase", &self.phase())
            .field("n_phase1", &self.n_phase1)
            .field("n_phase2", &self.n_phase2)
            .finish()
    }
}

impl DetectorFitter {
    /// A fitter for images whose level `l` maps have shape `level_shapes[l] = (c, h, w)`.
    ///
    /// # Errors
    /// [`ScoringError::EmptyInput`] for no levels or a zero-sized level.
    pub fn new(
        params: ValidDetectorParams,
        level_shapes: &[LevelShape],
    ) -> Result<Self, ScoringError> {
        check_shapes(level_shapes)?;
        let per_level = params.params.pixel_pca == PixelPca::PerLevel;
        let levels = level_shapes
            .iter()
            .map(|&(c, _, _)| Phase1Level {
                pooled: MomentAccumulator::new(c),
                positions: per_level.then(|| MomentAccumulator::new(c)),
            })
            .collect();
        Ok(Self {
            params,
            level_shapes: level_shapes.to_vec(),
            state: FitState::Phase1(levels),
            n_phase1: 0,
            n_phase2: 0,
        })
    }

    /// The current phase.
    pub fn phase(&self) -> FitPhase {
        match self.state {
            FitState::Phase1(_) => FitPhase::Phase1,
            FitState::Phase2(_) => FitPhase::Phase2,
        }
    }

    /// Images pushed in phase 1 so far.
    pub fn n_phase1(&self) -> usize {
        self.n_phase1
    }

    /// Images pushed in phase 2 so far.
    pub fn n_phase2(&self) -> usize {
        self.n_phase2
    }

    /// The level shapes `(c, h, w)`.
    pub fn level_shapes(&self) -> &[LevelShape] {
        &self.level_shapes
    }

    fn wrong_phase(&self, call: &'static str) -> ScoringError {
        ScoringError::WrongPhase {
            call,
            phase: self.phase().name(),
        }
    }

    /// Phase 1: add one training image (one `(c, h, w)` map per level). On error nothing is
    /// added.
    ///
    /// # Errors
    /// [`ScoringError::WrongPhase`] after [`finish_phase1`](Self::finish_phase1),
    /// [`ScoringError::LevelCount`] / [`ScoringError::LevelShape`] /
    /// [`ScoringError::NonFinite`] for bad maps.
    pub fn push_phase1<A: Copy + Into<f64>>(
        &mut self,
        maps: &[ArrayView3<A>],
    ) -> Result<(), ScoringError> {
        if self.phase() != FitPhase::Phase1 {
            return Err(self.wrong_phase("push_phase1"));
        }
        check_maps(&self.level_shapes, maps)?;
        let FitState::Phase1(levels) = &mut self.state else {
            return Err(ScoringError::WrongPhase {
                call: "push_phase1",
                phase: "phase 2",
            });
        };
        for (lev, map) in levels.iter_mut().zip(maps) {
            lev.pooled
                .push_vector(pool(map).view())
                .map_err(ReductionError::from)?;
            if let Some(acc) = &mut lev.positions {
                acc.push_map(map.view()).map_err(ReductionError::from)?;
            }
        }
        self.n_phase1 += 1;
        Ok(())
    }

    /// End phase 1: fit the PCA bases of every level.
    ///
    /// # Errors
    /// [`ScoringError::NotEnoughImages`] for fewer than [`MIN_TRAINING_IMAGES`] images,
    /// [`ScoringError::WrongPhase`] if called twice, [`ScoringError::Reduction`] if a PCA
    /// cannot be fitted. On error the fitter stays in phase 1.
    pub fn finish_phase1(&mut self) -> Result<(), ScoringError> {
        let FitState::Phase1(levels) = &self.state else {
            return Err(self.wrong_phase("finish_phase1"));
        };
        if self.n_phase1 < MIN_TRAINING_IMAGES {
            return Err(ScoringError::NotEnoughImages {
                min: MIN_TRAINING_IMAGES,
                got: self.n_phase1,
            });
        }
        let p = &self.params;
        let mut next = Vec::with_capacity(levels.len());
        for (lev, &(_, h, w)) in levels.iter().zip(&self.level_shapes) {
            let image_reduction = p.reduction.fit(&lev.pooled)?;
            let pixel_reduction = match &lev.positions {
                Some(acc) => p.reduction.fit(acc)?,
                None => image_reduction.clone(),
            };
            let k_img = image_reduction.output_dim();
            let k_pix = pixel_reduction.output_dim();
            let pixel_acc = match p.params.spatial {
                SpatialModel::Shared => PixelAcc::Shared(MomentAccumulator::new(k_pix)),
                SpatialModel::PerPosition => {
                    PixelAcc::PerPosition(PerPositionAccumulator::new(k_pix, h, w))
                }
            };
            next.push(Phase2Level {
                image_reduction,
                pixel_reduction,
                image_acc: MomentAccumulator::new(k_img),
                pixel_acc,
            });
        }
        self.state = FitState::Phase2(next);
        Ok(())
    }

    /// Phase 2: add the same training image again: its maps are projected with the fitted
    /// bases and fed to the Gaussians' accumulators. On error nothing is added.
    ///
    /// # Errors
    /// [`ScoringError::WrongPhase`] before [`finish_phase1`](Self::finish_phase1), and the
    /// errors of [`push_phase1`](Self::push_phase1).
    pub fn push_phase2<A: Copy + Into<f64>>(
        &mut self,
        maps: &[ArrayView3<A>],
    ) -> Result<(), ScoringError> {
        if self.phase() != FitPhase::Phase2 {
            return Err(self.wrong_phase("push_phase2"));
        }
        check_maps(&self.level_shapes, maps)?;
        let FitState::Phase2(levels) = &mut self.state else {
            return Err(ScoringError::WrongPhase {
                call: "push_phase2",
                phase: "phase 1",
            });
        };
        // Project everything first so that a failure leaves the accumulators untouched.
        let mut projected = Vec::with_capacity(levels.len());
        for (lev, map) in levels.iter().zip(maps) {
            let z_img = lev.image_reduction.transform_vector(pool(map).view())?;
            let z_pix = lev.pixel_reduction.transform_map(map.view())?;
            if !z_img.iter().chain(z_pix.iter()).all(|v| v.is_finite()) {
                return Err(ScoringError::NonFinite {
                    what: "projected features (overflow)".into(),
                });
            }
            projected.push((z_img, z_pix));
        }
        for (lev, (z_img, z_pix)) in levels.iter_mut().zip(projected) {
            lev.image_acc
                .push_vector(z_img.view())
                .map_err(GaussianError::from)?;
            match &mut lev.pixel_acc {
                PixelAcc::Shared(acc) => acc.push_map(z_pix.view()).map_err(GaussianError::from)?,
                PixelAcc::PerPosition(acc) => acc.push_map(z_pix.view())?,
            }
        }
        self.n_phase2 += 1;
        Ok(())
    }

    /// Fit the Gaussians and return the detector. The fitter is left unchanged.
    ///
    /// # Errors
    /// [`ScoringError::WrongPhase`] before [`finish_phase1`](Self::finish_phase1),
    /// [`ScoringError::PhaseCountMismatch`] if phase 2 saw a different number of images than
    /// phase 1, [`ScoringError::Gaussian`] if a Gaussian cannot be fitted.
    pub fn finish(&self) -> Result<Detector, ScoringError> {
        let FitState::Phase2(levels) = &self.state else {
            return Err(self.wrong_phase("finish"));
        };
        if self.n_phase2 != self.n_phase1 {
            return Err(ScoringError::PhaseCountMismatch {
                phase1: self.n_phase1,
                phase2: self.n_phase2,
            });
        }
        let g = &self.params.gaussian;
        let mut out = Vec::with_capacity(levels.len());
        for lev in levels {
            let gaussians = match &lev.pixel_acc {
                PixelAcc::Shared(acc) => PixelGaussians::Shared(g.fit(acc)?),
                PixelAcc::PerPosition(acc) => PixelGaussians::PerPosition(g.fit_per_position(acc)?),
            };
            out.push(LevelModel {
                image: ImageModel {
                    reduction: lev.image_reduction.clone(),
                    gaussian: g.fit(&lev.image_acc)?,
                },
                pixel: PixelModel {
                    reduction: lev.pixel_reduction.clone(),
                    gaussians,
                },
            });
        }
        Ok(Detector {
            params: self.params.params.clone(),
            level_shapes: self.level_shapes.clone(),
            levels: out,
        })
    }
}

/// Check a fitted reduction's shapes against the expected input dimension (cheap, O(1));
/// returns its output dimension. Guards the projections against malformed models.
fn reduction_shape(r: &FittedReduction, c: usize, what: &str) -> Result<usize, ScoringError> {
    let bad = |m: String| Err(ScoringError::InvalidModel(format!("{what}: {m}")));
    let k = r.output_dim();
    if r.input_dim() != c {
        return bad(format!(
            "input dimension {} but the level has {c} channels",
            r.input_dim()
        ));
    }
    if k == 0 || k > c {
        return bad(format!("output dimension {k} for {c} input features"));
    }
    if r.components().dim() != (c, k) {
        return bad(format!(
            "components of shape {:?} instead of {:?}",
            r.components().dim(),
            (c, k)
        ));
    }
    Ok(k)
}

/// Full check of a fitted reduction (shapes, finite values, eigenvalue order).
fn check_reduction(r: &FittedReduction, c: usize, what: &str) -> Result<usize, ScoringError> {
    r.validate()
        .map_err(|e| ScoringError::InvalidModel(format!("{what}: {e}")))?;
    reduction_shape(r, c, what)
}

fn check_gaussian(g: &FittedGaussian, k: usize, what: &str) -> Result<(), ScoringError> {
    g.validate()
        .map_err(|e| ScoringError::InvalidModel(format!("{what}: {e}")))?;
    if g.dim() != k {
        return Err(ScoringError::InvalidModel(format!(
            "{what}: dimension {} but the reduction outputs {k}",
            g.dim()
        )));
    }
    Ok(())
}

impl Detector {
    /// The parameters the detector was fitted with.
    pub fn params(&self) -> &DetectorParams {
        &self.params
    }

    /// The level shapes `(c, h, w)` the detector expects.
    pub fn level_shapes(&self) -> &[LevelShape] {
        &self.level_shapes
    }

    /// The fitted models, one per level.
    pub fn levels(&self) -> &[LevelModel] {
        &self.levels
    }

    /// Check internal consistency, for models loaded from untrusted files: valid parameters,
    /// one model per level, reduction and Gaussian dimensions that agree with the level shapes
    /// and with each other, per-position grids of the level's `(h, w)`, the spatial model of
    /// the parameters, finite values everywhere.
    ///
    /// # Errors
    /// [`ScoringError::InvalidModel`] naming the level and part, or the parameter errors of
    /// [`DetectorParams::validate`].
    pub fn validate(&self) -> Result<(), ScoringError> {
        self.params.validate()?;
        check_shapes(&self.level_shapes)
            .map_err(|e| ScoringError::InvalidModel(format!("level shapes: {e}")))?;
        if self.levels.len() != self.level_shapes.len() {
            return Err(ScoringError::InvalidModel(format!(
                "{} level models for {} level shapes",
                self.levels.len(),
                self.level_shapes.len()
            )));
        }
        let selection = self.params.reduction.selection;
        for (l, (lev, &(c, h, w))) in self.levels.iter().zip(&self.level_shapes).enumerate() {
            for (r, name) in [
                (&lev.image.reduction, "image"),
                (&lev.pixel.reduction, "pixel"),
            ] {
                if r.selection() != selection {
                    return Err(ScoringError::InvalidModel(format!(
                        "level {l} {name} reduction uses {} but the parameters say {selection}",
                        r.selection()
                    )));
                }
            }
            let k_img = check_reduction(
                &lev.image.reduction,
                c,
                &format!("level {l} image reduction"),
            )?;
            check_gaussian(
                &lev.image.gaussian,
                k_img,
                &format!("level {l} image Gaussian"),
            )?;
            let k_pix = check_reduction(
                &lev.pixel.reduction,
                c,
                &format!("level {l} pixel reduction"),
            )?;
            if self.params.pixel_pca == PixelPca::FromPooled
                && lev.pixel.reduction != lev.image.reduction
            {
                return Err(ScoringError::InvalidModel(format!(
                    "level {l}: pixel_pca is from-pooled but the pixel reduction differs from the image one"
                )));
            }
            let what = format!("level {l} pixel Gaussians");
            match (&lev.pixel.gaussians, self.params.spatial) {
                (PixelGaussians::Shared(g), SpatialModel::Shared) => {
                    check_gaussian(g, k_pix, &what)?
                }
                (PixelGaussians::PerPosition(p), SpatialModel::PerPosition) => {
                    p.validate()
                        .map_err(|e| ScoringError::InvalidModel(format!("{what}: {e}")))?;
                    if p.dim() != k_pix {
                        return Err(ScoringError::InvalidModel(format!(
                            "{what}: dimension {} but the reduction outputs {k_pix}",
                            p.dim()
                        )));
                    }
                    if p.shape() != (h, w) {
                        return Err(ScoringError::InvalidModel(format!(
                            "{what}: grid {:?} but the level is {:?}",
                            p.shape(),
                            (h, w)
                        )));
                    }
                }
                (_, spatial) => {
                    return Err(ScoringError::InvalidModel(format!(
                        "{what}: the stored model does not match the spatial model {spatial}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The per-level pixel maps `(h_l, w_l)` and pooled distances of one image, before
    /// upsampling.
    ///
    /// # Errors
    /// As [`score`](Self::score).
    pub fn score_levels<A: Copy + Into<f64>>(
        &self,
        maps: &[ArrayView3<A>],
    ) -> Result<(Vec<f64>, Vec<Array2<f64>>), ScoringError> {
        check_shapes(&self.level_shapes)
            .map_err(|e| ScoringError::InvalidModel(format!("level shapes: {e}")))?;
        check_maps(&self.level_shapes, maps)?;
        if self.levels.len() != self.level_shapes.len() {
            return Err(ScoringError::InvalidModel(format!(
                "{} level models for {} level shapes",
                self.levels.len(),
                self.level_shapes.len()
            )));
        }
        let mut pooled = Vec::with_capacity(maps.len());
        let mut level_maps = Vec::with_capacity(maps.len());
        for (l, (lev, map)) in self.levels.iter().zip(maps).enumerate() {
            let c = map.dim().0;
            reduction_shape(
                &lev.image.reduction,
                c,
                &format!("level {l} image reduction"),
            )?;
            reduction_shape(
                &lev.pixel.reduction,
                c,
                &format!("level {l} pixel reduction"),
            )?;
            let z = lev.image.reduction.transform_vector(pool(map).view())?;
            pooled.push(mahalanobis(&lev.image.gaussian, z.view())?);
            let zm = lev.pixel.reduction.transform_map(map.view())?;
            level_maps.push(match &lev.pixel.gaussians {
                PixelGaussians::Shared(g) => score_map_shared(g, zm.view())?,
                PixelGaussians::PerPosition(p) => score_map_per_position(p, zm.view())?,
            });
        }
        Ok((pooled, level_maps))
    }

    /// Score one image given as one `(c, h, w)` feature map per level: the pooled image
    /// score, and the pixel map at `(out_h, out_w)` (mean over levels of the bilinearly
    /// upsampled level maps, then the optional blur).
    ///
    /// # Errors
    /// [`ScoringError::ZeroOutputSize`], [`ScoringError::LevelCount`],
    /// [`ScoringError::LevelShape`], [`ScoringError::NonFinite`] for bad input;
    /// [`ScoringError::NonFiniteScore`] on overflow (a score is never NaN);
    /// [`ScoringError::InvalidModel`] / [`ScoringError::Reduction`] for an inconsistent model.
    pub fn score<A: Copy + Into<f64>>(
        &self,
        maps: &[ArrayView3<A>],
        out_h: usize,
        out_w: usize,
    ) -> Result<DetectorScore, ScoringError> {
        if out_h == 0 || out_w == 0 {
            return Err(ScoringError::ZeroOutputSize { out_h, out_w });
        }
        let (per_level_pooled, level_maps) = self.score_levels(maps)?;
        let mut map = combine_levels(&level_maps, out_h, out_w)?;
        if let Some(sigma) = self.params.blur_sigma {
            map = gaussian_blur(map.view(), sigma)?;
        }
        let pooled: f64 = per_level_pooled.iter().sum();
        let image = match self.params.image_score {
            ImageScore::Pooled => pooled,
            ImageScore::MapMax => map.fold(f64::NEG_INFINITY, |a, &b| a.max(b)),
        };
        if !image.is_finite() || !pooled.is_finite() {
            return Err(ScoringError::NonFiniteScore {
                what: "image score".into(),
            });
        }
        Ok(DetectorScore {
            image,
            pooled,
            per_level_pooled,
            map,
        })
    }
}
