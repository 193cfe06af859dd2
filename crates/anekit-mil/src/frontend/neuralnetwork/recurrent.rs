//! Recurrent layers (NeuralNetwork.proto: `SimpleRecurrentLayerParams`, `GRULayerParams`,
//! `UniDirectionalLSTMLayerParams`, `BiDirectionalLSTMLayerParams`).
//!
//! Inputs are `[Seq, Batch, C, 1, 1]` blobs (or `[Seq, Batch, C]`); the optional initial
//! states `[1, Batch, H, 1, 1]`. Outputs: the sequence or last output, then the final
//! states, all rank 5. LSTM and the simple RNN lower to MIL `lstm` / `rnn` (same gate
//! equations; MIL's gate order `i, f, o, z`). The NeuralNetwork GRU multiplies the reset gate
//! into the hidden state *before* the recursion matrix (`R_o (r ⊙ h)`), MIL `gru` after it,
//! so the GRU is unrolled over the (fixed) sequence length instead.

use anekit_format::proto::{self, activation_params::NonlinearityType as N};

use super::builder::{A, Builder, s, v};
use super::layers::wt;
use super::weights::ChannelAxis;
use crate::error::Result;

fn u(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The MIL name of a recurrent activation (MIL takes no parameters for them).
fn act_name(
    b: &Builder,
    a: Option<&proto::ActivationParams>,
    default: &'static str,
) -> Result<&'static str> {
    let Some(t) = a.and_then(|a| a.nonlinearity_type.as_ref()) else {
        return Ok(default);
    };
    Ok(match t {
        N::Sigmoid(_) => "sigmoid",
        N::Tanh(_) => "tanh",
        N::ReLu(_) => "relu",
        N::Linear(l) if l.alpha == 1.0 && l.beta == 0.0 => "linear",
        other => {
            return Err(b.err(format!("recurrent activation {other:?} is not supported")));
        }
    })
}

/// The input as `[Seq, Batch, I]` and its sequence and batch sizes.
fn seq_input(b: &mut Builder, x: &str, isz: usize) -> Result<(String, usize, usize)> {
    let shape = b.shape(x)?;
    let (sq, bt) = match shape.as_slice() {
        [sq, bt, c, 1, 1] | [sq, bt, c] if *c == isz => (*sq, *bt),
        _ => {
            return Err(b.err(format!(
                "recurrent input of shape {shape:?}; expected [Seq, Batch, {isz}, 1, 1]"
            )));
        }
    };
    Ok((b.reshape(x, &[sq, bt, isz])?, sq, bt))
}

/// An initial state input `[1, B, H, 1, 1]` as `[B, H]`, or zeros.
fn state(b: &mut Builder, ins: &[String], i: usize, bt: usize, hs: usize) -> Result<String> {
    match ins.get(i) {
        Some(n) => b.reshape(n, &[bt, hs]),
        None => b.filled("zeros", &[bt, hs], 0.0),
    }
}

fn rank5(b: &mut Builder, x: &str) -> Result<String> {
    let s = b.shape(x)?;
    match s.as_slice() {
        [a, c, d] => b.reshape(x, &[*a, *c, *d, 1, 1]),
        [c, d] => b.reshape(x, &[1, *c, *d, 1, 1]),
        _ => Err(b.err(format!("unexpected recurrent output shape {s:?}"))),
    }
}

