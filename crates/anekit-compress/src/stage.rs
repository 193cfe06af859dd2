//! Compression stages: prune, palettize and quantize, each the [`Stage`] of one weight, and
//! the joint iOS18 modes as their compositions.
//!
//! A stage is the per-weight setting of one kind of compression ([`PruneConfig`],
//! [`PaletteConfig`], [`LinearConfig`]) and says, for one weight, four things:
//!
//! - **select**: whether it applies ([`Stage::select`]: the `weight_threshold`, and for
//!   structured pruning coremltools' conv/linear restriction; which setting a weight gets —
//!   op name > op type > global — is [`crate::config::Selection::resolve`]);
//! - **compress**: what it does to the weight in flight ([`Stage::compress`]: a keep-mask, a
//!   palette, a quantization of the weight or of the palette's LUT);
//! - **describe**: one line for the report ([`Stage::describe`]);
//! - **emit**: the `constexpr_*` op(s) it contributes ([`Stage::emit`]).
//!
//! Stages compress in the order prune → palettize → quantize ([`Composition::stages`]) and
//! emit in the reverse order, each wrapping what the later stage emitted. This is how
//! coremltools builds its joint modes (`joint_compression=True`: each pass rewrites the data
//! input of the previous pass's op), and it gives every composition its iOS18 ops:
//!
//! | composition | ops (innermost first) |
//! |---|---|
//! | prune | `constexpr_sparse_to_dense` |
//! | palettize | `constexpr_lut_to_dense` (+ `constexpr_blockwise_shift_scale` for a per-channel scale) |
//! | quantize | `constexpr_blockwise_shift_scale` (iOS16: `constexpr_affine_dequantize`) |
//! | prune + palettize | `constexpr_lut_to_sparse` → `constexpr_sparse_to_dense` |
//! | prune + quantize | `constexpr_sparse_blockwise_shift_scale` → `constexpr_sparse_to_dense` |
//! | palettize + quantize | `constexpr_blockwise_shift_scale` (the LUT) → `constexpr_lut_to_dense` |
//! | all three | `constexpr_blockwise_shift_scale` (the LUT) → `constexpr_lut_to_sparse` → `constexpr_sparse_to_dense` |

use std::borrow::Cow;

use anekit_mil::Operation;

use crate::config::{
    LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
};
use crate::emit::{self, Form, Param};
use crate::error::{CompressError, Result};
use crate::linear::{self, QuantDtype, Quantized};
use crate::palettize::{self, PaletteMode, PaletteParams, Palettized};
use crate::prune::{self, PruneMethod};
use crate::tensor::{ErrorStats, Weight};

/// One consumer of a weight: the op that reads it, and through which parameter.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// The consuming op's type (`linear`, `conv`, `matmul`, ...).
    pub op_type: String,
    /// The consuming op's name.
    pub op_name: String,
    /// The parameter the weight is bound to (`weight`, `x`, `y`, ...).
    pub param: String,
    /// (output axis, input axis) of the weight for this consumer, as signed axes
    /// (coremltools `select_input_output_channel_axis`).
    pub axes: (i64, i64),
}

/// What selection knows about one weight (a `const` op).
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The const op's name.
    pub name: &'a str,
    /// Its output's name.
    pub var: &'a str,
    /// Its consumers.
    pub consumers: &'a [Consumer],
    /// Its element count.
    pub elements: usize,
    /// Whether the stage's setting was given for this weight by name (`op_name`).
    pub by_name: bool,
}

/// Whether a stage applies to a weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    /// It does.
    Yes,
    /// It does not (e.g. the weight is under the threshold); nothing to report.
    No,
    /// It was configured for the weight but does not apply, for this reason (reported).
    Skip(String),
}

/// Per-channel scale of a palettization: (values, shape, channel axis).
pub type Pcs = (Vec<f32>, Vec<usize>, usize);

/// A palettization in flight.
#[derive(Debug, Clone)]
pub struct Palette {
    /// The palettized weight.
    pub palettized: Palettized,
    /// Its per-channel scale, if any.
    pub pcs: Option<Pcs>,
}

