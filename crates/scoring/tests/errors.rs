//! Bad input gives typed errors (never a panic, never a NaN score).

mod common;
use gaussian_fit::{GaussianParams, PerPositionAccumulator};
use ndarray::{Array2, Array3, ArrayView3, array};
use opca_reduction::{ReductionParams, Selection};
use scoring::*;

fn shapes() -> Vec<LevelShape> {
    vec![(3, 3, 2), (4, 1, 2)]
}

fn image(seed: u64) -> Vec<Array3<f64>> {
    // small deterministic pseudo-random maps (LCG), different per seed
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    shapes()
        .iter()
        .map(|&(c, h, w)| Array3::from_shape_fn((c, h, w), |_| next()))
        .collect()
}

fn views(maps: &[Array3<f64>]) -> Vec<ArrayView3<'_, f64>> {
    maps.iter().map(|m| m.view()).collect()
}

fn params(spatial: SpatialModel) -> ValidDetectorParams {
    DetectorParams::default()
        .with_reduction(ReductionParams::default().with_selection(Selection::None))
        .with_spatial(spatial)
        .validate()
        .unwrap()
}

fn fitted(spatial: SpatialModel) -> Detector {
    let mut f = DetectorFitter::new(params(spatial), &shapes()).unwrap();
    for s in 0..6 {
        f.push_phase1(&views(&image(s))).unwrap();
    }
    f.finish_phase1().unwrap();
    for s in 0..6 {
        f.push_phase2(&views(&image(s))).unwrap();
    }
    f.finish().unwrap()
}

