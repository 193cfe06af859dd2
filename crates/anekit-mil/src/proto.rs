//! Lossless conversion between the IR and the MIL protobuf (`MILSpec`).
//!
//! Reading resolves every `BlobFileValue` through a [`BlobSource`] into a view of the mapped
//! weight file (no copy) and checks its element type and count against the declared type.
//! Immediate tensors are normalised to raw little-endian bytes whichever `TensorValue` arm
//! they were written in; writing uses the arm coremltools uses for each type
//! (`backend/mil/helper.py`), so a file written by coremltools converts back to the same
//! protobuf.

use std::collections::{BTreeMap, HashMap};

use anekit_format::blob::BlobDataType;
use anekit_format::proto::mil_spec as pb;
use anekit_format::weights::BlobSource;
use anekit_format::{BlobWriter, subbyte};
use half::{bf16, f16};

use crate::error::{MilError, Result};
use crate::program::{Argument, Binding, Block, Function, Operation, Program};
use crate::types::{DataType, Dim, NamedValueType, TensorType, ValueType};
use crate::value::{BlobRef, Placement, Storage, TensorData, Value, ValueData};

/// The file name coremltools (and anekit) write into `BlobFileValue.fileName`.
pub const DEFAULT_WEIGHT_FILE: &str = "@model_path/weights/weight.bin";

/// Location of the thing being converted, for error messages (`function main / op conv_0 /
/// input weight`).
#[derive(Clone, Default)]
struct Ctx(Vec<String>);

impl Ctx {
    fn with(&self, part: impl Into<String>) -> Ctx {
        let mut v = self.0.clone();
        v.push(part.into());
        Ctx(v)
    }
    fn err(&self, message: impl Into<String>) -> MilError {
        MilError::invalid(self.to_string(), message)
    }
}

impl std::fmt::Display for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("program");
        }
        f.write_str(&self.0.join(" / "))
    }
}

// ------------------------------------------------------------------------------------------
// protobuf → IR
// ------------------------------------------------------------------------------------------

/// Convert a protobuf program, resolving weights through `weights`.
pub fn program_from_proto(p: &pb::Program, weights: &dyn BlobSource) -> Result<Program> {
    let r = Reader { weights };
    let ctx = Ctx::default();
    let mut functions = BTreeMap::new();
    for (name, f) in &p.functions {
        functions.insert(
            name.clone(),
            r.function(f, &ctx.with(format!("function {name}")))?,
        );
    }
    Ok(Program {
        version: p.version,
        functions,
        doc: p.doc_string.clone(),
        attributes: r.attributes(&p.attributes, &ctx.with("attributes"))?,
    })
}

struct Reader<'a> {
    weights: &'a dyn BlobSource,
}

