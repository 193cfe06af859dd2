//! The compression pass over a program: find the weights (`const` ops) to compress, decide
//! each one's settings (coremltools' selection rules), compress them in parallel, and
//! replace each `const` by its `constexpr_*` ops.
//!
//! Selection, as `coremltools.optimize.coreml` (`need_compress_const`,
//! `_get_const_op_config`, `select_input_output_channel_axis`):
//! - a `const` of fp16/fp32 (int8/uint8 consts are reported and left alone) with at least
//!   10 elements, rank ≥ 2, consumed by at least one op, with more elements than the
//!   stage's `weight_threshold`;
//! - its setting: by its own name, else by each consumer's name or type, else global; two
//!   consumers that disagree are an error;
//! - channel axes from the consumers: output 0 / input 1, `conv_transpose` 1 / 0, `matmul`
//!   `y` −1 / −2 (swapped by `transpose_y`), `matmul` `x` −2 / −1 (swapped by
//!   `transpose_x`); consumers that disagree leave the weight without axes, and it is
//!   skipped unless an explicit per-axis block size is given.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use anekit_mil::{Binding, Block, Function, Operation, Opset, Program, Value};
use rayon::prelude::*;
use serde::Serialize;

use crate::config::{
    Config, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
    Selection,
};
use crate::emit::{self, Form, Param};
use crate::error::{CompressError, Result};
use crate::linear::{self, Quantized};
use crate::palettize::{self, PaletteParams, Palettized};
use crate::prune::{self, PruneMethod};
use crate::tensor::{ErrorStats, Weight};

/// Receives progress while weights are compressed (called from worker threads).
pub trait Progress: Sync {
    /// `total` weights are about to be compressed.
    fn start(&self, _total: usize) {}
    /// One weight is done.
    fn advance(&self, _weight: &str) {}
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {}

/// What happened to one compressed weight.
#[derive(Debug, Clone, Serialize)]
pub struct WeightReport {
    /// Function.
    pub function: String,
    /// The const op's name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Original dtype (`fp16`, `fp32`).
    pub dtype: String,
    /// Applied stages, e.g. `prune magnitude 50%`, `palettize kmeans 4-bit`.
    pub stages: Vec<String>,
    /// Op types now producing the weight, in order.
    pub ops: Vec<String>,
    /// Bytes before (dense).
    pub bytes_before: usize,
    /// Bytes of the compressed payload.
    pub bytes_after: usize,
    /// Signal-to-noise ratio of the reconstructed weight, dB (`None` = exact).
    pub snr_db: Option<f64>,
    /// Largest absolute reconstruction error.
    pub max_abs_error: f64,
    /// Fraction of zeros after pruning, if pruned.
    pub sparsity: Option<f64>,
}

/// A weight a stage was configured for but did not compress, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// Function.
    pub function: String,
    /// The const op's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// The result of a compression run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Compressed weights.
    pub weights: Vec<WeightReport>,
    /// Weights left (partly) uncompressed, with reasons.
    pub skipped: Vec<Skipped>,
    /// Ops converted to fp16 by the fp16 stage (0 when it did not run).
    pub fp16_ops: usize,
    /// What the fp16 stage did, if it ran.
    pub fp16: Option<crate::fp16::Fp16Report>,
    /// Seconds spent compressing.
    pub seconds: f64,
}

impl Report {
    /// Dense bytes of the compressed weights.
    pub fn bytes_before(&self) -> usize {
        self.weights.iter().map(|w| w.bytes_before).sum()
    }

    /// Compressed bytes of those weights.
    pub fn bytes_after(&self) -> usize {
        self.weights.iter().map(|w| w.bytes_after).sum()
    }
}

/// How a weight is consumed.
#[derive(Debug, Clone)]
struct Use {
    op_type: String,
    op_name: String,
    param: String,
    /// (output axis, input axis) as signed axes.
    axes: (i64, i64),
}

/// Function-wide facts for selection and renaming.
#[derive(Default)]
struct Index {
    uses: HashMap<String, Vec<Use>>,
    block_outputs: HashSet<String>,
    names: BTreeSet<String>,
}

fn visit_blocks<'a>(b: &'a Block, f: &mut impl FnMut(&'a Block)) {
    f(b);
    for op in &b.operations {
        for nb in &op.blocks {
            visit_blocks(nb, f);
        }
    }
}

