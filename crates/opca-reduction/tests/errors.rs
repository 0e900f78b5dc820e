//! Bad input -> typed errors; degenerate data; serde round trips.

use ndarray::{Array2, Array3, array};
use opca_reduction::{
    FittedReduction, MomentAccumulator, MomentsError, ReductionError, ReductionParams, Selection,
};

#[test]
fn selection_text_forms() {
    assert_eq!(
        "opca:0.05".parse::<Selection>().unwrap(),
        Selection::Opca(0.05)
    );
    assert_eq!(
        "pca:0.95".parse::<Selection>().unwrap(),
        Selection::Pca(0.95)
    );
    assert_eq!("none".parse::<Selection>().unwrap(), Selection::None);
    assert_eq!("opca:1".parse::<Selection>().unwrap(), Selection::Opca(1.0));
    assert_eq!(Selection::default(), Selection::Opca(0.05));
    for s in [
        Selection::Opca(0.05),
        Selection::Pca(0.95),
        Selection::None,
        Selection::Opca(0.37500000000000006),
    ] {
        assert_eq!(s.to_string().parse::<Selection>().unwrap(), s);
    }
    assert_eq!(Selection::Opca(0.05).to_string(), "opca:0.05");
    for bad in [
        "",
        "opca",
        "opca:",
        "opca:0",
        "opca:-0.1",
        "opca:1.5",
        "pca:nan",
        "pca:inf",
        "npca:0.1",
        "None",
        "pca:0.9x",
    ] {
        assert!(
            matches!(bad.parse::<Selection>(), Err(ReductionError::Parse { .. })),
            "{bad}"
        );
    }
    for t in [0.0, -1.0, 1.0000001, f64::NAN] {
        assert!(matches!(
            ReductionParams::default()
                .with_selection(Selection::Pca(t))
                .validate(),
            Err(ReductionError::ThresholdOutOfRange(_))
        ));
    }
}

#[test]
fn empty_zero_dim_and_mismatch() {
    let p = ReductionParams::default().validate().unwrap();
    assert_eq!(
        p.fit(&MomentAccumulator::new(3)).unwrap_err(),
        ReductionError::TooFewSamples { needed: 1, got: 0 }
    );
    assert!(matches!(
        p.fit_rows(Array2::<f64>::zeros((0, 3)).view()),
        Err(ReductionError::TooFewSamples { .. })
    ));
    assert_eq!(
        p.fit_rows(Array2::<f64>::zeros((4, 0)).view()).unwrap_err(),
        ReductionError::ZeroDimension
    );
    assert_eq!(
        p.fit(&MomentAccumulator::new(0)).unwrap_err(),
        ReductionError::ZeroDimension
    );
    let mut acc = MomentAccumulator::new(3);
    let e = acc.push_rows(array![[1.0, 2.0]].view()).unwrap_err();
    assert!(e.to_string().contains("expected 3, got 2"), "{e}");
    // wrapped transparently: same message, the detail kept
    let wrapped = ReductionError::from(e.clone());
    assert_eq!(wrapped.to_string(), e.to_string());
    assert_eq!(wrapped, ReductionError::Moments(e));
    assert!(acc.push_vector(array![1.0f32].view()).is_err());
    assert!(
        acc.push_map(Array3::<f32>::zeros((2, 2, 2)).view())
            .is_err()
    );
    assert_eq!(
        acc.merge(&MomentAccumulator::new(4)).unwrap_err(),
        MomentsError::Merge {
            what: "dimensions",
            expected: 3,
            got: 4
        }
    );
    let f = p
        .fit_rows(array![[1.0, 2.0, 3.0], [0.0, 1.0, 5.0]].view())
        .unwrap();
    assert!(matches!(
        f.transform_vector(array![1.0, 2.0].view()),
        Err(ReductionError::Moments(MomentsError::DimensionMismatch {
            what: "length of the vector to transform",
            expected: 3,
            got: 2
        }))
    ));
    assert!(matches!(
        f.transform_rows(Array2::<f32>::zeros((2, 4)).view()),
        Err(ReductionError::Moments(
            MomentsError::DimensionMismatch { .. }
        ))
    ));
    assert!(matches!(
        f.transform_map(Array3::<f32>::zeros((2, 2, 2)).view()),
        Err(ReductionError::Moments(
            MomentsError::DimensionMismatch { .. }
        ))
    ));
    assert!(matches!(
        f.transform_vector(array![1.0, f64::NAN, 0.0].view()),
        Err(ReductionError::Moments(MomentsError::NonFinite {
            what: "vector to transform"
        }))
    ));
    let mut m = Array3::<f32>::zeros((3, 2, 2));
    m[[0, 1, 1]] = f32::INFINITY;
    assert!(matches!(
        f.transform_map(m.view()),
        Err(ReductionError::Moments(MomentsError::NonFinite { .. }))
    ));
}

