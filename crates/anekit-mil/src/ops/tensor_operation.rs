//! Tensor operations (coremltools `ops/defs/iOS15/tensor_operation.py`, `iOS16/…`, `iOS17/…`).

use crate::program::Opset::{self, Ios15, Ios16, Ios17};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError, SymInt, known_shape};
use super::shape::{
    UNK, fixed, fmt_dims, map1, map2, norm_axis, product, py_index, same_as_x, shapes_compatible,
    size, tensor, unknown_rank, unknowns,
};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

fn op(o: Opset, name: &'static str) -> Op {
    Op::new(o, name, Family::TensorOperation)
}

/// A shape given as a run-time int vector (`fill`, `random_*`): the known entries of its
/// (partial) value; unknown rank if its length is unknown.
pub(super) fn shape_from_vector(
    ctx: &InferCtx<'_>,
    p: &str,
) -> Result<Option<Vec<Dim>>, InferError> {
    let s = ctx.tensor(p)?;
    let Some(sd) = known_shape(s) else {
        return Ok(None);
    };
    if sd.iter().any(|d| d.fixed().is_none()) {
        return Ok(None);
    }
    if let Some(sym) = ctx.sym(p) {
        return sym
            .into_iter()
            .map(|e| match e {
                Some(v) => fixed(v, p),
                None => Ok(UNK),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some);
    }
    let n = sd
        .first()
        .and_then(|d| size(*d))
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| InferError::at(p, "must be a vector"))?;
    Ok(Some(unknowns(n)?))
}

fn fill(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let dtype = value_dtype(ctx, "value")?;
    Ok(super::shape::out(dtype, shape_from_vector(ctx, "shape")?))
}

/// The element type of optional parameter `p`, or fp32 for its float default.
fn value_dtype(ctx: &InferCtx<'_>, p: &str) -> Result<DataType, InferError> {
    Ok(ctx
        .opt_tensor(p)?
        .map(|t| t.dtype)
        .unwrap_or(DataType::Fp32))
}

fn fill_like(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let dtype = value_dtype(ctx, "value")?;
    let r = ctx.tensor("ref_tensor")?;
    Ok(vec![ValueType::Tensor(crate::types::TensorType {
        dtype,
        shape: r.shape.clone(),
        attributes: Default::default(),
    })])
}

fn cumsum(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let r = i64::try_from(ctx.rank("x")?).unwrap_or(i64::MAX);
    let a = ctx.i64("axis")?;
    if a < -1 || a > r - 1 {
        return Err(InferError::at(
            "axis",
            format!("axis should be in the range [-1, {}]", r - 1),
        ));
    }
    same_as_x(ctx)
}

/// iOS15 `non_maximum_suppression`: boxes `[B, N, 4]`, scores `[B, N, K]` →
/// `[B, max_boxes, 4]`, `[B, max_boxes, K]`, indices `[B, max_boxes]`, counts `[B]`.
fn nms15(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let s = ctx.shape("scores")?;
    let [b, _, k] = s.as_slice() else {
        return Err(InferError::at(
            "scores",
            format!("scores must be rank 3, got {}", fmt_dims(&s)),
        ));
    };
    let m = fixed(ctx.i64("max_boxes")?, "max_boxes")?;
    Ok(vec![
        tensor(ctx.dtype("boxes")?, vec![*b, m, Dim::Fixed(4)]),
        tensor(ctx.dtype("scores")?, vec![*b, m, *k]),
        tensor(DataType::Int32, vec![*b, m]),
        tensor(DataType::Int32, vec![*b]),
    ])
}

/// iOS17 `non_maximum_suppression`: boxes `[B, 4, N]`, scores `[B, K, N]` → three outputs.
fn nms17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let s = ctx.shape("scores")?;
    let [b, k, _] = s.as_slice() else {
        return Err(InferError::at(
            "scores",
            format!("scores must be rank 3, got {}", fmt_dims(&s)),
        ));
    };
    let m = fixed(ctx.i64("max_boxes")?, "max_boxes")?;
    Ok(vec![
        tensor(ctx.dtype("boxes")?, vec![*b, Dim::Fixed(4), m]),
        tensor(ctx.dtype("scores")?, vec![*b, *k, m]),
        tensor(DataType::Int32, vec![*b, m]),
    ])
}

