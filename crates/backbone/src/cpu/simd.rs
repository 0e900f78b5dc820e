//! Element loops of the CPU kernels, compiled three times (AVX-512, AVX2 + FMA, baseline)
//! and chosen at run time from the CPU's features.

use std::sync::OnceLock;

use super::Act;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// x86-64-v4: AVX-512 F/BW/DQ/VL + FMA.
    V4,
    /// x86-64-v3: AVX2 + FMA.
    V3,
    /// Whatever the target baseline offers (SSE2 on x86-64, NEON on aarch64).
    Base,
}

fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::env::var_os("GAUSSAD_NO_SIMD").is_some() {
            return Level::Base;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
            {
                return Level::V4;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Level::V3;
            }
        }
        Level::Base
    })
}

/// Defines `$name(args)` that calls `$imp::<FMA>(args)` compiled for the best level.
macro_rules! multiversion {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $imp:ident) => {
        $(#[$m])*
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) {
                    $imp::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) {
                    $imp::<true>($($arg),*)
                }
                match level() {
                    // SAFETY: the CPU has the features these copies are compiled for.
                    Level::V4 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    Level::V3 => return unsafe { v3($($arg),*) },
                    Level::Base => {}
                }
            }
            $imp::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused where the instruction exists (`F`), else two roundings.
#[inline(always)]
fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F { a.mul_add(b, c) } else { a * b + c }
}

/// `exp(x)` for `x` clamped to [-87, 88], relative error < 2e-7, branch-free so that it
/// vectorises (Cephes-style range reduction, degree-6 polynomial).
#[inline(always)]
fn exp<const F: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = madd::<F>(n, -LN2_LO, madd::<F>(n, -LN2_HI, x));
    let mut p = 1.987_569_1e-4_f32;
    p = madd::<F>(p, r, 1.398_199_9e-3);
    p = madd::<F>(p, r, 8.333_452e-3);
    p = madd::<F>(p, r, 4.166_579_6e-2);
    p = madd::<F>(p, r, 1.666_666_5e-1);
    p = madd::<F>(p, r, 0.5);
    p = madd::<F>(p, r * r, r + 1.0);
    // 2^n from the integer already sitting in t's low mantissa bits (|n| <= 127): integer
    // ops only, no float-to-int conversion (Rust's saturating `as i32` does not vectorise)
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[inline(always)]
fn act_row<const F: bool>(row: &mut [f32], act: Act) {
    match act {
        Act::Identity => {}
        Act::Relu => row
            .iter_mut()
            .for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 }),
        Act::Relu6 => row.iter_mut().for_each(|v| {
            let a = if *v > 0.0 { *v } else { 0.0 };
            *v = if a < 6.0 { a } else { 6.0 };
        }),
        Act::Swish => row.iter_mut().for_each(|v| *v /= 1.0 + exp::<F>(-*v)),
        Act::Sigmoid => row
            .iter_mut()
            .for_each(|v| *v = 1.0 / (1.0 + exp::<F>(-*v))),
    }
}

#[inline(always)]
fn epilogue_impl<const F: bool>(row: &mut [f32], bias: f32, residual: Option<&[f32]>, act: Act) {
    match residual {
        Some(r) => row
            .iter_mut()
            .zip(r)
            .for_each(|(v, &r)| *v = (*v + bias) + r),
        None => row.iter_mut().for_each(|v| *v += bias),
    }
    act_row::<F>(row, act);
}

multiversion! {
    /// `row = act(row + bias (+ residual))`.
    fn epilogue(row: &mut [f32], bias: f32, residual: Option<&[f32]>, act: Act) => epilogue_impl
}

/// Geometry of one depthwise plane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DwGeom {
    /// Input height, width.
    pub h: usize,
    pub w: usize,
    /// Kernel size, stride.
    pub k: usize,
    pub s: usize,
    /// Top and left padding.
    pub pt: usize,
    pub pl: usize,
    /// Output height, width.
    pub oh: usize,
    pub ow: usize,
}

