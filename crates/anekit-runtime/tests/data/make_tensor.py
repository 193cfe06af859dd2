#!/usr/bin/env python3
"""Oracles for the CPU kernels of the tensor families (tensor transformation, tensor
operation, gather/scatter, control flow and lists; crates/anekit-runtime/tests/
kernels_tensor.rs).

Run from the repository root with the project's Python (coremltools 9.0, torch 2.7.1,
onnxruntime, numpy):

    .venv/bin/python crates/anekit-runtime/tests/data/make_tensor.py

It writes one JSON file per family under crates/anekit-runtime/tests/data/tensor/. Each case
is one MIL op: its arguments (`runtime: true` ones become function inputs, the others
literals; `tuple` ones are variadic) and the expected outputs. The expected values come from,
in order of preference:

- coremltools itself: the op is built with the coremltools 9.0 MIL builder on constant
  inputs, and its `value_inference` (the NumPy implementation coremltools ships as the
  op's semantics) computes the result (`oracle: "coremltools"`);
- ONNX Runtime running the equivalent ONNX operator (DepthToSpace DCR, SpaceToDepth,
  ReverseSequence, GatherND with batch_dims, ScatterElements/ScatterND reductions);
- PyTorch (pixel_shuffle, unfold, one_hot, topk) or NumPy (np.pad, np.cumsum, the
  `ufunc.at` scatters) where coremltools has no value inference or its value inference
  does not implement the option (interleaved concat, exclusive cumsum, scatter modes);
- the expected numbers of coremltools' own op tests (space_to_batch, batch_to_space,
  non_maximum_suppression) under coremltools/converters/mil/mil/ops/tests/iOS14/.

Error cases name a substring the kernel's message must contain (hostile shapes, out-of-range
indices).
"""

import json
import logging
import os
import sys

import numpy as np

logging.disable(logging.WARNING)
import coremltools as ct  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import Function  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "tensor")
TARGETS = {
    "iOS15": ct.target.iOS15,
    "iOS16": ct.target.iOS16,
    "iOS17": ct.target.iOS17,
    "iOS18": ct.target.iOS18,
}
RNG = np.random.default_rng(20240601)

