//! Removal of ops that do nothing, and folding of transpose pairs.

use std::collections::HashMap;

use super::{Pass, for_each_block, replace_uses};
use crate::error::Result;
use crate::program::{Argument, Binding, Block, Operation, Program};
use crate::types::{DataType, NamedValueType, TensorType, ValueType};
use crate::value::{Placement, Value};

/// Drops `identity`, a `reshape` whose output type equals its input type, a `transpose` by
/// the identity permutation and a `cast` to the input's own type (uses are redirected to
/// the op's input), and folds `transpose(transpose(x))` into one transpose. An op whose
/// output is a function output is kept (the model's interface names it).
#[derive(Debug, Default, Clone, Copy)]
pub struct RemoveNoOps;

fn const_ints(op: &Operation, param: &str, consts: &HashMap<String, Value>) -> Option<Vec<i64>> {
    let v = match op.input(param)? {
        Binding::Value(v) => v,
        Binding::Name(n) => consts.get(n)?,
    };
    if v.tensor_type()?.element_count()? > 16 {
        return None;
    }
    v.to_i64_vec()
}

fn tensor_of<'a>(
    op: &Operation,
    param: &str,
    types: &'a HashMap<String, ValueType>,
) -> Option<&'a TensorType> {
    match op.input(param)? {
        Binding::Name(n) => types.get(n)?.as_tensor(),
        Binding::Value(_) => None,
    }
}

fn input_name(op: &Operation, param: &str) -> Option<String> {
    match op.input(param)? {
        Binding::Name(n) => Some(n.clone()),
        Binding::Value(_) => None,
    }
}

fn fixed_equal(a: &TensorType, b: &TensorType) -> bool {
    a.dtype == b.dtype && a.fixed_shape().is_some() && a.fixed_shape() == b.fixed_shape()
}

fn rewrite(block: &mut Block, inputs: &[NamedValueType], protected: &[String]) -> usize {
    let mut types: HashMap<String, ValueType> = inputs
        .iter()
        .map(|i| (i.name.clone(), i.ty.clone()))
        .collect();
    types.extend(block.inputs.iter().map(|i| (i.name.clone(), i.ty.clone())));
    let mut consts: HashMap<String, Value> = HashMap::new();
    let mut transposes: HashMap<String, (String, Vec<i64>)> = HashMap::new();
    let mut changes = 0;
    let mut i = 0;
    while i < block.operations.len() {
        let Some(op) = block.operations.get(i) else {
            break;
        };
        for o in &op.outputs {
            types.insert(o.name.clone(), o.ty.clone());
        }
        if op.op_type == "const"
            && let (Some(o), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
        {
            consts.insert(o.name.clone(), v.clone());
        }
        let out = op.outputs.first().map(|o| (o.name.clone(), o.ty.clone()));
        let x_name = input_name(op, "x");
        let x_ty = tensor_of(op, "x", &types).cloned();
        let mut redirect: Option<String> = None;
        match (op.op_type.as_str(), &out, &x_name, &x_ty) {
            ("identity", Some(_), Some(x), _) if op.outputs.len() == 1 => {
                redirect = Some(x.clone());
            }
            (
                "reshape" | "cast" | "squeeze" | "expand_dims",
                Some((_, ValueType::Tensor(o))),
                Some(x),
                Some(xt),
            ) if fixed_equal(o, xt) => {
                redirect = Some(x.clone());
            }
            ("transpose", Some((name, _)), Some(x), _) => {
                if let Some(perm) = const_ints(op, "perm", &consts) {
                    let rank = perm.len() as i64;
                    let norm: Vec<i64> = perm
                        .iter()
                        .map(|p| if *p < 0 { p + rank } else { *p })
                        .collect();
                    if norm.iter().enumerate().all(|(k, p)| *p == k as i64) {
                        redirect = Some(x.clone());
                    } else if let Some((inner_x, inner)) = transposes.get(x).cloned()
                        && inner.len() == norm.len()
                    {
                        // transpose(transpose(a, p1), p2) = transpose(a, p1[p2[i]])
                        let composed: Option<Vec<i64>> = norm
                            .iter()
                            .map(|p| usize::try_from(*p).ok().and_then(|p| inner.get(p).copied()))
                            .collect();
                        if let Some(c) = composed
                            && let Some(op) = block.operations.get_mut(i)
                        {
                            let vals: Vec<i32> = c.iter().map(|v| *v as i32).collect();
                            let bytes: Vec<u8> =
                                vals.iter().flat_map(|v| v.to_le_bytes()).collect();
                            let perm_value = Value::tensor_bytes(
                                TensorType::new(DataType::Int32, &[vals.len() as u64]),
                                bytes,
                                Placement::Inline,
                            );
                            op.inputs
                                .insert("x".into(), Argument(vec![Binding::Name(inner_x.clone())]));
                            op.inputs
                                .insert("perm".into(), Argument(vec![Binding::Value(perm_value)]));
                            transposes.insert(name.clone(), (inner_x, c.clone()));
                            changes += 1;
                            if c.iter().enumerate().all(|(k, p)| *p == k as i64) {
                                redirect = input_name(op, "x");
                            }
                        }
                    } else {
                        transposes.insert(name.clone(), (x.clone(), norm));
                    }
                }
            }
            _ => {}
        }
        if let (Some(to), Some((from, _))) = (redirect, out)
            && !protected.contains(&from)
        {
            block.operations.remove(i);
            replace_uses(block, &from, &to);
            transposes.retain(|_, (x, _)| x != &from);
            changes += 1;
            continue;
        }
        // nested blocks: their outputs may be renamed freely
        if let Some(op) = block.operations.get_mut(i) {
            for b in &mut op.blocks {
                let scope: Vec<NamedValueType> = types
                    .iter()
                    .map(|(n, t)| NamedValueType::new(n.clone(), t.clone()))
                    .collect();
                changes += rewrite(b, &scope, &[]);
            }
        }
        i += 1;
    }
    changes
}

impl Pass for RemoveNoOps {
    fn name(&self) -> &str {
        "remove-no-ops"
    }

    fn run(&self, program: &mut Program) -> Result<usize> {
        for_each_block(program, |b, inputs| {
            let protected = b.outputs.clone();
            Ok(rewrite(b, inputs, &protected))
        })
    }
}
