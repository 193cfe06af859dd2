//! How the direct path's inputs and outputs are laid out, checked and bound — all portable.
//!
//! The steps, in order:
//!
//! 1. **Before compiling** ([`plan_io`]): every input and output must have a fixed shape of
//!    rank 1–4 (read as `[N, C, H, W]`, leading axes 1), an element type the Neural Engine
//!    exchanges (fp16; fp32 too on M3 and later), and a last axis of at least
//!    [`MIN_WIDTH`] elements. A program refused here costs no compile (the framework leaks
//!    per compile) and never loads.
//! 2. **After loading** ([`parse_attributes`], [`bind`]): the compiled model's
//!    `modelAttributes` name each tensor's symbol (`ANEFModelDescription` input and output
//!    symbol arrays; an output `y` is the symbol `y@output`), whose position is the index the
//!    request must pass, and describe the live layout the hardware reads and writes
//!    (`NetworkStatusList[0]` `LiveInputList`/`LiveOutputList`: `Channels`, `Height`,
//!    `Width`, `RowStride`, `PlaneStride`, `Type`). Each tensor is bound to its entry; a
//!    layout whose dimensions are not the tensor's is refused rather than filled wrongly
//!    (the alternative is zeros, silently).
//! 3. **Each prediction** ([`pack`], [`unpack`]): a tensor's row-major bytes go to
//!    `n·BatchStride + c·PlaneStride + h·RowStride + w·elem` of its IOSurface, sized
//!    [`LiveLayout::alloc_size`].
//!
//! The layout keys and the stride arithmetic are those of tmc/apple's `x/ane` package
//! (`compile.go` `parseModelLayouts`, `surface.go` `TensorLayout`); the 64-element minimum is
//! the `ane` crate's (computer-graphics-tools/ane, `SpatialWidthTooSmall`); the surface-size
//! ordering rule is maderix/ANE#47 ([`request_order`]).

use std::collections::BTreeMap;

use anekit_runtime::engine::{FeatureSpec, ShapeSpec};
use anekit_runtime::{ElementType, Tensor};
use half::f16;

use crate::error::{AppleError, Result};
use crate::value::PropertyValue;

/// The smallest last-axis (width) the Neural Engine accepts for an input or output: narrower
/// tensors compile but evaluation fails with status 0x1d (the `ane` crate refuses them as
/// `SpatialWidthTooSmall { min: 64 }`; maderix/ANE README).
pub const MIN_WIDTH: usize = 64;

/// What the MIL of one chip generation may exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoRules {
    /// fp32 inputs and outputs are allowed (M1/M2 "cannot do the cast op, so use fp16 I/O",
    /// maderix/ANE#6).
    pub fp32_io: bool,
    /// The M1 surface-size ordering rule applies ([`request_order`]).
    pub ordered_surfaces: bool,
}

/// One input or output, checked before compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    /// The feature's name.
    pub name: String,
    /// Element type exchanged (fp16 or fp32).
    pub dtype: ElementType,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// The shape read as `[N, C, H, W]`.
    pub nchw: [usize; 4],
}

