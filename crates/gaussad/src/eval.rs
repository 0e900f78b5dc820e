//! `gaussad eval`: per category, fit on train/good, score the test set, compute the MVTec
//! metrics and write results, tables, per-image scores, curves and heatmap panels.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mvtec_eval::{
    Dataset, ImageMetrics, PanelOptions, PixelMetricsAccumulator, PlotSpec, Report, ValidateOptions, plot_curves,
    write_atomic, write_png,
};
use ndarray::Array2;
use serde::Serialize;

use crate::model_file::{Model, Thresholds};
use crate::pipeline::{Resolved, fit_detector, score_images};
use crate::progress::Progress;

/// What to evaluate and where to write.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Dataset root (MVTec layout).
    pub dataset: PathBuf,
    /// Categories (empty = all).
    pub categories: Vec<String>,
    /// Output folder.
    pub out: PathBuf,
    /// Heatmap panels per defect type.
    pub panels: usize,
    /// Write each category's model file.
    pub save_models: bool,
}

/// One category's results, as written to results.json (metrics are fractions in [0, 1]).
#[derive(Clone, Debug, Serialize)]
pub struct CategoryResult {
    /// Image AUROC.
    pub image_auroc: f64,
    /// Pixel AUROC over every pixel of every test image.
    pub pixel_auroc: f64,
    /// AUPRO up to FPR 0.3 (official MVTec algorithm).
    pub aupro: f64,
    /// Best image F1 over thresholds.
    pub image_f1_max: f64,
    /// The image score threshold reaching it.
    pub image_f1_threshold: f64,
    /// Best pixel F1 over thresholds.
    pub pixel_f1_max: f64,
    /// The pixel score threshold reaching it.
    pub pixel_f1_threshold: f64,
    /// Wall-clock seconds to fit (both passes, backbone included).
    pub fit_seconds: f64,
    /// Wall-clock seconds to score the test set (backbone included).
    pub test_seconds: f64,
    /// Training images.
    pub n_train: usize,
    /// Test images.
    pub n_test: usize,
}

const COLUMNS: [&str; 7] =
    ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "pixel_f1_max", "fit_seconds", "test_seconds"];

impl CategoryResult {
    fn values(&self) -> [f64; 7] {
        [
            self.image_auroc,
            self.pixel_auroc,
            self.aupro,
            self.image_f1_max,
            self.pixel_f1_max,
            self.fit_seconds,
            self.test_seconds,
        ]
    }
}

struct Panel {
    name: String,
    image: image::RgbImage,
    mask: Option<Array2<bool>>,
    map: Array2<f64>,
}

