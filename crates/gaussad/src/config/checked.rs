//! A configuration checked against its backbone: everything needed to build the extractor and
//! the detector, with the defaults that depend on the backbone (levels, input size) filled in.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use backbone::{BackboneName, BackboneSpec, Convention, Device, FeatureExtractor, Preprocess, WeightsSource};
use gaussian_fit::GaussianParams;
use opca_reduction::ReductionParams;
use scoring::DetectorParams;

use super::{InputSize, Levels, MethodConfig, OptionError};

/// Where downloaded weights live, unless `GAUSSAD_WEIGHTS_DIR` says otherwise
/// (`cargo xtask download weights` writes there).
pub fn weights_dir() -> PathBuf {
    std::env::var_os("GAUSSAD_WEIGHTS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("weights"))
}

/// A validated configuration (see [`MethodConfig::check`]).
#[derive(Debug, Clone)]
pub struct CheckedConfig {
    /// The configuration with levels and input size filled in: what results, cells and model
    /// files record.
    pub config: MethodConfig,
    /// The backbone architecture.
    pub spec: BackboneSpec,
    /// Where its weights come from.
    pub weights: WeightsSource,
    /// Resize and crop of the images (and of the masks).
    pub preprocess: Preprocess,
    /// Validated detector parameters.
    pub detector: DetectorParams,
}

fn invalid(key: &str, message: impl Into<String>) -> anyhow::Error {
    OptionError::new(key, message).into()
}

impl MethodConfig {
    /// Checks every option against the backbone and builds the detector parameters. Errors
    /// about one option are [`OptionError`]s naming its key.
    pub fn check(&self) -> Result<CheckedConfig> {
        let (spec, weights) = resolve_backbone(&self.backbone, self.weights_convention.0)?;
        let levels =
            if self.levels.as_slice().is_empty() { spec.default_levels() } else { self.levels.as_slice().to_vec() };
        let n_levels = spec.num_levels();
        if let Some(bad) = levels.iter().find(|&&l| l >= n_levels) {
            return Err(invalid(
                "levels",
                format!("level {bad} does not exist for {} (levels 0..{})", self.backbone, n_levels.saturating_sub(1)),
            ));
        }
        let size = self.resize.get().unwrap_or_else(|| spec.default_input_size());
        let crop = self.center_crop.get();
        if let Some(c) = crop
            && c > size
        {
            return Err(invalid("center-crop", format!("{c} is larger than the input size {size}")));
        }
        let detector = detector_params(self);
        detector.validate().context("invalid method parameters")?;
        let mut config = self.clone();
        config.levels = Levels::new(levels).map_err(|e| invalid("levels", e))?;
        config.resize = InputSize::try_from(size).map_err(|e| invalid("resize", e))?;
        let preprocess = Preprocess::new(size).with_center_crop(crop);
        Ok(CheckedConfig { config, spec, weights, preprocess, detector })
    }
}

/// The detector's parameters: the options each numerical crate implements.
fn detector_params(c: &MethodConfig) -> DetectorParams {
    DetectorParams::new()
        .with_reduction(ReductionParams::default().with_selection(c.reduction).with_rank(c.pca_rank))
        .with_gaussian(GaussianParams::default().with_estimator(c.covariance))
        .with_spatial(c.spatial)
        .with_pixel_pca(c.pixel_pca)
        .with_image_score(c.image_score)
        .with_blur_sigma(c.blur_sigma.get())
}

impl CheckedConfig {
    /// The levels tapped, in order.
    pub fn levels(&self) -> &[usize] {
        self.config.levels.as_slice()
    }

    /// The device to run on.
    pub fn device(&self) -> Device {
        self.config.device.0
    }

    /// Images per backbone batch.
    pub fn batch_size(&self) -> usize {
        self.config.batch_size.0
    }

    /// Loads the backbone with the configured levels.
    pub fn extractor(&self) -> Result<FeatureExtractor> {
        self.extractor_for_levels(self.levels())
    }

    /// Loads the backbone tapping `levels` (e.g. the union of several configurations' levels).
    pub fn extractor_for_levels(&self, levels: &[usize]) -> Result<FeatureExtractor> {
        FeatureExtractor::new(self.spec.clone(), self.weights.clone(), levels, self.preprocess, self.device())
            .with_context(|| format!("cannot load backbone {}", self.config.backbone))
    }

    /// The side of the square pixel map (the network input after cropping).
    pub fn map_size(&self) -> usize {
        self.preprocess.input_size() as usize
    }

    /// The geometry masks are brought to: resized to the input size, then cropped like the images.
    pub fn resize_and_crop(&self) -> (usize, Option<usize>) {
        (self.preprocess.size as usize, self.preprocess.center_crop.map(|c| c as usize))
    }
}

/// A backbone name -> (architecture, weights); a path to an `.onnx` or PyTorch `.pth` /
/// `.pt` file -> the architecture recognised from its parameters.
fn resolve_backbone(name: &str, convention: Option<Convention>) -> Result<(BackboneSpec, WeightsSource)> {
    let with_convention = |spec: BackboneSpec| -> Result<BackboneSpec> {
        match convention {
            Some(c) => spec.with_convention(c).map_err(|e| invalid("weights-convention", e.to_string())),
            None => Ok(spec),
        }
    };
    let as_path = Path::new(name);
    if name.ends_with(".onnx") || backbone::is_pytorch_file(as_path) || backbone::is_safetensors_file(as_path) || as_path.is_file() {
        if !as_path.is_file() {
            return Err(invalid("backbone", format!("{name}: no such weights file")));
        }
        let source = WeightsSource::from_file(as_path);
        let spec = detect_architecture(as_path, &source, convention)?;
        return Ok((spec, source));
    }
    let spec = with_convention(BackboneSpec::from_str(name).map_err(|e| invalid("backbone", format!("{name:?}: {e}")))?)?;
    if spec.has_embedded_weights() {
        return Ok((spec, WeightsSource::Embedded));
    }
    let dir = weights_dir().join(&spec.name);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().is_some_and(|x| x.eq_ignore_ascii_case("onnx"))
                        || backbone::is_pytorch_file(p)
                        || backbone::is_safetensors_file(p)
                })
                .collect()
        })
        .unwrap_or_default();
    match files.as_slice() {
        [file] => Ok((spec, WeightsSource::from_file(file.clone()))),
        [] => Err(invalid(
            "backbone",
            format!(
                "{name}: no weights in {} - run `cargo xtask download weights --backbone {name}` \
                 (or set GAUSSAD_WEIGHTS_DIR, or pass --backbone PATH.onnx / PATH.pth)",
                dir.display()
            ),
        )),
        _ => Err(invalid(
            "backbone",
            format!(
                "{name}: several weights files (.onnx / .pth / .safetensors) in {}; keep one or pass --backbone PATH",
                dir.display()
            ),
        )),
    }
}

/// Recognises which known architecture a weights file holds: the one whose every parameter
/// shape its weights match (the loader checks each one).
fn detect_architecture(path: &Path, source: &WeightsSource, convention: Option<Convention>) -> Result<BackboneSpec> {
    let mut tried = Vec::new();
    for name in BackboneName::all() {
        let spec = BackboneSpec::from_name(name);
        let spec = match convention {
            Some(c) => match spec.with_convention(c) {
                Ok(s) => s,
                Err(_) => continue,
            },
            None => spec,
        };
        let pre = Preprocess::new(spec.default_input_size());
        match FeatureExtractor::new(spec.clone(), source.clone(), &[0], pre, Device::Cpu) {
            Ok(_) => return Ok(spec),
            // The names matched but the convention cannot be told: say which option decides.
            Err(e @ backbone::BackboneError::Convention { .. }) => {
                return Err(invalid("weights-convention", format!("{e} (set --weights-convention tf or pytorch)")));
            }
            Err(e) => tried.push(format!("  {name}: {e}")),
        }
    }
    bail!(
        "backbone {}: the weights file matches none of the known architectures:\n{}",
        path.display(),
        tried.join("\n")
    )
}