NP_DTYPE = {
    "fp32": np.float32,
    "fp16": np.float16,
    "int32": np.int32,
    "int16": np.int16,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


class Arg:
    """An op argument: a tensor (run-time input or literal), a string, or a tuple."""

    def __init__(self, value, dtype=None, runtime=False):
        self.runtime = runtime
        if isinstance(value, str):
            self.dtype, self.value = "string", value
            return
        a = np.asarray(value)
        if dtype is None:
            dtype = {
                np.dtype("float32"): "fp32",
                np.dtype("float64"): "fp32",
                np.dtype("float16"): "fp16",
                np.dtype("int32"): "int32",
                np.dtype("int64"): "int32",
                np.dtype("int16"): "int16",
                np.dtype("uint16"): "uint16",
                np.dtype("uint32"): "uint32",
                np.dtype("int8"): "int8",
                np.dtype("uint8"): "uint8",
                np.dtype("bool"): "bool",
            }[a.dtype]
        self.dtype = dtype
        self.value = a.astype(NP_DTYPE[dtype])

    def np(self):
        return self.value

    def json(self):
        if self.dtype == "string":
            return {"str": self.value}
        return dict(arr(self.value, self.dtype), runtime=self.runtime)


class Tup:
    """A variadic (tuple) argument."""

    def __init__(self, *items):
        self.items = [i if isinstance(i, Arg) else Arg(i) for i in items]

    def np(self):
        return [i.np() for i in self.items]

    def json(self):
        return {"tuple": [i.json() for i in self.items]}


def R(v, dtype=None):
    """A run-time argument (a function input)."""
    return Arg(v, dtype, runtime=True)


def L(v, dtype=None):
    """A literal argument."""
    return Arg(v, dtype)


def arr(a, dtype):
    a = np.asarray(a)
    if dtype in ("fp32", "fp16"):
        data = [float(np.float32(v)) for v in a.reshape(-1)]
    elif dtype == "bool":
        data = [bool(v) for v in a.reshape(-1)]
    else:
        data = [int(v) for v in a.reshape(-1)]
    return {"dtype": dtype, "shape": list(a.shape), "data": data}


def out_json(a):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return arr(a, "bool")
    if np.issubdtype(a.dtype, np.integer):
        return arr(a, "int32")
    return arr(a, "fp32")


FAMILIES = {}


def add(family, name, op, opset, args, expect=None, oracle="coremltools", error=None, atol=0.0, rtol=0.0, n_outputs=None):
    """Record a case; `expect` None means: compute with coremltools' value inference."""
    args = {k: (v if isinstance(v, (Arg, Tup)) else L(v)) for k, v in args.items()}
    if error is None and expect is None:
        expect = value_inference(op, opset, args)
        oracle = "coremltools"
    case = {
        "name": name,
        "op": op,
        "opset": opset,
        "inputs": {k: v.json() for k, v in args.items()},
        "oracle": oracle,
        "atol": atol,
        "rtol": rtol,
    }
    if error is not None and n_outputs is None:
        n_outputs = 1
    if n_outputs is not None:
        # Output types are not inferred (the test declares n_outputs tensors of unknown shape).
        case["untyped_outputs"] = n_outputs
    if error is not None:
        case["error"] = error
    else:
        if not isinstance(expect, (list, tuple)):
            expect = [expect]
        case["outputs"] = [out_json(e) for e in expect]
    FAMILIES.setdefault(family, []).append(case)


def value_inference(op, opset, args):
    with Function({}, opset_version=TARGETS[opset]):
        # 0-d arrays as Python scalars: the builder decides e.g. split's outputs from them.
        kw = {k: (v.np().item() if isinstance(v.np(), np.ndarray) and v.np().ndim == 0 else v.np()) for k, v in args.items()}
        out = getattr(mb, op)(**kw)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    vals = []
    for o in outs:
        if o.val is None:
            raise RuntimeError(f"coremltools has no value for {op}")
        vals.append(np.asarray(o.val))
    return vals


def onnx_run(op_type, inputs, n_out=1, **attrs):
    """Run one ONNX operator with ONNX Runtime."""
    names = [f"i{k}" for k in range(len(inputs))]
    onames = [f"o{k}" for k in range(n_out)]
    ttype = {
        np.dtype("float32"): TensorProto.FLOAT,
        np.dtype("int64"): TensorProto.INT64,
        np.dtype("int32"): TensorProto.INT32,
    }
    node = helper.make_node(op_type, names, onames, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, ttype[np.asarray(v).dtype], None) for n, v in zip(names, inputs)],
        [helper.make_tensor_value_info(n, ttype[np.asarray(inputs[0]).dtype], None) for n in onames],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    res = sess.run(None, dict(zip(names, inputs)))
    return res if n_out > 1 else res[0]


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def distinct(*shape):
    """Floats without ties (sort order is unambiguous)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n).astype(np.float32) * 0.25 - n / 8).reshape(shape)


# ------------------------------------------------------------------------------------------
# Tensor transformation
# ------------------------------------------------------------------------------------------


def shape_cases():
    F = "shape"
    x = randn(4, 3, 2)
    add(F, "reshape_minus_one", "reshape", "iOS15", {"x": R(x), "shape": [6, -1]})
    add(F, "reshape_zero_ios15", "reshape", "iOS15", {"x": R(x), "shape": [0, -1, 1]})
    add(F, "reshape_zero_rank_mismatch_ios15", "reshape", "iOS15", {"x": R(x), "shape": R([0, -1])}, error="rank")
    x2 = np.arange(100, dtype=np.float32).reshape(2, 50)
    add(F, "reshape_zero_right_aligned_ios17", "reshape", "iOS17", {"x": R(x2), "shape": [1, 0, -1, 0]})
    add(F, "reshape_runtime_shape", "reshape", "iOS15", {"x": R(x), "shape": R([3, 8])})
    add(F, "reshape_int", "reshape", "iOS15", {"x": R(np.arange(6, dtype=np.int32)), "shape": [2, 3]})
    add(F, "reshape_bool_ios17", "reshape", "iOS17", {"x": R(np.array([True, False, True, True])), "shape": [2, 2]})
    add(F, "reshape_to_scalar", "reshape", "iOS15", {"x": R(np.array([5.0], np.float32)), "shape": L(np.zeros(0, np.int32))}, expect=[np.float32(5.0)], oracle="numpy")
    add(F, "reshape_bad_volume", "reshape", "iOS15", {"x": R(x), "shape": R([5, -1])}, error="cannot reshape")

    a, b = randn(2, 3, 4), randn(1, 5, 6)
    y = randn(2, 3, 5, 6)
    add(
        F,
        "reshape_like_docstring",
        "reshape_like",
        "iOS16",
        {
            "x": R(y.reshape(-1)),
            "ref_tensors": Tup(R(a), R(b)),
            "begins": Tup(L(np.int32(0)), L(np.int32(1))),
            "ends": Tup(L(np.int32(2)), L(np.int32(0))),
            "end_masks": Tup(L(np.bool_(False)), L(np.bool_(True))),
        },
        expect=[y],
        oracle="numpy (coremltools docstring example: shape (2, 3, 5, 6))",
    )

    x = randn(2, 3, 4, 5)
    add(F, "transpose", "transpose", "iOS15", {"x": R(x), "perm": [0, 2, 3, 1]})
    add(F, "transpose_negative_perm", "transpose", "iOS17", {"x": R(x), "perm": [-2, 1, -1, 0]})
    add(F, "transpose_attention_heads", "transpose", "iOS18", {"x": R(x), "perm": [0, 2, 1, 3]})
    add(F, "transpose_keep_last", "transpose", "iOS15", {"x": R(x), "perm": [2, 0, 1, 3]})
    add(F, "transpose_identity", "transpose", "iOS15", {"x": R(x), "perm": [0, 1, 2, 3]})
    add(F, "transpose_int", "transpose", "iOS15", {"x": R(np.arange(6, dtype=np.int32).reshape(2, 3)), "perm": [1, 0]})
    add(F, "transpose_bad_perm", "transpose", "iOS15", {"x": R(x), "perm": [0, 0, 1, 2]}, error="permutation")

    x = randn(2, 3)
    add(F, "expand_dims_front_back", "expand_dims", "iOS15", {"x": R(x), "axes": [0, -1]})
    add(F, "expand_dims_middle", "expand_dims", "iOS17", {"x": R(x), "axes": [1, 3]})
    add(F, "expand_dims_scalar", "expand_dims", "iOS15", {"x": R(np.float32(3.0)), "axes": [0]})

    x = randn(1, 3, 1, 2)
    add(F, "squeeze_all", "squeeze", "iOS15", {"x": R(x)})
    add(F, "squeeze_axes", "squeeze", "iOS15", {"x": R(x), "axes": [-2]})
    add(
        F,
        "squeeze_non_one_axis_kept",
        "squeeze",
        "iOS17",
        {"x": R(x), "axes": [0, 1]},
        expect=[x.reshape(3, 1, 2)],
        oracle="torch.squeeze (coremltools: squeezing a non-1 dimension is ignored, as PyTorch)",
    )

    x = randn(2, 3, 4)
    add(F, "reverse_all", "reverse", "iOS15", {"x": R(x)})
    add(F, "reverse_axes", "reverse", "iOS15", {"x": R(x), "axes": [0, -1]})
    add(F, "reverse_int", "reverse", "iOS17", {"x": R(np.arange(5, dtype=np.int32)), "axes": [0]})

    # reverse_sequence: ONNX ReverseSequence (time_axis = seq_axis).
    x = randn(4, 3, 2)
    lengths = np.array([4, 1, 2], np.int64)
    want = onnx_run("ReverseSequence", [x, lengths], batch_axis=1, time_axis=0)
    add(
        F,
        "reverse_sequence_seq0_batch1",
        "reverse_sequence",
        "iOS15",
        {"x": R(x), "lengths": R(lengths.astype(np.int32)), "seq_axis": 0, "batch_axis": 1},
        expect=[want],
        oracle="onnxruntime ReverseSequence",
    )
    x = randn(3, 5)
    lengths = np.array([5, 0, 3], np.int64)
    want = onnx_run("ReverseSequence", [x, lengths], batch_axis=0, time_axis=1)
    add(
        F,
        "reverse_sequence_seq1_batch0",
        "reverse_sequence",
        "iOS17",
        {"x": R(x), "lengths": R(lengths.astype(np.int32)), "seq_axis": 1, "batch_axis": 0},
        expect=[want],
        oracle="onnxruntime ReverseSequence",
    )
    add(
        F,
        "reverse_sequence_length_too_big",
        "reverse_sequence",
        "iOS15",
        {"x": R(x), "lengths": R(np.array([6, 0, 3], np.int32)), "seq_axis": 1, "batch_axis": 0},
        error="lengths[0]",
    )

    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    add(F, "slice_basic", "slice_by_index", "iOS15", {"x": R(x), "begin": [0, 1, 0], "end": [2, 3, 4]})
    add(F, "slice_stride", "slice_by_index", "iOS15", {"x": R(x), "begin": [0, 0, 1], "end": [2, 3, 4], "stride": [1, 2, 2]})
    add(F, "slice_negative_stride", "slice_by_index", "iOS15", {"x": R(x), "begin": [1, -1, 0], "end": [2, 0, 4], "stride": [1, -1, 2], "squeeze_mask": [True, False, False]})
    add(F, "slice_negative_begin_end", "slice_by_index", "iOS17", {"x": R(x), "begin": [-2, -3, -3], "end": [-1, -1, 100]})
    add(F, "slice_masks", "slice_by_index", "iOS15", {"x": R(x), "begin": [1, 2, 3], "end": [0, 0, 0], "begin_mask": [True, False, True], "end_mask": [True, True, False]})
    add(F, "slice_reverse_all", "slice_by_index", "iOS15", {"x": R(x), "begin": [0, 0, 0], "end": [0, 0, 0], "stride": [-1, -1, -1], "begin_mask": [True, True, True], "end_mask": [True, True, True]})
    add(F, "slice_squeeze_to_scalar", "slice_by_index", "iOS15", {"x": R(x), "begin": [1, 2, 3], "end": [0, 0, 0], "squeeze_mask": [True, True, True]})
    add(F, "slice_lstm_fixture", "slice_by_index", "iOS15", {"x": R(randn(1, 8, 32)), "begin": [0, -1, 0], "end": [1, 8, 32], "end_mask": [True, True, True], "squeeze_mask": [False, True, False]})
    add(F, "slice_runtime_begin", "slice_by_index", "iOS15", {"x": R(x), "begin": R([0, 1, 1]), "end": R([1, 3, 3])})
    add(F, "slice_int", "slice_by_index", "iOS17", {"x": R(np.arange(10, dtype=np.int32)), "begin": [8], "end": [1], "stride": [-3]})
    add(F, "slice_empty", "slice_by_index", "iOS15", {"x": R(x), "begin": R([0, 2, 0]), "end": R([2, 1, 4])}, expect=[x[0:2, 2:1, 0:4]], oracle="numpy slicing")
    add(F, "slice_squeeze_out_of_range", "slice_by_index", "iOS15", {"x": R(x), "begin": R([5, 0, 0]), "end": R([0, 3, 4]), "squeeze_mask": [True, False, False]}, error="squeeze_mask[0]")

    add(F, "slice_by_size", "slice_by_size", "iOS15", {"x": R(x), "begin": [1, 0, 1], "size": [1, 2, -1]})
    add(F, "slice_by_size_negative_begin", "slice_by_size", "iOS17", {"x": R(x), "begin": [-1, -2, 0], "size": [1, 2, 3]})
    add(F, "slice_by_size_too_big", "slice_by_size", "iOS15", {"x": R(x), "begin": R([1, 0, 1]), "size": R([2, 2, 2])}, error="size[0]")

    # slice_update (iOS18), incl. the stateful fixture's pattern.
    x = randn(1, 8, 16)
    add(F, "slice_update_shift", "slice_update", "iOS18", {"x": R(x), "update": R(x[:, 1:, :]), "begin": [0, 0, 0], "end": [0, 7, 0], "stride": [1, 1, 1], "begin_mask": [False, False, False], "end_mask": [True, False, True], "squeeze_mask": [False, False, False]})
    add(F, "slice_update_last", "slice_update", "iOS18", {"x": R(x), "update": R(randn(1, 1, 16)), "begin": [0, -1, 0], "end": [0, 0, 0], "end_mask": [True, True, True]})
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    add(F, "slice_update_strided_reverse", "slice_update", "iOS18", {"x": R(x), "update": R(randn(2, 2, 2)), "begin": [0, -1, 0], "end": [2, 0, 4], "stride": [1, -1, 2]})
    add(F, "slice_update_squeeze", "slice_update", "iOS18", {"x": R(x), "update": R(randn(3)), "begin": [1, 0, 2], "end": [2, 3, 3], "squeeze_mask": [True, False, True]})
    add(F, "slice_update_int", "slice_update", "iOS18", {"x": R(np.arange(6, dtype=np.int32)), "update": R(np.array([-1, -2], np.int32)), "begin": [1], "end": [5], "stride": [3]})
    add(F, "slice_update_wrong_shape", "slice_update", "iOS18", {"x": R(x), "update": R(randn(2, 2)), "begin": R([0, 0, 0]), "end": R([1, 1, 1])}, error="update has shape")

    # depth/space: ONNX Runtime (DCR = TensorFlow order), PyTorch pixel (un)shuffle.
    x = randn(2, 8, 3, 2)
    add(F, "depth_to_space", "depth_to_space", "iOS15", {"x": R(x), "block_size": 2}, expect=[onnx_run("DepthToSpace", [x], blocksize=2, mode="DCR")], oracle="onnxruntime DepthToSpace DCR")
    x = randn(1, 4, 1, 1)
    add(F, "depth_to_space_coremltools_test", "depth_to_space", "iOS15", {"x": R(np.array([[[[9.0]], [[5.0]], [[1.0]], [[3.0]]]], np.float32)), "block_size": 2}, expect=[np.array([[[[9.0, 5.0], [1.0, 3.0]]]], np.float32)], oracle="coremltools test_tensor_transformation.py TestDepthToSpace")
    x = randn(2, 3, 4, 6)
    add(F, "space_to_depth", "space_to_depth", "iOS15", {"x": R(x), "block_size": 2}, expect=[onnx_run("SpaceToDepth", [x], blocksize=2)], oracle="onnxruntime SpaceToDepth")
    x = randn(2, 18, 2, 3)
    add(F, "pixel_shuffle", "pixel_shuffle", "iOS15", {"x": R(x), "upscale_factor": 3}, expect=[torch.nn.functional.pixel_shuffle(torch.from_numpy(x), 3).numpy()], oracle="torch.nn.functional.pixel_shuffle")
    x = randn(2, 2, 6, 4)
    add(F, "pixel_unshuffle", "pixel_unshuffle", "iOS16", {"x": R(x), "downscale_factor": L(np.uint32(2), "uint32")}, expect=[torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), 2).numpy()], oracle="torch.nn.functional.pixel_unshuffle")
    add(F, "depth_to_space_bad_channels", "depth_to_space", "iOS15", {"x": R(randn(1, 6, 2, 2)), "block_size": 2}, error="divisible")

    # space_to_batch / batch_to_space: coremltools' own test expectations.
    val = np.array([[[[1, 2, 3, 4], [5, 6, 7, 8]]], [[[9, 10, 11, 12], [13, 14, 15, 16]]]], np.float32)
    s2b = np.array([[[[0, 1, 3]]], [[[0, 9, 11]]], [[[0, 2, 4]]], [[[0, 10, 12]]], [[[0, 5, 7]]], [[[0, 13, 15]]], [[[0, 6, 8]]], [[[0, 14, 16]]]], np.float32)
    add(F, "space_to_batch_coremltools_test", "space_to_batch", "iOS15", {"x": R(val), "block_shape": [2, 2], "paddings": np.array([[0, 0], [2, 0]], np.int32)}, expect=[s2b], oracle="coremltools test_tensor_transformation.py TestSpaceToBatch")
    b2s_in = np.array([[[[1, 3]]], [[[9, 11]]], [[[2, 4]]], [[[10, 12]]], [[[5, 7]]], [[[13, 15]]], [[[6, 8]]], [[[14, 16]]]], np.float32)
    b2s = np.array([[[[1, 2, 3, 4], [5, 6, 7, 8]]], [[[9, 10, 11, 12], [13, 14, 15, 16]]]], np.float32)
    add(F, "batch_to_space_coremltools_test", "batch_to_space", "iOS15", {"x": R(b2s_in), "block_shape": [2, 2], "crops": np.array([[0, 0], [0, 0]], np.int32)}, expect=[b2s], oracle="coremltools test_tensor_transformation.py TestBatchToSpace")

    # sliding_windows: torch.Tensor.unfold (window dimension moved behind the axis).
    x = randn(2, 10, 3)
    w = torch.from_numpy(x).unfold(1, 4, 3).permute(0, 1, 3, 2).numpy()
    add(F, "sliding_windows_stride", "sliding_windows", "iOS15", {"x": R(x), "axis": 1, "size": 4, "stride": 3}, expect=[w], oracle="torch.Tensor.unfold")
    x = np.arange(7, dtype=np.int32)
    w = torch.from_numpy(x).unfold(0, 3, 1).numpy()
    add(F, "sliding_windows_int_negative_axis", "sliding_windows", "iOS17", {"x": R(x), "axis": -1, "size": 3}, expect=[w], oracle="torch.Tensor.unfold")

    for shape, axis in [((3,), -1), ((3,), 1), ((4, 3), -1), ((2, 3, 2), -1), ((5, 5, 2), 1), ((2, 3, 4), 0)]:
        x = randn(*shape)
        # coremltools' type_inference: prod(shape[:axis]) x prod(shape[axis:]) (python slices).
        want = x.reshape(int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        add(F, f"flatten2d_{'x'.join(map(str, shape))}_axis{axis}", "flatten2d", "iOS15", {"x": R(x), "axis": axis}, expect=[want], oracle="numpy reshape per coremltools flatten2d docstring examples")


# ------------------------------------------------------------------------------------------
# Tensor operation
# ------------------------------------------------------------------------------------------


def tensor_op_cases():
    F = "tensor_op"
    a, b, c = randn(2, 3), randn(2, 1), randn(2, 4)
    add(F, "concat_axis1", "concat", "iOS15", {"values": Tup(R(a), R(b), R(c)), "axis": 1})
    add(F, "concat_negative_axis", "concat", "iOS17", {"values": Tup(R(a), R(randn(5, 3))), "axis": -2})
    p, q = np.array([[1, 2], [3, 4], [5, 6]], np.float32), np.array([[7, 8], [9, 10], [11, 12]], np.float32)
    add(
        F,
        "concat_interleave_docstring",
        "concat",
        "iOS15",
        {"values": Tup(R(p), R(q)), "axis": 0, "interleave": True},
        expect=[np.array([[1, 2], [7, 8], [3, 4], [9, 10], [5, 6], [11, 12]], np.float32)],
        oracle="coremltools concat docstring example",
    )
    p3 = randn(2, 3, 2)
    q3 = randn(2, 3, 2)
    add(F, "concat_interleave_axis1", "concat", "iOS15", {"values": Tup(R(p3), R(q3)), "axis": 1, "interleave": True}, expect=[np.stack([p3, q3], axis=2).reshape(2, 6, 2)], oracle="numpy stack+reshape")
    add(F, "concat_int", "concat", "iOS15", {"values": Tup(R(np.array([1, 2], np.int32)), L(np.array([3], np.int32))), "axis": 0})
    add(F, "concat_bad_shapes", "concat", "iOS15", {"values": Tup(R(a), R(randn(3, 3))), "axis": 1}, error="cannot be concatenated")

    x = randn(2, 6, 3)
    add(F, "split_num_splits", "split", "iOS15", {"x": R(x), "num_splits": 3, "axis": 1})
    add(F, "split_sizes", "split", "iOS15", {"x": R(x), "split_sizes": [1, 5], "axis": -2})
    add(F, "split_decoder_fixture", "split", "iOS18", {"x": R(randn(1, 16, 192)), "split_sizes": [64, 64, 64], "axis": -1})
    add(F, "split_int", "split", "iOS17", {"x": R(np.arange(8, dtype=np.int32)), "num_splits": 2, "axis": 0})

    add(F, "stack_axis0", "stack", "iOS15", {"values": Tup(R(a), R(randn(2, 3))), "axis": 0})
    add(F, "stack_negative_axis", "stack", "iOS15", {"values": Tup(R(a), R(randn(2, 3)), R(randn(2, 3))), "axis": -1})

    x = randn(2, 3)
    add(F, "tile", "tile", "iOS15", {"x": R(x), "reps": [2, 3]})
    add(F, "tile_runtime_reps", "tile", "iOS15", {"x": R(np.arange(3, dtype=np.int32)), "reps": R([4])})
    add(F, "tile_hostile_reps", "tile", "iOS15", {"x": R(x), "reps": R([1 << 20, 1 << 20])}, error="reps")
    add(F, "tile_zero_reps", "tile", "iOS15", {"x": R(x), "reps": R([0, 1])}, error="reps[0]")

    x = randn(1, 2, 3, 4)
    add(F, "pad_constant", "pad", "iOS15", {"x": R(x), "pad": [1, 2, 0, 3], "constant_val": 1.5})
    add(F, "pad_reflect", "pad", "iOS15", {"x": R(x), "pad": [2, 1, 3, 3], "mode": "reflect"})
    add(F, "pad_replicate", "pad", "iOS15", {"x": R(x), "pad": [0, 0, 1, 2, 2, 4], "mode": "replicate"})
    add(F, "pad_all_axes_runtime", "pad", "iOS15", {"x": R(x), "pad": R([1, 0, 0, 1, 2, 0, 0, 2])})
    xt = torch.from_numpy(x)
    add(F, "pad_reflect_torch", "pad", "iOS17", {"x": R(x), "pad": [1, 1, 2, 3], "mode": "reflect"}, expect=[torch.nn.functional.pad(xt, (2, 3, 1, 1), mode="reflect").numpy()], oracle="torch.nn.functional.pad reflect")
    add(F, "pad_replicate_torch", "pad", "iOS17", {"x": R(x), "pad": [3, 0, 1, 5], "mode": "replicate"}, expect=[torch.nn.functional.pad(xt, (1, 5, 3, 0), mode="replicate").numpy()], oracle="torch.nn.functional.pad replicate")
    add(F, "pad_hostile", "pad", "iOS15", {"x": R(x), "pad": R([1 << 30, 1 << 30])}, error="pad")
    add(F, "pad_negative", "pad", "iOS15", {"x": R(x), "pad": R([-1, 0])}, error="negative")

    add(F, "range_1d_float", "range_1d", "iOS15", {"start": R(np.float32(-1.5)), "end": R(np.float32(2.0)), "step": R(np.float32(0.3))}, rtol=1e-6, atol=1e-6)
    add(F, "range_1d_int", "range_1d", "iOS15", {"start": R(np.int32(10)), "end": R(np.int32(-3)), "step": R(np.int32(-4))})
    add(F, "range_1d_empty", "range_1d", "iOS15", {"start": R(np.int32(5)), "end": R(np.int32(1)), "step": R(np.int32(1))}, expect=[np.zeros(0, np.int32)], oracle="numpy.arange")
    add(F, "range_1d_tiny_step", "range_1d", "iOS15", {"start": R(np.float32(0.0)), "end": R(np.float32(1.0)), "step": R(np.float32(1e-12))}, error="step")
    add(F, "range_1d_zero_step", "range_1d", "iOS15", {"start": R(np.int32(0)), "end": R(np.int32(1)), "step": R(np.int32(0))}, error="step")

    add(F, "fill", "fill", "iOS15", {"shape": R([2, 3]), "value": 2.5})
    add(F, "fill_int", "fill", "iOS15", {"shape": R([4]), "value": np.int32(7)})
    add(F, "fill_default", "fill", "iOS15", {"shape": [2, 2]})
    add(F, "fill_hostile", "fill", "iOS15", {"shape": R([1 << 16, 1 << 16, 4])}, error="shape")
    add(F, "fill_like", "fill_like", "iOS16", {"ref_tensor": R(randn(3, 2)), "value": -1.0})
    add(F, "fill_like_int", "fill_like", "iOS16", {"ref_tensor": R(randn(2, 2)), "value": np.int32(3)})

    add(F, "shape", "shape", "iOS15", {"x": R(randn(2, 1, 3))})
    add(F, "shape_scalar", "shape", "iOS15", {"x": R(np.float32(1.0))}, expect=[np.zeros(0, np.int32)], oracle="numpy shape")
    add(F, "identity", "identity", "iOS15", {"x": R(randn(3, 4))}, expect=None)

    x = randn(2, 4, 5)
    for lo, hi in [(0, -1), (-1, 0), (0, 0), (1, 2), (-1, -1)]:
        add(F, f"band_part_{lo}_{hi}", "band_part", "iOS15", {"x": R(x), "lower": lo, "upper": hi})

    x = randn(3, 4)
    for axis, excl, rev in [(0, False, False), (1, False, False), (-1, True, False), (1, False, True), (0, True, True)]:
        t = np.flip(x, axis) if rev else x
        c = np.cumsum(t, axis=axis)
        if excl:
            c = c - t
        if rev:
            c = np.flip(c, axis)
        add(F, f"cumsum_axis{axis}_excl{int(excl)}_rev{int(rev)}", "cumsum", "iOS15", {"x": R(x), "axis": axis, "exclusive": excl, "reverse": rev}, expect=[c], oracle="numpy.cumsum", atol=1e-6, rtol=1e-6)
    xi = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    add(F, "cumsum_int_exclusive", "cumsum", "iOS15", {"x": R(xi), "axis": 1, "exclusive": True}, expect=[np.cumsum(xi, 1) - xi], oracle="numpy.cumsum")

    idx = np.array([[0, 2], [1, 5]], np.int32)
    oh = torch.nn.functional.one_hot(torch.from_numpy(np.clip(idx, 0, 3)).long(), 4).numpy()
    oh[1, 1, :] = 0  # index 5 is out of range: all off (TensorFlow's one_hot)
    add(F, "one_hot_last_axis", "one_hot", "iOS15", {"indices": R(idx), "one_hot_vector_size": 4}, expect=[oh.astype(np.int32)], oracle="torch.nn.functional.one_hot")
    add(F, "one_hot_axis0_float", "one_hot", "iOS15", {"indices": R(idx), "one_hot_vector_size": R(np.int32(4)), "axis": 0, "on_value": 2.0, "off_value": -1.0}, expect=[np.moveaxis(np.where(oh == 1, 2.0, -1.0).astype(np.float32), -1, 0)], oracle="torch.nn.functional.one_hot")
    add(F, "one_hot_hostile", "one_hot", "iOS15", {"indices": R(idx), "one_hot_vector_size": R(np.int32(1 << 30))}, error="one_hot_vector_size")

    x = np.array([[0, 1.5, 0], [2, 0, -1]], np.float32)
    add(F, "non_zero", "non_zero", "iOS15", {"x": R(x)})
    add(F, "non_zero_bool", "non_zero", "iOS15", {"x": R(np.array([True, False, True]))})

    x = distinct(3, 5)
    add(F, "argsort_descending", "argsort", "iOS15", {"x": R(x)})
    add(F, "argsort_ascending_axis0", "argsort", "iOS15", {"x": R(x), "axis": 0, "ascending": True})
    xt = np.array([3, 1, 3, 2, 1], np.float32)
    add(F, "argsort_ties_stable", "argsort", "iOS15", {"x": R(xt)}, expect=[np.argsort(-xt, kind="stable")], oracle="numpy.argsort(-x, kind='stable')")
    add(F, "argsort_int", "argsort", "iOS15", {"x": R(np.array([5, -2, 9, 0], np.int32)), "ascending": True})

    x = distinct(2, 6)
    tv, ti = torch.topk(torch.from_numpy(x), 3, dim=-1)
    add(F, "topk_ios15", "topk", "iOS15", {"x": R(x), "k": 3}, expect=[tv.numpy(), ti.numpy().astype(np.int32)], oracle="torch.topk")
    tv, ti = torch.topk(torch.from_numpy(x), 2, dim=0, largest=False)
    add(F, "topk_ascending_axis0_ios16", "topk", "iOS16", {"x": R(x), "k": 2, "axis": 0, "ascending": True}, expect=[tv.numpy(), ti.numpy().astype(np.int32)], oracle="torch.topk")
    tv, _ = torch.topk(torch.from_numpy(x), 4, dim=1)
    add(F, "topk_values_only_ios16", "topk", "iOS16", {"x": R(x), "k": 4, "return_indices": False}, expect=[tv.numpy()], oracle="torch.topk")
    tv, ti = torch.topk(torch.from_numpy(x), 6, dim=1)
    add(F, "topk_all_ios17", "topk", "iOS17", {"x": R(x), "k": -1, "output_indices_dtype": "uint16"}, expect=[tv.numpy(), ti.numpy().astype(np.int32)], oracle="torch.topk", n_outputs=2)  # type inference of k = -1 gives a -1 dimension in coremltools
    xi = np.array([[4, 9, 1, 7]], np.int32)
    add(F, "topk_int_ios17", "topk", "iOS17", {"x": R(xi), "k": 2}, expect=[np.array([[9, 7]], np.int32), np.array([[1, 3]], np.int32)], oracle="torch.topk")
    add(F, "topk_k_too_big", "topk", "iOS15", {"x": R(x), "k": R(np.int32(9))}, error="exceeds", n_outputs=2)

    # NMS: coremltools' own smoke test (iOS15 layout) and the same data in the iOS17 layout.
    boxes = np.array([[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]]], np.float32)
    scores = np.array([[[-3.5], [9.4], [2.3], [0.7]]], np.float32)
    exp = [
        np.array([[[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]], np.float32),
        np.array([[[9.4], [2.3]]], np.float32),
        np.array([[1, 2]], np.int32),
        np.array([2], np.int32),
    ]
    args = {"boxes": R(boxes), "scores": R(scores), "iou_threshold": 0.2, "score_threshold": 0.4, "max_boxes": 2, "per_class_suppression": True}
    add(F, "nms_coremltools_test", "non_maximum_suppression", "iOS15", args, expect=exp, oracle="coremltools test_tensor_operation.py TestNonMaximumSuppression smoke test")
    args = {"boxes": R(boxes.transpose(0, 2, 1)), "scores": R(scores.transpose(0, 2, 1)), "iou_threshold": 0.2, "max_boxes": 2, "per_class_suppression": True}
    exp17 = [e.transpose(0, 2, 1) for e in exp[:2]] + [exp[2]]
    add(F, "nms_ios17_layout", "non_maximum_suppression", "iOS17", args, expect=exp17, oracle="coremltools smoke test data in the iOS17 layout")
    nms_reference_cases(F)


def _tf_nms(boxes, scores, iou_t, score_t, max_boxes):
    """TensorFlow's non_max_suppression on (center, size) boxes: greedy by descending score,
    candidates with score > score_t, suppression when IoU > iou_t."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    for i in order:
        if scores[i] <= score_t or len(keep) >= max_boxes:
            continue
        ok = True
        for j in keep:
            if _iou(boxes[i], boxes[j]) > iou_t:
                ok = False
                break
        if ok:
            keep.append(int(i))
    return keep


