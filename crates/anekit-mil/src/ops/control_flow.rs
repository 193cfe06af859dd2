//! Control flow, constants, `select` and lists (coremltools `ops/defs/iOS15/control_flow.py`).

use crate::program::Opset::Ios15;
use crate::types::{DataType, Dim, TensorType, ValueType};

use super::elementwise_binary::broadcast_types;
use super::infer::{InferCtx, InferError, known_shape};
use super::shape::{UNK, fixed, size, tensor};
use super::{DefaultValue as D, Family, Op, OpDef, Outputs, dom, dt, ty};

/// `const`: the type of its `val` attribute.
fn konst(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let a = ctx.arg("val").ok_or_else(|| InferError::MissingParam {
        param: "val".into(),
    })?;
    Ok(vec![a.ty.clone()])
}

/// Whether two types may be the same (dims compatible; coremltools `is_compatible_type`).
pub(crate) fn types_compatible(a: &ValueType, b: &ValueType) -> bool {
    match (a, b) {
        (ValueType::Tensor(x), ValueType::Tensor(y)) => {
            x.dtype == y.dtype
                && match (known_shape(x), known_shape(y)) {
                    (Some(p), Some(q)) => super::shape::shapes_compatible(&p, &q),
                    _ => true,
                }
        }
        (ValueType::List { element: e1, .. }, ValueType::List { element: e2, .. }) => {
            types_compatible(e1, e2)
        }
        (ValueType::State(x), ValueType::State(y)) => types_compatible(x, y),
        (ValueType::Tuple(x), ValueType::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| types_compatible(p, q))
        }
        (ValueType::Dict { key: k1, value: v1 }, ValueType::Dict { key: k2, value: v2 }) => {
            types_compatible(k1, k2) && types_compatible(v1, v2)
        }
        _ => false,
    }
}

/// `cond`: the outputs of the true branch, which must match the false branch.
fn cond(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let [t, f] = ctx.blocks else {
        return Err(InferError::invalid(format!(
            "cond needs 2 blocks, has {}",
            ctx.blocks.len()
        )));
    };
    if t.len() != f.len() {
        return Err(InferError::invalid(format!(
            "the true branch returns {} values, the false branch {}",
            t.len(),
            f.len()
        )));
    }
    for (i, (a, b)) in t.iter().zip(f).enumerate() {
        if !types_compatible(a, b) {
            return Err(InferError::invalid(format!(
                "true branch output {i} type {a} mismatches false branch output type {b}"
            )));
        }
    }
    Ok(t.clone())
}

/// `while_loop`: the outputs of the body block (one per loop variable); the condition block
/// returns one bool.
fn while_loop(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let [c, body] = ctx.blocks else {
        return Err(InferError::invalid(format!(
            "while_loop needs 2 blocks (cond, body), has {}",
            ctx.blocks.len()
        )));
    };
    match c.as_slice() {
        [ValueType::Tensor(t)] if t.dtype == DataType::Bool => {}
        _ => return Err(InferError::invalid("the cond block must return one bool")),
    }
    let n = ctx.bindings("loop_vars").len();
    if body.len() != n {
        return Err(InferError::invalid(format!(
            "the body block returns {} values for {n} loop_vars",
            body.len()
        )));
    }
    Ok(body.clone())
}

fn select(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    broadcast_types(ctx, "a", "b", None)
}

/// `make_list`: a list of `tensor<dtype, elem_shape>` of length `init_length`.
fn make_list(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let name = ctx.str("dtype")?;
    let dtype = DataType::from_name(&name)
        .ok_or_else(|| InferError::at("dtype", format!("unsupported dtype {name}")))?;
    let mut shape = Vec::new();
    for a in ctx.bindings("elem_shape") {
        let v = a.value.as_ref().ok_or_else(|| InferError::NotConstant {
            param: "elem_shape".into(),
        })?;
        shape.push(match (super::infer::scalar_i64(v), v.as_str()) {
            (Some(n), _) => fixed(n, "elem_shape")?,
            (None, Some(_)) => UNK,
            _ => {
                return Err(InferError::at(
                    "elem_shape",
                    "entries must be integers or symbol names",
                ));
            }
        });
    }
    let length = match (ctx.has("init_length"), ctx.value("init_length")) {
        (false, _) => Dim::Fixed(1),
        (true, Some(v)) => fixed(
            super::infer::scalar_i64(v)
                .ok_or_else(|| InferError::at("init_length", "must be an integer"))?,
            "init_length",
        )?,
        (true, None) => UNK,
    };
    Ok(vec![ValueType::List {
        element: Box::new(tensor(dtype, shape)),
        length,
    }])
}

