//! From a grid and a dataset to the ordered list of cells, their groups (one feature
//! extraction each), stable ids and shards.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use mvtec_eval::{Category, Dataset};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::grid::Grid;
use crate::config::{CheckedConfig, MethodConfig, OptionKind};

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

/// The id of a cell: hash of its method (see [`MethodConfig::method_key`]), its category's
/// data and the backbone weights.
pub fn cell_id(config: &MethodConfig, category: &str, dataset_digest: &str, weights_sha256: &str) -> String {
    let text = format!("{}\n{}\n{}\n{}", config.method_key(), category, dataset_digest, weights_sha256);
    sha256_hex(&text).chars().take(20).collect()
}

/// One cell: a method config on one category.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Position in the grid's cell order.
    pub index: usize,
    /// Index of its config in [`Plan::configs`].
    pub config: usize,
    /// The category name.
    pub category: String,
    /// The group (feature extraction) it belongs to.
    pub group: usize,
}

/// A feature-extraction group: one setting of the feature options on one category.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// The feature options (see [`MethodConfig::kind_key`]).
    pub features: String,
    /// Category.
    pub category: String,
}

/// The whole plan.
#[derive(Debug)]
pub struct Plan {
    /// The distinct configs, in grid order, checked (levels and size filled in; run options
    /// from the grid's base).
    pub configs: Vec<CheckedConfig>,
    /// Per config (index into `configs`): the sweeps (names or numbers) it belongs to.
    pub config_sweeps: Vec<Vec<String>>,
    /// Cells in run order (grouped).
    pub cells: Vec<Cell>,
    /// Groups, in run order.
    pub groups: Vec<GroupKey>,
    /// Per category: its identity.
    pub datasets: BTreeMap<String, CategoryIdentity>,
    /// The grid's hash: configs, categories and data (not weights, not run options).
    pub grid_hash: String,
}

impl Plan {
    /// Checks every config of `grid` (levels against the backbone, weights present) and
    /// orders the cells by group. `categories` (non-empty) overrides the grid's.
    pub fn new(grid: &Grid, dataset: &Dataset, categories: &[String], source: &str) -> Result<Plan> {
        let wanted = if categories.is_empty() { &grid.categories } else { categories };
        let dataset = dataset.clone().filter(wanted).with_context(|| format!("{source}: key `categories`"))?;
        if dataset.categories().is_empty() {
            bail!("the dataset has no category with train/good");
        }
        let mut configs: Vec<CheckedConfig> = Vec::new();
        let mut config_sweeps: Vec<Vec<String>> = Vec::new();
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        for (s, cfg) in grid.configs().with_context(|| source.to_string())? {
            let sweep = grid.sweeps.get(s).and_then(|w| w.name.clone()).unwrap_or_else(|| format!("{}", s + 1));
            let checked = cfg.check().with_context(|| format!("{source}: a cell of sweep {sweep}"))?;
            let k = checked.config.method_key();
            let i = *keys.entry(k).or_insert_with(|| {
                configs.push(checked);
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
        // Groups in first-appearance order: feature settings as the grid lists them, categories sorted.
        let mut groups: Vec<GroupKey> = Vec::new();
        let mut cells: Vec<Cell> = Vec::new();
        let mut seen = BTreeMap::new();
        for (ci, cfg) in configs.iter().enumerate() {
            for cat in dataset.categories() {
                let key = GroupKey { features: cfg.config.kind_key(OptionKind::Features), category: cat.name.clone() };
                let g = *seen.entry(key.clone()).or_insert_with(|| {
                    groups.push(key);
                    groups.len() - 1
                });
                cells.push(Cell { index: 0, config: ci, category: cat.name.clone(), group: g });
            }
        }
        cells.sort_by_key(|c| c.group);
        for (i, c) in cells.iter_mut().enumerate() {
            c.index = i;
        }
        let hash_text = serde_json::to_string(&(
            cells.iter().map(|c| (configs.get(c.config).map(|k| k.config.method_key()), &c.category)).collect::<Vec<_>>(),
            datasets.values().map(CategoryIdentity::digest).collect::<Vec<_>>(),
        ))?;
        Ok(Plan { configs, config_sweeps, cells, groups, datasets, grid_hash: sha256_hex(&hash_text) })
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

/// The most shards a grid may be split into.
const MAX_SHARDS: usize = 10_000;

impl FromStr for Shard {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let (a, b) = s.split_once('/').with_context(|| format!("--shard {s:?}: expected i/n, e.g. 1/4"))?;
        let i: usize = a.trim().parse().with_context(|| format!("--shard {s:?}: {a:?} is not a number"))?;
        let n: usize = b.trim().parse().with_context(|| format!("--shard {s:?}: {b:?} is not a number"))?;
        if n == 0 || i == 0 || i > n || n > MAX_SHARDS {
            bail!("--shard {s:?}: need 1 <= i <= n <= {MAX_SHARDS}");
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
        for bad in ["0/2", "3/2", "1", "a/b", "1/0", "1/99999999999"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
