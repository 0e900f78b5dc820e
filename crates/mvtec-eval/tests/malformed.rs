//! Malformed datasets built in temporary folders: each gives a clear error naming the path,
//! never a panic.

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, RgbImage};
use mvtec_eval::{
    Dataset, DatasetIssue, EvalError, FolderLayout, MaskGeometry, PixelMetricsAccumulator, ValidateOptions, decode_image,
    load_mask, load_sample_mask,
};
use ndarray::Array2;

fn png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 9])).save(path).unwrap();
}

fn mask_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    GrayImage::from_fn(w, h, |x, _| Luma([if x < w / 2 { 255 } else { 0 }])).save(path).unwrap();
}

/// A valid category `cat` with 3 train, 2 good and 2 `scratch` images (+ masks), 16x16.
fn valid(root: &Path) -> PathBuf {
    let c = root.join("cat");
    for i in 0..3 {
        png(&c.join(format!("train/good/{i:03}.png")), 16, 16);
    }
    for i in 0..2 {
        png(&c.join(format!("test/good/{i:03}.png")), 16, 16);
        png(&c.join(format!("test/scratch/{i:03}.png")), 16, 16);
        mask_png(&c.join(format!("ground_truth/scratch/{i:03}_mask.png")), 16, 16);
    }
    c
}

fn issues(root: &Path) -> (Vec<DatasetIssue>, String) {
    let ds = Dataset::open_mvtec(root).unwrap();
    let cat = ds.category("cat").unwrap();
    let err = cat.validate(ValidateOptions { decode: true }).unwrap_err();
    (cat.issues(ValidateOptions { decode: true }), err.to_string())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn valid_dataset_passes_and_is_sorted() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    png(&t.path().join("other/train/good/a.PNG"), 8, 8); // upper-case extension counts
    std::fs::create_dir_all(t.path().join("not_a_category/test")).unwrap();
    std::fs::write(c.join("train/good/notes.txt"), "x").unwrap();
    let ds = Dataset::open_mvtec(t.path()).unwrap();
    assert_eq!(ds.category_names(), vec!["cat", "other"]);
    let cat = ds.category("cat").unwrap();
    cat.validate(ValidateOptions::default()).unwrap();
    assert_eq!(cat.train.len(), 3);
    let names: Vec<String> = cat.test.iter().map(|s| format!("{}/{}", s.defect, s.path.file_name().unwrap().to_string_lossy())).collect();
    assert_eq!(names, ["good/000.png", "good/001.png", "scratch/000.png", "scratch/001.png"]);
    assert!(cat.test[0].mask.is_none() && !cat.test[0].is_anomalous);
    assert_eq!(cat.test[2].mask.as_deref(), Some(c.join("ground_truth/scratch/000_mask.png").as_path()));
    assert_eq!(ds.category("other").unwrap().train.len(), 1);
    // Masks at 8x8 (good images have none).
    for s in &cat.test {
        let mask = load_sample_mask(s, MaskGeometry::resize(8)).unwrap();
        assert_eq!(mask.is_some(), s.is_anomalous);
        if let Some(m) = mask {
            assert_eq!(m.dim(), (8, 8));
            assert!(m[[0, 3]] && !m[[0, 4]]);
        }
    }
    // Generic layout: the same category opened as a folder.
    let one = Dataset::open_folder(&c, &FolderLayout::default()).unwrap();
    assert_eq!(one.categories()[0].test.len(), 4);
}

#[test]
fn bad_1_missing_root() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("nope");
    let e = Dataset::open_mvtec(&p).unwrap_err();
    assert!(matches!(e, EvalError::NoRoot(_)));
    assert!(e.to_string().contains(&s(&p)));
}

#[test]
fn bad_2_root_without_categories() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("x/test/good")).unwrap();
    let e = Dataset::open_mvtec(t.path()).unwrap_err();
    assert!(matches!(e, EvalError::NoCategories(_)));
    assert!(e.to_string().contains(&s(t.path())) && e.to_string().contains("train/good"));
}

#[test]
fn bad_3_unknown_category_lists_available() {
    let t = tempfile::tempdir().unwrap();
    valid(t.path());
    let ds = Dataset::open_mvtec(t.path()).unwrap();
    let e = ds.category("screw").unwrap_err().to_string();
    assert!(e.contains("'screw'") && e.contains("available: cat"), "{e}");
    let e = ds.filter(&["cat", "zipper"]).unwrap_err().to_string();
    assert!(e.contains("zipper") && e.contains("cat"), "{e}");
}

#[test]
fn bad_4_defect_image_without_mask() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    png(&c.join("test/scratch/002.png"), 16, 16);
    let (iss, msg) = issues(t.path());
    let img = c.join("test/scratch/002.png");
    assert_eq!(iss, vec![DatasetIssue::MissingMask { image: img.clone() }]);
    assert!(msg.contains(&s(&img)) && msg.contains("no mask"), "{msg}");
}

#[test]
fn bad_5_mask_without_image() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    let m = c.join("ground_truth/scratch/007_mask.png");
    mask_png(&m, 16, 16);
    let m2 = c.join("ground_truth/dent/000_mask.png"); // a defect type with no test folder
    mask_png(&m2, 16, 16);
    let (iss, msg) = issues(t.path());
    assert!(iss.contains(&DatasetIssue::MaskWithoutImage { mask: m.clone() }));
    assert!(iss.contains(&DatasetIssue::MaskWithoutImage { mask: m2.clone() }));
    assert!(msg.contains(&s(&m)) && msg.contains(&s(&m2)), "{msg}");
}

