//! The model file loader on hostile input: truncations, bit flips and garbage must give an
//! error (never a panic, never a silently different model). A cargo-fuzz target doing the same
//! lives in crates/gaussad/fuzz.

use backbone::BackboneIdentity;
use gaussad::config::MethodConfig;
use gaussad::model_file::{Model, ModelFileError};
use gaussad::pipeline::{CALIBRATION_RULE, Calibration};
use ndarray::Array3;
use proptest::prelude::*;
use scoring::{DetectorFitter, DetectorParams, NormalScores, QuantileSketch};
use sha2::Digest;

fn small_model() -> Model {
    let shapes = [(5, 3, 3), (7, 2, 2)];
    let image = |seed: usize| -> Vec<Array3<f32>> {
        shapes
            .iter()
            .map(|&(c, h, w)| {
                Array3::from_shape_fn((c, h, w), |(k, i, j)| (((seed * 31 + k * 7 + i * 3 + j) % 13) as f32 * 0.41).sin())
            })
            .collect()
    };
    let mut fitter = DetectorFitter::new(DetectorParams::default().validate().unwrap(), &shapes).unwrap();
    for phase in 0..2 {
        for seed in 0..6 {
            let maps = image(seed);
            let views: Vec<_> = maps.iter().map(|m| m.view()).collect();
            if phase == 0 { fitter.push_phase1(&views).unwrap() } else { fitter.push_phase2(&views).unwrap() }
        }
        if phase == 0 {
            fitter.finish_phase1().unwrap();
        }
    }
    let identity = BackboneIdentity {
        name: "efficientnet-lite0".into(),
        weights_sha256: "ab".repeat(32),
        input_size: 224,
        levels: vec![3, 4],
    };
    let mut config = MethodConfig::default();
    config.set_text("levels", "3,4").unwrap();
    config.set_text("resize", "224").unwrap();
    config.set_text("image-score", "pooled").unwrap(); // as the detector's default parameters
    Model::new(config, identity, calibration(), 6, fitter.finish().unwrap())
}

/// Six out-of-fold image scores (a 0.2 target: k = floor(0.2 * 7) = 1, the largest) and a
/// pixel sketch.
fn calibration() -> Calibration {
    let image_scores = NormalScores::new(vec![3.0, 4.5, 2.0, 5.0, 3.5, 4.0]).unwrap();
    let mut pixels: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin() + 2.0).collect();
    let pixel_scores = QuantileSketch::from_values(&mut pixels).unwrap();
    Calibration {
        rule: CALIBRATION_RULE.into(),
        folds: 3,
        n_train: 6,
        n_val: 0,
        target_fpr: 0.2,
        promised_fpr: image_scores.expected_fpr(0.2).unwrap(),
        image_threshold: image_scores.threshold(0.2).unwrap(),
        pixel_fpr: 0.01,
        pixel_threshold: pixel_scores.threshold(0.01).unwrap(),
        image_scores,
        pixel_scores,
    }
}

/// `bytes` with its header replaced by `edit(header)` and the checksum recomputed: what a
/// forger who knows the format writes.
fn forge(bytes: &[u8], edit: impl Fn(&mut serde_json::Value), payload: Option<&[u8]>) -> Vec<u8> {
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + header_len]).unwrap();
    let old_payload = &bytes[20 + header_len..bytes.len() - 32];
    let payload = payload.unwrap_or(old_payload);
    header["payload_len"] = serde_json::json!(payload.len());
    edit(&mut header);
    let h = serde_json::to_vec(&header).unwrap();
    let mut forged = bytes[..12].to_vec();
    forged.extend_from_slice(&(h.len() as u64).to_le_bytes());
    forged.extend_from_slice(&h);
    forged.extend_from_slice(payload);
    let digest = sha2::Sha256::digest(&forged);
    forged.extend_from_slice(&digest);
    forged
}

#[test]
fn round_trip_is_exact() {
    let model = small_model();
    let bytes = model.to_bytes().unwrap();
    let back = Model::from_bytes(&bytes, "m").unwrap();
    assert_eq!(back.detector, model.detector);
    assert_eq!(back.header, { let mut h = model.header.clone(); h.payload_len = back.header.payload_len; h });
    assert_eq!(back.to_bytes().unwrap(), bytes);
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_model().to_bytes().unwrap();
    for cut in 0..bytes.len() {
        assert!(Model::from_bytes(&bytes[..cut], "m").is_err(), "truncated at {cut} loaded");
    }
}

#[test]
fn payload_corruption_is_detected() {
    let bytes = small_model().to_bytes().unwrap();
    let mut bad = bytes.clone();
    let last = bad.len() - 40;
    bad[last] ^= 0x40;
    assert!(matches!(Model::from_bytes(&bad, "m"), Err(ModelFileError::Corrupt { .. })));
}

#[test]
fn header_edits_are_caught_by_the_checksum_and_by_validation() {
    let bytes = small_model().to_bytes().unwrap();
    // The header is covered by the checksum: one changed digit of a threshold is refused.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"image_threshold\":").unwrap() + "\"image_threshold\":".len();
    let mut edited = bytes.clone();
    edited[at] = if edited[at] == b'1' { b'2' } else { b'1' };
    let err = Model::from_bytes(&edited, "m").unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    // A forger who recomputes the checksum still meets the validation of every value.
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit); 7] = [
        ("threshold", |h| h["calibration"]["image_threshold"] = serde_json::json!(-1e308)),
        ("pixel threshold", |h| h["calibration"]["pixel_threshold"] = serde_json::json!(0.5)),
        ("resize", |h| h["config"]["resize"] = serde_json::json!(4096)),
        ("image score", |h| h["config"]["image-score"] = serde_json::json!("map-max")),
        ("levels", |h| h["config"]["levels"] = serde_json::json!([3, 5])),
        ("batch size", |h| h["config"]["batch-size"] = serde_json::json!(100000)),
        ("training images", |h| h["n_train"] = serde_json::json!(1)),
    ];
    for (what, edit) in edits {
        let forged = forge(&bytes, edit, None);
        assert!(Model::from_bytes(&forged, "m").is_err(), "forged {what} loaded");
    }
    // The untouched re-serialisation still loads (the forge helper itself is sound).
    assert!(Model::from_bytes(&forge(&bytes, |_| {}, None), "m").is_ok());
}

#[test]
fn format_1_files_ask_for_a_refit() {
    let mut bytes = small_model().to_bytes().unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let err = Model::from_bytes(&bytes, "old.gaussad").unwrap_err().to_string();
    assert!(err.contains("version 1") && err.contains("refit") && err.contains("in-sample"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Model::from_bytes(&data, "garbage");
    }

    #[test]
    fn flipped_bytes_never_panic(pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut bytes = small_model().to_bytes().unwrap();
        let i = pos.index(bytes.len());
        bytes[i] = val;
        // either rejected, or (a header byte whose change keeps valid JSON) loaded consistently
        if let Ok(m) = Model::from_bytes(&bytes, "flip") {
            prop_assert!(m.detector.validate().is_ok());
        }
    }

    #[test]
    fn valid_header_with_garbage_payload_is_rejected(payload in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // A forger who also fixes the checksum: the payload decoder and validation must hold.
        let bytes = small_model().to_bytes().unwrap();
        let forged = forge(&bytes, |_| {}, Some(&payload));
        prop_assert!(Model::from_bytes(&forged, "forged").is_err());
    }
}
