//! The floored precision matrix (faer Cholesky, or the shared symmetric eigendecomposition
//! [`feature_moments::sym_eigh_desc`]).
//!
//! faer was chosen over nalgebra by measurement: see `benches/linalg.rs` and
//! `docs/performance/numerical-core.md` in the repository.

use faer::{Mat, Side};
use feature_moments::{sym_eigh_desc, symmetrize};
use ndarray::{Array2, ArrayView2};

/// Relative eigenvalue floor used when inverting a covariance (spec section 2).
pub const PRECISION_FLOOR: f64 = 1e-9;

/// Inverse of the symmetric positive definite `a` by Cholesky (faer), `None` if `a` is not
/// numerically positive definite or the inverse is not finite.
fn cholesky_inverse(a: ArrayView2<'_, f64>) -> Option<Array2<f64>> {
    use faer::linalg::solvers::DenseSolveCore;
    let n = a.nrows();
    let m = Mat::<f64>::from_fn(n, n, |i, j| a[[i, j]]);
    let inv = m.llt(Side::Lower).ok()?.inverse();
    let mut out = Array2::from_shape_fn((n, n), |(i, j)| inv[(i, j)]);
    symmetrize(&mut out);
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Precision of the symmetric positive semi-definite matrix `cov`: its inverse with the
/// eigenvalues floored at `PRECISION_FLOOR * tr(cov) / p`; identity if `tr(cov) <= 0`.
///
/// `min_eigenvalue_bound` is a lower bound on the eigenvalues of `cov` known from how it was
/// built (`s * m` for Ledoit-Wolf, `eps` for the ridge, 0 otherwise). When it already reaches
/// the floor, flooring cannot change anything and the inverse is computed by Cholesky (about
/// 40x faster at d = 40); otherwise, or if Cholesky fails, by symmetric eigendecomposition.
pub(crate) fn floored_precision(
    cov: ArrayView2<'_, f64>,
    min_eigenvalue_bound: f64,
) -> Result<Array2<f64>, String> {
    let p = cov.nrows();
    if p == 0 {
        return Ok(Array2::zeros((0, 0)));
    }
    let trace: f64 = cov.diag().sum();
    if !trace.is_finite() {
        return Err("the covariance trace is not finite".to_string());
    }
    if trace <= 0.0 {
        return Ok(Array2::eye(p));
    }
    let floor = PRECISION_FLOOR * trace / p as f64;
    if min_eigenvalue_bound >= floor
        && let Some(prec) = cholesky_inverse(cov)
    {
        return Ok(prec);
    }
    let (vals, vecs) = sym_eigh_desc(cov).ok_or_else(|| {
        "the symmetric eigendecomposition of the covariance did not converge".to_string()
    })?;
    let inv = vals.mapv(|l| 1.0 / l.max(floor));
    // P = V diag(inv) V^T
    let scaled = &vecs * &inv.view().insert_axis(ndarray::Axis(0));
    let mut prec = scaled.dot(&vecs.t());
    symmetrize(&mut prec);
    if prec.iter().all(|v| v.is_finite()) {
        Ok(prec)
    } else {
        Err("the precision matrix has non-finite entries".to_string())
    }
}