/// Checks one feature for the direct path (step 1 of the module docs).
pub fn plan_tensor(spec: &FeatureSpec, what: &str, rules: IoRules) -> Result<TensorPlan> {
    let bad = |detail: String| {
        AppleError::invalid(
            format!("{what} {:?} for the Neural Engine", spec.name),
            detail,
        )
    };
    let ShapeSpec::Fixed { shape } = &spec.shape else {
        return Err(bad(
            "needs a fixed shape (the direct path compiles one shape)".into(),
        ));
    };
    match spec.dtype {
        ElementType::F16 => {}
        ElementType::F32 if rules.fp32_io => {}
        ElementType::F32 => {
            return Err(bad(
                "is fp32; M1 and M2 exchange fp16 only (maderix/ANE#6): cast the program's \
                 inputs and outputs to fp16"
                    .into(),
            ));
        }
        other => {
            return Err(bad(format!(
                "is {other}; the Neural Engine exchanges fp16{}",
                if rules.fp32_io { " or fp32" } else { "" }
            )));
        }
    }
    if shape.is_empty() || shape.len() > 4 {
        return Err(bad(format!(
            "has rank {}; the direct path takes rank 1 to 4 ([N, C, H, W])",
            shape.len()
        )));
    }
    if shape.contains(&0) {
        return Err(bad(format!("has an empty dimension: {shape:?}")));
    }
    let width = shape.last().copied().unwrap_or(0);
    if width < MIN_WIDTH {
        return Err(bad(format!(
            "has a last axis of {width} elements; the Neural Engine needs at least {MIN_WIDTH} \
             (narrower tensors fail at evaluation with status 0x1d): pad or reshape to \
             [1, C, 1, S] with S ≥ {MIN_WIDTH}"
        )));
    }
    let mut nchw = [1usize; 4];
    for (d, &s) in nchw.iter_mut().rev().zip(shape.iter().rev()) {
        *d = s;
    }
    nchw.iter()
        .try_fold(spec.dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    Ok(TensorPlan {
        name: spec.name.clone(),
        dtype: spec.dtype,
        shape: shape.clone(),
        nchw,
    })
}

/// Checks every input and output (before compiling).
pub fn plan_io(
    inputs: &[FeatureSpec],
    outputs: &[FeatureSpec],
    rules: IoRules,
) -> Result<(Vec<TensorPlan>, Vec<TensorPlan>)> {
    if outputs.is_empty() {
        return Err(AppleError::invalid(
            "program",
            "has no output the direct path can exchange",
        ));
    }
    let i = inputs
        .iter()
        .map(|s| plan_tensor(s, "input", rules))
        .collect::<Result<Vec<_>>>()?;
    let o = outputs
        .iter()
        .map(|s| plan_tensor(s, "output", rules))
        .collect::<Result<Vec<_>>>()?;
    Ok((i, o))
}

/// One tensor as the compiled program lays it out (a `LiveInputList`/`LiveOutputList`
/// entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLayout {
    /// `Symbol` (else `Name`): the MIL name; outputs carry `@output`.
    pub symbol: String,
    /// Batch (`Batch`/`BatchSize` when present, else 1).
    pub batch: usize,
    /// `Channels`.
    pub channels: usize,
    /// `Height`.
    pub height: usize,
    /// `Width`.
    pub width: usize,
    /// Bytes per element (`Type`: `Float16` 2, `Float32` 4).
    pub elem: usize,
    /// `RowStride`, bytes (a multiple of 64).
    pub row_stride: usize,
    /// `PlaneStride`, bytes (≥ Height × RowStride).
    pub plane_stride: usize,
    /// `BatchStride` when present, else Channels × PlaneStride.
    pub batch_stride: usize,
}

impl LiveLayout {
    /// Bytes of the IOSurface that holds the tensor.
    pub fn alloc_size(&self) -> usize {
        // Overflow was ruled out by `check`.
        self.batch.saturating_mul(self.batch_stride)
    }

    /// Whether the strides can hold the dimensions (and fit in memory arithmetic).
    pub fn check(&self) -> std::result::Result<(), String> {
        if [self.batch, self.channels, self.height, self.width].contains(&0) {
            return Err(format!(
                "a zero dimension (N {} C {} H {} W {})",
                self.batch, self.channels, self.height, self.width
            ));
        }
        if self.elem != 2 && self.elem != 4 {
            return Err(format!("element size {} (2 or 4 expected)", self.elem));
        }
        let row = self
            .width
            .checked_mul(self.elem)
            .ok_or("row size overflows")?;
        if self.row_stride < row || !self.row_stride.is_multiple_of(64) {
            return Err(format!(
                "RowStride {} for {} bytes of row (a multiple of 64 of at least the row)",
                self.row_stride, row
            ));
        }
        let plane = self
            .height
            .checked_mul(self.row_stride)
            .ok_or("plane size overflows")?;
        if self.plane_stride < plane {
            return Err(format!(
                "PlaneStride {} under Height × RowStride {}",
                self.plane_stride, plane
            ));
        }
        let batch = self
            .channels
            .checked_mul(self.plane_stride)
            .ok_or("batch size overflows")?;
        if self.batch_stride < batch {
            return Err(format!(
                "BatchStride {} under Channels × PlaneStride {}",
                self.batch_stride, batch
            ));
        }
        self.batch
            .checked_mul(self.batch_stride)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or("surface size overflows")?;
        Ok(())
    }
}

