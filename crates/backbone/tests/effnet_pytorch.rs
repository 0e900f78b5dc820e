//! efficientnet_pytorch (lukemelas) state dicts, `.safetensors` and `.pth` alike: the real
//! EfficientNet-Lite0 weights against the committed ONNX, a B4-depth network against the
//! independent reference of `tests/fixtures/generate_effnet_pytorch.py`, and the
//! convention rules (what is told from the file, what must be stated, what is refused).

use std::path::{Path, PathBuf};

use backbone::pretrained::check;
use backbone::{
    Architecture, BackboneError, BackboneSpec, Classifier, Convention, Device,
    EfficientNetConfig, FeatureExtractor, PaddingMode, Preprocess, WeightsSource, load_image,
    normalize,
};
use ndarray::{Array4, Axis, stack};
use serde_json::Value;

fn here(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn lite0_safetensors() -> PathBuf {
    here("weights/efficientnet-lite0/efficientnet-lite0.safetensors")
}

fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(here("tests/fixtures").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Same formula as generate.py's `synthetic_input`.
fn synthetic_input(batch: usize, size: usize) -> Array4<f32> {
    let v: Vec<f32> = (0..batch * 3 * size * size)
        .map(|i| (2.0 * (0.013 * i as f64 + 0.3).sin()) as f32)
        .collect();
    Array4::from_shape_vec((batch, 3, size, size), v).unwrap()
}

fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (f64::from(g) - f64::from(w)).powi(2);
        den += f64::from(w).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// (rel L2 on the reference subset, rel diff of the full L2 norm), as in parity.rs.
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
        let w = w.as_f64().unwrap();
        num += (f64::from(flat[i * (n - 1) / (m - 1)]) - w).powi(2);
        den += w * w;
    }
    let l2 = flat
        .iter()
        .map(|&v| f64::from(v).powi(2))
        .sum::<f64>()
        .sqrt();
    let wl2 = want["l2"].as_f64().unwrap();
    ((num / den.max(1e-30)).sqrt(), (l2 - wl2).abs() / wl2)
}

fn all_levels(spec: &BackboneSpec) -> Vec<usize> {
    (0..spec.num_levels()).collect()
}

