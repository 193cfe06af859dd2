//! Weights kept in their stored form: fp16, 8-bit and sub-byte affine-quantized (per
//! tensor, per channel, per block) and LUT-palettized constants are not decompressed to f32
//! at load. A [`PackedTensor`] keeps a view of the model's bytes (a view into the
//! memory-mapped weight file when the package has one, see `anekit_format::blob`) plus the
//! small scale/offset/LUT tables, and decodes rows on demand into a caller's buffer:
//! `linear` decodes blocks of weight rows inside its GEMM/GEMV loop, `gather` (embeddings)
//! decodes only the rows it picks. Any other consumer gets the dense tensor, made once.
//!
//! So a 7-billion-parameter model quantized to 4 bits needs about its file size in memory,
//! not 28 GB of f32 (docs/runtime.md, "Compressed weights").
//!
//! Decoding reproduces [`super::constexpr::decompress`] bit for bit (tests/fusion.rs runs
//! every compressed fixture both ways): the same formulas in the same order, with fp16
//! rounding of every intermediate where coremltools computes in fp16
//! (`constexpr_blockwise_shift_scale` with an fp16 scale), and the output rounded to the
//! declared output type. Per block, the 2^bits possible values of a 4-bit (or smaller)
//! code are computed once into a table, so decoding is a table lookup.

use std::sync::Arc;

use anekit_mil::DataType;
use anekit_mil::value::Value as MilValue;
use bytes::Bytes;
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use ndarray::{ArrayD, IxDyn};

use super::value::Value;

/// Elements below which a constant is simply decompressed (packing pays for big weights).
pub const MIN_ELEMENTS: usize = 1 << 16;

/// `v` rounded to the nearest fp16 value (ties to even), as `f16::from_f32(v).to_f32()`:
/// in fp16's normal range by rounding the f32 mantissa to 10 bits in place (no conversion),
/// elsewhere (subnormal, overflow, NaN) through `half`.
#[inline]
fn round16(v: f32) -> f32 {
    let a = v.abs();
    if (6.103_515_6e-5..65_504.0).contains(&a) {
        let b = v.to_bits();
        f32::from_bits((b + 0x0fff + ((b >> 13) & 1)) & !0x1fff)
    } else {
        f16::from_f32(v).to_f32()
    }
}

/// How the stored codes become values.
#[derive(Debug, Clone)]
enum Kind {
    /// Plain fp16 elements.
    F16,
    /// `value = s · (code − o)` per (row block, column block) — `constexpr_affine_dequantize`
    /// and `constexpr_blockwise_shift_scale`; with `fp16_math` every intermediate is rounded
    /// to fp16 (coremltools computes in the scale's fp16 dtype).
    Affine {
        bits: u32,
        signed: bool,
        /// Rows / columns per block.
        bn: usize,
        bk: usize,
        /// `[rows / bn, cols / bk]`.
        scale: Vec<f32>,
        offset: Option<Vec<f32>>,
        fp16_math: bool,
    },
    /// `value = lut[group][code]`, groups of `gn` rows × `gk` columns, `palette` entries
    /// each (already rounded to the output type).
    Lut {
        bits: u32,
        gn: usize,
        gk: usize,
        palette: usize,
        lut: Vec<f32>,
    },
}

/// A constant tensor in its stored form (see the module docs).
#[derive(Debug, Clone)]
pub struct PackedTensor {
    shape: Vec<usize>,
    rows: usize,
    cols: usize,
    /// The stored codes / elements, little-endian, sub-byte codes packed LSB-first.
    data: Bytes,
    kind: Kind,
    /// Round decoded values to fp16 (the declared output type is fp16).
    out_fp16: bool,
}

