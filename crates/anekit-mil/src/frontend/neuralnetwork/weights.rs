//! `WeightParams` decoding, as Core ML reads them (NeuralNetwork.proto, `WeightParams` and
//! `QuantizationParams`; the bit layout is coremltools'
//! `models/neural_network/quantization_utils.py`, `_convert_array_to_nbit_quantized_bytes`
//! and `_dequantize_wp`: see docs/neuralnetwork.md).
//!
//! - `floatValue`: fp32 values, row-major;
//! - `float16Value`: little-endian fp16;
//! - `rawValue` with `quantization`: `numberOfBits` (1–8) unsigned integers packed
//!   most-significant bit first, dequantized by `linearQuantization`
//!   (`w = q·scale[c] + bias[c]`, one scale/bias or one per output channel) or by
//!   `lookupTableQuantization` (`w = lut[q]`, 2^bits entries);
//! - `int8RawValue`: signed bytes with a single linear scale and no bias (`w = q·scale`).

use anekit_format::proto::{WeightParams, quantization_params::QuantizationType};
use half::f16;

/// Which axis of the weight holds the output channels that per-channel linear
/// quantization follows (coremltools quantizes deconvolution weights along axis 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelAxis {
    /// The first axis.
    First,
    /// The second axis (rank-4 deconvolution weights `[C_in, C_out/groups, kH, kW]`).
    Second,
}

/// Whether a `WeightParams` holds anything.
pub fn is_empty(w: &WeightParams) -> bool {
    w.float_value.is_empty()
        && w.float16_value.is_empty()
        && w.raw_value.is_empty()
        && w.int8_raw_value.is_empty()
}

/// How the values are stored, for reports (`fp32`, `fp16`, `linear 8-bit`, `lut 4-bit`,
/// `int8`, `empty`).
pub fn storage_kind(w: &WeightParams) -> String {
    if !w.float_value.is_empty() {
        return "fp32".into();
    }
    if !w.float16_value.is_empty() {
        return "fp16".into();
    }
    let bits = w.quantization.as_ref().map_or(0, |q| q.number_of_bits);
    if !w.int8_raw_value.is_empty() {
        return "int8".into();
    }
    if !w.raw_value.is_empty() {
        return match w
            .quantization
            .as_ref()
            .and_then(|q| q.quantization_type.as_ref())
        {
            Some(QuantizationType::LinearQuantization(_)) => format!("linear {bits}-bit"),
            Some(QuantizationType::LookupTableQuantization(_)) => format!("lut {bits}-bit"),
            None => "raw".into(),
        };
    }
    "empty".into()
}

