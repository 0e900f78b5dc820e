//! Fast CPU kernels on contiguous NCHW `f32` buffers, used by the burn-flex backend
//! through [`crate::fused::FusedOps`].
//!
//! * 1x1 stride-1 convolutions: one GEMM per image (`matrixmultiply`), no im2col;
//! * other ungrouped convolutions: im2col + GEMM;
//! * depthwise convolutions (any k, stride, padding): direct loops over a padded,
//!   stride-deinterleaved copy of each plane, 32 outputs accumulated in registers;
//! * epilogue fused into each: bias, residual add, ReLU / ReLU6 / SiLU;
//! * squeeze-excitation: pooled mean, both small layers and the rescale in one pass.
//!
//! Element loops are compiled for AVX-512, AVX2 + FMA and the baseline and picked at run
//! time ([`simd`]). Images (or planes) are spread over the rayon pool.

mod mbconv;
mod simd;

use rayon::prelude::*;

pub(crate) use mbconv::{Dense, MbBlock, mbconv, transpose};

use simd::{DwGeom, depthwise_plane, epilogue, mean, scale};

/// Activation applied in a kernel's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// None.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * sigmoid(x)`.
    Swish,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
}

/// Shape of a 2-D convolution on an NCHW batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    /// Padding top, bottom, left, right.
    pub pads: [usize; 4],
}

impl ConvGeom {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let [t, b, l, r] = self.pads;
        let s = self.stride.max(1);
        (
            (self.h + t + b).saturating_sub(self.k) / s + 1,
            (self.w + l + r).saturating_sub(self.k) / s + 1,
        )
    }
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.cin && self.groups == self.cout
    }
    /// Whether [`conv2d`] handles this shape (otherwise use the generic path).
    pub fn supported(&self) -> bool {
        let k_ok = self.k >= 1 && self.stride >= 1;
        let fits = self.h + self.pads[0] + self.pads[1] >= self.k
            && self.w + self.pads[2] + self.pads[3] >= self.k;
        // depthwise kernels keep at most 64 taps
        k_ok && fits && self.n > 0 && (self.groups == 1 || (self.is_depthwise() && self.k <= 8))
    }
    fn weight_len(&self) -> usize {
        if self.is_depthwise() {
            self.cout * self.k * self.k
        } else {
            self.cout * self.cin * self.k * self.k
        }
    }
}

/// A raw output pointer shared by the column blocks of a parallel GEMM.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: each task writes a disjoint block of columns of the output.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `c (m x n) = a (m x k) * b (k x n)`, all row-major and contiguous, with
/// `matrixmultiply` (AVX-512 / AVX2 + FMA kernels picked at run time; see the `gemm` bench
/// for why not the `gemm` crate or burn's matmul). With `threads`, blocks of columns go to
/// the rayon threads.
fn sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: bool) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "sgemm: buffer too small"
    );
    let t = rayon::current_num_threads();
    let blocks = if threads && n >= 512 && t > 1 { t } else { 1 };
    let width = n.div_ceil(blocks).div_ceil(16) * 16;
    let out = OutPtr(c.as_mut_ptr());
    let (ap, bp) = (a.as_ptr() as usize, b.as_ptr() as usize);
    let block = |j0: usize| {
        let nb = width.min(n - j0);
        // SAFETY: `a` holds m*k and `b` k*n elements (checked above); the block reads
        // columns j0..j0+nb of `b` and writes the same columns of `c` (m x n, row stride
        // n); blocks are disjoint and `c` aliases neither input.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                nb,
                1.0,
                ap as *const f32,
                k as isize,
                1,
                (bp as *const f32).add(j0),
                n as isize,
                1,
                0.0,
                out.get().add(j0),
                n as isize,
                1,
            );
        }
    };
    if blocks == 1 {
        block(0);
    } else {
        (0..n.div_ceil(width))
            .into_par_iter()
            .for_each(|i| block(i * width));
    }
}

