//! The ablation grid: which method configurations to run, read from a TOML grid file or the
//! built-in paper grid ([`Grid::paper`], which is `xtask/ablations/paper.toml`).
//!
//! A grid file holds:
//! - `categories = [..]` (optional; default: every category of the dataset),
//! - `[method]` (optional): any key of a method config file (`gaussad eval --config`), the
//!   base every cell starts from (e.g. `batch-size`, `covariance`, `device`),
//! - axes at the top level (one cross product) and/or in `[[sweep]]` tables (each its own cross
//!   product, with an optional `name`). An axis is any option key with a list of its values
//!   (`reduction = ["opca:0.05", "none"]`, `levels = [[3, 4, 5, 6, 7], [4]]`,
//!   `center-crop = [0, 200]`; `_` for `-` and plural forms such as `reductions` are accepted).
//!   A missing axis takes the base's value. The cells are the union of all cross products,
//!   duplicates removed.
//!
//! ```
//! use gaussad::ablate::grid::Grid;
//!
//! let grid = Grid::from_toml_str(
//!     r#"
//!     reduction = ["opca:0.05", "none"]
//!     levels = [[3, 4, 5, 6, 7], [4]]
//!     "#,
//! )?;
//! assert_eq!(grid.configs()?.len(), 4);
//! assert!(Grid::from_toml_str("reduction = [\"opca:7\"]").is_err());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::config::{Axis, MAX_GRID_CONFIGS, MethodConfig, axes_of_table, expand_axes};

/// The built-in paper grid (the same text as `xtask/ablations/paper.toml`).
pub const PAPER_GRID: &str = include_str!("../../../../xtask/ablations/paper.toml");

/// One cross product of axis values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sweep {
    /// Optional label (shown in grid.json and the tables).
    pub name: Option<String>,
    /// The axes, in option declaration order.
    pub axes: Vec<Axis>,
}

/// A whole grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Categories to run (empty = all of the dataset).
    pub categories: Vec<String>,
    /// The base configuration every cell starts from.
    pub base: MethodConfig,
    /// The sweeps (cross products); cells = their union.
    pub sweeps: Vec<Sweep>,
}

impl Grid {
    /// The paper's ablations (see `xtask/ablations/paper.toml` and docs/ABLATIONS.md).
    pub fn paper() -> Result<Grid> {
        Self::from_toml_str(PAPER_GRID).context("the built-in paper grid")
    }

