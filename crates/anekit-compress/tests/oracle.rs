//! anekit-compress against coremltools 9.0 (`scripts/compress_oracle.py`, the fixtures):
//!
//! - linear quantization: every constexpr parameter (data, scale, zero point / offset, axis)
//!   is byte-identical with coremltools' on synthetic models covering linear, conv,
//!   conv_transpose, matmul x/y (transposed or not), batched matmul, zero/constant/tie rows,
//!   conflicting consumers, thresholds, op-type and op-name settings, iOS16 and iOS18, fp16
//!   and fp32 — and on the mlp_big fixtures;
//! - pruning: masks and non-zeros byte-identical with coremltools;
//! - palettization: reconstruction error (measured by coremltools' own decompression) ≤
//!   coremltools' on the same weights;
//! - every package anekit writes loads in coremltools and decompresses there.
//!
//! Needs the venv of `scripts/setup-python.sh`; without it the tests say so and pass, unless
//! `ANEKIT_REQUIRE_INTEROP=1` (scripts/test.sh, CI).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anekit_compress::config::{
    Config, LinearConfig, PaletteConfig, PaletteGranularity, PruneConfig, QuantGranularity,
    Selection,
};
use anekit_compress::{NoProgress, PaletteMode, PruneMethod, QuantDtype, QuantMode};
use anekit_mil::model::Model;
use anekit_mil::{Binding, Operation, Value};
use anekit_testkit::Python;
use serde_json::{Value as Json, json};

fn repo() -> PathBuf {
    anekit_testkit::repo::root()
}

fn python() -> Option<Python> {
    Python::find("coremltools oracle")
}

fn oracle<S: AsRef<std::ffi::OsStr>>(py: &Python, args: &[S]) -> Json {
    py.json("scripts/compress_oracle.py", args)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn oracle_jobs(py: &Python, cmd: &str, jobs: &Json, dir: &Path) -> Json {
    let f = dir.join(format!("{cmd}-jobs-{}.json", std::process::id()));
    std::fs::write(&f, serde_json::to_vec(jobs).unwrap()).unwrap();
    oracle(py, &[cmd, f.to_str().unwrap()])
}

/// Source models built by coremltools, made once per test binary.
fn sources(py: &Python) -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let r = oracle(py, &["make", d.path().to_str().unwrap()]);
        assert_eq!(r["ok"], json!(true), "{r}");
        d
    })
    .path()
}

fn fixture(name: &str) -> PathBuf {
    repo().join(format!("fixtures/models/{name}.mlpackage"))
}

// ------------------------------------------------------------------------------------------
// coremltools stage JSON → our config (the same settings, spelled our way)
// ------------------------------------------------------------------------------------------

fn linear_of(j: &Json) -> LinearConfig {
    let d = LinearConfig::default();
    let dtype = j["dtype"]
        .as_str()
        .map_or(d.dtype, |s| QuantDtype::parse(s).unwrap());
    let mode = match j["mode"].as_str() {
        Some("linear") => QuantMode::Linear,
        _ => QuantMode::LinearSymmetric,
    };
    let granularity = match (j["granularity"].as_str(), &j["block_size"]) {
        (_, Json::Array(a)) => {
            QuantGranularity::Blocks(a.iter().map(|v| v.as_u64().unwrap() as usize).collect())
        }
        (Some("per_tensor"), _) => QuantGranularity::PerTensor,
        (Some("per_block"), b) => QuantGranularity::PerBlock(b.as_u64().unwrap_or(32) as usize),
        _ => QuantGranularity::PerChannel,
    };
    LinearConfig {
        dtype,
        mode,
        granularity,
        weight_threshold: j["weight_threshold"].as_u64().map_or(2048, |v| v as usize),
    }
}