/// Unpack codes `e0..e0 + out.len()` of `bits` bits each (LSB-first) into `out`.
fn unpack_codes(data: &[u8], bits: u32, e0: usize, out: &mut [u8]) {
    match bits {
        8 => out.copy_from_slice(&data[e0..e0 + out.len()]),
        4 if e0.is_multiple_of(2) => {
            let bytes = &data[e0 / 2..];
            for (pair, &b) in out.chunks_mut(2).zip(bytes) {
                pair[0] = b & 0x0f;
                if let Some(hi) = pair.get_mut(1) {
                    *hi = b >> 4;
                }
            }
        }
        _ => {
            let mask = (1u16 << bits) - 1;
            let mut bit = e0 * bits as usize;
            for o in out.iter_mut() {
                let byte = bit / 8;
                let lo = u16::from(data.get(byte).copied().unwrap_or(0));
                let hi = u16::from(data.get(byte + 1).copied().unwrap_or(0));
                *o = (((hi << 8 | lo) >> (bit % 8)) & mask) as u8;
                bit += bits as usize;
            }
        }
    }
}

impl PackedTensor {
    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rows (the first dimension) and elements per row.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes held (codes and tables), against `4 · len` for the dense f32 tensor.
    pub fn stored_bytes(&self) -> usize {
        let tables = match &self.kind {
            Kind::F16 => 0,
            Kind::Affine { scale, offset, .. } => {
                4 * (scale.len() + offset.as_ref().map_or(0, Vec::len))
            }
            Kind::Lut { lut, .. } => 4 * lut.len(),
        };
        self.data.len() + tables
    }

    /// The stored fp16 bit patterns of a plain fp16 tensor (whose values are exactly its
    /// decoded ones), where the blob can be read as `u16`s in place (2-byte aligned — weight
    /// files align blobs to 64 — on a little-endian machine).
    pub fn f16_bits(&self) -> Option<&[u16]> {
        match self.kind {
            Kind::F16 if cfg!(target_endian = "little") => {
                bytemuck::try_cast_slice(&self.data).ok()
            }
            _ => None,
        }
    }

    /// Decode rows `r0..r0 + out.len() / cols` into `out` (row-major).
    pub fn decode_rows(&self, r0: usize, out: &mut [f32]) {
        let k = self.cols;
        if k == 0 {
            return;
        }
        let n = out.len() / k;
        match &self.kind {
            Kind::F16 => {
                let src = &self.data[r0 * k * 2..(r0 + n) * k * 2];
                // `half` converts slices with F16C / NEON when the CPU has them (run-time
                // detection); the blob is 2-byte aligned (64 in weight files), else bytes.
                match bytemuck::try_cast_slice::<u8, u16>(src) {
                    Ok(bits) if cfg!(target_endian = "little") => {
                        bits.reinterpret_cast::<f16>()
                            .convert_to_f32_slice(&mut out[..n * k]);
                    }
                    _ => {
                        for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                            *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
                        }
                    }
                }
            }
            Kind::Affine {
                bits,
                signed,
                bn,
                bk,
                scale,
                offset,
                fp16_math,
            } => {
                let nbk = k / bk;
                let r = |v: f32| if *fp16_math { round16(v) } else { v };
                // (fp16 arithmetic already leaves fp16 values)
                let fin = |v: f32| {
                    if self.out_fp16 && !*fp16_math {
                        round16(v)
                    } else {
                        v
                    }
                };
                let levels = 1usize << bits;
                let mut codes = vec![0u8; k];
                let mut table = vec![0.0f32; levels];
                for (i, row) in out.chunks_exact_mut(k).enumerate() {
                    let rr = r0 + i;
                    unpack_codes(&self.data, *bits, rr * k, &mut codes);
                    for b in 0..nbk {
                        let si = (rr / bn) * nbk + b;
                        let s = scale[si];
                        let o = offset.as_ref().map(|o| o[si]);
                        let val = |c: u8| {
                            let x = if *signed {
                                f32::from(anekit_format::subbyte::sign_extend(c, *bits))
                            } else {
                                f32::from(c)
                            };
                            let x = r(x);
                            let t = match o {
                                Some(o) => r(x - o),
                                None => x,
                            };
                            fin(r(s * t))
                        };
                        let seg = &mut row[b * bk..(b + 1) * bk];
                        let cs = &codes[b * bk..(b + 1) * bk];
                        if *bk >= levels {
                            for (c, t) in table.iter_mut().enumerate() {
                                *t = val(c as u8);
                            }
                            for (o, &c) in seg.iter_mut().zip(cs) {
                                *o = table[usize::from(c)];
                            }
                        } else {
                            for (o, &c) in seg.iter_mut().zip(cs) {
                                *o = val(c);
                            }
                        }
                    }
                }
            }
            Kind::Lut {
                bits,
                gn,
                gk,
                palette,
                lut,
            } => {
                let ngk = k / gk;
                let mut codes = vec![0u8; k];
                for (i, row) in out.chunks_exact_mut(k).enumerate() {
                    let rr = r0 + i;
                    unpack_codes(&self.data, *bits, rr * k, &mut codes);
                    for g in 0..ngk {
                        let base = ((rr / gn) * ngk + g) * palette;
                        let t = &lut[base..base + palette];
                        for (o, &c) in row[g * gk..(g + 1) * gk]
                            .iter_mut()
                            .zip(&codes[g * gk..(g + 1) * gk])
                        {
                            *o = t.get(usize::from(c)).copied().unwrap_or(0.0);
                        }
                    }
                }
            }
        }
    }

    /// The dense tensor.
    pub fn to_value(&self) -> Result<Value, String> {
        let n = self.rows * self.cols;
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| format!("cannot allocate {n} weights"))?;
        v.resize(n, 0.0);
        self.decode_rows(0, &mut v);
        Ok(Value::F32(
            ArrayD::from_shape_vec(IxDyn(&self.shape), v).map_err(|e| e.to_string())?,
        ))
    }
}

