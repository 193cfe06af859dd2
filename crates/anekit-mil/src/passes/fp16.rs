//! fp32 → fp16 compute-precision conversion of fp32 ML Programs: what `ct.convert(...,
//! compute_precision=ct.precision.FLOAT16)` does to a program, reproduced from coremltools
//! 9.0's `common::add_fp16_cast` pass (`FP16ComputePrecision` in
//! `mil/passes/defs/quantization.py`) and the cleanup passes its default pipeline
//! (`pass_pipeline.py`) runs after it: `const_elimination`, `dead_code_elimination`,
//! `cast_optimization` (`optimize_repeat_ops.py`), twice.
//!
//! # What is converted
//!
//! [`FP16_RULES`] classifies every op type of the registry. Every op of every function
//! (nested `cond`/`while_loop` blocks included, each block with its own casts) is converted
//! unless
//! - it is a `cast`, `while_loop`, `cond`, list op (`make_list`, `list_gather`,
//!   `list_scatter`, `list_read`, `list_write`, `list_length`), `read_state`,
//!   `coreml_update_state` (coremltools' `_UNSUPPORTED_FP16_OPS`; the bodies of `cond` and
//!   `while_loop` are converted, the ops themselves keep their fp32 interface) or
//!   `write_state` (what `coreml_update_state` is written as), so states keep their type; or
//! - one of its inputs is an fp32 constant with a finite value beyond ±65504, the largest
//!   fp16 (coremltools' `fp16_overflow`; values with |x| ≥ 1e38 count as infinities, which
//!   fp16 represents).
//!
//! Converting an op casts each fp32 tensor argument to fp16, except arguments of parameters
//! whose type domain (in the op registry of [`crate::ops`], for the function's opset)
//! excludes fp16, and — from iOS17 on, where these ops take mixed precision — `alpha` of
//! `elu`, `leaky_relu`, `prelu`, `thresholded_relu`, `alpha`/`beta` of `clamped_relu`,
//! `linear_activation`, `scaled_tanh`, `sigmoid_hard`, `softplus_parametric` and `epsilon`
//! of `inverse`, `log`, `rsqrt`, which stay fp32. An op none of whose arguments is cast
//! stays as it is (e.g. iOS15 `lstm`, fp32-only). The converted op is renamed
//! `<name>_cast_fp16`; its output types are re-inferred by the registry (declared shapes
//! kept, element type from inference); every output that was fp32 and no longer is gets a
//! `cast` back to fp32 that keeps the original variable name and type, so consumers that stay
//! fp32, nested-block outputs and function outputs are untouched.
//!
//! - fp32 constants (`const` ops, inline values, attribute parameters of iOS16/17
//!   `constexpr_*` ops) are replaced by fp16 constants (`<name>_to_fp16`, rounded to nearest
//!   even). In tensors of fewer than 400 elements a non-zero value that rounds to zero becomes
//!   the smallest fp16 subnormal with its sign (coremltools' `_check_underflow_to_zero`).
//! - Other fp32 variables (function inputs, outputs of unconverted ops, block inputs) get one
//!   `cast` to fp16 (`<name>_to_fp16`) per block, shared by all consumers in that block.
//! - Function inputs, outputs and states keep their names and types.
//!
//! Then the cleanup: dead ops (the fp32 constants no op uses any more, unused casts back) are
//! removed, and `cast_optimization` removes casts to the type their input already has and
//! fuses consecutive casts where the pair's range and resolution equal the last cast's
//! (coremltools' rule) — an fp16 → fp32 → fp16 round trip between two converted ops
//! disappears. A program with no fp32 tensor to convert is left exactly as it was.
//!
//! # Differences from coremltools
//!
//! - Names: coremltools names the cast back `<op>_cast_fp16_to_fp32` and lets the converter
//!   rename function outputs afterwards; here the cast back produces the original name.
//! - `const_elimination` in coremltools folds every op whose value it can infer; here only
//!   the casts of constants this conversion makes are folded (a converted program has no
//!   other foldable op; the converter folded them).
//! - Where `cast_optimization` would replace a function output by another variable (renaming
//!   an output of the model), an `identity` op keeps the output's name instead (coremltools
//!   does the same when the replacement is a function input).
//! - An op whose new output types the registry cannot infer stays fp32 and is reported in
//!   [`Fp16Report::skipped`] (coremltools would fail).
//! - Errors ([`MilError::Invalid`] with the context `fp16 conversion of function <f>, op <op>`:
//!   an op type the function's opset does not have, an unknown opset, a constant whose data
//!   does not match its type) name the function and op and leave the program as it was.
//! - coremltools' pipeline also runs `add_int16_cast` (int32 → int16 for gather indices and
//!   similar); that is a separate conversion this module does not do.
//!
//! # Use
//!
//! [`Fp16ComputePrecision`] is the [`Pass`] (for a [`super::PassManager`]; it counts the
//! converted ops); [`convert`] runs the same conversion and returns the whole
//! [`Fp16Report`]. `anekit compress --fp16` (`anekit_compress::fp16`) and
//! `anekit optimize --fp16` (`anekit_plan::optimize_passes`) both run it.
//!
//! Verified against coremltools itself in `crates/anekit-compress/tests/fp16.rs`
//! (`scripts/fp16_oracle.py`).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::error::{MilError, Result};
use crate::ops::{Arg, OpDef, ParamKind, check_args, infer_with, registry};
use crate::passes::Pass;
use crate::validate::Env;
use crate::{
    Argument, Binding, Block, DataType, NamedValueType, Operation, Opset, Placement, Program,
    TensorType, Value, ValueType,
};
use half::f16;
use half::slice::HalfFloatSliceExt;
use serde::Serialize;

/// The largest finite fp16 value.
pub const FP16_MAX: f32 = 65504.0;

/// Magnitude from which coremltools treats an fp32 constant as an infinity in the overflow
/// check.
const INFINITY_THRESHOLD: f32 = 1e38;

/// Tensors with fewer elements get the underflow fix.
const UNDERFLOW_FIX_MAX_ELEMENTS: usize = 400;

/// What the conversion does with an op type (coremltools' `FP16ComputePrecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp16Rule {
    /// Computed in fp16: each fp32 tensor argument whose parameter's type domain allows fp16
    /// is cast to fp16.
    Convert,
    /// As [`Fp16Rule::Convert`], except that from iOS17 on (where these ops take mixed
    /// precision) the arguments of these parameters stay fp32 (coremltools'
    /// `_ACTIVATION_ALPHA_OPS`, `_ACTIVATION_ALPHA_BETA_OPS`, `_ELEMENTWISE_UNARY_EPSILON_OPS`).
    ConvertKeepingFp32(&'static [&'static str]),
    /// Never converted: coremltools' `_UNSUPPORTED_FP16_OPS`, plus `write_state`, the
    /// serialized form of its `coreml_update_state` (coremltools' loader turns it back into
    /// `coreml_update_state`; that name is not an op of the serialized opsets, so it is not in
    /// the registry). The blocks of `cond` and `while_loop` are converted; the ops themselves
    /// keep their fp32 interface, and states keep their type.
    Keep,
    /// A constant (`const`): replaced by an fp16 constant.
    Constant,
}

