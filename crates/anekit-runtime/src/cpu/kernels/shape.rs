//! Tensor transformations (coremltools `ops/defs/iOS15..iOS18/tensor_transformation.py`):
//! `reshape` (iOS15 and iOS17 meanings of `0`), `reshape_like`, `transpose`, `expand_dims`,
//! `squeeze`, `reverse`, `reverse_sequence`, `slice_by_index`, `slice_by_size`,
//! `slice_update`, `depth_to_space`, `space_to_depth`, `pixel_shuffle`, `pixel_unshuffle`,
//! `space_to_batch`, `batch_to_space`, `sliding_windows`, `flatten2d`.
//!
//! Also the helpers the other tensor families of this backend share: [`Elem`] (the element
//! types a data-movement op handles generically), [`with_elem!`](crate::cpu::kernels::shape)
//! dispatch, integer-parameter reading, python slice arithmetic and the element-count limit.

use std::borrow::Cow;

use anekit_mil::Opset;
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice};

use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "reshape",
    "reshape_like",
    "transpose",
    "expand_dims",
    "squeeze",
    "reverse",
    "reverse_sequence",
    "slice_by_index",
    "slice_by_size",
    "slice_update",
    "depth_to_space",
    "space_to_depth",
    "pixel_shuffle",
    "pixel_unshuffle",
    "space_to_batch",
    "batch_to_space",
    "sliding_windows",
    "flatten2d",
];

/// The most elements one tensor may have (the project-wide limit,
/// [`anekit_mil::types::MAX_ELEMENTS`]): a hostile shape gives an error naming the parameter
/// instead of an absurd allocation.
pub use anekit_mil::types::MAX_ELEMENTS;

/// The element count of `shape`, or an error naming `what` when it overflows or exceeds
/// [`MAX_ELEMENTS`].
pub fn checked_count(shape: &[usize], what: &str) -> Result<usize, String> {
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("{what}: shape {shape:?} has too many elements"))?;
    if n > MAX_ELEMENTS {
        return Err(format!(
            "{what}: shape {shape:?} has {n} elements, more than the limit of {MAX_ELEMENTS}"
        ));
    }
    Ok(n)
}

/// Element types that data-movement ops handle generically.
pub trait Elem: Clone + Send + Sync + 'static {
    /// The name used in messages.
    const NAME: &'static str;
    /// The tensor of this element type inside `v`, if it is one.
    fn of(v: &Value) -> Option<&ArrayD<Self>>;
    /// Wrap a tensor of this element type.
    fn wrap(a: ArrayD<Self>) -> Value;
}

impl Elem for f32 {
    const NAME: &'static str = "floating-point";
    fn of(v: &Value) -> Option<&ArrayD<Self>> {
        match v {
            Value::F32(a) => Some(a),
            _ => None,
        }
    }
    fn wrap(a: ArrayD<Self>) -> Value {
        Value::F32(a)
    }
}

impl Elem for i32 {
    const NAME: &'static str = "integer";
    fn of(v: &Value) -> Option<&ArrayD<Self>> {
        match v {
            Value::I32(a) => Some(a),
            _ => None,
        }
    }
    fn wrap(a: ArrayD<Self>) -> Value {
        Value::I32(a)
    }
}

impl Elem for bool {
    const NAME: &'static str = "bool";
    fn of(v: &Value) -> Option<&ArrayD<Self>> {
        match v {
            Value::Bool(a) => Some(a),
            _ => None,
        }
    }
    fn wrap(a: ArrayD<Self>) -> Value {
        Value::Bool(a)
    }
}

impl Elem for String {
    const NAME: &'static str = "string";
    fn of(v: &Value) -> Option<&ArrayD<Self>> {
        match v {
            Value::Str(a) => Some(a),
            _ => None,
        }
    }
    fn wrap(a: ArrayD<Self>) -> Value {
        Value::Str(a)
    }
}

/// The tensor of element type `T` inside `v`, or an error naming `what`.
pub fn tensor_of<'a, T: Elem>(v: &'a Value, what: &str) -> Result<&'a ArrayD<T>, String> {
    T::of(v).ok_or_else(|| {
        format!(
            "{what}: expected a {} tensor, got {}",
            T::NAME,
            v.describe()
        )
    })
}

/// Run a generic expression with `$T` bound to the element type of tensor value `$v`
/// (`f32`, `i32`, `bool` or `String`); other values give an error.
macro_rules! with_elem {
    ($v:expr, $T:ident => $e:expr) => {
        match $v {
            $crate::cpu::value::Value::F32(_) => {
                type $T = f32;
                $e
            }
            $crate::cpu::value::Value::I32(_) => {
                type $T = i32;
                $e
            }
            $crate::cpu::value::Value::Bool(_) => {
                type $T = bool;
                $e
            }
            $crate::cpu::value::Value::Str(_) => {
                type $T = String;
                $e
            }
            other => Err(format!("expected a tensor, got {}", other.describe())),
        }
    };
}
pub(crate) use with_elem;