/// A linear quantization in flight.
#[derive(Debug, Clone)]
pub enum Quant {
    /// Of the weight itself.
    Dense(Quantized),
    /// Of the palette's LUT (palettization + quantization).
    Lut(Quantized),
}

/// Names of the ops a weight may become (coremltools' suffixes, made unique in the function).
#[derive(Debug, Clone)]
pub struct Names {
    /// `<w>_quantized`.
    pub quantized: String,
    /// `<w>_palettized`.
    pub palettized: String,
    /// `<w>_palettized_pcs`.
    pub pcs: String,
    /// `<w>_palettized_lut_quantized`.
    pub lut_quantized: String,
    /// `<w>_sparsified`.
    pub sparsified: String,
    /// `<w>_sparsified_nonzero_data_0_palettized`.
    pub sparse_lut: String,
    /// `<w>_sparsified_nonzero_data_0_quantized`.
    pub sparse_quant: String,
}

impl Names {
    /// The names for a weight called `base`; `fresh` makes each unique.
    pub fn new(base: &str, mut fresh: impl FnMut(String) -> String) -> Self {
        Self {
            quantized: fresh(format!("{base}_quantized")),
            palettized: fresh(format!("{base}_palettized")),
            pcs: fresh(format!("{base}_palettized_pcs")),
            lut_quantized: fresh(format!("{base}_palettized_lut_quantized")),
            sparsified: fresh(format!("{base}_sparsified")),
            sparse_lut: fresh(format!("{base}_sparsified_nonzero_data_0_palettized")),
            sparse_quant: fresh(format!("{base}_sparsified_nonzero_data_0_quantized")),
        }
    }
}

/// A weight on its way through the stages.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// The const op's name (for messages).
    pub name: String,
    /// The uncompressed weight.
    pub original: Weight,
    /// (input axis, output axis) from the consumers; `None` when they disagree.
    pub axes: Option<(usize, usize)>,
    /// The op form of the function's opset.
    pub form: Form,
    /// Keep-mask of pruning (`true` = kept non-zero).
    pub mask: Option<Vec<bool>>,
    /// The weight with pruned elements zeroed (`None`: not pruned).
    pub pruned: Option<Weight>,
    /// Palettization.
    pub palette: Option<Palette>,
    /// Linear quantization.
    pub quant: Option<Quant>,
    /// Why a configured stage declined (reported, not an error).
    pub skips: Vec<String>,
}

impl InFlight {
    /// A weight no stage has touched yet.
    pub fn new(
        name: impl Into<String>,
        original: Weight,
        axes: Option<(usize, usize)>,
        form: Form,
    ) -> Self {
        Self {
            name: name.into(),
            original,
            axes,
            form,
            mask: None,
            pruned: None,
            palette: None,
            quant: None,
            skips: Vec::new(),
        }
    }

    /// The dense values the later stages work on (pruned elements zero).
    pub fn dense(&self) -> &Weight {
        self.pruned.as_ref().unwrap_or(&self.original)
    }

    /// Whether any stage changed the weight.
    pub fn changed(&self) -> bool {
        self.mask.is_some() || self.palette.is_some() || self.quant.is_some()
    }

    /// The fraction of zeros after pruning, if pruned.
    pub fn sparsity(&self) -> Option<f64> {
        self.mask
            .as_ref()
            .map(|m| m.iter().filter(|k| !**k).count() as f64 / m.len().max(1) as f64)
    }

    /// The weight the emitted ops decompress to.
    pub fn reconstruct(&self) -> Vec<f32> {
        let w = &self.original;
        let mut out = match (&self.palette, &self.quant) {
            (Some(pal), q) => {
                let mut p = Cow::Borrowed(&pal.palettized);
                if let Some(Quant::Lut(q)) = q {
                    p.to_mut().lut = q.dequantize();
                }
                let mut v = p.reconstruct();
                if let Some((s, _, axis)) = &pal.pcs {
                    let axis = *axis;
                    let outer: usize = w.shape[..axis].iter().product();
                    let c = w.shape.get(axis).copied().unwrap_or(1);
                    let inner: usize = w.shape[axis + 1..].iter().product();
                    for o in 0..outer {
                        for ch in 0..c {
                            for i in 0..inner {
                                let e = (o * c + ch) * inner + i;
                                v[e] = w.dtype.round(s[o * inner + i] * v[e]);
                            }
                        }
                    }
                }
                v
            }
            (None, Some(Quant::Dense(q))) => q.dequantize(),
            _ => self.dense().values.clone(),
        };
        if let Some(m) = &self.mask {
            for (v, &k) in out.iter_mut().zip(m) {
                if !k {
                    *v = 0.0;
                }
            }
        }
        out
    }

