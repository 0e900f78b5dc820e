//! Pixel-level metrics over a whole test set: pixel AUROC, AUPRO (official MVTec algorithm) and
//! pixel F1-max, computed exactly and in bounded memory by [`PixelMetricsAccumulator`].
//!
//! # Method
//! Each pushed map is stored as f32 scores turned into their order-preserving `u32` bit pattern
//! (4 bytes per defect-free pixel; 8 bytes per defect pixel, which also carry the size of their
//! ground-truth region). [`PixelMetricsAccumulator::finish`] sorts both lists with an LSD radix
//! sort (11-bit digits, one scratch buffer) and walks them in descending order, one group of
//! tied scores at a time. This is exact: every distinct f32 score
//! is one threshold, like the official MVTec script and scikit-learn.
//!
//! # AUPRO (MVTec AD official `compute_pro` + `trapezoid`)
//! Regions are the 8-connected components of each mask. At each distinct threshold (descending),
//! FPR = defect-free pixels with score >= t / all defect-free pixels (good images included), and
//! PRO = sum over defect pixels with score >= t of `1 / |region|`, divided by the number of
//! regions (= the mean per-region overlap). The curve gets (0, 0) prepended and (1, 1) appended;
//! values are clipped to 1. It is integrated by the trapezoid rule over FPR in [0, 0.3], with
//! the point at FPR 0.3 linearly interpolated when 0.3 is not itself a curve point, and divided
//! by 0.3.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::{Curve, Sweep};

/// Default FPR limit of AUPRO (MVTec AD: 0.3).
pub const DEFAULT_PRO_FPR_LIMIT: f64 = 0.3;

/// A score type a map may hold (f32 or f64). Maps are stored as f32: f64 scores are rounded to
/// the nearest f32 (scores that become equal are then one threshold).
pub trait MapScore: Copy + Send + Sync {
    /// The value as f32.
    fn to_f32(self) -> f32;
    /// The value as f64 (for error messages).
    fn to_f64(self) -> f64;
}
impl MapScore for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}
impl MapScore for f64 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// The order-preserving `u32` key of a finite f32 (`-0.0` and `0.0` map to the same key).
#[inline]
pub(crate) fn f32_key(v: f32) -> u32 {
    let b = (v + 0.0).to_bits();
    if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 }
}

/// The f32 whose key is `k` (inverse of [`f32_key`]).
#[inline]
pub(crate) fn key_f32(k: u32) -> f32 {
    if k & 0x8000_0000 != 0 { f32::from_bits(k & 0x7fff_ffff) } else { f32::from_bits(!k) }
}

/// 8-connected component labelling of a mask. Returns the label image (0 = background,
/// 1..=n = components, numbered in raster order of their first pixel) and the size of each
/// component (`sizes[k]` for label `k + 1`).
pub(crate) fn label_components(mask: ArrayView2<'_, bool>) -> (Array2<u32>, Vec<u64>) {
    let (h, w) = mask.dim();
    let mut labels = Array2::<u32>::zeros((h, w));
    let mut sizes = Vec::new();
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for i in 0..h {
        for j in 0..w {
            if !mask[[i, j]] || labels[[i, j]] != 0 {
                continue;
            }
            let id = sizes.len() as u32 + 1;
            let mut size = 0u64;
            labels[[i, j]] = id;
            stack.push((i, j));
            while let Some((ci, cj)) = stack.pop() {
                size += 1;
                for di in [-1isize, 0, 1] {
                    for dj in [-1isize, 0, 1] {
                        let (ni, nj) = (ci as isize + di, cj as isize + dj);
                        if ni < 0 || nj < 0 || ni >= h as isize || nj >= w as isize {
                            continue;
                        }
                        let (ni, nj) = (ni as usize, nj as usize);
                        if mask[[ni, nj]] && labels[[ni, nj]] == 0 {
                            labels[[ni, nj]] = id;
                            stack.push((ni, nj));
                        }
                    }
                }
            }
            sizes.push(size);
        }
    }
    (labels, sizes)
}

