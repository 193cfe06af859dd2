//! Neural Engine rewrites: MIL passes (for [`anekit_mil::passes::PassManager`]) behind
//! `anekit optimize`.
//!
//! - [`RaiseNormEpsilon`] (safe, on by default): normalisation epsilons that vanish in fp16
//!   are raised to 1e-7, as Apple's distilbert does (`MLANE` distilbert.py).
//! - fp16 compute (opt-in, changes results within fp16 precision) is not here: it is
//!   [`anekit_mil::passes::Fp16ComputePrecision`], the coremltools-faithful conversion that
//!   `anekit compress --fp16` runs too; [`crate::optimize_passes`] adds it.
//! - [`LinearToConv`] (opt-in, exact): `linear` on rank-2/3 activations becomes a 1×1
//!   `conv` in the channels-first layout (`APPLE-ART` Principle 1).
//!
//! Every pass keeps the function's inputs, outputs and their types; the pass manager
//! validates the program after each pass.

use std::collections::{BTreeSet, HashMap};

use anekit_mil::passes::{Pass, defined_names, for_each_block, unique_name};
use anekit_mil::value::{Placement, Value};
use anekit_mil::{
    Argument, Binding, Block, DataType, NamedValueType, Operation, Program, TensorType, ValueType,
};
use half::f16;

type MilResult<T> = anekit_mil::Result<T>;

fn lit_i32s(v: &[i32]) -> Binding {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Binding::Value(Value::tensor_bytes(
        TensorType::new(DataType::Int32, &[v.len() as u64]),
        bytes,
        Placement::Inline,
    ))
}

fn lit(v: Value) -> Argument {
    Argument(vec![Binding::Value(v)])
}

fn name_arg(n: &str) -> Argument {
    Argument(vec![Binding::Name(n.to_string())])
}

fn new_op(op_type: &str, name: &str, out: NamedValueType) -> Operation {
    let mut op = Operation::new(op_type);
    op.attributes.insert("name".into(), Value::string(name));
    op.outputs.push(out);
    op
}

/// A scalar of `dtype` (fp16 or fp32) holding `v`.
fn float_scalar(dtype: DataType, v: f32) -> Value {
    let bytes = match dtype {
        DataType::Fp16 => f16::from_f32(v).to_le_bytes().to_vec(),
        _ => v.to_le_bytes().to_vec(),
    };
    Value::tensor_bytes(TensorType::scalar(dtype), bytes, Placement::Inline)
}

/// Raise normalisation epsilons below `min` (or zero in fp16) to `min`.
#[derive(Debug, Clone, Copy)]
pub struct RaiseNormEpsilon {
    /// The smallest epsilon kept.
    pub min: f32,
}

impl Default for RaiseNormEpsilon {
    fn default() -> Self {
        Self { min: 1e-7 }
    }
}

fn eps_value(op: &Operation, consts: &HashMap<String, Value>) -> Option<Value> {
    match op.input("epsilon")? {
        Binding::Value(v) => Some(v.clone()),
        Binding::Name(n) => consts.get(n).cloned(),
    }
}

impl Pass for RaiseNormEpsilon {
    fn name(&self) -> &str {
        "raise-norm-epsilon"
    }

