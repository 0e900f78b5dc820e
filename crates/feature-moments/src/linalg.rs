//! Symmetric eigendecomposition (faer; chosen over nalgebra by measurement, see
//! `docs/performance/numerical-core.md` and the `linalg` bench of `gaussian-fit`) and
//! symmetrisation.

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2};

/// Eigenvalues (descending) and eigenvectors (one column each, same order) of the symmetric
/// matrix `a` (only its lower triangle is read).
///
/// `None` if `a` is not square, or the decomposition did not converge or produced non-finite
/// values. A `0 x 0` matrix gives empty results.
pub fn sym_eigh_desc(a: ArrayView2<'_, f64>) -> Option<(Array1<f64>, Array2<f64>)> {
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

/// Replace the square part of `m` by `(m + m^T) / 2`, so it is exactly symmetric.
pub fn symmetrize(m: &mut Array2<f64>) {
    let n = m.nrows().min(m.ncols());
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (m[[i, j]] + m[[j, i]]);
            m[[i, j]] = v;
            m[[j, i]] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn diagonal_matrix_sorted_descending() {
        let a = array![[1.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 2.0]];
        let (vals, vecs) = sym_eigh_desc(a.view()).unwrap();
        assert_eq!(vals.to_vec(), vec![3.0, 2.0, 1.0]);
        // eigenvector of 3 is +-e_1
        assert!((vecs[[1, 0]].abs() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn reconstructs_the_matrix() {
        let a = array![[4.0, 1.0, -2.0], [1.0, 2.0, 0.5], [-2.0, 0.5, 3.0]];
        let (vals, vecs) = sym_eigh_desc(a.view()).unwrap();
        let back = (&vecs * &vals.view().insert_axis(ndarray::Axis(0))).dot(&vecs.t());
        for (x, y) in back.iter().zip(a.iter()) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
        assert!(vals.windows(2).into_iter().all(|w| w[0] >= w[1]));
    }

    #[test]
    fn symmetrize_averages_the_triangles() {
        let mut m = array![[1.0, 2.0], [4.0, 3.0]];
        symmetrize(&mut m);
        assert_eq!(m, array![[1.0, 3.0], [3.0, 3.0]]);
    }

    #[test]
    fn non_square_and_empty() {
        assert!(sym_eigh_desc(Array2::<f64>::zeros((2, 3)).view()).is_none());
        let (v, u) = sym_eigh_desc(Array2::<f64>::zeros((0, 0)).view()).unwrap();
        assert_eq!((v.len(), u.dim()), (0, (0, 0)));
    }
}
