//! Bad input: each case must exit non-zero with a clear message, never panic, and leave no
//! partial output file behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gaussad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gaussad")).args(args).arg("--quiet").output().expect("run gaussad")
}

fn dev() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/dev")
}

/// Asserts a clean failure: exit code 1, message containing every `needle`, no panic.
fn assert_fails(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "expected exit 1, stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(stderr.starts_with("error:"), "no error line:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
    }
}

/// Every file below `dir` (recursively).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() { out.extend(files_in(&p)) } else { out.push(p) }
        }
    }
    out
}

/// A folder with two good images copied from the dev set.
fn small_train(dir: &Path) -> PathBuf {
    let train = dir.join("train");
    std::fs::create_dir_all(&train).unwrap();
    for name in ["000.png", "001.png", "002.png"] {
        std::fs::copy(dev().join("parts/train/good").join(name), train.join(name)).unwrap();
    }
    train
}

#[test]
fn nonexistent_train_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", "/no/such/folder", "--out", model.to_str().unwrap()]);
    assert_fails(&out, &["/no/such/folder"]);
    assert!(!model.exists());
}

#[test]
fn empty_train_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", empty.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert_fails(&out, &["no images found", "empty"]);
    assert!(!model.exists());
}

#[test]
fn single_training_image_is_too_few() {
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("one");
    std::fs::create_dir(&train).unwrap();
    std::fs::copy(dev().join("parts/train/good/000.png"), train.join("000.png")).unwrap();
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap()]);
    assert_fails(&out, &["at least 2 training images"]);
    assert!(!model.exists());
}

#[test]
fn a_training_set_too_small_for_the_false_alarm_target_says_what_is_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let train = small_train(tmp.path());
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--target-fpr", "0.1"]);
    assert_fails(&out, &["3 normal images", "0.1", "at least 9", "--target-fpr", "--val"]);
    assert!(!model.exists());
}

#[test]
fn corrupt_and_truncated_images_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let train = small_train(tmp.path());
    std::fs::write(train.join("garbage.png"), b"this is not a png").unwrap();
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--target-fpr", "0.25"]);
    assert_fails(&out, &["garbage.png"]);
    assert!(!model.exists());

    std::fs::remove_file(train.join("garbage.png")).unwrap();
    let bytes = std::fs::read(dev().join("parts/train/good/003.png")).unwrap();
    std::fs::write(train.join("truncated.png"), &bytes[..bytes.len() / 2]).unwrap();
    let out = gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--target-fpr", "0.25"]);
    assert_fails(&out, &["truncated.png"]);
    assert!(!model.exists());
}

#[test]
fn bad_flag_values_are_rejected_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let train = small_train(tmp.path());
    let model = tmp.path().join("m.gaussad");
    let cases: [(&[&str], &str); 9] = [
        (&["--reduction", "opca:1.5"], "--reduction"),
        (&["--reduction", "lda"], "--reduction"),
        (&["--spatial", "diagonal"], "--spatial"),
        (&["--image-score", "mean"], "--image-score"),
        (&["--levels", "3,12"], "--levels"),
        (&["--backbone", "vgg16"], "--backbone"),
        (&["--device", "tpu"], "--device"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--blur-sigma=-1"], "--blur-sigma"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = gaussad(&args);
        assert_fails(&out, &[needle]);
        assert!(!model.exists(), "{flags:?} left a model file");
    }
}

#[test]
fn missing_weights_for_a_downloadable_backbone_say_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let train = small_train(tmp.path());
    let model = tmp.path().join("m.gaussad");
    let out = Command::new(env!("CARGO_BIN_EXE_gaussad"))
        .args(["fit", "--quiet", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap()])
        .args(["--backbone", "efficientnet-b4"])
        .env("GAUSSAD_WEIGHTS_DIR", tmp.path().join("no-weights"))
        .output()
        .unwrap();
    assert_fails(&out, &["cargo xtask download weights --backbone efficientnet-b4"]);
}

#[test]
fn cuda_without_gpu_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let train = small_train(tmp.path());
    let model = tmp.path().join("m.gaussad");
    let out = gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", model.to_str().unwrap(), "--device", "cuda", "--target-fpr", "0.25"]);
    assert_fails(&out, &["cuda"]);
    assert!(!model.exists());
}

#[test]
fn wrong_model_files() {
    let tmp = tempfile::tempdir().unwrap();
    let img = dev().join("parts/test/good/000.png");
    let out_dir = tmp.path().join("pred");
    // not a model at all
    let png_as_model = dev().join("parts/train/good/000.png");
    let out = gaussad(&["predict", "--model", png_as_model.to_str().unwrap(), img.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["not a gaussad model file"]);
    // a model of a future format version
    let future = tmp.path().join("future.gaussad");
    let mut bytes = b"GAUSSAD\0".to_vec();
    bytes.extend_from_slice(&99u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&future, &bytes).unwrap();
    let out = gaussad(&["predict", "--model", future.to_str().unwrap(), img.to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["format version 99"]);
    // nonexistent model
    let out = gaussad(&["inspect", "/no/such/model.gaussad"]);
    assert_fails(&out, &["/no/such/model.gaussad"]);
    assert!(files_in(&out_dir).is_empty(), "partial output: {:?}", files_in(&out_dir));
}

#[test]
fn eval_on_a_missing_or_malformed_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("res");
    let out = gaussad(&["eval", "--dataset", "/no/such/dataset", "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["/no/such/dataset"]);
    let out = gaussad(&["eval", "--dataset", dev().to_str().unwrap(), "--category", "parts", "bottle", "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["bottle"]);
    let out = gaussad(&["eval", "--dataset", dev().to_str().unwrap(), "--category", "parts,bottle", "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["bottle"]);
    // a defect image whose mask is missing
    let ds = tmp.path().join("ds/parts");
    for sub in ["train/good", "test/good", "test/crack", "ground_truth/crack"] {
        std::fs::create_dir_all(ds.join(sub)).unwrap();
    }
    for name in ["000.png", "001.png"] {
        std::fs::copy(dev().join("parts/train/good").join(name), ds.join("train/good").join(name)).unwrap();
    }
    std::fs::copy(dev().join("parts/test/good/000.png"), ds.join("test/good/000.png")).unwrap();
    std::fs::copy(dev().join("parts/test/crack/000.png"), ds.join("test/crack/000.png")).unwrap();
    let out = gaussad(&["eval", "--dataset", tmp.path().join("ds").to_str().unwrap(), "--out", out_dir.to_str().unwrap()]);
    assert_fails(&out, &["crack", "000.png", "mask"]);
    assert!(!out_dir.join("results.json").exists());
}

#[test]
fn nonexistent_image_to_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let out = gaussad(&["predict", "--model", "whatever.gaussad", "/no/such/image.png", "--out", tmp.path().to_str().unwrap()]);
    assert_fails(&out, &["/no/such/image.png"]);
}
