//! Symmetric eigendecomposition (faer; chosen over nalgebra by measurement, see
//! `docs/performance/numerical-core.md`).

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2};

/// Eigenvalues (descending) and eigenvectors (one column each, same order) of the symmetric
/// matrix `a` (lower triangle read). `None` if it did not converge or gave non-finite values.
pub(crate) fn sym_eigh_desc(a: ArrayView2<'_, f64>) -> Option<(Array1<f64>, Array2<f64>)> {
    let n = a.nrows();
    if n != a.ncols() {
        return None;
    }
    if n == 0 {
        return Some((Array1::zeros(0), Array2::zeros((0, 0))));
    }
    let m = Mat::<f64>::from_fn(n, n, |i, j| a[[i, j]]);
    let evd = m.self_adjoint_eigen(Side::Lower).ok()?;
    let s = evd.S().column_vector();
    let u = evd.U();
    // faer returns ascending eigenvalues: reverse.
    let vals = Array1::from_shape_fn(n, |k| s[n - 1 - k]);
    let vecs = Array2::from_shape_fn((n, n), |(i, k)| u[(i, n - 1 - k)]);
    if vals.iter().chain(vecs.iter()).all(|v| v.is_finite()) {
        Some((vals, vecs))
    } else {
        None
    }
}
