//! The one JSON schema of op test cases, and how a case becomes a model any backend loads.
//!
//! A case file (`crates/anekit-runtime/tests/data/{dense,misc,tensor}/*.json`, written by
//! the `make_*.py` scripts beside them from oracles nobody here wrote — PyTorch,
//! coremltools' own NumPy value inference, ONNX Runtime, NumPy) is
//!
//! ```json
//! {"generator": …, "tensors": {"key": TENSOR, …}, "cases": [CASE, …]}
//! ```
//!
//! where a CASE is either one op —
//! `{"name", "op", "opset", "inputs": {PARAM: ARG}, "outputs": [EXPECTED], "atol", "rtol",
//! "error"?, "untyped_outputs"?, "oracle"?}` — or a whole program, with `"program"` (MIL
//! text whose `main` function's inputs are bound by name in `inputs`) instead of `op`.
//!
//! - An ARG is a tensor `{"dtype", "shape", "data", "runtime"?}` (`runtime: true`: a
//!   function input, so the kernel runs at prediction time instead of being folded at
//!   load; else a literal), `{"ref": KEY, "runtime"?}` (a shared tensor of `tensors`),
//!   `{"tuple": [ARG, …]}` (a variadic parameter), `{"str": …}` or `{"bool": …}`.
//! - `data` holds numbers, booleans, or `"nan"`, `"inf"`, `"-inf"`.
//! - An EXPECTED output is a tensor `{"dtype"?, "shape", "data"}` or a `{"ref": KEY}`,
//!   compared element-wise within `atol + rtol·|expected|` (see [`crate::compare`]).
//! - `error`: the case must fail, with a message containing this text (anekit's own
//!   messages; other backends need only fail).
//! - `untyped_outputs: n`: the op declares `n` fp32 outputs of unknown shape instead of the
//!   types that inference gives (to reach a kernel's own checks with arguments that
//!   inference already refuses).
//!
//! The op's output types come from anekit-mil's type inference (coremltools'
//! `type_inference`), so a case also checks that its arguments are valid for the op.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anekit_format::proto;
use anekit_mil::model::Model;
use anekit_mil::ops::{Arg as InferArg, infer};
use anekit_mil::program::{Argument, Binding, Block, Function, Operation, Opset, Program};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::{BackendKind, ElementType, NamedTensors, Tensor};
use half::f16;
use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

/// A case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// What wrote the file (versions, script).
    #[serde(default)]
    pub generator: serde_json::Value,
    /// Tensors shared by several cases (`{"ref": key}`).
    #[serde(default)]
    pub tensors: BTreeMap<String, TensorData>,
    /// The cases.
    pub cases: Vec<Case>,
}

/// One test case: an op (or a program) with its arguments and expected outputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique name within its file.
    pub name: String,
    /// The op type (one-op cases).
    #[serde(default)]
    pub op: Option<String>,
    /// MIL text of a whole program (program cases).
    #[serde(default)]
    pub program: Option<String>,
    /// The opset (`iOS15`, `ios17`, ...) of a one-op case.
    #[serde(default)]
    pub opset: Option<String>,
    /// Arguments (one-op cases) or function inputs (program cases) by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, Arg>,
    /// Expected outputs, in order.
    #[serde(default)]
    pub outputs: Vec<Expected>,
    /// Absolute tolerance.
    #[serde(default)]
    pub atol: f64,
    /// Relative tolerance.
    #[serde(default)]
    pub rtol: f64,
    /// The case must fail with a message containing this.
    #[serde(default)]
    pub error: Option<String>,
    /// Declare this many fp32 outputs of unknown shape instead of the inferred types.
    #[serde(default)]
    pub untyped_outputs: Option<usize>,
    /// Which oracle made the expected values.
    #[serde(default)]
    pub oracle: Option<String>,
}

/// A tensor given in a case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorData {
    /// MIL dtype name (`fp32`, `int32`, ...); absent in some expected outputs.
    #[serde(default)]
    pub dtype: Option<String>,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Numbers,
    /// A function input (true) or a literal.
    #[serde(default)]
    pub runtime: bool,
}