#[inline(always)]
fn depthwise_impl<const F: bool>(
    x: &[f32],
    g: DwGeom,
    wk: &[f32],
    bias: f32,
    act: Act,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let ch = if g.ow > 48 {
        64
    } else if g.ow > 16 {
        32
    } else {
        16
    };
    match ch {
        64 => depthwise_chunks::<F, 64>(x, g, wk, bias, act, out, scratch),
        32 => depthwise_chunks::<F, 32>(x, g, wk, bias, act, out, scratch),
        _ => depthwise_chunks::<F, 16>(x, g, wk, bias, act, out, scratch),
    }
}

/// Depthwise plane computed `CH` outputs at a time (independent accumulators in
/// registers); rows are padded to a multiple of `CH` so that no scalar tail remains.
#[inline(always)]
fn depthwise_chunks<const F: bool, const CH: usize>(
    x: &[f32],
    g: DwGeom,
    wk: &[f32],
    bias: f32,
    act: Act,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let DwGeom {
        h,
        w,
        k,
        s,
        pt,
        pl,
        oh,
        ow,
    } = g;
    // Padded input rows, each split into `s` phases: phase q holds padded columns
    // q, q + s, q + 2s, ... so that every tap reads a contiguous run. Phases are long
    // enough for whole chunks of CH outputs.
    let owc = ow.div_ceil(CH) * CH;
    let len = owc + (k - 1) / s;
    let ph = (oh - 1) * s + k;
    let row_len = s * len;
    scratch.clear();
    scratch.resize(ph * row_len, 0.0);
    for r in 0..ph {
        let Some(iy) = r.checked_sub(pt).filter(|&iy| iy < h) else {
            continue;
        };
        let src = &x[iy * w..(iy + 1) * w];
        let dst = &mut scratch[r * row_len..(r + 1) * row_len];
        for q in 0..s {
            // padded column s*j + q holds input column s*j + q - pl when in [0, w)
            let j0 = pl.saturating_sub(q).div_ceil(s);
            let j1 = (pl + w).saturating_sub(q).div_ceil(s).min(len);
            if j0 >= j1 {
                continue;
            }
            let phase = &mut dst[q * len + j0..q * len + j1];
            let first = s * j0 + q - pl;
            if s == 1 {
                phase.copy_from_slice(&src[first..first + phase.len()]);
            } else {
                for (d, v) in phase.iter_mut().zip(src[first..].iter().step_by(s)) {
                    *d = *v;
                }
            }
        }
    }
    // (offset in the scratch relative to the first tap of an output row, weight)
    let mut taps = [(0usize, 0.0f32); 64];
    let nt = (k * k).min(64);
    for (t, tap) in taps.iter_mut().enumerate().take(nt) {
        let (ky, kx) = (t / k, t % k);
        *tap = (ky * row_len + (kx % s) * len + kx / s, wk[t]);
    }
    let taps = &taps[..nt];
    let scratch = &scratch[..];
    for oy in 0..oh {
        let orow = &mut out[oy * ow..(oy + 1) * ow];
        let base = oy * s * row_len;
        for c0 in (0..ow).step_by(CH) {
            let mut acc = [bias; CH];
            for &(off, wv) in taps {
                let src: &[f32; CH] = match scratch[base + off + c0..].first_chunk() {
                    Some(c) => c,
                    None => continue,
                };
                for (a, &v) in acc.iter_mut().zip(src) {
                    *a = madd::<F>(wv, v, *a);
                }
            }
            act_row::<F>(&mut acc, act);
            let n = CH.min(ow - c0);
            orow[c0..c0 + n].copy_from_slice(&acc[..n]);
        }
    }
}

multiversion! {
    /// One plane of a depthwise convolution: `out = act(bias + conv(x, wk))`.
    #[allow(clippy::too_many_arguments)]
    fn depthwise_plane(
        x: &[f32],
        g: DwGeom,
        wk: &[f32],
        bias: f32,
        act: Act,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) => depthwise_impl
}