impl Reader<'_> {
    fn function(&self, f: &pb::Function, ctx: &Ctx) -> Result<Function> {
        let mut blocks = BTreeMap::new();
        for (opset, b) in &f.block_specializations {
            blocks.insert(
                opset.clone(),
                self.block(b, &ctx.with(format!("block {opset}")))?,
            );
        }
        Ok(Function {
            inputs: self.named_types(&f.inputs, &ctx.with("inputs"))?,
            opset: f.opset.clone(),
            blocks,
            attributes: self.attributes(&f.attributes, &ctx.with("attributes"))?,
        })
    }

    fn block(&self, b: &pb::Block, ctx: &Ctx) -> Result<Block> {
        let operations = b
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let label = op_label(op).unwrap_or_else(|| format!("#{i}"));
                self.operation(op, &ctx.with(format!("op {label} ({})", op.r#type)))
            })
            .collect::<Result<_>>()?;
        Ok(Block {
            inputs: self.named_types(&b.inputs, &ctx.with("inputs"))?,
            outputs: b.outputs.clone(),
            operations,
            attributes: self.attributes(&b.attributes, &ctx.with("attributes"))?,
        })
    }

    fn operation(&self, op: &pb::Operation, ctx: &Ctx) -> Result<Operation> {
        let mut inputs = BTreeMap::new();
        for (param, arg) in &op.inputs {
            let c = ctx.with(format!("input {param}"));
            let bindings = arg
                .arguments
                .iter()
                .map(|b| match &b.binding {
                    Some(pb::argument::binding::Binding::Name(n)) => Ok(Binding::Name(n.clone())),
                    Some(pb::argument::binding::Binding::Value(v)) => {
                        Ok(Binding::Value(self.value(v, &c)?))
                    }
                    None => Err(c.err("binding has neither a name nor a value")),
                })
                .collect::<Result<_>>()?;
            inputs.insert(param.clone(), Argument(bindings));
        }
        Ok(Operation {
            op_type: op.r#type.clone(),
            inputs,
            outputs: self.named_types(&op.outputs, &ctx.with("outputs"))?,
            blocks: op
                .blocks
                .iter()
                .enumerate()
                .map(|(i, b)| self.block(b, &ctx.with(format!("block {i}"))))
                .collect::<Result<_>>()?,
            attributes: self.attributes(&op.attributes, ctx)?,
        })
    }

    fn attributes(
        &self,
        a: &BTreeMap<String, pb::Value>,
        ctx: &Ctx,
    ) -> Result<BTreeMap<String, Value>> {
        a.iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    self.value(v, &ctx.with(format!("attribute {k}")))?,
                ))
            })
            .collect()
    }

    fn named_types(&self, v: &[pb::NamedValueType], ctx: &Ctx) -> Result<Vec<NamedValueType>> {
        v.iter()
            .map(|n| {
                let c = ctx.with(n.name.clone());
                let ty = n.r#type.as_ref().ok_or_else(|| c.err("missing type"))?;
                Ok(NamedValueType {
                    name: n.name.clone(),
                    ty: self.value_type(ty, &c)?,
                })
            })
            .collect()
    }

    fn value_type(&self, t: &pb::ValueType, ctx: &Ctx) -> Result<ValueType> {
        use pb::value_type::Type as T;
        let missing = |what: &str| ctx.err(format!("{what} is missing"));
        Ok(
            match t.r#type.as_ref().ok_or_else(|| missing("ValueType.type"))? {
                T::TensorType(tt) => ValueType::Tensor(self.tensor_type(tt, ctx)?),
                T::ListType(l) => ValueType::List {
                    element: Box::new(
                        self.value_type(
                            l.r#type
                                .as_deref()
                                .ok_or_else(|| missing("ListType.type"))?,
                            ctx,
                        )?,
                    ),
                    length: l
                        .length
                        .as_ref()
                        .map(|d| dim(d, ctx))
                        .transpose()?
                        .unwrap_or(Dim::Unknown { variadic: false }),
                },
                T::TupleType(tt) => ValueType::Tuple(
                    tt.types
                        .iter()
                        .map(|t| self.value_type(t, ctx))
                        .collect::<Result<_>>()?,
                ),
                T::DictionaryType(d) => ValueType::Dict {
                    key: Box::new(
                        self.value_type(
                            d.key_type
                                .as_deref()
                                .ok_or_else(|| missing("DictionaryType.keyType"))?,
                            ctx,
                        )?,
                    ),
                    value: Box::new(
                        self.value_type(
                            d.value_type
                                .as_deref()
                                .ok_or_else(|| missing("DictionaryType.valueType"))?,
                            ctx,
                        )?,
                    ),
                },
                T::StateType(s) => ValueType::State(Box::new(
                    self.value_type(
                        s.wrapped_type
                            .as_deref()
                            .ok_or_else(|| missing("StateType.wrappedType"))?,
                        ctx,
                    )?,
                )),
            },
        )
    }

    fn tensor_type(&self, t: &pb::TensorType, ctx: &Ctx) -> Result<TensorType> {
        let dtype = DataType::from_proto(t.data_type).ok_or_else(|| {
            ctx.err(format!(
                "TensorType.dataType {} is not a known data type",
                t.data_type
            ))
        })?;
        let shape = if t.rank < 0 {
            if !t.dimensions.is_empty() {
                return Err(ctx.err("TensorType has unknown rank but lists dimensions"));
            }
            None
        } else {
            if t.rank as u64 != t.dimensions.len() as u64 {
                return Err(ctx.err(format!(
                    "TensorType.rank is {} but {} dimensions are given",
                    t.rank,
                    t.dimensions.len()
                )));
            }
            Some(
                t.dimensions
                    .iter()
                    .map(|d| dim(d, ctx))
                    .collect::<Result<_>>()?,
            )
        };
        Ok(TensorType {
            dtype,
            shape,
            attributes: self.attributes(&t.attributes, &ctx.with("type attributes"))?,
        })
    }

    fn value(&self, v: &pb::Value, ctx: &Ctx) -> Result<Value> {
        let ty = self.value_type(
            v.r#type
                .as_ref()
                .ok_or_else(|| ctx.err("Value.type is missing"))?,
            ctx,
        )?;
        let data = match &v.value {
            None => ValueData::None,
            Some(pb::value::Value::ImmediateValue(iv)) => self.immediate(iv, &ty, ctx)?,
            Some(pb::value::Value::BlobFileValue(bv)) => self.blob_value(bv, &ty, ctx)?,
        };
        let value = Value {
            ty,
            data,
            doc: v.doc_string.clone(),
        };
        value.validate().map_err(|m| ctx.err(m))?;
        Ok(value)
    }

    fn blob_value(
        &self,
        bv: &pb::value::BlobFileValue,
        ty: &ValueType,
        ctx: &Ctx,
    ) -> Result<ValueData> {
        let tt = ty
            .as_tensor()
            .ok_or_else(|| ctx.err("a weight-file value must have a tensor type"))?;
        let expected = tt
            .dtype
            .blob_type()
            .ok_or_else(|| ctx.err(format!("{} cannot be stored in a weight file", tt.dtype)))?;
        let n = tt
            .element_count()
            .ok_or_else(|| ctx.err(format!("weight of type {tt} has no fixed element count")))?;
        let blob = self
            .weights
            .blob(&bv.file_name, bv.offset)
            .map_err(MilError::Format)?;
        if blob.dtype != expected {
            return Err(ctx.err(format!(
                "weight at offset {} of {} is {:?} but the value is declared {}",
                bv.offset, bv.file_name, blob.dtype, tt
            )));
        }
        if blob.element_count() != n
            || (expected.is_sub_byte()
                && blob.padding_bits != subbyte::padding_bits(n as usize, expected.bits()))
        {
            return Err(ctx.err(format!(
                "weight at offset {} of {} holds {} elements (padding {} bits) but the value is declared {}",
                bv.offset,
                bv.file_name,
                blob.element_count(),
                blob.padding_bits,
                tt
            )));
        }
        Ok(ValueData::Tensor(TensorData {
            storage: Storage::Bytes(blob.data),
            placement: Placement::Blob {
                source: Some(BlobRef {
                    file: bv.file_name.clone(),
                    offset: bv.offset,
                }),
            },
        }))
    }

    fn immediate(
        &self,
        iv: &pb::value::ImmediateValue,
        ty: &ValueType,
        ctx: &Ctx,
    ) -> Result<ValueData> {
        use pb::value::immediate_value::Value as I;
        let Some(v) = &iv.value else {
            return Ok(ValueData::None);
        };
        Ok(match v {
            I::Tensor(t) => {
                let tt = ty
                    .as_tensor()
                    .ok_or_else(|| ctx.err("tensor value with a non-tensor type"))?;
                ValueData::Tensor(TensorData {
                    storage: tensor_storage(t, tt.dtype, ctx)?,
                    placement: Placement::Inline,
                })
            }
            I::Tuple(t) => ValueData::Tuple(self.values(&t.values, ctx)?),
            I::List(l) => ValueData::List(self.values(&l.values, ctx)?),
            I::Dictionary(d) => ValueData::Dict(
                d.values
                    .iter()
                    .map(|kv| {
                        let k = kv
                            .key
                            .as_ref()
                            .ok_or_else(|| ctx.err("dictionary entry without key"))?;
                        let v = kv
                            .value
                            .as_ref()
                            .ok_or_else(|| ctx.err("dictionary entry without value"))?;
                        Ok((self.value(k, ctx)?, self.value(v, ctx)?))
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }

    fn values(&self, vs: &[pb::Value], ctx: &Ctx) -> Result<Vec<Value>> {
        vs.iter()
            .enumerate()
            .map(|(i, v)| self.value(v, &ctx.with(format!("[{i}]"))))
            .collect()
    }
}

fn op_label(op: &pb::Operation) -> Option<String> {
    use pb::value::Value as V;
    let v = op.attributes.get("name")?;
    let Some(V::ImmediateValue(iv)) = &v.value else {
        return None;
    };
    let Some(pb::value::immediate_value::Value::Tensor(t)) = &iv.value else {
        return None;
    };
    match &t.value {
        Some(pb::tensor_value::Value::Strings(s)) => s.values.first().cloned(),
        _ => None,
    }
}

fn dim(d: &pb::Dimension, ctx: &Ctx) -> Result<Dim> {
    match &d.dimension {
        Some(pb::dimension::Dimension::Constant(c)) => Ok(Dim::Fixed(c.size)),
        Some(pb::dimension::Dimension::Unknown(u)) => Ok(Dim::Unknown {
            variadic: u.variadic,
        }),
        None => Err(ctx.err("Dimension has neither a size nor is marked unknown")),
    }
}

/// Encode numbers of any arm into the little-endian bytes of `dtype`, checking range.
fn tensor_storage(t: &pb::TensorValue, dtype: DataType, ctx: &Ctx) -> Result<Storage> {
    use pb::tensor_value::Value as A;
    let mismatch = |arm: &str| {
        ctx.err(format!(
            "a {dtype} tensor cannot be stored in TensorValue.{arm}"
        ))
    };
    let out_of_range =
        |v: &dyn std::fmt::Display| ctx.err(format!("value {v} is out of range for {dtype}"));
    let Some(arm) = &t.value else {
        return Ok(if dtype == DataType::String {
            Storage::Strings(Vec::new())
        } else {
            Storage::Bytes(Default::default())
        });
    };
    let bytes: Vec<u8> = match arm {
        A::Strings(s) => {
            return if dtype == DataType::String {
                Ok(Storage::Strings(s.values.clone()))
            } else {
                Err(mismatch("strings"))
            };
        }
        A::Bytes(b) => {
            if dtype == DataType::String {
                return Err(mismatch("bytes"));
            }
            b.values.clone()
        }
        A::Floats(f) => match dtype {
            DataType::Fp32 => f.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Fp16 => f
                .values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
            DataType::Bf16 => f
                .values
                .iter()
                .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                .collect(),
            DataType::Fp64 => f
                .values
                .iter()
                .flat_map(|v| f64::from(*v).to_le_bytes())
                .collect(),
            _ => return Err(mismatch("floats")),
        },
        A::Doubles(d) => match dtype {
            DataType::Fp64 => d.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Fp32 => d
                .values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
            _ => return Err(mismatch("doubles")),
        },
        A::Bools(b) => match dtype {
            DataType::Bool => b.values.iter().map(|&v| u8::from(v)).collect(),
            _ => return Err(mismatch("bools")),
        },
        A::Ints(i) => ints_to_bytes(
            i.values.iter().map(|&v| i64::from(v)),
            dtype,
            ctx,
            &out_of_range,
        )
        .ok_or_else(|| mismatch("ints"))??,
        A::LongInts(i) => ints_to_bytes(i.values.iter().copied(), dtype, ctx, &out_of_range)
            .ok_or_else(|| mismatch("longInts"))??,
    };
    Ok(Storage::Bytes(bytes.into()))
}

/// `None` when `dtype` is not an integer type an int arm can hold.
fn ints_to_bytes(
    values: impl Iterator<Item = i64>,
    dtype: DataType,
    _ctx: &Ctx,
    out_of_range: &dyn Fn(&dyn std::fmt::Display) -> MilError,
) -> Option<Result<Vec<u8>>> {
    let (lo, hi, width): (i128, i128, usize) = match dtype {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into(), 1),
        DataType::Uint8 => (0, u8::MAX.into(), 1),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into(), 2),
        DataType::Uint16 => (0, u16::MAX.into(), 2),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into(), 4),
        DataType::Uint32 => (0, u32::MAX.into(), 4),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into(), 8),
        // uint64 travels through int64 by its bit pattern.
        DataType::Uint64 => (i64::MIN.into(), i64::MAX.into(), 8),
        DataType::Bool => (0, 1, 1),
        _ => return None,
    };
    let mut out = Vec::new();
    for v in values {
        if i128::from(v) < lo || i128::from(v) > hi {
            return Some(Err(out_of_range(&v)));
        }
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    Some(Ok(out))
}

// ------------------------------------------------------------------------------------------
// IR → protobuf
// ------------------------------------------------------------------------------------------

/// Where the writer puts tensors that go to a weight file.
pub trait BlobSink {
    /// Store a blob and return the offset of its metadata record.
    fn append(
        &mut self,
        dtype: BlobDataType,
        data: &[u8],
        padding_bits: u64,
    ) -> std::io::Result<u64>;
}

impl<W: std::io::Write + std::io::Seek> BlobSink for BlobWriter<W> {
    fn append(
        &mut self,
        dtype: BlobDataType,
        data: &[u8],
        padding_bits: u64,
    ) -> std::io::Result<u64> {
        BlobWriter::append(self, dtype, data, padding_bits)
    }
}

/// A sink for programs that must not reference a weight file: any blob is an error.
pub struct NoBlobs;

impl BlobSink for NoBlobs {
    fn append(&mut self, _: BlobDataType, _: &[u8], _: u64) -> std::io::Result<u64> {
        Err(std::io::Error::other(
            "this program has weights but no weight file is being written",
        ))
    }
}

/// Options for [`program_to_proto`].
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// The file name written into every `BlobFileValue`.
    pub weight_file: String,
    /// Specification version of the model being written: from 9 (iOS18) coremltools also
    /// moves int16/uint16/int32/uint32 constants of [`Placement::Auto`] to the weight file.
    pub spec_version: i32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            weight_file: DEFAULT_WEIGHT_FILE.to_string(),
            spec_version: 9,
        }
    }
}

