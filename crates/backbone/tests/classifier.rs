//! The classifier head and the ImageNet-pretrained check, against the independent
//! onnxruntime references of `tests/fixtures/generate_logits.py`.

use std::path::PathBuf;

use backbone::pretrained::{PHOTOS, check, imagenet_class_name};
use backbone::{
    Architecture, BackboneError, BackboneSpec, Classifier, Device, EfficientNetConfig, Preprocess,
    WeightsSource, synthetic_classifier_weights, top_k,
};
use ndarray::{Array1, Array4};
use proptest::prelude::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn rel_l2(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got.iter().zip(want).map(|(a, b)| (a - b).powi(2)).sum();
    let den: f64 = want.iter().map(|b| b * b).sum();
    (num / den.max(1e-30)).sqrt()
}

fn synthetic_input(batch: usize, size: usize) -> Array4<f32> {
    let v: Vec<f32> = (0..batch * 3 * size * size)
        .map(|i| (2.0 * (0.013 * i as f64 + 0.3).sin()) as f32)
        .collect();
    Array4::from_shape_vec((batch, 3, size, size), v).unwrap()
}

fn lite0() -> BackboneSpec {
    "efficientnet-lite0".parse().unwrap()
}

#[test]
fn lite0_logits_match_onnxruntime_on_the_bundled_photos() {
    let r = json("lite0_logits.json");
    let c = Classifier::imagenet(lite0(), WeightsSource::Embedded, Device::Cpu).unwrap();
    assert_eq!(
        c.extractor().preprocess(),
        &Preprocess::new(256).with_center_crop(Some(224))
    );
    for (photo, want) in PHOTOS.iter().zip(r["photos"].as_array().unwrap()) {
        assert_eq!(photo.name, want["photo"].as_str().unwrap());
        let img = photo.image().unwrap();
        let x =
            backbone::preprocess(&img, c.extractor().preprocess()).insert_axis(ndarray::Axis(0));
        let logits = c.logits(x.view()).unwrap();
        let got: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let rel = rel_l2(&got, &floats(&want["logits"]));
        assert!(rel <= 1e-4, "{}: logits rel L2 {rel}", photo.name);
        let top: Vec<usize> = c
            .classify(&img, 5)
            .unwrap()
            .iter()
            .map(|p| p.class)
            .collect();
        let want_top: Vec<usize> = want["top5"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(top, want_top, "{}", photo.name);
    }
}

fn synthetic_case(name: &str, key: &str) {
    let r = &json("synthetic_logits.json")[key];
    let seed = r["seed"].as_u64().unwrap();
    let size = r["size"].as_u64().unwrap() as u32;
    let c = Classifier::new(
        name.parse().unwrap(),
        WeightsSource::Synthetic(seed),
        Preprocess::new(size),
        Device::Cpu,
    )
    .unwrap();
    let logits = c.logits(synthetic_input(1, size as usize).view()).unwrap();
    let got: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    let want = floats(&r["logits"]);
    let rel = rel_l2(&got, &want);
    assert!(rel <= 1e-4, "{name}: logits rel L2 {rel}");
    // The synthetic bias is a large part of these logits: compare the pooled-features
    // part (logits - bias) on its own, so that pooling / fc errors cannot hide.
    let channels = r["channels"].as_u64().unwrap() as usize;
    let convs = r["num_convs"].as_u64().unwrap() as usize;
    let (_, bias) = synthetic_classifier_weights(seed, convs, 1000, channels);
    let g: Vec<f64> = got
        .iter()
        .zip(&bias)
        .map(|(a, &b)| a - f64::from(b))
        .collect();
    let w: Vec<f64> = want
        .iter()
        .zip(&bias)
        .map(|(a, &b)| a - f64::from(b))
        .collect();
    let rel = rel_l2(&g, &w);
    assert!(rel <= 1e-3, "{name}: (logits - bias) rel L2 {rel}");
}

#[test]
fn b4_synthetic_logits_match_independent_onnx_graph_with_classifier() {
    synthetic_case("efficientnet-b4-timm", "b4");
}

#[test]
fn resnet18_synthetic_logits_match_independent_onnx_graph_with_classifier() {
    synthetic_case("resnet18", "resnet18");
}

#[test]
fn gemm_with_trans_b_0_alpha_and_beta_is_read_and_matches_onnxruntime() {
    let r = json("micro_classifier.json");
    let spec = BackboneSpec::custom(
        "micro",
        Architecture::EfficientNet(EfficientNetConfig::timm(0.1, 0.5)),
        64,
    );
    let c = Classifier::new(
        spec,
        WeightsSource::Onnx(fixture("micro_classifier.onnx")),
        Preprocess::new(64),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(c.num_classes(), 10);
    let logits = c.logits(synthetic_input(2, 64).view()).unwrap();
    assert_eq!(logits.dim(), (2, 10));
    let got: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
    let want: Vec<f64> = r["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    let rel = rel_l2(&got, &want);
    assert!(rel <= 1e-4, "micro logits rel L2 {rel}");
    // A 10-class classifier cannot be checked against ImageNet.
    let err = check(&c).unwrap_err();
    assert!(matches!(err, BackboneError::NoClassifier { .. }), "{err}");
}

#[test]
fn features_only_onnx_has_no_classifier() {
    let spec = BackboneSpec::custom(
        "tiny",
        Architecture::EfficientNet(EfficientNetConfig::timm(0.25, 0.5)),
        64,
    );
    let err = Classifier::new(
        spec,
        WeightsSource::Onnx(fixture("tiny_effnet_bn.onnx")),
        Preprocess::new(64),
        Device::Cpu,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BackboneError::NoClassifier { .. }), "{msg}");
    assert!(
        msg.contains("tiny_effnet_bn.onnx") && msg.contains("no Gemm"),
        "{msg}"
    );
}

#[test]
fn embedded_lite0_passes_the_pretrained_check() {
    let c = Classifier::imagenet(lite0(), WeightsSource::Embedded, Device::Cpu).unwrap();
    let report = check(&c).unwrap();
    assert!(report.passed, "{}", report.summary());
    assert_eq!(report.photos.len(), 2);
    for p in &report.photos {
        assert_eq!(p.top.len(), 5);
        assert!(p.passed);
        let probs: Vec<f64> = p.top.iter().map(|t| t.probability).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
    }
    // onnxruntime's top-1 (lite0_logits.json): 285 Egyptian cat, 967 espresso.
    assert_eq!(report.photos[0].top[0].class, 285);
    assert_eq!(report.photos[0].top[0].name, "Egyptian cat");
    assert_eq!(report.photos[1].top[0].class, 967);
    assert_eq!(report.photos[1].top[0].name, "espresso");
    // The committed file's sha256 (crates/backbone/weights/efficientnet-lite0/README.md).
    assert!(
        report.weights_sha256.starts_with("4f4332ac"),
        "{}",
        report.weights_sha256
    );
    let text = report.clone().require().unwrap().summary();
    assert!(text.contains("PASSED") && text.contains("tabby"), "{text}");
    // The report round-trips through JSON (the CLI's --json).
    let back: backbone::pretrained::PretrainedReport =
        serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn synthetic_lite0_weights_fail_the_pretrained_check() {
    let c = Classifier::imagenet(lite0(), WeightsSource::Synthetic(5), Device::Cpu).unwrap();
    let report = check(&c).unwrap();
    assert!(!report.passed, "{}", report.summary());
    let err = report.require().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BackboneError::NotPretrained { .. }), "{msg}");
    assert!(
        msg.contains("failed the ImageNet-pretrained check"),
        "{msg}"
    );
    assert!(msg.contains("synthetic:5"), "{msg}");
}

/// Byte ranges of the float `raw_data` of every initializer with at least 16 values in
/// an ONNX file (a minimal protobuf walk: ModelProto.graph = 7, GraphProto.initializer =
/// 5, TensorProto.data_type = 2, raw_data = 9).
fn float_initializer_ranges(buf: &[u8]) -> Vec<std::ops::Range<usize>> {
    fn varint(buf: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = buf[*pos];
            *pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    /// (field, wire, value range for length-delimited fields) of each field in `r`.
    fn fields(
        buf: &[u8],
        r: std::ops::Range<usize>,
    ) -> Vec<(u64, u64, std::ops::Range<usize>, u64)> {
        let mut out = Vec::new();
        let mut pos = r.start;
        while pos < r.end {
            let key = varint(buf, &mut pos);
            let (field, wire) = (key >> 3, key & 7);
            match wire {
                0 => {
                    let v = varint(buf, &mut pos);
                    out.push((field, wire, pos..pos, v));
                }
                1 => pos += 8,
                5 => pos += 4,
                2 => {
                    let n = varint(buf, &mut pos) as usize;
                    out.push((field, wire, pos..pos + n, 0));
                    pos += n;
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }
    let mut ranges = Vec::new();
    for (f, w, graph, _) in fields(buf, 0..buf.len()) {
        if f != 7 || w != 2 {
            continue;
        }
        for (f, w, tensor, _) in fields(buf, graph) {
            if f != 5 || w != 2 {
                continue;
            }
            let tf = fields(buf, tensor);
            let is_float = tf.iter().any(|(f, w, _, v)| *f == 2 && *w == 0 && *v == 1);
            for (f, w, raw, _) in tf {
                if is_float && f == 9 && w == 2 && raw.len() >= 64 {
                    ranges.push(raw);
                }
            }
        }
    }
    ranges
}

#[test]
fn lite0_onnx_with_scrambled_weights_fails_with_a_clear_error() {
    // The committed Lite0 file with every weight's sign scrambled (same magnitudes,
    // same file structure): the ONNX loads, the network runs, the check must fail.
    let mut bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("weights/efficientnet-lite0/efficientnet-lite0.onnx"),
    )
    .unwrap();
    let ranges = float_initializer_ranges(&bytes);
    assert!(ranges.len() > 50, "{} float initializers", ranges.len());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for r in ranges {
        for c in bytes[r].chunks_exact_mut(4) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state & 1 == 1 {
                c[3] ^= 0x80; // flip the sign bit (little-endian f32)
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scrambled-lite0.onnx");
    std::fs::write(&path, &bytes).unwrap();
    let c = Classifier::imagenet(lite0(), WeightsSource::Onnx(path), Device::Cpu).unwrap();
    let report = check(&c).unwrap();
    assert!(!report.passed, "{}", report.summary());
    let msg = report.require().unwrap_err().to_string();
    assert!(
        msg.contains("efficientnet-lite0 weights")
            && msg.contains("failed the ImageNet-pretrained check")
            && msg.contains("not ImageNet-trained weights"),
        "{msg}"
    );
}

#[test]
fn class_names_are_the_imagenet_1k_list() {
    assert_eq!(imagenet_class_name(0), Some("tench"));
    assert_eq!(imagenet_class_name(281), Some("tabby"));
    assert_eq!(imagenet_class_name(282), Some("tiger cat"));
    assert_eq!(imagenet_class_name(285), Some("Egyptian cat"));
    assert_eq!(imagenet_class_name(967), Some("espresso"));
    assert_eq!(imagenet_class_name(999), Some("toilet tissue"));
    assert_eq!(imagenet_class_name(1000), None);
}

#[test]
fn top_k_rejects_bad_logits() {
    assert!(top_k(Array1::<f32>::zeros(0).view(), 5).is_err());
    assert!(top_k(Array1::from(vec![0.0f32, f32::NAN]).view(), 1).is_err());
    assert!(top_k(Array1::from(vec![0.0f32, f32::INFINITY]).view(), 1).is_err());
    // k larger than the number of classes: all of them.
    assert_eq!(
        top_k(Array1::from(vec![1.0f32, 2.0]).view(), 5)
            .unwrap()
            .len(),
        2
    );
}

proptest! {
    #[test]
    fn top_k_is_sorted_softmax_and_shift_invariant(
        logits in proptest::collection::vec(-50.0f32..50.0, 1..40),
        k in 1usize..10,
        shift in -20.0f32..20.0,
    ) {
        let a = Array1::from(logits.clone());
        let top = top_k(a.view(), k).unwrap();
        prop_assert_eq!(top.len(), k.min(logits.len()));
        prop_assert!(top.windows(2).all(|w| w[0].probability >= w[1].probability));
        // Softmax probabilities: the best one is 1 / sum(exp(l - max)).
        let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let z: f64 = logits.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        prop_assert!((top[0].probability - 1.0 / z).abs() < 1e-12);
        prop_assert!(f64::from(top[0].logit) == max);
        // Adding a constant to every logit changes no probability (beyond rounding of
        // the f32 logits themselves).
        let shifted = Array1::from(logits.iter().map(|v| v + shift).collect::<Vec<_>>());
        let top2 = top_k(shifted.view(), k).unwrap();
        for (p, q) in top.iter().zip(&top2) {
            prop_assert!((p.probability - q.probability).abs() < 1e-4);
        }
    }
}