    fn run(&self, program: &mut Program) -> MilResult<usize> {
        let min = self.min;
        for_each_block(program, |b, _| {
            let mut consts: HashMap<String, Value> = HashMap::new();
            let mut n = 0;
            for op in &mut b.operations {
                if op.op_type == "const"
                    && let (Some(o), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
                {
                    consts.insert(o.name.clone(), v.clone());
                    continue;
                }
                if !matches!(
                    op.op_type.as_str(),
                    "layer_norm" | "batch_norm" | "instance_norm" | "l2_norm"
                ) {
                    continue;
                }
                let Some(v) = eps_value(op, &consts) else {
                    continue;
                };
                if v.tensor_type().and_then(|t| t.element_count()) != Some(1) {
                    continue;
                }
                let (Some(eps), Some(t)) = (v.as_f32(), v.tensor_type()) else {
                    continue;
                };
                let dtype = t.dtype;
                let zero_in_fp16 = dtype == DataType::Fp16 && eps == 0.0;
                if (eps < min || zero_in_fp16) && matches!(dtype, DataType::Fp16 | DataType::Fp32) {
                    op.inputs
                        .insert("epsilon".into(), lit(float_scalar(dtype, min)));
                    n += 1;
                }
            }
            Ok(n)
        })
    }
}

/// Rewrite `linear` on rank-2 or rank-3 activations with a constant weight as an exact 1×1
/// `conv` in the (B, C, 1, S) layout, with the reshapes/transposes around it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinearToConv;

impl Pass for LinearToConv {
    fn name(&self) -> &str {
        "linear-to-conv"
    }