/// Every registry op type and what the conversion does with it. Source: coremltools 9.0,
/// `coremltools/converters/mil/mil/passes/defs/quantization.py` (`FP16ComputePrecision`).
/// A test checks that the table classifies every op of the registry exactly once.
pub const FP16_RULES: &[(Fp16Rule, &[&str])] = &[
    (
        Fp16Rule::Keep,
        &[
            "cast",
            "cond",
            "while_loop",
            "make_list",
            "list_gather",
            "list_scatter",
            "list_read",
            "list_write",
            "list_length",
            "read_state",
            "write_state",
        ],
    ),
    (Fp16Rule::Constant, &["const"]),
    (
        Fp16Rule::ConvertKeepingFp32(&["alpha"]),
        &["elu", "leaky_relu", "prelu", "thresholded_relu"],
    ),
    (
        Fp16Rule::ConvertKeepingFp32(&["alpha", "beta"]),
        &[
            "clamped_relu",
            "linear_activation",
            "scaled_tanh",
            "sigmoid_hard",
            "softplus_parametric",
        ],
    ),
    (
        Fp16Rule::ConvertKeepingFp32(&["epsilon"]),
        &["inverse", "log", "rsqrt"],
    ),
    (
        Fp16Rule::Convert,
        &[
            "abs",
            "acos",
            "add",
            "affine",
            "argsort",
            "asin",
            "atan",
            "atanh",
            "avg_pool",
            "band_part",
            "batch_norm",
            "batch_to_space",
            "ceil",
            "classify",
            "clip",
            "concat",
            "constexpr_affine_dequantize",
            "constexpr_blockwise_shift_scale",
            "constexpr_cast",
            "constexpr_lut_to_dense",
            "constexpr_lut_to_sparse",
            "constexpr_sparse_blockwise_shift_scale",
            "constexpr_sparse_to_dense",
            "conv",
            "conv_quantized",
            "conv_transpose",
            "cos",
            "cosh",
            "crop",
            "crop_resize",
            "cumsum",
            "depth_to_space",
            "dequantize",
            "einsum",
            "equal",
            "erf",
            "exp",
            "exp2",
            "expand_dims",
            "fill",
            "fill_like",
            "flatten2d",
            "floor",
            "floor_div",
            "gather",
            "gather_along_axis",
            "gather_nd",
            "gelu",
            "greater",
            "greater_equal",
            "gru",
            "identity",
            "instance_norm",
            "l2_norm",
            "l2_pool",
            "layer_norm",
            "less",
            "less_equal",
            "linear",
            "local_response_norm",
            "logical_and",
            "logical_not",
            "logical_or",
            "logical_xor",
            "lstm",
            "matmul",
            "max_pool",
            "maximum",
            "minimum",
            "mod",
            "mul",
            "non_maximum_suppression",
            "non_zero",
            "not_equal",
            "one_hot",
            "pad",
            "pixel_shuffle",
            "pixel_unshuffle",
            "pow",
            "quantize",
            "random_bernoulli",
            "random_categorical",
            "random_normal",
            "random_uniform",
            "range_1d",
            "real_div",
            "reduce_argmax",
            "reduce_argmin",
            "reduce_l1_norm",
            "reduce_l2_norm",
            "reduce_log_sum",
            "reduce_log_sum_exp",
            "reduce_max",
            "reduce_mean",
            "reduce_min",
            "reduce_prod",
            "reduce_sum",
            "reduce_sum_square",
            "relu",
            "relu6",
            "resample",
            "reshape",
            "reshape_like",
            "resize",
            "resize_bilinear",
            "resize_nearest_neighbor",
            "reverse",
            "reverse_sequence",
            "rnn",
            "round",
            "scaled_dot_product_attention",
            "scatter",
            "scatter_along_axis",
            "scatter_nd",
            "select",
            "shape",
            "sigmoid",
            "sign",
            "silu",
            "sin",
            "sinh",
            "slice_by_index",
            "slice_by_size",
            "slice_update",
            "sliding_windows",
            "softmax",
            "softplus",
            "softsign",
            "space_to_batch",
            "space_to_depth",
            "split",
            "sqrt",
            "square",
            "squeeze",
            "stack",
            "sub",
            "tan",
            "tanh",
            "threshold",
            "tile",
            "topk",
            "transpose",
            "upsample_bilinear",
            "upsample_nearest_neighbor",
        ],
    ),
];

/// The `fp16 pass` column of `docs/op-coverage.md`: [`FP16_RULES`] per op type.
pub fn coverage_column() -> crate::ops::CoverageColumn {
    let cells = FP16_RULES
        .iter()
        .flat_map(|(rule, ops)| {
            let cell = match rule {
                Fp16Rule::Convert => "fp16".to_string(),
                Fp16Rule::ConvertKeepingFp32(params) => {
                    format!("fp16; {} fp32 from iOS17", params.join(", "))
                }
                Fp16Rule::Keep => "kept".to_string(),
                Fp16Rule::Constant => "fp16 constant".to_string(),
            };
            ops.iter().map(move |op| ((*op).to_string(), cell.clone()))
        })
        .collect();
    crate::ops::CoverageColumn {
        header: "fp16 pass".into(),
        legend: "what the fp32 → fp16 compute-precision conversion (`anekit optimize --fp16`, \
                 `anekit compress --fp16`; coremltools' `FP16ComputePrecision`) does with the op \
                 type (`anekit_mil::passes::fp16::FP16_RULES`): **fp16** (computed in fp16), \
                 **kept** (never converted), **fp16 constant** (replaced by an fp16 constant)."
            .into(),
        cells,
    }
}

/// What the conversion does with `op_type`, or `None` for an op the registry does not know.
pub fn fp16_rule(op_type: &str) -> Option<Fp16Rule> {
    FP16_RULES
        .iter()
        .find(|(_, ops)| ops.contains(&op_type))
        .map(|(rule, _)| *rule)
}

/// An op the conversion left fp32, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fp16Skip {
    /// The function.
    pub function: String,
    /// The op's name.
    pub op: String,
    /// The op type.
    pub op_type: String,
    /// Why it stays fp32.
    pub reason: String,
}

/// What [`convert`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fp16Report {
    /// Ops converted to fp16 compute precision (nested blocks included).
    pub ops: usize,
    /// fp32 constants replaced by fp16 ones (one per constant and block).
    pub consts: usize,
    /// `cast` ops in the program after the conversion minus before.
    pub casts_added: isize,
    /// Bytes of constant tensor data (`const` ops) in the program before.
    pub weight_bytes_before: usize,
    /// Bytes of constant tensor data after.
    pub weight_bytes_after: usize,
    /// Ops left fp32 because a constant input overflows fp16 or their fp16 types cannot be
    /// inferred (ops excluded by type are not listed).
    pub skipped: Vec<Fp16Skip>,
}

/// The fp32 → fp16 compute-precision conversion as a [`Pass`] (`fp16-compute-precision`):
/// coremltools 9.0's `add_fp16_cast` and the cleanup after it (see the
/// [module documentation](self)). [`Pass::run`] returns the number of converted ops;
/// [`convert`] gives the whole report. An error leaves the program as it was.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fp16ComputePrecision;

impl Pass for Fp16ComputePrecision {
    fn name(&self) -> &str {
        "fp16-compute-precision"
    }

    fn run(&self, program: &mut Program) -> Result<usize> {
        Ok(convert(program)?.ops)
    }
}

/// The error of the conversion of function `function` (at op `op`, if any).
fn fp16_error(function: &str, op: Option<&str>, message: impl Into<String>) -> MilError {
    let context = match op {
        Some(op) => format!("fp16 conversion of function {function}, op {op}"),
        None => format!("fp16 conversion of function {function}"),
    };
    MilError::invalid(context, message)
}

/// Convert `program` to fp16 compute precision and say what changed (see the module
/// documentation). Every function is converted (the block of its opset); a function with
/// nothing to convert is left untouched, and an error leaves the whole program as it was.
pub fn convert(program: &mut Program) -> Result<Fp16Report> {
    let mut report = Fp16Report {
        weight_bytes_before: const_bytes(program),
        ..Fp16Report::default()
    };
    let casts_before = count_ops(program, "cast");
    // convert copies (the weights are shared, not copied), so that an error leaves the
    // program as it was
    let mut done = Vec::new();
    for (fname, func) in &program.functions {
        let opset = func
            .known_opset()
            .ok_or_else(|| fp16_error(fname, None, format!("unknown opset {}", func.opset)))?;
        let inputs = &func.inputs;
        let mut block = func
            .block()
            .cloned()
            .ok_or_else(|| fp16_error(fname, None, "the function has no block for its opset"))?;
        let block = &mut block;
        let mut vars: BTreeSet<String> = inputs.iter().map(|i| i.name.clone()).collect();
        let mut op_names = BTreeSet::new();
        collect_names(block, &mut vars, &mut op_names);
        let mut conv = Converter {
            function: fname,
            opset,
            vars,
            op_names,
            ops: 0,
            consts: 0,
            skipped: Vec::new(),
        };
        let mut env = Env::default();
        env.push();
        for i in inputs {
            env.insert(&i.name, Arg::var(i.ty.clone()));
        }
        conv.block(block, &mut env)?;
        report.ops += conv.ops;
        report.consts += conv.consts;
        report.skipped.append(&mut conv.skipped);
        if conv.ops > 0 {
            let mut types: HashMap<String, ValueType> = inputs
                .iter()
                .map(|i| (i.name.clone(), i.ty.clone()))
                .collect();
            collect_types(block, &mut types);
            let strings = string_consts(block);
            let ctx = CastOpt {
                types: &types,
                strings: &strings,
            };
            // dead_code_elimination, cast_optimization, dead_code_elimination, twice (the
            // constants were folded as they were made: const_elimination has nothing left)
            for _ in 0..2 {
                dce_block(block);
                ctx.block(block, true);
            }
            dce_block(block);
            done.push((fname.clone(), std::mem::take(block)));
        }
    }
    for (fname, block) in done {
        if let Some(b) = program
            .functions
            .get_mut(&fname)
            .and_then(|f| f.block_mut())
        {
            *b = block;
        }
    }
    report.casts_added = count_ops(program, "cast") as isize - casts_before as isize;
    report.weight_bytes_after = const_bytes(program);
    Ok(report)
}

