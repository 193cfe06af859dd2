//! `scaled_dot_product_attention` (coremltools `ops/defs/iOS18/transformers.py`).

use crate::program::Opset::Ios18;
use crate::types::{DataType, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{at, broadcast, dims_compatible, fmt_dims, tensor};
use super::{Family, Op, OpDef, dom, dt};

/// `softmax(Q·Kᵀ/√E + mask)·V`: query `[B.., L, E]`, key `[B.., S, E]`, value `[B.., S, EV]`
/// → `[B.., L, EV]`; a mask must broadcast against `[B.., L, S]`.
fn sdpa(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let q = ctx.shape("query")?;
    let k = ctx.shape("key")?;
    let v = ctx.shape("value")?;
    if q.len() != k.len() || q.len() != v.len() {
        return Err(InferError::at(
            "key",
            format!(
                "query, key, value must have the same rank, got {}, {}, {}",
                q.len(),
                k.len(),
                v.len()
            ),
        ));
    }
    if q.len() < 3 {
        return Err(InferError::at(
            "query",
            format!(
                "query, key, value must have at least rank 3, got {}",
                q.len()
            ),
        ));
    }
    let n = q.len();
    let (qb, kb, vb) = (&q[..n - 2], &k[..n - 2], &v[..n - 2]);
    let all_known = |s: &[crate::types::Dim]| s.iter().all(|d| d.fixed().is_some());
    if all_known(qb) && all_known(kb) && all_known(vb) && (qb != kb || qb != vb) {
        return Err(InferError::at(
            "key",
            format!(
                "query, key, value must have the same batch dims, got {}, {}, {}",
                fmt_dims(qb),
                fmt_dims(kb),
                fmt_dims(vb)
            ),
        ));
    }
    if !dims_compatible(at(&q, -1, "query")?, at(&k, -1, "key")?) {
        return Err(InferError::at(
            "key",
            "query and key must have the same embedding dimension",
        ));
    }
    let s_key = at(&k, -2, "key")?;
    if !dims_compatible(s_key, at(&v, -2, "value")?) {
        return Err(InferError::at(
            "value",
            "key and value must have the same sequence length",
        ));
    }
    if ctx.has("attn_mask") {
        let m = ctx.shape("attn_mask")?;
        if !dims_compatible(at(&m, -1, "attn_mask")?, s_key) {
            return Err(InferError::at(
                "attn_mask",
                "key and mask must have the same sequence length",
            ));
        }
        broadcast(&q[..n - 1], &m[..m.len() - 1])
            .map_err(|e| InferError::at("attn_mask", e.to_string()))?;
    }
    let mut out = q[..n - 1].to_vec();
    out.push(at(&v, -1, "value")?);
    Ok(vec![tensor(ctx.dtype("query")?, out)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let t = dom("T", dt::FP);
    v.push(
        Op::new(Ios18, "scaled_dot_product_attention", Family::Transformers)
            .input("query", t)
            .input("key", t)
            .input("value", t)
            .opt_input("attn_mask", dom("M", &[Bool, Fp16, Fp32]), None)
            .infer(sdpa),
    );
}
