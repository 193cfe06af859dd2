//! fp16 compute-precision conversion (`anekit_compress::fp16`) against coremltools 9.0 and
//! PyTorch, on the fp32 fixtures:
//!
//! - the converted program has the same ops as coremltools' own `common::add_fp16_cast`
//!   followed by the cleanup passes of its default pipeline (`scripts/fp16_oracle.py
//!   convert`): the same multiset of (op type, output dtypes), nested blocks included, the
//!   same number of casts and of converted ops, fp32 function inputs and outputs;
//! - the package anekit writes loads in coremltools (`scripts/fp16_oracle.py load`), which
//!   sees the same ops, with the original output names — also after fp16 conversion followed
//!   by int8 quantization of the then fp16 weights;
//! - the converted model, run on anekit's CPU backend with fp16 precision (every fp16 op's
//!   output rounded to fp16), matches the fixture's PyTorch reference within the fp16 bound
//!   of `anekit-runtime/tests/fixtures.rs` (relative error ≤ 1e-2) and ≥ 40 dB SNR.
//!
//! The coremltools tests need the venv of `scripts/setup-python.sh`; without it they say so
//! and pass, unless `ANEKIT_REQUIRE_INTEROP=1` (scripts/test.sh, CI).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anekit_compress::NoProgress;
use anekit_compress::config::{Config, LinearConfig, Selection};
use anekit_mil::model::Model;
use anekit_mil::{Block, Program, ValueType};
use anekit_runtime::{ComputeUnits, ElementType, Engine, LoadOptions, Precision, Tensor, npy};
use anekit_testkit::{Manifest, Python};
use serde_json::Value as Json;

const FIXTURES: &[&str] = &[
    "convnet_fp32_ios15",
    "mlp_fp32_ios15",
    "lstm_fp32_ios15",
    "two_io_fp32_ios16",
    "control_flow_fp32_ios17",
];

fn repo() -> PathBuf {
    anekit_testkit::repo::root()
}

fn fixture(name: &str) -> PathBuf {
    repo().join(format!("fixtures/models/{name}.mlpackage"))
}

fn python() -> Option<Python> {
    Python::find("coremltools oracle")
}

fn oracle(py: &Python, cmd: &str, paths: &[PathBuf]) -> Vec<Json> {
    let mut args = vec![PathBuf::from(cmd)];
    args.extend(paths.iter().cloned());
    let j = py
        .json("scripts/fp16_oracle.py", &args)
        .unwrap_or_else(|e| panic!("{e}"));
    j["results"].as_array().unwrap().clone()
}

/// A model converted by anekit, with its report.
fn converted(path: &Path) -> (Model, anekit_compress::fp16::Fp16Report) {
    let mut m = Model::open(path).unwrap();
    let r = anekit_compress::fp16::convert(m.program.as_mut().unwrap()).unwrap();
    (m, r)
}

fn dtype_str(t: &ValueType) -> String {
    match t {
        ValueType::Tensor(t) => t.dtype.name().to_string(),
        ValueType::State(inner) => format!("state<{}>", dtype_str(inner)),
        ValueType::List { .. } => "list".into(),
        other => other.to_string(),
    }
}

/// The oracle's summary of a function, computed from our IR.
fn summary(program: &Program) -> Json {
    let mut out = serde_json::Map::new();
    for (fname, f) in &program.functions {
        let mut ops: BTreeMap<String, u64> = BTreeMap::new();
        f.block().unwrap().visit_ops(&mut |op| {
            let dtypes: Vec<String> = op.outputs.iter().map(|o| dtype_str(&o.ty)).collect();
            *ops.entry(format!("{}:{}", op.op_type, dtypes.join(",")))
                .or_insert(0) += 1;
        });
        let mut small: Vec<Vec<u64>> = Vec::new();
        f.block().unwrap().visit_ops(&mut |op| {
            let Some(v) = op.attributes.get("val").filter(|_| op.op_type == "const") else {
                return;
            };
            let t = v.tensor_type().unwrap();
            if t.dtype == anekit_mil::DataType::Fp16 && t.element_count().unwrap() <= 16 {
                small.push(
                    v.bytes()
                        .unwrap()
                        .chunks_exact(2)
                        .map(|c| u64::from(u16::from_le_bytes([c[0], c[1]])))
                        .collect(),
                );
            }
        });
        small.sort();
        let casts = ops
            .iter()
            .filter(|(k, _)| k.starts_with("cast:"))
            .map(|(_, v)| *v)
            .sum::<u64>();
        let block: &Block = f.block().unwrap();
        let types: BTreeMap<&str, &ValueType> = {
            let mut m = BTreeMap::new();
            block.visit_ops(&mut |op| {
                for o in &op.outputs {
                    m.insert(o.name.as_str(), &o.ty);
                }
            });
            for i in &f.inputs {
                m.insert(i.name.as_str(), &i.ty);
            }
            m
        };
        out.insert(
            fname.clone(),
            serde_json::json!({
                "ops": ops,
                "casts": casts,
                "inputs": f.inputs.iter().map(|i| vec![i.name.clone(), dtype_str(&i.ty)]).collect::<Vec<_>>(),
                "small_fp16_consts": small,
                "outputs": block.outputs.iter().map(|o| vec![o.clone(), types.get(o.as_str()).map_or("?".into(), |t| dtype_str(t))]).collect::<Vec<_>>(),
            }),
        );
    }
    Json::Object(out)
}

