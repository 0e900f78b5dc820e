//! Pixel-metric benches at MVTec scale: 150 test maps (100 defective with 1-3 elliptic regions,
//! 50 good) at 256x256 and at native 1024x1024, comparing the accumulator (f32 keys, LSD radix
//! sort with one scratch buffer) with a naive exact method (collect (score, region size) pairs,
//! comparison sort, same sweep). Image-level AUROC on 150 scores is also measured.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-eval cargo bench -p mvtec-eval --bench metrics`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mvtec_eval::{PixelMetricsAccumulator, roc_auc};
use ndarray::Array2;
use rayon::prelude::*;
use std::hint::black_box;

fn hash(k: u32, i: u32, j: u32) -> u32 {
    let mut x = k.wrapping_mul(73856093) ^ i.wrapping_mul(19349663) ^ j.wrapping_mul(83492791);
    x ^= x >> 16;
    x = x.wrapping_mul(0x45D9F3B);
    x ^= x >> 16;
    x = x.wrapping_mul(0x45D9F3B);
    x ^ (x >> 16)
}

/// 150 maps and masks of `size` x `size` (the first 50 good).
fn data(size: usize) -> Vec<(Array2<f32>, Option<Array2<bool>>)> {
    (0..150u32)
        .into_par_iter()
        .map(|k| {
            let s = size as f32;
            let mut ellipses = Vec::new();
            if k >= 50 {
                for e in 0..1 + hash(k, 7, 7) % 3 {
                    let r = |n: u32| (hash(k, e, n) % 10_000) as f32 / 10_000.0;
                    ellipses.push((r(1) * s, r(2) * s, (0.01 + 0.07 * r(3)) * s, (0.01 + 0.07 * r(4)) * s));
                }
            }
            let inside = |i: usize, j: usize| {
                ellipses.iter().any(|&(cy, cx, ry, rx)| {
                    let (dy, dx) = ((i as f32 - cy) / ry, (j as f32 - cx) / rx);
                    dy * dy + dx * dx <= 1.0
                })
            };
            let mask = Array2::from_shape_fn((size, size), |(i, j)| inside(i, j));
            let map = Array2::from_shape_fn((size, size), |(i, j)| {
                let smooth = ((i as f32 / s * 6.0).sin() * (j as f32 / s * 5.0).cos()) * 0.3;
                let bump = if mask[[i, j]] { 1.0 } else { 0.0 };
                smooth + bump + (hash(k, i as u32, j as u32) % 1_000_000) as f32 / 1_000_000.0
            });
            (map, if k >= 50 { Some(mask) } else { None })
        })
        .collect()
}

/// Size of the 8-connected region of every defect pixel (0 for background, raster order) and
/// the number of regions, by union-find (the naive method's own labelling; the crate's is
/// internal).
fn region_sizes(mask: &Array2<bool>) -> (Vec<u32>, u64) {
    fn root(parent: &mut [usize], mut k: usize) -> usize {
        while parent[k] != k {
            parent[k] = parent[parent[k]];
            k = parent[k];
        }
        k
    }
    let (h, w) = mask.dim();
    let on: Vec<bool> = mask.iter().copied().collect();
    let mut parent: Vec<usize> = (0..h * w).collect();
    for k in (0..h * w).filter(|&k| on[k]) {
        let (i, j) = (k / w, k % w);
        // the neighbours seen before in raster order: left, upper-left, up, upper-right
        for (y, x) in [(i, j.wrapping_sub(1)), (i.wrapping_sub(1), j.wrapping_sub(1)), (i.wrapping_sub(1), j), (i.wrapping_sub(1), j + 1)] {
            if y < h && x < w && on[y * w + x] {
                let (a, b) = (root(&mut parent, k), root(&mut parent, y * w + x));
                parent[a] = b;
            }
        }
    }
    let roots: Vec<usize> = (0..h * w).map(|k| root(&mut parent, k)).collect();
    let mut count = vec![0u32; h * w];
    for k in (0..h * w).filter(|&k| on[k]) {
        count[roots[k]] += 1;
    }
    let regions = count.iter().filter(|&&c| c > 0).count() as u64;
    ((0..h * w).map(|k| if on[k] { count[roots[k]] } else { 0 }).collect(), regions)
}

fn accumulator(d: &[(Array2<f32>, Option<Array2<bool>>)]) -> (f64, f64) {
    let mut acc = PixelMetricsAccumulator::new();
    for (m, g) in d {
        acc.push(m.view(), g.as_ref().map(|g| g.view())).unwrap();
    }
    let r = acc.finish().unwrap();
    (r.auroc, r.aupro)
}

/// Naive exact method: (score, region size or 0) pairs, comparison sort descending, sweep.
fn naive(d: &[(Array2<f32>, Option<Array2<bool>>)], parallel: bool) -> (f64, f64) {
    let mut v: Vec<(f32, u32)> = Vec::new();
    let mut regions = 0u64;
    for (m, g) in d {
        match g {
            None => v.extend(m.iter().map(|&s| (s, 0))),
            Some(g) => {
                let (sizes, n) = region_sizes(g);
                regions += n;
                v.extend(m.iter().zip(sizes).map(|(&s, size)| (s, size)));
            }
        }
    }
    if parallel {
        v.par_sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    } else {
        v.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    }
    let n_pos = v.iter().filter(|p| p.1 > 0).count() as f64;
    let n_neg = v.len() as f64 - n_pos;
    let (mut tp, mut fp, mut auc, mut pro, mut area, mut prev) = (0.0, 0.0, 0.0, 0.0, 0.0, (0.0, 0.0));
    let mut k = 0;
    while k < v.len() {
        let t = v[k].0;
        let (tp0, fp0) = (tp, fp);
        while k < v.len() && v[k].0 == t {
            if v[k].1 > 0 {
                tp += 1.0;
                pro += 1.0 / v[k].1 as f64;
            } else {
                fp += 1.0;
            }
            k += 1;
        }
        auc += (fp - fp0) * (tp + tp0) / 2.0;
        let pt = (fp / n_neg, pro / regions as f64);
        if pt.0 <= 0.3 {
            area += (pt.0 - prev.0) * (pt.1 + prev.1) / 2.0;
            prev = pt;
        }
    }
    (auc / (n_pos * n_neg), area / 0.3)
}

fn bench(c: &mut Criterion) {
    let scores: Vec<f64> = (0..150u32).map(|k| (hash(k, 1, 2) % 1000) as f64).collect();
    let labels: Vec<bool> = (0..150).map(|k| k >= 50).collect();
    c.bench_function("image_auroc_150", |b| b.iter(|| roc_auc(black_box(&scores), black_box(&labels)).unwrap()));

    let mut g = c.benchmark_group("pixel_metrics_150_maps");
    g.sample_size(10);
    for size in [256usize, 1024] {
        let d = data(size);
        let (a, b) = (accumulator(&d), naive(&d, true));
        // Same AUROC; AUPRO differs only by the naive sweep's missing interpolation at 0.3.
        assert!((a.0 - b.0).abs() < 1e-9, "{a:?} {b:?}");
        g.bench_with_input(BenchmarkId::new("accumulator_radix", size), &d, |bch, d| bch.iter(|| accumulator(d)));
        g.bench_with_input(BenchmarkId::new("naive_par_sort", size), &d, |bch, d| bch.iter(|| naive(d, true)));
        if size == 256 {
            g.bench_with_input(BenchmarkId::new("naive_seq_sort", size), &d, |bch, d| bch.iter(|| naive(d, false)));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