    fn run(&self, program: &mut Program) -> MilResult<usize> {
        for_each_block(program, |b, inputs| Ok(linear_to_conv(b, inputs)))
    }
}

fn linear_to_conv(b: &mut Block, inputs: &[NamedValueType]) -> usize {
    let mut taken = defined_names(b);
    taken.extend(inputs.iter().map(|i| i.name.clone()));
    let mut types: HashMap<String, ValueType> = inputs
        .iter()
        .map(|i| (i.name.clone(), i.ty.clone()))
        .collect();
    let mut consts: HashMap<String, Value> = HashMap::new();
    let mut out_ops: Vec<Operation> = Vec::with_capacity(b.operations.len());
    let mut n = 0;
    for op in std::mem::take(&mut b.operations) {
        for o in &op.outputs {
            types.insert(o.name.clone(), o.ty.clone());
        }
        if op.op_type == "const"
            && let (Some(o), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
        {
            consts.insert(o.name.clone(), v.clone());
        }
        match rewrite_linear(&op, &types, &consts, &mut taken) {
            Some(ops) => {
                out_ops.extend(ops);
                n += 1;
            }
            None => out_ops.push(op),
        }
    }
    b.operations = out_ops;
    n
}

fn rewrite_linear(
    op: &Operation,
    types: &HashMap<String, ValueType>,
    consts: &HashMap<String, Value>,
    taken: &mut BTreeSet<String>,
) -> Option<Vec<Operation>> {
    if op.op_type != "linear" || op.outputs.len() != 1 {
        return None;
    }
    let Binding::Name(x) = op.input("x")? else {
        return None;
    };
    let xt = types.get(x)?.as_tensor()?.clone();
    let xs = xt.fixed_shape()?;
    let w = match op.input("weight")? {
        Binding::Name(n) => consts.get(n)?.clone(),
        Binding::Value(v) => v.clone(),
    };
    let wt = w.tensor_type()?.clone();
    let [nout, nin] = wt.fixed_shape()?[..] else {
        return None;
    };
    if !matches!(xt.dtype, DataType::Fp16 | DataType::Fp32) || xs.last() != Some(&nin) {
        return None;
    }
    let bytes = w.bytes()?.clone();
    let out = op.outputs.first()?;
    let base = op.display_name().to_string();
    let dt = xt.dtype;
    let mut ops = Vec::new();
    // weight [N, K] → [N, K, 1, 1]: same bytes, new type
    let wname = unique_name(&format!("{base}_conv_weight"), taken);
    let mut wop = new_op(
        "const",
        &wname,
        NamedValueType::new(&wname, ValueType::tensor(wt.dtype, &[nout, nin, 1, 1])),
    );
    wop.attributes.insert(
        "val".into(),
        Value::tensor_bytes(
            TensorType::new(wt.dtype, &[nout, nin, 1, 1]),
            bytes,
            Placement::Auto,
        ),
    );
    ops.push(wop);
    // x → (B, K, 1, S)
    let (b4, s_len, pre): (u64, u64, Vec<Operation>) = match xs.as_slice() {
        [bsz, _k] => {
            let nm = unique_name(&format!("{base}_bc11"), taken);
            let mut r = new_op(
                "reshape",
                &nm,
                NamedValueType::new(&nm, ValueType::tensor(dt, &[*bsz, nin, 1, 1])),
            );
            r.inputs.insert("x".into(), name_arg(x));
            r.inputs.insert(
                "shape".into(),
                Argument(vec![lit_i32s(&[
                    i32::try_from(*bsz).ok()?,
                    i32::try_from(nin).ok()?,
                    1,
                    1,
                ])]),
            );
            (*bsz, 1, vec![r])
        }
        [bsz, s, _k] => {
            let t = unique_name(&format!("{base}_bcs"), taken);
            let mut tr = new_op(
                "transpose",
                &t,
                NamedValueType::new(&t, ValueType::tensor(dt, &[*bsz, nin, *s])),
            );
            tr.inputs.insert("x".into(), name_arg(x));
            tr.inputs
                .insert("perm".into(), Argument(vec![lit_i32s(&[0, 2, 1])]));
            let e = unique_name(&format!("{base}_bc1s"), taken);
            let mut ex = new_op(
                "expand_dims",
                &e,
                NamedValueType::new(&e, ValueType::tensor(dt, &[*bsz, nin, 1, *s])),
            );
            ex.inputs.insert("x".into(), name_arg(&t));
            ex.inputs
                .insert("axes".into(), Argument(vec![lit_i32s(&[2])]));
            (*bsz, *s, vec![tr, ex])
        }
        _ => return None,
    };
    let conv_in = pre.last()?.outputs.first()?.name.clone();
    ops.extend(pre);
    let c = unique_name(&format!("{base}_conv"), taken);
    let mut conv = new_op(
        "conv",
        &c,
        NamedValueType::new(&c, ValueType::tensor(dt, &[b4, nout, 1, s_len])),
    );
    conv.inputs.insert("x".into(), name_arg(&conv_in));
    conv.inputs.insert("weight".into(), name_arg(&wname));
    if let Some(bias) = op.inputs.get("bias") {
        conv.inputs.insert("bias".into(), bias.clone());
    }
    conv.inputs
        .insert("strides".into(), Argument(vec![lit_i32s(&[1, 1])]));
    conv.inputs
        .insert("pad_type".into(), lit(Value::string("valid")));
    conv.inputs
        .insert("pad".into(), Argument(vec![lit_i32s(&[0, 0, 0, 0])]));
    conv.inputs
        .insert("dilations".into(), Argument(vec![lit_i32s(&[1, 1])]));
    conv.inputs.insert("groups".into(), lit(Value::int32(1)));
    ops.push(conv);
    // back to the linear's layout, under the linear's output name
    match xs.len() {
        2 => {
            let mut r = new_op("reshape", op.display_name(), out.clone());
            r.inputs.insert("x".into(), name_arg(&c));
            r.inputs.insert(
                "shape".into(),
                Argument(vec![lit_i32s(&[
                    i32::try_from(b4).ok()?,
                    i32::try_from(nout).ok()?,
                ])]),
            );
            ops.push(r);
        }
        _ => {
            let sq = unique_name(&format!("{base}_bcs_out"), taken);
            let mut s = new_op(
                "squeeze",
                &sq,
                NamedValueType::new(&sq, ValueType::tensor(dt, &[b4, nout, s_len])),
            );
            s.inputs.insert("x".into(), name_arg(&c));
            s.inputs
                .insert("axes".into(), Argument(vec![lit_i32s(&[2])]));
            ops.push(s);
            let mut tr = new_op("transpose", op.display_name(), out.clone());
            tr.inputs.insert("x".into(), name_arg(&sq));
            tr.inputs
                .insert("perm".into(), Argument(vec![lit_i32s(&[0, 2, 1])]));
            ops.push(tr);
        }
    }
    Some(ops)
}
