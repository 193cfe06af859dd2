//! Elementwise fusion: the portable "declutter" of the CPU plan.
//!
//! Kept apart from kernel selection, as tract keeps its `declutter` rewrites apart from
//! `codegen` (tract `core/src/optim/mod.rs`): kernels are chosen per op first
//! ([`super::kernels::build`]); this pass then rewrites the list of steps without knowing
//! how any kernel works.
//!
//! 1. At compile time every op that is a pure elementwise function of one tensor gets a
//!    [`Desc`]: activations (`relu`, `relu6`, `clip`, `threshold`, `sigmoid`, `silu`,
//!    `tanh`, `gelu` in its three modes, `leaky_relu`, `linear_activation`), `batch_norm`
//!    with constant statistics (a per-channel `x·s + t`), and the binary arithmetic ops
//!    (`add`, `sub`, `mul`, `real_div`, `maximum`, `minimum`) on floats.
//! 2. [`fuse`] walks the steps. A described step whose input is produced by an earlier step
//!    and read by nobody else (and is not a block output) is appended to that producer's
//!    [`Step::epilogue`]: the producer's output buffer is transformed in place, in
//!    cache-sized chunks, and the consumer step disappears. Chains fuse transitively
//!    (`conv → add → relu` is one step `conv+add+relu`). A described step whose input dies
//!    at it but whose producer cannot take it (a function input, a value read twice before)
//!    runs in place on that input's buffer ([`Step::inplace`]) instead of allocating.
//!    The second operand of a fused binary op stays a parameter of the fused step, so slot
//!    lifetimes stay right.
//! 3. The executor applies the epilogue right after the producer's kernel
//!    ([`apply_epilogue`]); convolutions and `linear` apply it inside the kernel, per
//!    output block while it is still in cache ([`Epilogue`]).
//!
//! Every rewrite computes the same f32 operations in the same order as the unfused plan, so
//! outputs are bit-identical; it is off under fp16 precision emulation, which rounds and
//! checks every op's own output. `ANEKIT_PROFILE=1` shows fused steps as `conv+add+relu`.

use std::sync::Arc;

use ndarray::ArrayD;
use rayon::prelude::*;

use super::kernels::activation::{gelu_exact, gelu_tanh, sigmoid};
use super::kernels::elementwise::binary_values;
use super::kernels::simd;
use super::plan::{Src, Step};
use super::value::Value;

/// A one-input elementwise function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    /// `max(x, 0)` (NaN stays NaN).
    Relu,
    /// `clamp(x, 0, 6)`.
    Relu6,
    /// `min(max(x, lo), hi)` (MIL `clip`, `threshold`).
    Clip(f32, f32),
    /// The logistic function.
    Sigmoid,
    /// `x·sigmoid(x)`.
    Silu,
    /// `tanh`.
    Tanh,
    /// GELU, exact.
    GeluExact,
    /// GELU, tanh approximation.
    GeluTanh,
    /// GELU, sigmoid approximation `x·sigmoid(1.702x)`.
    GeluSigmoid,
    /// `x` if `x ≥ 0` else `αx`.
    LeakyRelu(f32),
    /// `αx + β`.
    Affine(f32, f32),
}