    /// Reads a grid file; every error names the file (and the key where there is one).
    pub fn load(path: &Path) -> Result<Grid> {
        let text = crate::files::read_text_capped(path, 1 << 20)
            .with_context(|| format!("cannot read grid file {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("invalid grid file {}", path.display()))
    }

    /// Parses grid TOML (see the module docs) and checks every value and the grid's size.
    pub fn from_toml_str(text: &str) -> Result<Grid> {
        let mut table: toml::Table = toml::from_str(text)?;
        let categories: Vec<String> = match table.remove("categories") {
            Some(v) => v.try_into().context("key `categories`: expected a list of category names")?,
            None => Vec::new(),
        };
        if categories.iter().any(String::is_empty) {
            bail!("key `categories`: an empty category name");
        }
        let base: MethodConfig = match table.remove("method") {
            Some(v) => v.try_into().context("table `[method]`")?,
            None => MethodConfig::default(),
        };
        let sweep_tables = match table.remove("sweep") {
            Some(toml::Value::Array(items)) => items,
            Some(_) => bail!("key `sweep`: write sweeps as `[[sweep]]` tables"),
            None => Vec::new(),
        };
        let mut sweeps = Vec::new();
        if !table.is_empty() || sweep_tables.is_empty() {
            sweeps.push(Sweep { name: None, axes: axes_of_table(table, &base).context("top-level keys")? });
        }
        for (i, item) in sweep_tables.into_iter().enumerate() {
            let toml::Value::Table(mut t) = item else { bail!("`[[sweep]]` number {}: not a table", i + 1) };
            let name = match t.remove("name") {
                Some(toml::Value::String(s)) => Some(s),
                Some(_) => bail!("`[[sweep]]` number {}: key `name` must be a string", i + 1),
                None => None,
            };
            let label = name.clone().map_or_else(|| format!("number {}", i + 1), |n| format!("`{n}`"));
            if t.contains_key("categories") {
                bail!("`[[sweep]]` {label}: key `categories` belongs at the top level of the grid file");
            }
            let axes = axes_of_table(t, &base).with_context(|| format!("`[[sweep]]` {label}"))?;
            sweeps.push(Sweep { name, axes });
        }
        let grid = Grid { categories, base, sweeps };
        let total = grid.sweeps.iter().try_fold(0usize, |n, s| {
            s.axes.iter().try_fold(1usize, |m, (_, v)| m.checked_mul(v.len())).and_then(|m| n.checked_add(m))
        });
        if total.is_none_or(|n| n > MAX_GRID_CONFIGS) {
            bail!("the grid expands to more than {MAX_GRID_CONFIGS} configurations; split it into several grids");
        }
        Ok(grid)
    }

    /// Every method configuration of the grid (cross products in order, not yet checked against
    /// the backbone or deduplicated), each with the index of the sweep it came from.
    pub fn configs(&self) -> Result<Vec<(usize, MethodConfig)>> {
        let mut out = Vec::new();
        for (s, sweep) in self.sweeps.iter().enumerate() {
            out.extend(expand_axes(&self.base, &sweep.axes)?.into_iter().map(|c| (s, c)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", Grid::from_toml_str(text).unwrap_err())
    }

    #[test]
    fn top_level_keys_form_one_cross_product() {
        let g = Grid::from_toml_str("reductions = [\"opca:0.05\", \"none\"]\nlevels = [[3,4], [4]]\n").unwrap();
        let c = g.configs().unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].1.text("reduction").unwrap(), "opca:0.05");
        assert_eq!(c[0].1.levels.as_slice(), &[3, 4]);
        assert_eq!(c[3].1.text("reduction").unwrap(), "none");
        assert_eq!(c[3].1.levels.as_slice(), &[4]);
        assert!(c.iter().all(|(_, m)| m.text("spatial").unwrap() == "per-position"));
    }

    #[test]
    fn sweeps_use_the_method_table_as_base() {
        let text = "categories = [\"a\"]\n[method]\nbatch-size = 4\nspatial = \"shared\"\n\
                    [[sweep]]\nname = \"v\"\nreductions = [\"none\"]\n[[sweep]]\nspatial = [\"per-position\"]\n";
        let g = Grid::from_toml_str(text).unwrap();
        assert_eq!(g.categories, vec!["a"]);
        let c = g.configs().unwrap();
        assert_eq!(c.len(), 2);
        let t = |i: usize, k: &str| c[i].1.text(k).unwrap();
        assert_eq!((t(0, "reduction"), t(0, "spatial"), t(0, "batch-size")), ("none".into(), "shared".into(), "4".into()));
        assert_eq!((t(1, "reduction"), t(1, "spatial")), ("opca:0.05".into(), "per-position".into()));
    }

    #[test]
    fn every_option_is_an_axis() {
        let g = Grid::from_toml_str("center-crop = [0, 200]\nblur_sigmas = [0, 4]\ncovariance = [\"empirical\"]").unwrap();
        let c = g.configs().unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[1].1.text("center-crop").unwrap(), "0");
        assert_eq!(c[1].1.text("blur-sigma").unwrap(), "4");
        assert_eq!(c[2].1.text("center-crop").unwrap(), "200");
        assert!(c.iter().all(|(_, m)| m.text("covariance").unwrap() == "empirical"));
    }

    #[test]
    fn an_empty_file_is_one_default_cell() {
        let g = Grid::from_toml_str("").unwrap();
        let c = g.configs().unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].1, MethodConfig::default());
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("reductoins = [\"none\"]").contains("reductoins"));
        let e = err("reductions = [\"opca:2\"]");
        assert!(e.contains("reductions") && e.contains("opca:2"), "{e}");
        let e = err("[[sweep]]\nname = \"x\"\nspatial = []");
        assert!(e.contains("spatial") && e.contains("empty") && e.contains("`x`"), "{e}");
        let e = err("levels = [[3, 3]]");
        assert!(e.contains("levels"), "{e}");
        let e = err("[method]\nfoo = 1");
        assert!(e.contains("foo") && e.contains("[method]"), "{e}");
    }

    #[test]
    fn a_grid_of_millions_of_cells_is_refused_quickly() {
        let values: Vec<String> = (0..1000).map(|i| format!("\"ridge:{i}\"")).collect();
        let text = format!("covariance = [{}]\nblur-sigma = [{}]", values.join(","), (0..100).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        let e = err(&text);
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn the_paper_grid_has_every_table_of_the_paper() {
        let g = Grid::paper().unwrap();
        let names: Vec<&str> = g.sweeps.iter().filter_map(|s| s.name.as_deref()).collect();
        for t in ["table 1-2", "figure 5", "table 4", "table 5"] {
            assert!(names.iter().any(|n| n.starts_with(t)), "{t} missing from {names:?}");
        }
        assert_eq!(g.base.text("image-score").unwrap(), "pooled");
        assert_eq!(g.base.backbone, "efficientnet-b4");
        let configs = g.configs().unwrap();
        let table4 = g.sweeps.iter().position(|s| s.name.as_deref().is_some_and(|n| n.starts_with("table 4"))).unwrap();
        let t4: Vec<&MethodConfig> = configs.iter().filter(|(s, _)| *s == table4).map(|(_, c)| c).collect();
        assert!(t4.iter().all(|c| c.backbone == "resnet18" && c.levels.as_slice() == [0, 1, 2, 3]));
        let reductions: Vec<String> = t4.iter().map(|c| c.text("reduction").unwrap()).collect();
        assert!(reductions.contains(&"none".to_string()) && reductions.iter().filter(|r| r.starts_with("opca:")).count() >= 3);
        let table5 = g.sweeps.iter().position(|s| s.name.as_deref().is_some_and(|n| n.starts_with("table 5"))).unwrap();
        let levels: Vec<Vec<usize>> =
            configs.iter().filter(|(s, _)| *s == table5).map(|(_, c)| c.levels.as_slice().to_vec()).collect();
        assert_eq!(levels, (0..=8).map(|l| vec![l]).collect::<Vec<_>>());
    }
}
