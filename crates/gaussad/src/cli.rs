//! Command-line interface: parses flags and dispatches to the subcommands.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::config::{CheckedConfig, MethodFlags, RunFlags};
use crate::eval::{EvalOptions, run_eval};
use crate::features::{CacheOptions, FeatureCache};
use crate::model_file::Model;
use crate::predict::{PredictOptions, run_predict};
use crate::progress::Progress;

/// Unsupervised visual anomaly detection with Gaussian models of deep features.
#[derive(Parser, Debug)]
#[command(name = "gaussad", version, about)]
pub struct Cli {
    /// No progress bars or status lines (for scripts).
    #[arg(long, global = true)]
    pub quiet: bool,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fit a model on defect-free images and calibrate its alarm thresholds out of fold.
    Fit {
        /// Good (defect-free) training images: files, folders (recursive) or glob patterns.
        #[arg(long, required = true, num_args = 1..)]
        train: Vec<PathBuf>,
        /// Extra good images for calibration only (not fitted on): files, folders or globs.
        #[arg(long, num_args = 1..)]
        val: Vec<PathBuf>,
        /// Model file to write.
        #[arg(long)]
        out: PathBuf,
        /// Method flags.
        #[command(flatten)]
        method: MethodFlags,
    },
    /// Fit per category on train/good, score the test set, write results, tables, plots, heatmaps.
    Eval {
        /// Dataset root (MVTec AD layout: CATEGORY/train/good, CATEGORY/test/*, CATEGORY/ground_truth/*).
        #[arg(long)]
        dataset: PathBuf,
        /// Categories to run (default: all found): `--category a b`, `--category a,b` or repeated.
        #[arg(long = "category", num_args = 1.., value_delimiter = ',')]
        categories: Vec<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Heatmap panels to write per defect type (0 = none).
        #[arg(long, default_value_t = 2)]
        panels: usize,
        /// Also write each category's fitted model (thresholds calibrated out of fold on its training images).
        #[arg(long)]
        save_models: bool,
        /// Method flags.
        #[command(flatten)]
        method: MethodFlags,
    },
    /// Score images with a fitted model: heatmaps, verdicts, JSON lines on stdout.
    Predict {
        /// Model file.
        #[arg(long)]
        model: PathBuf,
        /// Images to score.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Output folder for heatmaps and predictions.jsonl.
        #[arg(long)]
        out: PathBuf,
        /// Override the model's image threshold.
        #[arg(long)]
        threshold: Option<f64>,
        /// Run options.
        #[command(flatten)]
        run: RunFlags,
    },
    /// Time the backbone's forward pass: median milliseconds per image over --iters batches
    /// (the method flags choose backbone, input size, levels, batch size and device).
    BenchBackbone {
        /// Timed batches (after one warm-up batch).
        #[arg(long, default_value_t = 10)]
        iters: usize,
        /// Method flags.
        #[command(flatten)]
        method: MethodFlags,
    },
    /// Check that backbone weights are ImageNet-pretrained: classify two bundled photos
    /// (a cat, an espresso); prints the top 5 of each, exits non-zero when they are missed.
    CheckPretrained {
        /// Backbone name (e.g. efficientnet-lite0, efficientnet-b4, resnet18).
        #[arg(long)]
        backbone: String,
        /// ONNX or PyTorch `.pth` weights file with its classifier (default: the embedded weights, efficientnet-lite0 only).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Also write the report as JSON to this file (written on failure too).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Device: cpu | cuda | cuda:N.
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Run a grid of method configurations (default: the paper's ablations); `ablate merge` joins shards.
    Ablate(crate::ablate::AblateArgs),
    /// Print what a model file holds.
    Inspect {
        /// Model file.
        model: PathBuf,
    },
    /// Fit and evaluate EfficientNet-Lite0 on the embedded dev dataset (no download).
    Demo {
        /// Output folder.
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Dataset root (default: the dev set committed in the repository).
        #[arg(long)]
        dataset: Option<PathBuf>,
        /// Method flags.
        #[command(flatten)]
        method: MethodFlags,
    },
}

/// The embedded development dataset (committed under datasets/dev).
pub fn embedded_dataset() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/dev"))
}

/// Parses `args` and runs the command.
pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion) => {
            print!("{e}");
            return Ok(());
        }
        Err(e) => {
            let text = e.render().to_string();
            bail!("{}", text.trim_start_matches("error: ").trim_end())
        }
    };
    let progress = Progress::new(cli.quiet);
    match cli.command {
        Command::Fit { train, val, out, method } => fit(&train, &val, &out, &method, progress),
        Command::Eval { dataset, categories, out, panels, save_models, method } => {
            let checked = method.check()?;
            run_eval(&EvalOptions { dataset, categories, out, panels, save_models }, &checked, progress).map(|_| ())
        }
        Command::Predict { model, images, out, threshold, run } => {
            run_predict(&PredictOptions { model, images, out, threshold, run }, progress)
        }
        Command::Inspect { model } => inspect(&model),
        Command::CheckPretrained { backbone, weights, json, device } => {
            check_pretrained(&backbone, weights, json.as_deref(), &device)
        }
        Command::Ablate(args) => crate::ablate::run_cli(args, &progress),
        Command::BenchBackbone { iters, method } => bench_backbone(&method.check()?, iters),
        Command::Demo { out, dataset, method } => {
            let dataset = dataset.unwrap_or_else(embedded_dataset);
            if !dataset.is_dir() {
                bail!("the embedded dataset is missing at {} (pass --dataset DIR)", dataset.display());
            }
            let checked = method.check()?;
            progress.say(format!(
                "demo: {} on {} ({}), writing to {}",
                checked.config.backbone,
                dataset.display(),
                checked.config.method_key(),
                out.display()
            ));
            let table = run_eval(
                &EvalOptions { dataset, categories: Vec::new(), out, panels: 2, save_models: false },
                &checked,
                progress,
            )?;
            println!("{table}");
            Ok(())
        }
    }
}

