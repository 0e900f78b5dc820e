//! Wires the pipeline crates together: backbone features -> detector fit -> scores.
//!
//! Everything here streams over images in batches; the only thing kept across images is the
//! fitter's accumulated moments, plus (when it fits in [`FEATURE_CACHE_BYTES`]) the training
//! features between the two fit passes, so the backbone does not run twice on small sets.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use backbone::{BackboneName, BackboneSpec, Device, FeatureExtractor, Preprocess, WeightsSource};
use gaussian_fit::{CovarianceEstimator, GaussianParams};
use ndarray::{Array4, ArrayView3, Axis};
use opca_reduction::{ReductionParams, Selection};
use scoring::{Detector, DetectorFitter, DetectorParams, DetectorScore, ImageScore, PixelPca, SpatialModel};

use crate::config::MethodConfig;
use crate::progress::Progress;

/// Training features up to this size are kept in memory between the two fit passes;
/// above it the backbone runs again for the second pass (memory stays bounded).
pub const FEATURE_CACHE_BYTES: usize = 1 << 30;

/// Where downloaded weights live, unless `GAUSSAD_WEIGHTS_DIR` says otherwise
/// (`cargo xtask download weights` writes there).
pub fn weights_dir() -> PathBuf {
    std::env::var_os("GAUSSAD_WEIGHTS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("weights"))
}

/// A configuration resolved against its backbone: everything needed to build the extractor
/// and the detector.
#[derive(Debug)]
pub struct Resolved {
    /// The config with levels and size filled in (what results.json and model files record).
    pub config: MethodConfig,
    /// The backbone architecture.
    pub spec: BackboneSpec,
    /// Where its weights come from.
    pub weights: WeightsSource,
    /// Preprocessing.
    pub preprocess: Preprocess,
    /// Device.
    pub device: Device,
    /// Validated detector parameters.
    pub detector: DetectorParams,
}

impl Resolved {
    /// Resolves and validates every key of `cfg`; errors name the offending flag.
    pub fn new(cfg: &MethodConfig) -> Result<Self> {
        cfg.check_scalars()?;
        let (spec, weights) = resolve_backbone(&cfg.backbone)?;
        let levels = if cfg.levels.is_empty() { spec.default_levels() } else { cfg.levels.clone() };
        let n_levels = spec.num_levels();
        if let Some(bad) = levels.iter().find(|&&l| l >= n_levels) {
            bail!("--levels: level {bad} does not exist for {} (levels 0..{})", cfg.backbone, n_levels - 1);
        }
        let mut seen = levels.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != levels.len() {
            bail!("--levels: a level is listed twice in {levels:?}");
        }
        let size = if cfg.resize == 0 { spec.default_input_size() } else { cfg.resize };
        let crop = (cfg.center_crop != 0).then_some(cfg.center_crop);
        if let Some(c) = crop
            && c > size
        {
            bail!("--center-crop {c} is larger than the input size {size}");
        }
        let selection = Selection::from_str(&cfg.reduction)
            .map_err(|e| anyhow::anyhow!("--reduction {:?}: {e} (expected opca:T, pca:T or none)", cfg.reduction))?;
        let estimator = CovarianceEstimator::from_str(&cfg.covariance)
            .map_err(|e| anyhow::anyhow!("--covariance {:?}: {e} (expected ledoit-wolf, empirical or ridge:EPS)", cfg.covariance))?;
        let spatial = SpatialModel::from_str(&cfg.spatial)
            .map_err(|e| anyhow::anyhow!("--spatial {:?}: {e} (expected per-position or shared)", cfg.spatial))?;
        let pixel_pca = PixelPca::from_str(&cfg.pixel_pca)
            .map_err(|e| anyhow::anyhow!("--pixel-pca {:?}: {e} (expected per-level or from-pooled)", cfg.pixel_pca))?;
        let image_score = ImageScore::from_str(&cfg.image_score)
            .map_err(|e| anyhow::anyhow!("--image-score {:?}: {e} (expected pooled or map-max)", cfg.image_score))?;
        let device = Device::from_str(&cfg.device)
            .map_err(|e| anyhow::anyhow!("--device {:?}: {e} (expected cpu, cuda or cuda:N)", cfg.device))?;
        let detector = DetectorParams::new()
            .with_reduction(ReductionParams::default().with_selection(selection))
            .with_gaussian(GaussianParams::default().with_estimator(estimator))
            .with_spatial(spatial)
            .with_pixel_pca(pixel_pca)
            .with_image_score(image_score)
            .with_blur_sigma((cfg.blur_sigma > 0.0).then_some(cfg.blur_sigma));
        detector.validate().context("invalid method parameters")?;
        let mut config = cfg.clone();
        config.levels = levels;
        config.resize = size;
        let preprocess = Preprocess::new(size).with_center_crop(crop);
        Ok(Self { config, spec, weights, preprocess, device, detector })
    }

    /// Loads the backbone with the resolved levels.
    pub fn extractor(&self) -> Result<FeatureExtractor> {
        FeatureExtractor::new(
            self.spec.clone(),
            self.weights.clone(),
            &self.config.levels,
            self.preprocess,
            self.device,
        )
        .with_context(|| format!("cannot load backbone {}", self.config.backbone))
    }

    /// The side of the square pixel map (the network input after cropping).
    pub fn map_size(&self) -> u32 {
        self.preprocess.input_size()
    }
}

/// A backbone name -> (architecture, weights); a path to an `.onnx` or PyTorch `.pth` /
/// `.pt` file -> the architecture recognised from its parameters.
fn resolve_backbone(name: &str) -> Result<(BackboneSpec, WeightsSource)> {
    let as_path = Path::new(name);
    if name.ends_with(".onnx") || backbone::is_pytorch_file(as_path) || as_path.is_file() {
        if !as_path.is_file() {
            bail!("--backbone {name}: no such weights file");
        }
        let source = WeightsSource::from_file(as_path);
        let spec = detect_architecture(as_path, &source)?;
        return Ok((spec, source));
    }
    let spec = BackboneSpec::from_str(name).map_err(|e| anyhow::anyhow!("--backbone {name:?}: {e}"))?;
    if spec.has_embedded_weights() {
        return Ok((spec, WeightsSource::Embedded));
    }
    let dir = weights_dir().join(&spec.name);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
                        || backbone::is_pytorch_file(p)
                        || backbone::is_safetensors_file(p)
                })
                .collect()
        })
        .unwrap_or_default();
    match files.as_slice() {
        [file] => Ok((spec, WeightsSource::from_file(file.clone()))),
        [] => bail!(
            "--backbone {name}: no weights in {} - run `cargo xtask download weights --backbone {name}` \
             (or set GAUSSAD_WEIGHTS_DIR, or pass --backbone PATH.onnx / PATH.pth)",
            dir.display()
        ),
        _ => bail!(
            "--backbone {name}: several weights files (.onnx / .pth / .safetensors) in {}; keep one or pass --backbone PATH",
            dir.display()
        ),
    }
}

