//! The PyTorch `.pth` weights source against the independent reference of
//! `tests/fixtures/generate_pth.py`: a torchvision-named state dict of a small custom
//! ResNet (unfolded batch norms), and onnxruntime's outputs of the same network as an
//! unfolded ONNX graph.

use std::path::PathBuf;

use backbone::{
    Architecture, BackboneError, BackboneSpec, Classifier, Device, FeatureExtractor, Preprocess,
    ResNetConfig, WeightsSource,
};
use ndarray::Array4;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny_resnet_pth.json")).unwrap())
        .unwrap()
}

fn tiny_spec(layers: [usize; 4]) -> BackboneSpec {
    BackboneSpec::custom(
        "tiny-resnet",
        Architecture::ResNet(ResNetConfig {
            layers,
            bottleneck: false,
            width_per_group: 64,
        }),
        64,
    )
}

fn pth() -> WeightsSource {
    WeightsSource::Pytorch(fixture("tiny_resnet.pth"))
}

/// Same formula as generate.py's `synthetic_input`.
fn synthetic_input(batch: usize, size: usize) -> Array4<f32> {
    let v: Vec<f32> = (0..batch * 3 * size * size)
        .map(|i| (2.0 * (0.013 * i as f64 + 0.3).sin()) as f32)
        .collect();
    Array4::from_shape_vec((batch, 3, size, size), v).unwrap()
}

/// (rel L2 on the reference subset, rel diff of the full L2 norm).
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

#[test]
fn pth_features_match_onnxruntime_on_the_unfolded_network() {
    let r = reference();
    let fx = FeatureExtractor::new(
        tiny_spec([1, 1, 0, 0]),
        pth(),
        &[0, 1, 2],
        Preprocess::new(64),
        Device::Cpu,
    )
    .unwrap();
    let levels = fx.extract(synthetic_input(2, 64).view()).unwrap();
    for (l, (got, want)) in levels
        .iter()
        .zip(r["levels"].as_array().unwrap())
        .enumerate()
    {
        let (rel, norm) = compare(got, want);
        eprintln!("tiny resnet .pth level {l}: rel L2 {rel:.2e}, norm {norm:.2e}");
        assert!(
            rel <= 1e-4 && norm <= 1e-4,
            "level {l}: rel L2 {rel}, norm diff {norm}"
        );
    }
    // The identity is the file's SHA-256, as for ONNX files.
    let sha = fx.identity().weights_sha256;
    assert_eq!(sha.len(), 64);
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn pth_classifier_logits_match_onnxruntime() {
    let r = reference();
    let c = Classifier::new(
        tiny_spec([1, 1, 0, 0]),
        pth(),
        Preprocess::new(64),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(c.num_classes(), 10);
    let got = c.logits(synthetic_input(2, 64).view()).unwrap();
    let want = r["logits"].as_array().unwrap();
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (b, row) in want.iter().enumerate() {
        for (k, w) in row.as_array().unwrap().iter().enumerate() {
            let w = w.as_f64().unwrap();
            num += (f64::from(got[[b, k]]) - w).powi(2);
            den += w * w;
        }
    }
    let rel = (num / den).sqrt();
    eprintln!("tiny resnet .pth logits: rel L2 {rel:.2e}");
    assert!(rel <= 1e-4, "logits rel L2 {rel}");
}

#[test]
fn a_missing_parameter_is_named_with_the_file() {
    // ResNet-18 needs `layer1.1.*`, which the tiny file lacks.
    let spec: BackboneSpec = "resnet18".parse().unwrap();
    let err =
        FeatureExtractor::new(spec, pth(), &[0], Preprocess::new(64), Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, BackboneError::WeightsMismatch { .. }),
        "{msg}"
    );
    assert!(msg.contains("tiny_resnet.pth"), "{msg}");
    assert!(
        msg.contains("layer1.1.conv1.weight") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn convolutions_the_architecture_lacks_are_rejected() {
    let err = FeatureExtractor::new(
        tiny_spec([1, 0, 0, 0]),
        pth(),
        &[0],
        Preprocess::new(64),
        Device::Cpu,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, BackboneError::WeightsMismatch { .. }),
        "{msg}"
    );
    assert!(msg.contains("layer2.0.conv1.weight"), "{msg}");
}

#[test]
fn a_resnet_file_is_rejected_for_an_efficientnet() {
    let spec: BackboneSpec = "efficientnet-b0".parse().unwrap();
    let err =
        FeatureExtractor::new(spec, pth(), &[0], Preprocess::new(64), Device::Cpu).unwrap_err();
    // The file's convolutions are not in the plan (`conv1.weight` ...): rejected as another network.
    assert!(
        matches!(err, BackboneError::WeightsMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("conv1.weight"), "{err}");
}

#[test]
fn unreadable_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("garbage.pth");
    std::fs::write(&bad, b"this is not a zip nor a pickle").unwrap();
    let missing = dir.path().join("missing.pth");
    // A truncated copy of the real file.
    let truncated = dir.path().join("truncated.pth");
    let bytes = std::fs::read(fixture("tiny_resnet.pth")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for p in [bad, missing, truncated] {
        let err = FeatureExtractor::new(
            tiny_spec([1, 1, 0, 0]),
            WeightsSource::Pytorch(p.clone()),
            &[0],
            Preprocess::new(64),
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
