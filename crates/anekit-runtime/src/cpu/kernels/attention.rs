//! `scaled_dot_product_attention` (iOS18): `softmax(Q·Kᵀ/√E + mask)·V`.
//!
//! A bool mask becomes −∞ where false; a float mask is added to the scores; the mask
//! broadcasts against `[B, *, L, S]`. Each (batch, head) item is independent: large inputs
//! run one item per task with sequential GEMMs, a single large item splits its GEMMs over
//! the threads. Scores are computed in blocks of query rows so that the L×S matrix never
//! needs more than about 1M floats per task. The softmax subtracts the row maximum (see
//! [`super::activation`]); a row whose every score is −∞ gives NaN, as coremltools' numpy
//! definition does.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::{checked_len, contiguous, gemm_par, parallel};
use super::simd;
use super::util::broadcast_shape;
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["scaled_dot_product_attention"];

/// An attention mask, as additive f32 values or a keep-flag per score.
pub enum Mask<'a> {
    /// Added to the scaled scores.
    Add(&'a [f32]),
    /// `false` masks the score out (−∞).
    Keep(&'a [bool]),
}

/// Offsets (in elements) of each broadcast batch index into an operand of row-major shape
/// `shape` whose batch dims (all but the last two) are right-aligned against `batch`; the
/// operand's matrices have `mat` elements.
fn offsets(shape: &[usize], batch: &[usize], mat: usize) -> Vec<usize> {
    let nb: usize = batch.iter().product();
    let sb = &shape[..shape.len().saturating_sub(2)];
    let pad = batch.len().saturating_sub(sb.len());
    let mut strides = vec![0usize; batch.len()];
    let mut s = mat;
    for i in (0..sb.len()).rev() {
        if pad + i < batch.len() {
            strides[pad + i] = if sb[i] == 1 { 0 } else { s };
        }
        s *= sb[i];
    }
    let mut idx = vec![0usize; batch.len()];
    let mut out = Vec::with_capacity(nb);
    for _ in 0..nb {
        out.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..batch.len()).rev() {
            idx[d] += 1;
            if idx[d] < batch[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Attention on row-major data. `qs`, `ks`, `vs` are the shapes of `q`, `k`, `v`;
/// `mask` with its shape is optional. Returns the output shape and data.
pub fn sdpa(
    q: &[f32],
    qs: &[usize],
    k: &[f32],
    ks: &[usize],
    v: &[f32],
    vs: &[usize],
    mask: Option<(Mask<'_>, &[usize])>,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let r = qs.len();
    if r < 3 || ks.len() != r || vs.len() != r {
        return Err(format!(
            "query, key and value must have the same rank >= 3, got {qs:?}, {ks:?}, {vs:?}"
        ));
    }
    let (l, e) = (qs[r - 2], qs[r - 1]);
    let (s, ek) = (ks[r - 2], ks[r - 1]);
    let (sv, ev) = (vs[r - 2], vs[r - 1]);
    if ek != e {
        return Err(format!(
            "query {qs:?} and key {ks:?} differ in embedding size"
        ));
    }
    if sv != s {
        return Err(format!(
            "key {ks:?} and value {vs:?} differ in sequence length"
        ));
    }
    let batch = broadcast_shape(&qs[..r - 2], &ks[..r - 2])?;
    let batch = broadcast_shape(&batch, &vs[..r - 2])?;
    let mut oshape = batch.clone();
    oshape.extend([l, ev]);
    let total = checked_len(&oshape, "output")?;
    let nb: usize = batch.iter().product();
    let qo = offsets(qs, &batch, l * e);
    let ko = offsets(ks, &batch, s * e);
    let vo = offsets(vs, &batch, s * ev);
    // Mask: broadcast to [batch..., L, S].
    let (mo, m_rows) = match &mask {
        Some((m, ms)) => {
            let mlen = match m {
                Mask::Add(a) => a.len(),
                Mask::Keep(a) => a.len(),
            };
            if ms.is_empty() || ms[ms.len() - 1] != s {
                return Err(format!("attn_mask {ms:?} must end in the key length {s}"));
            }
            let ml = if ms.len() >= 2 { ms[ms.len() - 2] } else { 1 };
            if ml != 1 && ml != l {
                return Err(format!(
                    "attn_mask {ms:?} does not broadcast to {l} query rows"
                ));
            }
            let mut full = batch.clone();
            full.extend([l, s]);
            broadcast_shape(ms, &full)
                .ok()
                .filter(|b| *b == full)
                .ok_or_else(|| format!("attn_mask {ms:?} does not broadcast to {full:?}"))?;
            let shape2: Vec<usize> = if ms.len() >= 2 {
                ms.to_vec()
            } else {
                vec![1, s]
            };
            let offs = offsets(&shape2, &batch, ml * s);
            if offs.iter().any(|&o| o + ml * s > mlen) {
                return Err("attn_mask is smaller than its shape says".into());
            }
            (offs, ml)
        }
        None => (Vec::new(), 0),
    };
    let scale = 1.0 / (e as f32).sqrt();
    let mut out = crate::cpu::buffers::take(total);
    let per_item = l.saturating_mul(s).saturating_mul(e + ev);
    // Query rows per block: ~1M scores.
    let lb = (1 << 20) / s.max(1);
    let lb = lb.clamp(1, l.max(1));
    let item = |i: usize, o: &mut [f32], par: bool| {
        let qi = &q[qo[i]..qo[i] + l * e];
        let ki = &k[ko[i]..ko[i] + s * e];
        let vi = &v[vo[i]..vo[i] + s * ev];
        let mut scores = vec![0.0f32; lb * s];
        let mut l0 = 0;
        while l0 < l {
            let rows = lb.min(l - l0);
            let sc = &mut scores[..rows * s];
            gemm_par(rows, s, e, &qi[l0 * e..], false, ki, true, sc, false, par);
            for (rr, row) in sc.chunks_exact_mut(s).enumerate() {
                let lr = l0 + rr;
                match &mask {
                    Some((Mask::Add(m), _)) => {
                        let mr = &m[mo[i] + if m_rows == 1 { 0 } else { lr * s }..][..s];
                        simd::vectorize(
                            #[inline(always)]
                            || {
                                for (x, &a) in row.iter_mut().zip(mr) {
                                    *x = *x * scale + a;
                                }
                            },
                        );
                    }
                    Some((Mask::Keep(m), _)) => {
                        let mr = &m[mo[i] + if m_rows == 1 { 0 } else { lr * s }..][..s];
                        for (x, &keep) in row.iter_mut().zip(mr) {
                            *x = if keep { *x * scale } else { f32::NEG_INFINITY };
                        }
                    }
                    None => simd::scale(row, scale),
                }
                let mx = simd::max(row);
                let sum = simd::exp_sub_sum(row, mx);
                simd::scale(row, 1.0 / sum);
            }
            gemm_par(
                rows,
                ev,
                s,
                sc,
                false,
                vi,
                false,
                &mut o[l0 * ev..(l0 + rows) * ev],
                false,
                par,
            );
            l0 += rows;
        }
    };
    let chunk = (l * ev).max(1);
    let threads = super::threads();
    if nb > 1 && parallel(per_item.saturating_mul(nb)) && (nb >= threads || !parallel(per_item)) {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, o)| item(i, o, false));
    } else {
        let par = parallel(per_item);
        for (i, o) in out.chunks_mut(chunk).enumerate().take(nb) {
            item(i, o, par);
        }
    }
    Ok((oshape, out))
}

fn run(args: &Args<'_>) -> Result<Vec<Value>, String> {
    let q = args.f32("query")?;
    let k = args.f32("key")?;
    let v = args.f32("value")?;
    let (qd, kd, vd) = (contiguous(q), contiguous(k), contiguous(v));
    let mask_bool;
    let mask_f;
    let mask = match args.get("attn_mask") {
        None => None,
        Some(Value::Bool(m)) => {
            mask_bool = match m.as_slice() {
                Some(s) => std::borrow::Cow::Borrowed(s),
                None => std::borrow::Cow::Owned(m.iter().copied().collect::<Vec<bool>>()),
            };
            Some((Mask::Keep(&mask_bool), m.shape()))
        }
        Some(Value::F32(m)) => {
            mask_f = contiguous(m);
            Some((Mask::Add(&mask_f), m.shape()))
        }
        Some(other) => {
            return Err(format!(
                "attn_mask must be bool or floating point, got {}",
                other.describe()
            ));
        }
    };
    let (shape, out) = sdpa(&qd, q.shape(), &kd, k.shape(), &vd, v.shape(), mask)?;
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    match ctx.op_type() {
        "scaled_dot_product_attention" => {
            Some(Ok(kernel(|a: &Args<'_>, _: &mut RunCtx<'_>| run(a))))
        }
        _ => None,
    }
}
