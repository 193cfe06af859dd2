#!/usr/bin/env python3
"""Oracles for the dense-math CPU kernels (crates/anekit-runtime/tests/kernels_dense.rs):
conv, conv_transpose, pooling, normalization, reductions, attention, einsum, activations,
linear/matmul.

Run from the repository root with the project's Python (torch 2.7.1, numpy):

    .venv/bin/python crates/anekit-runtime/tests/data/make_dense.py

It writes one JSON file per family under crates/anekit-runtime/tests/data/dense/. Each case
is one MIL op: its arguments (`runtime: true` ones become function inputs, the others
literals) and the expected outputs. Expected values come from PyTorch in float64
(torch.nn.functional.conv*/conv_transpose*/avg_pool*/max_pool*/lp_pool*/batch_norm/
instance_norm/layer_norm/local_response_norm/scaled_dot_product_attention/einsum/prelu/
softplus/gelu/softmax/linear/matmul) or from NumPy where coremltools' definition is a NumPy
formula (the reductions, l2_norm and layer_norm over non-trailing axes: the `value_inference`
methods of coremltools 9.0 ops/defs/iOS15/reduction.py and normalization.py).

MIL semantics that PyTorch has no switch for are expressed with PyTorch primitives:
- `same`/`same_lower` padding (coremltools `aggregated_pad`: total = max(0, (ceil(i/s)-1)*s
  + k_eff - i), the odd element after for `same`, before for `same_lower`) and asymmetric
  `custom` padding: torch.nn.functional.pad (zeros; -inf for max pooling) before an
  unpadded op;
- average pooling over asymmetric padding: a sum pool of the zero-padded input divided by
  the window size (padding counted) or by a sum pool of the padded validity mask
  (`exclude_padding_from_average`);
- `conv_transpose` with asymmetric padding or `output_shape`: the unpadded transposed
  convolution cropped by the leading padding (TensorFlow's convention for `same`: the
  total crop `full - out`, half of it, rounded down, before).
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "dense")
RNG = np.random.default_rng(20250601)


def arr(a, dtype=None):
    a = np.asarray(a)
    if dtype is None:
        dtype = {
            np.dtype("float32"): "fp32",
            np.dtype("float64"): "fp32",
            np.dtype("int32"): "int32",
            np.dtype("int64"): "int32",
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


def i(v):
    return {"dtype": "int32", "shape": [], "data": [int(v)]}


def ints(v):
    return {"dtype": "int32", "shape": [len(v)], "data": [int(x) for x in v]}


def f(v):
    return {"dtype": "fp32", "shape": [], "data": [float("%.9g" % np.float32(v))]}


def out(a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return {"shape": list(a.shape), "data": [bool(x) for x in a.reshape(-1)]}
    if np.issubdtype(a.dtype, np.integer):
        return {"shape": list(a.shape), "data": [int(x) for x in a.reshape(-1)]}
    return {
        "shape": list(a.shape),
        "data": [float("%.9g" % v) if np.isfinite(v) else str(v) for v in a.reshape(-1).astype(np.float64)],
    }


CASES = {}


def case(family, name, op, opset, inputs, outputs, atol=1e-5, rtol=1e-5):
    CASES.setdefault(family, []).append(
        {
            "name": name,
            "op": op,
            "opset": opset,
            "inputs": inputs,
            "outputs": [out(o) for o in outputs],
            "atol": atol,
            "rtol": rtol,
        }
    )


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


def npy(t):
    return t.detach().numpy()


# ---------------------------------------------------------------------------------------------
# Padding helpers (coremltools _utils.aggregated_pad / spatial_dimensions_out_shape)
# ---------------------------------------------------------------------------------------------


def same_pads(in_sp, k_eff, strides, lower):
    pads = []
    for n, k, st in zip(in_sp, k_eff, strides):
        total = max(0, st * math.ceil(n / st) - n + k - st)
        before = (total + 1) // 2 if lower else total // 2
        pads.append((before, total - before))
    return pads


def pads_for(pad_type, in_sp, k_eff, strides, custom):
    if pad_type == "valid":
        return [(0, 0)] * len(in_sp)
    if pad_type == "custom":
        return [(custom[2 * d], custom[2 * d + 1]) for d in range(len(in_sp))]
    return same_pads(in_sp, k_eff, strides, pad_type == "same_lower")


def torch_pad(x, pads, value=0.0):
    flat = []
    for before, after in reversed(pads):
        flat += [before, after]
    return F.pad(x, flat, value=value)


# ---------------------------------------------------------------------------------------------
# conv
# ---------------------------------------------------------------------------------------------


def conv_case(name, opset, xs, ws, strides=None, dil=None, pad_type="valid", pad=None, groups=1,
              bias=True, weight_runtime=False):
    x = randn(*xs)
    w = randn(*ws)
    bv = randn(ws[0]) if bias else None
    sp = len(xs) - 2
    st = strides or [1] * sp
    dl = dil or [1] * sp
    k_eff = [(k - 1) * d + 1 for k, d in zip(ws[2:], dl)]
    pads = pads_for(pad_type, xs[2:], k_eff, st, pad)
    xp = torch_pad(t64(x), pads)
    fn = [None, F.conv1d, F.conv2d, F.conv3d][sp]
    y = fn(xp, t64(w), None if bv is None else t64(bv), stride=st, dilation=dl, groups=groups)
    inputs = {
        "x": rt(x),
        "weight": rt(w) if weight_runtime else lit(w),
        "pad_type": s(pad_type),
    }
    if strides is not None:
        inputs["strides"] = ints(strides)
    if dil is not None:
        inputs["dilations"] = ints(dil)
    if pad is not None:
        inputs["pad"] = ints(pad)
    if groups != 1:
        inputs["groups"] = i(groups)
    if bv is not None:
        inputs["bias"] = lit(bv)
    case("conv", name, "conv", opset, inputs, [npy(y)], atol=1e-4, rtol=1e-4)


def make_conv():
    # 2-D, every pad type, strides, dilations, groups.
    conv_case("conv2d_valid_bias", "ios15", [2, 3, 9, 8], [5, 3, 3, 3])
    conv_case("conv2d_same_s2", "ios15", [1, 4, 10, 9], [6, 4, 3, 3], strides=[2, 2],
              pad_type="same", bias=False)
    conv_case("conv2d_same_even_kernel", "ios16", [1, 3, 8, 7], [4, 3, 4, 2], pad_type="same")
    conv_case("conv2d_same_lower_s2", "ios16", [1, 4, 10, 9], [6, 4, 4, 3], strides=[2, 2],
              pad_type="same_lower")
    conv_case("conv2d_same_lower_dil", "ios17", [1, 2, 9, 9], [3, 2, 2, 3], dil=[2, 1],
              pad_type="same_lower")
    conv_case("conv2d_custom_asym_dil", "ios15", [2, 3, 9, 10], [4, 3, 3, 2], dil=[2, 1],
              pad_type="custom", pad=[1, 2, 0, 3])
    conv_case("conv2d_custom_s3", "ios15", [1, 3, 11, 12], [4, 3, 3, 3], strides=[3, 2],
              pad_type="custom", pad=[2, 0, 1, 1])
    conv_case("conv2d_groups2", "ios15", [1, 4, 7, 7], [6, 2, 3, 3], groups=2, pad_type="same")
    conv_case("conv2d_groups3_s2", "ios17", [2, 6, 9, 8], [9, 2, 3, 2], groups=3, strides=[2, 1],
              pad_type="valid")
    conv_case("conv2d_depthwise_s2_same", "ios15", [1, 4, 9, 9], [4, 1, 3, 3], groups=4,
              strides=[2, 2], pad_type="same")
    conv_case("conv2d_depthwise_mult2", "ios15", [2, 3, 8, 9], [6, 1, 3, 3], groups=3,
              pad_type="custom", pad=[1, 1, 1, 1])
    conv_case("conv2d_depthwise_dil2", "ios16", [1, 4, 10, 10], [4, 1, 3, 3], groups=4,
              dil=[2, 2], pad_type="same", bias=False)
    conv_case("conv2d_depthwise_5x5_s2_asym", "ios17", [1, 2, 11, 12], [2, 1, 5, 5], groups=2,
              strides=[2, 2], pad_type="custom", pad=[2, 1, 0, 2])
    conv_case("conv2d_pointwise", "ios15", [2, 16, 5, 6], [8, 16, 1, 1])
    conv_case("conv2d_pointwise_s2", "ios15", [1, 8, 7, 6], [5, 8, 1, 1], strides=[2, 2],
              bias=False)
    conv_case("conv2d_pointwise_groups", "ios15", [1, 8, 4, 4], [4, 4, 1, 1], groups=2)
    conv_case("conv2d_large_parallel", "ios16", [1, 16, 24, 24], [24, 16, 3, 3], pad_type="same")
    conv_case("conv2d_large_pointwise", "ios16", [1, 64, 12, 12], [48, 64, 1, 1])
    conv_case("conv2d_7x7_s2_stem", "ios16", [1, 3, 32, 32], [8, 3, 7, 7], strides=[2, 2],
              pad_type="custom", pad=[3, 3, 3, 3])
    conv_case("conv2d_runtime_weight", "ios17", [1, 3, 6, 6], [4, 3, 3, 3], weight_runtime=True,
              pad_type="same")
    # 1-D.
    conv_case("conv1d_s2_dil2_custom", "ios15", [2, 3, 20], [4, 3, 5], strides=[2], dil=[2],
              pad_type="custom", pad=[2, 1])
    conv_case("conv1d_same", "ios17", [1, 4, 13], [6, 4, 3], pad_type="same")
    conv_case("conv1d_same_lower_s2", "ios18", [1, 4, 13], [6, 4, 4], strides=[2],
              pad_type="same_lower")
    conv_case("conv1d_depthwise", "ios15", [1, 4, 16], [4, 1, 3], groups=4, pad_type="same")
    conv_case("conv1d_pointwise", "ios15", [2, 5, 7], [3, 5, 1])
    # 3-D.
    conv_case("conv3d_same_s", "ios15", [1, 2, 5, 6, 7], [3, 2, 2, 3, 2], strides=[1, 2, 1],
              pad_type="same")
    conv_case("conv3d_groups_custom", "ios15", [1, 4, 4, 5, 5], [4, 2, 3, 3, 3], groups=2,
              pad_type="custom", pad=[1, 1, 0, 1, 1, 0])
    conv_case("conv3d_depthwise_dil", "ios17", [1, 2, 6, 6, 6], [2, 1, 2, 2, 2], groups=2,
              dil=[2, 1, 2], pad_type="valid")


# ---------------------------------------------------------------------------------------------
# conv_transpose
# ---------------------------------------------------------------------------------------------


def conv_t_case(name, opset, xs, ws, strides=None, dil=None, pad_type="valid", pad=None,
                groups=1, bias=True, output_shape=None):
    x = randn(*xs)
    w = randn(*ws)
    c_out = ws[1] * groups
    bv = randn(c_out) if bias else None
    sp = len(xs) - 2
    st = strides or [1] * sp
    dl = dil or [1] * sp
    fn = [None, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d][sp]
    full = fn(t64(x), t64(w), None, stride=st, dilation=dl, groups=groups)
    full_sp = list(full.shape[2:])
    if output_shape is not None:
        out_sp = output_shape[2:]
    elif pad_type == "valid":
        out_sp = full_sp
    elif pad_type == "custom":
        out_sp = [full_sp[d] - pad[2 * d] - pad[2 * d + 1] for d in range(sp)]
    else:
        out_sp = [xs[2 + d] * st[d] for d in range(sp)]
    befores = []
    for d in range(sp):
        if pad_type == "custom":
            befores.append(pad[2 * d])
        elif pad_type == "valid":
            befores.append(0)
        else:
            total = max(0, full_sp[d] - out_sp[d])
            befores.append(total // 2 if pad_type == "same" else (total + 1) // 2)
    y = torch.zeros([xs[0], c_out] + list(out_sp), dtype=torch.float64)
    # Copy the overlap of full[before : before + out] into y.
    src = [slice(None), slice(None)]
    dst = [slice(None), slice(None)]
    for d in range(sp):
        lo = befores[d]
        hi = min(full_sp[d], lo + out_sp[d])
        src.append(slice(lo, hi))
        dst.append(slice(0, hi - lo))
    y[tuple(dst)] = full[tuple(src)]
    if bv is not None:
        y += t64(bv).reshape([1, c_out] + [1] * sp)
    inputs = {"x": rt(x), "weight": lit(w), "pad_type": s(pad_type)}
    if strides is not None:
        inputs["strides"] = ints(strides)
    if dil is not None:
        inputs["dilations"] = ints(dil)
    if pad is not None:
        inputs["pad"] = ints(pad)
    if groups != 1:
        inputs["groups"] = i(groups)
    if bv is not None:
        inputs["bias"] = lit(bv)
    if output_shape is not None:
        inputs["output_shape"] = ints(output_shape)
    case("conv_transpose", name, "conv_transpose", opset, inputs, [npy(y)], atol=1e-4, rtol=1e-4)


def make_conv_transpose():
    # Symmetric padding: exactly torch's ConvTranspose (also checked against torch's own padding).
    conv_t_case("convt2d_s2_pad1", "ios15", [1, 3, 5, 6], [3, 4, 3, 3], strides=[2, 2],
                pad_type="custom", pad=[1, 1, 1, 1])
    conv_t_case("convt2d_groups2_dil", "ios15", [2, 4, 4, 5], [4, 3, 3, 2], strides=[2, 1],
                dil=[2, 1], groups=2)
    conv_t_case("convt2d_asym_pad", "ios17", [1, 2, 5, 5], [2, 3, 4, 4], strides=[2, 2],
                pad_type="custom", pad=[1, 2, 0, 1], bias=False)
    conv_t_case("convt2d_same_s2", "ios15", [1, 3, 4, 5], [3, 2, 3, 3], strides=[2, 2],
                pad_type="same")
    conv_t_case("convt2d_output_shape", "ios15", [1, 2, 4, 4], [2, 3, 3, 3], strides=[2, 2],
                pad_type="custom", pad=[1, 1, 1, 1], output_shape=[1, 3, 8, 8])
    conv_t_case("convt1d_output_shape", "ios17", [2, 3, 6], [3, 2, 4], strides=[3],
                pad_type="custom", pad=[1, 1], output_shape=[2, 2, 18])
    conv_t_case("convt1d_valid", "ios15", [1, 2, 7], [2, 5, 3], strides=[2])
    conv_t_case("convt3d_valid", "ios15", [1, 2, 3, 3, 4], [2, 2, 2, 3, 2], strides=[2, 1, 2])
    # Check the cropping helper against torch's own padding on one case.
    x = randn(1, 3, 5, 6)
    w = randn(3, 4, 3, 3)
    a = F.conv_transpose2d(t64(x), t64(w), stride=2, padding=1)
    full = F.conv_transpose2d(t64(x), t64(w), stride=2)
    assert torch.allclose(a, full[:, :, 1:-1, 1:-1])


# ---------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------


def pool_out_dim(n, k, st, before, after, ceil):
    # coremltools spatial_dimensions_out_shape.
    total = before + after
    if not ceil:
        return (n + total - k) // st + 1
    o = (n + total - k + st - 1) // st + 1
    if (o - 1) * st >= n + total / 2 and total > 0:
        o -= 1
    return o


def pool_case(name, op, opset, xs, k, strides=None, pad_type="valid", pad=None, ceil=False,
              exclude=None):
    x = randn(*xs)
    sp = len(xs) - 2
    st = strides or [1] * sp
    pads = pads_for(pad_type, xs[2:], k, st, pad)
    outs = [pool_out_dim(xs[2 + d], k[d], st[d], pads[d][0], pads[d][1], ceil) for d in range(sp)]
    x64 = t64(x)
    sym = all(p0 == p1 for p0, p1 in pads) and all(p0 <= kk // 2 for (p0, _), kk in zip(pads, k))
    avg_fn = [None, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][sp]
    max_fn = [None, F.max_pool1d, F.max_pool2d, F.max_pool3d][sp]
    if op == "max_pool":
        if sym:
            y = max_fn(x64, k, st, padding=[p[0] for p in pads], ceil_mode=ceil)
        else:
            y = max_fn(torch_pad(x64, pads, value=-math.inf), k, st, ceil_mode=ceil)
    elif op == "avg_pool":
        if sym:
            y = avg_fn(x64, k, st, padding=[p[0] for p in pads], ceil_mode=ceil,
                       count_include_pad=not exclude)
        else:
            assert not ceil
            xp = torch_pad(x64, pads)
            window = float(np.prod(k))
            ssum = avg_fn(xp, k, st) * window
            if exclude:
                ones = torch_pad(torch.ones_like(x64), pads)
                cnt = avg_fn(ones, k, st) * window
                y = ssum / cnt
            else:
                y = ssum / window
    else:  # l2_pool: sqrt(sum of squares over the window)
        xp = torch_pad(x64, pads)
        window = float(np.prod(k))
        y = torch.sqrt(avg_fn(xp * xp, k, st, ceil_mode=ceil) * window)
    assert list(y.shape[2:]) == outs, (name, list(y.shape), outs)
    inputs = {"x": rt(x), "kernel_sizes": ints(k), "pad_type": s(pad_type)}
    if strides is not None:
        inputs["strides"] = ints(strides)
    if pad is not None:
        inputs["pad"] = ints(pad)
    if ceil:
        inputs["ceil_mode"] = b(True)
    if exclude is not None:
        inputs["exclude_padding_from_average"] = b(exclude)
    case("pool", name, op, opset, inputs, [npy(y)])


def make_pool():
    for op in ["max_pool", "avg_pool"]:
        ex = [None] if op == "max_pool" else [False, True]
        for e in ex:
            tag = op + ("" if e is None else ("_excl" if e else "_incl"))
            pool_case(f"{tag}_2d_valid", op, "ios15", [2, 3, 7, 8], [2, 2], strides=[2, 2],
                      exclude=e)
            pool_case(f"{tag}_2d_custom_sym", op, "ios15", [1, 2, 7, 7], [3, 3], strides=[2, 2],
                      pad_type="custom", pad=[1, 1, 1, 1], exclude=e)
            pool_case(f"{tag}_2d_same", op, "ios15", [1, 2, 8, 7], [3, 2], strides=[2, 2],
                      pad_type="same", exclude=e)
            pool_case(f"{tag}_2d_same_s1", op, "ios15", [1, 2, 6, 6], [3, 3], pad_type="same",
                      exclude=e)
            pool_case(f"{tag}_2d_same_lower", op, "ios16", [1, 2, 8, 7], [4, 3], strides=[3, 2],
                      pad_type="same_lower", exclude=e)
            pool_case(f"{tag}_2d_custom_asym", op, "ios17", [1, 2, 7, 8], [3, 3], strides=[2, 2],
                      pad_type="custom", pad=[0, 2, 1, 0], exclude=e)
            pool_case(f"{tag}_2d_ceil", op, "ios15", [1, 2, 7, 7], [2, 2], strides=[2, 2],
                      ceil=True, exclude=e)
            pool_case(f"{tag}_2d_ceil_pad", op, "ios15", [1, 2, 8, 8], [3, 3], strides=[2, 2],
                      pad_type="custom", pad=[1, 1, 1, 1], ceil=True, exclude=e)
            pool_case(f"{tag}_2d_ceil_drop_last", op, "ios15", [1, 1, 5, 5], [2, 2],
                      strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1], ceil=True, exclude=e)
            pool_case(f"{tag}_1d_custom", op, "ios15", [2, 3, 11], [3], strides=[2],
                      pad_type="custom", pad=[1, 1], exclude=e)
            pool_case(f"{tag}_1d_ceil", op, "ios15", [1, 2, 10], [3], strides=[2], ceil=True,
                      exclude=e)
            pool_case(f"{tag}_3d_same", op, "ios15", [1, 2, 5, 6, 5], [2, 3, 2],
                      strides=[2, 2, 1], pad_type="same", exclude=e)
            pool_case(f"{tag}_3d_valid", op, "ios15", [1, 2, 4, 4, 4], [2, 2, 2], strides=[2, 2, 2],
                      exclude=e)
    pool_case("l2_pool_2d_valid", "l2_pool", "ios15", [1, 3, 6, 6], [2, 2], strides=[2, 2])
    pool_case("l2_pool_2d_same", "l2_pool", "ios15", [1, 2, 7, 6], [3, 3], strides=[2, 2],
              pad_type="same")
    pool_case("l2_pool_2d_custom", "l2_pool", "ios17", [1, 2, 6, 6], [3, 2], strides=[1, 2],
              pad_type="custom", pad=[1, 0, 0, 1])
    pool_case("l2_pool_1d", "l2_pool", "ios15", [2, 2, 9], [3], strides=[2])
    pool_case("max_pool_large_parallel", "max_pool", "ios16", [1, 16, 48, 48], [3, 3],
              strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1])


# ---------------------------------------------------------------------------------------------
# normalization
# ---------------------------------------------------------------------------------------------


def make_norm():
    fam = "normalization"
    for rank in [3, 4, 5]:
        xs = [2, 3] + [4, 5, 3][: rank - 2]
        x = randn(*xs)
        mean, var = randn(3), np.abs(randn(3)) + 0.1
        g, bb = randn(3), randn(3)
        y = F.batch_norm(t64(x), t64(mean), t64(var), t64(g), t64(bb), False, 0.0, 1e-3)
        case(fam, f"batch_norm_rank{rank}", "batch_norm", "ios15",
             {"x": rt(x), "mean": lit(mean), "variance": lit(var), "gamma": lit(g),
              "beta": lit(bb), "epsilon": f(1e-3)}, [npy(y)])
    x = randn(2, 4, 3, 3)
    mean, var = randn(4), np.abs(randn(4)) + 0.1
    y = F.batch_norm(t64(x), t64(mean), t64(var), None, None, False, 0.0, 1e-5)
    case(fam, "batch_norm_no_affine", "batch_norm", "ios17",
         {"x": rt(x), "mean": lit(mean), "variance": lit(var)}, [npy(y)])

    for rank in [3, 4]:
        xs = [2, 3] + [6, 5][: rank - 2]
        x = randn(*xs) * 3 + 2
        g, bb = randn(3), randn(3)
        y = F.instance_norm(t64(x), weight=t64(g), bias=t64(bb), eps=1e-4)
        case(fam, f"instance_norm_rank{rank}", "instance_norm", "ios15",
             {"x": rt(x), "gamma": lit(g), "beta": lit(bb), "epsilon": f(1e-4)}, [npy(y)])
    x = randn(1, 2, 4, 4)
    y = F.instance_norm(t64(x), eps=1e-5)
    case(fam, "instance_norm_no_affine", "instance_norm", "ios17", {"x": rt(x)}, [npy(y)])

    # layer_norm over trailing axes: torch; other axes: coremltools' numpy formula.
    x = randn(2, 5, 16) * 4 + 10
    g, bb = randn(16), randn(16)
    y = F.layer_norm(t64(x), [16], t64(g), t64(bb), 1e-5)
    case(fam, "layer_norm_last", "layer_norm", "ios15",
         {"x": rt(x), "axes": ints([-1]), "gamma": lit(g), "beta": lit(bb), "epsilon": f(1e-5)},
         [npy(y)])
    x = randn(2, 3, 4, 5)
    g = randn(4, 5)
    y = F.layer_norm(t64(x), [4, 5], t64(g), None, 1e-3)
    case(fam, "layer_norm_last2_gamma", "layer_norm", "ios17",
         {"x": rt(x), "axes": ints([2, 3]), "gamma": lit(g), "epsilon": f(1e-3)}, [npy(y)])
    x = randn(3, 4, 5)
    y = F.layer_norm(t64(x), [3, 4, 5], None, None, 1e-5)
    case(fam, "layer_norm_all_default_axes", "layer_norm", "ios15", {"x": rt(x)}, [npy(y)])

    def np_layer_norm(x, axes, gamma, beta, eps):
        rank = x.ndim
        axes = [a + rank if a < 0 else a for a in axes]
        shape = [x.shape[i] if i in axes else 1 for i in range(rank)]
        gamma = np.ones(shape) if gamma is None else np.reshape(gamma, shape)
        beta = np.zeros(shape) if beta is None else np.reshape(beta, shape)
        num = x - np.mean(x, axis=tuple(axes), keepdims=True)
        dem = np.sqrt(np.sum(np.square(num), axis=tuple(axes), keepdims=True) / np.prod(shape) + eps)
        return num / dem * gamma + beta

    x = randn(2, 6, 3, 4).astype(np.float64)
    g, bb = randn(6, 4), randn(6, 4)
    y = np_layer_norm(x, [1, -1], g.astype(np.float64), bb.astype(np.float64), 1e-5)
    case(fam, "layer_norm_axes_1_3", "layer_norm", "ios16",
         {"x": rt(x), "axes": ints([1, -1]), "gamma": lit(g), "beta": lit(bb)}, [y])
    x = randn(3, 4, 5).astype(np.float64)
    y = np_layer_norm(x, [0], None, None, 1e-5)
    case(fam, "layer_norm_axis0", "layer_norm", "ios18", {"x": rt(x), "axes": ints([0])}, [y])
    x = randn(8, 768) + 3.0
    g, bb = randn(768), randn(768)
    y = F.layer_norm(t64(x), [768], t64(g), t64(bb), 1e-5)
    case(fam, "layer_norm_bert_rows", "layer_norm", "ios17",
         {"x": rt(x), "axes": ints([-1]), "gamma": lit(g), "beta": lit(bb)}, [npy(y)])

    # l2_norm: coremltools' value_inference.
    def np_l2(val, eps):
        shape = val.shape
        batch_dims = val.ndim - 3
        if batch_dims == 0:
            return val / np.power(np.sum(val ** 2) + eps, 0.5)
        r = np.reshape(val, (int(np.prod(shape[:batch_dims])), -1))
        ss = np.sum(r * r, axis=1, keepdims=True) + eps
        return np.reshape(r / np.power(ss, 0.5), shape)

    for shape in [(3, 4, 5), (2, 3, 4, 5), (2, 2, 3, 2, 3)]:
        x = randn(*shape).astype(np.float64)
        case(fam, f"l2_norm_rank{len(shape)}", "l2_norm", "ios15",
             {"x": rt(x), "epsilon": f(1e-6)}, [np_l2(x, 1e-6)])
    x = np.zeros((1, 2, 2, 2))
    case(fam, "l2_norm_zeros", "l2_norm", "ios17", {"x": rt(x)}, [np_l2(x, 1e-6)])

    # local_response_norm: torch.nn.functional.local_response_norm (channel window
    # c - size//2 ..= c + (size-1)//2, alpha divided by size). The channel axis is -3: axis 1
    # of [N, C, H, W], axis 0 of a rank-3 [C, H, W] input -- what coremltools' own smoke test
    # (below) expects from the Core ML runtime; torch sees the rank-3 input as one batch.
    for rank, size, alpha, beta, k in [(3, 2, 1e-4, 0.75, 1.0), (3, 3, 0.05, 0.75, 1.0),
                                       (4, 3, 0.01, 1.0, 2.0), (4, 5, 0.5, 0.75, 1.0),
                                       (4, 4, 0.1, 0.5, 1.5)]:
        xs = ([2, 6] + [3, 4][: rank - 2]) if rank == 4 else [6, 3, 4]
        x = randn(*xs)
        if rank == 3:
            y = F.local_response_norm(t64(x)[None], size, alpha, beta, k)[0]
        else:
            y = F.local_response_norm(t64(x), size, alpha, beta, k)
        case(fam, f"lrn_rank{rank}_size{size}", "local_response_norm", "ios15",
             {"x": rt(x), "size": i(size), "alpha": f(alpha), "beta": f(beta), "k": f(k)},
             [npy(y)])
    # coremltools' own smoke test (ops/tests/iOS14/test_normalization.py).
    x = np.array([[[1.0, -7.0], [5.0, -6.0], [-3.0, -5.0]]], dtype=np.float32)
    case(fam, "lrn_coremltools_smoke_size2", "local_response_norm", "ios15",
         {"x": rt(x), "size": i(2)},
         [np.array([[[0.99996257, -6.98716545], [4.99531746, -5.99191284],
                     [-2.99898791, -4.99531746]]])])


# ---------------------------------------------------------------------------------------------
# reductions: coremltools' numpy definitions
# ---------------------------------------------------------------------------------------------


def np_lse(a, axis=None, keepdims=False):
    m = np.amax(a, axis=axis, keepdims=True)
    t = np.exp(a - m)
    if not keepdims:
        m = np.squeeze(m, axis=axis)
    return np.log(np.sum(t, axis=axis, keepdims=keepdims)) + m


REDUCE = {
    "reduce_sum": np.sum,
    "reduce_mean": np.mean,
    "reduce_prod": np.prod,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_sum_square": lambda x, axis=None, keepdims=False: np.sum(np.square(x), axis=axis, keepdims=keepdims),
    "reduce_l1_norm": lambda x, axis=None, keepdims=False: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis=None, keepdims=False: np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis=None, keepdims=False: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": np_lse,
}


def make_reduction():
    fam = "reduction"
    x = randn(2, 3, 4, 5).astype(np.float64)
    xpos = np.abs(x) + 0.1
    for op, fn in REDUCE.items():
        data = xpos if op == "reduce_log_sum" else (x * 0.7 if op == "reduce_prod" else x)
        for axes, keep in [(None, False), (None, True), ([1], False), ([-1], True),
                           ([0, 2], False), ([1, 2], True), ([-4, -1], True), ([3, 1], False)]:
            ax = None if axes is None else tuple(a % 4 for a in axes)
            y = fn(data, axis=ax, keepdims=keep)
            inputs = {"x": rt(data), "keep_dims": b(keep)}
            if axes is not None:
                inputs["axes"] = ints(axes)
            tag = "all" if axes is None else "_".join(str(a).replace("-", "m") for a in axes)
            case(fam, f"{op}_{tag}_{'keep' if keep else 'drop'}", op, "ios15", inputs,
                 [np.asarray(y)], atol=1e-5, rtol=1e-5)
    # Integer inputs keep an integer type (numpy astype(int32): truncation).
    xi = RNG.integers(-5, 6, size=(3, 4, 2)).astype(np.int32)
    for op in ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
               "reduce_l1_norm", "reduce_sum_square"]:
        y = REDUCE[op](xi, axis=(1,), keepdims=False).astype(np.int32)
        case(fam, f"{op}_int32", op, "ios15", {"x": rt(xi), "axes": ints([1])}, [y])
    # Large row reduction (parallel path) and a softmax-style log_sum_exp with big logits.
    xl = randn(64, 1024).astype(np.float64)
    case(fam, "reduce_sum_rows_large", "reduce_sum", "ios16",
         {"x": rt(xl), "axes": ints([-1])}, [np.sum(xl, axis=-1)], atol=1e-4)
    xb = (randn(3, 7) * 50 + 500).astype(np.float64)
    case(fam, "reduce_log_sum_exp_large_logits", "reduce_log_sum_exp", "ios15",
         {"x": rt(xb), "axes": ints([1])}, [np_lse(xb, axis=(1,))], atol=1e-3)
    # arg reductions (first index on ties).
    xa = RNG.integers(0, 4, size=(3, 5, 4)).astype(np.float32)
    for op, fn in [("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)]:
        for axis, keep in [(None, False), (0, True), (-2, False), (2, True)]:
            a = -1 if axis is None else axis
            y = fn(xa, axis=a)
            if keep:
                y = np.expand_dims(y, a)
            inputs = {"x": rt(xa), "keep_dims": b(keep)}
            if axis is not None:
                inputs["axis"] = i(axis)
            case(fam, f"{op}_{'default' if axis is None else str(axis).replace('-', 'm')}_{keep}",
                 op, "ios15", inputs, [y.astype(np.int32)])
        y = fn(xa.astype(np.int32), axis=1).astype(np.int32)
        case(fam, f"{op}_int32_ios17_dtype", op, "ios17",
             {"x": rt(xa.astype(np.int32)), "axis": i(1), "output_dtype": s("int32")}, [y])


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------


def make_attention():
    fam = "attention"

    def sdpa_case(name, qs, ks, vs, mask=None):
        q, k, v = randn(*qs), randn(*ks), randn(*vs)
        m = None
        if mask is not None:
            kind, shape = mask
            if kind == "bool":
                m = RNG.random(shape) > 0.3
                # keep at least one key per row so that no row is fully masked
                m[..., 0] = True
            else:
                m = randn(*shape)
        tm = None
        if m is not None:
            # torch wants a mask of rank >= 2; MIL also takes [S].
            m2 = m.reshape((1,) * max(0, 2 - m.ndim) + m.shape)
            tm = torch.from_numpy(m2 if m2.dtype == np.bool_ else m2.astype(np.float64))
        y = F.scaled_dot_product_attention(t64(q), t64(k), t64(v), attn_mask=tm)
        inputs = {"query": rt(q), "key": rt(k), "value": rt(v)}
        if m is not None:
            inputs["attn_mask"] = rt(m)
        case(fam, name, "scaled_dot_product_attention", "ios18", inputs, [npy(y)], atol=1e-5,
             rtol=1e-4)

    sdpa_case("sdpa_rank3_nomask", [2, 5, 8], [2, 7, 8], [2, 7, 6])
    sdpa_case("sdpa_rank4_bool_mask_ls", [1, 2, 4, 8], [1, 2, 6, 8], [1, 2, 6, 3], ("bool", (4, 6)))
    sdpa_case("sdpa_rank4_float_mask_b1ls", [2, 3, 5, 4], [2, 3, 5, 4], [2, 3, 5, 4],
              ("float", (2, 1, 5, 5)))
    sdpa_case("sdpa_rank4_bool_mask_row", [1, 2, 3, 4], [1, 2, 6, 4], [1, 2, 6, 4],
              ("bool", (1, 1, 1, 6)))
    sdpa_case("sdpa_rank4_float_mask_s", [1, 2, 3, 4], [1, 2, 6, 4], [1, 2, 6, 5],
              ("float", (6,)))
    sdpa_case("sdpa_large_parallel", [2, 4, 32, 16], [2, 4, 32, 16], [2, 4, 32, 16],
              ("bool", (32, 32)))
    sdpa_case("sdpa_rank5", [1, 2, 2, 3, 4], [1, 2, 2, 5, 4], [1, 2, 2, 5, 4])
    # Causal mask as in decoders.
    L = 6
    q, k, v = randn(1, 2, L, 8), randn(1, 2, L, 8), randn(1, 2, L, 8)
    m = np.tril(np.ones((L, L), dtype=bool))
    y = F.scaled_dot_product_attention(t64(q), t64(k), t64(v), is_causal=True)
    case(fam, "sdpa_causal_bool", "scaled_dot_product_attention", "ios18",
         {"query": rt(q), "key": rt(k), "value": rt(v), "attn_mask": rt(m)}, [npy(y)],
         atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# einsum, linear, matmul
# ---------------------------------------------------------------------------------------------


def make_linalg():
    fam = "linalg"
    for name, eq, xs, ys in [
        ("einsum_nchw", "nchw,nwhu->nchu", (2, 3, 4, 5), (2, 5, 4, 6)),
        ("einsum_nchw_renamed", "abcd,adce->abce", (1, 2, 3, 4), (1, 4, 3, 2)),
        ("einsum_nchw_bcast_b", "nchw,nwhu->nchu", (1, 3, 4, 5), (2, 5, 4, 6)),
        ("einsum_nchw_bcast_h", "nchw,nwhu->nchu", (2, 3, 4, 5), (2, 5, 1, 6)),
        ("einsum_chw", "chw,whr->chr", (3, 4, 5), (5, 4, 2)),
        ("einsum_chw_renamed", "ijk,kjl->ijl", (2, 3, 4), (4, 3, 5)),
        ("einsum_chw_bcast_h", "chw,whr->chr", (3, 1, 5), (5, 4, 2)),
    ]:
        x, y = randn(*xs), randn(*ys)
        # coremltools value_inference: broadcast dims -2 and -4, then np.einsum.
        if len(xs) == 4:
            bx = (max(xs[0], ys[0]), xs[1], max(xs[2], ys[2]), xs[3])
            by = (max(xs[0], ys[0]), ys[1], max(xs[2], ys[2]), ys[3])
        else:
            bx = (xs[0], max(xs[1], ys[1]), xs[2])
            by = (ys[0], max(xs[1], ys[1]), ys[2])
        ref = torch.einsum(eq, t64(np.broadcast_to(x, bx).copy()), t64(np.broadcast_to(y, by).copy()))
        case(fam, name, "einsum", "ios15",
             {"values": {"tuple": [rt(x), rt(y)]}, "equation": s(eq)}, [npy(ref)])

    for name, xs, n, bias in [("linear_m1", (1, 256), 64, True), ("linear_m3", (3, 96), 40, True),
                              ("linear_rank3", (2, 5, 32), 24, False),
                              ("linear_m64_k128", (64, 128), 96, True), ("linear_rank1", (12,), 7, True)]:
        x = randn(*xs)
        w = randn(n, xs[-1])
        bv = randn(n) if bias else None
        y = F.linear(t64(x), t64(w), None if bv is None else t64(bv))
        inputs = {"x": rt(x), "weight": lit(w)}
        if bias:
            inputs["bias"] = lit(bv)
        case(fam, name, "linear", "ios15", inputs, [npy(y)], atol=1e-4, rtol=1e-4)

    for name, xs, ys, tx, ty in [
        ("matmul_2d", (5, 7), (7, 3), False, False),
        ("matmul_tx", (7, 5), (7, 3), True, False),
        ("matmul_ty", (5, 7), (3, 7), False, True),
        ("matmul_txy_batch", (2, 7, 5), (2, 3, 7), True, True),
        ("matmul_bcast", (2, 1, 4, 6), (3, 6, 5), False, False),
        ("matmul_shared_rhs", (3, 4, 6), (6, 5), False, False),
        ("matmul_vec_x", (6,), (2, 6, 3), False, False),
        ("matmul_gemv_row", (1, 64), (64, 48), False, False),
        ("matmul_heads", (2, 4, 16, 8), (2, 4, 8, 16), False, False),
    ]:
        x, y = randn(*xs), randn(*ys)
        a, c = t64(x), t64(y)
        if tx:
            a = a.transpose(-1, -2)
        if ty:
            c = c.transpose(-1, -2)
        ref = torch.matmul(a, c)
        inputs = {"x": rt(x), "y": rt(y)}
        if tx:
            inputs["transpose_x"] = b(True)
        if ty:
            inputs["transpose_y"] = b(True)
        case(fam, name, "matmul", "ios15", inputs, [npy(ref)], atol=1e-4, rtol=1e-4)
    xi = RNG.integers(-4, 5, size=(3, 4)).astype(np.int32)
    yi = RNG.integers(-4, 5, size=(4, 2)).astype(np.int32)
    case(fam, "matmul_int32", "matmul", "ios15", {"x": rt(xi), "y": rt(yi)}, [xi @ yi])


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------


def make_activation():
    fam = "activation"
    x = (randn(2, 3, 4, 5) * 3).astype(np.float32)
    x64 = t64(x)
    unary = {
        "relu": F.relu(x64),
        "relu6": F.relu6(x64),
        "sigmoid": torch.sigmoid(x64),
        "silu": F.silu(x64),
        "softsign": F.softsign(x64),
        "softplus": F.softplus(x64),
    }
    for op, y in unary.items():
        case(fam, op, op, "ios15", {"x": rt(x)}, [npy(y)], atol=1e-6, rtol=2e-6)
    for mode, approx in [("EXACT", "none"), ("TANH_APPROXIMATION", "tanh")]:
        y = F.gelu(x64, approximate=approx)
        case(fam, f"gelu_{mode.lower()}", "gelu", "ios15", {"x": rt(x), "mode": s(mode)}, [npy(y)],
             atol=2e-6, rtol=2e-6)
    y = x64 * torch.sigmoid(1.702 * x64)
    case(fam, "gelu_sigmoid", "gelu", "ios15", {"x": rt(x), "mode": s("SIGMOID_APPROXIMATION")},
         [npy(y)], atol=2e-6, rtol=2e-6)
    xl = randn(64, 130) * 4
    case(fam, "gelu_exact_large", "gelu", "ios17", {"x": rt(xl)}, [npy(F.gelu(t64(xl)))],
         atol=2e-6, rtol=2e-6)
    case(fam, "sigmoid_extremes", "sigmoid", "ios15",
         {"x": rt(np.array([-1000.0, -90.0, -20.0, 0.0, 20.0, 90.0, 1000.0], dtype=np.float32))},
         [npy(torch.sigmoid(t64(np.array([-1000.0, -90.0, -20.0, 0.0, 20.0, 90.0, 1000.0]))))],
         atol=1e-7, rtol=1e-6)
    case(fam, "elu_alpha", "elu", "ios15", {"x": rt(x), "alpha": f(0.5)},
         [npy(F.elu(x64, alpha=0.5))], atol=1e-6, rtol=2e-6)
    case(fam, "leaky_relu_alpha", "leaky_relu", "ios15", {"x": rt(x), "alpha": f(0.2)},
         [npy(F.leaky_relu(x64, 0.2))])
    case(fam, "scaled_tanh", "scaled_tanh", "ios15", {"x": rt(x), "alpha": f(1.5), "beta": f(0.7)},
         [npy(1.5 * torch.tanh(0.7 * x64))], atol=1e-6, rtol=2e-6)
    case(fam, "sigmoid_hard", "sigmoid_hard", "ios15", {"x": rt(x), "alpha": f(0.3), "beta": f(0.4)},
         [npy(torch.clamp(0.3 * x64 + 0.4, 0, 1))])
    case(fam, "clamped_relu", "clamped_relu", "ios15", {"x": rt(x), "alpha": f(0.1), "beta": f(2.0)},
         [npy(torch.where(x64 >= 0, torch.clamp(x64, max=2.0), torch.clamp(0.1 * x64, max=2.0)))])
    case(fam, "linear_activation", "linear_activation", "ios15",
         {"x": rt(x), "alpha": f(2.0), "beta": f(-1.0)}, [npy(2.0 * x64 - 1.0)])
    case(fam, "thresholded_relu", "thresholded_relu", "ios15", {"x": rt(x), "alpha": f(0.5)},
         [npy(F.threshold(x64, 0.5, 0.0))])
    # softmax along several axes, and with large logits (max subtraction).
    for axis in [-1, 1, 0, 2]:
        case(fam, f"softmax_axis{axis}".replace("-", "m"), "softmax", "ios15",
             {"x": rt(x), "axis": i(axis)}, [npy(F.softmax(x64, dim=axis))], atol=1e-6,
             rtol=1e-5)
    xb = randn(4, 33) * 30 + 1000
    case(fam, "softmax_large_logits", "softmax", "ios15", {"x": rt(xb)},
         [npy(F.softmax(t64(xb), dim=-1))], atol=1e-6, rtol=1e-5)
    xr = randn(128, 128) * 2
    case(fam, "softmax_rows_large", "softmax", "ios16", {"x": rt(xr), "axis": i(-1)},
         [npy(F.softmax(t64(xr), dim=-1))], atol=1e-7, rtol=1e-5)
    # prelu / softplus_parametric: per channel (axis 1).
    for rank in [3, 4, 5]:
        xs = [2, 3] + [4, 3, 2][: rank - 2]
        xp = randn(*xs)
        # coremltools requires equal alphas for rank 3 and 5.
        alpha = randn(3) if rank == 4 else np.full(3, 0.25, dtype=np.float32)
        y = F.prelu(t64(xp), t64(alpha))
        case(fam, f"prelu_rank{rank}", "prelu", "ios15", {"x": rt(xp), "alpha": lit(alpha)},
             [npy(y)])
        al, be = np.abs(randn(3)) + 0.5, randn(3)
        yb = t64(al).reshape([1, 3] + [1] * (rank - 2)) * torch.log1p(
            torch.exp(t64(be).reshape([1, 3] + [1] * (rank - 2)) * t64(xp)))
        case(fam, f"softplus_parametric_rank{rank}", "softplus_parametric", "ios17",
             {"x": rt(xp), "alpha": lit(al), "beta": lit(be)}, [npy(yb)], atol=1e-6, rtol=2e-6)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    make_conv()
    make_conv_transpose()
    make_pool()
    make_norm()
    make_reduction()
    make_attention()
    make_linalg()
    make_activation()
    for fam, cases in CASES.items():
        path = os.path.join(OUT, f"{fam}.json")
        with open(path, "w") as fh:
            json.dump({"generator": "make_dense.py", "cases": cases}, fh, separators=(",", ":"))
        print(f"{path}: {len(cases)} cases, {os.path.getsize(path) // 1024} KiB")


if __name__ == "__main__":
    main()