    /// The error the compression introduces: the quantization's own statistics for a plain
    /// linear quantization, else measured on the reconstructed weight.
    pub fn error(&self) -> ErrorStats {
        if let (None, None, Some(Quant::Dense(q))) = (&self.mask, &self.palette, &self.quant) {
            return q.error;
        }
        let mut st = ErrorStats::default();
        st.add(&self.original.values, &self.reconstruct());
        st
    }

    fn opset_error(&self, what: &str) -> CompressError {
        CompressError::weight(
            &self.name,
            format!("{what} needs iOS18 (the function's opset is older)"),
        )
    }
}

/// What the later stages emitted, as seen by the earlier stage that wraps it.
#[derive(Debug, Clone, Default)]
pub enum Produced {
    /// Nothing yet.
    #[default]
    Nothing,
    /// A LUT (palettization + quantization: the quantized LUT op's output).
    Lut(String),
    /// A joint sparse op's outputs: (mask, non-zero values).
    Sparse(String, String),
    /// The dense weight.
    Dense(String),
}

/// The ops emitted so far and what they produce.
#[derive(Debug, Clone, Default)]
pub struct Emitted {
    /// Ops, in program order.
    pub ops: Vec<Operation>,
    /// What the last of them produces.
    pub produced: Produced,
}

impl Emitted {
    fn push(mut self, ops: impl IntoIterator<Item = Operation>, produced: Produced) -> Self {
        self.ops.extend(ops);
        self.produced = produced;
        self
    }
}

/// One kind of compression applied to one weight (see the module documentation).
pub trait Stage: std::fmt::Debug + Send + Sync {
    /// The stage's name (`prune`, `palettize`, `quantize`).
    fn name(&self) -> &'static str;

    /// Only weights with more elements than this are compressed.
    fn weight_threshold(&self) -> usize;

    /// select: whether this setting applies to the weight `c` (default: it has more
    /// elements than [`Stage::weight_threshold`]).
    fn select(&self, c: &Candidate<'_>) -> Selected {
        if c.elements > self.weight_threshold() {
            Selected::Yes
        } else {
            Selected::No
        }
    }

    /// What this setting needs iOS18 for, if anything (iOS16/17 cannot express it).
    fn needs_ios18(&self) -> Option<&'static str> {
        None
    }

    /// compress: change the weight in flight. A stage that declines the weight records why
    /// in [`InFlight::skips`] and leaves it as it was; an error stops the whole run.
    fn compress(&self, w: &mut InFlight) -> Result<()>;

    /// describe: one line for the report, if the stage changed the weight.
    fn describe(&self, w: &InFlight) -> Option<String>;

    /// emit: the ops of this stage, wrapping what the later stages emitted (`below`).
    fn emit(&self, w: &InFlight, below: Emitted, names: &Names) -> Result<Emitted>;
}

// ------------------------------------------------------------------------------------------
// Prune
// ------------------------------------------------------------------------------------------

