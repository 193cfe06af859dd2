//! Weight compression of NeuralNetwork models, written back as NeuralNetwork models: what
//! coremltools offers for them in `coremltools.models.neural_network.quantization_utils.
//! quantize_weights` — fp16, linear (1–8 bits; symmetric 8-bit), k-means and linear lookup
//! tables (1–8 bits) — with the same per-layer choices, shapes, channel axes, rounding and
//! bit packing, so that fp16, linear and linear-LUT results are bit-identical with
//! coremltools 9.0 (tested against it: `tests/nn_oracle.rs`).
//!
//! Where coremltools is not reproducible it is replaced: its k-means LUT runs scikit-learn's
//! `KMeans(random_state=0, n_init=1, tol=1e-2)` (a seeded heuristic); anekit solves the same
//! 1-D clustering exactly ([`crate::kmeans::cluster_1d`]), so its tables have an error no
//! larger than coremltools'. Not reproduced: the `_optimize_nn` fusion coremltools runs
//! before quantizing below 16 bits (batchnorm / bias / scale layers folded into a preceding
//! convolution or innerProduct); models whose converter already folded them (every model
//! coremltools' converter writes) are unaffected. See docs/neuralnetwork.md.

use anekit_format::proto::{
    self, LinearQuantizationParams, LookUpTableQuantizationParams, QuantizationParams,
    WeightParams, model::Type as MT, neural_network_layer::Layer as L,
    quantization_params::QuantizationType,
};
use anekit_mil::frontend::neuralnetwork::weights::pack_msb_first;
use half::f16;

use crate::error::{CompressError, Result};
use crate::kmeans;

/// A NeuralNetwork quantization mode (coremltools' `quantization_mode` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NnMode {
    /// fp32 → fp16 (`nbits=16`).
    Fp16,
    /// Per-channel linear quantization, `w = q·scale + bias` (`linear`).
    Linear,
    /// 8-bit symmetric linear quantization (`linear_symmetric`).
    LinearSymmetric,
    /// Lookup table from 1-D k-means (`kmeans`).
    Kmeans,
    /// Lookup table of evenly spaced values between the weight's min and max (`linear_lut`).
    LinearLut,
}

impl NnMode {
    /// Parse coremltools' spelling.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fp16" => Self::Fp16,
            "linear" => Self::Linear,
            "linear_symmetric" => Self::LinearSymmetric,
            "kmeans" | "kmeans_lut" => Self::Kmeans,
            "linear_lut" => Self::LinearLut,
            other => {
                return Err(CompressError::Config(format!(
                    "NeuralNetwork quantization mode {other:?}: expected linear, linear_symmetric, kmeans, linear_lut or fp16"
                )));
            }
        })
    }
}

/// One compressed weight.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NnWeight {
    /// The layer.
    pub layer: String,
    /// The `WeightParams` field (`weights`, `bias`, `gamma`, ...).
    pub field: String,
    /// Elements.
    pub elements: usize,
    /// Stored bytes before.
    pub bytes_before: usize,
    /// Stored bytes after.
    pub bytes_after: usize,
}

/// What [`quantize_spec`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NnReport {
    /// Every weight compressed.
    pub weights: Vec<NnWeight>,
    /// Sum of stored weight bytes before.
    pub bytes_before: usize,
    /// Sum after.
    pub bytes_after: usize,
}

