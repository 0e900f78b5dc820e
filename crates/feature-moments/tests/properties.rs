//! Streamed moments (mean, M2, T3, Q4) equal the one-shot moments whatever the chunking.

use feature_moments::{MomentAccumulator, Moments};
use ndarray::{Array2, s};
use proptest::prelude::*;

fn data() -> impl Strategy<Value = (Array2<f64>, Vec<(usize, u8)>)> {
    (1usize..6, 1usize..300).prop_flat_map(|(d, n)| {
        (
            proptest::collection::vec(-1e3f64..1e3, n * d)
                .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap()),
            proptest::collection::vec((1usize..80, 0u8..3), 1..40),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn streamed_equals_one_shot((x, cuts) in data(), offset in -1e6f64..1e6) {
        let x = x.mapv(|v| v + offset);
        let (n, d) = x.dim();
        let one = Moments::from_rows(x.view());
        let mut acc = MomentAccumulator::new(d);
        let mut start = 0;
        let mut k = 0;
        while start < n {
            let (len, how) = cuts[k % cuts.len()];
            k += 1;
            let end = (start + len).min(n);
            let chunk = x.slice(s![start..end, ..]);
            match how {
                0 => acc.push_rows(chunk).unwrap(),
                1 => {
                    for r in chunk.outer_iter() {
                        acc.push_vector(r).unwrap();
                    }
                }
                _ => {
                    let mut other = MomentAccumulator::new(d);
                    other.push_rows(chunk).unwrap();
                    acc.merge(&other).unwrap();
                }
            }
            start = end;
        }
        let m = acc.snapshot();
        prop_assert_eq!(m.n, n as u64);
        let scale = one.m2.diag().iter().cloned().fold(1.0, f64::max);
        for (a, b) in m.mean.iter().zip(&one.mean) {
            prop_assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{} vs {}", a, b);
        }
        for (a, b) in m.m2.iter().zip(&one.m2) {
            prop_assert!((a - b).abs() <= 1e-9 * scale, "{} vs {}", a, b);
        }
        // |T3_i| <= sqrt(Q4 M2_ii) (Cauchy-Schwarz) sets the scale of T3
        let t3_scale = (one.q4 * scale).sqrt().max(1.0);
        for (a, b) in m.t3.iter().zip(&one.t3) {
            prop_assert!((a - b).abs() <= 1e-9 * t3_scale, "{} vs {}", a, b);
        }
        prop_assert!((m.q4 - one.q4).abs() <= 1e-9 * one.q4.max(1.0), "{} vs {}", m.q4, one.q4);
    }
}
