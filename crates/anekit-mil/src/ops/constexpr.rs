//! Compression ops, `constexpr_*` (coremltools `ops/defs/iOS16/constexpr_ops.py`,
//! `iOS18/compression.py`).
//!
//! iOS16 constexpr ops carry their parameters as attributes; their iOS18 revisions (and the
//! ops new in iOS18) take them as inputs bound to literals or to other constexpr outputs.

use crate::program::Opset::{self, Ios16, Ios18};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{at, fixed, fmt_dims, map1, product, size, tensor};
use super::{Family, Op, OpDef, Outputs, dom, dt, ty};

fn cx(o: Opset, name: &'static str) -> Op {
    let op = Op::new(o, name, Family::Constexpr);
    if o < Ios18 { op.attribute_params() } else { op }
}

/// Scale/zero-point of rank 0, or rank 1 with length `data.shape[axis]`.
fn check_per_axis(ctx: &InferCtx<'_>, p: &str, axis_dim: Dim) -> Result<(), InferError> {
    let s = ctx.shape(p)?;
    match s.as_slice() {
        [] => Ok(()),
        [n] if super::shape::dims_compatible(*n, axis_dim) => Ok(()),
        [n] => Err(InferError::at(
            p,
            format!(
                "{p}, if vector, needs to have the size of the axis dimension ({axis_dim}), got {n}"
            ),
        )),
        _ => Err(InferError::at(
            p,
            format!("{p} needs to be either a scalar or vector"),
        )),
    }
}

fn affine_dequantize(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let q = ctx.shape("quantized_data")?;
    let a = super::shape::norm_axis(ctx.i64("axis")?, q.len(), "axis")?;
    check_per_axis(ctx, "scale", q[a])?;
    check_per_axis(ctx, "zero_point", q[a])?;
    Ok(vec![tensor(ctx.dtype("scale")?, q)])
}

fn cast(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let d = ctx.str("output_dtype")?;
    if d != "fp32" {
        return Err(InferError::at(
            "output_dtype",
            "only output_dtype = fp32 is supported",
        ));
    }
    Ok(vec![tensor(DataType::Fp32, ctx.shape("source_val")?)])
}

fn vector_len(ctx: &InferCtx<'_>, p: &str) -> Result<Dim, InferError> {
    let s = ctx.shape(p)?;
    match s.as_slice() {
        [n] => Ok(*n),
        _ => Err(InferError::at(p, format!("{p} needs to have rank == 1"))),
    }
}

fn shape_param(ctx: &InferCtx<'_>) -> Result<(Vec<Dim>, i64), InferError> {
    let s = ctx.ints("shape")?;
    let dims = s
        .iter()
        .map(|v| fixed(*v, "shape"))
        .collect::<Result<Vec<_>, _>>()?;
    let n = product(&dims).ok_or_else(|| InferError::at("shape", "size overflows"))?;
    Ok((dims, n))
}

/// iOS16 `constexpr_lut_to_dense`: packed `nbits` indices into a 2^nbits-entry lut.
fn lut_to_dense16(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let m = vector_len(ctx, "indices")?;
    let l = vector_len(ctx, "lut")?;
    let nbits = match size(l) {
        Some(2) => 1,
        Some(4) => 2,
        Some(16) => 4,
        Some(64) => 6,
        Some(256) => 8,
        _ => {
            return Err(InferError::at(
                "lut",
                "lut should be a vector of size 2, 4, 16, 64 or 256",
            ));
        }
    };
    let (dims, n) = shape_param(ctx)?;
    let need = n
        .checked_mul(nbits)
        .map(|b| super::shape::ceil_div(b, 8))
        .ok_or_else(|| InferError::at("shape", "size overflows"))?;
    if size(m) != Some(need) {
        return Err(InferError::at(
            "indices",
            format!("M = ceil(nbits * product(shape) / 8) = {need}, but indices has {m} elements"),
        ));
    }
    Ok(vec![tensor(ctx.dtype("lut")?, dims)])
}

/// iOS16 `constexpr_sparse_to_dense`: a bitmask (LSB first) over the output elements.
fn sparse_to_dense16(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let nz = vector_len(ctx, "nonzero_data")?;
    let m = vector_len(ctx, "mask")?;
    let (dims, n) = shape_param(ctx)?;
    let need = super::shape::ceil_div(n, 8);
    if size(m) != Some(need) {
        return Err(InferError::at(
            "mask",
            format!("M = ceil(product(shape) / 8) = {need}, but mask has {m} bytes"),
        ));
    }
    if let Some(bytes) = ctx.value("mask").and_then(|v| v.bytes()) {
        let ones: u64 = bytes.iter().map(|b| u64::from(b.count_ones())).sum();
        if Some(ones) != nz.fixed() {
            return Err(InferError::at(
                "mask",
                format!(
                    "number of set bits in mask ({ones}) must equal the number of elements of nonzero_data ({nz})"
                ),
            ));
        }
        let used = u64::try_from(n).unwrap_or(0);
        let padded = bytes
            .iter()
            .enumerate()
            .any(|(i, b)| (0..8u64).any(|bit| (b >> bit) & 1 == 1 && (i as u64) * 8 + bit >= used));
        if padded {
            return Err(InferError::at("mask", "padded bits in mask should be zero"));
        }
    }
    Ok(vec![tensor(ctx.dtype("nonzero_data")?, dims)])
}