/// A parameter of a constexpr op as the packer sees it.
pub enum Param<'a> {
    /// A stored tensor, not converted (the big operand: codes, fp16 data).
    Raw(&'a MilValue),
    /// A converted constant and its declared element type (small tables).
    Dense(&'a Value, DataType),
}

impl Param<'_> {
    fn dtype(&self) -> Option<DataType> {
        match self {
            Param::Raw(v) => v.tensor_type().map(|t| t.dtype),
            Param::Dense(_, d) => Some(*d),
        }
    }
    fn shape(&self) -> Option<Vec<usize>> {
        match self {
            Param::Raw(v) => v
                .tensor_type()?
                .fixed_shape()?
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect(),
            Param::Dense(v, _) => Some(v.shape().to_vec()),
        }
    }
    fn floats(&self) -> Option<Vec<f32>> {
        match self {
            Param::Raw(v) => v.to_f32_vec(),
            Param::Dense(v, _) => v.to_f32s().ok(),
        }
    }
    fn ints(&self) -> Option<Vec<i64>> {
        match self {
            Param::Raw(v) => v.to_i64_vec(),
            Param::Dense(v, _) => v.to_i64s().ok(),
        }
    }
    fn raw_bytes(&self) -> Option<Bytes> {
        match self {
            Param::Raw(v) => v.bytes().cloned(),
            Param::Dense(..) => None,
        }
    }
}

fn rows_cols(shape: &[usize]) -> Option<(usize, usize)> {
    let (&r, rest) = shape.split_first()?;
    Some((r, rest.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?))
}

fn worth(shape: &[usize]) -> bool {
    shape.len() >= 2 && shape.iter().product::<usize>() >= MIN_ELEMENTS
}

/// A plain fp16 constant, kept as fp16.
pub fn from_const(v: &MilValue) -> Option<PackedTensor> {
    let t = v.tensor_type()?;
    if t.dtype != DataType::Fp16 {
        return None;
    }
    let p = Param::Raw(v);
    let shape = p.shape()?;
    if !worth(&shape) {
        return None;
    }
    let (rows, cols) = rows_cols(&shape)?;
    let data = p.raw_bytes()?;
    (data.len() == rows * cols * 2).then_some(PackedTensor {
        shape,
        rows,
        cols,
        data,
        kind: Kind::F16,
        out_fp16: true,
    })
}