fn palette_of(j: &Json) -> PaletteConfig {
    PaletteConfig {
        mode: match j["mode"].as_str() {
            Some("uniform") => PaletteMode::Uniform,
            Some("unique") => PaletteMode::Unique,
            _ => PaletteMode::Kmeans,
        },
        nbits: j["nbits"].as_u64().map(|v| v as u8),
        granularity: match j["granularity"].as_str() {
            Some("per_grouped_channel") => PaletteGranularity::PerGroupedChannel(
                j["group_size"].as_u64().unwrap_or(32) as usize,
            ),
            _ => PaletteGranularity::PerTensor,
        },
        channel_axis: j["channel_axis"].as_i64(),
        cluster_dim: j["cluster_dim"].as_u64().unwrap_or(1) as usize,
        per_channel_scale: j["enable_per_channel_scale"].as_bool().unwrap_or(false),
        weight_threshold: j["weight_threshold"].as_u64().map_or(2048, |v| v as usize),
    }
}

fn prune_of(j: &Json) -> PruneConfig {
    let method = if let Some(t) = j["threshold"].as_f64() {
        PruneMethod::Threshold {
            threshold: t,
            min_sparsity: j["minimum_sparsity_percentile"].as_f64().unwrap_or(0.5),
        }
    } else if let Some(nm) = j["n_m_ratio"].as_array() {
        PruneMethod::NOfM {
            n: nm[0].as_u64().unwrap() as usize,
            m: nm[1].as_u64().unwrap() as usize,
            dim: j["dim"].as_u64().unwrap_or(1) as usize,
        }
    } else {
        PruneMethod::Magnitude {
            target_sparsity: j["target_sparsity"].as_f64().unwrap(),
            block_size: j["block_size"].as_u64().map(|v| v as usize),
            dim: j["dim"].as_u64().unwrap_or(0) as usize,
        }
    };
    PruneConfig {
        method,
        weight_threshold: j["weight_threshold"].as_u64().map_or(2048, |v| v as usize),
    }
}

fn selection<T>(stage: &Json, one: impl Fn(&Json) -> T) -> Selection<T> {
    let opt = |j: &Json| (!j.is_null()).then(|| one(j));
    let map = |j: &Json| {
        j.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), opt(v))).collect())
            .unwrap_or_default()
    };
    Selection {
        global: opt(&stage["global"]),
        op_type: map(&stage["op_type"]),
        op_name: map(&stage["op_name"]),
    }
}

fn config_of(stages: &Json) -> Config {
    let mut c = Config::default();
    for s in stages.as_array().unwrap() {
        match s["kind"].as_str().unwrap() {
            "linear" => c.quantize = Some(selection(s, linear_of)),
            "palettize" => c.palettize = Some(selection(s, palette_of)),
            "prune" => c.prune = Some(selection(s, prune_of)),
            k => panic!("unknown kind {k}"),
        }
    }
    c
}

fn ours(src: &Path, stages: &Json, out: &Path) -> anekit_compress::Report {
    let mut m = Model::open(src).unwrap();
    let report = anekit_compress::compress_model(&mut m, &config_of(stages), &NoProgress)
        .unwrap_or_else(|e| panic!("anekit failed on {}: {e}", src.display()));
    m.save_mlpackage(out).unwrap();
    report
}

// ------------------------------------------------------------------------------------------
// Comparison of constexpr parameters
// ------------------------------------------------------------------------------------------

fn ops_of(path: &Path) -> Vec<Operation> {
    let m = Model::open(path).unwrap();
    let p = m.program.unwrap();
    let (_, f) = p.main_function().unwrap();
    let mut out = Vec::new();
    f.block().unwrap().visit_ops(&mut |o| out.push(o.clone()));
    out
}

fn params(op: &Operation) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let show = |val: &Value| {
        let t = val.tensor_type().map(|t| t.to_string()).unwrap_or_default();
        let b = val.bytes().map(|b| b.to_vec()).unwrap_or_default();
        // The bytes themselves are compared; a hash keeps failure messages short.
        let h = b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
            (h ^ u64::from(x)).wrapping_mul(0x100000001b3)
        });
        format!("{t} len {} fnv {h:016x}", b.len())
    };
    for (k, a) in &op.attributes {
        if k != "name" {
            v.push((k.clone(), show(a)));
        }
    }
    for (k, a) in &op.inputs {
        for b in &a.0 {
            v.push((
                k.clone(),
                match b {
                    Binding::Value(x) => show(x),
                    Binding::Name(n) => format!("ref {n}"),
                },
            ));
        }
    }
    v.sort();
    v
}