impl Unary {
    /// The op's name in the fused step's type.
    pub fn name(&self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::Relu6 => "relu6",
            Unary::Clip(..) => "clip",
            Unary::Sigmoid => "sigmoid",
            Unary::Silu => "silu",
            Unary::Tanh => "tanh",
            Unary::GeluExact | Unary::GeluTanh | Unary::GeluSigmoid => "gelu",
            Unary::LeakyRelu(_) => "leaky_relu",
            Unary::Affine(..) => "affine",
        }
    }

    /// Apply to every element of `x`, vectorised.
    pub fn apply(self, x: &mut [f32]) {
        macro_rules! each {
            ($f:expr) => {{
                let f = $f;
                simd::vectorize(
                    #[inline(always)]
                    || {
                        for v in x.iter_mut() {
                            *v = f(*v);
                        }
                    },
                )
            }};
        }
        match self {
            Unary::Relu => each!(|v: f32| if v > 0.0 || v.is_nan() { v } else { 0.0 }),
            Unary::Relu6 => each!(|v: f32| v.clamp(0.0, 6.0)),
            Unary::Clip(lo, hi) => each!(move |v: f32| v.max(lo).min(hi)),
            Unary::Sigmoid => each!(sigmoid),
            Unary::Silu => each!(|v: f32| v * sigmoid(v)),
            // libm's, as the unfused `tanh` kernel
            Unary::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            Unary::GeluExact => each!(gelu_exact),
            Unary::GeluTanh => each!(gelu_tanh),
            Unary::GeluSigmoid => each!(|v: f32| v * sigmoid(1.702 * v)),
            Unary::LeakyRelu(a) => each!(move |v: f32| if v >= 0.0 { v } else { a * v }),
            Unary::Affine(a, b) => each!(move |v: f32| a * v + b),
        }
    }
}

/// A binary arithmetic op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `x + y`.
    Add,
    /// `x − y`.
    Sub,
    /// `x · y`.
    Mul,
    /// `x / y`.
    Div,
    /// `max(x, y)`.
    Max,
    /// `min(x, y)`.
    Min,
}

impl Bin {
    fn mil(self) -> &'static str {
        match self {
            Bin::Add => "add",
            Bin::Sub => "sub",
            Bin::Mul => "mul",
            Bin::Div => "real_div",
            Bin::Max => "maximum",
            Bin::Min => "minimum",
        }
    }

    #[inline(always)]
    fn f(self, x: f32, y: f32) -> f32 {
        match self {
            Bin::Add => x + y,
            Bin::Sub => x - y,
            Bin::Mul => x * y,
            Bin::Div => x / y,
            Bin::Max => x.max(y),
            Bin::Min => x.min(y),
        }
    }
}

/// What an elementwise op computes, as far as fusion needs to know.
#[derive(Debug, Clone)]
pub enum Desc {
    /// `f(x)`.
    Unary(Unary),
    /// Per-channel `x·scale[c] + shift[c]` over `[N, C, ...]` (a `batch_norm` with constant
    /// statistics).
    Channel {
        /// Per-channel factor.
        scale: Arc<[f32]>,
        /// Per-channel offset.
        shift: Arc<[f32]>,
    },
    /// `x ∘ y` with parameters `x` and `y`.
    Binary(Bin),
}

/// One fused elementwise op in a step's epilogue.
#[derive(Debug, Clone)]
pub enum EwOp {
    /// `f(v)`.
    Unary(Unary),
    /// Per-channel affine over axis 1.
    Channel {
        /// Per-channel factor.
        scale: Arc<[f32]>,
        /// Per-channel offset.
        shift: Arc<[f32]>,
    },
    /// `v ∘ other` (`other ∘ v` when `!v_first`); `other` is a parameter of the step.
    Binary {
        /// The op.
        op: Bin,
        /// The parameter holding the other operand.
        param: String,
        /// Whether the chain value is the left operand.
        v_first: bool,
    },
}

impl EwOp {
    fn name(&self) -> &'static str {
        match self {
            EwOp::Unary(u) => u.name(),
            EwOp::Channel { .. } => "batch_norm",
            EwOp::Binary { op, .. } => op.mil(),
        }
    }
}

/// Whether the step's op reads `slot` through any parameter.
fn reads(step: &Step, slot: usize) -> usize {
    step.params
        .iter()
        .flat_map(|(_, s)| s)
        .filter(|s| **s == Src::Slot(slot))
        .count()
}

fn param_src(step: &Step, name: &str) -> Option<Src> {
    step.params
        .iter()
        .find(|(p, _)| p == name)
        .and_then(|(_, s)| match s.as_slice() {
            [s] => Some(*s),
            _ => None,
        })
}