impl Stage for PruneConfig {
    fn name(&self) -> &'static str {
        "prune"
    }

    fn weight_threshold(&self) -> usize {
        self.weight_threshold
    }

    /// Structured pruning (block or n:m) applies to conv/linear weights only, unless set by
    /// name (coremltools `_check_const_op_is_valid`).
    fn select(&self, c: &Candidate<'_>) -> Selected {
        if c.elements <= self.weight_threshold {
            return Selected::No;
        }
        let structured = matches!(
            self.method,
            PruneMethod::NOfM { .. }
                | PruneMethod::Magnitude {
                    block_size: Some(_),
                    ..
                }
        );
        let conv_or_linear = c
            .consumers
            .iter()
            .all(|u| matches!(u.op_type.as_str(), "conv" | "linear") && u.param == "weight");
        if structured && !c.by_name && !conv_or_linear {
            return Selected::Skip("structured pruning applies to conv/linear weights only".into());
        }
        Selected::Yes
    }

    fn compress(&self, w: &mut InFlight) -> Result<()> {
        match prune::prune_mask(&w.original, &self.method) {
            Ok(mask) => {
                let pruned = Weight {
                    dtype: w.original.dtype,
                    shape: w.original.shape.clone(),
                    values: w
                        .original
                        .values
                        .iter()
                        .zip(&mask)
                        .map(|(&v, &k)| if k { v } else { 0.0 })
                        .collect(),
                };
                w.mask = Some(mask);
                w.pruned = Some(pruned);
            }
            Err(d) => w.skips.push(format!("prune declined: {d}")),
        }
        Ok(())
    }

    fn describe(&self, w: &InFlight) -> Option<String> {
        let pct = w.sparsity()? * 100.0;
        Some(match &self.method {
            PruneMethod::Threshold { threshold, .. } => {
                format!("prune threshold {threshold} ({pct:.1}% zeros)")
            }
            PruneMethod::Magnitude {
                target_sparsity,
                block_size: Some(b),
                ..
            } => format!(
                "prune magnitude {:.0}% block {b} ({pct:.1}% zeros)",
                target_sparsity * 100.0
            ),
            PruneMethod::Magnitude {
                target_sparsity, ..
            } => format!(
                "prune magnitude {:.0}% ({pct:.1}% zeros)",
                target_sparsity * 100.0
            ),
            PruneMethod::NOfM { n, m, .. } => format!("prune {n}:{m} ({pct:.1}% zeros)"),
        })
    }

    fn emit(&self, w: &InFlight, below: Emitted, names: &Names) -> Result<Emitted> {
        let Some(mask) = &w.mask else {
            return Ok(below);
        };
        let (shape, dtype) = (&w.original.shape, w.original.dtype);
        let op = match &below.produced {
            Produced::Sparse(m, nz) => {
                emit::sparse_to_dense_of(&names.sparsified, m, nz, shape, dtype)
            }
            Produced::Nothing => {
                let nz: Vec<f32> = w
                    .dense()
                    .values
                    .iter()
                    .zip(mask)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| *v)
                    .collect();
                emit::sparse_to_dense(&names.sparsified, &nz, mask, shape, dtype, w.form)
            }
            other => {
                return Err(CompressError::weight(
                    &w.name,
                    format!("pruning cannot wrap {other:?} (a later stage emitted a dense weight)"),
                ));
            }
        };
        let out = Produced::Dense(names.sparsified.clone());
        Ok(below.push([op], out))
    }
}

// ------------------------------------------------------------------------------------------
// Palettize
// ------------------------------------------------------------------------------------------

