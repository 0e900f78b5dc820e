//! Gaussian fits at the sizes the detector meets.
//!
//! * `per_position_28x28_d40_n200`: 200 training maps (40, 28, 28) -> 784 Gaussians
//!   (accumulate + fit, Ledoit-Wolf).
//! * `shared_d1280_n200x49`: one Gaussian of d = 1280 over 200 maps (1280, 7, 7), i.e.
//!   9800 vectors (accumulate + fit), and the fit alone (shrinkage + eigendecomposition).
//!
//! Run: `cargo bench -p gaussian-fit --bench gaussian`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gaussian_fit::{GaussianParams, MomentAccumulator, PerPositionAccumulator};
use ndarray::Array3;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (u >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn maps(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Vec<Array3<f32>> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| Array3::from_shape_fn((c, h, w), |(k, _, _)| rng.next() * (1.0 + k as f32 * 0.01)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let params = GaussianParams::default().validate().unwrap();

    let small = maps(200, 40, 28, 28, 1);
    let mut g = c.benchmark_group("gaussian");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("per_position_28x28_d40_n200", |b| {
        b.iter(|| {
            let mut acc = PerPositionAccumulator::new(40, 28, 28);
            for m in &small {
                acc.push_map(m.view()).unwrap();
            }
            black_box(params.fit_per_position(&acc).unwrap())
        })
    });
    drop(small);

    let big = maps(200, 1280, 7, 7, 2);
    g.bench_function("shared_d1280_n200x49_accumulate_and_fit", |b| {
        b.iter(|| {
            let mut acc = MomentAccumulator::new(1280);
            for m in &big {
                acc.push_map(m.view()).unwrap();
            }
            black_box(params.fit(&acc).unwrap())
        })
    });
    let mut acc = MomentAccumulator::new(1280);
    for m in &big {
        acc.push_map(m.view()).unwrap();
    }
    g.bench_function("shared_d1280_fit_only", |b| {
        b.iter(|| black_box(params.fit(&acc).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
