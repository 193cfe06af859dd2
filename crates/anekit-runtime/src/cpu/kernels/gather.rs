//! Gather and scatter (coremltools `ops/defs/iOS15..iOS17/scatter_gather.py`): `gather`
//! (iOS16 `batch_dims`), `gather_along_axis`, `gather_nd` (iOS16 `batch_dims`), `scatter`,
//! `scatter_along_axis`, `scatter_nd` with the modes `update`, `add`, `sub`, `mul`, `div`,
//! `max`, `min`; iOS17 `validate_indices`.
//!
//! Indices: negative values count from the end (iOS15/16 semantics). From iOS17 Core ML
//! calls negative indices out of bounds with undefined (but memory-safe) results unless
//! `validate_indices` is set; this backend keeps counting them from the end there, and with
//! `validate_indices` it rejects them as iOS17 requires. An index that is out of bounds after
//! that is always an error (never a read or write outside the tensor).

use anekit_mil::Opset;
use ndarray::{ArrayD, IxDyn};

use super::shape::{Elem, IntsParam, checked_count, norm_axis, row_major, tensor_of, with_elem};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "gather",
    "gather_along_axis",
    "gather_nd",
    "scatter",
    "scatter_along_axis",
    "scatter_nd",
];

/// How indices are checked.
#[derive(Debug, Clone, Copy)]
struct IndexRule {
    /// iOS17+ with `validate_indices`: negative indices are errors.
    strict: bool,
}

impl IndexRule {
    /// Normalise index `v` into `[0, n)`.
    fn fix(self, v: i64, n: usize, what: &str) -> Result<usize, String> {
        let m = n as i64;
        let w = if v < 0 && !self.strict { v + m } else { v };
        if (0..m).contains(&w) {
            Ok(w as usize)
        } else {
            Err(format!(
                "{what}: index {v} is out of bounds for dimension {n}{}",
                if self.strict && v < 0 {
                    " (validate_indices: negative indices are out of bounds from iOS17)"
                } else {
                    ""
                }
            ))
        }
    }
}

fn rule(opset: Opset, args: &Args<'_>) -> Result<IndexRule, String> {
    Ok(IndexRule {
        strict: opset >= Opset::Ios17 && args.bool_or("validate_indices", false)?,
    })
}

fn indices(args: &Args<'_>) -> Result<(Vec<i64>, Vec<usize>), String> {
    let v = args.req("indices")?;
    let shape = v.shape().to_vec();
    Ok((v.to_i64s().map_err(|e| format!("indices: {e}"))?, shape))
}

fn product(s: &[usize]) -> usize {
    s.iter().product()
}