def _iou(a, b):
    ax1, ax2, ay1, ay2 = a[0] - a[2] / 2, a[0] + a[2] / 2, a[1] - a[3] / 2, a[1] + a[3] / 2
    bx1, bx2, by1, by2 = b[0] - b[2] / 2, b[0] + b[2] / 2, b[1] - b[3] / 2, b[1] + b[3] / 2
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def nms_reference_cases(F):
    """coremltools' reference NMS (test_tensor_operation.py `_ref_non_maximum_suppression`),
    with TensorFlow's per-class-free NMS replaced by the documented greedy algorithm."""
    for seed, per_class in [(1, False), (2, True)]:
        rng = np.random.default_rng(seed)
        n_box, n_score, max_boxes = 12, 3, 5
        centers = rng.uniform(0, 10, (1, n_box, 2))
        sizes = rng.uniform(1, 4, (1, n_box, 2))
        boxes = np.concatenate([centers, sizes], -1).astype(np.float32)
        scores = rng.permutation(n_box * n_score).reshape(1, n_box, n_score).astype(np.float32) / 10 - 1.5
        iou_t, score_t = np.float32(0.3), np.float32(0.2)
        b, s = boxes[0], scores[0]
        best = s.max(-1)
        if not per_class:
            ids = _tf_nms(b, best, iou_t, score_t, max_boxes)
        else:
            cls = s.argmax(-1)
            sorted_ids = np.argsort(-best, kind="stable")
            inter = []
            for c in dict.fromkeys(cls[sorted_ids]):
                members = [i for i in sorted_ids if cls[i] == c]
                inter += _tf_nms(b, np.where(np.isin(np.arange(n_box), members), best, -np.inf), iou_t, score_t, max_boxes)
            rank = {int(i): r for r, i in enumerate(sorted_ids)}
            ids = sorted(inter, key=lambda i: rank[i])
        if not ids:
            ids = [int(np.argmax(best))]
        ids = ids[:max_boxes]
        o1 = np.zeros((1, max_boxes, 4), np.float32)
        o2 = np.zeros((1, max_boxes, n_score), np.float32)
        o3 = -np.ones((1, max_boxes), np.int32)
        o1[0, : len(ids)] = b[ids]
        o2[0, : len(ids)] = s[ids]
        o3[0, : len(ids)] = ids
        o4 = np.array([len(ids)], np.int32)
        args = {"boxes": R(boxes), "scores": R(scores), "iou_threshold": iou_t, "score_threshold": score_t, "max_boxes": max_boxes, "per_class_suppression": per_class}
        add(F, f"nms_reference_per_class{int(per_class)}", "non_maximum_suppression", "iOS15", args, expect=[o1, o2, o3, o4], oracle="coremltools _ref_non_maximum_suppression (greedy NMS)")