/// Keys sortable by [`radix_sort`].
pub(crate) trait RadixKey: Copy + Ord + Send + Sync + Default {
    /// Bits in the key.
    const BITS: u32;
    /// The radix digit (11 bits) at `shift`.
    fn digit(self, shift: u32) -> usize;
}
impl RadixKey for u32 {
    const BITS: u32 = 32;
    #[inline]
    fn digit(self, shift: u32) -> usize {
        ((self >> shift) as usize) & (RADIX - 1)
    }
}
impl RadixKey for u64 {
    const BITS: u32 = 64;
    #[inline]
    fn digit(self, shift: u32) -> usize {
        ((self >> shift) as usize) & (RADIX - 1)
    }
}

const DIGIT_BITS: u32 = 11;
const RADIX: usize = 1 << DIGIT_BITS;

/// Ascending LSD radix sort with 11-bit digits (3 passes for `u32`, 6 for `u64`; a pass whose
/// digit is the same for every key is skipped). Uses one scratch buffer of the input's size;
/// the histograms of all digits are computed in one parallel pass. Small inputs use
/// `sort_unstable`.
pub(crate) fn radix_sort<K: RadixKey>(v: &mut [K]) {
    if v.len() <= 4096 {
        v.sort_unstable();
        return;
    }
    let passes = K::BITS.div_ceil(DIGIT_BITS) as usize;
    let hist = v
        .par_chunks(1 << 20)
        .map(|c| {
            let mut h = vec![0usize; passes * RADIX];
            for &x in c {
                for p in 0..passes {
                    h[p * RADIX + x.digit(DIGIT_BITS * p as u32)] += 1;
                }
            }
            h
        })
        .reduce(
            || vec![0usize; passes * RADIX],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
                a
            },
        );
    let mut scratch = vec![K::default(); v.len()];
    let mut in_scratch = false;
    for p in 0..passes {
        let h = &hist[p * RADIX..(p + 1) * RADIX];
        if h.contains(&v.len()) {
            continue;
        }
        let mut offs = [0usize; RADIX];
        let mut acc = 0;
        for (o, &c) in offs.iter_mut().zip(h) {
            *o = acc;
            acc += c;
        }
        let shift = DIGIT_BITS * p as u32;
        let (src, dst): (&[K], &mut [K]) = if in_scratch { (&scratch, v) } else { (v, &mut scratch) };
        for &x in src {
            let d = x.digit(shift);
            dst[offs[d]] = x;
            offs[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        v.copy_from_slice(&scratch);
    }
}

/// Pixel-level metrics of a test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelMetrics {
    /// ROC AUC over every pixel of every pushed map.
    pub auroc: f64,
    /// AUPRO up to FPR `pro_fpr_limit`, normalised by it (official MVTec algorithm).
    pub aupro: f64,
    /// The FPR limit used for AUPRO.
    pub pro_fpr_limit: f64,
    /// Pixel F1-max (same convention as [`crate::f1_max`]).
    pub f1_max: f64,
    /// The score threshold of the pixel F1-max.
    pub f1_threshold: f64,
    /// ROC curve (x = FPR, y = TPR), thinned for plotting (see [`PixelMetricsParams`]).
    pub roc: Curve,
    /// PRO curve (x = FPR, y = PRO), thinned for plotting, over FPR in [0, 1].
    pub pro: Curve,
    /// Number of pixels.
    pub n_pixels: u64,
    /// Number of defect pixels.
    pub n_anomalous_pixels: u64,
    /// Number of ground-truth regions (8-connected components).
    pub n_regions: u64,
}

/// Parameters of the pixel metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PixelMetricsParams {
    /// AUPRO integration limit (FPR), in (0, 1]; 0.3 for MVTec AD.
    pub pro_fpr_limit: f64,
    /// Approximate maximum number of points kept in each plotted curve (>= 2). A point is kept
    /// when either coordinate moved by at least 1 / this number since the last kept one; the
    /// metrics themselves always use every threshold.
    pub max_curve_points: usize,
}