/// Convert a program to protobuf, appending weights to `sink`.
///
/// Tensors read from a weight file go back to it (a blob shared by several constants, as
/// in multifunction models, is written once); inline tensors stay inline; tensors with
/// [`Placement::Auto`] follow coremltools' rule (≥ 10 elements of fp16, fp32, int8 or
/// uint8 — plus 16/32-bit integers from spec 9 — and every sub-byte tensor go to the file).
pub fn program_to_proto(
    p: &Program,
    sink: &mut dyn BlobSink,
    options: &WriteOptions,
) -> Result<pb::Program> {
    let mut w = Writer {
        sink,
        options,
        written: HashMap::new(),
    };
    let ctx = Ctx::default();
    // Weights read from a file are written first, in their original order, so that an
    // unmodified program gets a byte-identical weight file (and identical offsets).
    let mut sourced: Vec<(&BlobRef, &TensorType, &TensorData)> = Vec::new();
    visit_program_values(p, &mut |v| {
        if let (Some(tt), ValueData::Tensor(td)) = (v.ty.as_tensor(), &v.data)
            && let Placement::Blob { source: Some(r) } = &td.placement
        {
            sourced.push((r, tt, td));
        }
    });
    sourced.sort_by(|a, b| (&a.0.file, a.0.offset).cmp(&(&b.0.file, b.0.offset)));
    for (r, tt, td) in sourced {
        w.blob(
            tt,
            td,
            &ctx.with(format!("weight at offset {} of {}", r.offset, r.file)),
        )?;
    }
    let mut functions = BTreeMap::new();
    for (name, f) in &p.functions {
        functions.insert(
            name.clone(),
            w.function(f, &ctx.with(format!("function {name}")))?,
        );
    }
    Ok(pb::Program {
        version: p.version,
        functions,
        doc_string: p.doc.clone(),
        attributes: w.attributes(&p.attributes, &ctx)?,
    })
}

