//! A small, dependency-free reader for the parts of an ONNX file the backbone needs:
//! the `Conv` nodes in graph order with their weights (from initializers or `Constant`
//! nodes), any `BatchNormalization` that directly follows a convolution folded into it.
//!
//! ONNX files are protobuf (`onnx.proto`, `ModelProto`). Only these fields are read:
//! `ModelProto.graph` (7); `GraphProto.node` (1), `initializer` (5);
//! `NodeProto.input` (1), `output` (2), `name` (3), `op_type` (4), `attribute` (5);
//! `AttributeProto.name` (1), `f` (2), `i` (3), `t` (5), `ints` (8);
//! `TensorProto.dims` (1), `data_type` (2), `float_data` (4), `name` (8), `raw_data` (9),
//! `double_data` (10), `data_location` (14).

use std::collections::HashMap;

/// One convolution of an ONNX graph, batch-norm folded, in graph order.
#[derive(Debug, Clone)]
pub(crate) struct OnnxConv {
    /// Node name (may be empty in the file).
    pub node_name: String,
    /// Name of the weight tensor.
    pub weight_name: String,
    /// `[out, in/groups, kh, kw]`.
    pub shape: [usize; 4],
    /// Weight values, row-major.
    pub weight: Vec<f32>,
    /// Bias (zeros when the conv has none and no batch norm follows).
    pub bias: Vec<f32>,
    /// Strides `[sh, sw]`.
    pub strides: [usize; 2],
    /// Pads `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Groups.
    pub group: usize,
}

/// A raw tensor read from the file.
#[derive(Debug, Clone, Default)]
struct RawTensor {
    name: String,
    dims: Vec<i64>,
    data_type: i32,
    float_data: Vec<f32>,
    double_data: Vec<f64>,
    raw: Vec<u8>,
    external: bool,
}

impl RawTensor {
    fn to_f32(&self) -> Result<Vec<f32>, String> {
        if self.external {
            return Err(format!(
                "tensor `{}` uses external data, which is not supported (re-save the model with all tensors inside the file)",
                self.name
            ));
        }
        let n: usize = self
            .dims
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product();
        let v: Vec<f32> = match self.data_type {
            1 => {
                if !self.raw.is_empty() {
                    self.raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                } else {
                    self.float_data.clone()
                }
            }
            11 => {
                if !self.raw.is_empty() {
                    self.raw
                        .chunks_exact(8)
                        .map(|c| {
                            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                                as f32
                        })
                        .collect()
                } else {
                    self.double_data.iter().map(|&x| x as f32).collect()
                }
            }
            t => {
                return Err(format!(
                    "tensor `{}` has ONNX data type {t}; only float32 (1) and float64 (11) weights are supported",
                    self.name
                ));
            }
        };
        if v.len() != n {
            return Err(format!(
                "tensor `{}` declares dims {:?} ({n} values) but holds {} values (truncated file?)",
                self.name,
                self.dims,
                v.len()
            ));
        }
        Ok(v)
    }
}

#[derive(Debug, Clone, Default)]
struct Attr {
    name: String,
    i: Option<i64>,
    f: Option<f32>,
    ints: Vec<i64>,
    t: Option<RawTensor>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    name: String,
    op_type: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<Attr>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
    fn ints(&self, name: &str) -> Option<&[i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }
}

/// Protobuf wire reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type PResult<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> PResult<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| "truncated protobuf (varint)".to_string())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("malformed protobuf varint".into())
    }
    fn bytes(&mut self, n: usize) -> PResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                "truncated protobuf (field runs past the end of the file)".to_string()
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    /// Reads a key; returns (field number, wire type).
    fn key(&mut self) -> PResult<(u64, u8)> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }
    fn len_delim(&mut self) -> PResult<&'a [u8]> {
        let n = usize::try_from(self.varint()?).map_err(|_| "protobuf length overflow")?;
        self.bytes(n)
    }
    fn skip(&mut self, wire: u8) -> PResult<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => {
                self.bytes(8)?;
            }
            2 => {
                self.len_delim()?;
            }
            5 => {
                self.bytes(4)?;
            }
            w => {
                return Err(format!(
                    "unsupported protobuf wire type {w} (not an ONNX file?)"
                ));
            }
        }
        Ok(())
    }
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Repeated int64: packed (wire 2) or one varint (wire 0).
fn push_ints(r: &mut Reader<'_>, wire: u8, out: &mut Vec<i64>) -> PResult<()> {
    if wire == 2 {
        let mut sub = Reader::new(r.len_delim()?);
        while !sub.done() {
            out.push(sub.varint()? as i64);
        }
    } else if wire == 0 {
        out.push(r.varint()? as i64);
    } else {
        r.skip(wire)?;
    }
    Ok(())
}

