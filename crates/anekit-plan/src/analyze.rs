//! The analysis: graph → rules → costs → placement → estimate → findings → [`Report`].

use std::collections::HashMap;

use anekit_mil::Program;
use anekit_mil::model::Model;
use anekit_mil::summary::{Flexibility, ModelSummary};

use crate::catalog::{Catalog, Chip};
use crate::cost::{OpCost, Unit, op_cost};
use crate::error::{PlanError, Result};
use crate::findings::findings;
use crate::graph::{Graph, InputFlex, InputInfo};
use crate::placement::{ComputeUnits, ExecPath, Plan, Target, place};
use crate::report::{
    ChipEstimate, ChipInfo, Coverage, Estimate, ModelInfo, OpReport, PathEstimate, Report,
    UnitsEstimate,
};

/// The median absolute latency error of the estimate on the held-out whole-model validation
/// set (docs/analyze.md, scripts/make_estimator_models.py), quoted in every report's notes.
pub const VALIDATION_MEDIAN_ERROR_PCT: f64 = 33.5;
use crate::rules::{self, Ctx, Effect, Hit};

/// What to analyse for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Chip name, alias or device (`M1`, `t8103`, `iPhone 13`).
    pub chip: String,
    /// Compute units.
    pub compute_units: ComputeUnits,
    /// Function to analyse (default: the model's default function).
    pub function: Option<String>,
    /// Also estimate every chip of the catalog and every compute-units setting.
    pub compare: bool,
    /// Analyse a program that fails validation instead of refusing it: the report then
    /// lists the problems in [`Report::invalid`] ("Core ML will refuse to compile …"), and
    /// ops of unknown types are not placed.
    pub allow_invalid: bool,
    /// The execution path the per-op report and the headline estimate are for (both paths
    /// are always estimated).
    pub path: ExecPath,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            chip: "M1".into(),
            compute_units: ComputeUnits::All,
            function: None,
            compare: true,
            allow_invalid: false,
            path: ExecPath::CoreMl,
        }
    }
}

/// The inputs of a model's function as the planner sees them (default shapes, flexibility).
pub fn model_inputs(model: &Model) -> (Option<String>, Vec<InputInfo>) {
    let s = ModelSummary::of(model);
    let inputs = s
        .inputs
        .iter()
        .map(|f| InputInfo {
            name: f.name.clone(),
            shape: f
                .shape
                .iter()
                .map(|d| u64::try_from(*d).ok())
                .collect::<Option<Vec<u64>>>()
                .filter(|s| !s.is_empty()),
            flex: match f.flexible {
                Some(Flexibility::Range { .. }) => InputFlex::Range,
                Some(Flexibility::Enumerated { .. }) => InputFlex::Enumerated,
                None => InputFlex::Fixed,
            },
        })
        .collect();
    (s.default_function, inputs)
}

/// Analyse a model read from a file.
///
/// A NeuralNetwork model is analysed through its MIL translation at fp16 compute precision:
/// Core ML runs NeuralNetwork layers in fp16 on the GPU and the Neural Engine whatever the
/// weights' storage (its translation is fp32 so that the CPU backend computes as Core ML's
/// CPU path does). See docs/neuralnetwork.md.
pub fn analyze_model(model: &Model, options: &Options) -> Result<Report> {
    let translated;
    let program = if model.is_translated() {
        let mut p = model.require_program()?.clone();
        anekit_mil::passes::Pass::run(&anekit_mil::passes::Fp16ComputePrecision, &mut p)?;
        translated = p;
        &translated
    } else {
        model.require_program()?
    };
    let (default_fn, mut inputs) = model_inputs(model);
    let mut opts = options.clone();
    if opts.function.is_none() {
        opts.function = default_fn.clone();
    }
    // Inputs of another function of a multifunction model are not described: analyse them
    // as declared.
    if opts.function != default_fn {
        inputs.clear();
    }
    let path = model.source.as_ref().map(|p| p.display().to_string());
    analyze_program(program, &inputs, path, &opts)
}