/// Blocks of `scale` (and `offset`) must divide `data_shape` (`_validate_shift_scale_inputs`).
fn check_shift_scale(
    ctx: &InferCtx<'_>,
    data_shape: &[Dim],
    data_dtype: DataType,
) -> Result<(), InferError> {
    let s = ctx.shape("scale")?;
    if s.len() != data_shape.len() {
        return Err(InferError::at(
            "scale",
            format!(
                "data and scale need to have the same rank, but got {} vs {}",
                data_shape.len(),
                s.len()
            ),
        ));
    }
    if data_shape.is_empty() {
        return Err(InferError::at(
            "scale",
            "data needs to have at least rank 1",
        ));
    }
    for (i, (d, sd)) in data_shape.iter().zip(&s).enumerate() {
        if let (Some(d), Some(sd)) = (size(*d), size(*sd))
            && (sd == 0 || d % sd != 0)
        {
            return Err(InferError::at(
                "scale",
                format!("number of scales at dim {i} ({sd}) must divide the data size ({d})"),
            ));
        }
    }
    if let Some(o) = ctx.opt_tensor("offset")? {
        let os = ctx.shape("offset")?;
        if os != s {
            return Err(InferError::at(
                "offset",
                format!(
                    "the shape of offset {} should match the shape of scale {}",
                    fmt_dims(&os),
                    fmt_dims(&s)
                ),
            ));
        }
        if !o.dtype.is_float() && o.dtype != data_dtype {
            return Err(InferError::at(
                "offset",
                format!(
                    "the dtype of offset ({}) should match the dtype of data ({data_dtype})",
                    o.dtype
                ),
            ));
        }
    }
    Ok(())
}

fn blockwise_shift_scale(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let d = ctx.shape("data")?;
    check_shift_scale(ctx, &d, ctx.dtype("data")?)?;
    Ok(vec![tensor(ctx.dtype("scale")?, d)])
}

/// `_validate_lut_inputs`; returns `(vector_size, vector_axis)`.
fn check_lut(
    ctx: &InferCtx<'_>,
    indices_shape: &[Dim],
    indices_dtype: DataType,
) -> Result<(i64, Option<usize>), InferError> {
    let r = indices_shape.len();
    let lut = ctx.shape("lut")?;
    if r < 1 {
        return Err(InferError::at(
            "indices",
            "indices needs to have at least rank 1",
        ));
    }
    if lut.len() != r + 2 {
        return Err(InferError::at(
            "lut",
            format!(
                "lut needs 2 more dims than indices, but got rank {} and {r}",
                lut.len()
            ),
        ));
    }
    for (i, (a, b)) in indices_shape.iter().zip(&lut).enumerate() {
        if let (Some(a), Some(b)) = (size(*a), size(*b))
            && (b == 0 || a % b != 0)
        {
            return Err(InferError::at(
                "lut",
                format!("indices dim {i} ({a}) must be divisible by the lut dim ({b})"),
            ));
        }
    }
    let palettes =
        size(at(&lut, -2, "lut")?).ok_or_else(|| InferError::Undetermined("lut size".into()))?;
    let nbits = palettes.checked_ilog2().unwrap_or(0);
    if palettes <= 0 || palettes != 1i64 << nbits {
        return Err(InferError::at(
            "lut",
            format!("the second last dim of lut should be 2^nbits, got {palettes}"),
        ));
    }
    if Some(nbits) != indices_dtype.bits() {
        return Err(InferError::at(
            "indices",
            format!(
                "a lut of {palettes} palettes means nbits = {nbits}, so indices should be uint{nbits}, got {indices_dtype}"
            ),
        ));
    }
    let vs = size(at(&lut, -1, "lut")?)
        .ok_or_else(|| InferError::Undetermined("lut vector size".into()))?;
    let axis = if ctx.has("vector_axis") {
        if !ctx.shape("vector_axis")?.is_empty() {
            return Err(InferError::at(
                "vector_axis",
                "vector_axis should be a scalar",
            ));
        }
        Some(super::shape::norm_axis(
            ctx.i64("vector_axis")?,
            r,
            "vector_axis",
        )?)
    } else if vs > 1 {
        return Err(InferError::at(
            "vector_axis",
            "vector_axis is required when the lut's last dim (VECTOR_SIZE) > 1",
        ));
    } else {
        None
    };
    Ok((vs, axis))
}

fn lut_to_dense18(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut s = ctx.shape("indices")?;
    let (vs, axis) = check_lut(ctx, &s, ctx.dtype("indices")?)?;
    if vs > 1
        && let Some(a) = axis
    {
        s[a] = map1(s[a], "vector_axis", |v| v.checked_mul(vs))?;
    }
    Ok(vec![tensor(ctx.dtype("lut")?, s)])
}

