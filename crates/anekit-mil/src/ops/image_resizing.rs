//! Image resizing (coremltools `ops/defs/iOS15/image_resizing.py`, `iOS16/…`, `iOS17/…`).

use crate::program::Opset::{Ios15, Ios16, Ios17};
use crate::types::{DataType, Dim, ValueType};

use super::infer::{InferCtx, InferError};
use super::shape::{UNK, at, dims_compatible, fixed, fmt_dims, map1, size, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, dom, dt, ty};

const SAMPLING_MODES: &[&str] = &[
    "STRICT_ALIGN_CORNERS",
    "ALIGN_CORNERS",
    "UNALIGN_CORNERS",
    "DEFAULT",
    "OFFSET_CORNERS",
];
const BOX_MODES: &[&str] = &[
    "CORNERS_HEIGHT_FIRST",
    "CORNERS_WIDTH_FIRST",
    "CENTER_SIZE_HEIGHT_FIRST",
    "CENTER_SIZE_WIDTH_FIRST",
];

fn one_of(ctx: &InferCtx<'_>, p: &str, allowed: &[&str]) -> Result<(), InferError> {
    let v = ctx.str(p)?;
    if allowed.contains(&v.as_str()) {
        Ok(())
    } else {
        Err(InferError::at(p, format!("unrecognized value \"{v}\"")))
    }
}

fn rank_at_least(ctx: &InferCtx<'_>, n: usize) -> Result<Vec<Dim>, InferError> {
    let x = ctx.shape("x")?;
    if x.len() < n {
        return Err(InferError::at(
            "x",
            format!("input must have rank at least {n}, got {}", fmt_dims(&x)),
        ));
    }
    Ok(x)
}

fn set_last(x: &mut [Dim], from_end: usize, d: Dim) {
    let n = x.len();
    if let Some(slot) = n.checked_sub(from_end).and_then(|i| x.get_mut(i)) {
        *slot = d;
    }
}