// ------------------------------------------------------------------------------------------
// add_fp16_cast
// ------------------------------------------------------------------------------------------

struct Converter<'a> {
    function: &'a str,
    opset: Opset,
    /// Every variable name of the function (new names avoid them).
    vars: BTreeSet<String>,
    /// Every op name of the function.
    op_names: BTreeSet<String>,
    ops: usize,
    consts: usize,
    skipped: Vec<Fp16Skip>,
}

/// The ops that replace one converted op, and what they define.
struct Rewrite {
    ops: Vec<Operation>,
    defs: Vec<(String, Arg)>,
    cache: Vec<(String, String)>,
    /// fp32 literals (inline values, attributes) made fp16.
    literals: usize,
}

impl Converter<'_> {
    fn error(&self, op: &Operation, message: impl Into<String>) -> MilError {
        fp16_error(self.function, Some(op.display_name()), message)
    }

    fn skip(&mut self, op: &Operation, reason: String) {
        tracing::debug!(op = op.display_name(), %reason, "fp16: op stays fp32");
        self.skipped.push(Fp16Skip {
            function: self.function.to_string(),
            op: op.display_name().to_string(),
            op_type: op.op_type.clone(),
            reason,
        });
    }

    /// A new variable name.
    fn fresh_var(&mut self, base: &str) -> String {
        crate::passes::unique_name(base, &mut self.vars)
    }

    /// A new op name.
    fn fresh_op(&mut self, base: &str) -> String {
        crate::passes::unique_name(base, &mut self.op_names)
    }

    /// A new name for an op and its only output (`const`, `cast`).
    fn fresh_both(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 0u64;
        while self.vars.contains(&name) || self.op_names.contains(&name) {
            i += 1;
            name = format!("{base}_{i}");
        }
        self.vars.insert(name.clone());
        self.op_names.insert(name.clone());
        name
    }

    /// Convert the ops of `block` (nested blocks first, as coremltools does), with one cast
    /// cache per block.
    fn block(&mut self, block: &mut Block, env: &mut Env) -> Result<()> {
        let mut cache: HashMap<String, String> = HashMap::new();
        let ops = std::mem::take(&mut block.operations);
        let mut out = Vec::with_capacity(ops.len());
        for mut op in ops {
            for b in &mut op.blocks {
                env.push();
                for i in &b.inputs {
                    env.insert(&i.name, Arg::var(i.ty.clone()));
                }
                let r = self.block(b, env);
                env.pop();
                r?;
            }
            match self.rewrite(&op, env, &cache)? {
                Some(rw) => {
                    self.ops += 1;
                    for (n, a) in rw.defs {
                        env.insert(&n, a);
                    }
                    cache.extend(rw.cache);
                    out.extend(rw.ops);
                }
                None => {
                    define_outputs(env, &op, self.opset);
                    out.push(op);
                }
            }
        }
        block.operations = out;
        Ok(())
    }

    /// Whether an argument of `param` of `op` is cast (coremltools `should_cast_parameter`).
    fn should_cast(&self, def: &OpDef, op_type: &str, param: &str) -> bool {
        match def.param(param).map(|p| p.kind) {
            None => return false,
            Some(ParamKind::Tensor(d)) if !d.types.is_empty() && !d.allows(DataType::Fp16) => {
                return false;
            }
            _ => {}
        }
        match fp16_rule(op_type) {
            Some(Fp16Rule::ConvertKeepingFp32(params)) if self.opset >= Opset::Ios17 => {
                !params.contains(&param)
            }
            _ => true,
        }
    }

    /// The first argument of `op` that is an fp32 constant with a finite value beyond the
    /// fp16 range (coremltools `fp16_overflow`).
    fn overflowing_input(&self, op: &Operation, env: &Env) -> Option<String> {
        for (param, argument) in &op.inputs {
            for b in &argument.0 {
                let v = match b {
                    Binding::Value(v) => Some(v),
                    Binding::Name(n) => env
                        .get(n)
                        .filter(|a| a.from_const)
                        .and_then(|a| a.value.as_ref()),
                };
                if v.is_some_and(overflows_fp16) {
                    return Some(param.clone());
                }
            }
        }
        let attr_params = registry()
            .get(&op.op_type, self.opset)
            .is_some_and(|d| d.params_as_attributes);
        if attr_params {
            for (k, v) in &op.attributes {
                if k != "name" && overflows_fp16(v) {
                    return Some(k.clone());
                }
            }
        }
        None
    }

    /// The fp16 version of `op`, or `None` when it stays as it is.
    fn rewrite(
        &mut self,
        op: &Operation,
        env: &mut Env,
        cache: &HashMap<String, String>,
    ) -> Result<Option<Rewrite>> {
        if matches!(
            fp16_rule(&op.op_type),
            Some(Fp16Rule::Keep | Fp16Rule::Constant)
        ) || !op.blocks.is_empty()
        {
            return Ok(None);
        }
        let def = registry().get(&op.op_type, self.opset).ok_or_else(|| {
            self.error(
                op,
                format!("op type `{}` does not exist in {}", op.op_type, self.opset),
            )
        })?;
        if let Some(param) = self.overflowing_input(op, env) {
            self.skip(
                op,
                format!("fp32 constant `{param}` has finite values beyond ±{FP16_MAX}"),
            );
            return Ok(None);
        }
        let mut new_op = op.clone();
        let mut rw = Rewrite {
            ops: Vec::new(),
            defs: Vec::new(),
            cache: Vec::new(),
            literals: 0,
        };
        let mut modified = false;
        let mut inputs = std::mem::take(&mut new_op.inputs);
        for (param, argument) in &mut inputs {
            if !self.should_cast(def, &op.op_type, param) {
                continue;
            }
            for b in &mut argument.0 {
                match b {
                    Binding::Value(v) => {
                        if let Some(h) = self.fp16_literal(op, v)? {
                            *v = h;
                            rw.literals += 1;
                            modified = true;
                        }
                    }
                    Binding::Name(n) => {
                        if let Some(new) = self.cast_of(op, n, env, cache, &mut rw)? {
                            *n = new;
                            modified = true;
                        }
                    }
                }
            }
        }
        new_op.inputs = inputs;
        if def.params_as_attributes {
            let keys: Vec<String> = new_op
                .attributes
                .keys()
                .filter(|k| k.as_str() != "name" && self.should_cast(def, &op.op_type, k))
                .cloned()
                .collect();
            for k in keys {
                let Some(v) = new_op.attributes.get(&k) else {
                    continue;
                };
                if let Some(h) = self.fp16_literal(op, v)? {
                    new_op.attributes.insert(k, h);
                    rw.literals += 1;
                    modified = true;
                }
            }
        }
        if !modified {
            return Ok(None);
        }

        // the new output types
        env.push();
        for (n, a) in &rw.defs {
            env.insert(n, a.clone());
        }
        let (args, missing) = env.args_of(&new_op, Some(def));
        let inferred = match (missing.first(), check_args(def, &args).into_iter().next()) {
            (Some((p, n)), _) => Err(format!("`{n}` (parameter `{p}`) is not defined")),
            (None, Some(e)) => Err(e.to_string()),
            (None, None) => infer_with(def, self.opset, &args, &[]).map_err(|e| e.to_string()),
        };
        env.pop();
        let inferred = match inferred {
            Ok(i) if i.outputs.len() == op.outputs.len() => i,
            Ok(i) => {
                self.skip(
                    op,
                    format!(
                        "fp16 type inference gives {} outputs for {}",
                        i.outputs.len(),
                        op.outputs.len()
                    ),
                );
                return Ok(None);
            }
            Err(e) => {
                self.skip(op, format!("fp16 type inference failed: {e}"));
                return Ok(None);
            }
        };
        // the fp32 constants made into fp16 ones are counted only once the op converts
        self.consts += rw.literals
            + rw.ops
                .iter()
                .filter(|o| {
                    o.op_type == "const"
                        && o.outputs
                            .first()
                            .and_then(|v| v.ty.as_tensor())
                            .map(|t| t.dtype)
                            == Some(DataType::Fp16)
                })
                .count();

        let base = op.name().unwrap_or_else(|| op.display_name()).to_string();
        let name = self.fresh_op(&format!("{base}_cast_fp16"));
        new_op.attributes.insert("name".into(), Value::string(name));
        let mut casts_back = Vec::new();
        for (k, (out, ty)) in op.outputs.iter().zip(&inferred.outputs).enumerate() {
            let new_ty = with_dtype_of(&out.ty, ty);
            let Some(slot) = new_op.outputs.get_mut(k) else {
                continue;
            };
            if is_fp32_tensor(&out.ty) && !is_fp32_tensor(&new_ty) {
                let new_name = self.fresh_var(&format!("{}_cast_fp16", out.name));
                *slot = NamedValueType::new(new_name.clone(), new_ty);
                casts_back.push((new_name, out.clone()));
            } else {
                slot.ty = new_ty;
            }
        }
        // define the new op's outputs (with the partial value inference gives)
        let constant = args.values().flatten().all(|a| a.constant);
        for (k, o) in new_op.outputs.iter().enumerate() {
            let mut a = Arg::var(o.ty.clone());
            a.constant = constant;
            if k == 0 {
                set_sym(&mut a, &o.ty, inferred.sym.as_deref());
            }
            rw.defs.push((o.name.clone(), a));
        }
        rw.ops.push(new_op);
        for (src, out) in casts_back {
            let op_name = self.fresh_op(&format!("{src}_to_fp32"));
            let (dtype_op, dtype_name) = self.dtype_const(&op_name, "fp32");
            rw.defs.push((dtype_name.clone(), const_arg(&dtype_op)));
            rw.ops.push(dtype_op);
            let mut a = Arg::var(out.ty.clone());
            a.constant = constant;
            rw.defs.push((out.name.clone(), a));
            rw.ops.push(cast_op(&op_name, &src, &dtype_name, out));
        }
        Ok(Some(rw))
    }

    /// The fp16 replacement of an fp32 literal, `None` for other values.
    fn fp16_literal(&mut self, op: &Operation, v: &Value) -> Result<Option<Value>> {
        if !is_fp32_tensor(&v.ty) {
            return Ok(None);
        }
        let placement = match v.tensor_data().map(|d| &d.placement) {
            Some(Placement::Inline) => Placement::Inline,
            Some(Placement::Blob { .. }) => Placement::Blob { source: None },
            _ => Placement::Auto,
        };
        to_fp16(v, placement)
            .map(Some)
            .map_err(|m| self.error(op, m))
    }

    /// The name of the fp16 version of variable `n` for `op` in this block, making it (an
    /// fp16 `const` for a constant, else a `cast`) unless the block has it; `None` when `n`
    /// is not an fp32 tensor.
    fn cast_of(
        &mut self,
        op: &Operation,
        n: &str,
        env: &Env,
        cache: &HashMap<String, String>,
        rw: &mut Rewrite,
    ) -> Result<Option<String>> {
        let Some(arg) = env.get(n) else {
            return Ok(None);
        };
        if !is_fp32_tensor(&arg.ty) {
            return Ok(None);
        }
        if let Some(c) = cache.get(n) {
            return Ok(Some(c.clone()));
        }
        if let Some((_, c)) = rw.cache.iter().find(|(k, _)| k == n) {
            return Ok(Some(c.clone()));
        }
        let name = self.fresh_both(&format!("{n}_to_fp16"));
        let konst = arg
            .value
            .as_ref()
            .filter(|v| arg.from_const && is_fp32_tensor(&v.ty));
        if let Some(v) = konst {
            // cast of a constant, folded (const_elimination), with the underflow fix
            let h = to_fp16(v, Placement::Auto).map_err(|m| self.error(op, m))?;
            let mut c = Operation::new("const");
            c.attributes
                .insert("name".into(), Value::string(name.clone()));
            c.outputs = vec![NamedValueType::new(name.clone(), h.ty.clone())];
            c.attributes.insert("val".into(), h.clone());
            rw.defs.push((name.clone(), Arg::literal(h)));
            rw.ops.push(c);
        } else {
            let (dtype_op, dtype_name) = self.dtype_const(&name, "fp16");
            rw.defs.push((dtype_name.clone(), const_arg(&dtype_op)));
            rw.ops.push(dtype_op);
            let ty = with_dtype(&arg.ty, DataType::Fp16);
            let mut a = Arg::var(ty.clone());
            a.constant = arg.constant;
            rw.defs.push((name.clone(), a));
            rw.ops.push(cast_op(
                &name,
                n,
                &dtype_name,
                NamedValueType::new(name.clone(), ty),
            ));
        }
        rw.cache.push((n.to_string(), name.clone()));
        Ok(Some(name))
    }

    /// The `const` holding a cast's `dtype` (coremltools names it `<cast>_dtype_0`).
    fn dtype_const(&mut self, cast: &str, dtype: &str) -> (Operation, String) {
        let name = self.fresh_both(&format!("{cast}_dtype_0"));
        let mut c = Operation::new("const");
        c.attributes
            .insert("name".into(), Value::string(name.clone()));
        c.attributes.insert("val".into(), Value::string(dtype));
        c.outputs = vec![NamedValueType::new(
            name.clone(),
            ValueType::scalar(DataType::String),
        )];
        (c, name)
    }
}

