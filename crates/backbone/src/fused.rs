//! Backend extension: fused operations of the forward pass.
//!
//! [`FusedOps`] has a default implementation with plain burn tensor ops (any backend,
//! e.g. CUDA); the CPU backend (burn-flex) overrides it with the kernels of
//! [`crate::cpu`], working directly on the contiguous `f32` storage of the flex tensors
//! (no copies in or out).

use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::backend::Backend;
use burn::tensor::{Bytes, DType, Shape, Tensor, TensorPrimitive};
use burn_flex::{Flex, FlexTensor, Layout};

use crate::cpu::{self, Act, ConvGeom};
use crate::model::Conv;
use crate::spec::Activation;

impl From<Activation> for Act {
    fn from(a: Activation) -> Self {
        match a {
            Activation::Relu => Act::Relu,
            Activation::Relu6 => Act::Relu6,
            Activation::Swish => Act::Swish,
        }
    }
}

/// Applies `act` with burn ops.
pub(crate) fn act_ref<B: Backend>(act: Act, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match act {
        Act::Identity => x,
        Act::Relu => relu(x),
        Act::Relu6 => x.clamp(0.0, 6.0),
        Act::Swish => silu(x),
        Act::Sigmoid => sigmoid(x),
    }
}

/// Reference `act(conv(x) + bias (+ residual))` with burn ops.
pub(crate) fn conv_bias_act_ref<B: Backend>(
    x: Tensor<B, 4>,
    conv: &Conv<B>,
    act: Act,
    residual: Option<Tensor<B, 4>>,
) -> Tensor<B, 4> {
    let y = conv.forward(x);
    let y = match residual {
        Some(r) => y + r,
        None => y,
    };
    act_ref(act, y)
}

/// Reference squeeze-excitation with burn ops.
pub(crate) fn squeeze_excite_ref<B: Backend>(
    y: Tensor<B, 4>,
    reduce: &Conv<B>,
    expand: &Conv<B>,
    act: Act,
) -> Tensor<B, 4> {
    let s = y.clone().mean_dim(2).mean_dim(3);
    let s = act_ref(act, reduce.forward(s));
    let g = sigmoid(expand.forward(s));
    let shape = y.shape();
    y * g.expand(shape)
}

/// The convolutions of one inverted-residual (MBConv) block.
pub(crate) struct MbConvs<'a, B: Backend> {
    /// Expand 1x1, if the block has one.
    pub expand: Option<&'a Conv<B>>,
    /// Depthwise k x k.
    pub dw: &'a Conv<B>,
    /// Squeeze-excitation reduce and expand.
    pub se: Option<(&'a Conv<B>, &'a Conv<B>)>,
    /// Project 1x1 (no activation).
    pub project: &'a Conv<B>,
    /// Whether the input is added to the output.
    pub skip: bool,
}

type ConvFn<B> = fn(Tensor<B, 4>, &Conv<B>, Act, Option<Tensor<B, 4>>) -> Tensor<B, 4>;
type SeFn<B> = fn(Tensor<B, 4>, &Conv<B>, &Conv<B>, Act) -> Tensor<B, 4>;

/// An MBConv block as a sequence of convolution and SE calls.
pub(crate) fn mb_compose<B: Backend>(
    x: Tensor<B, 4>,
    blk: &MbConvs<'_, B>,
    act: Act,
    conv: ConvFn<B>,
    se: SeFn<B>,
) -> Tensor<B, 4> {
    let input = blk.skip.then(|| x.clone());
    let mut y = match blk.expand {
        Some(e) => conv(x, e, act, None),
        None => x,
    };
    y = conv(y, blk.dw, act, None);
    if let Some((r, e)) = blk.se {
        y = se(y, r, e, act);
    }
    conv(y, blk.project, Act::Identity, input)
}

