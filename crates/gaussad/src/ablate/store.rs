//! The result store of an output folder: `grid.json` (what the grid is) and one
//! `cells/<id>.json` per finished cell, each written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use backbone::BackboneIdentity;
use mvtec_eval::write_atomic;
use serde::{Deserialize, Serialize};

use super::plan::{CategoryIdentity, Plan, Shard};
use crate::config::MethodConfig;

/// Format tag of cell files.
pub const CELL_FORMAT: &str = "gaussad-ablation-cell/2";
/// Format tag of grid.json.
pub const GRID_FORMAT: &str = "gaussad-ablation-grid/2";

/// One finished cell (metrics are fractions in [0, 1]; times in seconds, wall clock).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// [`CELL_FORMAT`].
    pub format: String,
    /// The cell id (also the file name).
    pub id: String,
    /// Category.
    pub category: String,
    /// Method (checked: levels and size filled in).
    pub config: MethodConfig,
    /// The backbone weights used.
    pub backbone: BackboneIdentity,
    /// Training images.
    pub n_train: usize,
    /// Test images.
    pub n_test: usize,
    /// Image AUROC.
    pub image_auroc: f64,
    /// Pixel AUROC.
    pub pixel_auroc: f64,
    /// AUPRO up to FPR 0.3.
    pub aupro: f64,
    /// Image F1-max.
    pub image_f1_max: f64,
    /// Pixel F1-max.
    pub pixel_f1_max: f64,
    /// Seconds to fit the detector from cached features (both passes, no backbone).
    pub fit_seconds: f64,
    /// Seconds to score the test set from cached features and compute the metrics (no backbone).
    pub test_seconds: f64,
    /// Seconds the backbone took on the group's training images (shared by the group's cells,
    /// for all the levels the group needs).
    pub group_extract_train_seconds: f64,
    /// Same for the test images.
    pub group_extract_test_seconds: f64,
    /// Levels the group extracted.
    pub group_levels: Vec<usize>,
    /// Whether the group's features were spilled to disk.
    pub group_cache_on_disk: bool,
}

impl CellResult {
    /// The metric values that must agree between runs (times excluded).
    pub fn metrics(&self) -> [f64; 5] {
        [self.image_auroc, self.pixel_auroc, self.aupro, self.image_f1_max, self.pixel_f1_max]
    }
}

/// `grid.json`: what a run (or shard) was asked to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GridRecord {
    /// [`GRID_FORMAT`].
    pub format: String,
    /// The grid hash (cells and data); shards of one grid share it.
    pub grid_hash: String,
    /// Where the grid came from (file path or "built-in paper grid").
    pub source: String,
    /// The shard this folder ran (None for merged or unsharded folders).
    pub shard: Option<Shard>,
    /// The distinct configs in grid order, with the sweeps each belongs to.
    pub configs: Vec<ConfigRecord>,
    /// Categories with their data identity.
    pub categories: BTreeMap<String, CategoryIdentity>,
    /// Every cell of the grid: (config index, category), in run order.
    pub cells: Vec<(usize, String)>,
}

/// One config of [`GridRecord`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// The config (checked: levels and size filled in).
    pub config: MethodConfig,
    /// Sweeps it belongs to.
    pub sweeps: Vec<String>,
}

impl GridRecord {
    /// Of a plan.
    pub fn of(plan: &Plan, source: &str, shard: Option<Shard>) -> Self {
        Self {
            format: GRID_FORMAT.into(),
            grid_hash: plan.grid_hash.clone(),
            source: source.into(),
            shard,
            configs: plan
                .configs
                .iter()
                .zip(&plan.config_sweeps)
                .map(|(c, s)| ConfigRecord { config: c.config.clone(), sweeps: s.clone() })
                .collect(),
            categories: plan.datasets.clone(),
            cells: plan.cells.iter().map(|c| (c.config, c.category.clone())).collect(),
        }
    }

    /// Reads `DIR/grid.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("grid.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let rec: GridRecord = serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
        if rec.format != GRID_FORMAT {
            bail!("{}: format {:?}, expected {GRID_FORMAT:?}", path.display(), rec.format);
        }
        Ok(rec)
    }

    /// Writes `DIR/grid.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(dir.join("grid.json"), serde_json::to_string_pretty(self)?.as_bytes())?;
        Ok(())
    }
}

/// The cells folder of an output folder.
pub fn cells_dir(out: &Path) -> PathBuf {
    out.join("cells")
}

/// Reads the cell file `id`, if it exists and is a complete result with that id (anything
/// else counts as not done).
pub fn read_cell(out: &Path, id: &str) -> Option<CellResult> {
    let text = std::fs::read_to_string(cells_dir(out).join(format!("{id}.json"))).ok()?;
    let cell: CellResult = serde_json::from_str(&text).ok()?;
    (cell.format == CELL_FORMAT && cell.id == id).then_some(cell)
}

/// Writes a cell file atomically.
pub fn write_cell(out: &Path, cell: &CellResult) -> Result<()> {
    let dir = cells_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(dir.join(format!("{}.json", cell.id)), serde_json::to_string_pretty(cell)?.as_bytes())?;
    Ok(())
}

/// Every readable cell file of an output folder (unreadable or foreign files are skipped).
pub fn read_all_cells(out: &Path) -> Result<Vec<CellResult>> {
    let dir = cells_dir(out);
    let mut cells = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cells),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else { continue };
        if p.extension().and_then(|e| e.to_str()) != Some("json") || stem.starts_with('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let Ok(cell) = serde_json::from_str::<CellResult>(&text) else { continue };
        if cell.format == CELL_FORMAT && cell.id == stem {
            cells.push(cell);
        }
    }
    Ok(cells)
}
