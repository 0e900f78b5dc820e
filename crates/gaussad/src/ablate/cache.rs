//! The feature cache of one group: the backbone runs once over the training and test images
//! for the union of the levels the group's cells need; every cell then reads its levels from
//! here. In memory when the features fit in the budget, else spilled to one f32 file per
//! (set, level) under `OUT/cache/` (each written under a temporary name and renamed into
//! place, read back sequentially, deleted with the cache unless kept).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use backbone::FeatureExtractor;
use ndarray::{Array3, Array4, ArrayView3, Axis};

use crate::progress::Progress;

/// Train or test images.
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

enum Store {
    /// Per batch, one (b, c, h, w) array per cached level.
    Memory(Vec<Vec<Array4<f32>>>),
    /// One file per cached level: images one after the other, (c, h, w) f32 little-endian each.
    Disk(Vec<PathBuf>),
}

/// The cached features of one group.
pub struct FeatureCache {
    shapes: Vec<(usize, usize, usize)>,
    train: Store,
    test: Store,
    n_train: usize,
    n_test: usize,
    dir: Option<PathBuf>,
    keep: bool,
    /// Seconds the backbone took on the training images.
    pub extract_train_seconds: f64,
    /// Seconds the backbone took on the test images.
    pub extract_test_seconds: f64,
}

impl FeatureCache {
    /// Bytes the features of `n_images` take with these level shapes.
    pub fn bytes_needed(shapes: &[(usize, usize, usize)], n_images: usize) -> usize {
        let per: usize = shapes.iter().map(|&(c, h, w)| c * h * w * 4).sum();
        per.saturating_mul(n_images)
    }

    /// Runs `extractor` over both image sets. `spill_dir` (used when the features exceed
    /// `budget` bytes) receives the files; `keep` leaves them there after the group.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        extractor: &FeatureExtractor,
        train: &[PathBuf],
        test: &[PathBuf],
        batch_size: usize,
        budget: usize,
        spill_dir: &Path,
        keep: bool,
        progress: &Progress,
    ) -> Result<Self> {
        let shapes = extractor.level_shapes();
        let disk = Self::bytes_needed(&shapes, train.len() + test.len()) > budget;
        let mut dir = None;
        if disk {
            std::fs::create_dir_all(spill_dir).with_context(|| format!("cannot create {}", spill_dir.display()))?;
            dir = Some(spill_dir.to_path_buf());
        }
        let t0 = Instant::now();
        let train_store = extract(extractor, train, batch_size, dir.as_deref(), Set::Train, extractor.levels(), progress)?;
        let extract_train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let test_store = extract(extractor, test, batch_size, dir.as_deref(), Set::Test, extractor.levels(), progress)?;
        let extract_test_seconds = t1.elapsed().as_secs_f64();
        Ok(Self {
            shapes,
            train: train_store,
            test: test_store,
            n_train: train.len(),
            n_test: test.len(),
            dir,
            keep,
            extract_train_seconds,
            extract_test_seconds,
        })
    }

    /// Whether the features were spilled to disk.
    pub fn on_disk(&self) -> bool {
        self.dir.is_some()
    }

    /// Calls `f(i, maps)` for every image `i` of `set` in order, where `maps` holds the cached
    /// levels at the positions `select` (indices into the extractor's levels).
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
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn extract(
    extractor: &FeatureExtractor,
    paths: &[PathBuf],
    batch_size: usize,
    dir: Option<&Path>,
    set: Set,
    levels: &[usize],
    progress: &Progress,
) -> Result<Store> {
    let bar = progress.bar(paths.len() as u64, &format!("features {}", set.name()));
    let store = match dir {
        None => {
            let mut batches = Vec::new();
            for batch in extractor.extract_paths(paths, batch_size) {
                let batch = batch?;
                bar.inc(batch.paths.len() as u64);
                batches.push(batch.levels);
            }
            Store::Memory(batches)
        }
        Some(dir) => {
            let finals: Vec<PathBuf> = levels.iter().map(|l| dir.join(format!("{}-level{l}.f32", set.name()))).collect();
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