/// Assert the constexpr ops of `a` and `b` are identical (types, names, parameter bytes)
/// and the same weights stay uncompressed.
fn assert_same_constexprs(ct: &Path, ak: &Path, what: &str) -> usize {
    let (a, b) = (ops_of(ct), ops_of(ak));
    let cx = |ops: &[Operation]| {
        let mut v: Vec<(String, String, Vec<(String, String)>)> = ops
            .iter()
            .filter(|o| o.op_type.starts_with("constexpr_"))
            .map(|o| (o.display_name().to_string(), o.op_type.clone(), params(o)))
            .collect();
        v.sort();
        v
    };
    let consts = |ops: &[Operation]| {
        let mut v: Vec<String> = ops
            .iter()
            .filter(|o| {
                o.op_type == "const"
                    && o.name()
                        .is_some_and(|n| n.starts_with("w_") || n.contains("weight"))
            })
            .map(|o| o.display_name().to_string())
            .collect();
        v.sort();
        v
    };
    let (ca, cb) = (cx(&a), cx(&b));
    let names = |v: &[(String, String, Vec<(String, String)>)]| {
        v.iter().map(|x| x.0.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&ca), names(&cb), "{what}: compressed weights differ");
    for (x, y) in ca.iter().zip(&cb) {
        assert_eq!(x, y, "{what}: op {} differs", x.0);
    }
    assert_eq!(
        consts(&a),
        consts(&b),
        "{what}: uncompressed weights differ"
    );
    ca.len()
}

struct Case {
    src: PathBuf,
    stages: Json,
    label: String,
}

fn run_bit_exact(py: &Python, cases: &[Case]) {
    let tmp = tempfile::tempdir().unwrap();
    let jobs: Vec<Json> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"src": c.src, "out": tmp.path().join(format!("ct{i}.mlpackage")), "stages": c.stages})
        })
        .collect();
    let res = oracle_jobs(py, "compress", &json!(jobs), tmp.path());
    for (i, c) in cases.iter().enumerate() {
        let r = &res["results"][i];
        assert_eq!(
            r["ok"],
            json!(true),
            "coremltools failed on {}: {r}",
            c.label
        );
        let ak = tmp.path().join(format!("ak{i}.mlpackage"));
        ours(&c.src, &c.stages, &ak);
        let n = assert_same_constexprs(Path::new(r["out"].as_str().unwrap()), &ak, &c.label);
        assert!(n > 0, "{}: nothing was compressed", c.label);
        eprintln!("{}: {n} constexpr ops identical", c.label);
    }
}

fn lin(global: Json) -> Json {
    json!([{"kind": "linear", "global": global}])
}