/// Fuse elementwise steps into their producers (see the module docs). `outputs` are the
/// block's outputs (never fused away: their slot must be written by name).
pub fn fuse(steps: &mut Vec<Step>, outputs: &[Src]) -> usize {
    use std::collections::HashMap;
    let mut uses: HashMap<usize, usize> = HashMap::new();
    for s in steps.iter() {
        for src in s.params.iter().flat_map(|(_, v)| v) {
            if let Src::Slot(i) = src {
                *uses.entry(*i).or_default() += 1;
            }
        }
    }
    for o in outputs {
        if let Src::Slot(i) = o {
            *uses.entry(*i).or_default() += 1;
        }
    }
    // slot → index of the step writing it
    let mut producer: HashMap<usize, usize> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        for &(slot, _) in &s.outputs {
            producer.insert(slot, i);
        }
    }
    let mut removed = vec![false; steps.len()];
    let mut fused = 0;
    for t in 0..steps.len() {
        let Some(desc) = steps[t].desc.clone() else {
            continue;
        };
        if steps[t].outputs.len() != 1 {
            continue;
        }
        // Candidate chain inputs: x (and y for commutative-or-not binary ops).
        let mut cands: Vec<(&str, Option<&str>)> = vec![("x", None)];
        if let Desc::Binary(_) = desc {
            cands = vec![("x", Some("y")), ("y", Some("x"))];
        }
        let mut done = false;
        for (vp, other) in cands {
            let Some(Src::Slot(s)) = param_src(&steps[t], vp) else {
                continue;
            };
            if uses.get(&s).copied().unwrap_or(0) != 1 || reads(&steps[t], s) != 1 {
                continue;
            }
            let other_src = match other {
                Some(o) => match param_src(&steps[t], o) {
                    Some(src) => Some(src),
                    None => continue,
                },
                None => None,
            };
            let op = match &desc {
                Desc::Unary(u) => EwOp::Unary(*u),
                Desc::Channel { scale, shift } => EwOp::Channel {
                    scale: scale.clone(),
                    shift: shift.clone(),
                },
                Desc::Binary(b) => EwOp::Binary {
                    op: *b,
                    param: String::new(),
                    v_first: vp == "x",
                },
            };
            let p = producer.get(&s).copied();
            // Fuse into the producer when it is a plain single-output step and the other
            // operand (if any) exists before the producer runs.
            if let Some(p) = p
                && !removed[p]
                && steps[p].outputs.len() == 1
                && other_src.is_none_or(|o| match o {
                    Src::Const(_) => true,
                    Src::Slot(os) => producer.get(&os).is_none_or(|&q| q < p),
                })
            {
                let out = steps[t].outputs[0];
                let name = op.name();
                let mut op = op;
                if let (EwOp::Binary { param, .. }, Some(o)) = (&mut op, other_src) {
                    *param = format!("fuse:{}", steps[p].epilogue.len());
                    steps[p].params.push((param.clone(), vec![o]));
                }
                let prod = &mut steps[p];
                prod.epilogue.push(op);
                prod.outputs = vec![out];
                prod.op_type = format!("{}+{name}", prod.op_type);
                producer.insert(out.0, p);
                removed[t] = true;
                fused += 1;
                done = true;
                break;
            }
            // Otherwise run in place on the dying input.
            if steps[t].inplace.is_none() && steps[t].epilogue.is_empty() {
                let step = &mut steps[t];
                let mut op = op;
                if let EwOp::Binary { param, .. } = &mut op {
                    *param = other.unwrap_or("y").to_string();
                }
                step.inplace = Some(s);
                step.epilogue.push(op);
                done = true;
                break;
            }
        }
        let _ = done;
    }
    let mut i = 0;
    steps.retain(|_| {
        i += 1;
        !removed[i - 1]
    });
    fused
}

/// The other operand of a fused binary op, laid out against the chain value's shape: the
/// element for flat index `i` is `data[(i / inner) % mid]`.
struct Bcast<'a> {
    data: &'a [f32],
    inner: usize,
    mid: usize,
}

