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
        let side = checked.map_size();
        let masks = category
            .test
            .iter()
            .map(|s| mvtec_eval::load_sample_mask(s, side, side))
            .collect::<mvtec_eval::Result<Vec<_>>>()
            .with_context(|| format!("masks of category {}", category.name))?;
        Ok(Self { labels: category.test_labels(), masks })
    }
}
