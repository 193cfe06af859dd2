//! Building the `constexpr_*` ops of a compressed weight, in the form of the function's
//! opset: iOS16/17 ops carry their parameters as attributes (packed uint8 indices and masks
//! plus a uint32 `shape`; rank-0/1 scale and zero point with an `axis`), iOS18 ops take them
//! as inputs (sub-byte tensors in the weight's shape, per-block scales, grouped/vector LUTs,
//! joint sparse ops). Names follow coremltools (`<const>_quantized`, `_palettized`,
//! `_sparsified`, ...).

use anekit_mil::{
    Argument, Binding, DataType, NamedValueType, Operation, Placement, TensorType, Value, ValueType,
};

use crate::linear::Quantized;
use crate::palettize::Palettized;
use crate::tensor::FloatType;

/// Which op form to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// iOS16/iOS17: parameters as attributes.
    Ios16,
    /// iOS18 and later: parameters as inputs.
    Ios18,
}

/// A parameter of a constexpr op: a literal or a reference to another op's output.
#[derive(Debug, Clone)]
pub enum Param {
    /// A literal value.
    Value(Value),
    /// An earlier op's output.
    Name(String),
}

fn shape_u64(shape: &[usize]) -> Vec<u64> {
    shape.iter().map(|&d| d as u64).collect()
}

/// A tensor constant of `dtype` from raw bytes (weight-file placement decided by the writer).
pub fn tensor(dtype: DataType, shape: &[usize], bytes: Vec<u8>) -> Value {
    Value::tensor_bytes(
        TensorType::new(dtype, &shape_u64(shape)),
        bytes,
        Placement::Auto,
    )
}

/// A float tensor in `dtype`.
pub fn float_tensor(dtype: FloatType, shape: &[usize], values: &[f32]) -> Value {
    tensor(dtype.data_type(), shape, dtype.to_bytes(values))
}

/// A uint32 vector written inline (the iOS16 `shape` parameter).
pub fn shape_param(shape: &[usize]) -> Value {
    let bytes: Vec<u8> = shape
        .iter()
        .flat_map(|&d| (d as u32).to_le_bytes())
        .collect();
    Value::tensor_bytes(
        TensorType::new(DataType::Uint32, &[shape.len() as u64]),
        bytes,
        Placement::Inline,
    )
}

/// Bits packed LSB-first.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// The unsigned type of `nbits`-bit indices.
pub fn index_dtype(nbits: u8) -> DataType {
    match nbits {
        1 => DataType::Uint1,
        2 => DataType::Uint2,
        3 => DataType::Uint3,
        4 => DataType::Uint4,
        6 => DataType::Uint6,
        _ => DataType::Uint8,
    }
}

/// Indices packed as `nbits`-bit values.
pub fn pack_indices(indices: &[u8], nbits: u8) -> Vec<u8> {
    if nbits >= 8 {
        indices.to_vec()
    } else {
        anekit_format::subbyte::pack(indices, u32::from(nbits))
    }
}

/// An op with `name`, `outputs` and parameters in `form`.
pub fn op(
    op_type: &str,
    name: &str,
    form: Form,
    params: Vec<(&str, Param)>,
    outputs: Vec<NamedValueType>,
) -> Operation {
    let mut o = Operation::new(op_type);
    o.attributes.insert("name".into(), Value::string(name));
    for (k, p) in params {
        match (form, p) {
            (Form::Ios16, Param::Value(v)) => {
                o.attributes.insert(k.into(), v);
            }
            (_, Param::Value(v)) => {
                o.inputs.insert(k.into(), Argument(vec![Binding::Value(v)]));
            }
            (_, Param::Name(n)) => {
                o.inputs.insert(k.into(), Argument(vec![Binding::Name(n)]));
            }
        }
    }
    o.outputs = outputs;
    o
}

/// An output of `dtype` and `shape`.
pub fn output(name: &str, dtype: DataType, shape: &[usize]) -> NamedValueType {
    NamedValueType::new(name, ValueType::tensor(dtype, &shape_u64(shape)))
}

/// Parameters of a linear quantization: (scale, offset) in iOS18 form.
pub fn quant_params(q: &Quantized) -> (Value, Option<Value>) {
    let scale = float_tensor(q.scale_dtype, &q.scale_shape, &q.scale);
    let offset = q
        .zero_point
        .as_ref()
        .map(|z| tensor(q.dtype.data_type(), &q.scale_shape, q.dtype.encode(z)));
    (scale, offset)
}

