//! Small cases whose values are computed by hand in the comments.

use mvtec_eval::{ImageMetrics, PixelMetricsAccumulator, PixelMetricsParams, f1_max, roc_auc};
use ndarray::array;

#[test]
fn auroc_by_hand() {
    // scikit-learn's doc example: positives 0.35, 0.8; negatives 0.1, 0.4.
    // Pairs won: 0.35>0.1, 0.8>0.1, 0.8>0.4 = 3 of 4 -> 0.75.
    assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap(), 0.75);
    // A tie between a positive and a negative counts 1/2: (1 + 0.5 + 2) / 4 = 0.875.
    assert_eq!(roc_auc(&[0.1, 0.4, 0.4, 0.8], &[false, false, true, true]).unwrap(), 0.875);
    // All scores equal: one ROC point (1, 1) -> diagonal -> 0.5.
    assert_eq!(roc_auc(&[2.0; 5], &[true, false, true, false, false]).unwrap(), 0.5);
    // -0.0 and 0.0 are the same score (a tie): 0.5.
    assert_eq!(roc_auc(&[-0.0, 0.0], &[true, false]).unwrap(), 0.5);
}

#[test]
fn f1_by_hand() {
    // Scores 0.8(+) 0.4(+) 0.4(-) 0.1(-), P = 2. F1 = 2tp/(tp+fp+P):
    // t=0.8: 2/3; t=0.4: tp 2, fp 1 -> 4/5; t=0.1: 4/6. Max 0.8 at 0.4.
    let (f, t) = f1_max(&[0.1, 0.4, 0.4, 0.8], &[false, false, true, true]).unwrap();
    assert!((f - 0.8).abs() < 1e-15);
    assert_eq!(t, 0.4);
    // Exact tie between thresholds: 3(+) 2(-) 1(+) 1(-)... t=3: tp1 fp0 P2 -> 2/3;
    // t=2: tp1 fp1 -> 2/4; t=1: tp2 fp2 -> 4/6 = 2/3. Tie 2/3 at t=3 and t=1: the LOWER (1) wins.
    let (f, t) = f1_max(&[3.0, 2.0, 1.0, 1.0], &[true, false, true, false]).unwrap();
    assert!((f - 2.0 / 3.0).abs() < 1e-15);
    assert_eq!(t, 1.0);
    // All equal: the only threshold predicts everything anomalous: 2*2/(2+3+2) = 4/7.
    let (f, t) = f1_max(&[5.0; 5], &[true, false, true, false, false]).unwrap();
    assert!((f - 4.0 / 7.0).abs() < 1e-15);
    assert_eq!(t, 5.0);
    let m = ImageMetrics::compute(&[5.0; 5], &[true, false, true, false, false]).unwrap();
    assert_eq!(m.roc.x, vec![0.0, 1.0]);
    assert_eq!((m.n_anomalous, m.n_normal), (2, 3));
}

#[test]
fn pixel_metrics_by_hand() {
    // One 1x6 map: scores 0.9 0.8 0.7 0.6 0.5 0.4, mask 1 1 0 1 0 0.
    // Regions: A = {0, 1} (size 2), B = {3} (size 1); normal pixels 0.7, 0.5, 0.4 (N = 3).
    // Descending sweep (FPR, PRO): 0.9 -> (0, 0.25); 0.8 -> (0, 0.5); 0.7 -> (1/3, 0.5);
    // 0.6 -> (1/3, 1); 0.5 -> (2/3, 1); 0.4 -> (1, 1).
    // AUPRO@0.3: PRO is 0.5 on [0, 1/3], so the area up to 0.3 (interpolated) is 0.15 -> 0.5.
    // AUPRO@1: 0.5 * 1/3 + 1 * 2/3 = 5/6.
    // Pixel AUROC: 0.9 and 0.8 beat all 3 normals, 0.6 beats 2 -> 8/9.
    // F1 (P = 3): t=0.6: tp 3, fp 1 -> 6/7 is the maximum.
    let map = array![[0.9f32, 0.8, 0.7, 0.6, 0.5, 0.4]];
    let mask = array![[true, true, false, true, false, false]];
    let run = |limit: f64| {
        let mut acc = PixelMetricsAccumulator::with_params(PixelMetricsParams::default().with_pro_fpr_limit(limit)).unwrap();
        acc.push(map.view(), Some(mask.view())).unwrap();
        acc.finish().unwrap()
    };
    let r = run(0.3);
    assert!((r.aupro - 0.5).abs() < 1e-12, "{}", r.aupro);
    assert!((r.auroc - 8.0 / 9.0).abs() < 1e-12);
    assert!((r.f1_max - 6.0 / 7.0).abs() < 1e-12);
    assert_eq!(r.f1_threshold, 0.6f32 as f64);
    assert_eq!((r.n_pixels, r.n_anomalous_pixels, r.n_regions), (6, 3, 2));
    assert_eq!(r.pro.x.last(), Some(&1.0));
    let r = run(1.0);
    assert!((r.aupro - 5.0 / 6.0).abs() < 1e-12, "{}", r.aupro);
    // Good images add defect-free pixels: a good map of four 0.95 pixels is above everything,
    // FPR jumps to 4/7 > 0.3 at PRO 0 -> AUPRO@0.3 = 0.
    let mut acc = PixelMetricsAccumulator::new();
    acc.push(array![[0.95f64, 0.95], [0.95, 0.95]].view(), None).unwrap();
    acc.push(map.view(), Some(mask.view())).unwrap();
    assert_eq!(acc.finish().unwrap().aupro, 0.0);
}