fn cast_op(name: &str, x: &str, dtype: &str, out: NamedValueType) -> Operation {
    let mut c = Operation::new("cast");
    c.attributes.insert("name".into(), Value::string(name));
    c.inputs
        .insert("x".into(), Argument(vec![Binding::Name(x.to_string())]));
    c.inputs.insert(
        "dtype".into(),
        Argument(vec![Binding::Name(dtype.to_string())]),
    );
    c.outputs = vec![out];
    c
}

fn const_arg(op: &Operation) -> Arg {
    match op.attributes.get("val") {
        Some(v) => Arg::literal(v.clone()),
        None => Arg::constexpr(ValueType::scalar(DataType::String)),
    }
}

/// Define the outputs of an op that stays as it is (as the validator does: constants with
/// their values, compile-time-constant propagation, partial values of small integer results).
fn define_outputs(env: &mut Env, op: &Operation, opset: Opset) {
    let def = registry().get(&op.op_type, opset);
    let (args, _) = env.args_of(op, def);
    let is_const = op.op_type == "const";
    let constant =
        op.is_constant() || (op.blocks.is_empty() && args.values().flatten().all(|a| a.constant));
    let wants_sym = !is_const
        && op.blocks.is_empty()
        && op.outputs.first().is_some_and(|o| {
            o.ty.as_tensor()
                .is_some_and(|t| t.dtype.is_int() && t.rank().is_some_and(|r| r <= 1))
        });
    let sym = if wants_sym {
        def.filter(|d| d.value.is_some() && check_args(d, &args).is_empty())
            .and_then(|d| infer_with(d, opset, &args, &[]).ok())
            .and_then(|i| i.sym)
    } else {
        None
    };
    for (k, o) in op.outputs.iter().enumerate() {
        let mut a = Arg::var(o.ty.clone());
        a.constant = constant;
        a.from_const = is_const;
        if is_const {
            a.value = op.attributes.get("val").cloned();
        } else if k == 0 {
            set_sym(&mut a, &o.ty, sym.as_deref());
        }
        env.insert(&o.name, a);
    }
}