/// A standard-layout (row-major, contiguous) copy of a view.
pub fn owned<T: Clone>(v: ArrayViewD<'_, T>) -> ArrayD<T> {
    if v.is_standard_layout() {
        return v.to_owned();
    }
    // Rows that are contiguous (slices along other axes, splits): copy them whole.
    let nd = v.ndim();
    if nd >= 2 && v.strides().last() == Some(&1) {
        let mut out = Vec::with_capacity(v.len());
        for lane in v.lanes(Axis(nd - 1)) {
            match lane.as_slice() {
                Some(s) => out.extend_from_slice(s),
                None => out.extend(lane.iter().cloned()),
            }
        }
        if let Ok(a) = ArrayD::from_shape_vec(v.raw_dim(), out) {
            return a;
        }
    }
    v.as_standard_layout().into_owned()
}

/// The elements of `a` in row-major order, as a (borrowed when possible) slice.
pub fn row_major<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// `a`'s elements in row-major order with a new shape of the same element count.
pub fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    let data = row_major(a).into_owned();
    let n = data.len();
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map_err(|_| format!("{n} elements do not fill shape {shape:?}"))
}

/// Normalise a possibly negative axis against `rank` (`-rank <= a < rank`).
pub fn norm_axis(a: i64, rank: usize, what: &str) -> Result<usize, String> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!(
            "{what} {a} is out of range for a tensor of rank {rank}"
        ))
    }
}

/// A dimension as usize, or an error naming `what` when it is negative.
pub fn dim(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} must not be negative, got {v}"))
}

/// An integer-vector parameter, read once at load when it is a constant, else per call.
#[derive(Debug, Clone)]
pub struct IntsParam {
    name: &'static str,
    konst: Option<Vec<i64>>,
}

impl IntsParam {
    /// Read `name` from the op (its constant value, if it has one).
    pub fn new(ctx: &OpCtx<'_>, name: &'static str) -> Result<Self, String> {
        let konst = match ctx.constant(name) {
            Some(v) => Some(v.to_i64s().map_err(|e| format!("{name}: {e}"))?),
            None => None,
        };
        Ok(Self { name, konst })
    }

    /// The values, or `None` when the op does not bind the parameter.
    pub fn get<'a>(&'a self, args: &Args<'_>) -> Result<Option<Cow<'a, [i64]>>, String> {
        if let Some(k) = &self.konst {
            return Ok(Some(Cow::Borrowed(k)));
        }
        match args.get(self.name) {
            None => Ok(None),
            Some(v) => Ok(Some(Cow::Owned(
                v.to_i64s().map_err(|e| format!("{}: {e}", self.name))?,
            ))),
        }
    }

    /// The values, or an error when the parameter is missing.
    pub fn req<'a>(&'a self, args: &Args<'_>) -> Result<Cow<'a, [i64]>, String> {
        self.get(args)?
            .ok_or_else(|| format!("parameter {:?} is missing", self.name))
    }

    /// A scalar parameter, or `default` when absent.
    pub fn scalar_or(&self, args: &Args<'_>, default: i64) -> Result<i64, String> {
        match self.get(args)? {
            None => Ok(default),
            Some(v) => match *v {
                [x] => Ok(x),
                _ => Err(format!(
                    "{}: expected one integer, got {}",
                    self.name,
                    v.len()
                )),
            },
        }
    }

    /// The load-time value, if the parameter is a constant.
    pub fn konst(&self) -> Option<&[i64]> {
        self.konst.as_deref()
    }
}

/// One axis of a numpy slice after `slice.indices(dim)`: first index, step, element count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisSlice {
    /// The first index taken.
    pub start: i64,
    /// The step (negative walks backwards).
    pub step: i64,
    /// How many elements are taken.
    pub len: usize,
}

impl AxisSlice {
    /// Python's `slice(begin, end, step).indices(dim)` and the resulting length.
    pub fn python(
        dim: usize,
        begin: Option<i64>,
        end: Option<i64>,
        step: i64,
    ) -> Result<Self, String> {
        if step == 0 {
            return Err("stride must not be 0".into());
        }
        let n = dim as i64;
        let (lower, upper) = if step > 0 { (0, n) } else { (-1, n - 1) };
        let fix = |v: i64| {
            let v = if v < 0 { v.saturating_add(n) } else { v };
            v.clamp(lower, upper)
        };
        let start = begin.map_or(if step < 0 { upper } else { lower }, fix);
        let stop = end.map_or(if step < 0 { lower } else { upper }, fix);
        let len = if step > 0 {
            if stop > start {
                (stop - start - 1) / step + 1
            } else {
                0
            }
        } else if start > stop {
            (start - stop - 1) / step.saturating_neg() + 1
        } else {
            0
        };
        Ok(Self {
            start,
            step,
            len: len as usize,
        })
    }

    /// The same selection as an ndarray [`Slice`].
    pub fn nd(self) -> Slice {
        if self.len == 0 {
            return Slice::new(0, Some(0), 1);
        }
        let last = self.start + (self.len as i64 - 1) * self.step;
        if self.step > 0 {
            Slice::new(
                self.start as isize,
                Some(last as isize + 1),
                self.step as isize,
            )
        } else {
            Slice::new(
                last as isize,
                Some(self.start as isize + 1),
                self.step as isize,
            )
        }
    }
}

