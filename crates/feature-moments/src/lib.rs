//! Streaming moments of feature vectors, shared by `opca-reduction` (the PCA's mean and
//! covariance) and `gaussian-fit` (mean, covariance and Ledoit-Wolf's fourth-order term).
//!
//! * [`MomentAccumulator`] takes samples (rows, single vectors or `(dim, h, w)` maps, any
//!   `A: Copy + Into<f64>`) in ONE pass with `O(d^2)` memory and keeps, in f64, the count,
//!   mean, centred cross-products `M2 = sum (x - mean)(x - mean)^T` and the higher terms
//!   `T3 = sum ||x - mean||^2 (x - mean)`, `Q4 = sum ||x - mean||^4` ([`Moments`]).
//! * Numerics: samples are folded in chunks, each centred on its own mean, and merged with
//!   exact Chan-style formulas (e.g. `M2 = M2a + M2b + delta delta^T na nb / n`), so no
//!   large raw moments cancel and any chunking gives the one-shot result to rounding.
//! * [`MomentsError`] is the error of bad samples (non-finite values, wrong dimensions);
//!   [`ensure_dim`] and [`ensure_finite`] let the crates built on this one check their own
//!   inputs with the same error.
//! * [`sym_eigh_desc`]: symmetric eigendecomposition (faer), eigenvalues descending;
//!   [`symmetrize`].
//!
//! ```
//! use feature_moments::{MomentAccumulator, sym_eigh_desc};
//! use ndarray::array;
//!
//! let mut acc = MomentAccumulator::new(2);
//! acc.push_rows(array![[1.0f32, 2.0], [3.0, 6.0]].view())?;
//! acc.push_vector(array![5.0f32, 10.0].view())?;
//! let m = acc.snapshot();
//! assert_eq!(m.n, 3);
//! assert_eq!(m.mean.to_vec(), vec![3.0, 6.0]);
//! assert_eq!(m.m2, array![[8.0, 16.0], [16.0, 32.0]]);
//!
//! let (vals, _vecs) = sym_eigh_desc(m.covariance().view()).expect("symmetric 2x2");
//! assert!((vals[0] - 40.0 / 3.0).abs() < 1e-12 && vals[1].abs() < 1e-12);
//! # Ok::<(), feature_moments::MomentsError>(())
//! ```
#![deny(missing_docs)]

mod error;
mod linalg;
mod moments;

pub use error::{MomentsError, all_finite, ensure_dim, ensure_finite};
pub use linalg::{sym_eigh_desc, symmetrize};
pub use moments::{MomentAccumulator, Moments};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