/// Call `f` on every value of the program: attributes at every level and literal inputs,
/// nested blocks included (not type attributes).
fn visit_program_values<'a>(p: &'a Program, f: &mut impl FnMut(&'a Value)) {
    fn block<'a>(b: &'a Block, f: &mut impl FnMut(&'a Value)) {
        b.attributes.values().for_each(&mut *f);
        for op in &b.operations {
            op.attributes.values().for_each(&mut *f);
            for arg in op.inputs.values() {
                for binding in &arg.0 {
                    if let Binding::Value(v) = binding {
                        f(v);
                    }
                }
            }
            op.blocks.iter().for_each(|b| block(b, f));
        }
    }
    p.attributes.values().for_each(&mut *f);
    for func in p.functions.values() {
        func.attributes.values().for_each(&mut *f);
        func.blocks.values().for_each(|b| block(b, f));
    }
}

struct Writer<'a> {
    sink: &'a mut dyn BlobSink,
    options: &'a WriteOptions,
    /// Blobs already written, by where they were read from → new offset.
    written: HashMap<(String, u64), u64>,
}

impl Writer<'_> {
    fn function(&mut self, f: &Function, ctx: &Ctx) -> Result<pb::Function> {
        let mut block_specializations = BTreeMap::new();
        for (opset, b) in &f.blocks {
            block_specializations.insert(
                opset.clone(),
                self.block(b, &ctx.with(format!("block {opset}")))?,
            );
        }
        Ok(pb::Function {
            inputs: named_types(&f.inputs),
            opset: f.opset.clone(),
            block_specializations,
            attributes: self.attributes(&f.attributes, ctx)?,
        })
    }

    fn block(&mut self, b: &Block, ctx: &Ctx) -> Result<pb::Block> {
        Ok(pb::Block {
            inputs: named_types(&b.inputs),
            outputs: b.outputs.clone(),
            operations: b
                .operations
                .iter()
                .map(|op| self.operation(op, &ctx.with(format!("op {}", op.display_name()))))
                .collect::<Result<_>>()?,
            attributes: self.attributes(&b.attributes, ctx)?,
        })
    }

    fn operation(&mut self, op: &Operation, ctx: &Ctx) -> Result<pb::Operation> {
        use pb::argument::binding::Binding as B;
        let mut inputs = BTreeMap::new();
        for (param, arg) in &op.inputs {
            let c = ctx.with(format!("input {param}"));
            let arguments = arg
                .0
                .iter()
                .map(|b| {
                    Ok(pb::argument::Binding {
                        binding: Some(match b {
                            Binding::Name(n) => B::Name(n.clone()),
                            Binding::Value(v) => B::Value(self.value(v, &c)?),
                        }),
                    })
                })
                .collect::<Result<_>>()?;
            inputs.insert(param.clone(), pb::Argument { arguments });
        }
        Ok(pb::Operation {
            r#type: op.op_type.clone(),
            inputs,
            outputs: named_types(&op.outputs),
            blocks: op
                .blocks
                .iter()
                .map(|b| self.block(b, ctx))
                .collect::<Result<_>>()?,
            attributes: self.attributes(&op.attributes, ctx)?,
        })
    }

    fn attributes(
        &mut self,
        a: &BTreeMap<String, Value>,
        ctx: &Ctx,
    ) -> Result<BTreeMap<String, pb::Value>> {
        a.iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    self.value(v, &ctx.with(format!("attribute {k}")))?,
                ))
            })
            .collect()
    }

    fn value(&mut self, v: &Value, ctx: &Ctx) -> Result<pb::Value> {
        use pb::value::immediate_value::Value as I;
        v.validate().map_err(|m| ctx.err(m))?;
        let imm = |x: I| {
            Some(pb::value::Value::ImmediateValue(
                pb::value::ImmediateValue { value: Some(x) },
            ))
        };
        let value = match &v.data {
            ValueData::None => None,
            ValueData::Tensor(td) => {
                let tt =
                    v.ty.as_tensor()
                        .ok_or_else(|| ctx.err("tensor data with a non-tensor type"))?;
                if self.goes_to_blob(tt, td) {
                    Some(pb::value::Value::BlobFileValue(self.blob(tt, td, ctx)?))
                } else {
                    imm(I::Tensor(tensor_value(tt.dtype, &td.storage)))
                }
            }
            ValueData::Tuple(vs) => imm(I::Tuple(pb::TupleValue {
                values: self.values(vs, ctx)?,
            })),
            ValueData::List(vs) => imm(I::List(pb::ListValue {
                values: self.values(vs, ctx)?,
            })),
            ValueData::Dict(kvs) => imm(I::Dictionary(pb::DictionaryValue {
                values: kvs
                    .iter()
                    .map(|(k, v)| {
                        Ok(pb::dictionary_value::KeyValuePair {
                            key: Some(self.value(k, ctx)?),
                            value: Some(self.value(v, ctx)?),
                        })
                    })
                    .collect::<Result<_>>()?,
            })),
        };
        Ok(pb::Value {
            doc_string: v.doc.clone(),
            r#type: Some(value_type(&v.ty)),
            value,
        })
    }

    fn values(&mut self, vs: &[Value], ctx: &Ctx) -> Result<Vec<pb::Value>> {
        vs.iter().map(|v| self.value(v, ctx)).collect()
    }

    fn goes_to_blob(&self, tt: &TensorType, td: &TensorData) -> bool {
        let Some(_) = tt.dtype.blob_type() else {
            return false;
        };
        match td.placement {
            Placement::Inline => false,
            Placement::Blob { .. } => true,
            Placement::Auto => {
                use DataType as D;
                let n = tt.element_count().unwrap_or(0);
                tt.dtype.is_sub_byte()
                    || (n >= 10
                        && (matches!(tt.dtype, D::Fp16 | D::Fp32 | D::Int8 | D::Uint8)
                            || (self.options.spec_version >= 9
                                && matches!(
                                    tt.dtype,
                                    D::Int16 | D::Uint16 | D::Int32 | D::Uint32
                                ))))
            }
        }
    }

    fn blob(
        &mut self,
        tt: &TensorType,
        td: &TensorData,
        ctx: &Ctx,
    ) -> Result<pb::value::BlobFileValue> {
        let Storage::Bytes(bytes) = &td.storage else {
            return Err(ctx.err("strings cannot go to a weight file"));
        };
        let dtype = tt
            .dtype
            .blob_type()
            .ok_or_else(|| ctx.err(format!("{} cannot go to a weight file", tt.dtype)))?;
        let key = match &td.placement {
            Placement::Blob { source: Some(r) } => Some((r.file.clone(), r.offset)),
            _ => None,
        };
        let offset = match key.as_ref().and_then(|k| self.written.get(k)) {
            Some(&o) => o,
            None => {
                let n = tt.element_count().unwrap_or(0) as usize;
                let padding = if dtype.is_sub_byte() {
                    subbyte::padding_bits(n, dtype.bits())
                } else {
                    0
                };
                let o = self
                    .sink
                    .append(dtype, bytes, padding)
                    .map_err(|e| ctx.err(format!("writing weight: {e}")))?;
                if let Some(k) = key {
                    self.written.insert(k, o);
                }
                o
            }
        };
        Ok(pb::value::BlobFileValue {
            file_name: self.options.weight_file.clone(),
            offset,
        })
    }
}

