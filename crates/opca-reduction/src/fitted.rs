//! PCA fit, component selection and projection.

use std::ops::Range;

use feature_moments::{
    MomentAccumulator, Moments, all_finite, ensure_dim, ensure_finite, sym_eigh_desc,
};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis, s};
use serde::{Deserialize, Serialize};

use crate::error::ReductionError;
use crate::params::{PcaRank, Selection, ValidReductionParams};

/// The minimum number of samples a PCA fit accepts (the covariance, divided by N, is defined
/// for one sample: it is zero, and every selection then keeps all components).
pub const MIN_SAMPLES: u64 = 1;

/// Eigenvalues below `ZERO_EIGENVALUE_REL * d * lambda_max` (with
/// `ZERO_EIGENVALUE_REL = f64::EPSILON`) are round-off of a zero variance and are set to 0,
/// as are negative ones.
pub const ZERO_EIGENVALUE_REL: f64 = f64::EPSILON;

/// Clamp the descending eigenvalues: negatives and values below `d * eps * lambda_max` -> 0.
pub fn clamp_eigenvalues(vals: &mut Array1<f64>) {
    let d = vals.len() as f64;
    let max = vals.iter().copied().fold(0.0_f64, f64::max);
    let tol = ZERO_EIGENVALUE_REL * d * max;
    vals.mapv_inplace(|l| if l > tol { l } else { 0.0 });
}

/// The kept index range `start..end` (into the descending eigenvalues) for `selection`.
///
/// * `opca:t`: suffix sums `sum(lambda_k..d)` are accumulated from the smallest eigenvalue up;
///   the total is the full suffix sum (so the share of all `d` is exactly 1); the first
///   (smallest) tail with `share >= t` is kept.
/// * `pca:t`: prefix sums from the largest eigenvalue down, total = the full prefix sum; the
///   first prefix with `share >= t` is kept.
/// * `none`, or a total variance of 0 (every direction has zero variance, so the data give no
///   ground for a choice): all `d` components.
pub fn select_components(eigenvalues: ArrayView1<'_, f64>, selection: Selection) -> Range<usize> {
    let d = eigenvalues.len();
    let total_asc: f64 = eigenvalues.iter().rev().sum();
    if d == 0 || total_asc <= 0.0 {
        return 0..d;
    }
    match selection {
        Selection::None => 0..d,
        Selection::Opca(t) => {
            let mut acc = 0.0;
            for k in (0..d).rev() {
                acc += eigenvalues[k];
                if acc / total_asc >= t {
                    return k..d;
                }
            }
            0..d
        }
        Selection::Pca(t) => {
            let total_desc: f64 = eigenvalues.iter().sum();
            let mut acc = 0.0;
            for (k, &l) in eigenvalues.iter().enumerate() {
                acc += l;
                if acc / total_desc >= t {
                    return 0..k + 1;
                }
            }
            0..d
        }
    }
}

/// Make the largest-magnitude entry of every column positive (first one on ties), so the
/// arbitrary eigenvector signs are deterministic.
fn normalise_signs(vecs: &mut Array2<f64>) {
    for mut col in vecs.columns_mut() {
        let mut best = 0.0_f64;
        let mut sign = 1.0;
        for &v in col.iter() {
            if v.abs() > best {
                best = v.abs();
                sign = if v < 0.0 { -1.0 } else { 1.0 };
            }
        }
        if sign < 0.0 {
            col.mapv_inplace(|v| -v);
        }
    }
}

/// A fitted reduction: training mean, all eigenvalues, and the kept eigenvectors. Plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedReduction {
    selection: Selection,
    n_samples: u64,
    mean: Array1<f64>,
    eigenvalues: Array1<f64>,
    kept_start: usize,
    components: Array2<f64>,
}

impl FittedReduction {
    /// The training mean (length `input_dim`).
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// The kept eigenvectors, `input_dim x output_dim`, one unit column per kept component,
    /// in descending eigenvalue order. Signs: the largest-magnitude entry of each column is
    /// positive.
    pub fn components(&self) -> &Array2<f64> {
        &self.components
    }

    /// All `input_dim` eigenvalues of the covariance (divided by N), descending; negatives and
    /// round-off below `d * f64::EPSILON * lambda_max` set to 0.
    pub fn eigenvalues(&self) -> &Array1<f64> {
        &self.eigenvalues
    }