#[test]
fn bad_6_mask_size_mismatch() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    let m = c.join("ground_truth/scratch/001_mask.png");
    mask_png(&m, 12, 16);
    let img = c.join("test/scratch/001.png");
    let (iss, msg) = issues(t.path());
    assert_eq!(iss.len(), 1);
    assert!(matches!(&iss[0], DatasetIssue::MaskSizeMismatch { image_size: (16, 16), mask_size: (12, 16), .. }));
    assert!(msg.contains(&s(&m)) && msg.contains(&s(&img)), "{msg}");
    // Loading the sample's mask checks the header sizes too.
    let ds = Dataset::open_mvtec(t.path()).unwrap();
    let sample = ds.category("cat").unwrap().test.iter().find(|s| s.path == img).unwrap().clone();
    let e = load_sample_mask(&sample, MaskGeometry::resize(8)).unwrap_err();
    assert!(matches!(e, EvalError::MaskSizeMismatch { .. }));
    assert!(e.to_string().contains(&s(&m)) && e.to_string().contains(&s(&img)));
}

#[test]
fn bad_7_truncated_png() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    let p = c.join("test/good/001.png");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let (iss, msg) = issues(t.path());
    assert!(iss.iter().any(|i| matches!(i, DatasetIssue::Unreadable { path, .. } if *path == p)), "{iss:?}");
    assert!(msg.contains(&s(&p)));
    let e = decode_image(&p).unwrap_err();
    assert!(matches!(e, EvalError::Decode { .. }) && e.to_string().contains(&s(&p)));
}

#[test]
fn bad_8_garbage_file_with_image_extension() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    let p = c.join("train/good/002.png");
    std::fs::write(&p, b"this is not a png").unwrap();
    let ds = Dataset::open_mvtec(t.path()).unwrap();
    // Caught even by the cheap header-only check.
    let iss = ds.category("cat").unwrap().issues(ValidateOptions { decode: false });
    assert!(iss.iter().any(|i| matches!(i, DatasetIssue::Unreadable { path, .. } if *path == p)), "{iss:?}");
    let e = decode_image(&p).unwrap_err();
    assert!(e.to_string().contains(&s(&p)));
}

#[test]
fn bad_9_empty_train_set() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    for i in 0..3 {
        std::fs::remove_file(c.join(format!("train/good/{i:03}.png"))).unwrap();
    }
    let (iss, msg) = issues(t.path());
    assert_eq!(iss, vec![DatasetIssue::EmptyTrain { dir: c.join("train/good") }]);
    assert!(msg.contains(&s(&c.join("train/good"))) && msg.contains("no image"));
}

#[test]
fn bad_10_single_training_image() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    for i in 1..3 {
        std::fs::remove_file(c.join(format!("train/good/{i:03}.png"))).unwrap();
    }
    let (iss, msg) = issues(t.path());
    assert_eq!(iss, vec![DatasetIssue::TooFewTrain { dir: c.join("train/good"), count: 1 }]);
    assert!(msg.contains("at least 2"));
}

#[test]
fn bad_11_missing_test_folder() {
    let t = tempfile::tempdir().unwrap();
    let c = valid(t.path());
    std::fs::remove_dir_all(c.join("test")).unwrap();
    std::fs::remove_dir_all(c.join("ground_truth")).unwrap();
    let (iss, msg) = issues(t.path());
    assert_eq!(iss, vec![DatasetIssue::EmptyTest { dir: c.join("test") }]);
    assert!(msg.contains(&s(&c.join("test"))));
}

#[test]
fn bad_12_missing_mask_file_and_bad_layout() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("gone_mask.png");
    let e = load_mask(&p, MaskGeometry::resize(4)).unwrap_err();
    assert!(matches!(e, EvalError::Io { .. }) && e.to_string().contains(&s(&p)));
    let e = load_mask(&p, MaskGeometry::resize(0)).unwrap_err();
    assert!(e.to_string().contains(&s(&p)));
    let e = Dataset::open_with_layout(t.path(), &FolderLayout::default().with_train_dir("../x")).unwrap_err();
    assert!(e.to_string().contains("train_dir"));
}

#[test]
fn bad_13_bad_scores_and_shapes() {
    let mut acc = PixelMetricsAccumulator::new();
    let mut map = Array2::<f32>::zeros((4, 4));
    map[[1, 2]] = f32::NAN;
    let e = acc.push(map.view(), None).unwrap_err().to_string();
    assert!(e.contains("row 1, col 2"), "{e}");
    let e = acc.push(Array2::<f64>::zeros((4, 4)).view(), Some(Array2::from_elem((4, 5), true).view())).unwrap_err();
    assert!(e.to_string().contains("4x5"));
    assert!(acc.push(Array2::<f32>::zeros((0, 4)).view(), None).is_err());
    // Inf from an f64 map that overflows f32.
    assert!(acc.push(Array2::from_elem((2, 2), 1e300f64).view(), None).is_err());
    assert_eq!(acc.n_maps(), 0);
    // Only normal pixels: undefined, not NaN.
    acc.push(Array2::<f32>::zeros((2, 2)).view(), None).unwrap();
    assert!(matches!(acc.finish(), Err(EvalError::Undefined { .. })));
    assert!(mvtec_eval::roc_auc(&[0.1, f64::NAN], &[true, false]).is_err());
    assert!(mvtec_eval::roc_auc(&[0.1, 0.2], &[true, true]).is_err());
    assert!(mvtec_eval::roc_auc(&[0.1], &[true, false]).is_err());
    assert!(mvtec_eval::f1_max(&[0.1, 0.2], &[false, false]).is_err());
}