# ------------------------------------------------------------------------------------------
# Gather / scatter
# ------------------------------------------------------------------------------------------


def _scatter_ref(data, indices, updates, axis, mode):
    """numpy: out[..., indices[i], ...] (op)= updates[..., i, ...] applied in order."""
    out = np.moveaxis(data.copy(), axis, 0)
    upd = np.moveaxis(updates, axis, 0)
    ufunc = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum, "min": np.minimum}
    if mode == "update":
        for i, j in enumerate(indices):
            out[j] = upd[i]
    else:
        ufunc[mode].at(out, indices, upd)
    return np.moveaxis(out, 0, axis)


def gather_cases():
    F = "gather"
    x = randn(5, 4, 3)
    add(F, "gather_axis0", "gather", "iOS15", {"x": R(x), "indices": R(np.array([4, 0, 2, 2], np.int32))})
    add(F, "gather_axis1_2d_indices", "gather", "iOS15", {"x": R(x), "indices": R(np.array([[3, 0], [1, 1]], np.int32)), "axis": 1})
    add(F, "gather_negative_indices_ios15", "gather", "iOS15", {"x": R(x), "indices": R(np.array([-1, -5], np.int32)), "axis": 0})
    add(F, "gather_scalar_index", "gather", "iOS15", {"x": R(x), "indices": R(np.int32(2)), "axis": -1})
    add(F, "gather_batch_dims_ios16", "gather", "iOS16", {"x": R(x), "indices": R(np.array([[0, 3], [1, 2], [3, 3], [0, 0], [2, 1]], np.int32)), "axis": 1, "batch_dims": 1})
    add(F, "gather_int_data_ios17", "gather", "iOS17", {"x": R(np.arange(12, dtype=np.int32).reshape(3, 4)), "indices": R(np.array([2, 0], np.int16), "int16"), "axis": 0, "validate_indices": True})
    emb = randn(100, 64)
    ids = RNG.integers(0, 100, (1, 16)).astype(np.int32)
    add(F, "gather_embedding_decoder_fixture", "gather", "iOS18", {"x": R(emb), "indices": R(ids.astype(np.int16), "int16"), "axis": 0, "batch_dims": 0, "validate_indices": False})
    add(F, "gather_out_of_range", "gather", "iOS15", {"x": R(x), "indices": R(np.array([5], np.int32))}, error="out of bounds")
    add(F, "gather_negative_validated_ios17", "gather", "iOS17", {"x": R(x), "indices": R(np.array([-1], np.int32)), "validate_indices": True}, error="out of bounds")

    idx = np.array([[[0, 2, 1]], [[1, 1, 0]]], np.int32)
    x = randn(2, 3, 3)
    add(F, "gather_along_axis1", "gather_along_axis", "iOS15", {"x": R(x), "indices": R(idx), "axis": 1})
    idx2 = RNG.integers(0, 3, (2, 3, 5)).astype(np.int32)
    add(F, "gather_along_axis_last", "gather_along_axis", "iOS16", {"x": R(x), "indices": R(idx2), "axis": -1})

    x = randn(3, 4, 5)
    ind = np.array([[0, 1], [2, 3], [1, 0]], np.int64)
    add(F, "gather_nd", "gather_nd", "iOS15", {"x": R(x), "indices": R(ind.astype(np.int32))}, expect=[onnx_run("GatherND", [x, ind])], oracle="onnxruntime GatherND")
    ind = np.array([[[2], [0]], [[1], [1]]], np.int64)
    add(F, "gather_nd_depth1", "gather_nd", "iOS15", {"x": R(x), "indices": R(ind.astype(np.int32))}, expect=[onnx_run("GatherND", [x, ind])], oracle="onnxruntime GatherND")
    ind = np.array([[[1, 4], [3, 0]], [[0, 0], [2, 2]], [[3, 3], [1, 1]]], np.int64)
    add(F, "gather_nd_batch_dims_ios16", "gather_nd", "iOS16", {"x": R(x), "indices": R(ind.astype(np.int32)), "batch_dims": 1}, expect=[onnx_run("GatherND", [x, ind], batch_dims=1)], oracle="onnxruntime GatherND batch_dims")

    data = randn(4, 3)
    ind = np.array([3, 1, 3], np.int32)
    upd = randn(3, 3)
    for mode in ["add", "sub", "mul", "div", "max", "min"]:
        add(F, f"scatter_{mode}", "scatter", "iOS15", {"data": R(data), "indices": R(ind), "updates": R(upd), "mode": mode}, expect=[_scatter_ref(data, ind, upd, 0, mode)], oracle=f"numpy.{mode}.at", atol=1e-6, rtol=1e-6)
    ui, uu = np.array([2, 0], np.int32), randn(4, 2)
    add(F, "scatter_update_axis1", "scatter", "iOS17", {"data": R(data), "indices": R(ui), "updates": R(uu), "axis": 1, "mode": "update"}, expect=[_scatter_ref(data, ui, uu, 1, "update")], oracle="numpy index assignment")
    add(F, "scatter_default_mode_add", "scatter", "iOS15", {"data": R(data), "indices": R(ind), "updates": R(upd)}, expect=[_scatter_ref(data, ind, upd, 0, "add")], oracle="numpy.add.at (coremltools default mode is add)", atol=1e-6, rtol=1e-6)
    add(F, "scatter_coremltools_docstring", "scatter", "iOS15", {"data": R(np.array([[1, 2, 3], [4, 5, 6]], np.float32)), "indices": R(np.array([1, 0], np.int32)), "updates": R(np.array([[5, 6, 7], [8, 9, 10]], np.float32)), "mode": "add"}, expect=[np.array([[9, 11, 13], [9, 11, 13]], np.float32)], oracle="coremltools scatter docstring example")
    add(F, "scatter_int_add", "scatter", "iOS15", {"data": R(np.zeros((3, 2), np.int32)), "indices": R(np.array([0, 2, 0], np.int32)), "updates": R(np.array([[1, 2], [3, 4], [5, 6]], np.int32)), "mode": "add"}, expect=[np.array([[6, 8], [0, 0], [3, 4]], np.int32)], oracle="numpy.add.at")
    add(F, "scatter_out_of_range", "scatter", "iOS17", {"data": R(data), "indices": R(np.array([4], np.int32)), "updates": R(randn(1, 3))}, error="out of bounds")

    data = randn(2, 4)
    ind = np.array([[1, 3, 1], [0, 0, 2]], np.int64)
    upd = randn(2, 3)
    for mode, red in [("add", "add"), ("mul", "mul"), ("max", "max"), ("min", "min")]:
        want = onnx_run("ScatterElements", [data, ind, upd], axis=1, reduction=red)
        add(F, f"scatter_along_axis_{mode}", "scatter_along_axis", "iOS15", {"data": R(data), "indices": R(ind.astype(np.int32)), "updates": R(upd), "axis": 1, "mode": mode}, expect=[want], oracle=f"onnxruntime ScatterElements reduction={red}", atol=1e-6, rtol=1e-6)
    ind_u = np.array([[1, 3, 0], [0, 2, 1]], np.int32)
    add(F, "scatter_along_axis_update", "scatter_along_axis", "iOS17", {"data": R(data), "indices": R(ind_u), "updates": R(upd), "axis": -1, "mode": "update"})
    sub = data.copy()
    np.subtract.at(sub, (np.arange(2)[:, None].repeat(3, 1), ind), upd)
    add(F, "scatter_along_axis_sub", "scatter_along_axis", "iOS15", {"data": R(data), "indices": R(ind.astype(np.int32)), "updates": R(upd), "axis": 1, "mode": "sub"}, expect=[sub], oracle="numpy.subtract.at", atol=1e-6, rtol=1e-6)

    data = randn(3, 4, 2)
    ind = np.array([[0, 1], [2, 3], [0, 1]], np.int64)
    upd = randn(3, 2)
    for mode, red in [("add", "add"), ("mul", "mul"), ("max", "max"), ("min", "min")]:
        want = onnx_run("ScatterND", [data, ind, upd], reduction=red)
        add(F, f"scatter_nd_{mode}", "scatter_nd", "iOS15", {"data": R(data), "indices": R(ind.astype(np.int32)), "updates": R(upd), "mode": mode}, expect=[want], oracle=f"onnxruntime ScatterND reduction={red}", atol=1e-6, rtol=1e-6)
    ind1 = np.array([[2], [0]], np.int64)
    upd1 = randn(2, 4, 2)
    add(F, "scatter_nd_update_slices", "scatter_nd", "iOS17", {"data": R(data), "indices": R(ind1.astype(np.int32)), "updates": R(upd1), "mode": "update"}, expect=[onnx_run("ScatterND", [data, ind1, upd1])], oracle="onnxruntime ScatterND")
    div = data.copy()
    np.divide.at(div, tuple(ind.T), upd)
    add(F, "scatter_nd_div", "scatter_nd", "iOS15", {"data": R(data), "indices": R(ind.astype(np.int32)), "updates": R(upd), "mode": "div"}, expect=[div], oracle="numpy.divide.at", atol=1e-6, rtol=1e-6)
    add(F, "scatter_nd_out_of_range", "scatter_nd", "iOS15", {"data": R(data), "indices": R(np.array([[3, 0]], np.int32)), "updates": R(randn(1, 2))}, error="out of bounds")


