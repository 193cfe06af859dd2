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

use rayon::prelude::*;

use super::linalg::{contiguous, gemm};
use super::simd;
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

    /// Apply in place to every element (vectorised).
    fn apply_slice(self, v: &mut [f32]) {
        match self {
            Act::Tanh => simd::vectorize(
                #[inline(always)]
                || v.iter_mut().for_each(|x| *x = simd::tanh(*x)),
            ),
            Act::Sigmoid => simd::vectorize(
                #[inline(always)]
                || v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + simd::exp(-*x))),
            ),
            Act::HardSigmoid => simd::vectorize(
                #[inline(always)]
                || {
                    v.iter_mut()
                        .for_each(|x| *x = (0.2 * *x + 0.5).clamp(0.0, 1.0))
                },
            ),
            Act::Relu => simd::vectorize(
                #[inline(always)]
                || v.iter_mut().for_each(|x| *x = x.max(0.0)),
            ),
            Act::Linear => {}
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

/// `out[m×n] = a[m×k] · wᵀ` for a weight `w` stored `n×k` row-major, as one recurrent step
/// needs it: for small `m` (the batch) each weight row is read once for all rows of `a`
/// (dot products into `scratch`, then transposed), which beats a packed GEMM here.
fn step_gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    w: &[f32],
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    if m == 1 || m > 16 {
        gemm(m, n, k, a, false, w, true, out, false);
        return;
    }
    scratch.clear();
    scratch.resize(n * m, 0.0);
    let run = |j0: usize, chunk: &mut [f32]| {
        for (jj, o) in chunk.chunks_mut(m).enumerate() {
            let j = j0 + jj;
            let row = &w[j * k..(j + 1) * k];
            for (b, v) in o.iter_mut().enumerate() {
                *v = simd::dot(&a[b * k..(b + 1) * k], row);
            }
        }
    };
    let threads = super::threads();
    if threads > 1 && m * n * k >= 1 << 18 {
        let rows = n.div_ceil(threads * 4).max(16);
        scratch
            .par_chunks_mut(rows * m)
            .enumerate()
            .for_each(|(c, chunk)| run(c * rows, chunk));
    } else {
        run(0, scratch);
    }
    for (j, col) in scratch.chunks_exact(m).enumerate() {
        for (b, &v) in col.iter().enumerate() {
            out[b * n + j] = v;
        }
    }
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
    let mut sc = Scratch::default();
    // The input projection is one large product: give it W_ihᵀ row-major (`[I, G·H]`), the
    // layout the GEMM reads fastest, unless the sequence is a single row.
    let wih_t: Option<Vec<f32>> = (s * b > 1).then(|| {
        let mut t = vec![0.0f32; gh * input];
        for (r, row) in w.wih.chunks_exact(input.max(1)).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                t[c * gh + r] = v;
            }
        }
        t
    });
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
        match &wih_t {
            Some(t) => gemm(m, gh, input, xin, false, t, false, &mut xw, true),
            None => gemm(m, gh, input, xin, false, &w.wih, true, &mut xw, true),
        }
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
            step_gemm(b, gh, h, &st.h, &w.whh, &mut hw, &mut sc.dots);
            match cfg.kind {
                Kind::Lstm => lstm_step(cfg, xt, &mut hw, w.peephole.as_deref(), b, h, st, &mut sc),
                Kind::Rnn => {
                    add_assign(&mut hw, xt);
                    cfg.recurrent.apply_slice(&mut hw);
                    st.h.copy_from_slice(&hw);
                }
                Kind::Gru => gru_step(cfg, xt, &hw, w, b, h, st, &mut sc),
            }
            emit(k, t, &st.h);
            k += 1;
        }
    }
    Ok(())
}

/// Reused per-step buffers.
#[derive(Default)]
struct Scratch {
    dots: Vec<f32>,
    r: Vec<f32>,
    z: Vec<f32>,
    ho: Vec<f32>,
    rh: Vec<f32>,
    t: Vec<f32>,
}

/// `a[i] += b[i]`.
fn add_assign(a: &mut [f32], b: &[f32]) {
    simd::vectorize(
        #[inline(always)]
        || {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        },
    );
}

/// `a[i] += b[i]·c[i]`.
fn add_mul(a: &mut [f32], b: &[f32], c: &[f32]) {
    simd::vectorize(
        #[inline(always)]
        || {
            for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                *x += y * z;
            }
        },
    );
}