#[test]
fn lite0_safetensors_equals_the_committed_onnx_at_every_level_and_is_pretrained() {
    let spec: BackboneSpec = "efficientnet-lite0".parse().unwrap();
    let levels = all_levels(&spec);
    let build = |w: WeightsSource| {
        FeatureExtractor::new(spec.clone(), w, &levels, Preprocess::new(224), Device::Cpu)
            .unwrap()
    };
    let st = build(WeightsSource::from_file(lite0_safetensors()));
    let onnx = build(WeightsSource::Embedded);
    // Two real images (colour, greyscale) and a synthetic input.
    let imgs: Vec<_> = [
        "tests/fixtures/pil_carpet_train_good_000_224.png",
        "tests/fixtures/pil_grass_test_blur_001_224.png",
    ]
    .iter()
    .map(|p| normalize(&load_image(here(p)).unwrap()))
    .collect();
    let views: Vec<_> = imgs.iter().map(|a| a.view()).collect();
    for x in [stack(Axis(0), &views).unwrap(), synthetic_input(1, 224)] {
        let a = st.extract(x.view()).unwrap();
        let b = onnx.extract(x.view()).unwrap();
        assert_eq!(a.len(), 9);
        for (l, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_eq!(a.dim(), b.dim(), "level {l}");
            let rel = rel_l2(a.as_slice().unwrap(), b.as_slice().unwrap());
            eprintln!("lite0 safetensors vs ONNX, level {l}: rel L2 {rel:.2e}");
            assert!(rel <= 1e-4, "level {l}: rel L2 {rel}");
        }
    }
    // The identity is the safetensors file's own SHA-256 (README of weights/).
    assert!(
        st.identity().weights_sha256.starts_with("f46ec1c3"),
        "{}",
        st.identity().weights_sha256
    );
    // The pretrained check passes through this path (classifier `_fc`).
    let c = Classifier::imagenet(
        spec.clone(),
        WeightsSource::Safetensors(lite0_safetensors()),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(c.num_classes(), 1000);
    let report = check(&c).unwrap();
    assert!(report.passed, "{}", report.summary());
    assert_eq!(report.photos[0].top[0].class, 285, "{}", report.summary());
    assert_eq!(report.photos[1].top[0].class, 967, "{}", report.summary());
    assert!(report.weights_sha256.starts_with("f46ec1c3"));
}

fn b4_narrow() -> BackboneSpec {
    BackboneSpec::custom(
        "b4-narrow",
        Architecture::EfficientNet(EfficientNetConfig::tf(0.1, 1.8)),
        72,
    )
}

fn b4_narrow_case(file: &str) {
    let r = json("effnet_pytorch_b4_narrow.json");
    let spec = b4_narrow();
    let size = r["size"].as_u64().unwrap() as usize;
    let batch = r["batch"].as_u64().unwrap() as usize;
    let source = WeightsSource::from_file(here("tests/fixtures").join(file));
    let fx = FeatureExtractor::new(
        spec.clone(),
        source.clone(),
        &all_levels(&spec),
        Preprocess::new(size as u32),
        Device::Cpu,
    )
    .unwrap();
    let x = synthetic_input(batch, size);
    let out = fx.extract(x.view()).unwrap();
    let want = r["levels"].as_array().unwrap();
    assert_eq!(out.len(), want.len());
    for (l, (got, want)) in out.iter().zip(want).enumerate() {
        let (rel, norm) = compare(got, want);
        eprintln!("{file} level {l}: rel L2 {rel:.2e}, norm {norm:.2e}");
        assert!(
            rel <= 1e-4 && norm <= 1e-4,
            "{file} level {l}: rel L2 {rel}, norm diff {norm}"
        );
    }
    let c = Classifier::new(spec, source, Preprocess::new(size as u32), Device::Cpu).unwrap();
    assert_eq!(c.num_classes(), r["classes"].as_u64().unwrap() as usize);
    let got = c.logits(x.view()).unwrap();
    let want: Vec<f32> = r["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    let rel = rel_l2(got.as_slice().unwrap(), &want);
    eprintln!("{file} logits: rel L2 {rel:.2e}");
    assert!(rel <= 1e-4, "{file} logits rel L2 {rel}");
}

#[test]
fn b4_depth_safetensors_matches_the_independent_tf_same_reference() {
    b4_narrow_case("effnet_pytorch_b4_narrow.safetensors");
}

#[test]
fn b4_depth_legacy_pth_matches_the_independent_tf_same_reference() {
    b4_narrow_case("effnet_pytorch_b4_narrow.pth");
}

/// Writes a `.safetensors` file (f32 tensors; the format's own layout: little-endian u64
/// header length, JSON header, data) with `names` of the given shapes, all values `v`.
fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>)], v: f32) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape) in tensors {
        let n: usize = shape.iter().product();
        let start = data.len();
        for _ in 0..n {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

fn tiny_timm() -> BackboneSpec {
    BackboneSpec::custom(
        "tiny-timm",
        Architecture::EfficientNet(EfficientNetConfig::timm(0.25, 0.5)),
        64,
    )
}

#[test]
fn a_timm_named_efficientnet_needs_its_convention_stated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("timm.safetensors");
    let spec = tiny_timm();
    let mut params = spec.published_parameter_shapes();
    // A 10-class head instead of ImageNet's (shape checked against the last level).
    params.retain(|(n, _)| !n.starts_with("classifier"));
    write_safetensors(&file, &params, 0.01);
    let open = |spec: BackboneSpec| {
        FeatureExtractor::new(
            spec,
            WeightsSource::from_file(&file),
            &[0, 8],
            Preprocess::new(64),
            Device::Cpu,
        )
    };
    // Not stated: refused, naming the option, for the symmetric and the TF configuration.
    for s in [
        spec.clone(),
        BackboneSpec::custom(
            "tiny-tf",
            Architecture::EfficientNet(EfficientNetConfig::tf(0.25, 0.5)),
            64,
        ),
    ] {
        let err = open(s).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BackboneError::Convention { .. }), "{msg}");
        assert!(
            msg.contains("timm.safetensors")
                && msg.contains("with_convention")
                && msg.contains("weights-convention")
                && msg.contains("tf_efficientnet"),
            "{msg}"
        );
    }
    // Stated: loads, with the padding of the stated convention.
    for c in [Convention::Pytorch, Convention::Tf] {
        let s = spec.clone().with_convention(c).unwrap();
        let Architecture::EfficientNet(cfg) = &s.architecture else {
            panic!("efficientnet")
        };
        assert_eq!(cfg.padding, c.padding());
        assert_eq!(s.effective_convention(), c);
        let fx = open(s).unwrap();
        let out = fx.extract(synthetic_input(1, 64).view()).unwrap();
        assert!(out.iter().all(|a| a.iter().all(|v| v.is_finite())));
    }
    // The two conventions fold with different epsilons and pad differently: not the same features.
    let a = open(spec.clone().with_convention(Convention::Pytorch).unwrap())
        .unwrap()
        .extract(synthetic_input(1, 64).view())
        .unwrap();
    let b = open(spec.clone().with_convention(Convention::Tf).unwrap())
        .unwrap()
        .extract(synthetic_input(1, 64).view())
        .unwrap();
    assert_ne!(a[0], b[0]);
}

