//! Decompression of the `constexpr_*` ops (compressed weights), done once at load.
//!
//! Semantics follow coremltools 9.0 (`defs/iOS16/constexpr_ops.py`, `defs/iOS18/compression.py`,
//! `optimize/_utils.py`; summarised in docs/references.md#compression-ops), including the iOS16
//! packed forms (LSB-first bit order) and the iOS18 forms with per-block scales, grouped and
//! vector LUTs, and the joint sparse ops. fp16 arithmetic is reproduced exactly: where
//! coremltools computes in the scale's fp16 dtype, every intermediate is rounded to fp16.

use anekit_format::subbyte;
use anekit_mil::DataType;
use anekit_mil::types::row_major_strides as strides;
use half::f16;
use ndarray::{ArrayD, IxDyn};

use super::value::Value;

/// A parameter of a constexpr op: its value and declared element type.
pub struct Param<'a> {
    /// The value (sub-byte and 8-bit integers as i32, floats as f32).
    pub value: &'a Value,
    /// The declared element type.
    pub dtype: DataType,
}

/// Looks up the parameters of one constexpr op.
pub trait Params {
    /// The parameter `name`, if given.
    fn get(&self, name: &str) -> Option<Param<'_>>;
}

fn req<'a>(p: &'a dyn Params, name: &str) -> Result<Param<'a>, String> {
    p.get(name)
        .ok_or_else(|| format!("parameter {name:?} is missing"))
}

fn round16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// Round to the declared output type (fp16 outputs hold fp16 values).
fn finish(values: Vec<f32>, shape: &[usize], out: DataType) -> Result<Value, String> {
    let values = if out == DataType::Fp16 {
        values.into_iter().map(round16).collect()
    } else {
        values
    };
    if out.is_float() {
        Ok(Value::F32(
            ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| e.to_string())?,
        ))
    } else {
        Ok(Value::I32(
            ArrayD::from_shape_vec(IxDyn(shape), values.into_iter().map(|v| v as i32).collect())
                .map_err(|e| e.to_string())?,
        ))
    }
}

fn floats(p: &Param<'_>) -> Result<Vec<f32>, String> {
    p.value.to_f32s()
}

fn ints(p: &Param<'_>) -> Result<Vec<i64>, String> {
    p.value.to_i64s()
}

fn dims(p: &Param<'_>) -> Vec<usize> {
    p.value.shape().to_vec()
}

fn count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))
}

/// The bytes of a uint8 tensor (iOS16 packed indices and masks).
fn packed_bytes(p: &Param<'_>) -> Result<Vec<u8>, String> {
    ints(p)?
        .into_iter()
        .map(|v| u8::try_from(v).map_err(|_| format!("byte value {v} out of range")))
        .collect()
}

/// A `shape` parameter (uint32 rank-1).
fn shape_param(p: &Param<'_>) -> Result<Vec<usize>, String> {
    let s: Vec<usize> = ints(p)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("bad dimension {d}")))
        .collect::<Result<_, _>>()?;
    count(&s)?;
    Ok(s)
}

