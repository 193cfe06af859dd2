//! Layout planning: convolutional regions of a plan run in the channel-blocked ("NCHWc")
//! layout of [`super::kernels::blocked`].
//!
//! Like [`super::fuse`], this pass only rewrites the list of steps; it runs after fusion, so
//! a convolution's fused epilogue moves with it. ONNX Runtime does the same rewrite at graph
//! level (`onnxruntime/core/optimizer/nchwc_transformer.cc`).
//!
//! 1. A **candidate** is a 2-D `conv` step whose shapes, weight, bias and parameters are known
//!    at load: one group (with fewer than [`MIN_DENSE_CHANNELS`] input channels, such as an
//!    image's 3, the input stays NCHW: blocks of them would be mostly zero lanes), or
//!    depthwise with one output channel per input channel. Its fused epilogue may hold activations, scalar constants and operands
//!    of exactly the output's shape (a residual `add`); a broadcast operand (a per-channel
//!    `batch_norm`, say) keeps the step in NCHW, since its lanes would not line up.
//! 2. With at least [`MIN_CANDIDATES`] candidates in a block, each runs blocked: its output
//!    goes to a new slot in the blocked layout, and later candidates read that slot
//!    directly. A value that a candidate reads but that was made in NCHW (the network's
//!    input, the output of a pooling) is converted once, before its first such reader
//!    (`reorder_nchwc`); a blocked output that anything else reads (or that leaves the
//!    block) is converted back right after its step (`reorder_nchw`) into its original slot,
//!    so the rest of the plan is unchanged.
//!
//! The blocked kernels compute the same sums as the NCHW ones in another order, so outputs
//! agree to rounding (`tests/fusion.rs` checks every fixture network with the pass on and
//! off). `ANEKIT_NCHWC=0` turns the pass off.

use std::collections::{HashMap, HashSet};

use super::fuse::EwOp;
use super::kernels::blocked::{self, BlockedConv, Kind};
use super::kernels::conv::{self, ConvParams, PadType};
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

/// What makes a step a candidate.
struct Candidate {
    kernel: BlockedConv,
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
fn constant<'c>(step: &Step, consts: &'c [Value], name: &str) -> Result<Option<&'c Value>, ()> {
    if !step.params.iter().any(|(p, _)| p == name) {
        return Ok(None);
    }
    match single(step, name) {
        Some(Src::Const(i)) => consts.get(i).map(Some).ok_or(()),
        _ => Err(()),
    }
}

fn ints(step: &Step, consts: &[Value], name: &str) -> Result<Option<Vec<i64>>, ()> {
    constant(step, consts, name)?
        .map(|v| v.to_i64s().map_err(|_| ()))
        .transpose()
}

fn candidate(step: &Step, consts: &[Value], slots: &Slots<'_>) -> Option<Candidate> {
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
        Some(Value::F32(b)) => Some(b.iter().copied().collect::<Vec<f32>>()),
        Some(_) => return None,
    };
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
    if g.spatial != 2 || g.squeezed || g.n == 0 {
        return None;
    }
    let out: [usize; 4] = g.out_shape().try_into().ok()?;
    let (out_slot, _) = step.outputs[0];
    if slots.shape(out_slot).is_some_and(|s| s != out) {
        return None;
    }
    let taps = g.k[1] * g.k[2];
    let wd: Vec<f32> = w.iter().copied().collect();
    let b = bias.as_deref();
    let kind = if g.groups == 1 && g.c_in >= MIN_DENSE_CHANNELS {
        Kind::Dense(blocked::Dense::new(&wd, b, g.c_out, g.c_in, taps))
    } else if g.groups == 1 {
        Kind::Dense(blocked::Dense::nchw_input(&wd, b, g.c_out, g.c_in, taps))
    } else if g.groups == g.c_in && g.c_out == g.c_in && g.c_in > 1 {
        Kind::Depthwise(blocked::Depthwise::new(&wd, bias.as_deref(), g.c_out, taps))
    } else {
        return None;
    };
    if bias.as_ref().is_some_and(|b| b.len() != g.c_out) {
        return None;
    }
    let mut blocked_inputs = Vec::new();
    if !matches!(&kind, Kind::Dense(d) if d.reads_nchw()) {
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
        kernel: BlockedConv::new(g, kind),
        blocked_inputs,
        out,
    })
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
/// number of convolutions that run blocked, and the constants (weights, biases) those steps
/// no longer name: their kernels hold them packed.
pub fn rewrite(
    steps: &mut Vec<Step>,
    outputs: &[Src],
    consts: &[Value],
    slots: &mut Slots<'_>,
) -> (usize, Vec<usize>) {
    let mut cands: Vec<Option<Candidate>> =
        steps.iter().map(|s| candidate(s, consts, slots)).collect();
    let count = cands.iter().flatten().count();
    if count < MIN_CANDIDATES {
        return (0, Vec::new());
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
    let mut released = Vec::new();
    let mut out = Vec::with_capacity(steps.len() + 2 * count);
    for (mut step, cand) in std::mem::take(steps).into_iter().zip(cands.iter_mut()) {
        let Some(cand) = cand.take() else {
            out.push(step);
            continue;
        };
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
        step.kernel = Box::new(cand.kernel);
        step.params
            .retain(|(p, srcs)| match (p.as_str(), srcs.as_slice()) {
                ("weight" | "bias", [Src::Const(i)]) => {
                    released.push(*i);
                    false
                }
                _ => true,
            });
        let name = step.op_name.clone();
        out.push(step);
        blocked_of.insert(o, ob);
        if nchw_reads.contains(&o) {
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
    tracing::debug!(convolutions = count, "channel-blocked layout");
    (count, released)
}