/// `non_zero`: `[count, rank]`, the count known only for a constant input.
fn non_zero(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let r = ctx.rank("x")?;
    let count = match ctx.value("x").and_then(super::infer::small_f32s) {
        Some(vals) => Dim::Fixed(vals.iter().filter(|v| **v != 0.0).count() as u64),
        None => UNK,
    };
    Ok(vec![tensor(
        DataType::Int32,
        vec![count, Dim::Fixed(r as u64)],
    )])
}

fn one_hot(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let on = value_dtype_int(ctx, "on_value")?;
    let off = value_dtype_int(ctx, "off_value")?;
    if on != off {
        return Err(InferError::at(
            "off_value",
            "on_value and off_value must have the same type",
        ));
    }
    let mut s = ctx.shape("indices")?;
    let r = i64::try_from(s.len()).unwrap_or(i64::MAX);
    let axis = ctx.i64("axis")?;
    if axis < -r - 1 || axis > r {
        return Err(InferError::at(
            "axis",
            format!("axis {axis} is out of bounds"),
        ));
    }
    let depth = match ctx
        .value("one_hot_vector_size")
        .and_then(super::infer::scalar_i64)
    {
        Some(d) if d < 0 => {
            return Err(InferError::at(
                "one_hot_vector_size",
                "must be non-negative",
            ));
        }
        Some(d) => fixed(d, "one_hot_vector_size")?,
        None => UNK,
    };
    let cut = if axis < 0 { r + axis + 1 } else { axis };
    let cut = usize::try_from(cut).map_err(|_| InferError::at("axis", "out of bounds"))?;
    s.insert(cut.min(s.len()), depth);
    Ok(vec![tensor(on, s)])
}

/// Element type of an optional param whose default is an integer literal (`one_hot`'s
/// `on_value=1`, `off_value=0`: an int32 constant in coremltools).
fn value_dtype_int(ctx: &InferCtx<'_>, p: &str) -> Result<DataType, InferError> {
    Ok(ctx
        .opt_tensor(p)?
        .map(|t| t.dtype)
        .unwrap_or(DataType::Int32))
}

/// `pad`: the last `len(pad)/2` dims grow by their before/after padding.
fn pad(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    let ps = ctx.shape("pad")?;
    let [plen] = ps.as_slice() else {
        return Err(InferError::at("pad", "pad should be a 1D tensor"));
    };
    let mode = ctx.str("mode")?;
    if !matches!(mode.as_str(), "constant" | "reflect" | "replicate") {
        return Err(InferError::at(
            "mode",
            "pad mode should be one of constant, reflect, replicate",
        ));
    }
    let dtype = ctx.dtype("x")?;
    if ctx.value("pad").is_none()
        && let Some(n) = size(*plen)
        && n != 2 * x.len() as i64
    {
        return Err(InferError::at(
            "pad",
            format!("non-constant pad must have shape ({},)", 2 * x.len()),
        ));
    }
    let Some(sym) = ctx.sym("pad") else {
        let n = size(*plen).ok_or_else(|| InferError::Undetermined("length of `pad`".into()))?;
        let k = usize::try_from(n / 2).unwrap_or(0).min(x.len());
        let start = x.len() - k;
        for d in x.iter_mut().skip(start) {
            *d = UNK;
        }
        return Ok(vec![tensor(dtype, x)]);
    };
    if sym.len() % 2 != 0 {
        return Err(InferError::at(
            "pad",
            "number of elements in pad must be divisible by 2",
        ));
    }
    if sym.iter().flatten().any(|v| *v < 0) {
        return Err(InferError::at("pad", "pad must be non-negative"));
    }
    let k = sym.len() / 2;
    if k > x.len() {
        return Err(InferError::at(
            "pad",
            "pad specifies more dimensions than the rank of x",
        ));
    }
    let start = x.len() - k;
    for (i, pair) in sym.chunks(2).enumerate() {
        let d = x[start + i];
        x[start + i] = match (
            pair.first().copied().flatten(),
            pair.get(1).copied().flatten(),
        ) {
            (Some(a), Some(b)) => map1(d, "pad", |v| v.checked_add(a)?.checked_add(b))?,
            _ => UNK,
        };
    }
    Ok(vec![tensor(dtype, x)])
}

