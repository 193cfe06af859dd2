//! The model-level target: a MIL program goes the whole way — parse, validate, analyze for
//! a chip, and run on the CPU backend on small inputs — and a structure-aware mutator that
//! changes programs the way a hostile or broken converter would: shapes, dtypes, op
//! parameters, references, op types.
//!
//! The input is MIL text (the `model.mil` of a compiled model), optionally followed by
//! [`crate::SEPARATOR`] and a weight file, as for [`crate::mil_text`]. Accepted (`true`)
//! when the program validates, the analysis succeeds and the CPU run succeeds; every stage
//! must answer anything with a value or an error.

use std::sync::Arc;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::types::{DataType, Dim, TensorType, ValueType};
use anekit_mil::{Binding, Block, Operation, Program, Value};
use anekit_runtime::{Backend, LoadOptions, NamedTensors, Tensor};

/// Largest element count of any value the CPU run may produce (declared by the program and
/// checked by validation); larger programs are validated and analyzed but not run.
pub const MAX_RUN_ELEMENTS: u64 = 1 << 16;

/// Iterations a `while_loop` may make in a fuzzed run.
pub const MAX_LOOP_ITERATIONS: usize = 64;

/// Parse, validate, analyze and (when every value is small and fixed) run a program.
pub fn model(data: &[u8]) -> bool {
    let Some(program) = crate::parse_mil(data) else {
        return false;
    };
    let valid = anekit_mil::validate::validate(&program).is_ok();
    let small = valid && runnable(&program);
    let opset = program.functions.get("main").and_then(|f| f.known_opset());
    let spec = proto::Model {
        specification_version: opset.map_or(9, |o| o.spec_version()),
        ..Default::default()
    };
    let model = Arc::new(Model::from_program(spec, program));
    // The analysis of an invalid program must be an error or a report, never a panic.
    let options = anekit_plan::Options {
        chip: "M1".into(),
        compare: false,
        ..Default::default()
    };
    let analyzed = anekit_plan::analyze_model(&model, &options).is_ok();
    if !small {
        return false;
    }
    anekit_runtime::cpu::kernels::control::set_max_loop_iterations(Some(MAX_LOOP_ITERATIONS));
    let load = LoadOptions {
        threads: Some(1),
        ..LoadOptions::default()
    };
    let Ok(instance) = anekit_runtime::cpu::CpuBackend.load(model, &load) else {
        return false;
    };
    let Some(inputs) = inputs_for(instance.inputs()) else {
        return false;
    };
    let ran = if instance.states().is_empty() {
        instance.predict(&inputs).is_ok()
    } else {
        let mut state = anekit_runtime::State::new(instance.states());
        instance.predict_with_state(&inputs, &mut state).is_ok()
    };
    valid && analyzed && ran
}

/// Whether every value the program declares has a fixed shape of at most
/// [`MAX_RUN_ELEMENTS`] elements (lists and tuples: their element types).
fn runnable(program: &Program) -> bool {
    fn small(t: &ValueType) -> bool {
        match t {
            ValueType::Tensor(t) => t
                .element_count()
                .is_some_and(|n| n <= MAX_RUN_ELEMENTS && t.fixed_shape().is_some()),
            ValueType::List { element, .. } => small(element),
            ValueType::State(inner) => small(inner),
            ValueType::Tuple(items) => items.iter().all(small),
            _ => false,
        }
    }
    fn block_ok(b: &Block) -> bool {
        b.inputs.iter().all(|i| small(&i.ty))
            && b.operations
                .iter()
                .all(|op| op.outputs.iter().all(|o| small(&o.ty)) && op.blocks.iter().all(block_ok))
    }
    program
        .functions
        .values()
        .all(|f| f.inputs.iter().all(|i| small(&i.ty)) && f.block().is_some_and(block_ok))
}

/// Deterministic small inputs for a model: floats in [-2, 2), integers in [0, 4), bools
/// alternating.
fn inputs_for(specs: &[anekit_runtime::FeatureSpec]) -> Option<NamedTensors> {
    let mut out = NamedTensors::new();
    for s in specs {
        let shape = s.shape.default_shape().to_vec();
        let n: usize = shape.iter().product();
        let ints: Vec<i32> = (0..n).map(|i| (i % 4) as i32).collect();
        let t = match s.dtype {
            anekit_runtime::ElementType::F32 | anekit_runtime::ElementType::F16 => {
                let v = (0..n).map(|i| ((i * 7) % 16) as f32 / 4.0 - 2.0).collect();
                Tensor::f32(&shape, v).ok()?.cast(s.dtype)
            }
            anekit_runtime::ElementType::Str | anekit_runtime::ElementType::Dict => return None,
            other => Tensor::i32(&shape, ints).ok()?.cast(other),
        };
        out.insert(s.name.clone(), t);
    }
    Some(out)
}