fn parse_tensor(buf: &[u8]) -> PResult<RawTensor> {
    let mut r = Reader::new(buf);
    let mut t = RawTensor::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, _) => push_ints(&mut r, wire, &mut t.dims)?,
            (2, 0) => t.data_type = r.varint()? as i32,
            (4, 2) => {
                let b = r.len_delim()?;
                t.float_data.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (4, 5) => {
                let c = r.bytes(4)?;
                t.float_data
                    .push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
            (8, 2) => t.name = string(r.len_delim()?),
            (9, 2) => t.raw = r.len_delim()?.to_vec(),
            (10, 2) => {
                let b = r.len_delim()?;
                t.double_data.extend(
                    b.chunks_exact(8).map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                    }),
                );
            }
            (10, 1) => {
                let c = r.bytes(8)?;
                t.double_data.push(f64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]));
            }
            (14, 0) => t.external = r.varint()? == 1,
            _ => r.skip(wire)?,
        }
    }
    Ok(t)
}

fn parse_attr(buf: &[u8]) -> PResult<Attr> {
    let mut r = Reader::new(buf);
    let mut a = Attr::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => a.name = string(r.len_delim()?),
            (2, 5) => {
                let c = r.bytes(4)?;
                a.f = Some(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
            (3, 0) => a.i = Some(r.varint()? as i64),
            (5, 2) => a.t = Some(parse_tensor(r.len_delim()?)?),
            (8, _) => push_ints(&mut r, wire, &mut a.ints)?,
            _ => r.skip(wire)?,
        }
    }
    Ok(a)
}

fn parse_node(buf: &[u8]) -> PResult<Node> {
    let mut r = Reader::new(buf);
    let mut n = Node::default();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => n.inputs.push(string(r.len_delim()?)),
            (2, 2) => n.outputs.push(string(r.len_delim()?)),
            (3, 2) => n.name = string(r.len_delim()?),
            (4, 2) => n.op_type = string(r.len_delim()?),
            (5, 2) => n.attrs.push(parse_attr(r.len_delim()?)?),
            _ => r.skip(wire)?,
        }
    }
    Ok(n)
}

fn parse_graph(buf: &[u8]) -> PResult<(Vec<Node>, Vec<RawTensor>)> {
    let mut r = Reader::new(buf);
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    while !r.done() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => nodes.push(parse_node(r.len_delim()?)?),
            (5, 2) => inits.push(parse_tensor(r.len_delim()?)?),
            _ => r.skip(wire)?,
        }
    }
    Ok((nodes, inits))
}

fn to_usize(v: i64, what: &str) -> PResult<usize> {
    usize::try_from(v).map_err(|_| format!("negative or invalid {what}: {v}"))
}

/// Parses a model: its nodes in graph order and its named constant tensors
/// (initializers, `Constant` nodes, `Identity` aliases of those).
fn parse_model(bytes: &[u8]) -> PResult<(Vec<Node>, HashMap<String, RawTensor>)> {
    let mut r = Reader::new(bytes);
    let mut graph = None;
    while !r.done() {
        let (field, wire) = r.key()?;
        if field == 7 && wire == 2 {
            graph = Some(r.len_delim()?);
        } else {
            r.skip(wire)?;
        }
    }
    let graph = graph.ok_or("no graph in the file (not an ONNX model?)")?;
    let (nodes, inits) = parse_graph(graph)?;

    // Named constant tensors: initializers, Constant nodes, Identity aliases.
    let mut consts: HashMap<String, RawTensor> = HashMap::new();
    for t in inits {
        consts.insert(t.name.clone(), t);
    }
    for n in &nodes {
        if n.op_type == "Constant" {
            if let (Some(out), Some(t)) =
                (n.outputs.first(), n.attr("value").and_then(|a| a.t.clone()))
            {
                consts.insert(out.clone(), t);
            }
        } else if n.op_type == "Identity"
            && let (Some(i), Some(o)) = (n.inputs.first(), n.outputs.first())
            && let Some(t) = consts.get(i).cloned()
        {
            consts.insert(o.clone(), t);
        }
    }
    Ok((nodes, consts))
}

/// Named constant tensors of a model.
type Consts = HashMap<String, RawTensor>;

