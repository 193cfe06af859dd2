//! Matrix products: `linear`, `matmul` (batched, broadcast, transposes) and `einsum`.
//!
//! Products go through faer's GEMM (its safe API over row-major slices); matrix–vector
//! products (one row, e.g. batch-1 decoding) through [`gemv`], which streams each weight
//! row once with SIMD dot products — faer treats M = 1 as a general GEMM and reaches a
//! fraction of memory bandwidth there (docs/references.md#cpu-matrix-products).
//!
//! Threads: a product is split over the rayon pool only when it is large
//! ([`PAR_FLOPS`]); batched products with many small matrices (attention heads) run one
//! matrix per task instead of splitting each.

use std::borrow::Cow;

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::simd;
use super::util::broadcast_shape;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::packed::{PackedTensor, Shared};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["linear", "matmul", "einsum"];

/// Multiply-adds above which a product runs on all threads.
pub const PAR_FLOPS: usize = 1 << 18;

/// The element count of `shape`, or an error if it overflows or exceeds the project-wide
/// limit ([`anekit_mil::types::MAX_ELEMENTS`], through [`super::shape::checked_count`]).
pub fn checked_len(shape: &[usize], what: &str) -> Result<usize, String> {
    super::shape::checked_count(shape, what)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest scratch buffer (in floats) kept per thread between calls.
const SCRATCH_KEEP: usize = 1 << 22;

/// Run `f` on a scratch buffer of `len` floats (contents unspecified), reused per thread.
///
/// Kernels that need temporary space inside parallel tasks (im2col blocks, attention
/// scores) take it from here instead of allocating: a fresh buffer above glibc's mmap
/// threshold costs a page fault per 4 KiB on first touch, which measured as much as the
/// GEMM of an im2col block. A nested use on the same thread (rayon work stealing) gets a
/// fresh buffer.
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if len > SCRATCH_KEEP {
        return f(&mut vec![0.0f32; len]);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0.0f32; len]),
    })
}

/// Whether work of `flops` multiply-adds should be split over the pool's threads.
pub fn parallel(flops: usize) -> bool {
    flops >= PAR_FLOPS && super::threads() > 1
}

/// `out[m×n] = a[m×k] · b[k×n]` (+ `out` when `accumulate`), with `a`/`b` given row-major,
/// or transposed when `ta`/`tb` (then `a` is k×m, `b` is n×k). Runs on the pool's threads
/// when large. Slices shorter than the sizes say are a programming error (panic).
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
    let par = parallel(m.saturating_mul(n).saturating_mul(k));
    gemm_par(m, n, k, a, ta, b, tb, out, accumulate, par);
}

/// [`gemm`] with the choice of threads made by the caller (`false` inside a parallel task).
#[allow(clippy::too_many_arguments)]
pub fn gemm_par(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    out: &mut [f32],
    accumulate: bool,
    par: bool,
) {
    let out = &mut out[..m * n];
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    // Matrix–vector products: stream the matrix once with dot products / axpys.
    if m == 1 && !ta {
        gemv(&a[..k], b, tb, n, k, out, accumulate, par);
        return;
    }
    if n == 1 && !tb && !ta {
        // out[i] = A[i,:] · b, A row-major m×k: the same as a GEMV with A as the "weight".
        gemv(&b[..k], a, true, m, k, out, accumulate, par);
        return;
    }
    // Small products: faer's fixed cost (packing buffers, blocking decisions) is several
    // times the arithmetic there.
    if !ta && m.saturating_mul(n).saturating_mul(k) <= SMALL_GEMM {
        small_gemm(m, n, k, a, b, tb, out, accumulate);
        return;
    }
    let lhs = if ta {
        MatRef::from_row_major_slice(&a[..k * m], k, m).transpose()
    } else {
        MatRef::from_row_major_slice(&a[..m * k], m, k)
    };
    let rhs = if tb {
        MatRef::from_row_major_slice(&b[..n * k], n, k).transpose()
    } else {
        MatRef::from_row_major_slice(&b[..k * n], k, n)
    };
    let dst = MatMut::from_row_major_slice_mut(out, m, n);
    matmul_views(dst, lhs, rhs, accumulate, par);
}

/// Multiply-adds up to which [`gemm_par`] uses [`small_gemm`] instead of faer.
const SMALL_GEMM: usize = 1 << 15;

