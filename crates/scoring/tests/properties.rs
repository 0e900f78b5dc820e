//! Property tests (proptest).

use gaussian_fit::GaussianParams;
use ndarray::{Array1, Array2, Array3, ArrayView3};
use opca_reduction::{ReductionParams, Selection};
use proptest::prelude::*;
use scoring::*;

fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = Array2<f64>> {
    proptest::collection::vec(-3.0f64..3.0, rows * cols)
        .prop_map(move |v| Array2::from_shape_vec((rows, cols), v).unwrap())
}

/// A random orthogonal matrix: Gram-Schmidt (twice, for accuracy) of a random square matrix.
fn orthogonal(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut q = a.clone();
    for j in 0..n {
        for _ in 0..2 {
            for k in 0..j {
                let proj = q.column(j).dot(&q.column(k));
                let ck = q.column(k).to_owned();
                q.column_mut(j).scaled_add(-proj, &ck);
            }
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        if norm < 1e-3 {
            return None;
        }
        q.column_mut(j).mapv_inplace(|v| v / norm);
    }
    Some(q)
}

fn views(maps: &[Array3<f64>]) -> Vec<ArrayView3<'_, f64>> {
    maps.iter().map(|m| m.view()).collect()
}

fn fit_order(
    params: &DetectorParams,
    shapes: &[LevelShape],
    train: &[Vec<Array3<f64>>],
    order1: &[usize],
    order2: &[usize],
) -> Detector {
    let mut f = DetectorFitter::new(params.validate().unwrap(), shapes).unwrap();
    for &i in order1 {
        f.push_phase1(&views(&train[i])).unwrap();
    }
    f.finish_phase1().unwrap();
    for &i in order2 {
        f.push_phase2(&views(&train[i])).unwrap();
    }
    f.finish().unwrap()
}

/// Rotate the channel vector of every position: x'(i, j) = Q x(i, j).
fn rotate(map: &Array3<f64>, q: &Array2<f64>) -> Array3<f64> {
    let (c, h, w) = map.dim();
    let flat = map.view().into_shape_with_order((c, h * w)).unwrap();
    q.dot(&flat).into_shape_with_order((c, h, w)).unwrap()
}

const SHAPES: [LevelShape; 2] = [(3, 3, 2), (4, 2, 2)];

