//! An inverted-residual (MBConv) block in one pass per image, channels-last inside.
//!
//! The block's input and output stay NCHW (what the rest of the model and the feature
//! levels use), but everything in between is `h x w x c` (NHWC), so that
//!
//! * the expand 1x1 convolution is one GEMM reading the NCHW input through strides
//!   (`x^T w^T`, no transpose copy) and writing NHWC rows;
//! * the depthwise convolution runs over contiguous channel vectors (16 lanes), stride 2
//!   included, with no padded or deinterleaved copies;
//! * squeeze-excitation is folded into the project weights (`w_p diag(g)`, `cout x cexp`
//!   multiplications instead of `h w cexp` over the activations) when that is cheaper;
//! * the project 1x1 convolution is one GEMM writing NCHW directly, with bias and the
//!   residual fused.
//!
//! The wide expanded activations live in per-thread scratch buffers reused from block to
//! block and batch to batch (no allocation, no zero-filling per layer).

use std::cell::RefCell;

use rayon::prelude::*;

use super::simd::{DwNhwc, bias_act_rows, col_mean, dw_nhwc, epilogue, scale, scale_rows_in_place};
use super::{Act, gemm_strided, se_gate};

/// Weights (`out x in`, row-major), bias and transposed weights (`in x out`) of a 1x1
/// (or depthwise: `in` = taps) convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dense<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub t: &'a [f32],
}

/// One inverted-residual block: `project(se(dw(expand(x)))) (+ x)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MbBlock<'a> {
    /// Input, expanded and output channels.
    pub cin: usize,
    pub cexp: usize,
    pub cout: usize,
    /// Expand 1x1 (`cexp x cin`), absent when `cexp == cin` and the block has none.
    pub expand: Option<Dense<'a>>,
    /// Depthwise weights `cexp x k x k`.
    pub dw: Dense<'a>,
    /// Depthwise kernel size and stride; padding top, bottom, left, right.
    pub k: usize,
    pub stride: usize,
    pub pads: [usize; 4],
    /// Squeeze-excitation: reduce (`rd x cexp`) and expand (`cexp x rd`).
    pub se: Option<(Dense<'a>, Dense<'a>)>,
    /// Project 1x1 (`cout x cexp`), no activation.
    pub project: Dense<'a>,
    /// Activation after expand, depthwise and the SE reduce.
    pub act: Act,
    /// Add the block's input to its output.
    pub skip: bool,
}

impl MbBlock<'_> {
    /// Output height and width for an `h x w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> (usize, usize) {
        let [t, b, l, r] = self.pads;
        let s = self.stride.max(1);
        (
            (h + t + b).saturating_sub(self.k) / s + 1,
            (w + l + r).saturating_sub(self.k) / s + 1,
        )
    }

    /// Whether every buffer has the length the shapes imply.
    fn consistent(&self, n: usize, h: usize, w: usize, x: &[f32]) -> bool {
        let (ce, k) = (self.cexp, self.k);
        let dense = |d: &Dense<'_>, o: usize, i: usize| {
            d.w.len() == o * i && d.b.len() == o && d.t.len() == o * i
        };
        let (oh, ow) = self.out_hw(h, w);
        let se_ok = self.se.as_ref().is_none_or(|(r, e)| {
            let rd = r.b.len();
            rd > 0 && dense(r, rd, ce) && dense(e, ce, rd)
        });
        n > 0
            && h > 0
            && w > 0
            && self.cin > 0
            && ce > 0
            && self.cout > 0
            && k > 0
            && self.stride > 0
            && h + self.pads[0] + self.pads[1] >= k
            && w + self.pads[2] + self.pads[3] >= k
            && x.len() == n * self.cin * h * w
            && match &self.expand {
                Some(e) => dense(e, ce, self.cin),
                None => ce == self.cin,
            }
            && dense(&self.dw, ce, k * k)
            && se_ok
            && dense(&self.project, self.cout, ce)
            && (!self.skip || (self.cin == self.cout && (oh, ow) == (h, w)))
    }
}

