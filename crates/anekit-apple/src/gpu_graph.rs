//! Planning a MIL function for MPSGraph: which ops of our IR the GPU path runs and how.
//!
//! [`plan_function`] walks a function's block and turns each op into a [`GraphNode`] of a
//! small vocabulary that maps one-to-one onto MPSGraph calls: matrix products (`matmul`,
//! `linear`), 2-D convolutions (`conv`), elementwise binary and unary ops, `softmax`, and
//! `const` values. Anything else is refused with the op's name and type, so the caller knows
//! before touching the GPU. The plan is plain data, tested on any OS; `metal::GraphRunner`
//! (Apple platforms) builds and runs the MPSGraph from it.

use std::collections::{BTreeMap, HashMap};

use anekit_mil::program::{Binding, Function, Operation};
use anekit_mil::types::{DataType, ValueType};
use anekit_mil::value::Value;
use serde::Serialize;

/// An elementwise binary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinaryOp {
    /// `add`.
    Add,
    /// `sub`.
    Sub,
    /// `mul`.
    Mul,
    /// `real_div`.
    Div,
    /// `maximum`.
    Maximum,
    /// `minimum`.
    Minimum,
}

/// An elementwise unary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    /// `relu`.
    Relu,
    /// `sigmoid`.
    Sigmoid,
    /// `tanh`.
    Tanh,
    /// `exp`.
    Exp,
    /// `sqrt`.
    Sqrt,
    /// `abs`.
    Abs,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum GraphOp {
    /// `x @ y` with optional transposes of the last two axes.
    MatMul {
        /// Transpose `x`.
        transpose_x: bool,
        /// Transpose `y`.
        transpose_y: bool,
    },
    /// `x @ weightᵀ + bias` (inputs: x, weight `[out, in]`, optional bias `[out]`).
    Linear,
    /// 2-D convolution, NCHW input, OIHW weight (inputs: x, weight, optional bias `[C_out]`).
    Conv2d {
        /// Strides `[h, w]`.
        strides: [usize; 2],
        /// Dilations `[h, w]`.
        dilations: [usize; 2],
        /// Explicit padding `[top, bottom, left, right]` (when not `same`).
        pad: [usize; 4],
        /// `pad_type = same` (TensorFlow SAME).
        same: bool,
        /// Groups.
        groups: usize,
    },
    /// Elementwise binary op with broadcasting.
    Binary(BinaryOp),
    /// Elementwise unary op.
    Unary(UnaryOp),
    /// Softmax along `axis`.
    Softmax {
        /// The axis (negative counts from the end).
        axis: i64,
    },
}

/// A constant operand.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstTensor {
    /// Element type (`fp32`, `fp16` or `int32`).
    pub dtype: DataType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major element bytes (little-endian).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// An operand of a node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Operand {
    /// A function input, by index in [`GraphPlan::inputs`].
    Input(usize),
    /// The output of an earlier node, by index in [`GraphPlan::nodes`].
    Node(usize),
    /// A constant.
    Const(ConstTensor),
}

/// One node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    /// The op's name in the program.
    pub name: String,
    /// What it computes.
    pub op: GraphOp,
    /// Operands, in the order [`GraphOp`] documents.
    pub operands: Vec<Operand>,
    /// The output variable.
    pub output: String,
    /// The output's element type, inferred and checked before any graph is built.
    pub dtype: DataType,
    /// The output's shape, inferred and checked before any graph is built.
    pub shape: Vec<usize>,
}

/// NumPy broadcasting of two shapes (MPSGraph's elementwise ops broadcast the same way).
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let x = if i < n - a.len() {
            1
        } else {
            a[i - (n - a.len())]
        };
        let y = if i < n - b.len() {
            1
        } else {
            b[i - (n - b.len())]
        };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

fn is_float(t: DataType) -> bool {
    matches!(t, DataType::Fp32 | DataType::Fp16)
}

