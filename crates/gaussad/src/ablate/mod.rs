//! `gaussad ablate`: runs a grid of method configurations over a dataset (the paper's
//! ablations by default), resumably, optionally as one shard of several, and writes tables and
//! plots; `gaussad ablate merge` joins shards. See docs/ABLATIONS.md.
//!
//! - [`grid`]: the grid file format and the built-in paper grid.
//! - [`plan`]: cells (config x category), groups (backbone x size x category: one feature
//!   extraction each), stable cell ids, shards.
//! - [`store`]: `grid.json` and the per-cell result files.
//! - [`report`]: tables (Markdown, CSV, JSON) and plots.

pub mod cache;
pub mod grid;
pub mod plan;
pub mod report;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mvtec_eval::{Dataset, ImageMetrics, PixelMetricsAccumulator, ValidateOptions};
use scoring::DetectorFitter;

use crate::config::MethodConfig;
use crate::pipeline::Resolved;
use crate::progress::Progress;
use cache::{FeatureCache, Set};
use grid::Grid;
use plan::{Cell, Plan, Shard};
use store::{CELL_FORMAT, CellResult, GridRecord};

/// Default feature-cache budget per group: 2 GiB.
pub const DEFAULT_CACHE_BYTES: usize = 2 << 30;

/// What `gaussad ablate` runs.
#[derive(Clone, Debug)]
pub struct AblateOptions {
    /// Dataset root (MVTec layout).
    pub dataset: PathBuf,
    /// Grid file (None = the built-in paper grid).
    pub grid: Option<PathBuf>,
    /// Output folder.
    pub out: PathBuf,
    /// Categories (non-empty overrides the grid's).
    pub categories: Vec<String>,
    /// Which shard to run (None = all cells).
    pub shard: Option<Shard>,
    /// Feature-cache budget in bytes; above it features are spilled to OUT/cache.
    pub cache_bytes: usize,
    /// Keep spilled cache files after each group.
    pub keep_cache: bool,
    /// Overrides the grid's batch size.
    pub batch_size: Option<usize>,
    /// Overrides the grid's device.
    pub device: Option<String>,
}