fn list_parts<'a>(ctx: &InferCtx<'a>) -> Result<(&'a ValueType, &'a ValueType), InferError> {
    let a = ctx
        .arg("ls")
        .ok_or_else(|| InferError::MissingParam { param: "ls".into() })?;
    match &a.ty {
        ValueType::List { element, .. } => Ok((&a.ty, element)),
        other => Err(InferError::WrongType {
            param: "ls".into(),
            message: format!("expected a list, found {other}"),
        }),
    }
}

fn list_length(_: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    Ok(vec![ValueType::scalar(DataType::Int32)])
}

fn list_write(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (ls, elem) = list_parts(ctx)?;
    let value = &ctx
        .arg("value")
        .ok_or_else(|| InferError::MissingParam {
            param: "value".into(),
        })?
        .ty;
    if !types_compatible(value, elem) {
        return Err(InferError::at(
            "value",
            format!("element type mismatch: list element {elem} vs value {value}"),
        ));
    }
    Ok(vec![ls.clone()])
}

fn list_read(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (_, elem) = list_parts(ctx)?;
    Ok(vec![elem.clone()])
}

fn elem_tensor(elem: &ValueType) -> Result<&TensorType, InferError> {
    elem.as_tensor()
        .ok_or_else(|| InferError::at("ls", "list elements must be tensors"))
}

fn list_gather(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (_, elem) = list_parts(ctx)?;
    let e = elem_tensor(elem)?;
    let idx = ctx.shape("indices")?;
    let n = idx
        .first()
        .copied()
        .ok_or_else(|| InferError::at("indices", "indices must be a vector"))?;
    let es = known_shape(e).ok_or_else(|| InferError::Undetermined("list element rank".into()))?;
    let mut out = vec![n];
    out.extend(es);
    Ok(vec![tensor(e.dtype, out)])
}

fn list_scatter(ctx: &InferCtx<'_>) -> Result<Vec<ValueType>, InferError> {
    let (ls, elem) = list_parts(ctx)?;
    let idx = ctx.shape("indices")?;
    let val = ctx.shape("value")?;
    let (Some(ni), Some(nv)) = (idx.first(), val.first()) else {
        return Err(InferError::at(
            "value",
            "indices and value must have a leading dimension",
        ));
    };
    if let (Some(a), Some(b)) = (size(*ni), size(*nv))
        && a != b
    {
        return Err(InferError::at(
            "value",
            format!("cannot scatter {b} values to {a} indices"),
        ));
    }
    let e = elem_tensor(elem)?;
    let item = tensor(ctx.dtype("value")?, val.get(1..).unwrap_or(&[]).to_vec());
    if !types_compatible(&item, &ValueType::Tensor(e.clone())) {
        return Err(InferError::at(
            "value",
            format!("element type mismatch: list element {elem} vs value {item}"),
        ));
    }
    Ok(vec![ls.clone()])
}

pub(super) fn defs(v: &mut Vec<OpDef>) {
    use DataType::*;
    let fam = Family::ControlFlow;
    let i32s = ty(dt::I32);
    let b = ty(dt::BOOL);
    v.push(
        Op::new(Ios15, "const", fam)
            .literal("val")
            .attribute_params()
            .infer(konst),
    );
    v.push(
        Op::new(Ios15, "cond", fam)
            .input("pred", b)
            .blocks(2)
            .outputs(Outputs::Variable("the outputs of the branches"))
            .infer(cond),
    );
    v.push(
        Op::new(Ios15, "while_loop", fam)
            .tuple("loop_vars")
            .blocks(2)
            .outputs(Outputs::Variable("one per loop variable"))
            .infer(while_loop),
    );
    let t = dom("T", &[Fp16, Fp32, Bool, Int32]);
    v.push(
        Op::new(Ios15, "select", fam)
            .input("cond", b)
            .input("a", t)
            .input("b", t)
            .infer(select),
    );
    v.push(
        Op::new(Ios15, "make_list", fam)
            .opt_input("init_length", i32s, Some(D::Int(1)))
            .opt_konst("dynamic_length", b, Some(D::Bool(true)))
            .tuple("elem_shape")
            .opt_konst("dtype", ty(dt::STR), Some(D::Str("fp32")))
            .infer(make_list),
    );
    v.push(
        Op::new(Ios15, "list_length", fam)
            .list("ls", false)
            .infer(list_length),
    );
    v.push(
        Op::new(Ios15, "list_write", fam)
            .list("ls", false)
            .input("index", i32s)
            .input("value", t)
            .infer(list_write),
    );
    v.push(
        Op::new(Ios15, "list_read", fam)
            .list("ls", false)
            .input("index", i32s)
            .infer(list_read),
    );
    v.push(
        Op::new(Ios15, "list_gather", fam)
            .list("ls", false)
            .input("indices", i32s)
            .infer(list_gather),
    );
    v.push(
        Op::new(Ios15, "list_scatter", fam)
            .list("ls", false)
            .input("indices", i32s)
            .input("value", t)
            .infer(list_scatter),
    );
}