/// An argument of a case.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Arg {
    /// A variadic parameter.
    Tuple {
        /// Its items.
        tuple: Vec<Arg>,
    },
    /// A string literal.
    Str {
        /// The string.
        str: String,
    },
    /// A boolean literal.
    Bool {
        /// The value.
        bool: bool,
    },
    /// A tensor of the file's `tensors`.
    Ref {
        /// Its key.
        r#ref: String,
        /// A function input (true) or a literal.
        #[serde(default)]
        runtime: bool,
    },
    /// A tensor.
    Tensor(TensorData),
}

/// An expected output.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expected {
    /// A tensor of the file's `tensors`.
    Ref {
        /// Its key.
        r#ref: String,
    },
    /// A tensor.
    Tensor(TensorData),
}

/// Numbers of a case file (`"nan"`, `"inf"`, `"-inf"` and booleans allowed), and whether
/// all were written as integers.
#[derive(Debug, Clone, Default)]
pub struct Numbers {
    /// The values.
    pub values: Vec<f64>,
    /// Every value was a JSON integer (and there is at least one).
    pub integers: bool,
}

impl<'de> Deserialize<'de> for Numbers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Vec::<serde_json::Value>::deserialize(d)?;
        let integers = !raw.is_empty() && raw.iter().all(|v| v.is_i64() || v.is_u64());
        let values = raw
            .iter()
            .map(|v| match v {
                serde_json::Value::Bool(b) => Ok(f64::from(u8::from(*b))),
                serde_json::Value::String(s) => match s.as_str() {
                    "nan" => Ok(f64::NAN),
                    "inf" => Ok(f64::INFINITY),
                    "-inf" => Ok(f64::NEG_INFINITY),
                    s => Err(D::Error::custom(format!("bad number {s:?}"))),
                },
                v => v
                    .as_f64()
                    .ok_or_else(|| D::Error::custom(format!("bad number {v}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { values, integers })
    }
}

/// What went wrong turning a case into a model.
#[derive(Debug, Clone, thiserror::Error)]
#[error("case {case}: {message}")]
pub struct CaseError {
    /// The case.
    pub case: String,
    /// What is wrong.
    pub message: String,
    /// The case is fine but the backend cannot take it (an input or output type it cannot
    /// exchange): a skip, not a failure.
    pub unsupported: bool,
}

impl CaseFile {
    /// Read and parse a case file.
    pub fn read(path: &Path) -> Result<Self, CaseError> {
        let err = |message: String| CaseError {
            case: path.display().to_string(),
            message,
            unsupported: false,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// The tensor an expected output stands for.
    pub fn expected<'a>(&'a self, e: &'a Expected) -> Option<&'a TensorData> {
        match e {
            Expected::Tensor(t) => Some(t),
            Expected::Ref { r#ref } => self.tensors.get(r#ref),
        }
    }
}

/// A case as a model: the model, its inputs, and its output names in the expected order.
#[derive(Debug, Clone)]
pub struct CaseModel {
    /// The model (an ML Program with a model description).
    pub model: Arc<Model>,
    /// The inputs of one prediction.
    pub inputs: NamedTensors,
    /// Output names, in the order of the case's expected outputs.
    pub outputs: Vec<String>,
}

/// The element type a backend exchanges for a MIL dtype: `None` if a runtime argument of
/// this dtype has to be a literal on `backend`. The CPU backend takes fp32, fp16, int32,
/// int8, uint8 and bool inputs; Core ML's model description only fp32, fp16 and int32 (an
/// int8 `ArrayFeatureType` exists from iOS18, not used here).
pub fn exchanged(dtype: DataType, backend: BackendKind) -> Option<ElementType> {
    let t = ElementType::from_mil(dtype)?;
    let ok = match backend {
        BackendKind::Cpu => !matches!(t, ElementType::Str | ElementType::Dict),
        BackendKind::CoreMl | BackendKind::Ane => {
            matches!(t, ElementType::F32 | ElementType::F16 | ElementType::I32)
        }
    };
    ok.then_some(t)
}

fn fail<T>(case: &Case, message: impl Into<String>) -> Result<T, CaseError> {
    Err(CaseError {
        case: case.name.clone(),
        message: message.into(),
        unsupported: false,
    })
}

fn unsupported<T>(case: &Case, message: impl Into<String>) -> Result<T, CaseError> {
    Err(CaseError {
        case: case.name.clone(),
        message: message.into(),
        unsupported: true,
    })
}

/// `data` as the little-endian bytes of a `dtype` literal.
pub fn le_bytes(dtype: DataType, data: &[f64]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() * 4);
    for &v in data {
        match dtype {
            DataType::Fp32 => out.extend((v as f32).to_le_bytes()),
            DataType::Fp16 => out.extend(f16::from_f64(v).to_le_bytes()),
            DataType::Int32 => out.extend((v as i32).to_le_bytes()),
            DataType::Int16 => out.extend((v as i16).to_le_bytes()),
            DataType::Uint16 => out.extend((v as u16).to_le_bytes()),
            DataType::Uint32 => out.extend((v as u32).to_le_bytes()),
            DataType::Int64 => out.extend((v as i64).to_le_bytes()),
            DataType::Int8 => out.extend((v as i8).to_le_bytes()),
            DataType::Uint8 => out.extend((v as u8).to_le_bytes()),
            DataType::Bool => out.push(u8::from(v != 0.0)),
            _ => return None,
        }
    }
    Some(out)
}

/// A tensor of element type `t` with this shape and data.
pub fn tensor_of(t: ElementType, shape: &[usize], data: &[f64]) -> Option<Tensor> {
    fn a<T>(shape: &[usize], v: Vec<T>) -> Option<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), v).ok()
    }
    let d = data.iter().copied();
    Some(match t {
        ElementType::F32 => Tensor::F32(a(shape, d.map(|v| v as f32).collect())?),
        ElementType::F16 => Tensor::F16(a(shape, d.map(f16::from_f64).collect())?),
        ElementType::I32 => Tensor::I32(a(shape, d.map(|v| v as i32).collect())?),
        ElementType::I8 => Tensor::I8(a(shape, d.map(|v| v as i8).collect())?),
        ElementType::U8 => Tensor::U8(a(shape, d.map(|v| v as u8).collect())?),
        ElementType::Bool => Tensor::Bool(a(shape, d.map(|v| v != 0.0).collect())?),
        ElementType::Str | ElementType::Dict => return None,
    })
}

/// The multi-array type of a feature description, if Core ML's protobuf has one.
fn array_type(t: &TensorType) -> Option<proto::FeatureType> {
    use proto::array_feature_type::ArrayDataType as A;
    let data_type = match t.dtype {
        DataType::Fp32 => A::Float32,
        DataType::Fp16 => A::Float16,
        DataType::Int32 => A::Int32,
        DataType::Int8 => A::Int8,
        DataType::Fp64 => A::Double,
        _ => return None,
    };
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.iter()
                .map(|d| d.fixed().map_or(-1, |v| v as i64))
                .collect()
        })
        .unwrap_or_default();
    Some(proto::FeatureType {
        r#type: Some(proto::feature_type::Type::MultiArrayType(
            proto::ArrayFeatureType {
                shape,
                data_type: data_type as i32,
                ..Default::default()
            },
        )),
        ..Default::default()
    })
}

