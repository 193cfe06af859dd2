//! Tensor transformations (coremltools `ops/defs/iOS15/tensor_transformation.py`, `iOS16/…`,
//! `iOS17/…`, and `iOS18/tensor_transformation.py` for `slice_update`).

use crate::program::Opset::{self, Ios15, Ios16, Ios17, Ios18};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError, SymInt};
use super::shape::{
    UNK, at, fixed, fmt_dims, map1, norm_axis, product, py_index, same_as_x, shapes_compatible,
    size, tensor, unknown_rank, unknowns,
};
use super::{DefaultValue as D, Family, Op, OpDef, TypeDomain, dom, dt, ty};

fn op(o: Opset, name: &'static str) -> Op {
    Op::new(o, name, Family::TensorTransformation)
}

fn nchw(ctx: &InferCtx<'_>) -> Result<[Dim; 4], InferError> {
    let x = ctx.shape("x")?;
    <[Dim; 4]>::try_from(x.as_slice())
        .map_err(|_| InferError::at("x", format!("x must be rank 4, got {}", fmt_dims(&x))))
}

fn positive(ctx: &InferCtx<'_>, p: &str) -> Result<i64, InferError> {
    let v = ctx.i64(p)?;
    if v <= 0 {
        return Err(InferError::at(p, format!("{p} must be positive, got {v}")));
    }
    Ok(v)
}