/// `out (+)= a · b` for a small row-major `a` (`m × k`) and `b` (`k × n`, or `n × k` when
/// `tb`): per output row, `k` axpys of the rows of `b`, or `n` dot products with the rows
/// of `b`ᵀ, in one SIMD dispatch.
#[allow(clippy::too_many_arguments)]
fn small_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    tb: bool,
    out: &mut [f32],
    accumulate: bool,
) {
    let (a, b) = (&a[..m * k], &b[..k * n]);
    if tb {
        for (ar, or) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
            simd::dots(ar, b, k, or, accumulate);
        }
        return;
    }
    simd::vectorize(
        #[inline(always)]
        || {
            for (ar, or) in a.chunks_exact(k).zip(out.chunks_exact_mut(n)) {
                if !accumulate {
                    or.fill(0.0);
                }
                for (&x, br) in ar.iter().zip(b.chunks_exact(n)) {
                    for (o, &y) in or.iter_mut().zip(br) {
                        *o += x * y;
                    }
                }
            }
        },
    );
}

/// `dst (+)= lhs · rhs` on faer views; with `par`, split over the pool's threads.
///
/// Up to [`own_split_max_threads`] threads the split is ours, not faer's `Par::rayon`: the
/// output is cut into blocks of columns (or rows, when it is taller than wide), a few per
/// thread, and each block is an independent sequential GEMM. On a machine whose cores are
/// shared with other processes faer's own splitting waits on its slowest thread at every
/// synchronisation point and measured 2–5× slower than one thread; independent blocks are
/// picked up by whichever thread is free (rayon work stealing) and keep ~1.8× on two
/// threads. The cost is one more packing of the shared operand per block (≤ 1/64 of the
/// work). With more threads, blocks of ≥ 64 columns leave most threads idle on the
/// products of a network's late layers, and each block packs the shared operand again:
/// there faer's parallel GEMM (2-D blocking over one shared packing) runs the product.
pub fn matmul_views(
    dst: MatMut<'_, f32>,
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    accumulate: bool,
    par: bool,
) {
    let accum = if accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    let threads = super::threads();
    let (m, n) = (dst.nrows(), dst.ncols());
    let seq = |d: MatMut<'_, f32>, l: MatRef<'_, f32>, r: MatRef<'_, f32>| {
        faer::linalg::matmul::matmul(d, accum, l, r, 1.0f32, Par::Seq);
    };
    if !par || threads < 2 {
        seq(dst, lhs, rhs);
        return;
    }
    if threads > own_split_max_threads() {
        faer::linalg::matmul::matmul(dst, accum, lhs, rhs, 1.0f32, Par::rayon(threads));
        return;
    }
    if m.max(n) < 128 {
        seq(dst, lhs, rhs);
        return;
    }
    let blocks = threads * 4;
    if n >= m {
        let cs = n.div_ceil(blocks).max(64).next_multiple_of(16);
        dst.par_col_chunks_mut(cs).enumerate().for_each(|(i, d)| {
            let nc = d.ncols();
            seq(d, lhs, rhs.subcols(i * cs, nc));
        });
    } else {
        let rs = m.div_ceil(blocks).max(64).next_multiple_of(16);
        dst.par_row_chunks_mut(rs).enumerate().for_each(|(i, d)| {
            let nr = d.nrows();
            seq(d, lhs.subrows(i * rs, nr), rhs);
        });
    }
}

/// Threads up to which [`matmul_views`] splits products itself (see there).
pub fn own_split_max_threads() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("ANEKIT_GEMM_OWN_SPLIT_MAX")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(OWN_SPLIT_MAX_THREADS)
    })
}

/// Default of [`own_split_max_threads`].
const OWN_SPLIT_MAX_THREADS: usize = 4;

