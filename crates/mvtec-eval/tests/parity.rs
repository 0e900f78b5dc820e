//! Parity with the reference scripts in `tests/fixtures/generate.py` (scikit-learn
//! `roc_auc_score` / `precision_recall_curve`, and a NumPy re-implementation of the official
//! MVTec AD `compute_pro` + `trapezoid` using scipy.ndimage.label with 8-connectivity).

use std::path::PathBuf;

use mvtec_eval::{
    Dataset, ImageMetrics, MaskGeometry, PixelMetricsAccumulator, PixelMetricsParams, f1_max, load_sample_mask, roc_auc,
};
use ndarray::Array2;
use serde_json::Value;

const TOL: f64 = 1e-6;

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= TOL, "{what}: rust {a} vs reference {b}");
}

#[test]
fn ranking_matches_sklearn() {
    let cases = fixture("ranking.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let scores = f64s(&c["scores"]);
        let labels: Vec<bool> = c["labels"].as_array().unwrap().iter().map(|x| x.as_bool().unwrap()).collect();
        let auc = roc_auc(&scores, &labels).unwrap();
        close(auc, c["auroc"].as_f64().unwrap(), &format!("{name} auroc"));
        let (f1, thr) = f1_max(&scores, &labels).unwrap();
        close(f1, c["f1_max"].as_f64().unwrap(), &format!("{name} f1"));
        close(thr, c["f1_threshold"].as_f64().unwrap(), &format!("{name} threshold"));
        let m = ImageMetrics::compute(&scores, &labels).unwrap();
        assert_eq!(m.auroc, auc);
        // The ROC curve ends at (1, 1) and its trapezoid area is the AUROC.
        let area: f64 = m.roc.x.windows(2).zip(m.roc.y.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum();
        close(area, auc, &format!("{name} curve area"));
    }
}

#[test]
fn small_pro_cases_match_official_algorithm() {
    let cases = fixture("pro_small.json");
    for c in cases.as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let limit = c["limit"].as_f64().unwrap();
        let mut acc = PixelMetricsAccumulator::with_params(PixelMetricsParams::default().with_pro_fpr_limit(limit)).unwrap();
        for (m, g) in c["maps"].as_array().unwrap().iter().zip(c["masks"].as_array().unwrap()) {
            let rows = m.as_array().unwrap();
            let (h, w) = (rows.len(), rows[0].as_array().unwrap().len());
            let map = Array2::from_shape_vec((h, w), rows.iter().flat_map(f64s).map(|v| v as f32).collect()).unwrap();
            let mask = Array2::from_shape_vec(
                (h, w),
                g.as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() != 0)).collect(),
            )
            .unwrap();
            let has_defect = mask.iter().any(|&b| b);
            acc.push(map.view(), if has_defect { Some(mask.view()) } else { None }).unwrap();
        }
        let r = acc.finish().unwrap();
        close(r.auroc, c["auroc"].as_f64().unwrap(), &format!("{name} pixel auroc"));
        close(r.aupro, c["aupro"].as_f64().unwrap(), &format!("{name} aupro"));
        close(r.f1_max, c["f1_max"].as_f64().unwrap(), &format!("{name} f1"));
        close(r.f1_threshold, c["f1_threshold"].as_f64().unwrap(), &format!("{name} f1 threshold"));
    }
}

/// The integer hash of generate.py (`hash32`), in u32 wrapping arithmetic.
fn hash32(seed: u32, k: u32, i: u32, j: u32) -> u32 {
    let mut x = seed ^ k.wrapping_mul(73856093) ^ i.wrapping_mul(19349663) ^ j.wrapping_mul(83492791);
    x ^= x >> 16;
    x = x.wrapping_mul(0x45D9F3B);
    x ^= x >> 16;
    x = x.wrapping_mul(0x45D9F3B);
    x ^= x >> 16;
    x
}

/// generate.py's `pseudo_map`: (40 * defect count in the 5x5 window + hash % 1000) / 1024.
fn pseudo_map(seed: u32, k: u32, mask: &Array2<bool>) -> Array2<f32> {
    let (h, w) = mask.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        let mut cnt = 0u32;
        for di in -2i64..=2 {
            for dj in -2i64..=2 {
                let (y, x) = (i as i64 + di, j as i64 + dj);
                if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w && mask[[y as usize, x as usize]] {
                    cnt += 1;
                }
            }
        }
        (40 * cnt + hash32(seed, k, i as u32, j as u32) % 1000) as f32 / 1024.0
    })
}

#[test]
fn fixed_scores_on_dev_set_match_reference_scripts() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/dev");
    let ds = Dataset::open_mvtec(&root).unwrap();
    assert_eq!(ds.category_names(), vec!["brick", "carpet", "grass", "parts"]);
    let cases = fixture("dev_scores.json");
    for c in cases.as_array().unwrap() {
        let name = c["category"].as_str().unwrap();
        let cat = ds.category(name).unwrap();
        cat.validate(Default::default()).unwrap();
        let seed = c["seed"].as_u64().unwrap() as u32;
        let size = c["size"].as_u64().unwrap() as usize;
        let files: Vec<&str> = c["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(files.len(), cat.test.len(), "{name}: test count");
        let mut acc = PixelMetricsAccumulator::new();
        let (mut img_scores, mut labels) = (Vec::new(), Vec::new());
        let mut n_def = 0u64;
        for (k, (s, f)) in cat.test.iter().zip(&files).enumerate() {
            assert_eq!(s.path, cat.dir.join(f), "{name}: order of test files");
            let mask = load_sample_mask(s, MaskGeometry::resize(size)).unwrap();
            let zero = Array2::from_elem((size, size), false);
            let m = pseudo_map(seed, k as u32, mask.as_ref().unwrap_or(&zero));
            n_def += mask.as_ref().map_or(0, |m| m.iter().filter(|&&b| b).count() as u64);
            acc.push(m.view(), mask.as_ref().map(|m| m.view())).unwrap();
            img_scores.push(m.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64);
            labels.push(s.is_anomalous);
        }
        assert_eq!(n_def, c["n_defect_pixels"].as_u64().unwrap(), "{name}: mask pixels after resize");
        let im = ImageMetrics::compute(&img_scores, &labels).unwrap();
        close(im.auroc, c["image"]["auroc"].as_f64().unwrap(), &format!("{name} image auroc"));
        close(im.f1_max, c["image"]["f1_max"].as_f64().unwrap(), &format!("{name} image f1"));
        close(im.f1_threshold, c["image"]["f1_threshold"].as_f64().unwrap(), &format!("{name} image thr"));
        let px = acc.finish().unwrap();
        close(px.auroc, c["pixel"]["auroc"].as_f64().unwrap(), &format!("{name} pixel auroc"));
        close(px.aupro, c["pixel"]["aupro"].as_f64().unwrap(), &format!("{name} aupro"));
        close(px.f1_max, c["pixel"]["f1_max"].as_f64().unwrap(), &format!("{name} pixel f1"));
        close(px.f1_threshold, c["pixel"]["f1_threshold"].as_f64().unwrap(), &format!("{name} pixel thr"));
    }
}