/// Decode `w`, which must hold exactly `shape.iter().product()` values, to fp32.
pub fn decode(w: &WeightParams, shape: &[usize], axis: ChannelAxis) -> Result<Vec<f32>, String> {
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("element count overflows")?;
    let mut present = 0;
    present += usize::from(!w.float_value.is_empty());
    present += usize::from(!w.float16_value.is_empty());
    present += usize::from(!w.raw_value.is_empty());
    present += usize::from(!w.int8_raw_value.is_empty());
    if present > 1 {
        return Err(
            "more than one of floatValue, float16Value, rawValue, int8RawValue is set".into(),
        );
    }
    if !w.float_value.is_empty() {
        if w.float_value.len() != count {
            return Err(format!(
                "{} fp32 values where {count} (shape {shape:?}) are expected",
                w.float_value.len()
            ));
        }
        return Ok(w.float_value.clone());
    }
    if !w.float16_value.is_empty() {
        if w.float16_value.len() != count.checked_mul(2).ok_or("size overflows")? {
            return Err(format!(
                "{} bytes of fp16 values where {count} values (shape {shape:?}) are expected",
                w.float16_value.len()
            ));
        }
        return Ok(w
            .float16_value
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect());
    }
    if !w.int8_raw_value.is_empty() {
        if w.int8_raw_value.len() != count {
            return Err(format!(
                "{} int8 values where {count} (shape {shape:?}) are expected",
                w.int8_raw_value.len()
            ));
        }
        let scale = match w
            .quantization
            .as_ref()
            .and_then(|q| q.quantization_type.as_ref())
        {
            Some(QuantizationType::LinearQuantization(l))
                if l.scale.len() == 1 && l.bias.is_empty() =>
            {
                l.scale[0]
            }
            _ => {
                return Err(
                    "int8RawValue needs linear quantization with one scale and no bias".into(),
                );
            }
        };
        return Ok(w
            .int8_raw_value
            .iter()
            .map(|&b| f32::from(b as i8) * scale)
            .collect());
    }
    if w.raw_value.is_empty() {
        if count == 0 {
            return Ok(Vec::new());
        }
        return Err(format!(
            "no values where {count} (shape {shape:?}) are expected"
        ));
    }
    let q = w
        .quantization
        .as_ref()
        .ok_or("rawValue without quantization parameters")?;
    let bits = usize::try_from(q.number_of_bits).unwrap_or(0);
    if !(1..=8).contains(&bits) {
        return Err(format!("numberOfBits {} is not in 1..=8", q.number_of_bits));
    }
    let need = count.checked_mul(bits).ok_or("size overflows")?.div_ceil(8);
    if w.raw_value.len() < need {
        return Err(format!(
            "{} bytes of {bits}-bit values where {count} values (shape {shape:?}) need {need}",
            w.raw_value.len()
        ));
    }
    let codes = unpack_msb_first(&w.raw_value, bits, count);
    match q.quantization_type.as_ref() {
        Some(QuantizationType::LookupTableQuantization(l)) => {
            if l.float_value.len() != 1 << bits {
                return Err(format!(
                    "lookup table of {} entries for {bits}-bit indices (needs {})",
                    l.float_value.len(),
                    1 << bits
                ));
            }
            Ok(codes
                .iter()
                .map(|&c| l.float_value[usize::from(c)])
                .collect())
        }
        Some(QuantizationType::LinearQuantization(l)) => {
            if l.scale.len() != l.bias.len() && !l.bias.is_empty() {
                return Err(format!(
                    "linear quantization has {} scales and {} biases",
                    l.scale.len(),
                    l.bias.len()
                ));
            }
            let channels = l.scale.len();
            if channels == 0 {
                return Err("linear quantization without scales".into());
            }
            // Channel of each element: along the first axis, or the second for rank-4
            // deconvolution weights (coremltools `_dequantize_linear(axis=1)`).
            let (outer, axis_len, inner) = match (axis, shape) {
                (ChannelAxis::Second, [a, b, rest @ ..]) if shape.len() == 4 => {
                    (*a, *b, rest.iter().product::<usize>())
                }
                _ => (
                    1,
                    shape.first().copied().unwrap_or(1),
                    count / shape.first().copied().unwrap_or(1).max(1),
                ),
            };
            if channels != 1 && channels != axis_len {
                return Err(format!(
                    "{channels} quantization scales for {axis_len} channels (needs 1 or {axis_len})"
                ));
            }
            let mut out = Vec::with_capacity(count);
            for o in 0..outer {
                for c in 0..axis_len {
                    let k = if channels == 1 { 0 } else { c };
                    let (s, b) = (l.scale[k], l.bias.get(k).copied().unwrap_or(0.0));
                    let base = (o * axis_len + c) * inner;
                    for &q in &codes[base..base + inner] {
                        // coremltools computes in float64 then stores fp32.
                        out.push((f64::from(q) * f64::from(s) + f64::from(b)) as f32);
                    }
                }
            }
            Ok(out)
        }
        None => Err("rawValue without a quantization type".into()),
    }
}

/// Unpack `count` values of `bits` bits, most significant bit first.
pub fn unpack_msb_first(bytes: &[u8], bits: usize, count: usize) -> Vec<u8> {
    if bits == 8 {
        return bytes.iter().take(count).copied().collect();
    }
    let mut out = Vec::with_capacity(count);
    let mut bit = 0usize;
    for _ in 0..count {
        let mut v = 0u8;
        for _ in 0..bits {
            let byte = bytes.get(bit / 8).copied().unwrap_or(0);
            v = (v << 1) | ((byte >> (7 - bit % 8)) & 1);
            bit += 1;
        }
        out.push(v);
    }
    out
}

/// Pack values of `bits` bits most significant bit first (the inverse of
/// [`unpack_msb_first`]; the last byte is zero-padded).
pub fn pack_msb_first(values: &[u8], bits: usize) -> Vec<u8> {
    if bits == 8 {
        return values.to_vec();
    }
    let total = values.len() * bits;
    let mut out = vec![0u8; total.div_ceil(8).max(1)];
    let mut bit = 0usize;
    for &v in values {
        for i in (0..bits).rev() {
            if (v >> i) & 1 == 1 {
                out[bit / 8] |= 1 << (7 - bit % 8);
            }
            bit += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_roundtrip() {
        for bits in 1..=8 {
            let vals: Vec<u8> = (0..37u32)
                .map(|i| ((i * 7 + 3) % (1 << bits)) as u8)
                .collect();
            let p = pack_msb_first(&vals, bits);
            assert_eq!(unpack_msb_first(&p, bits, vals.len()), vals, "{bits}");
        }
        // coremltools' 2-bit layout of [1, 2, 3, 0]: 01 10 11 00.
        assert_eq!(pack_msb_first(&[1, 2, 3, 0], 2), vec![0b0110_1100]);
    }
}