/// `out[j] (+)= Σ_i x[i]·W(i, j)` for j < n, i < k, where `W` is `w` read as n×k row-major
/// when `wt` (the layout of a `linear` weight: one dot product per output) or as k×n
/// row-major otherwise (one axpy per input element).
#[allow(clippy::too_many_arguments)]
pub fn gemv(
    x: &[f32],
    w: &[f32],
    wt: bool,
    n: usize,
    k: usize,
    out: &mut [f32],
    accumulate: bool,
    par: bool,
) {
    let out = &mut out[..n];
    let w = &w[..n * k];
    let par = par && super::threads() > 1;
    if wt {
        let run = |j0: usize, o: &mut [f32]| {
            simd::dots(x, &w[j0 * k..], k, o, accumulate);
        };
        if par {
            // ≥ 64 KiB of weights per task, a few tasks per thread.
            let t = super::threads();
            let chunk = (16_384 / k.max(1)).max(n.div_ceil(t * 4)).clamp(1, n);
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(c, o)| run(c * chunk, o));
        } else {
            run(0, out);
        }
    } else {
        let run = |j0: usize, o: &mut [f32]| {
            if !accumulate {
                o.fill(0.0);
            }
            let len = o.len();
            for (i, &xi) in x.iter().enumerate() {
                if xi != 0.0 {
                    simd::axpy(o, xi, &w[i * n + j0..i * n + j0 + len]);
                }
            }
        };
        if par {
            let chunk = n.div_ceil(super::threads() * 4).max(256);
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(c, o)| run(c * chunk, o));
        } else {
            run(0, out);
        }
    }
}

/// Row-major contiguous data of an array (a copy only when it is not contiguous).
pub fn contiguous(a: &ArrayD<f32>) -> Cow<'_, [f32]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// A numeric value as f32 data (ints converted), without copying f32 tensors.
fn numeric<'a>(v: &'a Value, what: &str) -> Result<(Vec<usize>, Cow<'a, [f32]>), String> {
    match v {
        Value::F32(a) => Ok((a.shape().to_vec(), contiguous(a))),
        Value::I32(a) => Ok((
            a.shape().to_vec(),
            Cow::Owned(a.iter().map(|&v| v as f32).collect()),
        )),
        v => Err(format!(
            "{what}: expected a numeric tensor, got {}",
            v.describe()
        )),
    }
}

fn to_value(shape: Vec<usize>, data: Vec<f32>, int: bool) -> Result<Value, String> {
    let a = ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())?;
    Ok(if int {
        Value::I32(a.mapv(|v| v.round() as i32))
    } else {
        Value::F32(a)
    })
}

/// `y[m×n] = x[m×k] · wᵀ + bias`, `w` n×k row-major (the `linear` layout).
pub fn linear_f32(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = crate::cpu::buffers::take(m * n);
    let acc = match bias {
        Some(b) => {
            for row in out.chunks_exact_mut(n) {
                row.copy_from_slice(&b[..n]);
            }
            true
        }
        None => false,
    };
    let flops = m.saturating_mul(n).saturating_mul(k);
    if m <= 4 && m > 1 {
        // A few rows: one GEMV per row (each weight row is reused from cache).
        let par = parallel(flops);
        for (r, o) in out.chunks_exact_mut(n).enumerate() {
            gemv(&x[r * k..(r + 1) * k], w, true, n, k, o, acc, par);
        }
    } else {
        gemm(m, n, k, x, false, w, true, &mut out, acc);
    }
    out
}

fn linear(args: &Args<'_>, _: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
    let xv = args.req("x")?;
    let int = matches!(xv, Value::I32(_));
    let (xs, x) = numeric(xv, "x")?;
    let (ws, w) = numeric(args.req("weight")?, "weight")?;
    let [dout, din] = ws[..] else {
        return Err(format!("weight must be rank 2, got {ws:?}"));
    };
    let k = *xs.last().ok_or("x must have rank >= 1")?;
    if k != din {
        return Err(format!("x has {k} features but the weight takes {din}"));
    }
    let m = x
        .len()
        .checked_div(k)
        .unwrap_or_else(|| xs[..xs.len() - 1].iter().product());
    let mut out_shape = xs.clone();
    if let Some(last) = out_shape.last_mut() {
        *last = dout;
    }
    checked_len(&out_shape, "output")?;
    let bias = match args.get("bias") {
        Some(b) => {
            let (_, b) = numeric(b, "bias")?;
            if b.len() != dout {
                return Err(format!("bias has {} values for {dout} outputs", b.len()));
            }
            Some(b)
        }
        None => None,
    };
    let out = linear_f32(&x, m, k, &w, dout, bias.as_deref());
    Ok(vec![to_value(out_shape, out, int)?])
}

