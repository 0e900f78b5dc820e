//! The model file loader on hostile input: truncations, bit flips and garbage must give an
//! error (never a panic, never a silently different model). A cargo-fuzz target doing the same
//! lives in crates/gaussad/fuzz.

use backbone::BackboneIdentity;
use gaussad::config::MethodConfig;
use gaussad::model_file::{Model, ModelFileError, Thresholds};
use ndarray::Array3;
use proptest::prelude::*;
use scoring::{DetectorFitter, DetectorParams};

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
    let thresholds = Thresholds { image: 1.0, pixel: 2.0, source: "test".into() };
    Model::new(MethodConfig::default(), identity, thresholds, 6, fitter.finish().unwrap())
}

#[test]
fn round_trip_is_exact() {
    let model = small_model();
    let bytes = model.to_bytes().unwrap();
    let back = Model::from_bytes(&bytes, "m").unwrap();
    assert_eq!(back.detector, model.detector);
    assert_eq!(back.header.thresholds, model.header.thresholds);
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
    let last = bad.len() - 3;
    bad[last] ^= 0x40;
    assert!(matches!(Model::from_bytes(&bad, "m"), Err(ModelFileError::Corrupt { .. })));
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
        let model = small_model();
        let bytes = model.to_bytes().unwrap();
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + header_len]).unwrap();
        use sha2::Digest;
        let digest: String = sha2::Sha256::digest(&payload).iter().map(|b| format!("{b:02x}")).collect();
        header["payload_len"] = serde_json::json!(payload.len());
        header["payload_sha256"] = serde_json::json!(digest);
        let h = serde_json::to_vec(&header).unwrap();
        let mut forged = bytes[..12].to_vec();
        forged.extend_from_slice(&(h.len() as u64).to_le_bytes());
        forged.extend_from_slice(&h);
        forged.extend_from_slice(&payload);
        prop_assert!(Model::from_bytes(&forged, "forged").is_err());
    }
}
