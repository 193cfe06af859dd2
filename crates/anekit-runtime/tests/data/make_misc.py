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


def arr(a, dtype=None, digits=9):
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
        data = [float("%.*g" % (digits, np.float32(v))) for v in a.reshape(-1)]
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
        # Expected values need fewer digits than inputs (they are compared with a tolerance).
        "outputs": [arr(o, digits=7) for o in outputs],
        "atol": atol,
        "rtol": rtol,
    }
    c.update(extra)
    return c


def write(family, cases):
    """Write the cases; tensors used more than once are stored once under "tensors" and
    referenced as {"ref": key} (plus "runtime" where it applies)."""
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{family}.json")
    counts, tensors, keys = {}, {}, {}

    def key_of(t):
        return json.dumps([t["dtype"], t["shape"], t["data"]])

    def visit(fn):
        for c in cases:
            for k, v in list(c["inputs"].items()):
                if "data" in v:
                    c["inputs"][k] = fn(v)
            c["outputs"] = [fn(o) for o in c["outputs"]]

    def count(t):
        k = key_of(t)
        counts[k] = counts.get(k, 0) + 1
        return t

    def share(t):
        k = key_of(t)
        if counts[k] < 2 or len(t["data"]) < 8:
            return t
        if k not in keys:
            keys[k] = f"t{len(keys)}"
            tensors[keys[k]] = {"dtype": t["dtype"], "shape": t["shape"], "data": t["data"]}
        r = {"ref": keys[k]}
        if t.get("runtime"):
            r["runtime"] = True
        return r

    visit(count)
    visit(share)
    with open(path, "w") as fh:
        json.dump({"generator": "make_misc.py", "tensors": tensors, "cases": cases}, fh, separators=(",", ":"))
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


# ------------------------------------------------------------------------------------------
# Image resizing
# ------------------------------------------------------------------------------------------