impl Stage for PaletteConfig {
    fn name(&self) -> &'static str {
        "palettize"
    }

    fn weight_threshold(&self) -> usize {
        self.weight_threshold
    }

    fn needs_ios18(&self) -> Option<&'static str> {
        if matches!(self.granularity, PaletteGranularity::PerGroupedChannel(_)) {
            Some("per_grouped_channel palettization")
        } else if self.cluster_dim > 1 {
            Some("vector palettization (cluster_dim > 1)")
        } else if self.per_channel_scale {
            Some("palettization with per_channel_scale")
        } else if self.nbits == Some(3) {
            Some("3-bit palettization")
        } else {
            None
        }
    }

    fn compress(&self, w: &mut InFlight) -> Result<()> {
        let rank = w.original.shape.len();
        let axis = match (self.granularity, self.channel_axis) {
            (PaletteGranularity::PerGroupedChannel(_), Some(a)) => {
                let a = if a < 0 { a + rank as i64 } else { a };
                (0..rank as i64).contains(&a).then_some(a as usize)
            }
            _ => w.axes.map(|(_, o)| o),
        };
        let Some(axis) = axis else {
            w.skips
                .push("palettize declined: cannot decide the channel axis".into());
            return Ok(());
        };
        let dense = w.dense();
        let (src, pcs) = if self.per_channel_scale {
            let (n, s, sh) = palettize::per_channel_scale(dense, axis);
            (Cow::Owned(n), Some((s, sh, axis)))
        } else {
            (Cow::Borrowed(dense), None)
        };
        let params = PaletteParams {
            mode: self.mode,
            nbits: self.nbits,
            channel_axis: axis,
            group_size: match self.granularity {
                PaletteGranularity::PerTensor => 0,
                PaletteGranularity::PerGroupedChannel(g) => g,
            },
            cluster_dim: self.cluster_dim,
        };
        match palettize::palettize(&src, w.mask.as_deref(), &params) {
            Ok(mut p) => {
                if let Some((s, _, axis)) = &pcs {
                    let lut = p.lut.clone();
                    palettize::refine_indices(&mut p, dense, &lut, Some((s, *axis)));
                }
                w.palette = Some(Palette { palettized: p, pcs });
            }
            Err(d) => w.skips.push(format!("palettize declined: {d}")),
        }
        Ok(())
    }

    fn describe(&self, w: &InFlight) -> Option<String> {
        let p = w.palette.as_ref()?;
        let mode = match self.mode {
            PaletteMode::Kmeans => "kmeans",
            PaletteMode::Uniform => "uniform",
            PaletteMode::Unique => "unique",
        };
        let g = match self.granularity {
            PaletteGranularity::PerTensor => "per_tensor".to_string(),
            PaletteGranularity::PerGroupedChannel(g) => format!("per_grouped_channel({g})"),
        };
        let mut s = format!("palettize {mode} {}-bit {g}", p.palettized.nbits);
        if self.cluster_dim > 1 {
            s.push_str(&format!(" vector({})", self.cluster_dim));
        }
        if self.per_channel_scale {
            s.push_str(" per_channel_scale");
        }
        Some(s)
    }

    fn emit(&self, w: &InFlight, below: Emitted, names: &Names) -> Result<Emitted> {
        let Some(pal) = &w.palette else {
            return Ok(below);
        };
        let p = &pal.palettized;
        let lut = match &below.produced {
            Produced::Nothing => None,
            Produced::Lut(n) => Some(Param::Name(n.clone())),
            other => {
                return Err(CompressError::weight(
                    &w.name,
                    format!("palettization cannot wrap {other:?}"),
                ));
            }
        };
        if let Some(mask) = &w.mask {
            if w.form == Form::Ios16 {
                return Err(w.opset_error("pruning + palettization"));
            }
            if p.vector_axis.is_some() {
                return Err(CompressError::Config(
                    "vector palettization (cluster_dim > 1) cannot be combined with pruning".into(),
                ));
            }
            let n = &names.sparse_lut;
            let produced = Produced::Sparse(format!("{n}_0"), format!("{n}_1"));
            return Ok(below.push([emit::lut_to_sparse(n, p, mask, lut)], produced));
        }
        let dense = emit::lut_to_dense(&names.palettized, p, lut, w.form).ok_or_else(|| {
            w.opset_error("this palettization (several LUTs, vectors or 3-bit indices)")
        })?;
        let Some((s, sshape, _)) = &pal.pcs else {
            return Ok(below.push([dense], Produced::Dense(names.palettized.clone())));
        };
        // The per-channel scale multiplies the palettized weight: an int8-free
        // blockwise_shift_scale whose data is the LUT op's output.
        let scale = Quantized {
            dtype: QuantDtype::Int8,
            data: Vec::new(),
            shape: w.original.shape.clone(),
            scale: s.clone(),
            scale_shape: sshape.clone(),
            scale_dtype: w.original.dtype,
            zero_point: None,
            error: ErrorStats::default(),
        };
        let pcs = emit::blockwise_shift_scale(
            &names.pcs,
            Param::Name(names.palettized.clone()),
            &scale,
            w.original.dtype,
        );
        Ok(below.push([dense, pcs], Produced::Dense(names.pcs.clone())))
    }
}

// ------------------------------------------------------------------------------------------
// Quantize
// ------------------------------------------------------------------------------------------

