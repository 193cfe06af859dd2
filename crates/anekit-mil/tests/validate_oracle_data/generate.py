#!/usr/bin/env python3
"""Regenerate the op-zoo oracle programs of `validate_oracle.rs`.

    .venv/bin/python crates/anekit-mil/tests/validate_oracle_data/generate.py

For each opset (iOS15..iOS18) one pymil program calls (nearly) every op of that opset in
several configurations — fixed and symbolic (flexible) dims, every parameter form — and is
converted by coremltools 9.0 with an empty pass pipeline, so every op is serialized exactly
as pymil built it, with the output types pymil's `type_inference` declared. Those declared
types are the oracle the Rust test re-infers. Cases pymil itself rejects are skipped (they
are listed on stderr). The programs' results are not computed (no Core ML on Linux).
"""

import sys
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

import numpy as np  # noqa: E402
import coremltools as ct  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import get_new_symbol, types  # noqa: E402
from coremltools.converters.mil.mil.block import curr_block  # noqa: E402

OUT = Path(__file__).resolve().parent
F32, F16, I32 = np.float32, np.float16, np.int32
rng = np.random.default_rng(0)


def z(*shape, dtype=F32):
    return np.zeros(shape, dtype=dtype)


def r(*shape, dtype=F32):
    return rng.standard_normal(shape).astype(dtype)


skipped = []