/// The parameters of a `slice_by_index`/`slice_update` selection.
#[derive(Debug, Clone)]
struct SliceParams {
    begin: IntsParam,
    end: IntsParam,
    stride: IntsParam,
    begin_mask: IntsParam,
    end_mask: IntsParam,
    squeeze_mask: IntsParam,
}

impl SliceParams {
    fn new(ctx: &OpCtx<'_>) -> Result<Self, String> {
        Ok(Self {
            begin: IntsParam::new(ctx, "begin")?,
            end: IntsParam::new(ctx, "end")?,
            stride: IntsParam::new(ctx, "stride")?,
            begin_mask: IntsParam::new(ctx, "begin_mask")?,
            end_mask: IntsParam::new(ctx, "end_mask")?,
            squeeze_mask: IntsParam::new(ctx, "squeeze_mask")?,
        })
    }

    /// Per-axis selections and the axes to squeeze, for a tensor of `shape`.
    fn solve(
        &self,
        args: &Args<'_>,
        shape: &[usize],
    ) -> Result<(Vec<AxisSlice>, Vec<bool>), String> {
        let rank = shape.len();
        let begin = self.begin.req(args)?;
        let end = self.end.req(args)?;
        let check = |name: &str, v: &[i64]| {
            if v.len() == rank {
                Ok(())
            } else {
                Err(format!(
                    "{name} has {} entries for an input of rank {rank}",
                    v.len()
                ))
            }
        };
        check("begin", &begin)?;
        check("end", &end)?;
        let opt = |p: &IntsParam| -> Result<Option<Vec<i64>>, String> {
            let v = p.get(args)?.map(Cow::into_owned);
            if let Some(v) = &v {
                check(p.name, v)?;
            }
            Ok(v)
        };
        let stride = opt(&self.stride)?;
        let bm = opt(&self.begin_mask)?;
        let em = opt(&self.end_mask)?;
        let sm = opt(&self.squeeze_mask)?;
        let flag = |m: &Option<Vec<i64>>, i: usize| {
            m.as_ref().and_then(|m| m.get(i)).is_some_and(|&v| v != 0)
        };
        let mut axes = Vec::with_capacity(rank);
        let mut squeeze = Vec::with_capacity(rank);
        for (i, &d) in shape.iter().enumerate() {
            let mut step = stride.as_ref().and_then(|s| s.get(i)).copied().unwrap_or(1);
            let b = if flag(&bm, i) {
                None
            } else {
                begin.get(i).copied()
            };
            let mut e = if flag(&em, i) {
                None
            } else {
                end.get(i).copied()
            };
            let sq = flag(&sm, i);
            if sq {
                // coremltools: end ignored, a stride of INT32_MAX takes exactly one element.
                e = None;
                step = i64::from(i32::MAX);
            }
            let s = AxisSlice::python(d, b, e, step).map_err(|m| format!("axis {i}: {m}"))?;
            if sq && s.len != 1 {
                return Err(format!(
                    "squeeze_mask[{i}]: begin {:?} is out of range for dimension {d}",
                    begin.get(i)
                ));
            }
            axes.push(s);
            squeeze.push(sq);
        }
        Ok((axes, squeeze))
    }
}

fn slice_view<'a, T>(x: &'a ArrayD<T>, axes: &[AxisSlice]) -> ArrayViewD<'a, T> {
    x.slice_each_axis(|ax| {
        axes.get(ax.axis.index())
            .map_or(Slice::from(..), |s| s.nd())
    })
}

fn slice_by_index<T: Elem>(x: &Value, p: &SliceParams, args: &Args<'_>) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let (axes, squeeze) = p.solve(args, x.shape())?;
    let mut v = slice_view(x, &axes);
    for i in (0..squeeze.len()).rev() {
        if squeeze.get(i).copied().unwrap_or(false) {
            v = v.index_axis_move(Axis(i), 0);
        }
    }
    Ok(T::wrap(owned(v)))
}

fn slice_update<T: Elem>(
    x: &Value,
    update: &Value,
    p: &SliceParams,
    args: &Args<'_>,
) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let u = tensor_of::<T>(update, "update")?;
    let (axes, _) = p.solve(args, x.shape())?;
    let mut out = owned(x.view());
    {
        let mut view = out.slice_each_axis_mut(|ax| {
            axes.get(ax.axis.index())
                .map_or(Slice::from(..), |s| s.nd())
        });
        if view.len() != u.len() {
            return Err(format!(
                "update has shape {:?}; the slice has shape {:?}",
                u.shape(),
                view.shape()
            ));
        }
        if view.shape() == u.shape() {
            view.assign(u);
        } else {
            let shape = view.shape().to_vec();
            view.assign(&reshaped(u, &shape)?);
        }
    }
    Ok(T::wrap(out))
}