/// The output type and shape of `op` over operands of `types` (each an element type and a
/// shape), or why MPSGraph would refuse it. MPSGraph reports a shape mismatch by an
/// assertion that aborts the process, not by an error, so every node is checked here, before
/// a graph is built: operand counts, element types (floating point where the op computes;
/// one type per node), ranks, matrix inner dimensions, broadcasting, convolution channels,
/// groups and output size, softmax axes.
pub fn infer(
    op: &GraphOp,
    types: &[(DataType, Vec<usize>)],
) -> Result<(DataType, Vec<usize>), String> {
    let need = |n: usize, m: usize| -> Result<(), String> {
        if types.len() < n || types.len() > m {
            Err(format!("{} operands, {n} to {m} expected", types.len()))
        } else {
            Ok(())
        }
    };
    let dtype = types.first().map(|t| t.0).ok_or("no operand")?;
    if let Some((t, _)) = types.iter().find(|(t, _)| *t != dtype) {
        return Err(format!(
            "operands of types {dtype} and {t}: one type per op on the GPU path"
        ));
    }
    let float = |what: &str| -> Result<(), String> {
        if is_float(dtype) {
            Ok(())
        } else {
            Err(format!("{what} takes fp16 or fp32, not {dtype}"))
        }
    };
    match op {
        GraphOp::Binary(_) => {
            need(2, 2)?;
            let s = broadcast(&types[0].1, &types[1].1).ok_or_else(|| {
                format!(
                    "shapes {:?} and {:?} do not broadcast",
                    types[0].1, types[1].1
                )
            })?;
            Ok((dtype, s))
        }
        GraphOp::Unary(_) => {
            need(1, 1)?;
            float("this op")?;
            Ok((dtype, types[0].1.clone()))
        }
        GraphOp::Softmax { axis } => {
            need(1, 1)?;
            float("softmax")?;
            let r = types[0].1.len() as i64;
            if r == 0 || *axis < -r || *axis >= r {
                return Err(format!("axis {axis} is outside rank {r}"));
            }
            Ok((dtype, types[0].1.clone()))
        }
        GraphOp::MatMul {
            transpose_x,
            transpose_y,
        } => {
            need(2, 2)?;
            float("matmul")?;
            let (a, b) = (&types[0].1, &types[1].1);
            if a.len() < 2 || b.len() < 2 {
                return Err(format!(
                    "matmul of {a:?} and {b:?}: both need rank ≥ 2 on the GPU path"
                ));
            }
            let t = |s: &[usize], tr: bool| {
                let mut s = s.to_vec();
                let r = s.len();
                if tr {
                    s.swap(r - 2, r - 1);
                }
                s
            };
            let (a, b) = (t(a, *transpose_x), t(b, *transpose_y));
            let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
            let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
            if k != k2 {
                return Err(format!("matmul inner dimensions differ: {k} and {k2}"));
            }
            let mut batch = broadcast(&a[..a.len() - 2], &b[..b.len() - 2])
                .ok_or("matmul batch dimensions do not broadcast")?;
            batch.extend([m, n]);
            Ok((dtype, batch))
        }
        GraphOp::Linear => {
            need(2, 3)?;
            float("linear")?;
            let (x, w) = (&types[0].1, &types[1].1);
            let (Some(&inner), [out, win]) = (x.last(), w.as_slice()) else {
                return Err(format!(
                    "linear of {x:?} with weight {w:?}: weight must be [out, in]"
                ));
            };
            if inner != *win {
                return Err(format!(
                    "linear input has {inner} features, weight takes {win}"
                ));
            }
            if let Some((_, b)) = types.get(2)
                && b.as_slice() != [*out]
            {
                return Err(format!("linear bias {b:?} for {out} outputs"));
            }
            let mut s = x.clone();
            if let Some(last) = s.last_mut() {
                *last = *out;
            }
            Ok((dtype, s))
        }
        GraphOp::Conv2d {
            strides,
            dilations,
            pad,
            same,
            groups,
        } => {
            need(2, 3)?;
            float("conv")?;
            let (x, w) = (&types[0].1, &types[1].1);
            let ([n, c, h, wd], [o, ci, kh, kw]) = (x.as_slice(), w.as_slice()) else {
                return Err(format!(
                    "conv of {x:?} with weight {w:?}: NCHW input and OIHW weight"
                ));
            };
            if *groups == 0 || c % groups != 0 || o % groups != 0 || c / groups != *ci {
                return Err(format!(
                    "conv with {c} input channels, {o} outputs, {groups} groups and a weight of {ci} input channels"
                ));
            }
            if strides.contains(&0) || dilations.contains(&0) || [*kh, *kw].contains(&0) {
                return Err("conv strides, dilations and kernel sizes must be positive".into());
            }
            if let Some((_, b)) = types.get(2)
                && b.as_slice() != [*o]
            {
                return Err(format!("conv bias {b:?} for {o} output channels"));
            }
            let out = |size: usize,
                       k: usize,
                       s: usize,
                       d: usize,
                       p0: usize,
                       p1: usize|
             -> Option<usize> {
                if *same {
                    return Some(size.div_ceil(s));
                }
                let eff = d.checked_mul(k - 1)?.checked_add(1)?;
                let padded = size.checked_add(p0)?.checked_add(p1)?;
                padded.checked_sub(eff).map(|r| r / s + 1)
            };
            let oh = out(*h, *kh, strides[0], dilations[0], pad[0], pad[1]);
            let ow = out(*wd, *kw, strides[1], dilations[1], pad[2], pad[3]);
            match (oh, ow) {
                (Some(oh), Some(ow)) if oh > 0 && ow > 0 => Ok((dtype, vec![*n, *o, oh, ow])),
                _ => Err(format!(
                    "the {kh}x{kw} kernel does not fit the {h}x{wd} input"
                )),
            }
        }
    }
}