/// What `modelAttributes` says about a loaded program.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `ANEFModelDescription.kANEFModelInputSymbolsArrayKey`: position = request index.
    pub input_symbols: Vec<String>,
    /// `kANEFModelOutputSymbolsArrayKey`.
    pub output_symbols: Vec<String>,
    /// `NetworkStatusList[0].LiveInputList`.
    pub inputs: Vec<LiveLayout>,
    /// `NetworkStatusList[0].LiveOutputList`.
    pub outputs: Vec<LiveLayout>,
}

fn strings(v: Option<&PropertyValue>, key: &str) -> Result<Vec<String>> {
    let Some(PropertyValue::Array(a)) = v else {
        return Err(AppleError::invalid(
            "modelAttributes",
            format!("no {key} array"),
        ));
    };
    a.iter()
        .map(|s| {
            s.as_str().map(str::to_string).ok_or_else(|| {
                AppleError::invalid("modelAttributes", format!("{key} holds a non-string"))
            })
        })
        .collect()
}

fn live(entry: &PropertyValue, list: &str, i: usize) -> Result<LiveLayout> {
    let what = || format!("modelAttributes {list}[{i}]");
    let d = entry
        .as_dict()
        .ok_or_else(|| AppleError::invalid(what(), "not a dictionary"))?;
    let num = |k: &str| d.get(k).and_then(PropertyValue::as_u64).map(|v| v as usize);
    let need = |k: &str| num(k).ok_or_else(|| AppleError::invalid(what(), format!("no {k}")));
    let symbol = d
        .get("Symbol")
        .or_else(|| d.get("Name"))
        .and_then(PropertyValue::as_str)
        .ok_or_else(|| AppleError::invalid(what(), "no Symbol or Name"))?
        .to_string();
    let elem = match d.get("Type").and_then(PropertyValue::as_str) {
        None | Some("Float16") | Some("FP16") | Some("fp16") => 2,
        Some("Float32") | Some("FP32") | Some("fp32") => 4,
        Some(other) => {
            return Err(AppleError::invalid(
                what(),
                format!("element type {other:?} (the direct path exchanges Float16 and Float32)"),
            ));
        }
    };
    let channels = need("Channels")?;
    let plane_stride = need("PlaneStride")?;
    let l = LiveLayout {
        symbol,
        batch: num("Batch").or_else(|| num("BatchSize")).unwrap_or(1),
        channels,
        height: need("Height")?,
        width: need("Width")?,
        elem,
        row_stride: need("RowStride")?,
        plane_stride,
        batch_stride: num("BatchStride").unwrap_or_else(|| channels.saturating_mul(plane_stride)),
    };
    l.check().map_err(|e| AppleError::invalid(what(), e))?;
    Ok(l)
}

/// Reads `modelAttributes` (converted to plain data) of a loaded program.
pub fn parse_attributes(attrs: &PropertyValue) -> Result<Attributes> {
    let top = attrs
        .as_dict()
        .ok_or_else(|| AppleError::invalid("modelAttributes", "not a dictionary"))?;
    let desc = top
        .get("ANEFModelDescription")
        .and_then(PropertyValue::as_dict)
        .ok_or_else(|| AppleError::invalid("modelAttributes", "no ANEFModelDescription"))?;
    let input_symbols = strings(desc.get("kANEFModelInputSymbolsArrayKey"), "input symbols")?;
    let output_symbols = strings(
        desc.get("kANEFModelOutputSymbolsArrayKey"),
        "output symbols",
    )?;
    let proc0 = match top.get("NetworkStatusList") {
        Some(PropertyValue::Array(a)) => a.first(),
        _ => None,
    }
    .and_then(PropertyValue::as_dict)
    .ok_or_else(|| AppleError::invalid("modelAttributes", "no NetworkStatusList entry"))?;
    let list = |key: &str| -> Result<Vec<LiveLayout>> {
        match proc0.get(key) {
            Some(PropertyValue::Array(a)) => {
                a.iter().enumerate().map(|(i, e)| live(e, key, i)).collect()
            }
            _ => Err(AppleError::invalid("modelAttributes", format!("no {key}"))),
        }
    };
    Ok(Attributes {
        input_symbols,
        output_symbols,
        inputs: list("LiveInputList")?,
        outputs: list("LiveOutputList")?,
    })
}