/// How `o` (shape `os`) broadcasts into `xs` without enlarging it: `Some` when its shape,
/// left-padded with ones, is ones except for one contiguous run of dimensions equal to
/// `xs`'s (a scalar, a trailing block, a per-channel vector).
fn bcast<'a>(data: &'a [f32], os: &[usize], xs: &[usize]) -> Option<Bcast<'a>> {
    if os.len() > xs.len() {
        return None;
    }
    let pad = xs.len() - os.len();
    let full: Vec<usize> = std::iter::repeat_n(1, pad)
        .chain(os.iter().copied())
        .collect();
    let first = full.iter().position(|&d| d != 1);
    let Some(a) = first else {
        return Some(Bcast {
            data,
            inner: usize::MAX,
            mid: 1,
        });
    };
    let b = full.iter().rposition(|&d| d != 1).map_or(a, |b| b + 1);
    if full[a..b] != xs[a..b] {
        return None;
    }
    let inner: usize = xs[b..].iter().product();
    let mid: usize = xs[a..b].iter().product();
    (data.len() == mid).then_some(Bcast {
        data,
        inner: inner.max(1),
        mid,
    })
}

/// A resolved epilogue op.
enum Ready<'a> {
    Unary(Unary),
    Channel {
        scale: &'a [f32],
        shift: &'a [f32],
        plane: usize,
    },
    Binary {
        op: Bin,
        other: Bcast<'a>,
        v_first: bool,
    },
}

impl Ready<'_> {
    /// Apply to `x`, the elements at flat offsets `off..off + x.len()`.
    fn apply(&self, x: &mut [f32], off: usize) {
        match self {
            Ready::Unary(u) => u.apply(x),
            Ready::Channel {
                scale,
                shift,
                plane,
            } => {
                let c = scale.len().max(1);
                let mut i = 0;
                while i < x.len() {
                    let g = (off + i) / plane;
                    let run = (plane - (off + i) % plane).min(x.len() - i);
                    let (s, t) = (scale[g % c], shift[g % c]);
                    simd::scale_shift(&mut x[i..i + run], s, t);
                    i += run;
                }
            }
            Ready::Binary { op, other, v_first } => {
                let (op, vf) = (*op, *v_first);
                let Bcast { data, inner, mid } = *other;
                if mid == 1 {
                    let y = data.first().copied().unwrap_or(0.0);
                    return Unary::apply_bin_scalar(x, op, y, vf);
                }
                let mut i = 0;
                while i < x.len() {
                    let g = off + i;
                    if inner == 1 {
                        // `other` repeats along x: zip runs of up to `mid` elements
                        let k = g % mid;
                        let run = (mid - k).min(x.len() - i);
                        zip_bin(&mut x[i..i + run], &data[k..k + run], op, vf);
                        i += run;
                    } else {
                        let run = (inner - g % inner).min(x.len() - i);
                        let y = data[(g / inner) % mid];
                        Unary::apply_bin_scalar(&mut x[i..i + run], op, y, vf);
                        i += run;
                    }
                }
            }
        }
    }
}

impl Unary {
    fn apply_bin_scalar(x: &mut [f32], op: Bin, y: f32, v_first: bool) {
        simd::vectorize(
            #[inline(always)]
            || {
                if v_first {
                    for v in x.iter_mut() {
                        *v = op.f(*v, y);
                    }
                } else {
                    for v in x.iter_mut() {
                        *v = op.f(y, *v);
                    }
                }
            },
        );
    }
}

fn zip_bin(x: &mut [f32], y: &[f32], op: Bin, v_first: bool) {
    simd::vectorize(
        #[inline(always)]
        || {
            if v_first {
                for (v, &w) in x.iter_mut().zip(y) {
                    *v = op.f(*v, w);
                }
            } else {
                for (v, &w) in x.iter_mut().zip(y) {
                    *v = op.f(w, *v);
                }
            }
        },
    );
}

