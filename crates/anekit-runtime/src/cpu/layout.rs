//! Layout planning: convolutional regions of a plan run in the channel-blocked ("NCHWc")
//! layout of [`super::kernels::blocked`].
//!
//! Like [`super::fuse`], this pass only rewrites the list of steps; it runs after fusion, so
//! a convolution's fused epilogue moves with it. ONNX Runtime does the same rewrite at graph
//! level (`onnxruntime/core/optimizer/nchwc_transformer.cc`).
//!
//! 1. A **candidate** is a 2-D `conv` over image planes (at least 2 × 2; a `[C, 1, T]`
//!    sequence, as in the Neural Engine's transformer layout, stays a matrix product) whose
//!    shapes, weight, bias and parameters are known at load: one group (with fewer than [`MIN_DENSE_CHANNELS`] input channels, such as an
//!    image's 3, the input stays NCHW: blocks of them would be mostly zero lanes), or
//!    depthwise with one output channel per input channel. Its fused epilogue may hold
//!    activations, scalar constants and operands of exactly the output's shape (a residual
//!    `add`); a broadcast operand (a per-channel `batch_norm`, say) keeps the step in NCHW,
//!    since its lanes would not line up.
//! 2. With at least [`MIN_CANDIDATES`] candidates in a block, each runs blocked: its output
//!    goes to a new slot in the blocked layout, and later candidates read that slot
//!    directly. A value that a candidate reads but that was made in NCHW (the network's
//!    input, the output of a pooling) is converted once, before its first such reader
//!    (`reorder_nchwc`); a blocked output that anything else reads (or that leaves the
//!    block) is converted back right after its step (`reorder_nchw`) into its original slot,
//!    so the rest of the plan is unchanged.
//!
//! 3. Each blocked step's weights are packed one step at a time and the model's copy is
//!    released ([`ConstTable::release`]) when nothing else names it, so the two copies of a
//!    network's weights never all live at once.
//!
//! The blocked kernels compute the same sums as the NCHW ones in another order, so outputs
//! agree to rounding (`tests/layout.rs`; `tests/fusion.rs` checks every fixture network with
//! the pass on and off). `ANEKIT_NCHWC=0` turns the pass off.

use std::collections::{HashMap, HashSet};

use super::fuse::EwOp;
use super::kernels::blocked::{self, BlockedConv, Kind};
use super::kernels::conv::{self, ConvGeom, ConvParams, PadType};
use super::plan::{Src, Step};
use super::value::Value;

/// Input channels from which a one-group convolution runs blocked.
pub const MIN_DENSE_CHANNELS: usize = 16;

/// Candidates a block needs before the pass converts anything: one lone convolution would
/// pay two conversions for one faster kernel.
pub const MIN_CANDIDATES: usize = 2;

/// The slot table of the block being compiled: new slots are added at its end.
pub struct Slots<'a> {
    /// Declared shape of each slot, where fixed.
    pub shapes: &'a mut Vec<Option<Vec<usize>>>,
    /// Declared byte size of each slot.
    pub bytes: &'a mut Vec<Option<usize>>,
    /// The next free slot.
    pub next: &'a mut usize,
}

impl Slots<'_> {
    fn add(&mut self, shape: Vec<usize>) -> usize {
        let slot = *self.next;
        *self.next += 1;
        self.bytes
            .push(shape.iter().try_fold(4usize, |a, &d| a.checked_mul(d)));
        self.shapes.push(Some(shape));
        slot
    }

    fn shape(&self, slot: usize) -> Option<&[usize]> {
        self.shapes.get(slot)?.as_deref()
    }
}

/// The constants of the plan being compiled.
pub trait ConstTable {
    /// Constant `i`.
    fn get(&self, i: usize) -> Option<&Value>;
    /// A step stopped naming constant `i` (its kernel holds it packed): drop it when nothing
    /// else names it.
    fn release(&mut self, i: usize);
}

/// Which blocked kernel.
#[derive(Clone, Copy)]
enum Form {
    Dense,
    DenseNchwInput,
    Depthwise,
}

