//! Bad input -> typed errors; degenerate data; serde round trips.

use gaussian_fit::{
    CovarianceEstimator, FittedGaussian, GaussianError, GaussianParams, MomentAccumulator,
    MomentsError, PerPositionAccumulator, PerPositionGaussians,
};
use ndarray::{Array2, Array3, array};

fn lw() -> gaussian_fit::ValidGaussianParams {
    GaussianParams::default().validate().unwrap()
}

#[test]
fn estimator_text_forms() {
    assert_eq!(
        "ledoit-wolf".parse::<CovarianceEstimator>().unwrap(),
        CovarianceEstimator::LedoitWolf
    );
    assert_eq!(
        "empirical".parse::<CovarianceEstimator>().unwrap(),
        CovarianceEstimator::Empirical
    );
    assert_eq!(
        "ridge:0.01".parse::<CovarianceEstimator>().unwrap(),
        CovarianceEstimator::Ridge(0.01)
    );
    for e in [
        CovarianceEstimator::LedoitWolf,
        CovarianceEstimator::Empirical,
        CovarianceEstimator::Ridge(0.01),
    ] {
        assert_eq!(e.to_string().parse::<CovarianceEstimator>().unwrap(), e);
    }
    assert_eq!(
        CovarianceEstimator::default(),
        CovarianceEstimator::LedoitWolf
    );
    for bad in [
        "",
        "lw",
        "ridge",
        "ridge:",
        "ridge:x",
        "ridge:-1",
        "ridge:nan",
        "ridge:inf",
    ] {
        assert!(
            matches!(
                bad.parse::<CovarianceEstimator>(),
                Err(GaussianError::Parse { .. })
            ),
            "{bad}"
        );
    }
    assert!(
        GaussianParams::default()
            .with_estimator(CovarianceEstimator::Ridge(-0.1))
            .validate()
            .is_err()
    );
}

#[test]
fn too_few_and_empty() {
    let p = lw();
    let one = array![[1.0, 2.0]];
    assert_eq!(
        p.fit_rows(one.view()).unwrap_err(),
        GaussianError::TooFewSamples { needed: 2, got: 1 }
    );
    let empty = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        p.fit_rows(empty.view()).unwrap_err(),
        GaussianError::TooFewSamples { needed: 2, got: 0 }
    );
    assert!(matches!(
        p.fit(&MomentAccumulator::new(3)),
        Err(GaussianError::TooFewSamples { .. })
    ));
    let nodim = Array2::<f64>::zeros((5, 0));
    assert!(matches!(
        p.fit_rows(nodim.view()),
        Err(GaussianError::ZeroSize { .. })
    ));
    assert!(matches!(
        p.fit(&MomentAccumulator::new(0)),
        Err(GaussianError::ZeroSize { .. })
    ));
    let mut pp = PerPositionAccumulator::new(2, 2, 2);
    pp.push_map(Array3::<f32>::zeros((2, 2, 2)).view()).unwrap();
    assert!(matches!(
        p.fit_per_position(&pp),
        Err(GaussianError::TooFewSamples { .. })
    ));
    assert!(matches!(
        p.fit_per_position(&PerPositionAccumulator::new(2, 0, 3)),
        Err(GaussianError::ZeroSize { .. })
    ));
}

#[test]
fn dimension_mismatch() {
    let mut acc = MomentAccumulator::new(3);
    let e = acc.push_rows(array![[1.0, 2.0]].view()).unwrap_err();
    assert_eq!(
        e,
        MomentsError::DimensionMismatch {
            what: "columns of the pushed rows",
            expected: 3,
            got: 2
        }
    );
    assert!(e.to_string().contains("expected 3, got 2"));
    // wrapped transparently: same message, the detail kept
    let wrapped = GaussianError::from(e.clone());
    assert_eq!(wrapped.to_string(), e.to_string());
    assert_eq!(wrapped, GaussianError::Moments(e));
    assert!(acc.push_vector(array![1.0f32, 2.0].view()).is_err());
    assert!(acc.merge(&MomentAccumulator::new(2)).is_err());
    assert!(
        acc.push_map(Array3::<f32>::zeros((2, 1, 1)).view())
            .is_err()
    );
    let mut pp = PerPositionAccumulator::new(3, 2, 2);
    assert!(matches!(
        pp.push_map(Array3::<f32>::zeros((3, 2, 1)).view()),
        Err(GaussianError::Moments(MomentsError::DimensionMismatch {
            what: "columns of the pushed map",
            expected: 2,
            got: 1
        }))
    ));
    assert_eq!(
        pp.merge(&PerPositionAccumulator::new(3, 2, 1)),
        Err(GaussianError::Moments(MomentsError::Merge {
            what: "columns",
            expected: 2,
            got: 1
        }))
    );
    let mut nan = Array3::<f32>::zeros((3, 2, 2));
    nan[[1, 1, 0]] = f32::NAN;
    assert!(matches!(
        pp.push_map(nan.view()),
        Err(GaussianError::Moments(MomentsError::NonFinite { .. }))
    ));
    assert_eq!(pp.n_samples(), 0);
}

#[test]
fn identical_samples_give_identity_precision() {
    let x = Array2::from_elem((5, 3), 2.5);
    for e in [
        CovarianceEstimator::LedoitWolf,
        CovarianceEstimator::Empirical,
    ] {
        let g = GaussianParams::default()
            .with_estimator(e)
            .validate()
            .unwrap()
            .fit_rows(x.view())
            .unwrap();
        assert_eq!(g.shrinkage(), 0.0);
        assert_eq!(g.precision(), &Array2::<f64>::eye(3));
        assert_eq!(g.covariance(), &Array2::<f64>::zeros((3, 3)));
    }
    // ridge: covariance eps I, precision I / eps
    let g = GaussianParams::default()
        .with_estimator(CovarianceEstimator::Ridge(0.5))
        .validate()
        .unwrap()
        .fit_rows(x.view())
        .unwrap();
    let want = Array2::<f64>::eye(3) * 2.0;
    assert!(
        g.precision()
            .iter()
            .zip(want.iter())
            .all(|(a, b)| (a - b).abs() < 1e-12)
    );
}