/// `gather`: out = x[:axis] + indices[batch_dims:] + x[axis+1:].
fn gather<T: Elem>(
    x: &Value,
    idx: &[i64],
    ishape: &[usize],
    axis: i64,
    batch_dims: i64,
    r: IndexRule,
) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let xs = x.shape();
    let ax = norm_axis(axis, xs.len(), "axis")?;
    let bd = usize::try_from(batch_dims)
        .ok()
        .filter(|&b| b <= ax && b <= ishape.len() && b < xs.len().max(1))
        .ok_or_else(|| format!("batch_dims {batch_dims} is out of range"))?;
    if xs.get(..bd) != ishape.get(..bd) {
        return Err(format!(
            "the first {bd} (batch) dimensions of x {xs:?} and indices {ishape:?} differ"
        ));
    }
    let batch = product(&xs[..bd]);
    let outer = product(&xs[bd..ax]);
    let d = xs[ax];
    let inner = product(&xs[ax + 1..]);
    let m = product(&ishape[bd..]);
    let mut shape = xs[..ax].to_vec();
    shape.extend_from_slice(&ishape[bd..]);
    shape.extend_from_slice(&xs[ax + 1..]);
    checked_count(&shape, "indices")?;
    let data = row_major(x);
    let mut out = Vec::with_capacity(batch * outer * m * inner);
    for b in 0..batch {
        let ib = idx.get(b * m..(b + 1) * m).ok_or("indices are too short")?;
        let fixed: Vec<usize> = ib
            .iter()
            .map(|&v| r.fix(v, d, "indices"))
            .collect::<Result<_, _>>()?;
        for o in 0..outer {
            let base = (b * outer + o) * d;
            for &i in &fixed {
                let s = (base + i) * inner;
                out.extend_from_slice(data.get(s..s + inner).ok_or("x is too short")?);
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

/// `gather_along_axis`: out has the indices' shape.
fn gather_along_axis<T: Elem>(
    x: &Value,
    idx: &[i64],
    ishape: &[usize],
    axis: i64,
    r: IndexRule,
) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let xs = x.shape();
    let ax = norm_axis(axis, xs.len(), "axis")?;
    check_along(xs, ishape, ax, "indices")?;
    let outer = product(&xs[..ax]);
    let (d, m) = (xs[ax], ishape[ax]);
    let inner = product(&xs[ax + 1..]);
    let data = row_major(x);
    let mut out = Vec::with_capacity(idx.len());
    for o in 0..outer {
        for k in 0..m {
            for i in 0..inner {
                let v = *idx
                    .get((o * m + k) * inner + i)
                    .ok_or("indices are too short")?;
                let j = r.fix(v, d, "indices")?;
                out.push(
                    data.get((o * d + j) * inner + i)
                        .ok_or("x is too short")?
                        .clone(),
                );
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(ishape), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

/// The shapes of `x` and `indices` agree except along `ax` (same rank).
fn check_along(xs: &[usize], is: &[usize], ax: usize, what: &str) -> Result<(), String> {
    if xs.len() != is.len()
        || xs
            .iter()
            .zip(is)
            .enumerate()
            .any(|(i, (a, b))| i != ax && a != b)
    {
        return Err(format!(
            "{what} shape {is:?} must match the data shape {xs:?} except along axis {ax}"
        ));
    }
    Ok(())
}

/// Row-major flat offsets of the `K`-index tuples of `gather_nd`/`scatter_nd`.
fn nd_offsets(
    xs: &[usize],
    idx: &[i64],
    ishape: &[usize],
    bd: usize,
    r: IndexRule,
) -> Result<(Vec<usize>, usize, usize), String> {
    let k = *ishape.last().ok_or("indices must have rank >= 1")?;
    if bd + k > xs.len() || bd >= ishape.len() {
        return Err(format!(
            "indices.shape[-1] ({k}) + batch_dims ({bd}) exceeds the data rank {}",
            xs.len()
        ));
    }
    if xs.get(..bd) != ishape.get(..bd) {
        return Err(format!(
            "the first {bd} (batch) dimensions of data {xs:?} and indices {ishape:?} differ"
        ));
    }
    let batch = product(&xs[..bd]);
    let m = product(&ishape[bd..ishape.len() - 1]);
    let sub = &xs[bd..bd + k];
    let sub_count = product(sub);
    let inner = product(&xs[bd + k..]);
    let mut offs = Vec::with_capacity(batch * m);
    for b in 0..batch {
        for j in 0..m {
            let t = idx
                .get((b * m + j) * k..(b * m + j + 1) * k)
                .ok_or("indices are too short")?;
            let mut off = 0;
            for (&v, &dsz) in t.iter().zip(sub) {
                off = off * dsz + r.fix(v, dsz, "indices")?;
            }
            offs.push(b * sub_count + off);
        }
    }
    Ok((offs, inner, m))
}

fn gather_nd<T: Elem>(
    x: &Value,
    idx: &[i64],
    ishape: &[usize],
    batch_dims: i64,
    r: IndexRule,
) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let xs = x.shape();
    let bd =
        usize::try_from(batch_dims).map_err(|_| format!("batch_dims {batch_dims} is negative"))?;
    let (offs, inner, _) = nd_offsets(xs, idx, ishape, bd, r)?;
    let k = ishape.last().copied().unwrap_or(0);
    let mut shape = ishape[..ishape.len() - 1].to_vec();
    shape.extend_from_slice(&xs[bd + k..]);
    checked_count(&shape, "indices")?;
    let data = row_major(x);
    let mut out = Vec::with_capacity(offs.len() * inner);
    for o in offs {
        out.extend_from_slice(
            data.get(o * inner..(o + 1) * inner)
                .ok_or("x is too short")?,
        );
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

/// A scatter reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Update,
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl Mode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "update" => Self::Update,
            "add" => Self::Add,
            "sub" => Self::Sub,
            "mul" => Self::Mul,
            "div" => Self::Div,
            "max" => Self::Max,
            "min" => Self::Min,
            other => {
                return Err(format!(
                    "mode {other:?} is not one of update, add, sub, mul, div, max, min"
                ));
            }
        })
    }
}

/// Element arithmetic for scatter modes.
trait Scatter: Elem + Copy {
    fn apply(mode: Mode, old: Self, new: Self) -> Result<Self, String>;
}

impl Scatter for f32 {
    fn apply(mode: Mode, a: f32, b: f32) -> Result<f32, String> {
        Ok(match mode {
            Mode::Update => b,
            Mode::Add => a + b,
            Mode::Sub => a - b,
            Mode::Mul => a * b,
            Mode::Div => a / b,
            Mode::Max => a.max(b),
            Mode::Min => a.min(b),
        })
    }
}

impl Scatter for i32 {
    fn apply(mode: Mode, a: i32, b: i32) -> Result<i32, String> {
        Ok(match mode {
            Mode::Update => b,
            Mode::Add => a.wrapping_add(b),
            Mode::Sub => a.wrapping_sub(b),
            Mode::Mul => a.wrapping_mul(b),
            Mode::Div => a
                .checked_div(b)
                .ok_or("scatter mode div: integer division by zero")?,
            Mode::Max => a.max(b),
            Mode::Min => a.min(b),
        })
    }
}

/// Row-major data of `data` and its shape, and of `updates` and its shape.
type ScatterInputs<T> = (Vec<T>, Vec<usize>, Vec<T>, Vec<usize>);

/// `data` and `updates` as flat row-major vectors of the same element type.
fn scatter_inputs<T: Scatter>(data: &Value, updates: &Value) -> Result<ScatterInputs<T>, String> {
    let d = tensor_of::<T>(data, "data")?;
    let u = tensor_of::<T>(updates, "updates")?;
    Ok((
        row_major(d).into_owned(),
        d.shape().to_vec(),
        row_major(u).into_owned(),
        u.shape().to_vec(),
    ))
}

#[allow(clippy::too_many_arguments)]
fn scatter<T: Scatter>(
    data: &Value,
    updates: &Value,
    idx: &[i64],
    ishape: &[usize],
    axis: i64,
    mode: Mode,
    r: IndexRule,
) -> Result<Value, String> {
    let (mut out, ds, upd, us) = scatter_inputs::<T>(data, updates)?;
    let ax = norm_axis(axis, ds.len(), "axis")?;
    let mut want = ds[..ax].to_vec();
    want.extend_from_slice(ishape);
    want.extend_from_slice(&ds[ax + 1..]);
    if us != want {
        return Err(format!("updates have shape {us:?}; expected {want:?}"));
    }
    let outer = product(&ds[..ax]);
    let d = ds[ax];
    let inner = product(&ds[ax + 1..]);
    let m = idx.len();
    let fixed: Vec<usize> = idx
        .iter()
        .map(|&v| r.fix(v, d, "indices"))
        .collect::<Result<_, _>>()?;
    for o in 0..outer {
        for (k, &j) in fixed.iter().enumerate() {
            for i in 0..inner {
                let src = *upd
                    .get((o * m + k) * inner + i)
                    .ok_or("updates are too short")?;
                let dst = out
                    .get_mut((o * d + j) * inner + i)
                    .ok_or("data is too short")?;
                *dst = T::apply(mode, *dst, src)?;
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&ds), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

#[allow(clippy::too_many_arguments)]
fn scatter_along_axis<T: Scatter>(
    data: &Value,
    updates: &Value,
    idx: &[i64],
    ishape: &[usize],
    axis: i64,
    mode: Mode,
    r: IndexRule,
) -> Result<Value, String> {
    let (mut out, ds, upd, us) = scatter_inputs::<T>(data, updates)?;
    let ax = norm_axis(axis, ds.len(), "axis")?;
    check_along(&ds, ishape, ax, "indices")?;
    if us != ishape {
        return Err(format!(
            "updates have shape {us:?}; they must match indices {ishape:?}"
        ));
    }
    let outer = product(&ds[..ax]);
    let (d, m) = (ds[ax], ishape[ax]);
    let inner = product(&ds[ax + 1..]);
    for o in 0..outer {
        for k in 0..m {
            for i in 0..inner {
                let p = (o * m + k) * inner + i;
                let v = *idx.get(p).ok_or("indices are too short")?;
                let j = r.fix(v, d, "indices")?;
                let src = *upd.get(p).ok_or("updates are too short")?;
                let dst = out
                    .get_mut((o * d + j) * inner + i)
                    .ok_or("data is too short")?;
                *dst = T::apply(mode, *dst, src)?;
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&ds), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

fn scatter_nd<T: Scatter>(
    data: &Value,
    updates: &Value,
    idx: &[i64],
    ishape: &[usize],
    mode: Mode,
    r: IndexRule,
) -> Result<Value, String> {
    let (mut out, ds, upd, us) = scatter_inputs::<T>(data, updates)?;
    let (offs, inner, _) = nd_offsets(&ds, idx, ishape, 0, r)?;
    let k = ishape.last().copied().unwrap_or(0);
    let mut want = ishape[..ishape.len() - 1].to_vec();
    want.extend_from_slice(&ds[k..]);
    if us != want {
        return Err(format!("updates have shape {us:?}; expected {want:?}"));
    }
    for (j, o) in offs.into_iter().enumerate() {
        for i in 0..inner {
            let src = *upd.get(j * inner + i).ok_or("updates are too short")?;
            let dst = out.get_mut(o * inner + i).ok_or("data is too short")?;
            *dst = T::apply(mode, *dst, src)?;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&ds), out)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

/// Dispatch a scatter over f32/i32 data.
macro_rules! scatter_elem {
    ($data:expr, $T:ident => $e:expr) => {
        match $data {
            Value::F32(_) => {
                type $T = f32;
                $e
            }
            Value::I32(_) => {
                type $T = i32;
                $e
            }
            other => Err(format!(
                "data: expected a numeric tensor, got {}",
                other.describe()
            )),
        }
    };
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let op = OPS.iter().copied().find(|o| *o == ctx.op_type())?;
    Some(build_op(op, ctx))
}

fn build_op(op: &'static str, ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let opset = ctx.opset;
    let axis = IntsParam::new(ctx, "axis")?;
    let batch_dims = IntsParam::new(ctx, "batch_dims")?;
    let mode = match ctx.constant("mode") {
        Some(v) => Some(Mode::parse(v.as_str().map_err(|e| format!("mode: {e}"))?)?),
        None => None,
    };
    Ok(match op {
        // An embedding table kept packed (the plan keeps it so only for axis 0, no batch
        // dimensions): decode just the rows picked.
        "gather" if ctx.packed("x").is_some() => {
            let table = ctx.packed("x").ok_or("x is not packed")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let (idx, is) = indices(args)?;
                let r = rule(opset, args)?;
                let (rows, cols) = table.dims();
                let mut shape = is.clone();
                shape.extend_from_slice(&table.shape()[1..]);
                checked_count(&shape, "indices")?;
                let mut out = vec![0.0f32; idx.len() * cols];
                for (&i, o) in idx.iter().zip(out.chunks_exact_mut(cols.max(1))) {
                    table.decode_rows(r.fix(i, rows, "indices")?, o);
                }
                Ok(vec![Value::F32(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), out)
                        .map_err(|e| e.to_string())?,
                )])
            })
        }
        "gather" => kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = args.req("x")?;
            let (idx, is) = indices(args)?;
            let (a, b, r) = (
                axis.scalar_or(args, 0)?,
                batch_dims.scalar_or(args, 0)?,
                rule(opset, args)?,
            );
            Ok(vec![
                with_elem!(x, T => gather::<T>(x, &idx, &is, a, b, r))?,
            ])
        }),
        "gather_along_axis" => kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = args.req("x")?;
            let (idx, is) = indices(args)?;
            let (a, r) = (axis.scalar_or(args, 0)?, rule(opset, args)?);
            Ok(vec![
                with_elem!(x, T => gather_along_axis::<T>(x, &idx, &is, a, r))?,
            ])
        }),
        "gather_nd" => kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = args.req("x")?;
            let (idx, is) = indices(args)?;
            let (b, r) = (batch_dims.scalar_or(args, 0)?, rule(opset, args)?);
            Ok(vec![
                with_elem!(x, T => gather_nd::<T>(x, &idx, &is, b, r))?,
            ])
        }),
        "scatter" | "scatter_along_axis" | "scatter_nd" => {
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let data = args.req("data")?;
                let upd = args.req("updates")?;
                let (idx, is) = indices(args)?;
                let m = match mode {
                    Some(m) => m,
                    None => Mode::parse(args.str_or("mode", "add")?)?,
                };
                let r = rule(opset, args)?;
                let a = axis.scalar_or(args, 0)?;
                Ok(vec![match op {
                    "scatter" => {
                        scatter_elem!(data, T => scatter::<T>(data, upd, &idx, &is, a, m, r))
                    }
                    "scatter_along_axis" => {
                        scatter_elem!(data, T => scatter_along_axis::<T>(data, upd, &idx, &is, a, m, r))
                    }
                    _ => scatter_elem!(data, T => scatter_nd::<T>(data, upd, &idx, &is, m, r)),
                }?])
            })
        }
        other => return Err(format!("{other} is not a gather/scatter op")),
    })
}
