//! The one feature cache: the backbone runs once over a category's training (and test)
//! images for the levels asked for, and everything that follows - the two fit passes, the
//! folds of a calibration, the cells of an ablation, the scoring of the test set - reads the
//! features from here. In memory when they fit in the budget, else spilled to one f32 file per
//! (set, level) in a folder (each written under a temporary name and renamed into place, read
//! back sequentially, deleted with the cache unless kept).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backbone::FeatureExtractor;
use image::RgbImage;
use ndarray::{Array3, Array4, ArrayView3, Axis};

use crate::progress::Progress;

/// Default in-memory budget of a cache: 2 GiB.
pub const DEFAULT_CACHE_BYTES: usize = 2 << 30;

/// Training or test images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// Training images.
    Train,
    /// Test images.
    Test,
}

impl Set {
    fn name(self) -> &'static str {
        match self {
            Set::Train => "train",
            Set::Test => "test",
        }
    }
}

/// How a cache is built.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Images per backbone batch.
    pub batch_size: usize,
    /// In-memory budget in bytes; above it the features are spilled to `spill_dir`.
    pub budget_bytes: usize,
    /// Where spilled features go (`None`: a fresh folder under the system's temporary folder).
    pub spill_dir: Option<PathBuf>,
    /// Keep spilled files after the cache is dropped.
    pub keep_files: bool,
    /// Keep the test images as the network saw them (resized, cropped RGB), for heatmaps.
    pub keep_test_images: bool,
}

impl CacheOptions {
    /// In-memory up to [`DEFAULT_CACHE_BYTES`], temporary spill folder, no images kept.
    pub fn new(batch_size: usize) -> Self {
        Self { batch_size, budget_bytes: DEFAULT_CACHE_BYTES, spill_dir: None, keep_files: false, keep_test_images: false }
    }
}

enum Store {
    /// Per batch, one (b, c, h, w) array per cached level.
    Memory(Vec<Vec<Array4<f32>>>),
    /// One file per cached level: images one after the other, (c, h, w) f32 little-endian each.
    Disk(Vec<PathBuf>),
}

/// The cached features of one set of images.
pub struct FeatureCache {
    levels: Vec<usize>,
    shapes: Vec<(usize, usize, usize)>,
    train: Store,
    test: Store,
    n_train: usize,
    n_test: usize,
    test_images: Vec<RgbImage>,
    dir: Option<PathBuf>,
    owns_dir: bool,
    keep: bool,
    /// Seconds the backbone took on the training images (decoding included).
    pub extract_train_seconds: f64,
    /// Seconds the backbone took on the test images (decoding included).
    pub extract_test_seconds: f64,
}

impl FeatureCache {
    /// Bytes the features of `n_images` take with these level shapes (saturating).
    pub fn bytes_needed(shapes: &[(usize, usize, usize)], n_images: usize) -> usize {
        let per: usize = shapes.iter().map(|&(c, h, w)| c.saturating_mul(h).saturating_mul(w).saturating_mul(4)).sum();
        per.saturating_mul(n_images)
    }

    /// Runs `extractor` over the training and test images (either may be empty).
    pub fn build(
        extractor: &FeatureExtractor,
        train: &[PathBuf],
        test: &[PathBuf],
        opts: &CacheOptions,
        progress: &Progress,
    ) -> Result<Self> {
        let shapes = extractor.level_shapes();
        let disk = Self::bytes_needed(&shapes, train.len() + test.len()) > opts.budget_bytes;
        let (dir, owns_dir) = match (disk, &opts.spill_dir) {
            (false, _) => (None, false),
            (true, Some(d)) => (Some(d.clone()), false),
            (true, None) => (Some(std::env::temp_dir().join(format!("gaussad-cache-{}-{}", std::process::id(), unique()))), true),
        };
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut cache = Self {
            levels: extractor.levels().to_vec(),
            shapes,
            train: Store::Memory(Vec::new()),
            test: Store::Memory(Vec::new()),
            n_train: train.len(),
            n_test: test.len(),
            test_images: Vec::new(),
            dir,
            owns_dir,
            keep: opts.keep_files,
            extract_train_seconds: 0.0,
            extract_test_seconds: 0.0,
        };
        let t0 = Instant::now();
        cache.train = extract(extractor, train, opts.batch_size, cache.dir.as_deref(), Set::Train, None, progress)?;
        cache.extract_train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let images = opts.keep_test_images.then_some(&mut cache.test_images);
        cache.test = extract(extractor, test, opts.batch_size, cache.dir.as_deref(), Set::Test, images, progress)?;
        cache.extract_test_seconds = t1.elapsed().as_secs_f64();
        Ok(cache)
    }

    /// Whether the features were spilled to disk.
    pub fn on_disk(&self) -> bool {
        self.dir.is_some()
    }

    /// The cached levels, in order.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// The `(c, h, w)` shape of each cached level.
    pub fn shapes(&self) -> &[(usize, usize, usize)] {
        &self.shapes
    }

    /// Positions in [`levels`](Self::levels) of `wanted` (each must be cached).
    pub fn select(&self, wanted: &[usize]) -> Result<Vec<usize>> {
        wanted
            .iter()
            .map(|l| self.levels.iter().position(|u| u == l).with_context(|| format!("internal: level {l} is not cached")))
            .collect()
    }

    /// Number of images of `set`.
    pub fn len(&self, set: Set) -> usize {
        match set {
            Set::Train => self.n_train,
            Set::Test => self.n_test,
        }
    }