#[test]
fn linear_quantization_is_bit_exact_with_coremltools() {
    let Some(py) = python() else { return };
    let src = sources(&py);
    let s18 = src.join("src_fp16_ios18.mlpackage");
    let s16 = src.join("src_fp16_ios16.mlpackage");
    let s32 = src.join("src_fp32_ios18.mlpackage");
    let case = |src: &PathBuf, stages: Json, label: &str| Case {
        src: src.clone(),
        stages,
        label: label.into(),
    };
    let cases = vec![
        case(
            &s18,
            lin(json!({})),
            "fp16 iOS18 int8 symmetric per-channel",
        ),
        case(
            &s18,
            lin(json!({"dtype": "uint8", "mode": "linear", "granularity": "per_tensor"})),
            "fp16 iOS18 uint8 linear per-tensor",
        ),
        case(
            &s18,
            lin(json!({"dtype": "uint8", "mode": "linear_symmetric"})),
            "fp16 iOS18 uint8 symmetric per-channel",
        ),
        case(
            &s18,
            lin(
                json!({"dtype": "int8", "mode": "linear", "granularity": "per_block", "block_size": 8}),
            ),
            "fp16 iOS18 int8 linear per-block 8",
        ),
        case(
            &s18,
            lin(json!({"dtype": "int4", "granularity": "per_block", "block_size": 32})),
            "fp16 iOS18 int4 symmetric per-block 32",
        ),
        case(
            &s18,
            lin(
                json!({"dtype": "uint4", "mode": "linear", "granularity": "per_block", "block_size": 16}),
            ),
            "fp16 iOS18 uint4 linear per-block 16",
        ),
        case(
            &s18,
            lin(json!({"dtype": "int4", "granularity": "per_tensor", "weight_threshold": 5000})),
            "fp16 iOS18 int4 per-tensor threshold 5000",
        ),
        case(
            &s18,
            json!([{"kind": "linear", "global": null, "op_type": {"conv": {"dtype": "int4", "granularity": "per_block", "block_size": 4}, "conv_transpose": {"dtype": "uint8", "mode": "linear"}}}]),
            "fp16 iOS18 by op type (conv, conv_transpose)",
        ),
        case(
            &s18,
            json!([{"kind": "linear", "global": {}, "op_name": {"w_lin": {"granularity": "per_block", "block_size": [8, 0]}, "w_conv": null, "y_mmt": {"mode": "linear"}}}]),
            "fp16 iOS18 by op name (per-axis block sizes, skip, consumer name)",
        ),
        case(
            &s16,
            lin(json!({})),
            "fp16 iOS16 int8 symmetric per-channel",
        ),
        case(
            &s16,
            lin(json!({"dtype": "uint8", "mode": "linear", "granularity": "per_tensor"})),
            "fp16 iOS16 uint8 linear per-tensor",
        ),
        case(
            &s16,
            lin(json!({"dtype": "int8", "mode": "linear"})),
            "fp16 iOS16 int8 linear per-channel",
        ),
        case(
            &s32,
            lin(json!({})),
            "fp32 iOS18 int8 symmetric per-channel",
        ),
        case(
            &s32,
            lin(
                json!({"dtype": "uint4", "mode": "linear", "granularity": "per_block", "block_size": 32}),
            ),
            "fp32 iOS18 uint4 linear per-block 32",
        ),
        case(
            &fixture("mlp_big_fp16_ios18"),
            lin(json!({"dtype": "int4", "granularity": "per_block", "block_size": 32})),
            "mlp_big iOS18 int4 per-block 32",
        ),
        case(
            &fixture("mlp_big_fp16_ios16"),
            lin(json!({})),
            "mlp_big iOS16 int8 per-channel",
        ),
    ];
    run_bit_exact(&py, &cases);
}

#[test]
fn linear_quantization_equals_the_committed_fixtures() {
    // The fixtures were written by coremltools at fixture time; no Python needed.
    let tmp = tempfile::tempdir().unwrap();
    for (src, fix, stages) in [
        (
            "mlp_big_fp16_ios16",
            "mlp_int8_per_channel_ios16",
            lin(json!({})),
        ),
        (
            "mlp_big_fp16_ios18",
            "mlp_int8_per_channel_ios18",
            lin(json!({})),
        ),
        (
            "mlp_big_fp16_ios18",
            "mlp_int4_per_block_ios18",
            lin(json!({"dtype": "int4", "granularity": "per_block", "block_size": 32})),
        ),
        (
            "mlp_big_fp16_ios16",
            "mlp_pruned50_ios16",
            json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}]),
        ),
        (
            "mlp_big_fp16_ios18",
            "mlp_pruned50_ios18",
            json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}]),
        ),
    ] {
        let out = tmp.path().join(format!("{fix}.mlpackage"));
        ours(&fixture(src), &stages, &out);
        let n = assert_same_constexprs(&fixture(fix), &out, fix);
        assert_eq!(n, 4, "{fix}");
    }
}