# ------------------------------------------------------------------------------------------
# Control flow (programs are built by the Rust test; this computes their expected values)
# ------------------------------------------------------------------------------------------


def control_cases():
    cases = []
    x = randn(1, 4)
    # while i < 3: x = 0.5 * x + sin(x)   (the control_flow fixture's loop)
    y = x.copy()
    for _ in range(3):
        y = (np.float32(0.5) * y + np.sin(y)).astype(np.float32)
    cases.append({"name": "while_loop_sin", "x": arr(x, "fp32"), "iterations": 3, "y": arr(y, "fp32")})
    # cond: relu(x) if sum(x) > 0 else -x
    for k, v in enumerate([x, -np.abs(x) - 1]):
        v = v.astype(np.float32)
        out = np.maximum(v, 0) if v.sum() > 0 else -v
        cases.append({"name": f"cond_{k}", "x": arr(v, "fp32"), "y": arr(out, "fp32")})
    # lists: write rows of x into a list in a loop, gather them back reversed.
    m = randn(3, 2)
    cases.append({"name": "list_loop", "x": arr(m, "fp32"), "y": arr(m[::-1], "fp32")})
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    shape_cases()
    tensor_op_cases()
    gather_cases()
    FAMILIES["control"] = control_cases()
    gen = {
        "script": "crates/anekit-runtime/tests/data/make_tensor.py",
        "coremltools": ct.__version__,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    for family, cases in FAMILIES.items():
        path = os.path.join(OUT, f"{family}.json")
        with open(path, "w") as f:
            json.dump({"generator": gen, "cases": cases}, f, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
