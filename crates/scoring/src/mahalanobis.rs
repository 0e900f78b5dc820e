//! Mahalanobis distances of vectors, batches and whole feature maps.

use gaussian_fit::{FittedGaussian, PerPositionGaussians};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayView3};

use crate::error::ScoringError;

/// Check that a (possibly deserialised) Gaussian is shaped consistently so that the
/// arithmetic below cannot panic; returns its dimension.
pub(crate) fn gaussian_dim(g: &FittedGaussian) -> Result<usize, ScoringError> {
    let d = g.dim();
    let m = g.mean().len();
    let p = g.precision().dim();
    if d == 0 || m != d || p != (d, d) {
        return Err(ScoringError::InvalidModel(format!(
            "Gaussian of dimension {d} has a mean of length {m} and a {}x{} precision",
            p.0, p.1
        )));
    }
    Ok(d)
}

fn finite_score(q: f64, what: &str) -> Result<f64, ScoringError> {
    let s = q.max(0.0).sqrt();
    if s.is_finite() {
        Ok(s)
    } else {
        Err(ScoringError::NonFiniteScore { what: what.into() })
    }
}

/// `(x - mu)^T P (x - mu)` for a difference vector (shapes checked by the caller).
/// `P diff` via ndarray's matrix-vector product (unrolled, vectorised row dots).
fn quad_form(p: &ArrayView2<f64>, diff: &[f64]) -> f64 {
    let d = ArrayView1::from(diff);
    p.dot(&d).dot(&d)
}

/// Mahalanobis distance `sqrt(max((x - mu)^T P (x - mu), 0))` of one vector.
///
/// # Errors
/// [`ScoringError::DimensionMismatch`] if `x` does not have the Gaussian's dimension,
/// [`ScoringError::NonFinite`] for NaN/infinite features, [`ScoringError::InvalidModel`]
/// for an inconsistent Gaussian, [`ScoringError::NonFiniteScore`] if the result overflows.
pub fn mahalanobis<A: Copy + Into<f64>>(
    g: &FittedGaussian,
    x: ArrayView1<A>,
) -> Result<f64, ScoringError> {
    let d = gaussian_dim(g)?;
    if x.len() != d {
        return Err(ScoringError::DimensionMismatch {
            what: "feature vector".into(),
            expected: d,
            got: x.len(),
        });
    }
    let diff: Vec<f64> = x
        .iter()
        .zip(g.mean().iter())
        .map(|(&v, &m)| v.into() - m)
        .collect();
    if diff.iter().any(|v| !v.is_finite()) {
        return Err(ScoringError::NonFinite {
            what: "feature vector".into(),
        });
    }
    finite_score(
        quad_form(&g.precision().view(), &diff),
        "Mahalanobis distance",
    )
}

/// Mahalanobis distances of every row of an `n x d` batch (rows are samples).
///
/// # Errors
/// As [`mahalanobis`].
pub fn mahalanobis_rows<A: Copy + Into<f64>>(
    g: &FittedGaussian,
    rows: ArrayView2<A>,
) -> Result<Array1<f64>, ScoringError> {
    let d = gaussian_dim(g)?;
    let (n, c) = rows.dim();
    if c != d {
        return Err(ScoringError::DimensionMismatch {
            what: "columns of the feature batch".into(),
            expected: d,
            got: c,
        });
    }
    let mut diff = Array2::<f64>::zeros((n, d));
    for (mut dst, src) in diff.outer_iter_mut().zip(rows.outer_iter()) {
        for ((o, &v), &m) in dst.iter_mut().zip(src.iter()).zip(g.mean().iter()) {
            *o = v.into() - m;
        }
    }
    batch_quad(g, diff, "feature batch")
}

/// Distances of the rows of a centred `n x d` matrix.
fn batch_quad(
    g: &FittedGaussian,
    diff: Array2<f64>,
    what: &str,
) -> Result<Array1<f64>, ScoringError> {
    if diff.iter().any(|v| !v.is_finite()) {
        return Err(ScoringError::NonFinite { what: what.into() });
    }
    // (D P) .* D summed over columns = diag(D P D^T); shapes checked by the caller.
    let dp = diff.dot(g.precision());
    let q = (&dp * &diff).sum_axis(ndarray::Axis(1));
    q.iter()
        .map(|&q| finite_score(q, "Mahalanobis distance"))
        .collect::<Result<Vec<_>, _>>()
        .map(Array1::from)
}

/// Score every position `(i, j)` of a reduced `(k, h, w)` map with one shared Gaussian:
/// returns the `(h, w)` map of Mahalanobis distances.
///
/// # Errors
/// [`ScoringError::DimensionMismatch`] if `k` differs from the Gaussian's dimension, plus the
/// errors of [`mahalanobis`].
pub fn score_map_shared<A: Copy + Into<f64>>(
    g: &FittedGaussian,
    map: ArrayView3<A>,
) -> Result<Array2<f64>, ScoringError> {
    let d = gaussian_dim(g)?;
    let (k, h, w) = map.dim();
    if k != d {
        return Err(ScoringError::DimensionMismatch {
            what: "channels of the feature map".into(),
            expected: d,
            got: k,
        });
    }
    let mut diff = Array2::<f64>::zeros((h * w, d));
    for ((c, i, j), &v) in map.indexed_iter() {
        diff[(i * w + j, c)] = v.into() - g.mean()[c];
    }
    let q = batch_quad(g, diff, "feature map")?;
    q.into_shape_with_order((h, w))
        .map_err(|e| ScoringError::InvalidModel(format!("internal reshape failed: {e}")))
}

/// Score every position `(i, j)` of a reduced `(k, h, w)` map with its own Gaussian
/// (PaDiM's per-position model): returns the `(h, w)` map of Mahalanobis distances.
///
/// # Errors
/// [`ScoringError::DimensionMismatch`] / [`ScoringError::ShapeMismatch`] if the map does not
/// match the models' dimension or `(h, w)` grid, plus the errors of [`mahalanobis`].
pub fn score_map_per_position<A: Copy + Into<f64>>(
    models: &PerPositionGaussians,
    map: ArrayView3<A>,
) -> Result<Array2<f64>, ScoringError> {
    let (k, h, w) = map.dim();
    if k != models.dim() {
        return Err(ScoringError::DimensionMismatch {
            what: "channels of the feature map".into(),
            expected: models.dim(),
            got: k,
        });
    }
    if models.shape() != (h, w) {
        return Err(ScoringError::ShapeMismatch {
            what: "per-position models vs feature map".into(),
            expected: models.shape(),
            got: (h, w),
        });
    }
    let mut out = Array2::<f64>::zeros((h, w));
    let mut diff = vec![0.0; k];
    for ((i, j), o) in out.indexed_iter_mut() {
        let g = models.get(i, j).ok_or_else(|| {
            ScoringError::InvalidModel(format!("per-position model ({i}, {j}) is missing"))
        })?;
        if gaussian_dim(g)? != k {
            return Err(ScoringError::InvalidModel(format!(
                "per-position model ({i}, {j}) has dimension {} instead of {k}",
                g.dim()
            )));
        }
        for ((dst, &v), &m) in diff
            .iter_mut()
            .zip(map.slice(ndarray::s![.., i, j]).iter())
            .zip(g.mean().iter())
        {
            *dst = v.into() - m;
        }
        if diff.iter().any(|v| !v.is_finite()) {
            return Err(ScoringError::NonFinite {
                what: format!("feature map at position ({i}, {j})"),
            });
        }
        *o = finite_score(
            quad_form(&g.precision().view(), &diff),
            "Mahalanobis distance",
        )?;
    }
    Ok(out)
}