fn images(n: usize) -> impl Strategy<Value = Vec<Vec<Array3<f64>>>> {
    let one = (
        proptest::collection::vec(-2.0f64..2.0, 3 * 3 * 2),
        proptest::collection::vec(-2.0f64..2.0, 4 * 2 * 2),
    )
        .prop_map(|(a, b)| {
            vec![
                Array3::from_shape_vec(SHAPES[0], a).unwrap(),
                Array3::from_shape_vec(SHAPES[1], b).unwrap(),
            ]
        });
    proptest::collection::vec(one, n)
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn distance_nonnegative_and_zero_at_mean(x in matrix(12, 3), t in matrix(4, 3)) {
        let g = GaussianParams::default().validate().unwrap().fit_rows(x.view()).unwrap();
        let at_mean = mahalanobis(&g, g.mean().view()).unwrap();
        prop_assert!(at_mean.abs() < 1e-12, "distance at the mean: {}", at_mean);
        for d in mahalanobis_rows(&g, t.view()).unwrap() {
            prop_assert!(d >= 0.0 && d.is_finite());
        }
        // the batch and the single-vector paths agree
        let batch = mahalanobis_rows(&g, t.view()).unwrap();
        for (i, row) in t.outer_iter().enumerate() {
            let single = mahalanobis(&g, row).unwrap();
            prop_assert!(rel_close(single, batch[i], 1e-12));
        }
    }

    #[test]
    fn upsample_of_constant_is_constant(
        v in -1e3f64..1e3, ih in 1usize..9, iw in 1usize..9, oh in 1usize..30, ow in 1usize..30,
    ) {
        let m = Array2::from_elem((ih, iw), v);
        let up = upsample_bilinear(m.view(), oh, ow).unwrap();
        prop_assert_eq!(up.dim(), (oh, ow));
        for &x in up.iter() {
            prop_assert!((x - v).abs() <= 1e-12 * v.abs().max(1.0), "{} vs {}", x, v);
        }
    }

    #[test]
    fn upsample_to_same_size_is_identity(m in matrix(5, 7)) {
        let up = upsample_bilinear(m.view(), 5, 7).unwrap();
        prop_assert_eq!(up, m);
    }

    #[test]
    fn blur_preserves_constant_map(
        v in -1e3f64..1e3, h in 1usize..12, w in 1usize..12, sigma in 0.0f64..6.0,
    ) {
        let m = Array2::from_elem((h, w), v);
        let b = gaussian_blur(m.view(), sigma).unwrap();
        let mean = b.mean().unwrap();
        prop_assert!((mean - v).abs() <= 1e-12 * v.abs().max(1.0));
        for &x in b.iter() {
            prop_assert!((x - v).abs() <= 1e-12 * v.abs().max(1.0), "{} vs {}", x, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// With reduction `none`, every score is invariant under an orthogonal rotation of the
    /// features (Mahalanobis with Ledoit-Wolf is rotation invariant).
    #[test]
    fn scores_invariant_under_rotation_with_reduction_none(
        train in images(7), test in images(2),
        a0 in matrix(3, 3), a1 in matrix(4, 4),
        per_position in any::<bool>(),
    ) {
        let (Some(q0), Some(q1)) = (orthogonal(&a0), orthogonal(&a1)) else {
            return Ok(()); // (near-)singular draw: nothing to test
        };
        let params = DetectorParams::default()
            .with_reduction(ReductionParams::default().with_selection(Selection::None))
            .with_spatial(if per_position { SpatialModel::PerPosition } else { SpatialModel::Shared })
            .with_image_score(ImageScore::MapMax);
        let rot = |img: &Vec<Array3<f64>>| vec![rotate(&img[0], &q0), rotate(&img[1], &q1)];
        let order: Vec<usize> = (0..train.len()).collect();
        let d = fit_order(&params, &SHAPES, &train, &order, &order);
        let train_r: Vec<_> = train.iter().map(rot).collect();
        let dr = fit_order(&params, &SHAPES, &train_r, &order, &order);
        for img in &test {
            let s = d.score(&views(img), 6, 5).unwrap();
            let sr = dr.score(&views(&rot(img)), 6, 5).unwrap();
            prop_assert!(rel_close(s.image, sr.image, 1e-7), "{} vs {}", s.image, sr.image);
            for (a, b) in s.per_level_pooled.iter().zip(&sr.per_level_pooled) {
                prop_assert!(rel_close(*a, *b, 1e-7), "pooled {} vs {}", a, b);
            }
            for (a, b) in s.map.iter().zip(sr.map.iter()) {
                prop_assert!(rel_close(*a, *b, 1e-7), "map {} vs {}", a, b);
            }
        }
    }

    /// The streamed fit does not depend on the order of the images (in either phase).
    #[test]
    fn streamed_fit_is_order_independent(
        train in images(6), test in images(1),
        perm1 in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        perm2 in Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        opca in any::<bool>(), per_position in any::<bool>(), from_pooled in any::<bool>(),
    ) {
        let sel = if opca { Selection::Opca(0.3) } else { Selection::None };
        let params = DetectorParams::default()
            .with_reduction(ReductionParams::default().with_selection(sel))
            .with_spatial(if per_position { SpatialModel::PerPosition } else { SpatialModel::Shared })
            .with_pixel_pca(if from_pooled { PixelPca::FromPooled } else { PixelPca::PerLevel })
            .with_blur_sigma(Some(0.8));
        let order: Vec<usize> = (0..6).collect();
        let d = fit_order(&params, &SHAPES, &train, &order, &order);
        let dp = fit_order(&params, &SHAPES, &train, &perm1, &perm2);
        for (a, b) in d.levels().iter().zip(dp.levels()) {
            prop_assert_eq!(a.image.reduction.output_dim(), b.image.reduction.output_dim());
            prop_assert_eq!(a.pixel.reduction.output_dim(), b.pixel.reduction.output_dim());
        }
        let s = d.score(&views(&test[0]), 5, 5).unwrap();
        let sp = dp.score(&views(&test[0]), 5, 5).unwrap();
        prop_assert!(rel_close(s.image, sp.image, 1e-7), "{} vs {}", s.image, sp.image);
        for (a, b) in s.map.iter().zip(sp.map.iter()) {
            prop_assert!(rel_close(*a, *b, 1e-7), "map {} vs {}", a, b);
        }
    }
}

#[test]
fn pooled_image_score_is_sum_of_levels() {
    // deterministic smoke check of the image-score definitions
    let train: Vec<Vec<Array3<f64>>> = (0..5)
        .map(|s| {
            SHAPES
                .iter()
                .map(|&sh| {
                    Array3::from_shape_fn(sh, |(c, i, j)| {
                        (((s * 13 + c * 5 + i * 3 + j) % 7) as f64).sin()
                    })
                })
                .collect()
        })
        .collect();
    let order: Vec<usize> = (0..5).collect();
    for score in [ImageScore::Pooled, ImageScore::MapMax] {
        let p = DetectorParams::default().with_image_score(score);
        let d = fit_order(&p, &SHAPES, &train, &order, &order);
        let s = d.score(&views(&train[2]), 4, 4).unwrap();
        let sum: f64 = s.per_level_pooled.iter().sum();
        assert_eq!(s.pooled, sum);
        let max = s.map.iter().cloned().fold(f64::MIN, f64::max);
        match score {
            ImageScore::Pooled => assert_eq!(s.image, s.pooled),
            ImageScore::MapMax => assert_eq!(s.image, max),
        }
        let _ = Array1::from(s.per_level_pooled.clone());
    }
}