/// Recognises which known architecture a weights file holds: the one whose every parameter
/// shape its weights match (the loader checks each one).
fn detect_architecture(path: &Path, source: &WeightsSource) -> Result<BackboneSpec> {
    let mut tried = Vec::new();
    for name in BackboneName::all() {
        let spec = BackboneSpec::from_name(name);
        let pre = Preprocess::new(spec.default_input_size());
        match FeatureExtractor::new(spec.clone(), source.clone(), &[0], pre, Device::Cpu) {
            Ok(_) => return Ok(spec),
            Err(e) => tried.push(format!("  {name}: {e}")),
        }
    }
    bail!(
        "--backbone {}: the weights file matches none of the known architectures:\n{}",
        path.display(),
        tried.join("\n")
    )
}

fn image_views(levels: &[Array4<f32>], b: usize) -> Vec<ArrayView3<'_, f32>> {
    levels.iter().map(|l| l.index_axis(Axis(0), b)).collect()
}

/// Fits the detector on training images (two streaming passes, see module docs).
pub fn fit_detector(
    extractor: &FeatureExtractor,
    params: &DetectorParams,
    train: &[PathBuf],
    batch_size: usize,
    progress: &Progress,
) -> Result<Detector> {
    if train.len() < 2 {
        bail!("at least 2 training images are needed, found {}", train.len());
    }
    let shapes = extractor.level_shapes();
    let per_image: usize = shapes.iter().map(|&(c, h, w)| c * h * w * 4).sum();
    let keep = per_image.saturating_mul(train.len()) <= FEATURE_CACHE_BYTES;
    let mut fitter = DetectorFitter::new(params.validate()?, &shapes)?;
    let mut cache: Vec<Vec<Array4<f32>>> = Vec::new();
    let bar = progress.bar(2 * train.len() as u64, "fit");
    for batch in extractor.extract_paths(train, batch_size) {
        let batch = batch?;
        for b in 0..batch.paths.len() {
            fitter
                .push_phase1(&image_views(&batch.levels, b))
                .with_context(|| format!("training image {}", batch.paths[b].display()))?;
            bar.inc(1);
        }
        if keep {
            cache.push(batch.levels);
        }
    }
    fitter.finish_phase1()?;
    let mut phase2 = |levels: &[Array4<f32>]| -> Result<()> {
        let n = levels.first().map_or(0, |l| l.len_of(Axis(0)));
        for b in 0..n {
            fitter.push_phase2(&image_views(levels, b))?;
            bar.inc(1);
        }
        Ok(())
    };
    if keep {
        for levels in &cache {
            phase2(levels)?;
        }
    } else {
        for batch in extractor.extract_paths(train, batch_size) {
            phase2(&batch?.levels)?;
        }
    }
    bar.finish_and_clear();
    Ok(fitter.finish()?)
}

/// One scored image.
pub struct ScoredImage {
    /// Its path.
    pub path: PathBuf,
    /// The image as the network saw it (resized RGB), for heatmap panels.
    pub image: image::RgbImage,
    /// Scores and map.
    pub score: DetectorScore,
}

/// Scores images in batches, calling `sink` for each in input order.
pub fn score_images(
    extractor: &FeatureExtractor,
    detector: &Detector,
    paths: &[PathBuf],
    batch_size: usize,
    map_size: u32,
    progress: &Progress,
    mut sink: impl FnMut(ScoredImage) -> Result<()>,
) -> Result<()> {
    let bar = progress.bar(paths.len() as u64, "score");
    let side = map_size as usize;
    for batch in extractor.extract_paths(paths, batch_size) {
        let batch = batch?;
        for (b, (path, image)) in batch.paths.iter().zip(batch.images).enumerate() {
            let score = detector
                .score(&image_views(&batch.levels, b), side, side)
                .with_context(|| format!("scoring {}", path.display()))?;
            sink(ScoredImage { path: path.clone(), image, score })?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}