/// One tensor bound to its place in the compiled program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The tensor.
    pub plan: TensorPlan,
    /// The index the request passes for it (its position in the symbol array).
    pub symbol_index: usize,
    /// Its layout.
    pub layout: LiveLayout,
}

/// The symbol of a feature: inputs by name, outputs as `<name>@output`.
pub fn symbol_name(name: &str, output: bool) -> String {
    if output {
        format!("{name}@output")
    } else {
        name.to_string()
    }
}

/// Binds each planned tensor to its symbol index and live layout (step 2 of the module
/// docs). Every planned tensor must be found, with the dimensions it has; every live entry
/// must be bound.
pub fn bind(
    plans: &[TensorPlan],
    symbols: &[String],
    live: &[LiveLayout],
    output: bool,
) -> Result<Vec<Binding>> {
    let what = if output { "output" } else { "input" };
    if live.len() != plans.len() {
        return Err(AppleError::invalid(
            format!("compiled program's {what}s"),
            format!(
                "{} live {what}s for {} {what}s of the function",
                live.len(),
                plans.len()
            ),
        ));
    }
    plans
        .iter()
        .map(|plan| {
            let sym = symbol_name(&plan.name, output);
            let matches = |s: &str| s == sym || s == plan.name;
            let layout = live
                .iter()
                .find(|l| matches(&l.symbol))
                .ok_or_else(|| {
                    AppleError::invalid(
                        format!("{what} {:?}", plan.name),
                        format!("the compiled program has no live {what} {sym:?}"),
                    )
                })?
                .clone();
            let symbol_index = symbols.iter().position(|s| matches(s)).ok_or_else(|| {
                AppleError::invalid(
                    format!("{what} {:?}", plan.name),
                    format!("{sym:?} is not among the program's {what} symbols {symbols:?}"),
                )
            })?;
            let [n, c, h, w] = plan.nchw;
            if [layout.batch, layout.channels, layout.height, layout.width] != [n, c, h, w]
                || layout.elem != plan.dtype.size()
            {
                return Err(AppleError::invalid(
                    format!("{what} {:?}", plan.name),
                    format!(
                        "the compiled program lays it out as N {} C {} H {} W {} of {} bytes, \
                         not as the tensor's {:?} of {}: the direct path cannot fill that \
                         layout correctly",
                        layout.batch,
                        layout.channels,
                        layout.height,
                        layout.width,
                        layout.elem,
                        plan.shape,
                        plan.dtype
                    ),
                ));
            }
            Ok(Binding {
                plan: plan.clone(),
                symbol_index,
                layout,
            })
        })
        .collect()
}

/// The order of the request's slots: inputs by ascending surface size, outputs by
/// descending size. On the M1, maderix/ANE#47 reports that "IOSurface slot sizes must be
/// strictly ascending for inputs / descending for outputs — violations produce silent zeros
/// with no error"; the order costs nothing elsewhere, so it is always used. Where the rule
/// applies (`strict`), two surfaces of the same size cannot be ordered strictly and the
/// program is refused instead of returning zeros.
pub fn request_order(bindings: &[Binding], output: bool, strict: bool) -> Result<Vec<usize>> {
    let mut order: Vec<usize> = (0..bindings.len()).collect();
    order.sort_by_key(|&i| bindings[i].layout.alloc_size());
    if output {
        order.reverse();
    }
    if strict {
        for w in order.windows(2) {
            let (a, b) = (&bindings[w[0]], &bindings[w[1]]);
            if a.layout.alloc_size() == b.layout.alloc_size() {
                return Err(AppleError::invalid(
                    format!(
                        "{}s {:?} and {:?}",
                        if output { "output" } else { "input" },
                        a.plan.name,
                        b.plan.name
                    ),
                    format!(
                        "both need {}-byte IOSurfaces; on this chip the Neural Engine returns \
                         zeros unless the surfaces' sizes differ (maderix/ANE#47): give them \
                         different sizes",
                        a.layout.alloc_size()
                    ),
                ));
            }
        }
    }
    Ok(order)
}

