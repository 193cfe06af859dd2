//! Tensor operations (coremltools `ops/defs/iOS15..iOS17/tensor_operation.py`): `concat`
//! (with `interleave`), `split`, `stack`, `tile`, `pad` (constant, reflect, replicate),
//! `range_1d`, `fill`, `fill_like`, `shape`, `identity`, `band_part`, `cumsum`, `one_hot`,
//! `non_zero`, `argsort`, `topk` (iOS15, iOS16 `sort`/`return_indices`, iOS17 `k = -1`),
//! `non_maximum_suppression` (iOS15 and iOS17 layouts).

use std::cmp::Ordering;

use anekit_mil::{DataType, Opset};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice, Zip};

use super::shape::{
    Elem, IntsParam, checked_count, dim, norm_axis, owned, reshaped, tensor_of, with_elem,
};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "concat",
    "split",
    "stack",
    "tile",
    "pad",
    "range_1d",
    "fill",
    "fill_like",
    "shape",
    "identity",
    "band_part",
    "cumsum",
    "one_hot",
    "non_zero",
    "argsort",
    "topk",
    "non_maximum_suppression",
];

fn same_type<'a, T: Elem>(values: &[&'a Value], what: &str) -> Result<Vec<&'a ArrayD<T>>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| tensor_of::<T>(v, &format!("{what}[{i}]")))
        .collect()
}

fn concat<T: Elem>(values: &[&Value], axis: i64, interleave: bool) -> Result<Value, String> {
    let arrays = same_type::<T>(values, "values")?;
    let first = arrays.first().ok_or("values is empty")?;
    let rank = first.ndim();
    if let Some(bad) = arrays.iter().find(|a| a.ndim() != rank) {
        return Err(format!(
            "values have ranks {rank} and {}; they must match",
            bad.ndim()
        ));
    }
    if rank == 0 {
        // coremltools stacks scalars.
        let views: Vec<ArrayViewD<'_, T>> = arrays.iter().map(|a| a.view()).collect();
        let out = ndarray::stack(Axis(0), &views).map_err(|e| e.to_string())?;
        return Ok(T::wrap(out));
    }
    let ax = norm_axis(axis, rank, "axis")?;
    for a in &arrays {
        let ok = a
            .shape()
            .iter()
            .zip(first.shape())
            .enumerate()
            .all(|(i, (x, y))| x == y || (i == ax && !interleave));
        if !ok {
            return Err(format!(
                "shapes {:?} and {:?} cannot be concatenated along axis {ax}{}",
                first.shape(),
                a.shape(),
                if interleave { " with interleave" } else { "" }
            ));
        }
    }
    let mut total = first.shape().to_vec();
    if let Some(d) = total.get_mut(ax) {
        *d = arrays.iter().map(|a| a.len_of(Axis(ax))).sum();
    }
    checked_count(&total, "values")?;
    let views: Vec<ArrayViewD<'_, T>> = arrays.iter().map(|a| a.view()).collect();
    if interleave {
        // Stack behind the axis, then merge: out[.., k*n + i, ..] = values[i][.., k, ..].
        let st = ndarray::stack(Axis(ax + 1), &views).map_err(|e| e.to_string())?;
        return Ok(T::wrap(reshaped(&st, &total)?));
    }
    let out = ndarray::concatenate(Axis(ax), &views).map_err(|e| e.to_string())?;
    Ok(T::wrap(out))
}

fn split<T: Elem>(x: &Value, axis: i64, sizes: &[usize]) -> Result<Vec<Value>, String> {
    let x = tensor_of::<T>(x, "x")?;
    let ax = norm_axis(axis, x.ndim(), "axis")?;
    let d = x.len_of(Axis(ax));
    if sizes.iter().sum::<usize>() != d {
        return Err(format!(
            "split sizes {sizes:?} do not add up to dimension {d} of axis {ax}"
        ));
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        out.push(T::wrap(owned(
            x.slice_axis(Axis(ax), Slice::from(start..start + s)),
        )));
        start += s;
    }
    Ok(out)
}

fn stack<T: Elem>(values: &[&Value], axis: i64) -> Result<Value, String> {
    let arrays = same_type::<T>(values, "values")?;
    let first = arrays.first().ok_or("values is empty")?;
    if let Some(bad) = arrays.iter().find(|a| a.shape() != first.shape()) {
        return Err(format!(
            "values have shapes {:?} and {:?}; they must match",
            first.shape(),
            bad.shape()
        ));
    }
    let ax = norm_axis(axis, first.ndim() + 1, "axis")?;
    let views: Vec<ArrayViewD<'_, T>> = arrays.iter().map(|a| a.view()).collect();
    let mut shape = first.shape().to_vec();
    shape.insert(ax, views.len());
    checked_count(&shape, "values")?;
    Ok(T::wrap(
        ndarray::stack(Axis(ax), &views).map_err(|e| e.to_string())?,
    ))
}