fn bool_of(op: &Operation, param: &str, consts: &HashMap<&str, &Value>) -> bool {
    let v = match op.input(param) {
        Some(Binding::Value(v)) => Some(v),
        Some(Binding::Name(n)) => consts.get(n.as_str()).copied(),
        None => op.attributes.get(param),
    };
    v.and_then(Value::as_bool).unwrap_or(false)
}

impl Index {
    fn new(f: &Function, block: &Block) -> Self {
        let mut ix = Index::default();
        let mut consts: HashMap<&str, &Value> = HashMap::new();
        visit_blocks(block, &mut |b| {
            for op in &b.operations {
                if op.op_type == "const"
                    && let (Some(o), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
                {
                    consts.insert(o.name.as_str(), v);
                }
            }
        });
        for i in &f.inputs {
            ix.names.insert(i.name.clone());
        }
        visit_blocks(block, &mut |b| {
            ix.block_outputs.extend(b.outputs.iter().cloned());
            for i in &b.inputs {
                ix.names.insert(i.name.clone());
            }
            for op in &b.operations {
                for o in &op.outputs {
                    ix.names.insert(o.name.clone());
                }
                if let Some(n) = op.name() {
                    ix.names.insert(n.to_string());
                }
                for (param, arg) in &op.inputs {
                    for bnd in &arg.0 {
                        let Binding::Name(n) = bnd else { continue };
                        let axes = match op.op_type.as_str() {
                            "conv_transpose" => (1, 0),
                            "matmul" if param == "y" => {
                                if bool_of(op, "transpose_y", &consts) {
                                    (-2, -1)
                                } else {
                                    (-1, -2)
                                }
                            }
                            "matmul" if param == "x" => {
                                if bool_of(op, "transpose_x", &consts) {
                                    (-1, -2)
                                } else {
                                    (-2, -1)
                                }
                            }
                            _ => (0, 1),
                        };
                        ix.uses.entry(n.clone()).or_default().push(Use {
                            op_type: op.op_type.clone(),
                            op_name: op.display_name().to_string(),
                            param: param.clone(),
                            axes,
                        });
                    }
                }
            }
        });
        ix
    }

    fn fresh(&mut self, base: String) -> String {
        anekit_mil::passes::unique_name(&base, &mut self.names)
    }
}

/// (input axis, output axis) of a weight of `rank` from its consumers; `None` if they
/// disagree.
fn channel_axes(uses: &[Use], rank: usize) -> Option<(usize, usize)> {
    let norm = |a: i64| -> Option<usize> {
        let r = rank as i64;
        let a = if a < 0 { a + r } else { a };
        (0..r).contains(&a).then_some(a as usize)
    };
    let mut outs = HashSet::new();
    let mut ins = HashSet::new();
    for u in uses {
        outs.insert(norm(u.axes.0));
        ins.insert(norm(u.axes.1));
    }
    let pick = |s: HashSet<Option<usize>>| -> Option<usize> {
        if s.len() == 1 {
            s.into_iter().next().flatten()
        } else {
            None
        }
    };
    Some((pick(ins)?, pick(outs)?))
}

/// The setting of `sel` for a const named `name` with consumers `uses` (coremltools
/// `_get_const_op_config`).
fn resolve<'a, T: PartialEq>(
    sel: &'a Selection<T>,
    name: &str,
    var: &str,
    uses: &[Use],
) -> std::result::Result<Option<&'a T>, String> {
    if let Some(c) = sel.op_name.get(name).or_else(|| sel.op_name.get(var)) {
        return Ok(c.as_ref());
    }
    let mut picked: Option<(Option<&T>, &Use)> = None;
    for u in uses {
        let c = match sel.op_name.get(&u.op_name) {
            Some(c) => c.as_ref(),
            None => match sel.op_type.get(&u.op_type) {
                Some(c) => c.as_ref(),
                None => sel.global.as_ref(),
            },
        };
        match &picked {
            Some((p, first)) if *p != c => {
                return Err(format!(
                    "consumers {} ({}) and {} ({}) ask for different settings",
                    first.op_name, first.op_type, u.op_name, u.op_type
                ));
            }
            Some(_) => {}
            None => picked = Some((c, u)),
        }
    }
    Ok(picked.and_then(|p| p.0))
}