/// Only the dtypes of [[name, dtype]] pairs.
fn dtypes_of(pairs: &Json) -> Vec<String> {
    pairs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().to_string())
        .collect()
}

/// Convert each package with anekit and with coremltools and compare.
fn compare_with_coremltools(py: &Python, paths: &[PathBuf]) {
    let theirs = oracle(py, "convert", paths);
    assert_eq!(theirs.len(), paths.len());
    for (path, t) in paths.iter().zip(&theirs) {
        let name = path.file_stem().unwrap().to_string_lossy();
        let original = Model::open(path).unwrap();
        let (m, report) = converted(path);
        let ours = summary(m.program.as_ref().unwrap());
        let before = summary(original.program.as_ref().unwrap());
        assert_eq!(
            report.ops as u64,
            t["converted"].as_u64().unwrap(),
            "{name}: converted ops (ours {report:?})"
        );
        for (fname, tf) in t["functions"].as_object().unwrap() {
            let of = &ours[fname];
            assert_eq!(
                of["ops"], tf["ops"],
                "{name}/{fname}: ops (ours left, coremltools right)"
            );
            assert_eq!(of["casts"], tf["casts"], "{name}/{fname}: casts");
            assert_eq!(
                of["small_fp16_consts"], tf["small_fp16_consts"],
                "{name}/{fname}: small fp16 constants (bit patterns)"
            );
            // inputs: same names and dtypes as coremltools' and as before (fp32)
            assert_eq!(of["inputs"], tf["inputs"], "{name}/{fname}: inputs");
            assert_eq!(of["inputs"], before[fname]["inputs"], "{name}/{fname}");
            // outputs: coremltools renames them (the converter puts the names back later);
            // ours keep the original names; both keep the original dtypes
            assert_eq!(
                dtypes_of(&of["outputs"]),
                dtypes_of(&tf["outputs"]),
                "{name}/{fname}: output dtypes"
            );
            assert_eq!(
                of["outputs"], before[fname]["outputs"],
                "{name}/{fname}: outputs keep their names and types"
            );
        }
        assert!(
            report.weight_bytes_after < report.weight_bytes_before,
            "{name}"
        );
        eprintln!(
            "{name}: {} ops converted, {} constants to fp16, {:+} casts, weights {} → {} bytes",
            report.ops,
            report.consts,
            report.casts_added,
            report.weight_bytes_before,
            report.weight_bytes_after
        );
    }
}

#[test]
fn conversion_matches_coremltools_on_the_fp32_fixtures() {
    let Some(py) = python() else { return };
    let paths: Vec<PathBuf> = FIXTURES.iter().map(|n| fixture(n)).collect();
    compare_with_coremltools(&py, &paths);
}

/// Corner cases the fixtures lack (`scripts/fp16_oracle.py make`): overflow, ±65504, ≥ 1e38,
/// underflow, shared input and weight, an output that is also consumed, an int32 → fp32
/// cast that fuses with the new cast to fp16, an int32 result; iOS17 mixed-precision
/// parameters of activations and `log`, and the same program in iOS16.
#[test]
fn conversion_matches_coremltools_on_corner_cases() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let j = py
        .json("scripts/fp16_oracle.py", &[Path::new("make"), dir.path()])
        .unwrap_or_else(|e| panic!("{e}"));
    let paths: Vec<PathBuf> = j["made"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| PathBuf::from(p.as_str().unwrap()))
        .collect();
    assert_eq!(paths.len(), 3);
    compare_with_coremltools(&py, &paths);
}

/// An op multiset, without the `const` ops if `strip`.
fn without_consts(ops: &Json, strip: bool) -> Json {
    let mut m = ops.as_object().unwrap().clone();
    if strip {
        m.retain(|k, _| !k.starts_with("const:"));
    }
    Json::Object(m)
}

