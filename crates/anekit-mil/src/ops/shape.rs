//! Shape arithmetic shared by the op families: dimensions that may be unknown, broadcasting,
//! axes, convolution/pooling output sizes (coremltools `ops/defs/_utils.py`).

use crate::types::{DataType, Dim, TensorType, ValueType};

use super::infer::{InferCtx, InferError};

/// An unknown (non-variadic) dimension.
pub(crate) const UNK: Dim = Dim::Unknown { variadic: false };

/// A tensor type.
pub(crate) fn tensor(dtype: DataType, dims: Vec<Dim>) -> ValueType {
    ValueType::Tensor(TensorType {
        dtype,
        shape: Some(dims),
        attributes: Default::default(),
    })
}

/// A tensor of unknown rank, written the way coremltools serializes one (a single variadic
/// dimension).
pub(crate) fn unknown_rank(dtype: DataType) -> ValueType {
    tensor(dtype, vec![Dim::Unknown { variadic: true }])
}

/// Largest rank an inferred shape may get from a value (a shape vector's length); larger
/// ones come only from corrupt files.
pub(crate) const MAX_RANK: usize = 64;

/// Largest number of outputs an op may get from a value (`split`'s `num_splits`).
pub(crate) const MAX_OUTPUTS: usize = 1 << 16;

/// `n` unknown dimensions, for a rank taken from the arguments (at most [`MAX_RANK`]).
pub(crate) fn unknowns(n: usize) -> Result<Vec<Dim>, InferError> {
    if n > MAX_RANK {
        return Err(InferError::invalid(format!(
            "rank {n} is larger than {MAX_RANK}"
        )));
    }
    Ok(vec![UNK; n])
}

/// A fixed dimension from a signed size; negative sizes are an error.
pub(crate) fn fixed(v: i64, what: &str) -> Result<Dim, InferError> {
    u64::try_from(v)
        .map(Dim::Fixed)
        .map_err(|_| InferError::invalid(format!("{what} has negative size {v}")))
}

/// The size of a dimension as `i64`, if known and representable.
pub(crate) fn size(d: Dim) -> Option<i64> {
    d.fixed().and_then(|v| i64::try_from(v).ok())
}

/// Apply `f` to a known dimension; unknown stays unknown. `f` returning `None` (overflow)
/// or a negative size is an error.
pub(crate) fn map1(
    d: Dim,
    what: &str,
    f: impl FnOnce(i64) -> Option<i64>,
) -> Result<Dim, InferError> {
    match d {
        Dim::Fixed(_) => {
            let v =
                size(d).ok_or_else(|| InferError::invalid(format!("{what}: size overflows")))?;
            let r = f(v).ok_or_else(|| InferError::invalid(format!("{what}: size overflows")))?;
            fixed(r, what)
        }
        Dim::Unknown { .. } => Ok(UNK),
    }
}

/// Apply `f` to two known dimensions; unknown if either is.
pub(crate) fn map2(
    a: Dim,
    b: Dim,
    what: &str,
    f: impl FnOnce(i64, i64) -> Option<i64>,
) -> Result<Dim, InferError> {
    match (a, b) {
        (Dim::Fixed(_), Dim::Fixed(_)) => {
            let overflow = || InferError::invalid(format!("{what}: size overflows"));
            let x = size(a).ok_or_else(overflow)?;
            let y = size(b).ok_or_else(overflow)?;
            fixed(f(x, y).ok_or_else(overflow)?, what)
        }
        _ => Ok(UNK),
    }
}

/// Product of dims, if all are known and it fits.
pub(crate) fn product(dims: &[Dim]) -> Option<i64> {
    dims.iter()
        .try_fold(1i64, |acc, d| acc.checked_mul(size(*d)?))
}

/// Python-style index into `dims` (negative counts from the end).
pub(crate) fn at(dims: &[Dim], idx: i64, what: &str) -> Result<Dim, InferError> {
    let i = py_index(idx, dims.len()).ok_or_else(|| {
        InferError::invalid(format!(
            "{what}: index {idx} out of range for rank {}",
            dims.len()
        ))
    })?;
    dims.get(i)
        .copied()
        .ok_or_else(|| InferError::invalid(format!("{what}: index {idx} out of range")))
}

/// Python-style index into a sequence of length `len`.
pub(crate) fn py_index(idx: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if idx < 0 { idx.checked_add(len)? } else { idx };
    if (0..len).contains(&i) {
        usize::try_from(i).ok()
    } else {
        None
    }
}

/// An axis in `[-rank, rank)` made non-negative; error naming `param` otherwise.
pub(crate) fn norm_axis(axis: i64, rank: usize, param: &str) -> Result<usize, InferError> {
    py_index(axis, rank).ok_or_else(|| {
        InferError::at(
            param,
            format!("axis {axis} is out of range for rank {rank}"),
        )
    })
}