/// `constexpr_blockwise_shift_scale` (iOS18) of `data` (a literal or a name).
pub fn blockwise_shift_scale(
    name: &str,
    data: Param,
    q: &Quantized,
    out_dtype: FloatType,
) -> Operation {
    let (scale, offset) = quant_params(q);
    let mut params = vec![("data", data), ("scale", Param::Value(scale))];
    if let Some(o) = offset {
        params.push(("offset", Param::Value(o)));
    }
    op(
        "constexpr_blockwise_shift_scale",
        name,
        Form::Ios18,
        params,
        vec![output(name, out_dtype.data_type(), &q.shape)],
    )
}

/// `constexpr_affine_dequantize` (iOS16) of a per-tensor or per-channel quantization:
/// scale and zero point squeezed to rank 0/1 with `axis` the non-singleton axis; a zero
/// zero point is written when there is none (the op requires one). `None` if the scale has
/// more than one non-singleton axis.
pub fn affine_dequantize(name: &str, q: &Quantized) -> Option<Operation> {
    let non_single: Vec<usize> = q
        .scale_shape
        .iter()
        .enumerate()
        .filter(|(_, d)| **d > 1)
        .map(|(i, _)| i)
        .collect();
    if non_single.len() > 1 {
        return None;
    }
    let axis = non_single.first().copied().unwrap_or(0);
    let squeezed: Vec<usize> = non_single.iter().map(|&i| q.scale_shape[i]).collect();
    let zp: Vec<i32> = q
        .zero_point
        .clone()
        .unwrap_or_else(|| vec![0; q.scale.len()]);
    let dt = q.dtype.data_type();
    let params = vec![
        (
            "quantized_data",
            Param::Value(tensor(dt, &q.shape, q.dtype.pack(&q.data))),
        ),
        (
            "zero_point",
            Param::Value(tensor(dt, &squeezed, q.dtype.encode(&zp))),
        ),
        (
            "scale",
            Param::Value(float_tensor(q.scale_dtype, &squeezed, &q.scale)),
        ),
        ("axis", Param::Value(Value::int32(axis as i32))),
    ];
    Some(op(
        "constexpr_affine_dequantize",
        name,
        Form::Ios16,
        params,
        vec![output(name, q.scale_dtype.data_type(), &q.shape)],
    ))
}

/// `constexpr_lut_to_dense` with the LUT as a literal or (joint) a name. `None` for iOS16
/// when the palettization needs iOS18 (several LUTs, vectors, 3-bit indices).
pub fn lut_to_dense(
    name: &str,
    p: &Palettized,
    lut: Option<Param>,
    form: Form,
) -> Option<Operation> {
    let lut = lut.unwrap_or_else(|| Param::Value(float_tensor(p.lut_dtype, &p.lut_shape, &p.lut)));
    let out = vec![output(name, p.lut_dtype.data_type(), &p.shape)];
    match form {
        Form::Ios16 => {
            let single = p.lut_shape[..p.lut_shape.len().saturating_sub(2)]
                .iter()
                .all(|&g| g == 1);
            if !single || p.vector_axis.is_some() || p.nbits == 3 {
                return None;
            }
            let Param::Value(_) = lut else { return None };
            let entries = 1usize << p.nbits;
            let packed = pack_indices(&p.indices, p.nbits);
            let params = vec![
                (
                    "indices",
                    Param::Value(tensor(DataType::Uint8, &[packed.len()], packed)),
                ),
                (
                    "lut",
                    Param::Value(float_tensor(p.lut_dtype, &[entries], &p.lut)),
                ),
                ("shape", Param::Value(shape_param(&p.shape))),
            ];
            Some(op("constexpr_lut_to_dense", name, Form::Ios16, params, out))
        }
        Form::Ios18 => {
            let idx = tensor(
                index_dtype(p.nbits),
                &p.indices_shape,
                pack_indices(&p.indices, p.nbits),
            );
            let mut params = vec![("indices", Param::Value(idx)), ("lut", lut)];
            if let Some(a) = p.vector_axis {
                params.push(("vector_axis", Param::Value(Value::int32(a as i32))));
            }
            Some(op("constexpr_lut_to_dense", name, Form::Ios18, params, out))
        }
    }
}