fn tile<T: Elem>(x: &Value, reps: &[i64]) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    if reps.len() != x.ndim() {
        return Err(format!(
            "reps has {} entries for an input of rank {}",
            reps.len(),
            x.ndim()
        ));
    }
    let reps: Vec<usize> = reps
        .iter()
        .enumerate()
        .map(|(i, &r)| {
            usize::try_from(r)
                .ok()
                .filter(|&r| r > 0)
                .ok_or_else(|| format!("reps[{i}] must be positive, got {r}"))
        })
        .collect::<Result<_, _>>()?;
    let out_shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| d.checked_mul(r).ok_or("reps: output is too large"))
        .collect::<Result<_, _>>()?;
    checked_count(&out_shape, "reps")?;
    // x as [1, d0, 1, d1, ...] broadcast to [r0, d0, r1, d1, ...], then merged.
    let mut inter = Vec::with_capacity(2 * reps.len());
    let mut big = Vec::with_capacity(2 * reps.len());
    for (&d, &r) in x.shape().iter().zip(&reps) {
        inter.extend([1, d]);
        big.extend([r, d]);
    }
    let v = reshaped(x, &inter)?;
    let b = v.broadcast(IxDyn(&big)).ok_or("tile: broadcast failed")?;
    let data: Vec<T> = b.iter().cloned().collect();
    ArrayD::from_shape_vec(IxDyn(&out_shape), data)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

/// Source index along one axis for output position `p` of a padded axis of size `d` with
/// `before` elements in front, or `None` for the constant.
fn pad_source(mode: &str, p: usize, before: usize, d: usize) -> Option<usize> {
    let i = p as i64 - before as i64;
    let n = d as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        "replicate" => Some(i.clamp(0, n - 1) as usize),
        "reflect" => {
            if n == 1 {
                return Some(0);
            }
            // numpy "reflect": period 2(n-1), mirrored without repeating the edge.
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
        _ => None,
    }
}

fn pad(x: &ArrayD<f32>, pads: &[i64], mode: &str, constant: f32) -> Result<ArrayD<f32>, String> {
    let rank = x.ndim();
    if !pads.len().is_multiple_of(2) || pads.len() / 2 > rank {
        return Err(format!(
            "pad has {} entries; it needs 2 per padded axis, at most {}",
            pads.len(),
            2 * rank
        ));
    }
    let n = pads.len() / 2;
    let mut before = vec![0usize; rank];
    let mut after = vec![0usize; rank];
    for k in 0..n {
        let ax = rank - n + k;
        let (b, a) = (
            pads.get(2 * k).copied().unwrap_or(0),
            pads.get(2 * k + 1).copied().unwrap_or(0),
        );
        if let (Some(bb), Some(aa)) = (before.get_mut(ax), after.get_mut(ax)) {
            *bb = dim(b, "pad")?;
            *aa = dim(a, "pad")?;
        }
    }
    let out_shape: Vec<usize> = x
        .shape()
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&d, (&b, &a))| d.checked_add(b).and_then(|v| v.checked_add(a)))
        .collect::<Option<_>>()
        .ok_or("pad: output is too large")?;
    checked_count(&out_shape, "pad")?;
    match mode {
        "constant" => {
            let mut out = ArrayD::from_elem(IxDyn(&out_shape), constant);
            out.slice_each_axis_mut(|ax| {
                let i = ax.axis.index();
                let b = before.get(i).copied().unwrap_or(0);
                Slice::from(b..b + x.shape().get(i).copied().unwrap_or(0))
            })
            .assign(x);
            Ok(out)
        }
        "reflect" | "replicate" => {
            let mut cur = owned(x.view());
            for ax in 0..rank {
                let (b, a) = (before[ax], after[ax]);
                if b == 0 && a == 0 {
                    continue;
                }
                let d = cur.len_of(Axis(ax));
                if d == 0 {
                    return Err(format!("cannot {mode}-pad an empty axis {ax}"));
                }
                let mut shape = cur.shape().to_vec();
                shape[ax] = d + b + a;
                let mut next = ArrayD::<f32>::zeros(IxDyn(&shape));
                for p in 0..d + b + a {
                    let src = pad_source(mode, p, b, d).unwrap_or(0);
                    next.index_axis_mut(Axis(ax), p)
                        .assign(&cur.index_axis(Axis(ax), src));
                }
                cur = next;
            }
            Ok(cur)
        }
        other => Err(format!(
            "mode {other:?} is not one of constant, reflect, replicate"
        )),
    }
}