/// Row-major offsets (in whole matrices) of each broadcast batch index into an operand whose
/// batch shape is `shape` (right-aligned against `batch`).
fn batch_offsets(shape: &[usize], batch: &[usize]) -> Vec<usize> {
    let nb: usize = batch.iter().product();
    let pad = batch.len() - shape.len();
    let mut strides = vec![0usize; batch.len()];
    let mut s = 1usize;
    for i in (0..shape.len()).rev() {
        strides[pad + i] = if shape[i] == 1 { 0 } else { s };
        s *= shape[i];
    }
    let mut offs = Vec::with_capacity(nb);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..nb {
        offs.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    offs
}

/// Batched `x · y` with numpy broadcasting of the batch dimensions (`x` is [..., m, k] or
/// its transpose, `y` [..., k, n] or its transpose); returns the output batch shape and data.
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul(
    a: &[f32],
    a_batch: &[usize],
    b: &[f32],
    b_batch: &[usize],
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let batch = broadcast_shape(a_batch, b_batch)?;
    let nb = checked_len(&batch, "batch")?;
    let total = checked_len(&[nb, m, n], "output")?;
    let mut out = crate::cpu::buffers::take(total);
    let a_nb: usize = a_batch.iter().product();
    let b_nb: usize = b_batch.iter().product();
    if b_nb == 1 && !ta && nb > 1 && a_nb == nb {
        // One shared right operand: one tall GEMM over every row of `a`.
        gemm(nb * m, n, k, a, false, b, tb, &mut out, false);
        return Ok((batch, out));
    }
    let ao = batch_offsets(a_batch, &batch);
    let bo = batch_offsets(b_batch, &batch);
    let (sa, sb, so) = (m * k, k * n, (m * n).max(1));
    let per = m.saturating_mul(n).saturating_mul(k);
    let threads = super::threads();
    let run = |i: usize, o: &mut [f32], par: bool| {
        let (oa, ob) = (ao[i] * sa, bo[i] * sb);
        gemm_par(
            m,
            n,
            k,
            &a[oa..oa + sa],
            ta,
            &b[ob..ob + sb],
            tb,
            o,
            false,
            par,
        );
    };
    if nb > 1
        && threads > 1
        && per.saturating_mul(nb) >= PAR_FLOPS
        && (nb >= 2 * threads || !parallel(per))
    {
        out.par_chunks_mut(so)
            .enumerate()
            .take(nb)
            .for_each(|(i, o)| run(i, o, false));
    } else {
        let par = parallel(per);
        for (i, o) in out.chunks_mut(so).enumerate().take(nb) {
            run(i, o, par);
        }
    }
    Ok((batch, out))
}

fn matmul(args: &Args<'_>, _: &mut RunCtx<'_>) -> Result<Vec<Value>, String> {
    let (x, y) = (args.req("x")?, args.req("y")?);
    let tx = args.bool_or("transpose_x", false)?;
    let ty = args.bool_or("transpose_y", false)?;
    let int = matches!((x, y), (Value::I32(_), Value::I32(_)));
    let (mut xs, a) = numeric(x, "x")?;
    let (mut ys, b) = numeric(y, "y")?;
    if xs.is_empty() || ys.is_empty() {
        return Err("x and y must have rank >= 1".into());
    }
    // Rank-1 operands: x becomes [1, K], y becomes [K, 1]; the added axes are dropped after.
    let (x1, y1) = (xs.len() == 1, ys.len() == 1);
    if x1 {
        xs.insert(0, 1);
    }
    if y1 {
        ys.push(1);
    }
    let (ar, br) = (xs.len(), ys.len());
    let (m, ka) = if tx && !x1 {
        (xs[ar - 1], xs[ar - 2])
    } else {
        (xs[ar - 2], xs[ar - 1])
    };
    let (kb, n) = if ty && !y1 {
        (ys[br - 1], ys[br - 2])
    } else {
        (ys[br - 2], ys[br - 1])
    };
    if ka != kb {
        return Err(format!(
            "inner dimensions differ: x {:?} vs y {:?} (transpose_x {tx}, transpose_y {ty})",
            x.shape(),
            y.shape()
        ));
    }
    let (batch, out) = batched_matmul(
        &a,
        &xs[..ar - 2],
        &b,
        &ys[..br - 2],
        m,
        n,
        ka,
        tx && !x1,
        ty && !y1,
    )?;
    let mut shape = batch;
    if !x1 {
        shape.push(m);
    }
    if !y1 {
        shape.push(n);
    }
    Ok(vec![to_value(shape, out, int)?])
}

// ------------------------------------------------------------------------------------------
// einsum
// ------------------------------------------------------------------------------------------

/// A parsed einsum equation: the subscripts of each operand and of the output.
#[derive(Debug, Clone)]
struct Equation {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

fn parse_equation(eq: &str, operands: usize) -> Result<Equation, String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    if eq.contains("...") {
        return Err(format!("einsum: ellipsis is not supported ({eq:?})"));
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let inputs: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
    if inputs.len() != operands {
        return Err(format!(
            "einsum: equation {eq:?} has {} operands, {operands} given",
            inputs.len()
        ));
    }
    for s in inputs.iter().flatten() {
        if !s.is_ascii_alphabetic() {
            return Err(format!("einsum: bad subscript {s:?} in {eq:?}"));
        }
    }
    for s in &inputs {
        for (i, c) in s.iter().enumerate() {
            if s[..i].contains(c) {
                return Err(format!(
                    "einsum: repeated subscript {c:?} within one operand is not supported ({eq:?})"
                ));
            }
        }
    }
    let output: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        None => {
            // Implicit output: the subscripts that appear once, in alphabetical order.
            let mut once: Vec<char> = inputs
                .iter()
                .flatten()
                .copied()
                .filter(|c| inputs.iter().flatten().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    for (i, c) in output.iter().enumerate() {
        if output[..i].contains(c) || !inputs.iter().flatten().any(|d| d == c) {
            return Err(format!("einsum: bad output subscript {c:?} in {eq:?}"));
        }
    }
    Ok(Equation { inputs, output })
}

/// Sum `a` (shape `shape`) over the axes whose flag is set; returns the reduced shape/data.
fn sum_axes(a: ArrayD<f32>, drop: &[bool]) -> ArrayD<f32> {
    let mut a = a;
    for ax in (0..drop.len()).rev() {
        if drop[ax] {
            a = a.sum_axis(ndarray::Axis(ax));
        }
    }
    a
}

/// numpy `einsum` for one or two operands without ellipsis or repeated subscripts within an
/// operand; size-1 dimensions broadcast against the other operand (as coremltools does for
/// its `nchw,nwhu->nchu` / `chw,whr->chr` forms).
pub fn einsum(eq: &str, ops: &[&ArrayD<f32>]) -> Result<ArrayD<f32>, String> {
    let e = parse_equation(eq, ops.len())?;
    for (s, a) in e.inputs.iter().zip(ops) {
        if s.len() != a.ndim() {
            return Err(format!(
                "einsum: operand of shape {:?} has {} subscripts",
                a.shape(),
                s.len()
            ));
        }
    }
    // Size of each subscript (1 broadcasts).
    let mut size: Vec<(char, usize)> = Vec::new();
    for (s, a) in e.inputs.iter().zip(ops) {
        for (c, &d) in s.iter().zip(a.shape()) {
            match size.iter_mut().find(|(k, _)| k == c) {
                Some((_, v)) if *v == d || d == 1 => {}
                Some((_, v)) if *v == 1 => *v = d,
                Some((_, v)) => {
                    return Err(format!(
                        "einsum: subscript {c:?} has sizes {v} and {d} ({eq:?})"
                    ));
                }
                None => size.push((*c, d)),
            }
        }
    }
    let sz = |c: char| size.iter().find(|(k, _)| *k == c).map_or(1, |&(_, v)| v);
    // Sum out subscripts that appear in one operand only and not in the output.
    let mut reduced: Vec<(Vec<char>, ArrayD<f32>)> = Vec::new();
    for (i, (s, a)) in e.inputs.iter().zip(ops).enumerate() {
        let elsewhere = |c: &char| {
            e.output.contains(c)
                || e.inputs
                    .iter()
                    .enumerate()
                    .any(|(j, t)| j != i && t.contains(c))
        };
        let drop: Vec<bool> = s.iter().map(|c| !elsewhere(c)).collect();
        let keep: Vec<char> = s.iter().copied().filter(|c| elsewhere(c)).collect();
        reduced.push((keep, sum_axes((*a).clone(), &drop)));
    }
    let permute_to =
        |labels: &[char], a: &ArrayD<f32>, order: &[char]| -> Result<Vec<f32>, String> {
            let perm: Vec<usize> = order
                .iter()
                .map(|c| {
                    labels
                        .iter()
                        .position(|d| d == c)
                        .ok_or("einsum: internal label error")
                })
                .collect::<Result<_, _>>()?;
            let v = a.view().permuted_axes(IxDyn(&perm));
            let target: Vec<usize> = order.iter().map(|&c| sz(c)).collect();
            checked_len(&target, "einsum operand")?;
            let v = v
                .broadcast(IxDyn(&target))
                .ok_or_else(|| format!("einsum: cannot broadcast {:?} to {target:?}", v.shape()))?;
            Ok(v.iter().copied().collect())
        };
    let out_shape: Vec<usize> = e.output.iter().map(|&c| sz(c)).collect();
    checked_len(&out_shape, "einsum output")?;
    if reduced.len() == 1 {
        let (labels, a) = &reduced[0];
        let data = permute_to(labels, a, &e.output)?;
        return ArrayD::from_shape_vec(IxDyn(&out_shape), data).map_err(|e| e.to_string());
    }
    let [(lx, x), (ly, y)] = &reduced[..] else {
        return Err("einsum: one or two operands are supported".into());
    };
    let in_x = |c: &char| lx.contains(c);
    let in_y = |c: &char| ly.contains(c);
    let in_o = |c: &char| e.output.contains(c);
    let batch: Vec<char> = e
        .output
        .iter()
        .copied()
        .filter(|c| in_x(c) && in_y(c))
        .collect();
    let left: Vec<char> = e
        .output
        .iter()
        .copied()
        .filter(|c| in_x(c) && !in_y(c))
        .collect();
    let right: Vec<char> = e
        .output
        .iter()
        .copied()
        .filter(|c| in_y(c) && !in_x(c))
        .collect();
    let contr: Vec<char> = lx.iter().copied().filter(|c| in_y(c) && !in_o(c)).collect();
    let prod = |v: &[char]| v.iter().map(|&c| sz(c)).product::<usize>();
    let (nb, m, n, k) = (prod(&batch), prod(&left), prod(&right), prod(&contr));
    let xo: Vec<char> = batch.iter().chain(&left).chain(&contr).copied().collect();
    let yo: Vec<char> = batch.iter().chain(&contr).chain(&right).copied().collect();
    let xd = permute_to(lx, x, &xo)?;
    let yd = permute_to(ly, y, &yo)?;
    let (_, prod_out) = batched_matmul(&xd, &[nb], &yd, &[nb], m, n, k, false, false)?;
    // prod_out is [batch..., left..., right...]; reorder to the output's subscripts.
    let mid: Vec<char> = batch.iter().chain(&left).chain(&right).copied().collect();
    let mid_shape: Vec<usize> = mid.iter().map(|&c| sz(c)).collect();
    let mid_arr = ArrayD::from_shape_vec(IxDyn(&mid_shape), prod_out).map_err(|e| e.to_string())?;
    let data = permute_to(&mid, &mid_arr, &e.output)?;
    ArrayD::from_shape_vec(IxDyn(&out_shape), data).map_err(|e| e.to_string())
}

fn einsum_kernel(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let eq = ctx
        .constant("equation")
        .ok_or("equation must be a constant")?
        .as_str()?
        .to_string();
    let n = ctx.op.inputs.get("values").map_or(0, |a| a.0.len());
    parse_equation(&eq, n)?;
    Ok(kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
        let vals = args.all("values")?;
        let arrays: Vec<&ArrayD<f32>> = vals
            .iter()
            .map(|v| v.f32())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("values: {e}"))?;
        Ok(vec![Value::F32(einsum(&eq, &arrays)?)])
    }))
}

/// Weight rows decoded per block by [`linear_packed`] (a block of `ROWS × K` floats is
/// the GEMM's right operand; 64 rows of a 4096-wide layer are 1 MiB).
const PACKED_ROWS: usize = 64;

/// `y[m×n] = x[m×k] · Wᵀ + bias` with `W` ([n, k]) kept packed: blocks of weight rows are
/// decoded into a per-thread buffer and multiplied at once (one GEMV per input row for
/// m ≤ 4, a GEMM otherwise), the blocks spread over the threads. Peak memory is one block
/// per thread, not the f32 weight.
pub fn linear_packed(
    x: &[f32],
    m: usize,
    k: usize,
    w: &PackedTensor,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (n, _) = w.dims();
    let mut out = crate::cpu::buffers::take(m * n);
    if m == 0 || n == 0 {
        return out;
    }
    let rows = PACKED_ROWS.min(n);
    let par = super::threads() > 1 && m * n * k >= PAR_FLOPS;
    // One row (a batch-1 decoding step, a classifier head) against fp16 weights: dot
    // products that convert each weight as it streams, no decoded block.
    if let Some(bits) = w.f16_bits().filter(|_| m == 1) {
        let cols = if par {
            (16_384 / k.max(1))
                .max(n.div_ceil(super::threads() * 4))
                .clamp(1, n)
        } else {
            n
        };
        let run = |(c, o): (usize, &mut [f32])| {
            let j0 = c * cols;
            simd::dots_f16(&x[..k], &bits[j0 * k..], k, o, false);
            if let Some(b) = bias {
                for (v, &bv) in o.iter_mut().zip(&b[j0..]) {
                    *v += bv;
                }
            }
        };
        if par {
            out.par_chunks_mut(cols).enumerate().for_each(run);
        } else {
            out.chunks_mut(cols).enumerate().for_each(run);
        }
        return out;
    }
    // Output columns j0..j0+len of every row, for a block of weight rows.
    let block = |j0: usize, len: usize, buf: &mut [f32], dst: MatMut<'_, f32>| {
        w.decode_rows(j0, &mut buf[..len * k]);
        let wb = &buf[..len * k];
        let mut dst = dst;
        if m <= 4 {
            for r in 0..m {
                let xr = &x[r * k..(r + 1) * k];
                for jj in 0..len {
                    let d = simd::dot(xr, &wb[jj * k..(jj + 1) * k]);
                    *dst.as_mut().get_mut(r, jj) = d + bias.map_or(0.0, |b| b[j0 + jj]);
                }
            }
        } else {
            if let Some(b) = bias {
                for r in 0..m {
                    for jj in 0..len {
                        *dst.as_mut().get_mut(r, jj) = b[j0 + jj];
                    }
                }
            }
            let lhs = MatRef::from_row_major_slice(x, m, k);
            let rhs = MatRef::from_row_major_slice(wb, len, k).transpose();
            matmul_views(dst, lhs, rhs, bias.is_some(), false);
        }
    };
    let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
    if par {
        dst.par_col_chunks_mut(rows).enumerate().for_each(|(i, d)| {
            let len = d.ncols();
            with_scratch(rows * k, |buf| block(i * rows, len, buf, d));
        });
    } else {
        let mut dst = dst;
        let mut j0 = 0;
        with_scratch(rows * k, |buf| {
            while j0 < n {
                let len = rows.min(n - j0);
                block(j0, len, buf, dst.as_mut().subcols_mut(j0, len));
                j0 += len;
            }
        });
    }
    out
}