/// `c (m x n) = a (m x k) * b (k x n)` single-threaded, each matrix given with its
/// (row, column) strides, so that transposed views cost nothing (`matrixmultiply` packs
/// the panels through the strides).
///
/// # Panics
/// If a stride reaches past the end of its slice (a bug in the caller).
#[allow(clippy::too_many_arguments)]
fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        k > 0
            && last(m, k, rsa, csa) < a.len()
            && last(k, n, rsb, csb) < b.len()
            && last(m, n, rsc, csc) < c.len(),
        "gemm_strided: strides reach past a buffer"
    );
    // SAFETY: every element addressed (row < rows, col < cols) is inside its slice (checked
    // above); `c` is a unique borrow and aliases neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Writes the im2col matrix of one image: row `(ci * k + ky) * k + kx`, column `oy * ow + ox`.
fn im2col(x: &[f32], g: &ConvGeom, oh: usize, ow: usize, cols: &mut Vec<f32>) {
    let (k, s) = (g.k, g.stride);
    let [pt, _, pl, _] = g.pads;
    let ohw = oh * ow;
    cols.clear();
    cols.resize(g.cin * k * k * ohw, 0.0);
    for ci in 0..g.cin {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let dst = &mut cols[row * ohw..(row + 1) * ohw];
                // valid ox: pl <= ox*s + kx < pl + w
                let ox0 = pl.saturating_sub(kx).div_ceil(s);
                let ox1 = (pl + g.w).saturating_sub(kx).div_ceil(s).min(ow);
                for oy in 0..oh {
                    let Some(iy) = (oy * s + ky).checked_sub(pt).filter(|&iy| iy < g.h) else {
                        continue;
                    };
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    let d = &mut dst[oy * ow..(oy + 1) * ow];
                    if s == 1 {
                        if ox0 < ox1 {
                            let ix0 = ox0 + kx - pl;
                            d[ox0..ox1].copy_from_slice(&src[ix0..ix0 + (ox1 - ox0)]);
                        }
                    } else {
                        for ox in ox0..ox1 {
                            d[ox] = src[ox * s + kx - pl];
                        }
                    }
                }
            }
        }
    }
}

/// `act(conv2d(x, weight) + bias (+ residual))` on an NCHW batch; `None` if the shape is
/// not [`ConvGeom::supported`] or a buffer has the wrong length.
pub(crate) fn conv2d(
    x: &[f32],
    g: &ConvGeom,
    weight: &[f32],
    bias: &[f32],
    act: Act,
    residual: Option<&[f32]>,
) -> Option<Vec<f32>> {
    if !g.supported()
        || x.len() != g.n * g.cin * g.h * g.w
        || weight.len() != g.weight_len()
        || bias.len() != g.cout
    {
        return None;
    }
    let (oh, ow) = g.out_hw();
    let ohw = oh * ow;
    let img_out = g.cout * ohw;
    if residual.is_some_and(|r| r.len() != g.n * img_out) {
        return None;
    }
    let mut out = vec![0.0f32; g.n * img_out];
    let img_in = g.cin * g.h * g.w;
    if g.is_depthwise() {
        let dg = DwGeom {
            h: g.h,
            w: g.w,
            k: g.k,
            s: g.stride,
            pt: g.pads[0],
            pl: g.pads[2],
            oh,
            ow,
        };
        let kk = g.k * g.k;
        let plane_in = g.h * g.w;
        out.par_chunks_mut(ohw)
            .enumerate()
            .for_each_init(Vec::new, |scratch, (p, o)| {
                let c = p % g.cout;
                let xin = &x[p * plane_in..(p + 1) * plane_in];
                let wk = &weight[c * kk..(c + 1) * kk];
                match residual {
                    None => depthwise_plane(xin, dg, wk, bias[c], act, o, scratch),
                    Some(r) => {
                        depthwise_plane(xin, dg, wk, bias[c], Act::Identity, o, scratch);
                        epilogue(o, 0.0, Some(&r[p * ohw..(p + 1) * ohw]), act);
                    }
                }
            });
        return Some(out);
    }
    let pointwise = g.k == 1 && g.stride == 1 && g.pads == [0; 4];
    let kdim = g.cin * g.k * g.k;
    let per_image = |i: usize, o: &mut [f32], cols: &mut Vec<f32>, threads: bool| {
        let xin = &x[i * img_in..(i + 1) * img_in];
        if pointwise {
            sgemm(g.cout, ohw, kdim, weight, xin, o, threads);
        } else {
            im2col(xin, g, oh, ow, cols);
            sgemm(g.cout, ohw, kdim, weight, cols, o, threads);
        }
        for c in 0..g.cout {
            let res = residual.map(|r| &r[i * img_out + c * ohw..i * img_out + (c + 1) * ohw]);
            epilogue(&mut o[c * ohw..(c + 1) * ohw], bias[c], res, act);
        }
    };
    // Inside a rayon worker (images already spread over the threads) GEMMs run
    // single-threaded.
    let nested = rayon::current_thread_index().is_some();
    if g.n >= rayon::current_num_threads() || (nested && g.n > 1) {
        out.par_chunks_mut(img_out)
            .enumerate()
            .for_each_init(Vec::new, |cols, (i, o)| per_image(i, o, cols, false));
    } else {
        let mut cols = Vec::new();
        for (i, o) in out.chunks_mut(img_out).enumerate() {
            per_image(i, o, &mut cols, !nested);
        }
    }
    Some(out)
}