/// `range_1d`: `ceil((end - start) / step)` elements when all three are known.
fn range_1d(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let dtype = ctx.dtype("start")?;
    if ctx.dtype("end")? != dtype || ctx.dtype("step")? != dtype {
        return Err(InferError::invalid(
            "all inputs to the range operation must have the same type",
        ));
    }
    // numpy: float operands are computed in their own (fp32/fp16→fp32) precision, int32
    // ones with true division in float64
    let is_float = dtype.is_float();
    let get = |p: &str| -> Option<f64> {
        if let Some(v) = ctx.value(p) {
            return if is_float {
                super::infer::scalar_f32(v).map(f64::from)
            } else {
                super::infer::scalar_i64(v).map(|i| i as f64)
            };
        }
        match ctx.sym(p)?.as_slice() {
            [Some(v)] => Some(*v as f64),
            _ => None,
        }
    };
    let n = match (get("start"), get("end"), get("step")) {
        (_, _, Some(0.0)) => return Err(InferError::at("step", "step must not be 0")),
        (Some(s), Some(e), Some(st)) => {
            let n = if is_float {
                f64::from(((e as f32 - s as f32) / st as f32).ceil())
            } else {
                ((e - s) / st).ceil()
            };
            if !n.is_finite() || n > 9.0e18 {
                return Err(InferError::at("step", "range size overflows"));
            }
            // coremltools: int(math.ceil(shape)); a negative count fails later in Core ML
            fixed(n as i64, "range")?
        }
        _ => UNK,
    };
    Ok(vec![tensor(dtype, vec![n])])
}

