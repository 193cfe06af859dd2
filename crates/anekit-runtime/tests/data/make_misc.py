#!/usr/bin/env python3
"""Oracles for the CPU kernels of the recurrent, image-resizing, random, quantization and
classify families (crates/anekit-runtime/tests/kernels_misc.rs).

Run from the repository root with the project's Python (torch 2.7.1, numpy):

    .venv/bin/python crates/anekit-runtime/tests/data/make_misc.py

It writes one JSON file per family under crates/anekit-runtime/tests/data/misc/. Each case
is one MIL op: its arguments (`runtime: true` ones become function inputs, the others
literals) and the expected outputs, computed here by PyTorch (torch.nn.LSTM/GRU/RNN,
torch.nn.functional.interpolate / grid_sample, torch.quantize_per_tensor/_per_channel) or,
where PyTorch has no equivalent of an option (LSTM peephole/clip/activations, the iOS15 GRU
whose reset gate is applied before the hidden product, the resize sampling modes), by a
NumPy reference written from the coremltools 9.0 op docstrings and the NumPy references of
coremltools' own op tests (ops/tests/iOS14/test_recurrent.py, test_image_resizing.py).
"""

import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "misc")


def arr(a, dtype=None):
    a = np.asarray(a)
    if dtype is None:
        dtype = {
            np.dtype("float32"): "fp32",
            np.dtype("float64"): "fp32",
            np.dtype("int32"): "int32",
            np.dtype("int64"): "int32",
            np.dtype("int8"): "int8",
            np.dtype("uint8"): "uint8",
            np.dtype("bool"): "bool",
        }[a.dtype]
    if dtype in ("fp32", "fp16"):
        # 9 significant digits round-trip an f32 exactly.
        data = [float("%.9g" % np.float32(v)) for v in a.reshape(-1)]
    elif dtype == "bool":
        data = [bool(v) for v in a.reshape(-1)]
    else:
        data = [int(v) for v in a.reshape(-1)]
    return {"dtype": dtype, "shape": list(a.shape), "data": data}


def rt(a, dtype=None):
    """A run-time (function input) argument."""
    d = arr(a, dtype)
    d["runtime"] = True
    return d


def lit(a, dtype=None):
    return arr(a, dtype)


def s(v):
    return {"str": v}


def b(v):
    return {"bool": bool(v)}


def i(v, dtype="int32"):
    return {"dtype": dtype, "shape": [], "data": [int(v)]}


def f(v, dtype="fp32"):
    return {"dtype": dtype, "shape": [], "data": [float("%.9g" % np.float32(v))]}


def case(name, op, opset, inputs, outputs, atol=1e-5, rtol=1e-5, **extra):
    c = {
        "name": name,
        "op": op,
        "opset": opset,
        "inputs": inputs,
        "outputs": [arr(o) for o in outputs],
        "atol": atol,
        "rtol": rtol,
    }
    c.update(extra)
    return c


def write(family, cases):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{family}.json")
    with open(path, "w") as fh:
        json.dump({"generated_by": "make_misc.py", "cases": cases}, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"{path}: {len(cases)} cases", file=sys.stderr)


# ------------------------------------------------------------------------------------------
# Recurrent
# ------------------------------------------------------------------------------------------


def ifzo_to_ifoz(x):
    i_, f_, z_, o_ = np.split(x, 4)
    return np.concatenate([i_, f_, o_, z_], axis=0)


def rzn_to_ron(x):
    """PyTorch GRU blocks (r, z, n) -> MIL (r, o=n, z)."""
    r, z, n = np.split(x, 3)
    return np.concatenate([r, n, z], axis=0)


