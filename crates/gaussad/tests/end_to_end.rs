//! End to end on the committed dev dataset, against the independent Python implementation
//! in tools/reference (onnxruntime + NumPy + scikit-learn, written from the method spec).
//! Its results were produced by the commands in tools/reference/README.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn gaussad(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_gaussad")).arg("--quiet").args(args).output().expect("run gaussad");
    assert!(
        out.status.success(),
        "gaussad {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `gaussad eval` on the dev set with `flags` and compares every category's image
/// AUROC, pixel AUROC and AUPRO with the reference results in `reference` (within 0.005).
fn eval_matches_reference(flags: &[&str], reference: &str) -> (tempfile::TempDir, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = root().join("datasets/dev");
    // The reference implements the paper's method: its image score is the pooled one.
    let mut args = vec![
        "eval", "--dataset", dataset.to_str().unwrap(), "--out", tmp.path().to_str().unwrap(), "--panels", "0", "--image-score", "pooled",
    ];
    args.extend_from_slice(flags);
    gaussad(&args);
    let ours = read_json(&tmp.path().join("results.json"));
    let theirs = read_json(&root().join("tools/reference/results").join(reference));
    let cats = theirs["categories"].as_object().unwrap();
    assert_eq!(cats.len(), 4);
    let mut table = String::new();
    let mut worst: f64 = 0.0;
    for (cat, r) in cats {
        for metric in ["image_auroc", "pixel_auroc", "aupro"] {
            let a = ours["categories"][cat][metric].as_f64().unwrap_or_else(|| panic!("{cat}.{metric} missing"));
            let b = r[metric].as_f64().unwrap();
            table.push_str(&format!("{cat:8} {metric:12} gaussad {a:.5} reference {b:.5} diff {:.5}\n", (a - b).abs()));
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("{reference}:\n{table}");
    assert!(worst <= 0.005, "a metric differs from the reference by {worst} > 0.005:\n{table}");
    (tmp, ours)
}

#[test]
fn paper_config_matches_reference_including_per_image_scores() {
    let (tmp, ours) = eval_matches_reference(&[], "dev-default.json");
    assert_eq!(ours["config"]["reduction"], "opca:0.05");
    assert_eq!(ours["config"]["spatial"], "per-position");
    // Per-image scores: features differ only by float round-off (burn vs onnxruntime), so the
    // scores agree to a small relative tolerance.
    let reference = read_json(&root().join("tools/reference/results/dev-default-scores.json"));
    let mut theirs: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for img in reference["images"].as_array().unwrap() {
        theirs.insert(
            img["path"].as_str().unwrap().to_string(),
            (img["pooled"].as_f64().unwrap(), img["map_max"].as_f64().unwrap()),
        );
    }
    let mut compared = 0;
    let mut worst: f64 = 0.0;
    for cat in ["brick", "carpet", "grass", "parts"] {
        let csv = std::fs::read_to_string(tmp.path().join("scores").join(format!("{cat}.csv"))).unwrap();
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let key = format!("{cat}/{}", f[0]);
            let (pooled, map_max) = theirs[&key];
            let ours_pooled: f64 = f[4].parse().unwrap();
            let ours_max: f64 = f[5].parse().unwrap();
            worst = worst.max(((ours_pooled - pooled) / pooled).abs());
            worst = worst.max(((ours_max - map_max) / map_max).abs());
            compared += 1;
        }
    }
    assert_eq!(compared, theirs.len());
    eprintln!("per-image scores: worst relative difference {worst:.2e} over {compared} images");
    assert!(worst < 1e-3, "per-image scores differ from the reference by {worst:.2e} relative");
}

#[test]
fn shared_spatial_model_matches_reference() {
    let (_tmp, ours) = eval_matches_reference(&["--spatial", "shared"], "dev-shared.json");
    assert_eq!(ours["config"]["spatial"], "shared");
}

#[test]
fn no_reduction_matches_reference() {
    let (_tmp, ours) = eval_matches_reference(&["--reduction", "none"], "dev-none.json");
    assert_eq!(ours["config"]["reduction"], "none");
}

#[test]
fn results_json_has_the_documented_keys_and_outputs_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = root().join("datasets/dev");
    gaussad(&["eval", "--dataset", dataset.to_str().unwrap(), "--category", "parts", "--out", tmp.path().to_str().unwrap(), "--save-models", "--panels", "1"]);
    let r = read_json(&tmp.path().join("results.json"));
    let cal = &r["categories"]["parts"]["calibrated"];
    for key in ["false_alarm_rate", "detection_rate", "promised_fpr"] {
        let v = cal[key].as_f64().unwrap_or_else(|| panic!("calibrated.{key} missing"));
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
    }
    assert!(cal["image_threshold"].as_f64().unwrap() > 0.0);
    assert!(r["mean"]["false_alarm_rate"].as_f64().is_some() && r["mean"]["detection_rate"].as_f64().is_some());
    for key in ["image_auroc", "pixel_auroc", "aupro", "image_f1_max", "fit_seconds", "test_seconds"] {
        let v = r["categories"]["parts"][key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
        if !key.ends_with("seconds") {
            assert!(v <= 1.0, "{key} = {v} is not a fraction");
        }
        assert!(r["mean"][key].as_f64().is_some(), "mean.{key} missing");
    }
    assert_eq!(r["config"]["levels"], serde_json::json!([3, 4, 5, 6, 7]));
    for f in ["results.md", "results.csv", "plots/parts_pro.png", "plots/parts_image_roc.png", "models/parts.gaussad"] {
        assert!(tmp.path().join(f).is_file(), "{f} missing");
    }
    // one panel per defect type and for good
    let panels = std::fs::read_dir(tmp.path().join("heatmaps")).unwrap().count();
    assert_eq!(panels, 5);
}

#[test]
fn fit_predict_inspect_is_deterministic_and_checks_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let train = root().join("datasets/dev/parts/train/good");
    let m1 = tmp.path().join("a.gaussad");
    let m2 = tmp.path().join("b.gaussad");
    gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", m1.to_str().unwrap(), "--levels", "3,4", "--image-score", "map-max"]);
    gaussad(&["fit", "--train", train.to_str().unwrap(), "--out", m2.to_str().unwrap(), "--levels", "3,4", "--image-score", "map-max"]);
    let b1 = std::fs::read(&m1).unwrap();
    assert_eq!(b1, std::fs::read(&m2).unwrap(), "two fits gave different model files");

    let good = root().join("datasets/dev/parts/test/good/000.png");
    let bad = root().join("datasets/dev/parts/test/missing/000.png");
    let p1 = gaussad(&["predict", "--model", m1.to_str().unwrap(), good.to_str().unwrap(), bad.to_str().unwrap(), "--out", tmp.path().join("p1").to_str().unwrap()]);
    let p2 = gaussad(&["predict", "--model", m1.to_str().unwrap(), good.to_str().unwrap(), bad.to_str().unwrap(), "--out", tmp.path().join("p2").to_str().unwrap()]);
    let lines: Vec<Value> = String::from_utf8(p1.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let s1: Vec<f64> = lines.iter().map(|l| l["image_score"].as_f64().unwrap()).collect();
    let s2: Vec<f64> = String::from_utf8(p2.stdout).unwrap().lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["image_score"].as_f64().unwrap()).collect();
    assert_eq!(s1, s2, "scores are not bit-identical across runs");
    // map-max: the missing bite is a local defect the pixel map shows clearly
    assert!(s1[1] > s1[0], "the defective image should score above the good one: {s1:?}");
    assert_eq!(lines[0]["image_score"], lines[0]["max_pixel_score"]);
    assert!(tmp.path().join("p1/predictions.jsonl").is_file());
    assert!(Path::new(lines[0]["heatmap"].as_str().unwrap()).is_file());

    let inspect = gaussad(&["inspect", m1.to_str().unwrap()]);
    let text = String::from_utf8(inspect.stdout).unwrap();
    assert!(text.contains("efficientnet-lite0") && text.contains("level 3"), "{text}");

    // The same model claiming other weights is refused at predict time.
    let header_len = u64::from_le_bytes(b1[12..20].try_into().unwrap()) as usize;
    let mut header: Value = serde_json::from_slice(&b1[20..20 + header_len]).unwrap();
    header["backbone"]["weights_sha256"] = Value::String("0".repeat(64));
    let new_header = serde_json::to_vec(&header).unwrap();
    let mut forged = b1[..12].to_vec();
    forged.extend_from_slice(&(new_header.len() as u64).to_le_bytes());
    forged.extend_from_slice(&new_header);
    forged.extend_from_slice(&b1[20 + header_len..b1.len() - 32]);
    // The forger also recomputes the trailing checksum: the weights check must still refuse it.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&forged);
    forged.extend_from_slice(&digest);
    let forged_path = tmp.path().join("other-weights.gaussad");
    std::fs::write(&forged_path, forged).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gaussad"))
        .args(["--quiet", "predict", "--model", forged_path.to_str().unwrap(), good.to_str().unwrap(), "--out", tmp.path().join("p3").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fitted with backbone"), "{}", String::from_utf8_lossy(&out.stderr));

    // Truncated or bit-flipped model files are clean errors.
    for cut in [10, 25, b1.len() / 2, b1.len() - 1] {
        let p = tmp.path().join(format!("cut{cut}.gaussad"));
        std::fs::write(&p, &b1[..cut]).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gaussad")).args(["inspect", p.to_str().unwrap()]).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "cut at {cut}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn bench_backbone_reports_a_median() {
    let out = gaussad(&["bench-backbone", "--batch-size", "2", "--iters", "3", "--levels", "3"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let per_image: f64 = text
        .split("batch, ")
        .nth(1)
        .and_then(|s| s.split(" ms per image").next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no median in {text:?}"));
    assert!(per_image > 0.0 && per_image.is_finite(), "{text}");
    assert!(text.contains("efficientnet-lite0 @ 224, batch 2, levels 3, 3 iterations"), "{text}");
    let bad = Command::new(env!("CARGO_BIN_EXE_gaussad")).args(["bench-backbone", "--iters", "0"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
}
