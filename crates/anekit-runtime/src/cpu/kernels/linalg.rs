//! Matrix products: `linear`, `matmul` (batched, broadcast, transposes), through faer's
//! GEMM (safe API over row-major slices).

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{ArrayD, IxDyn};

use super::util::broadcast_shape;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["linear", "matmul"];

/// Multiply-adds above which a product runs on all threads.
const PAR_FLOPS: usize = 1 << 18;

/// `out[m×n] = a[m×k] · b[k×n]` (+ `out` when `accumulate`), with `a`/`b` given row-major,
/// or transposed when `ta`/`tb` (then `a` is k×m, `b` is n×k).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    out: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let lhs = if ta {
        MatRef::from_row_major_slice(a, k, m).transpose()
    } else {
        MatRef::from_row_major_slice(a, m, k)
    };
    let rhs = if tb {
        MatRef::from_row_major_slice(b, n, k).transpose()
    } else {
        MatRef::from_row_major_slice(b, k, n)
    };
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    let par = if m * n * k >= PAR_FLOPS && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    faer::linalg::matmul::matmul(
        dst,
        if accumulate {
            Accum::Add
        } else {
            Accum::Replace
        },
        lhs,
        rhs,
        1.0f32,
        par,
    );
}

/// Row-major contiguous data of an array (a copy only when it is not contiguous).
pub fn contiguous(a: &ArrayD<f32>) -> std::borrow::Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn linear(args: &Args<'_>, _: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
    let x = args.f32("x")?;
    let w = args.f32("weight")?;
    let [dout, din] = w.shape() else {
        return Err(format!("weight must be rank 2, got {:?}", w.shape()));
    };
    let (dout, din) = (*dout, *din);
    let xs = x.shape();
    let k = *xs.last().ok_or("x must have rank >= 1")?;
    if k != din {
        return Err(format!("x has {k} features but the weight takes {din}"));
    }
    let m = x.len() / k.max(1);
    let mut out_shape = xs.to_vec();
    if let Some(last) = out_shape.last_mut() {
        *last = dout;
    }
    let mut out = vec![0.0f32; m * dout];
    if let Some(b) = args.get("bias") {
        let b = b.f32().map_err(|e| format!("bias: {e}"))?;
        if b.len() != dout {
            return Err(format!("bias has {} values for {dout} outputs", b.len()));
        }
        let b = contiguous(b);
        for row in out.chunks_exact_mut(dout) {
            row.copy_from_slice(&b);
        }
        gemm(
            m,
            dout,
            din,
            &contiguous(x),
            false,
            &contiguous(w),
            true,
            &mut out,
            true,
        );
    } else {
        gemm(
            m,
            dout,
            din,
            &contiguous(x),
            false,
            &contiguous(w),
            true,
            &mut out,
            false,
        );
    }
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())?,
    )])
}

fn matmul(args: &Args<'_>, _: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
    let (x, y) = (args.req("x")?, args.req("y")?);
    let tx = args.bool_or("transpose_x", false)?;
    let ty = args.bool_or("transpose_y", false)?;
    let int = matches!((x, y), (Value::I32(_), Value::I32(_)));
    let to_f = |v: &Value| -> Result<ArrayD<f32>, String> {
        Ok(match v {
            Value::F32(a) => a.clone(),
            Value::I32(a) => a.mapv(|v| v as f32),
            v => return Err(format!("expected a numeric tensor, got {}", v.describe())),
        })
    };
    let (mut a, mut b) = (to_f(x)?, to_f(y)?);
    // Rank-1 operands: x becomes [1, K], y becomes [K, 1]; the added axes are dropped after.
    let (x1, y1) = (a.ndim() == 1, b.ndim() == 1);
    if x1 {
        a = a.insert_axis(ndarray::Axis(0));
    }
    if y1 {
        b = b.insert_axis(ndarray::Axis(1));
    }
    let (ar, br) = (a.ndim(), b.ndim());
    let (m, ka) = if tx {
        (a.shape()[ar - 1], a.shape()[ar - 2])
    } else {
        (a.shape()[ar - 2], a.shape()[ar - 1])
    };
    let (kb, n) = if ty {
        (b.shape()[br - 1], b.shape()[br - 2])
    } else {
        (b.shape()[br - 2], b.shape()[br - 1])
    };
    if ka != kb {
        return Err(format!(
            "inner dimensions differ: x {:?} vs y {:?} (transpose_x {tx}, transpose_y {ty})",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shape(&a.shape()[..ar - 2], &b.shape()[..br - 2])?;
    let nb: usize = batch.iter().product();
    let a_full: Vec<usize> = batch
        .iter()
        .copied()
        .chain(a.shape()[ar - 2..].iter().copied())
        .collect();
    let b_full: Vec<usize> = batch
        .iter()
        .copied()
        .chain(b.shape()[br - 2..].iter().copied())
        .collect();
    let av = a.broadcast(IxDyn(&a_full)).ok_or("x does not broadcast")?;
    let bv = b.broadcast(IxDyn(&b_full)).ok_or("y does not broadcast")?;
    let a_data: Vec<f32> = if av.is_standard_layout() {
        av.as_slice().map(<[f32]>::to_vec).unwrap_or_default()
    } else {
        av.iter().copied().collect()
    };
    let b_data: Vec<f32> = if bv.is_standard_layout() {
        bv.as_slice().map(<[f32]>::to_vec).unwrap_or_default()
    } else {
        bv.iter().copied().collect()
    };
    let (sa, sb) = (m * ka, ka * n);
    let mut out = vec![0.0f32; nb * m * n];
    for (i, o) in out.chunks_exact_mut((m * n).max(1)).enumerate().take(nb) {
        gemm(
            m,
            n,
            ka,
            &a_data[i * sa..(i + 1) * sa],
            tx,
            &b_data[i * sb..(i + 1) * sb],
            ty,
            o,
            false,
        );
    }
    let mut shape = batch;
    if !x1 {
        shape.push(m);
    }
    if !y1 {
        shape.push(n);
    }
    let arr = ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?;
    Ok(vec![if int {
        Value::I32(arr.mapv(|v| v.round() as i32))
    } else {
        Value::F32(arr)
    }])
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    match ctx.op_type() {
        "linear" => Some(Ok(kernel(linear))),
        "matmul" => Some(Ok(kernel(matmul))),
        _ => None,
    }
}