/// The packed form of a `constexpr_*` op's output, for the forms decoded here; `None` for
/// every other (then it is decompressed as before). `get` gives a parameter; `out` is the
/// declared output type and shape.
pub fn from_constexpr<'a>(
    op_type: &str,
    get: &dyn Fn(&str) -> Option<Param<'a>>,
    out: (DataType, &[usize]),
) -> Option<PackedTensor> {
    let (odt, oshape) = out;
    if !odt.is_float() {
        return None;
    }
    let out_fp16 = odt == DataType::Fp16;
    let packed = |data: &Param<'_>| -> Option<(Bytes, u32, bool, Vec<usize>)> {
        let dt = data.dtype()?;
        let bits = dt.bits()?;
        if !(dt.is_int() && bits <= 8) {
            return None;
        }
        Some((data.raw_bytes()?, bits, dt.is_signed_int(), data.shape()?))
    };
    let enough =
        |bytes: &Bytes, n: usize, bits: u32| bytes.len() >= (n * bits as usize).div_ceil(8);
    match op_type {
        "constexpr_blockwise_shift_scale" => {
            let (data, bits, signed, shape) = packed(&get("data")?)?;
            if !worth(&shape) || shape != oshape {
                return None;
            }
            let (rows, cols) = rows_cols(&shape)?;
            let scale = get("scale")?;
            let sshape = scale.shape()?;
            if sshape.len() != shape.len() {
                return None;
            }
            // Blocks along rows and along the flattened rest: the rest must be one block
            // dimension (rank 2) or not blocked beyond dimension 1.
            if sshape[2..].iter().any(|&d| d != 1) {
                return None;
            }
            let (sr, sc) = (sshape[0], sshape[1]);
            if sr == 0 || sc == 0 || rows % sr != 0 || shape[1] % sc != 0 {
                return None;
            }
            let inner: usize = shape[2..].iter().product();
            let bk = shape[1] / sc * inner;
            let offset = match get("offset") {
                Some(o) => {
                    if o.shape()? != sshape {
                        return None;
                    }
                    Some(o.floats()?)
                }
                None => None,
            };
            let sv = scale.floats()?;
            if !enough(&data, rows * cols, bits) || sv.len() != sr * sc {
                return None;
            }
            Some(PackedTensor {
                shape,
                rows,
                cols,
                data,
                kind: Kind::Affine {
                    bits,
                    signed,
                    bn: rows / sr,
                    bk,
                    scale: sv,
                    offset,
                    fp16_math: scale.dtype()? == DataType::Fp16,
                },
                out_fp16,
            })
        }
        "constexpr_affine_dequantize" => {
            let (data, bits, signed, shape) = packed(&get("quantized_data")?)?;
            if !worth(&shape) || bits != 8 {
                return None;
            }
            let (rows, cols) = rows_cols(&shape)?;
            let axis = get("axis")?.ints()?.first().copied().unwrap_or(0);
            let axis = if axis < 0 {
                axis + shape.len() as i64
            } else {
                axis
            };
            let sv = get("scale")?.floats()?;
            let zv = get("zero_point")?.floats()?;
            // Per tensor, or per channel along axis 0 (one scale per row).
            let per_row = |v: &[f32]| -> Option<Vec<f32>> {
                match v.len() {
                    1 => Some(vec![v[0]; rows]),
                    n if n == rows && axis == 0 => Some(v.to_vec()),
                    _ => None,
                }
            };
            let (scale, zp) = (per_row(&sv)?, per_row(&zv)?);
            if !enough(&data, rows * cols, bits) {
                return None;
            }
            Some(PackedTensor {
                shape,
                rows,
                cols,
                data,
                kind: Kind::Affine {
                    bits,
                    signed,
                    bn: 1,
                    bk: cols,
                    scale,
                    offset: Some(zp),
                    fp16_math: false,
                },
                out_fp16,
            })
        }
        "constexpr_lut_to_dense" => {
            let indices = get("indices")?;
            let lut = get("lut")?;
            let fin = |v: f32| if out_fp16 { round16(v) } else { v };
            if let Some(shape_p) = get("shape") {
                // iOS16: packed uint8 bytes, rank-1 LUT, explicit shape.
                let shape: Vec<usize> = shape_p
                    .ints()?
                    .into_iter()
                    .map(|d| usize::try_from(d).ok())
                    .collect::<Option<_>>()?;
                if !worth(&shape) || indices.dtype()? != DataType::Uint8 {
                    return None;
                }
                let lv = lut.floats()?;
                let bits = match lv.len() {
                    2 => 1,
                    4 => 2,
                    16 => 4,
                    64 => 6,
                    256 => 8,
                    _ => return None,
                };
                let (rows, cols) = rows_cols(&shape)?;
                let data = indices.raw_bytes()?;
                if !enough(&data, rows * cols, bits) {
                    return None;
                }
                return Some(PackedTensor {
                    shape,
                    rows,
                    cols,
                    data,
                    kind: Kind::Lut {
                        bits,
                        gn: rows,
                        gk: cols,
                        palette: lv.len(),
                        lut: lv.into_iter().map(fin).collect(),
                    },
                    out_fp16,
                });
            }
            // iOS18: indices of uintN, LUT [g0, g1, .., palettes, 1] (scalar LUT only).
            let (data, bits, _, shape) = packed(&indices)?;
            if !worth(&shape) || shape != oshape {
                return None;
            }
            let lshape = lut.shape()?;
            let k = shape.len();
            if lshape.len() != k + 2 || lshape[k + 1] != 1 || lshape[2..k].iter().any(|&d| d != 1) {
                return None;
            }
            let palette = lshape[k];
            if palette != 1 << bits {
                return None;
            }
            let (rows, cols) = rows_cols(&shape)?;
            let (lr, lc) = (lshape[0], lshape[1]);
            if lr == 0 || lc == 0 || rows % lr != 0 || shape[1] % lc != 0 {
                return None;
            }
            let inner: usize = shape[2..].iter().product();
            let lv = lut.floats()?;
            if lv.len() != lr * lc * palette || !enough(&data, rows * cols, bits) {
                return None;
            }
            let gk = shape[1] / lc * inner;
            Some(PackedTensor {
                shape,
                rows,
                cols,
                data,
                kind: Kind::Lut {
                    bits,
                    gn: rows / lr,
                    gk,
                    palette,
                    lut: lv.into_iter().map(fin).collect(),
                },
                out_fp16,
            })
        }
        _ => None,
    }
}

/// A packed constant shared by the plan and the kernels that read it.
pub type Shared = Arc<PackedTensor>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round16_matches_half() {
        let mut x = 1e-9f32;
        while x < 1e6 {
            for v in [x, -x, x * 1.000_123, x * 0.999_877] {
                assert_eq!(
                    round16(v).to_bits(),
                    f16::from_f32(v).to_f32().to_bits(),
                    "{v}"
                );
            }
            x *= 1.000_37;
        }
        // every tie and neighbour around the fp16 grid, in the normal range
        for h in 0x0400u16..0x7bff {
            let lo = f16::from_bits(h).to_f32();
            let hi = f16::from_bits(h + 1).to_f32();
            let mid = (lo + hi) / 2.0;
            for v in [
                lo,
                mid,
                f32::from_bits(mid.to_bits() + 1),
                f32::from_bits(mid.to_bits() - 1),
            ] {
                assert_eq!(round16(v), f16::from_f32(v).to_f32(), "{v}");
            }
        }
        assert!(round16(f32::NAN).is_nan());
        assert_eq!(round16(1e6), f32::INFINITY);
    }
}
