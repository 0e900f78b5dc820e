//! Parity of the Mahalanobis scoring and the whole detector against the independent
//! NumPy / scikit-learn / SciPy reference in tests/fixtures/generate.py.

mod common;
use common::*;
use gaussian_fit::{GaussianParams, PerPositionAccumulator};
use ndarray::{Array2, Array3};
use opca_reduction::{ReductionParams, Selection};
use scoring::*;
use serde_json::Value;

const REL: f64 = 1e-9;

#[test]
fn mahalanobis_rows_match_sklearn_scipy() {
    let fx = load("gaussian.json");
    let rows = &fx["rows"];
    let train = arr2(&rows["train"]);
    let test = arr2(&rows["test"]);
    let exp = vec1(&rows["expected"]);
    let g = GaussianParams::default()
        .validate()
        .unwrap()
        .fit_rows(train.view())
        .unwrap();
    let got = mahalanobis_rows(&g, test.view()).unwrap();
    for (i, (a, b)) in got.iter().zip(&exp).enumerate() {
        assert!(close(*a, *b, REL), "row {i}: got {a}, expected {b}");
        let single = mahalanobis(&g, test.row(i)).unwrap();
        assert!(
            close(single, *b, REL),
            "vector {i}: got {single}, expected {b}"
        );
    }
    // f32 input takes the same path
    let test32 = test.mapv(|v| v as f32);
    let got32 = mahalanobis_rows(&g, test32.view()).unwrap();
    for (a, b) in got32.iter().zip(&exp) {
        assert!(close(*a, *b, 1e-5), "f32: got {a}, expected {b}");
    }
}

#[test]
fn score_maps_match_reference() {
    let fx = load("gaussian.json");
    let maps = &fx["maps"];
    let train: Vec<Array3<f64>> = maps["train"].as_array().unwrap().iter().map(arr3).collect();
    let test = arr3(&maps["test"]);
    let (k, h, w) = test.dim();
    let params = GaussianParams::default().validate().unwrap();

    // shared: all positions of all images as rows
    let mut rows = Vec::new();
    for m in &train {
        for i in 0..h {
            for j in 0..w {
                rows.extend((0..k).map(|c| m[(c, i, j)]));
            }
        }
    }
    let rows = Array2::from_shape_vec((train.len() * h * w, k), rows).unwrap();
    let g = params.fit_rows(rows.view()).unwrap();
    let got = score_map_shared(&g, test.view()).unwrap();
    assert_close2(&got, &arr2(&maps["shared"]), REL, "shared map");

    let mut acc = PerPositionAccumulator::new(k, h, w);
    for m in &train {
        acc.push_map(m.view()).unwrap();
    }
    let pp = params.fit_per_position(&acc).unwrap();
    let got = score_map_per_position(&pp, test.view()).unwrap();
    assert_close2(&got, &arr2(&maps["per_position"]), REL, "per-position map");
}

pub fn images(v: &Value) -> Vec<Vec<Array3<f64>>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|img| img.as_array().unwrap().iter().map(arr3).collect())
        .collect()
}

pub fn views(maps: &[Array3<f64>]) -> Vec<ndarray::ArrayView3<'_, f64>> {
    maps.iter().map(|m| m.view()).collect()
}

fn params_of(case: &Value) -> DetectorParams {
    DetectorParams::default()
        .with_reduction(
            ReductionParams::default().with_selection(
                case["selection"]
                    .as_str()
                    .unwrap()
                    .parse::<Selection>()
                    .unwrap(),
            ),
        )
        .with_spatial(case["spatial"].as_str().unwrap().parse().unwrap())
        .with_pixel_pca(case["pixel_pca"].as_str().unwrap().parse().unwrap())
        .with_image_score(case["image_score"].as_str().unwrap().parse().unwrap())
        .with_blur_sigma(case["blur_sigma"].as_f64())
}

pub fn fit(params: DetectorParams, shapes: &[LevelShape], train: &[Vec<Array3<f64>>]) -> Detector {
    let mut fitter = DetectorFitter::new(params.validate().unwrap(), shapes).unwrap();
    for img in train {
        fitter.push_phase1(&views(img)).unwrap();
    }
    fitter.finish_phase1().unwrap();
    for img in train {
        fitter.push_phase2(&views(img)).unwrap();
    }
    fitter.finish().unwrap()
}

#[test]
fn detector_matches_reference_end_to_end() {
    let fx = load("detector.json");
    let shapes: Vec<LevelShape> = fx["level_shapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (u(&s[0]), u(&s[1]), u(&s[2])))
        .collect();
    let train = images(&fx["train"]);
    let test = images(&fx["test"]);
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let det = fit(params_of(case), &shapes, &train);
        det.validate().unwrap();
        for (l, lev) in det.levels().iter().enumerate() {
            assert_eq!(
                lev.image.reduction.output_dim(),
                u(&case["k_image"][l]),
                "{name} k_image"
            );
            assert_eq!(
                lev.pixel.reduction.output_dim(),
                u(&case["k_pixel"][l]),
                "{name} k_pixel"
            );
        }
        let (oh, ow) = (u(&case["out_h"]), u(&case["out_w"]));
        for (t, (img, exp)) in test
            .iter()
            .zip(case["expected"].as_array().unwrap())
            .enumerate()
        {
            let what = format!("{name} test image {t}");
            let (pooled, maps) = det.score_levels(&views(img)).unwrap();
            for (l, (m, e)) in maps
                .iter()
                .zip(exp["level_maps"].as_array().unwrap())
                .enumerate()
            {
                assert_close2(m, &arr2(e), REL, &format!("{what} level {l} map"));
            }
            for (a, b) in pooled.iter().zip(vec1(&exp["per_level_pooled"])) {
                assert!(
                    close(*a, b, REL),
                    "{what} per-level pooled: got {a}, expected {b}"
                );
            }
            let s = det.score(&views(img), oh, ow).unwrap();
            assert!(
                close(s.image, f(&exp["image"]), REL),
                "{what} image: {} vs {}",
                s.image,
                exp["image"]
            );
            assert!(close(s.pooled, f(&exp["pooled"]), REL), "{what} pooled");
            assert_close2(&s.map, &arr2(&exp["map"]), REL, &format!("{what} map"));
            assert_eq!(s.per_level_pooled, pooled);
        }
    }
}

#[test]
fn detector_serde_round_trip_scores_identically() {
    let fx = load("detector.json");
    let shapes: Vec<LevelShape> = vec![(5, 4, 4), (7, 2, 2)];
    let train = images(&fx["train"]);
    let test = images(&fx["test"]);
    for case in fx["cases"].as_array().unwrap() {
        let det = fit(params_of(case), &shapes, &train);
        let json = serde_json::to_string(&det).unwrap();
        let back: Detector = serde_json::from_str(&json).unwrap();
        back.validate().unwrap();
        assert_eq!(back.params(), det.params());
        assert_eq!(back.level_shapes(), det.level_shapes());
        // serde_json's float parsing is not bit-exact (no `float_roundtrip` feature): compare
        // the scores at 1e-12
        let a = det.score(&views(&test[1]), 8, 8).unwrap();
        let b = back.score(&views(&test[1]), 8, 8).unwrap();
        assert!(close(a.image, b.image, 1e-12));
        assert_close2(&a.map, &b.map, 1e-12, "round-tripped map");
    }
}
