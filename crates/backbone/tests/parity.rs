//! Parity tests against the independent Python/onnxruntime/PIL references in
//! `tests/fixtures/` (made by `tests/fixtures/generate.py`).

use std::path::PathBuf;

use backbone::{
    Architecture, BackboneSpec, EfficientNetConfig, FeatureExtractor, Preprocess, WeightsSource,
    load_image, normalize, resize_bilinear_pil,
};
use ndarray::{Array4, Axis, stack};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn dev(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/dev")
        .join(rel)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Compares a level output with its reference statistics; returns (rel L2 on the subset,
/// rel diff of the full L2 norm).
fn compare(got: &Array4<f32>, want: &Value) -> (f64, f64) {
    let shape: Vec<usize> = want["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let d = got.dim();
    assert_eq!(vec![d.0, d.1, d.2, d.3], shape, "shape");
    let flat: Vec<f32> = got.iter().copied().collect();
    let n = flat.len();
    let sub = want["subset"].as_array().unwrap();
    let m = sub.len();
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (i, w) in sub.iter().enumerate() {
        let idx = i * (n - 1) / (m - 1);
        let w = w.as_f64().unwrap();
        num += (f64::from(flat[idx]) - w).powi(2);
        den += w * w;
    }
    let l2: f64 = flat
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt();
    let wl2 = want["l2"].as_f64().unwrap();
    ((num / den.max(1e-30)).sqrt(), (l2 - wl2).abs() / wl2)
}

fn synthetic_input(batch: usize, size: usize) -> Array4<f32> {
    let v: Vec<f32> = (0..batch * 3 * size * size)
        .map(|i| (2.0 * (0.013 * i as f64 + 0.3).sin()) as f32)
        .collect();
    Array4::from_shape_vec((batch, 3, size, size), v).unwrap()
}

#[test]
fn lite0_every_level_matches_onnxruntime_on_dev_images() {
    let r = json("lite0_reference.json");
    let imgs: Vec<_> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| normalize(&load_image(fixture(p.as_str().unwrap())).unwrap()))
        .collect();
    let views: Vec<_> = imgs.iter().map(|a| a.view()).collect();
    let x = stack(Axis(0), &views).unwrap();
    let spec: BackboneSpec = "efficientnet-lite0".parse().unwrap();
    let levels: Vec<usize> = (0..9).collect();
    let fx = FeatureExtractor::new(
        spec,
        WeightsSource::Embedded,
        &levels,
        Preprocess::new(224),
        Default::default(),
    )
    .unwrap();
    let out = fx.extract(x.view()).unwrap();
    for (l, (got, want)) in out.iter().zip(r["levels"].as_array().unwrap()).enumerate() {
        let (rel, norm) = compare(got, want);
        eprintln!("lite0 level {l}: rel L2 {rel:.2e}, norm {norm:.2e}");
        assert!(
            rel <= 1e-4 && norm <= 1e-4,
            "level {l}: rel L2 {rel}, norm diff {norm}"
        );
    }
    // Deterministic on CPU: bit-identical on a second run.
    let again = fx.extract(x.view()).unwrap();
    assert!(out.iter().zip(&again).all(|(a, b)| a == b));
    // Levels come back in the requested order, identical to the full run.
    let fx2 = FeatureExtractor::new(
        "efficientnet-lite0".parse().unwrap(),
        WeightsSource::Onnx(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("weights/efficientnet-lite0/efficientnet-lite0.onnx"),
        ),
        &[4, 1],
        Preprocess::new(224),
        Default::default(),
    )
    .unwrap();
    assert_eq!(fx2.identity().weights_sha256, fx.identity().weights_sha256);
    assert!(fx.identity().weights_sha256.starts_with("4f4332ac"));
    assert_eq!(fx2.level_shapes(), vec![(80, 14, 14), (16, 112, 112)]);
    let o2 = fx2.extract(x.view()).unwrap();
    assert_eq!(o2[0], out[4]);
    assert_eq!(o2[1], out[1]);
}

#[test]
fn resize_matches_pil_bilinear_exactly() {
    let r = json("pil_resize.json");
    for c in r["cases"].as_array().unwrap() {
        let src = load_image(dev(c["source"].as_str().unwrap())).unwrap();
        let size = c["size"].as_u64().unwrap() as u32;
        let want = load_image(fixture(c["reference"].as_str().unwrap())).unwrap();
        let got = resize_bilinear_pil(&src, size, size);
        assert_eq!(got.dimensions(), want.dimensions());
        let max = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert_eq!(max, 0, "{c}: max difference {max} grey levels vs PIL");
    }
}

fn synthetic_case(name: &str, fixture_name: &str) {
    let r = json(fixture_name);
    let spec: BackboneSpec = name.parse().unwrap();
    let size = r["size"].as_u64().unwrap() as u32;
    let seed = r["seed"].as_u64().unwrap();
    let levels: Vec<usize> = (0..spec.num_levels()).collect();
    let fx = FeatureExtractor::new(
        spec,
        WeightsSource::Synthetic(seed),
        &levels,
        Preprocess::new(size),
        Default::default(),
    )
    .unwrap();
    let out = fx
        .extract(synthetic_input(1, size as usize).view())
        .unwrap();
    let want = r["levels"].as_array().unwrap();
    assert_eq!(out.len(), want.len());
    for (l, (got, want)) in out.iter().zip(want).enumerate() {
        let (rel, norm) = compare(got, want);
        eprintln!("{name} level {l}: rel L2 {rel:.2e}, norm {norm:.2e}");
        assert!(
            rel <= 1e-4 && norm <= 1e-4,
            "{name} level {l}: rel L2 {rel}, norm diff {norm}"
        );
    }
    let shapes: Vec<(usize, usize, usize)> = out
        .iter()
        .map(|a| (a.dim().1, a.dim().2, a.dim().3))
        .collect();
    assert_eq!(fx.level_shapes(), shapes);
}

#[test]
fn efficientnet_b4_synthetic_weights_match_independent_onnx_graph() {
    synthetic_case("efficientnet-b4-timm", "synthetic_b4.json");
}

#[test]
fn resnet18_synthetic_weights_match_independent_onnx_graph() {
    synthetic_case("resnet18", "synthetic_resnet18.json");
}

#[test]
fn custom_config_onnx_with_unfolded_batch_norm_matches_onnxruntime() {
    let r = json("tiny_effnet_bn.json");
    let spec = BackboneSpec::custom(
        "tiny",
        Architecture::EfficientNet(EfficientNetConfig::timm(0.25, 0.5)),
        64,
    );
    let levels: Vec<usize> = (0..9).collect();
    let fx = FeatureExtractor::new(
        spec,
        WeightsSource::Onnx(fixture("tiny_effnet_bn.onnx")),
        &levels,
        Preprocess::new(64),
        Default::default(),
    )
    .unwrap();
    let out = fx.extract(synthetic_input(2, 64).view()).unwrap();
    for (l, (got, want)) in out.iter().zip(r["levels"].as_array().unwrap()).enumerate() {
        let (rel, norm) = compare(got, want);
        assert!(
            rel <= 1e-4 && norm <= 1e-4,
            "tiny level {l}: rel L2 {rel}, norm diff {norm}"
        );
    }
}

#[test]
fn parameter_shapes_match_published_timm_and_torchvision_models() {
    let r = json("published_shapes.json");
    for (name, key) in [("efficientnet-b4", "b4"), ("resnet18", "resnet18")] {
        let spec: BackboneSpec = name.parse().unwrap();
        let got = spec.published_parameter_shapes();
        let want: Vec<(String, Vec<usize>)> = r[key]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1].as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_u64().unwrap() as usize)
                        .collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}");
        let total: usize = got
            .iter()
            .filter(|(n, _)| !n.contains("running_"))
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        // Published totals: timm efficientnet_b4 19,341,616; torchvision resnet18 11,689,512.
        let published = if key == "b4" { 19_341_616 } else { 11_689_512 };
        assert_eq!(total, published, "{name}");
    }
}

