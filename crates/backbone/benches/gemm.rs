//! Which GEMM for the CPU kernels: the `gemm` crate (chosen) vs `matrixmultiply` vs
//! burn-flex's own `matmul`, on the shapes of the pointwise convolutions
//! (`cout x cin` weights times a `cin x h*w` image), single-threaded as the kernels call
//! them (images are spread over the threads instead).
//! `cargo bench -p backbone --bench gemm`; results in docs/performance/backbone.md.

use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexDevice};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(20);
    // (m = cout, k = cin, n = h*w): Lite0 expand at 56x56, project at 28x28, head at 7x7;
    // B4 expand at 95x95.
    let shapes = [
        (144, 24, 56 * 56),
        (40, 240, 28 * 28),
        (1280, 320, 49),
        (192, 32, 95 * 95),
    ];
    for (m, k, n) in shapes {
        let a = values(m * k);
        let b = values(k * n);
        let id = format!("{m}x{k}x{n}");
        g.bench_with_input(BenchmarkId::new("gemm-crate", &id), &(), |bench, _| {
            let mut out = vec![0.0f32; m * n];
            bench.iter(|| {
                // SAFETY: buffers of m*k, k*n and m*n elements, row-major, no aliasing.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        k as isize,
                        b.as_ptr(),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("matrixmultiply", &id), &(), |bench, _| {
            let mut out = vec![0.0f32; m * n];
            bench.iter(|| {
                // SAFETY: as above.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        out.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
        let ta = Tensor::<Flex, 2>::from_data(TensorData::new(a.clone(), [m, k]), &FlexDevice);
        let tb = Tensor::<Flex, 2>::from_data(TensorData::new(b.clone(), [k, n]), &FlexDevice);
        g.bench_with_input(
            BenchmarkId::new("burn-flex-matmul", &id),
            &(),
            |bench, _| bench.iter(|| ta.clone().matmul(tb.clone())),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
