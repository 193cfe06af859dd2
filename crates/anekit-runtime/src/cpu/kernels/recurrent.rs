//! Recurrent layers: `lstm`, `gru`, `rnn` (coremltools `ops/defs/iOS15/recurrent.py`; the
//! iOS17 revisions only add fp16; iOS18 `gru` adds `reset_after` and `input_bias`).
//!
//! Semantics, as coremltools defines them and its op tests check them against Core ML
//! (`ops/tests/iOS14/test_recurrent.py`):
//! - `x` is `[seq, batch, input]`; weights are `[G·H, input]` / `[G·H, H]` with the gate
//!   blocks stacked in the op's order — `lstm`: input, forget, output, cell (`ifoz`); `gru`:
//!   reset, output (new), update (`r|o|z`); `rnn`: one block. `bias` is the sum of the
//!   input-hidden and hidden-hidden biases (`[G·H]`); `lstm` `peephole` is `[3·H]` (`i|f|o`).
//! - `lstm`: `i, f = σr(Wx + Rh + b + p⊙c₋₁)`, `z = σc(Wx + Rh + b)`,
//!   `c = clip(f⊙c₋₁ + i⊙z)` (`clip` bounds the cell state to `[-clip, clip]`),
//!   `o = σr(Wx + Rh + b + p⊙c)`, `h = o⊙σ(c)`.
//! - `gru`: `r, z = σr(Wx + Rh + b)`, `o = σ(W_o x + b_o + R_o(r⊙h))` (iOS15; iOS18
//!   `reset_after=true`: `σ(W_o x + b_io + r⊙(R_o h + b_o))`, where `input_bias` holds the
//!   input-side biases and `bias` the hidden-side ones), `h = (1−z)⊙o + z⊙h₋₁`.
//! - `rnn`: `h = σ(Wx + Rh + b)`.
//! - `direction="reverse"` runs the sequence from its end and emits the hidden states in
//!   processing order (output step `k` is the state after `k+1` steps); `bidirectional`
//!   (`lstm` only) concatenates the forward and backward states on the last axis, the
//!   backward ones aligned with the input time step (PyTorch's layout), with `initial_h`/`c`
//!   `[batch, 2H]` holding the forward half first and the `_back` weights for the backward
//!   direction. Without `output_sequence` the first output is `[1, batch, D·H]`: the final
//!   state of each direction.
//! - Activations: `tanh`, `scaled_tanh` (default α = β = 1, i.e. tanh), `sigmoid`,
//!   `hard_sigmoid`/`sigmoid_hard` (α = 0.2, β = 0.5), `relu`, `linear`.

use super::linalg::{contiguous, gemm};
use super::util::{const_bool, const_f32_opt, const_str, try_zeros};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

/// Op types of this family.
pub const OPS: &[&str] = &["gru", "lstm", "rnn"];

/// Elements of the precomputed input projection held at once (the projection is computed
/// for blocks of time steps of about this size).
const XW_BLOCK: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Tanh,
    Sigmoid,
    HardSigmoid,
    Relu,
    Linear,
}

