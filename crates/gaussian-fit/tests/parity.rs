//! Parity with scikit-learn / NumPy (fixtures from `tests/fixtures/generate.py`).
//!
//! Matrices are compared relative to the reference's largest entry:
//! `max |a - b| <= tol * max |b|` (entry-wise relative tests are meaningless for entries
//! that are zero up to rounding).

use gaussian_fit::{CovarianceEstimator, GaussianParams, MomentAccumulator};
use ndarray::{Array1, Array2};
use serde_json::Value;

const FIXTURES: &str = include_str!("fixtures/gaussian_fixtures.json");
const TOL: f64 = 1e-9;

fn cases() -> Vec<Value> {
    let doc: Value = serde_json::from_str(FIXTURES).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn vec1(v: &Value) -> Array1<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn mat(v: &Value) -> Array2<f64> {
    let rows = v.as_array().unwrap();
    let n = rows.len();
    let p = rows[0].as_array().unwrap().len();
    Array2::from_shape_fn((n, p), |(i, j)| rows[i][j].as_f64().unwrap())
}

fn assert_close<D: ndarray::Dimension>(
    got: &ndarray::Array<f64, D>,
    want: &ndarray::Array<f64, D>,
    tol: f64,
    what: &str,
) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.iter().fold(0.0_f64, |m, v| m.max(v.abs())).max(1e-300);
    let err = got
        .iter()
        .zip(want.iter())
        .fold(0.0_f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= tol * scale,
        "{what}: max abs diff {err:e} > {tol:e} * {scale:e}"
    );
}

fn fit(est: CovarianceEstimator, x: &Array2<f64>) -> gaussian_fit::FittedGaussian {
    GaussianParams::default()
        .with_estimator(est)
        .validate()
        .unwrap()
        .fit_rows(x.view())
        .unwrap()
}

#[test]
fn ledoit_wolf_matches_sklearn() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let g = fit(CovarianceEstimator::LedoitWolf, &x);
        assert_close(g.mean(), &vec1(&c["mean"]), TOL, &format!("{name} mean"));
        assert_close(
            g.covariance(),
            &mat(&c["lw_covariance"]),
            TOL,
            &format!("{name} LW cov"),
        );
        let s_ref = c["lw_shrinkage"].as_f64().unwrap();
        assert!(
            (g.shrinkage() - s_ref).abs() <= TOL * s_ref.abs().max(1e-3),
            "{name}: shrinkage {} vs sklearn {s_ref}",
            g.shrinkage()
        );
        assert_close(
            g.precision(),
            &mat(&c["lw_precision_floored"]),
            TOL,
            &format!("{name} LW precision"),
        );
        if c["well_conditioned"].as_bool().unwrap() {
            assert_close(
                g.precision(),
                &mat(&c["lw_precision_inv"]),
                TOL,
                &format!("{name} LW precision vs inv"),
            );
        }
        assert_eq!(g.n_samples(), c["n"].as_u64().unwrap());
    }
}

#[test]
fn empirical_and_ridge_match_numpy() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let emp = mat(&c["empirical_covariance"]);
        let g = fit(CovarianceEstimator::Empirical, &x);
        assert_eq!(g.shrinkage(), 0.0);
        assert_close(g.covariance(), &emp, TOL, &format!("{name} empirical cov"));
        let eps = c["ridge_eps"].as_f64().unwrap();
        let r = fit(CovarianceEstimator::Ridge(eps), &x);
        let mut want = emp.clone();
        want.diag_mut().mapv_inplace(|v| v + eps);
        assert_close(r.covariance(), &want, TOL, &format!("{name} ridge cov"));
        assert_close(
            r.precision(),
            &mat(&c["ridge_precision_floored"]),
            TOL,
            &format!("{name} ridge precision"),
        );
        if c["well_conditioned"].as_bool().unwrap() {
            assert_close(
                g.precision(),
                &mat(&c["empirical_precision_inv"]),
                TOL,
                &format!("{name} empirical precision vs inv"),
            );
        }
    }
}

/// Floored precision of a singular empirical covariance: the floored directions get weight
/// `p / (1e-9 tr)`, so the matrix is dominated by the null-space projector; both solvers agree
/// on it to about `eps * cond` of the non-null part, hence a looser (still tight) tolerance.
#[test]
fn floored_precision_of_singular_covariance_matches_numpy() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let g = fit(CovarianceEstimator::Empirical, &x);
        assert!(g.precision().iter().all(|v| v.is_finite()));
        assert_close(
            g.precision(),
            &mat(&c["empirical_precision_floored"]),
            1e-6,
            &format!("{name} empirical floored precision"),
        );
    }
}

#[test]
fn streamed_matches_sklearn_too() {
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        let x = mat(&c["x"]);
        let mut acc = MomentAccumulator::new(x.ncols());
        // uneven chunks: single vectors, then a block, then the rest
        let n = x.nrows();
        let a = n / 3;
        let b = (2 * n) / 3;
        for i in 0..a {
            acc.push_vector(x.row(i)).unwrap();
        }
        acc.push_rows(x.slice(ndarray::s![a..b, ..])).unwrap();
        let mut other = MomentAccumulator::new(x.ncols());
        other.push_rows(x.slice(ndarray::s![b.., ..])).unwrap();
        acc.merge(&other).unwrap();
        let g = GaussianParams::default()
            .validate()
            .unwrap()
            .fit(&acc)
            .unwrap();
        assert_close(
            g.covariance(),
            &mat(&c["lw_covariance"]),
            TOL,
            &format!("{name} streamed"),
        );
        let s_ref = c["lw_shrinkage"].as_f64().unwrap();
        assert!(
            (g.shrinkage() - s_ref).abs() <= TOL * s_ref.abs().max(1e-3),
            "{name}"
        );
    }
}