/// Record a partially known integer value: a constant when fully known (as the validator).
fn set_sym(a: &mut Arg, ty: &ValueType, sym: Option<&[Option<i64>]>) {
    let Some(sym) = sym else {
        return;
    };
    let full = ty
        .as_tensor()
        .filter(|t| t.dtype == DataType::Int32)
        .and_then(|t| {
            let vals: Vec<i32> = sym
                .iter()
                .map(|v| v.and_then(|x| i32::try_from(x).ok()))
                .collect::<Option<_>>()?;
            (t.rank()? <= 1 && t.element_count()? == vals.len() as u64).then(|| {
                let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
                Value::tensor_bytes(t.clone(), bytes, Placement::Inline)
            })
        });
    match full {
        Some(v) => {
            a.value = Some(v);
            a.constant = true;
        }
        None => a.sym = Some(sym.to_vec()),
    }
}

// ------------------------------------------------------------------------------------------
// values
// ------------------------------------------------------------------------------------------

fn is_fp32_tensor(t: &ValueType) -> bool {
    t.as_tensor().is_some_and(|t| t.dtype == DataType::Fp32)
}

/// `t` with element type `d` (tensors; other types unchanged).
fn with_dtype(t: &ValueType, d: DataType) -> ValueType {
    match t {
        ValueType::Tensor(tt) => ValueType::Tensor(TensorType {
            dtype: d,
            ..tt.clone()
        }),
        other => other.clone(),
    }
}

/// The declared type with the inferred element type (the declaration may know dims that
/// inference leaves open); the inferred type where either is not a tensor.
fn with_dtype_of(declared: &ValueType, inferred: &ValueType) -> ValueType {
    match (declared, inferred) {
        (ValueType::Tensor(_), ValueType::Tensor(i)) => with_dtype(declared, i.dtype),
        _ => inferred.clone(),
    }
}

fn fp32_elements(v: &Value) -> Option<impl Iterator<Item = f32> + '_> {
    let t = v.tensor_type()?;
    (t.dtype == DataType::Fp32).then_some(())?;
    Some(
        v.bytes()?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    )
}

/// Whether an fp32 constant has a finite value (|x| < 1e38) beyond ±65504.
fn overflows_fp16(v: &Value) -> bool {
    fp32_elements(v).is_some_and(|mut it| {
        it.any(|x| {
            let a = x.abs();
            a < INFINITY_THRESHOLD && a > FP16_MAX
        })
    })
}

/// The fp16 version of an fp32 tensor constant: round to nearest even, then the underflow fix
/// for tensors of fewer than 400 elements.
fn to_fp16(v: &Value, placement: Placement) -> Result<Value, String> {
    let t = v
        .tensor_type()
        .ok_or("an fp32 constant that is not a tensor")?;
    let bytes = v.bytes().ok_or("an fp32 constant without data")?;
    let n = t
        .element_count()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("constant of type {t} has no fixed element count"))?;
    if n.checked_mul(4) != Some(bytes.len()) {
        return Err(format!(
            "{} bytes of data for type {t}, which needs {}",
            bytes.len(),
            n.saturating_mul(4)
        ));
    }
    let vals: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut bits = f16_bits(&vals);
    if n < UNDERFLOW_FIX_MAX_ELEMENTS {
        underflow_fix(&vals, &mut bits);
    }
    let out: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let ty = TensorType {
        dtype: DataType::Fp16,
        ..t.clone()
    };
    let mut h = Value::tensor_bytes(ty, out, placement);
    h.doc = v.doc.clone();
    Ok(h)
}

/// The fp16 bit patterns of `values`, rounded to nearest even (−0 stays −0; the slice
/// conversion uses the CPU's conversion instructions where it has them).
fn f16_bits(values: &[f32]) -> Vec<u16> {
    let mut h = vec![f16::ZERO; values.len()];
    h.convert_from_f32_slice(values);
    h.iter().map(|x| x.to_bits()).collect()
}

/// coremltools' `_check_underflow_to_zero`: an element that fp16 puts within the smallest
/// subnormal of zero while the fp32 value is not within fp32's smallest subnormal of zero
/// becomes the smallest fp16 subnormal with the fp32 value's sign (`np.sign(x) > 0` picks
/// the positive one).
fn underflow_fix(orig: &[f32], bits: &mut [u16]) {
    let min16 = f16::from_bits(1).to_f32();
    let min32 = f32::from_bits(1);
    for (x, b) in orig.iter().zip(bits.iter_mut()) {
        let h = f16::from_bits(*b).to_f32();
        // np.isclose(v, 0, atol=min subnormal, rtol=eps): |v| <= atol (NaN never)
        let close16 = h.abs() <= min16;
        let close32 = x.abs() <= min32;
        if close16 && !close32 && !x.is_nan() {
            *b = if *x > 0.0 { 0x0001 } else { 0x8001 };
        }
    }
}

// ------------------------------------------------------------------------------------------
// cleanup: dead_code_elimination, cast_optimization
// ------------------------------------------------------------------------------------------

/// coremltools' `dead_code_elimination` on one block (and its nested blocks): ops none of
/// whose outputs is used are dropped; `coreml_update_state`, `write_state` and random ops
/// are kept.
fn dce_block(block: &mut Block) {
    let mut used: HashSet<String> = block.outputs.iter().cloned().collect();
    let ops = std::mem::take(&mut block.operations);
    let mut kept = Vec::with_capacity(ops.len());
    for mut op in ops.into_iter().rev() {
        let side_effect = !crate::ops::effect(&op.op_type).removable();
        if !side_effect && !op.outputs.iter().any(|o| used.contains(&o.name)) {
            continue;
        }
        for arg in op.inputs.values() {
            for b in &arg.0 {
                if let Binding::Name(n) = b {
                    used.insert(n.clone());
                }
            }
        }
        for b in &mut op.blocks {
            dce_block(b);
            used.extend(crate::passes::used_names(b));
        }
        kept.push(op);
    }
    kept.reverse();
    block.operations = kept;
}

/// Range (low, high) and resolution of an element type (coremltools `builtin_to_range`,
/// `builtin_to_resolution`).
fn range_resolution(d: DataType) -> Option<(f64, f64, f64)> {
    use DataType::*;
    let int = |lo: f64, hi: f64| Some((lo, hi, 1.0));
    match d {
        Bool => int(0.0, 1.0),
        Int4 => int(-8.0, 7.0),
        Int8 => int(-128.0, 127.0),
        Uint1 => int(0.0, 1.0),
        Uint2 => int(0.0, 3.0),
        Uint3 => int(0.0, 7.0),
        Uint4 => int(0.0, 15.0),
        Uint6 => int(0.0, 63.0),
        Uint8 => int(0.0, 255.0),
        Int16 => int(f64::from(i16::MIN), f64::from(i16::MAX)),
        Uint16 => int(0.0, f64::from(u16::MAX)),
        Int32 => int(f64::from(i32::MIN), f64::from(i32::MAX)),
        Int64 => int(i64::MIN as f64, i64::MAX as f64),
        Fp16 => Some((-65504.0, 65504.0, 1e-3)),
        Fp32 => Some((f64::from(f32::MIN), f64::from(f32::MAX), 1e-6)),
        Fp64 => Some((f64::MIN, f64::MAX, 1e-15)),
        _ => None,
    }
}

/// Range and resolution after casting `input` through `chain`.
fn propagate(input: DataType, chain: &[DataType]) -> Option<(f64, f64, f64)> {
    let (mut lo, mut hi, mut res) = range_resolution(input)?;
    for &d in chain {
        let (l, h, r) = range_resolution(d)?;
        lo = lo.max(l);
        hi = hi.min(h);
        res = res.max(r);
    }
    Some((lo, hi, res))
}

/// Whether `x(input) → cast(d1) → cast(d2)` may become `x → cast(d2)`.
fn fusable(input: DataType, d1: DataType, d2: DataType) -> bool {
    match (propagate(input, &[d1, d2]), propagate(input, &[d2])) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

struct CastOpt<'a> {
    types: &'a HashMap<String, ValueType>,
    strings: &'a HashMap<String, String>,
}

/// A cast op's input name and target type.
struct CastInfo {
    x: String,
    dtype: DataType,
    out: String,
}