/// What makes a step a candidate.
struct Candidate {
    g: ConvGeom,
    form: Form,
    /// The weight and bias constants.
    weight: usize,
    bias: Option<usize>,
    /// Slots the step reads that must come blocked (`x` and same-shape epilogue operands),
    /// with their NCHW shapes.
    blocked_inputs: Vec<(String, usize, [usize; 4])>,
    /// The output's NCHW shape.
    out: [usize; 4],
}

fn single(step: &Step, name: &str) -> Option<Src> {
    match step.params.iter().find(|(p, _)| p == name)?.1.as_slice() {
        [s] => Some(*s),
        _ => None,
    }
}

/// A parameter that must be a load-time constant when present: `Ok(None)` when absent.
fn constant<'c>(
    step: &Step,
    consts: &'c dyn ConstTable,
    name: &str,
) -> Result<Option<&'c Value>, ()> {
    if !step.params.iter().any(|(p, _)| p == name) {
        return Ok(None);
    }
    match single(step, name) {
        Some(Src::Const(i)) => consts.get(i).map(Some).ok_or(()),
        _ => Err(()),
    }
}

fn ints(step: &Step, consts: &dyn ConstTable, name: &str) -> Result<Option<Vec<i64>>, ()> {
    constant(step, consts, name)?
        .map(|v| v.to_i64s().map_err(|_| ()))
        .transpose()
}

fn candidate(step: &Step, consts: &dyn ConstTable, slots: &Slots<'_>) -> Option<Candidate> {
    let base = step.op_type.split('+').next()?;
    if base != "conv" || step.inplace.is_some() || step.outputs.len() != 1 {
        return None;
    }
    let Some(Src::Slot(x)) = single(step, "x") else {
        return None;
    };
    let xs: [usize; 4] = slots.shape(x)?.try_into().ok()?;
    let Some(Value::F32(w)) = constant(step, consts, "weight").ok()? else {
        return None;
    };
    let bias = match constant(step, consts, "bias").ok()? {
        None => None,
        Some(b @ Value::F32(_)) => Some(b),
        Some(_) => return None,
    };
    let const_index = |name: &str| match single(step, name) {
        Some(Src::Const(i)) => Some(i),
        _ => None,
    };
    let (weight, bias_index) = (const_index("weight")?, const_index("bias"));
    let pad_type = match constant(step, consts, "pad_type").ok()? {
        None => PadType::Valid,
        Some(v) => PadType::parse(v.as_str().ok()?).ok()?,
    };
    let groups = match ints(step, consts, "groups").ok()?.as_deref() {
        None => 1,
        Some([g]) => *g,
        Some(_) => return None,
    };
    let params = ConvParams {
        strides: ints(step, consts, "strides").ok()?,
        dilations: ints(step, consts, "dilations").ok()?,
        pad: ints(step, consts, "pad").ok()?,
        pad_type,
        groups,
        output_shape: None,
    };
    let g = conv::geometry(&xs, w.shape(), &params, false).ok()?;
    // Image planes only: a 1×1 convolution over a `[C, 1, T]` sequence (a `linear` in the
    // Neural Engine's transformer layout) sits between layer norms and attention, which
    // would convert its input and output every time; it stays a matrix product.
    if g.spatial != 2 || g.squeezed || g.n == 0 || g.inp[1] < 2 || g.inp[2] < 2 {
        return None;
    }
    // The grid a direct convolution reads (the zero-padded input, split into phases for
    // strides) must stay of the order of its input and output: a huge dilation or padding
    // around a small input (a malformed model, say) is left to the NCHW kernels.
    let reach = |i: usize| (g.k[i] - 1).saturating_mul(g.d[i]) / g.s[i];
    let grid = (g.out[1].saturating_add(reach(1)))
        .saturating_mul(g.out[2].saturating_add(reach(2)))
        .saturating_mul(g.s[1].saturating_mul(g.s[2]));
    let planes = g.inp[1] * g.inp[2] + g.out[1] * g.out[2];
    if grid > planes.saturating_mul(4).saturating_add(1024) {
        return None;
    }
    let out: [usize; 4] = g.out_shape().try_into().ok()?;
    let (out_slot, _) = step.outputs[0];
    if slots.shape(out_slot).is_some_and(|s| s != out) {
        return None;
    }
    let form = if g.groups == 1 && g.c_in >= MIN_DENSE_CHANNELS {
        Form::Dense
    } else if g.groups == 1 {
        Form::DenseNchwInput
    } else if g.groups == g.c_in && g.c_out == g.c_in && g.c_in > 1 {
        Form::Depthwise
    } else {
        return None;
    };
    if bias.is_some_and(|b| b.element_count() != g.c_out)
        || w.len() != g.c_out * (g.c_in / g.groups) * g.k[1] * g.k[2]
    {
        return None;
    }
    let mut blocked_inputs = Vec::new();
    if !matches!(form, Form::DenseNchwInput) {
        blocked_inputs.push(("x".to_string(), x, xs));
    }
    for op in &step.epilogue {
        match op {
            EwOp::Unary(_) => {}
            EwOp::Channel { .. } => return None,
            EwOp::Binary { param, .. } => match single(step, param)? {
                Src::Slot(s) if slots.shape(s) == Some(out.as_slice()) => {
                    blocked_inputs.push((param.clone(), s, out));
                }
                Src::Const(i) if consts.get(i).is_some_and(|v| v.element_count() == 1) => {}
                _ => return None,
            },
        }
    }
    Some(Candidate {
        g,
        form,
        weight,
        bias: bias_index,
        blocked_inputs,
        out,
    })
}

