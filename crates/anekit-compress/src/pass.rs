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

use crate::config::{Config, Selection};
use crate::emit::{self, Form};
use crate::error::{CompressError, Result};
use crate::stage::{Candidate, Composition, Consumer, InFlight, Names, Selected, Stage};
use crate::tensor::Weight;

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

/// Function-wide facts for selection and renaming.
#[derive(Default)]
struct Index {
    uses: HashMap<String, Vec<Consumer>>,
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
                        ix.uses.entry(n.clone()).or_default().push(Consumer {
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
fn channel_axes(uses: &[Consumer], rank: usize) -> Option<(usize, usize)> {
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

/// One weight to compress.
struct Job {
    function: String,
    path: Vec<(usize, usize)>,
    index: usize,
    name: String,
    var: String,
    value: Value,
    stages: Composition,
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

/// Compress every function of `program` as `config` says: collect the weights and their
/// stages, compress them in parallel, splice the results in. The fp16 stage is not applied
/// here (see [`crate::fp16`]).
pub fn compress_program(
    program: &mut Program,
    config: &Config,
    progress: &dyn Progress,
) -> Result<Report> {
    let t0 = Instant::now();
    let mut report = Report::default();
    if config.prune.is_none() && config.palettize.is_none() && config.quantize.is_none() {
        return Ok(report);
    }
    let jobs = collect_jobs(program, config, &mut report)?;
    progress.start(jobs.len());
    let outcomes: Vec<Result<Outcome>> = jobs
        .par_iter()
        .map(|j| {
            let o = compute(j);
            progress.advance(&j.name);
            o
        })
        .collect();
    splice(program, &jobs, outcomes, &mut report)?;
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// The op form of a function's opset; iOS15 has no constexpr ops.
fn form_of(fname: &str, f: &Function) -> Result<(Opset, Form)> {
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
    Ok((opset, form))
}

/// Every weight of `program` that some stage compresses.
fn collect_jobs(program: &Program, config: &Config, report: &mut Report) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (fname, f) in &program.functions {
        let (opset, form) = form_of(fname, f)?;
        let Some(block) = f.block() else { continue };
        let mut ix = Index::new(f, block);
        let scope = Scope {
            function: fname,
            opset,
            form,
            config,
        };
        collect(&scope, block, &mut Vec::new(), &mut ix, &mut jobs, report)?;
    }
    Ok(jobs)
}

/// Replace each compressed `const` by its ops (deepest blocks first, so that parent
/// indices stay valid) and rename its uses where the last op's output got a new name.
fn splice(
    program: &mut Program,
    jobs: &[Job],
    outcomes: Vec<Result<Outcome>>,
    report: &mut Report,
) -> Result<()> {
    let mut by_block: BTreeMap<BlockKey, Vec<(usize, Outcome)>> = BTreeMap::new();
    let mut renames: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (job, out) in jobs.iter().zip(outcomes) {
        let out = out?;
        report.skipped.extend(out.skips.iter().map(|s| Skipped {
            function: job.function.clone(),
            name: job.name.clone(),
            reason: s.clone(),
        }));
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
        let Some(block) = program
            .functions
            .get_mut(&fname)
            .and_then(Function::block_mut)
            .and_then(|b| block_at(b, &path))
        else {
            continue;
        };
        repl.sort_by_key(|(i, _)| *i);
        let old = std::mem::take(&mut block.operations);
        let mut it = repl.into_iter().peekable();
        for (i, op) in old.into_iter().enumerate() {
            match it.next_if(|(j, _)| *j == i) {
                Some((_, o)) => block.operations.extend(o.ops),
                None => block.operations.push(op),
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
    Ok(())
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

/// Where the weights of one block are collected from.
struct Scope<'a> {
    function: &'a str,
    opset: Opset,
    form: Form,
    config: &'a Config,
}

/// The setting of stage `sel` for a weight, if it applies to it (coremltools
/// `_get_const_op_config`, then [`Stage::select`]); a setting that does not apply is
/// reported in `skipped`.
fn select<T: Stage + Clone + PartialEq>(
    sel: Option<&Selection<T>>,
    cand: Candidate<'_>,
    skipped: &mut Vec<String>,
) -> Result<Option<T>> {
    let Some(sel) = sel else { return Ok(None) };
    let setting = sel
        .resolve(cand.name, cand.var, cand.consumers)
        .map_err(|message| CompressError::Conflict {
            weight: cand.name.to_string(),
            message,
        })?;
    let Some(setting) = setting else {
        return Ok(None);
    };
    let cand = Candidate {
        by_name: sel.is_named(cand.name, cand.var),
        ..cand
    };
    Ok(match setting.select(&cand) {
        Selected::Yes => Some(setting.clone()),
        Selected::No => None,
        Selected::Skip(reason) => {
            skipped.push(reason);
            None
        }
    })
}

/// Collect the weights of `block` (and of its nested blocks) to compress.
fn collect(
    scope: &Scope<'_>,
    block: &Block,
    path: &mut Vec<(usize, usize)>,
    ix: &mut Index,
    jobs: &mut Vec<Job>,
    report: &mut Report,
) -> Result<()> {
    for (i, op) in block.operations.iter().enumerate() {
        for (bi, nb) in op.blocks.iter().enumerate() {
            path.push((i, bi));
            collect(scope, nb, path, ix, jobs, report)?;
            path.pop();
        }
        if let Some(job) = weight_job(scope, op, ix, report)? {
            jobs.push(Job {
                path: path.clone(),
                index: i,
                ..job
            });
        }
    }
    Ok(())
}

/// The job of `op` if it is a weight some stage compresses (`path` and `index` unset).
fn weight_job(
    scope: &Scope<'_>,
    op: &Operation,
    ix: &mut Index,
    report: &mut Report,
) -> Result<Option<Job>> {
    use anekit_mil::DataType as D;
    if op.op_type != "const" || op.outputs.len() != 1 {
        return Ok(None);
    }
    let Some(value) = op.attributes.get("val") else {
        return Ok(None);
    };
    let Some(tt) = value.tensor_type() else {
        return Ok(None);
    };
    if !matches!(tt.dtype, D::Fp16 | D::Fp32 | D::Int8 | D::Uint8) {
        return Ok(None);
    }
    let Some(shape) = tt.fixed_shape() else {
        return Ok(None);
    };
    // A shape read from the file may have more elements than fit in a `usize`: no data can
    // match it, and the weight fails as such below (`Weight::from_value`).
    let elements = tt
        .element_count()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let var = op.outputs[0].name.clone();
    let name = op.name().unwrap_or(&var).to_string();
    let consumers = ix.uses.get(&var).cloned().unwrap_or_default();
    if elements < 10 || consumers.is_empty() || shape.len() <= 1 {
        return Ok(None);
    }
    let cand = Candidate {
        name: &name,
        var: &var,
        consumers: &consumers,
        elements,
        by_name: false,
    };
    let c = scope.config;
    let mut skips = Vec::new();
    let stages = Composition {
        prune: select(c.prune.as_ref(), cand, &mut skips)?,
        palettize: select(c.palettize.as_ref(), cand, &mut skips)?,
        quantize: select(c.quantize.as_ref(), cand, &mut skips)?,
    };
    let skip = |reason: String| Skipped {
        function: scope.function.into(),
        name: name.clone(),
        reason,
    };
    report.skipped.extend(skips.into_iter().map(skip));
    if stages.is_empty() {
        return Ok(None);
    }
    if !matches!(tt.dtype, D::Fp16 | D::Fp32) {
        let reason = format!(
            "{} constant: only fp16/fp32 weights are compressed",
            tt.dtype
        );
        report.skipped.push(skip(reason));
        return Ok(None);
    }
    if let Some(what) = stages.unsupported(scope.form)? {
        return Err(CompressError::Opset {
            what: what.into(),
            function: scope.function.into(),
            opset: scope.opset,
        });
    }
    Ok(Some(Job {
        function: scope.function.into(),
        path: Vec::new(),
        index: 0,
        axes: channel_axes(&consumers, shape.len()),
        keep_name: ix.block_outputs.contains(&var),
        names: Names::new(&name, |base| ix.fresh(base)),
        value: value.clone(),
        stages,
        form: scope.form,
        name,
        var,
    }))
}

/// Compress one weight: its stages, then the ops that replace its `const`.
fn compute(job: &Job) -> Result<Outcome> {
    let nothing = |skips: Vec<String>| Outcome {
        ops: Vec::new(),
        var: job.var.clone(),
        report: None,
        skips,
    };
    let w = Weight::from_value(&job.value).ok_or_else(|| {
        CompressError::weight(&job.name, "its data does not match its declared type")
    })?;
    if w.values.iter().any(|v| !v.is_finite()) {
        return Ok(nothing(vec![
            "contains inf or NaN (coremltools skips such weights)".into(),
        ]));
    }
    let mut flight = InFlight::new(job.name.clone(), w, job.axes, job.form);
    let mut ops = job.stages.apply(&mut flight, &job.names)?.ops;
    if ops.is_empty() {
        return Ok(nothing(flight.skips));
    }
    let stats = flight.error();
    let mut var = ops
        .last()
        .and_then(|o| o.outputs.first())
        .map_or_else(|| job.var.clone(), |o| o.name.clone());
    if job.keep_name
        && let Some(o) = ops.last_mut().and_then(|o| o.outputs.first_mut())
    {
        o.name = job.var.clone();
        var = job.var.clone();
    }
    let w = &flight.original;
    let report = WeightReport {
        function: job.function.clone(),
        name: job.name.clone(),
        shape: w.shape.clone(),
        dtype: w.dtype.data_type().name().into(),
        stages: job.stages.describe(&flight),
        ops: ops.iter().map(|o| o.op_type.clone()).collect(),
        bytes_before: w.nbytes(),
        bytes_after: emit::payload_bytes(&ops),
        snr_db: stats.snr_db(),
        max_abs_error: stats.max_abs,
        sparsity: flight.sparsity(),
    };
    Ok(Outcome {
        ops,
        var,
        report: Some(report),
        skips: flight.skips,
    })
}
