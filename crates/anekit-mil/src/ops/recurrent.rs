//! Recurrent layers (coremltools `ops/defs/iOS15/recurrent.py`, `iOS17/recurrent.py`,
//! `iOS18/recurrent.py`).

use crate::program::Opset::{self, Ios15, Ios17, Ios18};
use crate::types::{Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{fmt_dims, map1, size, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, Outputs, TypeDomain, dom, dt, ty};

/// `x` as `(sequence, batch, input)`.
fn seq_batch(ctx: &InferCtx<'_>) -> Result<(Dim, Dim), InferError> {
    let x = ctx.shape("x")?;
    match x.as_slice() {
        [s, b, _] => Ok((*s, *b)),
        _ => Err(InferError::at(
            "x",
            format!("expecting rank 3 input, got {}", fmt_dims(&x)),
        )),
    }
}

fn rank2(ctx: &InferCtx<'_>, p: &str) -> Result<[Dim; 2], InferError> {
    let s = ctx.shape(p)?;
    <[Dim; 2]>::try_from(s.as_slice()).map_err(|_| {
        InferError::at(
            p,
            format!("expecting a rank 2 weight, got {}", fmt_dims(&s)),
        )
    })
}

fn out_seq(ctx: &InferCtx<'_>, s: Dim) -> Result<Dim, InferError> {
    Ok(if ctx.bool("output_sequence")? {
        s
    } else {
        Dim::Fixed(1)
    })
}

fn direction(ctx: &InferCtx<'_>, allowed: &[&str]) -> Result<String, InferError> {
    let d = ctx.str("direction")?;
    if allowed.contains(&d.as_str()) {
        Ok(d)
    } else {
        Err(InferError::at(
            "direction",
            format!("direction {d} not supported; supported: {allowed:?}"),
        ))
    }
}

fn gru(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (s, b) = seq_batch(ctx)?;
    rank2(ctx, "weight_ih")?;
    let [hidden_dim, h] = rank2(ctx, "weight_hh")?;
    direction(ctx, &["forward", "reverse"])?;
    if let (Some(hd), Some(hs)) = (size(hidden_dim), size(h))
        && hd / 3 != hs
    {
        return Err(InferError::at(
            "weight_hh",
            format!(
                "incorrect weight matrix: hidden dim size mismatch; expecting <3*H, H>, got [{hd}, {hs}]"
            ),
        ));
    }
    let dtype = ctx.dtype("x")?;
    Ok(vec![
        tensor(dtype, vec![out_seq(ctx, s)?, b, h]),
        tensor(dtype, vec![b, h]),
    ])
}

fn lstm_weights(ctx: &InferCtx<'_>, ih: &str, hh: &str) -> Result<Dim, InferError> {
    let [ih0, _] = rank2(ctx, ih)?;
    let [hh0, h] = rank2(ctx, hh)?;
    if let (Some(h), Some(a), Some(b)) = (size(h), size(ih0), size(hh0))
        && (h == 0 || a / h != 4 || b / h != 4)
    {
        return Err(InferError::at(
            hh,
            format!(
                "incorrect weight matrix: hidden dim size mismatch; expecting <4*H, H>, got {ih} [{a}, ..], {hh} [{b}, {h}]"
            ),
        ));
    }
    Ok(h)
}

fn lstm(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (s, b) = seq_batch(ctx)?;
    let dir = direction(ctx, &["forward", "reverse", "bidirectional"])?;
    let h = lstm_weights(ctx, "weight_ih", "weight_hh")?;
    let nd = if dir == "bidirectional" {
        for p in ["weight_ih_back", "weight_hh_back"] {
            if !ctx.has(p) {
                return Err(InferError::MissingParam { param: p.into() });
            }
        }
        lstm_weights(ctx, "weight_ih_back", "weight_hh_back")?;
        2
    } else {
        1
    };
    const ACTS: &[&str] = &[
        "tanh",
        "scaled_tanh",
        "sigmoid",
        "hard_sigmoid",
        "relu",
        "linear",
    ];
    for p in ["recurrent_activation", "cell_activation", "activation"] {
        let a = ctx.str(p)?;
        if !ACTS.contains(&a.to_lowercase().as_str()) {
            return Err(InferError::at(p, format!("activation `{a}` not supported")));
        }
    }
    let hh = map1(h, "hidden size", |v| v.checked_mul(nd))?;
    let dtype = ctx.dtype("x")?;
    Ok(vec![
        tensor(dtype, vec![out_seq(ctx, s)?, b, hh]),
        tensor(dtype, vec![b, hh]),
        tensor(dtype, vec![b, hh]),
    ])
}

fn rnn(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (s, b) = seq_batch(ctx)?;
    let [h, _] = rank2(ctx, "weight_ih")?;
    rank2(ctx, "weight_hh")?;
    direction(ctx, &["forward", "reverse"])?;
    let dtype = ctx.dtype("x")?;
    Ok(vec![
        tensor(dtype, vec![out_seq(ctx, s)?, b, h]),
        tensor(dtype, vec![b, h]),
    ])
}

fn rec(o: Opset, name: &'static str, t: TypeDomain) -> Op {
    Op::new(o, name, Family::Recurrent)
        .input("x", t)
        .input("initial_h", t)
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let s = ty(dt::STR);
    let b = ty(dt::BOOL);
    let fwd = Some(D::Str("forward"));
    let f = Some(D::Bool(false));
    for (o, t) in [
        (Ios15, dom("T", dt::FP32)),
        (Ios17, dom("T", dt::FP)),
        (Ios18, dom("T", dt::FP)),
    ] {
        let g = rec(o, "gru", t)
            .konst("weight_ih", t)
            .konst("weight_hh", t)
            .opt_konst("bias", t, None)
            .opt_konst("direction", s, fwd)
            .opt_konst("output_sequence", b, f)
            .opt_konst("recurrent_activation", s, Some(D::Str("sigmoid")))
            .opt_konst("activation", s, Some(D::Str("tanh")));
        let g = if o == Ios18 {
            g.opt_konst("reset_after", b, f).opt_konst(
                "input_bias",
                t,
                Some(D::Computed("zeros of length 3*H")),
            )
        } else {
            g
        };
        v.push(g.outputs(Outputs::Exactly(2)).infer(gru));
    }
    for (o, t) in [(Ios15, dom("T", dt::FP32)), (Ios17, dom("T", dt::FP))] {
        v.push(
            rec(o, "lstm", t)
                .input("initial_c", t)
                .konst("weight_ih", t)
                .konst("weight_hh", t)
                .opt_konst("bias", t, None)
                .opt_konst("peephole", t, None)
                .opt_konst("weight_ih_back", t, None)
                .opt_konst("weight_hh_back", t, None)
                .opt_konst("bias_back", t, None)
                .opt_konst("peephole_back", t, None)
                .opt_konst("direction", s, fwd)
                .opt_konst("output_sequence", b, f)
                .opt_konst("recurrent_activation", s, Some(D::Str("sigmoid")))
                .opt_konst("cell_activation", s, Some(D::Str("tanh")))
                .opt_konst("activation", s, Some(D::Str("tanh")))
                .opt_konst("clip", t, None)
                .outputs(Outputs::Exactly(3))
                .infer(lstm),
        );
        v.push(
            rec(o, "rnn", t)
                .konst("weight_ih", t)
                .konst("weight_hh", t)
                .opt_konst("bias", t, None)
                .opt_konst("direction", s, fwd)
                .opt_konst("output_sequence", b, f)
                .opt_konst("activation", s, Some(D::Str("tanh")))
                .outputs(Outputs::Exactly(2))
                .infer(rnn),
        );
    }
}