fn range_1d(start: &Value, end: &Value, step: &Value) -> Result<Value, String> {
    let scalar = |v: &Value, what: &str| -> Result<f64, String> {
        match v.to_f32s().map_err(|e| format!("{what}: {e}"))?.as_slice() {
            [x] => Ok(f64::from(*x)),
            _ => Err(format!("{what} must be a scalar")),
        }
    };
    if let (Value::I32(s), Value::I32(e), Value::I32(st)) = (start, end, step) {
        let one = |a: &ArrayD<i32>, what: &str| -> Result<i64, String> {
            match a.iter().collect::<Vec<_>>().as_slice() {
                [x] => Ok(i64::from(**x)),
                _ => Err(format!("{what} must be a scalar")),
            }
        };
        let (s, e, st) = (one(s, "start")?, one(e, "end")?, one(st, "step")?);
        if st == 0 {
            return Err("step must not be 0".into());
        }
        let n = ((e - s) as f64 / st as f64).ceil().max(0.0);
        let n = count(n)?;
        let v: Vec<i32> = (0..n as i64).map(|i| (s + i * st) as i32).collect();
        return ArrayD::from_shape_vec(IxDyn(&[n]), v)
            .map(Value::I32)
            .map_err(|e| e.to_string());
    }
    let (s, e, st) = (
        scalar(start, "start")?,
        scalar(end, "end")?,
        scalar(step, "step")?,
    );
    if st == 0.0 || !st.is_finite() || !s.is_finite() || !e.is_finite() {
        return Err(format!(
            "range_1d({s}, {e}, {st}): start, end and step must be finite and step non-zero"
        ));
    }
    let n = count(((e - s) / st).ceil().max(0.0))?;
    let v: Vec<f32> = (0..n).map(|i| (s + i as f64 * st) as f32).collect();
    ArrayD::from_shape_vec(IxDyn(&[n]), v)
        .map(Value::F32)
        .map_err(|e| e.to_string())
}

fn count(n: f64) -> Result<usize, String> {
    if n > super::shape::MAX_ELEMENTS as f64 {
        return Err(format!(
            "step: the range has {n} elements, more than the limit of {}",
            super::shape::MAX_ELEMENTS
        ));
    }
    Ok(n as usize)
}

/// A tensor of `shape` filled with `value`'s single element (its element type).
fn filled(shape: &[usize], value: &Value, what: &str) -> Result<Value, String> {
    checked_count(shape, what)?;
    let s = IxDyn(shape);
    let one = |n: usize| -> Result<(), String> {
        if n == 1 {
            Ok(())
        } else {
            Err(format!("value must be a scalar, has {n} elements"))
        }
    };
    Ok(match value {
        Value::F32(a) => {
            one(a.len())?;
            Value::F32(ArrayD::from_elem(
                s,
                a.iter().copied().next().unwrap_or(0.0),
            ))
        }
        Value::I32(a) => {
            one(a.len())?;
            Value::I32(ArrayD::from_elem(s, a.iter().copied().next().unwrap_or(0)))
        }
        Value::Bool(a) => {
            one(a.len())?;
            Value::Bool(ArrayD::from_elem(
                s,
                a.iter().copied().next().unwrap_or(false),
            ))
        }
        v => return Err(format!("value: expected a scalar, got {}", v.describe())),
    })
}

/// Convert a value to the element kind of a declared MIL type (fp → F32, int → I32, bool).
fn as_dtype(v: Value, dtype: Option<DataType>) -> Value {
    let to_f = |v: &Value| v.to_f32s().ok();
    match (dtype, &v) {
        (Some(d), Value::I32(_) | Value::Bool(_)) if d.is_float() => match to_f(&v) {
            Some(f) => ArrayD::from_shape_vec(IxDyn(v.shape()), f)
                .map(Value::F32)
                .unwrap_or(v),
            None => v,
        },
        (Some(DataType::Bool), Value::F32(a)) => Value::Bool(a.mapv(|x| x != 0.0)),
        (Some(DataType::Bool), Value::I32(a)) => Value::Bool(a.mapv(|x| x != 0)),
        (Some(d), Value::F32(a)) if !d.is_float() && d != DataType::Bool => {
            Value::I32(a.mapv(|x| x as i32))
        }
        (Some(d), Value::Bool(a)) if !d.is_float() && d != DataType::Bool => {
            Value::I32(a.mapv(i32::from))
        }
        _ => v,
    }
}

fn band_part<T: Elem + Default>(x: &Value, lower: i64, upper: i64) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let r = x.ndim();
    if r < 2 {
        return Err(format!("x must have rank >= 2, has {r}"));
    }
    let mut out = owned(x.view());
    let rows = x.shape().get(r - 2).copied().unwrap_or(1).max(1);
    for (i, mut row) in out.lanes_mut(Axis(r - 1)).into_iter().enumerate() {
        // Lanes come in row-major order of the other axes: the row index is i mod rows.
        let m = (i % rows) as i64;
        for (n, v) in row.iter_mut().enumerate() {
            let n = n as i64;
            let keep = (lower < 0 || m - n <= lower) && (upper < 0 || n - m <= upper);
            if !keep {
                *v = T::default();
            }
        }
    }
    Ok(T::wrap(out))
}