impl Default for PixelMetricsParams {
    fn default() -> Self {
        Self { pro_fpr_limit: DEFAULT_PRO_FPR_LIMIT, max_curve_points: 2000 }
    }
}

impl PixelMetricsParams {
    /// Sets the AUPRO FPR limit.
    pub fn with_pro_fpr_limit(mut self, v: f64) -> Self {
        self.pro_fpr_limit = v;
        self
    }
    /// Sets the plotted-curve budget.
    pub fn with_max_curve_points(mut self, v: usize) -> Self {
        self.max_curve_points = v;
        self
    }
    /// Checks the parameters.
    pub fn validate(&self) -> Result<()> {
        if self.pro_fpr_limit.is_nan() || self.pro_fpr_limit <= 0.0 || self.pro_fpr_limit > 1.0 {
            return Err(EvalError::InvalidInput(format!(
                "pro_fpr_limit must be in (0, 1], got {}",
                self.pro_fpr_limit
            )));
        }
        if self.max_curve_points < 2 {
            return Err(EvalError::InvalidInput("max_curve_points must be >= 2".into()));
        }
        Ok(())
    }
}

/// Streaming accumulator of pixel scores and ground truth: push one map per test image (good
/// images included, with no mask), then [`finish`](Self::finish).
///
/// Memory: 4 bytes per defect-free pixel and 8 per defect pixel (150 maps of 1024x1024: about
/// 0.6 GB), plus, during `finish`, one scratch buffer of the same size for the radix sort.
#[derive(Debug, Clone, Default)]
pub struct PixelMetricsAccumulator {
    params: PixelMetricsParams,
    normal: Vec<u32>,
    /// (key << 32) | region size.
    defect: Vec<u64>,
    n_regions: u64,
    n_maps: usize,
}

struct Thinner {
    step: f64,
    last: (f64, f64),
    curve: Curve,
}
impl Thinner {
    fn new(max_points: usize) -> Self {
        Self { step: 1.0 / max_points as f64, last: (0.0, 0.0), curve: Curve { x: vec![0.0], y: vec![0.0] } }
    }
    fn push(&mut self, x: f64, y: f64, force: bool) {
        if force || (x - self.last.0).abs() >= self.step || (y - self.last.1).abs() >= self.step {
            self.curve.x.push(x);
            self.curve.y.push(y);
            self.last = (x, y);
        }
    }
}

/// Streaming form of the official MVTec `trapezoid(x, y, x_max)`.
struct Trapezoid {
    x_max: f64,
    prev: (f64, f64),
    area: f64,
    seen_x_max: bool,
    done: bool,
}
impl Trapezoid {
    fn new(x_max: f64) -> Self {
        Self { x_max, prev: (0.0, 0.0), area: 0.0, seen_x_max: false, done: false }
    }
    /// Feeds the next curve point (after the initial (0, 0)).
    fn push(&mut self, x: f64, y: f64) {
        if self.done {
            return;
        }
        if x <= self.x_max {
            self.area += 0.5 * (y + self.prev.1) * (x - self.prev.0);
            if x == self.x_max {
                self.seen_x_max = true;
            }
            self.prev = (x, y);
        } else {
            if !self.seen_x_max {
                let (x0, y0) = self.prev;
                let y_interp = y0 + (y - y0) * (self.x_max - x0) / (x - x0);
                self.area += 0.5 * (y_interp + y0) * (self.x_max - x0);
            }
            self.done = true;
        }
    }
}

impl PixelMetricsAccumulator {
    /// A new accumulator with default parameters (AUPRO limit 0.3).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new accumulator with the given parameters (validated).
    pub fn with_params(params: PixelMetricsParams) -> Result<Self> {
        params.validate()?;
        Ok(Self { params, ..Self::default() })
    }

    /// Reserves room for `pixels` more pixels (avoids the transient doubling of a growing
    /// buffer when the total is known, e.g. 150 x 1024 x 1024).
    pub fn reserve(&mut self, pixels: usize) {
        self.normal.reserve(pixels);
    }

