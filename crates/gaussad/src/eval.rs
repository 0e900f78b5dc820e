//! `gaussad eval`: per category, fit on train/good, score the test set, compute the MVTec
//! metrics and write results, tables, per-image scores, curves and heatmap panels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use mvtec_eval::{Dataset, PanelOptions, PlotSpec, Report, ValidateOptions, plot_curves, write_atomic, write_png};
use ndarray::Array2;
use serde::Serialize;

use crate::config::CheckedConfig;
use crate::features::{CacheOptions, FeatureCache, Set};
use crate::model_file::Model;
use crate::pipeline::{TestTruth, calibrate, evaluate};
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
    /// Best image F1 over thresholds (picked on the test set itself).
    pub image_f1_max: f64,
    /// The image score threshold reaching it.
    pub image_f1_threshold: f64,
    /// Best pixel F1 over thresholds (picked on the test set itself).
    pub pixel_f1_max: f64,
    /// The pixel score threshold reaching it.
    pub pixel_f1_threshold: f64,
    /// Wall-clock seconds to fit: the backbone on the training images plus the model fit.
    pub fit_seconds: f64,
    /// Wall-clock seconds to test: the backbone on the test images plus scoring and metrics.
    pub test_seconds: f64,
    /// The verdicts on the test set at the thresholds calibrated out of fold on the training
    /// images (what `fit` would store): the operating point a deployment would see.
    pub calibrated: CalibratedOperatingPoint,
    /// The phases behind those two numbers.
    pub timings: Timings,
    /// Training images.
    pub n_train: usize,
    /// Test images.
    pub n_test: usize,
}

/// Test-set rates at calibrated thresholds.
#[derive(Clone, Debug, Serialize)]
pub struct CalibratedOperatingPoint {
    /// Image threshold (out-of-fold, for `target_fpr`).
    pub image_threshold: f64,
    /// The target false-alarm rate it was set for.
    pub target_fpr: f64,
    /// The rate the rule promises for images like the training images, k / (n + 1).
    pub promised_fpr: f64,
    /// Share of the good test images scored above the threshold.
    pub false_alarm_rate: f64,
    /// Share of the defective test images scored above the threshold.
    pub detection_rate: f64,
    /// Good test images.
    pub n_good: usize,
    /// Defective test images.
    pub n_defective: usize,
    /// Pixel threshold (out-of-fold, for `pixel_fpr`).
    pub pixel_threshold: f64,
    /// The target pixel false-alarm rate.
    pub pixel_fpr: f64,
    /// Folds used.
    pub folds: usize,
}

/// Wall-clock seconds per phase of one category.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Decoding, resizing and the backbone on the training images.
    pub extract_train: f64,
    /// Fitting the detector from the cached features.
    pub fit: f64,
    /// Out-of-fold calibration of the thresholds (one fit per fold).
    pub calibrate: f64,
    /// Decoding, resizing and the backbone on the test images.
    pub extract_test: f64,
    /// Scoring the test set and computing the metrics.
    pub score: f64,
    /// Writing per-image scores, plots, panels and models.
    pub outputs: f64,
}

const COLUMNS: [&str; 9] = [
    "image_auroc",
    "pixel_auroc",
    "aupro",
    "image_f1_max",
    "pixel_f1_max",
    "false_alarm_rate",
    "detection_rate",
    "fit_seconds",
    "test_seconds",
];

impl CategoryResult {
    fn values(&self) -> [f64; 9] {
        [
            self.image_auroc,
            self.pixel_auroc,
            self.aupro,
            self.image_f1_max,
            self.pixel_f1_max,
            self.calibrated.false_alarm_rate,
            self.calibrated.detection_rate,
            self.fit_seconds,
            self.test_seconds,
        ]
    }
}

struct Panel {
    name: String,
    index: usize,
    mask: Option<Array2<bool>>,
    map: Array2<f64>,
}

/// Opens an MVTec-layout dataset, keeps `categories` (all when empty) and checks every
/// category's layout before any work, so a bad dataset fails fast.
pub fn open_dataset(root: &std::path::Path, categories: &[String]) -> Result<Dataset> {
    let dataset = Dataset::open_mvtec(root).with_context(|| format!("--dataset {}", root.display()))?;
    let dataset = if categories.is_empty() { dataset } else { dataset.filter(categories)? };
    if dataset.categories().is_empty() {
        bail!("--dataset {}: no category with train/good found", root.display());
    }
    for cat in dataset.categories() {
        cat.validate(ValidateOptions { decode: false })
            .with_context(|| format!("category {} in {}", cat.name, root.display()))?;
    }
    Ok(dataset)
}