/// The row-major bytes of `t` as element type `dtype` (fp16 or fp32, little-endian);
/// numeric tensors of other types are converted, strings and dictionaries refused.
pub fn tensor_bytes(t: &Tensor, dtype: ElementType) -> Result<Vec<u8>> {
    if !t.dtype().is_numeric() {
        return Err(AppleError::invalid(
            "Neural Engine input",
            format!("{} tensors cannot be exchanged", t.dtype()),
        ));
    }
    Ok(match (t, dtype) {
        (Tensor::F16(a), ElementType::F16) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        (Tensor::F32(a), ElementType::F32) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        (other, ElementType::F16) => other
            .to_f32()
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        (other, ElementType::F32) => other
            .to_f32()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        (_, other) => {
            return Err(AppleError::invalid(
                "Neural Engine input",
                format!("{other} is not exchanged"),
            ));
        }
    })
}

/// A tensor of `dtype` and `shape` from row-major little-endian bytes.
pub fn tensor_from_bytes(bytes: &[u8], dtype: ElementType, shape: &[usize]) -> Result<Tensor> {
    let bad = |e: String| AppleError::invalid("Neural Engine output", e);
    let t = match dtype {
        ElementType::F16 => Tensor::F16(
            ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(shape),
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
            .map_err(|e| bad(e.to_string()))?,
        ),
        ElementType::F32 => Tensor::F32(
            ndarray::ArrayD::from_shape_vec(
                ndarray::IxDyn(shape),
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
            .map_err(|e| bad(e.to_string()))?,
        ),
        other => return Err(bad(format!("{other} is not exchanged"))),
    };
    Ok(t)
}

fn row_offsets(l: &LiveLayout) -> impl Iterator<Item = (usize, usize)> + '_ {
    // (row index in the dense tensor, byte offset in the surface)
    let rows_per_plane = l.height;
    let rows_per_batch = l.channels * l.height;
    (0..l.batch * l.channels * l.height).map(move |r| {
        let n = r / rows_per_batch;
        let c = (r % rows_per_batch) / rows_per_plane;
        let h = r % rows_per_plane;
        (
            r,
            n * l.batch_stride + c * l.plane_stride + h * l.row_stride,
        )
    })
}

/// The surface bytes for a tensor's dense row-major bytes (step 3).
pub fn pack(dense: &[u8], l: &LiveLayout) -> Result<Vec<u8>> {
    let row = l.width * l.elem;
    if dense.len() != l.batch * l.channels * l.height * row {
        return Err(AppleError::invalid(
            format!("tensor {:?}", l.symbol),
            format!(
                "{} bytes given for N {} C {} H {} W {} of {} bytes",
                dense.len(),
                l.batch,
                l.channels,
                l.height,
                l.width,
                l.elem
            ),
        ));
    }
    let mut out = vec![0u8; l.alloc_size()];
    for (r, off) in row_offsets(l) {
        let src = dense
            .get(r * row..(r + 1) * row)
            .ok_or_else(|| AppleError::invalid("pack", "row past the tensor"))?;
        out.get_mut(off..off + row)
            .ok_or_else(|| AppleError::invalid("pack", "row past the surface"))?
            .copy_from_slice(src);
    }
    Ok(out)
}

/// A tensor's dense row-major bytes from its surface's bytes (step 3).
pub fn unpack(surface: &[u8], l: &LiveLayout) -> Result<Vec<u8>> {
    if surface.len() < l.alloc_size() {
        return Err(AppleError::invalid(
            format!("tensor {:?}", l.symbol),
            format!(
                "surface of {} bytes for a layout of {}",
                surface.len(),
                l.alloc_size()
            ),
        ));
    }
    let row = l.width * l.elem;
    let mut out = vec![0u8; l.batch * l.channels * l.height * row];
    for (r, off) in row_offsets(l) {
        out[r * row..(r + 1) * row].copy_from_slice(
            surface
                .get(off..off + row)
                .ok_or_else(|| AppleError::invalid("unpack", "row past the surface"))?,
        );
    }
    Ok(out)
}