/// The squeeze-excitation gate from the pooled channel means `s` (`c` values):
/// `sigmoid(we act(wr s + br) + be)`, with `wr` `rd x c` and `we` `c x rd` row-major. Shared
/// by the NCHW kernel ([`squeeze_excite`]) and the channels-last block ([`mbconv`]).
pub(crate) fn se_gate(
    s: &[f32],
    (wr, br): (&[f32], &[f32]),
    (we, be): (&[f32], &[f32]),
    act: Act,
) -> Vec<f32> {
    let (c, rd) = (s.len(), br.len());
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f32>();
    let mut r: Vec<f32> = (0..rd)
        .map(|j| br[j] + dot(&wr[j * c..(j + 1) * c], s))
        .collect();
    epilogue(&mut r, 0.0, None, act);
    let mut e: Vec<f32> = (0..c)
        .map(|ch| be[ch] + dot(&we[ch * rd..(ch + 1) * rd], &r))
        .collect();
    epilogue(&mut e, 0.0, None, Act::Sigmoid);
    e
}

/// Squeeze-excitation in place on an NCHW batch `y` of `c` channels and `hw` positions:
/// `s = mean_hw(y)`, `r = act(wr s + br)` (`rd` values), `e = sigmoid(we r + be)`,
/// `y *= e` per channel. `false` (and `y` untouched) if a length is wrong.
#[allow(clippy::too_many_arguments)]
pub(crate) fn squeeze_excite(
    y: &mut [f32],
    c: usize,
    hw: usize,
    (wr, br): (&[f32], &[f32]),
    (we, be): (&[f32], &[f32]),
    act: Act,
) -> bool {
    let rd = br.len();
    if c == 0
        || hw == 0
        || !y.len().is_multiple_of(c * hw)
        || wr.len() != rd * c
        || we.len() != c * rd
        || be.len() != c
    {
        return false;
    }
    y.par_chunks_mut(c * hw).for_each(|img| {
        let mut s = vec![0.0f32; c];
        for (ch, m) in s.iter_mut().enumerate() {
            mean(&img[ch * hw..(ch + 1) * hw], m);
        }
        let e = se_gate(&s, (wr, br), (we, be), act);
        for (ch, &g) in e.iter().enumerate() {
            scale(&mut img[ch * hw..(ch + 1) * hw], g);
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The column-blocked parallel GEMM and the single call agree with a naive product.
    #[test]
    fn sgemm_matches_naive_product_single_and_blocked() {
        for &(m, k, n) in &[(3usize, 5usize, 7usize), (17, 9, 1000), (8, 33, 2049)] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 29) as f32 / 14.0 - 1.0)
                .collect();
            let mut want = vec![0.0f64; m * n];
            for i in 0..m {
                for p in 0..k {
                    for j in 0..n {
                        want[i * n + j] += a[i * k + p] as f64 * b[p * n + j] as f64;
                    }
                }
            }
            for threads in [false, true] {
                let mut c = vec![f32::NAN; m * n];
                sgemm(m, n, k, &a, &b, &mut c, threads);
                for (g, w) in c.iter().zip(&want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{m}x{k}x{n}: {g} vs {w}"
                    );
                }
            }
        }
    }
}