/// A function input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphInput {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DataType,
    /// Shape (fixed).
    pub shape: Vec<usize>,
}

/// A function planned for MPSGraph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphPlan {
    /// Inputs (placeholders).
    pub inputs: Vec<GraphInput>,
    /// Nodes in execution order.
    pub nodes: Vec<GraphNode>,
    /// Outputs: (name, node index).
    pub outputs: Vec<(String, usize)>,
}

/// Why a function cannot run on the MPSGraph path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("op {op:?} ({op_type}): {reason}")]
pub struct Unsupported {
    /// The op's name.
    pub op: String,
    /// Its type.
    pub op_type: String,
    /// Why.
    pub reason: String,
}

fn unsupported(op: &Operation, reason: impl Into<String>) -> Unsupported {
    Unsupported {
        op: op.display_name().to_string(),
        op_type: op.op_type.clone(),
        reason: reason.into(),
    }
}

/// What a registry op type becomes on the MPSGraph path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuKind {
    /// A constant operand (`const`).
    Const,
    /// [`GraphOp::MatMul`].
    MatMul,
    /// [`GraphOp::Linear`].
    Linear,
    /// [`GraphOp::Conv2d`] (rank-4 inputs only).
    Conv2d,
    /// [`GraphOp::Binary`].
    Binary(BinaryOp),
    /// [`GraphOp::Unary`].
    Unary(UnaryOp),
    /// [`GraphOp::Softmax`].
    Softmax,
}

/// The MPSGraph path's vocabulary, keyed by registry op names: every op type it runs and
/// what it becomes. Any other op type is refused with its name before the GPU is touched
/// (so a registry op missing here is never run wrongly, only not on this path); a test
/// checks that every entry names a registry op, once.
pub const GPU_OPS: &[(&str, GpuKind)] = &[
    ("const", GpuKind::Const),
    ("matmul", GpuKind::MatMul),
    ("linear", GpuKind::Linear),
    ("conv", GpuKind::Conv2d),
    ("add", GpuKind::Binary(BinaryOp::Add)),
    ("sub", GpuKind::Binary(BinaryOp::Sub)),
    ("mul", GpuKind::Binary(BinaryOp::Mul)),
    ("real_div", GpuKind::Binary(BinaryOp::Div)),
    ("maximum", GpuKind::Binary(BinaryOp::Maximum)),
    ("minimum", GpuKind::Binary(BinaryOp::Minimum)),
    ("relu", GpuKind::Unary(UnaryOp::Relu)),
    ("sigmoid", GpuKind::Unary(UnaryOp::Sigmoid)),
    ("tanh", GpuKind::Unary(UnaryOp::Tanh)),
    ("exp", GpuKind::Unary(UnaryOp::Exp)),
    ("sqrt", GpuKind::Unary(UnaryOp::Sqrt)),
    ("abs", GpuKind::Unary(UnaryOp::Abs)),
    ("softmax", GpuKind::Softmax),
];