#[test]
fn mahalanobis_bad_input() {
    let x = array![[1.0, 2.0], [2.0, 1.0], [3.0, 5.0], [0.0, 0.5]];
    let g = GaussianParams::default()
        .validate()
        .unwrap()
        .fit_rows(x.view())
        .unwrap();
    assert!(matches!(
        mahalanobis(&g, array![1.0, 2.0, 3.0].view()),
        Err(ScoringError::DimensionMismatch {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        mahalanobis(&g, array![f64::NAN, 2.0].view()),
        Err(ScoringError::NonFinite { .. })
    ));
    assert!(matches!(
        mahalanobis(&g, array![f64::INFINITY, 2.0].view()),
        Err(ScoringError::NonFinite { .. })
    ));
    // overflow of the quadratic form: an error, not inf / NaN
    assert!(matches!(
        mahalanobis(&g, array![1e300, -1e300].view()),
        Err(ScoringError::NonFiniteScore { .. })
    ));
    assert!(matches!(
        mahalanobis_rows(&g, Array2::<f64>::zeros((3, 5)).view()),
        Err(ScoringError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        mahalanobis_rows(&g, array![[1.0, f64::NAN]].view()),
        Err(ScoringError::NonFinite { .. })
    ));
    assert!(matches!(
        score_map_shared(&g, Array3::<f64>::zeros((3, 2, 2)).view()),
        Err(ScoringError::DimensionMismatch { .. })
    ));
    let mut nan_map = Array3::<f64>::zeros((2, 2, 2));
    nan_map[(1, 1, 0)] = f64::NAN;
    assert!(matches!(
        score_map_shared(&g, nan_map.view()),
        Err(ScoringError::NonFinite { .. })
    ));

    let mut acc = PerPositionAccumulator::new(2, 2, 2);
    for s in 0..4 {
        acc.push_map(
            Array3::from_shape_fn((2, 2, 2), |(c, i, j)| {
                ((s * 7 + c * 3 + i + j * 5) % 4) as f64
            })
            .view(),
        )
        .unwrap();
    }
    let pp = GaussianParams::default()
        .validate()
        .unwrap()
        .fit_per_position(&acc)
        .unwrap();
    assert!(matches!(
        score_map_per_position(&pp, Array3::<f64>::zeros((3, 2, 2)).view()),
        Err(ScoringError::DimensionMismatch { .. })
    ));
    assert!(matches!(
        score_map_per_position(&pp, Array3::<f64>::zeros((2, 3, 2)).view()),
        Err(ScoringError::ShapeMismatch {
            expected: (2, 2),
            got: (3, 2),
            ..
        })
    ));
    assert!(matches!(
        score_map_per_position(&pp, nan_map.view()),
        Err(ScoringError::NonFinite { .. })
    ));
}

#[test]
fn params_and_text_forms() {
    for s in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            DetectorParams::default()
                .with_blur_sigma(Some(s))
                .validate(),
            Err(ScoringError::InvalidSigma { .. })
        ));
    }
    assert!(
        DetectorParams::default()
            .with_blur_sigma(Some(4.0))
            .validate()
            .is_ok()
    );
    let bad = DetectorParams::default().with_reduction(ReductionParams::default().with_selection(Selection::Opca(0.0)));
    assert!(matches!(bad.validate(), Err(ScoringError::Reduction(_))));

    for t in SpatialModel::TEXT_FORMS {
        assert_eq!(t.parse::<SpatialModel>().unwrap().to_string(), *t);
    }
    for t in ImageScore::TEXT_FORMS {
        assert_eq!(t.parse::<ImageScore>().unwrap().to_string(), *t);
    }
    for t in PixelPca::TEXT_FORMS {
        assert_eq!(t.parse::<PixelPca>().unwrap().to_string(), *t);
    }
    assert_eq!(SpatialModel::default(), SpatialModel::PerPosition);
    assert_eq!(ImageScore::default(), ImageScore::Pooled);
    assert_eq!(PixelPca::default(), PixelPca::PerLevel);
    let err = "max".parse::<ImageScore>().unwrap_err();
    assert!(matches!(err, ScoringError::Parse { .. }));
    assert!(err.to_string().contains("map-max"), "{err}");
    // serde uses the text forms
    let p = DetectorParams::default().with_spatial(SpatialModel::Shared);
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.contains("\"shared\"") && json.contains("\"per-level\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<DetectorParams>(&json).unwrap(), p);
}

#[test]
fn fitter_phase_and_count_errors() {
    assert!(matches!(
        DetectorFitter::new(params(SpatialModel::Shared), &[]),
        Err(ScoringError::EmptyInput { .. })
    ));
    assert!(matches!(
        DetectorFitter::new(params(SpatialModel::Shared), &[(3, 0, 2)]),
        Err(ScoringError::EmptyInput { .. })
    ));
    let mut f = DetectorFitter::new(params(SpatialModel::PerPosition), &shapes()).unwrap();
    assert_eq!(f.phase(), FitPhase::Phase1);
    let img = image(1);
    assert!(matches!(
        f.push_phase2(&views(&img)),
        Err(ScoringError::WrongPhase { .. })
    ));
    assert!(matches!(f.finish(), Err(ScoringError::WrongPhase { .. })));
    // wrong level count / shape / NaN: nothing is added
    assert!(matches!(
        f.push_phase1(&views(&img[..1])),
        Err(ScoringError::LevelCount {
            expected: 2,
            got: 1
        })
    ));
    let wrong = vec![img[0].clone(), Array3::zeros((4, 2, 2))];
    assert!(matches!(
        f.push_phase1(&views(&wrong)),
        Err(ScoringError::LevelShape {
            level: 1,
            expected: (4, 1, 2),
            got: (4, 2, 2)
        })
    ));
    let mut nan = img.clone();
    nan[1][(2, 0, 1)] = f64::NAN;
    assert!(matches!(
        f.push_phase1(&views(&nan)),
        Err(ScoringError::NonFinite { .. })
    ));
    assert_eq!(f.n_phase1(), 0);
    f.push_phase1(&views(&img)).unwrap();
    assert!(matches!(
        f.finish_phase1(),
        Err(ScoringError::NotEnoughImages { min: 2, got: 1 })
    ));
    assert_eq!(f.phase(), FitPhase::Phase1);
    f.push_phase1(&views(&image(2))).unwrap();
    f.push_phase1(&views(&image(3))).unwrap();
    f.finish_phase1().unwrap();
    assert!(matches!(
        f.finish_phase1(),
        Err(ScoringError::WrongPhase { .. })
    ));
    assert!(matches!(
        f.push_phase1(&views(&img)),
        Err(ScoringError::WrongPhase { .. })
    ));
    f.push_phase2(&views(&img)).unwrap();
    f.push_phase2(&views(&image(2))).unwrap();
    assert!(matches!(
        f.finish(),
        Err(ScoringError::PhaseCountMismatch {
            phase1: 3,
            phase2: 2
        })
    ));
    assert!(matches!(
        f.push_phase2(&views(&nan)),
        Err(ScoringError::NonFinite { .. })
    ));
    f.push_phase2(&views(&image(3))).unwrap();
    let d = f.finish().unwrap();
    d.validate().unwrap();
}

#[test]
fn score_bad_input() {
    for spatial in [SpatialModel::PerPosition, SpatialModel::Shared] {
        let d = fitted(spatial);
        let img = image(99);
        let s = d.score(&views(&img), 5, 7).unwrap();
        assert_eq!(s.map.dim(), (5, 7));
        assert!(s.map.iter().all(|v| v.is_finite() && *v >= 0.0));
        assert!(matches!(
            d.score(&views(&img), 0, 7),
            Err(ScoringError::ZeroOutputSize { .. })
        ));
        assert!(matches!(
            d.score(&views(&img), 5, 0),
            Err(ScoringError::ZeroOutputSize { .. })
        ));
        assert!(matches!(
            d.score(&views(&img[1..]), 5, 7),
            Err(ScoringError::LevelCount {
                expected: 2,
                got: 1
            })
        ));
        let swapped = vec![img[1].clone(), img[0].clone()];
        assert!(matches!(
            d.score(&views(&swapped), 5, 7),
            Err(ScoringError::LevelShape { level: 0, .. })
        ));
        let mut nan = img.clone();
        nan[0][(0, 0, 0)] = f64::NAN;
        let e = d.score(&views(&nan), 5, 7).unwrap_err();
        assert!(matches!(e, ScoringError::NonFinite { .. }));
        assert!(e.to_string().contains("level 0"), "{e}");
        let mut inf = img.clone();
        inf[1][(0, 0, 1)] = f64::NEG_INFINITY;
        assert!(matches!(
            d.score(&views(&inf), 5, 7),
            Err(ScoringError::NonFinite { .. })
        ));
        // overflowing features: an error, never a NaN or infinite score
        let huge: Vec<_> = img.iter().map(|m| m.mapv(|v| v * 1e300)).collect();
        assert!(d.score(&views(&huge), 5, 7).is_err());
        // f32 input is accepted
        let img32: Vec<_> = img.iter().map(|m| m.mapv(|v| v as f32)).collect();
        let v32: Vec<_> = img32.iter().map(|m| m.view()).collect();
        let s32 = d.score(&v32, 5, 7).unwrap();
        assert!((s32.pooled - s.pooled).abs() <= 1e-4 * s.pooled.max(1.0));
    }
}

/// Detector::validate on models tampered with through their serialised form.
#[test]
fn validate_rejects_inconsistent_models() {
    let d = fitted(SpatialModel::PerPosition);
    let base = serde_json::to_value(&d).unwrap();
    let check = |edit: &dyn Fn(&mut serde_json::Value), expect: &str| {
        let mut v = base.clone();
        // The parameters are stored as JSON text: edit them as a value, then write them back.
        v["params"] = serde_json::from_str(v["params"].as_str().unwrap()).unwrap();
        edit(&mut v);
        v["params"] = v["params"].to_string().into();
        let det: Detector = serde_json::from_value(v).unwrap();
        let err = det.validate().unwrap_err();
        assert!(
            err.to_string().contains(expect),
            "expected {expect:?} in {err}"
        );
        // scoring an unvalidated inconsistent model must not panic either
        let shapes = det.level_shapes().to_vec();
        let maps: Vec<Array3<f64>> = shapes.iter().map(|&s| Array3::from_elem(s, 0.1)).collect();
        let _ = det.score(&views(&maps), 4, 4);
        let _ = det.score(&views(&image(5)), 4, 4);
    };
    check(
        &|v| v["level_shapes"][0][0] = 5.into(),
        "level 0 image reduction",
    );
    check(&|v| v["level_shapes"][1][1] = 3.into(), "grid");
    check(&|v| v["level_shapes"][1][1] = 0.into(), "level shapes");
    check(
        &|v| {
            v["level_shapes"].as_array_mut().unwrap().pop();
        },
        "2 level models for 1 level shapes",
    );
    check(
        &|v| v["params"]["spatial"] = "shared".into(),
        "spatial model shared",
    );
    check(
        &|v| v["params"]["pixel_pca"] = "from-pooled".into(),
        "from-pooled",
    );
    check(
        &|v| v["params"]["reduction"]["selection"] = "opca:0.5".into(),
        "parameters say opca:0.5",
    );
    check(&|v| v["params"]["blur_sigma"] = (-2.0).into(), "sigma");
    // swap the two levels' models: dimensions no longer agree with the shapes
    check(
        &|v| {
            let levels = v["levels"].as_array_mut().unwrap();
            levels.swap(0, 1);
        },
        "level 0",
    );
    d.validate().unwrap();
    assert_eq!(d.levels().len(), 2);
    assert_eq!(d.level_shapes(), &shapes()[..]);
    assert_eq!(d.params().spatial, SpatialModel::PerPosition);
}

/// Parameters added in a later version: a detector serialised without them still loads, with
/// the missing parameter at its default (the parameters travel as JSON text).
#[test]
fn params_missing_from_an_older_file_take_their_defaults() {
    let d = fitted(SpatialModel::PerPosition);
    let mut v = serde_json::to_value(&d).unwrap();
    let mut params: serde_json::Value = serde_json::from_str(v["params"].as_str().unwrap()).unwrap();
    params.as_object_mut().unwrap().remove("blur_sigma");
    params["reduction"].as_object_mut().unwrap().clear();
    v["params"] = params.to_string().into();
    let back: Detector = serde_json::from_value(v).unwrap();
    assert_eq!(back.params().blur_sigma, DetectorParams::default().blur_sigma);
    assert_eq!(back.params().reduction, ReductionParams::default());
    assert_eq!(back.levels(), d.levels());
}