/// A step's epilogue resolved against one call's arguments, ready to apply to blocks of
/// the output (kernels that support it apply it per output block, in cache).
pub struct Epilogue<'a> {
    ops: Vec<Ready<'a>>,
}

impl Epilogue<'_> {
    /// An epilogue that does nothing.
    pub fn none() -> Epilogue<'static> {
        Epilogue { ops: Vec::new() }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Apply every op, in order, to `x`: the output elements at flat offsets
    /// `off..off + x.len()`.
    pub fn apply(&self, x: &mut [f32], off: usize) {
        // Cache-sized pieces, so that a chain of ops reads memory once.
        const PIECE: usize = 4096;
        if self.ops.len() == 1 {
            if let Some(op) = self.ops.first() {
                op.apply(x, off);
            }
            return;
        }
        for (j, piece) in x.chunks_mut(PIECE).enumerate() {
            for op in &self.ops {
                op.apply(piece, off + j * PIECE);
            }
        }
    }

    /// Apply to a whole contiguous output, split over the threads when large.
    pub fn apply_all(&self, x: &mut [f32]) {
        if self.ops.is_empty() {
            return;
        }
        const CHUNK: usize = 16_384;
        if x.len() >= 4 * CHUNK && super::kernels::threads() > 1 {
            x.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(i, c)| self.apply(c, i * CHUNK));
        } else {
            self.apply(x, 0);
        }
    }
}

/// Resolve `ops` for an output of shape `shape`; `get` finds a parameter's value. `None`
/// when some operand does not broadcast into the output in one of the cheap ways (the caller
/// then uses [`apply_epilogue`]'s general path).
pub fn prepare<'a>(
    ops: &'a [EwOp],
    shape: &[usize],
    get: &dyn Fn(&str) -> Option<&'a Value>,
) -> Option<Epilogue<'a>> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        out.push(match op {
            EwOp::Unary(u) => Ready::Unary(*u),
            EwOp::Channel { scale, shift } => {
                if shape.len() < 2 || shape[1] != scale.len() {
                    return None;
                }
                Ready::Channel {
                    scale,
                    shift,
                    plane: shape[2..].iter().product::<usize>().max(1),
                }
            }
            EwOp::Binary { op, param, v_first } => {
                let Some(Value::F32(o)) = get(param) else {
                    return None;
                };
                let data = o.as_slice()?;
                Ready::Binary {
                    op: *op,
                    other: bcast(data, o.shape(), shape)?,
                    v_first: *v_first,
                }
            }
        });
    }
    Some(Epilogue { ops: out })
}

/// Apply a step's epilogue to its output `v` (taken by value: transformed in place when
/// possible). Operands that broadcast in an unusual way (or enlarge the value) go through
/// the general elementwise kernels.
pub fn apply_epilogue<'a>(
    ops: &'a [EwOp],
    v: Value,
    get: &dyn Fn(&str) -> Option<&'a Value>,
) -> Result<Value, String> {
    let Value::F32(mut a) = v else {
        return Err(format!(
            "a fused elementwise op needs a floating-point tensor, got {}",
            v.describe()
        ));
    };
    if !a.is_standard_layout() {
        a = a.as_standard_layout().into_owned();
    }
    if let Some(e) = prepare(ops, a.shape(), get)
        && let Some(x) = a.as_slice_mut()
    {
        e.apply_all(x);
        return Ok(Value::F32(a));
    }
    // General path: one op at a time.
    let mut cur = Value::F32(a);
    for op in ops {
        cur = match op {
            EwOp::Binary { op, param, v_first } => {
                let o = get(param).ok_or_else(|| format!("fused operand {param} is missing"))?;
                if *v_first {
                    binary_values(op.mil(), &cur, o)?
                } else {
                    binary_values(op.mil(), o, &cur)?
                }
            }
            other => {
                let Value::F32(mut a) = cur else {
                    return Err("fused op on a non-float value".into());
                };
                let shape = a.shape().to_vec();
                let e = prepare(std::slice::from_ref(other), &shape, get).ok_or_else(|| {
                    format!("fused {} does not apply to shape {shape:?}", other.name())
                })?;
                let mut owned: ArrayD<f32> = a.as_standard_layout().into_owned();
                if let Some(x) = owned.as_slice_mut() {
                    e.apply_all(x);
                }
                a = owned;
                Value::F32(a)
            }
        };
    }
    Ok(cur)
}