/// Parses an ONNX model (the bytes of the file) once: every convolution in graph order,
/// batch norms folded, and the classifier (see [`classifier_of`]; its error is kept apart,
/// because a file without a usable classifier still gives features).
#[allow(clippy::type_complexity)]
pub(crate) fn read_onnx(
    bytes: &[u8],
) -> Result<(Vec<OnnxConv>, Result<Option<OnnxGemm>, String>), String> {
    let (nodes, consts) = parse_model(bytes)?;
    let convs = convs_of(&nodes, &consts)?;
    Ok((convs, classifier_of(&nodes, &consts)))
}

/// Every convolution of a parsed model, in graph order, batch norms folded.
fn convs_of(nodes: &[Node], consts: &Consts) -> Result<Vec<OnnxConv>, String> {
    // Consumers of each tensor name.
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (k, n) in nodes.iter().enumerate() {
        for i in &n.inputs {
            consumers.entry(i.as_str()).or_default().push(k);
        }
    }
    let get = |name: &str, node: &Node| -> PResult<Vec<f32>> {
        let t = consts.get(name).ok_or_else(|| {
            format!(
                "node `{}` ({}) reads `{name}`, which is not a constant/initializer (weights computed at run time are not supported)",
                node.name, node.op_type
            )
        })?;
        t.to_f32()
    };

    let mut convs = Vec::new();
    for n in nodes.iter().filter(|n| n.op_type == "Conv") {
        let wname = n
            .inputs
            .get(1)
            .ok_or_else(|| format!("Conv node `{}` has no weight input", n.name))?;
        let wt = consts.get(wname).ok_or_else(|| {
            format!(
                "Conv node `{}`: weight `{wname}` is not an initializer",
                n.name
            )
        })?;
        if wt.dims.len() != 4 {
            return Err(format!(
                "Conv node `{}`: weight `{wname}` has dims {:?}, expected a 4-D (2-D convolution) weight",
                n.name, wt.dims
            ));
        }
        let shape = [
            to_usize(wt.dims[0], "dim")?,
            to_usize(wt.dims[1], "dim")?,
            to_usize(wt.dims[2], "dim")?,
            to_usize(wt.dims[3], "dim")?,
        ];
        let mut weight = wt.to_f32()?;
        let out_ch = shape[0];
        let mut bias = match n.inputs.get(2).filter(|s| !s.is_empty()) {
            Some(b) => get(b, n)?,
            None => vec![0.0; out_ch],
        };
        if bias.len() != out_ch {
            return Err(format!(
                "Conv node `{}`: bias has {} values for {out_ch} output channels",
                n.name,
                bias.len()
            ));
        }
        let strides = match n.ints("strides") {
            Some([a, b]) => [to_usize(*a, "stride")?, to_usize(*b, "stride")?],
            Some(s) if !s.is_empty() => {
                return Err(format!("Conv node `{}`: strides {s:?} are not 2-D", n.name));
            }
            _ => [1, 1],
        };
        let pads = match n.ints("pads") {
            Some([a, b, c, d]) => [
                to_usize(*a, "pad")?,
                to_usize(*b, "pad")?,
                to_usize(*c, "pad")?,
                to_usize(*d, "pad")?,
            ],
            Some(s) if !s.is_empty() => {
                return Err(format!("Conv node `{}`: pads {s:?} are not 2-D", n.name));
            }
            _ => [0, 0, 0, 0],
        };
        if let Some(d) = n.ints("dilations")
            && d.iter().any(|&x| x != 1)
        {
            return Err(format!(
                "Conv node `{}`: dilations {d:?} are not supported",
                n.name
            ));
        }
        let group = match n.attr("group").and_then(|a| a.i) {
            Some(g) => to_usize(g, "group")?,
            None => 1,
        };
        // Fold a BatchNormalization that is the only consumer of this conv's output.
        if let Some(out) = n.outputs.first()
            && let Some(cons) = consumers.get(out.as_str())
            && let [only] = cons.as_slice()
        {
            let bn = &nodes[*only];
            if bn.op_type == "BatchNormalization" {
                let eps = bn.attr("epsilon").and_then(|a| a.f).unwrap_or(1e-5);
                let p = |k: usize| -> PResult<Vec<f32>> {
                    let name = bn.inputs.get(k).ok_or_else(|| {
                        format!("BatchNormalization `{}` lacks input {k}", bn.name)
                    })?;
                    let v = get(name, bn)?;
                    if v.len() != out_ch {
                        return Err(format!(
                            "BatchNormalization `{}`: `{name}` has {} values, expected {out_ch}",
                            bn.name,
                            v.len()
                        ));
                    }
                    Ok(v)
                };
                let (gamma, beta, mean, var) = (p(1)?, p(2)?, p(3)?, p(4)?);
                let per = weight.len() / out_ch.max(1);
                for o in 0..out_ch {
                    let s = f64::from(gamma[o]) / (f64::from(var[o]) + f64::from(eps)).sqrt();
                    for w in &mut weight[o * per..(o + 1) * per] {
                        *w = (f64::from(*w) * s) as f32;
                    }
                    bias[o] =
                        ((f64::from(bias[o]) - f64::from(mean[o])) * s + f64::from(beta[o])) as f32;
                }
            }
        }
        convs.push(OnnxConv {
            node_name: n.name.clone(),
            weight_name: wname.clone(),
            shape,
            weight,
            bias,
            strides,
            pads,
            group,
        });
    }
    Ok(convs)
}