#[test]
fn pruning_is_bit_exact_with_coremltools() {
    let Some(py) = python() else { return };
    let src = sources(&py);
    let s18 = src.join("src_fp16_ios18.mlpackage");
    let s16 = src.join("src_fp16_ios16.mlpackage");
    let s32 = src.join("src_fp32_ios18.mlpackage");
    let pr = |g: Json| json!([{"kind": "prune", "global": g}]);
    let cases = vec![
        Case {
            src: s18.clone(),
            stages: pr(json!({"target_sparsity": 0.5})),
            label: "fp16 iOS18 magnitude 50%".into(),
        },
        Case {
            src: s16.clone(),
            stages: pr(json!({"target_sparsity": 0.75})),
            label: "fp16 iOS16 magnitude 75%".into(),
        },
        Case {
            src: s32.clone(),
            stages: pr(json!({"target_sparsity": 0.3})),
            label: "fp32 iOS18 magnitude 30%".into(),
        },
        Case {
            src: s18.clone(),
            stages: json!([{"kind": "prune", "global": {"n_m_ratio": [2, 4]}, "op_name": {"w_conv": {"n_m_ratio": [1, 4], "dim": 0}, "w_mm": {"n_m_ratio": [3, 8]}}}]),
            label: "fp16 iOS18 n:m (global; conv and a matmul weight by name)".into(),
        },
        Case {
            src: s18.clone(),
            stages: json!([{"kind": "prune", "global": {"target_sparsity": 0.5, "block_size": 2}, "op_name": {"w_conv": {"target_sparsity": 0.4, "block_size": 4, "dim": 1}}}]),
            label: "fp16 iOS18 block-structured".into(),
        },
        Case {
            src: s18.clone(),
            stages: pr(json!({"threshold": 0.03, "minimum_sparsity_percentile": 0.3})),
            label: "fp16 iOS18 threshold 0.03".into(),
        },
    ];
    run_bit_exact(&py, &cases);
}

/// Weights on which the magnitude threshold (`np.percentile(|w|, 100·target)`) falls on a
/// tie (scripts/compress_oracle.py `build_ties`). Issue 11's case: a 96×96 fp16 weight whose
/// two magnitudes at the median are adjacent fp16 values; their midpoint rounds (in fp16,
/// ties to even) up to the larger one, so coremltools prunes both and keeps 4,607 weights,
/// not 4,608.
#[test]
fn pruning_ties_are_bit_exact_with_coremltools() {
    let Some(py) = python() else { return };
    let src = sources(&py);
    let mut cases = Vec::new();
    for model in ["ties_fp16_ios18", "ties_fp32_ios18"] {
        for target in [0.5, 0.3, 0.75, 0.55, 0.05] {
            cases.push(Case {
                src: src.join(format!("{model}.mlpackage")),
                stages: json!([{"kind": "prune", "global": {"target_sparsity": target}}]),
                label: format!("{model} magnitude {target}"),
            });
        }
    }
    run_bit_exact(&py, &cases);
    // The counts of the issue, from our own output.
    let tmp = tempfile::tempdir().unwrap();
    for model in ["ties_fp16_ios18", "ties_fp32_ios18"] {
        let out = tmp.path().join(format!("{model}.mlpackage"));
        let stages = json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}]);
        let report = ours(&src.join(format!("{model}.mlpackage")), &stages, &out);
        let kept = |name: &str| {
            let w = report.weights.iter().find(|w| w.name == name).unwrap();
            ((1.0 - w.sparsity.unwrap()) * 9216.0).round() as usize
        };
        assert_eq!(kept("w_tie_up"), 4607, "{model}");
        assert_eq!(kept("w_tie_down"), 4608, "{model}");
    }
}

// ------------------------------------------------------------------------------------------
// Palettization: error ≤ coremltools'
// ------------------------------------------------------------------------------------------

struct ErrCase {
    src: PathBuf,
    stages: Json,
    label: String,
    /// A package coremltools already wrote (a fixture), instead of running it now.
    ct: Option<PathBuf>,
}

fn sklearn_available(py: &Python) -> bool {
    py.has_module("sklearn")
}

