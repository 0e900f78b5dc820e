//! The per-category core every command shares: features (from the [`FeatureCache`]) -> fit ->
//! score -> metrics. `gaussad eval`, `gaussad ablate` and `gaussad demo` evaluate through
//! [`evaluate`]; `gaussad fit` fits through [`fit`]; `gaussad predict` scores images as they
//! stream from the backbone ([`score_images`]).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backbone::FeatureExtractor;
use mvtec_eval::{ImageMetrics, PixelMetrics, PixelMetricsAccumulator};
use ndarray::{Array2, ArrayView3, Axis};
use scoring::{Detector, DetectorFitter, DetectorParams, DetectorScore};

use crate::features::{FeatureCache, Set};
use crate::progress::Progress;

/// Fits a detector on the cached training images `i` with `include(i)`, from the cached levels
/// at positions `select` (two passes over the cache: PCA moments, then the Gaussians).
pub fn fit(cache: &FeatureCache, select: &[usize], params: &DetectorParams, include: impl Fn(usize) -> bool) -> Result<Detector> {
    let n = (0..cache.len(Set::Train)).filter(|&i| include(i)).count();
    if n < 2 {
        bail!("at least 2 training images are needed, found {n}");
    }
    let shapes: Vec<(usize, usize, usize)> = select.iter().filter_map(|&s| cache.shapes().get(s).copied()).collect();
    let mut fitter = DetectorFitter::new(params.validate()?, &shapes)?;
    cache.for_each(Set::Train, select, |i, v| if include(i) { Ok(fitter.push_phase1(v)?) } else { Ok(()) })?;
    fitter.finish_phase1()?;
    cache.for_each(Set::Train, select, |i, v| if include(i) { Ok(fitter.push_phase2(v)?) } else { Ok(()) })?;
    Ok(fitter.finish()?)
}

/// A category's test set as the metrics need it.
pub struct TestTruth {
    /// Per test image: anomalous or not.
    pub labels: Vec<bool>,
    /// Per test image: its mask at the map resolution (`None` for good images).
    pub masks: Vec<Option<Array2<bool>>>,
}

/// What [`evaluate`] measured.
pub struct Evaluation {
    /// The fitted detector.
    pub detector: Detector,
    /// Image-level metrics.
    pub image: ImageMetrics,
    /// Pixel-level metrics.
    pub pixel: PixelMetrics,
    /// Seconds to fit the detector (from cached features; no backbone).
    pub fit_seconds: f64,
    /// Seconds to score the test set and compute the metrics (no backbone).
    pub score_seconds: f64,
}

/// Fits on every cached training image, scores every cached test image (calling `on_image(i,
/// score)` in order) and computes the image and pixel metrics against `truth`.
pub fn evaluate(
    cache: &FeatureCache,
    select: &[usize],
    params: &DetectorParams,
    map_side: usize,
    truth: &TestTruth,
    mut on_image: impl FnMut(usize, &DetectorScore) -> Result<()>,
) -> Result<Evaluation> {
    let t0 = Instant::now();
    let detector = fit(cache, select, params, |_| true)?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut pixels = PixelMetricsAccumulator::new();
    let mut image_scores = Vec::with_capacity(truth.labels.len());
    cache.for_each(Set::Test, select, |i, v| {
        let s = detector.score(v, map_side, map_side)?;
        let mask = truth.masks.get(i).context("internal: more test maps than masks")?;
        pixels.push(s.map.view(), mask.as_ref().map(|m| m.view()))?;
        image_scores.push(s.image);
        on_image(i, &s)
    })?;
    let image = ImageMetrics::compute(&image_scores, &truth.labels)?;
    let pixel = pixels.finish()?;
    let score_seconds = t1.elapsed().as_secs_f64();
    Ok(Evaluation { detector, image, pixel, fit_seconds, score_seconds })
}

fn image_views(levels: &[ndarray::Array4<f32>], b: usize) -> Vec<ArrayView3<'_, f32>> {
    levels.iter().map(|l| l.index_axis(Axis(0), b)).collect()
}

