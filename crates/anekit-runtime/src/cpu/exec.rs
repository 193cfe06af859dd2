//! Running a plan: steps in order, values in slots, dead values dropped after their last
//! use, fp16 rounding and non-finite detection per op when fp16 precision is on, and with a
//! chip's [`AneNumerics`] the Neural Engine's own cliffs: matmul and linear outputs beyond
//! ~32752 become inf, slices at a non-zero last-axis offset clamp beyond 4094 before the A16
//! tier, row sums stop being exact past 2048 (ANEForge `bench/numeric_cliffs.py`, measured
//! on 11 machines; docs/runtime.md).

use super::kernels::{Args, RunCtx};
use super::plan::{Src, SubPlan};
use super::value::Value;
use crate::engine::{AneNumerics, Precision};
use crate::error::RuntimeError;

/// Live activation bytes of a prediction, and their peak.
#[derive(Debug, Default, Clone, Copy)]
pub struct Meter {
    /// Bytes held now.
    pub live: usize,
    /// Most bytes held at once.
    pub peak: usize,
}

impl Meter {
    fn add(&mut self, n: usize) {
        self.live += n;
        self.peak = self.peak.max(self.live);
    }
    fn sub(&mut self, n: usize) {
        self.live = self.live.saturating_sub(n);
    }
}

/// Run `plan` with its inputs and captured values (in the order of `plan.inputs` and
/// `plan.captures`); returns the block's outputs.
pub fn run(
    plan: &SubPlan,
    inputs: Vec<Value>,
    captures: Vec<Value>,
    ctx: &mut RunCtx<'_>,
    meter: &mut Meter,
) -> Result<Vec<Value>, RuntimeError> {
    let mut slots: Vec<Option<Value>> = vec![None; plan.num_slots];
    for (&slot, v) in plan
        .inputs
        .iter()
        .zip(inputs)
        .chain(plan.captures.iter().map(|c| &c.1).zip(captures))
    {
        meter.add(v.nbytes());
        if let Some(s) = slots.get_mut(slot) {
            *s = Some(v);
        }
    }
    let profiling = profile::enabled();
    for step in &plan.steps {
        let started = profiling.then(std::time::Instant::now);
        let op_err = |message| RuntimeError::Op {
            op: step.op_name.clone(),
            op_type: step.op_type.clone(),
            message,
        };
        // An in-place elementwise step takes its dying input instead of running a kernel.
        let taken = match step.inplace {
            Some(s) => {
                let v = slots
                    .get_mut(s)
                    .and_then(Option::take)
                    .ok_or_else(|| op_err(format!("in-place input slot {s} is empty")))?;
                meter.sub(v.nbytes());
                Some(v)
            }
            None => None,
        };
        // A shape-only op whose input dies here: that value, reshaped (no copy).
        let viewed = match (taken.is_none(), step.dying_view_input(), &step.view_shape) {
            (true, Some(s), Some(shape))
                if slots
                    .get(s)
                    .and_then(Option::as_ref)
                    .is_some_and(|v| v.element_count() == shape.iter().product::<usize>()) =>
            {
                slots.get_mut(s).and_then(Option::take).and_then(|v| {
                    meter.sub(v.nbytes());
                    v.reshaped(shape)
                })
            }
            _ => None,
        };
        let reused = taken.is_some() || viewed.is_some();
        let mut outs = match taken.or(viewed) {
            Some(v) => vec![v],
            None => {
                let args = Args {
                    params: &step.params,
                    slots: &slots,
                    consts: ctx.consts,
                };
                if step.epilogue.is_empty() {
                    step.kernel.run(&args, ctx).map_err(op_err)?
                } else {
                    step.kernel
                        .run_fused(&args, ctx, &step.epilogue)
                        .map_err(op_err)?
                }
            }
        };
        if reused
            && !step.epilogue.is_empty()
            && let Some(first) = outs.first_mut()
        {
            let args = Args {
                params: &step.params,
                slots: &slots,
                consts: ctx.consts,
            };
            let v = std::mem::replace(first, Value::List(Vec::new()));
            *first =
                super::fuse::apply_epilogue(&step.epilogue, v, &|p| args.get(p)).map_err(op_err)?;
        }
        if let Some(t0) = started {
            profile::record(step, &slots, ctx.consts, &outs, t0.elapsed());
        }
        if outs.len() != step.outputs.len() {
            return Err(RuntimeError::Op {
                op: step.op_name.clone(),
                op_type: step.op_type.clone(),
                message: format!(
                    "kernel returned {} values for {} outputs",
                    outs.len(),
                    step.outputs.len()
                ),
            });
        }
        for (v, &(slot, dtype)) in outs.into_iter().zip(&step.outputs) {
            let v = if ctx.precision == Precision::Fp16 {
                // The exact (f32) result, for the row-sum exactness check.
                let raw_max = match (&v, ctx.numerics.is_some()) {
                    (Value::F32(a), true) if step.op_type == "reduce_sum" => a
                        .iter()
                        .filter(|x| x.is_finite())
                        .fold(0.0f32, |m, x| m.max(x.abs())),
                    _ => 0.0,
                };
                let mut v = super::plan::round_if_fp16(v, dtype);
                let cause = match ctx.numerics {
                    Some(nm) => ane_cliffs(
                        step,
                        &slots,
                        ctx.consts,
                        &mut v,
                        raw_max,
                        nm,
                        &mut ctx.numerics_warnings,
                    ),
                    None => None,
                };
                check_finite(&v, step, &args_max(step, &slots, ctx.consts), cause)?;
                v
            } else {
                v
            };
            meter.add(v.nbytes());
            if let Some(s) = slots.get_mut(slot) {
                *s = Some(v);
            }
        }
        for &f in &step.frees {
            if let Some(v) = slots.get_mut(f).and_then(Option::take) {
                meter.sub(v.nbytes());
                super::buffers::recycle(v);
            }
        }
    }
    // Outputs are moved out of their slots (a slot listed twice is copied for the earlier
    // ones).
    plan.outputs
        .iter()
        .enumerate()
        .map(|(i, o)| match *o {
            Src::Slot(s) => {
                let again = plan.outputs[i + 1..].contains(&Src::Slot(s));
                let slot = slots.get_mut(s);
                let v = if again {
                    slot.and_then(|v| v.as_ref().cloned())
                } else {
                    slot.and_then(Option::take)
                };
                v.ok_or_else(|| RuntimeError::Predict(format!("output slot {s} was never written")))
            }
            Src::Const(i) => ctx.consts.get(i).cloned().ok_or_else(|| {
                RuntimeError::Predict(format!("output constant {i} does not exist"))
            }),
        })
        .collect()
}