/// A model of `program` (function `main`) with a description of its inputs and outputs
/// (those Core ML's protobuf can describe) and the specification version of `opset`.
pub fn model_of(program: Program, opset: Opset) -> Model {
    let describe = |v: &[NamedValueType]| {
        v.iter()
            .filter_map(|nv| {
                let t = nv.ty.as_tensor()?;
                Some(proto::FeatureDescription {
                    name: nv.name.clone(),
                    r#type: Some(array_type(t)?),
                    ..Default::default()
                })
            })
            .collect::<Vec<_>>()
    };
    let (input, output) = program
        .functions
        .get("main")
        .map_or_else(Default::default, |f| {
            let outs: Vec<NamedValueType> = f
                .block()
                .map(|b| b.outputs.clone())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|name| {
                    let mut found = None;
                    if let Some(b) = f.block() {
                        b.visit_ops(&mut |op| {
                            if let Some(o) = op.outputs.iter().find(|o| o.name == name) {
                                found = Some(o.clone());
                            }
                        });
                    }
                    found.or_else(|| f.inputs.iter().find(|i| i.name == name).cloned())
                })
                .collect();
            (describe(&f.inputs), describe(&outs))
        });
    let spec = proto::Model {
        specification_version: opset.spec_version(),
        description: Some(proto::ModelDescription {
            input,
            output,
            ..Default::default()
        }),
        ..Default::default()
    };
    Model::from_program(spec, program)
}