def t(label, fn):
    """Run one case; pymil type inference may reject it (then it is skipped)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        skipped.append(f"{label}: {type(e).__name__}: {str(e)[:120]}")
        # pymil inserts an op before inferring its type: take out the ones that failed
        block = curr_block()
        for op in list(block.operations):
            if op._output_vars is None:
                for var in op.get_flattened_inputs():
                    if hasattr(var, "remove_child_op"):
                        var.remove_child_op(op, no_check=True)
                block.operations.remove(op)


def common_cases(v, opset):
    x4, x3, x2, xs, xf, i2, i1 = v["x4"], v["x3"], v["x2"], v["xs"], v["xf"], v["i2"], v["i1"]
    b2 = mb.greater(x=x2, y=0.0)
    ge17 = opset >= ct.target.iOS17
    # ---- activation
    for op in ["relu", "relu6", "sigmoid", "silu", "softplus", "softsign"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4))
        t(op + "_flex", lambda op=op: getattr(mb, op)(x=xf))
    t("softmax", lambda: mb.softmax(x=x2, axis=0))
    for mode in ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"]:
        t("gelu", lambda mode=mode: mb.gelu(x=xs, mode=mode))
    for op in ["elu", "leaky_relu", "thresholded_relu"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4, alpha=0.5))
    for op in ["clamped_relu", "linear_activation", "scaled_tanh", "sigmoid_hard"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4, alpha=0.5, beta=2.0))
    t("prelu", lambda: mb.prelu(x=x4, alpha=r(4)))
    t("softplus_parametric", lambda: mb.softplus_parametric(x=x4, alpha=r(4), beta=r(4)))
    # ---- elementwise binary
    for op in ["add", "sub", "mul", "real_div", "maximum", "minimum", "pow", "mod", "floor_div"]:
        t(op, lambda op=op: getattr(mb, op)(x=x2, y=x2))
        t(op + "_bcast", lambda op=op: getattr(mb, op)(x=x4, y=r(4, 1, 1)))
        t(op + "_flex", lambda op=op: getattr(mb, op)(x=xs, y=r(6)))
    t("add_int", lambda: mb.add(x=i2, y=i2))
    t("floor_div_int", lambda: mb.floor_div(x=i2, y=np.int32(3)))
    for op in ["equal", "not_equal", "greater", "greater_equal", "less", "less_equal"]:
        t(op, lambda op=op: getattr(mb, op)(x=x2, y=r(1, 6)))
        t(op + "_flex", lambda op=op: getattr(mb, op)(x=xs, y=0.5))
    for op in ["logical_and", "logical_or", "logical_xor"]:
        t(op, lambda op=op: getattr(mb, op)(x=b2, y=b2))
    # ---- elementwise unary
    for op in ["abs", "acos", "asin", "atan", "atanh", "ceil", "cos", "cosh", "erf", "exp", "exp2",
               "floor", "round", "sign", "sin", "sinh", "sqrt", "square", "tan", "tanh"]:
        t(op, lambda op=op: getattr(mb, op)(x=x2))
    for op in ["abs", "sign", "square", "exp2"]:
        t(op + "_int", lambda op=op: getattr(mb, op)(x=i2))
    t("logical_not", lambda: mb.logical_not(x=b2))
    t("clip", lambda: mb.clip(x=x2, alpha=0.0, beta=6.0))
    t("threshold", lambda: mb.threshold(x=x2, alpha=0.5))
    for op in ["inverse", "log", "rsqrt"]:
        t(op, lambda op=op: getattr(mb, op)(x=xs))
        t(op + "_eps", lambda op=op: getattr(mb, op)(x=x2, epsilon=1e-3))
    for dt in ["int32", "fp16", "fp32", "bool"]:
        t("cast_" + dt, lambda dt=dt: mb.cast(x=x2, dtype=dt))
    t("cast_int", lambda: mb.cast(x=i2, dtype="fp32"))
    if ge17:
        for dt in ["int8", "uint8", "int16", "uint16"]:
            t("cast17_" + dt, lambda dt=dt: mb.cast(x=x2, dtype=dt))
    # ---- linear
    t("linear", lambda: mb.linear(x=x2, weight=r(5, 6), bias=r(5)))
    t("linear3", lambda: mb.linear(x=x3, weight=r(7, 5)))
    t("linear_flex", lambda: mb.linear(x=xs, weight=r(3, 6)))
    t("matmul", lambda: mb.matmul(x=x2, y=r(6, 3)))
    t("matmul_t", lambda: mb.matmul(x=x3, y=x3, transpose_y=True))
    t("matmul_tx", lambda: mb.matmul(x=x2, y=r(4, 2), transpose_x=True))
    t("matmul_b", lambda: mb.matmul(x=x3, y=r(1, 5, 4)))
    t("matmul_v", lambda: mb.matmul(x=r(6), y=x2, transpose_y=True))
    t("matmul_flex", lambda: mb.matmul(x=xs, y=r(6, 2)))
    t("einsum4", lambda: mb.einsum(values=(r(2, 1, 3, 2), r(2, 2, 3, 4)), equation="abcd,adce->abce"))
    t("einsum3", lambda: mb.einsum(values=(x3, r(5, 3, 4)), equation="abc,cbd->abd"))
    # ---- conv / pool
    t("conv", lambda: mb.conv(x=x4, weight=r(6, 4, 3, 3)))
    t("conv_same", lambda: mb.conv(x=x4, weight=r(6, 4, 3, 3), strides=[2, 3], pad_type="same"))
    t("conv_custom", lambda: mb.conv(x=x4, weight=r(6, 4, 3, 2), pad_type="custom", pad=[1, 2, 0, 3], dilations=[2, 1]))
    t("conv_groups", lambda: mb.conv(x=x4, weight=r(6, 2, 3, 3), groups=2, bias=r(6)))
    t("conv1d", lambda: mb.conv(x=x3, weight=r(4, 3, 2), strides=[2]))
    t("conv_flex", lambda: mb.conv(x=xf, weight=r(2, 4, 3, 3), pad_type="same"))
    t("conv_dynw", lambda: mb.conv(x=x4, weight=mb.add(x=r(6, 4, 1, 1), y=0.0)))
    if opset >= ct.target.iOS16:
        t("conv_same_lower", lambda: mb.conv(x=x4, weight=r(6, 4, 4, 4), strides=[2, 2], pad_type="same_lower"))
    t("conv_quantized", lambda: mb.conv_quantized(x=x4, weight=np.ones((6, 4, 3, 3), np.uint8), quantization_type="linear",
                                                  nbits=8, quant_scale=np.float32(0.1), quant_bias=np.float32(0.0), strides=[2, 2]))
    t("conv_transpose", lambda: mb.conv_transpose(x=x4, weight=r(4, 2, 3, 3), strides=[2, 2]))
    t("conv_transpose_custom", lambda: mb.conv_transpose(x=x4, weight=r(4, 3, 3, 3), pad_type="custom", pad=[1, 1, 0, 2], strides=[2, 1], dilations=[1, 2]))
    t("conv_transpose_same", lambda: mb.conv_transpose(x=x4, weight=r(4, 2, 3, 3), strides=[2, 2], pad_type="same"))
    t("conv_transpose_os", lambda: mb.conv_transpose(x=x4, weight=r(4, 2, 3, 3), strides=[2, 2], output_shape=[1, 2, 17, 17]))
    for op in ["max_pool", "avg_pool", "l2_pool"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"))
        t(op + "_same", lambda op=op: getattr(mb, op)(x=x4, kernel_sizes=[3, 2], strides=[3, 1], pad_type="same"))
        t(op + "_ceil", lambda op=op: getattr(mb, op)(x=x4, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1], ceil_mode=True))
        t(op + "_flex", lambda op=op: getattr(mb, op)(x=xf, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"))
    # ---- normalization
    t("batch_norm", lambda: mb.batch_norm(x=x4, mean=r(4), variance=np.ones(4, F32), gamma=r(4), beta=r(4)))
    t("instance_norm", lambda: mb.instance_norm(x=x4, gamma=r(4), beta=r(4)))
    t("l2_norm", lambda: mb.l2_norm(x=x3))
    t("layer_norm", lambda: mb.layer_norm(x=x2, axes=[1], gamma=r(6), beta=r(6)))
    t("layer_norm_flex", lambda: mb.layer_norm(x=xs, axes=[-1]))
    t("local_response_norm", lambda: mb.local_response_norm(x=x4, size=3))
    # ---- image resizing
    t("upsample_nn", lambda: mb.upsample_nearest_neighbor(x=x4, scale_factor_height=2, scale_factor_width=3))
    t("upsample_nn_frac", lambda: mb.upsample_nearest_neighbor(x=x4, scale_factor_height=1.5, scale_factor_width=0.67))
    t("resize_nn", lambda: mb.resize_nearest_neighbor(x=x4, target_size_height=5, target_size_width=7))
    t("upsample_bilinear", lambda: mb.upsample_bilinear(x=xf, scale_factor_height=2.0, scale_factor_width=1.5, align_corners=False))
    t("resize_bilinear", lambda: mb.resize_bilinear(x=x4, target_size_height=3, target_size_width=9, sampling_mode="ALIGN_CORNERS"))
    t("crop", lambda: mb.crop(x=x4, crop_height=[1, 2], crop_width=[0, 3]))
    if ge17:
        t("crop_resize17", lambda: mb.crop_resize(x=x4, boxes=z(3, 4), box_indices=np.zeros(3, I32), target_height=2, target_width=3))
    else:
        t("crop_resize", lambda: mb.crop_resize(x=x4, roi=z(2, 1, 4, 1, 1), target_height=2, target_width=3))
    t("affine", lambda: mb.affine(x=x4, transform_matrix=r(1, 6), output_height=5, output_width=3, sampling_mode="bilinear",
                                  padding_mode="constant", padding_value=0.0, coordinates_mode="normalized_minus_one_to_one", align_corners=True))
    t("resample", lambda: mb.resample(x=x4, coordinates=r(1, 5, 6, 2), sampling_mode="bilinear", padding_mode="constant",
                                      padding_value=0.0, coordinates_mode="normalized_minus_one_to_one", align_corners=True))
    # ---- reduction
    for op in ["reduce_l1_norm", "reduce_l2_norm", "reduce_log_sum", "reduce_log_sum_exp", "reduce_max", "reduce_mean",
               "reduce_min", "reduce_prod", "reduce_sum", "reduce_sum_square"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4, axes=[2, -1], keep_dims=True))
        t(op + "_drop", lambda op=op: getattr(mb, op)(x=x4, axes=[1]))
        t(op + "_all", lambda op=op: getattr(mb, op)(x=x2))
    for op in ["reduce_argmax", "reduce_argmin"]:
        t(op, lambda op=op: getattr(mb, op)(x=x4, axis=1))
        t(op + "_keep", lambda op=op: getattr(mb, op)(x=xs, axis=-1, keep_dims=True))
    # ---- scatter / gather
    idx = np.array([3, 0, 1], I32)
    t("gather", lambda: mb.gather(x=x2, indices=idx, axis=0))
    t("gather_scalar", lambda: mb.gather(x=x2, indices=np.int32(2), axis=1))
    t("gather_dyn", lambda: mb.gather(x=x2, indices=i1, axis=1))
    t("gather_along_axis", lambda: mb.gather_along_axis(x=x2, indices=np.zeros((4, 2), I32), axis=1))
    t("gather_nd", lambda: mb.gather_nd(x=x3, indices=np.zeros((4, 2), I32)))
    t("scatter", lambda: mb.scatter(data=x2, indices=np.array([1, 0], I32), updates=r(2, 6), mode="add"))
    t("scatter_along_axis", lambda: mb.scatter_along_axis(data=x2, indices=np.zeros((4, 6), I32), updates=x2, axis=0))
    t("scatter_nd", lambda: mb.scatter_nd(data=x2, indices=np.zeros((3, 1), I32), updates=r(3, 6)))
    # ---- tensor operation
    t("band_part", lambda: mb.band_part(x=x2, lower=1, upper=0))
    t("cumsum", lambda: mb.cumsum(x=x2, axis=1, reverse=True))
    t("fill", lambda: mb.fill(shape=np.array([2, 3], I32), value=1.0))
    t("fill_dyn", lambda: mb.fill(shape=i1, value=2))
    if not ge17:
        t("nms", lambda: mb.non_maximum_suppression(boxes=r(1, 10, 4), scores=r(1, 10, 3), iou_threshold=0.5, score_threshold=0.1, max_boxes=5))
    t("non_zero", lambda: mb.non_zero(x=x2))
    t("one_hot", lambda: mb.one_hot(indices=i1, one_hot_vector_size=5, axis=0))
    t("one_hot_dyn", lambda: mb.one_hot(indices=i1, one_hot_vector_size=mb.reduce_max(x=i1)))
    t("pad", lambda: mb.pad(x=x4, pad=np.array([1, 1, 2, 0], I32), mode="reflect"))
    t("pad_dyn", lambda: mb.pad(x=x2, pad=mb.concat(values=[i1, np.array([1], I32)], axis=0)))
    t("range_1d", lambda: mb.range_1d(start=0.0, end=10.0, step=3.0))
    t("range_1d_dyn", lambda: mb.range_1d(start=np.int32(0), end=mb.reduce_max(x=i1), step=np.int32(1)))
    t("tile", lambda: mb.tile(x=x2, reps=[2, 3]))
    t("tile_flex", lambda: mb.tile(x=xs, reps=[1, 2]))
    t("argsort", lambda: mb.argsort(x=x2, axis=0))
    t("topk", lambda: mb.topk(x=x2, k=3, axis=1))
    t("flatten2d", lambda: mb.flatten2d(x=x4, axis=2))
    t("flatten2d_flex", lambda: mb.flatten2d(x=xf))
    t("shape", lambda: mb.shape(x=xf))
    t("concat", lambda: mb.concat(values=[x2, x2, r(4, 1)], axis=1))
    t("concat_flex", lambda: mb.concat(values=[xs, xs], axis=0))
    t("concat_interleave", lambda: mb.concat(values=[x2, x2], axis=0, interleave=True))
    t("split", lambda: mb.split(x=x2, num_splits=3, axis=1))
    t("split_sizes", lambda: mb.split(x=x2, split_sizes=[1, 3], axis=0))
    t("stack", lambda: mb.stack(values=[x2, x2, x2], axis=1))
    t("identity", lambda: mb.identity(x=xs))
    # ---- tensor transformation
    t("depth_to_space", lambda: mb.depth_to_space(x=x4, block_size=2))
    t("space_to_depth", lambda: mb.space_to_depth(x=x4, block_size=2))
    t("pixel_shuffle", lambda: mb.pixel_shuffle(x=x4, upscale_factor=2))
    t("space_to_batch", lambda: mb.space_to_batch(x=x4, block_shape=np.array([2, 2], I32), paddings=np.array([[0, 0], [2, 0]], I32)))
    t("batch_to_space", lambda: mb.batch_to_space(x=r(8, 1, 2, 3), block_shape=np.array([2, 2], I32), crops=np.array([[0, 1], [1, 0]], I32)))
    t("expand_dims", lambda: mb.expand_dims(x=x2, axes=[0, -1]))
    t("squeeze", lambda: mb.squeeze(x=r(1, 4, 1)))
    t("squeeze_axes", lambda: mb.squeeze(x=x4, axes=[0]))
    t("reshape", lambda: mb.reshape(x=x2, shape=[3, -1]))
    t("reshape_flex", lambda: mb.reshape(x=xs, shape=[-1, 2, 3]))
    t("reshape_dyn", lambda: mb.reshape(x=x2, shape=mb.shape(x=x2)))
    if ge17:
        t("reshape_zero", lambda: mb.reshape(x=x3, shape=[6, 0]))
    else:
        t("reshape_zero", lambda: mb.reshape(x=x3, shape=[0, 15, 1]))
    t("reverse", lambda: mb.reverse(x=x2, axes=[0]))
    t("reverse_sequence", lambda: mb.reverse_sequence(x=x2, lengths=np.array([1, 2, 3, 4], I32), seq_axis=1, batch_axis=0))
    t("slice_by_index", lambda: mb.slice_by_index(x=x4, begin=[0, 1, 2, -1], end=[1, 4, 8, 0], stride=[1, 2, 3, -1],
                                                  end_mask=[False, False, False, True], squeeze_mask=[True, False, False, False]))
    t("slice_by_index_flex", lambda: mb.slice_by_index(x=xs, begin=[1, 0], end=[3, 6]))
    t("slice_by_index_dyn", lambda: mb.slice_by_index(x=x2, begin=i1[:2] if False else mb.slice_by_index(x=i1, begin=[0], end=[2]), end=[4, 6]))
    t("slice_by_size", lambda: mb.slice_by_size(x=x2, begin=[1, 2], size=[2, -1]))
    t("transpose", lambda: mb.transpose(x=x4, perm=[0, 2, 3, 1]))
    t("transpose_flex", lambda: mb.transpose(x=xs, perm=[1, 0]))
    t("sliding_windows", lambda: mb.sliding_windows(x=x3, axis=2, size=2, stride=2))
    # ---- recurrent
    xr = r(5, 2, 3)
    t("lstm", lambda: mb.lstm(x=xr, initial_h=z(2, 4), initial_c=z(2, 4), weight_ih=r(16, 3), weight_hh=r(16, 4), bias=r(16), output_sequence=True))
    t("lstm_bi", lambda: mb.lstm(x=xr, initial_h=z(2, 8), initial_c=z(2, 8), weight_ih=r(16, 3), weight_hh=r(16, 4),
                                 weight_ih_back=r(16, 3), weight_hh_back=r(16, 4), direction="bidirectional"))
    t("gru", lambda: mb.gru(x=xr, initial_h=z(2, 4), weight_ih=r(12, 3), weight_hh=r(12, 4), output_sequence=True))
    t("rnn", lambda: mb.rnn(x=xr, initial_h=z(2, 4), weight_ih=r(4, 3), weight_hh=r(4, 4)))
    # ---- random
    t("random_normal", lambda: mb.random_normal(shape=np.array([2, 3], I32), mean=1.0))
    t("random_uniform", lambda: mb.random_uniform(shape=i1))
    t("random_bernoulli", lambda: mb.random_bernoulli(shape=np.array([4], I32), prob=0.3))
    t("random_categorical", lambda: mb.random_categorical(x=x2, size=3))
    # ---- control flow
    pred = mb.reduce_max(x=b2 if False else mb.cast(x=b2, dtype="int32"))
    p = mb.greater(x=pred, y=np.int32(0))
    t("cond", lambda: mb.cond(pred=p, _true_fn=lambda: mb.add(x=x2, y=1.0), _false_fn=lambda: mb.mul(x=x2, y=2.0)))
    t("while_loop", lambda: mb.while_loop(_cond=lambda i, a: mb.less(x=i, y=np.int32(3)),
                                          _body=lambda i, a: (mb.add(x=i, y=np.int32(1)), mb.mul(x=a, y=2.0)),
                                          loop_vars=(np.int32(0), x2)))
    t("select", lambda: mb.select(cond=b2, a=x2, b=r(1, 6)))

    def lists():
        ls = mb.make_list(init_length=3, elem_shape=[2, 3], dtype="fp32")
        ls = mb.list_write(ls=ls, index=np.int32(0), value=r(2, 3))
        mb.list_read(ls=ls, index=np.int32(0))
        mb.list_length(ls=ls)
        mb.list_gather(ls=ls, indices=np.array([0, 1], I32))
        mb.list_scatter(ls=ls, indices=np.array([1, 2], I32), value=r(2, 2, 3))
    t("lists", lists)


def ios16_cases(v, opset):
    x4, x2, h2, i1 = v["x4"], v["x2"], v["h2"], v["i1"]
    below18 = opset < ct.target.iOS18
    t("constexpr_affine_dequantize", lambda: mb.linear(x=x2, weight=mb.constexpr_affine_dequantize(
        quantized_data=np.ones((5, 6), np.int8), zero_point=np.int8(0), scale=np.float32(0.1), axis=0)))
    t("constexpr_affine_dequantize_axis", lambda: mb.constexpr_affine_dequantize(
        quantized_data=np.ones((5, 6), np.uint8), zero_point=np.zeros(6, np.uint8), scale=np.ones(6, F32), axis=1))
    t("constexpr_cast", lambda: mb.constexpr_cast(source_val=np.ones((3, 2), F16), output_dtype="fp32"))
    if below18:
        t("constexpr_lut_to_dense", lambda: mb.constexpr_lut_to_dense(indices=np.zeros(3, np.uint8), lut=np.arange(4, dtype=F32), shape=np.array([3, 4], np.uint32)))
    if below18:
        t("constexpr_sparse_to_dense", lambda: mb.constexpr_sparse_to_dense(nonzero_data=np.ones(3, F32), mask=np.array([0b1011], np.uint8), shape=np.array([2, 3], np.uint32)))
    t("fill_like", lambda: mb.fill_like(ref_tensor=x2, value=np.int32(3)))
    t("reshape_like", lambda: mb.reshape_like(x=x2, ref_tensors=(r(4, 3), r(6,)), begins=(0, 0), ends=(1, 1), end_masks=(False, True)))
    t("pixel_unshuffle", lambda: mb.pixel_unshuffle(x=x4, downscale_factor=np.uint32(2)))
    t("gather_batch_dims", lambda: mb.gather(x=r(2, 3, 4), indices=np.zeros((2, 5), I32), axis=2, batch_dims=1))
    t("gather_uint16", lambda: mb.gather(x=x2, indices=np.array([1, 2], np.uint16), axis=1))
    t("gather_nd_batch", lambda: mb.gather_nd(x=r(2, 3, 4), indices=np.zeros((2, 5, 1), I32), batch_dims=1))
    t("topk_no_indices", lambda: mb.topk(x=x2, k=2, return_indices=False, sort=False))
    t("upsample_bilinear_hpc", lambda: mb.upsample_bilinear(x=x4, scale_factor_height=2, scale_factor_width=2, align_corners=False, half_pixel_centers=True))
    t("resample_fp16", lambda: mb.resample(x=mb.cast(x=x4, dtype="fp16"), coordinates=r(1, 3, 2, 2, dtype=F16), sampling_mode="nearest",
                                           padding_mode="border", padding_value=F16(0.0), coordinates_mode="unnormalized", align_corners=False))


def ios17_cases(v):
    x4, x2, h4, h2, i1 = v["x4"], v["x2"], v["h4"], v["h2"], v["i1"]
    t("quantize", lambda: mb.quantize(input=x2, scale=np.float32(0.1), zero_point=np.uint8(128), output_dtype="uint8"))
    t("quantize_axis", lambda: mb.quantize(input=x2, scale=np.ones(6, F32), axis=1, output_dtype="int8"))
    t("dequantize", lambda: mb.dequantize(input=mb.quantize(input=h2, scale=F16(0.1), output_dtype="int8"), scale=F16(0.1)))
    t("resize", lambda: mb.resize(x=x4, shape=np.array([10, 12], I32), resized_dims=np.uint32(2)))
    t("resize_dyn", lambda: mb.resize(x=x4, shape=i1, resized_dims=np.uint32(2)))
    t("resize_zero", lambda: mb.resize(x=x4, shape=np.array([0, 5], I32), resized_dims=np.uint32(2), interpolation_mode="NEAREST_NEIGHBOR"))
    t("matmul_mixed", lambda: mb.matmul(x=h2, y=r(6, 3)))
    t("linear_mixed", lambda: mb.linear(x=h2, weight=r(3, 6)))
    t("conv_mixed", lambda: mb.conv(x=h4, weight=r(2, 4, 3, 3)))
    t("layer_norm_mixed", lambda: mb.layer_norm(x=h2, axes=[1], gamma=r(6), beta=r(6)))
    t("leaky_relu_mixed", lambda: mb.leaky_relu(x=h2, alpha=np.float32(0.1)))
    t("argmax_uint16", lambda: mb.reduce_argmax(x=x2, axis=0, output_dtype="uint16"))
    t("topk_uint16", lambda: mb.topk(x=h2, k=2, output_indices_dtype="uint16"))
    t("nms17", lambda: mb.non_maximum_suppression(boxes=r(1, 4, 10), scores=r(1, 3, 10), iou_threshold=0.5, max_boxes=5))
    t("reshape_int8", lambda: mb.reshape(x=x2, shape=np.array([0, 4, 6], np.int8)))
    t("reshape17_zero", lambda: mb.reshape(x=r(2, 3, 4), shape=np.array([6, 0], I32)))
    t("slice_int16", lambda: mb.slice_by_index(x=x2, begin=np.array([1, 0], np.int16), end=np.array([3, 5], np.int16)))
    t("gather_int8", lambda: mb.gather(x=mb.cast(x=x2, dtype="int8"), indices=np.array([0, 1], np.int8), axis=0, validate_indices=True))
    t("scatter_validate", lambda: mb.scatter(data=x2, indices=np.array([1, 0], I32), updates=r(2, 6), validate_indices=True))
    t("crop_resize17_noidx", lambda: mb.crop_resize(x=x4, boxes=z(1, 4), target_height=4, target_width=4, normalized_coordinates=True))
    t("clip17", lambda: mb.clip(x=h2, alpha=F16(0.0), beta=F16(6.0)))
    t("expand_dims_uint8", lambda: mb.expand_dims(x=mb.cast(x=x2, dtype="uint8"), axes=[1]))
    t("gru17", lambda: mb.gru(x=r(5, 2, 3, dtype=F16), initial_h=z(2, 4, dtype=F16), weight_ih=r(12, 3, dtype=F16), weight_hh=r(12, 4, dtype=F16)))


def ios18_cases(v):
    x2, h2, h4, st = v["x2"], v["h2"], v["h4"], v["state"]
    t("blockwise_shift_scale", lambda: mb.linear(x=h2, weight=mb.constexpr_blockwise_shift_scale(
        data=np.ones((8, 6), np.int8), scale=np.ones((8, 2), F16), offset=np.zeros((8, 2), np.int8))))
    t("blockwise_int4", lambda: mb.constexpr_blockwise_shift_scale(data=np.ones((4, 8), types.np_int4_dtype), scale=np.ones((4, 1), F32)))
    t("lut_to_dense18", lambda: mb.constexpr_lut_to_dense(indices=np.zeros((4, 6), types.np_uint4_dtype), lut=np.ones((2, 1, 16, 1), F16)))
    t("lut_to_dense18_vec", lambda: mb.constexpr_lut_to_dense(indices=np.zeros((2, 4, 2), np.uint8), lut=np.ones((1, 2, 1, 256, 3), F16), vector_axis=np.int32(0)))
    mask = np.array([[1, 0, 1], [0, 0, 1]], types.np_uint1_dtype)
    t("sparse_to_dense18", lambda: mb.constexpr_sparse_to_dense(nonzero_data=np.ones(3, F16), mask=mask))

    def joint():
        m, nz = mb.constexpr_lut_to_sparse(indices_mask=mask, indices_nonzero_data=np.zeros(3, types.np_uint1_dtype), lut=np.ones((1, 1, 2, 1), F16))
        mb.constexpr_sparse_to_dense(nonzero_data=nz, mask=m)
        m2, nz2 = mb.constexpr_sparse_blockwise_shift_scale(data_mask=mask, nonzero_data=np.ones(3, np.int8), scale=np.ones((1, 3), F16))
        mb.constexpr_sparse_to_dense(nonzero_data=nz2, mask=m2)
    t("joint", joint)
    t("constexpr_cast18", lambda: mb.constexpr_cast(source_val=np.ones((3, 2), F16), output_dtype="fp32"))
    t("slice_update", lambda: mb.slice_update(x=x2, update=r(2, 6), begin=[1, 0], end=[3, 6]))
    t("sdpa", lambda: mb.scaled_dot_product_attention(query=r(1, 2, 5, 8, dtype=F16), key=r(1, 2, 7, 8, dtype=F16), value=h4 if False else r(1, 2, 7, 4, dtype=F16)))
    t("sdpa_mask", lambda: mb.scaled_dot_product_attention(query=r(2, 5, 8), key=r(2, 7, 8), value=r(2, 7, 8), attn_mask=np.ones((5, 7), bool)))
    t("gru18", lambda: mb.gru(x=r(5, 2, 3), initial_h=z(2, 4), weight_ih=r(12, 3), weight_hh=r(12, 4), reset_after=True, input_bias=r(12)))

    def states():
        cur = mb.read_state(input=st)
        mb.coreml_update_state(state=st, value=mb.add(x=cur, y=F16(1.0)))
    t("states", states)


def build(opset, name):
    s0, s1, s2 = get_new_symbol(), get_new_symbol(), get_new_symbol()
    specs = [
        mb.TensorSpec(shape=(1, 4, 8, 8)),
        mb.TensorSpec(shape=(2, 3, 5)),
        mb.TensorSpec(shape=(4, 6)),
        mb.TensorSpec(shape=(s0, 6)),
        mb.TensorSpec(shape=(1, 4, s1, s2)),
        mb.TensorSpec(shape=(4, 6), dtype=types.int32),
        mb.TensorSpec(shape=(3,), dtype=types.int32),
    ]
    names = ["x4", "x3", "x2", "xs", "xf", "i2", "i1"]
    if opset >= ct.target.iOS16:
        specs += [mb.TensorSpec(shape=(1, 4, 8, 8), dtype=types.fp16), mb.TensorSpec(shape=(4, 6), dtype=types.fp16)]
        names += ["h4", "h2"]
    if opset >= ct.target.iOS18:
        specs.append(mb.StateTensorSpec(shape=(1, 4), dtype=types.fp16))
        names.append("state")

    def body(v):
        common_cases(v, opset)
        if opset >= ct.target.iOS16:
            ios16_cases(v, opset)
        if opset >= ct.target.iOS17:
            ios17_cases(v)
        if opset >= ct.target.iOS18:
            ios18_cases(v)
        return mb.relu(x=v["x2"])

    # pymil names function inputs after the builder's parameters
    if opset >= ct.target.iOS18:
        def fn(x4, x3, x2, xs, xf, i2, i1, h4, h2, state):
            return body(dict(zip(names, [x4, x3, x2, xs, xf, i2, i1, h4, h2, state])))
    elif opset >= ct.target.iOS16:
        def fn(x4, x3, x2, xs, xf, i2, i1, h4, h2):
            return body(dict(zip(names, [x4, x3, x2, xs, xf, i2, i1, h4, h2])))
    else:
        def fn(x4, x3, x2, xs, xf, i2, i1):
            return body(dict(zip(names, [x4, x3, x2, xs, xf, i2, i1])))
    prog = mb.program(input_specs=specs, opset_version=opset)(fn)

    m = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=opset,
                   pass_pipeline=ct.PassPipeline.EMPTY, skip_model_load=True)
    m.save(str(OUT / f"{name}.mlpackage"))


for opset, name in [(ct.target.iOS15, "zoo_ios15"), (ct.target.iOS16, "zoo_ios16"),
                    (ct.target.iOS17, "zoo_ios17"), (ct.target.iOS18, "zoo_ios18")]:
    skipped.clear()
    build(opset, name)
    for s in skipped:
        print(f"{name}: skipped {s}", file=sys.stderr)