fn cumsum(x: &Value, axis: i64, exclusive: bool, reverse: bool) -> Result<Value, String> {
    fn run<T: Copy + Default + std::ops::Add<Output = T>>(
        x: &ArrayD<T>,
        axis: i64,
        exclusive: bool,
        reverse: bool,
    ) -> Result<ArrayD<T>, String> {
        let ax = norm_axis(axis, x.ndim(), "axis")?;
        let mut out = owned(x.view());
        for mut lane in out.lanes_mut(Axis(ax)) {
            let n = lane.len();
            let mut acc = T::default();
            for k in 0..n {
                let i = if reverse { n - 1 - k } else { k };
                let v = lane[i];
                if exclusive {
                    lane[i] = acc;
                    acc = acc + v;
                } else {
                    acc = acc + v;
                    lane[i] = acc;
                }
            }
        }
        Ok(out)
    }
    Ok(match x {
        Value::F32(a) => Value::F32(run(a, axis, exclusive, reverse)?),
        Value::I32(a) => {
            Value::I32(run(&a.mapv(Wrapping), axis, exclusive, reverse)?.mapv(|w| w.0))
        }
        v => {
            return Err(format!(
                "x: expected a numeric tensor, got {}",
                v.describe()
            ));
        }
    })
}

use std::num::Wrapping;

fn one_hot(
    indices: &[i64],
    ishape: &[usize],
    depth: i64,
    axis: i64,
    on: &Value,
    off: &Value,
) -> Result<Value, String> {
    let depth = dim(depth, "one_hot_vector_size")?;
    let r = ishape.len() as i64;
    let a = if axis < 0 { axis + r + 1 } else { axis };
    if !(0..=r).contains(&a) {
        return Err(format!(
            "axis {axis} is out of range for indices of rank {r}"
        ));
    }
    let a = a as usize;
    let mut shape = ishape.to_vec();
    shape.insert(a, depth);
    checked_count(&shape, "one_hot_vector_size")?;
    let outer: usize = ishape.get(..a).map_or(1, |s| s.iter().product());
    let inner: usize = ishape.get(a..).map_or(1, |s| s.iter().product());
    // Output position (o, d, i) is on when indices[o, i] == d.
    let hot = |o: usize, d: usize, i: usize| {
        indices
            .get(o * inner + i)
            .is_some_and(|&v| v >= 0 && v as usize == d)
    };
    macro_rules! build {
        ($on:expr, $off:expr, $variant:ident) => {{
            let mut v = Vec::with_capacity(outer * depth * inner);
            for o in 0..outer {
                for d in 0..depth {
                    for i in 0..inner {
                        v.push(if hot(o, d, i) { $on } else { $off });
                    }
                }
            }
            Value::$variant(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())?)
        }};
    }
    let scalar_f = |v: &Value, what: &str| -> Result<f32, String> {
        match v.to_f32s().map_err(|e| format!("{what}: {e}"))?.as_slice() {
            [x] => Ok(*x),
            _ => Err(format!("{what} must be a scalar")),
        }
    };
    Ok(match (on, off) {
        (Value::I32(_), Value::I32(_)) => {
            let (a, b) = (
                scalar_f(on, "on_value")? as i32,
                scalar_f(off, "off_value")? as i32,
            );
            build!(a, b, I32)
        }
        (Value::Bool(_), Value::Bool(_)) => {
            let (a, b) = (
                scalar_f(on, "on_value")? != 0.0,
                scalar_f(off, "off_value")? != 0.0,
            );
            build!(a, b, Bool)
        }
        _ => {
            let (a, b) = (scalar_f(on, "on_value")?, scalar_f(off, "off_value")?);
            build!(a, b, F32)
        }
    })
}

fn non_zero(x: &Value) -> Result<Value, String> {
    let shape = x.shape().to_vec();
    let flags: Vec<bool> = match x {
        Value::F32(a) => a.iter().map(|&v| v != 0.0).collect(),
        Value::I32(a) => a.iter().map(|&v| v != 0).collect(),
        Value::Bool(a) => a.iter().copied().collect(),
        v => return Err(format!("x: expected a tensor, got {}", v.describe())),
    };
    let r = shape.len();
    let n = flags.iter().filter(|&&f| f).count();
    let mut out = Vec::with_capacity(n * r);
    let mut idx = vec![0usize; r];
    for &f in &flags {
        if f {
            out.extend(idx.iter().map(|&i| i as i32));
        }
        // Advance the row-major multi-index.
        for k in (0..r).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[n, r]), out)
        .map(Value::I32)
        .map_err(|e| e.to_string())
}