#[test]
fn single_sample_and_zero_total_variance_keep_everything() {
    for sel in [Selection::Opca(0.05), Selection::Pca(0.5), Selection::None] {
        let p = ReductionParams::default()
            .with_selection(sel)
            .validate()
            .unwrap();
        let f = p.fit_rows(array![[1.0, 2.0, 3.0]].view()).unwrap();
        assert_eq!(f.output_dim(), 3);
        assert!(f.eigenvalues().iter().all(|&l| l == 0.0));
        assert_eq!(f.kept_variance_share(), 1.0);
        let z = f.transform_vector(array![1.0, 2.0, 4.0].view()).unwrap();
        assert!(z.iter().all(|v| v.is_finite()));
        assert!((z.dot(&z) - 1.0).abs() < 1e-12);
        let g = p.fit_rows(Array2::from_elem((5, 4), 7.0).view()).unwrap();
        assert_eq!(g.output_dim(), 4);
    }
}

#[test]
fn fewer_samples_than_dims_opca_keeps_zero_directions() {
    // 3 samples in 6 dims: rank 2, four exactly-zero eigenvalues
    let x = array![
        [1.0, 0.0, 2.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 2.0, 0.0, 1.0],
        [1.0, 1.0, 0.0, 0.0, 3.0, 3.0f32]
    ];
    let f = ReductionParams::default()
        .validate()
        .unwrap()
        .fit_rows(x.view())
        .unwrap();
    let zeros = f.eigenvalues().iter().filter(|&&l| l == 0.0).count();
    assert_eq!(zeros, 4);
    assert_eq!(f.output_dim(), 5); // 4 zero directions + the smaller non-zero one
    let z = f.transform_rows(x.view()).unwrap();
    assert!(z.iter().all(|v| v.is_finite()));
    // training data have (numerically) zero coordinates on the zero-variance directions
    for c in 1..5 {
        assert!(z.column(c).iter().all(|v| v.abs() < 1e-9));
    }
}

#[test]
fn serde_round_trips() {
    let params = ReductionParams::default().with_selection(Selection::Pca(0.95));
    let text = serde_json::to_string(&params).unwrap();
    assert_eq!(text, r#"{"selection":"pca:0.95","rank":"full"}"#);
    assert_eq!(
        serde_json::from_str::<ReductionParams>(&text).unwrap(),
        params
    );
    // Written before `rank` existed: the rank takes its default.
    assert_eq!(serde_json::from_str::<ReductionParams>(r#"{"selection":"pca:0.95"}"#).unwrap(), params);
    assert!(serde_json::from_str::<ReductionParams>(r#"{"selection":"pca:0.95","rank":"half"}"#).is_err());
    assert!(serde_json::from_str::<ReductionParams>(r#"{"selection":"pca:2"}"#).is_err());
    let f = params
        .validate()
        .unwrap()
        .fit_rows(
            array![
                [1.0, 2.0, 0.5],
                [2.0, 1.0, 0.0],
                [0.0, 4.0, 1.0],
                [3.0, 3.0, 2.0]
            ]
            .view(),
        )
        .unwrap();
    let back: FittedReduction = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
    assert_eq!(back, f);
    back.validate().unwrap();
    let mut v = serde_json::to_value(&f).unwrap();
    v["kept_start"] = serde_json::json!(3);
    let bad: FittedReduction = serde_json::from_value(v).unwrap();
    assert!(matches!(
        bad.validate(),
        Err(ReductionError::InvalidModel(_))
    ));
}

#[test]
fn non_standard_layout_maps_are_accepted() {
    // (h, w, c) memory, viewed as (c, h, w): non-standard strides
    let hwc = Array3::from_shape_fn((3, 4, 5), |(i, j, c)| {
        ((i * 7 + j * 3 + c * c) % 11) as f32 + c as f32
    });
    let chw_view = hwc.view().permuted_axes([2, 0, 1]);
    let chw = chw_view.as_standard_layout().into_owned();
    let p = ReductionParams::default()
        .with_selection(Selection::Pca(0.9))
        .validate()
        .unwrap();
    let mut a = MomentAccumulator::new(5);
    a.push_map(chw_view).unwrap();
    let mut b = MomentAccumulator::new(5);
    b.push_map(chw.view()).unwrap();
    let fa = p.fit(&a).unwrap();
    let fb = p.fit(&b).unwrap();
    assert_eq!(fa, fb);
    assert_eq!(
        fa.transform_map(chw_view).unwrap(),
        fa.transform_map(chw.view()).unwrap()
    );
    let fz = fa
        .transform_map(
            hwc.view()
                .reversed_axes()
                .reversed_axes()
                .permuted_axes([2, 0, 1]),
        )
        .unwrap();
    assert_eq!(fz.dim(), (fa.output_dim(), 3, 4));
}
