//! `gaussad predict`: score images with a model file; heatmaps, verdicts, JSON lines.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use mvtec_eval::{PanelOptions, write_atomic, write_png};
use serde::Serialize;

use crate::config::{Origin, RunFlags, Sourced};
use crate::model_file::Model;
use crate::pipeline::score_images;
use crate::progress::Progress;

/// What to score and where to write.
#[derive(Clone, Debug)]
pub struct PredictOptions {
    /// Model file.
    pub model: PathBuf,
    /// Images.
    pub images: Vec<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Image threshold override.
    pub threshold: Option<f64>,
    /// Run options (batch size, device).
    pub run: RunFlags,
}

/// One image's verdict (one JSON line).
#[derive(Debug, Serialize)]
pub struct Prediction {
    /// The image.
    pub path: String,
    /// Image score (the model's image-score rule).
    pub image_score: f64,
    /// Largest pixel score.
    pub max_pixel_score: f64,
    /// Image threshold used.
    pub threshold: f64,
    /// image_score > threshold.
    pub anomalous: bool,
    /// Fraction of pixels above the model's pixel threshold.
    pub defect_area: f64,
    /// The heatmap panel written.
    pub heatmap: String,
}

/// Runs prediction; prints one JSON line per image on stdout.
pub fn run_predict(opts: &PredictOptions, progress: Progress) -> Result<()> {
    for p in &opts.images {
        if !p.is_file() {
            bail!("image {} does not exist or is not a file", p.display());
        }
    }
    let model = Model::load(&opts.model)?;
    let mut cfg = model.header.config.clone();
    opts.run.apply(&mut cfg)?;
    let checked = Sourced::new(cfg, Origin::Other(format!("from model {}", opts.model.display())))
        .check()
        .with_context(|| format!("model {}", opts.model.display()))?;
    let extractor = checked.extractor()?;
    let have = extractor.identity();
    if have.weights_sha256 != model.header.backbone.weights_sha256 || have.name != model.header.backbone.name {
        bail!(
            "model {} was fitted with backbone {} (weights sha256 {}), but the available weights are {} (sha256 {}): \
             refit the model or restore those weights",
            opts.model.display(),
            model.header.backbone.name,
            model.header.backbone.weights_sha256,
            have.name,
            have.weights_sha256
        );
    }
    let threshold = opts.threshold.unwrap_or(model.header.calibration.image_threshold);
    let pixel_threshold = model.header.calibration.pixel_threshold;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    let mut lines = String::new();
    let mut index = 0usize;
    score_images(&extractor, &model.detector, &opts.images, checked.batch_size(), checked.map_size(), &progress, |s| {
        let stem = s.path.file_stem().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
        let heatmap = opts.out.join(format!("{index:04}_{stem}.png"));
        index += 1;
        let map = s.score.map.mapv(|v| v as f32);
        // Colour range: from the lowest score of the map to twice the alarm threshold, so
        // colours mean the same across images scored by one model.
        let lo = map.fold(f32::INFINITY, |a, &b| a.min(b));
        let hi = (2.0 * pixel_threshold as f32).max(lo + f32::EPSILON);
        let opts = PanelOptions { range: (lo.min(pixel_threshold as f32), hi), threshold: pixel_threshold as f32, gap: 4 };
        let panel = mvtec_eval::heatmap_panel(&image::DynamicImage::ImageRgb8(s.image), None, map.view(), &opts)?;
        write_png(&heatmap, &panel)?;
        let n = s.score.map.len().max(1) as f64;
        let above = s.score.map.iter().filter(|&&v| v > pixel_threshold).count() as f64;
        let pred = Prediction {
            path: s.path.display().to_string(),
            image_score: s.score.image,
            max_pixel_score: s.score.map.fold(f64::MIN, |a, &b| a.max(b)),
            threshold,
            anomalous: s.score.image > threshold,
            defect_area: above / n,
            heatmap: heatmap.display().to_string(),
        };
        let line = serde_json::to_string(&pred)?;
        println!("{line}");
        lines.push_str(&line);
        lines.push('\n');
        Ok(())
    })?;
    write_atomic(opts.out.join("predictions.jsonl"), lines.as_bytes())?;
    Ok(())
}