fn tile(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let dtype = ctx.dtype("x")?;
    let Some(reps) = ctx.sym("reps") else {
        return Ok(vec![tensor(dtype, unknowns(x.len())?)]);
    };
    if reps.is_empty() || reps.len() != x.len() {
        return Err(InferError::at(
            "reps",
            format!(
                "length of reps ({}) must be at least 1 and equal to the rank of x ({})",
                reps.len(),
                x.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(x.len());
    for (d, r) in x.iter().zip(reps) {
        out.push(match r {
            Some(r) if r <= 0 => {
                return Err(InferError::at(
                    "reps",
                    "all entries of reps must be greater than 0",
                ));
            }
            None => UNK,
            Some(1) => *d,
            Some(r) => map1(*d, "tile", |v| v.checked_mul(r))?,
        });
    }
    Ok(vec![tensor(dtype, out)])
}

fn argsort(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.tensor("x")?;
    Ok(vec![ValueType::Tensor(crate::types::TensorType {
        dtype: DataType::Int32,
        shape: x.shape.clone(),
        attributes: Default::default(),
    })])
}

/// `topk` values and indices types (indices int32).
fn topk_types(ctx: &InferCtx<'_>) -> Result<(ValueType, Vec<Dim>), InferError> {
    let mut x = ctx.shape("x")?;
    let k = ctx.i64("k")?;
    let axis = ctx.i64("axis")?;
    let a = py_index(axis, x.len())
        .ok_or_else(|| InferError::at("axis", format!("axis {axis} out of range")))?;
    if let Some(n) = size(x[a])
        && k > n
    {
        return Err(InferError::at(
            "k",
            format!("K={k} is greater than size of the given axis={axis}"),
        ));
    }
    x[a] = fixed(k, "k")?;
    Ok((tensor(ctx.dtype("x")?, x.clone()), x))
}

fn topk15(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (v, s) = topk_types(ctx)?;
    Ok(vec![v, tensor(DataType::Int32, s)])
}

fn topk16(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (v, s) = topk_types(ctx)?;
    if ctx.bool("return_indices")? {
        Ok(vec![v, tensor(DataType::Int32, s)])
    } else {
        Ok(vec![v])
    }
}

fn topk17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let ret = ctx.bool("return_indices")?;
    if !ret && ctx.has("output_indices_dtype") {
        return Err(InferError::at(
            "output_indices_dtype",
            "output_indices_dtype can only be set when return_indices=True",
        ));
    }
    let (v, s) = topk_types(ctx)?;
    if !ret {
        return Ok(vec![v]);
    }
    let name = ctx
        .opt_str("output_indices_dtype")?
        .unwrap_or_else(|| "int32".into());
    let dt = match name.as_str() {
        "int32" => DataType::Int32,
        "uint16" => DataType::Uint16,
        _ => {
            return Err(InferError::at(
                "output_indices_dtype",
                format!("invalid output_indices_dtype \"{name}\"; valid options are int32, uint16"),
            ));
        }
    };
    Ok(vec![v, tensor(dt, s)])
}

fn flatten2d(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let axis = ctx.i64("axis")?;
    // python slicing: shape[:axis], shape[axis:]
    let r = i64::try_from(x.len()).unwrap_or(i64::MAX);
    let cut = if axis < 0 {
        (axis + r).max(0)
    } else {
        axis.min(r)
    };
    let cut = usize::try_from(cut).unwrap_or(0);
    let (pre, post) = x.split_at(cut);
    let dim = |p: &[Dim]| product(p).map_or(Ok(UNK), |v| fixed(v, "flatten2d"));
    Ok(vec![tensor(ctx.dtype("x")?, vec![dim(pre)?, dim(post)?])])
}

fn shape_op(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.tensor("x")?;
    let r = match known_shape(x) {
        Some(s) => Dim::Fixed(s.len() as u64),
        None => UNK,
    };
    Ok(vec![tensor(DataType::Int32, vec![r])])
}

/// `shape`'s value: the known dims of `x`.
fn shape_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let s = known_shape(ctx.tensor("x").ok()?)?;
    Some(s.iter().map(|d| size(*d)).collect())
}

/// `concat` of tensors of one rank and type along `axis` (rank-0 inputs stack to a vector).
fn concat(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let vals = ctx.bindings("values");
    let Some(first) = vals.first() else {
        return Err(InferError::at("values", "concat got 0 values"));
    };
    let tensors = vals
        .iter()
        .map(|a| {
            a.ty.as_tensor()
                .ok_or_else(|| InferError::at("values", "values must be tensors"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dtype = first
        .ty
        .as_tensor()
        .map(|t| t.dtype)
        .unwrap_or(DataType::Fp32);
    if tensors.iter().any(|t| t.dtype != dtype) {
        return Err(InferError::at(
            "values",
            "tensors in values should share the same data type",
        ));
    }
    let Some(shapes) = tensors
        .iter()
        .map(|t| known_shape(t))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(vec![unknown_rank(dtype)]);
    };
    let rank = shapes[0].len();
    if shapes.iter().any(|s| s.len() != rank) {
        return Err(InferError::at("values", "inputs must have the same rank"));
    }
    let axis = ctx.i64("axis")?;
    let interleave = ctx.bool("interleave")?;
    let a = if rank == 0 {
        0
    } else {
        norm_axis(axis, rank, "axis")?
    };
    let mut out = shapes[0].clone();
    for s in &shapes[1..] {
        for i in 0..rank {
            let (p, q) = (out[i], s[i]);
            if let (Some(p), Some(q)) = (p.fixed(), q.fixed())
                && p != q
                && (i != a || interleave)
            {
                return Err(InferError::at(
                    "values",
                    format!(
                        "dimension mismatch: shapes {} vs. {}",
                        fmt_dims(&out),
                        fmt_dims(s)
                    ),
                ));
            }
        }
    }
    let mut total = Dim::Fixed(0);
    for s in &shapes {
        let d = if s.is_empty() { Dim::Fixed(1) } else { s[a] };
        if d.fixed().is_none() {
            total = UNK;
            break;
        }
        total = map2(total, d, "concat", |x, y| x.checked_add(y))?;
    }
    if out.is_empty() {
        out = vec![total];
    } else {
        out[a] = total;
    }
    Ok(vec![tensor(dtype, out)])
}

/// `concat` of partially known small integer vectors or scalars.
fn concat_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let vals = ctx.bindings("values");
    if vals.iter().any(|a| {
        a.ty.as_tensor()
            .and_then(|t| t.rank())
            .is_none_or(|r| r > 1)
    }) {
        return None;
    }
    let mut out = Vec::new();
    for a in vals {
        match a.sym_value() {
            Some(v) => out.extend(v),
            None => {
                let t = a.ty.as_tensor()?;
                let n = t.element_count()?;
                if n > 64 || !t.dtype.is_int() {
                    return None;
                }
                out.extend(std::iter::repeat_n(None, usize::try_from(n).ok()?));
            }
        }
    }
    Some(out)
}

/// `split` into `num_splits` equal parts or `split_sizes`.
fn split(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let a = norm_axis(ctx.i64("axis")?, x.len(), "axis")?;
    let sizes: Vec<Dim> = if ctx.has("num_splits") {
        let n = ctx.i64("num_splits")?;
        if n <= 0 || n > super::shape::MAX_OUTPUTS as i64 {
            return Err(InferError::at(
                "num_splits",
                format!(
                    "num_splits must be in 1..={}, got {n}",
                    super::shape::MAX_OUTPUTS
                ),
            ));
        }
        if ctx.has("split_sizes") {
            match ctx.sym("split_sizes") {
                Some(s) => s
                    .into_iter()
                    .map(|v| v.map_or(Ok(UNK), |v| fixed(v, "split_sizes")))
                    .collect::<Result<_, _>>()?,
                None => split_unknowns(n)?,
            }
        } else {
            let d = x[a];
            if let Some(v) = size(d)
                && v % n != 0
            {
                return Err(InferError::at(
                    "num_splits",
                    format!("num_split {n} does not divide split dim (length = {v})"),
                ));
            }
            vec![map1(d, "split", |v| v.checked_div(n))?; usize::try_from(n).unwrap_or(0)]
        }
    } else if ctx.has("split_sizes") {
        match ctx.sym("split_sizes") {
            Some(s) => s
                .into_iter()
                .map(|v| v.map_or(Ok(UNK), |v| fixed(v, "split_sizes")))
                .collect::<Result<_, _>>()?,
            None => {
                let s = ctx.shape("split_sizes")?;
                let n = s
                    .first()
                    .and_then(|d| size(*d))
                    .ok_or_else(|| InferError::Undetermined("number of splits".into()))?;
                split_unknowns(n)?
            }
        }
    } else {
        return Err(InferError::MissingParam {
            param: "num_splits".into(),
        });
    };
    let dtype = ctx.dtype("x")?;
    Ok(sizes
        .into_iter()
        .map(|d| {
            let mut s = x.clone();
            s[a] = d;
            tensor(dtype, s)
        })
        .collect())
}

/// `n` unknown split sizes (at most [`super::shape::MAX_OUTPUTS`]).
fn split_unknowns(n: i64) -> Result<Vec<Dim>, InferError> {
    match usize::try_from(n) {
        Ok(n) if n <= super::shape::MAX_OUTPUTS => Ok(vec![UNK; n]),
        _ => Err(InferError::invalid(format!("cannot split into {n} parts"))),
    }
}

/// `stack`: all of one shape; a new axis of length `len(values)` at `axis`.
fn stack(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let vals = ctx.bindings("values");
    if vals.is_empty() {
        return Err(InferError::at("values", "cannot stack 0 tensors"));
    }
    let tensors = vals
        .iter()
        .map(|a| {
            a.ty.as_tensor()
                .ok_or_else(|| InferError::at("values", "values must be tensors"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dtype = tensors[0].dtype;
    if tensors.iter().any(|t| t.dtype != dtype) {
        return Err(InferError::at(
            "values",
            "tensors in values should share the same data type",
        ));
    }
    let Some(shapes) = tensors
        .iter()
        .map(|t| known_shape(t))
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(vec![unknown_rank(dtype)]);
    };
    // the first fully known shape, else the first
    let t_shape = shapes
        .iter()
        .find(|s| s.iter().all(|d| d.fixed().is_some()))
        .unwrap_or(&shapes[0])
        .clone();
    if shapes.iter().any(|s| !shapes_compatible(s, &t_shape)) {
        return Err(InferError::at(
            "values",
            "component tensors have different shapes",
        ));
    }
    let rank = shapes[0].len();
    let mut axis = ctx.i64("axis")?;
    if axis < 0 {
        axis += i64::try_from(rank).unwrap_or(0) + 1;
    }
    let a = usize::try_from(axis)
        .ok()
        .filter(|a| *a <= rank)
        .ok_or_else(|| InferError::at("axis", format!("axis out of range for rank {rank}")))?;
    let mut out = t_shape;
    out.insert(a.min(out.len()), Dim::Fixed(vals.len() as u64));
    Ok(vec![tensor(dtype, out)])
}

fn stack_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let vals = ctx.bindings("values");
    if vals
        .iter()
        .any(|a| a.ty.as_tensor().and_then(|t| t.rank()) != Some(0))
    {
        return None;
    }
    if vals.len() > 64
        || !vals
            .iter()
            .all(|a| a.ty.as_tensor().is_some_and(|t| t.dtype.is_int()))
    {
        return None;
    }
    Some(
        vals.iter()
            .map(|a| a.sym_value().and_then(|v| v.first().copied().flatten()))
            .collect(),
    )
}

fn identity(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    same_as_x(ctx)
}

fn identity_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    ctx.sym("x")
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let fpi = dom("T", dt::FP_I32);
    let all = dom("T", dt::FP_I32_BOOL);
    let fp = dom("T", dt::FP);
    let i32s = ty(dt::I32);
    let b = ty(dt::BOOL);
    let s = ty(dt::STR);
    v.push(
        op(Ios15, "band_part")
            .input("x", all)
            .opt_konst("lower", i32s, Some(D::Int(-1)))
            .opt_konst("upper", i32s, Some(D::Int(-1)))
            .infer(same_as_x),
    );
    v.push(
        op(Ios15, "cumsum")
            .input("x", fpi)
            .opt_konst("axis", i32s, Some(D::Int(0)))
            .opt_konst("exclusive", b, Some(D::Bool(false)))
            .opt_konst("reverse", b, Some(D::Bool(false)))
            .infer(cumsum),
    );
    v.push(
        op(Ios15, "fill")
            .input("shape", i32s)
            .opt_konst("value", all, Some(D::Float(0.0)))
            .infer(fill),
    );
    v.push(
        op(Ios16, "fill_like")
            .input("ref_tensor", all)
            .opt_konst("value", dom("U", dt::FP_I32_BOOL), Some(D::Float(0.0)))
            .infer(fill_like),
    );
    v.push(
        op(Ios15, "non_maximum_suppression")
            .input("boxes", fp)
            .input("scores", fp)
            .konst("iou_threshold", fp)
            .konst("score_threshold", fp)
            .konst("max_boxes", i32s)
            .opt_konst("per_class_suppression", b, Some(D::Bool(false)))
            .outputs(super::Outputs::Exactly(4))
            .infer(nms15),
    );
    v.push(
        op(Ios17, "non_maximum_suppression")
            .input("boxes", fp)
            .input("scores", fp)
            .konst("iou_threshold", fp)
            .konst("max_boxes", i32s)
            .opt_konst("per_class_suppression", b, Some(D::Bool(false)))
            .outputs(super::Outputs::Exactly(3))
            .infer(nms17),
    );
    v.push(op(Ios15, "non_zero").input("x", all).infer(non_zero));
    v.push(
        op(Ios15, "one_hot")
            .input("indices", i32s)
            .input("one_hot_vector_size", i32s)
            .opt_konst("axis", i32s, Some(D::Int(-1)))
            .opt_konst("on_value", all, Some(D::Int(1)))
            .opt_konst("off_value", all, Some(D::Int(0)))
            .infer(one_hot),
    );
    v.push(
        op(Ios15, "pad")
            .input("x", fp)
            .input("pad", i32s)
            .opt_konst("mode", s, Some(D::Str("constant")))
            .opt_konst("constant_val", fp, Some(D::Float(0.0)))
            .infer(pad),
    );
    v.push(
        op(Ios15, "range_1d")
            .input("end", fpi)
            .input("start", fpi)
            .input("step", fpi)
            .infer(range_1d),
    );
    v.push(
        op(Ios15, "tile")
            .input("x", all)
            .input("reps", i32s)
            .infer(tile),
    );
    v.push(
        op(Ios15, "argsort")
            .input("x", fpi)
            .opt_konst("axis", i32s, Some(D::Int(-1)))
            .opt_konst("ascending", b, Some(D::Bool(false)))
            .infer(argsort),
    );
    let topk_base = |o, t| {
        op(o, "topk")
            .input("x", t)
            .opt_konst("k", i32s, Some(D::Int(1)))
            .opt_konst("axis", i32s, Some(D::Int(-1)))
            .opt_konst("ascending", b, Some(D::Bool(false)))
    };
    v.push(
        topk_base(Ios15, fpi)
            .outputs(super::Outputs::Exactly(2))
            .infer(topk15),
    );
    v.push(
        topk_base(Ios16, fpi)
            .opt_konst("sort", b, Some(D::Bool(true)))
            .opt_konst("return_indices", b, Some(D::Bool(true)))
            .outputs(super::Outputs::Variable(
                "2, or 1 when return_indices is false",
            ))
            .infer(topk16),
    );
    v.push(
        op(Ios17, "topk")
            .input(
                "x",
                dom("T", &[Fp16, Fp32, Int8, Int16, Int32, Uint8, Uint16]),
            )
            .opt_konst("k", dom("K", &[Int8, Int16, Int32]), Some(D::Int(1)))
            .opt_konst("axis", i32s, Some(D::Int(-1)))
            .opt_konst("ascending", b, Some(D::Bool(false)))
            .opt_konst("sort", b, Some(D::Bool(true)))
            .opt_konst("return_indices", b, Some(D::Bool(true)))
            .opt_konst(
                "output_indices_dtype",
                s,
                Some(D::Computed("\"int32\" when return_indices")),
            )
            .outputs(super::Outputs::Variable(
                "2, or 1 when return_indices is false",
            ))
            .infer(topk17),
    );
    v.push(
        op(Ios15, "flatten2d")
            .input("x", all)
            .opt_konst("axis", i32s, Some(D::Int(1)))
            .infer(flatten2d),
    );
    v.push(
        op(Ios15, "shape")
            .input("x", all)
            .value(shape_value)
            .infer(shape_op),
    );
    v.push(
        op(Ios15, "concat")
            .tuple("values")
            .konst("axis", i32s)
            .opt_konst("interleave", b, Some(D::Bool(false)))
            .value(concat_value)
            .infer(concat),
    );
    v.push(
        op(Ios15, "split")
            .input("x", all)
            .opt_konst("num_splits", i32s, None)
            .opt_konst("split_sizes", i32s, None)
            .konst("axis", i32s)
            .outputs(super::Outputs::Variable("num_splits, or len(split_sizes)"))
            .infer(split),
    );
    v.push(
        op(Ios15, "stack")
            .tuple("values")
            .konst("axis", i32s)
            .value(stack_value)
            .infer(stack),
    );
    v.push(
        op(Ios15, "identity")
            .any("x")
            .value(identity_value)
            .infer(identity),
    );
}