fn fit(train: &[PathBuf], val: &[PathBuf], out: &std::path::Path, method: &MethodFlags, progress: Progress) -> Result<()> {
    let checked = method.check()?;
    let paths = crate::inputs::collect_images(train, "--train")?;
    let val = if val.is_empty() { Vec::new() } else { crate::inputs::collect_images(val, "--val")? };
    if paths.len() < scoring::MIN_TRAINING_IMAGES {
        bail!("at least {} training images are needed, found {}", scoring::MIN_TRAINING_IMAGES, paths.len());
    }
    let c = &checked.config;
    let folds = c.folds.0.min(paths.len());
    crate::pipeline::check_calibration_size(paths.len() + val.len(), folds, c.target_fpr.0)?;
    let extractor = checked.extractor()?;
    let cache = FeatureCache::build(&extractor, &paths, &val, &CacheOptions::new(checked.batch_size()), &progress)?;
    let select: Vec<usize> = (0..checked.levels().len()).collect();
    progress.say(format!("fitting on {} images, calibrating with {folds} folds", paths.len()));
    let detector = crate::pipeline::fit(&cache, &select, &checked.detector, |_| true)?;
    let calibration = crate::pipeline::calibrate(
        &cache,
        &select,
        &checked.detector,
        &detector,
        checked.map_size(),
        folds,
        c.target_fpr.0,
        c.pixel_fpr.0,
        true,
    )?;
    progress.say(format!(
        "thresholds: image {:.4} (target false-alarm rate {}, promised {:.4}), pixel {:.4} (target {})",
        calibration.image_threshold, calibration.target_fpr, calibration.promised_fpr, calibration.pixel_threshold, calibration.pixel_fpr
    ));
    let model = Model::new(checked.config.clone(), extractor.identity(), calibration, paths.len(), detector);
    model.save(out).with_context(|| format!("cannot write model {}", out.display()))?;
    progress.say(format!("model written to {} ({} training images)", out.display(), paths.len()));
    Ok(())
}

/// Times `iters` forward passes of a fixed batch (after one warm-up) and prints the median
/// milliseconds per image. The input is a deterministic pattern, already normalised.
fn bench_backbone(checked: &CheckedConfig, iters: usize) -> Result<()> {
    if iters == 0 {
        bail!("--iters must be at least 1");
    }
    let extractor = checked.extractor()?;
    let side = checked.map_size();
    let batch = checked.batch_size();
    let input = ndarray::Array4::from_shape_fn((batch, 3, side, side), |(b, c, i, j)| {
        (((b * 7 + c * 5 + i * 3 + j) % 17) as f32 / 8.0 - 1.0) * 0.9
    });
    extractor.extract(input.view())?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = std::time::Instant::now();
        extractor.extract(input.view())?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{} @ {side}, batch {batch}, levels {}, {} iterations: median {:.1} ms per batch, {:.2} ms per image",
        checked.config.backbone,
        checked.config.levels,
        iters,
        median,
        median / batch as f64
    );
    Ok(())
}

fn inspect(path: &std::path::Path) -> Result<()> {
    let model = Model::load(path)?;
    let h = &model.header;
    println!("model file: {}", path.display());
    println!("written by: {}", h.written_by);
    println!("backbone:   {:?}", h.backbone);
    println!("training images: {}", h.n_train);
    let c = &h.calibration;
    println!(
        "thresholds: image {:.6} (target false-alarm rate {}, promised {:.4}), pixel {:.6} (target {})",
        c.image_threshold, c.target_fpr, c.promised_fpr, c.pixel_threshold, c.pixel_fpr
    );
    println!(
        "calibration: {}-fold out-of-fold scores of {} training images + {} validation images; {}",
        c.folds, c.n_train, c.n_val, c.rule
    );
    println!("config:\n{}", toml::to_string_pretty(&h.config).unwrap_or_default());
    for (i, (level, shape)) in h.config.levels.as_slice().iter().zip(model.detector.level_shapes()).enumerate() {
        let Some(l) = model.detector.levels().get(i) else { break };
        println!(
            "level {level}: features {:?}, image model keeps {} of {} dims (shrinkage {:.4}), pixel model keeps {} dims",
            shape,
            l.image.reduction.output_dim(),
            l.image.reduction.input_dim(),
            l.image.gaussian.shrinkage(),
            l.pixel.reduction.output_dim(),
        );
    }
    Ok(())
}

/// `check-pretrained`: classifies the bundled photos, prints the top 5, writes the JSON
/// report (when asked, also on failure), fails when the weights are not ImageNet-trained.
fn check_pretrained(
    name: &str,
    weights: Option<PathBuf>,
    json: Option<&std::path::Path>,
    device: &str,
) -> Result<()> {
    let spec: backbone::BackboneSpec = name.parse()?;
    let source = match weights {
        Some(path) => backbone::WeightsSource::from_file(path),
        None => backbone::WeightsSource::Embedded,
    };
    let classifier = backbone::Classifier::imagenet(spec, source, device.parse()?)?;
    let report = backbone::pretrained::check(&classifier)?;
    print!("{}", report.summary());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
    }
    report.require()?;
    Ok(())
}