// ------------------------------------------------------------------------------------------
// Structure-aware mutation
// ------------------------------------------------------------------------------------------

/// SplitMix64 (deterministic from the fuzzer's seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// What a mutation can change.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Shape,
    Dtype,
    Parameter,
    Reference,
    OpType,
    DropOp,
}

const KINDS: [Kind; 6] = [
    Kind::Shape,
    Kind::Dtype,
    Kind::Parameter,
    Kind::Reference,
    Kind::OpType,
    Kind::DropOp,
];

const DTYPES: [DataType; 6] = [
    DataType::Fp32,
    DataType::Fp16,
    DataType::Int32,
    DataType::Bool,
    DataType::Int8,
    DataType::Uint8,
];

/// Mutate a MIL-text input structurally (`seed` picks what and how); `None` if it does not
/// parse (the byte-level mutator then takes over). The weight file part, if any, is kept.
pub fn mutate(data: &[u8], seed: u64) -> Option<Vec<u8>> {
    let mut parts = crate::split(data);
    let text = std::str::from_utf8(parts.next()?).ok()?;
    let rest: Vec<&[u8]> = parts.collect();
    let weights = rest.first().copied();
    let mut program = match weights {
        Some(w) => crate::parse_mil_with(text, w)?,
        None => anekit_mil::text::parse_without_weights(text, "fuzz/model.mil").ok()?,
    };
    let mut rng = Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B);
    let rounds = 1 + rng.below(3);
    for _ in 0..rounds {
        let kind = KINDS[rng.below(KINDS.len())];
        mutate_program(&mut program, kind, &mut rng);
    }
    let mut out = anekit_mil::text::print(&program).into_bytes();
    if let Some(w) = weights {
        out.extend_from_slice(crate::SEPARATOR);
        out.extend_from_slice(w);
    }
    Some(out)
}

/// Every op of `b` and its nested blocks, as (path of op indices).
fn op_paths(b: &Block, prefix: &mut Vec<(usize, usize)>, out: &mut Vec<Vec<(usize, usize)>>) {
    for (i, op) in b.operations.iter().enumerate() {
        prefix.push((i, usize::MAX));
        out.push(prefix.clone());
        prefix.pop();
        for (bi, nb) in op.blocks.iter().enumerate() {
            prefix.push((i, bi));
            op_paths(nb, prefix, out);
            prefix.pop();
        }
    }
}

fn op_at<'a>(b: &'a mut Block, path: &[(usize, usize)]) -> Option<&'a mut Operation> {
    let ((i, bi), rest) = path.split_first()?;
    let op = b.operations.get_mut(*i)?;
    if *bi == usize::MAX {
        return Some(op);
    }
    op_at(op.blocks.get_mut(*bi)?, rest)
}