impl Stage for LinearConfig {
    fn name(&self) -> &'static str {
        "quantize"
    }

    fn weight_threshold(&self) -> usize {
        self.weight_threshold
    }

    fn needs_ios18(&self) -> Option<&'static str> {
        if matches!(self.dtype, QuantDtype::Int4 | QuantDtype::Uint4) {
            Some("4-bit quantization")
        } else if matches!(self.granularity, QuantGranularity::PerBlock(_)) {
            Some("per_block quantization")
        } else {
            None
        }
    }

    fn compress(&self, w: &mut InFlight) -> Result<()> {
        // After palettization: quantize the LUT (per tensor: its axes are not the weight's),
        // then re-pick every index against the LUT as it will be decompressed.
        if let Some(pal) = &mut w.palette {
            let per_tensor = match &self.granularity {
                QuantGranularity::PerTensor => true,
                QuantGranularity::Blocks(b) => b.iter().all(|&x| x == 0),
                _ => false,
            };
            if !per_tensor {
                return Err(CompressError::Config(
                    "palettization + quantization quantizes the LUT, whose axes differ from the \
                     weight's: use granularity per_tensor"
                        .into(),
                ));
            }
            let p = &mut pal.palettized;
            let lut = Weight {
                dtype: p.lut_dtype,
                shape: p.lut_shape.clone(),
                values: p.lut.clone(),
            };
            if let Some(q) =
                linear::quantize(&lut, self.dtype, self.mode, &vec![0; lut.shape.len()])
            {
                let scale = pal.pcs.as_ref().map(|(s, _, a)| (s.as_slice(), *a));
                let dense = w.pruned.as_ref().unwrap_or(&w.original);
                palettize::refine_indices(p, dense, &q.dequantize(), scale);
                w.quant = Some(Quant::Lut(q));
            }
            return Ok(());
        }
        let rank = w.original.shape.len();
        match quant_block_sizes(&self.granularity, rank, w.axes) {
            Err(m) => w.skips.push(format!("quantize declined: {m}")),
            Ok(bs) => match linear::quantize(w.dense(), self.dtype, self.mode, &bs) {
                Some(q) => w.quant = Some(Quant::Dense(q)),
                None => w.skips.push(format!(
                    "quantize declined: block sizes {bs:?} do not divide shape {:?}",
                    w.original.shape
                )),
            },
        }
        Ok(())
    }

    fn describe(&self, w: &InFlight) -> Option<String> {
        let q = w.quant.as_ref()?;
        let g = match &self.granularity {
            QuantGranularity::PerTensor => "per_tensor".to_string(),
            QuantGranularity::PerChannel => "per_channel".to_string(),
            QuantGranularity::PerBlock(b) => format!("per_block({b})"),
            QuantGranularity::Blocks(b) => format!("blocks{b:?}"),
        };
        let m = match self.mode {
            linear::QuantMode::Linear => "linear",
            linear::QuantMode::LinearSymmetric => "linear_symmetric",
        };
        let lut = if matches!(q, Quant::Lut(_)) {
            " (LUT)"
        } else {
            ""
        };
        Some(format!("quantize {} {m} {g}{lut}", self.dtype.name()))
    }

    fn emit(&self, w: &InFlight, below: Emitted, names: &Names) -> Result<Emitted> {
        let data = |q: &Quantized| {
            Param::Value(emit::tensor(
                q.dtype.data_type(),
                &q.shape,
                q.dtype.pack(&q.data),
            ))
        };
        match (&w.quant, &w.palette, &w.mask) {
            (None, _, _) => Ok(below),
            (Some(Quant::Lut(q)), Some(pal), _) => {
                let n = &names.lut_quantized;
                let op = emit::blockwise_shift_scale(n, data(q), q, pal.palettized.lut_dtype);
                Ok(below.push([op], Produced::Lut(n.clone())))
            }
            (Some(Quant::Lut(_)), None, _) => Err(CompressError::weight(
                &w.name,
                "a quantized LUT without a palettization",
            )),
            (Some(Quant::Dense(q)), _, Some(mask)) => {
                if w.form == Form::Ios16 {
                    return Err(w.opset_error("pruning + quantization"));
                }
                let n = &names.sparse_quant;
                let produced = Produced::Sparse(format!("{n}_0"), format!("{n}_1"));
                Ok(below.push([emit::sparse_blockwise_shift_scale(n, q, mask)], produced))
            }
            (Some(Quant::Dense(q)), _, None) => {
                let n = &names.quantized;
                let op = match w.form {
                    Form::Ios18 => emit::blockwise_shift_scale(n, data(q), q, w.original.dtype),
                    Form::Ios16 => emit::affine_dequantize(n, q)
                        .ok_or_else(|| w.opset_error("a scale with more than one blocked axis"))?,
                };
                Ok(below.push([op], Produced::Dense(n.clone())))
            }
        }
    }
}