    /// Number of maps pushed so far.
    pub fn n_maps(&self) -> usize {
        self.n_maps
    }

    /// Number of pixels pushed so far.
    pub fn n_pixels(&self) -> u64 {
        (self.normal.len() + self.defect.len()) as u64
    }

    /// Adds the anomaly map of one test image and its ground-truth mask (`None` = defect-free
    /// image, every pixel normal). The mask must have the map's shape (resize it first, see
    /// [`crate::load_mask`]). Errors on an empty map, a shape mismatch, or a NaN/inf score
    /// (nothing is added then).
    pub fn push<T: MapScore>(&mut self, map: ArrayView2<'_, T>, mask: Option<ArrayView2<'_, bool>>) -> Result<()> {
        let (h, w) = map.dim();
        if h == 0 || w == 0 {
            return Err(EvalError::InvalidInput(format!("anomaly map {} is empty ({h}x{w})", self.n_maps)));
        }
        if let Some(((i, j), v)) = map.indexed_iter().find(|(_, v)| !v.to_f32().is_finite()) {
            return Err(EvalError::NonFiniteScore {
                value: v.to_f64(),
                location: format!("anomaly map {} pixel (row {i}, col {j})", self.n_maps),
            });
        }
        match mask {
            None => {
                self.normal.extend(map.iter().map(|v| f32_key(v.to_f32())));
            }
            Some(mask) => {
                if mask.dim() != (h, w) {
                    return Err(EvalError::InvalidInput(format!(
                        "mask of anomaly map {} is {}x{} but the map is {h}x{w}",
                        self.n_maps,
                        mask.dim().0,
                        mask.dim().1
                    )));
                }
                let (labels, sizes) = label_components(mask);
                if sizes.iter().any(|&s| s > u32::MAX as u64) {
                    return Err(EvalError::InvalidInput("a mask region exceeds 2^32 pixels".into()));
                }
                for (v, &l) in map.iter().zip(labels.iter()) {
                    let k = f32_key(v.to_f32());
                    if l == 0 {
                        self.normal.push(k);
                    } else {
                        let size = sizes.get(l as usize - 1).copied().unwrap_or(1);
                        self.defect.push(((k as u64) << 32) | size);
                    }
                }
                self.n_regions += sizes.len() as u64;
            }
        }
        self.n_maps += 1;
        Ok(())
    }

