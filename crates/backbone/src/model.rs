//! Native burn implementation of the planned networks (generic over the backend).

use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::PaddedConvOptions;
use burn::tensor::{Tensor, TensorData};

use crate::spec::{Activation, BlockPlan, ConvDef, Plan, PlanKind};

/// Folded convolution weights (conv + batch norm), in a plan's forward order.
#[derive(Debug, Clone)]
pub(crate) struct ConvWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

struct Conv<B: Backend> {
    def: ConvDef,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
}

impl<B: Backend> Conv<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
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

fn act<B: Backend>(a: Activation, x: Tensor<B, 4>) -> Tensor<B, 4> {
    match a {
        Activation::Relu => relu(x),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Swish => silu(x),
    }
}

impl<B: Backend> Model<B> {
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
        let a = self.plan.activation;
        let c = |i: usize| &self.convs[i];
        let mut x = act(a, c(self.plan.stem).forward(x));
        let mut level = 0;
        if self.plan.kind == PlanKind::EfficientNet {
            if wanted[0] {
                out[0] = Some(x.clone());
            }
            if deepest == 0 {
                return out;
            }
            level = 1;
        } else {
            x = max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], false);
        }
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
                        let input = x.clone();
                        let mut y = match expand {
                            Some(e) => act(a, c(*e).forward(x)),
                            None => x,
                        };
                        y = act(a, c(*dw).forward(y));
                        if let Some((r, e)) = se {
                            let s = y.clone().mean_dim(2).mean_dim(3);
                            let s = act(a, c(*r).forward(s));
                            let g = sigmoid(c(*e).forward(s));
                            let shape = y.shape();
                            y = y * g.expand(shape);
                        }
                        y = c(*project).forward(y);
                        if *skip { y + input } else { y }
                    }
                    BlockPlan::Res { convs, down } => {
                        let input = x.clone();
                        let mut y = x;
                        let last = convs.len().saturating_sub(1);
                        for (k, &i) in convs.iter().enumerate() {
                            y = c(i).forward(y);
                            if k < last {
                                y = relu(y);
                            }
                        }
                        let id = match down {
                            Some(d) => c(*d).forward(input),
                            None => input,
                        };
                        relu(y + id)
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
            let y = act(a, c(h).forward(x));
            if wanted.get(level).copied().unwrap_or(false) {
                out[level] = Some(y);
            }
        }
        out
    }
}
