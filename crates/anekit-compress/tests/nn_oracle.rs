//! NeuralNetwork weight compression against coremltools 9.0's
//! `quantization_utils.quantize_weights` (scripts/nn_oracle.py) on the NeuralNetwork
//! fixtures: fp16, linear (8, 4, 2 bits), symmetric 8-bit and linear-LUT (1, 3, 8 bits)
//! results are the same protobuf, field for field; k-means LUT results (coremltools uses
//! scikit-learn's seeded heuristic) have no larger squared error on any weight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anekit_compress::neuralnetwork::{NnMode, quantize_spec};
use anekit_format::mlmodel::read_model;
use anekit_format::proto;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("ANEKIT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("ANEKIT_REQUIRE_INTEROP").as_deref() != Ok("1"),
        "ANEKIT_REQUIRE_INTEROP=1 but {} does not exist: run scripts/setup-python.sh",
        p.display()
    );
    eprintln!("skipping: no Python with coremltools ({})", p.display());
    None
}

/// coremltools' quantize_weights of every (source, nbits, mode), in one Python process;
/// returns the quantized specifications in the same order.
fn coremltools(py: &Path, dir: &Path, jobs: &[(PathBuf, u32, &str)]) -> Vec<proto::Model> {
    let list: Vec<serde_json::Value> = jobs
        .iter()
        .enumerate()
        .map(|(i, (src, nbits, mode))| {
            serde_json::json!({"src": src, "dst": dir.join(format!("{i}.mlmodel")), "nbits": nbits, "mode": mode})
        })
        .collect();
    let file = dir.join("jobs.json");
    std::fs::write(&file, serde_json::to_string(&list).unwrap()).unwrap();
    let out = Command::new(py)
        .arg(repo().join("scripts/nn_oracle.py"))
        .args(["quantize-many", file.to_str().unwrap()])
        .output()
        .expect("running scripts/nn_oracle.py");
    assert!(
        out.status.success(),
        "nn_oracle failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (0..jobs.len())
        .map(|i| read_model(dir.join(format!("{i}.mlmodel"))).unwrap())
        .collect()
}

const FIXTURES: &[&str] = &[
    "nn_convnet_fp32",
    "nn_mobilenetv2_fp32",
    "nn_recurrent_fp32",
    "nn_transformer_fp32",
    "nn_resample_fp32",
    "nn_pipeline_fp32",
    "nn_classifier_fp32",
    "nn_rank5_classic_spec1",
    "nn_gru_spec1",
];

#[test]
fn bit_exact_with_quantize_weights() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let modes = [
        ("fp16", 16),
        ("linear", 8),
        ("linear", 4),
        ("linear", 2),
        ("linear_symmetric", 8),
        ("linear_lut", 1),
        ("linear_lut", 3),
        ("linear_lut", 8),
    ];
    let jobs: Vec<(PathBuf, u32, &str)> = FIXTURES
        .iter()
        .flat_map(|name| {
            modes.iter().map(move |(mode, nbits)| {
                (
                    repo().join(format!("fixtures/models/{name}.mlmodel")),
                    *nbits,
                    *mode,
                )
            })
        })
        .collect();
    let all = coremltools(&py, tmp.path(), &jobs);
    let mut checked = 0;
    for ((src, nbits, mode), theirs) in jobs.iter().zip(all) {
        let name = src.file_stem().unwrap().to_string_lossy();
        let (nbits, mode) = (*nbits, *mode);
        {
            let mut ours = read_model(src).unwrap();
            let report = quantize_spec(&mut ours, NnMode::parse(mode).unwrap(), nbits).unwrap();
            assert!(!report.weights.is_empty(), "{name} {mode} {nbits}");
            assert!(
                report.bytes_after < report.bytes_before,
                "{name} {mode} {nbits}"
            );
            if ours != theirs {
                // Name the first differing weight.
                let a = weights(&ours);
                let b = weights(&theirs);
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    if x != y {
                        let raw: Vec<(usize, u8, u8)> = x
                            .raw_value
                            .iter()
                            .zip(&y.raw_value)
                            .enumerate()
                            .filter(|(_, (p, q))| p != q)
                            .map(|(k, (p, q))| (k, *p, *q))
                            .take(5)
                            .collect();
                        panic!(
                            "{name} {mode} {nbits}: weight #{i} differs: raw bytes (index, ours, theirs) {raw:?}; quantization ours {:?} theirs {:?}",
                            x.quantization, y.quantization
                        );
                    }
                }
                panic!("{name} {mode} {nbits}: the models differ outside the weights");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, FIXTURES.len() * 8);
}

#[test]
fn kmeans_tables_are_no_worse_than_coremltools() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let jobs: Vec<(PathBuf, u32, &str)> = [
        "nn_convnet_fp32",
        "nn_mobilenetv2_fp32",
        "nn_transformer_fp32",
    ]
    .iter()
    .flat_map(|name| {
        [2u32, 4].map(|b| {
            (
                repo().join(format!("fixtures/models/{name}.mlmodel")),
                b,
                "kmeans",
            )
        })
    })
    .collect();
    let all = coremltools(&py, tmp.path(), &jobs);
    for ((src, nbits, _), theirs) in jobs.iter().zip(all) {
        let name = src.file_stem().unwrap().to_string_lossy();
        let nbits = *nbits;
        {
            let mut ours = read_model(src).unwrap();
            quantize_spec(&mut ours, NnMode::Kmeans, nbits).unwrap();
            let orig = weights(&read_model(src).unwrap());
            let (a, b) = (weights(&ours), weights(&theirs));
            assert_eq!(a.len(), b.len());
            for (i, ((o, x), y)) in orig.iter().zip(&a).zip(&b).enumerate() {
                let n = o.float_value.len();
                let sse = |w: &proto::WeightParams| {
                    let d = anekit_mil::frontend::neuralnetwork::weights::decode(
                        w,
                        &[n],
                        anekit_mil::frontend::neuralnetwork::weights::ChannelAxis::First,
                    )
                    .unwrap();
                    d.iter()
                        .zip(&o.float_value)
                        .map(|(p, q)| f64::from(p - q).powi(2))
                        .sum::<f64>()
                };
                let (ea, eb) = (sse(x), sse(y));
                assert!(
                    ea <= eb * (1.0 + 1e-4) + 1e-12,
                    "{name} {nbits}-bit weight #{i}: ours {ea:.3e} > coremltools {eb:.3e}"
                );
            }
        }
    }
}

