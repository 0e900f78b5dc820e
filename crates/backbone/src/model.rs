//! Native burn implementation of the planned networks (generic over the backend).

use std::sync::OnceLock;

use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{Tensor, TensorData};

use crate::cpu::Act;
use crate::fused::{FusedOps, MbConvs};
use crate::spec::{BlockPlan, ConvDef, Plan, PlanKind};

/// Folded convolution weights (conv + batch norm), in a plan's forward order.
#[derive(Debug, Clone)]
pub(crate) struct ConvWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// One convolution with its folded weights.
pub(crate) struct Conv<B: Backend> {
    pub def: ConvDef,
    pub weight: Tensor<B, 4>,
    pub bias: Tensor<B, 1>,
    /// The weight matrix (`out x in*k*k`) transposed, built on first use by the CPU
    /// kernels that read weights that way (1x1 convolutions and depthwise taps of the
    /// channels-last MBConv kernel); unused elsewhere.
    pub weight_t: OnceLock<Vec<f32>>,
}

impl<B: Backend> Conv<B> {
    /// `conv(x) + bias` with burn's `conv2d` (the reference path).
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, h, w] = x.dims();
        let (top, bottom) = self.def.pads(h);
        let (left, right) = self.def.pads(w);
        let s = self.def.stride;
        let opts = PaddedConvOptions::asymmetric(
            [s, s],
            [top, left],
            [bottom, right],
            [1, 1],
            self.def.groups,
        );
        conv2d(x, self.weight.clone(), Some(self.bias.clone()), opts)
    }
}

/// A network ready to run.
pub(crate) struct Model<B: Backend> {
    plan: Plan,
    convs: Vec<Conv<B>>,
}

impl<B: FusedOps> Model<B> {
    /// Builds the model; `weights` must follow `plan.convs` (shapes already checked).
    pub fn new(plan: Plan, weights: Vec<ConvWeights>, device: &B::Device) -> Self {
        let convs = plan
            .convs
            .iter()
            .zip(weights)
            .map(|(def, w)| {
                let shape = def.weight_shape();
                let n = shape[0];
                Conv {
                    def: def.clone(),
                    weight: Tensor::from_data(TensorData::new(w.weight, shape), device),
                    bias: Tensor::from_data(TensorData::new(w.bias, [n]), device),
                    weight_t: OnceLock::new(),
                }
            })
            .collect();
        Self { plan, convs }
    }

    /// Runs the network up to the deepest wanted level; returns the outputs of the
    /// wanted levels (index = level; `None` for levels not wanted).
    pub fn forward(&self, x: Tensor<B, 4>, wanted: &[bool]) -> Vec<Option<Tensor<B, 4>>> {
        let deepest = wanted.iter().rposition(|&w| w).unwrap_or(0);
        let mut out: Vec<Option<Tensor<B, 4>>> = vec![None; wanted.len()];
        let a = Act::from(self.plan.activation);
        let c = |i: usize| &self.convs[i];
        let conv = |i: usize, x: Tensor<B, 4>, act: Act, res: Option<Tensor<B, 4>>| {
            B::conv_bias_act(x, c(i), act, res)
        };
        let mut x = conv(self.plan.stem, x, a, None);
        if self.plan.kind == PlanKind::ResNet {
            x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        // Level 0: the stem (ResNets: after its max-pool).
        if wanted[0] {
            out[0] = Some(x.clone());
        }
        if deepest == 0 {
            return out;
        }
        let mut level = 1;
        for stage in &self.plan.stages {
            for b in stage {
                x = match b {
                    BlockPlan::Mb {
                        expand,
                        dw,
                        se,
                        project,
                        skip,
                    } => {
                        let blk = MbConvs {
                            expand: expand.map(c),
                            dw: c(*dw),
                            se: se.map(|(r, e)| (c(r), c(e))),
                            project: c(*project),
                            skip: *skip,
                        };
                        B::mb_block(x, &blk, a)
                    }
                    BlockPlan::Res { convs, down } => {
                        let id = match down {
                            Some(d) => conv(*d, x.clone(), Act::Identity, None),
                            None => x.clone(),
                        };
                        let mut y = x;
                        let mut id = Some(id);
                        let last = convs.len().saturating_sub(1);
                        for (k, &i) in convs.iter().enumerate() {
                            let res = if k == last { id.take() } else { None };
                            y = conv(i, y, Act::Relu, res);
                        }
                        y
                    }
                };
            }
            if wanted[level] {
                out[level] = Some(x.clone());
            }
            if level >= deepest {
                return out;
            }
            level += 1;
        }
        if let Some(h) = self.plan.head {
            let y = conv(h, x, a, None);
            if wanted.get(level).copied().unwrap_or(false) {
                out[level] = Some(y);
            }
        }
        out
    }
}