/// What `op_type` becomes on the MPSGraph path, if it runs there.
pub fn gpu_kind(op_type: &str) -> Option<GpuKind> {
    GPU_OPS
        .iter()
        .find(|(op, _)| *op == op_type)
        .map(|(_, k)| *k)
}

/// The `MPSGraph` column of `docs/op-coverage.md`: `yes` for the keys of [`GPU_OPS`].
pub fn coverage_column() -> anekit_mil::ops::CoverageColumn {
    anekit_mil::ops::CoverageColumn {
        header: "MPSGraph".into(),
        legend: "**yes** when anekit's own GPU path (`anekit_apple::gpu_graph::GPU_OPS`, \
                 MPSGraph on a Mac) runs the op type; this is not Core ML's GPU placement, which \
                 the Neural Engine column's **no** leaves to Core ML."
            .into(),
        cells: supported_ops()
            .map(|op| (op.to_string(), "yes".to_string()))
            .collect(),
    }
}

/// The op types the MPSGraph path runs (the keys of [`GPU_OPS`]).
pub fn supported_ops() -> impl Iterator<Item = &'static str> {
    GPU_OPS.iter().map(|(op, _)| *op)
}

fn const_tensor(v: &Value) -> Option<ConstTensor> {
    let tt = v.tensor_type()?;
    let shape: Vec<usize> = tt
        .fixed_shape()?
        .into_iter()
        .map(|d| usize::try_from(d).ok())
        .collect::<Option<_>>()?;
    let (dtype, bytes) = match tt.dtype {
        DataType::Fp32 | DataType::Fp16 | DataType::Int32 => (tt.dtype, v.bytes()?.to_vec()),
        // Small integer vectors (shapes, axes) are widened to int32; others are refused.
        _ => {
            let ints = v.to_i64_vec()?;
            let b: Vec<u8> = ints
                .iter()
                .flat_map(|&i| i32::try_from(i).unwrap_or(i32::MAX).to_le_bytes())
                .collect();
            (DataType::Int32, b)
        }
    };
    let elem = match dtype {
        DataType::Fp16 => 2,
        _ => 4,
    };
    (bytes.len() == shape.iter().product::<usize>() * elem).then_some(ConstTensor {
        dtype,
        shape,
        bytes,
    })
}

fn pair(v: Option<&Value>, default: usize) -> Option<[usize; 2]> {
    match v {
        None => Some([default, default]),
        Some(v) => {
            let x = v.to_i64_vec()?;
            match x.as_slice() {
                [a, b] => Some([usize::try_from(*a).ok()?, usize::try_from(*b).ok()?]),
                _ => None,
            }
        }
    }
}