/// Order of two elements for a stable sort (NaN after every number, as numpy sorts).
fn cmp_f32(a: f32, b: f32, ascending: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if ascending { o } else { o.reverse() }
        }
    }
}

/// Stable argsort of every lane along `ax` (numpy `argsort(x)` / `argsort(-x)`).
fn argsort_lanes(x: &Value, ax: usize, ascending: bool) -> Result<ArrayD<i32>, String> {
    let f: ArrayD<f32>;
    let (a, ints): (&ArrayD<f32>, Option<&ArrayD<i32>>) = match x {
        Value::F32(a) => (a, None),
        Value::I32(a) => {
            f = ArrayD::zeros(IxDyn(&[]));
            (&f, Some(a))
        }
        v => {
            return Err(format!(
                "x: expected a numeric tensor, got {}",
                v.describe()
            ));
        }
    };
    let shape = x.shape().to_vec();
    let mut out = ArrayD::<i32>::zeros(IxDyn(&shape));
    let n = *shape.get(ax).ok_or("axis out of range")?;
    if i32::try_from(n).is_err() {
        return Err(format!(
            "axis {ax} of size {n} is too long to index with int32"
        ));
    }
    let mut order: Vec<usize> = Vec::with_capacity(n);
    match ints {
        None => {
            for (lane, mut olane) in a.lanes(Axis(ax)).into_iter().zip(out.lanes_mut(Axis(ax))) {
                order.clear();
                order.extend(0..n);
                order.sort_by(|&i, &j| cmp_f32(lane[i], lane[j], ascending));
                for (o, &i) in olane.iter_mut().zip(&order) {
                    *o = i as i32;
                }
            }
        }
        Some(a) => {
            for (lane, mut olane) in a.lanes(Axis(ax)).into_iter().zip(out.lanes_mut(Axis(ax))) {
                order.clear();
                order.extend(0..n);
                if ascending {
                    order.sort_by_key(|&i| lane[i]);
                } else {
                    order.sort_by_key(|&i| std::cmp::Reverse(lane[i]));
                }
                for (o, &i) in olane.iter_mut().zip(&order) {
                    *o = i as i32;
                }
            }
        }
    }
    Ok(out)
}

fn take_along<T: Clone>(x: &ArrayD<T>, idx: &ArrayD<i32>, ax: usize) -> ArrayD<T> {
    // `idx` has x's shape with axis `ax` shortened to k <= its length.
    let k = idx.len_of(Axis(ax));
    let mut out = owned(x.slice_axis(Axis(ax), Slice::from(0..k)));
    Zip::from(out.lanes_mut(Axis(ax)))
        .and(x.lanes(Axis(ax)))
        .and(idx.lanes(Axis(ax)))
        .for_each(|mut o, xl, il| {
            for (ov, &i) in o.iter_mut().zip(il.iter()) {
                if let Some(v) = usize::try_from(i).ok().and_then(|i| xl.get(i)) {
                    *ov = v.clone();
                }
            }
        });
    out
}

fn topk(
    x: &Value,
    k: i64,
    axis: i64,
    ascending: bool,
    with_indices: bool,
) -> Result<Vec<Value>, String> {
    let ax = norm_axis(axis, x.shape().len(), "axis")?;
    let n = x.shape().get(ax).copied().unwrap_or(0);
    let k = if k == -1 { n } else { dim(k, "k")? };
    if k > n {
        return Err(format!("k = {k} exceeds the size {n} of axis {ax}"));
    }
    let order = argsort_lanes(x, ax, ascending)?;
    let idx = owned(order.slice_axis(Axis(ax), Slice::from(0..k)));
    let values = match x {
        Value::F32(a) => Value::F32(take_along(a, &idx, ax)),
        Value::I32(a) => Value::I32(take_along(a, &idx, ax)),
        v => {
            return Err(format!(
                "x: expected a numeric tensor, got {}",
                v.describe()
            ));
        }
    };
    let mut out = vec![values];
    if with_indices {
        out.push(Value::I32(idx));
    }
    Ok(out)
}

/// Intersection over union of two boxes in (center x, center y, width, height).
fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let (ax1, ax2) = (a[0] - 0.5 * a[2], a[0] + 0.5 * a[2]);
    let (ay1, ay2) = (a[1] - 0.5 * a[3], a[1] + 0.5 * a[3]);
    let (bx1, bx2) = (b[0] - 0.5 * b[2], b[0] + 0.5 * b[2]);
    let (by1, by2) = (b[1] - 0.5 * b[3], b[1] + 0.5 * b[3]);
    let iw = (ax2.min(bx2) - ax1.max(bx1)).max(0.0);
    let ih = (ay2.min(by2) - ay1.max(by1)).max(0.0);
    let inter = iw * ih;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Greedy NMS over `cands` (box indices in descending score order): TensorFlow's