/// coremltools `broadcast_shapes`: numpy broadcasting where an unknown dimension against 1
/// keeps the unknown one, and against a known size > 1 takes that size.
pub(crate) fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, InferError> {
    let n = a.len().max(b.len());
    let pad = |s: &[Dim]| -> Vec<Dim> {
        let mut v = vec![Dim::Fixed(1); n - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    let mut out = Vec::with_capacity(n);
    for (i, (&x, &y)) in a.iter().zip(b.iter()).enumerate() {
        let d = match (x, y) {
            (Dim::Fixed(p), Dim::Fixed(q)) if p == q => x,
            (Dim::Fixed(1), _) => y,
            (_, Dim::Fixed(1)) => x,
            (Dim::Fixed(p), Dim::Fixed(q)) => {
                return Err(InferError::invalid(format!(
                    "shapes {} and {} do not broadcast at dimension {i} ({p} vs {q})",
                    fmt_dims(&a),
                    fmt_dims(&b)
                )));
            }
            (Dim::Unknown { .. }, Dim::Fixed(q)) if q > 1 => y,
            (Dim::Fixed(p), Dim::Unknown { .. }) if p > 1 => x,
            _ => UNK,
        };
        out.push(d);
    }
    Ok(out)
}

/// `[1, ?, 3]`.
pub(crate) fn fmt_dims(d: &[Dim]) -> String {
    let parts: Vec<String> = d.iter().map(ToString::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Whether two dims may be equal (equal, or either unknown).
pub(crate) fn dims_compatible(a: Dim, b: Dim) -> bool {
    match (a, b) {
        (Dim::Fixed(x), Dim::Fixed(y)) => x == y,
        _ => true,
    }
}

/// Whether two shapes may be equal (coremltools `is_compatible_symbolic_vector`).
pub(crate) fn shapes_compatible(a: &[Dim], b: &[Dim]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| dims_compatible(*x, *y))
}

/// Return the type of parameter `x` unchanged (coremltools `return self.x.sym_type`).
pub(crate) fn same_as(ctx: &InferCtx<'_>, x: &str) -> Result<Vec<ValueType>, InferError> {
    let a = ctx
        .arg(x)
        .ok_or_else(|| InferError::MissingParam { param: x.into() })?;
    Ok(vec![a.ty.clone()])
}

/// `same_as(ctx, "x")`.
pub(crate) fn same_as_x(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    same_as(ctx, "x")
}

/// A tensor of `x`'s dtype and `dims`, or of unknown rank if `dims` is `None`.
pub(crate) fn out(dtype: DataType, dims: Option<Vec<Dim>>) -> Vec<ValueType> {
    vec![match dims {
        Some(d) => tensor(dtype, d),
        None => unknown_rank(dtype),
    }]
}

/// `ceil(a / b)` for `a >= 0` and `b > 0`, without the overflow of `(a + b - 1) / b` when
/// `a` is a huge dimension from a malformed file.
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// Floor division for a positive divisor.
pub(crate) fn floor_div(a: i64, b: i64) -> Option<i64> {
    if b == 0 {
        return None;
    }
    Some(a.div_euclid(b) - if b < 0 && a.rem_euclid(b) != 0 { 1 } else { 0 })
}

/// Spatial output sizes of a convolution or pooling window (coremltools
/// `spatial_dimensions_out_shape` with `aggregated_pad`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn spatial_out(
    pad_type: &str,
    input: &[Dim],
    kernel: &[i64],
    strides: &[i64],
    dilations: &[i64],
    custom_pad: Option<&[i64]>,
    ceil_mode: bool,
) -> Result<Vec<Dim>, InferError> {
    let n = kernel.len();
    let zero_pad = vec![0i64; n.saturating_mul(2)];
    let custom = custom_pad.unwrap_or(&zero_pad);
    if input.len() != n || strides.len() != n || dilations.len() != n || custom.len() != 2 * n {
        return Err(InferError::invalid(format!(
            "spatial rank {} of the input, kernel ({n}), strides ({}), dilations ({}) and pad ({}) / 2 must agree",
            input.len(),
            strides.len(),
            dilations.len(),
            custom.len()
        )));
    }
    let overflow = || InferError::invalid("window size overflows");
    let mut out = Vec::with_capacity(n);
    for r in 0..n {
        let (k, s, d) = (kernel[r], strides[r], dilations[r]);
        if s <= 0 {
            return Err(InferError::at(
                "strides",
                format!("stride {s} must be positive"),
            ));
        }
        // effective kernel size with dilation
        let ek = k
            .checked_sub(1)
            .and_then(|x| x.checked_mul(d))
            .and_then(|x| x.checked_add(1))
            .ok_or_else(overflow)?;
        let Some(i) = size(input[r]) else {
            out.push(UNK);
            continue;
        };
        let pad = match pad_type {
            "same" | "same_lower" => {
                let c = floor_div(i.checked_add(s - 1).ok_or_else(overflow)?, s)
                    .ok_or_else(overflow)?;
                (s.checked_mul(c).ok_or_else(overflow)? - i + ek - s).max(0)
            }
            "valid" => 0,
            "custom" => custom[2 * r]
                .checked_add(custom[2 * r + 1])
                .ok_or_else(overflow)?,
            other => {
                return Err(InferError::at(
                    "pad_type",
                    format!("invalid pad_type \"{other}\""),
                ));
            }
        };
        let base = i
            .checked_add(pad)
            .and_then(|x| x.checked_sub(ek))
            .ok_or_else(overflow)?;
        let mut o;
        if !ceil_mode {
            o = floor_div(base, s).ok_or_else(overflow)? + 1;
        } else {
            o = floor_div(base.checked_add(s - 1).ok_or_else(overflow)?, s).ok_or_else(overflow)?
                + 1;
            // (o - 1) * s >= i + pad / 2 (real division) and pad > 0
            let lhs = (o - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_mul(2))
                .ok_or_else(overflow)?;
            let rhs = i
                .checked_mul(2)
                .and_then(|x| x.checked_add(pad))
                .ok_or_else(overflow)?;
            if lhs >= rhs && pad > 0 {
                o -= 1;
            }
        }
        if o <= 0 {
            return Err(InferError::invalid(format!(
                "spatial dimension {r} has invalid output size {o}"
            )));
        }
        out.push(fixed(o, "spatial output")?);
    }
    Ok(out)
}