#[allow(clippy::too_many_arguments)]
fn lstm_step(
    cfg: &Config,
    xt: &[f32],
    hw: &mut [f32],
    peephole: Option<&[f32]>,
    b: usize,
    h: usize,
    st: &mut State,
    sc: &mut Scratch,
) {
    let g = 4 * h;
    add_assign(&mut hw[..b * g], &xt[..b * g]);
    let (pi, pf, po) = match peephole {
        Some(p) if p.len() == 3 * h => (Some(&p[..h]), Some(&p[h..2 * h]), Some(&p[2 * h..])),
        _ => (None, None, None),
    };
    sc.t.resize(h, 0.0);
    for n in 0..b {
        let row = &mut hw[n * g..(n + 1) * g];
        let (i, rest) = row.split_at_mut(h);
        let (f, rest) = rest.split_at_mut(h);
        let (o, z) = rest.split_at_mut(h);
        let hs = &mut st.h[n * h..(n + 1) * h];
        let cs = &mut st.c[n * h..(n + 1) * h];
        if let (Some(pi), Some(pf)) = (pi, pf) {
            add_mul(i, cs, pi);
            add_mul(f, cs, pf);
        }
        cfg.recurrent.apply_slice(i);
        cfg.recurrent.apply_slice(f);
        cfg.cell.apply_slice(z);
        let clip = cfg.clip.map(f32::abs);
        simd::vectorize(
            #[inline(always)]
            || {
                for (((c, &fv), &iv), &zv) in cs.iter_mut().zip(&*f).zip(&*i).zip(&*z) {
                    let v = fv * *c + iv * zv;
                    *c = match clip {
                        Some(k) => v.clamp(-k, k),
                        None => v,
                    };
                }
            },
        );
        if let Some(po) = po {
            add_mul(o, cs, po);
        }
        cfg.recurrent.apply_slice(o);
        let t = &mut sc.t[..h];
        t.copy_from_slice(cs);
        cfg.activation.apply_slice(t);
        simd::vectorize(
            #[inline(always)]
            || {
                for ((hv, &ov), &tv) in hs.iter_mut().zip(&*o).zip(&*t) {
                    *hv = ov * tv;
                }
            },
        );
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
    sc: &mut Scratch,
) {
    let g = 3 * h;
    let bh = b * h;
    for v in [&mut sc.r, &mut sc.z, &mut sc.ho, &mut sc.rh] {
        v.clear();
        v.resize(bh, 0.0);
    }
    // Reset (block 0) and update (block 2) gates.
    for n in 0..b {
        let (x, hr) = (&xt[n * g..(n + 1) * g], &hw[n * g..(n + 1) * g]);
        let r = &mut sc.r[n * h..(n + 1) * h];
        r.copy_from_slice(&x[..h]);
        add_assign(r, &hr[..h]);
        let z = &mut sc.z[n * h..(n + 1) * h];
        z.copy_from_slice(&x[2 * h..]);
        add_assign(z, &hr[2 * h..]);
    }
    cfg.recurrent.apply_slice(&mut sc.r);
    cfg.recurrent.apply_slice(&mut sc.z);
    // The output gate's hidden term: r ⊙ (R_o h + b_o), or R_o (r ⊙ h).
    if cfg.reset_after {
        for n in 0..b {
            let ho = &mut sc.ho[n * h..(n + 1) * h];
            ho.copy_from_slice(&hw[n * g + h..n * g + 2 * h]);
            if w.hbias_o.len() == h {
                add_assign(ho, &w.hbias_o);
            }
            for (v, rv) in ho.iter_mut().zip(&sc.r[n * h..(n + 1) * h]) {
                *v *= rv;
            }
        }
    } else {
        for ((d, rv), hv) in sc.rh.iter_mut().zip(&sc.r).zip(&st.h) {
            *d = rv * hv;
        }
        let ro = &w.whh[h * h..2 * h * h];
        step_gemm(b, h, h, &sc.rh, ro, &mut sc.ho, &mut sc.dots);
    }
    for n in 0..b {
        add_assign(
            &mut sc.ho[n * h..(n + 1) * h],
            &xt[n * g + h..n * g + 2 * h],
        );
    }
    cfg.activation.apply_slice(&mut sc.ho);
    simd::vectorize(
        #[inline(always)]
        || {
            for ((hv, &o), &z) in st.h.iter_mut().zip(&sc.ho).zip(&sc.z) {
                *hv = (1.0 - z) * o + z * *hv;
            }
        },
    );
}