/// Decompress one constexpr op. `outputs` are the declared output types (element type and
/// shape); returns one value per output.
pub fn decompress(
    op_type: &str,
    params: &dyn Params,
    outputs: &[(DataType, Vec<usize>)],
) -> Result<Vec<Value>, String> {
    let out = |i: usize| {
        outputs
            .get(i)
            .cloned()
            .ok_or_else(|| format!("output {i} is not declared"))
    };
    match op_type {
        "constexpr_affine_dequantize" => {
            let (odt, _) = out(0)?;
            let q = req(params, "quantized_data")?;
            let zp = req(params, "zero_point")?;
            let scale = req(params, "scale")?;
            let axis = ints(&req(params, "axis")?)?.first().copied().unwrap_or(0);
            let shape = dims(&q);
            let axis = super::kernels::shape::norm_axis(axis, shape.len(), "axis")?;
            let (qv, zv, sv) = (floats(&q)?, floats(&zp)?, floats(&scale)?);
            let inner: usize = shape[axis + 1..].iter().product();
            let extent = shape[axis];
            let pick = |v: &[f32], i: usize, what: &str| -> Result<f32, String> {
                match v.len() {
                    1 => Ok(v[0]),
                    n if n == extent => Ok(v[(i / inner.max(1)) % extent.max(1)]),
                    n => Err(format!(
                        "{what} has {n} values; expected 1 or {extent} (axis {axis})"
                    )),
                }
            };
            let vals = qv
                .iter()
                .enumerate()
                .map(|(i, &q)| Ok(pick(&sv, i, "scale")? * (q - pick(&zv, i, "zero_point")?)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(vec![finish(vals, &shape, odt)?])
        }
        "constexpr_cast" => {
            let (odt, _) = out(0)?;
            let src = req(params, "source_val")?;
            Ok(vec![finish(floats(&src)?, &dims(&src), odt)?])
        }
        "constexpr_lut_to_dense" => {
            let (odt, oshape) = out(0)?;
            let indices = req(params, "indices")?;
            let lut = req(params, "lut")?;
            if params.get("shape").is_some()
                || indices.dtype == DataType::Uint8 && dims(&lut).len() == 1
            {
                // iOS16: packed uint8 indices, rank-1 LUT, explicit shape.
                let shape = match params.get("shape") {
                    Some(s) => shape_param(&s)?,
                    None => oshape,
                };
                let lv = floats(&lut)?;
                let bits = match lv.len() {
                    2 => 1,
                    4 => 2,
                    16 => 4,
                    64 => 6,
                    256 => 8,
                    n => return Err(format!("LUT of {n} entries (must be 2, 4, 16, 64 or 256)")),
                };
                let n = count(&shape)?;
                let idx = subbyte::unpack(&packed_bytes(&indices)?, bits, n)
                    .ok_or_else(|| format!("{n} {bits}-bit indices need more packed bytes"))?;
                let vals = idx
                    .iter()
                    .map(|&i| lv.get(usize::from(i)).copied().unwrap_or(0.0))
                    .collect();
                return Ok(vec![finish(vals, &shape, odt)?]);
            }
            let vector_axis = params
                .get("vector_axis")
                .map(|v| ints(&v))
                .transpose()?
                .and_then(|v| v.first().copied());
            let (vals, shape) = lut_to_dense(&ints(&indices)?, &dims(&indices), &lut, vector_axis)?;
            Ok(vec![finish(vals, &shape, odt)?])
        }
        "constexpr_sparse_to_dense" => {
            let (odt, oshape) = out(0)?;
            let nz = req(params, "nonzero_data")?;
            let mask = req(params, "mask")?;
            let (mask_bits, shape) = match params.get("shape") {
                // iOS16: mask packed in uint8, shape given.
                Some(s) => {
                    let shape = shape_param(&s)?;
                    let n = count(&shape)?;
                    let bits = subbyte::unpack(&packed_bytes(&mask)?, 1, n)
                        .ok_or_else(|| format!("mask too short for {n} elements"))?;
                    (bits.into_iter().map(i64::from).collect::<Vec<_>>(), shape)
                }
                None if mask.dtype == DataType::Uint8
                    && dims(&mask).len() == 1
                    && oshape.len() != 1 =>
                {
                    let n = count(&oshape)?;
                    let bits = subbyte::unpack(&packed_bytes(&mask)?, 1, n)
                        .ok_or_else(|| format!("mask too short for {n} elements"))?;
                    (bits.into_iter().map(i64::from).collect(), oshape)
                }
                None => (ints(&mask)?, dims(&mask)),
            };
            let vals = sparse_to_dense(&floats(&nz)?, &mask_bits)?;
            Ok(vec![finish(vals, &shape, odt)?])
        }
        "constexpr_blockwise_shift_scale" => {
            let (odt, _) = out(0)?;
            let data = req(params, "data")?;
            let scale = req(params, "scale")?;
            let offset = params.get("offset");
            let shape = dims(&data);
            let vals = shift_scale(&floats(&data)?, &shape, &scale, offset.as_ref())?;
            Ok(vec![finish(vals, &shape, odt)?])
        }
        "constexpr_lut_to_sparse" => {
            let (mdt, _) = out(0)?;
            let (odt, _) = out(1)?;
            let mask = req(params, "indices_mask")?;
            let nz = req(params, "indices_nonzero_data")?;
            let lut = req(params, "lut")?;
            let vector_axis = params
                .get("vector_axis")
                .map(|v| ints(&v))
                .transpose()?
                .and_then(|v| v.first().copied());
            let mshape = dims(&mask);
            let mbits = ints(&mask)?;
            let dense_idx = sparse_to_dense(&floats(&nz)?, &mbits)?;
            let dense_idx: Vec<i64> = dense_idx.into_iter().map(|v| v as i64).collect();
            let (dense, dshape) = lut_to_dense(&dense_idx, &mshape, &lut, vector_axis)?;
            // The output mask: the input mask, repeated VECTOR_SIZE times along vector_axis.
            let (omask, oshape) = match vector_axis {
                Some(va) => repeat_along(&mbits, &mshape, va, *dims(&lut).last().unwrap_or(&1))?,
                None => (mbits, mshape),
            };
            debug_assert_eq!(oshape, dshape);
            let vals: Vec<f32> = dense
                .iter()
                .zip(&omask)
                .filter(|(_, m)| **m != 0)
                .map(|(v, _)| *v)
                .collect();
            let n = vals.len();
            Ok(vec![
                finish(omask.iter().map(|&m| m as f32).collect(), &oshape, mdt)?,
                finish(vals, &[n], odt)?,
            ])
        }
        "constexpr_sparse_blockwise_shift_scale" => {
            let (mdt, _) = out(0)?;
            let (odt, _) = out(1)?;
            let mask = req(params, "data_mask")?;
            let nz = req(params, "nonzero_data")?;
            let scale = req(params, "scale")?;
            let offset = params.get("offset");
            let mshape = dims(&mask);
            let mbits = ints(&mask)?;
            let dense = sparse_to_dense(&floats(&nz)?, &mbits)?;
            let deq = shift_scale(&dense, &mshape, &scale, offset.as_ref())?;
            let vals: Vec<f32> = deq
                .iter()
                .zip(&mbits)
                .filter(|(_, m)| **m != 0)
                .map(|(v, _)| *v)
                .collect();
            let n = vals.len();
            Ok(vec![
                finish(mbits.iter().map(|&m| m as f32).collect(), &mshape, mdt)?,
                finish(vals, &[n], odt)?,
            ])
        }
        other => Err(format!("unknown constexpr op {other:?}")),
    }
}

fn sparse_to_dense(nonzero: &[f32], mask: &[i64]) -> Result<Vec<f32>, String> {
    let ones = mask.iter().filter(|&&m| m != 0).count();
    if ones != nonzero.len() {
        return Err(format!(
            "mask has {ones} set bits but there are {} non-zero values",
            nonzero.len()
        ));
    }
    let mut it = nonzero.iter();
    Ok(mask
        .iter()
        .map(|&m| {
            if m != 0 {
                it.next().copied().unwrap_or(0.0)
            } else {
                0.0
            }
        })
        .collect())
}

/// `out = scale * (data - offset)` with scale/offset repeated blockwise to data's shape; in
/// fp16 arithmetic (each step rounded) when the scale is fp16, as coremltools computes.
fn shift_scale(
    data: &[f32],
    shape: &[usize],
    scale: &Param<'_>,
    offset: Option<&Param<'_>>,
) -> Result<Vec<f32>, String> {
    let sshape = dims(scale);
    if sshape.len() != shape.len() {
        return Err(format!(
            "scale has rank {} but data has rank {}",
            sshape.len(),
            shape.len()
        ));
    }
    let mut block = Vec::with_capacity(shape.len());
    for (d, (&n, &s)) in shape.iter().zip(&sshape).enumerate() {
        if s == 0 || n % s != 0 {
            return Err(format!(
                "data dimension {d} ({n}) is not a multiple of the scale's ({s})"
            ));
        }
        block.push(n / s);
    }
    let sv = floats(scale)?;
    let ov = offset.map(floats).transpose()?;
    if let (Some(o), Some(op)) = (&ov, offset)
        && (dims(op) != sshape || o.len() != sv.len())
    {
        return Err("offset must have the scale's shape".into());
    }
    let fp16 = scale.dtype == DataType::Fp16;
    let r = |v: f32| if fp16 { round16(v) } else { v };
    let dstr = strides(shape);
    let sstr = strides(&sshape);
    let mut out = Vec::with_capacity(data.len());
    for (i, &x) in data.iter().enumerate() {
        let mut si = 0;
        for d in 0..shape.len() {
            si += (i / dstr[d] % shape[d]) / block[d] * sstr[d];
        }
        let s = sv.get(si).copied().unwrap_or(0.0);
        let x = r(x);
        let t = match &ov {
            Some(o) => r(x - o.get(si).copied().unwrap_or(0.0)),
            None => x,
        };
        out.push(r(s * t));
    }
    Ok(out)
}

/// Repeat each element `times` times along `axis` (numpy `repeat`).
fn repeat_along(
    v: &[i64],
    shape: &[usize],
    axis: i64,
    times: usize,
) -> Result<(Vec<i64>, Vec<usize>), String> {
    let axis = super::kernels::shape::norm_axis(axis, shape.len(), "vector_axis")?;
    let mut oshape = shape.to_vec();
    oshape[axis] = oshape[axis]
        .checked_mul(times)
        .ok_or_else(|| format!("repeating {shape:?} {times} times overflows"))?;
    let ostr = strides(&oshape);
    let istr = strides(shape);
    let n = count(&oshape)?;
    let mut out = Vec::new();
    out.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate a mask of {n} elements"))?;
    for o in 0..n {
        let mut ii = 0;
        for d in 0..shape.len() {
            let c = o / ostr[d] % oshape[d];
            ii += if d == axis { c / times } else { c } * istr[d];
        }
        out.push(v.get(ii).copied().unwrap_or(0));
    }
    Ok((out, oshape))
}

/// iOS18 `constexpr_lut_to_dense`: `indices` of shape `ishape`, LUT of shape
/// `[g0.., NUM_PALETTES, VECTOR_SIZE]`; returns the values and their shape.
fn lut_to_dense(
    indices: &[i64],
    ishape: &[usize],
    lut: &Param<'_>,
    vector_axis: Option<i64>,
) -> Result<(Vec<f32>, Vec<usize>), String> {
    let lshape = dims(lut);
    let k = ishape.len();
    if lshape.len() != k + 2 {
        return Err(format!(
            "LUT has rank {} but indices have rank {k} (LUT rank must be indices rank + 2)",
            lshape.len()
        ));
    }
    let palettes = lshape[k];
    let vsize = lshape[k + 1];
    let lv = floats(lut)?;
    let mut group = Vec::with_capacity(k);
    for d in 0..k {
        if lshape[d] == 0 || !ishape[d].is_multiple_of(lshape[d]) {
            return Err(format!(
                "indices dimension {d} ({}) is not a multiple of the LUT's ({})",
                ishape[d], lshape[d]
            ));
        }
        group.push(ishape[d] / lshape[d]);
    }
    let va = match (vsize, vector_axis) {
        (1, _) => None,
        (_, Some(a)) => Some(super::kernels::shape::norm_axis(a, k, "vector_axis")?),
        (_, None) => return Err("vector_axis is required when VECTOR_SIZE > 1".into()),
    };
    let mut oshape = ishape.to_vec();
    if let Some(a) = va {
        oshape[a] = oshape[a]
            .checked_mul(vsize)
            .ok_or_else(|| format!("{ishape:?} indices of {vsize}-vectors overflow"))?;
    }
    let n = count(&oshape)?;
    let istr = strides(ishape);
    let ostr = strides(&oshape);
    let lstr = strides(&lshape);
    let mut out = super::kernels::util::try_zeros::<f32>(n)?;
    for (p, &idx) in indices.iter().enumerate() {
        let idx = usize::try_from(idx)
            .ok()
            .filter(|&i| i < palettes)
            .ok_or_else(|| format!("index {idx} outside the {palettes}-entry LUT"))?;
        let mut lbase = idx * lstr[k];
        let mut obase = 0;
        for d in 0..k {
            let c = p / istr[d] % ishape[d];
            lbase += c / group[d] * lstr[d];
            obase += if Some(d) == va { c * vsize } else { c } * ostr[d];
        }
        for v in 0..vsize {
            let o = obase + va.map_or(0, |a| v * ostr[a]);
            if let (Some(slot), Some(&x)) = (out.get_mut(o), lv.get(lbase + v)) {
                *slot = x;
            }
        }
    }
    Ok((out, oshape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct P(BTreeMap<&'static str, (Value, DataType)>);
    impl Params for P {
        fn get(&self, name: &str) -> Option<Param<'_>> {
            self.0.get(name).map(|(value, dtype)| Param {
                value,
                dtype: *dtype,
            })
        }
    }
    fn f(shape: &[usize], v: &[f32]) -> Value {
        Value::F32(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }
    fn i(shape: &[usize], v: &[i32]) -> Value {
        Value::I32(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }

    /// The scalar and vector examples of the iOS18 `constexpr_lut_to_dense` docstring.
    #[test]
    fn lut_to_dense_docstring_examples() {
        // indices [4, 6] uint2, lut [2, 1, 4, 1] (per-grouped-channel, 2 groups on axis 0).
        let idx = i(
            &[4, 6],
            &[
                0, 1, 2, 3, 0, 1, 1, 2, 3, 0, 1, 2, 2, 3, 0, 1, 2, 3, 3, 0, 1, 2, 3, 0,
            ],
        );
        let lut = f(&[2, 1, 4, 1], &[0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0]);
        let p = P([
            ("indices", (idx, DataType::Uint2)),
            ("lut", (lut, DataType::Fp16)),
        ]
        .into());
        let v = decompress(
            "constexpr_lut_to_dense",
            &p,
            &[(DataType::Fp16, vec![4, 6])],
        )
        .unwrap();
        let expect: Vec<f32> = [
            0, 1, 2, 3, 0, 1, 1, 2, 3, 0, 1, 2, 12, 13, 10, 11, 12, 13, 13, 10, 11, 12, 13, 10,
        ]
        .iter()
        .map(|&x| x as f32)
        .collect();
        assert_eq!(v[0].to_f32s().unwrap(), expect);
        // Vector palettization: VECTOR_SIZE 2 along axis 0 doubles that axis.
        let idx = i(&[2, 2], &[0, 1, 1, 0]);
        let lut = f(&[1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let p = P([
            ("indices", (idx, DataType::Uint1)),
            ("lut", (lut, DataType::Fp32)),
            ("vector_axis", (i(&[], &[0]), DataType::Int32)),
        ]
        .into());
        let v = decompress(
            "constexpr_lut_to_dense",
            &p,
            &[(DataType::Fp32, vec![4, 2])],
        )
        .unwrap();
        // Column 0: index 0 at row 0 → [1, 2] down rows 0-1; index 1 at row 1 → [3, 4].
        assert_eq!(v[0].shape(), &[4, 2]);
        assert_eq!(
            v[0].to_f32s().unwrap(),
            vec![1.0, 3.0, 2.0, 4.0, 3.0, 1.0, 4.0, 2.0]
        );
    }

    #[test]
    fn blockwise_rounds_like_fp16_numpy() {
        // data int8 [2, 4], scale fp16 [2, 2] (block 2 on axis 1), offset fp16.
        let p = P([
            (
                "data",
                (i(&[2, 4], &[100, -3, 7, 0, 1, 2, 3, 4]), DataType::Int8),
            ),
            ("scale", (f(&[2, 2], &[0.1, 0.2, 0.3, 0.4]), DataType::Fp16)),
            (
                "offset",
                (f(&[2, 2], &[0.3, 0.0, 1.0, 0.0]), DataType::Fp16),
            ),
        ]
        .into());
        let v = decompress(
            "constexpr_blockwise_shift_scale",
            &p,
            &[(DataType::Fp16, vec![2, 4])],
        )
        .unwrap();
        let s = |x: f32| round16(x);
        let expect0 = s(s(0.1) * s(100.0 - s(0.3)));
        assert_eq!(v[0].to_f32s().unwrap()[0], expect0);
        assert_eq!(v[0].to_f32s().unwrap()[7], s(s(0.4) * 4.0));
    }

    #[test]
    fn ios16_packed_forms() {
        // 4-bit LUT, 3 elements packed LSB-first: [1, 2, 15] → bytes [0x21, 0x0f].
        let lut: Vec<f32> = (0..16).map(|x| x as f32 * 0.5).collect();
        let p = P([
            ("indices", (i(&[2], &[0x21, 0x0f]), DataType::Uint8)),
            ("lut", (f(&[16], &lut), DataType::Fp32)),
            ("shape", (i(&[1], &[3]), DataType::Uint32)),
        ]
        .into());
        let v = decompress("constexpr_lut_to_dense", &p, &[(DataType::Fp32, vec![3])]).unwrap();
        assert_eq!(v[0].to_f32s().unwrap(), vec![0.5, 1.0, 7.5]);
        // Sparse: mask bits 0b0000_0101 → elements 0 and 2 set.
        let p = P([
            ("nonzero_data", (f(&[2], &[4.0, 5.0]), DataType::Fp32)),
            ("mask", (i(&[1], &[0b101]), DataType::Uint8)),
            ("shape", (i(&[2], &[1, 4]), DataType::Uint32)),
        ]
        .into());
        let v = decompress(
            "constexpr_sparse_to_dense",
            &p,
            &[(DataType::Fp32, vec![1, 4])],
        )
        .unwrap();
        assert_eq!(v[0].to_f32s().unwrap(), vec![4.0, 0.0, 5.0, 0.0]);
        // A mask whose set bits disagree with the data is an error.
        let p = P([
            ("nonzero_data", (f(&[1], &[4.0]), DataType::Fp32)),
            ("mask", (i(&[1], &[0b101]), DataType::Uint8)),
            ("shape", (i(&[1], &[4]), DataType::Uint32)),
        ]
        .into());
        assert!(
            decompress(
                "constexpr_sparse_to_dense",
                &p,
                &[(DataType::Fp32, vec![4])]
            )
            .is_err()
        );
    }
}