def grid_points(mode, xin, xout):
    """The resize_bilinear docstring's grids (before clamping)."""
    i_ = np.arange(xout, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if xout == 1:
            return np.array([(xin - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        return i_ * (xin - 1) / (xout - 1)
    if mode == "DEFAULT":
        return i_ * xin / xout
    if mode == "OFFSET_CORNERS":
        d = max(1, xin - 1) / xout
        return 0.5 * d + i_ * d
    if mode == "UNALIGN_CORNERS":
        return (i_ + 0.5) * xin / xout - 0.5
    raise ValueError(mode)


def np_linear_axis(x, axis, g):
    xin = x.shape[axis]
    g = np.clip(g, 0, xin - 1)
    i0 = np.floor(g).astype(int)
    i1 = np.minimum(i0 + 1, xin - 1)
    w = g - i0
    a = np.take(x, i0, axis=axis)
    b_ = np.take(x, i1, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = len(g)
    return a + (b_ - a) * w.reshape(shape)


def np_resize_bilinear(x, mode, oh, ow):
    y = np_linear_axis(x.astype(np.float64), x.ndim - 1, grid_points(mode, x.shape[-1], ow))
    return np_linear_axis(y, x.ndim - 2, grid_points(mode, x.shape[-2], oh))


def tf_crop_and_resize(img, box, th, tw, pad):
    """tf.image.crop_and_resize (bilinear) on one [C, H, W] image, box in pixels (y1, x1, y2, x2)."""
    C, H, W = img.shape
    y1, x1, y2, x2 = box
    out = np.full((C, th, tw), pad, dtype=np.float64)
    for a in range(th):
        y = (y1 + y2) / 2.0 if th == 1 else y1 + a * (y2 - y1) / (th - 1)
        if y < 0 or y > H - 1:
            continue
        for c_ in range(tw):
            x = (x1 + x2) / 2.0 if tw == 1 else x1 + c_ * (x2 - x1) / (tw - 1)
            if x < 0 or x > W - 1:
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            yb, xb = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
            fy, fx = y - y0, x - x0
            top = img[:, y0, x0] + (img[:, y0, xb] - img[:, y0, x0]) * fx
            bot = img[:, yb, x0] + (img[:, yb, xb] - img[:, yb, x0]) * fx
            out[:, a, c_] = top + (bot - top) * fy
    return out


def mil_pixel(c, n, coords, align):
    if coords == "unnormalized":
        return c
    if coords == "normalized_minus_one_to_one":
        return (c + 1) / 2 * (n - 1) if align else ((c + 1) * n - 1) / 2
    if coords == "normalized_zero_to_one":
        return c * (n - 1) if align else c * n - 0.5
    raise ValueError(coords)


def torch_sample_pixels(x, px, py, sampling, padding, pad_value):
    """Sample x [B,C,H,W] at pixel positions px/py [B,Ho,Wo] with torch.nn.functional.grid_sample.

    MIL's reflection folds over [0, X-1] (torch's reflection with align_corners=True) and
    symmetric over [-1/2, X-1/2] (torch's reflection with align_corners=False), whatever the
    op's align_corners; the pixel positions are converted to torch's normalized grid of the
    matching convention. A constant pad v is zero padding of x - v, plus v.
    """
    B, C, H, W = x.shape
    torch_pad = {"constant": "zeros", "border": "border", "reflection": "reflection", "symmetric": "reflection"}[padding]
    align = padding != "symmetric"
    if align:
        gx, gy = px / (W - 1) * 2 - 1, py / (H - 1) * 2 - 1
    else:
        gx, gy = (2 * px + 1) / W - 1, (2 * py + 1) / H - 1
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1).astype(np.float64))
    xt = torch.from_numpy(x.astype(np.float64) - (pad_value if padding == "constant" else 0.0))
    y = torch.nn.functional.grid_sample(
        xt, grid, mode=sampling, padding_mode=torch_pad, align_corners=align
    ).numpy()
    return y + (pad_value if padding == "constant" else 0.0)


def image_cases(rng):
    cases = []
    X1 = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], np.float32).reshape(1, 1, 4, 4)

    # --- coremltools' own op-test expectations (ops/tests/iOS14..iOS17/test_image_resizing.py)
    xr = np.array([0.37, 6.17], np.float32).reshape(1, 1, 2, 1)
    cases.append(case("ct_resize_nearest_2x1", "resize_nearest_neighbor", "iOS15",
                      {"x": rt(xr), "target_size_height": i(2), "target_size_width": i(1)}, [xr]))
    cases.append(case("ct_resize_nearest_2x3", "resize_nearest_neighbor", "iOS15",
                      {"x": rt(xr), "target_size_height": i(2), "target_size_width": i(3)},
                      [np.array([0.37, 0.37, 0.37, 6.17, 6.17, 6.17], np.float32).reshape(1, 1, 2, 3)]))
    x01 = np.array([0, 1], np.float32).reshape(1, 1, 2)
    for mode, want in [
        ("STRICT_ALIGN_CORNERS", [0, 0.25, 0.5, 0.75, 1]),
        ("DEFAULT", [0, 0.4, 0.8, 1, 1]),
        ("OFFSET_CORNERS", [0.1, 0.3, 0.5, 0.7, 0.9]),
        ("UNALIGN_CORNERS", [0.0, 0.1, 0.5, 0.9, 1.0]),
    ]:
        cases.append(case(f"ct_resize_bilinear_{mode}", "resize_bilinear", "iOS15",
                          {"x": rt(x01), "target_size_height": i(1), "target_size_width": i(5), "sampling_mode": s(mode)},
                          [np.array(want, np.float32).reshape(1, 1, 5)], atol=1e-6))
    cases.append(case("ct_upsample_bilinear_int", "upsample_bilinear", "iOS15",
                      {"x": rt(x01), "scale_factor_height": i(1), "scale_factor_width": i(3), "align_corners": b(True)},
                      [np.array([0, 0.2, 0.4, 0.6, 0.8, 1], np.float32).reshape(1, 1, 6)], atol=1e-6))
    cases.append(case("ct_upsample_bilinear_frac", "upsample_bilinear", "iOS15",
                      {"x": rt(x01), "scale_factor_height": f(1.0), "scale_factor_width": f(2.6), "align_corners": b(False)},
                      [np.array([0, 0.1, 0.5, 0.9, 1], np.float32).reshape(1, 1, 5)], atol=1e-6))
    x12 = np.array([1, 2], np.float32).reshape(1, 1, 1, 2)
    for align, half, want in [
        (True, False, [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]),
        (False, True, [1.0, 1.0, 1.33334, 1.66667, 2.0, 2.0]),
        (False, False, [1.0, 1.33334, 1.66667, 2.0, 2.0, 2.0]),
        (True, None, [1.0, 1.2, 1.4, 1.6, 1.8, 2.0]),
        (False, None, [1.0, 1.0, 1.33334, 1.66667, 2.0, 2.0]),
    ]:
        inputs = {"x": rt(x12), "scale_factor_height": i(2), "scale_factor_width": i(3), "align_corners": b(align)}
        if half is not None:
            inputs["half_pixel_centers"] = b(half)
        cases.append(case(f"ct_upsample_bilinear_ios16_align{int(align)}_half{half}", "upsample_bilinear", "iOS16",
                          inputs, [np.array(want * 2, np.float32).reshape(1, 1, 2, 6)], atol=2e-5))
    cases.append(case("ct_upsample_bilinear_ios16_both_true", "upsample_bilinear", "iOS16",
                      {"x": rt(x12), "scale_factor_height": i(2), "scale_factor_width": i(3), "align_corners": b(True),
                       "half_pixel_centers": b(True)}, [], error="cannot both be true"))
    cases.append(case("ct_upsample_nearest", "upsample_nearest_neighbor", "iOS15",
                      {"x": rt(np.array([1.5, 2.5, 3.5], np.float32).reshape(1, 1, 1, 3)),
                       "scale_factor_height": i(1), "scale_factor_width": i(2)},
                      [np.array([1.5, 1.5, 2.5, 2.5, 3.5, 3.5], np.float32).reshape(1, 1, 1, 6)]))
    xf = np.array([1.5, -2.5, 3.5], np.float32).reshape(1, 1, 1, 3)
    for sh, sw, want, shape in [
        (1.0, 1.0, [1.5, -2.5, 3.5], (1, 1, 1, 3)),
        (3.17, 0.67, [1.5, -2.5] * 3, (1, 1, 3, 2)),
        (2.0, 1.12, [1.5, -2.5, 3.5] * 2, (1, 1, 2, 3)),
    ]:
        cases.append(case(f"ct_upsample_nearest_frac_{sh}_{sw}", "upsample_nearest_neighbor", "iOS15",
                          {"x": rt(xf), "scale_factor_height": f(sh), "scale_factor_width": f(sw)},
                          [np.array(want, np.float32).reshape(shape)]))
    cases.append(case("ct_crop", "crop", "iOS15",
                      {"x": rt(X1), "crop_height": lit(np.array([0, 1], np.int32)), "crop_width": lit(np.array([1, 1], np.int32))},
                      [np.array([2, 3, 6, 7, 10, 11], np.float32).reshape(1, 1, 3, 2)]))
    roi = np.array([1, 1, 2, 2], np.float32).reshape(1, 1, 4, 1, 1)
    roi_norm = np.array([0, 0.0, 0.0, 1.0 / 3, 1.0 / 3], np.float32).reshape(1, 1, 5, 1, 1)
    roi_inv = np.array([2, 2, 1, 1], np.float32).reshape(1, 1, 4, 1, 1)
    for n, (r, th, tw, norm, want) in enumerate([
        (roi, 2, 2, False, [6, 7, 10, 11]),
        (roi, 4, 4, False, [6, 6.333333, 6.66666, 7, 7.333333, 7.666666, 8, 8.333333,
                            8.666666, 9, 9.3333333, 9.666666, 10, 10.333333, 10.666666, 11]),
        (roi, 1, 1, False, [8.5]),
        (roi_norm, 2, 2, True, [1, 2, 5, 6]),
        (roi_inv, 2, 2, False, [11, 10, 7, 6]),
    ]):
        cases.append(case(f"ct_crop_resize_{n}", "crop_resize", "iOS15",
                          {"x": rt(X1), "roi": lit(r), "target_height": i(th), "target_width": i(tw),
                           "normalized_coordinates": b(norm), "box_coordinate_mode": s("CORNERS_HEIGHT_FIRST"),
                           "sampling_mode": s("ALIGN_CORNERS")},
                          [np.array(want, np.float32).reshape(1, 1, 1, th, tw)], atol=1e-5))
    roi3 = np.array([[0, 0.1, 0.3, 1.3, 1], [0, 0.5, 1.8, 1.0, 0.3], [0, 0.0, 0.4, 0.6, 0.7]], np.float32)
    for pad in (0.0, 1.0, 10.0):
        want = np.array([3.1, 5.2, pad, pad, pad, 7.899, pad, 13.9, 2.2, 3.1, 9.4, 10.3], np.float32)
        cases.append(case(f"ct_crop_resize_ios16_pad{pad}", "crop_resize", "iOS16",
                          {"x": rt(X1), "roi": lit(roi3.reshape(3, 1, 5, 1, 1)), "target_height": i(2), "target_width": i(2),
                           "normalized_coordinates": b(True), "box_coordinate_mode": s("CORNERS_HEIGHT_FIRST"),
                           "sampling_mode": s("ALIGN_CORNERS"), "pad_value": f(pad)},
                          [want.reshape(3, 1, 1, 2, 2)], atol=1e-3))
    cases.append(case("ct_crop_resize_ios17_n1", "crop_resize", "iOS17",
                      {"x": rt(X1), "boxes": lit(np.array([[1, 1, 2, 2]], np.float32)), "target_height": i(2),
                       "target_width": i(2), "normalized_coordinates": b(False), "sampling_mode": s("ALIGN_CORNERS"),
                       "pad_value": f(10.0)},
                      [np.array([6, 7, 10, 11], np.float32).reshape(1, 1, 2, 2)]))
    cases.append(case("ct_crop_resize_ios17_n3", "crop_resize", "iOS17",
                      {"x": rt(X1), "boxes": lit(roi3[:, 1:]), "box_indices": lit(np.zeros(3, np.int32)),
                       "target_height": i(2), "target_width": i(2), "normalized_coordinates": b(True),
                       "sampling_mode": s("ALIGN_CORNERS"), "pad_value": f(10.0)},
                      [np.array([3.1, 5.2, 10.0, 10.0, 10.0, 7.899, 10.0, 13.9, 2.2, 3.1, 9.4, 10.3], np.float32).reshape(3, 1, 2, 2)],
                      atol=1e-3))
    xa = np.array([11.0, 22.0, 33.0, 44.0], np.float32).reshape(1, 1, 2, 2)
    ta = np.array([-1.0, -2.0, -3.7, -1.0, 3.5, 1.2], np.float32).reshape(1, 6)
    for oh, ow, want in [
        (3, 3, [10.752501, 2.5025, 0.0, 1.9799997, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (2, 5, [10.752501, 5.94, 2.5025, 0.44000006, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ]:
        cases.append(case(f"ct_affine_{oh}x{ow}", "affine", "iOS15",
                          {"x": rt(xa), "transform_matrix": rt(ta), "output_height": i(oh), "output_width": i(ow),
                           "sampling_mode": s("bilinear"), "padding_mode": s("constant"), "padding_value": f(0.0),
                           "coordinates_mode": s("normalized_minus_one_to_one"), "align_corners": b(True)},
                          [np.array(want, np.float32).reshape(1, 1, oh, ow)], atol=1e-5))
    coords_f = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)
    coords_i = np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int32).reshape(1, 2, 2, 2)
    builds = [
        ("bilinear", "constant", 6.17, "normalized_minus_one_to_one", True, [8.585, 6.17, 27.5, 6.17], [27.5, 44.0, 27.5, 44.0]),
        ("nearest", "border", -1.0, "unnormalized", False, [11.0, 11.0, 11.0, 44.0], [11.0, 44.0, 11.0, 44.0]),
        ("bilinear", "reflection", -1.0, "normalized_zero_to_one", True, [22.0, 36.3, 11.0, 34.1], [11.0, 44.0, 11.0, 44.0]),
        ("nearest", "symmetric", -1.0, "normalized_zero_to_one", False, [22.0, 33.0, 11.0, 33.0], [11.0, 44.0, 11.0, 44.0]),
    ]
    for n, (sm, pm, pv, cm, al, want_f, want_i) in enumerate(builds):
        for opset in ("iOS15", "iOS16", "iOS17"):
            for cname, coords, want in (("fp32", coords_f, want_f), ("int32", coords_i, want_i)):
                cases.append(case(f"ct_resample_{n}_{opset}_{cname}", "resample", opset,
                                  {"x": rt(xa), "coordinates": rt(coords), "sampling_mode": s(sm), "padding_mode": s(pm),
                                   "padding_value": f(pv), "coordinates_mode": s(cm), "align_corners": b(al)},
                                  [np.array(want, np.float32).reshape(1, 1, 2, 2)], atol=1e-4))
    xv = np.array([-6.174, 9.371], np.float32)
    cases.append(case("ct_resize_nearest_ios17", "resize", "iOS17",
                      {"x": rt(xv.reshape(1, 1, 1, 2, 1)), "shape": lit(np.array([1, 1, 3, 2], np.int32)),
                       "resized_dims": i(2, "uint32"), "interpolation_mode": s("NEAREST_NEIGHBOR"), "sampling_mode": s("DEFAULT")},
                      [np.array([-6.174, -6.174, 9.371, 9.371, 9.371, 9.371], np.float32).reshape(1, 1, 1, 3, 2)]))
    cases.append(case("ct_resize_nearest_ios17_dynamic", "resize", "iOS17",
                      {"x": rt(xv.reshape(1, 1, 2, 1)), "shape": rt(np.array([1, 1, 3, 2], np.int32)),
                       "resized_dims": i(2, "uint32"), "interpolation_mode": s("NEAREST_NEIGHBOR"), "sampling_mode": s("DEFAULT")},
                      [np.array([-6.174, -6.174, 9.371, 9.371, 9.371, 9.371], np.float32).reshape(1, 1, 3, 2)]))
    cases.append(case("ct_resize_linear_ios17", "resize", "iOS17",
                      {"x": rt(x01), "shape": lit(np.array([1, 1, 5], np.int32)), "resized_dims": i(2, "uint32"),
                       "interpolation_mode": s("LINEAR"), "sampling_mode": s("DEFAULT")},
                      [np.array([0, 0.4, 0.8, 1, 1], np.float32).reshape(1, 1, 5)], atol=1e-6))
    cases.append(case("ct_resize_linear_ios17_dynamic", "resize", "iOS17",
                      {"x": rt(x01.reshape(1, 1, 1, 2)), "shape": rt(np.array([3, 1, 5], np.int32)), "resized_dims": i(2, "uint32"),
                       "interpolation_mode": s("LINEAR"), "sampling_mode": s("DEFAULT")},
                      [np.array([0, 0.4, 0.8, 1, 1], np.float32).reshape(1, 1, 1, 5)], atol=1e-6))
    cases.append(case("ct_resize_bad_shape", "resize", "iOS17",
                      {"x": rt(x01), "shape": rt(np.array([1, 1, 1, 5], np.int32)), "resized_dims": i(2, "uint32")},
                      [], error="rank"))

    # --- PyTorch: interpolate (nearest, nearest-exact, bilinear) and grid_sample / affine_grid
    x = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
    xt = torch.from_numpy(x)
    for sh, sw in ((2, 3), (1.5, 2.5), (0.5, 0.75), (3.0, 0.4)):
        oh, ow = int(np.floor(np.float32(5) * np.float32(sh))), int(np.floor(np.float32(7) * np.float32(sw)))
        want = torch.nn.functional.interpolate(xt, size=(oh, ow), mode="nearest").numpy()
        cases.append(case(f"torch_upsample_nearest_{sh}_{sw}", "upsample_nearest_neighbor", "iOS15",
                          {"x": rt(x), "scale_factor_height": f(sh) if isinstance(sh, float) else i(sh),
                           "scale_factor_width": f(sw) if isinstance(sw, float) else i(sw)}, [want]))
        for align in (True, False):
            want = torch.nn.functional.interpolate(xt, size=(oh, ow), mode="bilinear", align_corners=align).numpy()
            for opset in ("iOS15", "iOS16"):
                cases.append(case(f"torch_upsample_bilinear_{sh}_{sw}_align{int(align)}_{opset}", "upsample_bilinear", opset,
                                  {"x": rt(x), "scale_factor_height": f(sh), "scale_factor_width": f(sw), "align_corners": b(align)},
                                  [want], atol=1e-5))
        want = np_resize_bilinear(x, "DEFAULT", oh, ow)
        cases.append(case(f"numpy_upsample_bilinear_{sh}_{sw}_default", "upsample_bilinear", "iOS17",
                          {"x": rt(x), "scale_factor_height": f(sh), "scale_factor_width": f(sw), "align_corners": b(False),
                           "half_pixel_centers": b(False)}, [want], atol=1e-5))
    for oh, ow in ((10, 14), (3, 4), (7, 5), (1, 1), (12, 3)):
        want = torch.nn.functional.interpolate(xt, size=(oh, ow), mode="nearest-exact").numpy()
        cases.append(case(f"torch_resize_nearest_{oh}x{ow}", "resize_nearest_neighbor", "iOS15",
                          {"x": rt(x), "target_size_height": i(oh), "target_size_width": i(ow)}, [want]))
        cases.append(case(f"torch_resize_nearest_ios17_{oh}x{ow}", "resize", "iOS17",
                          {"x": rt(x), "shape": lit(np.array([oh, ow], np.int32)), "resized_dims": i(2, "uint32"),
                           "interpolation_mode": s("NEAREST_NEIGHBOR")}, [want]))
        for mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS"):
            if mode == "STRICT_ALIGN_CORNERS" or (mode == "ALIGN_CORNERS" and oh > 1 and ow > 1):
                want = torch.nn.functional.interpolate(xt, size=(oh, ow), mode="bilinear", align_corners=True).numpy()
                src = "torch"
            elif mode == "UNALIGN_CORNERS":
                want = torch.nn.functional.interpolate(xt, size=(oh, ow), mode="bilinear", align_corners=False).numpy()
                src = "torch"
            else:
                want = np_resize_bilinear(x, mode, oh, ow)
                src = "numpy"
            cases.append(case(f"{src}_resize_bilinear_{mode}_{oh}x{ow}", "resize_bilinear", "iOS15",
                              {"x": rt(x), "target_size_height": i(oh), "target_size_width": i(ow), "sampling_mode": s(mode)},
                              [want], atol=1e-5))
            cases.append(case(f"{src}_resize_linear_ios17_{mode}_{oh}x{ow}", "resize", "iOS17",
                              {"x": rt(x), "shape": lit(np.array([1, oh, ow], np.int32)), "resized_dims": i(2, "uint32"),
                               "interpolation_mode": s("LINEAR"), "sampling_mode": s(mode)},
                              [want], atol=1e-5))
    # resize over 1 and 3 trailing dimensions, with 0 = keep, on an int32 tensor too.
    x5 = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x5.reshape(8, 5, 6)), size=(9,), mode="linear", align_corners=False).numpy().reshape(2, 4, 5, 9)
    cases.append(case("torch_resize_linear_1d", "resize", "iOS17",
                      {"x": rt(x5), "shape": lit(np.array([9], np.int32)), "resized_dims": i(1, "uint32"),
                       "sampling_mode": s("UNALIGN_CORNERS")}, [want], atol=1e-5))
    want = torch.nn.functional.interpolate(torch.from_numpy(x5[None]), size=(6, 5, 3), mode="trilinear", align_corners=True).numpy()[0]
    cases.append(case("torch_resize_linear_3d_keep", "resize", "iOS17",
                      {"x": rt(x5), "shape": lit(np.array([6, 0, 3], np.int32)), "resized_dims": i(3, "uint32"),
                       "sampling_mode": s("STRICT_ALIGN_CORNERS")}, [want], atol=1e-5))
    xi = rng.integers(-50, 50, (1, 2, 3, 4)).astype(np.int32)
    want = torch.nn.functional.interpolate(torch.from_numpy(xi.astype(np.float32)), size=(6, 8), mode="nearest-exact").numpy().astype(np.int32)
    cases.append(case("torch_resize_nearest_int32", "resize", "iOS17",
                      {"x": rt(xi), "shape": lit(np.array([6, 8], np.int32)), "resized_dims": i(2, "uint32"),
                       "interpolation_mode": s("NEAREST_NEIGHBOR")}, [want]))
    # crop against slicing.
    for t, bt, l, r in ((0, 0, 0, 0), (1, 2, 3, 1), (4, 0, 0, 6)):
        cases.append(case(f"numpy_crop_{t}{bt}{l}{r}", "crop", "iOS15",
                          {"x": rt(x), "crop_height": lit(np.array([t, bt], np.int32)), "crop_width": lit(np.array([l, r], np.int32))},
                          [x[:, :, t:5 - bt, l:7 - r]]))
    cases.append(case("crop_too_much", "crop", "iOS15",
                      {"x": rt(x), "crop_height": lit(np.array([3, 3], np.int32)), "crop_width": lit(np.array([0, 0], np.int32))},
                      [], error="remove more", untyped_outputs=1))
    # crop_resize (ALIGN_CORNERS) against TensorFlow's crop_and_resize formula.
    img = rng.standard_normal((2, 3, 6, 8)).astype(np.float32)
    boxes = np.array([[0.5, 1.0, 4.0, 6.5], [2.0, 0.0, 2.0, 7.0], [5.5, 7.2, -1.0, 3.0], [1.0, 2.0, 3.0, 3.0]], np.float32)
    idx = np.array([1, 0, 1, 1], np.int32)
    for mode in ("CORNERS_HEIGHT_FIRST", "CORNERS_WIDTH_FIRST", "CENTER_SIZE_HEIGHT_FIRST", "CENTER_SIZE_WIDTH_FIRST"):
        for norm, scale in ((False, 1.0), (True, 1.0), (False, 0.5)):
            raw = boxes / np.array([5, 7, 5, 7], np.float32) if norm else boxes
            if mode == "CORNERS_WIDTH_FIRST":
                raw = raw[:, [1, 0, 3, 2]]
            elif mode == "CENTER_SIZE_HEIGHT_FIRST":
                raw = np.stack([(raw[:, 0] + raw[:, 2]) / 2, (raw[:, 1] + raw[:, 3]) / 2, raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1]], 1)
            elif mode == "CENTER_SIZE_WIDTH_FIRST":
                raw = np.stack([(raw[:, 1] + raw[:, 3]) / 2, (raw[:, 0] + raw[:, 2]) / 2, raw[:, 3] - raw[:, 1], raw[:, 2] - raw[:, 0]], 1)
            raw = raw.astype(np.float32)
            pix = boxes.astype(np.float64) * scale
            th, tw = 3, 4
            want17 = np.stack([tf_crop_and_resize(img[idx[k]], pix[k], th, tw, 0.5) for k in range(4)])
            cases.append(case(f"tf_crop_resize_ios17_{mode}_norm{int(norm)}_scale{scale}", "crop_resize", "iOS17",
                              {"x": rt(img), "boxes": rt(raw), "box_indices": rt(idx), "target_height": i(th), "target_width": i(tw),
                               "normalized_coordinates": b(norm), "spatial_scale": f(scale), "box_coordinate_mode": s(mode),
                               "sampling_mode": s("ALIGN_CORNERS"), "pad_value": f(0.5)},
                              [want17], atol=2e-5))
            roi5 = np.concatenate([idx[:, None].astype(np.float32), raw], 1).reshape(4, 1, 5, 1, 1)
            want16 = want17[:, None]
            cases.append(case(f"tf_crop_resize_ios16_roi5_{mode}_norm{int(norm)}_scale{scale}", "crop_resize", "iOS16",
                              {"x": rt(img), "roi": rt(roi5), "target_height": i(th), "target_width": i(tw),
                               "normalized_coordinates": b(norm), "spatial_scale": f(scale), "box_coordinate_mode": s(mode),
                               "sampling_mode": s("ALIGN_CORNERS"), "pad_value": f(0.5)},
                              [want16], atol=2e-5))
    want15 = np.stack([np.stack([tf_crop_and_resize(img[j], boxes[k].astype(np.float64), 1, 5, 0.0) for j in range(2)]) for k in range(4)])
    cases.append(case("tf_crop_resize_ios15_roi4_all_images", "crop_resize", "iOS15",
                      {"x": rt(img), "roi": rt(boxes.reshape(4, 1, 4, 1, 1)), "target_height": i(1), "target_width": i(5),
                       "sampling_mode": s("ALIGN_CORNERS")}, [want15], atol=2e-5))
    # affine against torch.nn.functional.affine_grid + grid_sample (zeros, align_corners=True).
    xa2 = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    for d in (1, 2):
        theta = (rng.standard_normal((d, 6)) * 0.6).astype(np.float32)
        th_ = torch.from_numpy(np.broadcast_to(theta, (2, 6)).reshape(2, 2, 3).copy())
        for oh, ow in ((4, 7), (5, 6)):
            grid = torch.nn.functional.affine_grid(th_, (2, 3, oh, ow), align_corners=True)
            want = torch.nn.functional.grid_sample(torch.from_numpy(xa2), grid, mode="bilinear", padding_mode="zeros", align_corners=True).numpy()
            cases.append(case(f"torch_affine_d{d}_{oh}x{ow}", "affine", "iOS15",
                              {"x": rt(xa2), "transform_matrix": rt(theta), "output_height": i(oh), "output_width": i(ow),
                               "sampling_mode": s("bilinear"), "padding_mode": s("constant"), "padding_value": f(0.0),
                               "coordinates_mode": s("normalized_minus_one_to_one"), "align_corners": b(True)},
                              [want], atol=1e-5))
    # resample against torch grid_sample, every mode.
    xs_ = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    for coords in ("unnormalized", "normalized_minus_one_to_one", "normalized_zero_to_one"):
        for align in (True, False):
            if coords == "unnormalized" and not align:
                continue
            for padding in ("constant", "border", "reflection", "symmetric"):
                for sampling in ("bilinear", "nearest"):
                    lo, hi = {"unnormalized": (-4, 10), "normalized_minus_one_to_one": (-2.2, 2.2), "normalized_zero_to_one": (-0.8, 1.8)}[coords]
                    cg = rng.uniform(lo, hi, (2, 4, 3, 2)).astype(np.float32)
                    px = mil_pixel(cg[..., 0].astype(np.float64), 6, coords, align)
                    py = mil_pixel(cg[..., 1].astype(np.float64), 5, coords, align)
                    want = torch_sample_pixels(xs_, px, py, sampling, padding, 0.75)
                    cases.append(case(f"torch_resample_{coords}_align{int(align)}_{padding}_{sampling}", "resample", "iOS16",
                                      {"x": rt(xs_), "coordinates": rt(cg), "sampling_mode": s(sampling), "padding_mode": s(padding),
                                       "padding_value": f(0.75), "coordinates_mode": s(coords), "align_corners": b(align)},
                                      [want], atol=2e-5))
    return cases


