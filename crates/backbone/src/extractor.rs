//! The public feature extractor.

use std::path::PathBuf;
use std::sync::mpsc;

use burn::tensor::{Tensor, TensorData};
use image::RgbImage;
use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::error::{BackboneError, Result};
use crate::fused::FusedOps;
use crate::model::{ConvWeights, Model};
use crate::preprocess::{Preprocess, load_image, normalize, resize_and_crop};
use crate::spec::{BackboneSpec, Plan};
use crate::weights::{LoadedWeights, WeightsSource};

/// What identifies the features a model was fitted on (stored in model files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackboneIdentity {
    /// Backbone name.
    pub name: String,
    /// SHA-256 (hex) of the weights file (`synthetic:<seed>` for synthetic weights).
    pub weights_sha256: String,
    /// Network input side in pixels.
    pub input_size: u32,
    /// Tapped levels, in the order returned.
    pub levels: Vec<usize>,
}

/// One batch of [`FeatureExtractor::extract_paths`].
#[derive(Debug, Clone)]
pub struct Batch {
    /// The image files, in order.
    pub paths: Vec<PathBuf>,
    /// The resized (and cropped) 8-bit RGB images the network saw.
    pub images: Vec<RgbImage>,
    /// One `(b, c, h, w)` array per requested level, in the requested order.
    pub levels: Vec<Array4<f32>>,
}

type CpuBackend = burn_flex::Flex<f32, i32>;
#[cfg(feature = "cuda")]
type CudaBackend = burn_cuda::Cuda<f32, i32>;

enum Inner {
    Cpu(Model<CpuBackend>, burn_flex::FlexDevice),
    #[cfg(feature = "cuda")]
    Cuda(Model<CudaBackend>, burn_cuda::CudaDevice),
}

/// A backbone network with weights, levels and preprocessing fixed: turns images into
/// per-level feature maps.
pub struct FeatureExtractor {
    spec: BackboneSpec,
    levels: Vec<usize>,
    wanted: Vec<bool>,
    preprocess: Preprocess,
    identity: BackboneIdentity,
    shapes: Vec<(usize, usize, usize)>,
    inner: Inner,
}

impl std::fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("identity", &self.identity)
            .field("preprocess", &self.preprocess)
            .finish_non_exhaustive()
    }
}

fn run<B: FusedOps>(
    model: &Model<B>,
    device: &B::Device,
    batch: ArrayView4<f32>,
    wanted: &[bool],
    levels: &[usize],
) -> Result<Vec<Array4<f32>>> {
    let (b, c, h, w) = batch.dim();
    let data: Vec<f32> = batch.iter().copied().collect();
    let x = Tensor::<B, 4>::from_data(TensorData::new(data, [b, c, h, w]), device);
    let mut outs = model.forward(x, wanted);
    levels
        .iter()
        .map(|&l| {
            let t = outs
                .get_mut(l)
                .and_then(Option::take)
                .ok_or_else(|| BackboneError::Backend(format!("level {l} was not computed")))?;
            let [tb, tc, th, tw] = t.dims();
            let v = t
                .into_data()
                .into_vec::<f32>()
                .map_err(|e| BackboneError::Backend(format!("{e:?}")))?;
            Array4::from_shape_vec((tb, tc, th, tw), v)
                .map_err(|e| BackboneError::Backend(e.to_string()))
        })
        .collect()
}

/// Input pixels (`h w`) from which a CPU batch is run image by image.
const PER_IMAGE_MIN_PIXELS: usize = 300 * 300;

/// CPU: the images of a batch go through the network one by one, spread over the rayon
/// threads (each image's activations stay small and cache-friendly, and large per-batch
/// buffers are not mapped and unmapped at every layer); levels are then stacked.
fn run_per_image<B: FusedOps>(
    model: &Model<B>,
    device: &B::Device,
    batch: ArrayView4<f32>,
    wanted: &[bool],
    levels: &[usize],
) -> Result<Vec<Array4<f32>>>
where
    Model<B>: Sync,
    B::Device: Sync,
{
    let b = batch.dim().0;
    if b <= 1 || rayon::current_num_threads() <= 1 {
        return run(model, device, batch, wanted, levels);
    }
    let per: Vec<Vec<Array4<f32>>> = (0..b)
        .into_par_iter()
        .map(|i| {
            run(
                model,
                device,
                batch.slice(ndarray::s![i..i + 1, .., .., ..]),
                wanted,
                levels,
            )
        })
        .collect::<Result<_>>()?;
    (0..levels.len())
        .map(|l| {
            let views: Vec<_> = per
                .iter()
                .filter_map(|v| v.get(l).map(|a| a.view()))
                .collect();
            ndarray::concatenate(ndarray::Axis(0), &views)
                .map_err(|e| BackboneError::Backend(e.to_string()))
        })
        .collect()
}