/// The candidate's kernel, its weights packed from the constants.
fn kernel(c: &Candidate, consts: &dyn ConstTable) -> Option<BlockedConv> {
    let Some(Value::F32(w)) = consts.get(c.weight) else {
        return None;
    };
    let w: Vec<f32> = w.iter().copied().collect();
    let g = &c.g;
    if w.len() != g.c_out * (g.c_in / g.groups) * g.k[1] * g.k[2] {
        return None;
    }
    let bias: Option<Vec<f32>> = match c.bias.map(|i| consts.get(i)) {
        None => None,
        Some(Some(Value::F32(b))) => Some(b.iter().copied().collect()),
        Some(_) => return None,
    };
    if bias.as_ref().is_some_and(|b| b.len() != g.c_out) {
        return None;
    }
    let b = bias.as_deref();
    let taps = g.k[1] * g.k[2];
    let kind = match c.form {
        Form::Dense => Kind::Dense(blocked::Dense::new(&w, b, g.c_out, g.c_in, taps)),
        Form::DenseNchwInput => {
            Kind::Dense(blocked::Dense::nchw_input(&w, b, g.c_out, g.c_in, taps))
        }
        Form::Depthwise => Kind::Depthwise(blocked::Depthwise::new(&w, b, g.c_out, taps)),
    };
    Some(BlockedConv::new(g.clone(), kind))
}

fn reorder_step(name: &str, to_blocked: bool, from: usize, to: usize, nchw: [usize; 4]) -> Step {
    Step {
        op_name: name.to_string(),
        op_type: if to_blocked {
            "reorder_nchwc".into()
        } else {
            "reorder_nchw".into()
        },
        kernel: blocked::reorder_kernel(nchw, to_blocked),
        params: vec![("x".into(), vec![Src::Slot(from)])],
        outputs: vec![(to, None)],
        frees: Vec::new(),
        desc: None,
        epilogue: Vec::new(),
        inplace: None,
        view_shape: None,
    }
}

/// Whether the pass is on (`ANEKIT_NCHWC=0` turns it off, for comparisons).
pub fn enabled_by_env() -> bool {
    std::env::var("ANEKIT_NCHWC").map_or(true, |v| v != "0")
}