/// Compress every fp32 weight of a NeuralNetwork model (classifiers, regressors and
/// pipelines of them included) as `quantize_weights(model, nbits, mode)` does. `nbits` is
/// 16 for [`NnMode::Fp16`], 1–8 otherwise (8 for `LinearSymmetric`). The specification
/// version is raised to 2 (fp16) or 3 (quantized) where lower, as coremltools does.
pub fn quantize_spec(spec: &mut proto::Model, mode: NnMode, nbits: u32) -> Result<NnReport> {
    match mode {
        NnMode::Fp16 if nbits != 16 => {
            return Err(CompressError::Config("fp16 takes nbits 16".into()));
        }
        NnMode::LinearSymmetric if nbits != 8 => {
            return Err(CompressError::Config(
                "symmetric quantization is only applicable for 8 bit linear (coremltools)".into(),
            ));
        }
        NnMode::Fp16 => {}
        _ if !(1..=8).contains(&nbits) => {
            return Err(CompressError::Config(format!(
                "NeuralNetwork quantization takes 1 to 8 bits (or fp16), got {nbits}"
            )));
        }
        _ => {}
    }
    let mut report = NnReport::default();
    model(spec, mode, nbits, &mut report, 0)?;
    report.bytes_before = report.weights.iter().map(|w| w.bytes_before).sum();
    report.bytes_after = report.weights.iter().map(|w| w.bytes_after).sum();
    Ok(report)
}

fn model(
    spec: &mut proto::Model,
    mode: NnMode,
    nbits: u32,
    r: &mut NnReport,
    depth: usize,
) -> Result<()> {
    if depth > 16 {
        return Err(CompressError::Unsupported(
            "pipelines nested more than 16 deep".into(),
        ));
    }
    let min_version = if mode == NnMode::Fp16 { 2 } else { 3 };
    match spec.r#type.as_mut() {
        Some(MT::NeuralNetwork(nn)) => {
            spec.specification_version = spec.specification_version.max(min_version);
            network(&mut nn.layers, mode, nbits, r, depth)
        }
        Some(MT::NeuralNetworkClassifier(nn)) => {
            spec.specification_version = spec.specification_version.max(min_version);
            network(&mut nn.layers, mode, nbits, r, depth)
        }
        Some(MT::NeuralNetworkRegressor(nn)) => {
            spec.specification_version = spec.specification_version.max(min_version);
            network(&mut nn.layers, mode, nbits, r, depth)
        }
        Some(MT::Pipeline(p)) => p
            .models
            .iter_mut()
            .try_for_each(|m| model(m, mode, nbits, r, depth + 1)),
        Some(MT::PipelineClassifier(p)) => p
            .pipeline
            .iter_mut()
            .flat_map(|p| p.models.iter_mut())
            .try_for_each(|m| model(m, mode, nbits, r, depth + 1)),
        Some(MT::PipelineRegressor(p)) => p
            .pipeline
            .iter_mut()
            .flat_map(|p| p.models.iter_mut())
            .try_for_each(|m| model(m, mode, nbits, r, depth + 1)),
        Some(other) => Err(CompressError::Unsupported(format!(
            "a {} model has no NeuralNetwork weights",
            other.type_name()
        ))),
        None => Err(CompressError::Unsupported("the model has no type".into())),
    }
}

