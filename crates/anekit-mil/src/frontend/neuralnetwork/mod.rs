//! NeuralNetwork models (`.mlmodel` specification versions 1–5, the models Core ML ran
//! before ML Programs) translated into the MIL IR, the way Core ML lowers them, so that
//! analysis, compression, execution and conversion work on them after loading with no
//! special path.
//!
//! Handled model types: `neuralNetwork`, `neuralNetworkClassifier` (ends in MIL `classify`:
//! the label and the probability dictionary, as ML Program classifiers do),
//! `neuralNetworkRegressor`, and `pipeline` / `pipelineClassifier` / `pipelineRegressor`
//! whose stages are any of these (a stage of another type is an error naming it).
//!
//! Blob layout: with `arrayInputShapeMapping = RANK5_ARRAY_MAPPING` (the default, and the
//! only mapping of specification versions ≤ 3) every blob is rank 5, `[Seq, Batch, C, H,
//! W]`: a `[C]` input becomes `[1, 1, C, 1, 1]`, `[C, H, W]` becomes `[1, 1, C, H, W]`, and
//! an output is reshaped back to the shape its description gives. With
//! `EXACT_ARRAY_MAPPING` (spec ≥ 4, what coremltools writes) inputs keep their rank. Image
//! inputs are `fp32 [1, C, H, W]` tensors of pixel values (0–255, channels in the image's
//! colour order); the network's `preprocessing` (scaler or mean image) is applied in the
//! program, as coremltools does for ML Programs.
//!
//! Shapes are resolved for the default input shapes (flexible inputs run at their default
//! shape). Semantics per layer and the coverage table: docs/neuralnetwork.md.

mod builder;
pub mod coverage;
mod layers;
mod recurrent;
pub mod weights;

use std::collections::{BTreeMap, HashMap};

use anekit_format::proto::{
    self, array_feature_type::ArrayDataType, feature_type::Type as FT,
    image_feature_type::ColorSpace, model::Type as MT,
};

use crate::error::{MilError, Result};
use crate::program::{Block, Function, Opset, Program};
use crate::types::{DataType, ValueType};
use crate::value::{Value, ValueData};
use builder::{A, Builder, fixed, v};

/// The opset the translation targets (every layer lowers to iOS15 ops).
pub const OPSET: Opset = Opset::Ios15;

/// How multi-array inputs map to blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapping {
    /// `[Seq, Batch, C, H, W]` blobs.
    Rank5,
    /// Inputs keep their rank.
    Exact,
}

/// Blob name → MIL value while one network is translated.
pub(crate) struct Ctx {
    blobs: HashMap<String, String>,
    pub mapping: Mapping,
}

impl Ctx {
    fn get(&self, b: &Builder, name: &str) -> Result<String> {
        self.blobs.get(name).cloned().ok_or_else(|| {
            b.err(format!(
                "input blob {name:?} is not produced by an earlier layer nor a model input"
            ))
        })
    }

    fn set(&mut self, name: &str, var: String) {
        self.blobs.insert(name.to_string(), var);
    }
}