pub(super) fn simple(
    b: &mut Builder,
    ins: &[String],
    p: &proto::SimpleRecurrentLayerParams,
    h: &str,
    n_out: usize,
) -> Result<Vec<String>> {
    let (isz, hs) = (u(p.input_vector_size), u(p.output_vector_size));
    let x0 = ins.first().ok_or_else(|| b.err("no input"))?.clone();
    let (x, _, bt) = seq_input(b, &x0, isz)?;
    let h0 = state(b, ins, 1, bt, hs)?;
    let wi = wt(
        b,
        &p.weight_matrix,
        "weightMatrix",
        &[hs, isz],
        ChannelAxis::First,
    )?;
    let wh = wt(
        b,
        &p.recursion_matrix,
        "recursionMatrix",
        &[hs, hs],
        ChannelAxis::First,
    )?;
    let bias = if p.has_bias_vector {
        wt(b, &p.bias_vector, "biasVector", &[hs], ChannelAxis::First)?
    } else {
        vec![0.0; hs]
    };
    let act = act_name(b, p.activation.as_ref(), "tanh")?;
    let o = b.op_n(
        "rnn",
        h,
        vec![
            ("x", v(&x)),
            ("initial_h", v(&h0)),
            ("weight_ih", A::T(vec![hs, isz], wi)),
            ("weight_hh", A::T(vec![hs, hs], wh)),
            ("bias", A::T(vec![hs], bias)),
            (
                "direction",
                s(if p.reverse_input {
                    "reverse"
                } else {
                    "forward"
                }),
            ),
            ("output_sequence", A::B(p.sequence_output)),
            ("activation", s(act)),
        ],
    )?;
    let mut outs = vec![rank5(b, &o[0])?];
    if n_out > 1 {
        outs.push(rank5(b, &o[1])?);
    }
    Ok(outs)
}

pub(super) fn gru(
    b: &mut Builder,
    ins: &[String],
    p: &proto::GruLayerParams,
    h: &str,
    n_out: usize,
) -> Result<Vec<String>> {
    let (isz, hs) = (u(p.input_vector_size), u(p.output_vector_size));
    let x0 = ins.first().ok_or_else(|| b.err("no input"))?.clone();
    let (x, sq, bt) = seq_input(b, &x0, isz)?;
    let mut hcur = state(b, ins, 1, bt, hs)?;
    // Unrolled: any ActivationParams kind (with its parameters) works.
    let sigmoid = proto::ActivationParams {
        nonlinearity_type: Some(N::Sigmoid(proto::ActivationSigmoid {})),
    };
    let tanh = proto::ActivationParams {
        nonlinearity_type: Some(N::Tanh(proto::ActivationTanh {})),
    };
    let f = p.activations.first().cloned().unwrap_or(sigmoid);
    let g = p.activations.get(1).cloned().unwrap_or(tanh);
    let wm = |b: &Builder, w: &Option<proto::WeightParams>, name: &str, cols: usize| {
        wt(b, w, name, &[hs, cols], ChannelAxis::First)
    };
    // Input weights of the three gates in one [3H, I] matrix: z, r, o.
    let mut wx = wm(
        b,
        &p.update_gate_weight_matrix,
        "updateGateWeightMatrix",
        isz,
    )?;
    wx.extend(wm(
        b,
        &p.reset_gate_weight_matrix,
        "resetGateWeightMatrix",
        isz,
    )?);
    wx.extend(wm(
        b,
        &p.output_gate_weight_matrix,
        "outputGateWeightMatrix",
        isz,
    )?);
    let mut rzr = wm(
        b,
        &p.update_gate_recursion_matrix,
        "updateGateRecursionMatrix",
        hs,
    )?;
    rzr.extend(wm(
        b,
        &p.reset_gate_recursion_matrix,
        "resetGateRecursionMatrix",
        hs,
    )?);
    let ro = wm(
        b,
        &p.output_gate_recursion_matrix,
        "outputGateRecursionMatrix",
        hs,
    )?;
    let bias = if p.has_bias_vectors {
        let mut v = wt(
            b,
            &p.update_gate_bias_vector,
            "updateGateBiasVector",
            &[hs],
            ChannelAxis::First,
        )?;
        v.extend(wt(
            b,
            &p.reset_gate_bias_vector,
            "resetGateBiasVector",
            &[hs],
            ChannelAxis::First,
        )?);
        v.extend(wt(
            b,
            &p.output_gate_bias_vector,
            "outputGateBiasVector",
            &[hs],
            ChannelAxis::First,
        )?);
        v
    } else {
        vec![0.0; 3 * hs]
    };
    let wxv = b.f32s("gru_wx", &[3 * hs, isz], wx)?;
    let bv = b.f32s("gru_b", &[3 * hs], bias)?;
    let rzrv = b.f32s("gru_rzr", &[2 * hs, hs], rzr)?;
    let rov = b.f32s("gru_ro", &[hs, hs], ro)?;
    // All input projections at once: [Seq, B, 3H].
    let xp = b.op(
        "linear",
        "gru_x",
        vec![("x", v(&x)), ("weight", v(&wxv)), ("bias", v(&bv))],
    )?;
    let xsteps = b.op_n(
        "split",
        "gru_xt",
        vec![
            ("x", v(&xp)),
            ("num_splits", A::I(sq as i64)),
            ("axis", A::I(0)),
        ],
    )?;
    let order: Vec<usize> = if p.reverse_input {
        (0..sq).rev().collect()
    } else {
        (0..sq).collect()
    };
    let mut ys = Vec::with_capacity(sq);
    for t in order {
        let xt = b.reshape(&xsteps[t], &[bt, 3 * hs])?;
        let parts = b.op_n(
            "split",
            "gru_g",
            vec![
                ("x", v(&xt)),
                ("split_sizes", A::Is(vec![2 * hs as i64, hs as i64])),
                ("axis", A::I(1)),
            ],
        )?;
        let hzr = b.op(
            "linear",
            "gru_h",
            vec![("x", v(&hcur)), ("weight", v(&rzrv))],
        )?;
        let pre = b.bin("add", &parts[0], &hzr)?;
        let pre = b.op(
            "clip",
            "gru_clip",
            vec![("x", v(&pre)), ("alpha", A::F(-50.0)), ("beta", A::F(50.0))],
        )?;
        let zr = super::layers::activation(b, &pre, &f, "gru_zr")?;
        let zr = b.op_n(
            "split",
            "gru_zr",
            vec![("x", v(&zr)), ("num_splits", A::I(2)), ("axis", A::I(1))],
        )?;
        let (z, r) = (zr[0].clone(), zr[1].clone());
        let c = b.bin("mul", &hcur, &r)?;
        let oc = b.op("linear", "gru_o", vec![("x", v(&c)), ("weight", v(&rov))])?;
        let pre = b.bin("add", &parts[1], &oc)?;
        let pre = b.op(
            "clip",
            "gru_clip",
            vec![("x", v(&pre)), ("alpha", A::F(-50.0)), ("beta", A::F(50.0))],
        )?;
        let o = super::layers::activation(b, &pre, &g, "gru_o")?;
        // y = (1 − z) ⊙ o + z ⊙ y_prev = o + z ⊙ (y_prev − o)
        let d = b.bin("sub", &hcur, &o)?;
        let zd = b.bin("mul", &z, &d)?;
        hcur = b.bin("add", &o, &zd)?;
        ys.push(hcur.clone());
    }
    let y = if p.sequence_output {
        if p.reverse_input {
            ys.reverse();
        }
        let st = b.op(
            "stack",
            "gru_seq",
            vec![("values", A::Vs(ys)), ("axis", A::I(0))],
        )?;
        b.reshape(&st, &[sq, bt, hs, 1, 1])?
    } else {
        b.reshape(&hcur, &[1, bt, hs, 1, 1])?
    };
    let _ = h;
    let mut outs = vec![y];
    if n_out > 1 {
        outs.push(b.reshape(&hcur, &[1, bt, hs, 1, 1])?);
    }
    Ok(outs)
}