impl AblateOptions {
    /// Options with the defaults (paper grid, all cells, 2 GiB cache).
    pub fn new(dataset: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            dataset: dataset.into(),
            grid: None,
            out: out.into(),
            categories: Vec::new(),
            shard: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
            keep_cache: false,
            batch_size: None,
            device: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Cells of the whole grid.
    pub grid_cells: usize,
    /// Cells this run (shard) is responsible for.
    pub shard_cells: usize,
    /// Of those, already finished before the run (skipped).
    pub skipped: usize,
    /// Ids of the cells computed by this run.
    pub computed: Vec<String>,
    /// Groups whose features were extracted.
    pub groups_extracted: usize,
    /// Cells of the grid with no result in the output folder after the run.
    pub missing: usize,
}

/// Loads the grid of `opts` (file or paper), with the batch size / device overrides.
fn load_grid(opts: &AblateOptions) -> Result<(Grid, String)> {
    let (mut grid, source) = match &opts.grid {
        Some(p) => (Grid::load(p)?, format!("grid file {}", p.display())),
        None => (Grid::paper(), "the built-in paper grid".to_string()),
    };
    if let Some(b) = opts.batch_size {
        grid.base.batch_size = b;
    }
    if let Some(d) = &opts.device {
        grid.base.device = d.clone();
    }
    grid.base.check_scalars()?;
    Ok((grid, source))
}

fn open_dataset(root: &Path) -> Result<Dataset> {
    let dataset = Dataset::open_mvtec(root).with_context(|| format!("--dataset {}", root.display()))?;
    for cat in dataset.categories() {
        cat.validate(ValidateOptions { decode: false })
            .with_context(|| format!("category {} in {}", cat.name, root.display()))?;
    }
    Ok(dataset)
}

/// Runs (this shard of) the grid, skipping finished cells, then writes the tables and plots
/// of everything the output folder holds.
pub fn run_ablation(opts: &AblateOptions, progress: &Progress) -> Result<RunSummary> {
    let (grid, source) = load_grid(opts)?;
    let dataset = open_dataset(&opts.dataset)?;
    let plan = Plan::new(&grid, &dataset, &opts.categories, &source)?;
    let shard = opts.shard.unwrap_or_default();
    let mine = plan.shard_groups(shard);

    // Weights identity per backbone (this also loads every backbone once, before any work).
    let mut weights: BTreeMap<String, String> = BTreeMap::new();
    for cell in plan.cells.iter().filter(|c| mine.contains(&c.group)) {
        if !weights.contains_key(&cell.config.backbone) {
            let r = Resolved::new(&cell.config.method(&plan.base))?;
            let sha = r.extractor()?.identity().weights_sha256;
            weights.insert(cell.config.backbone.clone(), sha);
        }
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    GridRecord::of(&plan, &source, opts.shard).save(&opts.out)?;

    let id_of = |c: &Cell| c.id(&plan.dataset_digest(&c.category), weights.get(&c.config.backbone).map_or("", String::as_str));
    let my_cells: Vec<&Cell> = plan.cells.iter().filter(|c| mine.contains(&c.group)).collect();
    let done: BTreeSet<usize> =
        my_cells.iter().filter(|c| store::read_cell(&opts.out, &id_of(c)).is_some()).map(|c| c.index).collect();
    let mut summary = RunSummary {
        grid_cells: plan.cells.len(),
        shard_cells: my_cells.len(),
        skipped: done.len(),
        ..RunSummary::default()
    };
    progress.say(format!(
        "ablate: {} cells in the grid ({} configs x {} categories, {} groups){}; {} to run, {} already done (skipped)",
        plan.cells.len(),
        plan.configs.len(),
        plan.datasets.len(),
        plan.groups.len(),
        opts.shard.map(|s| format!(", shard {s}: {} cells", my_cells.len())).unwrap_or_default(),
        my_cells.len() - done.len(),
        done.len()
    ));
    let bar = progress.bar(my_cells.len() as u64, "cells");
    bar.inc(done.len() as u64);
    for (g, key) in plan.groups.iter().enumerate() {
        if !mine.contains(&g) {
            continue;
        }
        let todo: Vec<&Cell> = my_cells.iter().filter(|c| c.group == g && !done.contains(&c.index)).copied().collect();
        let Some(first) = todo.first() else { continue };
        let cat = dataset.category(&key.category)?;
        let mut union: Vec<usize> = todo.iter().flat_map(|c| c.config.levels.iter().copied()).collect();
        union.sort_unstable();
        union.dedup();
        let group_cfg = MethodConfig { levels: union.clone(), ..first.config.method(&plan.base) };
        let group = Resolved::new(&group_cfg)?;
        let extractor = group.extractor()?;
        let side = group.map_size() as usize;
        // masks get the images' geometry: resized to `resize`, then the same centre crop
        let mask_geometry = mvtec_eval::MaskGeometry::new(
            group.config.resize as usize,
            group.preprocess.center_crop.map(|c| c as usize),
        );
        bar.suspend(|| {
            progress.say(format!(
                "group {}/{}: {} @ {} on {}: levels {:?} for {} cells",
                g + 1,
                plan.groups.len(),
                key.backbone,
                key.resize,
                key.category,
                union,
                todo.len()
            ))
        });
        let test_paths: Vec<PathBuf> = cat.test.iter().map(|s| s.path.clone()).collect();
        let spill = opts.out.join("cache").join(format!("group{}-{}", g + 1, key.category));
        let cache = FeatureCache::build(
            &extractor,
            &cat.train,
            &test_paths,
            plan.base.batch_size,
            opts.cache_bytes,
            &spill,
            opts.keep_cache,
            progress,
        )
        .with_context(|| format!("extracting features of category {}", cat.name))?;
        summary.groups_extracted += 1;
        let masks = cat
            .test
            .iter()
            .map(|s| mvtec_eval::load_sample_mask(s, mask_geometry))
            .collect::<mvtec_eval::Result<Vec<_>>>()?;
        let labels = cat.test_labels();
        let shapes = extractor.level_shapes();
        for cell in todo {
            let id = id_of(cell);
            let resolved = Resolved::new(&cell.config.method(&plan.base))?;
            let select: Vec<usize> = cell
                .config
                .levels
                .iter()
                .map(|l| union.iter().position(|u| u == l).context("internal: level not cached"))
                .collect::<Result<_>>()?;
            let cell_shapes: Vec<(usize, usize, usize)> = select.iter().filter_map(|&s| shapes.get(s).copied()).collect();
            let ctx = || format!("cell {} ({} on {})", id, cell.config.key(), cell.category);
            let t0 = Instant::now();
            let mut fitter = DetectorFitter::new(resolved.detector.validate()?, &cell_shapes).with_context(ctx)?;
            cache.for_each(Set::Train, &select, |_, v| Ok(fitter.push_phase1(v)?)).with_context(ctx)?;
            fitter.finish_phase1().with_context(ctx)?;
            cache.for_each(Set::Train, &select, |_, v| Ok(fitter.push_phase2(v)?)).with_context(ctx)?;
            let detector = fitter.finish().with_context(ctx)?;
            let fit_seconds = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let mut pixels = PixelMetricsAccumulator::new();
            let mut image_scores = Vec::with_capacity(labels.len());
            cache
                .for_each(Set::Test, &select, |i, v| {
                    let s = detector.score(v, side, side)?;
                    let mask = masks.get(i).context("internal: more test maps than masks")?;
                    pixels.push(s.map.view(), mask.as_ref().map(|m| m.view()))?;
                    image_scores.push(s.image);
                    Ok(())
                })
                .with_context(ctx)?;
            let image = ImageMetrics::compute(&image_scores, &labels).with_context(ctx)?;
            let pixel = pixels.finish().with_context(ctx)?;
            let test_seconds = t1.elapsed().as_secs_f64();
            let result = CellResult {
                format: CELL_FORMAT.into(),
                id: id.clone(),
                category: cell.category.clone(),
                config: cell.config.clone(),
                backbone: extractor.identity(),
                n_train: cat.train.len(),
                n_test: cat.test.len(),
                image_auroc: image.auroc,
                pixel_auroc: pixel.auroc,
                aupro: pixel.aupro,
                image_f1_max: image.f1_max,
                pixel_f1_max: pixel.f1_max,
                fit_seconds,
                test_seconds,
                group_extract_train_seconds: cache.extract_train_seconds,
                group_extract_test_seconds: cache.extract_test_seconds,
                group_levels: union.clone(),
                group_cache_on_disk: cache.on_disk(),
            };
            store::write_cell(&opts.out, &result)?;
            summary.computed.push(id);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let record = GridRecord::load(&opts.out)?;
    let cells = collect_cells(&record, std::slice::from_ref(&opts.out))?;
    summary.missing = record.cells.len() - cells.len();
    report::write_reports(&opts.out, &record, &cells)?;
    progress.say(format!(
        "ablate: {} computed, {} skipped; tables and plots in {}{}",
        summary.computed.len(),
        summary.skipped,
        opts.out.display(),
        if summary.missing > 0 { format!(" ({} cells of the grid not done here)", summary.missing) } else { String::new() }
    ));
    Ok(summary)
}

/// For each cell of the grid (in order), its result from the first folder holding one; cells
/// without a result are left out. Results of one backbone must share one weights identity.
pub fn collect_cells(record: &GridRecord, dirs: &[PathBuf]) -> Result<Vec<(usize, CellResult)>> {
    let mut found: BTreeMap<(String, String), CellResult> = BTreeMap::new();
    for dir in dirs {
        for c in store::read_all_cells(dir)? {
            let digest = record.categories.get(&c.category).map(|d| d.digest());
            let Some(digest) = digest else { continue };
            // Only results whose id matches this grid's data and their own weights.
            let cell = Cell { index: 0, config: c.config.clone(), category: c.category.clone(), group: 0 };
            if cell.id(&digest, &c.backbone.weights_sha256) != c.id {
                continue;
            }
            found.entry((c.config.key(), c.category.clone())).or_insert(c);
        }
    }
    let mut out = Vec::new();
    let mut shas: BTreeMap<String, String> = BTreeMap::new();
    for (i, (ci, cat)) in record.cells.iter().enumerate() {
        let Some(cfg) = record.configs.get(*ci) else { bail!("grid.json: cell {i} names config {ci}, which is missing") };
        if let Some(r) = found.get(&(cfg.config.key(), cat.clone())) {
            let sha = shas.entry(r.config.backbone.clone()).or_insert_with(|| r.backbone.weights_sha256.clone());
            if *sha != r.backbone.weights_sha256 {
                bail!(
                    "results for backbone {} come from different weights ({} and {}): the shards did not use the same weights file",
                    r.config.backbone,
                    sha,
                    r.backbone.weights_sha256
                );
            }
            out.push((*ci, r.clone()));
        }
    }
    Ok(out)
}

/// What `gaussad ablate merge` does.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// Output folder of the merged grid.
    pub out: PathBuf,
    /// Shard output folders.
    pub shards: Vec<PathBuf>,
    /// Write the tables even if some cells have no result.
    pub allow_partial: bool,
}

/// Joins shard folders into `out`: checks they ran the same grid, copies every cell result,
/// errors on missing cells (listing them) unless partial results are allowed, writes the
/// tables and plots. Returns the number of cells merged.
pub fn merge(opts: &MergeOptions, progress: &Progress) -> Result<usize> {
    if opts.shards.is_empty() {
        bail!("ablate merge: no shard folder given");
    }
    let mut record: Option<GridRecord> = None;
    for dir in &opts.shards {
        let r = GridRecord::load(dir).with_context(|| format!("shard folder {}", dir.display()))?;
        match &record {
            None => record = Some(r),
            Some(first) if first.grid_hash != r.grid_hash => bail!(
                "shard folder {} ran another grid or dataset (grid hash {}) than {} ({})",
                dir.display(),
                r.grid_hash,
                opts.shards.first().map(|p| p.display().to_string()).unwrap_or_default(),
                first.grid_hash
            ),
            Some(_) => {}
        }
    }
    let Some(mut record) = record else { bail!("ablate merge: no shard folder given") };
    record.shard = None;
    let cells = collect_cells(&record, &opts.shards)?;
    if cells.len() < record.cells.len() && !opts.allow_partial {
        let have: BTreeSet<(usize, &str)> = cells.iter().map(|(ci, c)| (*ci, c.category.as_str())).collect();
        let missing: Vec<String> = record
            .cells
            .iter()
            .filter(|(ci, cat)| !have.contains(&(*ci, cat.as_str())))
            .map(|(ci, cat)| {
                let cfg = record.configs.get(*ci).map(|c| c.config.key()).unwrap_or_default();
                format!("  {cat}: {cfg}")
            })
            .collect();
        bail!(
            "{} of {} cells have no result in the shard folders (run the missing shards, or pass --allow-partial):\n{}",
            missing.len(),
            record.cells.len(),
            missing.join("\n")
        );
    }
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    record.save(&opts.out)?;
    for (_, c) in &cells {
        store::write_cell(&opts.out, c)?;
    }
    report::write_reports(&opts.out, &record, &cells)?;
    progress.say(format!("merged {} cells from {} shard folders into {}", cells.len(), opts.shards.len(), opts.out.display()));
    Ok(cells.len())
}

/// `gaussad ablate` flags (and its `merge` subcommand).
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AblateArgs {
    /// `merge`: join shard output folders.
    #[command(subcommand)]
    pub command: Option<AblateCommand>,
    /// Dataset root (MVTec AD layout).
    #[arg(long, required = true)]
    pub dataset: Option<PathBuf>,
    /// Grid file (TOML, see docs/ABLATIONS.md); default: the paper's ablations.
    #[arg(long = "config", value_name = "GRID.toml")]
    pub grid: Option<PathBuf>,
    /// Output folder (cells/, grid.json, ablation.{json,csv,md}, plots/).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Categories (overrides the grid's `categories`): `--category a b`, `a,b` or repeated.
    #[arg(long = "category", num_args = 1.., value_delimiter = ',')]
    pub categories: Vec<String>,
    /// Run only part i of n of the grid (1-based), e.g. `--shard 2/4`; join with `ablate merge`.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    /// Feature cache budget per group in MiB; larger groups spill their features to OUT/cache/.
    #[arg(long, default_value_t = DEFAULT_CACHE_BYTES >> 20, value_name = "MiB")]
    pub cache_mib: usize,
    /// Keep spilled feature files in OUT/cache/ after each group.
    #[arg(long)]
    pub keep_cache: bool,
    /// Images per backbone batch (overrides the grid's `[method] batch-size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Device: cpu | cuda | cuda:N (overrides the grid's `[method] device`).
    #[arg(long)]
    pub device: Option<String>,
}

/// Subcommands of `gaussad ablate`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum AblateCommand {
    /// Join shard output folders (same grid) into one, with its tables and plots.
    Merge {
        /// Output folder of the merged grid.
        #[arg(long)]
        out: PathBuf,
        /// Shard output folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// Write the tables even if some cells have no result.
        #[arg(long)]
        allow_partial: bool,
    },
}

/// Runs `gaussad ablate ...` from its parsed flags.
pub fn run_cli(args: AblateArgs, progress: &Progress) -> Result<()> {
    if let Some(AblateCommand::Merge { out, shards, allow_partial }) = args.command {
        merge(&MergeOptions { out, shards, allow_partial }, progress)?;
        return Ok(());
    }
    let (Some(dataset), Some(out)) = (args.dataset, args.out) else { bail!("ablate: --dataset and --out are required") };
    let opts = AblateOptions {
        dataset,
        grid: args.grid,
        out,
        categories: args.categories,
        shard: args.shard,
        cache_bytes: args.cache_mib.saturating_mul(1 << 20),
        keep_cache: args.keep_cache,
        batch_size: args.batch_size,
        device: args.device,
    };
    let summary = run_ablation(&opts, progress)?;
    println!(
        "{} cells computed, {} skipped (already done), {} of {} grid cells missing in {}",
        summary.computed.len(),
        summary.skipped,
        summary.missing,
        summary.grid_cells,
        opts.out.display()
    );
    Ok(())
}