/// Per-thread buffers of the channels-last activations and scaled project weights.
#[derive(Default)]
struct Scratch {
    expanded: Vec<f32>,
    depthwise: Vec<f32>,
    project: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The first `n` elements of `v`, grown (never shrunk) to hold them. Contents are
/// whatever the previous user left: every caller overwrites all `n`.
fn take(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// `e[p * c + ch] = x[ch * hw + p]` (NCHW plane stack to NHWC rows), in tiles.
fn to_channels_last(x: &[f32], c: usize, hw: usize, e: &mut [f32]) {
    const TILE: usize = 64;
    for p0 in (0..hw).step_by(TILE) {
        let p1 = (p0 + TILE).min(hw);
        for ch in 0..c {
            let src = &x[ch * hw + p0..ch * hw + p1];
            for (p, &v) in (p0..p1).zip(src) {
                e[p * c + ch] = v;
            }
        }
    }
}

/// Splits `0..len` into `parts` contiguous ranges of whole `unit`s (the last one shorter).
fn blocks(len: usize, parts: usize) -> usize {
    len.div_ceil(parts.max(1)).max(1)
}

/// `t[j * rows + i] = w[i * cols + j]` for a row-major `rows x cols` matrix `w`.
pub(crate) fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = w[i * cols + j];
        }
    }
    t
}

/// Runs `step` on the chunks of `buf` (of `chunk` values each, numbered), over the rayon
/// threads when `par`; whether every step succeeded.
fn for_chunks(
    buf: &mut [f32],
    chunk: usize,
    par: bool,
    step: impl Fn((usize, &mut [f32])) -> bool + Sync + Send,
) -> bool {
    if par {
        buf.par_chunks_mut(chunk.max(1))
            .enumerate()
            .map(step)
            .reduce(|| true, |a, b| a && b)
    } else {
        step((0, buf))
    }
}