/// Rewrite `steps` (a block whose outputs are `outputs`) as the module docs say. Returns the
/// number of convolutions that run blocked. The weights and biases of those steps are
/// packed one step at a time and released from `consts` (the blocked kernels hold them
/// packed), so the model's copy and the packed one do not all live at once.
pub fn rewrite(
    steps: &mut Vec<Step>,
    outputs: &[Src],
    consts: &mut dyn ConstTable,
    slots: &mut Slots<'_>,
) -> usize {
    let mut cands: Vec<Option<Candidate>> = steps
        .iter()
        .map(|s| candidate(s, &*consts, slots))
        .collect();
    let count = cands.iter().flatten().count();
    if count < MIN_CANDIDATES {
        return 0;
    }
    // Slots read in NCHW: by a step that stays NCHW, as a non-layout parameter of a
    // candidate, or as a block output.
    let mut nchw_reads: HashSet<usize> = HashSet::new();
    for (step, cand) in steps.iter().zip(&cands) {
        for (name, srcs) in &step.params {
            for src in srcs {
                let Src::Slot(s) = *src else { continue };
                let as_blocked = cand
                    .as_ref()
                    .is_some_and(|c| c.blocked_inputs.iter().any(|(p, ..)| p == name));
                if !as_blocked {
                    nchw_reads.insert(s);
                }
            }
        }
    }
    nchw_reads.extend(outputs.iter().filter_map(|o| match o {
        Src::Slot(s) => Some(*s),
        Src::Const(_) => None,
    }));
    let mut blocked_of: HashMap<usize, usize> = HashMap::new();
    // Values whose NCHW slot is never written (their producer runs blocked).
    let mut only_blocked: HashSet<usize> = HashSet::new();
    let mut blocked = 0;
    let mut out = Vec::with_capacity(steps.len() + 2 * count);
    for (mut step, cand) in std::mem::take(steps).into_iter().zip(cands.iter_mut()) {
        let Some(cand) = cand.take() else {
            out.push(step);
            continue;
        };
        let Some(kernel) = kernel(&cand, &*consts) else {
            // (candidate() checked the constants, so this does not happen.) The step stays
            // NCHW: inputs that only exist blocked so far are converted back first.
            for (_, s, nchw) in &cand.blocked_inputs {
                if let Some(&b) = blocked_of.get(s)
                    && only_blocked.remove(s)
                {
                    out.push(reorder_step(
                        &format!("{}:nchw", step.op_name),
                        false,
                        b,
                        *s,
                        *nchw,
                    ));
                }
            }
            out.push(step);
            continue;
        };
        blocked += 1;
        for (param, s, nchw) in &cand.blocked_inputs {
            let b = match blocked_of.get(s) {
                Some(&b) => b,
                None => {
                    let b = slots.add(blocked::blocked_dims(*nchw));
                    out.push(reorder_step(
                        &format!("{}:nchwc", step.op_name),
                        true,
                        *s,
                        b,
                        *nchw,
                    ));
                    blocked_of.insert(*s, b);
                    b
                }
            };
            if let Some((_, srcs)) = step.params.iter_mut().find(|(p, _)| p == param) {
                *srcs = vec![Src::Slot(b)];
            }
        }
        let (o, dtype) = step.outputs[0];
        let ob = slots.add(blocked::blocked_dims(cand.out));
        step.outputs = vec![(ob, dtype)];
        step.op_type = step.op_type.replacen("conv", "conv_nchwc", 1);
        step.kernel = Box::new(kernel);
        step.params
            .retain(|(p, srcs)| match (p.as_str(), srcs.as_slice()) {
                ("weight" | "bias", [Src::Const(i)]) => {
                    consts.release(*i);
                    false
                }
                _ => true,
            });
        let name = step.op_name.clone();
        out.push(step);
        blocked_of.insert(o, ob);
        if !nchw_reads.contains(&o) {
            only_blocked.insert(o);
        } else {
            out.push(reorder_step(
                &format!("{name}:nchw"),
                false,
                ob,
                o,
                cand.out,
            ));
        }
    }
    *steps = out;
    tracing::debug!(convolutions = blocked, "channel-blocked layout");
    blocked
}
