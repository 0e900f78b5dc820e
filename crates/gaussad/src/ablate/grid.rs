//! The ablation grid: which method configurations to run, read from a TOML grid file or the
//! built-in paper grid ([`Grid::paper`]).
//!
//! A grid file holds:
//! - `categories = [..]` (optional; default: every category of the dataset),
//! - `[method]` (optional): any key of a method config file (`gaussad eval --config`), the
//!   base every cell starts from (e.g. `batch-size`, `covariance`, `device`),
//! - axis keys at the top level (one cross product) and/or `[[sweep]]` tables (each its own
//!   cross product, with an optional `name`). A missing axis key takes the base's value.
//!   The cells are the union of all cross products, duplicates removed.
//!
//! Axis keys: `backbones`, `reductions` (`"opca:0.05"`, `"pca:0.95"`, `"none"`), `levels` (a
//! list of level lists, e.g. `[[3, 4, 5, 6, 7], [4]]`), `spatial`, `resize` (0 = the backbone's
//! size), `image_scores`, `covariances`, `pixel_pcas`, `blur_sigmas`.
//!
//! ```
//! use gaussad::ablate::grid::Grid;
//!
//! let grid = Grid::from_toml_str(
//!     r#"
//!     reductions = ["opca:0.05", "none"]
//!     levels = [[3, 4, 5, 6, 7], [4]]
//!     "#,
//! )?;
//! assert_eq!(grid.configs().len(), 4);
//! assert!(Grid::from_toml_str("reductions = [\"opca:7\"]").is_err());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use gaussian_fit::CovarianceEstimator;
use opca_reduction::Selection;
use scoring::{ImageScore, PixelPca, SpatialModel};
use serde::{Deserialize, Serialize};

use crate::config::MethodConfig;

/// The values one sweep takes along each axis (`None` = the base config's single value).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axes {
    /// Backbone names (or ONNX paths).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backbones: Option<Vec<String>>,
    /// Reductions: `opca:T`, `pca:T`, `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reductions: Option<Vec<String>>,
    /// Level lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<Vec<usize>>>,
    /// Spatial models: `per-position`, `shared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spatial: Option<Vec<String>>,
    /// Square input sizes (0 = the backbone's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<Vec<u32>>,
    /// Image scores: `pooled`, `map-max`.
    #[serde(skip_serializing_if = "Option::is_none", alias = "image-scores")]
    pub image_scores: Option<Vec<String>>,
    /// Covariance estimators: `ledoit-wolf`, `empirical`, `ridge:EPS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covariances: Option<Vec<String>>,
    /// Pixel PCA: `per-level`, `from-pooled`.
    #[serde(skip_serializing_if = "Option::is_none", alias = "pixel-pcas")]
    pub pixel_pcas: Option<Vec<String>>,
    /// Blur sigmas in pixels (0 = off).
    #[serde(skip_serializing_if = "Option::is_none", alias = "blur-sigmas")]
    pub blur_sigmas: Option<Vec<f64>>,
}

/// One cross product of axis values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// Optional label (shown in grid.json).
    pub name: Option<String>,
    /// The axis values.
    pub axes: Axes,
}

/// A whole grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Categories to run (empty = all of the dataset).
    pub categories: Vec<String>,
    /// The base configuration every cell starts from.
    pub base: MethodConfig,
    /// The sweeps (cross products); cells = their union.
    pub sweeps: Vec<Sweep>,
}

impl Default for Grid {
    fn default() -> Self {
        Self::paper()
    }
}

fn strings(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_string()).collect())
}

impl Grid {
    /// The paper's one-factor-at-a-time ablations around its method (EfficientNet-B4, levels
    /// 3-7, opca:0.05, per-position, pooled score): variance thresholds (figure 5), each single
    /// level 0..8 (tables 4-5), backbones, input resolution, spatial model. This is what
    /// `xtask/ablations/paper.toml` writes out.
    pub fn paper() -> Grid {
        let b4 = strings(&["efficientnet-b4"]);
        let sweep = |name: &str, axes: Axes| Sweep { name: Some(name.into()), axes };
        Grid {
            categories: Vec::new(),
            base: MethodConfig::default(),
            sweeps: vec![
                sweep(
                    "variance",
                    Axes {
                        backbones: b4.clone(),
                        reductions: strings(&[
                            "opca:0.01", "opca:0.05", "opca:0.1", "opca:0.2", "opca:0.5", "pca:0.95", "pca:0.99", "none",
                        ]),
                        ..Axes::default()
                    },
                ),
                sweep("levels", Axes { backbones: b4.clone(), levels: Some((0..=8).map(|l| vec![l]).collect()), ..Axes::default() }),
                sweep(
                    "backbones",
                    Axes { backbones: strings(&["efficientnet-b4", "resnet18", "efficientnet-lite0"]), ..Axes::default() },
                ),
                sweep("resolution", Axes { backbones: b4.clone(), resize: Some(vec![224, 380]), ..Axes::default() }),
                sweep("spatial", Axes { backbones: b4, spatial: strings(&["per-position", "shared"]), ..Axes::default() }),
            ],
        }
    }

