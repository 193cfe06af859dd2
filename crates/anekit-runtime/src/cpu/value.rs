//! Values inside the CPU backend.
//!
//! Floating-point tensors of every width compute in f32 (fp16 rounding is applied per op
//! when fp16 precision is asked for); integer tensors in i32; bools as bool. Strings only
//! appear as constant parameters; lists are MIL list values; a state input is a marker
//! that `read_state`/`write_state` resolve against the prediction's [`State`].
//!
//! [`State`]: crate::engine::State

use anekit_mil::value::{Value as MilValue, ValueData};
use anekit_mil::{DataType, ValueType};
use ndarray::{ArrayD, IxDyn};

/// A value of the CPU backend.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Floating-point tensor (fp16/fp32/fp64/bf16 in the model).
    F32(ArrayD<f32>),
    /// Integer tensor (every integer width in the model).
    I32(ArrayD<i32>),
    /// Boolean tensor.
    Bool(ArrayD<bool>),
    /// String tensor (constant parameters such as `mode` or `dtype`).
    Str(ArrayD<String>),
    /// A MIL list.
    List(Vec<Value>),
    /// A state input, by name.
    State(String),
}

impl Value {
    /// The shape (empty for lists and states).
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::F32(a) => a.shape(),
            Value::I32(a) => a.shape(),
            Value::Bool(a) => a.shape(),
            Value::Str(a) => a.shape(),
            Value::List(_) | Value::State(_) => &[],
        }
    }

    /// Bytes of element data held (lists summed).
    pub fn nbytes(&self) -> usize {
        match self {
            Value::F32(a) => a.len() * 4,
            Value::I32(a) => a.len() * 4,
            Value::Bool(a) => a.len(),
            Value::Str(a) => a.iter().map(String::len).sum(),
            Value::List(v) => v.iter().map(Value::nbytes).sum(),
            Value::State(_) => 0,
        }
    }

    /// The same elements under `shape` (row-major order), without a copy when the tensor
    /// is in standard layout; `None` for lists and states, or when the element counts
    /// differ.
    pub fn reshaped(self, shape: &[usize]) -> Option<Value> {
        fn re<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Option<ArrayD<T>> {
            if a.len() != shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))? {
                return None;
            }
            let a = if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            };
            a.into_shape_with_order(IxDyn(shape)).ok()
        }
        Some(match self {
            Value::F32(a) => Value::F32(re(a, shape)?),
            Value::I32(a) => Value::I32(re(a, shape)?),
            Value::Bool(a) => Value::Bool(re(a, shape)?),
            Value::Str(a) => Value::Str(re(a, shape)?),
            Value::List(_) | Value::State(_) => return None,
        })
    }

    /// The number of elements of a tensor (0 for lists and states).
    pub fn element_count(&self) -> usize {
        match self {
            Value::F32(a) => a.len(),
            Value::I32(a) => a.len(),
            Value::Bool(a) => a.len(),
            Value::Str(a) => a.len(),
            Value::List(_) | Value::State(_) => 0,
        }
    }

    /// A short description for messages: `f32[1, 64]`.
    pub fn describe(&self) -> String {
        match self {
            Value::F32(a) => format!("f32{:?}", a.shape()),
            Value::I32(a) => format!("i32{:?}", a.shape()),
            Value::Bool(a) => format!("bool{:?}", a.shape()),
            Value::Str(a) => format!("string{:?}", a.shape()),
            Value::List(v) => format!("list[{}]", v.len()),
            Value::State(n) => format!("state {n:?}"),
        }
    }

    /// The f32 tensor, or an error naming what it is instead.
    pub fn f32(&self) -> Result<&ArrayD<f32>, String> {
        match self {
            Value::F32(a) => Ok(a),
            v => Err(format!(
                "expected a floating-point tensor, got {}",
                v.describe()
            )),
        }
    }

    /// The i32 tensor, or an error naming what it is instead.
    pub fn i32(&self) -> Result<&ArrayD<i32>, String> {
        match self {
            Value::I32(a) => Ok(a),
            v => Err(format!("expected an integer tensor, got {}", v.describe())),
        }
    }

    /// The bool tensor, or an error naming what it is instead.
    pub fn bool(&self) -> Result<&ArrayD<bool>, String> {
        match self {
            Value::Bool(a) => Ok(a),
            v => Err(format!("expected a bool tensor, got {}", v.describe())),
        }
    }

    /// Integer elements as i64 (ints and bools), row-major.
    pub fn to_i64s(&self) -> Result<Vec<i64>, String> {
        match self {
            Value::I32(a) => Ok(a.iter().map(|&v| i64::from(v)).collect()),
            Value::Bool(a) => Ok(a.iter().map(|&v| i64::from(v)).collect()),
            Value::F32(a) if a.iter().all(|v| v.fract() == 0.0) => {
                Ok(a.iter().map(|&v| v as i64).collect())
            }
            v => Err(format!("expected integers, got {}", v.describe())),
        }
    }

    /// Elements as f32 (floats, ints, bools), row-major.
    pub fn to_f32s(&self) -> Result<Vec<f32>, String> {
        match self {
            Value::F32(a) => Ok(a.iter().copied().collect()),
            Value::I32(a) => Ok(a.iter().map(|&v| v as f32).collect()),
            Value::Bool(a) => Ok(a.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect()),
            v => Err(format!("expected numbers, got {}", v.describe())),
        }
    }

    /// The single string of a string scalar.
    pub fn as_str(&self) -> Result<&str, String> {
        match self {
            Value::Str(a) if a.len() == 1 => a.iter().next().map(String::as_str).ok_or_default(),
            v => Err(format!("expected a string, got {}", v.describe())),
        }
    }

    /// Convert a MIL constant (compressed weights must be decompressed first).
    pub fn from_mil(v: &MilValue) -> Result<Value, String> {
        match (&v.ty, &v.data) {
            (ValueType::Tensor(t), ValueData::Tensor(_)) => {
                let shape: Vec<usize> = t
                    .fixed_shape()
                    .ok_or_else(|| format!("constant of type {t} has no fixed shape"))?
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} too large")))
                    .collect::<Result<_, _>>()?;
                let mk = |e: ndarray::ShapeError| e.to_string();
                Ok(match t.dtype {
                    DataType::String => Value::Str(
                        ArrayD::from_shape_vec(
                            IxDyn(&shape),
                            v.strings().ok_or("string data missing")?.to_vec(),
                        )
                        .map_err(mk)?,
                    ),
                    DataType::Bool => Value::Bool(
                        ArrayD::from_shape_vec(
                            IxDyn(&shape),
                            v.bytes()
                                .ok_or("bool data missing")?
                                .iter()
                                .map(|&b| b != 0)
                                .collect(),
                        )
                        .map_err(mk)?,
                    ),
                    d if d.is_float() => Value::F32(
                        ArrayD::from_shape_vec(
                            IxDyn(&shape),
                            v.to_f32_vec()
                                .ok_or_else(|| format!("cannot read {d} data"))?,
                        )
                        .map_err(mk)?,
                    ),
                    d => {
                        let ints = v
                            .to_i64_vec()
                            .ok_or_else(|| format!("cannot read {d} data"))?;
                        let ints = ints
                            .into_iter()
                            .map(|x| {
                                i32::try_from(x).map_err(|_| {
                                    format!("{d} value {x} does not fit the CPU backend's int32")
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Value::I32(ArrayD::from_shape_vec(IxDyn(&shape), ints).map_err(mk)?)
                    }
                })
            }
            (ValueType::List { .. }, ValueData::List(items)) => Ok(Value::List(
                items
                    .iter()
                    .map(Value::from_mil)
                    .collect::<Result<_, _>>()?,
            )),
            (ty, _) => Err(format!("constant of type {ty} is not supported")),
        }
    }
}

trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, String>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, String> {
        self.ok_or_else(|| "empty".to_string())
    }
}
