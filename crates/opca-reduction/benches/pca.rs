//! PCA fit at d = 1280 (200 maps of (1280, 7, 7) = 9800 vectors): accumulation + fit, and the
//! fit alone (eigendecomposition + selection); plus projecting one (1280, 7, 7) map.
//!
//! Run: `cargo bench -p opca-reduction --bench pca`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array3;
use opca_reduction::{MomentAccumulator, ReductionParams};

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

fn bench(c: &mut Criterion) {
    let mut rng = Rng(3);
    let maps: Vec<Array3<f32>> = (0..200)
        .map(|_| {
            Array3::from_shape_fn((1280, 7, 7), |(k, _, _)| {
                rng.next() * (1.0 + k as f32 * 0.01)
            })
        })
        .collect();
    let params = ReductionParams::default().validate().unwrap();
    let mut g = c.benchmark_group("pca");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("d1280_n200x49_accumulate_and_fit", |b| {
        b.iter(|| {
            let mut acc = MomentAccumulator::new(1280);
            for m in &maps {
                acc.push_map(m.view()).unwrap();
            }
            black_box(params.fit(&acc).unwrap())
        })
    });
    let mut acc = MomentAccumulator::new(1280);
    for m in &maps {
        acc.push_map(m.view()).unwrap();
    }
    g.bench_function("d1280_fit_only", |b| {
        b.iter(|| black_box(params.fit(&acc).unwrap()))
    });
    let fitted = params.fit(&acc).unwrap();
    g.bench_function("d1280_transform_map_7x7", |b| {
        b.iter(|| black_box(fitted.transform_map(maps[0].view()).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