    /// The eigenvalues of the kept components (descending).
    pub fn kept_eigenvalues(&self) -> ArrayView1<'_, f64> {
        let end = (self.kept_start + self.components.ncols()).min(self.eigenvalues.len());
        let start = self.kept_start.min(end);
        self.eigenvalues.slice(s![start..end])
    }

    /// The index range of the kept components in [`eigenvalues`](Self::eigenvalues).
    pub fn kept_range(&self) -> Range<usize> {
        self.kept_start..self.kept_start + self.components.ncols()
    }

    /// The share of the total variance the kept components hold (1 when the total is 0).
    pub fn kept_variance_share(&self) -> f64 {
        let total: f64 = self.eigenvalues.sum();
        if total > 0.0 {
            self.kept_eigenvalues().sum() / total
        } else {
            1.0
        }
    }

    /// The input dimension `d`.
    pub fn input_dim(&self) -> usize {
        self.mean.len()
    }

    /// The output dimension `k` (number of kept components).
    pub fn output_dim(&self) -> usize {
        self.components.ncols()
    }

    /// The selection rule used.
    pub fn selection(&self) -> Selection {
        self.selection
    }

    /// The number of training samples.
    pub fn n_samples(&self) -> u64 {
        self.n_samples
    }

    /// Project one vector: `z = W^T (x - mean)`.
    pub fn transform_vector<A: Copy + Into<f64>>(
        &self,
        x: ArrayView1<'_, A>,
    ) -> Result<Array1<f64>, ReductionError> {
        ensure_dim(
            "length of the vector to transform",
            self.input_dim(),
            x.len(),
        )?;
        ensure_finite(x.iter().copied(), "vector to transform")?;
        let c = x.mapv(|v| v.into()) - &self.mean;
        Ok(self.components.t().dot(&c))
    }

    /// Project a batch: `(n, d) -> (n, k)`, row by row `z = W^T (x - mean)`.
    pub fn transform_rows<A: Copy + Into<f64>>(
        &self,
        x: ArrayView2<'_, A>,
    ) -> Result<Array2<f64>, ReductionError> {
        ensure_dim(
            "columns of the rows to transform",
            self.input_dim(),
            x.ncols(),
        )?;
        ensure_finite(x.iter().copied(), "rows to transform")?;
        let c = x.mapv(|v| v.into()) - self.mean.view().insert_axis(Axis(0));
        Ok(c.dot(&self.components))
    }

    /// Project every position of a `(d, h, w)` map: the result is `(k, h, w)`.
    pub fn transform_map<A: Copy + Into<f64>>(
        &self,
        x: ArrayView3<'_, A>,
    ) -> Result<Array3<f64>, ReductionError> {
        let (c, h, w) = x.dim();
        ensure_dim("channels of the map to transform", self.input_dim(), c)?;
        ensure_finite(x.iter().copied(), "map to transform")?;
        // (d, h, w) -> (d, h*w) row-major whatever the input's memory layout
        let mean = &self.mean;
        let centred = Array2::from_shape_fn((c, h * w), |(ch, k)| {
            x[[ch, k / w, k % w]].into() - mean[ch]
        });
        let z = self.components.t().dot(&centred);
        let k = self.output_dim();
        Ok(Array3::from_shape_fn((k, h, w), |(o, i, j)| {
            z[[o, i * w + j]]
        }))
    }

    /// Check internal consistency (shapes, finiteness, eigenvalue order, the kept range);
    /// use it on models loaded from untrusted files.
    pub fn validate(&self) -> Result<(), ReductionError> {
        let d = self.mean.len();
        let bad = |m: String| Err(ReductionError::InvalidModel(m));
        if d == 0 {
            return bad("input dimension 0".into());
        }
        if self.eigenvalues.len() != d || self.components.nrows() != d {
            return bad(format!(
                "mean has length {d}, eigenvalues {}, components {:?}",
                self.eigenvalues.len(),
                self.components.dim()
            ));
        }
        let k = self.components.ncols();
        if k == 0 || self.kept_start.checked_add(k).is_none_or(|e| e > d) {
            return bad(format!(
                "kept range {}..+{k} outside 0..{d}",
                self.kept_start
            ));
        }
        if !all_finite(self.mean.iter().copied())
            || !all_finite(self.eigenvalues.iter().copied())
            || !all_finite(self.components.iter().copied())
        {
            return bad("non-finite values".into());
        }
        if self.eigenvalues.iter().any(|&l| l < 0.0)
            || self.eigenvalues.windows(2).into_iter().any(|w| w[0] < w[1])
        {
            return bad("eigenvalues must be >= 0 and descending".into());
        }
        self.selection.check()
    }
}

fn fit_moments(selection: Selection, rank: PcaRank, m: &Moments) -> Result<FittedReduction, ReductionError> {
    let d = m.mean.len();
    if d == 0 {
        return Err(ReductionError::ZeroDimension);
    }
    if m.n < MIN_SAMPLES {
        return Err(ReductionError::TooFewSamples {
            needed: MIN_SAMPLES,
            got: m.n,
        });
    }
    let cov = m.covariance();
    if !all_finite(cov.iter().copied()) {
        return Err(ReductionError::Decomposition(
            "the covariance is not finite (inputs too large: their squares overflow)".into(),
        ));
    }
    let (mut vals, mut vecs) = sym_eigh_desc(cov.view()).ok_or_else(|| {
        ReductionError::Decomposition("the symmetric eigendecomposition did not converge".into())
    })?;
    clamp_eigenvalues(&mut vals);
    normalise_signs(&mut vecs);
    // The rule ranks the leading `supported` eigenpairs only (all of them for `full`).
    let supported = rank.supported(m.n, d);
    let range = select_components(vals.slice(s![..supported]), selection);
    let components = vecs.slice(s![.., range.clone()]).to_owned();
    Ok(FittedReduction {
        selection,
        n_samples: m.n,
        mean: m.mean.clone(),
        eigenvalues: vals,
        kept_start: range.start,
        components,
    })
}

impl ValidReductionParams {
    /// Fit the PCA to everything accumulated in `acc` (at least 1 sample) and select the
    /// components.
    pub fn fit(&self, acc: &MomentAccumulator) -> Result<FittedReduction, ReductionError> {
        if acc.dim() == 0 {
            return Err(ReductionError::ZeroDimension);
        }
        fit_moments(self.selection, self.rank, &acc.snapshot())
    }

    /// One-shot fit to the rows of `rows` (`(n, d)`, n >= 1); equals the streamed fit.
    pub fn fit_rows<A: Copy + Into<f64>>(
        &self,
        rows: ArrayView2<'_, A>,
    ) -> Result<FittedReduction, ReductionError> {
        if rows.ncols() == 0 {
            return Err(ReductionError::ZeroDimension);
        }
        ensure_finite(rows.iter().copied(), "input rows")?;
        let x = rows.mapv(|v| v.into());
        fit_moments(self.selection, self.rank, &Moments::from_rows(x.view()))
    }
}