    /// Reads a grid file; every error names the file (and the key where there is one).
    pub fn load(path: &Path) -> Result<Grid> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read grid file {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("invalid grid file {}", path.display()))
    }

    /// Parses grid TOML (see the module docs) and checks every value's syntax.
    pub fn from_toml_str(text: &str) -> Result<Grid> {
        let mut table: toml::Table = toml::from_str(text)?;
        let categories: Vec<String> = match table.remove("categories") {
            Some(v) => v.try_into().context("key `categories`: expected a list of category names")?,
            None => Vec::new(),
        };
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
            let axes: Axes = toml::Value::Table(table).try_into().context("top-level keys")?;
            sweeps.push(Sweep { name: None, axes });
        }
        for (i, item) in sweep_tables.into_iter().enumerate() {
            let toml::Value::Table(mut t) = item else { bail!("`[[sweep]]` number {}: not a table", i + 1) };
            let name = match t.remove("name") {
                Some(toml::Value::String(s)) => Some(s),
                Some(_) => bail!("`[[sweep]]` number {}: key `name` must be a string", i + 1),
                None => None,
            };
            let label = name.clone().unwrap_or_else(|| format!("number {}", i + 1));
            if t.contains_key("categories") {
                bail!("`[[sweep]]` {label}: key `categories` belongs at the top level of the grid file");
            }
            let axes: Axes = toml::Value::Table(t).try_into().with_context(|| format!("`[[sweep]]` {label}"))?;
            sweeps.push(Sweep { name, axes });
        }
        let grid = Grid { categories, base, sweeps };
        grid.check()?;
        Ok(grid)
    }

    /// Checks list sizes and value syntax (levels against the backbone happen when the cells
    /// are resolved).
    pub fn check(&self) -> Result<()> {
        if self.categories.iter().any(String::is_empty) {
            bail!("key `categories`: an empty category name");
        }
        for (i, sweep) in self.sweeps.iter().enumerate() {
            let label = sweep.name.clone().map_or_else(|| format!("sweep {}", i + 1), |n| format!("sweep `{n}`"));
            check_axes(&sweep.axes).with_context(|| label)?;
        }
        Ok(())
    }

    /// Every method configuration of the grid (cross products in order, not yet resolved or
    /// deduplicated), each with the index of the sweep it came from.
    pub fn configs(&self) -> Vec<(usize, MethodConfig)> {
        let mut out = Vec::new();
        for (s, sweep) in self.sweeps.iter().enumerate() {
            let a = &sweep.axes;
            let b = &self.base;
            let or = |v: &Option<Vec<String>>, d: &String| v.clone().unwrap_or_else(|| vec![d.clone()]);
            let backbones = or(&a.backbones, &b.backbone);
            let reductions = or(&a.reductions, &b.reduction);
            let spatial = or(&a.spatial, &b.spatial);
            let scores = or(&a.image_scores, &b.image_score);
            let covs = or(&a.covariances, &b.covariance);
            let pcas = or(&a.pixel_pcas, &b.pixel_pca);
            let levels = a.levels.clone().unwrap_or_else(|| vec![b.levels.clone()]);
            let resize = a.resize.clone().unwrap_or_else(|| vec![b.resize]);
            let blurs = a.blur_sigmas.clone().unwrap_or_else(|| vec![b.blur_sigma]);
            for bb in &backbones {
                for rs in &resize {
                    for lv in &levels {
                        for rd in &reductions {
                            for sp in &spatial {
                                for is in &scores {
                                    for cv in &covs {
                                        for pp in &pcas {
                                            for bl in &blurs {
                                                out.push((
                                                    s,
                                                    MethodConfig {
                                                        backbone: bb.clone(),
                                                        resize: *rs,
                                                        levels: lv.clone(),
                                                        reduction: rd.clone(),
                                                        spatial: sp.clone(),
                                                        image_score: is.clone(),
                                                        covariance: cv.clone(),
                                                        pixel_pca: pp.clone(),
                                                        blur_sigma: *bl,
                                                        ..b.clone()
                                                    },
                                                ));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn nonempty<T>(key: &str, v: &Option<Vec<T>>) -> Result<()> {
    if v.as_ref().is_some_and(Vec::is_empty) {
        bail!("key `{key}` is an empty list (omit the key to use the default)");
    }
    Ok(())
}

fn each<E: std::fmt::Display, T>(key: &str, v: &Option<Vec<String>>, parse: impl Fn(&str) -> Result<T, E>, expected: &str) -> Result<()> {
    nonempty(key, v)?;
    for s in v.iter().flatten() {
        if let Err(e) = parse(s) {
            bail!("key `{key}`: {s:?} is not valid ({e}); expected {expected}");
        }
    }
    Ok(())
}

fn check_axes(a: &Axes) -> Result<()> {
    nonempty("backbones", &a.backbones)?;
    if a.backbones.iter().flatten().any(String::is_empty) {
        bail!("key `backbones`: an empty backbone name");
    }
    each("reductions", &a.reductions, Selection::from_str, "opca:T, pca:T or none with T in (0, 1]")?;
    each("spatial", &a.spatial, SpatialModel::from_str, "per-position or shared")?;
    each("image_scores", &a.image_scores, ImageScore::from_str, "pooled or map-max")?;
    each("covariances", &a.covariances, CovarianceEstimator::from_str, "ledoit-wolf, empirical or ridge:EPS")?;
    each("pixel_pcas", &a.pixel_pcas, PixelPca::from_str, "per-level or from-pooled")?;
    nonempty("levels", &a.levels)?;
    for lv in a.levels.iter().flatten() {
        if lv.is_empty() {
            bail!("key `levels`: an empty level list (write the levels, e.g. [3, 4, 5, 6, 7])");
        }
        let mut seen = lv.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != lv.len() {
            bail!("key `levels`: a level is listed twice in {lv:?}");
        }
    }
    nonempty("resize", &a.resize)?;
    for &r in a.resize.iter().flatten() {
        if r != 0 && !(32..=4096).contains(&r) {
            bail!("key `resize`: {r} is not 0 (the backbone's size) or between 32 and 4096");
        }
    }
    nonempty("blur_sigmas", &a.blur_sigmas)?;
    for &s in a.blur_sigmas.iter().flatten() {
        if !s.is_finite() || s < 0.0 {
            bail!("key `blur_sigmas`: {s} is not a finite number >= 0");
        }
    }
    Ok(())
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
        let c = g.configs();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].1.reduction, "opca:0.05");
        assert_eq!(c[0].1.levels, vec![3, 4]);
        assert_eq!(c[3].1.reduction, "none");
        assert_eq!(c[3].1.levels, vec![4]);
        assert!(c.iter().all(|(_, m)| m.spatial == "per-position"));
    }

    #[test]
    fn sweeps_use_the_method_table_as_base() {
        let text = "categories = [\"a\"]\n[method]\nbatch-size = 4\nspatial = \"shared\"\n\
                    [[sweep]]\nname = \"v\"\nreductions = [\"none\"]\n[[sweep]]\nspatial = [\"per-position\"]\n";
        let g = Grid::from_toml_str(text).unwrap();
        assert_eq!(g.categories, vec!["a"]);
        let c = g.configs();
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].1.reduction.as_str(), c[0].1.spatial.as_str(), c[0].1.batch_size), ("none", "shared", 4));
        assert_eq!((c[1].1.reduction.as_str(), c[1].1.spatial.as_str()), ("opca:0.05", "per-position"));
    }

    #[test]
    fn an_empty_file_is_one_default_cell() {
        let g = Grid::from_toml_str("").unwrap();
        assert_eq!(g.configs().len(), 1);
        assert_eq!(g.configs()[0].1, MethodConfig::default());
    }

    #[test]
    fn errors_name_the_key() {
        assert!(err("reductoins = [\"none\"]").contains("reductoins"));
        let e = err("reductions = [\"opca:2\"]");
        assert!(e.contains("reductions") && e.contains("opca:2"), "{e}");
        let e = err("[[sweep]]\nname = \"x\"\nspatial = []");
        assert!(e.contains("spatial") && e.contains("empty"), "{e}");
        let e = err("levels = [[]]");
        assert!(e.contains("levels"), "{e}");
        let e = err("levels = [[3, 3]]");
        assert!(e.contains("levels"), "{e}");
        let e = err("[method]\nfoo = 1");
        assert!(e.contains("foo") && e.contains("[method]"), "{e}");
    }

    #[test]
    fn the_paper_grid_has_the_papers_sweeps() {
        let g = Grid::paper();
        let c = g.configs();
        // 8 reductions + 9 levels + 3 backbones + 2 sizes + 2 spatial models, before dedup.
        assert_eq!(c.len(), 8 + 9 + 3 + 2 + 2);
    }
}