fn slice_by_size<T: Elem>(x: &Value, begin: &[i64], size: &[i64]) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let rank = x.ndim();
    if begin.len() != rank || size.len() != rank {
        return Err(format!(
            "begin and size need {rank} entries, got {} and {}",
            begin.len(),
            size.len()
        ));
    }
    let mut slices = Vec::with_capacity(rank);
    for (i, (&d, (&b, &s))) in x.shape().iter().zip(begin.iter().zip(size)).enumerate() {
        let n = d as i64;
        let b = if b < 0 { b + n } else { b };
        if !(0..=n).contains(&b) {
            return Err(format!("begin[{i}] is out of range for dimension {d}"));
        }
        let s = if s == -1 { n - b } else { s };
        if s < 0 || b + s > n {
            return Err(format!(
                "size[{i}] = {s} from begin {b} does not fit dimension {d}"
            ));
        }
        slices.push(Slice::new(b as isize, Some((b + s) as isize), 1));
    }
    let v = x.slice_each_axis(|ax| {
        slices
            .get(ax.axis.index())
            .copied()
            .unwrap_or(Slice::from(..))
    });
    Ok(T::wrap(owned(v)))
}

/// The output shape of `reshape` (coremltools `_infer_shape_static`).
pub fn reshape_target(opset: Opset, from: &[usize], to: &[i64]) -> Result<Vec<usize>, String> {
    let total = checked_count(from, "x")?;
    let mut to: Vec<i64> = to.to_vec();
    if to.contains(&0) {
        if opset >= Opset::Ios17 {
            // iOS17: each 0 takes the dimension of x aligned from the right, or 1.
            let (r, k) = (from.len(), to.len());
            for (i, t) in to.iter_mut().enumerate() {
                if *t == 0 {
                    *t = (i + r)
                        .checked_sub(k)
                        .and_then(|j| from.get(j))
                        .map_or(1, |&d| d as i64);
                }
            }
        } else {
            if to.len() != from.len() {
                return Err(format!(
                    "shape {to:?} contains 0, so it needs rank(x) = {} entries",
                    from.len()
                ));
            }
            for (t, &d) in to.iter_mut().zip(from) {
                if *t == 0 {
                    *t = d as i64;
                }
            }
        }
    }
    if to.iter().filter(|&&v| v == -1).count() > 1 {
        return Err(format!("shape {to:?} has more than one -1"));
    }
    if let Some(bad) = to.iter().find(|&&v| v < -1) {
        return Err(format!("shape entry {bad} is invalid"));
    }
    let known = to
        .iter()
        .filter(|&&v| v != -1)
        .try_fold(1u64, |acc, &v| acc.checked_mul(v as u64))
        .ok_or_else(|| format!("shape {to:?} is too large"))?;
    let out: Vec<usize> = to
        .iter()
        .map(|&v| {
            if v == -1 {
                if known == 0 || !(total as u64).is_multiple_of(known) {
                    Err(format!(
                        "cannot reshape {from:?} ({total} elements) to {to:?}"
                    ))
                } else {
                    Ok((total as u64 / known) as usize)
                }
            } else {
                usize::try_from(v).map_err(|_| format!("shape entry {v} is too large"))
            }
        })
        .collect::<Result<_, _>>()?;
    let n = out
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("shape {to:?} is too large"))?;
    if n != total {
        return Err(format!(
            "cannot reshape {from:?} ({total} elements) to {out:?} ({n} elements)"
        ));
    }
    Ok(out)
}

fn reshape_value(x: &Value, shape: &[usize]) -> Result<Value, String> {
    with_elem!(x, T => Ok(T::wrap(reshaped(tensor_of::<T>(x, "x")?, shape)?)))
}

/// Validate a permutation (negative entries allowed) for `rank` axes.
pub fn permutation(perm: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    if perm.len() != rank {
        return Err(format!(
            "perm has {} entries for an input of rank {rank}",
            perm.len()
        ));
    }
    let p: Vec<usize> = perm
        .iter()
        .map(|&a| norm_axis(a, rank, "perm entry"))
        .collect::<Result<_, _>>()?;
    let mut seen = vec![false; rank];
    for &a in &p {
        match seen.get_mut(a) {
            Some(s) if !*s => *s = true,
            _ => return Err(format!("perm {perm:?} is not a permutation")),
        }
    }
    Ok(p)
}