    /// Sorts and sweeps every pushed pixel, giving the pixel metrics. Errors when there is no
    /// defect pixel or no defect-free pixel (the metrics are undefined).
    pub fn finish(mut self) -> Result<PixelMetrics> {
        let (n_norm, n_def) = (self.normal.len() as u64, self.defect.len() as u64);
        if n_def == 0 || n_norm == 0 {
            return Err(EvalError::Undefined {
                metric: "pixel metrics",
                reason: format!("needs defect and defect-free pixels, got {n_def} and {n_norm}"),
            });
        }
        let (normal, defect) = (&mut self.normal, &mut self.defect);
        rayon::join(|| radix_sort(normal), || radix_sort(defect));
        let n_regions = self.n_regions as f64;
        let limit = self.params.pro_fpr_limit;
        let mut sweep = Sweep::new(n_def);
        let mut roc = Thinner::new(self.params.max_curve_points);
        let mut pro = Thinner::new(self.params.max_curve_points);
        let mut trap = Trapezoid::new(limit);
        let mut pro_sum = 0.0f64;
        // Walk both lists from the end (largest keys first).
        let (mut i, mut j) = (self.normal.len(), self.defect.len());
        while i > 0 || j > 0 {
            let kn = if i > 0 { self.normal.get(i - 1).copied() } else { None };
            let kd = if j > 0 { self.defect.get(j - 1).map(|&d| (d >> 32) as u32) } else { None };
            let key = match (kn, kd) {
                (Some(a), Some(b)) => a.max(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            let mut dn = 0u64;
            while i > 0 && self.normal.get(i - 1) == Some(&key) {
                dn += 1;
                i -= 1;
            }
            let mut dp = 0u64;
            while j > 0 {
                match self.defect.get(j - 1) {
                    Some(&d) if (d >> 32) as u32 == key => {
                        pro_sum += 1.0 / (d & 0xffff_ffff) as f64;
                        dp += 1;
                        j -= 1;
                    }
                    _ => break,
                }
            }
            sweep.step(key_f32(key) as f64, dp, dn);
            let fpr = (sweep.fp() as f64 / n_norm as f64).min(1.0);
            let tpr = sweep.tp() as f64 / n_def as f64;
            let pro_v = (pro_sum / n_regions).min(1.0);
            let last = i == 0 && j == 0;
            roc.push(fpr, tpr, last);
            pro.push(fpr, pro_v, last);
            trap.push(fpr, pro_v);
        }
        trap.push(1.0, 1.0);
        let auroc = sweep.auroc("pixel AUROC")?;
        let (f1_max, f1_threshold) = sweep.f1("pixel F1-max")?;
        Ok(PixelMetrics {
            auroc,
            aupro: trap.area / limit,
            pro_fpr_limit: limit,
            f1_max,
            f1_threshold,
            roc: roc.curve,
            pro: pro.curve,
            n_pixels: n_norm + n_def,
            n_anomalous_pixels: n_def,
            n_regions: self.n_regions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn components_8_connected_by_hand() {
        // (0,0)-(1,1) touch diagonally -> one region; (0,3),(1,3); (3,0),(3,1); (3,3) alone.
        let m = array![
            [true, false, false, true],
            [false, true, false, true],
            [false, false, false, false],
            [true, true, false, true]
        ];
        let (labels, sizes) = label_components(m.view());
        assert_eq!(sizes, vec![2, 2, 2, 1]);
        assert_eq!(labels, array![[1, 0, 0, 2], [0, 1, 0, 2], [0, 0, 0, 0], [3, 3, 0, 4]]);
        // A ring is one region; its hole is background.
        let ring = array![[true, true, true], [true, false, true], [true, true, true]];
        let (_, sizes) = label_components(ring.view());
        assert_eq!(sizes, vec![8]);
    }

    proptest! {
        #[test]
        fn radix_sort_matches_std(mut v in prop::collection::vec(any::<u32>(), 0..3000), mut w in prop::collection::vec(0u64..1000, 0..3000)) {
            let mut e = v.clone();
            e.sort_unstable();
            radix_sort(&mut v);
            prop_assert_eq!(v, e);
            let mut e = w.clone();
            e.sort_unstable();
            radix_sort(&mut w);
            prop_assert_eq!(w, e);
        }

        #[test]
        fn f32_key_preserves_order(a in any::<f32>(), b in any::<f32>()) {
            prop_assume!(a.is_finite() && b.is_finite());
            let (ka, kb) = (f32_key(a), f32_key(b));
            prop_assert_eq!(a.partial_cmp(&b), Some(ka.cmp(&kb)));
            prop_assert_eq!(key_f32(ka), a + 0.0);
        }
    }

    #[test]
    fn radix_sort_large_inputs_match_std() {
        // Above the small-input cutoff, so the LSD passes run (including skipped constant digits).
        let mut x = 0x1234_5678u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut a: Vec<u32> = (0..200_000).map(|_| next() as u32).collect();
        let mut b: Vec<u64> = (0..100_000).map(|_| (next() % 5000) << 32 | (next() % 7)).collect();
        let mut c: Vec<u32> = (0..50_000).map(|_| 0x8000_0000 | (next() as u32 & 0xff)).collect();
        for v in [&mut a, &mut c] {
            let mut e = v.clone();
            e.sort_unstable();
            radix_sort(v);
            assert_eq!(*v, e);
        }
        let mut e = b.clone();
        e.sort_unstable();
        radix_sort(&mut b);
        assert_eq!(b, e);
    }
}