#[test]
fn coremltools_loads_the_converted_packages() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut ours = Vec::new();
    for name in FIXTURES {
        let (m, _) = converted(&fixture(name));
        let p = dir.path().join(format!("{name}_fp16.mlpackage"));
        m.save_mlpackage(&p).unwrap();
        // and anekit reads back what it wrote
        let back = Model::open(&p).unwrap();
        assert!(
            anekit_mil::validate::validate(back.program.as_ref().unwrap()).is_ok(),
            "{name}: the written package does not validate"
        );
        ours.push(summary(back.program.as_ref().unwrap()));
        paths.push(p);
    }
    // fp16 followed by int8 quantization of the (now fp16) weights
    let mut m = Model::open(fixture("two_io_fp32_ios16")).unwrap();
    let config = Config {
        fp16: true,
        quantize: Some(Selection::global(LinearConfig {
            weight_threshold: 10,
            ..LinearConfig::default()
        })),
        ..Config::default()
    };
    let r = anekit_compress::compress_model(&mut m, &config, &NoProgress).unwrap();
    assert_eq!((r.fp16_ops, r.weights.len()), (7, 2));
    let p = dir.path().join("two_io_fp16_int8.mlpackage");
    m.save_mlpackage(&p).unwrap();
    ours.push(summary(Model::open(&p).unwrap().program.as_ref().unwrap()));
    assert_eq!(
        ours.last().unwrap()["main"]["ops"]["constexpr_affine_dequantize:fp16"],
        2
    );
    paths.push(p);
    let names: Vec<&str> = FIXTURES
        .iter()
        .copied()
        .chain(["two_io_fp16_int8"])
        .collect();
    let loaded = oracle(&py, "load", &paths);
    assert_eq!(loaded.len(), names.len());
    for ((name, l), o) in names.iter().zip(&loaded).zip(&ours) {
        for (fname, lf) in l["functions"].as_object().unwrap() {
            // coremltools' loader makes a const op of each attribute parameter of the iOS16
            // constexpr ops (`quantized_data`, `scale`, ...): compare the other ops there
            let strip = *name == "two_io_fp16_int8";
            assert_eq!(
                without_consts(&lf["ops"], strip),
                without_consts(&o[fname]["ops"], strip),
                "{name}/{fname}: coremltools sees other ops"
            );
            assert_eq!(lf["inputs"], o[fname]["inputs"], "{name}/{fname}");
            assert_eq!(lf["outputs"], o[fname]["outputs"], "{name}/{fname}");
        }
    }
}

/// (max |a − r| / max |r|, SNR dB)
fn compare(out: &Tensor, reference: &Tensor) -> (f64, f64) {
    let d = out.deviation(reference).expect("output shape");
    (d.relative(), d.snr_db())
}

#[test]
fn converted_fixtures_match_pytorch_in_fp16() {
    let fixtures = repo().join("fixtures");
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json")).unwrap())
            .unwrap();
    let engine = Engine::new();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for name in FIXTURES {
        let f = manifest["fixtures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == *name)
            .unwrap();
        let (m, report) = converted(&fixture(name));
        assert!(report.ops > 0, "{name}");
        // through the file, as a user gets it
        let p = dir.path().join(format!("{name}.mlpackage"));
        m.save_mlpackage(&p).unwrap();
        let model = Arc::new(Model::open(&p).unwrap());
        for d in f["data"].as_array().unwrap() {
            let options = LoadOptions {
                compute_units: ComputeUnits::CpuOnly,
                function: Some(d["function"].as_str().unwrap().to_string()),
                precision: Precision::Fp16,
                threads: None,
                ..LoadOptions::default()
            };
            let loaded = engine.load(model.clone(), &options).unwrap();
            let inputs = d["inputs"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(n, file)| {
                    let t = npy::read(fixtures.join(file.as_str().unwrap())).unwrap();
                    let want = loaded
                        .inputs()
                        .iter()
                        .find(|s| &s.name == n)
                        .map_or(t.dtype(), |s| s.dtype);
                    (n.clone(), t.cast(want))
                })
                .collect();
            let outputs = loaded.predict(&inputs).unwrap();
            for (oname, file) in d["outputs"].as_object().unwrap() {
                let reference = npy::read(fixtures.join(file.as_str().unwrap())).unwrap();
                let out = outputs
                    .get(oname)
                    .unwrap_or_else(|| panic!("{name}: {oname}"));
                assert_eq!(out.dtype(), ElementType::F32, "{name} {oname}: fp32 output");
                let (rel, snr) = compare(out, &reference);
                eprintln!("{name} {oname}: relative error {rel:.2e}, SNR {snr:.1} dB");
                if !(rel <= 1e-2 && snr >= 40.0) {
                    failures.push(format!(
                        "{name} {oname}: relative error {rel:.2e} (≤ 1e-2), SNR {snr:.1} dB (≥ 40)"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn fp16_fixtures_are_left_unchanged() {
    let manifest = Manifest::load().unwrap();
    let mut n = 0;
    for f in &manifest.fixtures {
        let name = &f.name;
        if f.is_fp32() || !f.is_ml_program() {
            continue;
        }
        let mut m = Model::open(manifest.resolve(&f.path)).unwrap();
        let before = m.program.clone();
        let ops = anekit_compress::fp16::convert_program(m.program.as_mut().unwrap()).unwrap();
        assert_eq!(ops, 0, "{name}");
        assert!(m.program == before, "{name} changed");
        n += 1;
    }
    assert!(n >= 10, "{n} fp16 fixtures");
}