/// The largest finite magnitude among a step's floating-point inputs (for the message).
fn args_max(step: &super::plan::Step, slots: &[Option<Value>], consts: &[Value]) -> f32 {
    let mut m = 0.0f32;
    for (_, srcs) in &step.params {
        for s in srcs {
            let v = match *s {
                Src::Slot(i) => slots.get(i).and_then(Option::as_ref),
                Src::Const(i) => consts.get(i),
            };
            if let Some(Value::F32(a)) = v {
                m = a
                    .iter()
                    .filter(|x| x.is_finite())
                    .fold(m, |m, x| m.max(x.abs()));
            }
        }
    }
    m
}

fn check_finite(
    v: &Value,
    step: &super::plan::Step,
    max_input: &f32,
    cause: Option<String>,
) -> Result<(), RuntimeError> {
    if let Value::F32(a) = v
        && let Some(bad) = a.iter().find(|x| !x.is_finite())
    {
        return Err(RuntimeError::NonFinite {
            op: step.op_name.clone(),
            op_type: step.op_type.clone(),
            what: if bad.is_nan() { "NaN" } else { "inf" },
            precision: "fp16",
            max_input: *max_input,
            cause: cause.unwrap_or_default(),
        });
    }
    Ok(())
}

/// The value of parameter `name` of `step`.
fn param<'v>(
    step: &super::plan::Step,
    name: &str,
    slots: &'v [Option<Value>],
    consts: &'v [Value],
) -> Option<&'v Value> {
    let (_, srcs) = step.params.iter().find(|(p, _)| p == name)?;
    match *srcs.first()? {
        Src::Slot(i) => slots.get(i)?.as_ref(),
        Src::Const(i) => consts.get(i),
    }
}

/// Whether a slice starts at a non-zero offset on its last axis (the Neural Engine's
/// width-offset crop, ANEForge's probe: `crop(x, left = 1)`).
fn width_offset(step: &super::plan::Step, slots: &[Option<Value>], consts: &[Value]) -> bool {
    let ints = |name: &str| match param(step, name, slots, consts) {
        Some(Value::I32(a)) => Some(a.iter().copied().collect::<Vec<i32>>()),
        _ => None,
    };
    match step.op_type.as_str() {
        "slice_by_index" => {
            let Some(begin) = ints("begin") else {
                return false;
            };
            let masked = match param(step, "begin_mask", slots, consts) {
                Some(Value::Bool(m)) => m.iter().last().copied().unwrap_or(false),
                _ => false,
            };
            !masked && begin.last().is_some_and(|b| *b != 0)
        }
        "slice_by_size" => ints("begin").is_some_and(|b| b.last().is_some_and(|b| *b != 0)),
        "crop" => ints("crop_width").is_some_and(|w| w.first().is_some_and(|l| *l > 0)),
        _ => false,
    }
}