/// Geometry of a depthwise convolution on one channels-last (`h x w x c`) image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DwNhwc {
    /// Input height, width, channels.
    pub h: usize,
    pub w: usize,
    pub c: usize,
    /// Kernel size, stride.
    pub k: usize,
    pub s: usize,
    /// Top and left padding.
    pub pt: usize,
    pub pl: usize,
    /// Output width.
    pub ow: usize,
}

/// Output pixels computed together by the interior depthwise loop.
const DW_PIXELS: usize = 4;

/// One output row (`oy`) of a channels-last depthwise convolution. Interior pixels
/// (every horizontal tap inside the image) go [`DW_PIXELS`] at a time without checks;
/// border pixels one by one with a per-tap column check. Channels: 16, then 8, then 1 at
/// a time (accumulators in registers).
///
/// # Safety
/// `x.len() >= h * w * c`, `wt.len() >= k * k * c`, `bias.len() >= c`,
/// `orow.len() >= ow * c`, `c, k, s > 0` (tap rows and columns are clipped to the image
/// here, so any `oy` and padding are memory-safe).
#[inline(always)]
unsafe fn dw_nhwc_row<const F: bool>(
    x: &[f32],
    g: &DwNhwc,
    wt: &[f32],
    bias: &[f32],
    act: Act,
    oy: usize,
    orow: &mut [f32],
) {
    let DwNhwc {
        h,
        w,
        c,
        k,
        s,
        pt,
        pl,
        ow,
    } = *g;
    let iy0 = (oy * s) as isize - pt as isize;
    let ky0 = (-iy0).max(0) as usize;
    let ky1 = (h as isize - iy0).clamp(0, k as isize) as usize;
    let ox_lo = pl.div_ceil(s).min(ow);
    let ox_hi = if w + pl >= k {
        ((w + pl - k) / s + 1).min(ow)
    } else {
        0
    }
    .max(ox_lo);
    let rows = RowArgs {
        x: x.as_ptr(),
        g,
        wt: wt.as_ptr(),
        bias: bias.as_ptr(),
        act,
        iy0,
        ky0,
        ky1,
    };
    let out = orow.as_mut_ptr();
    let mut ox = 0;
    while ox < ow {
        let interior = ox >= ox_lo && ox + DW_PIXELS <= ox_hi;
        // SAFETY (all calls): interior pixels have every tap column in 0..w (ox range
        // above), border calls check each tap; tap rows ky0..ky1 are inside 0..h; channel
        // chunks stay below c; the pixels written are below ow.
        unsafe {
            let o = out.add(ox * c);
            let mut c0 = 0;
            if interior {
                while c0 + 16 <= c {
                    rows.pixels::<F, 16, DW_PIXELS, false>(ox, c0, o);
                    c0 += 16;
                }
                while c0 + 8 <= c {
                    rows.pixels::<F, 8, DW_PIXELS, false>(ox, c0, o);
                    c0 += 8;
                }
                while c0 < c {
                    rows.pixels::<F, 1, DW_PIXELS, false>(ox, c0, o);
                    c0 += 1;
                }
                ox += DW_PIXELS;
            } else {
                while c0 + 16 <= c {
                    rows.pixels::<F, 16, 1, true>(ox, c0, o);
                    c0 += 16;
                }
                while c0 + 8 <= c {
                    rows.pixels::<F, 8, 1, true>(ox, c0, o);
                    c0 += 8;
                }
                while c0 < c {
                    rows.pixels::<F, 1, 1, true>(ox, c0, o);
                    c0 += 1;
                }
                ox += 1;
            }
        }
    }
}

/// What the pixel loops of one depthwise output row share (pointers into the checked
/// buffers of [`dw_nhwc`]).
struct RowArgs<'a> {
    x: *const f32,
    g: &'a DwNhwc,
    wt: *const f32,
    bias: *const f32,
    act: Act,
    /// Input row of the first tap (may be negative), valid tap rows `ky0..ky1`.
    iy0: isize,
    ky0: usize,
    ky1: usize,
}

