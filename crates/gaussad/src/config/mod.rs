//! The method configuration: every choice a user can make, declared ONCE (the
//! [`method_config!`] block below). Everything else is derived from that declaration:
//!
//! - the command-line flags `--KEY VALUE` ([`MethodFlags`], a generic clap `Args`),
//! - the keys of `--config FILE.toml` and of a grid's `[method]` table (serde),
//! - the axes of an ablation grid (`KEY = [v1, v2, ...]`, [`expand_axes`]),
//! - the columns of reports ([`MethodConfig::columns`]) and the cell ids of ablations
//!   ([`MethodConfig::method_key`]),
//! - the `config` of a model file's header (serde; a key missing from an older file takes its
//!   default, so files written before an option existed still load).
//!
//! Values use their crates' text forms (`opca:0.05`, `ridge:0.01`, `per-position`, ...), the
//! same on the command line, in TOML and in tables. [`MethodConfig::check`] validates a
//! configuration once against its backbone into a [`CheckedConfig`] (linfa's `ParamGuard`
//! idea), from which the pipeline is built.
//!
//! Adding an option = one entry in the block below (a field with its doc, key, value name and
//! default) plus its mapping in [`checked`]'s `detector_params` when the option feeds the
//! detector; its implementation lives in the crate that owns it.
//!
//! ```
//! use gaussad::config::MethodConfig;
//!
//! let mut cfg: MethodConfig = toml::from_str("reduction = \"pca:0.95\"\nlevels = [4, 5]")?;
//! cfg.set_text("spatial", "shared")?;
//! assert_eq!(cfg.text("reduction").as_deref(), Some("pca:0.95"));
//! assert_eq!(cfg.text("levels").as_deref(), Some("4,5"));
//! assert!(cfg.set_text("reduction", "opca:7").is_err());
//! # Ok::<(), anyhow::Error>(())
//! ```

mod checked;
mod flags;
mod values;

use serde::{Deserialize, Serialize};

pub use checked::{CheckedConfig, weights_dir};
pub use flags::{MethodFlags, Origin, RunFlags, Sourced, load_config_file};
pub use values::{BatchSize, BlurSigma, CenterCrop, ConventionChoice, DeviceChoice, Folds, InputSize, Levels, Rate};

use gaussian_fit::CovarianceEstimator;
use opca_reduction::{PcaRank, Selection};
use scoring::{ImageScore, PixelPca, SpatialModel};

/// What an option changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// The features themselves (backbone, input geometry): configurations that agree on every
    /// such option share one feature extraction.
    Features,
    /// The model fitted on the features and its scores.
    Model,
    /// How alarm thresholds are set from normal scores (verdicts only; scores and
    /// threshold-free metrics do not change).
    Calibration,
    /// Only how the work runs (batch size, device): results are the same.
    Run,
}

impl OptionKind {
    /// Whether the option can change a score or a threshold-free metric (part of cell ids,
    /// report columns, grid axes).
    pub fn is_method(self) -> bool {
        matches!(self, OptionKind::Features | OptionKind::Model)
    }
}

/// One option as the declaration describes it.
#[derive(Clone, Copy, Debug)]
pub struct OptionInfo {
    /// The key: TOML key, flag name (`--KEY`), grid axis and report column.
    pub key: &'static str,
    /// Help text (the field's doc comment).
    pub help: &'static str,
    /// Placeholder of the value in `--help`.
    pub value_name: &'static str,
    /// What the option changes.
    pub kind: OptionKind,
    /// Parses a text form, reporting why it is invalid.
    pub check_text: fn(&str) -> Result<(), String>,
}

impl OptionInfo {
    /// The help text on one line.
    pub fn help_line(&self) -> String {
        self.help.split('\n').map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    }
}

/// An option value that is invalid (names the option's key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct OptionError {
    /// The option's key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl OptionError {
    /// An error about option `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Declares [`MethodConfig`] and derives its option table, text access and columns.