/// Turn the values of `a` beyond `limit` into infinities of their sign; whether any was.
fn saturate(a: &mut ndarray::ArrayD<f32>, limit: f32) -> bool {
    let mut hit = false;
    for x in a.iter_mut() {
        if x.is_finite() && x.abs() > limit {
            *x = f32::INFINITY.copysign(*x);
            hit = true;
        }
    }
    hit
}

/// Apply chip `nm`'s Neural Engine cliffs to the (fp16-rounded) output `v` of `step`
/// (`raw_max`: the largest magnitude of a `reduce_sum` result before rounding).
/// Returns why values became infinite; records non-fatal events in `warnings`.
fn ane_cliffs(
    step: &super::plan::Step,
    slots: &[Option<Value>],
    consts: &[Value],
    v: &mut Value,
    raw_max: f32,
    nm: &AneNumerics,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let Value::F32(a) = v else {
        return None;
    };
    match step.op_type.as_str() {
        "matmul" | "linear" => saturate(a, nm.matmul_max_finite).then(|| {
            format!(
                "; on {} the Neural Engine writes inf for {} outputs above {} (fp16 itself reaches 65504; ANEForge numeric cliffs)",
                nm.chip, step.op_type, nm.matmul_max_finite
            )
        }),
        "slice_by_index" | "slice_by_size" | "crop" => {
            let limit = nm.slice_max_finite?;
            (width_offset(step, slots, consts) && saturate(a, limit)).then(|| {
                format!(
                    "; on {} a slice starting off zero on the last axis goes through the crop DMA, which turns values above {limit} into inf (chips before the A16 tier; ANEForge numeric cliffs)",
                    nm.chip
                )
            })
        }
        "reduce_sum" => {
            let limit = nm.exact_integer_sum_max;
            let largest = raw_max;
            if largest > limit && warnings.len() < 16 {
                warnings.push(format!(
                    "op {:?} (reduce_sum): a sum reaches {largest}; on {} the Neural Engine's integer sums are exact only up to {limit} (the fp16 grid spacing is 2 beyond it; ANEForge measured 2049 read as 2050)",
                    step.op_name, nm.chip
                ));
            }
            None
        }
        _ => None,
    }
}

/// Opt-in per-op timing of the executor.
///
/// Off by default, and then it costs one relaxed atomic load per block run. Two ways on:
/// - the environment variable `ANEKIT_PROFILE=1` (read once): after every prediction a table
///   of time per op type and the slowest op instances (with their input and output shapes)
///   is printed to stderr;
/// - [`collect`]`(true)` from code (benchmarks): times accumulate silently until [`take`].
///
/// A control-flow op's time includes the ops of its nested blocks, which are listed too.
pub mod profile {
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::Duration;

    use super::super::plan::{Src, Step};
    use super::Value;

    const UNSET: u8 = 0;
    const OFF: u8 = 1;
    const PRINT: u8 = 2;
    const COLLECT: u8 = 3;

    static MODE: AtomicU8 = AtomicU8::new(UNSET);
    static TABLE: Mutex<Option<Table>> = Mutex::new(None);

    #[derive(Default)]
    struct Table {
        index: HashMap<(String, String), usize>,
        rows: Vec<OpTime>,
    }

    /// Time spent in one op instance.
    #[derive(Debug, Clone)]
    pub struct OpTime {
        /// The op's type.
        pub op_type: String,
        /// The op's name.
        pub op_name: String,
        /// Input shapes → output shapes, at its first recorded call.
        pub shapes: String,
        /// Times it ran.
        pub calls: u64,
        /// Total time in its kernel.
        pub total: Duration,
    }