impl CastOpt<'_> {
    fn cast_info(&self, op: &Operation) -> Option<CastInfo> {
        if op.op_type != "cast" {
            return None;
        }
        let Some(Binding::Name(x)) = op.input("x") else {
            return None;
        };
        let dtype = match op.input("dtype")? {
            Binding::Value(v) => v.as_str()?.to_string(),
            Binding::Name(n) => self.strings.get(n)?.clone(),
        };
        Some(CastInfo {
            x: x.clone(),
            dtype: DataType::from_name(&dtype)?,
            out: op.outputs.first()?.name.clone(),
        })
    }

    fn dtype_of(&self, name: &str) -> Option<DataType> {
        self.types.get(name)?.as_tensor().map(|t| t.dtype)
    }

    /// `cast_optimization` on `block`: nested blocks first, then every cast of the block
    /// until nothing changes. Returns the number of changes.
    fn block(&self, block: &mut Block, function_block: bool) -> usize {
        let mut changes = 0;
        for op in &mut block.operations {
            for b in &mut op.blocks {
                changes += self.block(b, false);
            }
        }
        loop {
            let mut changed = false;
            let mut i = 0;
            while i < block.operations.len() {
                let info = block.operations.get(i).and_then(|op| self.cast_info(op));
                let Some(info) = info else {
                    i += 1;
                    continue;
                };
                let Some(x_dtype) = self.dtype_of(&info.x) else {
                    i += 1;
                    continue;
                };
                // a cast to the type its input has
                if x_dtype == info.dtype {
                    changed = true;
                    changes += 1;
                    if !self.replace_output(block, i, &info.x, function_block) {
                        i += 1;
                    }
                    continue;
                }
                // consecutive casts
                let (c, same_block) = self.children(
                    &mut block.operations,
                    &mut block.outputs,
                    i + 1,
                    &info,
                    x_dtype,
                    function_block,
                );
                changes += c + same_block;
                changed |= same_block > 0;
                i += 1;
            }
            if !changed {
                return changes;
            }
        }
    }

    /// Replace the output of the cast at `i` by `x` everywhere after it; the cast is removed
    /// (returns true) unless its output is a function output, which an `identity` of `x`
    /// then produces.
    fn replace_output(&self, block: &mut Block, i: usize, x: &str, function_block: bool) -> bool {
        let Some(op) = block.operations.get_mut(i) else {
            return false;
        };
        let Some(out) = op.outputs.first().map(|o| o.name.clone()) else {
            return false;
        };
        if function_block && block.outputs.contains(&out) {
            op.op_type = "identity".into();
            op.inputs.clear();
            op.inputs
                .insert("x".into(), Argument(vec![Binding::Name(x.to_string())]));
            return false;
        }
        let (_, rest) = block.operations.split_at_mut(i + 1);
        replace_in(rest, &mut block.outputs, &out, x);
        block.operations.remove(i);
        true
    }

    /// Fuse or cancel the casts that consume `root.out` among `ops[start..]` (nested blocks
    /// included). Returns the number of changes in nested blocks and in this block.
    fn children(
        &self,
        ops: &mut Vec<Operation>,
        outputs: &mut [String],
        start: usize,
        root: &CastInfo,
        x_dtype: DataType,
        function_block: bool,
    ) -> (usize, usize) {
        let mut nested = 0;
        let mut here = 0;
        let mut j = start;
        while j < ops.len() {
            // nested blocks (unless they shadow the name)
            if let Some(op) = ops.get_mut(j) {
                for b in &mut op.blocks {
                    if b.inputs.iter().any(|i| i.name == root.out) {
                        continue;
                    }
                    let (c, d) =
                        self.children(&mut b.operations, &mut b.outputs, 0, root, x_dtype, false);
                    nested += c + d;
                }
            }
            let child = ops
                .get(j)
                .and_then(|op| self.cast_info(op))
                .filter(|c| c.x == root.out);
            let Some(child) = child else {
                j += 1;
                continue;
            };
            if !fusable(x_dtype, root.dtype, child.dtype) {
                j += 1;
                continue;
            }
            here += 1;
            if x_dtype == child.dtype {
                // the two casts cancel: the child's users take the root's input
                if function_block && outputs.contains(&child.out) {
                    if let Some(op) = ops.get_mut(j) {
                        op.op_type = "identity".into();
                        op.inputs.clear();
                        op.inputs
                            .insert("x".into(), Argument(vec![Binding::Name(root.x.clone())]));
                    }
                    j += 1;
                } else {
                    let (_, rest) = ops.split_at_mut(j + 1);
                    replace_in(rest, outputs, &child.out, &root.x);
                    ops.remove(j);
                }
            } else {
                // one cast from the root's input
                if let Some(op) = ops.get_mut(j) {
                    op.inputs
                        .insert("x".into(), Argument(vec![Binding::Name(root.x.clone())]));
                }
                j += 1;
            }
        }
        (nested, here)
    }
}

/// Replace uses of `from` by `to` in `ops` (nested blocks included, unless they shadow it)
/// and in `outputs`.
fn replace_in(ops: &mut [Operation], outputs: &mut [String], from: &str, to: &str) {
    for op in ops {
        for arg in op.inputs.values_mut() {
            for b in &mut arg.0 {
                if let Binding::Name(n) = b
                    && n == from
                {
                    *n = to.to_string();
                }
            }
        }
        for b in &mut op.blocks {
            if b.inputs.iter().any(|i| i.name == from) {
                continue;
            }
            replace_in(&mut b.operations, &mut b.outputs, from, to);
        }
    }
    for o in outputs {
        if o == from {
            *o = to.to_string();
        }
    }
}

// ------------------------------------------------------------------------------------------
// program facts
// ------------------------------------------------------------------------------------------

fn collect_names(block: &Block, vars: &mut BTreeSet<String>, ops: &mut BTreeSet<String>) {
    vars.extend(block.inputs.iter().map(|i| i.name.clone()));
    for op in &block.operations {
        vars.extend(op.outputs.iter().map(|o| o.name.clone()));
        if let Some(n) = op.name() {
            ops.insert(n.to_string());
        }
        for b in &op.blocks {
            collect_names(b, vars, ops);
        }
    }
}

fn collect_types(block: &Block, out: &mut HashMap<String, ValueType>) {
    for i in &block.inputs {
        out.insert(i.name.clone(), i.ty.clone());
    }
    for op in &block.operations {
        for o in &op.outputs {
            out.insert(o.name.clone(), o.ty.clone());
        }
        for b in &op.blocks {
            collect_types(b, out);
        }
    }
}

/// Names of string scalar constants with their values (cast `dtype` arguments).
fn string_consts(block: &Block) -> HashMap<String, String> {
    let mut out = HashMap::new();
    block.visit_ops(&mut |op| {
        if op.op_type == "const"
            && let (Some(o), Some(s)) = (
                op.outputs.first(),
                op.attributes.get("val").and_then(Value::as_str),
            )
        {
            out.insert(o.name.clone(), s.to_string());
        }
    });
    out
}

fn count_ops(program: &Program, op_type: &str) -> usize {
    program
        .functions
        .values()
        .filter_map(|f| f.block())
        .map(|b| b.op_counts().get(op_type).copied().unwrap_or(0))
        .sum()
}