/// LSTM weights in MIL's `[i, f, o, z]` order.
struct LstmWeights {
    ih: Vec<f32>,
    hh: Vec<f32>,
    bias: Vec<f32>,
    peephole: Option<Vec<f32>>,
}

/// LSTM weights in MIL's `[i, f, o, z]` order.
fn lstm_weights(
    b: &mut Builder,
    w: &proto::LstmWeightParams,
    p: &proto::LstmParams,
    isz: usize,
    hs: usize,
) -> Result<LstmWeights> {
    let m = |b: &Builder, w: &Option<proto::WeightParams>, name: &str, cols: usize| {
        wt(b, w, name, &[hs, cols], ChannelAxis::First)
    };
    let mut wi = m(b, &w.input_gate_weight_matrix, "inputGateWeightMatrix", isz)?;
    wi.extend(m(
        b,
        &w.forget_gate_weight_matrix,
        "forgetGateWeightMatrix",
        isz,
    )?);
    wi.extend(m(
        b,
        &w.output_gate_weight_matrix,
        "outputGateWeightMatrix",
        isz,
    )?);
    wi.extend(m(
        b,
        &w.block_input_weight_matrix,
        "blockInputWeightMatrix",
        isz,
    )?);
    let mut wh = m(
        b,
        &w.input_gate_recursion_matrix,
        "inputGateRecursionMatrix",
        hs,
    )?;
    wh.extend(m(
        b,
        &w.forget_gate_recursion_matrix,
        "forgetGateRecursionMatrix",
        hs,
    )?);
    wh.extend(m(
        b,
        &w.output_gate_recursion_matrix,
        "outputGateRecursionMatrix",
        hs,
    )?);
    wh.extend(m(
        b,
        &w.block_input_recursion_matrix,
        "blockInputRecursionMatrix",
        hs,
    )?);
    let vct = |b: &Builder, w: &Option<proto::WeightParams>, name: &str| {
        wt(b, w, name, &[hs], ChannelAxis::First)
    };
    let mut bias = if p.has_bias_vectors {
        let mut v = vct(b, &w.input_gate_bias_vector, "inputGateBiasVector")?;
        v.extend(vct(b, &w.forget_gate_bias_vector, "forgetGateBiasVector")?);
        v.extend(vct(b, &w.output_gate_bias_vector, "outputGateBiasVector")?);
        v.extend(vct(b, &w.block_input_bias_vector, "blockInputBiasVector")?);
        v
    } else {
        vec![0.0; 4 * hs]
    };
    if p.forget_bias {
        for x in &mut bias[hs..2 * hs] {
            *x += 1.0;
        }
    }
    let peep = if p.has_peephole_vectors {
        let mut v = vct(b, &w.input_gate_peephole_vector, "inputGatePeepholeVector")?;
        v.extend(vct(
            b,
            &w.forget_gate_peephole_vector,
            "forgetGatePeepholeVector",
        )?);
        v.extend(vct(
            b,
            &w.output_gate_peephole_vector,
            "outputGatePeepholeVector",
        )?);
        Some(v)
    } else {
        None
    };
    Ok(LstmWeights {
        ih: wi,
        hh: wh,
        bias,
        peephole: peep,
    })
}

