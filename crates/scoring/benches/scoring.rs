//! Criterion benches of the scoring hot paths.
//!
//! Run: `cargo bench -p scoring --bench scoring`
//! (results recorded in docs/performance/scoring.md).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gaussian_fit::{GaussianParams, PerPositionAccumulator};
use ndarray::{Array2, Array3};
use scoring::{gaussian_blur, score_map_per_position, score_map_shared, upsample_bilinear};

/// Deterministic pseudo-random values in [-0.5, 0.5) (no rand dependency).
fn lcg(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    }
}

fn random_map(d: usize, h: usize, w: usize, seed: u64) -> Array3<f32> {
    let mut r = lcg(seed);
    Array3::from_shape_fn((d, h, w), |_| r() as f32)
}

fn bench_per_position(c: &mut Criterion) {
    let params = GaussianParams::default().validate().unwrap();
    let mut group = c.benchmark_group("score_map_per_position");
    for &(d, h, w, n) in &[(40usize, 28usize, 28usize, 60usize), (320, 7, 7, 40)] {
        let mut acc = PerPositionAccumulator::new(d, h, w);
        for s in 0..n {
            acc.push_map(random_map(d, h, w, s as u64).view()).unwrap();
        }
        let models = params.fit_per_position(&acc).unwrap();
        let test = random_map(d, h, w, 10_000);
        group.bench_function(format!("{h}x{w}_d{d}"), |b| {
            b.iter(|| score_map_per_position(black_box(&models), black_box(test.view())).unwrap())
        });
    }
    group.finish();
}

fn bench_shared(c: &mut Criterion) {
    let params = GaussianParams::default().validate().unwrap();
    let (d, h, w) = (40, 28, 28);
    let mut rows = lcg(7);
    let train = Array2::from_shape_fn((2000, d), |_| rows());
    let g = params.fit_rows(train.view()).unwrap();
    let test = random_map(d, h, w, 11);
    c.bench_function("score_map_shared/28x28_d40", |b| {
        b.iter(|| score_map_shared(black_box(&g), black_box(test.view())).unwrap())
    });
}

fn bench_resample(c: &mut Criterion) {
    let mut r = lcg(3);
    let small = Array2::from_shape_fn((28, 28), |_| r());
    c.bench_function("upsample_bilinear/28x28_to_224x224", |b| {
        b.iter(|| upsample_bilinear(black_box(small.view()), 224, 224).unwrap())
    });
    let big = Array2::from_shape_fn((224, 224), |_| r());
    c.bench_function("gaussian_blur/224x224_sigma4", |b| {
        b.iter(|| gaussian_blur(black_box(big.view()), 4.0).unwrap())
    });
}

criterion_group!(benches, bench_per_position, bench_shared, bench_resample);
criterion_main!(benches);
