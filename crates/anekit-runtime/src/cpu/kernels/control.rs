//! Control flow and lists (coremltools `ops/defs/iOS15/control_flow.py`): `cond`,
//! `while_loop`, `make_list`, `list_length`, `list_write`, `list_read`, `list_gather`,
//! `list_scatter`. (`select` is elementwise; `const` is the compiler's.)
//!
//! Nested blocks are compiled at load ([`OpCtx::compile_block`]) and run with
//! [`exec::run`]; values a block uses from the enclosing scope arrive as the op's
//! `capture:<name>` arguments. A `while_loop` stops with an error after
//! [`max_loop_iterations`] iterations so a model cannot hang a prediction.
//!
//! Lists are [`Value::List`]s. Elements that were never written are holes (an empty list
//! stands for one) unless `make_list` knows the element shape, in which case they are zeros
//! of the element type. Lists grow on writes past their end, up to [`MAX_LIST_LENGTH`].

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use ndarray::{ArrayD, Axis, IxDyn};

use super::shape::{MAX_ELEMENTS, checked_count, dim, owned};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::exec::{self, Meter};
use crate::cpu::plan::{Src, SubPlan};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "cond",
    "while_loop",
    "make_list",
    "list_length",
    "list_write",
    "list_read",
    "list_gather",
    "list_scatter",
];

/// Iterations a `while_loop` may run unless `ANEKIT_MAX_LOOP_ITERATIONS` says otherwise.
pub const DEFAULT_MAX_LOOP_ITERATIONS: usize = 1 << 20;

/// The most elements a list may have.
pub const MAX_LIST_LENGTH: usize = 1 << 20;

/// The process-wide limit set by [`set_max_loop_iterations`] (0: none set).
static LOOP_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// Set the `while_loop` iteration limit for models loaded from now on (`None`: back to
/// `ANEKIT_MAX_LOOP_ITERATIONS` or the default).
pub fn set_max_loop_iterations(limit: Option<usize>) {
    LOOP_LIMIT.store(limit.unwrap_or(0), AtomicOrdering::Relaxed);
}

/// The iteration limit of `while_loop`: the one set by [`set_max_loop_iterations`], else
/// `ANEKIT_MAX_LOOP_ITERATIONS` when set to a number, else
/// [`DEFAULT_MAX_LOOP_ITERATIONS`]. Read when a model is loaded.
pub fn max_loop_iterations() -> usize {
    match LOOP_LIMIT.load(AtomicOrdering::Relaxed) {
        0 => std::env::var("ANEKIT_MAX_LOOP_ITERATIONS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MAX_LOOP_ITERATIONS),
        n => n,
    }
}

/// Whether a scalar predicate is true.
fn truthy(v: &Value, what: &str) -> Result<bool, String> {
    let one = |n: usize| {
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{what} must be a scalar, has {n} elements"))
        }
    };
    match v {
        Value::Bool(a) => {
            one(a.len())?;
            Ok(a.iter().any(|&b| b))
        }
        Value::I32(a) => {
            one(a.len())?;
            Ok(a.iter().any(|&b| b != 0))
        }
        Value::F32(a) => {
            one(a.len())?;
            Ok(a.iter().any(|&b| b != 0.0))
        }
        v => Err(format!(
            "{what}: expected a bool scalar, got {}",
            v.describe()
        )),
    }
}