/// Names of the ops a weight may become.
#[derive(Debug, Clone)]
struct Names {
    quantized: String,
    palettized: String,
    pcs: String,
    lut_quantized: String,
    sparsified: String,
    sparse_lut: String,
    sparse_quant: String,
}

/// One weight to compress.
struct Job {
    function: String,
    path: Vec<(usize, usize)>,
    index: usize,
    name: String,
    var: String,
    value: Value,
    prune: Option<PruneConfig>,
    pal: Option<PaletteConfig>,
    quant: Option<LinearConfig>,
    axes: Option<(usize, usize)>,
    form: Form,
    keep_name: bool,
    names: Names,
}

/// (function, path of nested blocks).
type BlockKey = (String, Vec<(usize, usize)>);

/// The result of one job.
struct Outcome {
    ops: Vec<Operation>,
    var: String,
    report: Option<WeightReport>,
    skips: Vec<String>,
}

/// Compress every function of `program` as `config` says. The fp16 stage is not applied
/// here (see [`crate::fp16`]).
pub fn compress_program(
    program: &mut Program,
    config: &Config,
    progress: &dyn Progress,
) -> Result<Report> {
    let t0 = Instant::now();
    let mut report = Report::default();
    let staged = config.prune.is_some() || config.palettize.is_some() || config.quantize.is_some();
    if !staged {
        return Ok(report);
    }
    let mut jobs = Vec::new();
    let mut indexes: BTreeMap<String, Index> = BTreeMap::new();
    for (fname, f) in &program.functions {
        let opset = f.known_opset().ok_or_else(|| {
            CompressError::Unsupported(format!("function {fname} has unknown opset {:?}", f.opset))
        })?;
        let form = match opset {
            Opset::Ios15 => {
                return Err(CompressError::Unsupported(format!(
                    "function {fname} uses opset iOS15, which has no compression (constexpr) ops; \
                     re-convert the model with minimum_deployment_target iOS16 or later"
                )));
            }
            Opset::Ios16 | Opset::Ios17 => Form::Ios16,
            Opset::Ios18 | Opset::Ios26 => Form::Ios18,
        };
        let Some(block) = f.block() else { continue };
        let mut ix = Index::new(f, block);
        collect(
            fname,
            opset,
            form,
            block,
            &mut Vec::new(),
            config,
            &mut ix,
            &mut jobs,
            &mut report,
        )?;
        indexes.insert(fname.clone(), ix);
    }
    progress.start(jobs.len());
    let outcomes: Vec<Result<Outcome>> = jobs
        .par_iter()
        .map(|j| {
            let o = compute(j);
            progress.advance(&j.name);
            o
        })
        .collect();
    // Splice, deepest blocks first so that parent indices stay valid.
    let mut by_block: BTreeMap<BlockKey, Vec<(usize, Outcome)>> = BTreeMap::new();
    let mut renames: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (job, out) in jobs.iter().zip(outcomes) {
        let out = out?;
        for s in &out.skips {
            report.skipped.push(Skipped {
                function: job.function.clone(),
                name: job.name.clone(),
                reason: s.clone(),
            });
        }
        if out.ops.is_empty() {
            continue;
        }
        if out.var != job.var {
            renames
                .entry(job.function.clone())
                .or_default()
                .insert(job.var.clone(), out.var.clone());
        }
        if let Some(r) = out.report.clone() {
            report.weights.push(r);
        }
        by_block
            .entry((job.function.clone(), job.path.clone()))
            .or_default()
            .push((job.index, out));
    }
    let mut keys: Vec<_> = by_block.keys().cloned().collect();
    keys.sort_by_key(|(f, p)| (std::cmp::Reverse(p.len()), f.clone(), p.clone()));
    for key in keys {
        let Some(mut repl) = by_block.remove(&key) else {
            continue;
        };
        let (fname, path) = key;
        let Some(f) = program.functions.get_mut(&fname) else {
            continue;
        };
        let Some(block) = f.block_mut().and_then(|b| block_at(b, &path)) else {
            continue;
        };
        repl.sort_by_key(|(i, _)| *i);
        let old = std::mem::take(&mut block.operations);
        let mut it = repl.into_iter().peekable();
        for (i, op) in old.into_iter().enumerate() {
            if it.peek().is_some_and(|(j, _)| *j == i) {
                if let Some((_, o)) = it.next() {
                    block.operations.extend(o.ops);
                }
            } else {
                block.operations.push(op);
            }
        }
    }
    for (fname, map) in renames {
        if let Some(b) = program
            .functions
            .get_mut(&fname)
            .and_then(Function::block_mut)
        {
            rename(b, &map);
        }
    }
    drop(indexes);
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn block_at<'a>(b: &'a mut Block, path: &[(usize, usize)]) -> Option<&'a mut Block> {
    match path.split_first() {
        None => Some(b),
        Some(((op, blk), rest)) => {
            let nb = b.operations.get_mut(*op)?.blocks.get_mut(*blk)?;
            block_at(nb, rest)
        }
    }
}