/// One bound value of an op argument.
enum Bound {
    Input(String, Tensor, TensorType),
    Literal(MilValue),
}

impl Case {
    /// The case as a model for `backend`: runtime arguments of element types `backend`
    /// cannot exchange ([`exchanged`]) become literals.
    pub fn model(&self, file: &CaseFile, backend: BackendKind) -> Result<CaseModel, CaseError> {
        if let Some(text) = &self.program {
            return self.program_model(file, text, backend);
        }
        let Some(op_type) = &self.op else {
            return fail(self, "neither op nor program");
        };
        let opset_name = self.opset.as_deref().unwrap_or("iOS15");
        let Some(opset) = Opset::parse(opset_name) else {
            return fail(self, format!("unknown opset {opset_name:?}"));
        };
        let mut op = Operation::new(op_type);
        let mut fn_inputs = Vec::new();
        let mut values = NamedTensors::new();
        let mut infer_args: BTreeMap<String, Vec<InferArg>> = BTreeMap::new();
        for (param, arg) in &self.inputs {
            let items: Vec<&Arg> = match arg {
                Arg::Tuple { tuple } => tuple.iter().collect(),
                a => vec![a],
            };
            let mut bindings = Vec::new();
            let mut iargs = Vec::new();
            for (k, item) in items.into_iter().enumerate() {
                match self.bind(file, item, &format!("in_{param}_{k}"), backend)? {
                    Bound::Input(name, t, ty) => {
                        fn_inputs.push(NamedValueType::new(&name, ValueType::Tensor(ty.clone())));
                        values.insert(name.clone(), t);
                        bindings.push(Binding::Name(name));
                        iargs.push(InferArg::var(ValueType::Tensor(ty)));
                    }
                    Bound::Literal(v) => {
                        bindings.push(Binding::Value(v.clone()));
                        iargs.push(InferArg::literal(v));
                    }
                }
            }
            op.inputs.insert(param.clone(), Argument(bindings));
            infer_args.insert(param.clone(), iargs);
        }
        let types = match self.untyped_outputs {
            Some(n) => vec![
                ValueType::Tensor(TensorType {
                    dtype: DataType::Fp32,
                    shape: None,
                    attributes: BTreeMap::new(),
                });
                n
            ],
            None => match infer(op_type, opset, &infer_args, &[]) {
                Ok(r) => r.outputs,
                Err(e) => return fail(self, format!("type inference: {e}")),
            },
        };
        op.outputs = types
            .iter()
            .enumerate()
            .map(|(i, t)| NamedValueType::new(format!("out{i}"), t.clone()))
            .collect();
        op.attributes
            .insert("name".into(), MilValue::string(format!("{op_type}_0")));
        if backend != BackendKind::Cpu && self.error.is_none() {
            for o in &op.outputs {
                if o.ty.as_tensor().and_then(array_type).is_none() {
                    return unsupported(
                        self,
                        format!("output of type {} cannot be exchanged with {backend}", o.ty),
                    );
                }
            }
        }
        let outputs: Vec<String> = op.outputs.iter().map(|o| o.name.clone()).collect();
        let block = Block {
            inputs: Vec::new(),
            outputs: outputs.clone(),
            operations: vec![op],
            attributes: BTreeMap::new(),
        };
        let function = Function {
            inputs: fn_inputs,
            opset: opset.proto_name().to_string(),
            blocks: BTreeMap::from([(opset.proto_name().to_string(), block)]),
            attributes: BTreeMap::new(),
        };
        let program = Program {
            version: 1,
            functions: BTreeMap::from([("main".to_string(), function)]),
            doc: String::new(),
            attributes: BTreeMap::new(),
        };
        Ok(CaseModel {
            model: Arc::new(model_of(program, opset)),
            inputs: values,
            outputs,
        })
    }