/// Fused operations of the networks; defaults use burn ops.
pub(crate) trait FusedOps: Backend {
    /// `act(conv(x) + bias (+ residual))`.
    fn conv_bias_act(
        x: Tensor<Self, 4>,
        conv: &Conv<Self>,
        act: Act,
        residual: Option<Tensor<Self, 4>>,
    ) -> Tensor<Self, 4> {
        conv_bias_act_ref(x, conv, act, residual)
    }
    /// Squeeze-excitation: `y * sigmoid(expand(act(reduce(mean_hw(y)))))`.
    fn squeeze_excite(
        y: Tensor<Self, 4>,
        reduce: &Conv<Self>,
        expand: &Conv<Self>,
        act: Act,
    ) -> Tensor<Self, 4> {
        squeeze_excite_ref(y, reduce, expand, act)
    }
    /// A whole inverted-residual block (activation `act` after expand, depthwise and the
    /// SE reduce).
    fn mb_block(x: Tensor<Self, 4>, blk: &MbConvs<'_, Self>, act: Act) -> Tensor<Self, 4> {
        mb_compose(x, blk, act, Self::conv_bias_act, Self::squeeze_excite)
    }
}

#[cfg(feature = "cuda")]
impl FusedOps for burn_cuda::Cuda<f32, i32> {}

/// The flex primitive of a tensor, contiguous, from offset 0, covering its whole buffer
/// (so that `storage()` is exactly the tensor). The caller checked the dtype.
fn flex_f32(t: Tensor<Flex, 4>) -> FlexTensor {
    let p = t.into_primitive().tensor();
    let exact = p.is_contiguous()
        && p.layout().start_offset() == 0
        && p.bytes().len() == p.layout().num_elements() * 4;
    if exact { p } else { p.to_contiguous() }
}

fn flex_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or(&[])
}

fn from_vec(v: Vec<f32>, shape: [usize; 4]) -> Tensor<Flex, 4> {
    let p = FlexTensor::new(
        Bytes::from_elems(v),
        Layout::contiguous(Shape::new(shape)),
        DType::F32,
    );
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// A convolution's weights, bias and (cached) transposed weights as slices.
fn dense<'a>(conv: &'a Conv<Flex>, p: &'a (FlexTensor, FlexTensor)) -> cpu::Dense<'a> {
    let w = flex_slice(&p.0);
    let out = conv.def.out_ch;
    let t = conv
        .weight_t
        .get_or_init(|| cpu::transpose(w, out, w.len().checked_div(out).unwrap_or(0)));
    cpu::Dense {
        w,
        b: flex_slice(&p.1),
        t,
    }
}

fn param_slice<const D: usize>(t: &Tensor<Flex, D>) -> Option<FlexTensor> {
    let p = t.clone().into_primitive().tensor();
    (p.dtype() == DType::F32 && p.as_slice::<f32>().is_some()).then_some(p)
}

fn geom(conv: &Conv<Flex>, dims: [usize; 4]) -> ConvGeom {
    let [n, cin, h, w] = dims;
    let (t, b) = conv.def.pads(h);
    let (l, r) = conv.def.pads(w);
    ConvGeom {
        n,
        cin,
        h,
        w,
        cout: conv.def.out_ch,
        k: conv.def.kernel,
        stride: conv.def.stride,
        groups: conv.def.groups,
        pads: [t, b, l, r],
    }
}

impl FusedOps for Flex {
    fn conv_bias_act(
        x: Tensor<Flex, 4>,
        conv: &Conv<Flex>,
        act: Act,
        residual: Option<Tensor<Flex, 4>>,
    ) -> Tensor<Flex, 4> {
        let dims = x.dims();
        let g = geom(conv, dims);
        let f32s =
            x.dtype() == DType::F32 && residual.as_ref().is_none_or(|r| r.dtype() == DType::F32);
        let fast = f32s && g.supported() && g.cin == conv.def.in_ch;
        let (Some(w), Some(b)) = (param_slice(&conv.weight), param_slice(&conv.bias)) else {
            return conv_bias_act_ref(x, conv, act, residual);
        };
        if !fast {
            return conv_bias_act_ref(x, conv, act, residual);
        }
        let xp = flex_f32(x);
        let rp = residual.map(flex_f32);
        let out = cpu::conv2d(
            flex_slice(&xp),
            &g,
            flex_slice(&w),
            flex_slice(&b),
            act,
            rp.as_ref().map(flex_slice),
        );
        let (oh, ow) = g.out_hw();
        match out {
            Some(v) => from_vec(v, [g.n, g.cout, oh, ow]),
            None => {
                let x = Tensor::from_primitive(TensorPrimitive::Float(xp));
                let r = rp.map(|p| Tensor::from_primitive(TensorPrimitive::Float(p)));
                conv_bias_act_ref(x, conv, act, r)
            }
        }
    }

    fn squeeze_excite(
        y: Tensor<Flex, 4>,
        reduce: &Conv<Flex>,
        expand: &Conv<Flex>,
        act: Act,
    ) -> Tensor<Flex, 4> {
        let [_, c, h, w] = y.dims();
        let params = (
            param_slice(&reduce.weight),
            param_slice(&reduce.bias),
            param_slice(&expand.weight),
            param_slice(&expand.bias),
        );
        let (Some(wr), Some(br), Some(we), Some(be)) = params else {
            return squeeze_excite_ref(y, reduce, expand, act);
        };
        if y.dtype() != DType::F32 {
            return squeeze_excite_ref(y, reduce, expand, act);
        }
        let mut p = flex_f32(y);
        let ok = {
            let buf = p.storage_mut::<f32>();
            cpu::squeeze_excite(
                buf,
                c,
                h * w,
                (flex_slice(&wr), flex_slice(&br)),
                (flex_slice(&we), flex_slice(&be)),
                act,
            )
        };
        let y = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(p));
        if ok {
            y
        } else {
            squeeze_excite_ref(y, reduce, expand, act)
        }
    }

    fn mb_block(x: Tensor<Flex, 4>, blk: &MbConvs<'_, Flex>, act: Act) -> Tensor<Flex, 4> {
        mb_block_flex(x, blk, act)
            .unwrap_or_else(|x| mb_compose(x, blk, act, Self::conv_bias_act, Self::squeeze_excite))
    }
}