impl Act {
    fn parse(name: &str, param: &str) -> Result<Act, String> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "tanh" | "scaled_tanh" => Act::Tanh,
            "sigmoid" => Act::Sigmoid,
            "hard_sigmoid" | "sigmoid_hard" => Act::HardSigmoid,
            "relu" => Act::Relu,
            "linear" => Act::Linear,
            other => {
                return Err(format!(
                    "{param}: activation {other:?} is not supported (tanh, scaled_tanh, \
                     sigmoid, hard_sigmoid, relu, linear)"
                ));
            }
        })
    }

    #[inline]
    fn apply(self, x: f32) -> f32 {
        match self {
            Act::Tanh => x.tanh(),
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::HardSigmoid => (0.2 * x + 0.5).clamp(0.0, 1.0),
            Act::Relu => x.max(0.0),
            Act::Linear => x,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Lstm,
    Gru,
    Rnn,
}

impl Kind {
    /// Gate blocks in the weights.
    fn gates(self) -> usize {
        match self {
            Kind::Lstm => 4,
            Kind::Gru => 3,
            Kind::Rnn => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

#[derive(Clone, Debug)]
struct Config {
    kind: Kind,
    direction: Direction,
    output_sequence: bool,
    /// Gate activation (`recurrent_activation`; `activation` for `rnn`).
    recurrent: Act,
    /// `lstm` cell-gate activation.
    cell: Act,
    /// `lstm`: applied to the cell state; `gru`: the output gate.
    activation: Act,
    clip: Option<f32>,
    reset_after: bool,
}

fn config(ctx: &OpCtx<'_>, kind: Kind) -> Result<Config, String> {
    let direction = match const_str(ctx, "direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" if kind == Kind::Lstm => Direction::Bidirectional,
        d => {
            return Err(format!(
                "direction {d:?} is not supported (forward, reverse{})",
                if kind == Kind::Lstm {
                    ", bidirectional"
                } else {
                    ""
                }
            ));
        }
    };
    let output_sequence = const_bool(ctx, "output_sequence", false)?;
    let (recurrent, cell, activation) = match kind {
        Kind::Lstm => (
            Act::parse(
                &const_str(ctx, "recurrent_activation", "sigmoid")?,
                "recurrent_activation",
            )?,
            Act::parse(
                &const_str(ctx, "cell_activation", "tanh")?,
                "cell_activation",
            )?,
            Act::parse(&const_str(ctx, "activation", "tanh")?, "activation")?,
        ),
        Kind::Gru => (
            Act::parse(
                &const_str(ctx, "recurrent_activation", "sigmoid")?,
                "recurrent_activation",
            )?,
            Act::Tanh,
            Act::parse(&const_str(ctx, "activation", "tanh")?, "activation")?,
        ),
        Kind::Rnn => {
            let a = Act::parse(&const_str(ctx, "activation", "tanh")?, "activation")?;
            (a, a, a)
        }
    };
    let clip = if kind == Kind::Lstm {
        const_f32_opt(ctx, "clip")?
    } else {
        None
    };
    let reset_after = kind == Kind::Gru && const_bool(ctx, "reset_after", false)?;
    Ok(Config {
        kind,
        direction,
        output_sequence,
        recurrent,
        cell,
        activation,
        clip,
        reset_after,
    })
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let kind = match ctx.op_type() {
        "lstm" => Kind::Lstm,
        "gru" => Kind::Gru,
        "rnn" => Kind::Rnn,
        _ => return None,
    };
    Some(config(ctx, kind).map(|cfg| kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| run(&cfg, a))))
}

/// One direction's parameters, checked.
struct Weights<'a> {
    /// `[G·H, I]` row-major.
    wih: std::borrow::Cow<'a, [f32]>,
    /// `[G·H, H]` row-major.
    whh: std::borrow::Cow<'a, [f32]>,
    /// Added to the input projection, `[G·H]`.
    xbias: Vec<f32>,
    /// `gru` with `reset_after`: the hidden-side bias of the output gate, `[H]`.
    hbias_o: Vec<f32>,
    /// `lstm` peephole `[3·H]`, if given.
    peephole: Option<Vec<f32>>,
}

fn vector(a: &Args<'_>, name: &str, len: usize) -> Result<Option<Vec<f32>>, String> {
    match a.get(name) {
        None => Ok(None),
        Some(v) => {
            let v = v.f32().map_err(|e| format!("{name}: {e}"))?;
            if v.len() != len {
                return Err(format!(
                    "{name} has shape {:?}; expected {len} values",
                    v.shape()
                ));
            }
            Ok(Some(v.iter().copied().collect()))
        }
    }
}

fn weights<'a>(
    cfg: &Config,
    a: &Args<'a>,
    suffix: &str,
    input: usize,
) -> Result<(Weights<'a>, usize), String> {
    let g = cfg.kind.gates();
    let (ih_name, hh_name) = (format!("weight_ih{suffix}"), format!("weight_hh{suffix}"));
    let wih = a.f32(&ih_name)?;
    let whh = a.f32(&hh_name)?;
    let &[gh, h] = whh.shape() else {
        return Err(format!(
            "{hh_name} must have rank 2, got shape {:?}",
            whh.shape()
        ));
    };
    if h == 0 || gh != g * h {
        return Err(format!(
            "{hh_name} has shape {:?}; expected [{g}·H, H] with H > 0",
            whh.shape()
        ));
    }
    if wih.shape() != [gh, input] {
        return Err(format!(
            "{ih_name} has shape {:?}; expected [{gh}, {input}] ({g}·H by the input size of x)",
            wih.shape()
        ));
    }
    let bias = vector(a, &format!("bias{suffix}"), gh)?.unwrap_or_else(|| vec![0.0; gh]);
    let mut xbias = bias.clone();
    let mut hbias_o = Vec::new();
    if cfg.kind == Kind::Gru {
        if let Some(ib) = vector(a, "input_bias", gh)? {
            xbias.iter_mut().zip(&ib).for_each(|(x, y)| *x += y);
        }
        if cfg.reset_after {
            // The output gate's hidden-side bias goes inside r ⊙ (R_o h + b_o).
            hbias_o = bias.get(h..2 * h).map(<[f32]>::to_vec).unwrap_or_default();
            if let Some(o) = xbias.get_mut(h..2 * h) {
                for (x, b) in o.iter_mut().zip(&hbias_o) {
                    *x -= b;
                }
            }
        }
    }
    let peephole = if cfg.kind == Kind::Lstm {
        vector(a, &format!("peephole{suffix}"), 3 * h)?
    } else {
        None
    };
    Ok((
        Weights {
            wih: contiguous(wih),
            whh: contiguous(whh),
            xbias,
            hbias_o,
            peephole,
        },
        h,
    ))
}

/// Initial state of `[batch, D·H]` values (any shape with that many elements).
fn initial(a: &Args<'_>, name: &str, len: usize) -> Result<Vec<f32>, String> {
    match a.get(name) {
        // coremltools requires initial_h/initial_c; zeros are a lenient default.
        None => Ok(vec![0.0; len]),
        Some(v) => {
            let v = v.f32().map_err(|e| format!("{name}: {e}"))?;
            if v.len() != len {
                return Err(format!(
                    "{name} has shape {:?}; expected [batch, directions·H] = {len} values",
                    v.shape()
                ));
            }
            Ok(v.iter().copied().collect())
        }
    }
}

fn run(cfg: &Config, a: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = a.f32("x")?;
    let &[s, b, input] = x.shape() else {
        return Err(format!(
            "x must have rank 3 [seq, batch, input], got shape {:?}",
            x.shape()
        ));
    };
    let dirs: &[(&str, bool)] = match cfg.direction {
        Direction::Forward => &[("", false)],
        Direction::Reverse => &[("", true)],
        Direction::Bidirectional => &[("", false), ("_back", true)],
    };
    let nd = dirs.len();
    let mut ws = Vec::with_capacity(nd);
    let mut hidden = 0;
    for &(suffix, _) in dirs {
        if !suffix.is_empty()
            && (a.get("weight_ih_back").is_none() || a.get("weight_hh_back").is_none())
        {
            return Err("a bidirectional lstm needs weight_ih_back and weight_hh_back".to_string());
        }
        let (w, h) = weights(cfg, a, suffix, input)?;
        if !ws.is_empty() && h != hidden {
            return Err(format!(
                "the backward weights have hidden size {h}, the forward ones {hidden}"
            ));
        }
        hidden = h;
        ws.push(w);
    }
    let h = hidden;
    let dh = nd * h;
    let state_len = b.checked_mul(dh).ok_or("the state size overflows")?;
    let h0 = initial(a, "initial_h", state_len)?;
    let c0 = if cfg.kind == Kind::Lstm {
        initial(a, "initial_c", state_len)?
    } else {
        Vec::new()
    };
    let s_out = if cfg.output_sequence { s } else { 1 };
    let out_len = s_out
        .checked_mul(state_len)
        .ok_or("the output size overflows")?;
    let mut out = try_zeros::<f32>(out_len)?;
    let mut h_final = try_zeros::<f32>(state_len)?;
    let mut c_final = try_zeros::<f32>(state_len)?;
    let xs = contiguous(x);
    for (d, (&(_, reverse), w)) in dirs.iter().zip(&ws).enumerate() {
        // This direction's half of the [batch, D·H] states.
        let take = |src: &[f32]| -> Vec<f32> {
            (0..b)
                .flat_map(|n| {
                    let start = n * dh + d * h;
                    src.get(start..start + h).unwrap_or(&[]).iter().copied()
                })
                .collect()
        };
        let mut st = State {
            h: take(&h0),
            c: if cfg.kind == Kind::Lstm {
                take(&c0)
            } else {
                Vec::new()
            },
        };
        let bidir = cfg.direction == Direction::Bidirectional;
        let mut emit = |k: usize, t: usize, hs: &[f32]| {
            if !cfg.output_sequence {
                return;
            }
            // Bidirectional: time-aligned; unidirectional: processing order.
            let step = if bidir { t } else { k };
            for n in 0..b {
                let dst = step * state_len + n * dh + d * h;
                if let (Some(o), Some(src)) =
                    (out.get_mut(dst..dst + h), hs.get(n * h..(n + 1) * h))
                {
                    o.copy_from_slice(src);
                }
            }
        };
        run_direction(cfg, &xs, s, b, input, h, w, reverse, &mut st, &mut emit)?;
        for n in 0..b {
            let dst = n * dh + d * h;
            let src = n * h..(n + 1) * h;
            if let (Some(o), Some(v)) = (h_final.get_mut(dst..dst + h), st.h.get(src.clone())) {
                o.copy_from_slice(v);
            }
            if let (Some(o), Some(v)) = (c_final.get_mut(dst..dst + h), st.c.get(src)) {
                o.copy_from_slice(v);
            }
            if !cfg.output_sequence
                && let (Some(o), Some(v)) =
                    (out.get_mut(dst..dst + h), st.h.get(n * h..(n + 1) * h))
            {
                o.copy_from_slice(v);
            }
        }
    }
    let arr = |shape: &[usize], v: Vec<f32>| {
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| e.to_string())
    };
    let mut outs = vec![
        Value::F32(arr(&[s_out, b, dh], out)?),
        Value::F32(arr(&[b, dh], h_final)?),
    ];
    if cfg.kind == Kind::Lstm {
        outs.push(Value::F32(arr(&[b, dh], c_final)?));
    }
    Ok(outs)
}