/// `upsample_*`: the last two dims scaled by `scale_factor_height/width` (floored).
fn upsample(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = rank_at_least(ctx, 3)?;
    for (p, from_end) in [("scale_factor_width", 1), ("scale_factor_height", 2)] {
        // numpy: an fp32 scale times an int size is computed in fp32, an int32 one exactly
        let float_scale = ctx.opt_tensor(p)?.is_some_and(|t| t.dtype.is_float());
        let s = ctx.f64(p)?;
        let d = x.get(x.len() - from_end).copied().unwrap_or(UNK);
        let nd = map1(d, p, |v| {
            let r = if float_scale {
                f64::from((s as f32 * v as f32).floor())
            } else {
                (s * v as f64).floor()
            };
            (0.0..9.0e18).contains(&r).then_some(r as i64)
        })?;
        set_last(&mut x, from_end, nd);
    }
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

/// `resize_*`: the last two dims set to the target sizes.
fn resize_to(ctx: &InferCtx<'_>, h: &str, w: &str) -> Result<Vec<ValueType>, InferError> {
    let mut x = rank_at_least(ctx, 3)?;
    set_last(&mut x, 1, fixed(ctx.i64(w)?, w)?);
    set_last(&mut x, 2, fixed(ctx.i64(h)?, h)?);
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

fn resize_nearest_neighbor(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    resize_to(ctx, "target_size_height", "target_size_width")
}

fn resize_bilinear(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    rank_at_least(ctx, 3)?;
    one_of(ctx, "sampling_mode", SAMPLING_MODES)?;
    resize_to(ctx, "target_size_height", "target_size_width")
}

/// iOS15/16 `crop_resize`: `[roi.shape[0], B, C, target_height, target_width]`.
fn crop_resize15(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let roi = ctx.shape("roi")?;
    if x.len() != 4 {
        return Err(InferError::at(
            "x",
            format!("x must be of rank 4, got {}", x.len()),
        ));
    }
    if roi.len() != 5 {
        return Err(InferError::at(
            "roi",
            format!("roi must be of rank 5, got {}", roi.len()),
        ));
    }
    one_of(ctx, "box_coordinate_mode", BOX_MODES)?;
    one_of(ctx, "sampling_mode", SAMPLING_MODES)?;
    let out = vec![
        at(&roi, 0, "roi")?,
        at(&x, 0, "x")?,
        at(&x, 1, "x")?,
        fixed(ctx.i64("target_height")?, "target_height")?,
        fixed(ctx.i64("target_width")?, "target_width")?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// iOS17 `crop_resize`: `[N, C, target_height, target_width]` for `boxes` of shape `[N, 4]`.
fn crop_resize17(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let x = ctx.shape("x")?;
    let boxes = ctx.shape("boxes")?;
    if x.len() != 4 {
        return Err(InferError::at(
            "x",
            format!("x must be of rank 4, got {}", x.len()),
        ));
    }
    let [n, four] = boxes.as_slice() else {
        return Err(InferError::at(
            "boxes",
            format!("boxes must have shape [N, 4], got {}", fmt_dims(&boxes)),
        ));
    };
    if !dims_compatible(*four, Dim::Fixed(4)) {
        return Err(InferError::at(
            "boxes",
            format!("boxes must have shape [N, 4], got {}", fmt_dims(&boxes)),
        ));
    }
    if ctx.has("box_indices") {
        let bi = ctx.shape("box_indices")?;
        if !matches!(bi.as_slice(), [m] if dims_compatible(*m, *n)) {
            return Err(InferError::at(
                "box_indices",
                format!("box_indices must have shape [{n}], got {}", fmt_dims(&bi)),
            ));
        }
    } else if let (Some(nb), Some(b)) = (size(*n), size(at(&x, 0, "x")?))
        && nb > b
    {
        return Err(InferError::at(
            "boxes",
            format!(
                "N dimension of boxes ({nb}) should not be greater than the B dimension of x ({b}) when box_indices is not given"
            ),
        ));
    }
    one_of(ctx, "box_coordinate_mode", BOX_MODES)?;
    one_of(ctx, "sampling_mode", SAMPLING_MODES)?;
    if ctx.bool("normalized_coordinates")? && !ctx.dtype("boxes")?.is_float() {
        return Err(InferError::at(
            "boxes",
            "when normalized_coordinates is set, boxes must have fp16 or fp32 dtype",
        ));
    }
    let out = vec![
        *n,
        at(&x, 1, "x")?,
        fixed(ctx.i64("target_height")?, "target_height")?,
        fixed(ctx.i64("target_width")?, "target_width")?,
    ];
    Ok(vec![tensor(ctx.dtype("x")?, out)])
}

/// `crop`: the last two dims reduced by `crop_height`/`crop_width` (before, after).
fn crop(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = rank_at_least(ctx, 3)?;
    for (p, from_end) in [("crop_width", 1), ("crop_height", 2)] {
        let c = ctx.ints(p)?;
        let [a, b] = c.as_slice() else {
            return Err(InferError::at(
                p,
                format!("{p} must have 2 elements, got {}", c.len()),
            ));
        };
        let d = x.get(x.len() - from_end).copied().unwrap_or(UNK);
        let nd = map1(d, p, |v| v.checked_sub(*a)?.checked_sub(*b))?;
        set_last(&mut x, from_end, nd);
    }
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

/// `affine`: `x` rank 4; H, W replaced by `output_height/width`.
fn affine(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    if x.len() != 4 {
        return Err(InferError::at(
            "x",
            format!("x must be a rank 4 tensor, got {}", fmt_dims(&x)),
        ));
    }
    let m = ctx.shape("transform_matrix")?;
    if m.len() != 2 {
        return Err(InferError::at(
            "transform_matrix",
            "transform_matrix must be a rank 2 tensor",
        ));
    }
    if !dims_compatible(at(&m, -1, "transform_matrix")?, Dim::Fixed(6)) {
        return Err(InferError::at(
            "transform_matrix",
            "the last dimension must be 6",
        ));
    }
    if ctx.str("sampling_mode")?.to_lowercase() != "bilinear" {
        return Err(InferError::at(
            "sampling_mode",
            "only \"bilinear\" is implemented",
        ));
    }
    if ctx.str("coordinates_mode")?.to_lowercase() != "normalized_minus_one_to_one" {
        return Err(InferError::at(
            "coordinates_mode",
            "only \"normalized_minus_one_to_one\" is implemented",
        ));
    }
    if ctx.str("padding_mode")?.to_lowercase() != "constant" || ctx.f64("padding_value")? != 0.0 {
        return Err(InferError::at(
            "padding_mode",
            "only \"constant\" padding with value 0 is implemented",
        ));
    }
    x[2] = fixed(ctx.i64("output_height")?, "output_height")?;
    x[3] = fixed(ctx.i64("output_width")?, "output_width")?;
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

/// `resample`: `x` [B, C, H, W], `coordinates` [B, H', W', 2] → [B, C, H', W'].
fn resample(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    let c = ctx.shape("coordinates")?;
    if x.len() != 4 {
        return Err(InferError::at(
            "x",
            format!("x must be a rank 4 tensor, got {}", fmt_dims(&x)),
        ));
    }
    if c.len() != 4 {
        return Err(InferError::at(
            "coordinates",
            format!("coordinates must be a rank 4 tensor, got {}", fmt_dims(&c)),
        ));
    }
    if !dims_compatible(x[0], c[0]) {
        return Err(InferError::at(
            "coordinates",
            "x and coordinates must agree on the batch size",
        ));
    }
    if !dims_compatible(c[3], Dim::Fixed(2)) {
        return Err(InferError::at(
            "coordinates",
            "the last dimension of coordinates must be 2",
        ));
    }
    x[2] = c[1];
    x[3] = c[2];
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

/// iOS17 `resize`: the last `resized_dims` dims of `x` set from the end of `shape` (0 keeps
/// the input size; unknown entries give unknown dims).
fn resize(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let mut x = ctx.shape("x")?;
    let s = ctx.shape("shape")?;
    let [len] = s.as_slice() else {
        return Err(InferError::at(
            "shape",
            format!("the shape's rank must be 1, but got {}", s.len()),
        ));
    };
    let rd = ctx.i64("resized_dims")?;
    let rd_u =
        usize::try_from(rd).map_err(|_| InferError::at("resized_dims", "must not be negative"))?;
    let sym = ctx.sym("shape");
    let len = match (size(*len), &sym) {
        (Some(l), _) => l,
        (None, Some(v)) => i64::try_from(v.len()).unwrap_or(i64::MAX),
        (None, None) => return Err(InferError::Undetermined("length of `shape`".into())),
    };
    if rd > len {
        return Err(InferError::at(
            "resized_dims",
            format!("resized_dims ({rd}) must be <= shape's size ({len})"),
        ));
    }
    if len > x.len() as i64 || rd_u > x.len() {
        return Err(InferError::at(
            "shape",
            format!("shape's size ({len}) must be <= x's rank ({})", x.len()),
        ));
    }
    one_of(ctx, "interpolation_mode", &["LINEAR", "NEAREST_NEIGHBOR"])?;
    one_of(ctx, "sampling_mode", SAMPLING_MODES)?;
    let start = len - rd;
    let rank = x.len();
    for i in 0..rd_u {
        let target = sym
            .as_ref()
            .and_then(|v| v.get(usize::try_from(start).ok()? + i).copied().flatten());
        let slot = rank - rd_u + i;
        let d = match target {
            Some(0) => x[slot],
            Some(t) => fixed(t, "shape")?,
            None => UNK,
        };
        x[slot] = d;
    }
    Ok(vec![tensor(ctx.dtype("x")?, x)])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    let fp = dom("T", dt::FP);
    let i32s = ty(dt::I32);
    let s = ty(dt::STR);
    let b = ty(dt::BOOL);
    let su = dom("U", &[DataType::Fp32, DataType::Int32]);
    let fam = Family::ImageResizing;
    v.push(
        Op::new(Ios15, "upsample_nearest_neighbor", fam)
            .input("x", fp)
            .opt_konst("scale_factor_height", su, Some(D::Int(1)))
            .opt_konst("scale_factor_width", su, Some(D::Int(1)))
            .infer(upsample),
    );
    v.push(
        Op::new(Ios15, "resize_nearest_neighbor", fam)
            .input("x", fp)
            .konst("target_size_height", i32s)
            .konst("target_size_width", i32s)
            .infer(resize_nearest_neighbor),
    );
    let ub = |o, extra: bool| {
        let op = Op::new(o, "upsample_bilinear", fam)
            .input("x", fp)
            .opt_konst("scale_factor_height", su, Some(D::Int(1)))
            .opt_konst("scale_factor_width", su, Some(D::Int(1)))
            .opt_konst("align_corners", b, Some(D::Bool(true)));
        if extra {
            op.opt_konst("half_pixel_centers", b, Some(D::Computed("!align_corners")))
        } else {
            op
        }
        .infer(upsample)
    };
    v.push(ub(Ios15, false));
    v.push(ub(Ios16, true));
    v.push(
        Op::new(Ios15, "resize_bilinear", fam)
            .input("x", fp)
            .opt_konst("target_size_height", i32s, Some(D::Int(1)))
            .opt_konst("target_size_width", i32s, Some(D::Int(1)))
            .opt_konst("sampling_mode", s, Some(D::Str("DEFAULT")))
            .infer(resize_bilinear),
    );
    let cr_tail = |op: Op| {
        op.opt_konst("target_height", i32s, Some(D::Int(1)))
            .opt_konst("target_width", i32s, Some(D::Int(1)))
            .opt_konst("normalized_coordinates", b, Some(D::Bool(false)))
            .opt_konst("spatial_scale", ty(dt::FP32), Some(D::Float(1.0)))
            .opt_konst(
                "box_coordinate_mode",
                s,
                Some(D::Str("CORNERS_HEIGHT_FIRST")),
            )
            .opt_konst("sampling_mode", s, Some(D::Str("DEFAULT")))
    };
    v.push(
        cr_tail(
            Op::new(Ios15, "crop_resize", fam)
                .input("x", fp)
                .input("roi", fp),
        )
        .infer(crop_resize15),
    );
    v.push(
        cr_tail(
            Op::new(Ios16, "crop_resize", fam)
                .input("x", fp)
                .input("roi", fp),
        )
        .opt_konst("pad_value", fp, Some(D::Float(0.0)))
        .infer(crop_resize15),
    );
    use DataType::*;
    v.push(
        cr_tail(
            Op::new(Ios17, "crop_resize", fam)
                .input("x", fp)
                .input("boxes", dom("BOX_T", &[Fp16, Fp32, Uint16]))
                .opt_input(
                    "box_indices",
                    dom("BOX_INDEX_T", &[Uint16, Int32]),
                    Some(D::Computed("[0, 1, …, N-1]")),
                ),
        )
        .opt_konst("pad_value", fp, Some(D::Float(0.0)))
        .infer(crop_resize17),
    );
    v.push(
        Op::new(Ios15, "crop", fam)
            .input("x", fp)
            .konst("crop_height", i32s)
            .konst("crop_width", i32s)
            .infer(crop),
    );
    v.push(
        Op::new(Ios15, "affine", fam)
            .input("x", fp)
            .input("transform_matrix", fp)
            .konst("output_height", i32s)
            .konst("output_width", i32s)
            .konst("sampling_mode", s)
            .konst("padding_mode", s)
            .konst("padding_value", fp)
            .konst("coordinates_mode", s)
            .konst("align_corners", b)
            .infer(affine),
    );
    const R15: &[DataType] = &[Int32, Fp32];
    const R16: &[DataType] = &[Int32, Fp16, Fp32];
    const R17: &[DataType] = &[Int8, Uint8, Int16, Uint16, Int32, Fp16, Fp32];
    for (o, u) in [(Ios15, R15), (Ios16, R16), (Ios17, R17)] {
        v.push(
            Op::new(o, "resample", fam)
                .input("x", fp)
                .input("coordinates", dom("U", u))
                .konst("sampling_mode", s)
                .konst("padding_mode", s)
                .konst("padding_value", fp)
                .konst("coordinates_mode", s)
                .konst("align_corners", b)
                .infer(resample),
        );
    }
    v.push(
        Op::new(Ios17, "resize", fam)
            .input("x", dom("T", &[Fp16, Fp32, Int32]))
            .input("shape", dom("U", &[Int32, Int16, Uint16, Uint32]))
            .konst("resized_dims", ty(dt::U32))
            .opt_konst("interpolation_mode", s, Some(D::Str("LINEAR")))
            .opt_konst("sampling_mode", s, Some(D::Str("DEFAULT")))
            .infer(resize),
    );
}
