//! Property tests (proptest) of the Gaussian fit.

use gaussian_fit::{
    CovarianceEstimator, GaussianError, GaussianParams, MomentAccumulator, MomentsError,
    PerPositionAccumulator,
};
use ndarray::{Array2, Array3, s};
use proptest::prelude::*;

fn rel_close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) -> bool {
    let scale = b.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b.iter())
        .all(|(x, y)| (x - y).abs() <= tol * scale)
}

/// (n, d, row-major data) with n in 2..=n_max, d in 1..=d_max.
fn data(n_max: usize, d_max: usize) -> impl Strategy<Value = Array2<f64>> {
    (2..=n_max, 1..=d_max).prop_flat_map(|(n, d)| {
        (prop::collection::vec(-100.0f64..100.0, n * d), Just((n, d)))
            .prop_map(|(v, (n, d))| Array2::from_shape_vec((n, d), v).unwrap())
    })
}

fn est() -> impl Strategy<Value = CovarianceEstimator> {
    prop_oneof![
        Just(CovarianceEstimator::LedoitWolf),
        Just(CovarianceEstimator::Empirical),
        (0.0f64..2.0).prop_map(CovarianceEstimator::Ridge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn shrinkage_in_unit_interval(x in data(30, 8), offset in -1e3f64..1e3) {
        let x = x + offset;
        let g = GaussianParams::default().validate().unwrap().fit_rows(x.view()).unwrap();
        prop_assert!((0.0..=1.0).contains(&g.shrinkage()));
        prop_assert!(g.precision().iter().all(|v| v.is_finite()));
        prop_assert!(g.covariance().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn streamed_equals_one_shot(
        x in data(80, 6),
        cuts in prop::collection::vec(0.0f64..1.0, 0..6),
        mode in prop::collection::vec(0u8..3, 8),
        e in est(),
        offset in -1e4f64..1e4,
    ) {
        let x = x + offset;
        let n = x.nrows();
        let params = GaussianParams::default().with_estimator(e).validate().unwrap();
        let one = params.fit_rows(x.view()).unwrap();
        let mut idx: Vec<usize> = cuts.iter().map(|c| (c * n as f64) as usize).collect();
        idx.push(0);
        idx.push(n);
        idx.sort_unstable();
        let mut acc = MomentAccumulator::new(x.ncols());
        for (k, w) in idx.windows(2).enumerate() {
            let part = x.slice(s![w[0]..w[1], ..]);
            match mode[k % mode.len()] {
                0 => acc.push_rows(part).unwrap(),
                1 => for r in part.rows() { acc.push_vector(r).unwrap() },
                _ => {
                    let mut other = MomentAccumulator::new(x.ncols());
                    other.push_rows(part).unwrap();
                    acc.merge(&other).unwrap();
                }
            }
        }
        prop_assert_eq!(acc.n_samples(), n as u64);
        let st = params.fit(&acc).unwrap();
        let mean_scale = one.mean().iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (a, b) in st.mean().iter().zip(one.mean().iter()) {
            prop_assert!((a - b).abs() <= 1e-12 * mean_scale);
        }
        prop_assert!(rel_close(st.covariance(), one.covariance(), 1e-9));
        prop_assert!((st.shrinkage() - one.shrinkage()).abs() <= 1e-9);
    }

    #[test]
    fn precision_times_covariance_is_identity(x in data(40, 6), e in est()) {
        let g = GaussianParams::default().with_estimator(e).validate().unwrap()
            .fit_rows(x.view()).unwrap();
        // independent condition number (nalgebra)
        let d = g.dim();
        let m = nalgebra::DMatrix::from_fn(d, d, |i, j| g.covariance()[[i, j]]);
        let ev = m.symmetric_eigenvalues();
        let (lo, hi) = ev.iter().fold((f64::MAX, 0.0_f64), |(l, h), &v| (l.min(v), h.max(v)));
        prop_assume!(lo > 1e-6 * hi);
        let id = g.precision().dot(g.covariance());
        prop_assert!(rel_close(&id, &Array2::eye(d), 1e-7 * (hi / lo).max(1.0)));
    }

    #[test]
    fn non_finite_input_is_an_error(x in data(10, 4), pos in 0usize..1000, which in 0u8..3) {
        let mut x = x;
        let n = x.len();
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which as usize];
        if let Some(v) = x.iter_mut().nth(pos % n) { *v = bad; }
        let p = GaussianParams::default().validate().unwrap();
        let one_shot = p.fit_rows(x.view());
        prop_assert!(matches!(one_shot, Err(GaussianError::Moments(MomentsError::NonFinite { .. }))), "unexpected result");
        let mut acc = MomentAccumulator::new(x.ncols());
        prop_assert!(matches!(acc.push_rows(x.view()), Err(MomentsError::NonFinite { .. })), "unexpected result");
        prop_assert_eq!(acc.n_samples(), 0);
        let row = pos % x.nrows();
        let mut acc = MomentAccumulator::new(x.ncols());
        let res = acc.push_vector(x.row(row));
        let row_ok = x.row(row).iter().all(|v| v.is_finite());
        prop_assert!(matches!(res, Err(MomentsError::NonFinite { .. })) || row_ok, "row {}", row);
    }

    #[test]
    fn per_position_equals_separate_fits(
        (n, d, h, w) in (2usize..6, 1usize..4, 1usize..4, 1usize..4),
        seed in prop::collection::vec(-10.0f64..10.0, 400),
    ) {
        let maps: Vec<Array3<f32>> = (0..n)
            .map(|k| Array3::from_shape_fn((d, h, w), |(c, i, j)| {
                seed[(k * 37 + c * 11 + i * 5 + j * 3 + c * i * j) % seed.len()] as f32
                    + (k * c) as f32 * 0.1
            }))
            .collect();
        let params = GaussianParams::default().validate().unwrap();
        let mut acc = PerPositionAccumulator::new(d, h, w);
        for m in &maps { acc.push_map(m.view()).unwrap(); }
        let pp = params.fit_per_position(&acc).unwrap();
        prop_assert_eq!(pp.shape(), (h, w));
        prop_assert_eq!(pp.iter().count(), h * w);
        for i in 0..h {
            for j in 0..w {
                let rows = Array2::from_shape_fn((n, d), |(k, c)| maps[k][[c, i, j]]);
                let g = params.fit_rows(rows.view()).unwrap();
                let got = pp.get(i, j).unwrap();
                prop_assert!(rel_close(got.covariance(), g.covariance(), 1e-9));
                prop_assert!((got.shrinkage() - g.shrinkage()).abs() <= 1e-9);
            }
        }
        prop_assert!(pp.get(h, 0).is_none());
    }
}