/// The CPU extractor runs large inputs image by image and small ones as a whole batch
/// (`extractor::PER_IMAGE_MIN_PIXELS` = 300 x 300); both must give, for each image, what
/// that image alone gives (batch 1: steps split over the threads). Tiny EfficientNet with SE
/// and synthetic weights, at 304 px (per image) and 96 px (whole batch), batch 3.
#[test]
fn batch_paths_match_single_images() {
    for size in [304usize, 96] {
        let spec = BackboneSpec::custom(
            "tiny-se",
            Architecture::EfficientNet(EfficientNetConfig::timm(0.25, 0.5)),
            size as u32,
        );
        let levels: Vec<usize> = (0..spec.num_levels()).collect();
        let fx = FeatureExtractor::new(
            spec,
            WeightsSource::Synthetic(11),
            &levels,
            Preprocess::new(size as u32),
            Default::default(),
        )
        .unwrap();
        let batch = synthetic_input(3, size);
        let together = fx.extract(batch.view()).unwrap();
        for i in 0..3 {
            let one = batch.slice(ndarray::s![i..i + 1, .., .., ..]);
            let alone = fx.extract(one).unwrap();
            for (l, (t, a)) in together.iter().zip(&alone).enumerate() {
                let t = t.index_axis(Axis(0), i);
                let a = a.index_axis(Axis(0), 0);
                assert_eq!(t.shape(), a.shape(), "size {size} level {l}");
                let scale = a.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let worst = t
                    .iter()
                    .zip(a.iter())
                    .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    worst <= 1e-5 * scale,
                    "size {size} image {i} level {l}: max diff {worst} (scale {scale})"
                );
            }
        }
    }
}