/// `x` with its axes permuted, in standard layout.
pub fn transpose_array<T: Clone>(x: &ArrayD<T>, perm: &[usize]) -> ArrayD<T> {
    let v = x.view().permuted_axes(IxDyn(perm));
    let rank = perm.len();
    let Some(src) = x.as_slice() else {
        return owned(v);
    };
    if rank < 2 || v.is_standard_layout() || src.is_empty() {
        return owned(v);
    }
    // Walk the output row by row; each row reads the input with the stride of the axis that
    // became the last one (1 when the last axis stays: attention layouts [0, 2, 1, 3]).
    let shape = v.shape().to_vec();
    let inner = shape[rank - 1];
    let strides: Vec<usize> = v.strides().iter().map(|&s| s.unsigned_abs()).collect();
    let step = strides[rank - 1].max(1);
    let rows: usize = shape[..rank - 1].iter().product();
    let mut out = Vec::with_capacity(rows * inner);
    let mut idx = vec![0usize; rank - 1];
    let mut off = 0usize;
    for _ in 0..rows {
        let Some(row) = src.get(off..) else {
            return owned(v);
        };
        if step == 1 {
            match row.get(..inner) {
                Some(r) => out.extend_from_slice(r),
                None => return owned(v),
            }
        } else {
            out.extend(row.iter().step_by(step).take(inner).cloned());
        }
        // Advance the row-major index over the leading axes, keeping the offset.
        for k in (0..rank - 1).rev() {
            idx[k] += 1;
            off += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).unwrap_or_else(|_| owned(v))
}

fn transpose<T: Elem>(x: &Value, perm: &[i64]) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let p = permutation(perm, x.ndim())?;
    Ok(T::wrap(transpose_array(x, &p)))
}

/// `expand_dims` output shape.
fn expand_shape(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>, String> {
    let out_rank = shape.len() + axes.len();
    let mut pos: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, out_rank, "axis"))
        .collect::<Result<_, _>>()?;
    pos.sort_unstable();
    if pos.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("axes {axes:?} repeat an axis"));
    }
    let mut out = shape.to_vec();
    for p in pos {
        out.insert(p.min(out.len()), 1);
    }
    Ok(out)
}

/// `squeeze` output shape (PyTorch semantics: listed axes whose size is not 1 stay).
fn squeeze_shape(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, String> {
    match axes {
        None => Ok(shape.iter().copied().filter(|&d| d != 1).collect()),
        Some(axes) => {
            let rank = shape.len();
            let mut drop = vec![false; rank];
            for &a in axes {
                let i = norm_axis(a, rank, "axis")?;
                if let (Some(d), Some(f)) = (shape.get(i), drop.get_mut(i)) {
                    *f = *d == 1;
                }
            }
            Ok(shape
                .iter()
                .zip(&drop)
                .filter(|(_, d)| !**d)
                .map(|(&s, _)| s)
                .collect())
        }
    }
}

fn reverse<T: Elem>(x: &Value, axes: Option<&[i64]>) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let rank = x.ndim();
    let mut flip = vec![false; rank];
    match axes {
        None => flip.iter_mut().for_each(|f| *f = true),
        Some(axes) => {
            // coremltools flips once per listed axis: an axis listed twice is restored.
            for &a in axes {
                let i = norm_axis(a, rank, "axis")?;
                if let Some(f) = flip.get_mut(i) {
                    *f = !*f;
                }
            }
        }
    }
    let mut v = x.view();
    for (i, &f) in flip.iter().enumerate() {
        if f {
            v.invert_axis(Axis(i));
        }
    }
    Ok(T::wrap(owned(v)))
}

fn reverse_sequence<T: Elem>(
    x: &Value,
    lengths: &[i64],
    seq_axis: i64,
    batch_axis: i64,
) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let rank = x.ndim();
    let s = norm_axis(seq_axis, rank, "seq_axis")?;
    let b = norm_axis(batch_axis, rank, "batch_axis")?;
    if s == b {
        return Err(format!("seq_axis and batch_axis are both axis {s}"));
    }
    let nb = x.len_of(Axis(b));
    let ns = x.len_of(Axis(s));
    if lengths.len() != nb {
        return Err(format!(
            "lengths has {} entries for batch dimension {nb}",
            lengths.len()
        ));
    }
    let mut out = owned(x.view());
    // The sequence axis inside one batch slice.
    let s_in = if s > b { s - 1 } else { s };
    for (i, &l) in lengths.iter().enumerate() {
        let l = usize::try_from(l)
            .ok()
            .filter(|&l| l <= ns)
            .ok_or_else(|| format!("lengths[{i}] = {l} is outside [0, {ns}]"))?;
        let src = x.index_axis(Axis(b), i);
        let mut src = src.slice_axis(Axis(s_in), Slice::from(0..l));
        src.invert_axis(Axis(s_in));
        out.index_axis_mut(Axis(b), i)
            .slice_axis_mut(Axis(s_in), Slice::from(0..l))
            .assign(&src);
    }
    Ok(T::wrap(out))
}

/// `x` (row-major) viewed as `shape`, permuted by `perm`, and copied into `out_shape`.
fn regroup<T: Clone>(
    x: &ArrayD<T>,
    shape: &[usize],
    perm: &[usize],
    out_shape: &[usize],
) -> Result<ArrayD<T>, String> {
    let v = reshaped(x, shape)?;
    let t = transpose_array(&v, perm);
    reshaped(&t, out_shape)
}

fn nchw(x: &ArrayD<f32>, op: &str) -> Result<[usize; 4], String> {
    match *x.shape() {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!(
            "{op} needs a rank-4 input, got shape {:?}",
            x.shape()
        )),
    }
}

fn block(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&b| b >= 1)
        .ok_or_else(|| format!("{what} must be positive, got {v}"))
}