/// The channels-last MBConv kernel ([`cpu::mbconv`]) on a flex batch; `Err(x)` (the
/// input back) when a shape, dtype or buffer does not suit it.
#[allow(clippy::result_large_err)] // the error is the input tensor handed back, not a copy
fn mb_block_flex(
    x: Tensor<Flex, 4>,
    blk: &MbConvs<'_, Flex>,
    act: Act,
) -> Result<Tensor<Flex, 4>, Tensor<Flex, 4>> {
    let fallback = Err;
    let params = |c: &Conv<Flex>| Some((param_slice(&c.weight)?, param_slice(&c.bias)?));
    let pointwise = |c: &Conv<Flex>| c.def.kernel == 1 && c.def.stride == 1 && c.def.groups == 1;
    let [n, cin, h, w] = x.dims();
    let dw = blk.dw;
    let cexp = dw.def.in_ch;
    let shapes_ok = x.dtype() == DType::F32
        && blk
            .expand
            .is_none_or(|e| pointwise(e) && e.def.in_ch == cin && e.def.out_ch == cexp)
        && (blk.expand.is_some() || cexp == cin)
        && dw.def.groups == cexp
        && dw.def.out_ch == cexp
        && blk.se.is_none_or(|(r, e)| pointwise(r) && pointwise(e))
        && pointwise(blk.project)
        && blk.project.def.in_ch == cexp;
    if !shapes_ok {
        return fallback(x);
    }
    // owned handles on the parameter storage, borrowed as slices below
    let (Some(pd), Some(pp)) = (params(dw), params(blk.project)) else {
        return fallback(x);
    };
    let pe = match blk.expand.map(params) {
        Some(None) => return fallback(x),
        other => other.flatten(),
    };
    let pse = match blk.se.map(|(r, e)| Some((params(r)?, params(e)?))) {
        Some(None) => return fallback(x),
        other => other.flatten(),
    };
    let (t, b) = dw.def.pads(h);
    let (l, r) = dw.def.pads(w);
    let block = cpu::MbBlock {
        cin,
        cexp,
        cout: blk.project.def.out_ch,
        expand: blk.expand.zip(pe.as_ref()).map(|(c, p)| dense(c, p)),
        dw: dense(dw, &pd),
        k: dw.def.kernel,
        stride: dw.def.stride,
        pads: [t, b, l, r],
        se: blk
            .se
            .zip(pse.as_ref())
            .map(|((rc, ec), (r, e))| (dense(rc, r), dense(ec, e))),
        project: dense(blk.project, &pp),
        act,
        skip: blk.skip,
    };
    let xp = flex_f32(x);
    match cpu::mbconv(flex_slice(&xp), n, h, w, &block) {
        Some(v) => {
            let (oh, ow) = block.out_hw(h, w);
            Ok(from_vec(v, [n, block.cout, oh, ow]))
        }
        None => fallback(Tensor::from_primitive(TensorPrimitive::Float(xp))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{ConvDef, PaddingMode};
    use burn::tensor::TensorData;
    use proptest::prelude::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        // xorshift, uniform in [-1, 1)
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<Flex, D> {
        Tensor::from_data(TensorData::new(v, shape), &burn_flex::FlexDevice)
    }

    fn make_conv(def: ConvDef, seed: u64) -> Conv<Flex> {
        let shape = def.weight_shape();
        let n: usize = shape.iter().product();
        let fan = (shape[1] * shape[2] * shape[3]) as f32;
        let w: Vec<f32> = values(n, seed)
            .into_iter()
            .map(|v| v * 2.0 / fan.sqrt())
            .collect();
        let b = values(def.out_ch, seed + 1);
        Conv {
            weight: tensor(w, shape),
            bias: tensor(b, [def.out_ch]),
            weight_t: std::sync::OnceLock::new(),
            def,
        }
    }

    fn assert_close(got: Tensor<Flex, 4>, want: Tensor<Flex, 4>) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.dims(), want.dims());
        let g = got.into_data().into_vec::<f32>().unwrap_or_default();
        let w = want.into_data().into_vec::<f32>().unwrap_or_default();
        prop_assert_eq!(g.len(), w.len());
        let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            prop_assert!(
                (a - b).abs() <= 2e-5 * scale,
                "index {}: {} vs {} (scale {})",
                i,
                a,
                b,
                scale
            );
        }
        Ok(())
    }

    fn act_of(i: usize) -> Act {
        [
            Act::Identity,
            Act::Relu,
            Act::Relu6,
            Act::Swish,
            Act::Sigmoid,
        ][i % 5]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Every kernel (pointwise GEMM, im2col + GEMM, depthwise) with its fused epilogue
        /// against burn's `conv2d` + bias + activation (+ residual) on random inputs.
        #[test]
        fn conv_kernels_match_burn_ops(
            n in 1usize..4,
            cin in 1usize..10,
            cout_dense in 1usize..12,
            h in 1usize..19,
            w in 1usize..19,
            k in prop::sample::select(vec![1usize, 3, 5, 7]),
            stride in 1usize..3,
            depthwise in any::<bool>(),
            tf_same in any::<bool>(),
            act in 0usize..5,
            residual in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let padding = if tf_same { PaddingMode::TfSame } else { PaddingMode::Symmetric };
            let (cout, groups) = if depthwise { (cin, cin) } else { (cout_dense, 1) };
            let def = ConvDef {
                name: "c".into(),
                bn_name: None,
                in_ch: cin,
                out_ch: cout,
                kernel: k,
                stride,
                groups,
                padding,
            };
            let (t, b) = def.pads(h);
            let (l, r) = def.pads(w);
            prop_assume!(h + t + b >= k && w + l + r >= k);
            let conv = make_conv(def.clone(), seed);
            let x = tensor(values(n * cin * h * w, seed + 7), [n, cin, h, w]);
            let (oh, ow) = (def.out_size(h), def.out_size(w));
            let res = residual.then(|| tensor(values(n * cout * oh * ow, seed + 9), [n, cout, oh, ow]));
            let act = act_of(act);
            let want = conv_bias_act_ref(x.clone(), &conv, act, res.clone());
            let got = <Flex as FusedOps>::conv_bias_act(x, &conv, act, res);
            assert_close(got, want)?;
        }

        /// Fused squeeze-excitation against mean + two 1x1 convolutions + sigmoid + product.
        #[test]
        fn squeeze_excite_matches_burn_ops(
            n in 1usize..4,
            c in 1usize..24,
            rd in 1usize..8,
            h in 1usize..12,
            w in 1usize..12,
            swish in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let pw = |i, o| ConvDef::pointwise("p".into(), None, i, o, PaddingMode::Symmetric);
            let reduce = make_conv(pw(c, rd), seed);
            let expand = make_conv(pw(rd, c), seed + 3);
            let act = if swish { Act::Swish } else { Act::Relu6 };
            let y = tensor(values(n * c * h * w, seed + 5), [n, c, h, w]);
            let want = squeeze_excite_ref(y.clone(), &reduce, &expand, act);
            let got = <Flex as FusedOps>::squeeze_excite(y, &reduce, &expand, act);
            assert_close(got, want)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

        /// The channels-last MBConv kernel (expand GEMM through strides, NHWC depthwise
        /// with 16/8/1-channel chunks and border pixels, SE folded into the project
        /// weights or into the activations, project GEMM + residual) against the same
        /// block as burn ops (`conv2d` + bias + activation, SE, add).
        #[test]
        fn mb_block_matches_burn_ops(
            n in 1usize..3,
            cin in 1usize..20,
            expand_to in prop::option::of(1usize..41),
            cout in 1usize..20,
            h in 1usize..20,
            w in 1usize..20,
            k in prop::sample::select(vec![3usize, 5]),
            stride in 1usize..3,
            tf_same in any::<bool>(),
            se_rd in prop::option::of(1usize..8),
            swish in any::<bool>(),
            skip in any::<bool>(),
            seed in 0u64..1000,
        ) {
            let padding = if tf_same { PaddingMode::TfSame } else { PaddingMode::Symmetric };
            let pw = |i, o| ConvDef::pointwise("p".into(), None, i, o, padding);
            let cexp = expand_to.unwrap_or(cin);
            let dw_def = ConvDef {
                name: "dw".into(),
                bn_name: None,
                in_ch: cexp,
                out_ch: cexp,
                kernel: k,
                stride,
                groups: cexp,
                padding,
            };
            let (t, b) = dw_def.pads(h);
            let (l, r) = dw_def.pads(w);
            prop_assume!(h + t + b >= k && w + l + r >= k);
            let (oh, ow) = (dw_def.out_size(h), dw_def.out_size(w));
            let skip = skip && cout == cin && (oh, ow) == (h, w);
            let expand = expand_to.map(|c| make_conv(pw(cin, c), seed));
            let dw = make_conv(dw_def, seed + 1);
            let se = se_rd.map(|rd| (make_conv(pw(cexp, rd), seed + 2), make_conv(pw(rd, cexp), seed + 3)));
            let project = make_conv(pw(cexp, cout), seed + 4);
            let blk = MbConvs {
                expand: expand.as_ref(),
                dw: &dw,
                se: se.as_ref().map(|(a, b)| (a, b)),
                project: &project,
                skip,
            };
            let act = if swish { Act::Swish } else { Act::Relu6 };
            let x = tensor(values(n * cin * h * w, seed + 7), [n, cin, h, w]);
            let want = mb_compose(x.clone(), &blk, act, conv_bias_act_ref, squeeze_excite_ref);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build();
            let pool = pool.map_err(|e| TestCaseError::fail(e.to_string()))?;
            // images over the threads (inside a worker) ...
            let nested = pool.install(|| mb_block_flex(x.clone(), &blk, act).ok());
            // ... and, from outside the pool, steps split over the threads when n is
            // below the thread count
            let outside = mb_block_flex(x, &blk, act).ok();
            let (Some(nested), Some(outside)) = (nested, outside) else {
                return Err(TestCaseError::fail("the channels-last kernel refused the block"));
            };
            assert_close(nested, want.clone())?;
            assert_close(outside, want)?;
        }
    }

    /// A shared input (its buffer referenced elsewhere) is not modified by the in-place SE.
    #[test]
    fn squeeze_excite_leaves_shared_input_alone() {
        let pw = |i, o| ConvDef::pointwise("p".into(), None, i, o, PaddingMode::Symmetric);
        let (reduce, expand) = (make_conv(pw(4, 2), 1), make_conv(pw(2, 4), 2));
        let y = tensor(values(2 * 4 * 5 * 5, 3), [2, 4, 5, 5]);
        let before = y.clone().into_data();
        let _ = <Flex as FusedOps>::squeeze_excite(y.clone(), &reduce, &expand, Act::Swish);
        assert_eq!(y.into_data(), before);
    }
}