    fn mode() -> u8 {
        match MODE.load(Ordering::Relaxed) {
            UNSET => {
                let on = std::env::var("ANEKIT_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
                let m = if on { PRINT } else { OFF };
                MODE.store(m, Ordering::Relaxed);
                m
            }
            m => m,
        }
    }

    /// Whether op times are being recorded.
    pub fn enabled() -> bool {
        mode() >= PRINT
    }

    /// Record op times silently (`true`) until [`take`], or stop recording (`false`).
    pub fn collect(on: bool) {
        MODE.store(if on { COLLECT } else { OFF }, Ordering::Relaxed);
    }

    fn shape_text(v: &Value) -> String {
        let s = v.shape();
        if s.is_empty() {
            return "scalar".into();
        }
        s.iter().map(usize::to_string).collect::<Vec<_>>().join("x")
    }

    pub(super) fn record(
        step: &Step,
        slots: &[Option<Value>],
        consts: &[Value],
        outs: &[Value],
        dt: Duration,
    ) {
        let Ok(mut guard) = TABLE.lock() else {
            return;
        };
        let table = guard.get_or_insert_with(Table::default);
        let key = (step.op_name.clone(), step.op_type.clone());
        let i = match table.index.get(&key) {
            Some(&i) => i,
            None => {
                let mut shapes = String::new();
                for (name, srcs) in &step.params {
                    for src in srcs {
                        let (v, c) = match *src {
                            Src::Slot(i) => (slots.get(i).and_then(Option::as_ref), ""),
                            Src::Const(i) => (consts.get(i), "const "),
                        };
                        match v {
                            // small integer constants (strides, axes, pads): their values
                            Some(Value::I32(a)) if !c.is_empty() && a.len() <= 8 => {
                                let vals: Vec<String> = a.iter().map(i32::to_string).collect();
                                let _ = write!(shapes, "{name}=[{}] ", vals.join(","));
                            }
                            Some(v) if v.shape().iter().product::<usize>() > 1 => {
                                let _ = write!(shapes, "{name}={c}{} ", shape_text(v));
                            }
                            _ => {}
                        }
                    }
                }
                shapes.push_str("->");
                for o in outs {
                    let _ = write!(shapes, " {}", shape_text(o));
                }
                table.rows.push(OpTime {
                    op_type: step.op_type.clone(),
                    op_name: step.op_name.clone(),
                    shapes,
                    calls: 0,
                    total: Duration::ZERO,
                });
                table.index.insert(key, table.rows.len() - 1);
                table.rows.len() - 1
            }
        };
        if let Some(r) = table.rows.get_mut(i) {
            r.calls += 1;
            r.total += dt;
        }
    }

    /// The op times recorded so far (slowest first); clears them.
    pub fn take() -> Vec<OpTime> {
        let mut rows = TABLE
            .lock()
            .ok()
            .and_then(|mut t| t.take())
            .map(|t| t.rows)
            .unwrap_or_default();
        rows.sort_by_key(|r| std::cmp::Reverse(r.total));
        rows
    }

    /// A text table: time per op type (share of the total), then the `top` slowest op
    /// instances with their shapes. Times are per prediction when `predictions` > 0.
    pub fn render(rows: &[OpTime], predictions: u64, top: usize) -> String {
        let div = predictions.max(1) as f64;
        let total: f64 = rows.iter().map(|r| r.total.as_secs_f64()).sum();
        let mut by_type: Vec<(String, f64, u64, usize)> = Vec::new();
        for r in rows {
            match by_type.iter_mut().find(|t| t.0 == r.op_type) {
                Some(t) => {
                    t.1 += r.total.as_secs_f64();
                    t.2 += r.calls;
                    t.3 += 1;
                }
                None => by_type.push((r.op_type.clone(), r.total.as_secs_f64(), r.calls, 1)),
            }
        }
        by_type.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<28} {:>6} {:>10} {:>7}",
            "op type", "ops", "ms", "share"
        );
        for (t, secs, _, n) in &by_type {
            let _ = writeln!(
                s,
                "{t:<28} {n:>6} {:>10.3} {:>6.1}%",
                secs * 1e3 / div,
                100.0 * secs / total.max(f64::MIN_POSITIVE)
            );
        }
        let _ = writeln!(
            s,
            "{:<28} {:>6} {:>10.3}",
            "total",
            rows.len(),
            total * 1e3 / div
        );
        if top > 0 {
            let _ = writeln!(s, "slowest ops:");
            for r in rows.iter().take(top) {
                let _ = writeln!(
                    s,
                    "  {:>9.3} ms  {:<22} {:<24} {}",
                    r.total.as_secs_f64() * 1e3 / div,
                    r.op_type,
                    r.op_name,
                    r.shapes
                );
            }
        }
        s
    }

    /// Called after each prediction: with `ANEKIT_PROFILE` set, prints and clears the table.
    pub fn after_prediction() {
        if MODE.load(Ordering::Relaxed) == PRINT {
            let rows = take();
            eprintln!("anekit profile (one prediction):\n{}", render(&rows, 1, 15));
        }
    }
}