/// `depth_to_space` (DCR order, as TensorFlow), `space_to_depth`, `pixel_shuffle`
/// (CRD order, as PyTorch), `pixel_unshuffle`.
fn depth_space(op: &str, x: &ArrayD<f32>, bs: usize) -> Result<ArrayD<f32>, String> {
    let [n, c, h, w] = nchw(x, op)?;
    let mul = |a: usize, b: usize| {
        a.checked_mul(b)
            .ok_or_else(|| format!("{a} x {b} overflows (block size {bs}, x {:?})", x.shape()))
    };
    let bb = mul(bs, bs)?;
    match op {
        "depth_to_space" | "pixel_shuffle" => {
            if !c.is_multiple_of(bb) {
                return Err(format!(
                    "channels {c} are not divisible by block_size^2 = {bb}"
                ));
            }
            let co = c / bb;
            let out = [n, co, mul(h, bs)?, mul(w, bs)?];
            if op == "depth_to_space" {
                regroup(x, &[n, bs, bs, co, h, w], &[0, 3, 4, 1, 5, 2], &out)
            } else {
                regroup(x, &[n, co, bs, bs, h, w], &[0, 1, 4, 2, 5, 3], &out)
            }
        }
        _ => {
            if !h.is_multiple_of(bs) || !w.is_multiple_of(bs) {
                return Err(format!(
                    "spatial size {h}x{w} is not divisible by the block size {bs}"
                ));
            }
            let (ho, wo) = (h / bs, w / bs);
            let out = [n, mul(c, bb)?, ho, wo];
            if op == "space_to_depth" {
                regroup(x, &[n, c, ho, bs, wo, bs], &[0, 3, 5, 1, 2, 4], &out)
            } else {
                regroup(x, &[n, c, ho, bs, wo, bs], &[0, 1, 3, 5, 2, 4], &out)
            }
        }
    }
}

fn pair_block(v: &[i64], what: &str) -> Result<[usize; 2], String> {
    match *v {
        [a, b] => Ok([block(a, what)?, block(b, what)?]),
        _ => Err(format!("{what} must have 2 entries, got {}", v.len())),
    }
}

fn pads2(v: &[i64], what: &str) -> Result<[usize; 4], String> {
    match *v {
        [a, b, c, d] => Ok([dim(a, what)?, dim(b, what)?, dim(c, what)?, dim(d, what)?]),
        _ => Err(format!(
            "{what} must have shape [2, 2], got {} values",
            v.len()
        )),
    }
}

fn space_to_batch(
    x: &ArrayD<f32>,
    bs: [usize; 2],
    pads: [usize; 4],
) -> Result<ArrayD<f32>, String> {
    let [n, c, h, w] = nchw(x, "space_to_batch")?;
    let hp = h + pads[0] + pads[1];
    let wp = w + pads[2] + pads[3];
    if !hp.is_multiple_of(bs[0]) || !wp.is_multiple_of(bs[1]) {
        return Err(format!(
            "padded spatial size {hp}x{wp} is not divisible by block_shape {bs:?}"
        ));
    }
    checked_count(&[n, c, hp, wp], "paddings")?;
    let mut padded = ArrayD::<f32>::zeros(IxDyn(&[n, c, hp, wp]));
    padded
        .slice_each_axis_mut(|ax| match ax.axis.index() {
            2 => Slice::from(pads[0]..pads[0] + h),
            3 => Slice::from(pads[2]..pads[2] + w),
            _ => Slice::from(..),
        })
        .assign(x);
    let (ho, wo) = (hp / bs[0], wp / bs[1]);
    regroup(
        &padded,
        &[n, c, ho, bs[0], wo, bs[1]],
        &[3, 5, 0, 1, 2, 4],
        &[bs[0] * bs[1] * n, c, ho, wo],
    )
}

fn batch_to_space(
    x: &ArrayD<f32>,
    bs: [usize; 2],
    crops: [usize; 4],
) -> Result<ArrayD<f32>, String> {
    let [nb, c, h, w] = nchw(x, "batch_to_space")?;
    let mul = |a: usize, b: usize| {
        a.checked_mul(b).ok_or_else(|| {
            format!(
                "{a} x {b} overflows (block_shape {bs:?}, x {:?})",
                x.shape()
            )
        })
    };
    let bb = mul(bs[0], bs[1])?;
    if !nb.is_multiple_of(bb) {
        return Err(format!(
            "batch {nb} is not divisible by the product of block_shape {bs:?}"
        ));
    }
    let n = nb / bb;
    let (hf, wf) = (mul(h, bs[0])?, mul(w, bs[1])?);
    if crops[0] + crops[1] > hf || crops[2] + crops[3] > wf {
        return Err(format!("crops {crops:?} exceed the spatial size {hf}x{wf}"));
    }
    let full = regroup(
        x,
        &[bs[0], bs[1], n, c, h, w],
        &[2, 3, 4, 0, 5, 1],
        &[n, c, hf, wf],
    )?;
    let v = full.slice_each_axis(|ax| match ax.axis.index() {
        2 => Slice::from(crops[0]..hf - crops[1]),
        3 => Slice::from(crops[2]..wf - crops[3]),
        _ => Slice::from(..),
    });
    Ok(owned(v))
}