/// Everything computed once per model, independent of the chip.
pub struct Prepared<'a> {
    /// The graph.
    pub graph: Graph<'a>,
    /// Per-op cost facts.
    pub costs: Vec<OpCost>,
    hits: HashMap<String, Vec<Vec<Hit>>>,
    base_hits: Option<Vec<Vec<Hit>>>,
}

impl<'a> Prepared<'a> {
    /// Build the graph and the costs of `function` of `program`.
    pub fn new(program: &'a Program, function: Option<&str>, inputs: &[InputInfo]) -> Result<Self> {
        let (name, f) = match function {
            Some(n) => (
                n.to_string(),
                program
                    .functions
                    .get(n)
                    .ok_or_else(|| PlanError::Model(format!("the model has no function `{n}`")))?,
            ),
            None => program
                .main_function()
                .map(|(n, f)| (n.to_string(), f))
                .ok_or_else(|| {
                    PlanError::Model("the model has no main function; choose one".into())
                })?,
        };
        let graph = Graph::build(&name, f, inputs);
        let costs = graph.nodes.iter().map(|n| op_cost(&graph, n)).collect();
        Ok(Self {
            graph,
            costs,
            hits: HashMap::new(),
            base_hits: None,
        })
    }

    /// The rule hits of every op on the generation of `chip` (the generation-independent
    /// rules run once per model, the others once per generation).
    pub fn hits(&mut self, catalog: &Catalog, chip: &Chip) -> Result<&Vec<Vec<Hit>>> {
        let generation = catalog
            .generation_of(chip)
            .ok_or_else(|| PlanError::Catalog(format!("no generation for {}", chip.name)))?;
        if !self.hits.contains_key(&generation.name) {
            if self.base_hits.is_none() {
                let base: Vec<Vec<Hit>> = self
                    .graph
                    .nodes
                    .iter()
                    .map(|node| {
                        rules::check_some(
                            &Ctx {
                                graph: &self.graph,
                                node,
                                generation,
                            },
                            |id| !rules::PER_GENERATION.contains(&id),
                        )
                    })
                    .collect();
                self.base_hits = Some(base);
            }
            let base = self.base_hits.as_deref().unwrap_or(&[]);
            let h: Vec<Vec<Hit>> = self
                .graph
                .nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let extra = rules::check_some(
                        &Ctx {
                            graph: &self.graph,
                            node,
                            generation,
                        },
                        |id| rules::PER_GENERATION.contains(&id),
                    );
                    let mut all: Vec<Hit> = base.get(i).cloned().unwrap_or_default();
                    all.extend(extra);
                    // keep the rule order of RULES
                    all.sort_by_key(|h| rules::RULES.iter().position(|r| r.info.id == h.rule));
                    all
                })
                .collect();
            self.hits.insert(generation.name.clone(), h);
        }
        self.hits
            .get(&generation.name)
            .ok_or_else(|| PlanError::Catalog("rule cache".into()))
    }

    /// Place the model on `chip` for `units` and cost it on the Core ML path.
    pub fn plan(&mut self, catalog: &Catalog, chip: &Chip, units: ComputeUnits) -> Result<Plan> {
        self.plan_path(catalog, chip, units, ExecPath::CoreMl)
    }

    /// Place the model on `chip` and cost it on `path` (the direct path places with
    /// `cpu-and-ne`: it has no GPU).
    pub fn plan_path(
        &mut self,
        catalog: &Catalog,
        chip: &Chip,
        units: ComputeUnits,
        path: ExecPath,
    ) -> Result<Plan> {
        let units = match path {
            ExecPath::CoreMl => units,
            ExecPath::Direct => ComputeUnits::CpuAndNe,
        };
        self.hits(catalog, chip)?;
        let generation = catalog
            .generation_of(chip)
            .ok_or_else(|| PlanError::Catalog(format!("no generation for {}", chip.name)))?;
        let hits = self
            .hits
            .get(&generation.name)
            .ok_or_else(|| PlanError::Catalog("rule cache".into()))?;
        let target = Target {
            chip,
            generation,
            perf: catalog.perf(chip),
            catalog,
            path,
        };
        Ok(place(&self.graph, hits, &self.costs, &target, units))
    }
}