/// Whether a model type is one this module translates.
pub fn is_translatable(t: &MT) -> bool {
    match t {
        MT::NeuralNetwork(_) | MT::NeuralNetworkClassifier(_) | MT::NeuralNetworkRegressor(_) => {
            true
        }
        MT::Pipeline(p) => p
            .models
            .iter()
            .all(|m| m.r#type.as_ref().is_some_and(is_translatable)),
        MT::PipelineClassifier(p) => p.pipeline.as_ref().is_some_and(|p| {
            p.models
                .iter()
                .all(|m| m.r#type.as_ref().is_some_and(is_translatable))
        }),
        MT::PipelineRegressor(p) => p.pipeline.as_ref().is_some_and(|p| {
            p.models
                .iter()
                .all(|m| m.r#type.as_ref().is_some_and(is_translatable))
        }),
        _ => false,
    }
}

/// Whether a model type is a NeuralNetwork or a pipeline (the types this module is for),
/// translatable or not.
pub fn is_legacy(t: &MT) -> bool {
    matches!(
        t,
        MT::NeuralNetwork(_)
            | MT::NeuralNetworkClassifier(_)
            | MT::NeuralNetworkRegressor(_)
            | MT::Pipeline(_)
            | MT::PipelineClassifier(_)
            | MT::PipelineRegressor(_)
    )
}

/// Translate a NeuralNetwork (or pipeline) model into a one-function (`main`) ML Program.
/// Errors name the layer (or pipeline stage) that cannot be translated.
pub fn translate(spec: &proto::Model) -> Result<Program> {
    let desc = spec
        .description
        .as_ref()
        .ok_or_else(|| MilError::invalid("model", "has no description"))?;
    let mut seen = std::collections::HashSet::new();
    for f in desc.input.iter().chain(&desc.output) {
        if !seen.insert(f.name.as_str()) {
            return Err(MilError::invalid(
                format!("feature {:?}", f.name),
                "is described twice (input and output names must be unique)",
            ));
        }
    }
    let mut b = Builder::new(OPSET);
    for f in &desc.output {
        b.reserve(&f.name);
    }
    let mut features: HashMap<String, String> = HashMap::new();
    let mut inputs = Vec::new();
    for f in &desc.input {
        let ty = input_type(&b, f)?;
        inputs.push(b.input(&f.name, ty));
        features.insert(f.name.clone(), f.name.clone());
    }
    translate_model(&mut b, spec, &mut features, "model")?;
    // Outputs keep their described names.
    let mut outputs = Vec::new();
    for f in &desc.output {
        b.layer = format!("output {}", f.name);
        let var = features.get(&f.name).cloned().ok_or_else(|| {
            MilError::invalid(
                format!("output {:?}", f.name),
                "is not produced by the model",
            )
        })?;
        let var = output_cast(&mut b, &var, f)?;
        let name =
            if var == f.name || inputs.iter().any(|i| i.name == var) || outputs.contains(&var) {
                if var == f.name {
                    var
                } else {
                    let id = b.un("identity", &var)?;
                    b.rename(&id, &f.name);
                    f.name.clone()
                }
            } else if b.rename(&var, &f.name) {
                f.name.clone()
            } else {
                var
            };
        outputs.push(name);
    }
    let block = Block {
        inputs: Vec::new(),
        outputs,
        operations: std::mem::take(&mut b.ops),
        attributes: BTreeMap::new(),
    };
    let function = Function {
        inputs,
        opset: OPSET.proto_name().to_string(),
        blocks: BTreeMap::from([(OPSET.proto_name().to_string(), block)]),
        attributes: BTreeMap::new(),
    };
    Ok(Program {
        version: 1,
        functions: BTreeMap::from([("main".to_string(), function)]),
        doc: String::new(),
        attributes: BTreeMap::new(),
    })
}

/// The function-input type of a model input: multi-arrays as described (int32 kept, double
/// read as fp32), images as `fp32 [1, C, H, W]`.
fn input_type(b: &Builder, f: &proto::FeatureDescription) -> Result<crate::types::TensorType> {
    let err = |m: String| MilError::invalid(format!("input {:?}", f.name), m);
    let t = f
        .r#type
        .as_ref()
        .and_then(|t| t.r#type.as_ref())
        .ok_or_else(|| err("has no type".into()))?;
    let _ = b;
    match t {
        FT::MultiArrayType(a) => {
            let mut shape: Vec<usize> = a
                .shape
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect();
            if shape.is_empty() {
                // flexible: the lower bounds / first enumerated shape are the defaults
                shape = match &a.shape_flexibility {
                    Some(proto::array_feature_type::ShapeFlexibility::EnumeratedShapes(e)) => e
                        .shapes
                        .first()
                        .map(|s| {
                            s.shape
                                .iter()
                                .map(|&d| usize::try_from(d).unwrap_or(0))
                                .collect()
                        })
                        .unwrap_or_default(),
                    Some(proto::array_feature_type::ShapeFlexibility::ShapeRange(r)) => r
                        .size_ranges
                        .iter()
                        .map(|r| usize::try_from(r.lower_bound).unwrap_or(0))
                        .collect(),
                    None => Vec::new(),
                };
            }
            if shape.is_empty() || shape.contains(&0) {
                return Err(err(format!("multi-array shape {shape:?} is not usable")));
            }
            let dtype = match ArrayDataType::try_from(a.data_type) {
                Ok(ArrayDataType::Int32) => DataType::Int32,
                Ok(ArrayDataType::Float16) => DataType::Fp16,
                _ => DataType::Fp32,
            };
            Ok(fixed(dtype, &shape))
        }
        FT::ImageType(i) => {
            let c = image_channels(i);
            let (h, w) = (
                usize::try_from(i.height).unwrap_or(0),
                usize::try_from(i.width).unwrap_or(0),
            );
            if h == 0 || w == 0 {
                return Err(err("image input without a size".into()));
            }
            Ok(fixed(DataType::Fp32, &[1, c, h, w]))
        }
        other => Err(err(format!(
            "a {} input cannot feed a neural network",
            feature_kind(other)
        ))),
    }
}

fn image_channels(i: &proto::ImageFeatureType) -> usize {
    match ColorSpace::try_from(i.color_space) {
        Ok(ColorSpace::Grayscale | ColorSpace::GrayscaleFloat16) => 1,
        _ => 3,
    }
}

fn feature_kind(t: &FT) -> &'static str {
    match t {
        FT::Int64Type(_) => "int64",
        FT::DoubleType(_) => "double",
        FT::StringType(_) => "string",
        FT::ImageType(_) => "image",
        FT::MultiArrayType(_) => "multi-array",
        FT::DictionaryType(_) => "dictionary",
        FT::SequenceType(_) => "sequence",
        FT::StateType(_) => "state",
    }
}

/// An int32 output is cast back (NeuralNetwork blobs are floating point).
fn output_cast(b: &mut Builder, var: &str, f: &proto::FeatureDescription) -> Result<String> {
    if let Some(FT::MultiArrayType(a)) = f.r#type.as_ref().and_then(|t| t.r#type.as_ref())
        && ArrayDataType::try_from(a.data_type) == Ok(ArrayDataType::Int32)
        && b.dtype(var)? != DataType::Int32
    {
        return b.cast(var, "int32");
    }
    Ok(var.to_string())
}

/// Translate one model (the top level or a pipeline stage) reading its inputs from
/// `features` and adding its outputs there.
fn translate_model(
    b: &mut Builder,
    spec: &proto::Model,
    features: &mut HashMap<String, String>,
    what: &str,
) -> Result<()> {
    let t = spec
        .r#type
        .as_ref()
        .ok_or_else(|| MilError::invalid(what, "has no model type"))?;
    let desc = spec.description.clone().unwrap_or_default();
    match t {
        MT::NeuralNetwork(nn) => network(
            b,
            &desc,
            &nn.layers,
            &nn.preprocessing,
            nn.array_input_shape_mapping,
            nn.image_input_shape_mapping,
            None,
            features,
        ),
        MT::NeuralNetworkRegressor(nn) => network(
            b,
            &desc,
            &nn.layers,
            &nn.preprocessing,
            nn.array_input_shape_mapping,
            nn.image_input_shape_mapping,
            None,
            features,
        ),
        MT::NeuralNetworkClassifier(nn) => network(
            b,
            &desc,
            &nn.layers,
            &nn.preprocessing,
            nn.array_input_shape_mapping,
            nn.image_input_shape_mapping,
            Some(nn),
            features,
        ),
        MT::Pipeline(p) => pipeline(b, p, features, what),
        MT::PipelineClassifier(p) => {
            let p = p
                .pipeline
                .as_ref()
                .ok_or_else(|| MilError::invalid(what, "pipeline has no stages"))?;
            pipeline(b, p, features, what)
        }
        MT::PipelineRegressor(p) => {
            let p = p
                .pipeline
                .as_ref()
                .ok_or_else(|| MilError::invalid(what, "pipeline has no stages"))?;
            pipeline(b, p, features, what)
        }
        other => Err(MilError::invalid(
            what,
            format!(
                "is a {} model; only neural networks (and pipelines of them) can be translated to MIL",
                other.type_name()
            ),
        )),
    }
}

fn pipeline(
    b: &mut Builder,
    p: &proto::Pipeline,
    features: &mut HashMap<String, String>,
    what: &str,
) -> Result<()> {
    for (i, m) in p.models.iter().enumerate() {
        let name = p
            .names
            .get(i)
            .map_or_else(|| format!("{i}"), |n| format!("{i} ({n})"));
        let stage = format!("{what}: pipeline stage {name}");
        translate_model(b, m, features, &stage)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn network(
    b: &mut Builder,
    desc: &proto::ModelDescription,
    layers: &[proto::NeuralNetworkLayer],
    preprocessing: &[proto::NeuralNetworkPreprocessing],
    array_mapping: i32,
    image_mapping: i32,
    classifier: Option<&proto::NeuralNetworkClassifier>,
    features: &mut HashMap<String, String>,
) -> Result<()> {
    let mapping = if array_mapping == 1 {
        Mapping::Exact
    } else {
        Mapping::Rank5
    };
    let image_rank4 = image_mapping == 1;
    let mut ctx = Ctx {
        blobs: HashMap::new(),
        mapping,
    };
    // Inputs: feature layout → blob layout, then preprocessing.
    for f in &desc.input {
        b.layer = format!("input {}", f.name);
        let var = features.get(&f.name).cloned().ok_or_else(|| {
            b.err("is not available (not a model input nor an earlier stage's output)")
        })?;
        let t = f.r#type.as_ref().and_then(|t| t.r#type.as_ref());
        let mut blob = if b.dtype(&var)? == DataType::Fp32 {
            var.clone()
        } else {
            b.cast(&var, "fp32")?
        };
        match t {
            Some(FT::ImageType(img)) => {
                blob = preprocess(b, &blob, img, preprocessing, &f.name, desc.input.len())?;
                if !image_rank4 {
                    let s = b.shape(&blob)?;
                    let new: Vec<usize> = std::iter::once(1).chain(s).collect();
                    blob = b.reshape(&blob, &new)?;
                }
            }
            _ => {
                if mapping == Mapping::Rank5 {
                    let s = b.shape(&blob)?;
                    let new = match s.as_slice() {
                        [c] => vec![1, 1, *c, 1, 1],
                        [c, h, w] => vec![1, 1, *c, *h, *w],
                        [_, _, _, _, _] => s.clone(),
                        [sq, c, h, w] => vec![*sq, 1, *c, *h, *w],
                        other => {
                            return Err(b.err(format!(
                                "shape {other:?}: with the rank-5 blob mapping, inputs have 1, 3 or 5 dims"
                            )));
                        }
                    };
                    blob = b.reshape(&blob, &new)?;
                }
            }
        }
        ctx.set(&f.name, blob);
    }
    for l in layers {
        b.layer = format!(
            "{} ({})",
            l.name,
            l.layer.as_ref().map_or("none", |t| t.type_name())
        );
        layers::lower(b, &mut ctx, l)?;
    }
    // Outputs: blob layout → feature layout.
    for f in &desc.output {
        b.layer = format!("output {}", f.name);
        let is_label =
            !desc.predicted_feature_name.is_empty() && f.name == desc.predicted_feature_name;
        let is_probs = !desc.predicted_probabilities_name.is_empty()
            && f.name == desc.predicted_probabilities_name;
        if classifier.is_some() && (is_label || is_probs) {
            continue;
        }
        let Some(blob) = ctx.blobs.get(&f.name).cloned() else {
            return Err(b.err("is not produced by any layer"));
        };
        let out = to_feature(b, &blob, f, mapping)?;
        features.insert(f.name.clone(), out);
    }
    if let Some(c) = classifier {
        classify(b, c, desc, &ctx, layers, features)?;
    }
    Ok(())
}

/// Reshape an output blob to its described shape.
fn to_feature(
    b: &mut Builder,
    blob: &str,
    f: &proto::FeatureDescription,
    mapping: Mapping,
) -> Result<String> {
    let described: Vec<usize> = match f.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
        Some(FT::MultiArrayType(a)) => a
            .shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .collect(),
        _ => Vec::new(),
    };
    let Ok(shape) = b.shape(blob) else {
        return Ok(blob.to_string());
    };
    let count = b.count(&shape)?;
    if !described.is_empty() && crate::types::element_count(&described) == Some(count) {
        return b.reshape(blob, &described);
    }
    if mapping == Mapping::Rank5
        && let [1, 1, c, h, w] = shape.as_slice()
    {
        return b.reshape(blob, &[*c, *h, *w]);
    }
    Ok(blob.to_string())
}

/// `NeuralNetworkImageScaler` / `NeuralNetworkMeanImage` on an `fp32 [1, C, H, W]` image.
fn preprocess(
    b: &mut Builder,
    x: &str,
    img: &proto::ImageFeatureType,
    pre: &[proto::NeuralNetworkPreprocessing],
    name: &str,
    n_inputs: usize,
) -> Result<String> {
    use proto::neural_network_preprocessing::Preprocessor as P;
    let mut y = x.to_string();
    for p in pre {
        if !(p.feature_name == name || (p.feature_name.is_empty() && n_inputs == 1)) {
            continue;
        }
        let c = image_channels(img);
        match &p.preprocessor {
            Some(P::Scaler(s)) => {
                let scale = s.channel_scale;
                let bias: Vec<f32> = match (c, ColorSpace::try_from(img.color_space)) {
                    (1, _) => vec![s.gray_bias],
                    (_, Ok(ColorSpace::Bgr)) => vec![s.blue_bias, s.green_bias, s.red_bias],
                    _ => vec![s.red_bias, s.green_bias, s.blue_bias],
                };
                // channelScale 0 (unset) means 1 (coremltools writes 1.0 when not given).
                let scale = if scale == 0.0 { 1.0 } else { scale };
                if scale != 1.0 {
                    y = b.bin_scalar("mul", &y, scale)?;
                }
                if bias.iter().any(|&v| v != 0.0) {
                    let bc = b.f32s("bias", &[1, c, 1, 1], bias)?;
                    y = b.bin("add", &y, &bc)?;
                }
            }
            Some(P::MeanImage(m)) => {
                let s = b.shape(&y)?;
                let n = b.count(&s)?;
                if m.mean_image.len() != n {
                    return Err(b.err(format!(
                        "mean image of {} values for an image of {n}",
                        m.mean_image.len()
                    )));
                }
                let mv = b.f32s("mean_image", &s, m.mean_image.clone())?;
                y = b.bin("sub", &y, &mv)?;
            }
            None => {}
        }
    }
    Ok(y)
}

fn classify(
    b: &mut Builder,
    c: &proto::NeuralNetworkClassifier,
    desc: &proto::ModelDescription,
    ctx: &Ctx,
    layers: &[proto::NeuralNetworkLayer],
    features: &mut HashMap<String, String>,
) -> Result<()> {
    use proto::neural_network_classifier::ClassLabels;
    b.layer = "classifier".into();
    let probs_blob = if c.label_probability_layer_name.is_empty() {
        layers
            .last()
            .and_then(|l| l.output.first())
            .cloned()
            .ok_or_else(|| b.err("classifier without layers"))?
    } else {
        c.label_probability_layer_name.clone()
    };
    let p = ctx.get(b, &probs_blob)?;
    let n = b.count(&b.shape(&p)?)?;
    let p = b.reshape(&p, &[n])?;
    let (dtype, items): (DataType, Vec<Value>) = match &c.class_labels {
        Some(ClassLabels::StringClassLabels(s)) => (
            DataType::String,
            s.vector.iter().map(|l| Value::string(l.clone())).collect(),
        ),
        Some(ClassLabels::Int64ClassLabels(i)) => (
            DataType::Int64,
            i.vector
                .iter()
                .map(|&l| {
                    Value::tensor_bytes(
                        crate::types::TensorType::scalar(DataType::Int64),
                        l.to_le_bytes().to_vec(),
                        crate::value::Placement::Inline,
                    )
                })
                .collect(),
        ),
        None => return Err(b.err("classifier without class labels")),
    };
    if items.len() != n {
        return Err(b.err(format!(
            "{} class labels for {n} probabilities",
            items.len()
        )));
    }
    let classes = Value {
        ty: ValueType::List {
            element: Box::new(ValueType::scalar(dtype)),
            length: crate::types::Dim::Fixed(items.len() as u64),
        },
        data: ValueData::List(items),
        doc: String::new(),
    };
    let o = b.op_n(
        "classify",
        "classify",
        vec![("probabilities", v(&p)), ("classes", A::C(classes))],
    )?;
    if !desc.predicted_feature_name.is_empty() {
        features.insert(desc.predicted_feature_name.clone(), o[0].clone());
    }
    if !desc.predicted_probabilities_name.is_empty() {
        features.insert(desc.predicted_probabilities_name.clone(), o[1].clone());
    }
    Ok(())
}