fn sliding_windows<T: Elem>(x: &Value, axis: i64, size: i64, stride: i64) -> Result<Value, String> {
    let x = tensor_of::<T>(x, "x")?;
    let a = norm_axis(axis, x.ndim(), "axis")?;
    let size = block(size, "size")?;
    let stride = block(stride, "stride")?;
    let d = x.len_of(Axis(a));
    if size > d {
        return Err(format!("size {size} exceeds dimension {d} of axis {a}"));
    }
    let nw = (d - size) / stride + 1;
    let mut shape = x.shape().to_vec();
    if let Some(s) = shape.get_mut(a) {
        *s = nw;
    }
    shape.insert(a + 1, size);
    checked_count(&shape, "size")?;
    let windows: Vec<ArrayViewD<'_, T>> = (0..nw)
        .map(|k| x.slice_axis(Axis(a), Slice::from(k * stride..k * stride + size)))
        .collect();
    let out = ndarray::stack(Axis(a), &windows).map_err(|e| e.to_string())?;
    Ok(T::wrap(out))
}

fn flatten2d_shape(shape: &[usize], axis: i64) -> Result<[usize; 2], String> {
    let r = shape.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&a) {
        return Err(format!("axis {axis} is out of range for rank {r}"));
    }
    let (pre, post) = shape.split_at(a as usize);
    Ok([pre.iter().product(), post.iter().product()])
}

/// The shape `reshape_like` builds from its reference tensors.
fn reshape_like_shape(args: &Args<'_>) -> Result<Vec<usize>, String> {
    let refs = args.all("ref_tensors")?;
    let begins = args.all("begins")?;
    let ends = args.all("ends")?;
    let masks = args.all("end_masks")?;
    if begins.len() != refs.len() || ends.len() != refs.len() || masks.len() != refs.len() {
        return Err(format!(
            "ref_tensors, begins, ends and end_masks have {}, {}, {} and {} entries",
            refs.len(),
            begins.len(),
            ends.len(),
            masks.len()
        ));
    }
    let scalar = |v: &Value, what: &str| -> Result<i64, String> {
        match v.to_i64s().map_err(|e| format!("{what}: {e}"))?.as_slice() {
            [x] => Ok(*x),
            _ => Err(format!("{what} entries must be scalars")),
        }
    };
    let mut out = Vec::new();
    for (((r, b), e), m) in refs.iter().zip(&begins).zip(&ends).zip(&masks) {
        let shape = r.shape();
        let n = shape.len() as i64;
        let clampi = |v: i64| -> usize {
            let v = if v < 0 { v + n } else { v };
            v.clamp(0, n) as usize
        };
        let b = clampi(scalar(b, "begins")?);
        let e = if scalar(m, "end_masks")? != 0 {
            shape.len()
        } else {
            clampi(scalar(e, "ends")?)
        };
        if let Some(s) = shape.get(b..e.max(b)) {
            out.extend_from_slice(s);
        }
    }
    Ok(out)
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let op = OPS.iter().copied().find(|o| *o == ctx.op_type())?;
    Some(build_op(op, ctx))
}