fn rename(b: &mut Block, map: &HashMap<String, String>) {
    for op in &mut b.operations {
        for arg in op.inputs.values_mut() {
            for bnd in &mut arg.0 {
                if let Binding::Name(n) = bnd
                    && let Some(new) = map.get(n)
                {
                    *n = new.clone();
                }
            }
        }
        for nb in &mut op.blocks {
            rename(nb, map);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn collect(
    fname: &str,
    opset: Opset,
    form: Form,
    block: &Block,
    path: &mut Vec<(usize, usize)>,
    config: &Config,
    ix: &mut Index,
    jobs: &mut Vec<Job>,
    report: &mut Report,
) -> Result<()> {
    for (i, op) in block.operations.iter().enumerate() {
        for (bi, nb) in op.blocks.iter().enumerate() {
            path.push((i, bi));
            collect(fname, opset, form, nb, path, config, ix, jobs, report)?;
            path.pop();
        }
        if op.op_type != "const" || op.outputs.len() != 1 {
            continue;
        }
        let Some(value) = op.attributes.get("val") else {
            continue;
        };
        let Some(tt) = value.tensor_type() else {
            continue;
        };
        use anekit_mil::DataType as D;
        if !matches!(tt.dtype, D::Fp16 | D::Fp32 | D::Int8 | D::Uint8) {
            continue;
        }
        let Some(shape) = tt.fixed_shape() else {
            continue;
        };
        // A shape read from the file may have more elements than fit in a `usize`: no data
        // can match it, and the weight fails as such below (`Weight::from_value`).
        let n = tt
            .element_count()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(usize::MAX);
        if n < 10 {
            continue;
        }
        let var = op.outputs[0].name.clone();
        let name = op.name().unwrap_or(&var).to_string();
        let uses = ix.uses.get(&var).cloned().unwrap_or_default();
        if uses.is_empty() || shape.len() <= 1 {
            continue;
        }
        let conflict = |m: String| CompressError::Conflict {
            weight: name.clone(),
            message: m,
        };
        let over = |t: usize| n > t;
        let prune = match &config.prune {
            Some(s) => resolve(s, &name, &var, &uses)
                .map_err(conflict)?
                .filter(|c| over(c.weight_threshold))
                .cloned(),
            None => None,
        };
        let pal = match &config.palettize {
            Some(s) => resolve(s, &name, &var, &uses)
                .map_err(conflict)?
                .filter(|c| over(c.weight_threshold))
                .cloned(),
            None => None,
        };
        let quant = match &config.quantize {
            Some(s) => resolve(s, &name, &var, &uses)
                .map_err(conflict)?
                .filter(|c| over(c.weight_threshold))
                .cloned(),
            None => None,
        };
        // Structured pruning applies to conv/linear weights only, unless set by name
        // (coremltools `_check_const_op_is_valid`).
        let prune = prune.filter(|p| {
            let structured = matches!(
                p.method,
                PruneMethod::NOfM { .. }
                    | PruneMethod::Magnitude {
                        block_size: Some(_),
                        ..
                    }
            );
            let by_name = config
                .prune
                .as_ref()
                .is_some_and(|s| s.op_name.contains_key(&name) || s.op_name.contains_key(&var));
            let ok = !structured
                || by_name
                || uses.iter().all(|u| {
                    matches!(u.op_type.as_str(), "conv" | "linear") && u.param == "weight"
                });
            if !ok {
                report.skipped.push(Skipped {
                    function: fname.into(),
                    name: name.clone(),
                    reason: "structured pruning applies to conv/linear weights only".into(),
                });
            }
            ok
        });
        if prune.is_none() && pal.is_none() && quant.is_none() {
            continue;
        }
        if !matches!(tt.dtype, D::Fp16 | D::Fp32) {
            report.skipped.push(Skipped {
                function: fname.into(),
                name: name.clone(),
                reason: format!(
                    "{} constant: only fp16/fp32 weights are compressed",
                    tt.dtype
                ),
            });
            continue;
        }
        check_opset(
            fname,
            opset,
            form,
            prune.as_ref(),
            pal.as_ref(),
            quant.as_ref(),
        )?;
        let axes = channel_axes(&uses, shape.len());
        let keep_name = ix.block_outputs.contains(&var);
        let names = Names {
            quantized: ix.fresh(format!("{name}_quantized")),
            palettized: ix.fresh(format!("{name}_palettized")),
            pcs: ix.fresh(format!("{name}_palettized_pcs")),
            lut_quantized: ix.fresh(format!("{name}_palettized_lut_quantized")),
            sparsified: ix.fresh(format!("{name}_sparsified")),
            sparse_lut: ix.fresh(format!("{name}_sparsified_nonzero_data_0_palettized")),
            sparse_quant: ix.fresh(format!("{name}_sparsified_nonzero_data_0_quantized")),
        };
        jobs.push(Job {
            function: fname.into(),
            path: path.clone(),
            index: i,
            name,
            var,
            value: value.clone(),
            prune,
            pal,
            quant,
            axes,
            form,
            keep_name,
            names,
        });
    }
    Ok(())
}

/// Refuse settings the opset cannot express (coremltools' checks, plus the ones it misses).
fn check_opset(
    function: &str,
    opset: Opset,
    form: Form,
    prune: Option<&PruneConfig>,
    pal: Option<&PaletteConfig>,
    quant: Option<&LinearConfig>,
) -> Result<()> {
    if let (Some(p), Some(_)) = (pal, prune)
        && p.per_channel_scale
    {
        return Err(CompressError::Config(
            "per_channel_scale cannot be combined with pruning".into(),
        ));
    }
    if form == Form::Ios18 {
        return Ok(());
    }
    let need = |what: &str| {
        Err(CompressError::Opset {
            what: what.into(),
            function: function.into(),
            opset,
        })
    };
    let stages = [prune.is_some(), pal.is_some(), quant.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if stages > 1 {
        return need("joint compression (more than one of prune, palettize, quantize)");
    }
    if let Some(q) = quant {
        if matches!(
            q.dtype,
            linear::QuantDtype::Int4 | linear::QuantDtype::Uint4
        ) {
            return need("4-bit quantization");
        }
        if matches!(q.granularity, QuantGranularity::PerBlock(_)) {
            return need("per_block quantization");
        }
    }
    if let Some(p) = pal {
        if matches!(p.granularity, PaletteGranularity::PerGroupedChannel(_)) {
            return need("per_grouped_channel palettization");
        }
        if p.cluster_dim > 1 {
            return need("vector palettization (cluster_dim > 1)");
        }
        if p.per_channel_scale {
            return need("palettization with per_channel_scale");
        }
        if p.nbits == Some(3) {
            return need("3-bit palettization");
        }
    }
    Ok(())
}

/// coremltools `infer_block_sizes` for linear quantization.
fn quant_block_sizes(
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

fn describe_quant(q: &LinearConfig) -> String {
    let g = match &q.granularity {
        QuantGranularity::PerTensor => "per_tensor".to_string(),
        QuantGranularity::PerChannel => "per_channel".to_string(),
        QuantGranularity::PerBlock(b) => format!("per_block({b})"),
        QuantGranularity::Blocks(b) => format!("blocks{b:?}"),
    };
    let m = match q.mode {
        linear::QuantMode::Linear => "linear",
        linear::QuantMode::LinearSymmetric => "linear_symmetric",
    };
    format!("quantize {} {m} {g}", q.dtype.name())
}

fn describe_pal(p: &PaletteConfig, nbits: u8) -> String {
    let mode = match p.mode {
        palettize::PaletteMode::Kmeans => "kmeans",
        palettize::PaletteMode::Uniform => "uniform",
        palettize::PaletteMode::Unique => "unique",
    };
    let g = match p.granularity {
        PaletteGranularity::PerTensor => "per_tensor".to_string(),
        PaletteGranularity::PerGroupedChannel(g) => format!("per_grouped_channel({g})"),
    };
    let mut s = format!("palettize {mode} {nbits}-bit {g}");
    if p.cluster_dim > 1 {
        s.push_str(&format!(" vector({})", p.cluster_dim));
    }
    if p.per_channel_scale {
        s.push_str(" per_channel_scale");
    }
    s
}

fn describe_prune(p: &PruneConfig, sparsity: f64) -> String {
    match &p.method {
        PruneMethod::Threshold { threshold, .. } => {
            format!(
                "prune threshold {threshold} ({:.1}% zeros)",
                sparsity * 100.0
            )
        }
        PruneMethod::Magnitude {
            target_sparsity,
            block_size,
            ..
        } => match block_size {
            Some(b) => format!(
                "prune magnitude {:.0}% block {b} ({:.1}% zeros)",
                target_sparsity * 100.0,
                sparsity * 100.0
            ),
            None => format!(
                "prune magnitude {:.0}% ({:.1}% zeros)",
                target_sparsity * 100.0,
                sparsity * 100.0
            ),
        },
        PruneMethod::NOfM { n, m, .. } => {
            format!("prune {n}:{m} ({:.1}% zeros)", sparsity * 100.0)
        }
    }
}

/// Per-channel scale: values, shape, channel axis.
type Pcs = (Vec<f32>, Vec<usize>, usize);

enum QuantTarget {
    Dense(Quantized),
    Lut(Quantized),
}

fn compute(job: &Job) -> Result<Outcome> {
    let mut skips = Vec::new();
    let nothing = |skips: Vec<String>| {
        Ok(Outcome {
            ops: Vec::new(),
            var: job.var.clone(),
            report: None,
            skips,
        })
    };
    let Some(w) = Weight::from_value(&job.value) else {
        return Err(CompressError::weight(
            &job.name,
            "its data does not match its declared type",
        ));
    };
    if w.values.iter().any(|v| !v.is_finite()) {
        return nothing(vec![
            "contains inf or NaN (coremltools skips such weights)".into(),
        ]);
    }
    let rank = w.shape.len();
    // 1. Prune.
    let mask = match &job.prune {
        Some(p) => match prune::prune_mask(&w, &p.method) {
            Ok(m) => Some(m),
            Err(d) => {
                skips.push(format!("prune declined: {d}"));
                None
            }
        },
        None => None,
    };
    let pruned = mask.as_ref().map(|m| Weight {
        dtype: w.dtype,
        shape: w.shape.clone(),
        values: w
            .values
            .iter()
            .zip(m)
            .map(|(&v, &k)| if k { v } else { 0.0 })
            .collect(),
    });
    let dense = pruned.as_ref().unwrap_or(&w);
    // 2. Palettize.
    let mut pal: Option<(Palettized, Option<Pcs>, u8)> = None;
    if let Some(pc) = &job.pal {
        let axis = match (pc.granularity, pc.channel_axis) {
            (PaletteGranularity::PerGroupedChannel(_), Some(a)) => {
                let a = if a < 0 { a + rank as i64 } else { a };
                (0..rank as i64).contains(&a).then_some(a as usize)
            }
            _ => job.axes.map(|(_, o)| o),
        };
        match axis {
            None => skips.push("palettize declined: cannot decide the channel axis".into()),
            Some(axis) => {
                let (src, pcs) = if pc.per_channel_scale {
                    let (n, s, sh) = palettize::per_channel_scale(dense, axis);
                    (std::borrow::Cow::Owned(n), Some((s, sh, axis)))
                } else {
                    (std::borrow::Cow::Borrowed(dense), None)
                };
                let params = PaletteParams {
                    mode: pc.mode,
                    nbits: pc.nbits,
                    channel_axis: axis,
                    group_size: match pc.granularity {
                        PaletteGranularity::PerTensor => 0,
                        PaletteGranularity::PerGroupedChannel(g) => g,
                    },
                    cluster_dim: pc.cluster_dim,
                };
                match palettize::palettize(&src, mask.as_deref(), &params) {
                    Ok(mut p) => {
                        if let Some((s, _, axis)) = &pcs {
                            let lut = p.lut.clone();
                            palettize::refine_indices(&mut p, dense, &lut, Some((s, *axis)));
                        }
                        let nb = p.nbits;
                        pal = Some((p, pcs, nb));
                    }
                    Err(d) => skips.push(format!("palettize declined: {d}")),
                }
            }
        }
    }
    // 3. Quantize (the LUT when palettized).
    let mut quant: Option<QuantTarget> = None;
    if let Some(qc) = &job.quant {
        if let Some((p, _, _)) = &pal {
            let per_tensor = match &qc.granularity {
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
            let lw = Weight {
                dtype: p.lut_dtype,
                shape: p.lut_shape.clone(),
                values: p.lut.clone(),
            };
            quant = linear::quantize(&lw, qc.dtype, qc.mode, &vec![0; lw.shape.len()])
                .map(QuantTarget::Lut);
            // Re-pick indices against the LUT as it will be decompressed.
            if let (Some(QuantTarget::Lut(q)), Some((p, pcs, _))) = (&quant, &mut pal) {
                let lut = q.dequantize();
                let scale = pcs.as_ref().map(|(s, _, a)| (s.as_slice(), *a));
                palettize::refine_indices(p, dense, &lut, scale);
            }
        } else {
            match quant_block_sizes(&qc.granularity, rank, job.axes) {
                Err(m) => skips.push(format!("quantize declined: {m}")),
                Ok(bs) => match linear::quantize(dense, qc.dtype, qc.mode, &bs) {
                    Some(q) => quant = Some(QuantTarget::Dense(q)),
                    None => skips.push(format!(
                        "quantize declined: block sizes {bs:?} do not divide shape {:?}",
                        w.shape
                    )),
                },
            }
        }
    }
    // 4. Emit.
    let n = &job.names;
    let form = job.form;
    let opset_err = |what: &str| CompressError::Weight {
        name: job.name.clone(),
        message: format!("{what} needs iOS18 (the function's opset is older)"),
    };
    let mut ops: Vec<Operation> = Vec::new();
    let mut stages = Vec::new();
    let sparsity = mask
        .as_ref()
        .map(|m| m.iter().filter(|k| !**k).count() as f64 / m.len().max(1) as f64);
    if let (Some(p), Some(s)) = (&job.prune, sparsity)
        && mask.is_some()
    {
        stages.push(describe_prune(p, s));
    }
    // The LUT parameter: a literal, or the name of its quantization op.
    let mut lut_param: Option<Param> = None;
    if let (Some(QuantTarget::Lut(q)), Some((p, _, _))) = (&quant, &pal) {
        let data = emit::tensor(q.dtype.data_type(), &q.shape, q.dtype.pack(&q.data));
        ops.push(emit::blockwise_shift_scale(
            &n.lut_quantized,
            Param::Value(data),
            q,
            p.lut_dtype,
        ));
        lut_param = Some(Param::Name(n.lut_quantized.clone()));
    }
    if let (Some((p, _, nb)), Some(pc)) = (&pal, &job.pal) {
        stages.push(describe_pal(pc, *nb));
        let _ = p;
    }
    if let (Some(q), Some(qc)) = (&quant, &job.quant) {
        let mut d = describe_quant(qc);
        if let QuantTarget::Lut(_) = q {
            d.push_str(" (LUT)");
        }
        stages.push(d);
    }
    match (&mask, &pal, &quant) {
        (None, None, None) => return nothing(skips),
        (None, None, Some(QuantTarget::Dense(q))) => match form {
            Form::Ios18 => {
                let data = emit::tensor(q.dtype.data_type(), &q.shape, q.dtype.pack(&q.data));
                ops.push(emit::blockwise_shift_scale(
                    &n.quantized,
                    Param::Value(data),
                    q,
                    w.dtype,
                ));
            }
            Form::Ios16 => ops.push(
                emit::affine_dequantize(&n.quantized, q)
                    .ok_or_else(|| opset_err("a scale with more than one blocked axis"))?,
            ),
        },
        (None, Some((p, pcs, _)), _) => {
            ops.push(
                emit::lut_to_dense(&n.palettized, p, lut_param.clone(), form).ok_or_else(|| {
                    opset_err("this palettization (several LUTs, vectors or 3-bit indices)")
                })?,
            );
            if let Some((s, sshape, _)) = pcs {
                let q = Quantized {
                    dtype: linear::QuantDtype::Int8,
                    data: Vec::new(),
                    shape: w.shape.clone(),
                    scale: s.clone(),
                    scale_shape: sshape.clone(),
                    scale_dtype: w.dtype,
                    zero_point: None,
                    error: ErrorStats::default(),
                };
                ops.push(emit::blockwise_shift_scale(
                    &n.pcs,
                    Param::Name(n.palettized.clone()),
                    &q,
                    w.dtype,
                ));
            }
        }
        (Some(m), None, None) => {
            let nz: Vec<f32> = dense
                .values
                .iter()
                .zip(m)
                .filter(|(_, k)| **k)
                .map(|(v, _)| *v)
                .collect();
            ops.push(emit::sparse_to_dense(
                &n.sparsified,
                &nz,
                m,
                &w.shape,
                w.dtype,
                form,
            ));
        }
        (Some(m), None, Some(QuantTarget::Dense(q))) => {
            if form == Form::Ios16 {
                return Err(opset_err("pruning + quantization"));
            }
            ops.push(emit::sparse_blockwise_shift_scale(&n.sparse_quant, q, m));
            ops.push(emit::sparse_to_dense_of(
                &n.sparsified,
                &format!("{}_0", n.sparse_quant),
                &format!("{}_1", n.sparse_quant),
                &w.shape,
                w.dtype,
            ));
        }
        (Some(m), Some((p, _, _)), _) => {
            if form == Form::Ios16 {
                return Err(opset_err("pruning + palettization"));
            }
            if p.vector_axis.is_some() {
                return Err(CompressError::Config(
                    "vector palettization (cluster_dim > 1) cannot be combined with pruning".into(),
                ));
            }
            ops.push(emit::lut_to_sparse(&n.sparse_lut, p, m, lut_param.clone()));
            ops.push(emit::sparse_to_dense_of(
                &n.sparsified,
                &format!("{}_0", n.sparse_lut),
                &format!("{}_1", n.sparse_lut),
                &w.shape,
                w.dtype,
            ));
        }
        (None, None, Some(QuantTarget::Lut(_))) | (Some(_), None, Some(QuantTarget::Lut(_))) => {
            return nothing(skips);
        }
    }
    // The error report: from the quantization pass itself for a plain linear quantization,
    // else from the reconstructed weight.
    let stats = match (&mask, &pal, &quant) {
        (None, None, Some(QuantTarget::Dense(q))) => q.error,
        _ => {
            let recon = reconstruct(
                &w,
                mask.as_deref(),
                pal.as_ref().map(|(p, s, _)| (p, s)),
                quant.as_ref(),
                dense,
            );
            let mut st = ErrorStats::default();
            st.add(&w.values, &recon);
            st
        }
    };
    let snr_db = stats.snr_db();
    let max_err = stats.max_abs;
    let bytes_after = emit::payload_bytes(&ops);
    let mut var = ops
        .last()
        .and_then(|o| o.outputs.first())
        .map(|o| o.name.clone())
        .unwrap_or_else(|| job.var.clone());
    if job.keep_name
        && let Some(o) = ops.last_mut().and_then(|o| o.outputs.first_mut())
    {
        o.name = job.var.clone();
        var = job.var.clone();
    }
    let report = WeightReport {
        function: job.function.clone(),
        name: job.name.clone(),
        shape: w.shape.clone(),
        dtype: w.dtype.data_type().name().into(),
        stages,
        ops: ops.iter().map(|o| o.op_type.clone()).collect(),
        bytes_before: w.nbytes(),
        bytes_after,
        snr_db,
        max_abs_error: max_err,
        sparsity,
    };
    Ok(Outcome {
        ops,
        var,
        report: Some(report),
        skips,
    })
}

/// The weight the emitted ops decompress to.
fn reconstruct(
    w: &Weight,
    mask: Option<&[bool]>,
    pal: Option<(&Palettized, &Option<Pcs>)>,
    quant: Option<&QuantTarget>,
    dense: &Weight,
) -> Vec<f32> {
    let mut out = match (pal, quant) {
        (Some((p, pcs)), q) => {
            let mut p = p.clone();
            if let Some(QuantTarget::Lut(q)) = q {
                p.lut = q.dequantize();
            }
            let mut v = p.reconstruct();
            if let Some((s, _, axis)) = pcs {
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
        (None, Some(QuantTarget::Dense(q))) => q.dequantize(),
        _ => dense.values.clone(),
    };
    if let Some(m) = mask {
        for (v, &k) in out.iter_mut().zip(m) {
            if !k {
                *v = 0.0;
            }
        }
    }
    out
}