/// Runs the evaluation; returns the Markdown table it also writes.
pub fn run_eval(opts: &EvalOptions, checked: &CheckedConfig, progress: Progress) -> Result<String> {
    let dataset = open_dataset(&opts.dataset, &opts.categories)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    let extractor = checked.extractor()?;
    let side = checked.map_size();
    let select: Vec<usize> = (0..checked.levels().len()).collect();
    let mut report = Report::new();
    let mut results = BTreeMap::new();
    for cat in dataset.categories() {
        progress.say(format!("{}: {} training and {} test images", cat.name, cat.train.len(), cat.test.len()));
        let truth = TestTruth::load(cat, checked)?;
        let test_paths: Vec<PathBuf> = cat.test.iter().map(|s| s.path.clone()).collect();
        let cache_opts = CacheOptions { keep_test_images: opts.panels > 0, ..CacheOptions::new(checked.batch_size()) };
        let cache = FeatureCache::build(&extractor, &cat.train, &test_paths, &cache_opts, &progress)
            .with_context(|| format!("extracting features of category {}", cat.name))?;

        let mut panels: Vec<Panel> = Vec::new();
        let mut panels_per_defect: BTreeMap<String, usize> = BTreeMap::new();
        let mut score_lines = String::from("path,defect,label,image_score,pooled_score,map_max\n");
        let mut test_scores = Vec::with_capacity(cat.test.len());
        let (mut map_lo, mut map_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let evaluation = evaluate(&cache, &select, &checked.detector, side, &truth, |i, score| {
            let sample = cat.test.get(i).context("internal: more scores than test images")?;
            let map_max = score.map.fold(f64::MIN, |a, &b| a.max(b));
            test_scores.push(score.image);
            map_lo = map_lo.min(score.map.fold(f64::INFINITY, |a, &b| a.min(b)));
            map_hi = map_hi.max(map_max);
            let rel = sample.path.strip_prefix(&cat.dir).unwrap_or(&sample.path);
            score_lines.push_str(&format!(
                "{},{},{},{:.9e},{:.9e},{:.9e}\n",
                rel.display(),
                sample.defect,
                u8::from(sample.is_anomalous),
                score.image,
                score.pooled,
                map_max
            ));
            let count = panels_per_defect.entry(sample.defect.clone()).or_insert(0);
            if *count < opts.panels {
                *count += 1;
                let stem = sample.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                panels.push(Panel {
                    name: format!("{}_{}_{}", cat.name, sample.defect, stem),
                    index: i,
                    mask: truth.masks.get(i).cloned().flatten(),
                    map: score.map.clone(),
                });
            }
            Ok(())
        })
        .with_context(|| format!("category {}", cat.name))?;
        let (image, pixel) = (&evaluation.image, &evaluation.pixel);
        let t_cal = std::time::Instant::now();
        let c = &checked.config;
        let calibration = calibrate(
            &cache,
            &select,
            &checked.detector,
            &evaluation.detector,
            side,
            c.folds.0,
            c.target_fpr.0,
            c.pixel_fpr.0,
            false,
        )
        .with_context(|| format!("calibrating the thresholds of category {}", cat.name))?;
        let calibrate_seconds = t_cal.elapsed().as_secs_f64();
        let rate = |anomalous: bool| {
            let (hit, n) = test_scores.iter().zip(&truth.labels).filter(|(_, l)| **l == anomalous).fold((0usize, 0usize), |(h, n), (s, _)| {
                (h + usize::from(*s > calibration.image_threshold), n + 1)
            });
            (if n == 0 { f64::NAN } else { hit as f64 / n as f64 }, n)
        };
        let ((false_alarm_rate, n_good), (detection_rate, n_defective)) = (rate(false), rate(true));
        let calibrated = CalibratedOperatingPoint {
            image_threshold: calibration.image_threshold,
            target_fpr: calibration.target_fpr,
            promised_fpr: calibration.promised_fpr,
            false_alarm_rate,
            detection_rate,
            n_good,
            n_defective,
            pixel_threshold: calibration.pixel_threshold,
            pixel_fpr: calibration.pixel_fpr,
            folds: calibration.folds,
        };

        let t_out = std::time::Instant::now();
        let scores_dir = opts.out.join("scores");
        let plots = opts.out.join("plots");
        let heatmaps = opts.out.join("heatmaps");
        for dir in [&scores_dir, &plots, &heatmaps] {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        write_atomic(scores_dir.join(format!("{}.csv", cat.name)), score_lines.as_bytes())?;
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
        let panel_opts =
            PanelOptions { range: (map_lo as f32, map_hi as f32), threshold: pixel.f1_threshold as f32, gap: 4 };
        for p in panels {
            let img = cache.test_image(p.index).context("internal: test image not kept")?;
            let img = image::DynamicImage::ImageRgb8(img.clone());
            let map = p.map.mapv(|v| v as f32);
            let panel = mvtec_eval::heatmap_panel(&img, p.mask.as_ref().map(|m| m.view()), map.view(), &panel_opts)?;
            write_png(heatmaps.join(format!("{}.png", p.name)), &panel)?;
        }
        if opts.save_models {
            let model = Model::new(
                checked.config.clone(),
                extractor.identity(),
                calibration.clone(),
                cat.train.len(),
                evaluation.detector.clone(),
            );
            let models = opts.out.join("models");
            std::fs::create_dir_all(&models).with_context(|| format!("cannot create {}", models.display()))?;
            model.save(&models.join(format!("{}.gaussad", cat.name)))?;
        }
        let timings = Timings {
            extract_train: cache.extract_train_seconds,
            fit: evaluation.fit_seconds,
            calibrate: calibrate_seconds,
            extract_test: cache.extract_test_seconds,
            score: evaluation.score_seconds,
            outputs: t_out.elapsed().as_secs_f64(),
        };
        let result = CategoryResult {
            image_auroc: image.auroc,
            pixel_auroc: pixel.auroc,
            aupro: pixel.aupro,
            image_f1_max: image.f1_max,
            image_f1_threshold: image.f1_threshold,
            pixel_f1_max: pixel.f1_max,
            pixel_f1_threshold: pixel.f1_threshold,
            fit_seconds: timings.extract_train + timings.fit,
            test_seconds: timings.extract_test + timings.score,
            calibrated,
            timings,
            n_train: cache.len(Set::Train),
            n_test: cache.len(Set::Test),
        };
        for (col, v) in COLUMNS.iter().zip(result.values()) {
            report.set(&cat.name, col, v);
        }
        progress.say(format!(
            "{}: image AUROC {:.4}, pixel AUROC {:.4}, AUPRO {:.4}; at the calibrated threshold {:.0} % false alarms, \
             {:.0} % detected (fit {:.1}s, test {:.1}s)",
            cat.name,
            result.image_auroc,
            result.pixel_auroc,
            result.aupro,
            100.0 * result.calibrated.false_alarm_rate,
            100.0 * result.calibrated.detection_rate,
            result.fit_seconds,
            result.test_seconds
        ));
        results.insert(cat.name.clone(), result);
    }
    let means = report.means();
    let mean: BTreeMap<&str, Option<f64>> = report.columns.iter().map(String::as_str).zip(means).collect();
    let json = serde_json::json!({
        "config": checked.config,
        "backbone": extractor.identity(),
        "map_resolution": [side, side],
        "mask_resize": "nearest to the input size, then the images' centre crop; defect where value > 127",
        "categories": results,
        "mean": mean,
    });
    write_atomic(opts.out.join("results.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    let table = format!(
        "{}\nF1-max columns: the best F1 over thresholds picked on the test set itself (optimistic). \
         false_alarm_rate / detection_rate: share of good / defective test images above the image threshold \
         calibrated out of fold on the training images (target false-alarm rate {}), as `fit` would store it.\n",
        report.to_markdown(),
        checked.config.target_fpr
    );
    write_atomic(opts.out.join("results.md"), table.as_bytes())?;
    write_atomic(opts.out.join("results.csv"), report.to_csv().as_bytes())?;
    Ok(table)
}