struct State {
    /// `[batch, H]`.
    h: Vec<f32>,
    /// `[batch, H]` (`lstm` only).
    c: Vec<f32>,
}

/// Run one direction over the sequence, calling `emit(k, t, h)` after processing step `k`
/// (input time `t`).
#[allow(clippy::too_many_arguments)]
fn run_direction(
    cfg: &Config,
    x: &[f32],
    s: usize,
    b: usize,
    input: usize,
    h: usize,
    w: &Weights<'_>,
    reverse: bool,
    st: &mut State,
    emit: &mut dyn FnMut(usize, usize, &[f32]),
) -> Result<(), String> {
    let gh = cfg.kind.gates() * h;
    let row = b * gh;
    let block = (XW_BLOCK / row.max(1)).clamp(1, s.max(1));
    let mut xw = Vec::new();
    let mut hw = vec![0.0f32; row];
    let mut tmp = vec![0.0f32; b * h];
    let mut k = 0;
    let mut lo_hi: Vec<(usize, usize)> = (0..s)
        .step_by(block)
        .map(|lo| (lo, (lo + block).min(s)))
        .collect();
    if reverse {
        lo_hi.reverse();
    }
    for (lo, hi) in lo_hi {
        // Input projection of steps lo..hi: [(hi-lo)·b, G·H] = x · W_ihᵀ + bias.
        let m = (hi - lo) * b;
        xw.clear();
        xw.resize(m * gh, 0.0);
        for r in xw.chunks_exact_mut(gh) {
            r.copy_from_slice(&w.xbias);
        }
        let xin = x
            .get(lo * b * input..hi * b * input)
            .ok_or("x is shorter than its shape")?;
        gemm(m, gh, input, xin, false, &w.wih, true, &mut xw, true);
        let ts: Vec<usize> = if reverse {
            (lo..hi).rev().collect()
        } else {
            (lo..hi).collect()
        };
        for t in ts {
            let xt = xw
                .get((t - lo) * row..(t - lo + 1) * row)
                .ok_or("projection index out of range")?;
            // Hidden projection h · W_hhᵀ: [b, G·H].
            gemm(b, gh, h, &st.h, false, &w.whh, true, &mut hw, false);
            match cfg.kind {
                Kind::Lstm => lstm_step(cfg, xt, &hw, w.peephole.as_deref(), b, h, st),
                Kind::Rnn => {
                    for (hv, (xv, rv)) in st.h.iter_mut().zip(xt.iter().zip(&hw)) {
                        *hv = cfg.recurrent.apply(xv + rv);
                    }
                }
                Kind::Gru => gru_step(cfg, xt, &hw, w, b, h, st, &mut tmp),
            }
            emit(k, t, &st.h);
            k += 1;
        }
    }
    Ok(())
}

