//! A summary of a model — what `anekit inspect` shows: format, version, functions, typed
//! inputs/outputs/states (flexible shapes included), metadata, op histogram, parameter count,
//! weight bytes per data type and the compression ops present.
//!
//! The summary is data (serde); the CLI renders it as a table or JSON.

use std::collections::BTreeMap;

use anekit_format::proto;
use anekit_format::proto::array_feature_type::{ArrayDataType, ShapeFlexibility};
use anekit_format::proto::feature_type::Type as FT;
use serde::Serialize;

use crate::model::Model;
use crate::program::{Binding, Block, Function, Operation, Program};
use crate::types::{Dim, NamedValueType, ValueType};
use crate::value::{Value, ValueData};

/// Everything `inspect` reports about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// Model type as named in the protobuf (`mlProgram`, `neuralNetwork`, `pipeline`, ...).
    pub model_type: String,
    /// Specification version.
    pub spec_version: i32,
    /// The OS releases that introduced this specification version.
    pub minimum_os: String,
    /// Functions (ML Programs; one entry `main` for single-function models).
    pub functions: Vec<FunctionSummary>,
    /// The function that runs by default.
    pub default_function: Option<String>,
    /// Inputs of the default function.
    pub inputs: Vec<FeatureSummary>,
    /// Outputs of the default function.
    pub outputs: Vec<FeatureSummary>,
    /// States of the default function (iOS18+ stateful models).
    pub states: Vec<FeatureSummary>,
    /// Model metadata.
    pub metadata: MetadataSummary,
    /// Op type → count over the default function, nested blocks included (for NeuralNetwork
    /// models and pipelines of them: layer type → count; their MIL translation is in
    /// `functions`).
    pub op_counts: BTreeMap<String, usize>,
    /// Parameters and weight storage.
    pub parameters: ParameterSummary,
    /// Compression (constexpr) ops present in any function, by op type.
    pub compression: BTreeMap<String, usize>,
}

/// One function of an ML Program.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSummary {
    /// Function name.
    pub name: String,
    /// Opset as written in the model (`CoreML8`).
    pub opset: String,
    /// Opset as an OS name (`iOS18`), if known.
    pub opset_os: Option<String>,
    /// Number of ops, nested blocks included.
    pub op_count: usize,
    /// Op type → count, nested blocks included.
    pub op_counts: BTreeMap<String, usize>,
    /// Typed inputs as the program declares them.
    pub inputs: Vec<FeatureSummary>,
    /// Outputs as the program declares them.
    pub outputs: Vec<FeatureSummary>,
    /// Whether this is the default function.
    pub is_default: bool,
}

/// An input, output or state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeatureSummary {
    /// Name.
    pub name: String,
    /// `tensor`, `image`, `state`, `int64`, `double`, `string`, `dictionary`, `sequence`.
    pub kind: String,
    /// Element type (`fp32`, `fp16`, `int32`, ...; `uint8` for images).
    pub dtype: String,
    /// The default shape (`-1` for a dimension unknown to the program).
    pub shape: Vec<i64>,
    /// How the shape may vary, if it may.
    pub flexible: Option<Flexibility>,
    /// Whether the feature is optional.
    pub optional: bool,
    /// Description from the model, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A flexible shape.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flexibility {
    /// Each dimension within a range (`upper` `None` = unbounded).
    Range {
        /// `(lower, upper)` per dimension.
        ranges: Vec<(u64, Option<u64>)>,
    },
    /// One of several shapes.
    Enumerated {
        /// The allowed shapes.
        shapes: Vec<Vec<i64>>,
    },
}