impl FeatureExtractor {
    /// Builds the extractor: checks the levels (non-empty, distinct, `< spec.num_levels()`)
    /// and the preprocessing, loads and checks the weights, prepares the device.
    pub fn new(
        spec: BackboneSpec,
        weights: WeightsSource,
        levels: &[usize],
        preprocess: Preprocess,
        device: Device,
    ) -> Result<Self> {
        Self::build(spec, &weights, levels, preprocess, device).map(|(fx, _)| fx)
    }

    /// [`FeatureExtractor::new`], also returning what was loaded besides the convolutions
    /// (the classifier, for [`Classifier`](crate::Classifier)): the source is read once,
    /// after the levels and the preprocessing are checked.
    pub(crate) fn build(
        spec: BackboneSpec,
        weights: &WeightsSource,
        levels: &[usize],
        preprocess: Preprocess,
        device: Device,
    ) -> Result<(Self, LoadedWeights)> {
        let n = spec.num_levels();
        let bad = |reason: &str| BackboneError::Levels {
            levels: levels.to_vec(),
            backbone: spec.name.clone(),
            max: n.saturating_sub(1),
            reason: reason.to_string(),
        };
        if levels.is_empty() {
            return Err(bad("no level requested"));
        }
        let mut wanted = vec![false; n];
        for &l in levels {
            match wanted.get_mut(l) {
                None => return Err(bad("level out of range")),
                Some(true) => return Err(bad("level repeated")),
                Some(w) => *w = true,
            }
        }
        let preprocess = preprocess.validate()?;
        let size = preprocess.input_size();
        if size < 32 {
            return Err(BackboneError::Preprocess(format!(
                "network input {size} px is too small (>= 32 needed)"
            )));
        }
        let plan = spec.plan();
        let all_shapes = plan.level_shapes(size as usize);
        let shapes = levels
            .iter()
            .filter_map(|&l| all_shapes.get(l).copied())
            .collect();
        let mut loaded = crate::weights::load(&spec, &plan, weights)?;
        let w = std::mem::take(&mut loaded.convs);
        let sha = loaded.sha256.clone();
        let inner = match device {
            Device::Cpu => {
                let d = burn_flex::FlexDevice;
                Inner::Cpu(Model::new(plan, w, &d), d)
            }
            Device::Cuda(i) => cuda_inner(plan, w, i, device)?,
        };
        let identity = BackboneIdentity {
            name: spec.name.clone(),
            weights_sha256: sha,
            input_size: size,
            levels: levels.to_vec(),
        };
        let fx = Self {
            spec,
            levels: levels.to_vec(),
            wanted,
            preprocess,
            identity,
            shapes,
            inner,
        };
        Ok((fx, loaded))
    }

    /// The backbone spec.
    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    /// The preprocessing.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// The requested levels, in output order.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// `(channels, height, width)` of each requested level, in the requested order.
    pub fn level_shapes(&self) -> Vec<(usize, usize, usize)> {
        self.shapes.clone()
    }

    /// What identifies these features.
    pub fn identity(&self) -> BackboneIdentity {
        self.identity.clone()
    }