/// `non_max_suppression` (keep scores above the threshold, drop IoU above the threshold).
fn greedy(cands: &[usize], boxes: &[[f32; 4]], iou_t: f32, max: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for &c in cands {
        if kept.len() >= max {
            break;
        }
        let Some(&bc) = boxes.get(c) else { continue };
        if kept
            .iter()
            .all(|&k| boxes.get(k).is_none_or(|&bk| iou(bk, bc) <= iou_t))
        {
            kept.push(c);
        }
    }
    kept
}

/// NMS of one batch: the kept box indices, in descending score order (Core ML's rules,
/// as coremltools' reference implementation states them).
fn nms_batch(
    boxes: &[[f32; 4]],
    scores: &[Vec<f32>],
    iou_t: f32,
    score_t: f32,
    max: usize,
    per_class: bool,
) -> Vec<usize> {
    let best: Vec<f32> = scores
        .iter()
        .map(|s| s.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect();
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&i, &j| cmp_f32(best[i], best[j], false));
    let above: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| best[i] > score_t)
        .collect();
    let mut ids = if per_class {
        let class = |i: usize| {
            scores[i]
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (c, &v)| {
                    if v > bv { (c, v) } else { (bi, bv) }
                })
                .0
        };
        let mut kept = Vec::new();
        let mut classes: Vec<usize> = above.iter().map(|&i| class(i)).collect();
        classes.dedup();
        let mut seen = std::collections::BTreeSet::new();
        for c in classes {
            if !seen.insert(c) {
                continue;
            }
            let cands: Vec<usize> = above.iter().copied().filter(|&i| class(i) == c).collect();
            kept.extend(greedy(&cands, boxes, iou_t, max));
        }
        // Back to overall descending score order.
        let rank: std::collections::HashMap<usize, usize> =
            order.iter().enumerate().map(|(r, &i)| (i, r)).collect();
        kept.sort_by_key(|i| rank.get(i).copied().unwrap_or(usize::MAX));
        kept
    } else {
        greedy(&above, boxes, iou_t, max)
    };
    if ids.is_empty()
        && let Some(&top) = order.first()
    {
        ids.push(top);
    }
    ids.truncate(max);
    ids
}

#[allow(clippy::too_many_arguments)]
fn nms(
    args: &Args<'_>,
    ios17: bool,
    iou_t: f32,
    score_t: f32,
    max: usize,
    per_class: bool,
) -> Result<Vec<Value>, String> {
    let b = args.f32("boxes")?;
    let s = args.f32("scores")?;
    // iOS15: boxes [n, B, 4], scores [n, B, K]; iOS17: boxes [n, 4, B], scores [n, K, B].
    let (b, s) = if ios17 {
        (
            owned(b.view().permuted_axes(IxDyn(&[0, 2, 1]))),
            owned(s.view().permuted_axes(IxDyn(&[0, 2, 1]))),
        )
    } else {
        (owned(b.view()), owned(s.view()))
    };
    let (n, nb, k) = match (b.shape(), s.shape()) {
        ([n, nb, 4], [n2, nb2, k]) if n == n2 && nb == nb2 => (*n, *nb, *k),
        _ => {
            return Err(format!(
                "boxes {:?} and scores {:?} do not have the NMS layout",
                args.f32("boxes")?.shape(),
                args.f32("scores")?.shape()
            ));
        }
    };
    checked_count(&[n, max, 4 + k.max(1)], "max_boxes")?;
    let bd = b.as_slice().ok_or("boxes are not contiguous")?;
    let sd = s.as_slice().ok_or("scores are not contiguous")?;
    let mut ob = ArrayD::<f32>::zeros(IxDyn(&[n, max, 4]));
    let mut os = ArrayD::<f32>::zeros(IxDyn(&[n, max, k]));
    let mut oi = ArrayD::<i32>::from_elem(IxDyn(&[n, max]), -1);
    let mut on = ArrayD::<i32>::zeros(IxDyn(&[n]));
    for bi in 0..n {
        let boxes: Vec<[f32; 4]> = (0..nb)
            .map(|i| {
                let o = (bi * nb + i) * 4;
                let g = |j: usize| bd.get(o + j).copied().unwrap_or(0.0);
                [g(0), g(1), g(2), g(3)]
            })
            .collect();
        let scores: Vec<Vec<f32>> = (0..nb)
            .map(|i| {
                let o = (bi * nb + i) * k;
                sd.get(o..o + k).map_or_else(Vec::new, <[f32]>::to_vec)
            })
            .collect();
        let ids = nms_batch(&boxes, &scores, iou_t, score_t, max, per_class);
        for (slot, &id) in ids.iter().enumerate() {
            if let Some(bx) = boxes.get(id) {
                for (j, &v) in bx.iter().enumerate() {
                    ob[[bi, slot, j].as_slice()] = v;
                }
            }
            if let Some(sc) = scores.get(id) {
                for (j, &v) in sc.iter().enumerate() {
                    os[[bi, slot, j].as_slice()] = v;
                }
            }
            oi[[bi, slot].as_slice()] = id as i32;
        }
        on[[bi].as_slice()] = ids.len() as i32;
    }
    if ios17 {
        Ok(vec![
            Value::F32(owned(ob.view().permuted_axes(IxDyn(&[0, 2, 1])))),
            Value::F32(owned(os.view().permuted_axes(IxDyn(&[0, 2, 1])))),
            Value::I32(oi),
        ])
    } else {
        Ok(vec![
            Value::F32(ob),
            Value::F32(os),
            Value::I32(oi),
            Value::I32(on),
        ])
    }
}