impl FeatureSummary {
    /// The shape as text: `[1, 3, 224, 224]`, `[1, 1..64, 32]`, `[1, 8] | [1, 16]`, or
    /// `unspecified` for a multi-array whose description gives no shape.
    pub fn shape_text(&self) -> String {
        if self.shape.is_empty() && self.flexible.is_none() && self.kind == "tensor" {
            return "unspecified".into();
        }
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        match &self.flexible {
            Some(Flexibility::Range { ranges }) if ranges.len() == self.shape.len() => {
                let dims: Vec<String> = ranges
                    .iter()
                    .zip(&self.shape)
                    .map(|((lo, hi), d)| match hi {
                        Some(hi) if hi == lo => d.to_string(),
                        Some(hi) => format!("{lo}..{hi}"),
                        None => format!("{lo}.."),
                    })
                    .collect();
                list(&dims)
            }
            Some(Flexibility::Enumerated { shapes }) => shapes
                .iter()
                .map(|s| list(&s.iter().map(i64::to_string).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
                .join(" | "),
            _ => list(
                &self
                    .shape
                    .iter()
                    .map(|&d| {
                        if d < 0 {
                            "?".to_string()
                        } else {
                            d.to_string()
                        }
                    })
                    .collect::<Vec<_>>(),
            ),
        }
    }
}

/// Model metadata.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MetadataSummary {
    /// Short description.
    pub short_description: String,
    /// Author.
    pub author: String,
    /// Licence.
    pub license: String,
    /// Version string.
    pub version: String,
    /// User-defined key/value pairs (coremltools records its version and the source framework).
    pub user_defined: BTreeMap<String, String>,
}

/// Parameter count and weight storage.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ParameterSummary {
    /// Elements of the floating-point constants that compute ops consume, after
    /// decompression (what frameworks call the parameter count).
    pub count: u64,
    /// Stored bytes of constant tensor data by element type (compressed weights counted as
    /// stored: int4 data, LUTs, masks, ...). Shared weights are counted once.
    pub bytes_by_dtype: BTreeMap<String, u64>,
    /// Sum of `bytes_by_dtype`.
    pub total_bytes: u64,
}

/// The OS releases of a specification version (Model.proto's comment).
pub fn minimum_os(spec_version: i32) -> &'static str {
    match spec_version {
        i32::MIN..=0 => "unknown",
        1 => "iOS 11 / macOS 10.13",
        2 => "iOS 11.2 / macOS 10.13.2",
        3 => "iOS 12 / macOS 10.14",
        4 => "iOS 13 / macOS 10.15",
        5 => "iOS 14 / macOS 11",
        6 => "iOS 15 / macOS 12",
        7 => "iOS 16 / macOS 13",
        8 => "iOS 17 / macOS 14",
        9 => "iOS 18 / macOS 15",
        10 => "iOS 26 / macOS 26",
        _ => "newer than iOS 26 / macOS 26",
    }
}