#[test]
fn singular_covariance_is_floored_not_nan() {
    // 3 samples in 6 dimensions, empirical: rank 2, floored at 1e-9 tr / p
    let x = array![
        [1.0, 0.0, 2.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 2.0, 0.0, 1.0],
        [1.0, 1.0, 0.0, 0.0, 3.0, 3.0]
    ];
    let g = GaussianParams::default()
        .with_estimator(CovarianceEstimator::Empirical)
        .validate()
        .unwrap()
        .fit_rows(x.view())
        .unwrap();
    let tr: f64 = g.covariance().diag().sum();
    let max_prec = g.precision().iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    assert!(max_prec.is_finite());
    // largest precision eigenvalue is 1/floor = p / (1e-9 tr); entries are bounded by it
    assert!(max_prec <= 6.0 / (1e-9 * tr) * (1.0 + 1e-9));
    assert!(max_prec > 1e-3 * 6.0 / (1e-9 * tr));
    // Ledoit-Wolf on the same data shrinks, so its covariance is full rank
    let lwg = lw().fit_rows(x.view()).unwrap();
    assert!(lwg.shrinkage() > 0.0);
}

#[test]
fn overflowing_inputs_are_an_error() {
    let x = array![[1e200, 0.0], [-1e200, 1.0], [0.0, 2.0]];
    assert!(matches!(
        lw().fit_rows(x.view()),
        Err(GaussianError::Moments(MomentsError::NonFinite { .. }))
    ));
}

#[test]
fn serde_round_trips() {
    let params = GaussianParams::default().with_estimator(CovarianceEstimator::Ridge(0.01));
    let text = serde_json::to_string(&params).unwrap();
    assert_eq!(text, r#"{"estimator":"ridge:0.01"}"#);
    assert_eq!(
        serde_json::from_str::<GaussianParams>(&text).unwrap(),
        params
    );
    assert!(serde_json::from_str::<GaussianParams>(r#"{"estimator":"ridge:-2"}"#).is_err());

    let x = array![[1.0, 2.0], [2.0, 1.5], [0.0, 4.0], [3.0, 3.0]];
    let g = lw().fit_rows(x.view()).unwrap();
    let back: FittedGaussian = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(back, g);
    back.validate().unwrap();

    let mut pp = PerPositionAccumulator::new(2, 1, 2);
    for k in 0..4 {
        let m = Array3::from_shape_fn((2, 1, 2), |(c, _, j)| (k * (c + 1) + j * k * k) as f64);
        pp.push_map(m.view()).unwrap();
    }
    let ppg = lw().fit_per_position(&pp).unwrap();
    let back: PerPositionGaussians =
        serde_json::from_str(&serde_json::to_string(&ppg).unwrap()).unwrap();
    assert_eq!(back, ppg);
    back.validate().unwrap();
    // tampered file -> validate error
    let mut v: serde_json::Value = serde_json::to_value(&ppg).unwrap();
    v["w"] = serde_json::json!(3);
    let bad: PerPositionGaussians = serde_json::from_value(v).unwrap();
    assert!(matches!(
        bad.validate(),
        Err(GaussianError::InvalidModel(_))
    ));
}

#[test]
fn shared_map_push_equals_rows() {
    let map = Array3::from_shape_fn((3, 2, 4), |(c, i, j)| {
        ((c * 7 + i * 3 + j * j) % 5) as f32 + c as f32 * 0.5
    });
    let mut acc = MomentAccumulator::new(3);
    acc.push_map(map.view()).unwrap();
    let rows = Array2::from_shape_fn((8, 3), |(k, c)| map[[c, k / 4, k % 4]]);
    let a = lw().fit(&acc).unwrap();
    let b = lw().fit_rows(rows.view()).unwrap();
    assert!(
        a.covariance()
            .iter()
            .zip(b.covariance().iter())
            .all(|(x, y)| (x - y).abs() < 1e-12)
    );
}

#[test]
fn non_standard_layout_maps_are_accepted() {
    let hwc = Array3::from_shape_fn((3, 4, 5), |(i, j, c)| {
        ((i * 7 + j * 3 + c * c) % 11) as f32 + c as f32
    });
    let view = hwc.view().permuted_axes([2, 0, 1]);
    let std = view.as_standard_layout().into_owned();
    let mut a = MomentAccumulator::new(5);
    a.push_map(view).unwrap();
    let mut b = MomentAccumulator::new(5);
    b.push_map(std.view()).unwrap();
    assert_eq!(lw().fit(&a).unwrap(), lw().fit(&b).unwrap());
    let mut pa = PerPositionAccumulator::new(5, 3, 4);
    let mut pb = PerPositionAccumulator::new(5, 3, 4);
    for k in 0..3 {
        let m = hwc.mapv(|v| v * (k as f32 + 1.0) + (k * k) as f32);
        pa.push_map(m.view().permuted_axes([2, 0, 1])).unwrap();
        pb.push_map(
            m.view()
                .permuted_axes([2, 0, 1])
                .as_standard_layout()
                .view(),
        )
        .unwrap();
    }
    assert_eq!(
        lw().fit_per_position(&pa).unwrap(),
        lw().fit_per_position(&pb).unwrap()
    );
}