/// Sizes of the pieces of a `split`.
fn split_sizes(
    d: usize,
    outputs: usize,
    num_splits: Option<i64>,
    sizes: Option<&[i64]>,
) -> Result<Vec<usize>, String> {
    match (sizes, num_splits) {
        (Some(s), _) => s
            .iter()
            .map(|&v| dim(v, "split_sizes"))
            .collect::<Result<Vec<_>, _>>(),
        (None, Some(n)) => {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("num_splits must be positive, got {n}"))?;
            if !d.is_multiple_of(n) {
                return Err(format!("num_splits {n} does not divide dimension {d}"));
            }
            Ok(vec![d / n; n])
        }
        (None, None) => {
            if outputs == 0 || !d.is_multiple_of(outputs) {
                return Err("split needs num_splits or split_sizes".into());
            }
            Ok(vec![d / outputs; outputs])
        }
    }
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let op = OPS.iter().copied().find(|o| *o == ctx.op_type())?;
    Some(build_op(op, ctx))
}

fn bool_param(ctx: &OpCtx<'_>, name: &'static str) -> Result<IntsParam, String> {
    IntsParam::new(ctx, name)
}

fn build_op(op: &'static str, ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let opset = ctx.opset;
    Ok(match op {
        "concat" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let inter = bool_param(ctx, "interleave")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let values = args.all("values")?;
                let first = *values.first().ok_or("values is empty")?;
                let (a, il) = (axis.scalar_or(args, 0)?, inter.scalar_or(args, 0)? != 0);
                Ok(vec![with_elem!(first, T => concat::<T>(&values, a, il))?])
            })
        }
        "stack" => {
            let axis = IntsParam::new(ctx, "axis")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let values = args.all("values")?;
                let first = *values.first().ok_or("values is empty")?;
                let a = axis.scalar_or(args, 0)?;
                Ok(vec![with_elem!(first, T => stack::<T>(&values, a))?])
            })
        }
        "split" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let num = IntsParam::new(ctx, "num_splits")?;
            let sizes = IntsParam::new(ctx, "split_sizes")?;
            let outputs = ctx.outputs().len();
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let a = axis.scalar_or(args, 0)?;
                let ax = norm_axis(a, x.shape().len(), "axis")?;
                let d = x.shape().get(ax).copied().unwrap_or(0);
                let n = match num.get(args)? {
                    Some(v) => Some(*v.first().ok_or("num_splits is empty")?),
                    None => None,
                };
                let s = sizes.get(args)?;
                let sz = split_sizes(d, outputs, n, s.as_deref())?;
                if sz.len() != outputs {
                    return Err(format!(
                        "split makes {} pieces for {outputs} outputs",
                        sz.len()
                    ));
                }
                with_elem!(x, T => split::<T>(x, a, &sz))
            })
        }
        "tile" => {
            let reps = IntsParam::new(ctx, "reps")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let r = reps.req(args)?;
                Ok(vec![with_elem!(x, T => tile::<T>(x, &r))?])
            })
        }
        "pad" => {
            let pads = IntsParam::new(ctx, "pad")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let mode = args.str_or("mode", "constant")?;
                let c = args.f32_or("constant_val", 0.0)?;
                Ok(vec![Value::F32(pad(
                    args.f32("x")?,
                    &pads.req(args)?,
                    mode,
                    c,
                )?)])
            })
        }
        "range_1d" => kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            Ok(vec![range_1d(
                args.req("start")?,
                args.req("end")?,
                args.req("step")?,
            )?])
        }),
        "fill" => {
            let shape = IntsParam::new(ctx, "shape")?;
            let dtype = ctx.output_dtype(0);
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let s: Vec<usize> = shape
                    .req(args)?
                    .iter()
                    .map(|&d| dim(d, "shape"))
                    .collect::<Result<_, _>>()?;
                let zero = Value::F32(ArrayD::zeros(IxDyn(&[])));
                let v = args.get("value").unwrap_or(&zero);
                Ok(vec![as_dtype(filled(&s, v, "shape")?, dtype)])
            })
        }
        "fill_like" => {
            let dtype = ctx.output_dtype(0);
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let s = args.req("ref_tensor")?.shape().to_vec();
                let zero = Value::F32(ArrayD::zeros(IxDyn(&[])));
                let v = args.get("value").unwrap_or(&zero);
                Ok(vec![as_dtype(filled(&s, v, "ref_tensor")?, dtype)])
            })
        }
        "shape" => kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            let s: Vec<i32> = args
                .req("x")?
                .shape()
                .iter()
                .map(|&d| i32::try_from(d).map_err(|_| format!("dimension {d} exceeds int32")))
                .collect::<Result<_, _>>()?;
            let n = s.len();
            Ok(vec![Value::I32(
                ArrayD::from_shape_vec(IxDyn(&[n]), s).map_err(|e| e.to_string())?,
            )])
        }),
        "identity" => {
            kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| Ok(vec![args.req("x")?.clone()]))
        }
        "band_part" => {
            let lower = IntsParam::new(ctx, "lower")?;
            let upper = IntsParam::new(ctx, "upper")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let (l, u) = (lower.scalar_or(args, -1)?, upper.scalar_or(args, -1)?);
                Ok(vec![match x {
                    Value::F32(_) => band_part::<f32>(x, l, u)?,
                    Value::I32(_) => band_part::<i32>(x, l, u)?,
                    Value::Bool(_) => band_part::<bool>(x, l, u)?,
                    v => return Err(format!("x: expected a tensor, got {}", v.describe())),
                }])
            })
        }
        "cumsum" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let excl = bool_param(ctx, "exclusive")?;
            let rev = bool_param(ctx, "reverse")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                Ok(vec![cumsum(
                    args.req("x")?,
                    axis.scalar_or(args, 0)?,
                    excl.scalar_or(args, 0)? != 0,
                    rev.scalar_or(args, 0)? != 0,
                )?])
            })
        }
        "one_hot" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let depth = IntsParam::new(ctx, "one_hot_vector_size")?;
            let dtype = ctx.output_dtype(0);
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let ind = args.req("indices")?;
                let one = Value::I32(ArrayD::from_elem(IxDyn(&[]), 1));
                let zero = Value::I32(ArrayD::from_elem(IxDyn(&[]), 0));
                let on = args.get("on_value").unwrap_or(&one);
                let off = args.get("off_value").unwrap_or(&zero);
                let v = one_hot(
                    &ind.to_i64s().map_err(|e| format!("indices: {e}"))?,
                    ind.shape(),
                    depth.scalar_or(args, 0)?,
                    axis.scalar_or(args, -1)?,
                    on,
                    off,
                )?;
                Ok(vec![as_dtype(v, dtype)])
            })
        }
        "non_zero" => {
            kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| Ok(vec![non_zero(args.req("x")?)?]))
        }
        "argsort" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let asc = bool_param(ctx, "ascending")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let ax = norm_axis(axis.scalar_or(args, -1)?, x.shape().len(), "axis")?;
                Ok(vec![Value::I32(argsort_lanes(
                    x,
                    ax,
                    asc.scalar_or(args, 0)? != 0,
                )?)])
            })
        }
        "topk" => {
            let k = IntsParam::new(ctx, "k")?;
            let axis = IntsParam::new(ctx, "axis")?;
            let asc = bool_param(ctx, "ascending")?;
            let ret = bool_param(ctx, "return_indices")?;
            let outputs = ctx.outputs().len();
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let kk = k.scalar_or(args, 1)?;
                if kk == -1 && opset < Opset::Ios17 {
                    return Err("k = -1 needs iOS17".into());
                }
                let with_idx = opset < Opset::Ios16 || ret.scalar_or(args, 1)? != 0;
                let out = topk(
                    x,
                    kk,
                    axis.scalar_or(args, -1)?,
                    asc.scalar_or(args, 0)? != 0,
                    with_idx,
                )?;
                if out.len() != outputs {
                    return Err(format!(
                        "topk makes {} values for {outputs} outputs",
                        out.len()
                    ));
                }
                Ok(out)
            })
        }
        "non_maximum_suppression" => {
            let ios17 = opset >= Opset::Ios17;
            let iou = IntsParam::new(ctx, "max_boxes")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let max = dim(iou.scalar_or(args, 0)?, "max_boxes")?;
                let iou_t = args.f32_or("iou_threshold", 0.0)?;
                let score_t = if ios17 {
                    f32::NEG_INFINITY
                } else {
                    args.f32_or("score_threshold", f32::NEG_INFINITY)?
                };
                let per_class = args.bool_or("per_class_suppression", false)?;
                nms(args, ios17, iou_t, score_t, max, per_class)
            })
        }
        other => return Err(format!("{other} is not a tensor operation")),
    })
}