/// `_validate_sparse_inputs`: rank-1 non-zeros, as many as the ones of a known mask.
fn check_sparse(ctx: &InferCtx<'_>, nz: &str, mask: &str) -> Result<Dim, InferError> {
    let n = vector_len(ctx, nz)?;
    if let Some(ones) = ctx.value(mask).and_then(super::infer::count_nonzero)
        && Some(ones) != n.fixed()
    {
        return Err(InferError::at(
            mask,
            format!(
                "number of 1s in {mask} ({ones}) does not match the number of elements of {nz} ({n})"
            ),
        ));
    }
    Ok(n)
}

fn sparse_to_dense18(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    check_sparse(ctx, "nonzero_data", "mask")?;
    Ok(vec![tensor(ctx.dtype("nonzero_data")?, ctx.shape("mask")?)])
}

fn lut_to_sparse(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let n = check_sparse(ctx, "indices_nonzero_data", "indices_mask")?;
    let mut m = ctx.shape("indices_mask")?;
    let (vs, axis) = check_lut(ctx, &m, ctx.dtype("indices_nonzero_data")?)?;
    let mut nz = vec![n];
    if vs > 1 {
        if let Some(a) = axis {
            m[a] = map1(m[a], "vector_axis", |v| v.checked_mul(vs))?;
        }
        nz = vec![map1(n, "nonzero data", |v| v.checked_mul(vs))?];
    }
    Ok(vec![
        tensor(ctx.dtype("indices_mask")?, m),
        tensor(ctx.dtype("lut")?, nz),
    ])
}

fn sparse_blockwise_shift_scale(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let n = check_sparse(ctx, "nonzero_data", "data_mask")?;
    let m = ctx.shape("data_mask")?;
    check_shift_scale(ctx, &m, ctx.dtype("nonzero_data")?)?;
    Ok(vec![
        tensor(ctx.dtype("data_mask")?, m),
        tensor(ctx.dtype("scale")?, vec![n]),
    ])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let u8s = ty(&[Uint8]);
    let u32s = ty(dt::U32);
    let i32s = ty(dt::I32);
    let s = ty(dt::STR);
    // ---- iOS16 (parameters as attributes)
    v.push(
        cx(Ios16, "constexpr_affine_dequantize")
            .konst("quantized_data", dom("SrcT", &[Uint8, Int8]))
            .konst("zero_point", dom("ZeroPointT", &[Uint8, Int8, Fp32]))
            .konst("scale", dom("DstT", dt::FP))
            .konst("axis", i32s)
            .infer(affine_dequantize),
    );
    for o in [Ios16, Ios18] {
        v.push(
            cx(o, "constexpr_cast")
                .konst("source_val", ty(&[Fp16]))
                .konst("output_dtype", s)
                .infer(cast),
        );
    }
    let lut_t = dom("T", &[Int8, Uint8, Fp16, Fp32]);
    v.push(
        cx(Ios16, "constexpr_lut_to_dense")
            .konst("indices", u8s)
            .konst("lut", lut_t)
            .konst("shape", u32s)
            .infer(lut_to_dense16),
    );
    v.push(
        cx(Ios16, "constexpr_sparse_to_dense")
            .konst("nonzero_data", lut_t)
            .konst("mask", u8s)
            .konst("shape", u32s)
            .infer(sparse_to_dense16),
    );
    // ---- iOS18 (parameters as inputs)
    const SRC: &[DataType] = &[Int4, Uint4, Int8, Uint8, Fp16, Fp32];
    const IDX: &[DataType] = &[Uint1, Uint2, Uint3, Uint4, Uint6, Uint8];
    let u1 = ty(&[Uint1]);
    v.push(
        cx(Ios18, "constexpr_blockwise_shift_scale")
            .konst("data", dom("SrcT", SRC))
            .konst("scale", dom("DstT", dt::FP))
            .opt_konst("offset", dom("OffsetT", SRC), None)
            .infer(blockwise_shift_scale),
    );
    v.push(
        cx(Ios18, "constexpr_lut_to_dense")
            .konst("indices", dom("IndicesT", IDX))
            .konst("lut", lut_t)
            .opt_konst("vector_axis", i32s, None)
            .infer(lut_to_dense18),
    );
    v.push(
        cx(Ios18, "constexpr_sparse_to_dense")
            .konst("nonzero_data", dom("T", SRC))
            .konst("mask", u1)
            .infer(sparse_to_dense18),
    );
    v.push(
        cx(Ios18, "constexpr_lut_to_sparse")
            .konst("indices_mask", u1)
            .konst("indices_nonzero_data", dom("IndicesT", IDX))
            .konst("lut", lut_t)
            .opt_konst("vector_axis", i32s, None)
            .outputs(Outputs::Exactly(2))
            .infer(lut_to_sparse),
    );
    v.push(
        cx(Ios18, "constexpr_sparse_blockwise_shift_scale")
            .konst("data_mask", u1)
            .konst("nonzero_data", dom("SrcT", SRC))
            .konst("scale", dom("DstT", dt::FP))
            .opt_konst("offset", dom("OffsetT", SRC), None)
            .outputs(Outputs::Exactly(2))
            .infer(sparse_blockwise_shift_scale),
    );
}