/// coremltools `infer_block_sizes` for linear quantization: the block size per axis from
/// the granularity and the weight's (input, output) channel axes.
pub fn quant_block_sizes(
    g: &QuantGranularity,
    rank: usize,
    axes: Option<(usize, usize)>,
) -> std::result::Result<Vec<usize>, String> {
    if let QuantGranularity::Blocks(b) = g {
        if b.len() != rank {
            return Err(format!(
                "block_size has {} entries but the weight has rank {rank}",
                b.len()
            ));
        }
        return Ok(b.clone());
    }
    let (ia, oa) = axes.ok_or("its consumers need different channel axes")?;
    let mut bs = vec![0usize; rank];
    let (ib, ob) = match g {
        QuantGranularity::PerTensor => (0, 0),
        QuantGranularity::PerChannel => (0, 1),
        QuantGranularity::PerBlock(b) => (*b, 1),
        QuantGranularity::Blocks(_) => (0, 0),
    };
    bs[ia] = ib;
    bs[oa] = ob;
    Ok(bs)
}

// ------------------------------------------------------------------------------------------
// Compositions
// ------------------------------------------------------------------------------------------

/// The stages one weight goes through: a single mode, or a joint iOS18 mode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Composition {
    /// Pruning.
    pub prune: Option<PruneConfig>,
    /// Palettization.
    pub palettize: Option<PaletteConfig>,
    /// Linear quantization (of the weight, or of the LUT after palettization).
    pub quantize: Option<LinearConfig>,
}

impl Composition {
    /// The stages in compression order (prune → palettize → quantize).
    pub fn stages(&self) -> Vec<&dyn Stage> {
        let mut v: Vec<&dyn Stage> = Vec::with_capacity(3);
        if let Some(s) = &self.prune {
            v.push(s);
        }
        if let Some(s) = &self.palettize {
            v.push(s);
        }
        if let Some(s) = &self.quantize {
            v.push(s);
        }
        v
    }

    /// Whether no stage applies.
    pub fn is_empty(&self) -> bool {
        self.prune.is_none() && self.palettize.is_none() && self.quantize.is_none()
    }

    /// What of this composition the opset form cannot express, if anything: a joint mode,
    /// or a stage setting that needs iOS18. Settings no opset can combine are errors.
    pub fn unsupported(&self, form: Form) -> Result<Option<&'static str>> {
        if let (Some(p), Some(_)) = (&self.palettize, &self.prune)
            && p.per_channel_scale
        {
            return Err(CompressError::Config(
                "per_channel_scale cannot be combined with pruning".into(),
            ));
        }
        if form == Form::Ios18 {
            return Ok(None);
        }
        let stages = self.stages();
        if stages.len() > 1 {
            return Ok(Some(
                "joint compression (more than one of prune, palettize, quantize)",
            ));
        }
        Ok(stages.iter().find_map(|s| s.needs_ios18()))
    }

    /// Run the stages on `w`, then emit their ops: empty if no stage changed the weight.
    pub fn apply(&self, w: &mut InFlight, names: &Names) -> Result<Emitted> {
        let stages = self.stages();
        for s in &stages {
            s.compress(w)?;
        }
        if !w.changed() {
            return Ok(Emitted::default());
        }
        stages
            .iter()
            .rev()
            .try_fold(Emitted::default(), |below, s| s.emit(w, below, names))
    }

    /// The report lines of the stages that changed `w`, in compression order.
    pub fn describe(&self, w: &InFlight) -> Vec<String> {
        self.stages().iter().filter_map(|s| s.describe(w)).collect()
    }
}
