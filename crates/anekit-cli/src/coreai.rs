//! Core AI models (`.aimodel`) in the CLI: opening one as a MIL model (so `run`, `bench`,
//! `analyze` and `compress` work on it through the translation), and `inspect`'s report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anekit_coreai::ir::{self, Attr, Type};
use anekit_coreai::{CoreAiModel, model, schema, text};
use anekit_format::aimodel::AiModel;
use anekit_mil::model::Model;
use anekit_mlir::{Bytecode, TypeId};
use anyhow::{Context, Result};
use serde::Serialize;

use crate::output::{bytes, table, thousands};

/// Whether `path` is a Core AI model folder.
pub fn is_aimodel(path: &Path) -> bool {
    anekit_format::aimodel::is_aimodel(path)
}

/// Open `path` as a MIL model: a Core ML model as it is, a Core AI model through the
/// translation.
pub fn open_model(path: &Path) -> Result<Model> {
    if is_aimodel(path) {
        let m = CoreAiModel::open(path)
            .with_context(|| format!("cannot read Core AI model {}", path.display()))?;
        for (f, why) in &m.translation.failed {
            tracing::warn!(function = %f, reason = %why, "function not translated");
        }
        return Ok(m.to_mil_model());
    }
    Model::open(path).with_context(|| format!("cannot read model {}", path.display()))
}

/// Write `model`'s program as a Core AI model at `output` (what `compress` does for an
/// `.aimodel` destination): compressed weights become `blockwise_shift_scale_v2` and
/// `lut_to_dense_v1` ops; forms Core AI cannot express are named.
pub fn save_aimodel(model: &Model, input: &Path, output: &Path) -> Result<()> {
    anekit_format::package::check_output_path(output, input)
        .with_context(|| format!("cannot write {}", output.display()))?;
    let program = model.require_program()?;
    let mut sparse = Vec::new();
    for (name, f) in &program.functions {
        if let Some(b) = f.block() {
            b.visit_ops(&mut |op| {
                if op.op_type.contains("sparse") {
                    sparse.push(format!("{name}: {} ({})", op.display_name(), op.op_type));
                }
            });
        }
    }
    if !sparse.is_empty() {
        anyhow::bail!(
            "pruned (sparse) weights have no Core AI form that anekit writes; write an .mlpackage instead:\n  {}",
            sparse.join("\n  ")
        );
    }
    let producer = format!("anekit {}", env!("CARGO_PKG_VERSION"));
    let module = anekit_coreai::from_mil::from_mil(program, &producer).with_context(|| {
        format!(
            "cannot express the compressed model as Core AI ({})",
            output.display()
        )
    })?;
    let bytes = anekit_mlir::write(&module).context("cannot encode the Core AI module")?;
    anekit_format::aimodel::write(
        output,
        &bytes,
        &anekit_format::aimodel::Metadata::anekit("2.0"),
    )
    .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(())
}

/// One input or output.
#[derive(Debug, Serialize)]
pub struct Port {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// One graph.
#[derive(Debug, Serialize)]
pub struct GraphReport {
    name: String,
    public: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    composite: Option<String>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    ops: usize,
}

/// Constants, by element type.
#[derive(Debug, Default, Serialize)]
pub struct Weights {
    constants: usize,
    elements: u64,
    inline_bytes: u64,
    resource_bytes: u64,
    resources: usize,
    by_type: BTreeMap<String, u64>,
}

/// The translation into MIL.
#[derive(Debug, Serialize)]
pub struct TranslationReport {
    functions: Vec<String>,
    failed: BTreeMap<String, String>,
    /// Every op that does not translate (graph, op, location, reason).
    untranslated: Vec<anekit_coreai::to_mil::Untranslated>,
    mapped: BTreeMap<String, usize>,
    lowered: BTreeMap<String, usize>,
}

/// `anekit inspect`'s report on a Core AI model.
#[derive(Debug, Serialize)]
pub struct Report {
    path: String,
    format: &'static str,
    metadata: anekit_format::aimodel::Metadata,
    bytecode_version: u64,
    bytecode_producer: String,
    module_bytes: usize,
    asset_version: Option<u64>,
    graphs: Vec<GraphReport>,
    op_counts: BTreeMap<String, usize>,
    /// Op counts by dialect (the op name's prefix before the first dot).
    ops_by_dialect: BTreeMap<String, usize>,
    /// `aicode` op counts by kind: primitive, composite, dataflow, serialization.
    ops_by_kind: BTreeMap<String, usize>,
    weights: Weights,
    translation: Option<TranslationReport>,
}

fn kind_of(op: &str) -> &'static str {
    let s = op.strip_prefix("aicode.").unwrap_or(op);
    if s.starts_with("primitive.") {
        "primitive"
    } else if s.starts_with("dataflow.") {
        "dataflow"
    } else if s.starts_with("serialization.") {
        "serialization"
    } else if op.starts_with("aicode.") {
        "composite"
    } else {
        "other dialect"
    }
}