fn u(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The layers and weights coremltools' `_quantize_nn_spec` quantizes, with the shapes and
/// channel axes it uses.
fn network(
    layers: &mut [proto::NeuralNetworkLayer],
    mode: NnMode,
    nbits: u32,
    r: &mut NnReport,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        return Err(CompressError::Unsupported(
            "loop/branch networks nested more than 64 deep".into(),
        ));
    }
    for layer in layers {
        let name = layer.name.clone();
        let mut q = |w: &mut Option<WeightParams>,
                     field: &str,
                     shape: &[usize],
                     axis: usize|
         -> Result<()> {
            if let Some(w) = w.as_mut()
                && let Some((elements, before, after)) = quantize_field(w, mode, nbits, shape, axis)
                    .map_err(|message| CompressError::Weight {
                        name: format!("{name}.{field}"),
                        message,
                    })?
            {
                r.weights.push(NnWeight {
                    layer: name.clone(),
                    field: field.to_string(),
                    elements,
                    bytes_before: before,
                    bytes_after: after,
                });
            }
            Ok(())
        };
        match layer.layer.as_mut() {
            Some(L::Convolution(p)) => {
                let (co, kc) = (u(p.output_channels), u(p.kernel_channels));
                let (kh, kw) = (
                    p.kernel_size.first().copied().map_or(0, u),
                    p.kernel_size.get(1).copied().map_or(0, u),
                );
                if p.is_deconvolution {
                    let g = u(p.n_groups.max(1));
                    q(&mut p.weights, "weights", &[kc, co / g, kh, kw], 1)?;
                } else {
                    q(&mut p.weights, "weights", &[co, kc, kh, kw], 0)?;
                }
                if p.has_bias {
                    q(&mut p.bias, "bias", &[co], 0)?;
                }
            }
            Some(L::Batchnorm(p)) => {
                let c = u(p.channels);
                q(&mut p.gamma, "gamma", &[c], 0)?;
                q(&mut p.beta, "beta", &[c], 0)?;
                q(&mut p.mean, "mean", &[c], 0)?;
                q(&mut p.variance, "variance", &[c], 0)?;
            }
            Some(L::InnerProduct(p)) => {
                let (co, ci) = (u(p.output_channels), u(p.input_channels));
                q(&mut p.weights, "weights", &[co, ci], 0)?;
                if p.has_bias {
                    q(&mut p.bias, "bias", &[co], 0)?;
                }
            }
            Some(L::BatchedMatmul(p)) => {
                let (x1, x2) = (
                    u(p.weight_matrix_first_dimension),
                    u(p.weight_matrix_second_dimension),
                );
                q(&mut p.weights, "weights", &[x2, x1], 0)?;
                if p.has_bias {
                    q(&mut p.bias, "bias", &[x2], 0)?;
                }
            }
            Some(L::Embedding(p)) => {
                let (co, ci) = (u(p.output_channels), u(p.input_dim));
                q(&mut p.weights, "weights", &[co, ci], 0)?;
                if p.has_bias {
                    q(&mut p.bias, "bias", &[co], 0)?;
                }
            }
            Some(L::EmbeddingNd(p)) => {
                let (co, ci) = (u(p.embedding_size), u(p.vocab_size));
                q(&mut p.weights, "weights", &[co, ci], 0)?;
                if p.has_bias {
                    q(&mut p.bias, "bias", &[co], 0)?;
                }
            }
            Some(L::Scale(p)) => {
                let n: usize = p.shape_scale.iter().map(|&d| u(d)).product();
                q(&mut p.scale, "scale", &[n], 0)?;
                if p.has_bias {
                    let n: usize = p.shape_bias.iter().map(|&d| u(d)).product();
                    q(&mut p.bias, "bias", &[n], 0)?;
                }
            }
            Some(L::Bias(p)) => {
                let n: usize = p.shape.iter().map(|&d| u(d)).product();
                q(&mut p.bias, "bias", &[n], 0)?;
            }
            Some(L::LoadConstant(p)) => {
                let n: usize = p.shape.iter().map(|&d| u(d)).product();
                q(&mut p.data, "data", &[n], 0)?;
            }
            Some(L::LoadConstantNd(p)) => {
                let n: usize = p.shape.iter().map(|&d| u(d)).product();
                q(&mut p.data, "data", &[n], 0)?;
            }
            Some(L::SimpleRecurrent(p)) => {
                let (i, o) = (u(p.input_vector_size), u(p.output_vector_size));
                q(&mut p.weight_matrix, "weightMatrix", &[o, i], 0)?;
                q(&mut p.recursion_matrix, "recursionMatrix", &[o, o], 0)?;
                if p.has_bias_vector {
                    q(&mut p.bias_vector, "biasVector", &[o], 0)?;
                }
            }
            Some(L::Gru(p)) => {
                let (i, o) = (u(p.input_vector_size), u(p.output_vector_size));
                q(
                    &mut p.update_gate_weight_matrix,
                    "updateGateWeightMatrix",
                    &[o, i],
                    0,
                )?;
                q(
                    &mut p.reset_gate_weight_matrix,
                    "resetGateWeightMatrix",
                    &[o, i],
                    0,
                )?;
                q(
                    &mut p.output_gate_weight_matrix,
                    "outputGateWeightMatrix",
                    &[o, i],
                    0,
                )?;
                q(
                    &mut p.update_gate_recursion_matrix,
                    "updateGateRecursionMatrix",
                    &[o, o],
                    0,
                )?;
                q(
                    &mut p.reset_gate_recursion_matrix,
                    "resetGateRecursionMatrix",
                    &[o, o],
                    0,
                )?;
                q(
                    &mut p.output_gate_recursion_matrix,
                    "outputGateRecursionMatrix",
                    &[o, o],
                    0,
                )?;
                if p.has_bias_vectors {
                    q(
                        &mut p.update_gate_bias_vector,
                        "updateGateBiasVector",
                        &[o],
                        0,
                    )?;
                    q(
                        &mut p.reset_gate_bias_vector,
                        "resetGateBiasVector",
                        &[o],
                        0,
                    )?;
                    q(
                        &mut p.output_gate_bias_vector,
                        "outputGateBiasVector",
                        &[o],
                        0,
                    )?;
                }
            }
            Some(L::UniDirectionalLstm(p)) => {
                let (i, o) = (u(p.input_vector_size), u(p.output_vector_size));
                let peep = p.params.as_ref().is_some_and(|p| p.has_peephole_vectors);
                if let Some(w) = p.weight_params.as_mut() {
                    lstm(w, &mut q, i, o, peep)?;
                }
            }
            Some(L::BiDirectionalLstm(p)) => {
                let (i, o) = (u(p.input_vector_size), u(p.output_vector_size));
                let peep = p.params.as_ref().is_some_and(|p| p.has_peephole_vectors);
                for w in &mut p.weight_params {
                    lstm(w, &mut q, i, o, peep)?;
                }
            }
            Some(L::Branch(p)) => {
                for nn in [p.if_branch.as_mut(), p.else_branch.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    network(&mut nn.layers, mode, nbits, r, depth + 1)?;
                }
            }
            Some(L::Loop(p)) => {
                for nn in [p.condition_network.as_mut(), p.body_network.as_mut()]
                    .into_iter()
                    .flatten()
                {
                    network(&mut nn.layers, mode, nbits, r, depth + 1)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

type FieldFn<'a> = dyn FnMut(&mut Option<WeightParams>, &str, &[usize], usize) -> Result<()> + 'a;

fn lstm(
    w: &mut proto::LstmWeightParams,
    q: &mut FieldFn<'_>,
    i: usize,
    o: usize,
    peep: bool,
) -> Result<()> {
    q(
        &mut w.input_gate_weight_matrix,
        "inputGateWeightMatrix",
        &[o, i],
        0,
    )?;
    q(
        &mut w.forget_gate_weight_matrix,
        "forgetGateWeightMatrix",
        &[o, i],
        0,
    )?;
    q(
        &mut w.block_input_weight_matrix,
        "blockInputWeightMatrix",
        &[o, i],
        0,
    )?;
    q(
        &mut w.output_gate_weight_matrix,
        "outputGateWeightMatrix",
        &[o, i],
        0,
    )?;
    q(
        &mut w.input_gate_recursion_matrix,
        "inputGateRecursionMatrix",
        &[o, o],
        0,
    )?;
    q(
        &mut w.forget_gate_recursion_matrix,
        "forgetGateRecursionMatrix",
        &[o, o],
        0,
    )?;
    q(
        &mut w.block_input_recursion_matrix,
        "blockInputRecursionMatrix",
        &[o, o],
        0,
    )?;
    q(
        &mut w.output_gate_recursion_matrix,
        "outputGateRecursionMatrix",
        &[o, o],
        0,
    )?;
    q(
        &mut w.input_gate_bias_vector,
        "inputGateBiasVector",
        &[o],
        0,
    )?;
    q(
        &mut w.forget_gate_bias_vector,
        "forgetGateBiasVector",
        &[o],
        0,
    )?;
    q(
        &mut w.block_input_bias_vector,
        "blockInputBiasVector",
        &[o],
        0,
    )?;
    q(
        &mut w.output_gate_bias_vector,
        "outputGateBiasVector",
        &[o],
        0,
    )?;
    if peep {
        q(
            &mut w.input_gate_peephole_vector,
            "inputGatePeepholeVector",
            &[o],
            0,
        )?;
        q(
            &mut w.forget_gate_peephole_vector,
            "forgetGatePeepholeVector",
            &[o],
            0,
        )?;
        q(
            &mut w.output_gate_peephole_vector,
            "outputGatePeepholeVector",
            &[o],
            0,
        )?;
    }
    Ok(())
}

fn stored_bytes(w: &WeightParams) -> usize {
    w.float_value.len() * 4 + w.float16_value.len() + w.raw_value.len() + w.int8_raw_value.len()
}

/// coremltools' `_quantize_wp_field`: only fp32 (`floatValue`) weights are touched. Returns
/// (elements, bytes before, bytes after), or `None` when the weight was left as it is.
fn quantize_field(
    w: &mut WeightParams,
    mode: NnMode,
    nbits: u32,
    shape: &[usize],
    axis: usize,
) -> std::result::Result<Option<(usize, usize, usize)>, String> {
    if w.float_value.is_empty() {
        return Ok(None);
    }
    let before = stored_bytes(w);
    let n = w.float_value.len();
    if mode == NnMode::Fp16 {
        w.float16_value = w
            .float_value
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        w.float_value.clear();
        return Ok(Some((n, before, stored_bytes(w))));
    }
    let count: usize = shape.iter().product();
    if count != n {
        return Err(format!(
            "{n} values where the layer's shape {shape:?} needs {count}"
        ));
    }
    if axis == 1 && shape.len() != 4 {
        return Err("quantization on the second axis needs a rank-4 weight".into());
    }
    let linear = matches!(mode, NnMode::Linear | NnMode::LinearSymmetric);
    let channels = if linear { shape[axis] } else { 1 };
    if channels == 0 || !n.is_multiple_of(channels) {
        return Err("number of quantization channels does not divide evenly into weights".into());
    }
    let values = w.float_value.clone();
    let bits = nbits as usize;
    let (codes, qtype) = match mode {
        NnMode::Linear | NnMode::LinearSymmetric => {
            let (codes, scale, bias) =
                channelwise_linear(&values, shape, axis, bits, mode == NnMode::LinearSymmetric);
            (
                codes,
                QuantizationType::LinearQuantization(LinearQuantizationParams { scale, bias }),
            )
        }
        NnMode::LinearLut => {
            // The whole weight as one channel, then lut[i] = i·scale + bias.
            let (codes, scale, bias) = channelwise_linear(&values, &[1, n], 0, bits, false);
            let lut = (0..1u32 << bits)
                .map(|i| (f64::from(i) * f64::from(scale[0]) + f64::from(bias[0])) as f32)
                .collect();
            (
                codes,
                QuantizationType::LookupTableQuantization(LookUpTableQuantizationParams {
                    float_value: lut,
                }),
            )
        }
        NnMode::Kmeans => {
            let values: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
            let (codes, lut) = kmeans_lut(&values, bits);
            (
                codes,
                QuantizationType::LookupTableQuantization(LookUpTableQuantizationParams {
                    float_value: lut,
                }),
            )
        }
        NnMode::Fp16 => unreachable!("handled above"),
    };
    w.quantization = Some(QuantizationParams {
        number_of_bits: u64::from(nbits),
        quantization_type: Some(qtype),
    });
    w.raw_value = pack_msb_first(&codes, bits);
    w.float_value.clear();
    Ok(Some((n, before, stored_bytes(w))))
}

/// numpy's `round` (half to even) of a float32.
fn round_half_even(x: f32) -> f32 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

/// coremltools' `_quantize_channelwise_linear`, per channel along `axis` (0, or 1 for
/// rank-4 weights; a rank-1 weight is one channel). The protobuf's floats come into numpy as
/// float32 and every step stays float32 (numpy 2's promotion of Python scalars), so it is
/// computed in `f32` here. Returns (codes in element order, scales, biases).
fn channelwise_linear(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    nbits: usize,
    symmetric: bool,
) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    let n = w.len();
    // Element index → channel.
    let (channels, chan_of): (usize, Box<dyn Fn(usize) -> usize>) = match (shape.len(), axis) {
        (0 | 1, _) => (1, Box::new(|_| 0)),
        (_, 1) => {
            let (c1, inner) = (shape[1], shape[2..].iter().product::<usize>());
            (c1, Box::new(move |i| (i / inner.max(1)) % c1.max(1)))
        }
        _ => {
            let per = n / shape[0].max(1);
            (shape[0], Box::new(move |i| i / per.max(1)))
        }
    };
    let mut lo = vec![f32::INFINITY; channels];
    let mut hi = vec![f32::NEG_INFINITY; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = chan_of(i);
        lo[c] = lo[c].min(v);
        hi[c] = hi[c].max(v);
    }
    let levels = (1u32 << nbits) as f32;
    let (scale, bias): (Vec<f32>, Vec<f32>) = if symmetric {
        lo.iter()
            .zip(&hi)
            .map(|(a, b)| {
                let r = a.abs().max(b.abs());
                let s = r / (levels / 2.0 - 1.0);
                (s, -(levels / 2.0) * s)
            })
            .unzip()
    } else {
        lo.iter()
            .zip(&hi)
            .map(|(a, b)| ((b - a) / (levels - 1.0), *a))
            .unzip()
    };
    let eps = 1e-6f32;
    let codes = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = chan_of(i);
            let q = if symmetric {
                if scale[c].abs() > eps {
                    (v - bias[c]) / scale[c]
                } else {
                    0.0
                }
            } else {
                let inv = if scale[c].abs() > eps {
                    1.0 / scale[c]
                } else {
                    0.0
                };
                (v - lo[c]) * inv
            };
            // numpy: round half to even, then uint8() of the float.
            round_half_even(q) as u8
        })
        .collect();
    (codes, scale, bias)
}

/// A 2^nbits lookup table by exact 1-D k-means over the distinct values (weighted by their
/// counts); unused entries are 0, as in coremltools.
fn kmeans_lut(w: &[f64], nbits: usize) -> (Vec<u8>, Vec<f32>) {
    let mut sorted: Vec<f64> = w.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for v in sorted {
        if values.last() == Some(&v) {
            if let Some(c) = counts.last_mut() {
                *c += 1.0;
            }
        } else {
            values.push(v);
            counts.push(1.0);
        }
    }
    let k = (1usize << nbits).min(w.len());
    let cl = kmeans::cluster_1d(&values, &counts, k);
    let mut lut = vec![0f32; 1 << nbits];
    for (i, c) in cl.centroids.iter().enumerate() {
        lut[i] = *c as f32;
    }
    let codes = w
        .iter()
        .map(|v| {
            let i = values.binary_search_by(|x| x.total_cmp(v)).unwrap_or(0);
            cl.assignment.get(i).copied().unwrap_or(0) as u8
        })
        .collect();
    (codes, lut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_rounding() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(2.4999), 2.0);
        assert_eq!(round_half_even(254.5), 254.0);
    }

    #[test]
    fn linear_per_channel() {
        let w = [0.0f32, 1.0, 2.0, 3.0, -1.0, 1.0];
        let (q, s, b) = channelwise_linear(&w, &[2, 3], 0, 8, false);
        assert_eq!(s.len(), 2);
        assert_eq!(b, vec![0.0, -1.0]);
        // channel 0 = [0, 1, 2], channel 1 = [3, -1, 1]
        assert_eq!(q[0], 0);
        assert_eq!(q[2], 255);
        assert_eq!(q[3], 255);
        assert_eq!(q[4], 0);
    }
}
