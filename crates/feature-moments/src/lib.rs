//! Streaming first and second moments of feature vectors, shared by `opca-reduction` and
//! `gaussian-fit`.
//!
//! * [`StreamingAccumulator`] takes samples (rows, single vectors or `(dim, h, w)` maps, any
//!   `A: Copy + Into<f64>`) in ONE pass with `O(d^2)` memory and keeps, in f64, the count,
//!   mean and centred cross-products `M2 = sum (x - mean)(x - mean)^T` ([`Moments`]).
//! * Numerics: samples are folded in chunks, each centred on its own mean, and merged with
//!   Chan et al.'s exact pairwise formula `M2 = M2a + M2b + delta delta^T na nb / n`, so no
//!   large raw moments cancel and any chunking gives the one-shot result to rounding.
//! * The accumulator is generic over the [`ChunkMoments`] summary, so a crate can add its own
//!   higher-order terms on top of [`Moments`].
//! * [`sym_eigh_desc`]: symmetric eigendecomposition (faer), eigenvalues descending.
//!
//! ```
//! use feature_moments::{Moments, StreamingAccumulator, sym_eigh_desc};
//! use ndarray::array;
//!
//! let mut acc = StreamingAccumulator::<Moments>::new(2);
//! acc.push_rows(array![[1.0f32, 2.0], [3.0, 6.0]].view())?;
//! acc.push_vector(array![5.0f32, 10.0].view())?;
//! let m = acc.snapshot();
//! assert_eq!(m.n, 3);
//! assert_eq!(m.mean.to_vec(), vec![3.0, 6.0]);
//! assert_eq!(m.m2, array![[8.0, 16.0], [16.0, 32.0]]);
//!
//! let (vals, _vecs) = sym_eigh_desc((&m.m2 / 3.0).view()).expect("symmetric 2x2");
//! assert!((vals[0] - 40.0 / 3.0).abs() < 1e-12 && vals[1].abs() < 1e-12);
//! # Ok::<(), feature_moments::MomentsError>(())
//! ```
#![deny(missing_docs)]

mod error;
mod linalg;
mod moments;

pub use error::MomentsError;
pub use linalg::sym_eigh_desc;
pub use moments::{
    CHUNK_ROWS, ChunkMoments, Moments, StreamingAccumulator, all_finite, buffer_rows,
};

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