fn run_error_cases(py: &Python, cases: &[ErrCase]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut idx = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        if c.ct.is_none() {
            idx.push(i);
            jobs.push(json!({"src": c.src, "out": tmp.path().join(format!("ct{i}.mlpackage")), "stages": c.stages}));
        }
    }
    let res = if jobs.is_empty() {
        json!({"results": []})
    } else {
        oracle_jobs(py, "compress", &json!(jobs), tmp.path())
    };
    let mut err_jobs = Vec::new();
    let mut pairs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let ct = match &c.ct {
            Some(p) => p.clone(),
            None => {
                let k = idx.iter().position(|&x| x == i).unwrap();
                let r = &res["results"][k];
                assert_eq!(
                    r["ok"],
                    json!(true),
                    "coremltools failed on {}: {r}",
                    c.label
                );
                PathBuf::from(r["out"].as_str().unwrap())
            }
        };
        let ak = tmp.path().join(format!("ak{i}.mlpackage"));
        let report = ours(&c.src, &c.stages, &ak);
        assert!(
            !report.weights.is_empty(),
            "{}: nothing compressed",
            c.label
        );
        err_jobs.push(json!({"src": c.src, "pkgs": [ct, ak]}));
        pairs.push(c.label.clone());
    }
    let res = oracle_jobs(py, "error", &json!(err_jobs), tmp.path());
    let results = res["results"].as_array().unwrap();
    for (k, label) in pairs.iter().enumerate() {
        let (ct, ak) = (&results[2 * k]["weights"], &results[2 * k + 1]["weights"]);
        let mut compared = 0;
        for (name, e) in ct.as_object().unwrap() {
            let (c_sse, a_sse) = (
                e["sse"].as_f64().unwrap(),
                ak[name]["sse"].as_f64().unwrap(),
            );
            if c_sse == 0.0 && a_sse == 0.0 {
                continue;
            }
            compared += 1;
            let sum_sq = e["sum_sq"].as_f64().unwrap();
            let snr = |s: f64| 10.0 * (sum_sq / s).log10();
            eprintln!(
                "{label}: {name}: SNR coremltools {:.2} dB, anekit {:.2} dB",
                snr(c_sse),
                snr(a_sse)
            );
            // ≤, up to float summation noise.
            assert!(
                a_sse <= c_sse * (1.0 + 1e-9),
                "{label}: {name}: anekit error {a_sse} > coremltools {c_sse}"
            );
        }
        assert!(compared > 0, "{label}: no weight compared");
    }
}