    /// Runs the network on a preprocessed batch `(b, 3, s, s)` (`s` =
    /// `preprocess.input_size()`); returns one `(b, c, h, w)` array per requested level,
    /// in the requested order. Stops at the deepest requested level.
    pub fn extract(&self, batch: ArrayView4<f32>) -> Result<Vec<Array4<f32>>> {
        let (b, c, h, w) = batch.dim();
        let s = self.preprocess.input_size() as usize;
        if b == 0 || c != 3 || h != s || w != s {
            return Err(BackboneError::Input(format!(
                "expected shape (b >= 1, 3, {s}, {s}), found ({b}, {c}, {h}, {w})"
            )));
        }
        if batch.iter().any(|v| !v.is_finite()) {
            return Err(BackboneError::Input(
                "batch contains NaN or infinite values".into(),
            ));
        }
        match &self.inner {
            // Large inputs: image by image (an image's activations stay cache-resident
            // from block to block); small ones: the whole batch per layer (one copy of each
            // level instead of per-image copies plus stacking, fewer calls). Measured on
            // the 2-core VM (docs/performance/backbone.md): B4@380 ~8 % faster per image,
            // Lite0@224 ~25 % faster as a batch.
            Inner::Cpu(m, d) if h * w >= PER_IMAGE_MIN_PIXELS => {
                run_per_image(m, d, batch, &self.wanted, &self.levels)
            }
            Inner::Cpu(m, d) => run(m, d, batch, &self.wanted, &self.levels),
            #[cfg(feature = "cuda")]
            Inner::Cuda(m, d) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(m, d, batch, &self.wanted, &self.levels)
                }));
                r.unwrap_or_else(|_| {
                    Err(BackboneError::Backend("the CUDA backend panicked".into()))
                })
            }
        }
    }

    /// Loads, preprocesses and runs images in batches of `batch_size`. Decoding and
    /// preprocessing run on another thread (rayon inside), one batch ahead of the network.
    /// A batch with an unreadable image yields an error naming the file; later batches
    /// still come.
    pub fn extract_paths<'a>(
        &'a self,
        paths: &[PathBuf],
        batch_size: usize,
    ) -> impl Iterator<Item = Result<Batch>> + 'a {
        let (tx, rx) = mpsc::sync_channel::<Result<(Vec<PathBuf>, Vec<RgbImage>, Array4<f32>)>>(1);
        let p = self.preprocess;
        let chunks: Vec<Vec<PathBuf>> = if batch_size == 0 {
            let _ = tx.send(Err(BackboneError::Input("batch_size must be >= 1".into())));
            Vec::new()
        } else {
            paths.chunks(batch_size).map(<[PathBuf]>::to_vec).collect()
        };
        std::thread::spawn(move || {
            for chunk in chunks {
                let loaded: Result<Vec<RgbImage>> = chunk
                    .par_iter()
                    .map(|path| load_image(path).map(|img| resize_and_crop(&img, &p)))
                    .collect();
                let msg = loaded.map(|images| {
                    let s = p.input_size() as usize;
                    let mut x = Array4::<f32>::zeros((images.len(), 3, s, s));
                    for (mut dst, img) in x.outer_iter_mut().zip(&images) {
                        dst.assign(&normalize(img));
                    }
                    (chunk, images, x)
                });
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        rx.into_iter().map(move |msg| {
            let (paths, images, x) = msg?;
            let levels = self.extract(x.view())?;
            Ok(Batch {
                paths,
                images,
                levels,
            })
        })
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_inner(_: Plan, _: Vec<ConvWeights>, _: usize, device: Device) -> Result<Inner> {
    Err(BackboneError::Device {
        device: device.to_string(),
        reason: "this build has no CUDA support (rebuild with the `cuda` feature)".into(),
    })
}

#[cfg(feature = "cuda")]
fn cuda_inner(plan: Plan, w: Vec<ConvWeights>, index: usize, device: Device) -> Result<Inner> {
    if !crate::device::cuda_driver_present() {
        return Err(BackboneError::Device {
            device: device.to_string(),
            reason: "no CUDA driver found (libcuda.so)".into(),
        });
    }
    let d = burn_cuda::CudaDevice::new(index);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let m = Model::<CudaBackend>::new(plan, w, &d);
        // Touch the device so that initialisation errors surface here.
        let t = Tensor::<CudaBackend, 1>::zeros([1], &d);
        let _ = t.into_data();
        m
    }));
    match r {
        Ok(m) => Ok(Inner::Cuda(m, d)),
        Err(_) => Err(BackboneError::Device {
            device: device.to_string(),
            reason: "CUDA initialisation failed (no such device, or driver/runtime problem)".into(),
        }),
    }
}