fn weights(m: &Bytecode) -> Weights {
    let mut w = Weights {
        resources: m.dialect_resources().count(),
        ..Weights::default()
    };
    for op in m.ir.walk() {
        if m.name_of(op) != "aicode.primitive.constant_v1" {
            continue;
        }
        let Ok(Some(a)) = schema::property(m, op, "value") else {
            continue;
        };
        let ty = m.ir.op(op).result_types.first().copied();
        let (count, scalar) = match ty.map(|t| ir::ty(m, t)) {
            Some(Ok(Type::Tensor { shape, element })) => (
                shape
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d.max(0) as u64))
                    .unwrap_or(0),
                match ir::ty(m, element) {
                    Ok(Type::Scalar(s)) => s.name(),
                    _ => "?".into(),
                },
            ),
            _ => (0, "?".into()),
        };
        w.constants += 1;
        w.elements += count;
        let nbytes = match ir::attr(m, a) {
            Ok(Attr::DenseElements { data, .. }) => {
                w.inline_bytes += data.len() as u64;
                data.len() as u64
            }
            Ok(Attr::DenseResource(h)) => {
                let n = match m.dialect_resource(h) {
                    Some((_, e)) => match &e.value {
                        anekit_mlir::ResourceValue::Blob { data, .. } => data.len() as u64,
                        _ => 0,
                    },
                    None => 0,
                };
                w.resource_bytes += n;
                n
            }
            _ => 0,
        };
        *w.by_type.entry(scalar).or_default() += nbytes;
    }
    w
}

fn port(m: &Bytecode, name: &str, t: TypeId) -> Port {
    Port {
        name: name.to_string(),
        ty: text::type_text(m, t),
    }
}

/// Build the report on `path`.
pub fn report(path: &Path, translate: bool) -> Result<Report> {
    let asset = AiModel::open(path)
        .with_context(|| format!("cannot read Core AI model {}", path.display()))?;
    let m = &asset.module;
    let graphs = model::graphs(m)
        .with_context(|| format!("cannot read the graphs of {}", path.display()))?;
    let count_ops = |g: &model::Graph| -> usize {
        // Ops in the graph's body, nested regions included.
        let mut n = 0;
        let mut stack = vec![g.body];
        while let Some(r) = stack.pop() {
            for &b in &m.ir.region(r).blocks {
                for &op in &m.ir.block(b).ops {
                    n += 1;
                    stack.extend(m.ir.op(op).regions.iter().copied());
                }
            }
        }
        n
    };
    let op_counts = model::op_counts(m);
    let mut ops_by_kind = BTreeMap::new();
    let mut ops_by_dialect = BTreeMap::new();
    for (k, v) in &op_counts {
        *ops_by_kind.entry(kind_of(k).to_string()).or_default() += v;
        let dialect = k.split_once('.').map_or(k.as_str(), |(d, _)| d);
        *ops_by_dialect.entry(dialect.to_string()).or_default() += v;
    }
    let translation = if translate {
        Some(
            match anekit_coreai::to_mil::translate(m, anekit_coreai::to_mil::Options::default()) {
                Ok(t) => TranslationReport {
                    functions: t.program.functions.keys().cloned().collect(),
                    failed: t.failed,
                    untranslated: t.untranslated,
                    mapped: t.report.mapped,
                    lowered: t.report.lowered,
                },
                Err(anekit_coreai::to_mil::TranslateError::Untranslatable(list)) => {
                    let mut failed = BTreeMap::<String, String>::new();
                    for u in &list {
                        let e = failed.entry(u.graph.clone()).or_default();
                        if !e.is_empty() {
                            e.push_str("; ");
                        }
                        match &u.location {
                            Some(l) => e.push_str(&format!("{} at {l}: {}", u.op, u.reason)),
                            None => e.push_str(&format!("{}: {}", u.op, u.reason)),
                        }
                    }
                    TranslationReport {
                        functions: Vec::new(),
                        failed,
                        untranslated: list,
                        mapped: BTreeMap::new(),
                        lowered: BTreeMap::new(),
                    }
                }
                Err(e) => TranslationReport {
                    functions: Vec::new(),
                    failed: BTreeMap::from([("*".to_string(), e.to_string())]),
                    untranslated: Vec::new(),
                    mapped: BTreeMap::new(),
                    lowered: BTreeMap::new(),
                },
            },
        )
    } else {
        None
    };
    Ok(Report {
        path: path.display().to_string(),
        format: "aimodel",
        metadata: asset.metadata.clone(),
        bytecode_version: m.version,
        bytecode_producer: m.producer.clone(),
        module_bytes: asset.bytes.len(),
        asset_version: model::asset_version(m),
        graphs: graphs
            .iter()
            .map(|g| GraphReport {
                name: g.name.clone(),
                public: !g.private,
                composite: g.composite.as_ref().map(|c| c.name.clone()),
                inputs: g.inputs.iter().map(|p| port(m, &p.name, p.ty)).collect(),
                outputs: g.outputs.iter().map(|p| port(m, &p.name, p.ty)).collect(),
                ops: count_ops(g),
            })
            .collect(),
        op_counts,
        ops_by_dialect,
        ops_by_kind,
        weights: weights(m),
        translation,
    })
}