/// Plans `f` (its main block) for MPSGraph, or says which op cannot run there.
pub fn plan_function(f: &Function) -> Result<GraphPlan, Unsupported> {
    let block = f.block().ok_or_else(|| Unsupported {
        op: "<function>".into(),
        op_type: String::new(),
        reason: "the function has no block".into(),
    })?;
    let mut inputs = Vec::new();
    let mut names: HashMap<String, Operand> = HashMap::new();
    for (i, inp) in f.inputs.iter().enumerate() {
        let bad = |reason: &str| Unsupported {
            op: inp.name.clone(),
            op_type: "input".into(),
            reason: reason.into(),
        };
        let ValueType::Tensor(t) = &inp.ty else {
            return Err(bad("only tensor inputs run on the GPU path"));
        };
        if !matches!(t.dtype, DataType::Fp32 | DataType::Fp16 | DataType::Int32) {
            return Err(bad("only fp32, fp16 and int32 inputs run on the GPU path"));
        }
        let shape = t
            .fixed_shape()
            .ok_or_else(|| bad("flexible shapes do not run on the GPU path"))?
            .into_iter()
            .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        inputs.push(GraphInput {
            name: inp.name.clone(),
            dtype: t.dtype,
            shape,
        });
        names.insert(inp.name.clone(), Operand::Input(i));
    }
    let mut nodes: Vec<GraphNode> = Vec::new();
    for op in &block.operations {
        let Some(kind) = gpu_kind(&op.op_type) else {
            return Err(unsupported(
                op,
                format!(
                    "{} is not on the GPU path (it runs {})",
                    op.op_type,
                    supported_ops().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if kind == GpuKind::Const {
            let v = op
                .literal("val")
                .ok_or_else(|| unsupported(op, "const without a value"))?;
            let c = const_tensor(v)
                .ok_or_else(|| unsupported(op, "constant of a type the GPU path cannot hold"))?;
            let out = op
                .outputs
                .first()
                .ok_or_else(|| unsupported(op, "no output"))?;
            names.insert(out.name.clone(), Operand::Const(c));
            continue;
        }
        let operand = |param: &str| -> Result<Option<Operand>, Unsupported> {
            match op.input(param) {
                None => Ok(None),
                Some(Binding::Name(n)) => names
                    .get(n)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| unsupported(op, format!("unknown variable {n:?}"))),
                Some(Binding::Value(v)) => const_tensor(v)
                    .map(|c| Some(Operand::Const(c)))
                    .ok_or_else(|| {
                        unsupported(op, format!("literal {param} of an unsupported type"))
                    }),
            }
        };
        let required = |param: &str| -> Result<Operand, Unsupported> {
            operand(param)?.ok_or_else(|| unsupported(op, format!("missing {param}")))
        };
        // A literal parameter (bool, int list, string), from an inline value or a const op.
        let literal = |param: &str| -> Option<Value> {
            match op.input(param)? {
                Binding::Value(v) => Some(v.clone()),
                Binding::Name(n) => block
                    .operations
                    .iter()
                    .find(|o| o.op_type == "const" && o.outputs.iter().any(|x| &x.name == n))
                    .and_then(|o| o.literal("val").cloned()),
            }
        };
        let (graph_op, operands) = match kind {
            GpuKind::MatMul => (
                GraphOp::MatMul {
                    transpose_x: literal("transpose_x")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                    transpose_y: literal("transpose_y")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                },
                vec![required("x")?, required("y")?],
            ),
            GpuKind::Linear => {
                let mut v = vec![required("x")?, required("weight")?];
                v.extend(operand("bias")?);
                (GraphOp::Linear, v)
            }
            GpuKind::Conv2d => {
                let rank = f
                    .inputs
                    .iter()
                    .chain(block.operations.iter().flat_map(|o| o.outputs.iter()))
                    .find(|n| matches!(op.input("x"), Some(Binding::Name(x)) if *x == n.name))
                    .and_then(|n| n.ty.as_tensor())
                    .and_then(|t| t.shape.as_ref().map(Vec::len));
                if rank.is_some_and(|r| r != 4) {
                    return Err(unsupported(
                        op,
                        "only 2-D convolutions (rank-4 input) run on the GPU path",
                    ));
                }
                let pad_type = literal("pad_type")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "valid".into());
                let pad = match pad_type.as_str() {
                    "custom" => {
                        let p = literal("pad")
                            .and_then(|v| v.to_i64_vec())
                            .ok_or_else(|| unsupported(op, "custom padding without pad"))?;
                        match p.as_slice() {
                            [t, b, l, r] => {
                                [*t, *b, *l, *r].map(|x| usize::try_from(x).unwrap_or(0))
                            }
                            _ => return Err(unsupported(op, "pad must have 4 values")),
                        }
                    }
                    "valid" | "same" => [0; 4],
                    other => {
                        return Err(unsupported(
                            op,
                            format!("pad_type {other} is not supported"),
                        ));
                    }
                };
                let strides = pair(literal("strides").as_ref(), 1)
                    .ok_or_else(|| unsupported(op, "strides must be two positive integers"))?;
                let dilations = pair(literal("dilations").as_ref(), 1)
                    .ok_or_else(|| unsupported(op, "dilations must be two positive integers"))?;
                let groups = literal("groups")
                    .and_then(|v| v.as_i64())
                    .map_or(Ok(1), |g| {
                        usize::try_from(g).map_err(|_| unsupported(op, "bad groups"))
                    })?;
                let mut v = vec![required("x")?, required("weight")?];
                v.extend(operand("bias")?);
                (
                    GraphOp::Conv2d {
                        strides,
                        dilations,
                        pad,
                        same: pad_type == "same",
                        groups: groups.max(1),
                    },
                    v,
                )
            }
            GpuKind::Binary(b) => (GraphOp::Binary(b), vec![required("x")?, required("y")?]),
            GpuKind::Unary(u) => (GraphOp::Unary(u), vec![required("x")?]),
            GpuKind::Softmax => (
                GraphOp::Softmax {
                    axis: literal("axis").and_then(|v| v.as_i64()).unwrap_or(-1),
                },
                vec![required("x")?],
            ),
            // Handled before the match: a constant is an operand, not a node.
            GpuKind::Const => continue,
        };
        let out = op
            .outputs
            .first()
            .ok_or_else(|| unsupported(op, "no output"))?;
        if op.outputs.len() != 1 {
            return Err(unsupported(
                op,
                "ops with several outputs are not on the GPU path",
            ));
        }
        let types: Vec<(DataType, Vec<usize>)> = operands
            .iter()
            .map(|o| match o {
                Operand::Input(i) => (inputs[*i].dtype, inputs[*i].shape.clone()),
                Operand::Node(i) => (nodes[*i].dtype, nodes[*i].shape.clone()),
                Operand::Const(c) => (c.dtype, c.shape.clone()),
            })
            .collect();
        let (dtype, shape) = infer(&graph_op, &types).map_err(|e| unsupported(op, e))?;
        // The program's own declaration must agree (a disagreement would be a wrong graph).
        if let Some(declared) = out.ty.as_tensor().and_then(|t| t.fixed_shape()) {
            let declared: Vec<usize> = declared
                .into_iter()
                .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
                .collect();
            if declared != shape {
                return Err(unsupported(
                    op,
                    format!("declared shape {declared:?}, but the GPU op computes {shape:?}"),
                ));
            }
        }
        names.insert(out.name.clone(), Operand::Node(nodes.len()));
        nodes.push(GraphNode {
            name: op.display_name().to_string(),
            op: graph_op,
            operands,
            output: out.name.clone(),
            dtype,
            shape,
        });
    }
    let mut outputs = Vec::new();
    for o in &block.outputs {
        match names.get(o) {
            Some(Operand::Node(i)) => outputs.push((o.clone(), *i)),
            _ => {
                return Err(Unsupported {
                    op: o.clone(),
                    op_type: "output".into(),
                    reason: "outputs must be computed by a GPU op (not an input or a constant)"
                        .into(),
                });
            }
        }
    }
    Ok(GraphPlan {
        inputs,
        nodes,
        outputs,
    })
}

/// Op counts of a plan by kind (for reports).
pub fn op_summary(plan: &GraphPlan) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in &plan.nodes {
        let k = match &n.op {
            GraphOp::MatMul { .. } => "matmul".to_string(),
            GraphOp::Linear => "linear".into(),
            GraphOp::Conv2d { .. } => "conv".into(),
            GraphOp::Binary(b) => format!("{b:?}").to_lowercase(),
            GraphOp::Unary(u) => format!("{u:?}").to_lowercase(),
            GraphOp::Softmax { .. } => "softmax".into(),
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(text: &str) -> anekit_mil::program::Program {
        anekit_mil::text::parse_without_weights(text, "<test>").expect("parses")
    }

    #[test]
    fn the_gpu_vocabulary_names_registry_ops_once() {
        let a = anekit_mil::ops::audit("anekit_apple::gpu_graph::GPU_OPS", super::supported_ops());
        assert!(a.names_registry_ops(), "{a}");
        assert_eq!(super::gpu_kind("frobnicate"), None);
    }

    #[test]
    fn shapes_and_types_are_checked_before_any_graph_is_built() {
        let f32s = |s: &[usize]| (DataType::Fp32, s.to_vec());
        let mm = GraphOp::MatMul {
            transpose_x: false,
            transpose_y: true,
        };
        assert_eq!(
            infer(&mm, &[f32s(&[2, 4, 3]), f32s(&[5, 3])]).unwrap().1,
            [2, 4, 5]
        );
        assert!(
            infer(&mm, &[f32s(&[4, 3]), f32s(&[5, 4])])
                .unwrap_err()
                .contains("inner dimensions differ")
        );
        assert!(
            infer(
                &GraphOp::Binary(BinaryOp::Add),
                &[f32s(&[2, 3]), f32s(&[4, 3])]
            )
            .unwrap_err()
            .contains("do not broadcast")
        );
        assert_eq!(
            infer(
                &GraphOp::Binary(BinaryOp::Mul),
                &[f32s(&[2, 1, 3]), f32s(&[4, 1])]
            )
            .unwrap()
            .1,
            [2, 4, 3]
        );
        assert!(
            infer(
                &GraphOp::Binary(BinaryOp::Add),
                &[f32s(&[2]), (DataType::Fp16, vec![2])]
            )
            .unwrap_err()
            .contains("one type per op")
        );
        assert!(
            infer(&GraphOp::Unary(UnaryOp::Exp), &[(DataType::Int32, vec![2])])
                .unwrap_err()
                .contains("fp16 or fp32")
        );
        assert!(
            infer(&GraphOp::Softmax { axis: 2 }, &[f32s(&[2, 3])])
                .unwrap_err()
                .contains("outside rank")
        );
        let conv = |groups| GraphOp::Conv2d {
            strides: [2, 2],
            dilations: [1, 1],
            pad: [1, 1, 1, 1],
            same: false,
            groups,
        };
        assert_eq!(
            infer(
                &conv(1),
                &[f32s(&[1, 4, 7, 7]), f32s(&[8, 4, 3, 3]), f32s(&[8])]
            )
            .unwrap()
            .1,
            [1, 8, 4, 4]
        );
        assert!(
            infer(&conv(2), &[f32s(&[1, 4, 7, 7]), f32s(&[8, 4, 3, 3])])
                .unwrap_err()
                .contains("groups")
        );
        assert!(
            infer(&conv(1), &[f32s(&[1, 4, 2, 2]), f32s(&[8, 4, 5, 5])])
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(
            infer(&GraphOp::Linear, &[f32s(&[2, 3]), f32s(&[4, 5])])
                .unwrap_err()
                .contains("features")
        );
        // A program whose declared shape disagrees with what the op computes is refused.
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [4, 3]> a, tensor<fp32, [3, 5]> b) {
            tensor<fp32, [4, 6]> m = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string("m")];
        } -> (m);
}
"#,
        );
        let e = plan_function(&p.functions["main"]).unwrap_err();
        assert!(e.reason.contains("declared shape [4, 6]"), "{e}");
        assert!(e.reason.contains("[4, 5]"), "{e}");
    }

    #[test]
    fn matmul_conv_and_elementwise_are_planned() {
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1, 2, 4, 4]> x, tensor<fp32, [4, 3]> a, tensor<fp32, [3, 5]> b) {
            tensor<fp32, [3, 2, 1, 1]> w = const()[name = string("w"), val = tensor<fp32, [3, 2, 1, 1]>([[[[1]], [[2]]], [[[3]], [[4]]], [[[5]], [[6]]]])];
            tensor<fp32, [1, 3, 4, 4]> c = conv(x = x, weight = w, pad_type = string("valid"), strides = tensor<int32, [2]>([1, 1]), dilations = tensor<int32, [2]>([1, 1]), groups = int32(1))[name = string("c")];
            tensor<fp32, [1, 3, 4, 4]> r = relu(x = c)[name = string("r")];
            tensor<fp32, [4, 5]> m = matmul(x = a, y = b, transpose_x = bool(false), transpose_y = bool(false))[name = string("m")];
            tensor<fp32, [4, 5]> s = add(x = m, y = fp32(1))[name = string("s")];
        } -> (r, s);
}
"#,
        );
        let plan = plan_function(&p.functions["main"]).unwrap();
        assert_eq!(plan.inputs.len(), 3);
        assert_eq!(plan.inputs[0].shape, [1, 2, 4, 4]);
        assert_eq!(plan.nodes.len(), 4);
        match &plan.nodes[0].op {
            GraphOp::Conv2d {
                strides,
                groups,
                same,
                pad,
                ..
            } => {
                assert_eq!(*strides, [1, 1]);
                assert_eq!(*groups, 1);
                assert!(!same);
                assert_eq!(*pad, [0; 4]);
            }
            other => panic!("{other:?}"),
        }
        match &plan.nodes[0].operands[1] {
            Operand::Const(c) => {
                assert_eq!(c.shape, [3, 2, 1, 1]);
                assert_eq!(c.bytes.len(), 6 * 4);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plan.nodes[1].op, GraphOp::Unary(UnaryOp::Relu));
        assert_eq!(plan.nodes[1].operands, [Operand::Node(0)]);
        assert_eq!(
            plan.nodes[2].op,
            GraphOp::MatMul {
                transpose_x: false,
                transpose_y: false
            }
        );
        assert_eq!(plan.nodes[3].op, GraphOp::Binary(BinaryOp::Add));
        assert!(matches!(&plan.nodes[3].operands[1], Operand::Const(c) if c.shape.is_empty()));
        assert_eq!(plan.outputs, [("r".to_string(), 1), ("s".to_string(), 3)]);
        let summary = op_summary(&plan);
        assert_eq!(summary["conv"], 1);
        assert_eq!(summary["matmul"], 1);
    }

    #[test]
    fn unsupported_ops_are_named() {
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [4]> x) {
            tensor<fp32, [4]> y = sin(x = x)[name = string("the_sin")];
        } -> (y);
}
"#,
        );
        let e = plan_function(&p.functions["main"]).unwrap_err();
        assert_eq!(e.op, "the_sin");
        assert_eq!(e.op_type, "sin");
        assert!(e.reason.contains("not on the GPU path"));
    }

    #[test]
    fn flexible_inputs_and_constant_outputs_are_refused() {
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1, ?]> x) {
            tensor<fp32, [1, ?]> y = relu(x = x)[name = string("y")];
        } -> (y);
}
"#,
        );
        let e = plan_function(&p.functions["main"]).unwrap_err();
        assert!(e.reason.contains("flexible"), "{e}");
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [2]> x) {
            tensor<fp32, [2]> y = const()[name = string("y"), val = tensor<fp32, [2]>([1, 2])];
        } -> (y);
}
"#,
        );
        let e = plan_function(&p.functions["main"]).unwrap_err();
        assert_eq!(e.op_type, "output");
    }

    #[test]
    fn linear_and_custom_padding() {
        let p = program(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp16, [1, 1, 5, 5]> x, tensor<fp16, [2, 3]> v) {
            tensor<fp16, [1, 1, 3, 3]> w = const()[name = string("w"), val = tensor<fp16, [1, 1, 3, 3]>([[[[1, 1, 1], [1, 1, 1], [1, 1, 1]]]])];
            tensor<fp16, [1, 1, 2, 3]> c = conv(x = x, weight = w, pad_type = string("custom"), pad = tensor<int32, [4]>([0, 0, 1, 1]), strides = tensor<int32, [2]>([2, 2]), groups = int32(1))[name = string("c")];
            tensor<fp16, [4, 3]> lw = const()[name = string("lw"), val = tensor<fp16, [4, 3]>([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])];
            tensor<fp16, [2, 4]> l = linear(x = v, weight = lw)[name = string("l")];
        } -> (c, l);
}
"#,
        );
        let plan = plan_function(&p.functions["main"]).unwrap();
        match &plan.nodes[0].op {
            GraphOp::Conv2d { pad, strides, .. } => {
                assert_eq!(*pad, [0, 0, 1, 1]);
                assert_eq!(*strides, [2, 2]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(plan.nodes[1].op, GraphOp::Linear);
        assert_eq!(plan.nodes[1].operands.len(), 2);
        assert!(
            matches!(&plan.nodes[1].operands[1], Operand::Const(c) if c.dtype == DataType::Fp16 && c.bytes.len() == 24)
        );
    }
}
