//! `gaussad check-pretrained` end to end through the binary (the command `cargo xtask
//! download weights` runs after the checksum): the committed EfficientNet-Lite0 ONNX
//! passes, the same file with scrambled weights fails with exit code 1 and a report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gaussad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gaussad")).args(args).output().expect("run gaussad")
}

fn lite0_onnx() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../backbone/weights/efficientnet-lite0/efficientnet-lite0.onnx")
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn committed_lite0_onnx_passes_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("lite0.pretrained.json");
    let weights = lite0_onnx();
    let out = gaussad(&[
        "check-pretrained",
        "--backbone",
        "efficientnet-lite0",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["chelsea: ok", "coffee: ok", "Egyptian cat", "espresso", "pretrained check: PASSED"] {
        assert!(stdout.contains(needle), "stdout lacks {needle:?}:\n{stdout}");
    }
    let r = report(&json);
    assert_eq!(r["passed"], true);
    assert_eq!(r["backbone"], "efficientnet-lite0");
    assert!(r["weights_sha256"].as_str().unwrap().starts_with("4f4332ac"), "{r}");
    assert_eq!(r["photos"][0]["top"].as_array().unwrap().len(), 5);
}

/// Flips the sign of pseudo-random weights in every float initializer (>= 16 values)
/// of an ONNX file, in place (same length: the protobuf structure is unchanged).
fn scramble_onnx(buf: &mut [u8]) {
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
    type Field = (u64, u64, std::ops::Range<usize>, u64);
    fn fields(buf: &[u8], r: std::ops::Range<usize>) -> Vec<Field> {
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
        if f == 7 && w == 2 {
            for (f, w, tensor, _) in fields(buf, graph) {
                if f == 5 && w == 2 {
                    let tf = fields(buf, tensor);
                    let is_float = tf.iter().any(|(f, w, _, v)| *f == 2 && *w == 0 && *v == 1);
                    ranges.extend(
                        tf.into_iter()
                            .filter(|(f, w, r, _)| is_float && *f == 9 && *w == 2 && r.len() >= 64)
                            .map(|(_, _, r, _)| r),
                    );
                }
            }
        }
    }
    assert!(ranges.len() > 50);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for r in ranges {
        for c in buf[r].chunks_exact_mut(4) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state & 1 == 1 {
                c[3] ^= 0x80;
            }
        }
    }
}

#[test]
fn scrambled_weights_fail_with_exit_1_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(lite0_onnx()).unwrap();
    scramble_onnx(&mut bytes);
    let weights = dir.path().join("scrambled.onnx");
    std::fs::write(&weights, &bytes).unwrap();
    let json = dir.path().join("scrambled.onnx.pretrained.json");
    let out = gaussad(&[
        "check-pretrained",
        "--backbone",
        "efficientnet-lite0",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.starts_with("error:") && stderr.contains("failed the ImageNet-pretrained check"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pretrained check: FAILED"));
    assert_eq!(report(&json)["passed"], false);
}

#[test]
fn a_features_only_or_wrong_file_is_a_clear_error_without_report() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let weights = dir.path().join("not-onnx.onnx");
    std::fs::write(&weights, b"\x08\x07garbage").unwrap();
    let out = gaussad(&[
        "check-pretrained",
        "--backbone",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("not-onnx.onnx"), "{stderr}");
    assert!(!json.exists());
}