/// Bytes of the tensor data of every `const` op.
fn const_bytes(program: &Program) -> usize {
    let mut n = 0;
    for f in program.functions.values() {
        if let Some(b) = f.block() {
            b.visit_ops(&mut |op| {
                if op.op_type == "const"
                    && let Some(bytes) = op.attributes.get("val").and_then(Value::bytes)
                {
                    n += bytes.len();
                }
            });
        }
    }
    n
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    #[test]
    fn fp16_rules_classify_every_registry_op_once() {
        let keys = super::FP16_RULES
            .iter()
            .flat_map(|(_, ops)| ops.iter().copied());
        let audit = crate::ops::audit("anekit_mil::passes::fp16::FP16_RULES", keys);
        assert!(audit.is_complete(), "{audit}");
    }

    use super::*;

    fn parse(text: &str) -> Program {
        crate::text::parse_without_weights(text, "test.mil")
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Convert, check that the result validates, and return it with the report.
    fn convert_text(text: &str) -> (Program, Fp16Report) {
        let mut p = parse(text);
        let r = convert(&mut p).unwrap();
        if let Err(d) = crate::validate::validate(&p) {
            panic!(
                "converted program does not validate: {d:?}\n{}",
                crate::text::print(&p)
            );
        }
        (p, r)
    }

    fn main_block(p: &Program) -> &Block {
        p.functions["main"].block().unwrap()
    }

    fn op_named<'a>(b: &'a Block, output: &str) -> &'a Operation {
        b.operations
            .iter()
            .find(|o| o.outputs.iter().any(|v| v.name == output))
            .unwrap_or_else(|| panic!("no op defines {output}"))
    }

    fn count(b: &Block, op_type: &str) -> usize {
        b.op_counts().get(op_type).copied().unwrap_or(0)
    }

    fn dtype(b: &Block, name: &str) -> DataType {
        op_named(b, name)
            .outputs
            .iter()
            .find(|v| v.name == name)
            .unwrap()
            .ty
            .as_tensor()
            .unwrap()
            .dtype
    }

    fn name_input(op: &Operation, param: &str) -> String {
        match op.input(param) {
            Some(Binding::Name(n)) => n.clone(),
            other => panic!("{param}: {other:?}"),
        }
    }

    fn f16_bits_of(op: &Operation) -> Vec<u16> {
        let v = op.attributes.get("val").unwrap();
        assert_eq!(v.tensor_type().unwrap().dtype, DataType::Fp16);
        v.bytes()
            .unwrap()
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    const SHARED: &str = r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 4]> x) {
            tensor<fp32, [4]> w = const()[name = string("w"), val = tensor<fp32, [4]>([0.5, -1, 2, 0.25])];
            tensor<fp32, [1, 4]> a = mul(x = x, y = w)[name = string("a")];
            tensor<fp32, [1, 4]> b = add(x = x, y = w)[name = string("b")];
            tensor<fp32, [1, 4]> c = sub(x = a, y = x)[name = string("c")];
            tensor<fp32, [1, 4]> y = relu(x = c)[name = string("y_op")];
        } -> (y, a, b);
}
"#;

    #[test]
    fn casts_are_shared_and_outputs_keep_names_and_types() {
        let (p, r) = convert_text(SHARED);
        assert_eq!(r.ops, 4);
        assert_eq!(r.consts, 1);
        let b = main_block(&p);
        // one cast of x for mul, add and sub; one fp16 copy of w for mul and add
        let casts: Vec<&Operation> = b
            .operations
            .iter()
            .filter(|o| o.op_type == "cast")
            .collect();
        let to16: Vec<_> = casts
            .iter()
            .filter(|o| o.outputs[0].ty.as_tensor().unwrap().dtype == DataType::Fp16)
            .collect();
        assert_eq!(to16.len(), 1, "{}", crate::text::print(&p));
        assert_eq!(name_input(to16[0], "x"), "x");
        let x16 = to16[0].outputs[0].name.clone();
        assert_eq!(x16, "x_to_fp16");
        for out in ["a_cast_fp16", "b_cast_fp16", "c_cast_fp16"] {
            assert_eq!(
                name_input(op_named(b, out), "x"),
                if out == "c_cast_fp16" {
                    "a_cast_fp16"
                } else {
                    "x_to_fp16"
                }
            );
        }
        // sub takes mul's fp16 output directly (the fp16 → fp32 → fp16 round trip is gone)
        assert_eq!(name_input(op_named(b, "c_cast_fp16"), "y"), "x_to_fp16");
        assert_eq!(name_input(op_named(b, "a_cast_fp16"), "y"), "w_to_fp16");
        assert_eq!(name_input(op_named(b, "b_cast_fp16"), "y"), "w_to_fp16");
        assert!(
            b.operations
                .iter()
                .all(|o| o.outputs.first().is_none_or(|v| v.name != "w"))
        );
        // the outputs: same names, fp32, each made by a cast back
        assert_eq!(b.outputs, ["y", "a", "b"]);
        for (o, src) in [
            ("y", "y_cast_fp16"),
            ("a", "a_cast_fp16"),
            ("b", "b_cast_fp16"),
        ] {
            let op = op_named(b, o);
            assert_eq!(op.op_type, "cast");
            assert_eq!(dtype(b, o), DataType::Fp32);
            assert_eq!(name_input(op, "x"), src);
            assert_eq!(dtype(b, src), DataType::Fp16);
        }
        assert_eq!(count(b, "cast"), 4);
        assert_eq!(r.casts_added, 4);
        assert_eq!(op_named(b, "y_cast_fp16").name(), Some("y_op_cast_fp16"));
        assert_eq!(
            p.functions["main"].inputs[0].ty,
            ValueType::tensor(DataType::Fp32, &[1, 4])
        );
    }

    #[test]
    fn an_overflowing_constant_keeps_its_op_fp32() {
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 2]> x) {
            tensor<fp32, [2]> big = const()[name = string("big"), val = tensor<fp32, [2]>([100000, 1])];
            tensor<fp32, [2]> edge = const()[name = string("edge"), val = tensor<fp32, [2]>([65504, -65504])];
            tensor<fp32, [2]> inf = const()[name = string("inf"), val = tensor<fp32, [2]>([1e38, -3e38])];
            tensor<fp32, [1, 2]> a = mul(x = x, y = big)[name = string("a")];
            tensor<fp32, [1, 2]> b = add(x = a, y = inf)[name = string("b")];
            tensor<fp32, [1, 2]> c = sub(x = b, y = edge)[name = string("c")];
        } -> (c);
}
"#,
        );
        let b = main_block(&p);
        assert_eq!(r.ops, 2, "{}", crate::text::print(&p));
        // mul stays fp32 with its fp32 constant
        let mul = op_named(b, "a");
        assert_eq!(mul.op_type, "mul");
        assert_eq!(dtype(b, "a"), DataType::Fp32);
        assert_eq!(name_input(mul, "y"), "big");
        assert_eq!(r.skipped.len(), 1);
        assert_eq!(r.skipped[0].op, "a");
        assert!(r.skipped[0].reason.contains("65504"), "{:?}", r.skipped);
        // |x| ≥ 1e38 counts as infinity: add converts, its constant becomes ±inf
        let add = op_named(b, "b_cast_fp16");
        assert_eq!(name_input(add, "x"), "a_to_fp16");
        assert_eq!(f16_bits_of(op_named(b, "inf_to_fp16")), [0x7c00, 0xfc00]);
        // ±65504 fits
        assert_eq!(f16_bits_of(op_named(b, "edge_to_fp16")), [0x7bff, 0xfbff]);
        assert_eq!(dtype(b, "c"), DataType::Fp32);
    }

    #[test]
    fn small_constants_do_not_underflow_to_zero() {
        let (p, _) = convert_text(
            r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 5]> x) {
            tensor<fp32, [5]> e = const()[name = string("e"), val = tensor<fp32, [5]>([1e-9, -1e-9, 0, 0.5, 0x1p-149])];
            tensor<fp32, [1, 5]> y = add(x = x, y = e)[name = string("y")];
        } -> (y);
}
"#,
        );
        // ±1e-9 → ± the smallest subnormal; 0 and fp32's smallest subnormal stay 0
        assert_eq!(
            f16_bits_of(op_named(main_block(&p), "e_to_fp16")),
            [0x0001, 0x8001, 0, 0x3800, 0]
        );
        // 400 elements or more: no fix (coremltools skips large tensors)
        let big = Value::fp32_tensor(&[400], &[1e-9; 400]);
        let h = to_fp16(&big, Placement::Auto).unwrap();
        assert!(h.bytes().unwrap().iter().all(|&b| b == 0));
        let small = Value::fp32_tensor(&[399], &[1e-9; 399]);
        let h = to_fp16(&small, Placement::Auto).unwrap();
        assert!(h.bytes().unwrap().chunks_exact(2).all(|c| c == [1, 0]));
        // round to nearest even: 1 + 2^-11 is a tie between 1 and 1 + 2^-10
        let tie = Value::fp32_tensor(&[2], &[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)]);
        let h = to_fp16(&tie, Placement::Auto).unwrap();
        assert_eq!(h.bytes().unwrap().as_ref(), [0x00, 0x3c, 0x02, 0x3c]);
    }

    #[test]
    fn an_fp16_program_is_left_unchanged() {
        let text = r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 4]> x) {
            string d = const()[name = string("d"), val = string("fp16")];
            tensor<fp16, [1, 4]> x16 = cast(dtype = d, x = x)[name = string("x16")];
            tensor<fp16, [4]> w = const()[name = string("w"), val = tensor<fp16, [4]>([0.5, -1, 2, 0.25])];
            tensor<fp16, [1, 4]> a = mul(x = x16, y = w)[name = string("a")];
            string d32 = const()[name = string("d32"), val = string("fp32")];
            tensor<fp32, [1, 4]> y = cast(dtype = d32, x = a)[name = string("y")];
        } -> (y);
}
"#;
        let original = parse(text);
        let (p, r) = convert_text(text);
        assert_eq!(r.ops, 0);
        assert_eq!(p, original);
        // a coremltools fp16 fixture too
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/models/mlp_fp16_ios16.mlpackage");
        let mut m = crate::model::Model::open(path).unwrap();
        let before = m.program.clone();
        assert_eq!(
            Fp16ComputePrecision
                .run(m.program.as_mut().unwrap())
                .unwrap(),
            0
        );
        assert_eq!(m.program, before);
    }

    #[test]
    fn ios17_activation_parameters_stay_fp32() {
        let text = |opset: &str| {
            format!(
                r#"program(1.3)
{{
    func main<{opset}>(tensor<fp32, [1, 4]> x) {{
            fp32 al = const()[name = string("al"), val = fp32(0.1)];
            tensor<fp32, [1, 4]> a = leaky_relu(alpha = al, x = x)[name = string("a")];
            fp32 eps = const()[name = string("eps"), val = fp32(0.001)];
            tensor<fp32, [1, 4]> y = log(epsilon = eps, x = a)[name = string("y")];
        }} -> (y);
}}
"#
            )
        };
        let (p, r) = convert_text(&text("ios17"));
        assert_eq!(r.ops, 2);
        let b = main_block(&p);
        assert_eq!(name_input(op_named(b, "a_cast_fp16"), "alpha"), "al");
        assert_eq!(name_input(op_named(b, "y_cast_fp16"), "epsilon"), "eps");
        assert_eq!(dtype(b, "al"), DataType::Fp32);
        let (p, r) = convert_text(&text("ios16"));
        assert_eq!(r.ops, 2);
        let b = main_block(&p);
        assert_eq!(
            name_input(op_named(b, "a_cast_fp16"), "alpha"),
            "al_to_fp16"
        );
        assert_eq!(
            name_input(op_named(b, "y_cast_fp16"), "epsilon"),
            "eps_to_fp16"
        );
    }

    #[test]
    fn an_existing_cast_fuses_with_the_new_one() {
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios16>(tensor<int32, [1, 4]> i) {
            string d = const()[name = string("d"), val = string("fp32")];
            tensor<fp32, [1, 4]> f = cast(dtype = d, x = i)[name = string("f")];
            tensor<fp32, [1, 4]> y = mul(x = f, y = fp32(2))[name = string("y")];
        } -> (y);
}
"#,
        );
        assert_eq!(r.ops, 1);
        assert_eq!(r.consts, 1, "the inline 2.0 became fp16");
        let b = main_block(&p);
        // int32 → fp32 → fp16 is int32 → fp16 (coremltools' range/resolution rule)
        let x = name_input(op_named(b, "y_cast_fp16"), "x");
        let cast = op_named(b, &x);
        assert_eq!(cast.op_type, "cast");
        assert_eq!(name_input(cast, "x"), "i");
        assert_eq!(count(b, "cast"), 2);
        assert!(
            b.operations
                .iter()
                .all(|o| o.outputs.first().is_none_or(|v| v.name != "f"))
        );
    }

    #[test]
    fn states_keep_their_type() {
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1, 2]> x, state<tensor<fp32, [1, 2]>> s) {
            tensor<fp32, [1, 2]> old = read_state(input = s)[name = string("old")];
            tensor<fp32, [1, 2]> new = add(x = old, y = x)[name = string("new")];
            write_state(data = new, input = s)[name = string("w")];
            tensor<fp32, [1, 2]> y = mul(x = new, y = x)[name = string("y")];
        } -> (y);
}
"#,
        );
        assert_eq!(r.ops, 2);
        let f = &p.functions["main"];
        let b = f.block().unwrap();
        assert!(matches!(f.inputs[1].ty, ValueType::State(_)));
        let w = b
            .operations
            .iter()
            .find(|o| o.op_type == "write_state")
            .unwrap();
        assert_eq!(name_input(w, "data"), "new");
        assert_eq!(dtype(b, "new"), DataType::Fp32);
        assert_eq!(dtype(b, "old"), DataType::Fp32);
    }

    #[test]
    fn every_function_is_converted() {
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 4]> x) {
            tensor<fp32, [1, 4]> y = relu(x = x)[name = string("y")];
        } -> (y);
    func other<ios18>(tensor<fp32, [1, 4]> x) {
            tensor<fp32, [1, 4]> y = sigmoid(x = x)[name = string("y")];
        } -> (y);
}
"#,
        );
        assert_eq!(r.ops, 2);
        for f in p.functions.values() {
            let b = f.block().unwrap();
            assert_eq!(count(b, "cast"), 2);
            assert_eq!(dtype(b, "y_cast_fp16"), DataType::Fp16);
        }
    }

    #[test]
    fn errors_name_the_function_and_op() {
        let mut p = parse(
            r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 4]> x) {
            tensor<fp32, [1, 4]> a = relu(x = x)[name = string("a")];
            tensor<fp32, [1, 4]> y = frobnicate(x = a)[name = string("frob")];
        } -> (y);
}
"#,
        );
        let before = p.clone();
        let e = convert(&mut p).unwrap_err().to_string();
        assert!(e.contains("function main") && e.contains("op frob"), "{e}");
        assert_eq!(p, before, "an error leaves the program as it was");
    }

    #[test]
    fn fp32_compressed_weights_decompress_to_fp16() {
        // iOS16 constexpr op: parameters as attributes
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios16>(tensor<fp32, [1, 2]> x) {
            tensor<fp32, [2, 2]> w = constexpr_affine_dequantize()[axis = int32(0), name = string("w"), quantized_data = tensor<int8, [2, 2]>([[1, 2], [3, 4]]), scale = tensor<fp32, [2]>([0.5, 0.25]), zero_point = tensor<int8, [2]>([0, 0])];
            tensor<fp32, [1, 2]> y = linear(weight = w, x = x)[name = string("y")];
        } -> (y);
}
"#,
        );
        assert_eq!(r.ops, 2, "{}", crate::text::print(&p));
        let b = main_block(&p);
        let w = op_named(b, "w_cast_fp16");
        assert_eq!(w.op_type, "constexpr_affine_dequantize");
        assert_eq!(
            w.attributes["scale"].tensor_type().unwrap().dtype,
            DataType::Fp16
        );
        assert_eq!(
            name_input(op_named(b, "y_cast_fp16"), "weight"),
            "w_cast_fp16"
        );
        assert_eq!(count(b, "cast"), 2);
        // iOS18: parameters as inputs
        let (p, r) = convert_text(
            r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1, 2]> x) {
            tensor<int8, [2, 2]> q = const()[name = string("q"), val = tensor<int8, [2, 2]>([[1, 2], [3, 4]])];
            tensor<fp32, [2, 1]> s = const()[name = string("s"), val = tensor<fp32, [2, 1]>([[0.5], [0.25]])];
            tensor<fp32, [2, 2]> w = constexpr_blockwise_shift_scale(data = q, scale = s)[name = string("w")];
            tensor<fp32, [1, 2]> y = linear(weight = w, x = x)[name = string("y")];
        } -> (y);
}
"#,
        );
        assert_eq!(r.ops, 2, "{}", crate::text::print(&p));
        let b = main_block(&p);
        assert_eq!(name_input(op_named(b, "w_cast_fp16"), "scale"), "s_to_fp16");
        assert_eq!(dtype(b, "w_cast_fp16"), DataType::Fp16);
        assert_eq!(
            name_input(op_named(b, "y_cast_fp16"), "weight"),
            "w_cast_fp16"
        );
    }

    #[test]
    fn cast_fusion_follows_the_range_rule() {
        use DataType::*;
        assert!(fusable(Fp16, Fp32, Fp16));
        assert!(!fusable(Fp32, Fp16, Fp32));
        assert!(fusable(Int8, Fp16, Fp32));
        assert!(!fusable(Fp32, Bool, Fp16));
        assert!(!fusable(Int32, Int8, Uint8));
        assert!(fusable(Int32, Fp32, Fp16));
    }
}
