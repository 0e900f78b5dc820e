//! Forward time per batch on the CPU backend (burn-flex).
//! `cargo bench -p backbone --bench forward`; results in docs/performance/backbone.md.

use backbone::{BackboneSpec, Device, FeatureExtractor, Preprocess, WeightsSource};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array4;

fn input(b: usize, s: usize) -> Array4<f32> {
    Array4::from_shape_fn((b, 3, s, s), |(i, c, y, x)| {
        ((i + c * 7 + y * 13 + x * 17) % 23) as f32 / 11.5 - 1.0
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.sample_size(10);
    let cases: [(&str, WeightsSource, usize); 4] = [
        ("efficientnet-lite0", WeightsSource::Embedded, 1),
        ("efficientnet-lite0", WeightsSource::Embedded, 8),
        ("resnet18", WeightsSource::Synthetic(0), 1),
        ("efficientnet-b4-timm", WeightsSource::Synthetic(0), 1),
    ];
    for (name, w, b) in cases {
        let spec: BackboneSpec = name.parse().expect("known backbone");
        let size = spec.default_input_size();
        let levels = spec.default_levels();
        // Benchmark the whole network: all levels up to the head / layer4.
        let all: Vec<usize> = (0..spec.num_levels()).collect();
        let _ = levels;
        let fx = FeatureExtractor::new(spec, w, &all, Preprocess::new(size), Device::Cpu)
            .expect("extractor");
        let x = input(b, size as usize);
        g.bench_function(format!("{name}@{size}/batch{b}"), |bench| {
            bench.iter(|| fx.extract(x.view()).expect("forward"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