macro_rules! method_config {
    ($( $(#[doc = $doc:literal])* [$kind:ident, $key:literal, $vname:literal] $field:ident : $ty:ty = $default:expr; )*) => {
        /// Every choice of the method and of a run (see the module docs). Missing keys take
        /// their defaults; unknown keys are errors.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct MethodConfig {
            $( $(#[doc = $doc])* #[serde(rename = $key)] pub $field: $ty, )*
        }

        impl Default for MethodConfig {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl MethodConfig {
            /// Every option, in declaration order (the order of grid axes and columns).
            pub const OPTIONS: &'static [OptionInfo] = &[$(
                OptionInfo {
                    key: $key,
                    help: concat!($($doc, "\n"),*),
                    value_name: $vname,
                    kind: OptionKind::$kind,
                    check_text: |text| text.parse::<$ty>().map(|_| ()).map_err(|e| e.to_string()),
                },
            )*];

            /// Sets option `key` from its text form (as on the command line).
            pub fn set_text(&mut self, key: &str, text: &str) -> Result<(), OptionError> {
                match key {
                    $( $key => {
                        self.$field = text.parse::<$ty>().map_err(|e| OptionError::new($key, format!("{text:?}: {e}")))?;
                        Ok(())
                    } )*
                    _ => Err(OptionError::new(key, "no such option")),
                }
            }

            /// The text form of option `key` (`None` for an unknown key).
            pub fn text(&self, key: &str) -> Option<String> {
                match key {
                    $( $key => Some(self.$field.to_string()), )*
                    _ => None,
                }
            }
        }
    };
}

method_config! {
    /// Backbone: efficientnet-lite0 (embedded) | efficientnet-b4 (the paper's TF weights) |
    /// efficientnet-b4-timm | resnet18 | ... or a weights file (.onnx, .pth, .safetensors).
    [Features, "backbone", "NAME|PATH"] backbone: String = "efficientnet-lite0".into();
    /// Padding and batch-norm convention of EfficientNet weights: auto (told from the file) |
    /// tf (TF "same" padding, eps 1e-3) | pytorch (symmetric, eps 1e-5).
    [Features, "weights-convention", "auto|tf|pytorch"] weights_convention: ConventionChoice =
        ConventionChoice::default();
    /// Square input size in pixels (0 = the backbone's default).
    [Features, "resize", "PIXELS"] resize: InputSize = InputSize::default();
    /// Centre crop in pixels after resizing (0 = none); masks are cropped alike.
    [Features, "center-crop", "PIXELS"] center_crop: CenterCrop = CenterCrop::default();
    /// Levels to tap, comma separated (e.g. 3,4,5,6,7; empty = the backbone's default).
    [Model, "levels", "L,L,..."] levels: Levels = Levels::default();
    /// Feature reduction: opca:T (keep the least-variance components holding share T) | pca:T |
    /// none.
    [Model, "reduction", "opca:T|pca:T|none"] reduction: Selection = Selection::default();
    /// Which eigenpairs the reduction ranks: full (all d, null space kept: the default) |
    /// sample (only the min(n-1, d) sample-supported ones, as scikit-learn's PCA()).
    [Model, "pca-rank", "full|sample"] pca_rank: PcaRank = PcaRank::default();
    /// Spatial model of the pixel map: per-position | shared.
    [Model, "spatial", "per-position|shared"] spatial: SpatialModel = SpatialModel::default();
    /// Image score: map-max (the maximum of the pixel map; the default, for verdicts that hold
    /// their false-alarm rate) | pooled (the paper's, for reproducing its tables).
    [Model, "image-score", "map-max|pooled"] image_score: ImageScore = ImageScore::MapMax;
    /// Covariance estimator: ledoit-wolf | empirical | ridge:EPS.
    [Model, "covariance", "ledoit-wolf|empirical|ridge:EPS"] covariance: CovarianceEstimator =
        CovarianceEstimator::default();
    /// PCA of the pixel model: per-level | from-pooled.
    [Model, "pixel-pca", "per-level|from-pooled"] pixel_pca: PixelPca = PixelPca::default();
    /// Gaussian blur sigma of the pixel map in pixels (0 = off).
    [Model, "blur-sigma", "SIGMA"] blur_sigma: BlurSigma = BlurSigma::default();
    /// Folds of the out-of-fold calibration: each training image is scored by a model fitted
    /// without its fold, and thresholds come from those scores.
    [Calibration, "folds", "K"] folds: Folds = Folds::default();
    /// Target false-alarm rate of the image verdict (the share of good images flagged).
    [Calibration, "target-fpr", "RATE"] target_fpr: Rate = Rate(0.05);
    /// Target false-alarm rate of the pixel map (the share of good pixels marked defective).
    [Calibration, "pixel-fpr", "RATE"] pixel_fpr: Rate = Rate(0.001);
    /// Images per backbone batch.
    [Run, "batch-size", "N"] batch_size: BatchSize = BatchSize::default();
    /// Device: cpu | cuda | cuda:N.
    [Run, "device", "cpu|cuda|cuda:N"] device: DeviceChoice = DeviceChoice::default();
}

impl MethodConfig {
    /// The option `key`, if it exists.
    pub fn option(key: &str) -> Option<&'static OptionInfo> {
        Self::OPTIONS.iter().find(|o| o.key == key)
    }

    /// The method options' (key, text) pairs, in declaration order: report columns.
    pub fn columns(&self) -> Vec<(&'static str, String)> {
        Self::OPTIONS
            .iter()
            .filter(|o| o.kind.is_method())
            .map(|o| (o.key, self.text(o.key).unwrap_or_default()))
            .collect()
    }

    /// The canonical text of the method options that differ from their defaults (JSON object,
    /// keys sorted): what identifies a result. Run options never count, and an option added
    /// later leaves the key of every configuration that keeps its default unchanged.
    pub fn method_key(&self) -> String {
        let mut map = serde_json::Map::new();
        let default = MethodConfig::default();
        for o in Self::OPTIONS.iter().filter(|o| o.kind.is_method()) {
            let (Some(v), Some(d)) = (self.text(o.key), default.text(o.key)) else { continue };
            if v != d {
                map.insert(o.key.to_string(), serde_json::Value::String(v));
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    /// The text of the options of `kind`, `key=value` joined by `|` (e.g. what identifies a
    /// feature extraction).
    pub fn kind_key(&self, kind: OptionKind) -> String {
        Self::OPTIONS
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| format!("{}={}", o.key, self.text(o.key).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("|")
    }

    /// This config with its run options (batch size, device) taken from `run`.
    pub fn with_run_options_of(&self, run: &MethodConfig) -> MethodConfig {
        let mut out = self.clone();
        for o in Self::OPTIONS.iter().filter(|o| o.kind == OptionKind::Run) {
            if let Some(text) = run.text(o.key) {
                // A value that came out of a valid config parses again.
                let _ = out.set_text(o.key, &text);
            }
        }
        out
    }
}

/// The most configurations one grid may expand to.
pub const MAX_GRID_CONFIGS: usize = 10_000;

/// An axis of a grid: an option key and the values it takes (TOML values of that option).
pub type Axis = (&'static str, Vec<toml::Value>);

/// Resolves the keys of a grid sweep table into axes: each key is an option key (`_` and `-`
/// are the same; a plural `KEYs` / `KEYes` of a key is accepted, as older grid files wrote
/// `reductions`, `backbones`, ...) holding a non-empty list of that option's values; each value is
/// checked on its own against `base`. Axes come back in declaration order.
pub fn axes_of_table(table: toml::Table, base: &MethodConfig) -> anyhow::Result<Vec<Axis>> {
    let mut found: Vec<(usize, Axis)> = Vec::new();
    for (name, value) in table {
        let info = axis_option(&name).filter(|o| o.kind.is_method()).ok_or_else(|| {
            let keys: Vec<&str> = MethodConfig::OPTIONS.iter().filter(|o| o.kind.is_method()).map(|o| o.key).collect();
            let hint = if axis_option(&name).is_some() { " (it does not change results: set it in [method])" } else { "" };
            anyhow::anyhow!("unknown axis `{name}`{hint}; the axes are the method options: {}", keys.join(", "))
        })?;
        if found.iter().any(|(_, (k, _))| *k == info.key) {
            anyhow::bail!("key `{name}`: the axis `{}` is given twice", info.key);
        }
        let toml::Value::Array(values) = value else {
            anyhow::bail!("key `{name}`: expected a list of values (e.g. {} = [..., ...])", info.key)
        };
        if values.is_empty() {
            anyhow::bail!("key `{name}` is an empty list (omit the key to use the default)");
        }
        for v in &values {
            apply(base, &[(info.key, v)]).map_err(|e| anyhow::anyhow!("key `{name}`: value {v}: {e}"))?;
        }
        let pos = MethodConfig::OPTIONS.iter().position(|o| o.key == info.key).unwrap_or(usize::MAX);
        found.push((pos, (info.key, values)));
    }
    found.sort_by_key(|(pos, _)| *pos);
    Ok(found.into_iter().map(|(_, a)| a).collect())
}

fn axis_option(name: &str) -> Option<&'static OptionInfo> {
    let name = name.replace('_', "-");
    MethodConfig::option(&name)
        .or_else(|| name.strip_suffix("es").and_then(MethodConfig::option))
        .or_else(|| name.strip_suffix('s').and_then(MethodConfig::option))
}

/// `base` with the given (key, TOML value) pairs set.
pub fn apply(base: &MethodConfig, values: &[(&str, &toml::Value)]) -> anyhow::Result<MethodConfig> {
    let mut table = toml::Table::try_from(base)?;
    for (k, v) in values {
        table.insert((*k).to_string(), (*v).clone());
    }
    Ok(toml::Value::Table(table).try_into()?)
}

/// The cross product of `axes` over `base`, first axis outermost. Errors (before expanding)
/// when it exceeds [`MAX_GRID_CONFIGS`].
pub fn expand_axes(base: &MethodConfig, axes: &[Axis]) -> anyhow::Result<Vec<MethodConfig>> {
    let total = axes.iter().try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()));
    match total {
        Some(n) if n <= MAX_GRID_CONFIGS => {}
        _ => anyhow::bail!(
            "the axes ({}) expand to more than {MAX_GRID_CONFIGS} configurations; split the grid",
            axes.iter().map(|(k, v)| format!("{k}: {}", v.len())).collect::<Vec<_>>().join(" x ")
        ),
    }
    let mut out = Vec::new();
    let mut index = vec![0usize; axes.len()];
    loop {
        let chosen: Vec<(&str, &toml::Value)> =
            axes.iter().zip(&index).filter_map(|((k, v), &i)| v.get(i).map(|v| (*k, v))).collect();
        out.push(apply(base, &chosen)?);
        // Odometer increment, last axis fastest.
        let mut d = axes.len();
        loop {
            if d == 0 {
                return Ok(out);
            }
            d -= 1;
            if let (Some(i), Some((_, v))) = (index.get_mut(d), axes.get(d)) {
                *i += 1;
                if *i < v.len() {
                    break;
                }
                *i = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_an_option_and_serde_keys_are_the_option_keys() {
        let value = serde_json::to_value(MethodConfig::default()).unwrap();
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        let mut options: Vec<&str> = MethodConfig::OPTIONS.iter().map(|o| o.key).collect();
        options.sort_unstable();
        assert_eq!(keys, options);
        for o in MethodConfig::OPTIONS {
            assert!(!o.help_line().is_empty(), "{} has no help", o.key);
            assert_eq!(MethodConfig::default().text(o.key).map(|t| (o.check_text)(&t)), Some(Ok(())), "{}", o.key);
        }
    }

    #[test]
    fn text_forms_round_trip_through_set_text() {
        let mut cfg = MethodConfig::default();
        for (k, v) in [("reduction", "pca:0.95"), ("levels", "4,5"), ("covariance", "ridge:0.01"), ("blur-sigma", "4"), ("device", "cuda:1")] {
            cfg.set_text(k, v).unwrap();
            assert_eq!(cfg.text(k).as_deref(), Some(v));
        }
        assert_eq!(cfg.set_text("nope", "1").unwrap_err().key, "nope");
        let e = cfg.set_text("batch-size", "0").unwrap_err();
        assert_eq!(e.key, "batch-size");
    }

    #[test]
    fn method_key_ignores_run_options_and_defaults() {
        let a = MethodConfig::default();
        let mut b = a.clone();
        b.set_text("batch-size", "3").unwrap();
        b.set_text("device", "cuda").unwrap();
        assert_eq!(a.method_key(), b.method_key());
        assert_eq!(a.method_key(), "{}");
        b.set_text("reduction", "none").unwrap();
        assert_eq!(b.method_key(), r#"{"reduction":"none"}"#);
        assert_eq!(b.columns().iter().find(|(k, _)| *k == "reduction").map(|(_, v)| v.as_str()), Some("none"));
        assert!(b.columns().iter().all(|(k, _)| *k != "device"));
    }

    #[test]
    fn axes_expand_in_declaration_order_with_plural_aliases() {
        let table: toml::Table = toml::from_str("reductions = [\"opca:0.05\", \"none\"]\nlevels = [[3, 4], [4]]").unwrap();
        let base = MethodConfig::default();
        let axes = axes_of_table(table, &base).unwrap();
        assert_eq!(axes.iter().map(|a| a.0).collect::<Vec<_>>(), vec!["levels", "reduction"]);
        let c = expand_axes(&base, &axes).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!((c[0].text("levels").unwrap(), c[0].text("reduction").unwrap()), ("3,4".into(), "opca:0.05".into()));
        assert_eq!((c[3].text("levels").unwrap(), c[3].text("reduction").unwrap()), ("4".into(), "none".into()));
    }

    #[test]
    fn axis_errors_name_the_key_and_value() {
        let base = MethodConfig::default();
        let err = |t: &str| format!("{:#}", axes_of_table(toml::from_str(t).unwrap(), &base).unwrap_err());
        let e = err("reductions = [\"opca:2\"]");
        assert!(e.contains("reductions") && e.contains("opca:2"), "{e}");
        assert!(err("spatial = []").contains("empty"));
        assert!(err("reductoins = [\"none\"]").contains("reductoins"));
        assert!(err("levels = [[3, 3]]").contains("levels"));
        assert!(err("levels = [3, 4]").contains("levels"));
    }

    #[test]
    fn a_huge_grid_is_refused_before_expanding() {
        let base = MethodConfig::default();
        let many: Vec<toml::Value> = (0..200).map(|i| toml::Value::Float(f64::from(i))).collect();
        let axes: Vec<Axis> = vec![("blur-sigma", many.clone()), ("blur-sigma", many)];
        let e = expand_axes(&base, &axes).unwrap_err().to_string();
        assert!(e.contains("40000") || e.contains("more than"), "{e}");
    }
}