/// One image: `x` is `cin x h x w`, `out` is `cout x oh x ow`. With `par`, each step is
/// split over the rayon threads (rows of the expand GEMM and of the depthwise output,
/// output channels of the project GEMM); the caller must then not be a rayon worker (see
/// [`mbconv`]). `false` if a kernel refused its buffers (a bug; the output is then
/// not written).
#[allow(clippy::too_many_arguments)]
fn image(
    x: &[f32],
    h: usize,
    w: usize,
    b: &MbBlock<'_>,
    out: &mut [f32],
    sc: &mut Scratch,
    par: bool,
) -> bool {
    let Scratch {
        expanded,
        depthwise,
        project,
    } = sc;
    let parts = if par { rayon::current_num_threads() } else { 1 };
    let par = parts > 1;
    let hw = h * w;
    let (oh, ow) = b.out_hw(h, w);
    let ohw = oh * ow;
    let (ce, cout) = (b.cexp, b.cout);
    // 1. expand: e (hw x ce) = act(x^T w_e^T + bias), in blocks of rows (pixels)
    let e = take(expanded, hw * ce);
    let ok = match &b.expand {
        Some(ex) => {
            let rows = blocks(hw, parts);
            for_chunks(e, rows * ce, par, |(i, eb)| {
                let p0 = i * rows;
                let m = eb.len() / ce;
                gemm_strided(
                    m,
                    ce,
                    b.cin,
                    &x[p0..],
                    (1, hw),
                    ex.w,
                    (1, b.cin),
                    eb,
                    (ce, 1),
                );
                bias_act_rows(eb, ex.b, b.act);
                true
            })
        }
        None => {
            to_channels_last(x, b.cin, hw, e);
            true
        }
    };
    if !ok {
        return false;
    }
    let e = &*e;
    // 2. depthwise: d (ohw x ce), in blocks of output rows
    let d = take(depthwise, ohw * ce);
    let g = DwNhwc {
        h,
        w,
        c: ce,
        k: b.k,
        s: b.stride,
        pt: b.pads[0],
        pl: b.pads[2],
        ow,
    };
    let rows = blocks(oh, parts);
    for_chunks(d, rows * ow * ce, par, |(i, db)| {
        let oy0 = i * rows;
        dw_nhwc(
            e,
            &g,
            b.dw.t,
            b.dw.b,
            b.act,
            oy0..oy0 + db.len() / (ow * ce),
            db,
        );
        true
    });
    // 3. squeeze-excitation, folded into the project weights or applied to d
    let mut wp_t: &[f32] = b.project.t;
    if let Some((r, x_se)) = &b.se {
        let mut s = vec![0.0f32; ce];
        col_mean(d, ce, &mut s);
        let gate = se_gate(&s, (r.w, r.b), (x_se.w, x_se.b), b.act);
        if cout < ohw {
            // row ch of w_p^T times gate[ch]
            let scaled = take(project, ce * cout);
            scaled.copy_from_slice(b.project.t);
            for (row, &gv) in scaled.chunks_exact_mut(cout).zip(&gate) {
                scale(row, gv);
            }
            wp_t = scaled;
        } else {
            scale_rows_in_place(d, &gate);
        }
    }
    let d = &*d;
    // 4. project: out (cout planes of ohw) = w_p d^T + bias (+ x), in blocks of output
    // channels; A = rows o0.. of w_p read through w_p^T's strides (so that matrixmultiply
    // packs it from contiguous columns), B = d^T through d's strides
    let chans = blocks(cout, parts);
    for_chunks(out, chans * ohw, par, |(i, ob)| {
        let o0 = i * chans;
        let m = ob.len() / ohw;
        gemm_strided(m, ohw, ce, &wp_t[o0..], (1, cout), d, (1, ce), ob, (ohw, 1));
        for (o, row) in ob.chunks_exact_mut(ohw).enumerate() {
            let res = b.skip.then(|| &x[(o0 + o) * ohw..(o0 + o + 1) * ohw]);
            epilogue(row, b.project.b[o0 + o], res, Act::Identity);
        }
        true
    })
}

/// Runs the block on an NCHW batch `x` (`n x cin x h x w`); the NCHW output
/// (`n x cout x oh x ow`), or `None` when a buffer does not fit the shapes.
///
/// Images go over the rayon threads when there are at least as many as threads or when
/// called from a rayon worker (the caller already spread the images; everything then runs
/// on this thread); otherwise (e.g. one image) the steps of each image are split over the
/// threads instead.
pub(crate) fn mbconv(x: &[f32], n: usize, h: usize, w: usize, b: &MbBlock<'_>) -> Option<Vec<f32>> {
    if !b.consistent(n, h, w, x) {
        return None;
    }
    let (oh, ow) = b.out_hw(h, w);
    let (img_in, img_out) = (b.cin * h * w, b.cout * oh * ow);
    let mut out = vec![0.0f32; n * img_out];
    let threads = rayon::current_num_threads();
    let nested = rayon::current_thread_index().is_some();
    let ok = if nested || n >= threads || threads == 1 {
        out.par_chunks_mut(img_out)
            .enumerate()
            .map(|(i, o)| {
                let xi = &x[i * img_in..(i + 1) * img_in];
                // no rayon call inside `image` (par = false): the borrow cannot be
                // re-entered by a task stolen onto this thread
                SCRATCH.with_borrow_mut(|sc| image(xi, h, w, b, o, sc, false))
            })
            .reduce(|| true, |a, b| a && b)
    } else {
        // Not a rayon worker: this thread only waits while the pool runs the parallel
        // steps, so it never runs another task while its scratch is borrowed.
        x.chunks_exact(img_in)
            .zip(out.chunks_exact_mut(img_out))
            .all(|(xi, o)| SCRATCH.with_borrow_mut(|sc| image(xi, h, w, b, o, sc, true)))
    };
    ok.then_some(out)
}