#[test]
fn palettization_error_is_at_most_coremltools() {
    let Some(py) = python() else { return };
    let src = sources(&py);
    let s18 = src.join("src_fp16_ios18.mlpackage");
    let s32 = src.join("src_fp32_ios18.mlpackage");
    let pal = |g: Json| json!([{"kind": "palettize", "global": g}]);
    let mut cases = vec![
        // coremltools' output is committed in the fixtures (kmeans1d and scikit-learn paths).
        ErrCase {
            src: fixture("mlp_big_fp16_ios16"),
            stages: pal(json!({"mode": "kmeans", "nbits": 4})),
            label: "mlp_big iOS16 kmeans 4-bit per-tensor".into(),
            ct: Some(fixture("mlp_palettized4_ios16")),
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: pal(
                json!({"mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 16}),
            ),
            label: "mlp_big iOS18 kmeans 4-bit grouped 16".into(),
            ct: Some(fixture("mlp_palettized4_grouped_ios18")),
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}, {"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4}}]),
            label: "mlp_big iOS18 prune 50% + kmeans 4-bit".into(),
            ct: Some(fixture("mlp_pruned_palettized_ios18")),
        },
        // Run now: kmeans1d paths (fp16, ≥ 10,000 elements per group) and uniform.
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: pal(
                json!({"mode": "kmeans", "nbits": 2, "granularity": "per_grouped_channel", "group_size": 64}),
            ),
            label: "mlp_big iOS18 kmeans 2-bit grouped 64".into(),
            ct: None,
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: pal(json!({"mode": "kmeans", "nbits": 8})),
            label: "mlp_big iOS18 kmeans 8-bit".into(),
            ct: None,
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: pal(json!({"mode": "kmeans", "nbits": 3})),
            label: "mlp_big iOS18 kmeans 3-bit".into(),
            ct: None,
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: pal(json!({"mode": "kmeans", "nbits": 6, "enable_per_channel_scale": true})),
            label: "mlp_big iOS18 kmeans 6-bit per-channel scale".into(),
            ct: None,
        },
        ErrCase {
            src: fixture("mlp_big_fp16_ios18"),
            stages: json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4}}, {"kind": "linear", "global": {"granularity": "per_tensor"}}]),
            label: "mlp_big iOS18 kmeans 4-bit + int8 LUT".into(),
            ct: None,
        },
        ErrCase {
            src: s18.clone(),
            stages: pal(json!({"mode": "uniform", "nbits": 4})),
            label: "fp16 iOS18 uniform 4-bit".into(),
            ct: None,
        },
        ErrCase {
            src: s18.clone(),
            stages: pal(
                json!({"mode": "uniform", "nbits": 6, "granularity": "per_grouped_channel", "group_size": 8}),
            ),
            label: "fp16 iOS18 uniform 6-bit grouped 8".into(),
            ct: None,
        },
    ];
    if sklearn_available(&py) {
        // Groups under 10,000 elements and fp32 weights: coremltools uses scikit-learn.
        cases.extend([
            ErrCase {
                src: s18.clone(),
                stages: pal(json!({"mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 8})),
                label: "fp16 iOS18 kmeans 4-bit grouped 8 (sklearn)".into(),
                ct: None,
            },
            ErrCase {
                src: s32.clone(),
                stages: pal(json!({"mode": "kmeans", "nbits": 3})),
                label: "fp32 iOS18 kmeans 3-bit (sklearn)".into(),
                ct: None,
            },
            ErrCase {
                src: s18.clone(),
                stages: pal(json!({"mode": "kmeans", "nbits": 4, "cluster_dim": 2})),
                label: "fp16 iOS18 vector kmeans 4-bit dim 2 (sklearn)".into(),
                ct: None,
            },
        ]);
    } else {
        eprintln!("scikit-learn not installed: scikit-learn k-means cases skipped");
    }
    run_error_cases(&py, &cases);
}

#[test]
fn conflicting_consumers_are_an_error_as_in_coremltools() {
    // w_shared feeds a linear (no setting) and a matmul (a setting): coremltools raises
    // "compression config conflict detected"; so do we.
    let Some(py) = python() else { return };
    let src = sources(&py).join("src_fp16_ios18.mlpackage");
    let stages = json!([{"kind": "linear", "global": null, "op_type": {"matmul": {}}}]);
    let tmp = tempfile::tempdir().unwrap();
    let jobs = json!([{"src": src, "out": tmp.path().join("ct.mlpackage"), "stages": stages}]);
    let r = oracle_jobs(&py, "compress", &jobs, tmp.path());
    assert!(
        r["results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("conflict"),
        "{r}"
    );
    let mut m = Model::open(&src).unwrap();
    let e = anekit_compress::compress_model(&mut m, &config_of(&stages), &NoProgress)
        .expect_err("conflict");
    assert!(e.to_string().contains("w_shared"), "{e}");
}

#[test]
fn ios16_refuses_what_only_ios18_can_express() {
    let src = fixture("mlp_big_fp16_ios16");
    for stages in [
        lin(json!({"dtype": "int4"})),
        lin(json!({"granularity": "per_block", "block_size": 32})),
        json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4, "granularity": "per_grouped_channel", "group_size": 16}}]),
        json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 3}}]),
        json!([{"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4, "cluster_dim": 2}}]),
        json!([{"kind": "prune", "global": {"target_sparsity": 0.5}}, {"kind": "palettize", "global": {"mode": "kmeans", "nbits": 4}}]),
    ] {
        let mut m = Model::open(&src).unwrap();
        let e = anekit_compress::compress_model(&mut m, &config_of(&stages), &NoProgress)
            .expect_err("iOS16 must refuse");
        let msg = e.to_string();
        assert!(msg.contains("iOS18"), "{msg}");
    }
}
