//! Property tests (proptest) of the PCA / OPCA reduction.

use ndarray::{Array1, Array2, Array3, s};
use opca_reduction::{
    MomentAccumulator, MomentsError, PcaRank, ReductionError, ReductionParams, Selection, select_components,
};
use proptest::prelude::*;

fn data(n_max: usize, d_max: usize) -> impl Strategy<Value = Array2<f64>> {
    (1..=n_max, 1..=d_max).prop_flat_map(|(n, d)| {
        (prop::collection::vec(-50.0f64..50.0, n * d), Just((n, d)))
            .prop_map(|(v, (n, d))| Array2::from_shape_vec((n, d), v).unwrap())
    })
}

fn descending(max_d: usize) -> impl Strategy<Value = Array1<f64>> {
    prop::collection::vec(
        prop_oneof![Just(0.0), 0.0f64..10.0, 1e-12f64..1e-6],
        1..=max_d,
    )
    .prop_map(|mut v| {
        v.sort_by(|a, b| b.partial_cmp(a).unwrap());
        Array1::from(v)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The OPCA tail holds >= t of the variance and is minimal (one fewer component < t).
    #[test]
    fn opca_tail_holds_t_and_is_minimal(ev in descending(20), t in 1e-6f64..=1.0) {
        let d = ev.len();
        let r = select_components(ev.view(), Selection::Opca(t));
        prop_assert_eq!(r.end, d);
        let total: f64 = ev.iter().rev().sum();
        if total > 0.0 {
            let tail: f64 = ev.slice(s![r.start..]).iter().rev().sum();
            prop_assert!(tail / total >= t);
            if r.start + 1 < d {
                let shorter: f64 = ev.slice(s![r.start + 1..]).iter().rev().sum();
                prop_assert!(shorter / total < t);
            }
            // every zero-variance direction is kept
            let zeros = ev.iter().filter(|&&l| l == 0.0).count();
            prop_assert!(d - r.start >= zeros.min(d));
        } else {
            prop_assert_eq!(r, 0..d);
        }
    }

    /// PCA keeps the shortest head holding >= t.
    #[test]
    fn pca_head_holds_t_and_is_minimal(ev in descending(20), t in 1e-6f64..=1.0) {
        let r = select_components(ev.view(), Selection::Pca(t));
        prop_assert_eq!(r.start, 0);
        let total: f64 = ev.iter().sum();
        if total > 0.0 {
            let head: f64 = ev.slice(s![..r.end]).iter().sum();
            prop_assert!(head / total >= t);
            let shorter: f64 = ev.slice(s![..r.end - 1]).iter().sum();
            prop_assert!(r.end == 1 || shorter / total < t);
        }
    }

    #[test]
    fn fitted_opca_properties(x in data(25, 10), t in 0.001f64..=1.0) {
        let f = ReductionParams::default().with_selection(Selection::Opca(t)).validate().unwrap()
            .fit_rows(x.view()).unwrap();
        let ev = f.eigenvalues();
        prop_assert!(ev.iter().all(|&l| l >= 0.0 && l.is_finite()));
        prop_assert!(ev.windows(2).into_iter().all(|w| w[0] >= w[1]));
        prop_assert!(f.output_dim() >= 1);
        let total: f64 = ev.sum();
        if total > 0.0 { prop_assert!(f.kept_variance_share() >= t * (1.0 - 1e-12)); }
        // orthonormal components
        let g = f.components().t().dot(f.components());
        let k = f.output_dim();
        for i in 0..k { for j in 0..k {
            let want = if i == j { 1.0 } else { 0.0 };
            prop_assert!((g[[i, j]] - want).abs() < 1e-10);
        }}
        let z = f.transform_rows(x.view()).unwrap();
        prop_assert!(z.iter().all(|v| v.is_finite()));
        // projections of the training data have variance = kept eigenvalues
        let n = x.nrows() as f64;
        let var = z.map_axis(ndarray::Axis(0), |c| c.dot(&c) / n);
        let scale = ev.iter().fold(1e-12_f64, |m, v| m.max(*v));
        for (a, b) in var.iter().zip(f.kept_eigenvalues().iter()) {
            prop_assert!((a - b).abs() <= 1e-9 * scale);
        }
    }

    #[test]
    fn streamed_equals_one_shot(
        x in data(60, 8),
        cuts in prop::collection::vec(0.0f64..1.0, 0..6),
        mode in prop::collection::vec(0u8..3, 8),
        offset in -1e4f64..1e4,
    ) {
        let x = x + offset;
        let n = x.nrows();
        let p = ReductionParams::default().with_selection(Selection::None).validate().unwrap();
        let one = p.fit_rows(x.view()).unwrap();
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
                    let mut o = MomentAccumulator::new(x.ncols());
                    o.push_rows(part).unwrap();
                    acc.merge(&o).unwrap();
                }
            }
        }
        prop_assert_eq!(acc.n_samples(), n as u64);
        let st = p.fit(&acc).unwrap();
        let mscale = one.mean().iter().fold(1.0_f64, |m, v| m.max(v.abs()));
        for (a, b) in st.mean().iter().zip(one.mean().iter()) {
            prop_assert!((a - b).abs() <= 1e-12 * mscale);
        }
        let escale = one.eigenvalues().iter().fold(1e-300_f64, |m, v| m.max(*v));
        for (a, b) in st.eigenvalues().iter().zip(one.eigenvalues().iter()) {
            prop_assert!((a - b).abs() <= 1e-9 * escale);
        }
    }

    #[test]
    fn non_finite_input_is_an_error(x in data(10, 4), pos in 0usize..1000, which in 0u8..3) {
        let mut x = x;
        let n = x.len();
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][which as usize];
        if let Some(v) = x.iter_mut().nth(pos % n) { *v = bad; }
        let p = ReductionParams::default().validate().unwrap();
        prop_assert!(matches!(p.fit_rows(x.view()), Err(ReductionError::Moments(MomentsError::NonFinite { .. }))), "unexpected result");
        let mut acc = MomentAccumulator::new(x.ncols());
        prop_assert!(matches!(acc.push_rows(x.view()), Err(MomentsError::NonFinite { .. })), "unexpected result");
        prop_assert_eq!(acc.n_samples(), 0);
        let clean = x.mapv(|v| if v.is_finite() { v } else { 0.0 });
        let f = p.fit_rows(clean.view()).unwrap();
        prop_assert!(matches!(f.transform_rows(x.view()), Err(ReductionError::Moments(MomentsError::NonFinite { .. }))), "unexpected result");
    }

    #[test]
    fn map_transform_equals_rows(
        (d, h, w) in (1usize..6, 1usize..5, 1usize..5),
        v in prop::collection::vec(-5.0f32..5.0, 150),
        t in 0.01f64..1.0,
    ) {
        let map = Array3::from_shape_fn((d, h, w), |(c, i, j)| v[(c * 31 + i * 7 + j) % v.len()] + (c * i) as f32);
        let mut acc = MomentAccumulator::new(d);
        acc.push_map(map.view()).unwrap();
        let rows = Array2::from_shape_fn((h * w, d), |(k, c)| map[[c, k / w, k % w]]);
        let p = ReductionParams::default().with_selection(Selection::Opca(t)).validate().unwrap();
        let f = p.fit(&acc).unwrap();
        let one = p.fit_rows(rows.view()).unwrap();
        prop_assert_eq!(f.output_dim(), one.output_dim());
        let zm = f.transform_map(map.view()).unwrap();
        let zr = f.transform_rows(rows.view()).unwrap();
        prop_assert_eq!(zm.dim(), (f.output_dim(), h, w));
        for k in 0..h * w { for c in 0..f.output_dim() {
            prop_assert!((zm[[c, k / w, k % w]] - zr[[k, c]]).abs() < 1e-10);
        }}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// `pca-rank = sample` keeps only sample-supported components (indices below min(n-1, d),
    /// at least one), and equals `full` whenever the data have more samples than dimensions.
    #[test]
    fn sample_rank_keeps_only_supported_components(x in data(12, 10), t in 0.01f64..=1.0, opca in any::<bool>()) {
        let (n, d) = x.dim();
        let sel = if opca { Selection::Opca(t) } else { Selection::Pca(t) };
        let fit = |rank| ReductionParams::default().with_selection(sel).with_rank(rank).validate().unwrap().fit_rows(x.view()).unwrap();
        let (full, sample) = (fit(PcaRank::Full), fit(PcaRank::Sample));
        let supported = (n - 1).min(d).max(1);
        prop_assert!(sample.kept_range().end <= supported, "{:?} beyond {supported}", sample.kept_range());
        prop_assert!(sample.output_dim() >= 1);
        prop_assert_eq!(sample.eigenvalues(), full.eigenvalues());
        if n > d {
            prop_assert_eq!(sample.kept_range(), full.kept_range());
            prop_assert_eq!(sample.components(), full.components());
        }
    }
}
