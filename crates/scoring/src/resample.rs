//! Resampling of score maps: bilinear upsampling (PyTorch `align_corners=False`),
//! Gaussian blur (SciPy `gaussian_filter`, `mode="reflect"`) and the mean over levels.

use ndarray::{Array2, ArrayView2, Axis};

use crate::error::ScoringError;

/// Largest blur radius (in pixels) accepted by [`gaussian_blur`]; bigger sigmas are refused
/// instead of allocating an enormous kernel.
pub const MAX_BLUR_RADIUS: usize = 100_000;

/// One output coordinate of a 1-D linear resampling: the two source indices and their weights.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    l0: f64,
    l1: f64,
}

/// PyTorch's `area_pixel_compute_source_index` + `guard_index_and_lambda` for
/// `align_corners=False` without a given scale factor (scale = in / out).
fn linear_taps(in_size: usize, out_size: usize) -> Vec<Tap> {
    let scale = in_size as f64 / out_size as f64;
    let last = in_size.saturating_sub(1);
    (0..out_size)
        .map(|o| {
            let src = scale * (o as f64 + 0.5) - 0.5;
            let src = if src < 0.0 { 0.0 } else { src };
            // src >= 0 and finite, so the cast cannot wrap.
            let i0 = (src.floor() as usize).min(last);
            let l1 = (src - i0 as f64).clamp(0.0, 1.0);
            let i1 = if i0 < last { i0 + 1 } else { i0 };
            Tap {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

fn check_finite_map(map: &ArrayView2<f64>, what: &'static str) -> Result<(), ScoringError> {
    if map.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(ScoringError::NonFinite { what: what.into() })
    }
}

/// Bilinear resize of a 2-D map to `(out_h, out_w)`, identical to PyTorch
/// `F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)`
/// (no antialiasing; works for up- and downscaling and any aspect ratio).
///
/// # Errors
/// [`ScoringError::ZeroOutputSize`] if `out_h` or `out_w` is 0, [`ScoringError::EmptyInput`]
/// for an empty map, [`ScoringError::NonFinite`] if the map holds NaN or infinity.
pub fn upsample_bilinear(
    input: ArrayView2<f64>,
    out_h: usize,
    out_w: usize,
) -> Result<Array2<f64>, ScoringError> {
    if out_h == 0 || out_w == 0 {
        return Err(ScoringError::ZeroOutputSize { out_h, out_w });
    }
    let (in_h, in_w) = input.dim();
    if in_h == 0 || in_w == 0 {
        return Err(ScoringError::EmptyInput {
            what: format!("map to upsample has shape {in_h}x{in_w}"),
        });
    }
    check_finite_map(&input, "map to upsample")?;
    let th = linear_taps(in_h, out_h);
    let tw = linear_taps(in_w, out_w);
    let mut out = Array2::<f64>::zeros((out_h, out_w));
    for (row, h) in out.outer_iter_mut().zip(th.iter()) {
        let r0 = input.row(h.i0);
        let r1 = input.row(h.i1);
        for (o, w) in row.into_iter().zip(tw.iter()) {
            // Same association as PyTorch's CPU kernel: outer (height) weights applied to
            // the inner (width) interpolations. Indices are < in_h / in_w by construction.
            let a = w.l0 * r0[w.i0] + w.l1 * r0[w.i1];
            let b = w.l0 * r1[w.i0] + w.l1 * r1[w.i1];
            *o = h.l0 * a + h.l1 * b;
        }
    }
    Ok(out)
}

/// The normalised 1-D Gaussian kernel SciPy uses (`_gaussian_kernel1d`, order 0), radius
/// `floor(4 * sigma + 0.5)`.
fn gaussian_kernel(sigma: f64) -> Result<Vec<f64>, ScoringError> {
    let radius_f = (4.0 * sigma + 0.5).floor();
    if radius_f > MAX_BLUR_RADIUS as f64 {
        return Err(ScoringError::InvalidSigma {
            sigma,
            reason: "kernel radius would exceed MAX_BLUR_RADIUS",
        });
    }
    let radius = radius_f as i64;
    let sigma2 = sigma * sigma;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / sigma2 * (x * x) as f64).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    Ok(k)
}

/// SciPy `mode="reflect"` (half-sample symmetric: `d c b a | a b c d | d c b a`).
fn reflect_index(idx: i64, n: usize) -> usize {
    let n = n as i64;
    let p = 2 * n;
    let m = idx.rem_euclid(p);
    (if m >= n { p - 1 - m } else { m }) as usize
}

/// Correlate every lane of `data` along `axis` with the symmetric `kernel` (reflect mode).
fn correlate_axis(data: &Array2<f64>, axis: Axis, kernel: &[f64]) -> Array2<f64> {
    let n = data.len_of(axis);
    let radius = (kernel.len() / 2) as i64;
    // Source index for every padded position -radius..n+radius.
    let src: Vec<usize> = (-radius..n as i64 + radius)
        .map(|i| reflect_index(i, n))
        .collect();
    let mut out = Array2::<f64>::zeros(data.raw_dim());
    let mut padded = vec![0.0; src.len()];
    for (lane_in, mut lane_out) in data.lanes(axis).into_iter().zip(out.lanes_mut(axis)) {
        for (p, &s) in padded.iter_mut().zip(src.iter()) {
            *p = lane_in[s];
        }
        for (o, window) in lane_out.iter_mut().zip(padded.windows(kernel.len())) {
            *o = window.iter().zip(kernel).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// Gaussian smoothing as `scipy.ndimage.gaussian_filter(x, sigma, mode="reflect",
/// truncate=4.0)` (what PaDiM applies to its maps): separable, rows (axis 0) first, kernel
/// radius `floor(4 * sigma + 0.5)`. `sigma == 0` returns the map unchanged (SciPy skips
/// axes with `sigma <= 1e-15` likewise).
///
/// # Errors
/// [`ScoringError::InvalidSigma`] for a negative, non-finite or absurdly large sigma,
/// [`ScoringError::EmptyInput`] for an empty map, [`ScoringError::NonFinite`] for NaN or
/// infinite values.
pub fn gaussian_blur(input: ArrayView2<f64>, sigma: f64) -> Result<Array2<f64>, ScoringError> {
    if !sigma.is_finite() || sigma < 0.0 {
        return Err(ScoringError::InvalidSigma {
            sigma,
            reason: "sigma must be finite and >= 0",
        });
    }
    let (h, w) = input.dim();
    if h == 0 || w == 0 {
        return Err(ScoringError::EmptyInput {
            what: format!("map to blur has shape {h}x{w}"),
        });
    }
    check_finite_map(&input, "map to blur")?;
    if sigma <= 1e-15 {
        return Ok(input.to_owned());
    }
    let kernel = gaussian_kernel(sigma)?;
    let rows = correlate_axis(&input.to_owned(), Axis(0), &kernel);
    Ok(correlate_axis(&rows, Axis(1), &kernel))
}

/// Upsample every per-level map to `(out_h, out_w)` with [`upsample_bilinear`] and return
/// their unweighted mean.
///
/// # Errors
/// [`ScoringError::EmptyInput`] for no maps, plus every error of [`upsample_bilinear`].
pub fn combine_levels(
    maps: &[Array2<f64>],
    out_h: usize,
    out_w: usize,
) -> Result<Array2<f64>, ScoringError> {
    if maps.is_empty() {
        return Err(ScoringError::EmptyInput {
            what: "no level maps to combine".into(),
        });
    }
    let mut acc = Array2::<f64>::zeros((out_h, out_w));
    for m in maps {
        acc += &upsample_bilinear(m.view(), out_h, out_w)?;
    }
    acc /= maps.len() as f64;
    Ok(acc)
}