# ------------------------------------------------------------------------------------------
# Quantization (iOS17 quantize / dequantize)
# ------------------------------------------------------------------------------------------


def quantization_cases(rng):
    cases = []
    # coremltools' op-test expectations (ops/tests/iOS17/test_quantization.py).
    cases.append(case("ct_quantize_scalar", "quantize", "iOS17",
                      {"input": rt(np.float32([[0, 2, 4], [0, 2, 4]])), "zero_point": lit(np.uint8(1), "uint8"),
                       "scale": f(2.0), "output_dtype": s("uint8")},
                      [np.array([[1, 2, 3], [1, 2, 3]], np.uint8)], atol=0, rtol=0))
    for ax in (3, -1):
        cases.append(case(f"ct_quantize_vector_axis{ax}", "quantize", "iOS17",
                          {"input": rt(np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 2, 2)),
                           "zero_point": lit(np.array([2, 4], np.int8)), "scale": lit(np.array([1, 2], np.float32)),
                           "axis": i(ax), "output_dtype": s("int8")},
                          [np.array([3, 5, 5, 6], np.int8).reshape(1, 1, 2, 2)], atol=0, rtol=0))
    cases.append(case("ct_quantize_no_zero_point", "quantize", "iOS17",
                      {"input": rt(np.float32([[0, 2, 4], [0, 2, 4]])), "scale": f(2.0), "output_dtype": s("int8")},
                      [np.array([[0, 1, 2], [0, 1, 2]], np.int8)], atol=0, rtol=0))
    cases.append(case("ct_quantize_fp16", "quantize", "iOS17",
                      {"input": rt(np.array([-1.0, 0.0, 1.0, 2.0], np.float16), "fp16"), "zero_point": lit(np.int8(10), "int8"),
                       "scale": f(0.1, "fp16"), "output_dtype": s("int8")},
                      [np.array([0, 10, 20, 30], np.int8)], atol=0, rtol=0))
    cases.append(case("ct_dequantize_scalar", "dequantize", "iOS17",
                      {"input": rt(np.array([[1, 2, 3], [1, 2, 3]], np.uint8)), "zero_point": lit(np.uint8(1), "uint8"),
                       "scale": f(2.0)},
                      [np.float32([[0, 2, 4], [0, 2, 4]])]))
    cases.append(case("ct_dequantize_vector", "dequantize", "iOS17",
                      {"input": rt(np.array([3, 5, 5, 6], np.int8).reshape(1, 1, 2, 2)),
                       "zero_point": lit(np.array([2, 4], np.int8)), "scale": lit(np.array([1, 2], np.float32)), "axis": i(3)},
                      [np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 2, 2)]))
    # PyTorch quantize_per_tensor / quantize_per_channel (round half to even, clamp), with
    # values on .5 boundaries and beyond the range.
    for qdt, tdt, lo, hi in (("int8", torch.qint8, -128, 127), ("uint8", torch.quint8, 0, 255)):
        npdt = np.int8 if qdt == "int8" else np.uint8
        x = (rng.standard_normal((2, 3, 4, 5)) * 40).astype(np.float32)
        x.reshape(-1)[:8] = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000, 3.5], np.float32) * 0.25
        scale = np.float32(0.25)
        zp = 3 if qdt == "int8" else 128
        want = torch.quantize_per_tensor(torch.from_numpy(x), float(scale), zp, tdt).int_repr().numpy()
        cases.append(case(f"torch_quantize_per_tensor_{qdt}", "quantize", "iOS17",
                          {"input": rt(x), "scale": f(scale), "zero_point": lit(npdt(zp), qdt), "output_dtype": s(qdt)},
                          [want], atol=0, rtol=0))
        deq = torch.quantize_per_tensor(torch.from_numpy(x), float(scale), zp, tdt).dequantize().numpy()
        cases.append(case(f"torch_dequantize_per_tensor_{qdt}", "dequantize", "iOS17",
                          {"input": rt(want.astype(npdt), qdt), "scale": f(scale), "zero_point": lit(npdt(zp), qdt)},
                          [deq]))
        for ax in (0, 1, 3, -2):
            n = x.shape[ax]
            sc = (rng.random(n) * 0.5 + 0.05).astype(np.float32)
            zps = rng.integers(lo + 10, hi - 10, n).astype(npdt)
            q = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(sc.astype(np.float64)),
                                           torch.from_numpy(zps.astype(np.int64)), ax % 4, tdt)
            want = q.int_repr().numpy()
            cases.append(case(f"torch_quantize_per_channel_{qdt}_axis{ax}", "quantize", "iOS17",
                              {"input": rt(x), "scale": lit(sc), "zero_point": lit(zps, qdt), "axis": i(ax),
                               "output_dtype": s(qdt)},
                              [want], atol=0, rtol=0))
            cases.append(case(f"torch_dequantize_per_channel_{qdt}_axis{ax}", "dequantize", "iOS17",
                              {"input": rt(want.astype(npdt), qdt), "scale": lit(sc), "zero_point": lit(zps, qdt),
                               "axis": i(ax)},
                              [q.dequantize().numpy()], atol=1e-6))
        # No zero point (symmetric).
        want = np.clip(np.round(x / scale), lo, hi).astype(npdt)
        cases.append(case(f"numpy_quantize_symmetric_{qdt}", "quantize", "iOS17",
                          {"input": rt(x), "scale": f(scale), "output_dtype": s(qdt)}, [want], atol=0, rtol=0))
        cases.append(case(f"numpy_dequantize_symmetric_{qdt}", "dequantize", "iOS17",
                          {"input": rt(want, qdt), "scale": f(scale)}, [want.astype(np.float32) * scale]))
    # conv_quantized: torch conv1d/conv2d with the dequantized weight W_q * scale + bias.
    F = torch.nn.functional
    for n, (nd, groups, pad_type, strides, dil, per_channel, nbits, lut) in enumerate([
        (2, 1, "valid", [1, 1], [1, 1], False, 8, False),
        (2, 1, "same", [2, 1], [1, 2], True, 8, False),
        (2, 2, "custom", [1, 2], [1, 1], True, 4, False),
        (1, 1, "valid", [2], [1], True, 8, False),
        (2, 1, "valid", [1, 1], [1, 1], False, 3, True),
    ]):
        cin, cout, k = 4, 6, 3
        spatial = (7, 9) if nd == 2 else (11,)
        x = rng.standard_normal((2, cin) + spatial).astype(np.float32)
        wq = rng.integers(0, 2 ** nbits, (cout, cin // groups) + (k,) * nd).astype(np.uint8)
        nsc = cout if per_channel else 1
        scale = (rng.random(nsc) * 0.05 + 0.01).astype(np.float32)
        qbias = (rng.standard_normal(nsc) * 0.1).astype(np.float32)
        if lut:
            table = rng.standard_normal(2 ** nbits).astype(np.float32)
            w = table[wq]
        else:
            bs = (cout,) + (1,) * (nd + 1)
            w = wq.astype(np.float32) * np.broadcast_to(scale, (cout,)).reshape(bs) + np.broadcast_to(qbias, (cout,)).reshape(bs)
        # The op's bias shares the weight's uint8 type domain; its values are used as they are
        # (coremltools' NeuralNetwork lowering passes them on as the float bias).
        bias = rng.integers(0, 4, cout).astype(np.uint8)
        pad = [1, 0, 2, 1][: 2 * nd]
        xt, wt = torch.from_numpy(x), torch.from_numpy(w.astype(np.float32))
        if pad_type == "custom":
            xt = F.pad(xt, [pad[2], pad[3], pad[0], pad[1]] if nd == 2 else [pad[0], pad[1]])
            padding = 0
        else:
            padding = pad_type
        conv = F.conv2d if nd == 2 else F.conv1d
        if pad_type == "same" and any(st > 1 for st in strides):
            # torch's padding="same" needs stride 1: pad as TensorFlow SAME does (extra after).
            ins = x.shape[2:]
            pads = []
            for d in range(nd):
                out = -(-ins[d] // strides[d])
                eff = (k - 1) * dil[d] + 1
                tot = max((out - 1) * strides[d] + eff - ins[d], 0)
                pads.append((tot // 2, tot - tot // 2))
            flat = [v for pr in reversed(pads) for v in pr]
            xt = F.pad(xt, flat)
            padding = 0
        want = conv(xt, wt, torch.from_numpy(bias.astype(np.float32)), stride=strides, padding=padding, dilation=dil, groups=groups).numpy()
        inputs = {
            "x": rt(x),
            "weight": lit(wq, "uint8"),
            "bias": lit(bias, "uint8"),
            "quantization_type": s("lut" if lut else "linear"),
            "nbits": i(nbits),
            "quant_scale": lit(table if lut else (scale if per_channel else scale.reshape(()))),
            "quant_bias": lit(qbias if per_channel else qbias.reshape(())),
            "pad_type": s(pad_type),
            "strides": lit(np.array(strides, np.int32)),
            "dilations": lit(np.array(dil, np.int32)),
            "groups": i(groups),
        }
        if pad_type == "custom":
            inputs["pad"] = lit(np.array(pad, np.int32))
        cases.append(case(f"torch_conv_quantized_{n}", "conv_quantized", "iOS15", inputs, [want], atol=2e-5, rtol=1e-5))
    cases.append(case("quantize_zero_scale", "quantize", "iOS17",
                      {"input": rt(np.float32([1, 2])), "scale": f(0.0), "output_dtype": s("int8")}, [], error="scale"))
    cases.append(case("quantize_bad_vector", "quantize", "iOS17",
                      {"input": rt(np.zeros((2, 3), np.float32)), "scale": lit(np.ones(2, np.float32)), "axis": i(1),
                       "output_dtype": s("int8")}, [], error="scale"))
    return cases


def main():
    rng = np.random.default_rng(20240611)
    write("recurrent", recurrent_cases(rng))
    write("image_resizing", image_cases(rng))
    write("quantization", quantization_cases(rng))


if __name__ == "__main__":
    main()