fn build_op(op: &'static str, ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let opset = ctx.opset;
    Ok(match op {
        "reshape" => {
            let shape = IntsParam::new(ctx, "shape")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let target = reshape_target(opset, x.shape(), &shape.req(args)?)?;
                Ok(vec![reshape_value(x, &target)?])
            })
        }
        "reshape_like" => kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            let x = args.req("x")?;
            let target = reshape_like_shape(args)?;
            if checked_count(&target, "ref_tensors")? != checked_count(x.shape(), "x")? {
                return Err(format!("cannot reshape {:?} to {target:?}", x.shape()));
            }
            Ok(vec![reshape_value(x, &target)?])
        }),
        "flatten2d" => {
            let axis = IntsParam::new(ctx, "axis")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let s = flatten2d_shape(x.shape(), axis.scalar_or(args, 1)?)?;
                Ok(vec![reshape_value(x, &s)?])
            })
        }
        "transpose" => {
            let perm = IntsParam::new(ctx, "perm")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let p = perm.req(args)?;
                Ok(vec![with_elem!(x, T => transpose::<T>(x, &p))?])
            })
        }
        "expand_dims" => {
            let axes = IntsParam::new(ctx, "axes")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let s = expand_shape(x.shape(), &axes.req(args)?)?;
                Ok(vec![reshape_value(x, &s)?])
            })
        }
        "squeeze" => {
            let axes = IntsParam::new(ctx, "axes")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let a = axes.get(args)?;
                let s = squeeze_shape(x.shape(), a.as_deref())?;
                Ok(vec![reshape_value(x, &s)?])
            })
        }
        "reverse" => {
            let axes = IntsParam::new(ctx, "axes")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let a = axes.get(args)?;
                Ok(vec![with_elem!(x, T => reverse::<T>(x, a.as_deref()))?])
            })
        }
        "reverse_sequence" => {
            let seq = IntsParam::new(ctx, "seq_axis")?;
            let batch = IntsParam::new(ctx, "batch_axis")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let lengths = args.i64s("lengths")?;
                let (s, b) = (seq.scalar_or(args, 0)?, batch.scalar_or(args, 0)?);
                Ok(vec![
                    with_elem!(x, T => reverse_sequence::<T>(x, &lengths, s, b))?,
                ])
            })
        }
        "slice_by_index" => {
            let p = SliceParams::new(ctx)?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                Ok(vec![with_elem!(x, T => slice_by_index::<T>(x, &p, args))?])
            })
        }
        "slice_update" => {
            let p = SliceParams::new(ctx)?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let u = args.req("update")?;
                Ok(vec![with_elem!(x, T => slice_update::<T>(x, u, &p, args))?])
            })
        }
        "slice_by_size" => {
            let begin = IntsParam::new(ctx, "begin")?;
            let size = IntsParam::new(ctx, "size")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let (b, s) = (begin.req(args)?, size.req(args)?);
                Ok(vec![with_elem!(x, T => slice_by_size::<T>(x, &b, &s))?])
            })
        }
        "depth_to_space" | "space_to_depth" | "pixel_shuffle" | "pixel_unshuffle" => {
            let pname = match op {
                "pixel_shuffle" => "upscale_factor",
                "pixel_unshuffle" => "downscale_factor",
                _ => "block_size",
            };
            let bs = IntsParam::new(ctx, pname)?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let b = block(bs.scalar_or(args, 0)?, pname)?;
                Ok(vec![Value::F32(depth_space(op, args.f32("x")?, b)?)])
            })
        }
        "space_to_batch" | "batch_to_space" => {
            let bs = IntsParam::new(ctx, "block_shape")?;
            let pname = if op == "space_to_batch" {
                "paddings"
            } else {
                "crops"
            };
            let pads = IntsParam::new(ctx, pname)?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let b = pair_block(&bs.req(args)?, "block_shape")?;
                let p = pads2(&pads.req(args)?, pname)?;
                let x = args.f32("x")?;
                Ok(vec![Value::F32(if op == "space_to_batch" {
                    space_to_batch(x, b, p)?
                } else {
                    batch_to_space(x, b, p)?
                })])
            })
        }
        "sliding_windows" => {
            let axis = IntsParam::new(ctx, "axis")?;
            let size = IntsParam::new(ctx, "size")?;
            let stride = IntsParam::new(ctx, "stride")?;
            kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
                let x = args.req("x")?;
                let (a, s, st) = (
                    axis.scalar_or(args, 0)?,
                    size.scalar_or(args, 0)?,
                    stride.scalar_or(args, 1)?,
                );
                Ok(vec![with_elem!(x, T => sliding_windows::<T>(x, a, s, st))?])
            })
        }
        other => return Err(format!("{other} is not a tensor transformation")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_slices() {
        // x[1:8:3] on 10 → 1, 4, 7
        let s = AxisSlice::python(10, Some(1), Some(8), 3).ok();
        assert_eq!(s.map(|s| (s.start, s.len)), Some((1, 3)));
        // x[::-1] on 5 → 4..0
        let s = AxisSlice::python(5, None, None, -1).ok();
        assert_eq!(s.map(|s| (s.start, s.len)), Some((4, 5)));
        // x[-1:-6:-2] on 5 → 4, 2, 0
        let s = AxisSlice::python(5, Some(-1), Some(-6), -2).ok();
        assert_eq!(s.map(|s| (s.start, s.len)), Some((4, 3)));
        // out of range clamps: x[7:100] on 5 → empty
        let s = AxisSlice::python(5, Some(7), Some(100), 1).ok();
        assert_eq!(s.map(|s| s.len), Some(0));
        assert!(AxisSlice::python(5, None, None, 0).is_err());
    }

    #[test]
    fn reshape_zeros_and_minus_one() {
        let r = reshape_target(Opset::Ios15, &[4, 3, 2], &[0, -1]);
        assert!(r.is_err(), "iOS15: 0 needs len(shape) == rank");
        assert_eq!(
            reshape_target(Opset::Ios15, &[4, 3, 2], &[0, -1, 1]).ok(),
            Some(vec![4, 6, 1])
        );
        assert_eq!(
            reshape_target(Opset::Ios17, &[2, 50], &[1, 0, -1, 0]).ok(),
            Some(vec![1, 1, 2, 50])
        );
        assert!(reshape_target(Opset::Ios17, &[2, 50], &[-1, -1]).is_err());
        assert!(reshape_target(Opset::Ios17, &[2, 50], &[3, -1]).is_err());
    }

    #[test]
    fn element_limit() {
        assert!(checked_count(&[1 << 20, 1 << 12], "shape").is_err());
        assert!(checked_count(&[usize::MAX, 3], "shape").is_err());
        assert_eq!(checked_count(&[2, 3], "shape").ok(), Some(6));
    }
}