/// The [`Desc`] of an op, if it is a fusable elementwise op. `constant` gives a parameter's
/// value when it is a load-time constant; `has` says whether a parameter is bound at all.
pub fn describe(
    op_type: &str,
    constant: &dyn Fn(&str) -> Option<Value>,
    has: &dyn Fn(&str) -> bool,
) -> Option<Desc> {
    let scalar = |name: &str, default: f32| -> Option<f32> {
        match constant(name) {
            Some(v) => match v.to_f32s().ok()?.as_slice() {
                [x] => Some(*x),
                _ => None,
            },
            None if has(name) => None,
            None => Some(default),
        }
    };
    let u = match op_type {
        "relu" => Unary::Relu,
        "relu6" => Unary::Relu6,
        "sigmoid" => Unary::Sigmoid,
        "silu" => Unary::Silu,
        "tanh" => Unary::Tanh,
        "clip" => Unary::Clip(scalar("alpha", f32::MIN)?, scalar("beta", f32::MAX)?),
        "threshold" => Unary::Clip(scalar("alpha", 0.0)?, f32::INFINITY),
        "leaky_relu" => Unary::LeakyRelu(scalar("alpha", 0.01)?),
        "linear_activation" => Unary::Affine(scalar("alpha", 1.0)?, scalar("beta", 0.0)?),
        "gelu" => {
            let mode = match constant("mode") {
                Some(v) => v.as_str().ok()?.to_string(),
                None if has("mode") => return None,
                None => "EXACT".into(),
            };
            match mode.as_str() {
                "EXACT" => Unary::GeluExact,
                "TANH_APPROXIMATION" => Unary::GeluTanh,
                "SIGMOID_APPROXIMATION" => Unary::GeluSigmoid,
                _ => return None,
            }
        }
        "add" => return Some(Desc::Binary(Bin::Add)),
        "sub" => return Some(Desc::Binary(Bin::Sub)),
        "mul" => return Some(Desc::Binary(Bin::Mul)),
        "real_div" => return Some(Desc::Binary(Bin::Div)),
        "maximum" => return Some(Desc::Binary(Bin::Max)),
        "minimum" => return Some(Desc::Binary(Bin::Min)),
        "batch_norm" => {
            let vec = |name: &str| -> Option<Option<Vec<f32>>> {
                match constant(name) {
                    Some(v) => Some(Some(v.to_f32s().ok()?)),
                    None if has(name) => None,
                    None => Some(None),
                }
            };
            let mean = vec("mean")??;
            let var = vec("variance")??;
            let gamma = vec("gamma")?;
            let beta = vec("beta")?;
            let eps = scalar("epsilon", 1e-5)?;
            let c = mean.len();
            if var.len() != c
                || gamma.as_ref().is_some_and(|g| g.len() != c)
                || beta.as_ref().is_some_and(|b| b.len() != c)
            {
                return None;
            }
            // The same arithmetic as the batch_norm kernel.
            let scale: Vec<f32> = (0..c)
                .map(|i| gamma.as_ref().map_or(1.0, |g| g[i]) / (var[i] + eps).sqrt())
                .collect();
            let shift: Vec<f32> = (0..c)
                .map(|i| beta.as_ref().map_or(0.0, |b| b[i]) - mean[i] * scale[i])
                .collect();
            return Some(Desc::Channel {
                scale: scale.into(),
                shift: shift.into(),
            });
        }
        _ => return None,
    };
    Some(Desc::Unary(u))
}