/// Inputs and outputs of `function` in the order of its signature and block outputs (the
/// program's symbols): the features the direct path exchanges.
pub fn ordered_specs(
    model: &anekit_mil::model::Model,
    function: &str,
) -> Result<(Vec<FeatureSpec>, Vec<FeatureSpec>)> {
    let crate::coreml::IoSpecs {
        inputs,
        outputs,
        states,
        ..
    } = crate::coreml::io_specs(model, Some(function))?;
    if !states.is_empty() {
        return Err(AppleError::invalid(
            format!("function {function:?}"),
            "stateful programs are not supported by the direct path",
        ));
    }
    let program = model
        .require_program()
        .map_err(|e| AppleError::invalid("model", e.to_string()))?;
    let f = program
        .functions
        .get(function)
        .ok_or_else(|| AppleError::invalid("function", format!("no function {function:?}")))?;
    let pick = |names: Vec<&str>, specs: &[FeatureSpec], what: &str| -> Result<Vec<FeatureSpec>> {
        let by_name: BTreeMap<&str, &FeatureSpec> =
            specs.iter().map(|s| (s.name.as_str(), s)).collect();
        names
            .into_iter()
            .map(|n| {
                by_name.get(n).map(|s| (*s).clone()).ok_or_else(|| {
                    AppleError::invalid(format!("{what} {n:?}"), "no exchangeable type")
                })
            })
            .collect()
    };
    let in_names: Vec<&str> = f.inputs.iter().map(|i| i.name.as_str()).collect();
    let out_names: Vec<&str> = f
        .block()
        .map(|b| b.outputs.iter().map(String::as_str).collect())
        .unwrap_or_default();
    Ok((
        pick(in_names, &inputs, "input")?,
        pick(out_names, &outputs, "output")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODERN: IoRules = IoRules {
        fp32_io: true,
        ordered_surfaces: false,
    };
    const M1: IoRules = IoRules {
        fp32_io: false,
        ordered_surfaces: true,
    };

    fn spec(name: &str, dtype: ElementType, shape: &[usize]) -> FeatureSpec {
        FeatureSpec {
            name: name.into(),
            dtype,
            shape: ShapeSpec::Fixed {
                shape: shape.to_vec(),
            },
        }
    }

    #[test]
    fn shapes_are_checked_before_compiling() {
        let p = plan_tensor(&spec("x", ElementType::F16, &[1, 8, 1, 64]), "input", M1).unwrap();
        assert_eq!(p.nchw, [1, 8, 1, 64]);
        let p = plan_tensor(&spec("x", ElementType::F16, &[3, 128]), "input", M1).unwrap();
        assert_eq!(p.nchw, [1, 1, 3, 128]);
        let e = |s: FeatureSpec, rules| plan_tensor(&s, "input", rules).unwrap_err().to_string();
        assert!(e(spec("x", ElementType::F16, &[1, 8, 1, 32]), M1).contains("at least 64"));
        assert!(e(spec("x", ElementType::F32, &[1, 64]), M1).contains("fp16 only"));
        assert!(plan_tensor(&spec("x", ElementType::F32, &[1, 64]), "input", MODERN).is_ok());
        assert!(e(spec("x", ElementType::I32, &[1, 64]), MODERN).contains("is int32"));
        assert!(e(spec("x", ElementType::F16, &[1, 1, 1, 1, 64]), M1).contains("rank 5"));
        assert!(e(spec("x", ElementType::F16, &[0, 64]), M1).contains("empty dimension"));
        let flexible = FeatureSpec {
            name: "x".into(),
            dtype: ElementType::F16,
            shape: ShapeSpec::Range {
                ranges: vec![(1, Some(4)), (64, None)],
                default: vec![1, 64],
            },
        };
        assert!(e(flexible, M1).contains("fixed shape"));
        assert!(
            plan_io(&[], &[], M1)
                .unwrap_err()
                .to_string()
                .contains("no output")
        );
    }

    fn attrs_value() -> PropertyValue {
        use PropertyValue as P;
        let entry = |sym: &str, c: i64, h: i64, w: i64, row: i64, plane: i64| {
            let mut d = BTreeMap::new();
            d.insert("Symbol".to_string(), P::String(sym.into()));
            d.insert("Channels".to_string(), P::Integer(c));
            d.insert("Height".to_string(), P::Integer(h));
            d.insert("Width".to_string(), P::Integer(w));
            d.insert("RowStride".to_string(), P::Integer(row));
            d.insert("PlaneStride".to_string(), P::Integer(plane));
            d.insert("Type".to_string(), P::String("Float16".into()));
            P::Dictionary(d)
        };
        let mut desc = BTreeMap::new();
        desc.insert(
            "kANEFModelInputSymbolsArrayKey".to_string(),
            P::Array(vec![P::String("b".into()), P::String("a".into())]),
        );
        desc.insert(
            "kANEFModelOutputSymbolsArrayKey".to_string(),
            P::Array(vec![P::String("y@output".into())]),
        );
        let mut proc0 = BTreeMap::new();
        proc0.insert(
            "LiveInputList".to_string(),
            P::Array(vec![
                entry("a", 4, 1, 64, 128, 128),
                // Width 100 fp16 = 200 bytes: rows padded to 256; two rows per plane.
                entry("b", 2, 2, 100, 256, 512),
            ]),
        );
        proc0.insert(
            "LiveOutputList".to_string(),
            P::Array(vec![entry("y@output", 4, 1, 64, 128, 128)]),
        );
        let mut top = BTreeMap::new();
        top.insert("ANEFModelDescription".to_string(), P::Dictionary(desc));
        top.insert(
            "NetworkStatusList".to_string(),
            P::Array(vec![P::Dictionary(proc0)]),
        );
        P::Dictionary(top)
    }

    #[test]
    fn attributes_bind_tensors_to_symbol_indices_and_strided_layouts() {
        let attrs = parse_attributes(&attrs_value()).unwrap();
        assert_eq!(attrs.input_symbols, ["b", "a"]);
        assert_eq!(attrs.inputs[1].alloc_size(), 2 * 512);
        let (ins, outs) = plan_io(
            &[
                spec("a", ElementType::F16, &[1, 4, 1, 64]),
                spec("b", ElementType::F16, &[2, 2, 100]),
            ],
            &[spec("y", ElementType::F16, &[1, 4, 1, 64])],
            M1,
        )
        .unwrap();
        let bi = bind(&ins, &attrs.input_symbols, &attrs.inputs, false).unwrap();
        // `a` is the function's first input but the program's symbol 1.
        assert_eq!(bi[0].symbol_index, 1);
        assert_eq!(bi[1].symbol_index, 0);
        let bo = bind(&outs, &attrs.output_symbols, &attrs.outputs, true).unwrap();
        assert_eq!(bo[0].symbol_index, 0);
        assert_eq!(bo[0].layout.symbol, "y@output");
        // A tensor whose shape is not the live layout's is refused, not filled wrongly.
        let (wrong, _) = plan_io(
            &[
                spec("a", ElementType::F16, &[1, 2, 2, 64]),
                spec("b", ElementType::F16, &[2, 2, 100]),
            ],
            &[spec("y", ElementType::F16, &[1, 4, 1, 64])],
            M1,
        )
        .unwrap();
        let e = bind(&wrong, &attrs.input_symbols, &attrs.inputs, false).unwrap_err();
        assert!(e.to_string().contains("cannot fill that layout"), "{e}");
        // A missing symbol and a count mismatch are errors.
        let e = bind(&ins[..1], &attrs.input_symbols, &attrs.inputs, false).unwrap_err();
        assert!(e.to_string().contains("2 live inputs for 1"), "{e}");
    }

    #[test]
    fn malformed_attributes_are_errors() {
        assert!(parse_attributes(&PropertyValue::Integer(1)).is_err());
        let mut v = attrs_value();
        if let PropertyValue::Dictionary(top) = &mut v {
            top.remove("NetworkStatusList");
        }
        assert!(
            parse_attributes(&v)
                .unwrap_err()
                .to_string()
                .contains("NetworkStatusList")
        );
        // A row stride that cannot hold the row.
        let l = LiveLayout {
            symbol: "x".into(),
            batch: 1,
            channels: 1,
            height: 1,
            width: 64,
            elem: 2,
            row_stride: 64,
            plane_stride: 64,
            batch_stride: 64,
        };
        assert!(l.check().unwrap_err().contains("RowStride"));
        let huge = LiveLayout {
            width: 1,
            row_stride: 64,
            plane_stride: usize::MAX / 2,
            batch_stride: usize::MAX / 2,
            channels: 1,
            batch: 4,
            ..l
        };
        assert!(huge.check().unwrap_err().contains("overflows"));
    }

    #[test]
    fn pack_and_unpack_follow_the_strides() {
        let l = LiveLayout {
            symbol: "b".into(),
            batch: 1,
            channels: 2,
            height: 2,
            width: 3,
            elem: 2,
            row_stride: 64,
            plane_stride: 192,
            batch_stride: 384,
        };
        let dense: Vec<u8> = (0..24u8).collect();
        let s = pack(&dense, &l).unwrap();
        assert_eq!(s.len(), 384);
        // Row (c 1, h 1) starts at 192 + 64.
        assert_eq!(&s[256..262], &dense[18..24]);
        assert_eq!(&s[6..64], &[0u8; 58][..], "row padding stays zero");
        assert_eq!(unpack(&s, &l).unwrap(), dense);
        assert!(pack(&dense[..20], &l).is_err());
        assert!(unpack(&s[..100], &l).is_err());
    }

    #[test]
    fn surfaces_are_ordered_by_size_and_ties_refused_where_the_rule_applies() {
        let mk = |name: &str, c: usize| Binding {
            plan: TensorPlan {
                name: name.into(),
                dtype: ElementType::F16,
                shape: vec![1, c, 1, 64],
                nchw: [1, c, 1, 64],
            },
            symbol_index: 0,
            layout: LiveLayout {
                symbol: name.into(),
                batch: 1,
                channels: c,
                height: 1,
                width: 64,
                elem: 2,
                row_stride: 128,
                plane_stride: 128,
                batch_stride: c * 128,
            },
        };
        let b = [mk("big", 8), mk("small", 2), mk("mid", 4)];
        assert_eq!(request_order(&b, false, true).unwrap(), [1, 2, 0]);
        assert_eq!(request_order(&b, true, true).unwrap(), [0, 2, 1]);
        let tie = [mk("p", 4), mk("q", 4)];
        assert_eq!(request_order(&tie, false, false).unwrap(), [0, 1]);
        let e = request_order(&tie, false, true).unwrap_err().to_string();
        assert!(e.contains("maderix/ANE#47"), "{e}");
    }

    #[test]
    fn tensors_convert_to_and_from_exchange_bytes() {
        let t = Tensor::f32(&[1, 2], vec![1.5, -2.0]).unwrap();
        let b = tensor_bytes(&t, ElementType::F16).unwrap();
        assert_eq!(b, [0x00, 0x3e, 0x00, 0xc0]);
        let back = tensor_from_bytes(&b, ElementType::F16, &[1, 2]).unwrap();
        assert_eq!(
            back.to_f32().iter().copied().collect::<Vec<_>>(),
            [1.5, -2.0]
        );
        assert_eq!(tensor_bytes(&t, ElementType::F32).unwrap().len(), 8);
        assert!(tensor_bytes(&t, ElementType::I32).is_err());
        assert!(tensor_from_bytes(&b, ElementType::F16, &[3]).is_err());
        let s = Tensor::Str(ndarray::ArrayD::from_elem(
            ndarray::IxDyn(&[]),
            "x".to_string(),
        ));
        assert!(tensor_bytes(&s, ElementType::F16).is_err());
    }
}