fn packed_linear_kernel(w: Shared) -> Box<dyn Kernel> {
    kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
        let xv = args.req("x")?;
        let int = matches!(xv, Value::I32(_));
        let (xs, x) = numeric(xv, "x")?;
        let (dout, din) = w.dims();
        if w.shape().len() != 2 {
            return Err(format!("weight must be rank 2, got {:?}", w.shape()));
        }
        let k = *xs.last().ok_or("x must have rank >= 1")?;
        if k != din {
            return Err(format!("x has {k} features but the weight takes {din}"));
        }
        let m = x.len().checked_div(k).unwrap_or(0);
        let mut out_shape = xs.clone();
        if let Some(last) = out_shape.last_mut() {
            *last = dout;
        }
        checked_len(&out_shape, "output")?;
        let bias = match args.get("bias") {
            Some(b) => {
                let (_, b) = numeric(b, "bias")?;
                if b.len() != dout {
                    return Err(format!("bias has {} values for {dout} outputs", b.len()));
                }
                Some(b)
            }
            None => None,
        };
        let out = linear_packed(&x, m, k, &w, bias.as_deref());
        Ok(vec![to_value(out_shape, out, int)?])
    })
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    match ctx.op_type() {
        "linear" => Some(Ok(match ctx.packed("weight") {
            Some(w) => packed_linear_kernel(w),
            None => kernel(linear),
        })),
        "matmul" => Some(Ok(kernel(matmul))),
        "einsum" => Some(einsum_kernel(ctx)),
        _ => None,
    }
}
