//! Symmetric eigendecomposition and Cholesky: faer vs nalgebra, at d = 40, 112, 320, 1280.
//! This is the measurement behind the choice of faer (docs/performance/numerical-core.md).
//!
//! Run: `cargo bench -p gaussian-fit --bench linalg`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Deterministic pseudo-random numbers (xorshift64*), roughly standard normal.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (u >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0
    }
}

/// A covariance-like SPD matrix: X^T X / n + 0.1 I with n = 2d.
fn spd(d: usize) -> Vec<f64> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ d as u64);
    let n = 2 * d;
    let x: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
    let mut a = vec![0.0; d * d];
    for k in 0..n {
        let row = &x[k * d..(k + 1) * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] += row[i] * row[j] / n as f64;
            }
        }
    }
    for i in 0..d {
        a[i * d + i] += 0.1;
    }
    a
}

fn bench(c: &mut Criterion) {
    for &d in &[40usize, 112, 320, 1280] {
        let a = spd(d);
        let fm = faer::Mat::<f64>::from_fn(d, d, |i, j| a[i * d + j]);
        let nm = nalgebra::DMatrix::<f64>::from_fn(d, d, |i, j| a[i * d + j]);
        let mut g = c.benchmark_group("eigh");
        if d >= 320 {
            g.sample_size(10).warm_up_time(Duration::from_millis(500));
        }
        faer::set_global_parallelism(faer::Par::Seq);
        g.bench_with_input(BenchmarkId::new("faer-seq", d), &d, |b, _| {
            b.iter(|| black_box(fm.self_adjoint_eigen(faer::Side::Lower).ok()))
        });
        faer::set_global_parallelism(faer::Par::rayon(0));
        g.bench_with_input(BenchmarkId::new("faer-rayon", d), &d, |b, _| {
            b.iter(|| black_box(fm.self_adjoint_eigen(faer::Side::Lower).ok()))
        });
        g.bench_with_input(BenchmarkId::new("nalgebra", d), &d, |b, _| {
            b.iter(|| black_box(nm.clone().symmetric_eigen()))
        });
        g.finish();

        let mut g = c.benchmark_group("cholesky");
        if d >= 320 {
            g.sample_size(20);
        }
        faer::set_global_parallelism(faer::Par::Seq);
        g.bench_with_input(BenchmarkId::new("faer-seq", d), &d, |b, _| {
            b.iter(|| black_box(fm.llt(faer::Side::Lower).ok()))
        });
        faer::set_global_parallelism(faer::Par::rayon(0));
        g.bench_with_input(BenchmarkId::new("faer-rayon", d), &d, |b, _| {
            b.iter(|| black_box(fm.llt(faer::Side::Lower).ok()))
        });
        g.bench_with_input(BenchmarkId::new("nalgebra", d), &d, |b, _| {
            b.iter(|| black_box(nm.clone().cholesky()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