    /// Test image `i` as the network saw it (only when the cache was built with
    /// `keep_test_images`).
    pub fn test_image(&self, i: usize) -> Option<&RgbImage> {
        self.test_images.get(i)
    }

    /// Calls `f(i, maps)` for every image `i` of `set` in order, where `maps` holds the cached
    /// levels at the positions `select` (see [`select`](Self::select)).
    pub fn for_each(&self, set: Set, select: &[usize], mut f: impl FnMut(usize, &[ArrayView3<'_, f32>]) -> Result<()>) -> Result<()> {
        let (store, n) = match set {
            Set::Train => (&self.train, self.n_train),
            Set::Test => (&self.test, self.n_test),
        };
        if select.iter().any(|&s| s >= self.shapes.len()) {
            bail!("internal: level index out of the cache's range");
        }
        match store {
            Store::Memory(batches) => {
                let mut i = 0;
                for batch in batches {
                    let nb = batch.first().map_or(0, |l| l.len_of(Axis(0)));
                    for b in 0..nb {
                        let views: Vec<ArrayView3<'_, f32>> =
                            select.iter().filter_map(|&s| batch.get(s)).map(|l| l.index_axis(Axis(0), b)).collect();
                        f(i, &views)?;
                        i += 1;
                    }
                }
                if i != n {
                    bail!("internal: the cache holds {i} images, expected {n}");
                }
            }
            Store::Disk(files) => {
                let mut readers = Vec::new();
                for &s in select {
                    let path = files.get(s).context("internal: missing cache file")?;
                    let file = File::open(path).with_context(|| format!("cannot open cache file {}", path.display()))?;
                    readers.push((BufReader::with_capacity(1 << 20, file), path, self.shapes.get(s).copied().unwrap_or_default()));
                }
                let mut bytes = Vec::new();
                for i in 0..n {
                    let mut maps = Vec::with_capacity(readers.len());
                    for (r, path, (c, h, w)) in readers.iter_mut() {
                        bytes.resize(*c * *h * *w * 4, 0);
                        r.read_exact(&mut bytes).with_context(|| format!("cache file {} is truncated", path.display()))?;
                        let v: Vec<f32> =
                            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                        maps.push(Array3::from_shape_vec((*c, *h, *w), v)?);
                    }
                    let views: Vec<ArrayView3<'_, f32>> = maps.iter().map(|m| m.view()).collect();
                    f(i, &views)?;
                }
            }
        }
        Ok(())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Drop for FeatureCache {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for store in [&self.train, &self.test] {
            if let Store::Disk(files) = store {
                for f in files {
                    let _ = std::fs::remove_file(f);
                }
            }
        }
        if let Some(d) = &self.dir {
            if self.owns_dir {
                let _ = std::fs::remove_dir_all(d);
            } else {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

fn extract(
    extractor: &FeatureExtractor,
    paths: &[PathBuf],
    batch_size: usize,
    dir: Option<&Path>,
    set: Set,
    mut images: Option<&mut Vec<RgbImage>>,
    progress: &Progress,
) -> Result<Store> {
    if paths.is_empty() {
        return Ok(Store::Memory(Vec::new()));
    }
    let bar = progress.bar(paths.len() as u64, &format!("features {}", set.name()));
    let mut keep_images = |batch_images: Vec<RgbImage>| {
        if let Some(v) = images.as_deref_mut() {
            v.extend(batch_images);
        }
    };
    let store = match dir {
        None => {
            let mut batches = Vec::new();
            for batch in extractor.extract_paths(paths, batch_size) {
                let batch = batch?;
                bar.inc(batch.paths.len() as u64);
                batches.push(batch.levels);
                keep_images(batch.images);
            }
            Store::Memory(batches)
        }
        Some(dir) => {
            let finals: Vec<PathBuf> =
                extractor.levels().iter().map(|l| dir.join(format!("{}-level{l}.f32", set.name()))).collect();
            let temps: Vec<PathBuf> = finals.iter().map(|p| p.with_extension(format!("f32.tmp-{}", std::process::id()))).collect();
            let mut writers = Vec::new();
            for t in &temps {
                let f = File::create(t).with_context(|| format!("cannot create cache file {}", t.display()))?;
                writers.push(BufWriter::with_capacity(1 << 20, f));
            }
            let result = (|| -> Result<()> {
                for batch in extractor.extract_paths(paths, batch_size) {
                    let batch = batch?;
                    for ((w, arr), t) in writers.iter_mut().zip(&batch.levels).zip(&temps) {
                        for v in arr.iter() {
                            w.write_all(&v.to_le_bytes()).with_context(|| format!("cannot write {}", t.display()))?;
                        }
                    }
                    bar.inc(batch.paths.len() as u64);
                    keep_images(batch.images);
                }
                for (w, t) in writers.into_iter().zip(&temps) {
                    let f = w.into_inner().map_err(|e| anyhow::anyhow!("cannot write {}: {}", t.display(), e.error()))?;
                    f.sync_all().with_context(|| format!("cannot write {}", t.display()))?;
                }
                for (t, p) in temps.iter().zip(&finals) {
                    std::fs::rename(t, p).with_context(|| format!("cannot rename {} to {}", t.display(), p.display()))?;
                }
                Ok(())
            })();
            if let Err(e) = result {
                for t in &temps {
                    let _ = std::fs::remove_file(t);
                }
                return Err(e);
            }
            Store::Disk(finals)
        }
    };
    bar.finish_and_clear();
    Ok(store)
}