impl RowArgs<'_> {
    /// Channels `c0..c0 + L` of the `P` output pixels from `ox0`, written from `out`
    /// (which points at pixel `ox0`). With `CHECK`, taps outside the image columns are
    /// skipped.
    ///
    /// # Safety
    /// `c0 + L <= c`; without `CHECK`, every tap column of the `P` pixels is inside the
    /// image; `out` is valid for `P * c` values.
    #[inline(always)]
    unsafe fn pixels<const F: bool, const L: usize, const P: usize, const CHECK: bool>(
        &self,
        ox0: usize,
        c0: usize,
        out: *mut f32,
    ) {
        let DwNhwc { w, c, k, s, pl, .. } = *self.g;
        // SAFETY: the caller's contract; reads and writes of L values at channel c0.
        unsafe {
            let b = std::ptr::read_unaligned(self.bias.add(c0) as *const [f32; L]);
            let mut acc = [b; P];
            // a single checked pixel: only the taps whose column is inside the image
            let (kx0, kx1) = if CHECK && P == 1 {
                let ix0 = (ox0 * s) as isize - pl as isize;
                (
                    (-ix0).max(0) as usize,
                    (w as isize - ix0).clamp(0, k as isize) as usize,
                )
            } else {
                (0, k)
            };
            for ky in self.ky0..self.ky1 {
                let iy = (self.iy0 + ky as isize) as usize;
                let xrow = self.x.add(iy * w * c + c0);
                for kx in kx0..kx1 {
                    let wv = std::ptr::read_unaligned(
                        self.wt.add((ky * k + kx) * c + c0) as *const [f32; L]
                    );
                    for (j, a) in acc.iter_mut().enumerate() {
                        let ix = ((ox0 + j) * s + kx) as isize - pl as isize;
                        if CHECK && P > 1 && (ix < 0 || ix >= w as isize) {
                            // several checked pixels: per tap
                            continue;
                        }
                        let xv =
                            std::ptr::read_unaligned(xrow.add(ix as usize * c) as *const [f32; L]);
                        for l in 0..L {
                            a[l] = madd::<F>(xv[l], wv[l], a[l]);
                        }
                    }
                }
            }
            for (j, a) in acc.iter_mut().enumerate() {
                act_row::<F>(a, self.act);
                std::ptr::write_unaligned(out.add(j * c + c0) as *mut [f32; L], *a);
            }
        }
    }
}

#[inline(always)]
fn dw_nhwc_impl<const F: bool>(
    x: &[f32],
    g: &DwNhwc,
    wt: &[f32],
    bias: &[f32],
    act: Act,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let DwNhwc {
        h, w, c, k, s, ow, ..
    } = *g;
    let row_len = ow * c;
    let ok = x.len() >= h * w * c
        && wt.len() >= k * k * c
        && bias.len() >= c
        && k > 0
        && s > 0
        && c > 0
        && ow > 0
        && out.len() >= rows.len() * row_len;
    debug_assert!(ok, "dw_nhwc: inconsistent buffers");
    if !ok {
        return;
    }
    for (oy, orow) in rows.zip(out.chunks_exact_mut(row_len)) {
        // SAFETY: lengths checked above; tap rows and columns are clipped to the image
        // inside (interior pixels by construction of their range).
        unsafe { dw_nhwc_row::<F>(x, g, wt, bias, act, oy, orow) };
    }
}

multiversion! {
    /// Output rows `rows` of a channels-last depthwise convolution into `out`
    /// (`rows.len() x ow x c`): `act(bias + conv(x, wt))`, taps `wt[(ky * k + kx) * c + ch]`.
    /// The caller checked `x.len() == h * w * c`, `wt.len() == k * k * c`,
    /// `bias.len() == c` and that the geometry is consistent.
    fn dw_nhwc(
        x: &[f32],
        g: &DwNhwc,
        wt: &[f32],
        bias: &[f32],
        act: Act,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) => dw_nhwc_impl
}

