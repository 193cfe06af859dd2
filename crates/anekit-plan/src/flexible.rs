//! Range-flexible inputs made enumerated: the fix `anekit analyze` names for the
//! `range-flexible` rule (an op whose shape depends on a range-flexible input does not run on
//! the Neural Engine; enumerated shapes do: `FORUM-724930`, coremltools' flexible-inputs
//! guide `CT-FLEX`).
//!
//! The result is what coremltools writes for `ct.EnumeratedShapes(shapes, default)`: the
//! input's description keeps its default `shape`, its `shapeRange` is replaced by
//! `enumeratedShapes` listing the default first and then the other shapes in the order given;
//! the ML Program is unchanged (its function input keeps the unknown dimension, as
//! coremltools leaves it: compare `fixtures/models/flexible_range_fp16_ios17` and
//! `flexible_enum_fp16_ios17`, converted from the same network).

use anekit_format::proto;
use anekit_format::proto::array_feature_type::{EnumeratedShapes, Shape, ShapeFlexibility};
use anekit_format::proto::feature_type::Type as FeatureKind;
use anekit_format::proto::{FeatureDescription, SizeRange};
use serde::Serialize;

use crate::error::{PlanError, Result};

/// Most shapes one input may enumerate (a sanity bound: every shape is a specialisation
/// Core ML may compile).
pub const MAX_SHAPES: usize = 256;

/// `NAME=SHAPE[,SHAPE…]`: the shapes an input should enumerate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumerateRequest {
    /// The input's name.
    pub input: String,
    /// The shapes, as given.
    pub shapes: Vec<Vec<i64>>,
}

impl EnumerateRequest {
    /// Parse `frames=1x1024,16x1024,64x1024` (dimensions separated by `x`, shapes by `,`).
    pub fn parse(arg: &str) -> Result<Self> {
        let bad = |why: String| PlanError::Model(format!("--enumerate {arg}: {why}"));
        let (name, list) = arg
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=SHAPE[,SHAPE...], e.g. x=1x8x16,1x8x32".into()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("no input name before `=`".into()));
        }
        let mut shapes = Vec::new();
        for s in list.split(',') {
            let s = s.trim();
            if s.is_empty() {
                return Err(bad("an empty shape".into()));
            }
            let dims = s
                .split(['x', 'X'])
                .map(|d| {
                    d.trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| bad(format!("`{d}` in `{s}` is not a positive integer")))
                })
                .collect::<Result<Vec<i64>>>()?;
            shapes.push(dims);
        }
        if shapes.len() > MAX_SHAPES {
            return Err(bad(format!(
                "{} shapes (at most {MAX_SHAPES})",
                shapes.len()
            )));
        }
        Ok(Self {
            input: name.to_string(),
            shapes,
        })
    }
}

/// What [`enumerate_input`] changed in one description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnumerateChange {
    /// The input.
    pub input: String,
    /// The function whose description changed (`None`: the model-level description).
    pub function: Option<String>,
    /// The range it had, per dimension (`upper` -1: unbounded).
    pub range: Vec<(i64, i64)>,
    /// The default shape, kept.
    pub default: Vec<i64>,
    /// The enumerated shapes written, default first.
    pub shapes: Vec<Vec<i64>>,
    /// Whether the default shape was not among the shapes asked for (and was added).
    pub added_default: bool,
}

fn shape_text(s: &[i64]) -> String {
    s.iter().map(i64::to_string).collect::<Vec<_>>().join("x")
}

fn apply(
    f: &mut FeatureDescription,
    req: &EnumerateRequest,
    function: Option<String>,
) -> Result<EnumerateChange> {
    let err = |why: String| {
        PlanError::Model(format!(
            "--enumerate {}{}: {why}",
            req.input,
            function
                .as_deref()
                .map(|f| format!(" (function {f})"))
                .unwrap_or_default()
        ))
    };
    let Some(FeatureKind::MultiArrayType(a)) = f.r#type.as_mut().and_then(|t| t.r#type.as_mut())
    else {
        return Err(err("only multi-array inputs have enumerable shapes".into()));
    };
    let ranges: Vec<(i64, i64)> = match &a.shape_flexibility {
        Some(ShapeFlexibility::ShapeRange(r)) => r
            .size_ranges
            .iter()
            .map(|s: &SizeRange| (s.lower_bound as i64, s.upper_bound))
            .collect(),
        Some(ShapeFlexibility::EnumeratedShapes(e)) => {
            return Err(err(format!(
                "already enumerated ({})",
                e.shapes
                    .iter()
                    .map(|s| shape_text(&s.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        None => {
            return Err(err(format!(
                "has a fixed shape {}; nothing to enumerate",
                shape_text(&a.shape)
            )));
        }
    };
    if ranges.len() != a.shape.len() {
        return Err(err(format!(
            "its range has {} dimensions but its default shape {}",
            ranges.len(),
            a.shape.len()
        )));
    }
    for s in &req.shapes {
        if s.len() != ranges.len() {
            return Err(err(format!(
                "shape {} has rank {}, the input rank {}",
                shape_text(s),
                s.len(),
                ranges.len()
            )));
        }
        for (i, (&d, &(lo, hi))) in s.iter().zip(&ranges).enumerate() {
            if d < lo || (hi >= 0 && d > hi) {
                let range = if hi < 0 {
                    format!("{lo}..")
                } else if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo}..{hi}")
                };
                return Err(err(format!(
                    "shape {}: dimension {i} is {d}, outside the input's range {range}",
                    shape_text(s)
                )));
            }
        }
    }
    let default = a.shape.clone();
    let mut shapes = vec![default.clone()];
    for s in &req.shapes {
        if !shapes.contains(s) {
            shapes.push(s.clone());
        }
    }
    let added_default = !req.shapes.contains(&default);
    a.shape_flexibility = Some(ShapeFlexibility::EnumeratedShapes(EnumeratedShapes {
        shapes: shapes.iter().map(|s| Shape { shape: s.clone() }).collect(),
    }));
    Ok(EnumerateChange {
        input: req.input.clone(),
        function,
        range: ranges,
        default,
        shapes,
        added_default,
    })
}

/// Make the range-flexible input `req.input` enumerate `req.shapes` in every description of
/// `spec` that declares it (the model-level one and each function's). Errors, changing
/// nothing, when the input is missing, not range-flexible, or a shape is outside its range.
pub fn enumerate_input(
    spec: &mut proto::Model,
    req: &EnumerateRequest,
) -> Result<Vec<EnumerateChange>> {
    let Some(desc) = spec.description.as_mut() else {
        return Err(PlanError::Model("the model has no description".into()));
    };
    // Work on a copy so a failure leaves the model untouched.
    let mut new = desc.clone();
    let mut changes = Vec::new();
    if let Some(f) = new.input.iter_mut().find(|f| f.name == req.input) {
        changes.push(apply(f, req, None)?);
    }
    for func in &mut new.functions {
        if let Some(f) = func.input.iter_mut().find(|f| f.name == req.input) {
            changes.push(apply(f, req, Some(func.name.clone()))?);
        }
    }
    if changes.is_empty() {
        let mut names: Vec<&str> = desc.input.iter().map(|f| f.name.as_str()).collect();
        for func in &desc.functions {
            names.extend(func.input.iter().map(|f| f.name.as_str()));
        }
        names.sort_unstable();
        names.dedup();
        return Err(PlanError::Model(format!(
            "--enumerate {}: the model has no input `{}` (inputs: {})",
            req.input,
            req.input,
            names.join(", ")
        )));
    }
    *desc = new;
    Ok(changes)
}
