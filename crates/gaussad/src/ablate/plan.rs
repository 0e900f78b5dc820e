//! From a grid and a dataset to the ordered list of cells, their groups (one feature
//! extraction each), stable ids and shards.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use backbone::BackboneSpec;
use gaussian_fit::CovarianceEstimator;
use mvtec_eval::{Category, Dataset};
use opca_reduction::Selection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::grid::Grid;
use crate::config::MethodConfig;
use crate::pipeline::Resolved;

/// The method part of a cell: every key that can change a result (not batch size or device),
/// resolved against the backbone (levels and size filled in) and written canonically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellConfig {
    /// Backbone name or ONNX path.
    pub backbone: String,
    /// Square input size.
    pub resize: u32,
    /// Centre crop (0 = none).
    pub center_crop: u32,
    /// Levels, in order.
    pub levels: Vec<usize>,
    /// Reduction (`opca:T`, `pca:T`, `none`).
    pub reduction: String,
    /// Spatial model.
    pub spatial: String,
    /// Image score.
    pub image_score: String,
    /// Pixel PCA.
    pub pixel_pca: String,
    /// Covariance estimator.
    pub covariance: String,
    /// Blur sigma (0 = off).
    pub blur_sigma: f64,
}

impl CellConfig {
    /// The canonical text of this config (the deduplication key).
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The method config to run it with (batch size and device from `base`).
    pub fn method(&self, base: &MethodConfig) -> MethodConfig {
        MethodConfig {
            backbone: self.backbone.clone(),
            levels: self.levels.clone(),
            resize: self.resize,
            center_crop: self.center_crop,
            reduction: self.reduction.clone(),
            pixel_pca: self.pixel_pca.clone(),
            spatial: self.spatial.clone(),
            covariance: self.covariance.clone(),
            blur_sigma: self.blur_sigma,
            image_score: self.image_score.clone(),
            ..base.clone()
        }
    }

    /// Levels written `3-4-5` (for tables).
    pub fn levels_label(&self) -> String {
        self.levels.iter().map(ToString::to_string).collect::<Vec<_>>().join("-")
    }

    /// The reduction's selection.
    pub fn selection(&self) -> Option<Selection> {
        Selection::from_str(&self.reduction).ok()
    }

    fn from_resolved(r: &Resolved) -> Result<Self> {
        let c = &r.config;
        let sel = Selection::from_str(&c.reduction).map_err(|e| anyhow::anyhow!("{e}"))?;
        let cov = CovarianceEstimator::from_str(&c.covariance).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            backbone: c.backbone.clone(),
            resize: c.resize,
            center_crop: c.center_crop,
            levels: c.levels.clone(),
            reduction: sel.to_string(),
            spatial: r.detector.spatial.to_string(),
            image_score: r.detector.image_score.to_string(),
            pixel_pca: r.detector.pixel_pca.to_string(),
            covariance: cov.to_string(),
            blur_sigma: c.blur_sigma,
        })
    }
}

/// What identifies a category's data: its name and its image files (relative to the
/// category folder), so a copied dataset keeps its ids and a changed one does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryIdentity {
    /// Category name.
    pub name: String,
    /// Training images (relative paths).
    pub train: Vec<String>,
    /// Test images (relative paths) with their masks' presence.
    pub test: Vec<String>,
}

impl CategoryIdentity {
    /// Of a listed category.
    pub fn of(cat: &Category) -> Self {
        let rel = |p: &std::path::Path| p.strip_prefix(&cat.dir).unwrap_or(p).to_string_lossy().replace('\\', "/");
        Self {
            name: cat.name.clone(),
            train: cat.train.iter().map(|p| rel(p)).collect(),
            test: cat
                .test
                .iter()
                .map(|s| format!("{}{}", rel(&s.path), if s.mask.is_some() { " +mask" } else { "" }))
                .collect(),
        }
    }

    /// SHA-256 (hex) of the canonical text.
    pub fn digest(&self) -> String {
        sha256_hex(&serde_json::to_string(self).unwrap_or_default())
    }
}

/// SHA-256 of a string, in hex.
pub fn sha256_hex(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cell: a method config on one category.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Position in the grid's cell order.
    pub index: usize,
    /// The method.
    pub config: CellConfig,
    /// The category name.
    pub category: String,
    /// The group (feature extraction) it belongs to.
    pub group: usize,
}

impl Cell {
    /// The cell's stable id: hash of its config, its category's data and the backbone weights.
    pub fn id(&self, dataset_digest: &str, weights_sha256: &str) -> String {
        let text = format!("{}\n{}\n{}\n{}", self.config.key(), self.category, dataset_digest, weights_sha256);
        sha256_hex(&text).chars().take(20).collect()
    }
}

/// A feature-extraction group: one backbone, input size and crop on one category.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// Backbone.
    pub backbone: String,
    /// Input size.
    pub resize: u32,
    /// Centre crop.
    pub center_crop: u32,
    /// Category.
    pub category: String,
}

/// The whole plan.
#[derive(Debug)]
pub struct Plan {
    /// The base config (batch size, device).
    pub base: MethodConfig,
    /// Cells in run order (grouped).
    pub cells: Vec<Cell>,
    /// Groups, in run order.
    pub groups: Vec<GroupKey>,
    /// Per category: its identity digest.
    pub datasets: BTreeMap<String, CategoryIdentity>,
    /// The distinct configs, in grid order (for tables).
    pub configs: Vec<CellConfig>,
    /// Per config (index into `configs`): the sweeps (names or numbers) it belongs to.
    pub config_sweeps: Vec<Vec<String>>,
    /// The grid's hash: configs, categories and data (not weights, not batch size or device).
    pub grid_hash: String,
}