fn lstm_acts(b: &Builder, a: &[proto::ActivationParams]) -> Result<[&'static str; 3]> {
    Ok([
        act_name(b, a.first(), "sigmoid")?,
        act_name(b, a.get(1), "tanh")?,
        act_name(b, a.get(2), "tanh")?,
    ])
}

fn clip_of(p: &proto::LstmParams) -> f32 {
    if p.cell_clip_threshold == 0.0 {
        50.0
    } else {
        p.cell_clip_threshold
    }
}

pub(super) fn lstm(
    b: &mut Builder,
    ins: &[String],
    l: &proto::UniDirectionalLstmLayerParams,
    h: &str,
    n_out: usize,
) -> Result<Vec<String>> {
    let (isz, hs) = (u(l.input_vector_size), u(l.output_vector_size));
    let p = l.params.unwrap_or_default();
    if p.coupled_input_and_forget_gate {
        return Err(b.err("LSTM with coupledInputAndForgetGate is not supported"));
    }
    let w = l
        .weight_params
        .as_ref()
        .ok_or_else(|| b.err("weightParams missing"))?;
    let x0 = ins.first().ok_or_else(|| b.err("no input"))?.clone();
    let (x, _, bt) = seq_input(b, &x0, isz)?;
    let h0 = state(b, ins, 1, bt, hs)?;
    let c0 = state(b, ins, 2, bt, hs)?;
    let LstmWeights {
        ih: wi,
        hh: wh,
        bias,
        peephole: peep,
    } = lstm_weights(b, w, &p, isz, hs)?;
    let [ra, ca, a] = lstm_acts(b, &l.activations)?;
    let mut args = vec![
        ("x", v(&x)),
        ("initial_h", v(&h0)),
        ("initial_c", v(&c0)),
        ("weight_ih", A::T(vec![4 * hs, isz], wi)),
        ("weight_hh", A::T(vec![4 * hs, hs], wh)),
        ("bias", A::T(vec![4 * hs], bias)),
        (
            "direction",
            s(if l.reverse_input {
                "reverse"
            } else {
                "forward"
            }),
        ),
        ("output_sequence", A::B(p.sequence_output)),
        ("recurrent_activation", s(ra)),
        ("cell_activation", s(ca)),
        ("activation", s(a)),
        ("clip", A::F(clip_of(&p))),
    ];
    if let Some(pp) = peep {
        args.push(("peephole", A::T(vec![3 * hs], pp)));
    }
    let o = b.op_n("lstm", h, args)?;
    let mut outs = vec![rank5(b, &o[0])?];
    for t in o.iter().take(n_out.min(3)).skip(1) {
        outs.push(rank5(b, t)?);
    }
    Ok(outs)
}