    fn bind(
        &self,
        file: &CaseFile,
        arg: &Arg,
        name: &str,
        backend: BackendKind,
    ) -> Result<Bound, CaseError> {
        let (t, runtime) = match arg {
            Arg::Str { str } => return Ok(Bound::Literal(MilValue::string(str))),
            Arg::Bool { bool } => return Ok(Bound::Literal(MilValue::bool(*bool))),
            Arg::Tuple { .. } => return fail(self, "nested tuples"),
            Arg::Ref { r#ref, runtime } => match file.tensors.get(r#ref) {
                Some(t) => (t, *runtime),
                None => return fail(self, format!("no shared tensor {ref:?}")),
            },
            Arg::Tensor(t) => (t, t.runtime),
        };
        let dname = t.dtype.as_deref().unwrap_or("fp32");
        let Some(dtype) = DataType::from_name(dname) else {
            return fail(self, format!("unknown dtype {dname:?}"));
        };
        let dims: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
        let ty = TensorType::new(dtype, &dims);
        if runtime && let Some(et) = exchanged(dtype, backend) {
            let Some(tensor) = tensor_of(et, &t.shape, &t.data.values) else {
                return fail(
                    self,
                    format!(
                        "{name}: {} values for shape {:?}",
                        t.data.values.len(),
                        t.shape
                    ),
                );
            };
            return Ok(Bound::Input(name.to_string(), tensor, ty));
        }
        let Some(bytes) = le_bytes(dtype, &t.data.values) else {
            return fail(self, format!("{name}: no literal of dtype {dname}"));
        };
        Ok(Bound::Literal(MilValue::tensor_bytes(
            ty,
            bytes,
            Placement::Inline,
        )))
    }

    fn program_model(
        &self,
        file: &CaseFile,
        text: &str,
        backend: BackendKind,
    ) -> Result<CaseModel, CaseError> {
        let program =
            match anekit_mil::text::parse_without_weights(text, &format!("{}.mil", self.name)) {
                Ok(p) => p,
                Err(e) => return fail(self, format!("MIL text: {e}")),
            };
        let Some(f) = program.functions.get("main") else {
            return fail(self, "the program has no main function");
        };
        let Some(opset) = f.known_opset() else {
            return fail(self, format!("unknown opset {:?}", f.opset));
        };
        let outputs = f.block().map(|b| b.outputs.clone()).unwrap_or_default();
        let mut inputs = NamedTensors::new();
        for decl in &f.inputs {
            let Some(arg) = self.inputs.get(&decl.name) else {
                continue;
            };
            let t = match arg {
                Arg::Tensor(t) => t,
                Arg::Ref { r#ref, .. } => match file.tensors.get(r#ref) {
                    Some(t) => t,
                    None => return fail(self, format!("no shared tensor {ref:?}")),
                },
                _ => return fail(self, format!("input {} must be a tensor", decl.name)),
            };
            let Some(tt) = decl.ty.as_tensor() else {
                return fail(self, format!("input {} is not a tensor", decl.name));
            };
            let Some(et) = exchanged(tt.dtype, backend) else {
                return fail(
                    self,
                    format!(
                        "input {} of type {} cannot be passed to {backend}",
                        decl.name, tt.dtype
                    ),
                );
            };
            let Some(tensor) = tensor_of(et, &t.shape, &t.data.values) else {
                return fail(self, format!("input {}: bad data", decl.name));
            };
            inputs.insert(decl.name.clone(), tensor);
        }
        Ok(CaseModel {
            model: Arc::new(model_of(program, opset)),
            inputs,
            outputs,
        })
    }
}
