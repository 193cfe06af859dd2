//! Helpers shared by kernels: broadcasting, shapes (axes: [`super::shape::norm_axis`]).

/// The numpy broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// A constant string parameter read at load time: `default` when the op does not bind it, an
/// error when it is bound to a value computed at run time or is not a string.
pub fn const_str(ctx: &super::OpCtx<'_>, param: &str, default: &str) -> Result<String, String> {
    match ctx.constant(param) {
        Some(v) => v
            .as_str()
            .map(str::to_string)
            .map_err(|e| format!("{param}: {e}")),
        None if ctx.has(param) => Err(format!("{param} must be a constant")),
        None => Ok(default.to_string()),
    }
}

/// A constant boolean parameter read at load time (see [`const_str`]).
pub fn const_bool(ctx: &super::OpCtx<'_>, param: &str, default: bool) -> Result<bool, String> {
    Ok(const_i64(ctx, param, i64::from(default))? != 0)
}

/// A constant scalar integer parameter read at load time (see [`const_str`]).
pub fn const_i64(ctx: &super::OpCtx<'_>, param: &str, default: i64) -> Result<i64, String> {
    match ctx.constant(param) {
        Some(v) => match v.to_i64s().map_err(|e| format!("{param}: {e}"))?.as_slice() {
            [x] => Ok(*x),
            v => Err(format!("{param}: expected one integer, got {}", v.len())),
        },
        None if ctx.has(param) => Err(format!("{param} must be a constant")),
        None => Ok(default),
    }
}

/// A constant scalar float parameter read at load time (see [`const_str`]); `None` when the
/// op does not bind it.
pub fn const_f32_opt(ctx: &super::OpCtx<'_>, param: &str) -> Result<Option<f32>, String> {
    match ctx.constant(param) {
        Some(v) => match v.to_f32s().map_err(|e| format!("{param}: {e}"))?.as_slice() {
            [x] => Ok(Some(*x)),
            v => Err(format!("{param}: expected one number, got {}", v.len())),
        },
        None if ctx.has(param) => Err(format!("{param} must be a constant")),
        None => Ok(None),
    }
}

/// A zero-filled buffer of `len` elements, or an error (not an abort) when the allocation
/// fails — sizes that come from a model or its inputs go through this.
pub fn try_zeros<T: Clone + Default>(len: usize) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        format!(
            "cannot allocate {len} elements of {} bytes",
            std::mem::size_of::<T>()
        )
    })?;
    v.resize(len, T::default());
    Ok(v)
}

/// The product of `dims`, or an error naming `what` when it overflows.
pub fn checked_product(dims: &[usize], what: &str) -> Result<usize, String> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("the size of {what} {dims:?} overflows"))
}