def np_act(x, name):
    name = name.lower()
    if name in ("tanh", "scaled_tanh"):
        return np.tanh(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name in ("hard_sigmoid", "sigmoid_hard"):
        return np.minimum(np.maximum(0.2 * x + 0.5, 0), 1)
    if name == "relu":
        return np.maximum(0, x)
    if name == "linear":
        return x
    raise ValueError(name)


def np_lstm(x, h0, c0, wih, whh, bias, peep, ra, ca, act, clip, reverse):
    """coremltools' NumPy LSTM reference (test_recurrent.py), batched, in MIL layout."""
    s, b, _ = x.shape
    H = whh.shape[1]
    xs = x[::-1] if reverse else x
    h, c = h0.astype(np.float64), c0.astype(np.float64)
    Wi, Wf, Wo, Wz = np.split(wih.astype(np.float64), 4)
    Ri, Rf, Ro, Rz = np.split(whh.astype(np.float64), 4)
    bi, bf, bo, bz = np.split(bias.astype(np.float64), 4)
    pi, pf, po = np.split(peep.astype(np.float64), 3)
    outs = []
    for t in range(s):
        xt = xs[t].astype(np.float64)
        i_ = np_act(xt @ Wi.T + h @ Ri.T + bi + c * pi, ra)
        f_ = np_act(xt @ Wf.T + h @ Rf.T + bf + c * pf, ra)
        z_ = np_act(xt @ Wz.T + h @ Rz.T + bz, ca)
        c = f_ * c + i_ * z_
        if clip is not None:
            c = np.clip(c, -clip, clip)
        o_ = np_act(xt @ Wo.T + h @ Ro.T + bo + c * po, ra)
        h = o_ * np_act(c, act)
        outs.append(h)
    return np.stack(outs), h, c


def np_gru_ios15(x, h0, wih, whh, bias, ra, act, reverse):
    """coremltools' NumPy GRU reference (test_recurrent.py): r applied before R_o."""
    s = x.shape[0]
    xs = x[::-1] if reverse else x
    Wr, Wo, Wz = np.split(wih.astype(np.float64), 3)
    Rr, Ro, Rz = np.split(whh.astype(np.float64), 3)
    br, bo, bz = np.split(bias.astype(np.float64), 3)
    h = h0.astype(np.float64)
    outs = []
    for t in range(s):
        xt = xs[t].astype(np.float64)
        z = np_act(xt @ Wz.T + h @ Rz.T + bz, ra)
        r = np_act(xt @ Wr.T + h @ Rr.T + br, ra)
        o = np_act(xt @ Wo.T + (h * r) @ Ro.T + bo, act)
        h = (1 - z) * o + z * h
        outs.append(h)
    return np.stack(outs), h


def recurrent_cases(rng):
    cases = []
    torch.manual_seed(0)
    S, B, I, H = 5, 3, 4, 6
    # LSTM against torch.nn.LSTM: forward / reverse, with and without bias, sequence or not.
    for direction in ("forward", "reverse"):
        for has_bias in (True, False):
            for seq in (True, False):
                m = torch.nn.LSTM(I, H, 1, bias=has_bias)
                sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
                x = torch.randn(S, B, I)
                h0 = torch.randn(1, B, H)
                c0 = torch.randn(1, B, H)
                xin = torch.flip(x, [0]) if direction == "reverse" else x
                with torch.no_grad():
                    out, (hn, cn) = m(xin, (h0, c0))
                out = out.numpy()
                if not seq:
                    out = out[-1:]
                inputs = {
                    "x": rt(x.numpy()),
                    "initial_h": rt(h0.numpy()[0]),
                    "initial_c": rt(c0.numpy()[0]),
                    "weight_ih": lit(ifzo_to_ifoz(sd["weight_ih_l0"])),
                    "weight_hh": lit(ifzo_to_ifoz(sd["weight_hh_l0"])),
                    "direction": s(direction),
                    "output_sequence": b(seq),
                }
                if has_bias:
                    inputs["bias"] = lit(ifzo_to_ifoz(sd["bias_ih_l0"] + sd["bias_hh_l0"]))
                cases.append(
                    case(
                        f"lstm_torch_{direction}_bias{int(has_bias)}_seq{int(seq)}",
                        "lstm",
                        "iOS15",
                        inputs,
                        [out, hn.numpy()[0], cn.numpy()[0]],
                        atol=1e-5,
                    )
                )
    # Bidirectional against torch.nn.LSTM(bidirectional=True).
    for seq in (True, False):
        for has_bias in (True, False):
            m = torch.nn.LSTM(I, H, 1, bidirectional=True, bias=has_bias)
            sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
            x = torch.randn(S, B, I)
            h0 = torch.randn(2, B, H)
            c0 = torch.randn(2, B, H)
            with torch.no_grad():
                out, (hn, cn) = m(x, (h0, c0))
            out = out.numpy()
            if not seq:
                out = np.concatenate([out[-1:, :, :H], out[:1, :, H:]], axis=2)
            cat = lambda t: np.concatenate([t[0], t[1]], axis=1)  # noqa: E731
            inputs = {
                "x": rt(x.numpy()),
                "initial_h": rt(cat(h0.numpy())),
                "initial_c": rt(cat(c0.numpy())),
                "weight_ih": lit(ifzo_to_ifoz(sd["weight_ih_l0"])),
                "weight_hh": lit(ifzo_to_ifoz(sd["weight_hh_l0"])),
                "weight_ih_back": lit(ifzo_to_ifoz(sd["weight_ih_l0_reverse"])),
                "weight_hh_back": lit(ifzo_to_ifoz(sd["weight_hh_l0_reverse"])),
                "direction": s("bidirectional"),
                "output_sequence": b(seq),
            }
            if has_bias:
                inputs["bias"] = lit(ifzo_to_ifoz(sd["bias_ih_l0"] + sd["bias_hh_l0"]))
                inputs["bias_back"] = lit(
                    ifzo_to_ifoz(sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"])
                )
            cases.append(
                case(
                    f"lstm_torch_bidirectional_bias{int(has_bias)}_seq{int(seq)}",
                    "lstm",
                    "iOS17",
                    inputs,
                    [out, cat(hn.numpy()), cat(cn.numpy())],
                )
            )
    # Peephole, clip and activations: coremltools' NumPy reference.
    configs = [
        ("sigmoid", "tanh", "relu", 50.0, True),
        ("sigmoid", "tanh", "scaled_tanh", 0.2, True),
        ("hard_sigmoid", "tanh", "linear", 0.01, False),
        ("sigmoid", "relu", "hard_sigmoid", None, True),
        ("tanh", "sigmoid", "tanh", 0.5, True),
    ]
    for n, (ra, ca, act, clip, peep_on) in enumerate(configs):
        for direction in ("forward", "reverse"):
            x = rng.standard_normal((S, B, I)).astype(np.float32)
            wih = (rng.random((4 * H, I)) - 0.5).astype(np.float32)
            whh = (rng.random((4 * H, H)) - 0.5).astype(np.float32)
            bias = (rng.random(4 * H) - 0.5).astype(np.float32)
            peep = (rng.random(3 * H) - 0.5).astype(np.float32) if peep_on else np.zeros(3 * H, np.float32)
            h0 = rng.standard_normal((B, H)).astype(np.float32)
            c0 = rng.standard_normal((B, H)).astype(np.float32)
            out, hn, cn = np_lstm(x, h0, c0, wih, whh, bias, peep, ra, ca, act, clip, direction == "reverse")
            inputs = {
                "x": rt(x),
                "initial_h": rt(h0),
                "initial_c": rt(c0),
                "weight_ih": lit(wih),
                "weight_hh": lit(whh),
                "bias": lit(bias),
                "direction": s(direction),
                "output_sequence": b(True),
                "recurrent_activation": s(ra),
                "cell_activation": s(ca),
                "activation": s(act),
            }
            if peep_on:
                inputs["peephole"] = lit(peep)
            if clip is not None:
                inputs["clip"] = f(clip)
            cases.append(
                case(f"lstm_numpy_{n}_{direction}", "lstm", "iOS15", inputs, [out, hn, cn], atol=1e-5)
            )
    # Bidirectional with peephole_back and clip (NumPy reference per direction).
    x = rng.standard_normal((S, B, I)).astype(np.float32)
    ws = [
        [(rng.random(sh) - 0.5).astype(np.float32) for sh in ((4 * H, I), (4 * H, H), (4 * H,), (3 * H,))]
        for _ in range(2)
    ]
    h0 = rng.standard_normal((B, 2 * H)).astype(np.float32)
    c0 = rng.standard_normal((B, 2 * H)).astype(np.float32)
    of, hf, cf = np_lstm(x, h0[:, :H], c0[:, :H], *ws[0], "sigmoid", "tanh", "tanh", 0.7, False)
    ob, hb, cb = np_lstm(x, h0[:, H:], c0[:, H:], *ws[1], "sigmoid", "tanh", "tanh", 0.7, True)
    out = np.concatenate([of, ob[::-1]], axis=2)
    cases.append(
        case(
            "lstm_numpy_bidirectional_peephole_clip",
            "lstm",
            "iOS18",
            {
                "x": rt(x),
                "initial_h": rt(h0),
                "initial_c": rt(c0),
                "weight_ih": lit(ws[0][0]),
                "weight_hh": lit(ws[0][1]),
                "bias": lit(ws[0][2]),
                "peephole": lit(ws[0][3]),
                "weight_ih_back": lit(ws[1][0]),
                "weight_hh_back": lit(ws[1][1]),
                "bias_back": lit(ws[1][2]),
                "peephole_back": lit(ws[1][3]),
                "direction": s("bidirectional"),
                "output_sequence": b(True),
                "clip": f(0.7),
            },
            [out, np.concatenate([hf, hb], 1), np.concatenate([cf, cb], 1)],
        )
    )

    # GRU iOS15 semantics (reset before the hidden product): coremltools' NumPy reference.
    for direction in ("forward", "reverse"):
        for seq in (True, False):
            for act, ra in (("tanh", "sigmoid"), ("sigmoid", "tanh")):
                for opset in ("iOS15", "iOS18"):
                    x = rng.standard_normal((S, B, I)).astype(np.float32)
                    wih = (2 * rng.random((3 * H, I)) - 1).astype(np.float32)
                    whh = (2 * rng.random((3 * H, H)) - 1).astype(np.float32)
                    bias = (2 * rng.random(3 * H) - 1).astype(np.float32)
                    h0 = rng.random((B, H)).astype(np.float32)
                    out, hn = np_gru_ios15(x, h0, wih, whh, bias, ra, act, direction == "reverse")
                    if not seq:
                        out = out[-1:]
                    cases.append(
                        case(
                            f"gru_numpy_{opset}_{direction}_seq{int(seq)}_{act}",
                            "gru",
                            opset,
                            {
                                "x": rt(x),
                                "initial_h": rt(h0),
                                "weight_ih": lit(wih),
                                "weight_hh": lit(whh),
                                "bias": lit(bias),
                                "direction": s(direction),
                                "output_sequence": b(seq),
                                "activation": s(act),
                                "recurrent_activation": s(ra),
                            },
                            [out, hn],
                        )
                    )
    # iOS18 GRU reset_after=True against torch.nn.GRU (input_bias = b_ih, bias = b_hh).
    for direction in ("forward", "reverse"):
        for seq in (True, False):
            m = torch.nn.GRU(I, H, 1)
            sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
            x = torch.randn(S, B, I)
            h0 = torch.randn(1, B, H)
            xin = torch.flip(x, [0]) if direction == "reverse" else x
            with torch.no_grad():
                out, hn = m(xin, h0)
            out = out.numpy()
            if not seq:
                out = out[-1:]
            cases.append(
                case(
                    f"gru_torch_reset_after_{direction}_seq{int(seq)}",
                    "gru",
                    "iOS18",
                    {
                        "x": rt(x.numpy()),
                        "initial_h": rt(h0.numpy()[0]),
                        "weight_ih": lit(rzn_to_ron(sd["weight_ih_l0"])),
                        "weight_hh": lit(rzn_to_ron(sd["weight_hh_l0"])),
                        "input_bias": lit(rzn_to_ron(sd["bias_ih_l0"])),
                        "bias": lit(rzn_to_ron(sd["bias_hh_l0"])),
                        "reset_after": b(True),
                        "direction": s(direction),
                        "output_sequence": b(seq),
                    },
                    [out, hn.numpy()[0]],
                )
            )
    # RNN against torch.nn.RNN (tanh, relu).
    for direction in ("forward", "reverse"):
        for nonlin in ("tanh", "relu"):
            for has_bias in (True, False):
                m = torch.nn.RNN(I, H, 1, nonlinearity=nonlin, bias=has_bias)
                sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
                x = torch.randn(S, B, I)
                h0 = torch.randn(1, B, H)
                xin = torch.flip(x, [0]) if direction == "reverse" else x
                with torch.no_grad():
                    out, hn = m(xin, h0)
                inputs = {
                    "x": rt(x.numpy()),
                    "initial_h": rt(h0.numpy()[0]),
                    "weight_ih": lit(sd["weight_ih_l0"]),
                    "weight_hh": lit(sd["weight_hh_l0"]),
                    "direction": s(direction),
                    "output_sequence": b(True),
                    "activation": s(nonlin),
                }
                if has_bias:
                    inputs["bias"] = lit(sd["bias_ih_l0"] + sd["bias_hh_l0"])
                cases.append(
                    case(
                        f"rnn_torch_{direction}_{nonlin}_bias{int(has_bias)}",
                        "rnn",
                        "iOS17",
                        inputs,
                        [out.numpy(), hn.numpy()[0]],
                    )
                )
    return cases


def main():
    rng = np.random.default_rng(20240611)
    write("recurrent", recurrent_cases(rng))


if __name__ == "__main__":
    main()
