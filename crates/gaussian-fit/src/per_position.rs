//! Per-position mode: one Gaussian per spatial position `(i, j)` of a `(dim, h, w)` map
//! (PaDiM style), all accumulated in one pass and fitted in parallel.

use feature_moments::{MomentAccumulator, MomentsError, ensure_dim, ensure_finite};
use ndarray::{ArrayView3, s};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::GaussianError;
use crate::fitted::{FittedGaussian, fit_moments};
use crate::params::ValidGaussianParams;

/// `h * w` streaming accumulators, one per position (row-major), each `O(dim^2)` memory.
#[derive(Debug, Clone)]
pub struct PerPositionAccumulator {
    dim: usize,
    h: usize,
    w: usize,
    accs: Vec<MomentAccumulator>,
    n: u64,
}

impl PerPositionAccumulator {
    /// An empty accumulator for `(dim, h, w)` maps.
    pub fn new(dim: usize, h: usize, w: usize) -> Self {
        Self {
            dim,
            h,
            w,
            accs: (0..h.saturating_mul(w))
                .map(|_| MomentAccumulator::new(dim))
                .collect(),
            n: 0,
        }
    }

    /// The sample dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The spatial shape `(h, w)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// Number of maps pushed (= samples per position).
    pub fn n_samples(&self) -> u64 {
        self.n
    }

    /// Add one `(dim, h, w)` map: the vector at position `(i, j)` feeds Gaussian `(i, j)`.
    /// On error nothing is added.
    pub fn push_map<A: Copy + Into<f64>>(
        &mut self,
        map: ArrayView3<'_, A>,
    ) -> Result<(), GaussianError> {
        let (c, h, w) = map.dim();
        ensure_dim("channels of the pushed map", self.dim, c)?;
        ensure_dim("rows of the pushed map", self.h, h)?;
        ensure_dim("columns of the pushed map", self.w, w)?;
        ensure_finite(map.iter().copied(), "pushed map")?;
        // Convert once (the generic A need not be Sync), then fill positions in parallel.
        let x = map.mapv(|v| v.into());
        let w = self.w;
        // Cannot fail: the shape and finiteness were checked above.
        self.accs
            .par_iter_mut()
            .enumerate()
            .try_for_each(|(k, acc)| {
                let (i, j) = (k / w, k % w);
                acc.push_vector(x.slice(s![.., i, j]))
            })?;
        self.n += 1;
        Ok(())
    }

    /// Merge the maps of `other` (same shape) into `self`.
    pub fn merge(&mut self, other: &PerPositionAccumulator) -> Result<(), GaussianError> {
        for (what, expected, got) in [
            ("channels", self.dim, other.dim),
            ("rows", self.h, other.h),
            ("columns", self.w, other.w),
        ] {
            if expected != got {
                return Err(MomentsError::Merge {
                    what,
                    expected,
                    got,
                }
                .into());
            }
        }
        self.accs
            .par_iter_mut()
            .zip(other.accs.par_iter())
            .try_for_each(|(a, b)| a.merge(b))?;
        self.n += other.n;
        Ok(())
    }
}

/// `h * w` fitted Gaussians, one per position, stored row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerPositionGaussians {
    h: usize,
    w: usize,
    dim: usize,
    gaussians: Vec<FittedGaussian>,
}

impl PerPositionGaussians {
    /// The spatial shape `(h, w)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// The dimension of every Gaussian.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The Gaussian of position `(i, j)`, `None` outside the map.
    pub fn get(&self, i: usize, j: usize) -> Option<&FittedGaussian> {
        if i < self.h && j < self.w {
            self.gaussians.get(i * self.w + j)
        } else {
            None
        }
    }

    /// All Gaussians in row-major order (position `(i, j)` is item `i * w + j`).
    pub fn iter(&self) -> std::slice::Iter<'_, FittedGaussian> {
        self.gaussians.iter()
    }

    /// All Gaussians as a row-major slice.
    pub fn as_slice(&self) -> &[FittedGaussian] {
        &self.gaussians
    }

    /// Check internal consistency (count, dimensions, every Gaussian); use it on models loaded
    /// from untrusted files.
    pub fn validate(&self) -> Result<(), GaussianError> {
        if self.h == 0 || self.w == 0 || self.h.checked_mul(self.w) != Some(self.gaussians.len()) {
            return Err(GaussianError::InvalidModel(format!(
                "{} Gaussians for a {}x{} map",
                self.gaussians.len(),
                self.h,
                self.w
            )));
        }
        for g in &self.gaussians {
            if g.dim() != self.dim {
                return Err(GaussianError::InvalidModel(format!(
                    "a position Gaussian has dimension {} instead of {}",
                    g.dim(),
                    self.dim
                )));
            }
            g.validate()?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a PerPositionGaussians {
    type Item = &'a FittedGaussian;
    type IntoIter = std::slice::Iter<'a, FittedGaussian>;
    fn into_iter(self) -> Self::IntoIter {
        self.gaussians.iter()
    }
}

impl ValidGaussianParams {
    /// Fit the `h * w` Gaussians (in parallel over positions; each needs >= 2 maps).
    pub fn fit_per_position(
        &self,
        acc: &PerPositionAccumulator,
    ) -> Result<PerPositionGaussians, GaussianError> {
        if acc.h == 0 || acc.w == 0 {
            return Err(GaussianError::ZeroSize {
                what: "the map height and width",
            });
        }
        let estimator = self.estimator;
        let gaussians = acc
            .accs
            .par_iter()
            .map(|a| fit_moments(estimator, &a.snapshot()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PerPositionGaussians {
            h: acc.h,
            w: acc.w,
            dim: acc.dim,
            gaussians,
        })
    }
}
