//! Helpers for the op tests: arguments, running inference, expected types.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use anekit_mil::Opset;
use anekit_mil::ops::{Arg, InferError, infer};
use anekit_mil::types::{DataType, Dim, TensorType, ValueType};
use anekit_mil::value::{Placement, Value};

pub use anekit_mil::Opset::{Ios15, Ios16, Ios17, Ios18};
pub use anekit_mil::types::DataType::{
    Bool, Fp16, Fp32, Fp64, Int4, Int8, Int16, Int32, Int64, Uint1, Uint2, Uint3, Uint4, Uint6,
    Uint8, Uint16, Uint32,
};

/// A dims list where -1 is an unknown dimension.
pub fn dims(d: &[i64]) -> Vec<Dim> {
    d.iter()
        .map(|&v| {
            if v < 0 {
                Dim::Unknown { variadic: false }
            } else {
                Dim::Fixed(v as u64)
            }
        })
        .collect()
}

/// A tensor type (-1 = unknown dim).
pub fn ty(dtype: DataType, d: &[i64]) -> ValueType {
    ValueType::Tensor(TensorType {
        dtype,
        shape: Some(dims(d)),
        attributes: BTreeMap::new(),
    })
}

/// A run-time tensor argument.
pub fn x(dtype: DataType, d: &[i64]) -> Arg {
    Arg::var(ty(dtype, d))
}

/// A constant tensor whose value is not at hand (like a `constexpr_*` output).
pub fn cx(dtype: DataType, d: &[i64]) -> Arg {
    Arg::constexpr(ty(dtype, d))
}

/// A zero-filled constant tensor with its value.
pub fn zeros(dtype: DataType, d: &[u64]) -> Arg {
    let t = TensorType::new(dtype, d);
    let n = t.element_count().unwrap();
    let bits = u64::from(dtype.bits().unwrap());
    let bytes = vec![0u8; (n * bits).div_ceil(8) as usize];
    Arg::literal(Value::tensor_bytes(t, bytes, Placement::Inline))
}

/// A constant fp32 tensor with values.
pub fn f32s(d: &[u64], v: &[f32]) -> Arg {
    Arg::literal(Value::fp32_tensor(d, v))
}

/// A constant tensor of `dtype` with these integer values (1 byte, 2, 4 bytes as needed).
pub fn ints_of(dtype: DataType, d: &[u64], v: &[i64]) -> Arg {
    let bytes: Vec<u8> = match dtype.bits().unwrap() {
        8 => v.iter().map(|x| *x as u8).collect(),
        16 => v.iter().flat_map(|x| (*x as u16).to_le_bytes()).collect(),
        32 => v.iter().flat_map(|x| (*x as u32).to_le_bytes()).collect(),
        b => {
            // sub-byte: pack LSB first
            let mut out = vec![0u8; (v.len() * b as usize).div_ceil(8)];
            for (i, x) in v.iter().enumerate() {
                for k in 0..b as usize {
                    if (*x >> k) & 1 == 1 {
                        let bit = i * b as usize + k;
                        out[bit / 8] |= 1 << (bit % 8);
                    }
                }
            }
            out
        }
    };
    Arg::literal(Value::tensor_bytes(
        TensorType::new(dtype, d),
        bytes,
        Placement::Inline,
    ))
}

/// An int32 scalar constant.
pub fn int(v: i32) -> Arg {
    Arg::literal(Value::int32(v))
}

/// An int32 vector constant.
pub fn ints(v: &[i32]) -> Arg {
    Arg::literal(Value::int32_tensor(&[v.len() as u64], v))
}

/// A bool scalar constant.
pub fn b(v: bool) -> Arg {
    Arg::literal(Value::bool(v))
}

/// A bool vector constant.
pub fn bools(v: &[bool]) -> Arg {
    let bytes: Vec<u8> = v.iter().map(|x| u8::from(*x)).collect();
    Arg::literal(Value::tensor_bytes(
        TensorType::new(Bool, &[v.len() as u64]),
        bytes,
        Placement::Inline,
    ))
}

/// An fp32 scalar constant.
pub fn f(v: f32) -> Arg {
    Arg::literal(Value::fp32(v))
}

/// An fp16 scalar constant.
pub fn h(v: f32) -> Arg {
    let bits = half::f16::from_f32(v).to_le_bytes().to_vec();
    Arg::literal(Value::tensor_bytes(
        TensorType::scalar(Fp16),
        bits,
        Placement::Inline,
    ))
}

/// A string constant.
pub fn s(v: &str) -> Arg {
    Arg::literal(Value::string(v))
}

/// Run inference with one binding per parameter.
pub fn run(op: &str, opset: Opset, args: &[(&str, Arg)]) -> Result<Vec<ValueType>, InferError> {
    let m: BTreeMap<String, Vec<Arg>> = args
        .iter()
        .map(|(k, a)| (k.to_string(), vec![a.clone()]))
        .collect();
    infer(op, opset, &m, &[]).map(|i| i.outputs)
}

/// Run inference with several bindings per parameter and nested-block output types.
pub fn run_multi(
    op: &str,
    opset: Opset,
    args: &[(&str, Vec<Arg>)],
    blocks: &[Vec<ValueType>],
) -> Result<Vec<ValueType>, InferError> {
    let m: BTreeMap<String, Vec<Arg>> = args
        .iter()
        .map(|(k, a)| (k.to_string(), a.clone()))
        .collect();
    infer(op, opset, &m, blocks).map(|i| i.outputs)
}

/// Assert the single output type.
#[track_caller]
pub fn expect1(op: &str, opset: Opset, args: &[(&str, Arg)], want: ValueType) {
    match run(op, opset, args) {
        Ok(got) => assert_eq!(got, vec![want], "{op} in {opset}"),
        Err(e) => panic!("{op} in {opset}: {e}"),
    }
}

/// Assert all output types.
#[track_caller]
pub fn expect(op: &str, opset: Opset, args: &[(&str, Arg)], want: &[ValueType]) {
    match run(op, opset, args) {
        Ok(got) => assert_eq!(got, want, "{op} in {opset}"),
        Err(e) => panic!("{op} in {opset}: {e}"),
    }
}

/// Assert an error about `param` (or any error when `param` is `None`).
#[track_caller]
pub fn expect_err(op: &str, opset: Opset, args: &[(&str, Arg)], param: Option<&str>) -> InferError {
    match run(op, opset, args) {
        Ok(got) => panic!("{op} in {opset}: expected an error, inferred {got:?}"),
        Err(e) => {
            if let Some(p) = param {
                assert_eq!(e.param(), Some(p), "{op}: {e}");
            }
            e
        }
    }
}