fn lstm_step(
    cfg: &Config,
    xt: &[f32],
    hw: &[f32],
    peephole: Option<&[f32]>,
    b: usize,
    h: usize,
    st: &mut State,
) {
    let g = 4 * h;
    let p = |i: usize| peephole.and_then(|p| p.get(i)).copied().unwrap_or(0.0);
    for n in 0..b {
        let (Some(xr), Some(hr)) = (xt.get(n * g..(n + 1) * g), hw.get(n * g..(n + 1) * g)) else {
            continue;
        };
        let (Some(hs), Some(cs)) = (
            st.h.get_mut(n * h..(n + 1) * h),
            st.c.get_mut(n * h..(n + 1) * h),
        ) else {
            continue;
        };
        for j in 0..h {
            let pre = |gate: usize| xr[gate * h + j] + hr[gate * h + j];
            let c_prev = cs[j];
            let i = cfg.recurrent.apply(pre(0) + c_prev * p(j));
            let f = cfg.recurrent.apply(pre(1) + c_prev * p(h + j));
            let z = cfg.cell.apply(pre(3));
            let mut c = f * c_prev + i * z;
            if let Some(clip) = cfg.clip {
                c = c.clamp(-clip.abs(), clip.abs());
            }
            let o = cfg.recurrent.apply(pre(2) + c * p(2 * h + j));
            cs[j] = c;
            hs[j] = o * cfg.activation.apply(c);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn gru_step(
    cfg: &Config,
    xt: &[f32],
    hw: &[f32],
    w: &Weights<'_>,
    b: usize,
    h: usize,
    st: &mut State,
    rh: &mut [f32],
) {
    let g = 3 * h;
    // Reset and update gates (r: block 0, z: block 2).
    let mut r = vec![0.0f32; b * h];
    let mut z = vec![0.0f32; b * h];
    for n in 0..b {
        for j in 0..h {
            let at = |blk: usize| n * g + blk * h + j;
            let pre = |blk: usize| {
                xt.get(at(blk)).copied().unwrap_or(0.0) + hw.get(at(blk)).copied().unwrap_or(0.0)
            };
            r[n * h + j] = cfg.recurrent.apply(pre(0));
            z[n * h + j] = cfg.recurrent.apply(pre(2));
        }
    }
    // The output gate's hidden term: r ⊙ (R_o h + b_o), or R_o (r ⊙ h).
    let mut ho = vec![0.0f32; b * h];
    if cfg.reset_after {
        for n in 0..b {
            for j in 0..h {
                let v = hw.get(n * g + h + j).copied().unwrap_or(0.0)
                    + w.hbias_o.get(j).copied().unwrap_or(0.0);
                ho[n * h + j] = r[n * h + j] * v;
            }
        }
    } else {
        for ((d, rv), hv) in rh.iter_mut().zip(&r).zip(&st.h) {
            *d = rv * hv;
        }
        let ro = w.whh.get(h * h..2 * h * h).unwrap_or(&[]);
        gemm(b, h, h, rh, false, ro, true, &mut ho, false);
    }
    for n in 0..b {
        for j in 0..h {
            let i = n * h + j;
            let o = cfg
                .activation
                .apply(xt.get(n * g + h + j).copied().unwrap_or(0.0) + ho[i]);
            let zi = z[i];
            st.h[i] = (1.0 - zi) * o + zi * st.h[i];
        }
    }
}