fn named_types(v: &[NamedValueType]) -> Vec<pb::NamedValueType> {
    v.iter()
        .map(|n| pb::NamedValueType {
            name: n.name.clone(),
            r#type: Some(value_type(&n.ty)),
        })
        .collect()
}

fn value_type(t: &ValueType) -> pb::ValueType {
    use pb::value_type::Type as T;
    let ty = match t {
        ValueType::Tensor(tt) => T::TensorType(tensor_type(tt)),
        ValueType::List { element, length } => T::ListType(Box::new(pb::ListType {
            r#type: Some(Box::new(value_type(element))),
            length: Some(dimension(*length)),
        })),
        ValueType::Tuple(ts) => T::TupleType(pb::TupleType {
            types: ts.iter().map(value_type).collect(),
        }),
        ValueType::Dict { key, value } => T::DictionaryType(Box::new(pb::DictionaryType {
            key_type: Some(Box::new(value_type(key))),
            value_type: Some(Box::new(value_type(value))),
        })),
        ValueType::State(w) => T::StateType(Box::new(pb::StateType {
            wrapped_type: Some(Box::new(value_type(w))),
        })),
    };
    pb::ValueType { r#type: Some(ty) }
}

fn tensor_type(t: &TensorType) -> pb::TensorType {
    let (rank, dimensions) = match &t.shape {
        None => (-1, Vec::new()),
        Some(dims) => (
            dims.len() as i64,
            dims.iter().copied().map(dimension).collect(),
        ),
    };
    // Type attributes never hold weights; a failure to convert one cannot happen, but stay total.
    let attributes = t
        .attributes
        .iter()
        .filter_map(|(k, v)| {
            let mut w = Writer {
                sink: &mut NoBlobs,
                options: &WriteOptions::default(),
                written: HashMap::new(),
            };
            w.value(v, &Ctx::default()).ok().map(|pv| (k.clone(), pv))
        })
        .collect();
    pb::TensorType {
        data_type: t.dtype.to_proto() as i32,
        rank,
        dimensions,
        attributes,
    }
}

fn dimension(d: Dim) -> pb::Dimension {
    use pb::dimension as d_;
    pb::Dimension {
        dimension: Some(match d {
            Dim::Fixed(size) => d_::Dimension::Constant(d_::ConstantDimension { size }),
            Dim::Unknown { variadic } => d_::Dimension::Unknown(d_::UnknownDimension { variadic }),
        }),
    }
}

/// The `TensorValue` arm coremltools writes for each type (`_tensor_field_by_type`).
fn tensor_value(dtype: DataType, storage: &Storage) -> pb::TensorValue {
    use pb::tensor_value as tv;
    let bytes = match storage {
        Storage::Strings(s) => {
            return pb::TensorValue {
                value: Some(tv::Value::Strings(tv::RepeatedStrings {
                    values: s.clone(),
                })),
            };
        }
        Storage::Bytes(b) => b,
    };
    let chunks = |n: usize| bytes.chunks_exact(n);
    let value = match dtype {
        DataType::Bool => tv::Value::Bools(tv::RepeatedBools {
            values: bytes.iter().map(|&b| b != 0).collect(),
        }),
        DataType::Fp32 => tv::Value::Floats(tv::RepeatedFloats {
            values: chunks(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }),
        DataType::Fp64 => tv::Value::Doubles(tv::RepeatedDoubles {
            values: chunks(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        }),
        DataType::Int64 | DataType::Uint64 => tv::Value::LongInts(tv::RepeatedLongInts {
            values: chunks(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        }),
        DataType::Int32 => tv::Value::Ints(tv::RepeatedInts {
            values: chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }),
        DataType::Int16 => tv::Value::Ints(tv::RepeatedInts {
            values: chunks(2)
                .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
        }),
        DataType::Uint16 => tv::Value::Ints(tv::RepeatedInts {
            values: chunks(2)
                .map(|c| i32::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        }),
        _ => tv::Value::Bytes(tv::RepeatedBytes {
            values: bytes.to_vec(),
        }),
    };
    pb::TensorValue { value: Some(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anekit_format::BlobFile;
    use anekit_format::weights::WeightStore;
    use std::io::Cursor;

    fn tensor_pb(dtype: DataType, dims: &[u64], value: pb::tensor_value::Value) -> pb::Value {
        pb::Value {
            doc_string: String::new(),
            r#type: Some(value_type(&ValueType::tensor(dtype, dims))),
            value: Some(pb::value::Value::ImmediateValue(
                pb::value::ImmediateValue {
                    value: Some(pb::value::immediate_value::Value::Tensor(pb::TensorValue {
                        value: Some(value),
                    })),
                },
            )),
        }
    }

    fn const_op(name: &str, out_ty: &ValueType, val: pb::Value) -> pb::Operation {
        let mut attributes = BTreeMap::new();
        attributes.insert(
            "name".into(),
            tensor_pb(
                DataType::String,
                &[],
                pb::tensor_value::Value::Strings(pb::tensor_value::RepeatedStrings {
                    values: vec![name.into()],
                }),
            ),
        );
        attributes.insert("val".into(), val);
        pb::Operation {
            r#type: "const".into(),
            inputs: BTreeMap::new(),
            outputs: vec![pb::NamedValueType {
                name: name.into(),
                r#type: Some(value_type(out_ty)),
            }],
            blocks: vec![],
            attributes,
        }
    }

    fn program(ops: Vec<pb::Operation>) -> pb::Program {
        let block = pb::Block {
            inputs: vec![],
            outputs: vec![],
            operations: ops,
            attributes: BTreeMap::new(),
        };
        let f = pb::Function {
            inputs: vec![],
            opset: "CoreML8".into(),
            block_specializations: [("CoreML8".to_string(), block)].into(),
            attributes: BTreeMap::new(),
        };
        pb::Program {
            version: 1,
            functions: [("main".to_string(), f)].into(),
            doc_string: String::new(),
            attributes: BTreeMap::new(),
        }
    }

    /// Weights in an in-memory blob file registered under the package path used by the store.
    fn store_with(
        blobs: &[(BlobDataType, Vec<u8>, u64)],
    ) -> (tempfile::TempDir, WeightStore, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("weights")).unwrap();
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let offs = blobs
            .iter()
            .map(|(t, d, p)| w.append(*t, d, *p).unwrap())
            .collect();
        let bytes = w.finish().unwrap().into_inner();
        let path = dir.path().join("weights/weight.bin");
        std::fs::write(&path, &bytes).unwrap();
        let store = WeightStore::new(dir.path(), dir.path());
        (dir, store, offs)
    }

    #[test]
    fn every_immediate_arm_round_trips_in_coremltools_form() {
        use pb::tensor_value::Value as A;
        use pb::tensor_value::*;
        let cases = vec![
            (
                DataType::Fp32,
                vec![3],
                A::Floats(RepeatedFloats {
                    values: vec![1.0, -2.5, 3.25],
                }),
            ),
            (
                DataType::Fp64,
                vec![2],
                A::Doubles(RepeatedDoubles {
                    values: vec![1e-300, 2.0],
                }),
            ),
            (
                DataType::Int32,
                vec![2],
                A::Ints(RepeatedInts {
                    values: vec![-7, i32::MAX],
                }),
            ),
            (
                DataType::Int16,
                vec![2],
                A::Ints(RepeatedInts {
                    values: vec![-7, 300],
                }),
            ),
            (
                DataType::Uint16,
                vec![1],
                A::Ints(RepeatedInts {
                    values: vec![65535],
                }),
            ),
            (
                DataType::Int64,
                vec![2],
                A::LongInts(RepeatedLongInts {
                    values: vec![i64::MIN, 5],
                }),
            ),
            (
                DataType::Bool,
                vec![3],
                A::Bools(RepeatedBools {
                    values: vec![true, false, true],
                }),
            ),
            (
                DataType::String,
                vec![2],
                A::Strings(RepeatedStrings {
                    values: vec!["a".into(), "ü".into()],
                }),
            ),
            (
                DataType::Fp16,
                vec![2],
                A::Bytes(RepeatedBytes {
                    values: vec![0x00, 0x3c, 0x00, 0xc0],
                }),
            ),
            (
                DataType::Int8,
                vec![2],
                A::Bytes(RepeatedBytes {
                    values: vec![0xff, 0x01],
                }),
            ),
            (
                DataType::Uint4,
                vec![3],
                A::Bytes(RepeatedBytes {
                    values: vec![0x21, 0x03],
                }),
            ),
            (
                DataType::Uint32,
                vec![1],
                A::Bytes(RepeatedBytes {
                    values: vec![1, 0, 0, 0],
                }),
            ),
            (
                DataType::Int32,
                vec![],
                A::Ints(RepeatedInts { values: vec![42] }),
            ),
        ];
        let ops: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (t, dims, v))| {
                const_op(
                    &format!("c{i}"),
                    &ValueType::tensor(*t, dims),
                    tensor_pb(*t, dims, v.clone()),
                )
            })
            .collect();
        let p = program(ops);
        let ir = program_from_proto(&p, &WeightStore::none()).unwrap();
        // Values decode to the expected little-endian bytes.
        let block = ir.functions["main"].block().unwrap();
        let val = |i: usize| block.operations[i].attributes["val"].clone();
        assert_eq!(val(0).to_f32_vec().unwrap(), vec![1.0, -2.5, 3.25]);
        assert_eq!(val(3).to_i64_vec().unwrap(), vec![-7, 300]);
        assert_eq!(val(8).to_f32_vec().unwrap(), vec![1.0, -2.0]);
        assert_eq!(val(9).to_i64_vec().unwrap(), vec![-1, 1]);
        assert_eq!(val(10).to_i64_vec().unwrap(), vec![1, 2, 3]);
        assert_eq!(val(12).as_i64(), Some(42));
        // Inline values stay inline and the protobuf comes back identical.
        let back = program_to_proto(&ir, &mut NoBlobs, &WriteOptions::default()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn non_canonical_arms_are_normalised() {
        use pb::tensor_value::*;
        // An fp16 tensor written as floats reads as fp16 bytes.
        let v = tensor_pb(
            DataType::Fp16,
            &[2],
            Value::Floats(RepeatedFloats {
                values: vec![1.0, -2.0],
            }),
        );
        let p = program(vec![const_op(
            "c",
            &ValueType::tensor(DataType::Fp16, &[2]),
            v,
        )]);
        let ir = program_from_proto(&p, &WeightStore::none()).unwrap();
        let val = &ir.functions["main"].block().unwrap().operations[0].attributes["val"];
        assert_eq!(val.bytes().unwrap().as_ref(), &[0x00, 0x3c, 0x00, 0xc0]);
    }

    #[test]
    fn blobs_resolve_without_copy_and_are_deduplicated_on_write() {
        let data: Vec<u8> = (0..40u8).collect(); // 20 fp16
        let (_dir, store, offs) = store_with(&[
            (BlobDataType::Float16, data.clone(), 0),
            (BlobDataType::UInt4, vec![0x21, 0x43, 0x05], 4),
        ]);
        let blob_pb = |dtype: DataType, dims: &[u64], off: u64| pb::Value {
            doc_string: String::new(),
            r#type: Some(value_type(&ValueType::tensor(dtype, dims))),
            value: Some(pb::value::Value::BlobFileValue(pb::value::BlobFileValue {
                file_name: DEFAULT_WEIGHT_FILE.into(),
                offset: off,
            })),
        };
        let t = ValueType::tensor(DataType::Fp16, &[4, 5]);
        let t4 = ValueType::tensor(DataType::Uint4, &[5]);
        let p = program(vec![
            const_op("a", &t, blob_pb(DataType::Fp16, &[4, 5], offs[0])),
            const_op("b", &t, blob_pb(DataType::Fp16, &[4, 5], offs[0])),
            const_op("q", &t4, blob_pb(DataType::Uint4, &[5], offs[1])),
        ]);
        let ir = program_from_proto(&p, &store).unwrap();
        let ops = &ir.functions["main"].block().unwrap().operations;
        assert_eq!(
            ops[0].attributes["val"].bytes().unwrap().as_ref(),
            data.as_slice()
        );
        assert_eq!(
            ops[2].attributes["val"].to_i64_vec().unwrap(),
            vec![1, 2, 3, 4, 5]
        );
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let back = program_to_proto(&ir, &mut w, &WriteOptions::default()).unwrap();
        assert_eq!(w.count(), 2, "the shared blob is written once");
        // Same layout as the source file, so the protobuf is identical.
        assert_eq!(back, p);
        let file = BlobFile::from_bytes("w.bin", w.finish().unwrap().into_inner().into()).unwrap();
        assert_eq!(file.blob(offs[1]).unwrap().padding_bits, 4);
    }

    #[test]
    fn mismatched_blobs_are_errors_naming_the_op() {
        let (_dir, store, offs) = store_with(&[(BlobDataType::Float16, vec![0; 40], 0)]);
        let blob_pb = |dtype: DataType, dims: &[u64]| pb::Value {
            doc_string: String::new(),
            r#type: Some(value_type(&ValueType::tensor(dtype, dims))),
            value: Some(pb::value::Value::BlobFileValue(pb::value::BlobFileValue {
                file_name: DEFAULT_WEIGHT_FILE.into(),
                offset: offs[0],
            })),
        };
        for (dtype, dims, needle) in [
            (DataType::Fp32, vec![10u64], "declared"),
            (DataType::Fp16, vec![21], "holds 20 elements"),
            (DataType::Fp16, vec![u64::MAX, 2], "no fixed element count"),
            (DataType::Bool, vec![20], "cannot be stored"),
        ] {
            let t = ValueType::tensor(dtype, &dims);
            let p = program(vec![const_op("w", &t, blob_pb(dtype, &dims))]);
            let err = program_from_proto(&p, &store).unwrap_err().to_string();
            assert!(
                err.contains("op w (const)") && err.contains(needle),
                "{err}"
            );
        }
        // A reference that leaves the model folder.
        let mut v = blob_pb(DataType::Fp16, &[20]);
        if let Some(pb::value::Value::BlobFileValue(b)) = &mut v.value {
            b.file_name = "@model_path/../weight.bin".into();
        }
        let p = program(vec![const_op(
            "w",
            &ValueType::tensor(DataType::Fp16, &[20]),
            v,
        )]);
        assert!(
            program_from_proto(&p, &store)
                .unwrap_err()
                .to_string()
                .contains("..")
        );
    }

    #[test]
    fn malformed_immediates_are_errors() {
        use pb::tensor_value::*;
        let cases = [
            (
                DataType::Int8,
                vec![1u64],
                Value::Ints(RepeatedInts { values: vec![300] }),
                "out of range",
            ),
            (
                DataType::Fp32,
                vec![3],
                Value::Floats(RepeatedFloats { values: vec![1.0] }),
                "4 bytes",
            ),
            (
                DataType::Int32,
                vec![1],
                Value::Strings(RepeatedStrings {
                    values: vec!["x".into()],
                }),
                "cannot be stored",
            ),
            (
                DataType::Fp16,
                vec![1],
                Value::Bools(RepeatedBools { values: vec![true] }),
                "cannot be stored",
            ),
        ];
        for (t, dims, v, needle) in cases {
            let p = program(vec![const_op(
                "k",
                &ValueType::tensor(t, &dims),
                tensor_pb(t, &dims, v),
            )]);
            let err = program_from_proto(&p, &WeightStore::none())
                .unwrap_err()
                .to_string();
            assert!(err.contains("op k") && err.contains(needle), "{err}");
        }
        // A tensor type whose rank disagrees with its dimensions.
        let mut ty = value_type(&ValueType::tensor(DataType::Fp32, &[2]));
        if let Some(pb::value_type::Type::TensorType(t)) = &mut ty.r#type {
            t.rank = 3;
        }
        let mut op = const_op(
            "r",
            &ValueType::tensor(DataType::Fp32, &[2]),
            tensor_pb(
                DataType::Fp32,
                &[2],
                Value::Floats(RepeatedFloats {
                    values: vec![1.0, 2.0],
                }),
            ),
        );
        op.outputs[0].r#type = Some(ty);
        assert!(
            program_from_proto(&program(vec![op]), &WeightStore::none())
                .unwrap_err()
                .to_string()
                .contains("rank")
        );
    }
}