/// One scored image.
pub struct ScoredImage {
    /// Its path.
    pub path: PathBuf,
    /// The image as the network saw it (resized RGB), for heatmaps.
    pub image: image::RgbImage,
    /// Scores and map.
    pub score: DetectorScore,
}

/// Scores images as they stream from the backbone in batches, calling `sink` for each in
/// input order.
pub fn score_images(
    extractor: &FeatureExtractor,
    detector: &Detector,
    paths: &[PathBuf],
    batch_size: usize,
    map_side: usize,
    progress: &Progress,
    mut sink: impl FnMut(ScoredImage) -> Result<()>,
) -> Result<()> {
    let bar = progress.bar(paths.len() as u64, "score");
    for batch in extractor.extract_paths(paths, batch_size) {
        let batch = batch?;
        for (b, (path, image)) in batch.paths.iter().zip(batch.images).enumerate() {
            let score = detector
                .score(&image_views(&batch.levels, b), map_side, map_side)
                .with_context(|| format!("scoring {}", path.display()))?;
            sink(ScoredImage { path: path.clone(), image, score })?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

impl TestTruth {
    /// Labels and masks of a category's test set at the map geometry of `checked` (masks are
    /// resized and cropped exactly like the images).
    pub fn load(category: &mvtec_eval::Category, checked: &crate::config::CheckedConfig) -> Result<Self> {
        let (resize, crop) = checked.resize_and_crop();
        let geometry = mvtec_eval::MaskGeometry::new(resize, crop);
        let masks = category
            .test
            .iter()
            .map(|s| mvtec_eval::load_sample_mask(s, geometry))
            .collect::<mvtec_eval::Result<Vec<_>>>()
            .with_context(|| format!("masks of category {}", category.name))?;
        Ok(Self { labels: category.test_labels(), masks })
    }
}

/// The most pixel scores kept for the pixel threshold (a regular subsample beyond it).
const MAX_CALIBRATION_PIXELS: usize = 4 << 20;

/// Alarm thresholds and the normal-score distributions they come from (stored in model files).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// How the thresholds were set, in words.
    pub rule: String,
    /// Folds of the out-of-fold scoring.
    pub folds: usize,
    /// Training images scored out of fold.
    pub n_train: usize,
    /// Extra validation images scored by the final model.
    pub n_val: usize,
    /// Target false-alarm rate of images the image threshold was set for.
    pub target_fpr: f64,
    /// The false-alarm rate the rule promises for exchangeable normal images, `k / (n + 1)`.
    pub promised_fpr: f64,
    /// Image threshold: an image is anomalous when its score is above it.
    pub image_threshold: f64,
    /// Target false-alarm rate of pixels the pixel threshold was set for.
    pub pixel_fpr: f64,
    /// Pixel threshold: a pixel is marked defective when its score is above it.
    pub pixel_threshold: f64,
    /// The normal image scores (out-of-fold and validation).
    pub image_scores: scoring::NormalScores,
    /// The normal pixel scores, sketched.
    pub pixel_scores: scoring::QuantileSketch,
}

/// The rule, in the words stored in model files and reports.
pub const CALIBRATION_RULE: &str = "conformal order statistic of out-of-fold normal scores: with n scores, the \
     k-th largest, k = floor(target (n + 1)); pixels: the (1 - pixel target) quantile of out-of-fold normal pixel scores";

impl Calibration {
    /// Thresholds for other targets from the stored distributions (no refit).
    pub fn rethreshold(&self, target_fpr: Option<f64>, pixel_fpr: Option<f64>) -> Result<Calibration> {
        let mut c = self.clone();
        if let Some(t) = target_fpr {
            c.target_fpr = t;
            c.image_threshold = c.image_scores.threshold(t)?;
            c.promised_fpr = c.image_scores.expected_fpr(t)?;
        }
        if let Some(p) = pixel_fpr {
            c.pixel_fpr = p;
            c.pixel_threshold = c.pixel_scores.threshold(p)?;
        }
        Ok(c)
    }

    /// Checks a stored calibration: finite positive thresholds that match the distributions.
    pub fn validate(&self) -> Result<()> {
        self.pixel_scores.validate()?;
        let again = self.rethreshold(Some(self.target_fpr), Some(self.pixel_fpr))?;
        if !(self.image_threshold.is_finite() && self.pixel_threshold.is_finite())
            || again.image_threshold != self.image_threshold
            || again.pixel_threshold != self.pixel_threshold
            || self.folds < 2
        {
            bail!("the stored thresholds do not follow from the stored normal scores");
        }
        Ok(())
    }
}

/// Out-of-fold calibration: training image `i` goes to fold `i mod folds`; for each fold a
/// detector is fitted on the other folds and scores the fold's images; the validation images
/// (the cache's test set, when `test_is_validation`) are scored by `detector`, the model fitted
/// on every training image. Thresholds come from all these normal scores.
#[allow(clippy::too_many_arguments)]
pub fn calibrate(
    cache: &FeatureCache,
    select: &[usize],
    params: &DetectorParams,
    detector: &Detector,
    map_side: usize,
    folds: usize,
    target_fpr: f64,
    pixel_fpr: f64,
    test_is_validation: bool,
) -> Result<Calibration> {
    let n = cache.len(Set::Train);
    let n_val = if test_is_validation { cache.len(Set::Test) } else { 0 };
    let folds = folds.min(n);
    let smallest_rest = n - n.div_ceil(folds.max(1));
    if folds < 2 || smallest_rest < scoring::MIN_TRAINING_IMAGES {
        bail!(
            "{n} training images are too few for {folds}-fold calibration: every fold model needs at least {} \
             images (use more training images or fewer --folds)",
            scoring::MIN_TRAINING_IMAGES
        );
    }
    let per_map = map_side * map_side;
    let total = per_map.saturating_mul(n + n_val);
    let stride = (1..).find(|s: &usize| total / (s * s) <= MAX_CALIBRATION_PIXELS).unwrap_or(1);
    let mut image_scores = Vec::with_capacity(n + n_val);
    let mut pixels: Vec<f32> = Vec::new();
    let mut keep = |s: &DetectorScore| {
        image_scores.push(s.image);
        pixels.extend(s.map.slice(ndarray::s![..;stride, ..;stride]).iter().map(|&v| v as f32));
    };
    for f in 0..folds {
        let fold_model = fit(cache, select, params, |i| i % folds != f).with_context(|| format!("calibration fold {}", f + 1))?;
        cache.for_each(Set::Train, select, |i, v| {
            if i % folds == f {
                keep(&fold_model.score(v, map_side, map_side)?);
            }
            Ok(())
        })?;
    }
    if n_val > 0 {
        cache.for_each(Set::Test, select, |_, v| {
            keep(&detector.score(v, map_side, map_side)?);
            Ok(())
        })?;
    }
    let image_scores = scoring::NormalScores::new(image_scores)?;
    let pixel_scores = scoring::QuantileSketch::from_values(&mut pixels)?;
    let image_threshold = image_scores.threshold(target_fpr).context("image threshold")?;
    let promised_fpr = image_scores.expected_fpr(target_fpr)?;
    let pixel_threshold = pixel_scores.threshold(pixel_fpr).context("pixel threshold")?;
    Ok(Calibration {
        rule: CALIBRATION_RULE.into(),
        folds,
        n_train: n,
        n_val,
        target_fpr,
        promised_fpr,
        image_threshold,
        pixel_fpr,
        pixel_threshold,
        image_scores,
        pixel_scores,
    })
}

/// Fails early (before the backbone runs) when `n` normal images cannot give a threshold for
/// `target_fpr`, or `folds` cannot leave every fold model enough images.
pub fn check_calibration_size(n: usize, folds: usize, target_fpr: f64) -> Result<()> {
    let needed = scoring::NormalScores::needed_for(target_fpr);
    if n < needed {
        bail!(
            "{n} normal images cannot set a threshold for a false-alarm rate of {target_fpr}: the rule (k-th largest \
             out-of-fold score, k = floor(rate (n + 1)) >= 1) needs at least {needed}; add images (--train, --val) or \
             raise --target-fpr"
        );
    }
    if folds < 2 {
        bail!("calibration needs at least 2 folds and 2 training images");
    }
    Ok(())
}