impl Plan {
    /// Resolves every config of `grid` (levels against the backbone, weights present) and
    /// orders the cells by group. `categories` (non-empty) overrides the grid's.
    pub fn new(grid: &Grid, dataset: &Dataset, categories: &[String], source: &str) -> Result<Plan> {
        let wanted = if categories.is_empty() { &grid.categories } else { categories };
        let dataset = dataset.clone().filter(wanted).with_context(|| format!("{source}: key `categories`"))?;
        if dataset.categories().is_empty() {
            bail!("the dataset has no category with train/good");
        }
        let mut configs: Vec<CellConfig> = Vec::new();
        let mut config_sweeps: Vec<Vec<String>> = Vec::new();
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        let mut checked_backbones = BTreeSet::new();
        for (s, cfg) in grid.configs() {
            let sweep = grid.sweeps.get(s).and_then(|w| w.name.clone()).unwrap_or_else(|| format!("{}", s + 1));
            if checked_backbones.insert(cfg.backbone.clone()) {
                // Fails here, before any work, when weights are missing.
                crate::pipeline::Resolved::new(&MethodConfig { backbone: cfg.backbone.clone(), ..MethodConfig::default() })
                    .with_context(|| format!("{source}: key `backbones`"))?;
            }
            if let Ok(spec) = BackboneSpec::from_str(&cfg.backbone)
                && let Some(bad) = cfg.levels.iter().find(|&&l| l >= spec.num_levels())
            {
                bail!(
                    "{source}: key `levels`: level {bad} does not exist for {} (levels 0..{})",
                    cfg.backbone,
                    spec.num_levels() - 1
                );
            }
            let resolved = Resolved::new(&cfg).with_context(|| format!("{source}: a cell of sweep {sweep}"))?;
            let cc = CellConfig::from_resolved(&resolved)?;
            let k = cc.key();
            let i = *keys.entry(k).or_insert_with(|| {
                configs.push(cc);
                config_sweeps.push(Vec::new());
                configs.len() - 1
            });
            if let Some(v) = config_sweeps.get_mut(i)
                && !v.contains(&sweep)
            {
                v.push(sweep);
            }
        }
        let datasets: BTreeMap<String, CategoryIdentity> =
            dataset.categories().iter().map(|c| (c.name.clone(), CategoryIdentity::of(c))).collect();
        // Groups in first-appearance order: backbones/sizes as the grid lists them, categories sorted.
        let mut groups: Vec<GroupKey> = Vec::new();
        let mut cells: Vec<Cell> = Vec::new();
        let mut seen = BTreeMap::new();
        for cfg in &configs {
            for cat in dataset.categories() {
                let key = GroupKey {
                    backbone: cfg.backbone.clone(),
                    resize: cfg.resize,
                    center_crop: cfg.center_crop,
                    category: cat.name.clone(),
                };
                let g = *seen.entry(key.clone()).or_insert_with(|| {
                    groups.push(key);
                    groups.len() - 1
                });
                cells.push(Cell { index: 0, config: cfg.clone(), category: cat.name.clone(), group: g });
            }
        }
        cells.sort_by_key(|c| c.group);
        for (i, c) in cells.iter_mut().enumerate() {
            c.index = i;
        }
        let hash_text = serde_json::to_string(&(
            cells.iter().map(|c| (c.config.key(), &c.category)).collect::<Vec<_>>(),
            datasets.values().map(CategoryIdentity::digest).collect::<Vec<_>>(),
        ))?;
        Ok(Plan { base: grid.base.clone(), cells, groups, datasets, configs, config_sweeps, grid_hash: sha256_hex(&hash_text) })
    }

    /// The groups shard `i` of `n` (1-based) runs: whole groups, each to the shard with the
    /// fewest cells so far (ties: the lowest shard), in group order - deterministic, and no
    /// group's features are extracted by two shards.
    pub fn shard_groups(&self, shard: Shard) -> BTreeSet<usize> {
        let mut load = vec![0usize; shard.n];
        let mut mine = BTreeSet::new();
        for g in 0..self.groups.len() {
            let size = self.cells.iter().filter(|c| c.group == g).count();
            let (best, _) = load.iter().enumerate().min_by_key(|&(i, &l)| (l, i)).unwrap_or((0, &0));
            if let Some(l) = load.get_mut(best) {
                *l += size;
            }
            if best + 1 == shard.i {
                mine.insert(g);
            }
        }
        mine
    }

    /// The identity digest of a category.
    pub fn dataset_digest(&self, category: &str) -> String {
        self.datasets.get(category).map(CategoryIdentity::digest).unwrap_or_default()
    }

    /// Index of a config in [`Plan::configs`].
    pub fn config_index(&self, cfg: &CellConfig) -> Option<usize> {
        self.configs.iter().position(|c| c == cfg)
    }
}

/// `--shard i/n`: run the i-th of n parts (1-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which part (1..=n).
    pub i: usize,
    /// How many parts.
    pub n: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { i: 1, n: 1 }
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, b) = s.split_once('/').with_context(|| format!("--shard {s:?}: expected i/n, e.g. 1/4"))?;
        let i: usize = a.trim().parse().with_context(|| format!("--shard {s:?}: {a:?} is not a number"))?;
        let n: usize = b.trim().parse().with_context(|| format!("--shard {s:?}: {b:?} is not a number"))?;
        if n == 0 || i == 0 || i > n {
            bail!("--shard {s:?}: need 1 <= i <= n");
        }
        Ok(Self { i, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.i, self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { i: 2, n: 3 });
        for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
