//! Property tests of the metrics.

use mvtec_eval::{PixelMetricsAccumulator, f1_max, roc_auc};
use ndarray::Array2;
use proptest::prelude::*;

fn scored() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    (2usize..60).prop_flat_map(|n| {
        (
            prop::collection::vec((-50i32..50).prop_map(|v| v as f64 / 8.0), n),
            prop::collection::vec(any::<bool>(), n),
        )
            .prop_filter("both classes", |(_, l)| l.iter().any(|&b| b) && l.iter().any(|&b| !b))
    })
}

/// Reference AUROC by pair counting (Mann-Whitney, ties count 1/2).
fn pair_auc(s: &[f64], l: &[bool]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (a, &la) in s.iter().zip(l) {
        for (b, &lb) in s.iter().zip(l) {
            if la && !lb {
                den += 1.0;
                num += if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 };
            }
        }
    }
    num / den
}

proptest! {
    #[test]
    fn auroc_in_unit_interval_and_equals_pair_count((s, l) in scored()) {
        let a = roc_auc(&s, &l).unwrap();
        prop_assert!((0.0..=1.0).contains(&a));
        prop_assert!((a - pair_auc(&s, &l)).abs() < 1e-12);
    }

    #[test]
    fn reversed_scores_give_one_minus_auroc((s, l) in scored()) {
        let a = roc_auc(&s, &l).unwrap();
        let r: Vec<f64> = s.iter().map(|v| -v).collect();
        prop_assert!((roc_auc(&r, &l).unwrap() - (1.0 - a)).abs() < 1e-12);
    }

    #[test]
    fn invariant_under_strictly_monotone_transforms((s, l) in scored()) {
        let a = roc_auc(&s, &l).unwrap();
        let (f, t) = f1_max(&s, &l).unwrap();
        let g = |v: f64| (v / 4.0).exp() * 3.0 + 1.0;
        let tr: Vec<f64> = s.iter().map(|&v| g(v)).collect();
        prop_assert!((roc_auc(&tr, &l).unwrap() - a).abs() < 1e-12);
        let (f2, t2) = f1_max(&tr, &l).unwrap();
        prop_assert!((f2 - f).abs() < 1e-12);
        prop_assert!((t2 - g(t)).abs() < 1e-9 * t2.abs().max(1.0));
    }

    #[test]
    fn pixel_metrics_in_unit_interval_and_monotone_invariant(
        maps in prop::collection::vec(prop::collection::vec(0u8..20, 36), 1..4),
        masks in prop::collection::vec(prop::collection::vec(prop::bool::weighted(0.3), 36), 1..4),
    ) {
        let n = maps.len().min(masks.len());
        let any_def = masks[..n].iter().any(|m| m.iter().any(|&b| b));
        let any_norm = masks[..n].iter().any(|m| m.iter().any(|&b| !b));
        prop_assume!(any_def && any_norm);
        let run = |f: &dyn Fn(f32) -> f32| {
            let mut acc = PixelMetricsAccumulator::new();
            for (m, g) in maps[..n].iter().zip(&masks[..n]) {
                let map = Array2::from_shape_vec((6, 6), m.iter().map(|&v| f(v as f32)).collect()).unwrap();
                let mask = Array2::from_shape_vec((6, 6), g.clone()).unwrap();
                acc.push(map.view(), Some(mask.view())).unwrap();
            }
            acc.finish().unwrap()
        };
        let a = run(&|v| v);
        prop_assert!((0.0..=1.0).contains(&a.aupro) && (0.0..=1.0).contains(&a.auroc));
        prop_assert!((0.0..=1.0).contains(&a.f1_max));
        let b = run(&|v| v * v * 0.5 + 3.0);
        prop_assert!((a.aupro - b.aupro).abs() < 1e-12);
        prop_assert!((a.auroc - b.auroc).abs() < 1e-12);
        let c = run(&|v| -v);
        prop_assert!((c.auroc - (1.0 - a.auroc)).abs() < 1e-12);
    }
}
