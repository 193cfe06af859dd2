//! Neural Engine rewrites: MIL passes (for [`anekit_mil::passes::PassManager`]) behind
//! `anekit optimize`.
//!
//! - [`RaiseNormEpsilon`] (safe, on by default): normalisation epsilons that vanish in fp16
//!   are raised to 1e-7, as Apple's distilbert does (`MLANE` distilbert.py).
//! - [`Fp16Compute`] (opt-in, changes results within fp16 precision): an fp32-typed program
//!   computes in fp16 with the model's inputs and outputs unchanged, like coremltools'
//!   `compute_precision=FLOAT16`; fp32-typed programs cannot use the Neural Engine
//!   (`CT-TYPED`).
//! - [`LinearToConv`] (opt-in, exact): `linear` on rank-2/3 activations becomes a 1×1
//!   `conv` in the channels-first layout (`APPLE-ART` Principle 1).
//!
//! Every pass keeps the function's inputs, outputs and their types; the pass manager
//! validates the program after each pass.

use std::collections::{BTreeSet, HashMap};

use anekit_mil::ops::{ParamKind, registry};
use anekit_mil::passes::{Pass, defined_names, for_each_block, replace_uses, unique_name};
use anekit_mil::value::{Placement, Value};
use anekit_mil::{
    Argument, Binding, Block, DataType, MilError, NamedValueType, Operation, Opset, Program,
    TensorType, ValueType,
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

/// Convert an fp32-typed program to fp16 compute: fp32 inputs are cast to fp16 on entry,
/// fp32 constants become fp16, every op whose parameters accept fp16 computes in fp16, and
/// outputs are cast back to their declared fp32 type. Ops that cannot take fp16 (and ops
/// with nested blocks) keep computing in fp32 with casts around them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fp16Compute;

impl Pass for Fp16Compute {
    fn name(&self) -> &str {
        "fp16-compute"
    }

    fn run(&self, program: &mut Program) -> MilResult<usize> {
        let mut n = 0;
        for (fname, f) in program.functions.iter_mut() {
            let opset = f
                .known_opset()
                .ok_or_else(|| MilError::invalid(format!("function {fname}"), "unknown opset"))?;
            let inputs = f.inputs.clone();
            if let Some(b) = f.block_mut() {
                n += fp16_block(b, &inputs, opset)?;
            }
        }
        Ok(n)
    }
}

fn to_fp16(v: &Value) -> Option<Value> {
    let t = v.tensor_type()?;
    if t.dtype != DataType::Fp32 {
        return None;
    }
    let f = v.to_f32_vec()?;
    let bytes: Vec<u8> = f
        .iter()
        .flat_map(|x| f16::from_f32(*x).to_le_bytes())
        .collect();
    let placement = v
        .tensor_data()
        .map_or(Placement::Auto, |d| match d.placement {
            Placement::Inline => Placement::Inline,
            _ => Placement::Auto,
        });
    Some(Value::tensor_bytes(
        TensorType {
            dtype: DataType::Fp16,
            shape: t.shape.clone(),
            attributes: t.attributes.clone(),
        },
        bytes,
        placement,
    ))
}

fn with_dtype(t: &ValueType, d: DataType) -> ValueType {
    match t {
        ValueType::Tensor(t) => ValueType::Tensor(TensorType {
            dtype: d,
            shape: t.shape.clone(),
            attributes: t.attributes.clone(),
        }),
        other => other.clone(),
    }
}

fn dtype_of(t: &ValueType) -> Option<DataType> {
    t.as_tensor().map(|t| t.dtype)
}

struct Fp16State {
    types: HashMap<String, ValueType>,
    consts: HashMap<String, Value>,
    /// fp32 value → its fp16 twin (casts and converted constants).
    half: HashMap<String, String>,
    /// fp16 value (converted from an fp32 original) → an fp32 twin.
    full: HashMap<String, String>,
    taken: BTreeSet<String>,
}

impl Fp16State {
    fn cast(&mut self, x: &str, to: DataType, out: &mut Vec<Operation>) -> Option<String> {
        let ty = self.types.get(x)?.clone();
        let name = unique_name(&format!("{x}_to_{}", to.name()), &mut self.taken);
        let mut c = new_op(
            "cast",
            &name,
            NamedValueType::new(&name, with_dtype(&ty, to)),
        );
        c.inputs.insert("x".into(), name_arg(x));
        c.inputs
            .insert("dtype".into(), lit(Value::string(to.name())));
        self.types.insert(name.clone(), with_dtype(&ty, to));
        out.push(c);
        Some(name)
    }

    /// The fp16 version of fp32 value `x` (a converted constant or a cast).
    fn half_of(&mut self, x: &str, out: &mut Vec<Operation>) -> Option<String> {
        if let Some(h) = self.half.get(x) {
            return Some(h.clone());
        }
        let h = if let Some(v) = self.consts.get(x).and_then(to_fp16) {
            let name = unique_name(&format!("{x}_fp16"), &mut self.taken);
            let mut c = new_op("const", &name, NamedValueType::new(&name, v.ty.clone()));
            self.types.insert(name.clone(), v.ty.clone());
            c.attributes.insert("val".into(), v);
            out.push(c);
            name
        } else {
            self.cast(x, DataType::Fp16, out)?
        };
        self.half.insert(x.to_string(), h.clone());
        Some(h)
    }

    /// An fp32 version of fp16 value `x` that stands for an fp32 original.
    fn full_of(&mut self, x: &str, out: &mut Vec<Operation>) -> Option<String> {
        if let Some(f) = self.full.get(x) {
            return Some(f.clone());
        }
        let f = self.cast(x, DataType::Fp32, out)?;
        self.full.insert(x.to_string(), f.clone());
        Some(f)
    }
}

fn fp16_block(b: &mut Block, inputs: &[NamedValueType], opset: Opset) -> MilResult<usize> {
    let mut st = Fp16State {
        types: inputs
            .iter()
            .map(|i| (i.name.clone(), i.ty.clone()))
            .collect(),
        consts: HashMap::new(),
        half: HashMap::new(),
        full: HashMap::new(),
        taken: defined_names(b),
    };
    st.taken.extend(inputs.iter().map(|i| i.name.clone()));
    // Names of values that were fp32 in the original program and are now fp16.
    let mut converted: BTreeSet<String> = BTreeSet::new();
    let mut out: Vec<Operation> = Vec::with_capacity(b.operations.len() * 2);
    let mut changes = 0;
    for mut op in std::mem::take(&mut b.operations) {
        if op.op_type == "const" {
            if let (Some(o), Some(v)) = (op.outputs.first(), op.attributes.get("val")) {
                st.consts.insert(o.name.clone(), v.clone());
                st.types.insert(o.name.clone(), o.ty.clone());
            }
            out.push(op);
            continue;
        }
        let def = registry().get(&op.op_type, opset);
        let produces_fp32 = op
            .outputs
            .iter()
            .any(|o| dtype_of(&o.ty) == Some(DataType::Fp32));
        // Which inputs are fp32 (originally), and may each take fp16?
        let mut convertible = def.is_some() && op.blocks.is_empty() && op.op_type != "cast";
        let mut any_fp32 = produces_fp32;
        for (param, arg) in &op.inputs {
            let pdef = def.and_then(|d| d.param(param));
            let allows16 = matches!(pdef.map(|p| p.kind), Some(ParamKind::Tensor(d)) if d.allows(DataType::Fp16));
            for bnd in &arg.0 {
                let (is32, is_const) = match bnd {
                    Binding::Name(n) => (
                        converted.contains(n)
                            || st.types.get(n).and_then(dtype_of) == Some(DataType::Fp32),
                        st.consts.contains_key(n),
                    ),
                    Binding::Value(v) => (
                        v.tensor_type().is_some_and(|t| t.dtype == DataType::Fp32),
                        true,
                    ),
                };
                if is32 {
                    any_fp32 = true;
                    if !allows16 && !is_const {
                        convertible = false;
                    }
                }
            }
        }
        if !any_fp32 {
            out.push(op);
            continue;
        }
        let mut pre = Vec::new();
        if convertible {
            let def = def.ok_or_else(|| MilError::invalid("fp16-compute", "no op definition"))?;
            for (param, arg) in op.inputs.iter_mut() {
                let allows16 = matches!(def.param(param).map(|p| p.kind), Some(ParamKind::Tensor(d)) if d.allows(DataType::Fp16));
                if !allows16 {
                    continue;
                }
                for bnd in &mut arg.0 {
                    match bnd {
                        Binding::Name(n) => {
                            if converted.contains(n) {
                                continue; // already fp16
                            }
                            if st.types.get(n).and_then(dtype_of) == Some(DataType::Fp32)
                                && let Some(h) = st.half_of(n, &mut pre)
                            {
                                *n = h;
                            }
                        }
                        Binding::Value(v) => {
                            if let Some(h) = to_fp16(v) {
                                *v = h;
                            }
                        }
                    }
                }
            }
            for o in &mut op.outputs {
                if dtype_of(&o.ty) == Some(DataType::Fp32) {
                    o.ty = with_dtype(&o.ty, DataType::Fp16);
                    converted.insert(o.name.clone());
                }
            }
            changes += 1;
        } else {
            // stays fp32: converted inputs are cast back
            for arg in op.inputs.values_mut() {
                for bnd in &mut arg.0 {
                    if let Binding::Name(n) = bnd
                        && converted.contains(n)
                        && let Some(f) = st.full_of(n, &mut pre)
                    {
                        *n = f;
                    }
                }
            }
        }
        for o in &op.outputs {
            st.types.insert(o.name.clone(), o.ty.clone());
        }
        out.extend(pre);
        out.push(op);
    }
    // Outputs keep their declared fp32 type: the producer gets a new name, a cast takes the
    // original one.
    let outputs = b.outputs.clone();
    b.operations = out;
    for o in &outputs {
        if !converted.contains(o) {
            continue;
        }
        let inner = unique_name(&format!("{o}_fp16"), &mut st.taken);
        for op in &mut b.operations {
            for out in &mut op.outputs {
                if &out.name == o {
                    out.name = inner.clone();
                }
            }
        }
        replace_uses(b, o, &inner);
        // replace_uses renamed the block output too: point it back at the cast.
        for bo in &mut b.outputs {
            if bo == &inner {
                *bo = o.clone();
            }
        }
        let ty = st
            .types
            .get(o)
            .cloned()
            .unwrap_or(ValueType::scalar(DataType::Fp16));
        let mut c = new_op(
            "cast",
            o,
            NamedValueType::new(o, with_dtype(&ty, DataType::Fp32)),
        );
        c.inputs.insert("x".into(), name_arg(&inner));
        c.inputs.insert("dtype".into(), lit(Value::string("fp32")));
        b.operations.push(c);
    }
    Ok(changes)
}