/// Runs the evaluation; returns the Markdown table it also writes.
pub fn run_eval(opts: &EvalOptions, resolved: &Resolved, progress: Progress) -> Result<String> {
    let dataset = Dataset::open_mvtec(&opts.dataset)
        .with_context(|| format!("--dataset {}", opts.dataset.display()))?;
    let dataset = if opts.categories.is_empty() { dataset } else { dataset.filter(&opts.categories)? };
    if dataset.categories().is_empty() {
        bail!("--dataset {}: no category with train/good found", opts.dataset.display());
    }
    // Check every category's layout before any work, so a bad dataset fails fast.
    for cat in dataset.categories() {
        cat.validate(ValidateOptions { decode: false })
            .with_context(|| format!("category {} in {}", cat.name, opts.dataset.display()))?;
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    let extractor = resolved.extractor()?;
    let side = resolved.map_size() as usize;
    // masks get the images' geometry: resized to `resize`, then the same centre crop
    let mask_geometry = mvtec_eval::MaskGeometry::new(
        resolved.config.resize as usize,
        resolved.preprocess.center_crop.map(|c| c as usize),
    );
    let batch = resolved.config.batch_size;
    let mut report = Report::new();
    let mut results = BTreeMap::new();
    for cat in dataset.categories() {
        progress.say(format!("{}: fitting on {} images", cat.name, cat.train.len()));
        let t0 = Instant::now();
        let detector = fit_detector(&extractor, &resolved.detector, &cat.train, batch, &progress)
            .with_context(|| format!("fitting category {}", cat.name))?;
        let fit_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let paths: Vec<PathBuf> = cat.test.iter().map(|s| s.path.clone()).collect();
        let mut image_scores = Vec::with_capacity(paths.len());
        let mut pixels = PixelMetricsAccumulator::new();
        let mut panels: Vec<Panel> = Vec::new();
        let mut panels_per_defect: BTreeMap<String, usize> = BTreeMap::new();
        let mut score_lines = String::from("path,defect,label,image_score,pooled_score,map_max\n");
        let mut next = 0usize;
        let (mut map_lo, mut map_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        score_images(&extractor, &detector, &paths, batch, side as u32, &progress, |scored| {
            let sample = cat.test.get(next).context("internal: more scores than test images")?;
            next += 1;
            let mask = mvtec_eval::load_sample_mask(sample, mask_geometry)?;
            pixels.push(scored.score.map.view(), mask.as_ref().map(|m| m.view()))?;
            image_scores.push(scored.score.image);
            let map_max = scored.score.map.fold(f64::MIN, |a, &b| a.max(b));
            map_lo = map_lo.min(scored.score.map.fold(f64::INFINITY, |a, &b| a.min(b)));
            map_hi = map_hi.max(map_max);
            let rel = sample.path.strip_prefix(&cat.dir).unwrap_or(&sample.path);
            score_lines.push_str(&format!(
                "{},{},{},{:.9e},{:.9e},{:.9e}\n",
                rel.display(),
                sample.defect,
                u8::from(sample.is_anomalous),
                scored.score.image,
                scored.score.pooled,
                map_max
            ));
            let count = panels_per_defect.entry(sample.defect.clone()).or_insert(0);
            if *count < opts.panels {
                *count += 1;
                let stem = sample.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                panels.push(Panel {
                    name: format!("{}_{}_{}", cat.name, sample.defect, stem),
                    image: scored.image,
                    mask,
                    map: scored.score.map,
                });
            }
            Ok(())
        })
        .with_context(|| format!("scoring category {}", cat.name))?;
        let labels = cat.test_labels();
        let image = ImageMetrics::compute(&image_scores, &labels)
            .with_context(|| format!("image metrics of category {}", cat.name))?;
        let pixel = pixels.finish().with_context(|| format!("pixel metrics of category {}", cat.name))?;
        let test_seconds = t1.elapsed().as_secs_f64();

        let result = CategoryResult {
            image_auroc: image.auroc,
            pixel_auroc: pixel.auroc,
            aupro: pixel.aupro,
            image_f1_max: image.f1_max,
            image_f1_threshold: image.f1_threshold,
            pixel_f1_max: pixel.f1_max,
            pixel_f1_threshold: pixel.f1_threshold,
            fit_seconds,
            test_seconds,
            n_train: cat.train.len(),
            n_test: cat.test.len(),
        };
        for (col, v) in COLUMNS.iter().zip(result.values()) {
            report.set(&cat.name, col, v);
        }
        let scores_dir = opts.out.join("scores");
        std::fs::create_dir_all(&scores_dir).with_context(|| format!("cannot create {}", scores_dir.display()))?;
        write_atomic(scores_dir.join(format!("{}.csv", cat.name)), score_lines.as_bytes())?;
        let plots = opts.out.join("plots");
        let heatmaps = opts.out.join("heatmaps");
        for dir in [&plots, &heatmaps] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        plot_curves(
            plots.join(format!("{}_image_roc.png", cat.name)),
            &PlotSpec::roc(format!("{}: image ROC (AUROC {:.3})", cat.name, image.auroc)),
            &[("image", &image.roc)],
        )?;
        plot_curves(
            plots.join(format!("{}_pixel_roc.png", cat.name)),
            &PlotSpec::roc(format!("{}: pixel ROC (AUROC {:.3})", cat.name, pixel.auroc)),
            &[("pixel", &pixel.roc)],
        )?;
        plot_curves(
            plots.join(format!("{}_pro.png", cat.name)),
            &PlotSpec::pro(format!("{}: PRO (AUPRO@0.3 {:.3})", cat.name, pixel.aupro), pixel.pro_fpr_limit),
            &[("PRO", &pixel.pro)],
        )?;
        let panel_opts = PanelOptions {
            range: (map_lo as f32, map_hi as f32),
            threshold: result.pixel_f1_threshold as f32,
            gap: 4,
        };
        for p in panels {
            let img = image::DynamicImage::ImageRgb8(p.image);
            let map = p.map.mapv(|v| v as f32);
            let panel = mvtec_eval::heatmap_panel(&img, p.mask.as_ref().map(|m| m.view()), map.view(), &panel_opts)?;
            write_png(heatmaps.join(format!("{}.png", p.name)), &panel)?;
        }
        if opts.save_models {
            let thresholds = Thresholds {
                image: result.image_f1_threshold,
                pixel: result.pixel_f1_threshold,
                source: format!("F1-max on the test set of {}", cat.name),
            };
            let model = Model::new(resolved.config.clone(), extractor.identity(), thresholds, cat.train.len(), detector);
            let models = opts.out.join("models");
            std::fs::create_dir_all(&models).with_context(|| format!("cannot create {}", models.display()))?;
            model.save(&models.join(format!("{}.gaussad", cat.name)))?;
        }
        progress.say(format!(
            "{}: image AUROC {:.4}, pixel AUROC {:.4}, AUPRO {:.4} (fit {:.1}s, test {:.1}s)",
            cat.name, result.image_auroc, result.pixel_auroc, result.aupro, fit_seconds, test_seconds
        ));
        results.insert(cat.name.clone(), result);
    }
    let means = report.means();
    let mean: BTreeMap<&str, Option<f64>> = report.columns.iter().map(String::as_str).zip(means).collect();
    let json = serde_json::json!({
        "config": resolved.config,
        "backbone": extractor.identity(),
        "map_resolution": [side, side],
        "mask_resize": "nearest, defect where value > 127",
        "categories": results,
        "mean": mean,
    });
    write_atomic(opts.out.join("results.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let table = report.to_markdown();
    write_atomic(opts.out.join("results.md"), table.as_bytes())?;
    write_atomic(opts.out.join("results.csv"), report.to_csv().as_bytes())?;
    Ok(table)
}