pub(super) fn bilstm(
    b: &mut Builder,
    ins: &[String],
    l: &proto::BiDirectionalLstmLayerParams,
    h: &str,
    n_out: usize,
) -> Result<Vec<String>> {
    let (isz, hs) = (u(l.input_vector_size), u(l.output_vector_size));
    let p = l.params.unwrap_or_default();
    if p.coupled_input_and_forget_gate {
        return Err(b.err("LSTM with coupledInputAndForgetGate is not supported"));
    }
    let [wf, wb] = l.weight_params.as_slice() else {
        return Err(b.err("biDirectionalLSTM needs 2 weightParams (forward, backward)"));
    };
    let x0 = ins.first().ok_or_else(|| b.err("no input"))?.clone();
    let (x, _, bt) = seq_input(b, &x0, isz)?;
    let hf = state(b, ins, 1, bt, hs)?;
    let cf = state(b, ins, 2, bt, hs)?;
    let hb = state(b, ins, 3, bt, hs)?;
    let cb = state(b, ins, 4, bt, hs)?;
    let h0 = b.op(
        "concat",
        "h0",
        vec![
            ("values", A::Vs(vec![hf, hb])),
            ("axis", A::I(1)),
            ("interleave", A::B(false)),
        ],
    )?;
    let c0 = b.op(
        "concat",
        "c0",
        vec![
            ("values", A::Vs(vec![cf, cb])),
            ("axis", A::I(1)),
            ("interleave", A::B(false)),
        ],
    )?;
    let LstmWeights {
        ih: wi,
        hh: wh,
        bias,
        peephole: peep,
    } = lstm_weights(b, wf, &p, isz, hs)?;
    let LstmWeights {
        ih: wib,
        hh: whb,
        bias: biasb,
        peephole: peepb,
    } = lstm_weights(b, wb, &p, isz, hs)?;
    let acts = lstm_acts(b, &l.activations_forward_lstm)?;
    if lstm_acts(b, &l.activations_backward_lstm)? != acts {
        return Err(b.err("different forward and backward activations are not supported"));
    }
    let [ra, ca, a] = acts;
    let mut args = vec![
        ("x", v(&x)),
        ("initial_h", v(&h0)),
        ("initial_c", v(&c0)),
        ("weight_ih", A::T(vec![4 * hs, isz], wi)),
        ("weight_hh", A::T(vec![4 * hs, hs], wh)),
        ("bias", A::T(vec![4 * hs], bias)),
        ("weight_ih_back", A::T(vec![4 * hs, isz], wib)),
        ("weight_hh_back", A::T(vec![4 * hs, hs], whb)),
        ("bias_back", A::T(vec![4 * hs], biasb)),
        ("direction", s("bidirectional")),
        ("output_sequence", A::B(p.sequence_output)),
        ("recurrent_activation", s(ra)),
        ("cell_activation", s(ca)),
        ("activation", s(a)),
        ("clip", A::F(clip_of(&p))),
    ];
    if let (Some(pf), Some(pb)) = (peep, peepb) {
        args.push(("peephole", A::T(vec![3 * hs], pf)));
        args.push(("peephole_back", A::T(vec![3 * hs], pb)));
    }
    let o = b.op_n("lstm", h, args)?;
    let mut outs = vec![rank5(b, &o[0])?];
    if n_out > 1 {
        let hh = b.op_n(
            "split",
            "h_fb",
            vec![("x", v(&o[1])), ("num_splits", A::I(2)), ("axis", A::I(1))],
        )?;
        let cc = b.op_n(
            "split",
            "c_fb",
            vec![("x", v(&o[2])), ("num_splits", A::I(2)), ("axis", A::I(1))],
        )?;
        for t in [&hh[0], &cc[0], &hh[1], &cc[1]] {
            outs.push(rank5(b, t)?);
        }
    }
    Ok(outs)
}