/// `anekit inspect MODEL.aimodel [--json | --mlir]`.
pub fn inspect(path: &Path, json: bool, mlir: bool) -> Result<()> {
    if mlir {
        let asset = AiModel::open(path)
            .with_context(|| format!("cannot read Core AI model {}", path.display()))?;
        print!("{}", text::print(&asset.module));
        return Ok(());
    }
    let r = report(path, true)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render(&r));
    }
    Ok(())
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", r.path);
    let mut rows = vec![vec![
        "format".to_string(),
        "Core AI model (.aimodel)".to_string(),
    ]];
    if let Some(p) = &r.metadata.producer {
        rows.push(vec!["producer".into(), p.clone()]);
    }
    if let Some(d) = &r.metadata.creation_date {
        rows.push(vec!["created".into(), d.clone()]);
    }
    if let Some(v) = &r.metadata.asset_version {
        rows.push(vec!["asset format".into(), v.clone()]);
    }
    rows.push(vec![
        "module".into(),
        format!(
            "main.mlirb, {} (MLIR bytecode v{}, {}), SHA-256 verified",
            bytes(r.module_bytes as u64),
            r.bytecode_version,
            r.bytecode_producer
        ),
    ]);
    if let Some(v) = r.asset_version {
        rows.push(vec!["aicode version".into(), v.to_string()]);
    }
    s.push_str(&table(&rows, 2));
    for g in r.graphs.iter().filter(|g| g.public) {
        let _ = writeln!(s, "\nfunction {} ({} ops)", g.name, thousands(g.ops as u64));
        let mut rows = Vec::new();
        // States are handle arguments; each state's last access token is a result.
        for p in &g.inputs {
            let role = if p.ty.starts_with("!aicode.handle_v1") {
                "state"
            } else {
                "input"
            };
            rows.push(vec![role.into(), p.name.clone(), p.ty.clone()]);
        }
        for p in &g.outputs {
            let role = if p.ty.starts_with("!aicode.token_v1") {
                "token"
            } else {
                "output"
            };
            rows.push(vec![role.into(), p.name.clone(), p.ty.clone()]);
        }
        s.push_str(&table(&rows, 2));
    }
    let private: Vec<&GraphReport> = r.graphs.iter().filter(|g| !g.public).collect();
    if !private.is_empty() {
        let _ = writeln!(s, "\nprivate graphs (invoked)");
        let rows: Vec<Vec<String>> = private
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.composite
                        .clone()
                        .map_or_else(String::new, |c| format!("composite {c}")),
                    format!("{} ops", g.ops),
                ]
            })
            .collect();
        s.push_str(&table(&rows, 2));
    }
    let _ = writeln!(s, "\nops by dialect and kind");
    let rows: Vec<Vec<String>> = r
        .ops_by_dialect
        .iter()
        .map(|(k, v)| vec![format!("{k} (dialect)"), thousands(*v as u64)])
        .chain(
            r.ops_by_kind
                .iter()
                .map(|(k, v)| vec![format!("  {k}"), thousands(*v as u64)]),
        )
        .collect();
    s.push_str(&table(&rows, 2));
    let _ = writeln!(s, "\nop histogram (nested regions included)");
    let mut ops: Vec<(&String, &usize)> = r.op_counts.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let rows: Vec<Vec<String>> = ops
        .iter()
        .map(|(k, v)| vec![thousands(**v as u64), (*k).clone()])
        .collect();
    s.push_str(&table(&rows, 2));
    let w = &r.weights;
    let _ = writeln!(
        s,
        "\nweights: {} constants, {} elements, {} inline + {} in {} resources",
        thousands(w.constants as u64),
        thousands(w.elements),
        bytes(w.inline_bytes),
        bytes(w.resource_bytes),
        w.resources
    );
    let rows: Vec<Vec<String>> = w
        .by_type
        .iter()
        .map(|(k, v)| vec![k.clone(), bytes(*v)])
        .collect();
    s.push_str(&table(&rows, 2));
    if let Some(t) = &r.translation {
        let _ = writeln!(s, "\ntranslation to MIL (run, bench, analyze, compress)");
        let _ = writeln!(
            s,
            "  functions: {}",
            if t.functions.is_empty() {
                "none".into()
            } else {
                t.functions.join(", ")
            }
        );
        let mapped: usize = t.mapped.values().sum();
        let lowered: usize = t.lowered.values().sum();
        let _ = writeln!(
            s,
            "  composites mapped to MIL ops: {mapped}; lowered through their regions: {lowered}"
        );
        for (k, v) in &t.lowered {
            let _ = writeln!(s, "    lowered {v} x {k}");
        }
        for u in &t.untranslated {
            let _ = writeln!(s, "  not translated: {u}");
        }
        for (f, why) in &t.failed {
            if !t.untranslated.iter().any(|u| &u.graph == f) {
                let _ = writeln!(s, "  not translated: {f}: {why}");
            }
        }
    }
    s
}