impl ModelSummary {
    /// Summarise `model`.
    pub fn of(model: &Model) -> Self {
        let desc = model.description();
        let default_function = default_function(model);
        let functions = model
            .program
            .as_ref()
            .map(|p| {
                p.functions
                    .iter()
                    .map(|(name, f)| {
                        function_summary(name, f, default_function.as_deref() == Some(name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (inputs, outputs, states) = io_of(model, default_function.as_deref());
        let op_counts = match &model.program {
            // A translated NeuralNetwork is summarised by its layers.
            Some(_) if model.spec.r#type.is_some() => layer_counts(&model.spec),
            Some(p) => default_function
                .as_deref()
                .and_then(|n| p.functions.get(n))
                .and_then(Function::block)
                .map(Block::op_counts)
                .unwrap_or_default(),
            None => layer_counts(&model.spec),
        };
        let metadata = desc
            .and_then(|d| d.metadata.as_ref())
            .map(metadata_summary)
            .unwrap_or_default();
        let (parameters, compression) = model
            .program
            .as_ref()
            .map(parameter_summary)
            .unwrap_or_default();
        ModelSummary {
            model_type: model.type_name().to_string(),
            spec_version: model.spec_version(),
            minimum_os: minimum_os(model.spec_version()).to_string(),
            functions,
            default_function,
            inputs,
            outputs,
            states,
            metadata,
            op_counts,
            parameters,
            compression,
        }
    }
}

fn default_function(model: &Model) -> Option<String> {
    let p = model.program.as_ref()?;
    if let Some(d) = model.description()
        && !d.default_function_name.is_empty()
        && p.functions.contains_key(&d.default_function_name)
    {
        return Some(d.default_function_name.clone());
    }
    p.main_function().map(|(n, _)| n.to_string())
}

fn function_summary(name: &str, f: &Function, is_default: bool) -> FunctionSummary {
    let op_counts = f.block().map(Block::op_counts).unwrap_or_default();
    let outputs = f
        .block()
        .map(|b| {
            b.outputs
                .iter()
                .map(|o| {
                    let ty = output_type(b, o);
                    ty.map(|t| mil_feature(&NamedValueType::new(o.clone(), t.clone())))
                        .unwrap_or_else(|| FeatureSummary {
                            name: o.clone(),
                            kind: "unknown".into(),
                            dtype: String::new(),
                            shape: Vec::new(),
                            flexible: None,
                            optional: false,
                            description: String::new(),
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    FunctionSummary {
        name: name.to_string(),
        opset: f.opset.clone(),
        opset_os: f.known_opset().map(|o| o.to_string()),
        op_count: op_counts.values().sum(),
        op_counts,
        inputs: f.inputs.iter().map(mil_feature).collect(),
        outputs,
        is_default,
    }
}

fn output_type<'a>(b: &'a Block, name: &str) -> Option<&'a ValueType> {
    b.operations
        .iter()
        .rev()
        .flat_map(|op| op.outputs.iter())
        .find(|o| o.name == name)
        .map(|o| &o.ty)
        .or_else(|| b.inputs.iter().find(|i| i.name == name).map(|i| &i.ty))
}

/// A feature from the program's own declaration (used when the model has no description,
/// e.g. compiled models).
fn mil_feature(n: &NamedValueType) -> FeatureSummary {
    let (kind, t) = match &n.ty {
        ValueType::State(inner) => ("state", inner.as_tensor()),
        ValueType::Tensor(t) => ("tensor", Some(t)),
        _ => ("other", None),
    };
    let shape = t
        .and_then(|t| t.shape.as_ref())
        .map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(v) => i64::try_from(*v).unwrap_or(i64::MAX),
                    Dim::Unknown { .. } => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    FeatureSummary {
        name: n.name.clone(),
        kind: kind.into(),
        dtype: t.map(|t| t.dtype.name().to_string()).unwrap_or_default(),
        shape,
        flexible: None,
        optional: false,
        description: String::new(),
    }
}

fn io_of(
    model: &Model,
    function: Option<&str>,
) -> (
    Vec<FeatureSummary>,
    Vec<FeatureSummary>,
    Vec<FeatureSummary>,
) {
    // What the program declares (the only source for compiled models without a
    // description, and the shapes coremltools leaves empty for flexible outputs).
    let declared = model
        .program
        .as_ref()
        .and_then(|p| function.and_then(|n| p.functions.get(n).map(|f| (f, n))))
        .map(|(f, name)| function_summary(name, f, true));
    let fill = |mut v: Vec<FeatureSummary>, from: &[FeatureSummary]| {
        for f in v.iter_mut().filter(|f| f.shape.is_empty()) {
            if let Some(d) = from.iter().find(|d| d.name == f.name) {
                f.shape = d.shape.clone();
            }
        }
        v
    };
    let convert =
        |v: &[proto::FeatureDescription]| v.iter().map(feature_summary).collect::<Vec<_>>();
    let described = model.description().and_then(|d| {
        if !d.functions.is_empty() {
            let f = d
                .functions
                .iter()
                .find(|f| Some(f.name.as_str()) == function)
                .or(d.functions.first())?;
            Some((convert(&f.input), convert(&f.output), convert(&f.state)))
        } else if !d.input.is_empty() || !d.output.is_empty() {
            Some((convert(&d.input), convert(&d.output), convert(&d.state)))
        } else {
            None
        }
    });
    match (described, declared) {
        (Some((i, o, s)), Some(decl)) => (fill(i, &decl.inputs), fill(o, &decl.outputs), s),
        (Some(d), None) => d,
        (None, Some(decl)) => {
            let (states, inputs) = decl.inputs.into_iter().partition(|i| i.kind == "state");
            (inputs, decl.outputs, states)
        }
        (None, None) => Default::default(),
    }
}

/// The MIL spelling of a multi-array element type.
fn array_dtype(v: i32) -> String {
    match ArrayDataType::try_from(v) {
        Ok(ArrayDataType::Float32) => "fp32",
        Ok(ArrayDataType::Float16) => "fp16",
        Ok(ArrayDataType::Double) => "fp64",
        Ok(ArrayDataType::Int32) => "int32",
        Ok(ArrayDataType::Int8) => "int8",
        _ => "invalid",
    }
    .to_string()
}

/// Summarise one feature description.
pub fn feature_summary(f: &proto::FeatureDescription) -> FeatureSummary {
    let mut s = FeatureSummary {
        name: f.name.clone(),
        kind: "unknown".into(),
        dtype: String::new(),
        shape: Vec::new(),
        flexible: None,
        optional: f.r#type.as_ref().is_some_and(|t| t.is_optional),
        description: f.short_description.clone(),
    };
    let Some(ty) = f.r#type.as_ref().and_then(|t| t.r#type.as_ref()) else {
        return s;
    };
    let array = |s: &mut FeatureSummary, a: &proto::ArrayFeatureType| {
        s.dtype = array_dtype(a.data_type);
        s.shape = a.shape.clone();
        s.flexible = match &a.shape_flexibility {
            Some(ShapeFlexibility::EnumeratedShapes(e)) => Some(Flexibility::Enumerated {
                shapes: e.shapes.iter().map(|s| s.shape.clone()).collect(),
            }),
            Some(ShapeFlexibility::ShapeRange(r)) => Some(Flexibility::Range {
                ranges: r
                    .size_ranges
                    .iter()
                    .map(|r| (r.lower_bound, u64::try_from(r.upper_bound).ok()))
                    .collect(),
            }),
            None => None,
        };
        if let (Some(Flexibility::Range { ranges }), true) = (&s.flexible, s.shape.is_empty()) {
            s.shape = ranges
                .iter()
                .map(|(lo, _)| i64::try_from(*lo).unwrap_or(i64::MAX))
                .collect();
        }
    };
    match ty {
        FT::MultiArrayType(a) => {
            s.kind = "tensor".into();
            array(&mut s, a);
        }
        FT::StateType(st) => {
            s.kind = "state".into();
            if let Some(proto::state_feature_type::Type::ArrayType(a)) = &st.r#type {
                array(&mut s, a);
            }
        }
        FT::ImageType(i) => {
            s.kind = "image".into();
            let space = proto::image_feature_type::ColorSpace::try_from(i.color_space).ok();
            let channels = match space {
                Some(proto::image_feature_type::ColorSpace::Grayscale)
                | Some(proto::image_feature_type::ColorSpace::GrayscaleFloat16) => 1,
                _ => 3,
            };
            s.dtype = match space {
                Some(proto::image_feature_type::ColorSpace::GrayscaleFloat16) => "fp16".into(),
                _ => "uint8".into(),
            };
            s.shape = vec![1, channels, i.height, i.width];
            s.description = format!(
                "{}{}image {:?}",
                s.description,
                if s.description.is_empty() { "" } else { "; " },
                space.map(|c| c.as_str_name()).unwrap_or("INVALID")
            );
        }
        FT::Int64Type(_) => {
            s.kind = "int64".into();
            s.dtype = "int64".into();
        }
        FT::DoubleType(_) => {
            s.kind = "double".into();
            s.dtype = "fp64".into();
        }
        FT::StringType(_) => {
            s.kind = "string".into();
            s.dtype = "string".into();
        }
        FT::DictionaryType(d) => {
            use proto::dictionary_feature_type::KeyType;
            s.kind = "dictionary".into();
            // Core ML's dictionaries map int64 or string keys to doubles.
            s.dtype = match d.key_type {
                Some(KeyType::Int64KeyType(_)) => "dict<int64, fp64>".into(),
                Some(KeyType::StringKeyType(_)) => "dict<string, fp64>".into(),
                None => "dict".into(),
            };
        }
        FT::SequenceType(_) => s.kind = "sequence".into(),
    }
    s
}

fn metadata_summary(m: &proto::Metadata) -> MetadataSummary {
    MetadataSummary {
        short_description: m.short_description.clone(),
        author: m.author.clone(),
        license: m.license.clone(),
        version: m.version_string.clone(),
        user_defined: m
            .user_defined
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Layer type → count for NeuralNetwork models (and the NeuralNetworks inside pipelines),
/// the sub-networks of `loop` and `branch` layers included.
fn layer_counts(spec: &proto::Model) -> BTreeMap<String, usize> {
    use proto::model::Type as T;
    use proto::neural_network_layer::Layer as L;
    fn add(
        layers: &[proto::NeuralNetworkLayer],
        counts: &mut BTreeMap<String, usize>,
        depth: usize,
    ) {
        // Protobuf decoding already bounds nesting; stay bounded here too.
        if depth > 64 {
            return;
        }
        for l in layers {
            let name = l.layer.as_ref().map(|l| l.type_name()).unwrap_or("unknown");
            *counts.entry(name.to_string()).or_insert(0) += 1;
            let subs: Vec<&proto::NeuralNetwork> = match &l.layer {
                Some(L::Loop(p)) => p
                    .condition_network
                    .iter()
                    .chain(p.body_network.iter())
                    .collect(),
                Some(L::Branch(p)) => p.if_branch.iter().chain(p.else_branch.iter()).collect(),
                _ => Vec::new(),
            };
            for nn in subs {
                add(&nn.layers, counts, depth + 1);
            }
        }
    }
    let mut counts = BTreeMap::new();
    let mut stack = vec![spec];
    while let Some(m) = stack.pop() {
        match &m.r#type {
            Some(T::NeuralNetwork(nn)) => add(&nn.layers, &mut counts, 0),
            Some(T::NeuralNetworkClassifier(nn)) => add(&nn.layers, &mut counts, 0),
            Some(T::NeuralNetworkRegressor(nn)) => add(&nn.layers, &mut counts, 0),
            Some(T::Pipeline(p)) => stack.extend(p.models.iter()),
            Some(T::PipelineClassifier(p)) => {
                stack.extend(p.pipeline.iter().flat_map(|p| p.models.iter()))
            }
            Some(T::PipelineRegressor(p)) => {
                stack.extend(p.pipeline.iter().flat_map(|p| p.models.iter()))
            }
            _ => {}
        }
    }
    counts
}

fn parameter_summary(p: &Program) -> (ParameterSummary, BTreeMap<String, usize>) {
    let mut s = ParameterSummary::default();
    let mut compression = BTreeMap::new();
    // Weights shared between functions (same blob) are counted once.
    let mut seen_blobs = std::collections::HashSet::new();
    let mut seen_params = std::collections::HashSet::new();
    for (fname, f) in &p.functions {
        let Some(block) = f.block() else { continue };
        // Outputs of constant ops, and which of them feed a compute op.
        let mut constant_outputs: BTreeMap<&str, &Operation> = BTreeMap::new();
        block.visit_ops(&mut |op: &Operation| {
            if op.is_constant() {
                for o in &op.outputs {
                    constant_outputs.insert(o.name.as_str(), op);
                }
            }
            if op.op_type.starts_with("constexpr_") {
                *compression.entry(op.op_type.clone()).or_insert(0) += 1;
            }
        });
        let mut count_value = |v: &Value, s: &mut ParameterSummary| {
            visit_tensor_values(v, &mut |v| {
                let (Some(t), Some(b)) = (v.tensor_type(), v.bytes()) else {
                    return;
                };
                if let Some(crate::value::TensorData {
                    placement: crate::value::Placement::Blob { source: Some(r) },
                    ..
                }) = v.tensor_data()
                    && !seen_blobs.insert((r.file.clone(), r.offset))
                {
                    return;
                }
                *s.bytes_by_dtype
                    .entry(t.dtype.name().to_string())
                    .or_insert(0) += b.len() as u64;
                s.total_bytes += b.len() as u64;
            });
        };
        block.visit_ops(&mut |op: &Operation| {
            if op.is_constant() {
                for v in op
                    .attributes
                    .iter()
                    .filter(|(k, _)| k.as_str() != "name")
                    .map(|(_, v)| v)
                {
                    count_value(v, &mut s);
                }
                for arg in op.inputs.values() {
                    for b in &arg.0 {
                        if let Binding::Value(v) = b {
                            count_value(v, &mut s);
                        }
                    }
                }
            } else {
                for arg in op.inputs.values() {
                    for b in &arg.0 {
                        if let Binding::Name(n) = b {
                            let Some(src) = constant_outputs.get(n.as_str()) else {
                                continue;
                            };
                            let Some(out) = src.outputs.iter().find(|o| &o.name == n) else {
                                continue;
                            };
                            let Some(t) = out.ty.as_tensor() else {
                                continue;
                            };
                            // Scalars (epsilons, alphas) are not parameters.
                            if t.dtype.is_float()
                                && !t.is_scalar()
                                && seen_params.insert((fname.clone(), n.clone()))
                            {
                                // Shared weights of multifunction models: count by source blob.
                                let shared = src.attributes.get("val").and_then(|v| {
                                    match v.tensor_data() {
                                        Some(crate::value::TensorData {
                                            placement:
                                                crate::value::Placement::Blob { source: Some(r) },
                                            ..
                                        }) => Some((r.file.clone(), r.offset)),
                                        _ => None,
                                    }
                                });
                                if let Some(key) = shared
                                    && !seen_params.insert((key.0, key.1.to_string()))
                                {
                                    continue;
                                }
                                // Declared types come from the file unchecked: saturate.
                                s.count = s.count.saturating_add(t.element_count().unwrap_or(0));
                            }
                        }
                    }
                }
            }
        });
    }
    (s, compression)
}

fn visit_tensor_values<'a>(v: &'a Value, f: &mut impl FnMut(&'a Value)) {
    match &v.data {
        ValueData::Tensor(_) => f(v),
        ValueData::Tuple(vs) | ValueData::List(vs) => {
            vs.iter().for_each(|v| visit_tensor_values(v, f))
        }
        ValueData::Dict(kv) => kv.iter().for_each(|(k, v)| {
            visit_tensor_values(k, f);
            visit_tensor_values(v, f);
        }),
        ValueData::None => {}
    }
}