/// Run a nested block with `inputs`, taking its captures from the op's arguments.
fn run_block(
    plan: &SubPlan,
    inputs: Vec<Value>,
    args: &Args<'_>,
    ctx: &mut RunCtx<'_>,
) -> Result<Vec<Value>, String> {
    let captures = plan
        .captures
        .iter()
        .map(|(name, _)| {
            args.get(&format!("capture:{name}"))
                .cloned()
                .ok_or_else(|| format!("the nested block's capture {name:?} is not available"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut meter = Meter::default();
    exec::run(plan, inputs, captures, ctx, &mut meter).map_err(|e| e.to_string())
}

/// For each block input, whether any step or output of the block reads it.
fn inputs_used(plan: &SubPlan) -> Vec<bool> {
    plan.inputs
        .iter()
        .map(|&slot| {
            let s = Src::Slot(slot);
            plan.outputs.contains(&s)
                || plan
                    .steps
                    .iter()
                    .any(|st| st.params.iter().any(|(_, srcs)| srcs.contains(&s)))
        })
        .collect()
}

fn build_cond(ctx: &mut OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let op = ctx.op;
    let [t, f] = op.blocks.as_slice() else {
        return Err(format!("cond needs 2 blocks, has {}", op.blocks.len()));
    };
    let t = ctx.compile_block(t)?;
    let f = ctx.compile_block(f)?;
    Ok(kernel(move |args: &Args<'_>, rctx: &mut RunCtx<'_>| {
        let p = truthy(args.req("pred")?, "pred")?;
        run_block(if p { &t } else { &f }, Vec::new(), args, rctx)
    }))
}

fn build_while(ctx: &mut OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let op = ctx.op;
    let [c, b] = op.blocks.as_slice() else {
        return Err(format!(
            "while_loop needs 2 blocks (cond, body), has {}",
            op.blocks.len()
        ));
    };
    let c = ctx.compile_block(c)?;
    let b = ctx.compile_block(b)?;
    let cond_uses = inputs_used(&c);
    let limit = max_loop_iterations();
    Ok(kernel(move |args: &Args<'_>, rctx: &mut RunCtx<'_>| {
        let mut vars: Vec<Value> = args.all("loop_vars")?.into_iter().cloned().collect();
        let n = vars.len();
        let mut iterations = 0usize;
        loop {
            // The condition block gets copies of only the loop variables it reads.
            let cin = vars
                .iter()
                .zip(cond_uses.iter().chain(std::iter::repeat(&true)))
                .map(|(v, &used)| {
                    if used {
                        v.clone()
                    } else {
                        Value::List(Vec::new())
                    }
                })
                .collect();
            let out = run_block(&c, cin, args, rctx)?;
            let go = truthy(
                out.first().ok_or("the cond block returns no value")?,
                "the cond block's result",
            )?;
            if !go {
                break;
            }
            if iterations >= limit {
                return Err(format!(
                    "stopped after {limit} iterations with the condition still true \
                     (set ANEKIT_MAX_LOOP_ITERATIONS to allow more)"
                ));
            }
            vars = run_block(&b, vars, args, rctx)?;
            if vars.len() != n {
                return Err(format!(
                    "the body block returns {} values for {n} loop variables",
                    vars.len()
                ));
            }
            iterations += 1;
        }
        Ok(vars)
    }))
}

fn is_hole(v: &Value) -> bool {
    matches!(v, Value::List(items) if items.is_empty())
}

fn hole() -> Value {
    Value::List(Vec::new())
}

fn list_arg<'a>(args: &Args<'a>) -> Result<&'a Vec<Value>, String> {
    match args.req("ls")? {
        Value::List(items) => Ok(items),
        v => Err(format!("ls: expected a list, got {}", v.describe())),
    }
}

fn index_of(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|&i| i < MAX_LIST_LENGTH)
        .ok_or_else(|| format!("{what} {v} is outside [0, {MAX_LIST_LENGTH})"))
}

fn scalar_index(args: &Args<'_>, param: &str) -> Result<usize, String> {
    index_of(args.i64_or(param, 0)?, param)
}

/// Put `value` at `index`, growing the list with holes as needed.
fn put(items: &mut Vec<Value>, index: usize, value: Value) {
    if index >= items.len() {
        items.resize_with(index + 1, hole);
    }
    if let Some(slot) = items.get_mut(index) {
        *slot = value;
    }
}

fn get(items: &[Value], index: usize) -> Result<&Value, String> {
    match items.get(index) {
        Some(v) if !is_hole(v) => Ok(v),
        Some(_) => Err(format!("list element {index} was never written")),
        None => Err(format!(
            "index {index} is out of range for a list of length {}",
            items.len()
        )),
    }
}

fn make_list(args: &Args<'_>) -> Result<Value, String> {
    let n = index_of(args.i64_or("init_length", 1)?, "init_length")?;
    let dtype = args.str_or("dtype", "fp32")?;
    // A known element shape gives zero elements; symbolic dimensions (strings) give holes.
    let mut shape = Some(Vec::new());
    for v in args.all("elem_shape")? {
        match (v, shape.as_mut()) {
            (Value::Str(_), _) => shape = None,
            (v, Some(s)) => {
                let d = v.to_i64s().map_err(|e| format!("elem_shape: {e}"))?;
                for d in d {
                    s.push(dim(d, "elem_shape")?);
                }
            }
            (_, None) => {}
        }
    }
    let elem = match shape {
        None => hole(),
        Some(s) => {
            let count = checked_count(&s, "elem_shape")?;
            if count.saturating_mul(n) > MAX_ELEMENTS {
                return Err(format!(
                    "init_length {n} of elements {s:?} exceeds {MAX_ELEMENTS} elements"
                ));
            }
            let s = IxDyn(&s);
            match dtype {
                "fp16" | "fp32" | "fp64" => Value::F32(ArrayD::zeros(s)),
                "bool" => Value::Bool(ArrayD::from_elem(s, false)),
                "int8" | "uint8" | "int16" | "uint16" | "int32" | "int64" | "uint32" => {
                    Value::I32(ArrayD::zeros(s))
                }
                other => return Err(format!("dtype {other:?} is not a list element type")),
            }
        }
    };
    Ok(Value::List(vec![elem; n]))
}

fn list_gather(items: &[Value], indices: &[i64]) -> Result<Value, String> {
    let picked: Vec<&Value> = indices
        .iter()
        .map(|&i| get(items, index_of(i, "indices")?))
        .collect::<Result<_, _>>()?;
    let first = picked.first().ok_or("indices is empty")?;
    let mut shape = vec![picked.len()];
    shape.extend_from_slice(first.shape());
    checked_count(&shape, "indices")?;
    macro_rules! stack {
        ($variant:ident) => {{
            let views = picked
                .iter()
                .map(|v| match v {
                    Value::$variant(a) => Ok(a.view()),
                    v => Err(format!(
                        "list elements differ in type: {} and {}",
                        first.describe(),
                        v.describe()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Value::$variant(ndarray::stack(Axis(0), &views).map_err(|e| e.to_string())?)
        }};
    }
    Ok(match first {
        Value::F32(_) => stack!(F32),
        Value::I32(_) => stack!(I32),
        Value::Bool(_) => stack!(Bool),
        v => return Err(format!("list element {} cannot be gathered", v.describe())),
    })
}

fn list_scatter(items: &[Value], indices: &[i64], value: &Value) -> Result<Value, String> {
    let n = value.shape().first().copied().unwrap_or(0);
    if n != indices.len() {
        return Err(format!("value has {n} rows for {} indices", indices.len()));
    }
    let mut out = items.to_vec();
    for (row, &i) in indices.iter().enumerate() {
        let i = index_of(i, "indices")?;
        let v = match value {
            Value::F32(a) => Value::F32(owned(a.index_axis(Axis(0), row))),
            Value::I32(a) => Value::I32(owned(a.index_axis(Axis(0), row))),
            Value::Bool(a) => Value::Bool(owned(a.index_axis(Axis(0), row))),
            v => return Err(format!("value: expected a tensor, got {}", v.describe())),
        };
        put(&mut out, i, v);
    }
    Ok(Value::List(out))
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    Some(match ctx.op_type() {
        "cond" => build_cond(ctx),
        "while_loop" => build_while(ctx),
        "make_list" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            Ok(vec![make_list(args)?])
        })),
        "list_length" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            let n = list_arg(args)?.len();
            let n = i32::try_from(n).map_err(|_| format!("list length {n} exceeds int32"))?;
            Ok(vec![Value::I32(ArrayD::from_elem(IxDyn(&[]), n))])
        })),
        "list_write" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            let mut items = list_arg(args)?.clone();
            let i = scalar_index(args, "index")?;
            put(&mut items, i, args.req("value")?.clone());
            Ok(vec![Value::List(items)])
        })),
        "list_read" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            let items = list_arg(args)?;
            Ok(vec![get(items, scalar_index(args, "index")?)?.clone()])
        })),
        "list_gather" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            Ok(vec![list_gather(list_arg(args)?, &args.i64s("indices")?)?])
        })),
        "list_scatter" => Ok(kernel(|args: &Args<'_>, _: &mut RunCtx<'_>| {
            Ok(vec![list_scatter(
                list_arg(args)?,
                &args.i64s("indices")?,
                args.req("value")?,
            )?])
        })),
        _ => return None,
    })
}