/// The final fully connected layer of an ONNX classifier (the last `Gemm` node).
#[derive(Debug, Clone)]
pub(crate) struct OnnxGemm {
    /// Node name (may be empty in the file).
    pub node_name: String,
    /// Name of the weight tensor.
    pub weight_name: String,
    /// Output features (classes).
    pub out_features: usize,
    /// Input features (channels).
    pub in_features: usize,
    /// Weight `[out_features, in_features]`, row-major, `alpha` applied.
    pub weight: Vec<f32>,
    /// Bias `[out_features]`, `beta` applied (zeros when the node has none).
    pub bias: Vec<f32>,
}

/// The classifier of a parsed model: the LAST `Gemm` node in graph order, with a
/// constant weight `[out, in]` (`transB = 1`, as `torch.nn.Linear` exports) or
/// `[in, out]` (`transB = 0`), `transA = 0`, and an optional constant bias of `out`
/// values (or `[1, out]`). `alpha` / `beta` are applied. `Ok(None)` when the graph has no
/// `Gemm` (a features-only export).
fn classifier_of(nodes: &[Node], consts: &Consts) -> Result<Option<OnnxGemm>, String> {
    let Some(n) = nodes.iter().rev().find(|n| n.op_type == "Gemm") else {
        return Ok(None);
    };
    let int_attr = |name: &str| n.attr(name).and_then(|a| a.i).unwrap_or(0);
    let float_attr = |name: &str| n.attr(name).and_then(|a| a.f).unwrap_or(1.0);
    if int_attr("transA") != 0 {
        return Err(format!(
            "Gemm node `{}` has transA = 1; a classifier's input is never transposed",
            n.name
        ));
    }
    let trans_b = int_attr("transB") != 0;
    let (alpha, beta) = (float_attr("alpha"), float_attr("beta"));
    let wname = n
        .inputs
        .get(1)
        .ok_or_else(|| format!("Gemm node `{}` has no weight input", n.name))?;
    let wt = consts.get(wname).ok_or_else(|| {
        format!(
            "Gemm node `{}`: weight `{wname}` is not an initializer or constant",
            n.name
        )
    })?;
    let (d0, d1) = match wt.dims.as_slice() {
        [a, b] => (to_usize(*a, "dim")?, to_usize(*b, "dim")?),
        d => {
            return Err(format!(
                "Gemm node `{}`: weight `{wname}` has dims {d:?}, expected 2-D",
                n.name
            ));
        }
    };
    let raw = wt.to_f32()?;
    let (out_features, in_features) = if trans_b { (d0, d1) } else { (d1, d0) };
    let mut weight = vec![0.0f32; raw.len()];
    for o in 0..out_features {
        for i in 0..in_features {
            let src = if trans_b {
                o * in_features + i
            } else {
                i * out_features + o
            };
            weight[o * in_features + i] = raw[src] * alpha;
        }
    }
    let bias = match n.inputs.get(2).filter(|s| !s.is_empty()) {
        None => vec![0.0; out_features],
        Some(bname) => {
            let bt = consts.get(bname).ok_or_else(|| {
                format!(
                    "Gemm node `{}`: bias `{bname}` is not an initializer or constant",
                    n.name
                )
            })?;
            let b = bt.to_f32()?;
            if b.len() != out_features {
                return Err(format!(
                    "Gemm node `{}`: bias `{bname}` has {} values for {out_features} outputs (broadcast biases are not supported)",
                    n.name,
                    b.len()
                ));
            }
            b.into_iter().map(|v| v * beta).collect()
        }
    };
    Ok(Some(OnnxGemm {
        node_name: n.name.clone(),
        weight_name: wname.clone(),
        out_features,
        in_features,
        weight,
        bias,
    }))
}