/// Find a chip or say which exist.
pub fn find_chip<'c>(catalog: &'c Catalog, query: &str) -> Result<&'c Chip> {
    catalog.chip(query).ok_or_else(|| PlanError::UnknownChip {
        query: query.into(),
        known: catalog
            .chips
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn ane_fraction(p: &Plan) -> f64 {
    let compute = p.ops.iter().filter(|o| o.unit != Unit::None).count();
    let ane = p.ops.iter().filter(|o| o.unit == Unit::Ane).count();
    if compute == 0 {
        0.0
    } else {
        ane as f64 / compute as f64
    }
}

/// Analyse `program` (its function `options.function` or main) with the given input facts.
pub fn analyze_program(
    program: &Program,
    inputs: &[InputInfo],
    path: Option<String>,
    options: &Options,
) -> Result<Report> {
    let catalog = Catalog::builtin();
    let chip = find_chip(catalog, &options.chip)?;
    // Core ML compiles the whole program, so every function must be valid.
    let diagnostics = anekit_mil::validate::check(program).diagnostics;
    if !diagnostics.is_empty() && !options.allow_invalid {
        return Err(anekit_mil::validate::InvalidProgram { diagnostics }.into());
    }
    let generation = catalog
        .generation_of(chip)
        .ok_or_else(|| PlanError::Catalog(format!("no generation for {}", chip.name)))?;
    let mut prep = Prepared::new(program, options.function.as_deref(), inputs)?;
    let plan = prep.plan_path(catalog, chip, options.compute_units, options.path)?;
    let mut paths = Vec::new();
    for path in [ExecPath::CoreMl, ExecPath::Direct] {
        let p = if path == options.path {
            plan.clone()
        } else {
            prep.plan_path(catalog, chip, options.compute_units, path)?
        };
        paths.push(PathEstimate {
            path,
            latency_ms: p.latency_us / 1000.0,
            dispatch_ms: p.dispatch_us / 1000.0,
            overhead_ms: p.overhead_us / 1000.0,
            io_ms: p.io_us / 1000.0,
            switch_ms: p.switches.cost_us / 1000.0,
            energy: p.energy,
            ane_fraction_ops: ane_fraction(&p),
        });
    }
    let hits = prep.hits(catalog, chip)?.clone();
    let g = &prep.graph;
    let costs = &prep.costs;
    let perf = catalog.perf(chip);

    // Per-op report.
    let mut ops = Vec::with_capacity(g.nodes.len());
    for (i, n) in g.nodes.iter().enumerate() {
        let place = plan.ops.get(i);
        let h = hits.get(i).map(Vec::as_slice).unwrap_or(&[]);
        let inputs_idx: Vec<usize> = {
            let mut v: Vec<usize> = n
                .inputs
                .iter()
                .filter_map(|(_, name)| g.values.get(name).and_then(|v| v.producer))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut edges_in: Vec<[usize; 2]> = Vec::new();
        for (_, name) in &n.inputs {
            let Some(p) = g.values.get(name).and_then(|v| v.producer) else {
                continue;
            };
            let port = g
                .nodes
                .get(p)
                .and_then(|pn| pn.outputs.iter().position(|o| o == name))
                .unwrap_or(0);
            if !edges_in.contains(&[p, port]) {
                edges_in.push([p, port]);
            }
        }
        ops.push(OpReport {
            index: i,
            name: n.op.display_name().to_string(),
            op_type: n.op.op_type.clone(),
            unit: place.map_or(Unit::None, |p| p.unit),
            reasons: place.map(|p| p.reasons.clone()).unwrap_or_default(),
            rules: h.iter().map(|h| h.rule.to_string()).collect(),
            notes: h
                .iter()
                .filter(|h| h.effect == Effect::Note)
                .map(|h| format!("{} [{}]", h.reason, h.rule))
                .collect(),
            output: n
                .outputs
                .first()
                .and_then(|o| g.values.get(o))
                .map(|v| v.ty.to_string())
                .unwrap_or_default(),
            inputs: inputs_idx,
            edges_in,
            num_outputs: n.outputs.len(),
            depth: n.depth,
            flops: costs.get(i).map_or(0.0, |c| c.flops),
            bytes: plan.op_bytes.get(i).copied().unwrap_or(0.0),
            est_us: plan.op_us.get(i).copied().unwrap_or(0.0),
            segment: plan.op_segment.get(i).copied().flatten(),
        });
    }

    // Coverage.
    let mut cov = Coverage::default();
    let (mut flops_all, mut flops_ane, mut t_all, mut t_ane) = (0.0, 0.0, 0.0, 0.0);
    let (mut ane_ms, mut gpu_ms, mut cpu_ms, mut ane_mem) = (0.0, 0.0, 0.0, 0.0);
    for o in &ops {
        if o.unit == Unit::None {
            continue;
        }
        cov.compute_ops += 1;
        flops_all += o.flops;
        t_all += o.est_us;
        match o.unit {
            Unit::Ane => {
                cov.ane_ops += 1;
                flops_ane += o.flops;
                t_ane += o.est_us;
                ane_ms += o.est_us / 1000.0;
                ane_mem += plan.op_memory_us.get(o.index).copied().unwrap_or(0.0);
            }
            Unit::Gpu => {
                cov.gpu_ops += 1;
                gpu_ms += o.est_us / 1000.0;
            }
            _ => {
                cov.cpu_ops += 1;
                cpu_ms += o.est_us / 1000.0;
            }
        }
    }
    let frac = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    cov.ane_fraction_ops = frac(cov.ane_ops as f64, cov.compute_ops as f64);
    cov.ane_fraction_flops = frac(flops_ane, flops_all);
    cov.ane_fraction_cost = frac(t_ane, t_all);

    // Per chip and per compute units.
    let mut per_chip = Vec::new();
    let mut per_units = Vec::new();
    if options.compare {
        for c in &catalog.chips {
            let p = prep.plan_path(catalog, c, options.compute_units, options.path)?;
            per_chip.push(ChipEstimate {
                chip: c.name.clone(),
                generation: c.generation.value.clone(),
                latency_ms: p.latency_us / 1000.0,
                energy_mj: p.energy.total_mj,
                ane_fraction_ops: ane_fraction(&p),
            });
        }
        for u in ComputeUnits::ALL {
            let p = prep.plan(catalog, chip, u)?;
            per_units.push(UnitsEstimate {
                compute_units: u,
                latency_ms: p.latency_us / 1000.0,
                energy_mj: p.energy.total_mj,
                ane_fraction_ops: ane_fraction(&p),
            });
        }
    }
    let g = &prep.graph;
    let costs = &prep.costs;

    let findings = findings(g, &hits, costs, &plan, generation, options.compute_units);

    let mut notes = Vec::new();
    for i in &g.inputs {
        if i.flex != InputFlex::Fixed {
            notes.push(format!(
                "input `{}` is flexible ({}); analysed at its default shape {:?}",
                i.name,
                if i.flex == InputFlex::Range {
                    "range"
                } else {
                    "enumerated"
                },
                i.shape.clone().unwrap_or_default()
            ));
        }
    }
    if g.uninferred > 0 {
        notes.push(format!(
            "{} op(s) kept their declared types (shapes could not be re-inferred at the default shape); their costs may be understated",
            g.uninferred
        ));
    }
    let unknown_shapes = g
        .nodes
        .iter()
        .filter(|n| !n.constant)
        .filter(|n| {
            g.output_tensors(n)
                .iter()
                .any(|t| t.fixed_shape().is_none())
        })
        .count();
    if unknown_shapes > 0 {
        notes.push(format!(
            "{unknown_shapes} op(s) have outputs of unknown shape; they are costed as empty"
        ));
    }
    if options.path == ExecPath::Direct && options.compute_units != ComputeUnits::CpuAndNe {
        notes.push(format!(
            "the direct Neural Engine path has no GPU: placed as cpu-and-ne (compute units `{}` apply to the Core ML path)",
            options.compute_units.name()
        ));
    }
    notes.push("Placement follows published rules and two heuristics; Core ML's own plan (MLComputePlan, macOS 14.4+) is the reference on a Mac.".into());
    notes.push(format!(
        "Latency and energy are estimates from a model calibrated on public one-op and micro-benchmark measurements (ANEForge); on whole models it is off by a median {:.0}% (docs/analyze.md).",
        VALIDATION_MEDIAN_ERROR_PCT
    ));

    let latency_ms = plan.latency_us / 1000.0;
    let report = Report {
        model: ModelInfo {
            path,
            function: g.function.clone(),
            opset: g.opset.to_string(),
            compute_ops: cov.compute_ops,
            constant_ops: g.nodes.iter().filter(|n| n.constant).count(),
            inputs: g.inputs.clone(),
            flops: flops_all,
            weight_bytes: costs.iter().map(|c| c.weight_bytes).sum(),
        },
        chip: chip.name.clone(),
        chip_info: ChipInfo {
            name: chip.name.clone(),
            generation: generation.name.clone(),
            ane_cores: chip.ane_cores.value,
            ane_tflops: perf.ane_tflops,
            ane_tflops_basis: perf.ane_tflops_basis.clone(),
            ane_stream_gbs: perf.ane_stream_gbs,
            ane_stream_basis: perf.ane_stream_basis.clone(),
            ane_onchip_base_gbs: perf.ane_onchip_base_gbs,
            ane_onchip_basis: perf.ane_onchip_basis.clone(),
            ane_dispatch_basis: perf.ane_dispatch_basis.clone(),
            ane_perf_per_w: perf.ane_perf_per_w,
            ane_perf_per_w_basis: perf.ane_perf_per_w_basis.clone(),
            gpu_w: perf.gpu_w,
            cpu_w: perf.cpu_w,
            ane_bandwidth_gbs: perf.ane_bandwidth_gbs,
            ane_bandwidth_basis: perf.ane_bandwidth_basis.clone(),
            ane_dispatch_us: perf.ane_dispatch_us,
            gpu_tflops: perf.gpu_tflops,
            gpu_bandwidth_gbs: perf.gpu_bandwidth_gbs,
            cpu_gflops: perf.cpu_gflops,
            last_axis_alignment_bytes: generation.last_axis_alignment_bytes.value,
        },
        compute_units: options.compute_units,
        ops,
        coverage: cov,
        segments: plan.segments.clone(),
        switches: plan.switches.clone(),
        estimate: Estimate {
            latency_ms,
            ane_ms,
            gpu_ms,
            cpu_ms,
            dispatch_ms: plan.dispatch_us / 1000.0,
            overhead_ms: plan.overhead_us / 1000.0,
            io_ms: plan.io_us / 1000.0,
            switch_ms: plan.switches.cost_us / 1000.0,
            path: options.path,
            energy: plan.energy,
            paths,
            ane_memory_bound_fraction: frac(ane_mem, ane_ms * 1000.0),
            per_chip,
            per_compute_units: per_units,
        },
        findings,
        notes,
        invalid: diagnostics
            .iter()
            .map(|d| format!("Core ML will refuse to compile: {d}"))
            .collect(),
    };
    Ok(report)
}
