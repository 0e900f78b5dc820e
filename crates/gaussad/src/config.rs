//! The method configuration: one set of keys shared by the command-line flags and
//! `--config FILE.toml`, resolved against the backbone's defaults.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Every method choice a user can make. TOML keys are the flag names
/// (`blur-sigma`, `image-score`, ...); a missing key keeps its default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MethodConfig {
    /// `efficientnet-lite0` (embedded), `efficientnet-b4`, `resnet18`, ... or a path to an ONNX file.
    pub backbone: String,
    /// Method levels to tap; empty = the backbone's default.
    pub levels: Vec<usize>,
    /// Square input size in pixels; 0 = the backbone's default.
    pub resize: u32,
    /// Optional centre crop (pixels) after resizing; 0 = none.
    pub center_crop: u32,
    /// `opca:T`, `pca:T` or `none`.
    pub reduction: String,
    /// `per-level` (PCA on all position vectors of the level) or `from-pooled`.
    pub pixel_pca: String,
    /// `per-position` or `shared`.
    pub spatial: String,
    /// `ledoit-wolf`, `empirical` or `ridge:EPS`.
    pub covariance: String,
    /// Gaussian blur of the pixel map in pixels; 0 = off.
    pub blur_sigma: f64,
    /// `pooled` (the paper's) or `map-max`.
    pub image_score: String,
    /// Images per backbone batch.
    pub batch_size: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

impl Default for MethodConfig {
    fn default() -> Self {
        Self {
            backbone: "efficientnet-lite0".into(),
            levels: Vec::new(),
            resize: 0,
            center_crop: 0,
            reduction: "opca:0.05".into(),
            pixel_pca: "per-level".into(),
            spatial: "per-position".into(),
            covariance: "ledoit-wolf".into(),
            blur_sigma: 0.0,
            image_score: "pooled".into(),
            batch_size: 8,
            device: "cpu".into(),
        }
    }
}

/// The method flags, each optional: a flag given on the command line wins over the
/// config file, which wins over the defaults.
#[derive(Args, Clone, Debug, Default)]
pub struct MethodFlags {
    /// TOML file with any of the keys below (same names as the flags).
    #[arg(long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,
    /// Backbone name (efficientnet-lite0 | efficientnet-b4 | resnet18 | ...) or a path to an ONNX file.
    #[arg(long)]
    pub backbone: Option<String>,
    /// Levels to tap, comma separated (e.g. 3,4,5,6,7).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<usize>>,
    /// Square input size in pixels (default: the backbone's).
    #[arg(long)]
    pub resize: Option<u32>,
    /// Centre crop in pixels after resizing (0 = none).
    #[arg(long)]
    pub center_crop: Option<u32>,
    /// Feature reduction: opca:T | pca:T | none.
    #[arg(long)]
    pub reduction: Option<String>,
    /// PCA of the pixel model: per-level | from-pooled.
    #[arg(long)]
    pub pixel_pca: Option<String>,
    /// Spatial model of the pixel map: per-position | shared.
    #[arg(long)]
    pub spatial: Option<String>,
    /// Covariance estimator: ledoit-wolf | empirical | ridge:EPS.
    #[arg(long)]
    pub covariance: Option<String>,
    /// Gaussian blur sigma of the pixel map in pixels (0 = off).
    #[arg(long)]
    pub blur_sigma: Option<f64>,
    /// Image score: pooled | map-max.
    #[arg(long)]
    pub image_score: Option<String>,
    /// Images per backbone batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Device: cpu | cuda | cuda:N.
    #[arg(long)]
    pub device: Option<String>,
}

impl MethodFlags {
    /// Defaults, overlaid with the config file (if any), overlaid with the flags given.
    pub fn resolve(&self) -> Result<MethodConfig> {
        let mut cfg = match &self.config {
            Some(path) => load_config_file(path)?,
            None => MethodConfig::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { cfg.$field = v.clone(); } )* };
        }
        overlay!(backbone, levels, resize, center_crop, reduction, pixel_pca, spatial, covariance,
                 blur_sigma, image_score, batch_size, device);
        Ok(cfg)
    }
}

/// Reads a TOML method config, naming the file in every error.
pub fn load_config_file(path: &Path) -> Result<MethodConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl MethodConfig {
    /// Checks the scalar values that need no backbone to judge.
    pub fn check_scalars(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !self.blur_sigma.is_finite() || self.blur_sigma < 0.0 {
            bail!("--blur-sigma must be a finite number >= 0, got {}", self.blur_sigma);
        }
        if self.resize != 0 && !(32..=4096).contains(&self.resize) {
            bail!("--resize must be between 32 and 4096 pixels, got {}", self.resize);
        }
        if self.center_crop != 0 && self.resize != 0 && self.center_crop > self.resize {
            bail!("--center-crop {} is larger than --resize {}", self.center_crop, self.resize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(&path, "reduction = \"none\"\nspatial = \"shared\"\nlevels = [4, 5]\n").unwrap();
        let flags = MethodFlags {
            config: Some(path),
            spatial: Some("per-position".into()),
            ..Default::default()
        };
        let cfg = flags.resolve().unwrap();
        assert_eq!(cfg.reduction, "none");
        assert_eq!(cfg.spatial, "per-position");
        assert_eq!(cfg.levels, vec![4, 5]);
        assert_eq!(cfg.image_score, "pooled");
    }

    #[test]
    fn unknown_key_in_config_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "reductoin = \"none\"\n").unwrap();
        let err = load_config_file(&path).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("bad.toml"), "{msg}");
        assert!(msg.contains("reductoin"), "{msg}");
    }

    #[test]
    fn zero_batch_size_is_rejected() {
        let cfg = MethodConfig { batch_size: 0, ..Default::default() };
        assert!(cfg.check_scalars().is_err());
    }
}