#[inline(always)]
fn bias_act_rows_impl<const F: bool>(buf: &mut [f32], bias: &[f32], act: Act) {
    for row in buf.chunks_exact_mut(bias.len().max(1)) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        act_row::<F>(row, act);
    }
}

multiversion! {
    /// Every row (of `bias.len()` channels) of a channels-last buffer: `act(row + bias)`.
    fn bias_act_rows(buf: &mut [f32], bias: &[f32], act: Act) => bias_act_rows_impl
}

#[inline(always)]
fn col_mean_impl<const F: bool>(rows: &[f32], c: usize, out: &mut [f32]) {
    // f32 partial sums over blocks of 64 rows, added up in f64
    let mut total = vec![0.0f64; c];
    let mut part = vec![0.0f32; c];
    let n = rows.len().checked_div(c).unwrap_or(0);
    for block in rows.chunks(64 * c.max(1)) {
        part.iter_mut().for_each(|p| *p = 0.0);
        for row in block.chunks_exact(c.max(1)) {
            part.iter_mut().zip(row).for_each(|(p, v)| *p += v);
        }
        total
            .iter_mut()
            .zip(&part)
            .for_each(|(t, &p)| *t += p as f64);
    }
    for (o, t) in out.iter_mut().zip(&total) {
        *o = if n == 0 { 0.0 } else { (t / n as f64) as f32 };
    }
}

multiversion! {
    /// Per-channel mean of a channels-last buffer of `c` channels into `out[..c]`.
    fn col_mean(rows: &[f32], c: usize, out: &mut [f32]) => col_mean_impl
}

#[inline(always)]
fn scale_rows_in_place_impl<const F: bool>(buf: &mut [f32], g: &[f32]) {
    for row in buf.chunks_exact_mut(g.len().max(1)) {
        row.iter_mut().zip(g).for_each(|(v, &g)| *v *= g);
    }
}

multiversion! {
    /// `buf[r][j] *= g[j]` for rows of `g.len()` values.
    fn scale_rows_in_place(buf: &mut [f32], g: &[f32]) => scale_rows_in_place_impl
}

#[inline(always)]
fn mean_impl<const F: bool>(x: &[f32], out: &mut f32) {
    let mut acc = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut s: f32 = chunks.remainder().iter().sum();
    s += acc.iter().sum::<f32>();
    *out = if x.is_empty() {
        0.0
    } else {
        s / x.len() as f32
    };
}

multiversion! {
    /// Mean of a slice (0 for an empty one).
    fn mean(x: &[f32], out: &mut f32) => mean_impl
}

#[inline(always)]
fn scale_impl<const F: bool>(x: &mut [f32], g: f32) {
    x.iter_mut().for_each(|v| *v *= g);
}

multiversion! {
    /// `x *= g`.
    fn scale(x: &mut [f32], g: f32) => scale_impl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst: f32 = 0.0;
        let mut x = -87.0f32;
        while x < 88.0 {
            let e = exp::<false>(x);
            let f = exp::<true>(x);
            let r = x.exp();
            worst = worst.max(((e - r) / r).abs()).max(((f - r) / r).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
    }

    #[test]
    fn activations_match_formulas() {
        let xs: Vec<f32> = (0..200).map(|i| (i as f32 - 100.0) * 0.173).collect();
        for act in [
            Act::Identity,
            Act::Relu,
            Act::Relu6,
            Act::Swish,
            Act::Sigmoid,
        ] {
            let mut row = xs.clone();
            epilogue(&mut row, 0.25, None, act);
            for (&x, &y) in xs.iter().zip(&row) {
                let v = x + 0.25;
                let want = match act {
                    Act::Identity => v,
                    Act::Relu => v.max(0.0),
                    Act::Relu6 => v.clamp(0.0, 6.0),
                    Act::Swish => v / (1.0 + (-v).exp()),
                    Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                };
                assert!(
                    (y - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{act:?} {x}: {y} vs {want}"
                );
            }
        }
    }
}