/// `constexpr_sparse_to_dense` of literal non-zeros and mask.
pub fn sparse_to_dense(
    name: &str,
    nonzero: &[f32],
    mask: &[bool],
    shape: &[usize],
    dtype: FloatType,
    form: Form,
) -> Operation {
    let nz = float_tensor(dtype, &[nonzero.len()], nonzero);
    let out = vec![output(name, dtype.data_type(), shape)];
    match form {
        Form::Ios16 => {
            let packed = pack_bits(mask);
            let params = vec![
                ("nonzero_data", Param::Value(nz)),
                (
                    "mask",
                    Param::Value(tensor(DataType::Uint8, &[packed.len()], packed)),
                ),
                ("shape", Param::Value(shape_param(shape))),
            ];
            op("constexpr_sparse_to_dense", name, Form::Ios16, params, out)
        }
        Form::Ios18 => {
            let params = vec![
                ("nonzero_data", Param::Value(nz)),
                (
                    "mask",
                    Param::Value(tensor(DataType::Uint1, shape, pack_bits(mask))),
                ),
            ];
            op("constexpr_sparse_to_dense", name, Form::Ios18, params, out)
        }
    }
}

/// iOS18 `constexpr_sparse_to_dense` fed by a joint op's (mask, non-zeros) outputs.
pub fn sparse_to_dense_of(
    name: &str,
    mask: &str,
    nonzero: &str,
    shape: &[usize],
    dtype: FloatType,
) -> Operation {
    op(
        "constexpr_sparse_to_dense",
        name,
        Form::Ios18,
        vec![
            ("mask", Param::Name(mask.into())),
            ("nonzero_data", Param::Name(nonzero.into())),
        ],
        vec![output(name, dtype.data_type(), shape)],
    )
}

/// iOS18 `constexpr_lut_to_sparse`: indices of the kept elements only. Outputs
/// `<name>_0` (uint1 mask) and `<name>_1` (the non-zero values).
pub fn lut_to_sparse(name: &str, p: &Palettized, mask: &[bool], lut: Option<Param>) -> Operation {
    let lut = lut.unwrap_or_else(|| Param::Value(float_tensor(p.lut_dtype, &p.lut_shape, &p.lut)));
    let nz_idx: Vec<u8> = p
        .indices
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(i, _)| *i)
        .collect();
    let nnz = nz_idx.len();
    let mut params = vec![
        (
            "indices_mask",
            Param::Value(tensor(DataType::Uint1, &p.indices_shape, pack_bits(mask))),
        ),
        (
            "indices_nonzero_data",
            Param::Value(tensor(
                index_dtype(p.nbits),
                &[nnz],
                pack_indices(&nz_idx, p.nbits),
            )),
        ),
        ("lut", lut),
    ];
    if let Some(a) = p.vector_axis {
        params.push(("vector_axis", Param::Value(Value::int32(a as i32))));
    }
    op(
        "constexpr_lut_to_sparse",
        name,
        Form::Ios18,
        params,
        vec![
            output(&format!("{name}_0"), DataType::Uint1, &p.shape),
            output(&format!("{name}_1"), p.lut_dtype.data_type(), &[nnz]),
        ],
    )
}

/// iOS18 `constexpr_sparse_blockwise_shift_scale`: quantized kept elements. Outputs
/// `<name>_0` (uint1 mask) and `<name>_1` (dequantized non-zeros).
pub fn sparse_blockwise_shift_scale(name: &str, q: &Quantized, mask: &[bool]) -> Operation {
    let (scale, offset) = quant_params(q);
    let nz: Vec<u8> = q
        .data
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| *d)
        .collect();
    let nnz = nz.len();
    let mut params = vec![
        (
            "data_mask",
            Param::Value(tensor(DataType::Uint1, &q.shape, pack_bits(mask))),
        ),
        (
            "nonzero_data",
            Param::Value(tensor(q.dtype.data_type(), &[nnz], q.dtype.pack(&nz))),
        ),
        ("scale", Param::Value(scale)),
    ];
    if let Some(o) = offset {
        params.push(("offset", Param::Value(o)));
    }
    op(
        "constexpr_sparse_blockwise_shift_scale",
        name,
        Form::Ios18,
        params,
        vec![
            output(&format!("{name}_0"), DataType::Uint1, &q.shape),
            output(&format!("{name}_1"), q.scale_dtype.data_type(), &[nnz]),
        ],
    )
}

/// Bytes of every tensor literal of `ops` (the compressed payload).
pub fn payload_bytes(ops: &[Operation]) -> usize {
    let lit = |v: &Value| v.bytes().map_or(0, |b| b.len());
    ops.iter()
        .map(|o| {
            o.attributes
                .iter()
                .filter(|(k, _)| k.as_str() != "name")
                .map(|(_, v)| lit(v))
                .sum::<usize>()
                + o.inputs
                    .values()
                    .flat_map(|a| a.0.iter())
                    .map(|b| match b {
                        Binding::Value(v) => lit(v),
                        Binding::Name(_) => 0,
                    })
                    .sum::<usize>()
        })
        .sum()
}