/// Every WeightParams of a model in a fixed order (prost's Debug walks fields in order, so
/// collecting through a visitor over the layer types would repeat the crate's own code;
/// instead compare the layers' weight messages as found in the encoded tree).
fn weights(m: &proto::Model) -> Vec<proto::WeightParams> {
    use proto::model::Type as MT;
    let mut out = Vec::new();
    let mut stack = vec![m];
    while let Some(m) = stack.pop() {
        let layers = match &m.r#type {
            Some(MT::NeuralNetwork(n)) => &n.layers,
            Some(MT::NeuralNetworkClassifier(n)) => &n.layers,
            Some(MT::NeuralNetworkRegressor(n)) => &n.layers,
            Some(MT::Pipeline(p)) => {
                stack.extend(p.models.iter().rev());
                continue;
            }
            _ => continue,
        };
        for l in layers {
            // Re-decode the layer's encoded bytes as a bag of WeightParams candidates is not
            // possible generically; the layers the fixtures use are listed here.
            use proto::neural_network_layer::Layer as L;
            let ws: Vec<&Option<proto::WeightParams>> = match &l.layer {
                Some(L::Convolution(p)) => vec![&p.weights, &p.bias],
                Some(L::InnerProduct(p)) => vec![&p.weights, &p.bias],
                Some(L::BatchedMatmul(p)) => vec![&p.weights, &p.bias],
                Some(L::Batchnorm(p)) => vec![&p.gamma, &p.beta, &p.mean, &p.variance],
                Some(L::LoadConstantNd(p)) => vec![&p.data],
                Some(L::Scale(p)) => vec![&p.scale, &p.bias],
                Some(L::SimpleRecurrent(p)) => {
                    vec![&p.weight_matrix, &p.recursion_matrix, &p.bias_vector]
                }
                Some(L::Gru(p)) => vec![
                    &p.update_gate_weight_matrix,
                    &p.reset_gate_weight_matrix,
                    &p.output_gate_weight_matrix,
                    &p.update_gate_recursion_matrix,
                    &p.reset_gate_recursion_matrix,
                    &p.output_gate_recursion_matrix,
                    &p.update_gate_bias_vector,
                    &p.reset_gate_bias_vector,
                    &p.output_gate_bias_vector,
                ],
                _ => Vec::new(),
            };
            out.extend(ws.into_iter().flatten().cloned());
        }
    }
    out
}