#[test]
fn files_that_tell_their_convention_are_refused_for_the_other_one() {
    // efficientnet_pytorch names are TF: refused for a symmetric (timm) configuration.
    let timm_cfg = BackboneSpec::custom(
        "b4-narrow-timm",
        Architecture::EfficientNet(EfficientNetConfig::timm(0.1, 1.8)),
        72,
    );
    for spec in [
        timm_cfg.clone(),
        b4_narrow().with_convention(Convention::Pytorch).unwrap(),
    ] {
        let err = FeatureExtractor::new(
            spec,
            WeightsSource::from_file(here(
                "tests/fixtures/effnet_pytorch_b4_narrow.safetensors",
            )),
            &[0],
            Preprocess::new(72),
            Device::Cpu,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BackboneError::Convention { .. }), "{msg}");
        assert!(msg.contains("efficientnet_pytorch") && msg.contains("efficientnet-bN"), "{msg}");
    }
    // A symmetric-padding ONNX export (timm layout) is refused for a TF configuration,
    // accepted for the symmetric one.
    let onnx = WeightsSource::Onnx(here("tests/fixtures/tiny_effnet_bn.onnx"));
    let tf = BackboneSpec::custom(
        "tiny-tf",
        Architecture::EfficientNet(EfficientNetConfig::tf(0.25, 0.5)),
        64,
    );
    let err = FeatureExtractor::new(tf, onnx.clone(), &[0], Preprocess::new(64), Device::Cpu)
        .unwrap_err();
    assert!(matches!(err, BackboneError::Convention { .. }), "{err}");
    assert!(err.to_string().contains("-timm"), "{err}");
    FeatureExtractor::new(tiny_timm(), onnx, &[0], Preprocess::new(64), Device::Cpu).unwrap();
    // ResNets have no TF convention.
    let r18: BackboneSpec = "resnet18".parse().unwrap();
    assert!(matches!(
        r18.with_convention(Convention::Tf),
        Err(BackboneError::Convention { .. })
    ));
}

#[test]
fn names_and_conventions() {
    // efficientnet-bN are the paper's TF weights; -timm the PyTorch-trained timm models.
    for n in 0..8 {
        let tf: BackboneSpec = format!("efficientnet-b{n}").parse().unwrap();
        let timm: BackboneSpec = format!("efficientnet-b{n}-timm").parse().unwrap();
        assert_eq!(tf.effective_convention(), Convention::Tf);
        assert_eq!(timm.effective_convention(), Convention::Pytorch);
        assert_eq!(tf.input_size, timm.input_size);
        assert_eq!(
            tf.published_parameter_shapes(),
            timm.published_parameter_shapes()
        );
        let (Architecture::EfficientNet(a), Architecture::EfficientNet(b)) =
            (&tf.architecture, &timm.architecture)
        else {
            panic!("efficientnets")
        };
        assert_eq!((a.padding, b.padding), (PaddingMode::TfSame, PaddingMode::Symmetric));
    }
    for (s, c) in [("tf", Convention::Tf), ("pytorch", Convention::Pytorch)] {
        assert_eq!(s.parse::<Convention>().unwrap(), c);
        assert_eq!(c.to_string(), s);
    }
    assert!("caffe".parse::<Convention>().is_err());
    assert_eq!(Convention::Tf.bn_eps(), 1e-3);
    assert_eq!(Convention::Pytorch.bn_eps(), 1e-5);
    let b4: BackboneSpec = "efficientnet-b4".parse().unwrap();
    assert_eq!(b4.input_size, 380);
    assert!(matches!(
        WeightsSource::from_file("x/model.SafeTensors"),
        WeightsSource::Safetensors(_)
    ));
}

#[test]
fn broken_safetensors_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = b4_narrow();
    let bytes = std::fs::read(here("tests/fixtures/effnet_pytorch_b4_narrow.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let huge = dir.path().join("huge-header.safetensors");
    let mut h = u64::MAX.to_le_bytes().to_vec();
    h.extend_from_slice(b"{}");
    std::fs::write(&huge, h).unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file at all").unwrap();
    let missing = dir.path().join("missing.safetensors");
    for p in [cut, huge, garbage, missing] {
        let err = FeatureExtractor::new(
            spec.clone(),
            WeightsSource::Safetensors(p.clone()),
            &[0],
            Preprocess::new(72),
            Device::Cpu,
        )
        .unwrap_err();
        assert!(
            matches!(err, BackboneError::WeightsFile { .. }),
            "{}: {err}",
            p.display()
        );
        assert!(err.to_string().contains(p.to_str().unwrap()), "{err}");
    }
}
