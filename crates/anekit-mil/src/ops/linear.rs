//! `linear`, `matmul`, `einsum` (coremltools `ops/defs/iOS15/linear.py`, `iOS17/linear.py`).

use crate::program::Opset::{Ios15, Ios17};
use crate::types::{Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{UNK, at, broadcast, dims_compatible, fmt_dims, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

/// `linear`: `x[..., Din] · weight[Dout, Din]ᵀ (+ bias[Dout])` → `[..., Dout]` in x's type.
fn linear(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let w = ctx.shape("weight")?;
    let [dout, din] = w.as_slice() else {
        return Err(InferError::at(
            "weight",
            format!("weight must be rank 2, got {}", fmt_dims(&w)),
        ));
    };
    let last = at(&x, -1, "x")?;
    if !dims_compatible(last, *din) {
        return Err(InferError::at(
            "weight",
            format!(
                "last dimension of x ({last}) does not match the last dimension of weight ({din})"
            ),
        ));
    }
    if ctx.has("bias") {
        let b = ctx.shape("bias")?;
        match b.as_slice() {
            [n] if dims_compatible(*n, *dout) => {}
            _ => {
                return Err(InferError::at(
                    "bias",
                    format!(
                        "bias {} does not match the first dimension of weight ({dout})",
                        fmt_dims(&b)
                    ),
                ));
            }
        }
    }
    let mut out = x;
    if let Some(l) = out.last_mut() {
        *l = *dout;
    }
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// The output shape of `matmul` (numpy semantics with optional transposes; `x` may be a
/// vector, `y` may not).
fn matmul_shape(ctx: &InferCtx<'_>) -> Result<Vec<Dim>, InferError> {
    let mut x = ctx.shape("x")?;
    let mut y = ctx.shape("y")?;
    let x_rank = x.len();
    let tx = ctx.bool("transpose_x")?;
    let ty = ctx.bool("transpose_y")?;
    if x_rank == 1 && tx {
        return Err(InferError::at(
            "transpose_x",
            "x is rank 1, but transpose_x is True",
        ));
    }
    if y.len() < 2 {
        return Err(InferError::at("y", "y must have rank at least 2"));
    }
    if x_rank == 0 {
        return Err(InferError::at("x", "x must have rank at least 1"));
    }
    let swap = |s: &mut Vec<Dim>| {
        let n = s.len();
        s.swap(n - 2, n - 1);
    };
    if tx {
        swap(&mut x);
    }
    if ty {
        swap(&mut y);
    }
    if x_rank == 1 {
        x.insert(0, Dim::Fixed(1));
    }
    let (xk, yk) = (at(&x, -1, "x")?, at(&y, -2, "y")?);
    if !dims_compatible(xk, yk) {
        return Err(InferError::invalid(format!(
            "x {} and y {} are not compatible for matmul",
            fmt_dims(&x),
            fmt_dims(&y)
        )));
    }
    let (xb, yb) = (&x[..x.len() - 2], &y[..y.len() - 2]);
    let mut out = broadcast(xb, yb)?;
    out.push(at(&x, -2, "x")?);
    out.push(at(&y, -1, "y")?);
    if x_rank == 1 {
        out.remove(0);
    }
    Ok(out)
}

fn matmul15(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    Ok(vec![tensor(ctx.dtype("x")?, matmul_shape(ctx)?)])
}

/// iOS17 `matmul`: `x` and `y` may differ in type when exactly one is a `const`; the output
/// takes the type of the non-constant one.
fn matmul17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (xd, yd) = (ctx.dtype("x")?, ctx.dtype("y")?);
    let xc = ctx.arg("x").is_some_and(|a| a.from_const);
    let yc = ctx.arg("y").is_some_and(|a| a.from_const);
    if xc == yc && xd != yd {
        return Err(InferError::at(
            "y",
            format!(
                "when x and y are both {}, their dtype need to match, but got x as {xd} and y as {yd}",
                if xc { "const" } else { "non-const" }
            ),
        ));
    }
    let dtype = if xc && !yc { yd } else { xd };
    Ok(vec![tensor(dtype, matmul_shape(ctx)?)])
}

/// coremltools `parse_einsum_equation`: letters numbered in order of first appearance.
fn parse_einsum(eq: &str) -> Option<(Vec<usize>, Vec<usize>, Vec<usize>)> {
    let (lhs, out) = eq.split_once("->")?;
    let (a, b) = lhs.split_once(',')?;
    let mut seen: Vec<char> = Vec::new();
    let mut vec_of = |s: &str| -> Vec<usize> {
        s.chars()
            .map(|c| match seen.iter().position(|&x| x == c) {
                Some(i) => i,
                None => {
                    seen.push(c);
                    seen.len() - 1
                }
            })
            .collect()
    };
    let va = vec_of(a);
    let vb = vec_of(b);
    let vo = vec_of(out);
    Some((va, vb, vo))
}

/// `einsum`: only `nchw,nwhr->nchr` and `chw,whr->chr` patterns (with broadcasting of the
/// size-1 dims), like coremltools.
fn einsum(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let vals = ctx.bindings("values");
    let [x, y] = vals else {
        return Err(InferError::at(
            "values",
            "einsum op must get 'values' of length 2",
        ));
    };
    let (ValueType::Tensor(xt), ValueType::Tensor(yt)) = (&x.ty, &y.ty) else {
        return Err(InferError::at("values", "values must be tensors"));
    };
    if xt.dtype != yt.dtype {
        return Err(InferError::at("values", "input types do not match"));
    }
    let und = || InferError::Undetermined("rank of einsum values".into());
    let xs = super::infer::known_shape(xt).ok_or_else(und)?;
    let ys = super::infer::known_shape(yt).ok_or_else(und)?;
    if xs.len() != ys.len() || !(3..=4).contains(&xs.len()) {
        return Err(InferError::at(
            "values",
            "inputs must be of the same rank, 3 or 4",
        ));
    }
    let eq = ctx.str("equation")?;
    let ok = match parse_einsum(&eq) {
        Some((a, b, o)) => {
            (a == [0, 1, 2, 3] && b == [0, 3, 2, 4] && o == [0, 1, 2, 4])
                || (a == [0, 1, 2] && b == [2, 1, 3] && o == [0, 1, 3])
        }
        None => false,
    };
    if !ok {
        return Err(InferError::at(
            "equation",
            format!("unsupported einsum equation {eq}"),
        ));
    }
    if !dims_compatible(at(&xs, -1, "values")?, at(&ys, -3, "values")?) {
        return Err(InferError::at("values", "input shapes incompatible"));
    }
    let pick = |i: i64| -> Result<Dim, InferError> {
        let (a, b) = (at(&xs, i, "values")?, at(&ys, i, "values")?);
        Ok(match (a, b) {
            (Dim::Fixed(p), Dim::Fixed(q)) => {
                if p != 1 && q != 1 && p != q {
                    return Err(InferError::at("values", "input shapes incompatible"));
                }
                Dim::Fixed(p.max(q))
            }
            _ => UNK,
        })
    };
    let mut out = vec![Dim::Fixed(1); xs.len()];
    let n = out.len();
    out[n - 1] = at(&ys, -1, "values")?;
    out[n - 3] = at(&xs, -3, "values")?;
    out[n - 2] = pick(-2)?;
    if n == 4 {
        out[0] = pick(-4)?;
    }
    Ok(vec![tensor(xt.dtype, out)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let t = dom("T", dt::FP_I32);
    let u = dom("U", dt::FP_I32);
    for (o, w) in [(Ios15, t), (Ios17, u)] {
        v.push(
            Op::new(o, "linear", Family::Linear)
                .input("x", t)
                .konst("weight", w)
                .opt_konst(
                    "bias",
                    w,
                    Some(D::Computed("zeros of length weight.shape[0]")),
                )
                .infer(linear),
        );
    }
    for (o, yd, f) in [
        (Ios15, t, matmul15 as super::InferFn),
        (Ios17, u, matmul17 as super::InferFn),
    ] {
        v.push(
            Op::new(o, "matmul", Family::Linear)
                .input("x", t)
                .input("y", yd)
                .opt_konst("transpose_x", ty(dt::BOOL), Some(D::Bool(false)))
                .opt_konst("transpose_y", ty(dt::BOOL), Some(D::Bool(false)))
                .infer(f),
        );
    }
    v.push(
        Op::new(Ios15, "einsum", Family::Linear)
            .tuple("values")
            .konst("equation", ty(dt::STR))
            .infer(einsum),
    );
}