fn mutate_program(p: &mut Program, kind: Kind, rng: &mut Rng) {
    let names: Vec<String> = p.functions.keys().cloned().collect();
    let Some(fname) = names.get(rng.below(names.len())) else {
        return;
    };
    let Some(f) = p.functions.get_mut(fname) else {
        return;
    };
    // Every value name defined in the function (for rewiring references).
    let mut defined: Vec<String> = f.inputs.iter().map(|i| i.name.clone()).collect();
    if let Some(b) = f.block() {
        b.visit_ops(&mut |op| defined.extend(op.outputs.iter().map(|o| o.name.clone())));
    }
    if matches!(kind, Kind::Shape | Kind::Dtype) && !f.inputs.is_empty() && rng.below(3) == 0 {
        let i = rng.below(f.inputs.len());
        if let Some(input) = f.inputs.get_mut(i) {
            mutate_type(&mut input.ty, kind, rng);
        }
        return;
    }
    let Some(block) = f.block_mut() else { return };
    let mut paths = Vec::new();
    op_paths(block, &mut Vec::new(), &mut paths);
    let Some(path) = paths.get(rng.below(paths.len())).cloned() else {
        return;
    };
    if let (Kind::DropOp, [(i, _)]) = (kind, path.as_slice()) {
        // Drop a top-level op: its outputs become undefined references.
        if *i < block.operations.len() {
            block.operations.remove(*i);
        }
        return;
    }
    let Some(op) = op_at(block, &path) else {
        return;
    };
    match kind {
        Kind::Shape | Kind::Dtype => {
            let k = rng.below(op.outputs.len().max(1));
            if let Some(o) = op.outputs.get_mut(k) {
                mutate_type(&mut o.ty, kind, rng);
            } else if let Some(v) = op.attributes.get_mut("val") {
                mutate_value(v, rng);
            }
        }
        Kind::Parameter => {
            let params: Vec<String> = op.inputs.keys().cloned().collect();
            let from_inputs = params.get(rng.below(params.len())).and_then(|k| {
                let arg = op.inputs.get_mut(k)?;
                let n = arg.0.len();
                match arg.0.get_mut(rng.below(n))? {
                    Binding::Value(v) => Some(v),
                    Binding::Name(_) => None,
                }
            });
            match from_inputs {
                Some(v) => mutate_value(v, rng),
                None => {
                    if let Some(v) = op.attributes.get_mut("val") {
                        mutate_value(v, rng);
                    } else if let Some(k) = params.get(rng.below(params.len())) {
                        // Drop a parameter.
                        op.inputs.remove(k);
                    }
                }
            }
        }
        Kind::Reference => {
            let params: Vec<String> = op.inputs.keys().cloned().collect();
            let Some(k) = params.get(rng.below(params.len())) else {
                return;
            };
            let Some(arg) = op.inputs.get_mut(k) else {
                return;
            };
            let n = arg.0.len();
            if let Some(b) = arg.0.get_mut(rng.below(n)) {
                let target = match rng.below(8) {
                    0 => format!("undefined_{}", rng.below(4)),
                    _ => defined
                        .get(rng.below(defined.len()))
                        .cloned()
                        .unwrap_or_default(),
                };
                *b = Binding::Name(target);
            }
        }
        Kind::OpType => {
            let reg = anekit_mil::ops::registry();
            let all: Vec<&str> = reg.iter().map(|(name, _)| name).collect();
            if let Some(t) = all.get(rng.below(all.len())) {
                op.op_type = (*t).to_string();
            }
        }
        Kind::DropOp => {}
    }
}

fn mutate_type(ty: &mut ValueType, kind: Kind, rng: &mut Rng) {
    let ValueType::Tensor(t) = ty else {
        return;
    };
    match kind {
        Kind::Dtype => t.dtype = DTYPES[rng.below(DTYPES.len())],
        _ => mutate_shape(t, rng),
    }
}

fn mutate_shape(t: &mut TensorType, rng: &mut Rng) {
    let shape = t.shape.get_or_insert_with(Vec::new);
    match rng.below(6) {
        0 => shape.push(Dim::Fixed(1 + rng.below(4) as u64)),
        1 => {
            shape.pop();
        }
        2 if !shape.is_empty() => {
            let i = rng.below(shape.len());
            shape[i] = Dim::Unknown { variadic: false };
        }
        3 => t.shape = None,
        _ if !shape.is_empty() => {
            let i = rng.below(shape.len());
            let d = match &shape[i] {
                Dim::Fixed(d) => *d,
                Dim::Unknown { .. } => 1,
            };
            let choices = [0, 1, d + 1, d.saturating_sub(1), d * 2, u64::from(u32::MAX)];
            shape[i] = Dim::Fixed(choices[rng.below(choices.len())]);
        }
        _ => {}
    }
}

fn mutate_value(v: &mut Value, rng: &mut Rng) {
    if let Some(b) = v.as_bool() {
        *v = Value::bool(!b);
        return;
    }
    if let Some(s) = v.as_str() {
        let choices = ["valid", "same", "custom", "fp16", "int32", "", "DEFAULT", s];
        *v = Value::string(choices[rng.below(choices.len())]);
        return;
    }
    if let Some(i) = v.as_i64() {
        let choices = [
            0,
            1,
            -1,
            i + 1,
            i - 1,
            i * 2,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
        ];
        *v = Value::int32(choices[rng.below(choices.len())] as i32);
        return;
    }
    let Some(t) = v.tensor_type().cloned() else {
        return;
    };
    let Some(bytes) = v.bytes().map(|b| b.to_vec()) else {
        return;
    };
    let mut bytes = bytes;
    match rng.below(3) {
        // Flip bytes (NaN, inf, huge indices, negative sizes).
        0 if !bytes.is_empty() => {
            let i = rng.below(bytes.len());
            bytes[i] ^= 1 << rng.below(8);
        }
        // Data of another length than the type says.
        1 => {
            bytes.truncate(bytes.len() / 2);
        }
        _ => {
            let mut t = t.clone();
            mutate_shape(&mut t, rng);
            *v = Value::tensor_bytes(t, bytes, anekit_mil::value::Placement::Inline);
            return;
        }
    }
    *v = Value::tensor_bytes(t, bytes, anekit_mil::value::Placement::Inline);
}