/// `depth_to_space` / `pixel_shuffle`: `(n, c / f², h·f, w·f)`.
fn to_space(ctx: &InferCtx<'_>, p: &str) -> Result<Vec<ValueType>, InferError> {
    let [n, c, h, w] = nchw(ctx)?;
    let f = positive(ctx, p)?;
    let out = vec![
        n,
        map1(c, "channels", |c| c.checked_div(f.checked_mul(f)?))?,
        map1(h, "height", |v| v.checked_mul(f))?,
        map1(w, "width", |v| v.checked_mul(f))?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn depth_to_space(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    to_space(ctx, "block_size")
}

fn pixel_shuffle(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    to_space(ctx, "upscale_factor")
}

/// `space_to_depth` / `pixel_unshuffle`: `(n, c·f², h / f, w / f)`.
fn to_depth(ctx: &InferCtx<'_>, p: &str) -> Result<Vec<ValueType>, InferError> {
    let [n, c, h, w] = nchw(ctx)?;
    let f = positive(ctx, p)?;
    let out = vec![
        n,
        map1(c, "channels", |c| c.checked_mul(f.checked_mul(f)?))?,
        map1(h, "height", |v| v.checked_div(f))?,
        map1(w, "width", |v| v.checked_div(f))?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn space_to_depth(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    to_depth(ctx, "block_size")
}

fn pixel_unshuffle(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    to_depth(ctx, "downscale_factor")
}

/// `block_shape` `[2]` and a `[2, 2]` pad/crop matrix.
fn blocks_and_pairs(
    ctx: &InferCtx<'_>,
    pairs: &str,
) -> Result<([i64; 2], [[i64; 2]; 2]), InferError> {
    let bs = ctx.ints("block_shape")?;
    let ps = ctx.ints(pairs)?;
    let shape_ok = ctx.shape(pairs)? == [Dim::Fixed(2), Dim::Fixed(2)];
    match (bs.as_slice(), ps.as_slice()) {
        ([b0, b1], [p0, p1, p2, p3]) if shape_ok => Ok(([*b0, *b1], [[*p0, *p1], [*p2, *p3]])),
        _ => Err(InferError::at(
            pairs,
            format!("block_shape and {pairs} must have shape [2] and [2, 2]"),
        )),
    }
}

fn space_to_batch(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let [b, c, h, w] = nchw(ctx)?;
    let (bs, pads) = blocks_and_pairs(ctx, "paddings")?;
    if bs.iter().any(|v| *v <= 0) {
        return Err(InferError::at(
            "block_shape",
            "block sizes must be positive",
        ));
    }
    let prod = bs[0]
        .checked_mul(bs[1])
        .ok_or_else(|| InferError::at("block_shape", "overflow"))?;
    let out = vec![
        map1(b, "batch", |v| v.checked_mul(prod))?,
        c,
        map1(h, "height", |v| {
            v.checked_add(pads[0][0])?
                .checked_add(pads[0][1])?
                .checked_div(bs[0])
        })?,
        map1(w, "width", |v| {
            v.checked_add(pads[1][0])?
                .checked_add(pads[1][1])?
                .checked_div(bs[1])
        })?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn batch_to_space(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let [b, c, h, w] = nchw(ctx)?;
    let (bs, crops) = blocks_and_pairs(ctx, "crops")?;
    if bs.iter().any(|v| *v <= 0) {
        return Err(InferError::at(
            "block_shape",
            "block sizes must be positive",
        ));
    }
    let prod = bs[0]
        .checked_mul(bs[1])
        .ok_or_else(|| InferError::at("block_shape", "overflow"))?;
    if let Some(bv) = size(b)
        && bv % prod != 0
    {
        return Err(InferError::at(
            "block_shape",
            format!("batch size {bv} must be divisible by the product of block_shape {prod}"),
        ));
    }
    let out = vec![
        map1(b, "batch", |v| v.checked_div(prod))?,
        c,
        map1(h, "height", |v| {
            v.checked_mul(bs[0])?
                .checked_sub(crops[0][0])?
                .checked_sub(crops[0][1])
        })?,
        map1(w, "width", |v| {
            v.checked_mul(bs[1])?
                .checked_sub(crops[1][0])?
                .checked_sub(crops[1][1])
        })?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn expand_dims(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let axes = ctx.ints("axes")?;
    let out_rank = i64::try_from(x.len() + axes.len()).unwrap_or(i64::MAX);
    let mut norm = Vec::with_capacity(axes.len());
    for a in &axes {
        if *a < -out_rank || *a >= out_rank {
            return Err(InferError::at(
                "axes",
                format!("axis value {a} is out of bounds for shape {}", fmt_dims(&x)),
            ));
        }
        norm.push(if *a < 0 { out_rank + a } else { *a });
    }
    norm.sort_unstable();
    let mut out = x;
    for a in norm {
        let i = usize::try_from(a).unwrap_or(0).min(out.len());
        out.insert(i, Dim::Fixed(1));
    }
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn expand_dims_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let r = ctx.rank("x").ok()?;
    (r <= 1).then(|| ctx.sym("x")).flatten()
}

/// `squeeze`: drop the given size-1 axes (all size-1 axes if none given; an unknown dim is
/// never dropped).
fn squeeze(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let out: Vec<Dim> = match ctx.opt_ints("axes")? {
        None => x.iter().copied().filter(|d| *d != Dim::Fixed(1)).collect(),
        Some(axes) => {
            let axes = axes
                .into_iter()
                .map(|a| norm_axis(a, x.len(), "axes"))
                .collect::<Result<Vec<_>, _>>()?;
            x.iter()
                .enumerate()
                .filter(|(i, d)| !(axes.contains(i) && **d == Dim::Fixed(1)))
                .map(|(_, d)| *d)
                .collect()
        }
    };
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn squeeze_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    ctx.sym("x").filter(|v| v.len() == 1)
}

fn transpose(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let perm = ctx.ints("perm")?;
    if perm.len() != x.len() {
        return Err(InferError::at(
            "perm",
            format!(
                "perm should have the same length as rank(x): {} != {}",
                perm.len(),
                x.len()
            ),
        ));
    }
    let out = perm
        .iter()
        .map(|&p| at(&x, p, "perm"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

fn sliding_windows(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    let a = norm_axis(ctx.i64("axis")?, x.len(), "axis")?;
    let size_ = ctx.i64("size")?;
    let stride = positive(ctx, "stride")?;
    x[a] = map1(x[a], "sliding_windows", |v| {
        super::shape::floor_div(v.checked_sub(size_)?, stride)?.checked_add(1)
    })?;
    x.insert(a + 1, fixed(size_, "size")?);
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

/// The value of an integer vector parameter if fully known (constant or fully known sym).
fn known_ints(ctx: &InferCtx<'_>, p: &str) -> Option<Vec<i64>> {
    ctx.sym(p)?.into_iter().collect()
}

/// `reshape`: `shape` with at most one -1 and (iOS15) 0 = copy the input dim at the same
/// index, (iOS17) 0 = copy the input dim at the same index counted from the end.
fn reshape(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let dtype = ctx.dtype("x")?;
    let st = ctx.shape("shape")?;
    let Some(n) = st.first().and_then(|d| size(*d)) else {
        return Ok(vec![unknown_rank(dtype)]);
    };
    let Some(sym) = ctx.sym("shape") else {
        return Ok(vec![tensor(
            dtype,
            unknowns(usize::try_from(n).unwrap_or(0))?,
        )]);
    };
    if sym.iter().filter(|v| **v == Some(-1)).count() > 1 {
        return Err(InferError::at("shape", "only one dimension may be -1"));
    }
    let x = ctx.shape("x")?;
    let all_known = sym.iter().all(Option::is_some);
    if let (Some(from_prod), true) = (product(&x), all_known) {
        let mut to: Vec<i64> = sym.iter().map(|v| v.unwrap_or(0)).collect();
        if to.contains(&0) {
            if ctx.def.opset >= Ios17 {
                // zeros copy from the end-aligned input dims, or 1 beyond the input rank
                let (tl, fl) = (to.len(), x.len());
                for (k, t) in to.iter_mut().enumerate() {
                    if *t == 0 {
                        let from_end = tl - 1 - k;
                        *t = match fl.checked_sub(from_end + 1).and_then(|i| x.get(i)) {
                            Some(d) => size(*d).unwrap_or(0),
                            None => 1,
                        };
                    }
                }
            } else {
                if to.len() != x.len() {
                    return Err(InferError::at(
                        "shape",
                        format!(
                            "when there is 0 in shape, the rank of x ({}) must equal the target shape length ({})",
                            x.len(),
                            to.len()
                        ),
                    ));
                }
                for (t, d) in to.iter_mut().zip(&x) {
                    if *t == 0 {
                        *t = size(*d).unwrap_or(0);
                    }
                }
            }
        }
        if let Some(i) = to.iter().position(|v| *v == -1) {
            let rest: i64 = to
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != i)
                .try_fold(1i64, |acc, (_, v)| acc.checked_mul(*v))
                .ok_or_else(|| InferError::at("shape", "size overflows"))?;
            to[i] = super::shape::floor_div(from_prod, rest).ok_or_else(|| {
                InferError::at("shape", "cannot infer -1 next to a zero-sized dim")
            })?;
        }
        let to_prod = to.iter().try_fold(1i64, |acc, v| acc.checked_mul(*v));
        if to_prod != Some(from_prod) {
            return Err(InferError::at(
                "shape",
                format!(
                    "invalid target shape in reshape ({} to {:?})",
                    fmt_dims(&x),
                    to
                ),
            ));
        }
        let dims = to
            .iter()
            .map(|v| fixed(*v, "shape"))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(vec![tensor(dtype, dims)]);
    }
    // dynamic: -1 and unknown entries stay unknown
    let dims = sym
        .iter()
        .map(|v| match v {
            Some(-1) | None => Ok(UNK),
            Some(v) => fixed(*v, "shape"),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![tensor(dtype, dims)])
}

/// `reshape` of a small integer vector keeps its partial value.
fn reshape_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let v = ctx.sym("x")?;
    let s = known_ints(ctx, "shape")?;
    (s.len() <= 1).then_some(v)
}

/// Python slicing `seq[start:stop]` (step 1) bounds for a length `len`.
fn py_range(len: usize, start: Option<i64>, stop: Option<i64>) -> std::ops::Range<usize> {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: i64| -> i64 { if v < 0 { (v + n).max(0) } else { v.min(n) } };
    let s = start.map_or(0, clamp);
    let e = stop.map_or(n, clamp);
    let s = usize::try_from(s).unwrap_or(0);
    let e = usize::try_from(e).unwrap_or(0);
    s..e.max(s)
}

/// Scalar constants of a tuple parameter.
fn tuple_ints(ctx: &InferCtx<'_>, p: &str, want: DataType) -> Result<Vec<i64>, InferError> {
    ctx.bindings(p)
        .iter()
        .map(|a| {
            let t =
                a.ty.as_tensor()
                    .filter(|t| t.dtype == want && t.is_scalar());
            match (t, &a.value) {
                (Some(_), Some(v)) => {
                    super::infer::scalar_i64(v).ok_or_else(|| InferError::at(p, "bad value"))
                }
                (Some(_), None) => Err(InferError::NotConstant { param: p.into() }),
                (None, _) => Err(InferError::at(
                    p,
                    format!("{p} must be a tuple of scalar {want}"),
                )),
            }
        })
        .collect()
}

/// `reshape_like`: the output shape concatenates slices of the reference tensors' shapes.
fn reshape_like(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let refs = ctx.bindings("ref_tensors");
    let begins = tuple_ints(ctx, "begins", DataType::Int32)?;
    let ends = tuple_ints(ctx, "ends", DataType::Int32)?;
    let masks = tuple_ints(ctx, "end_masks", DataType::Bool)?;
    if begins.len() != refs.len() || ends.len() != refs.len() || masks.len() != refs.len() {
        return Err(InferError::at(
            "ref_tensors",
            "ref_tensors, begins, ends and end_masks must have exactly the same length",
        ));
    }
    let mut out = Vec::new();
    for (((r, b), e), m) in refs.iter().zip(&begins).zip(&ends).zip(&masks) {
        let t =
            r.ty.as_tensor()
                .ok_or_else(|| InferError::at("ref_tensors", "must be tensors"))?;
        let s = super::infer::known_shape(t)
            .ok_or_else(|| InferError::Undetermined("rank of a reference tensor".into()))?;
        let range = py_range(s.len(), Some(*b), if *m != 0 { None } else { Some(*e) });
        out.extend_from_slice(s.get(range).unwrap_or(&[]));
    }
    if out.iter().any(|d| d.fixed().is_none()) {
        return Err(InferError::at(
            "ref_tensors",
            format!(
                "output shape of reshape_like must not be symbolic, got {}",
                fmt_dims(&out)
            ),
        ));
    }
    let x = ctx.shape("x")?;
    if let (Some(a), Some(b)) = (product(&x), product(&out))
        && a != b
    {
        return Err(InferError::at(
            "x",
            format!(
                "input shape {} not consistent with the output shape {}",
                fmt_dims(&x),
                fmt_dims(&out)
            ),
        ));
    }
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// coremltools `solve_slice_by_index_shape`.
#[allow(clippy::too_many_arguments)]
fn slice_shape(
    x: &[Dim],
    begin: Option<Vec<i64>>,
    end: Option<Vec<i64>>,
    stride: Option<Vec<i64>>,
    begin_mask: Option<Vec<bool>>,
    end_mask: Option<Vec<bool>>,
    squeeze_mask: Option<Vec<bool>>,
) -> Result<Vec<Dim>, InferError> {
    let rank = x.len();
    let begin: Vec<Option<i64>> = match begin {
        Some(b) if !b.is_empty() => b.into_iter().map(Some).collect(),
        _ => vec![None; rank],
    };
    let end: Vec<Option<i64>> = match end {
        Some(e) if !e.is_empty() => e.into_iter().map(Some).collect(),
        _ => vec![None; rank],
    };
    let stride = stride.unwrap_or_else(|| vec![1; rank]);
    let bm = begin_mask.unwrap_or_else(|| vec![false; rank]);
    let em = end_mask.unwrap_or_else(|| vec![false; rank]);
    let sm = squeeze_mask.unwrap_or_else(|| vec![false; rank]);
    if begin.len() != rank {
        return Err(InferError::at(
            "begin",
            format!(
                "size of begin ({}) is not equal to the rank of input ({rank})",
                begin.len()
            ),
        ));
    }
    if end.len() != rank {
        return Err(InferError::at(
            "end",
            format!(
                "size of end ({}) is not equal to the rank of input ({rank})",
                end.len()
            ),
        ));
    }
    if stride.len() != rank || bm.len() != rank || em.len() != rank || sm.len() != rank {
        return Err(InferError::at(
            "stride",
            "stride and masks must have one entry per dimension of x",
        ));
    }
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        if sm[i] {
            continue;
        }
        let s = stride[i];
        if s == 0 {
            return Err(InferError::at("stride", "stride must not be 0"));
        }
        let a = s
            .checked_abs()
            .ok_or_else(|| InferError::at("stride", format!("stride {s} is out of range")))?;
        let xd = size(x[i]);
        if bm[i] && em[i] {
            out.push(match xd {
                None if s == 1 || s == -1 => x[i],
                None => UNK,
                Some(v) => fixed(super::shape::ceil_div(v, a), "slice")?,
            });
            continue;
        }
        if !bm[i]
            && !em[i]
            && let (Some(b), Some(e)) = (begin[i], end[i])
        {
            let mut o = None;
            if b >= 0 && e >= 0 && s > 0 {
                if e < b {
                    return Err(InferError::at(
                        "end",
                        format!(
                            "unsupported values for dimension {i}: (begin, end, stride) = ({b}, {e}, {s})"
                        ),
                    ));
                }
                o = Some(super::shape::ceil_div(e - b, s));
            }
            if b < 0 && e < 0 && s < 0 {
                if b < e {
                    return Err(InferError::at(
                        "end",
                        format!(
                            "unsupported values for dimension {i}: (begin, end, stride) = ({b}, {e}, {s})"
                        ),
                    ));
                }
                o = Some(super::shape::ceil_div(b - e, a));
            }
            if let Some(v @ (0 | 1)) = o {
                out.push(Dim::Fixed(v as u64));
                continue;
            }
        }
        if !bm[i]
            && em[i]
            && let Some(b) = begin[i]
            && ((b == 0 && s < 0) || (b == -1 && s > 0))
        {
            out.push(Dim::Fixed(1));
            continue;
        }
        let Some(xv) = xd else {
            out.push(UNK);
            continue;
        };
        if xv == 1 {
            out.push(Dim::Fixed(1));
            continue;
        }
        let (Some(mut b), Some(mut e)) = (
            begin[i].or(bm[i].then_some(0)),
            end[i].or(em[i].then_some(0)),
        ) else {
            out.push(UNK);
            continue;
        };
        if begin[i].is_some() && b < 0 {
            b = (b + xv).max(0);
        }
        if end[i].is_some() && e < 0 {
            e = (e + xv).max(0);
        }
        let (low, high) = if s > 0 { (0, xv) } else { (-1, xv - 1) };
        let (mut bi, ei) = if s > 0 { (b, e) } else { (e, b) };
        let (ibm, iem) = if s > 0 {
            (bm[i], em[i])
        } else {
            (em[i], bm[i])
        };
        if ibm {
            bi = low;
        }
        let ei = if iem { high } else { ei.min(high) };
        let diff = ei - bi;
        // ceil(diff / |s|) with real division
        let num = if diff >= 0 {
            super::shape::ceil_div(diff, a)
        } else {
            -((-diff) / a)
        };
        out.push(fixed(num.max(0), "slice")?);
    }
    Ok(out)
}

fn slice_args(ctx: &InferCtx<'_>, x: &[Dim]) -> Result<Vec<Dim>, InferError> {
    slice_shape(
        x,
        known_ints(ctx, "begin"),
        known_ints(ctx, "end"),
        ctx.opt_ints("stride")?,
        ctx.opt_bools("begin_mask")?,
        ctx.opt_bools("end_mask")?,
        ctx.opt_bools("squeeze_mask")?,
    )
}

fn slice_by_index(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    Ok(vec![tensor(ctx.dtype("x")?, slice_args(ctx, &x)?)])
}

/// `slice_by_index` of a small partially known integer vector.
fn slice_by_index_value(ctx: &InferCtx<'_>) -> Option<Vec<SymInt>> {
    let v = ctx.sym("x")?;
    if ctx.rank("x").ok()? != 1 {
        return None;
    }
    let n = i64::try_from(v.len()).ok()?;
    let b = *known_ints(ctx, "begin")?.first()?;
    let e = *known_ints(ctx, "end")?.first()?;
    let s = ctx
        .opt_ints("stride")
        .ok()?
        .and_then(|s| s.first().copied())
        .unwrap_or(1);
    let bm = ctx
        .opt_bools("begin_mask")
        .ok()?
        .and_then(|m| m.first().copied())
        .unwrap_or(false);
    let em = ctx
        .opt_bools("end_mask")
        .ok()?
        .and_then(|m| m.first().copied())
        .unwrap_or(false);
    let sq = ctx
        .opt_bools("squeeze_mask")
        .ok()?
        .and_then(|m| m.first().copied())
        .unwrap_or(false);
    if s == 0 {
        return None;
    }
    if sq {
        let i = py_index(b, v.len())?;
        return Some(vec![*v.get(i)?]);
    }
    // python slice semantics
    let norm = |x: i64, lo: i64, hi: i64| -> i64 {
        let x = if x < 0 { x + n } else { x };
        x.clamp(lo, hi)
    };
    let (start, stop) = if s > 0 {
        (
            if bm { 0 } else { norm(b, 0, n) },
            if em { n } else { norm(e, 0, n) },
        )
    } else {
        (
            if bm { n - 1 } else { norm(b, -1, n - 1) },
            if em { -1 } else { norm(e, -1, n - 1) },
        )
    };
    let mut out = Vec::new();
    let mut i = start;
    while (s > 0 && i < stop) || (s < 0 && i > stop) {
        out.push(*v.get(usize::try_from(i).ok()?)?);
        i += s;
    }
    Some(out)
}

fn slice_by_size(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let dtype = ctx.dtype("x")?;
    for p in ["begin", "size"] {
        let s = ctx.shape(p)?;
        match s.as_slice() {
            [n] => {
                if let Some(n) = size(*n)
                    && n != x.len() as i64
                {
                    return Err(InferError::at(
                        p,
                        format!(
                            "length of {p} ({n}) doesn't equal the input rank ({})",
                            x.len()
                        ),
                    ));
                }
            }
            _ => return Err(InferError::at(p, format!("{p} should be a 1-D tensor"))),
        }
    }
    let Some(sz) = ctx.sym("size") else {
        return Ok(vec![tensor(dtype, unknowns(x.len())?)]);
    };
    let begin = ctx.sym("begin");
    let mut out = Vec::with_capacity(x.len());
    for (i, s) in sz.iter().enumerate() {
        out.push(match s {
            None => UNK,
            Some(-1) => match begin.as_ref().and_then(|b| b.get(i).copied()) {
                Some(Some(b)) => map1(x.get(i).copied().unwrap_or(UNK), "slice_by_size", |v| {
                    v.checked_sub(b)
                })?,
                _ => UNK,
            },
            Some(v) => fixed(*v, "size")?,
        });
    }
    Ok(vec![tensor(dtype, out)])
}

/// `slice_update`: `update` must have the sliced shape; output is `x`'s type.
fn slice_update(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let upd = ctx.shape("update")?;
    let want = slice_args(ctx, &x)?;
    if !shapes_compatible(&want, &upd) {
        return Err(InferError::at(
            "update",
            format!(
                "the update tensor should have shape {}, got {}",
                fmt_dims(&want),
                fmt_dims(&upd)
            ),
        ));
    }
    if upd.is_empty() {
        return Err(InferError::at("update", "rank-0 update is not supported"));
    }
    same_as_x(ctx)
}

fn slice_params(op: Op, u: TypeDomain) -> Op {
    op.input("begin", u)
        .input("end", u)
        .opt_konst("stride", u, None)
        .opt_konst("begin_mask", ty(dt::BOOL), None)
        .opt_konst("end_mask", ty(dt::BOOL), None)
        .opt_konst("squeeze_mask", ty(dt::BOOL), None)
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let i32s = ty(dt::I32);
    let fp = dom("T", dt::FP);
    let all15 = dom("T", dt::FP_I32_BOOL);
    let all17 = dom("T", dt::IOS17_ALL);
    let idx17 = dom("U", dt::IOS17_IDX);
    v.push(
        op(Ios15, "depth_to_space")
            .input("x", fp)
            .konst("block_size", i32s)
            .infer(depth_to_space),
    );
    v.push(
        op(Ios15, "space_to_depth")
            .input("x", fp)
            .konst("block_size", i32s)
            .infer(space_to_depth),
    );
    v.push(
        op(Ios15, "pixel_shuffle")
            .input("x", fp)
            .konst("upscale_factor", i32s)
            .infer(pixel_shuffle),
    );
    v.push(
        op(Ios16, "pixel_unshuffle")
            .input("x", fp)
            .konst("downscale_factor", ty(dt::U32))
            .infer(pixel_unshuffle),
    );
    v.push(
        op(Ios15, "space_to_batch")
            .input("x", fp)
            .konst("block_shape", i32s)
            .konst("paddings", i32s)
            .infer(space_to_batch),
    );
    v.push(
        op(Ios15, "batch_to_space")
            .input("x", fp)
            .konst("block_shape", i32s)
            .konst("crops", i32s)
            .infer(batch_to_space),
    );
    for (o, t) in [(Ios15, all15), (Ios17, all17)] {
        v.push(
            op(o, "expand_dims")
                .input("x", t)
                .konst("axes", i32s)
                .value(expand_dims_value)
                .infer(expand_dims),
        );
        v.push(
            op(o, "squeeze")
                .input("x", t)
                .opt_konst("axes", i32s, None)
                .value(squeeze_value)
                .infer(squeeze),
        );
        v.push(
            op(o, "reverse")
                .input("x", t)
                .opt_konst("axes", i32s, None)
                .infer(same_as_x),
        );
        v.push(
            op(o, "transpose")
                .input("x", t)
                .konst("perm", i32s)
                .infer(transpose),
        );
        v.push(
            op(o, "slice_by_size")
                .input("x", t)
                .input("begin", if o == Ios15 { i32s } else { idx17 })
                .input("size", if o == Ios15 { i32s } else { idx17 })
                .infer(slice_by_size),
        );
        v.push(
            slice_params(
                op(o, "slice_by_index").input("x", t),
                if o == Ios15 { i32s } else { idx17 },
            )
            .value(slice_by_index_value)
            .infer(slice_by_index),
        );
        v.push(
            op(o, "reshape")
                .input("x", t)
                .input("shape", if o == Ios15 { i32s } else { idx17 })
                .value(reshape_value)
                .partial(
                    "with an unknown input dim, coremltools solves the volume constraint over symbols (`reshape(x, [shape(x)[0], -1])` keeps the known `-1` size); here such dims stay unknown",
                )
                .infer(reshape),
        );
        v.push(
            op(o, "reverse_sequence")
                .input("x", t)
                .input("lengths", if o == Ios15 { i32s } else { idx17 })
                .opt_konst("seq_axis", i32s, Some(D::Int(0)))
                .opt_konst("batch_axis", i32s, Some(D::Int(0)))
                .infer(same_as_x),
        );
    }
    let sw_t = [(Ios15, dom("T", dt::FP_I32)), (Ios17, all17)];
    for (o, t) in sw_t {
        v.push(
            op(o, "sliding_windows")
                .input("x", t)
                .konst("axis", i32s)
                .konst("size", i32s)
                .opt_konst("stride", i32s, Some(D::Int(1)))
                .infer(sliding_windows),
        );
    }
    for (o, t) in [(Ios16, all15), (Ios17, dom("T", dt::IOS17_ALL))] {
        v.push(
            op(o, "reshape_like")
                .input("x", t)
                .tuple("ref_tensors")
                .tuple("begins")
                .tuple("ends")
                .tuple("end_masks")
                .infer(reshape_like),
        );
    }
    v.push(
        slice_params(
            Op::new(Ios18, "slice_update", Family::TensorTransformation)
                .input("x", all17)
                .input("update", all17),
            idx17,
        )
        .infer(slice_update),
    );
}
