//! Translation of a MIL program (a Core ML model) into a Core AI module: what
//! `anekit convert MODEL.mlpackage -o MODEL.aimodel` writes.
//!
//! Every MIL function becomes a public `graph_v1` (states become `handle_v1` arguments, as
//! coreai-torch writes them). Ops are written in the `aicode` vocabulary coreai-core
//! itself writes: primitives (`primitive.conv2d_v1`, `primitive.reshape_v2`, ...) and
//! composites with their decomposition regions (`broadcasting_add_v1` holds reshape →
//! broadcast_in_dims → add; `relu_v1`, `sigmoid_v1`, `softmax_v1`, `reduce_sum_v1`, ...).
//! MIL ops with no `aicode` form are expressed through primitives (`layer_norm`,
//! `scaled_dot_product_attention`, `linear`); ops that cannot be expressed are named with
//! the reason ([`ConvertError::Unsupported`], all of them at once). Weights of 1 KiB and
//! more go to the bytecode's resource section (16-byte aligned), smaller constants inline.
//! Shapes must be static.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use anekit_mil::{
    Binding, DataType, Dim, Function, Operation, Program, TensorType, Value as MilValue, ValueType,
};
use anekit_mlir::builder::Builder;
use anekit_mlir::dialect::PayloadWriter;
use anekit_mlir::{
    AttrId, Block, BlockArg, BlockId, Bytecode, DialectId, OpId, Operation as MOp, Properties,
    Region, RegionId, TypeId, Value,
};

use crate::ir::{Encoder, EnumKind, Scalar};
use crate::konst::Konst;
use crate::schema;

/// The version the asset declares (the aicode dialect version coreai-core 1.0.0b3 writes
/// for the newest ops it uses).
pub const ASSET_VERSION: u64 = 20_260_317;

/// The aicode dialect's version blob as coreai-core writes it.
pub const DIALECT_VERSION: &[u8] = &[0x05];

/// The longest recurrent sequence (steps × directions) the writer unrolls.
pub const MAX_UNROLLED_STEPS: i64 = 4096;

/// Constants of this many bytes or more go to the resource section.
pub const RESOURCE_THRESHOLD: usize = 1024;

/// Why a program could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Ops that have no Core AI form: `(function, op name, op type, reason)`.
    #[error("{} op(s) cannot be converted:\n{}", .0.len(), .0.iter().map(|(f, n, t, r)| format!("  {f}: {n} ({t}): {r}")).collect::<Vec<_>>().join("\n"))]
    Unsupported(Vec<(String, String, String, String)>),
    /// The program itself is not convertible (no functions, flexible shapes, ...).
    #[error("{0}")]
    Program(String),
    /// Encoding failed.
    #[error(transparent)]
    Mlir(#[from] anekit_mlir::MlirError),
}

/// A value being written: its SSA value, static shape and element type.
#[derive(Debug, Clone)]
struct Av {
    v: Value,
    shape: Vec<i64>,
    s: Scalar,
}

/// State of one function's translation.
struct Fn<'p> {
    /// MIL constants by name.
    consts: HashMap<String, &'p MilValue>,
    /// Values by MIL name.
    vars: HashMap<String, Av>,
    /// State handles by MIL name, with their type.
    handles: HashMap<String, (Value, TypeId)>,
    /// The current token of each state (each handle has its own chain of reads and
    /// writes; the graph returns each chain's last token, in handle order).
    tokens: HashMap<String, Value>,
    /// How many control-flow blocks enclose the ops being written.
    nested: usize,
}

/// Writes aicode modules.
pub struct Writer {
    b: Builder,
    dialect: DialectId,
    loc: AttrId,
    /// Constants already written (by content) per block.
    failures: Vec<(String, String, String, String)>,
}

fn scalar_of(d: DataType) -> Option<Scalar> {
    Some(match d {
        DataType::Fp32 => Scalar::F32,
        DataType::Fp16 => Scalar::F16,
        DataType::Fp64 => Scalar::F64,
        DataType::Bf16 => Scalar::BF16,
        DataType::Bool => Scalar::Bool,
        DataType::Int8 => Scalar::SInt(8),
        DataType::Int16 => Scalar::SInt(16),
        DataType::Int32 => Scalar::SInt(32),
        DataType::Int64 => Scalar::SInt(64),
        DataType::Int4 => Scalar::SInt(4),
        DataType::Uint8 => Scalar::UInt(8),
        DataType::Uint16 => Scalar::UInt(16),
        DataType::Uint32 => Scalar::UInt(32),
        DataType::Uint64 => Scalar::UInt(64),
        DataType::Uint4 => Scalar::UInt(4),
        DataType::Uint2 => Scalar::UInt(2),
        DataType::Uint1 => Scalar::UInt(1),
        DataType::Uint3 => Scalar::UInt(3),
        DataType::Uint6 => Scalar::UInt(6),
        _ => return None,
    })
}

fn static_shape(t: &TensorType) -> Option<Vec<i64>> {
    t.shape
        .as_ref()?
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => Some(*n as i64),
            Dim::Unknown { .. } => None,
        })
        .collect()
}

type R<T> = Result<T, String>;

impl Writer {
    /// A writer for a new module.
    pub fn new(producer: &str) -> Self {
        let mut b = Builder::new(6, producer);
        let dialect = b.dialect(
            crate::ir::DIALECT,
            Some(Bytes::from_static(DIALECT_VERSION)),
        );
        let mut w = Self {
            b,
            dialect,
            loc: AttrId(0),
            failures: Vec::new(),
        };
        w.loc = w.location();
        w
    }

    fn enc(&mut self) -> Encoder<'_> {
        Encoder::new(&mut self.b, None)
    }

    /// An unknown-source location (`debuginfo.location_v1` with file "-", no metadata),
    /// the form coreai-core writes without debug information.
    fn location(&mut self) -> AttrId {
        let (f, dir, sha) = (self.b.string("-"), self.b.string(""), self.b.string(""));
        let mut w = PayloadWriter::new();
        w.varint(30).string(f).string(dir).string(sha);
        let file = self.b.attr(self.dialect, true, w.finish());
        let mut w = PayloadWriter::new();
        w.varint(31)
            .attr(file)
            .varint(0)
            .varint(0)
            .varint(0)
            .varint(0);
        let src = self.b.attr(self.dialect, true, w.finish());
        let scope = self.enc().unit();
        let mut w = PayloadWriter::new();
        w.varint(40).attr(src).attr(scope).varint(0).varint(0);
        self.b.attr(self.dialect, true, w.finish())
    }

    fn ty(&mut self, shape: &[i64], s: Scalar) -> TypeId {
        let mut e = self.enc();
        let el = e.scalar(s);
        e.tensor(shape, el)
    }

    fn push(
        &mut self,
        blk: BlockId,
        name: &str,
        operands: &[Value],
        results: &[TypeId],
        props: Option<Bytes>,
        regions: Vec<RegionId>,
    ) -> OpId {
        let name_id = self.b.op_name(self.dialect, name, true);
        let properties = props.map(|p| Properties::Encoded(self.b.properties(p)));
        let id = self.b.module.ir.push_op(MOp {
            name: name_id,
            location: self.loc,
            attributes: None,
            properties,
            result_types: results.to_vec(),
            operands: operands.to_vec(),
            successors: Vec::new(),
            use_list_orders: Vec::new(),
            isolated: !regions.is_empty(),
            regions,
        });
        self.b.module.ir.blocks[blk.index()].ops.push(id);
        id
    }

    fn op1(
        &mut self,
        blk: BlockId,
        name: &str,
        operands: &[&Av],
        shape: Vec<i64>,
        s: Scalar,
        props: Option<Bytes>,
    ) -> Av {
        let t = self.ty(&shape, s);
        let vals: Vec<Value> = operands.iter().map(|a| a.v).collect();
        let id = self.push(blk, name, &vals, &[t], props, Vec::new());
        Av {
            v: Value::Result { op: id, index: 0 },
            shape,
            s,
        }
    }

    /// A `constant_v1` of raw elements.
    fn constant_raw(
        &mut self,
        blk: BlockId,
        shape: Vec<i64>,
        s: Scalar,
        data: Bytes,
        splat: bool,
    ) -> Av {
        // Sub-byte elements are packed (two int4 per byte) in resources, as coreai-core
        // writes them; inline dense elements of those types are only written as splats.
        let value = if !splat && (data.len() >= RESOURCE_THRESHOLD || s.bits() < 8) {
            let key = format!("resource_{}", self.b.module.dialect_resources().count());
            let h = self.b.dialect_blob(self.dialect, &key, 16, data);
            self.enc().dense_resource(h)
        } else {
            self.enc().dense(splat, &data)
        };
        let mut p = PayloadWriter::new();
        p.attr(value);
        self.op1(
            blk,
            "primitive.constant_v1",
            &[],
            shape,
            s,
            Some(p.finish()),
        )
    }

    /// An integer vector constant (`uint32`/`sint32`...).
    fn ints(&mut self, blk: BlockId, v: &[i64], s: Scalar) -> Av {
        let k = Konst::i64s(vec![v.len() as u64], v);
        let c = k.cast_to(s).unwrap_or(k);
        self.constant_raw(blk, vec![v.len() as i64], s, c.data, false)
    }

    /// A scalar constant.
    fn scalar(&mut self, blk: BlockId, v: f64, s: Scalar) -> Av {
        let data = match s {
            Scalar::F32 => Bytes::from((v as f32).to_le_bytes().to_vec()),
            Scalar::F16 => Bytes::from(half::f16::from_f64(v).to_le_bytes().to_vec()),
            Scalar::F64 => Bytes::from(v.to_le_bytes().to_vec()),
            Scalar::BF16 => Bytes::from(half::bf16::from_f64(v).to_le_bytes().to_vec()),
            Scalar::Bool => Bytes::from(vec![u8::from(v != 0.0)]),
            _ => Konst::i64s(vec![], &[v as i64])
                .cast_to(s)
                .map_or_else(Bytes::new, |c| c.data),
        };
        self.constant_raw(blk, vec![], s, data, true)
    }

    /// A composite op `name` over `operands` whose region is built by `body` (given the
    /// region's block and arguments, returning the value to yield).
    fn composite(
        &mut self,
        blk: BlockId,
        name: &str,
        operands: &[&Av],
        shape: Vec<i64>,
        s: Scalar,
        body: impl FnOnce(&mut Self, BlockId, Vec<Av>) -> Av,
    ) -> Av {
        let arg_types: Vec<TypeId> = operands.iter().map(|a| self.ty(&a.shape, a.s)).collect();
        let inner = self.b.module.ir.push_block(Block {
            args: arg_types
                .iter()
                .map(|&ty| BlockArg {
                    ty,
                    location: Some(self.loc),
                })
                .collect(),
            ..Block::default()
        });
        let args: Vec<Av> = operands
            .iter()
            .enumerate()
            .map(|(i, a)| Av {
                v: Value::Arg {
                    block: inner,
                    index: i as u32,
                },
                shape: a.shape.clone(),
                s: a.s,
            })
            .collect();
        let out = body(self, inner, args);
        self.push(inner, "dataflow.yield_v1", &[out.v], &[], None, Vec::new());
        let region = self.b.module.ir.push_region(Region {
            blocks: vec![inner],
        });
        let t = self.ty(&shape, s);
        let vals: Vec<Value> = operands.iter().map(|a| a.v).collect();
        let id = self.push(blk, name, &vals, &[t], None, vec![region]);
        Av {
            v: Value::Result { op: id, index: 0 },
            shape,
            s,
        }
    }

    /// `a` broadcast to `shape` the way coreai-torch's regions do it: reshape to the rank,
    /// then `broadcast_in_dims` over the axes that grow.
    fn expand(&mut self, blk: BlockId, a: &Av, shape: &[i64]) -> Av {
        let mut x = a.clone();
        if x.shape.len() < shape.len() {
            let mut padded = vec![1i64; shape.len() - x.shape.len()];
            padded.extend(&x.shape);
            let sh = self.ints(blk, &padded, Scalar::SInt(32));
            x = self.op1(blk, "primitive.reshape_v2", &[&x, &sh], padded, x.s, None);
        }
        let axes: Vec<i64> = (0..shape.len())
            .filter(|&i| x.shape[i] != shape[i])
            .map(|i| i as i64)
            .collect();
        if axes.is_empty() {
            return x;
        }
        let sizes: Vec<i64> = axes.iter().map(|&i| shape[i as usize]).collect();
        let sz = self.ints(blk, &sizes, Scalar::UInt(32));
        let ax = self.ints(blk, &axes, Scalar::SInt(32));
        self.op1(
            blk,
            "primitive.broadcast_in_dims_v1",
            &[&x, &sz, &ax],
            shape.to_vec(),
            x.s,
            None,
        )
    }

    /// `broadcasting_<prim>_v1(a, b)`.
    fn bcast(&mut self, blk: BlockId, prim: &str, a: &Av, b: &Av, out_s: Option<Scalar>) -> R<Av> {
        let shape = broadcast(&a.shape, &b.shape)
            .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))?;
        let s = out_s.unwrap_or(a.s);
        let name = format!("broadcasting_{prim}_v1");
        let prim_name = format!("primitive.{prim}_v1");
        Ok(
            self.composite(blk, &name, &[a, b], shape.clone(), s, |w, inner, args| {
                let x = w.expand(inner, &args[0], &shape);
                let y = w.expand(inner, &args[1], &shape);
                w.op1(inner, &prim_name, &[&x, &y], shape.clone(), s, None)
            }),
        )
    }

    fn reduce(&mut self, blk: BlockId, kind: &str, x: &Av, axes: &[i64]) -> Av {
        let rank = x.shape.len() as i64;
        let norm: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + rank } else { a })
            .collect();
        let mut shape = x.shape.clone();
        for &a in &norm {
            if let Some(d) = shape.get_mut(a as usize) {
                *d = 1;
            }
        }
        let ax = self.ints(blk, &norm, Scalar::SInt(32));
        let (prim, init) = match kind {
            "sum" => ("add", 0.0),
            "product" => ("mul", 1.0),
            "max" => ("maximum", f64::NEG_INFINITY),
            _ => ("minimum", f64::INFINITY),
        };
        let name = format!("reduce_{kind}_v1");
        let s = x.s;
        let dyn_shape = vec![i64::MIN; x.shape.len()];
        let out = shape.clone();
        self.composite(blk, &name, &[x, &ax], shape, s, move |w, inner, args| {
            let init_v = w.scalar(inner, init, s);
            // reduce_v1 with a region combining two scalars.
            let st = w.ty(&[], s);
            let cb = w.b.module.ir.push_block(Block {
                args: vec![
                    BlockArg {
                        ty: st,
                        location: Some(w.loc),
                    },
                    BlockArg {
                        ty: st,
                        location: Some(w.loc),
                    },
                ],
                ..Block::default()
            });
            let a0 = Av {
                v: Value::Arg {
                    block: cb,
                    index: 0,
                },
                shape: vec![],
                s,
            };
            let a1 = Av {
                v: Value::Arg {
                    block: cb,
                    index: 1,
                },
                shape: vec![],
                s,
            };
            let r = w.op1(
                cb,
                &format!("primitive.{prim}_v1"),
                &[&a0, &a1],
                vec![],
                s,
                None,
            );
            w.push(cb, "dataflow.yield_v1", &[r.v], &[], None, Vec::new());
            let region = w.b.module.ir.push_region(Region { blocks: vec![cb] });
            let t = w.ty(&dyn_shape, s);
            let id = w.push(
                inner,
                "primitive.reduce_v1",
                &[args[0].v, args[1].v, init_v.v],
                &[t],
                None,
                vec![region],
            );
            Av {
                v: Value::Result { op: id, index: 0 },
                shape: out,
                s,
            }
        })
    }

    /// `x` as sint32 (indices), cast where it is another type.
    fn int32(&mut self, blk: BlockId, x: Av) -> Av {
        if x.s == Scalar::SInt(32) {
            x
        } else {
            let shape = x.shape.clone();
            self.op1(
                blk,
                "primitive.cast_v1",
                &[&x],
                shape,
                Scalar::SInt(32),
                None,
            )
        }
    }

    fn reshape(&mut self, blk: BlockId, x: &Av, shape: Vec<i64>) -> Av {
        if x.shape == shape {
            return x.clone();
        }
        let sh = self.ints(blk, &shape, Scalar::SInt(32));
        self.op1(blk, "primitive.reshape_v2", &[x, &sh], shape, x.s, None)
    }

    fn transpose(&mut self, blk: BlockId, x: &Av, perm: &[i64]) -> Av {
        let rank = x.shape.len() as i64;
        let perm: Vec<i64> = perm
            .iter()
            .map(|&p| if p < 0 { p + rank } else { p })
            .collect();
        let perm = &perm[..];
        let p = self.ints(blk, perm, Scalar::UInt(32));
        let shape: Vec<i64> = perm
            .iter()
            .map(|&i| x.shape.get(i as usize).copied().unwrap_or(1))
            .collect();
        self.op1(blk, "primitive.transpose_v1", &[x, &p], shape, x.s, None)
    }

    fn matmul(&mut self, blk: BlockId, x: &Av, y: &Av) -> R<Av> {
        let (xr, yr) = (x.shape.len(), y.shape.len());
        if xr < 2 || yr < 2 {
            return Err("matmul of rank < 2".into());
        }
        let batch = broadcast(&x.shape[..xr - 2], &y.shape[..yr - 2])
            .ok_or("batch dims do not broadcast")?;
        let mut shape = batch.clone();
        shape.push(x.shape[xr - 2]);
        shape.push(y.shape[yr - 1]);
        let s = x.s;
        let out = shape.clone();
        Ok(self.composite(
            blk,
            "broadcasting_batch_matmul_v1",
            &[x, y],
            shape,
            s,
            move |w, inner, args| {
                let prep = |w: &mut Writer, a: &Av| -> Av {
                    let r = a.shape.len();
                    if r - 2 == batch.len() && a.shape[..r - 2] == batch[..] {
                        return a.clone();
                    }
                    let mut target = batch.clone();
                    target.extend_from_slice(&a.shape[r - 2..]);
                    w.expand(inner, a, &target)
                };
                let xa = prep(w, &args[0]);
                let ya = prep(w, &args[1]);
                w.op1(
                    inner,
                    "primitive.batch_matmul_v1",
                    &[&xa, &ya],
                    out,
                    s,
                    None,
                )
            },
        ))
    }

    fn softmax(&mut self, blk: BlockId, x: &Av, axis: i64) -> Av {
        let ax = self.scalar(blk, axis as f64, Scalar::SInt(32));
        let s = x.s;
        let shape = x.shape.clone();
        let rank = shape.len() as i64;
        let axis = if axis < 0 { axis + rank } else { axis };
        self.composite(
            blk,
            "softmax_v1",
            &[x, &ax],
            shape.clone(),
            s,
            move |w, inner, args| {
                let e = w.op1(
                    inner,
                    "primitive.exp_v1",
                    &[&args[0]],
                    shape.clone(),
                    s,
                    None,
                );
                let sum = w.reduce(inner, "sum", &e, &[axis]);
                w.bcast(inner, "divide", &e, &sum, None).unwrap_or(e)
            },
        )
    }

    fn unary(&mut self, blk: BlockId, prim: &str, x: &Av) -> Av {
        self.op1(
            blk,
            &format!("primitive.{prim}_v1"),
            &[x],
            x.shape.clone(),
            x.s,
            None,
        )
    }
}

/// The `scatter_mode_v1` case of a MIL scatter mode.
fn scatter_mode(m: &str) -> R<u64> {
    ["update", "add", "sub", "mul", "div", "max", "min"]
        .iter()
        .position(|&c| c == m)
        .map(|i| i as u64)
        .ok_or_else(|| format!("scatter mode {m}"))
}

fn broadcast(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (x, y) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

impl<'p> Fn<'p> {
    fn binding<'o>(&self, op: &'o Operation, param: &str) -> Option<&'o Binding> {
        op.inputs.get(param).and_then(|a| a.0.first())
    }

    /// The constant value of parameter `param` (an input, or an attribute as the iOS16/17
    /// `constexpr_*` ops carry their parameters).
    fn value(&self, op: &'p Operation, param: &str) -> Option<&'p MilValue> {
        match self.binding(op, param) {
            Some(Binding::Value(v)) => Some(v),
            Some(Binding::Name(n)) => self.consts.get(n).copied(),
            None => op.attributes.get(param),
        }
    }

    fn ints(&self, op: &'p Operation, param: &str) -> Option<Vec<i64>> {
        self.value(op, param)?.to_i64_vec()
    }

    fn int(&self, op: &'p Operation, param: &str) -> Option<i64> {
        self.value(op, param)?.as_i64()
    }

    fn bool(&self, op: &'p Operation, param: &str) -> Option<bool> {
        self.value(op, param)?.as_bool()
    }

    fn f64(&self, op: &'p Operation, param: &str) -> Option<f64> {
        self.value(op, param)?.as_f32().map(f64::from)
    }

    fn string(&self, op: &'p Operation, param: &str) -> Option<String> {
        self.value(op, param)?.as_str().map(str::to_string)
    }
}

/// The elements of a MIL tensor constant as raw bytes in the aicode encoding of `s`.
fn const_bytes(v: &MilValue) -> Option<Bytes> {
    v.bytes().cloned()
}

impl Writer {
    /// The value of input `param` of `op` (a variable, or a constant written on use).
    fn input(&mut self, f: &mut Fn<'_>, blk: BlockId, op: &Operation, param: &str) -> R<Av> {
        let b = f
            .binding(op, param)
            .ok_or_else(|| format!("parameter {param} is missing"))?;
        self.bound(f, blk, b)
    }

    /// The values of the variadic input `param` of `op` (`values` of concat and stack).
    fn inputs(&mut self, f: &mut Fn<'_>, blk: BlockId, op: &Operation, param: &str) -> R<Vec<Av>> {
        op.inputs
            .get(param)
            .map_or(&[][..], |a| a.0.as_slice())
            .iter()
            .map(|b| self.bound(f, blk, b))
            .collect()
    }

    /// The value of one binding: a variable, or a constant written on use.
    fn bound(&mut self, f: &mut Fn<'_>, blk: BlockId, b: &Binding) -> R<Av> {
        match b {
            Binding::Name(n) => {
                if let Some(a) = f.vars.get(n) {
                    return Ok(a.clone());
                }
                let v = f
                    .consts
                    .get(n)
                    .copied()
                    .ok_or_else(|| format!("{n} is not defined"))?;
                let a = self.mil_const(blk, v)?;
                f.vars.insert(n.clone(), a.clone());
                Ok(a)
            }
            Binding::Value(v) => self.mil_const(blk, v),
        }
    }

    fn mil_const(&mut self, blk: BlockId, v: &MilValue) -> R<Av> {
        let t = v.tensor_type().ok_or("a constant that is not a tensor")?;
        let s = scalar_of(t.dtype).ok_or_else(|| format!("constants of type {}", t.dtype))?;
        let shape = static_shape(t).ok_or("a constant of unknown shape")?;
        let data = const_bytes(v).ok_or("a constant without bytes")?;
        Ok(self.constant_raw(blk, shape, s, data, false))
    }

    fn out_type(op: &Operation, i: usize) -> R<(Vec<i64>, Scalar)> {
        let o = op.outputs.get(i).ok_or("missing output")?;
        let t = o.ty.as_tensor().ok_or("a non-tensor output")?;
        let shape = static_shape(t)
            .ok_or("an output of flexible shape (Core AI conversion needs static shapes)")?;
        let s = scalar_of(t.dtype).ok_or_else(|| format!("outputs of type {}", t.dtype))?;
        Ok((shape, s))
    }

    /// Translate one MIL op; returns its outputs.
    #[allow(clippy::too_many_lines)]
    fn op<'p>(&mut self, f: &mut Fn<'p>, blk: BlockId, op: &'p Operation) -> R<Vec<Av>> {
        let t = op.op_type.as_str();
        let (shape, s) = if op.outputs.is_empty() {
            (Vec::new(), Scalar::F32)
        } else {
            Self::out_type(op, 0)?
        };
        let binary = |t: &str| -> Option<&'static str> {
            Some(match t {
                "add" => "add",
                "sub" => "sub",
                "mul" => "mul",
                "real_div" => "divide",
                "maximum" => "maximum",
                "minimum" => "minimum",
                "pow" => "pow",
                "floor_div" => "floor_divide",
                "equal" => "equal",
                "not_equal" => "not_equal",
                "greater" => "greater",
                "logical_and" => "logical_and",
                "logical_or" => "logical_or",
                "logical_xor" => "logical_xor",
                _ => return None,
            })
        };
        let unary = |t: &str| -> Option<&'static str> {
            Some(match t {
                "abs" => "abs",
                "exp" => "exp",
                "log" => "log",
                "sqrt" => "sqrt",
                "sin" => "sin",
                "cos" => "cos",
                "tan" => "tan",
                "tanh" => "tanh",
                "sinh" => "sinh",
                "cosh" => "cosh",
                "asin" => "asin",
                "acos" => "acos",
                "atan" => "atan",
                "atanh" => "atanh",
                "erf" => "erf",
                "round" => "round",
                "logical_not" => "not",
                _ => return None,
            })
        };
        if let Some(p) = binary(t) {
            let x = self.input(f, blk, op, "x")?;
            let y = self.input(f, blk, op, "y")?;
            return Ok(vec![self.bcast(blk, p, &x, &y, Some(s))?]);
        }
        if let Some(p) = unary(t) {
            let x = self.input(f, blk, op, "x")?;
            return Ok(vec![self.unary(blk, p, &x)]);
        }
        Ok(match t {
            "const" => return Err("internal: const handled elsewhere".into()),
            "identity" => vec![self.input(f, blk, op, "x")?],
            "less" | "less_equal" | "greater_equal" => {
                let x = self.input(f, blk, op, "x")?;
                let y = self.input(f, blk, op, "y")?;
                let out = match t {
                    // x < y  ==  y > x
                    "less" => self.bcast(blk, "greater", &y, &x, Some(Scalar::Bool))?,
                    // x <= y  ==  not(x > y)
                    "less_equal" => {
                        let g = self.bcast(blk, "greater", &x, &y, Some(Scalar::Bool))?;
                        self.unary(blk, "not", &g)
                    }
                    _ => {
                        let g = self.bcast(blk, "greater", &y, &x, Some(Scalar::Bool))?;
                        self.unary(blk, "not", &g)
                    }
                };
                vec![out]
            }
            "rsqrt" => {
                let x = self.input(f, blk, op, "x")?;
                let eps = f.f64(op, "epsilon").unwrap_or(1e-12);
                let e = self.scalar(blk, eps, x.s);
                let xe = self.bcast(blk, "add", &x, &e, None)?;
                vec![self.unary(blk, "rsqrt", &xe)]
            }
            "inverse" => {
                let x = self.input(f, blk, op, "x")?;
                let eps = f.f64(op, "epsilon").unwrap_or(1e-4);
                let e = self.scalar(blk, eps, x.s);
                let one = self.scalar(blk, 1.0, x.s);
                let xe = self.bcast(blk, "add", &x, &e, None)?;
                vec![self.bcast(blk, "divide", &one, &xe, None)?]
            }
            "square" => {
                let x = self.input(f, blk, op, "x")?;
                vec![self.bcast(blk, "mul", &x, &x, None)?]
            }
            "relu" => {
                let x = self.input(f, blk, op, "x")?;
                let (sh, sc) = (x.shape.clone(), x.s);
                vec![
                    self.composite(blk, "relu_v1", &[&x], sh, sc, |w, inner, args| {
                        let z = w.scalar(inner, 0.0, sc);
                        w.bcast(inner, "maximum", &args[0], &z, None)
                            .unwrap_or_else(|_| args[0].clone())
                    }),
                ]
            }
            "relu6" | "clip" => {
                let x = self.input(f, blk, op, "x")?;
                let (lo, hi) = if t == "relu6" {
                    (0.0, 6.0)
                } else {
                    (
                        f.f64(op, "alpha").ok_or("alpha")?,
                        f.f64(op, "beta").ok_or("beta")?,
                    )
                };
                let l = self.scalar(blk, lo, x.s);
                let h = self.scalar(blk, hi, x.s);
                let m = self.bcast(blk, "maximum", &x, &l, None)?;
                vec![self.bcast(blk, "minimum", &m, &h, None)?]
            }
            "linear_activation" => {
                // alpha * x + beta (MIL's activation op; NeuralNetwork models' LINEAR).
                let x = self.input(f, blk, op, "x")?;
                let a = self.scalar(
                    blk,
                    f.f64(op, "alpha").ok_or("alpha is not a constant")?,
                    x.s,
                );
                let b = self.scalar(blk, f.f64(op, "beta").unwrap_or(0.0), x.s);
                let ax = self.bcast(blk, "mul", &x, &a, None)?;
                vec![self.bcast(blk, "add", &ax, &b, None)?]
            }
            // aicode has no floor, ceil or sign primitive (coreai-core 1.0.0b3 refuses
            // `primitive.floor_v1`); coreai-torch writes floor(x) as floor_divide(x, 1),
            // ceil(x) as -floor_divide(-x, 1) and sign(x) as (x > 0) - (0 > x).
            "floor" | "ceil" => {
                let x = self.input(f, blk, op, "x")?;
                let one = self.scalar(blk, 1.0, x.s);
                if t == "floor" {
                    vec![self.bcast(blk, "floor_divide", &x, &one, None)?]
                } else {
                    let m = self.scalar(blk, -1.0, x.s);
                    let neg = self.bcast(blk, "mul", &x, &m, None)?;
                    let fd = self.bcast(blk, "floor_divide", &neg, &one, None)?;
                    vec![self.bcast(blk, "mul", &fd, &m, None)?]
                }
            }
            "sign" => {
                let x = self.input(f, blk, op, "x")?;
                let z = self.scalar(blk, 0.0, x.s);
                let pos = self.bcast(blk, "greater", &x, &z, Some(Scalar::Bool))?;
                let neg = self.bcast(blk, "greater", &z, &x, Some(Scalar::Bool))?;
                let pos = self.op1(
                    blk,
                    "primitive.cast_v1",
                    &[&pos],
                    pos.shape.clone(),
                    x.s,
                    None,
                );
                let neg = self.op1(
                    blk,
                    "primitive.cast_v1",
                    &[&neg],
                    neg.shape.clone(),
                    x.s,
                    None,
                );
                vec![self.bcast(blk, "sub", &pos, &neg, None)?]
            }
            "pad" => {
                // MIL pads the last dims (pairs); aicode takes pairs for every dim.
                let x = self.input(f, blk, op, "x")?;
                let p = f.ints(op, "pad").ok_or("pad is not a constant")?;
                let mode = match f.string(op, "mode").as_deref().unwrap_or("constant") {
                    "constant" => 1,
                    "reflect" => 2,
                    "replicate" => 3,
                    m => return Err(format!("pad mode {m}")),
                };
                let value = f.f64(op, "constant_val").unwrap_or(0.0);
                let lead = (2 * x.shape.len())
                    .checked_sub(p.len())
                    .ok_or("more pads than dims")?;
                let mut pads = vec![0; lead];
                pads.extend(p);
                vec![self.pad_mode(blk, &x, &pads, value, mode)?]
            }
            "reverse" => {
                let x = self.input(f, blk, op, "x")?;
                let rank = x.shape.len() as i64;
                let axes: Vec<i64> = f
                    .ints(op, "axes")
                    .unwrap_or_else(|| (0..rank).collect())
                    .into_iter()
                    .map(|a| if a < 0 { a + rank } else { a })
                    .collect();
                if axes.is_empty() {
                    vec![x]
                } else {
                    let d = self.ints(blk, &axes, Scalar::SInt(32));
                    vec![self.op1(
                        blk,
                        "primitive.reverse_v1",
                        &[&x, &d],
                        x.shape.clone(),
                        x.s,
                        None,
                    )]
                }
            }
            "tile" => {
                // x [d0, d1, ...] -> reshape [1, d0, 1, d1, ...] -> broadcast to
                // [r0, d0, r1, d1, ...] -> reshape [r0*d0, r1*d1, ...].
                let x = self.input(f, blk, op, "x")?;
                let reps = f.ints(op, "reps").ok_or("reps is not a constant")?;
                if reps.len() != x.shape.len() || reps.iter().any(|&r| r < 1) {
                    return Err(format!("reps {reps:?} for shape {:?}", x.shape));
                }
                if reps.iter().all(|&r| r == 1) {
                    vec![x]
                } else {
                    let inter: Vec<i64> = x.shape.iter().flat_map(|&d| [1, d]).collect();
                    let big: Vec<i64> = x
                        .shape
                        .iter()
                        .zip(&reps)
                        .flat_map(|(&d, &r)| [r, d])
                        .collect();
                    let r = self.reshape(blk, &x, inter);
                    let b = self.expand(blk, &r, &big);
                    vec![self.reshape(blk, &b, shape.clone())]
                }
            }
            "gather_nd" => {
                let x = self.input(f, blk, op, "x")?;
                let idx = self.input(f, blk, op, "indices")?;
                if f.int(op, "batch_dims").unwrap_or(0) != 0 {
                    return Err("gather_nd with batch_dims".into());
                }
                let idx = self.int32(blk, idx);
                vec![self.op1(blk, "primitive.gather_nd_v1", &[&x, &idx], shape, s, None)]
            }
            "gather_along_axis" => {
                let x = self.input(f, blk, op, "x")?;
                let idx = self.input(f, blk, op, "indices")?;
                let rank = x.shape.len() as i64;
                let axis = f.int(op, "axis").unwrap_or(0);
                let axis = if axis < 0 { axis + rank } else { axis };
                let idx = self.int32(blk, idx);
                let a = self.scalar(blk, axis as f64, Scalar::SInt(32));
                vec![self.op1(
                    blk,
                    "primitive.gather_along_axis_v1",
                    &[&x, &idx, &a],
                    shape,
                    s,
                    None,
                )]
            }
            "upsample_nearest_neighbor" | "upsample_bilinear" | "resize_bilinear" => {
                // interpolate_v1(x, output shape, scale, offset per dim), as coreai-torch
                // writes it: half-pixel sampling is scale out/in with offset 0, align-corners
                // scale (out-1)/(in-1) with offset (1 - scale)/2 (to_mil reads them back).
                let x = self.input(f, blk, op, "x")?;
                if x.shape.len() != 4 || shape.len() != 4 {
                    return Err(format!(
                        "{t} of a rank-{} tensor (rank 4 only)",
                        x.shape.len()
                    ));
                }
                // The grid: 0 half-pixel, 1 align-corners, 2 Core ML's DEFAULT (i·X/N), 3
                // OFFSET_CORNERS ((i + ½)·max(1, X−1)/N). interpolate_v1 samples input
                // coordinate (i + ½ − offset)/scale − ½ (what the two coreai-torch forms
                // give), so DEFAULT is scale N/X with offset (1 − scale)/2 and
                // OFFSET_CORNERS scale N/max(1, X−1) with offset −scale/2.
                let (linear, grid) = match t {
                    "upsample_nearest_neighbor" => (false, 0),
                    "upsample_bilinear" => {
                        (true, u8::from(f.bool(op, "align_corners").unwrap_or(false)))
                    }
                    _ => match f
                        .string(op, "sampling_mode")
                        .as_deref()
                        .unwrap_or("DEFAULT")
                    {
                        "UNALIGN_CORNERS" => (true, 0),
                        "STRICT_ALIGN_CORNERS" | "ALIGN_CORNERS" => (true, 1),
                        "DEFAULT" => (true, 2),
                        "OFFSET_CORNERS" => (true, 3),
                        m => {
                            return Err(format!(
                                "resize_bilinear sampling_mode {m} has no Core AI form"
                            ));
                        }
                    },
                };
                let align = grid == 1;
                if !linear && (0..2).any(|i| shape[2 + i] % x.shape[2 + i] != 0) {
                    return Err("nearest-neighbour upsampling by a non-integer factor".into());
                }
                let mut scale = vec![1f32, 1.0];
                let mut offset = vec![0f32, 0.0];
                for (&o, &n) in shape.iter().zip(&x.shape).skip(2) {
                    let (o, n) = (o as f64, n as f64);
                    if align {
                        let sc = if n > 1.0 { (o - 1.0) / (n - 1.0) } else { 1.0 };
                        scale.push(sc as f32);
                        offset.push((0.5 * (1.0 - sc)) as f32);
                    } else if grid == 2 {
                        let sc = o / n;
                        scale.push(sc as f32);
                        offset.push((0.5 * (1.0 - sc)) as f32);
                    } else if grid == 3 {
                        let sc = o / (n - 1.0).max(1.0);
                        scale.push(sc as f32);
                        offset.push((-0.5 * sc) as f32);
                    } else {
                        scale.push((o / n) as f32);
                        offset.push(0.0);
                    }
                }
                let os = self.ints(blk, &shape, Scalar::SInt(32));
                let f32s = |v: &[f32]| {
                    Bytes::from(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                };
                let sc = self.constant_raw(blk, vec![4], Scalar::F32, f32s(&scale), false);
                let of = self.constant_raw(blk, vec![4], Scalar::F32, f32s(&offset), false);
                let mode = self
                    .enc()
                    .enumeration(EnumKind::Interpolation, if linear { 0 } else { 1 });
                let mut p = PayloadWriter::new();
                p.attr(mode);
                vec![self.op1(
                    blk,
                    "primitive.interpolate_v1",
                    &[&x, &os, &sc, &of],
                    shape,
                    s,
                    Some(p.finish()),
                )]
            }
            "conv_transpose" => {
                // conv_transpose2d_v1(x, weight, stride, padding, dilation, output_padding,
                // groups): symmetric padding p, then output_padding more at the end; MIL's
                // [begin, end] pads are p = begin, output_padding = the rest of the output.
                let x = self.input(f, blk, op, "x")?;
                let w = self.input(f, blk, op, "weight")?;
                // 3-D: conv_transpose3d_v1 with the same operands (coreai-core's authoring
                // API `conv_transpose3d`; coreai-torch refuses transposed 3-D convolutions).
                if !matches!(x.shape.len(), 4 | 5)
                    || w.shape.len() != x.shape.len()
                    || shape.len() != x.shape.len()
                {
                    return Err("conv_transpose other than 2-D or 3-D".into());
                }
                let nsp = x.shape.len() - 2;
                let strides = f.ints(op, "strides").unwrap_or_else(|| vec![1; nsp]);
                let dil = f.ints(op, "dilations").unwrap_or_else(|| vec![1; nsp]);
                let groups = f.int(op, "groups").unwrap_or(1);
                let pads = match f.string(op, "pad_type").as_deref().unwrap_or("valid") {
                    "valid" => vec![0; 2 * nsp],
                    "custom" => f.ints(op, "pad").ok_or("pad is not a constant")?,
                    other => return Err(format!("conv_transpose pad_type {other}")),
                };
                if strides.len() != nsp || dil.len() != nsp || pads.len() != 2 * nsp {
                    return Err("conv_transpose parameters of the wrong length".into());
                }
                let mut padding = Vec::new();
                let mut out_pad = Vec::new();
                for i in 0..nsp {
                    let base =
                        (x.shape[2 + i] - 1) * strides[i] + dil[i] * (w.shape[2 + i] - 1) + 1
                            - 2 * pads[2 * i];
                    let op_i = shape[2 + i] - base;
                    if pads[2 * i] < 0 || op_i < 0 {
                        return Err(format!(
                            "conv_transpose padding {pads:?} for output {shape:?}"
                        ));
                    }
                    padding.push(pads[2 * i]);
                    out_pad.push(op_i);
                }
                let st = self.ints(blk, &strides, Scalar::UInt(32));
                let pd = self.ints(blk, &padding, Scalar::UInt(32));
                let dl = self.ints(blk, &dil, Scalar::UInt(32));
                let opd = self.ints(blk, &out_pad, Scalar::UInt(32));
                let g = self.scalar(blk, groups as f64, Scalar::UInt(32));
                let prim = format!("primitive.conv_transpose{nsp}d_v1");
                let y = self.op1(
                    blk,
                    &prim,
                    &[&x, &w, &st, &pd, &dl, &opd, &g],
                    shape.clone(),
                    s,
                    None,
                );
                if op.inputs.contains_key("bias") {
                    let b = self.input(f, blk, op, "bias")?;
                    let n = b.shape.iter().product::<i64>();
                    let mut bs = vec![n];
                    bs.extend(std::iter::repeat_n(1, nsp));
                    let b = self.reshape(blk, &b, bs);
                    vec![self.bcast(blk, "add", &y, &b, None)?]
                } else {
                    vec![y]
                }
            }
            "threshold" => {
                // max(x, alpha)
                let x = self.input(f, blk, op, "x")?;
                let a = self.scalar(
                    blk,
                    f.f64(op, "alpha").ok_or("alpha is not a constant")?,
                    x.s,
                );
                vec![self.bcast(blk, "maximum", &x, &a, None)?]
            }
            "leaky_relu" | "prelu" | "elu" => {
                // max(x, 0) + alpha * g(min(x, 0)), g = identity (leaky_relu, prelu) or
                // exp(.) - 1 (elu); prelu's alpha is per channel (axis 1 of [B, C, ...]).
                let x = self.input(f, blk, op, "x")?;
                let alpha = if t == "prelu" {
                    let a = self.input(f, blk, op, "alpha")?;
                    let mut shape = a.shape.clone();
                    shape.extend(std::iter::repeat_n(1, x.shape.len().saturating_sub(2)));
                    self.reshape(blk, &a, shape)
                } else {
                    let v = f
                        .f64(op, "alpha")
                        .unwrap_or(if t == "elu" { 1.0 } else { 0.01 });
                    self.scalar(blk, v, x.s)
                };
                let z = self.scalar(blk, 0.0, x.s);
                let pos = self.bcast(blk, "maximum", &x, &z, None)?;
                let mut neg = self.bcast(blk, "minimum", &x, &z, None)?;
                if t == "elu" {
                    let e = self.unary(blk, "exp", &neg);
                    let one = self.scalar(blk, 1.0, x.s);
                    neg = self.bcast(blk, "sub", &e, &one, None)?;
                }
                let an = self.bcast(blk, "mul", &alpha, &neg, None)?;
                vec![self.bcast(blk, "add", &pos, &an, None)?]
            }
            "sigmoid" => {
                let x = self.input(f, blk, op, "x")?;
                let (sh, sc) = (x.shape.clone(), x.s);
                vec![self.composite(
                    blk,
                    "sigmoid_v1",
                    &[&x],
                    sh.clone(),
                    sc,
                    move |w, inner, args| {
                        let zero = w.constant_zero1(inner, sc);
                        let one = w.constant_one1(inner, sc);
                        let neg = w
                            .bcast(inner, "sub", &zero, &args[0], None)
                            .unwrap_or_else(|_| args[0].clone());
                        let e = w.unary(inner, "exp", &neg);
                        let d = w.bcast(inner, "add", &one, &e, None).unwrap_or(e);
                        w.bcast(inner, "divide", &one, &d, None).unwrap_or(d)
                    },
                )]
            }
            "silu" => {
                let x = self.input(f, blk, op, "x")?;
                let (sh, sc) = (x.shape.clone(), x.s);
                vec![
                    self.composite(blk, "silu_v1", &[&x], sh, sc, move |w, inner, args| {
                        let zero = w.constant_zero1(inner, sc);
                        let one = w.constant_one1(inner, sc);
                        let neg = w
                            .bcast(inner, "sub", &zero, &args[0], None)
                            .unwrap_or_else(|_| args[0].clone());
                        let e = w.unary(inner, "exp", &neg);
                        let d = w.bcast(inner, "add", &one, &e, None).unwrap_or(e);
                        w.bcast(inner, "divide", &args[0], &d, None).unwrap_or(d)
                    }),
                ]
            }
            "gelu" => {
                let x = self.input(f, blk, op, "x")?;
                let mode = f.string(op, "mode").unwrap_or_else(|| "EXACT".into());
                let v = match mode.as_str() {
                    "EXACT" => 0,
                    "TANH_APPROXIMATION" => 1,
                    _ => 2,
                };
                let a = self.enc().enumeration(EnumKind::Approximate, v);
                let mut p = PayloadWriter::new();
                p.attr(a);
                vec![self.op1(
                    blk,
                    "primitive.gelu_v1",
                    &[&x],
                    x.shape.clone(),
                    x.s,
                    Some(p.finish()),
                )]
            }
            "softmax" => {
                let x = self.input(f, blk, op, "x")?;
                let axis = f.int(op, "axis").unwrap_or(-1);
                vec![self.softmax(blk, &x, axis)]
            }
            "cast" => {
                let x = self.input(f, blk, op, "x")?;
                if x.s == s {
                    vec![x]
                } else {
                    vec![self.op1(blk, "primitive.cast_v1", &[&x], x.shape.clone(), s, None)]
                }
            }
            "reshape" | "expand_dims" | "squeeze" | "flatten2d" => {
                let x = self.input(f, blk, op, "x")?;
                vec![self.reshape(blk, &x, shape)]
            }
            "transpose" => {
                let x = self.input(f, blk, op, "x")?;
                let perm = f.ints(op, "perm").ok_or("perm is not a constant")?;
                vec![self.transpose(blk, &x, &perm)]
            }
            "linear" => {
                let x = self.input(f, blk, op, "x")?;
                let w = self.input(f, blk, op, "weight")?;
                let wt = self.transpose(blk, &w, &[1, 0]);
                let mut y = self.matmul(blk, &x, &wt)?;
                if f.binding(op, "bias").is_some() {
                    let b = self.input(f, blk, op, "bias")?;
                    y = self.bcast(blk, "add", &y, &b, None)?;
                }
                vec![y]
            }
            "matmul" => {
                let mut x = self.input(f, blk, op, "x")?;
                let mut y = self.input(f, blk, op, "y")?;
                let swap = |a: &Av| -> Vec<i64> {
                    let r = a.shape.len() as i64;
                    let mut p: Vec<i64> = (0..r).collect();
                    p.swap((r - 1) as usize, (r - 2) as usize);
                    p
                };
                if f.bool(op, "transpose_x").unwrap_or(false) {
                    let p = swap(&x);
                    x = self.transpose(blk, &x, &p);
                }
                if f.bool(op, "transpose_y").unwrap_or(false) {
                    let p = swap(&y);
                    y = self.transpose(blk, &y, &p);
                }
                vec![self.matmul(blk, &x, &y)?]
            }
            "layer_norm" => {
                let x = self.input(f, blk, op, "x")?;
                let axes = f.ints(op, "axes").ok_or("axes is not a constant")?;
                let eps = f.f64(op, "epsilon").unwrap_or(1e-5);
                let mean = self.mean(blk, &x, &axes)?;
                let d = self.bcast(blk, "sub", &x, &mean, None)?;
                let sq = self.bcast(blk, "mul", &d, &d, None)?;
                let var = self.mean(blk, &sq, &axes)?;
                let e = self.scalar(blk, eps, x.s);
                let ve = self.bcast(blk, "add", &var, &e, None)?;
                let r = self.unary(blk, "rsqrt", &ve);
                let mut y = self.bcast(blk, "mul", &d, &r, None)?;
                if f.binding(op, "gamma").is_some() {
                    let g = self.input(f, blk, op, "gamma")?;
                    y = self.bcast(blk, "mul", &y, &g, None)?;
                }
                if f.binding(op, "beta").is_some() {
                    let b = self.input(f, blk, op, "beta")?;
                    y = self.bcast(blk, "add", &y, &b, None)?;
                }
                vec![y]
            }
            "reduce_sum" | "reduce_mean" | "reduce_max" | "reduce_min" | "reduce_prod" => {
                let x = self.input(f, blk, op, "x")?;
                let rank = x.shape.len() as i64;
                let axes = f.ints(op, "axes").unwrap_or_else(|| (0..rank).collect());
                let r = match t {
                    "reduce_mean" => self.mean(blk, &x, &axes)?,
                    "reduce_sum" => self.reduce(blk, "sum", &x, &axes),
                    "reduce_max" => self.reduce(blk, "max", &x, &axes),
                    "reduce_min" => self.reduce(blk, "min", &x, &axes),
                    _ => self.reduce(blk, "product", &x, &axes),
                };
                vec![self.reshape(blk, &r, shape)]
            }
            "slice_by_index" => {
                let x = self.input(f, blk, op, "x")?;
                let r = x.shape.len();
                let begin = f.ints(op, "begin").ok_or("begin is not a constant")?;
                let end = f.ints(op, "end").ok_or("end is not a constant")?;
                let stride = f.ints(op, "stride").unwrap_or_else(|| vec![1; r]);
                let bm = f
                    .value(op, "begin_mask")
                    .and_then(|v| v.to_i64_vec())
                    .unwrap_or_else(|| vec![0; r]);
                let em = f
                    .value(op, "end_mask")
                    .and_then(|v| v.to_i64_vec())
                    .unwrap_or_else(|| vec![0; r]);
                let mut b = Vec::with_capacity(r);
                let mut e = Vec::with_capacity(r);
                for i in 0..r {
                    let st = stride.get(i).copied().unwrap_or(1);
                    let n = x.shape[i];
                    let bi = if bm.get(i).copied().unwrap_or(0) != 0 {
                        if st > 0 { 0 } else { n - 1 }
                    } else {
                        begin[i]
                    };
                    let ei = if em.get(i).copied().unwrap_or(0) != 0 {
                        if st > 0 { n } else { -n - 1 }
                    } else {
                        end[i]
                    };
                    b.push(bi);
                    e.push(ei);
                }
                let bv = self.ints(blk, &b, Scalar::SInt(32));
                let ev = self.ints(blk, &e, Scalar::SInt(32));
                let sv = self.ints(blk, &stride, Scalar::SInt(32));
                // The slice keeps every dim; squeezed dims are reshaped away.
                let mut kept = Vec::with_capacity(r);
                for i in 0..r {
                    let st = stride.get(i).copied().unwrap_or(1);
                    let n = x.shape[i];
                    let res = |v: i64, lo: i64, hi: i64| -> i64 {
                        let v = if v < 0 { v + n } else { v };
                        v.clamp(lo, hi)
                    };
                    let len = if st > 0 {
                        let (bb, ee) = (res(b[i], 0, n), res(e[i], 0, n));
                        ((ee - bb) + st - 1).max(0) / st
                    } else {
                        let bb = res(b[i], 0, n - 1);
                        let ee = if e[i] < -n { -1 } else { res(e[i], -1, n - 1) };
                        ((bb - ee) + (-st) - 1).max(0) / (-st)
                    };
                    kept.push(len);
                }
                let sl = self.op1(
                    blk,
                    "primitive.slice_v1",
                    &[&x, &bv, &ev, &sv],
                    kept,
                    x.s,
                    None,
                );
                vec![self.reshape(blk, &sl, shape)]
            }
            "concat" => {
                let axis = f.int(op, "axis").ok_or("axis is not a constant")?;
                let vals = self.inputs(f, blk, op, "values")?;
                if vals.is_empty() {
                    return Err("no values to join".into());
                }
                vec![self.concat(blk, &vals, axis, shape)]
            }
            "split" => {
                let x = self.input(f, blk, op, "x")?;
                let axis = f.int(op, "axis").ok_or("axis is not a constant")?;
                let rank = x.shape.len() as i64;
                let ax = if axis < 0 { axis + rank } else { axis } as usize;
                let sizes: Vec<i64> = (0..op.outputs.len())
                    .map(|i| Self::out_type(op, i).map(|(sh, _)| sh[ax]))
                    .collect::<R<_>>()?;
                let sz = self.ints(blk, &sizes, Scalar::UInt(32));
                let d = self.scalar(blk, axis as f64, Scalar::SInt(32));
                let types: Vec<TypeId> = (0..op.outputs.len())
                    .map(|i| Self::out_type(op, i).map(|(sh, sc)| self.ty(&sh, sc)))
                    .collect::<R<_>>()?;
                let id = self.push(
                    blk,
                    "primitive.split_v1",
                    &[x.v, sz.v, d.v],
                    &types,
                    None,
                    Vec::new(),
                );
                (0..op.outputs.len())
                    .map(|i| {
                        let (sh, sc) = Self::out_type(op, i)?;
                        Ok(Av {
                            v: Value::Result {
                                op: id,
                                index: i as u32,
                            },
                            shape: sh,
                            s: sc,
                        })
                    })
                    .collect::<R<_>>()?
            }
            "select" => {
                let c = self.input(f, blk, op, "cond")?;
                let a = self.input(f, blk, op, "a")?;
                let b = self.input(f, blk, op, "b")?;
                let sh = broadcast(
                    &broadcast(&c.shape, &a.shape).ok_or("shapes do not broadcast")?,
                    &b.shape,
                )
                .ok_or("shapes do not broadcast")?;
                let sc = a.s;
                let out = sh.clone();
                vec![self.composite(
                    blk,
                    "broadcasting_where_v1",
                    &[&c, &a, &b],
                    sh,
                    sc,
                    move |w, inner, args| {
                        let cc = w.expand(inner, &args[0], &out);
                        let aa = w.expand(inner, &args[1], &out);
                        let bb = w.expand(inner, &args[2], &out);
                        w.op1(
                            inner,
                            "primitive.where_v1",
                            &[&cc, &aa, &bb],
                            out.clone(),
                            sc,
                            None,
                        )
                    },
                )]
            }
            "conv" => {
                let x = self.input(f, blk, op, "x")?;
                let w = self.input(f, blk, op, "weight")?;
                let nsp = x.shape.len().checked_sub(2).ok_or("conv of rank < 3")?;
                let strides = f.ints(op, "strides").unwrap_or_else(|| vec![1; nsp]);
                let dil = f.ints(op, "dilations").unwrap_or_else(|| vec![1; nsp]);
                let groups = f.int(op, "groups").unwrap_or(1);
                let pads = self.conv_padding(f, op, &x, &w, &strides, &dil)?;
                let xp = self.pad(blk, &x, &pads, 0.0)?;
                let (xp, wt, squeeze) = if nsp == 1 {
                    // conv1d as conv2d over a unit height.
                    let mut s4 = xp.shape.clone();
                    s4.insert(2, 1);
                    let mut w4 = w.shape.clone();
                    w4.insert(2, 1);
                    let xr = self.reshape(blk, &xp, s4);
                    let wr = self.reshape(blk, &w, w4);
                    (xr, wr, true)
                } else {
                    (xp, w, false)
                };
                let (st, di) = if squeeze {
                    ([vec![1], strides].concat(), [vec![1], dil].concat())
                } else {
                    (strides, dil)
                };
                let sv = self.ints(blk, &st, Scalar::UInt(32));
                let dv = self.ints(blk, &di, Scalar::UInt(32));
                let gv = self.scalar(blk, groups as f64, Scalar::UInt(32));
                let name = if nsp == 3 {
                    "primitive.conv3d_v1"
                } else {
                    "primitive.conv2d_v1"
                };
                let mut oshape = shape.clone();
                if squeeze {
                    oshape.insert(2, 1);
                }
                let mut y = self.op1(blk, name, &[&xp, &wt, &sv, &dv, &gv], oshape, s, None);
                if f.binding(op, "bias").is_some() {
                    let b = self.input(f, blk, op, "bias")?;
                    let mut bshape = vec![b.shape.iter().product::<i64>()];
                    bshape.extend(std::iter::repeat_n(1, y.shape.len() - 2));
                    let br = self.reshape(blk, &b, bshape);
                    y = self.bcast(blk, "add", &y, &br, None)?;
                }
                vec![self.reshape(blk, &y, shape)]
            }
            "max_pool" | "avg_pool" => {
                let x = self.input(f, blk, op, "x")?;
                let k = f
                    .ints(op, "kernel_sizes")
                    .ok_or("kernel_sizes is not a constant")?;
                let nsp = k.len();
                if nsp != 2 {
                    return Err("pooling over other than 2 spatial dims".into());
                }
                let strides = f.ints(op, "strides").unwrap_or_else(|| vec![1; nsp]);
                let ceil = f.bool(op, "ceil_mode").unwrap_or(false);
                let ones = vec![1; nsp];
                let kshape: Vec<i64> = [vec![0, 0], k.clone()].concat();
                let pads = self.pool_padding(f, op, &x, &kshape, &strides, &ones)?;
                let max = t == "max_pool";
                let exclude = f.bool(op, "exclude_padding_from_average").unwrap_or(false);
                let xp = self.pad(blk, &x, &pads, if max { f64::NEG_INFINITY } else { 0.0 })?;
                let kv = self.ints(blk, &k, Scalar::UInt(32));
                let sv = self.ints(blk, &strides, Scalar::UInt(32));
                let dv = self.ints(blk, &ones, Scalar::UInt(32));
                if max {
                    let cv = self.scalar(blk, if ceil { 1.0 } else { 0.0 }, Scalar::Bool);
                    vec![self.op1(
                        blk,
                        "primitive.max_pool_2d_v1",
                        &[&xp, &kv, &sv, &dv, &cv],
                        shape,
                        s,
                        None,
                    )]
                } else {
                    if ceil {
                        return Err("average pooling in ceil mode".into());
                    }
                    let sum = self.op1(
                        blk,
                        "primitive.sum_pool_2d_v1",
                        &[&xp, &kv, &sv, &dv],
                        shape.clone(),
                        s,
                        None,
                    );
                    let area = (k[0] * k[1]) as f64;
                    let padded = pads.iter().any(|&p| p != 0);
                    if exclude && padded {
                        // Count of real (unpadded) elements under each window.
                        let (ho, wo) = (shape[2], shape[3]);
                        let (h, w) = (x.shape[2], x.shape[3]);
                        let mut counts = Vec::with_capacity((ho * wo) as usize);
                        for i in 0..ho {
                            for j in 0..wo {
                                let r0 = i * strides[0] - pads[4];
                                let c0 = j * strides[1] - pads[6];
                                let rows = (r0..r0 + k[0]).filter(|&r| r >= 0 && r < h).count();
                                let cols = (c0..c0 + k[1]).filter(|&c| c >= 0 && c < w).count();
                                counts.push((rows * cols).max(1) as f32);
                            }
                        }
                        let data: Vec<u8> = counts.iter().flat_map(|c| c.to_le_bytes()).collect();
                        let cnt = self.constant_raw(
                            blk,
                            vec![1, 1, ho, wo],
                            Scalar::F32,
                            Bytes::from(data),
                            false,
                        );
                        let cnt = if s == Scalar::F32 {
                            cnt
                        } else {
                            self.op1(
                                blk,
                                "primitive.cast_v1",
                                &[&cnt],
                                vec![1, 1, ho, wo],
                                s,
                                None,
                            )
                        };
                        vec![self.bcast(blk, "divide", &sum, &cnt, None)?]
                    } else {
                        let a = self.scalar(blk, area, s);
                        vec![self.bcast(blk, "divide", &sum, &a, None)?]
                    }
                }
            }
            "gather" => {
                let x = self.input(f, blk, op, "x")?;
                let idx = self.input(f, blk, op, "indices")?;
                let axis = f.int(op, "axis").unwrap_or(0);
                if f.int(op, "batch_dims").unwrap_or(0) != 0 {
                    return Err("gather with batch_dims".into());
                }
                let rank = x.shape.len() as i64;
                let ax = (if axis < 0 { axis + rank } else { axis }) as usize;
                let idx = if idx.s == Scalar::SInt(32) {
                    idx
                } else {
                    self.op1(
                        blk,
                        "primitive.cast_v1",
                        &[&idx],
                        idx.shape.clone(),
                        Scalar::SInt(32),
                        None,
                    )
                };
                let mut ishape = idx.shape.clone();
                ishape.push(1);
                let ir = self.reshape(blk, &idx, ishape);
                let mut perm: Vec<i64> = (0..rank).collect();
                let xt = if ax != 0 {
                    perm.remove(ax);
                    perm.insert(0, ax as i64);
                    self.transpose(blk, &x, &perm)
                } else {
                    x.clone()
                };
                let mut gshape = idx.shape.clone();
                gshape.extend_from_slice(&xt.shape[1..]);
                let g = self.op1(
                    blk,
                    "primitive.gather_nd_v1",
                    &[&xt, &ir],
                    gshape.clone(),
                    x.s,
                    None,
                );
                if ax == 0 {
                    vec![g]
                } else {
                    // Move the gathered dims back to `axis`.
                    let q = idx.shape.len() as i64;
                    let rest = rank - 1;
                    let mut back: Vec<i64> = Vec::new();
                    back.extend(q..q + ax as i64);
                    back.extend(0..q);
                    back.extend(q + ax as i64..q + rest);
                    vec![self.transpose(blk, &g, &back)]
                }
            }
            "read_state" => {
                if f.nested > 0 {
                    return Err("state access inside a control-flow block (the token chain that orders it would have to pass through the block)".into());
                }
                let name = match f.binding(op, "input") {
                    Some(Binding::Name(n)) => n.clone(),
                    _ => return Err("read_state of a non-state".into()),
                };
                let (h, _) = *f
                    .handles
                    .get(&name)
                    .ok_or("read_state of an unknown state")?;
                let token = self.token(f, blk, &name);
                let vt = self.ty(&shape, s);
                let tt = self.enc().token();
                let id = self.push(
                    blk,
                    "dataflow.read_handle_v1",
                    &[h, token],
                    &[vt, tt],
                    None,
                    Vec::new(),
                );
                f.tokens
                    .insert(name.clone(), Value::Result { op: id, index: 1 });
                vec![Av {
                    v: Value::Result { op: id, index: 0 },
                    shape,
                    s,
                }]
            }
            "write_state" => {
                if f.nested > 0 {
                    return Err("state access inside a control-flow block (the token chain that orders it would have to pass through the block)".into());
                }
                let name = match f.binding(op, "input") {
                    Some(Binding::Name(n)) => n.clone(),
                    _ => return Err("write_state to a non-state".into()),
                };
                let (h, _) = *f
                    .handles
                    .get(&name)
                    .ok_or("write_state to an unknown state")?;
                let data = self.input(f, blk, op, "data")?;
                let token = self.token(f, blk, &name);
                let tt = self.enc().token();
                let id = self.push(
                    blk,
                    "dataflow.write_handle_v1",
                    &[h, data.v, token],
                    &[tt],
                    None,
                    Vec::new(),
                );
                f.tokens
                    .insert(name.clone(), Value::Result { op: id, index: 0 });
                Vec::new()
            }
            "slice_update" => {
                let x = self.input(f, blk, op, "x")?;
                let u = self.input(f, blk, op, "update")?;
                let r = x.shape.len();
                let begin = f.ints(op, "begin").ok_or("begin is not a constant")?;
                let end = f.ints(op, "end").ok_or("end is not a constant")?;
                let stride = f.ints(op, "stride").unwrap_or_else(|| vec![1; r]);
                let bm = f
                    .value(op, "begin_mask")
                    .and_then(|v| v.to_i64_vec())
                    .unwrap_or_else(|| vec![0; r]);
                let em = f
                    .value(op, "end_mask")
                    .and_then(|v| v.to_i64_vec())
                    .unwrap_or_else(|| vec![0; r]);
                let b: Vec<i64> = (0..r)
                    .map(|i| if bm[i] != 0 { 0 } else { begin[i] })
                    .collect();
                let e: Vec<i64> = (0..r)
                    .map(|i| if em[i] != 0 { x.shape[i] } else { end[i] })
                    .collect();
                let bv = self.ints(blk, &b, Scalar::SInt(32));
                let ev = self.ints(blk, &e, Scalar::SInt(32));
                let sv = self.ints(blk, &stride, Scalar::SInt(32));
                let mut ushape = Vec::with_capacity(r);
                for i in 0..r {
                    let n = x.shape[i];
                    let bb = if b[i] < 0 { b[i] + n } else { b[i] }.clamp(0, n);
                    let ee = if e[i] < 0 { e[i] + n } else { e[i] }.clamp(0, n);
                    ushape.push(((ee - bb) + stride[i] - 1).max(0) / stride[i]);
                }
                let ur = self.reshape(blk, &u, ushape);
                vec![self.op1(
                    blk,
                    "primitive.slice_update_v1",
                    &[&x, &bv, &ev, &sv, &ur],
                    x.shape.clone(),
                    x.s,
                    None,
                )]
            }
            "scaled_dot_product_attention" => {
                let q = self.input(f, blk, op, "query")?;
                let k = self.input(f, blk, op, "key")?;
                let v = self.input(f, blk, op, "value")?;
                let r = k.shape.len() as i64;
                let mut p: Vec<i64> = (0..r).collect();
                p.swap((r - 1) as usize, (r - 2) as usize);
                let kt = self.transpose(blk, &k, &p);
                let scores = self.matmul(blk, &q, &kt)?;
                let d = *q.shape.last().ok_or("query of rank 0")? as f64;
                let sc = self.scalar(blk, 1.0 / d.sqrt(), q.s);
                let mut scores = self.bcast(blk, "mul", &scores, &sc, None)?;
                if f.binding(op, "attn_mask").is_some() {
                    let m = self.input(f, blk, op, "attn_mask")?;
                    scores = if m.s == Scalar::Bool {
                        let neg = self.scalar(blk, -1e4, q.s);
                        let zero = self.scalar(blk, 0.0, q.s);
                        let sh = m.shape.clone();
                        let add = self.composite(
                            blk,
                            "broadcasting_where_v1",
                            &[&m, &zero, &neg],
                            sh.clone(),
                            q.s,
                            move |w, inner, args| {
                                let z = w.expand(inner, &args[1], &sh);
                                let n = w.expand(inner, &args[2], &sh);
                                w.op1(
                                    inner,
                                    "primitive.where_v1",
                                    &[&args[0], &z, &n],
                                    sh.clone(),
                                    q.s,
                                    None,
                                )
                            },
                        );
                        self.bcast(blk, "add", &scores, &add, None)?
                    } else {
                        self.bcast(blk, "add", &scores, &m, None)?
                    };
                }
                let probs = self.softmax(blk, &scores, -1);
                vec![self.matmul(blk, &probs, &v)?]
            }
            "constexpr_blockwise_shift_scale" => {
                let data = f.value(op, "data").ok_or("data is not a constant")?;
                let scale = f.value(op, "scale").ok_or("scale is not a constant")?;
                let d = self.mil_const(blk, data)?;
                let sc = self.mil_const(blk, scale)?;
                let o1 = match f.value(op, "offset") {
                    Some(o) => self.mil_const(blk, o)?,
                    None => self.zeros(blk, &sc.shape, d.s),
                };
                let o2 = self.zeros(blk, &sc.shape, sc.s);
                vec![self.op1(
                    blk,
                    "primitive.blockwise_shift_scale_v2",
                    &[&d, &sc, &o1, &o2],
                    shape,
                    s,
                    None,
                )]
            }
            "constexpr_affine_dequantize" => {
                let data = f
                    .value(op, "quantized_data")
                    .ok_or("quantized_data is not a constant")?;
                let d = self.mil_const(blk, data)?;
                let axis = f.int(op, "axis").unwrap_or(0);
                let rank = d.shape.len() as i64;
                let ax = (if axis < 0 { axis + rank } else { axis }) as usize;
                let block_shape = |n: usize| -> Vec<i64> {
                    (0..d.shape.len())
                        .map(|i| if i == ax && n > 1 { n as i64 } else { 1 })
                        .collect()
                };
                let scale = f.value(op, "scale").ok_or("scale is not a constant")?;
                let zp = f
                    .value(op, "zero_point")
                    .ok_or("zero_point is not a constant")?;
                let n = scale
                    .tensor_type()
                    .and_then(|t| t.element_count())
                    .unwrap_or(1) as usize;
                let sc = self.mil_const(blk, scale)?;
                let sc = self.reshape(blk, &sc, block_shape(n));
                let zv = self.mil_const(blk, zp)?;
                let zn = zv.shape.iter().product::<i64>() as usize;
                let zv = self.reshape(blk, &zv, block_shape(zn));
                let zv = if zv.shape == sc.shape {
                    zv
                } else {
                    self.expand(blk, &zv, &sc.shape.clone())
                };
                let o2 = self.zeros(blk, &sc.shape, sc.s);
                vec![self.op1(
                    blk,
                    "primitive.blockwise_shift_scale_v2",
                    &[&d, &sc, &zv, &o2],
                    shape,
                    s,
                    None,
                )]
            }
            "constexpr_lut_to_dense" if op.attributes.contains_key("lut") => {
                return Err("the iOS16 form of palettized weights (packed indices with a flat LUT) is not written; compress at iOS18 (`anekit compress`) first".into());
            }
            "constexpr_lut_to_dense" => {
                let idx = f.value(op, "indices").ok_or("indices is not a constant")?;
                let lut = f.value(op, "lut").ok_or("lut is not a constant")?;
                let iv = self.mil_const(blk, idx)?;
                let lv = self.mil_const(blk, lut)?;
                let axis = f.int(op, "vector_axis").unwrap_or(0);
                let av = self.scalar(blk, axis as f64, Scalar::SInt(16));
                vec![self.op1(
                    blk,
                    "primitive.lut_to_dense_v1",
                    &[&iv, &lv, &av],
                    shape,
                    s,
                    None,
                )]
            }
            "constexpr_sparse_to_dense" => {
                let values = f
                    .value(op, "nonzero_data")
                    .ok_or("nonzero_data is not a constant")?;
                let mask = f.value(op, "mask").ok_or("mask is not a constant")?;
                let vt = values.tensor_type().ok_or("nonzero_data")?;
                let esize = (vt.dtype.bits().unwrap_or(32) / 8) as usize;
                if esize == 0 {
                    return Err("sub-byte sparse data".into());
                }
                let vb = values.bytes().ok_or("nonzero_data without bytes")?;
                let n: usize = shape.iter().product::<i64>().max(0) as usize;
                let mt = mask.tensor_type().ok_or("mask")?;
                // iOS16 (a `shape` parameter) and 1-D uint8 masks: bits packed LSB first.
                let packed = f.value(op, "shape").is_some()
                    || (mt.dtype == DataType::Uint8 && mt.rank() == Some(1) && shape.len() != 1);
                let bits: Vec<i64> = if packed {
                    let raw = mask.bytes().ok_or("mask without bytes")?;
                    anekit_format::subbyte::unpack(raw, 1, n)
                        .ok_or("mask shorter than the weight")?
                        .into_iter()
                        .map(i64::from)
                        .collect()
                } else {
                    mask.to_i64_vec().ok_or("mask")?
                };
                let mut out = Vec::with_capacity(bits.len() * esize);
                let mut next = 0usize;
                for b in bits {
                    if b != 0 {
                        out.extend_from_slice(
                            vb.get(next * esize..(next + 1) * esize)
                                .ok_or("fewer values than set mask bits")?,
                        );
                        next += 1;
                    } else {
                        out.extend(std::iter::repeat_n(0u8, esize));
                    }
                }
                vec![self.constant_raw(blk, shape, s, Bytes::from(out), false)]
            }
            "reduce_argmax" | "reduce_argmin" => {
                let x = self.input(f, blk, op, "x")?;
                let rank = x.shape.len() as i64;
                let axis = f.int(op, "axis").unwrap_or(-1);
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return Err(format!("axis {axis} of a rank-{rank} tensor"));
                }
                let idx = self.index_reduction(blk, &x, axis, t == "reduce_argmax")?;
                let idx = self.int32(blk, idx);
                vec![self.reshape(blk, &idx, shape)]
            }
            "cumsum" => {
                // scan_v1(x, axis: uint32, reverse: bool) {combiner = sum}, as coreai-torch
                // writes torch.cumsum; the exclusive sum is the inclusive one shifted by one
                // along the axis (pad a zero in front, or behind when reversed, and slice).
                let x = self.input(f, blk, op, "x")?;
                let rank = x.shape.len() as i64;
                let axis = f.int(op, "axis").unwrap_or(0);
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return Err(format!("axis {axis} of a rank-{rank} tensor"));
                }
                let reverse = f.bool(op, "reverse").unwrap_or(false);
                let exclusive = f.bool(op, "exclusive").unwrap_or(false);
                let a = self.scalar(blk, axis as f64, Scalar::UInt(32));
                let r = self.scalar(blk, if reverse { 1.0 } else { 0.0 }, Scalar::Bool);
                let comb = self.enc().enumeration(EnumKind::ScanCombiner, 0);
                let mut p = PayloadWriter::new();
                p.attr(comb);
                let y = self.op1(
                    blk,
                    "primitive.scan_v1",
                    &[&x, &a, &r],
                    x.shape.clone(),
                    x.s,
                    Some(p.finish()),
                );
                if exclusive {
                    let ax = axis as usize;
                    let mut pads = vec![0; 2 * x.shape.len()];
                    pads[2 * ax + usize::from(reverse)] = 1;
                    let padded = self.pad_mode(blk, &y, &pads, 0.0, 1)?;
                    let mut begin = vec![0i64; x.shape.len()];
                    if reverse {
                        begin[ax] = 1;
                    }
                    let end: Vec<i64> = begin.iter().zip(&x.shape).map(|(b, d)| b + d).collect();
                    let bv = self.ints(blk, &begin, Scalar::SInt(32));
                    let ev = self.ints(blk, &end, Scalar::SInt(32));
                    let sv = self.ints(blk, &vec![1; x.shape.len()], Scalar::SInt(32));
                    vec![self.op1(
                        blk,
                        "primitive.slice_v1",
                        &[&padded, &bv, &ev, &sv],
                        x.shape.clone(),
                        x.s,
                        None,
                    )]
                } else {
                    vec![y]
                }
            }
            "argsort" => {
                // argsort_v1(x, dim: sint32, descending: bool, stable: bool) -> sint32, as in
                // coreai-torch's sort_v1 region (stable, so ties keep their order as in MIL).
                let x = self.input(f, blk, op, "x")?;
                let rank = x.shape.len() as i64;
                let axis = f.int(op, "axis").unwrap_or(-1);
                let axis = if axis < 0 { axis + rank } else { axis };
                let ascending = f.bool(op, "ascending").unwrap_or(false);
                let d = self.scalar(blk, axis as f64, Scalar::SInt(32));
                let desc = self.scalar(blk, if ascending { 0.0 } else { 1.0 }, Scalar::Bool);
                let stable = self.scalar(blk, 1.0, Scalar::Bool);
                let idx = self.op1(
                    blk,
                    "primitive.argsort_v1",
                    &[&x, &d, &desc, &stable],
                    x.shape.clone(),
                    Scalar::SInt(32),
                    None,
                );
                vec![self.int32(blk, idx)]
            }
            "scatter_along_axis" => {
                // scatter_along_axis_v1(data, indices: sint32, updates, axis: sint32)
                // {scatter_mode}, as coreai-torch writes torch.scatter.
                let data = self.input(f, blk, op, "data")?;
                let idx = self.input(f, blk, op, "indices")?;
                let upd = self.input(f, blk, op, "updates")?;
                let rank = data.shape.len() as i64;
                let axis = f.int(op, "axis").unwrap_or(0);
                let axis = if axis < 0 { axis + rank } else { axis };
                let mode = scatter_mode(f.string(op, "mode").as_deref().unwrap_or("add"))?;
                let idx = self.int32(blk, idx);
                let a = self.scalar(blk, axis as f64, Scalar::SInt(32));
                let m = self.enc().enumeration(EnumKind::ScatterMode, mode);
                let mut p = PayloadWriter::new();
                p.attr(m);
                vec![self.op1(
                    blk,
                    "primitive.scatter_along_axis_v1",
                    &[&data, &idx, &upd, &a],
                    shape,
                    s,
                    Some(p.finish()),
                )]
            }
            "scatter_nd" => {
                // Update: scatter_nd_v1(data, indices: sint32, updates) with a region
                // yielding the new scalar, as coreai-torch writes index_put. coreai-core
                // 1.0.0b3 accepts nothing else in that region and no scatter_mode property
                // on it, so the other modes go through scatter_along_axis_v1, which has
                // them (see `scatter_nd_by_axis`).
                let data = self.input(f, blk, op, "data")?;
                let idx = self.input(f, blk, op, "indices")?;
                let upd = self.input(f, blk, op, "updates")?;
                let mode = scatter_mode(f.string(op, "mode").as_deref().unwrap_or("add"))?;
                let idx = self.int32(blk, idx);
                if mode == 0 {
                    let region = self.scalar_region(data.s, |_, _, _, new| new);
                    let t = self.ty(&shape, s);
                    let id = self.push(
                        blk,
                        "primitive.scatter_nd_v1",
                        &[data.v, idx.v, upd.v],
                        &[t],
                        None,
                        vec![region],
                    );
                    vec![Av {
                        v: Value::Result { op: id, index: 0 },
                        shape,
                        s,
                    }]
                } else {
                    vec![self.scatter_nd_by_axis(blk, &data, &idx, &upd, mode)?]
                }
            }
            "stack" => {
                // Each value reshaped with a 1 at the axis, then concatenated along it
                // (coreai-torch writes torch.stack as a concat and a reshape).
                let axis = f.int(op, "axis").ok_or("axis is not a constant")?;
                let rank = shape.len() as i64;
                let axis = if axis < 0 { axis + rank } else { axis };
                if !(0..rank).contains(&axis) {
                    return Err(format!("stack axis {axis} for a rank-{rank} result"));
                }
                let mut vals = Vec::new();
                for v in self.inputs(f, blk, op, "values")? {
                    if v.shape.len() + 1 != shape.len() {
                        return Err(format!(
                            "stack of a rank-{} value into rank {rank}",
                            v.shape.len()
                        ));
                    }
                    let mut sh = v.shape.clone();
                    sh.insert(axis as usize, 1);
                    vals.push(self.reshape(blk, &v, sh));
                }
                if vals.is_empty() {
                    return Err("no values to join".into());
                }
                vec![self.concat(blk, &vals, axis, shape)]
            }
            "local_response_norm" => {
                // x / (k + alpha / size * sum of x² over the channel window) ^ beta, the
                // window being channels c - size/2 ..= c + (size-1)/2 (PyTorch's, and the
                // CPU backend's); the sum is a sum_pool_3d_v1 over [N, 1, C, H, W] with a
                // [size, 1, 1] kernel after zero padding, as coreai-torch lowers
                // F.local_response_norm.
                let x = self.input(f, blk, op, "x")?;
                let size = f.int(op, "size").ok_or("size is not a constant")?;
                if size < 1 {
                    return Err(format!("size {size}"));
                }
                let alpha = f.f64(op, "alpha").unwrap_or(1e-4);
                let beta = f.f64(op, "beta").unwrap_or(0.75);
                let k = f.f64(op, "k").unwrap_or(1.0);
                let (n, c, h, w) = match x.shape[..] {
                    [c, h, w] => (1, c, h, w),
                    [n, c, h, w] => (n, c, h, w),
                    _ => {
                        return Err(format!(
                            "local_response_norm of a rank-{} tensor (rank 3 or 4 only)",
                            x.shape.len()
                        ));
                    }
                };
                let sq = self.bcast(blk, "mul", &x, &x, None)?;
                let sq5 = self.reshape(blk, &sq, vec![n, 1, c, h, w]);
                let mut pads = vec![0; 10];
                pads[4] = size / 2;
                pads[5] = (size - 1) / 2;
                let padded = self.pad_mode(blk, &sq5, &pads, 0.0, 1)?;
                let kv = self.ints(blk, &[size, 1, 1], Scalar::UInt(32));
                let ones = self.ints(blk, &[1, 1, 1], Scalar::UInt(32));
                let sum = self.op1(
                    blk,
                    "primitive.sum_pool_3d_v1",
                    &[&padded, &kv, &ones, &ones],
                    vec![n, 1, c, h, w],
                    x.s,
                    None,
                );
                let sum = self.reshape(blk, &sum, x.shape.clone());
                let a = self.scalar(blk, alpha / size as f64, x.s);
                let kk = self.scalar(blk, k, x.s);
                let b = self.scalar(blk, beta, x.s);
                let scaled = self.bcast(blk, "mul", &sum, &a, None)?;
                let base = self.bcast(blk, "add", &scaled, &kk, None)?;
                let den = self.bcast(blk, "pow", &base, &b, None)?;
                vec![self.bcast(blk, "divide", &x, &den, None)?]
            }
            "lstm" | "gru" | "rnn" => self.recurrent(f, blk, op)?,
            "cond" => self.cond(f, blk, op)?,
            "while_loop" => self.while_loop(f, blk, op)?,
            "classify" => return Err("classifier outputs (labels) have no Core AI form".into()),
            other => return Err(format!("no Core AI counterpart for MIL {other}")),
        })
    }

    /// Write the ops of the nested MIL `block` into the aicode block `blk` with `inputs`
    /// bound to the block's inputs; returns the values of the block's outputs. Names
    /// defined (and constants written) inside do not leak out: aicode regions, like MIL
    /// blocks, see the values around them, but not the other way round.
    fn nested<'p>(
        &mut self,
        f: &mut Fn<'p>,
        blk: BlockId,
        block: &'p anekit_mil::Block,
        inputs: Vec<Av>,
    ) -> R<Vec<Av>> {
        if inputs.len() != block.inputs.len() {
            return Err(format!(
                "a nested block with {} inputs given {} values",
                block.inputs.len(),
                inputs.len()
            ));
        }
        let saved_vars = f.vars.clone();
        let saved_consts = f.consts.clone();
        f.nested += 1;
        let result = (|| {
            for (i, a) in block.inputs.iter().zip(inputs) {
                f.vars.insert(i.name.clone(), a);
            }
            for op in &block.operations {
                if op.op_type == "const"
                    && let (Some(out), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
                {
                    f.vars.remove(&out.name);
                    f.consts.insert(out.name.clone(), v);
                }
            }
            for op in &block.operations {
                if op.op_type == "const" {
                    continue;
                }
                let outs = self.op(f, blk, op).map_err(|e| {
                    format!("{} ({}) in its block: {e}", op.display_name(), op.op_type)
                })?;
                for (o, a) in op.outputs.iter().zip(outs) {
                    f.vars.insert(o.name.clone(), a);
                }
            }
            block
                .outputs
                .iter()
                .map(|o| {
                    if let Some(a) = f.vars.get(o) {
                        return Ok(a.clone());
                    }
                    let v = f
                        .consts
                        .get(o)
                        .copied()
                        .ok_or_else(|| format!("block output {o} is not defined"))?;
                    self.mil_const(blk, v)
                })
                .collect::<R<Vec<Av>>>()
        })();
        f.nested -= 1;
        f.vars = saved_vars;
        f.consts = saved_consts;
        result
    }

    /// A bool predicate as the rank-0 `tensor<bool>` that `if_v1` and `condition_v1`
    /// take (MIL allows a one-element tensor).
    fn predicate(&mut self, blk: BlockId, p: Av, what: &str) -> R<Av> {
        if p.s != Scalar::Bool {
            return Err(format!("the {what} is {:?}, not bool", p.s));
        }
        if p.shape.iter().product::<i64>() != 1 {
            return Err(format!("the {what} has shape {:?}, not one value", p.shape));
        }
        Ok(self.reshape(blk, &p, Vec::new()))
    }

    /// A new aicode block with arguments of the types of `like`; its arguments as values.
    fn region_block(&mut self, like: &[Av]) -> (BlockId, Vec<Av>) {
        let types: Vec<TypeId> = like.iter().map(|a| self.ty(&a.shape, a.s)).collect();
        let b = self.b.module.ir.push_block(Block {
            args: types
                .iter()
                .map(|&ty| BlockArg {
                    ty,
                    location: Some(self.loc),
                })
                .collect(),
            ..Block::default()
        });
        let args = like
            .iter()
            .enumerate()
            .map(|(i, a)| Av {
                v: Value::Arg {
                    block: b,
                    index: i as u32,
                },
                shape: a.shape.clone(),
                s: a.s,
            })
            .collect();
        (b, args)
    }

    /// Check that `got` (what a block returns) has the types of `want`.
    fn same_types(got: &[Av], want: &[(Vec<i64>, Scalar)], what: &str) -> R<()> {
        if got.len() != want.len() {
            return Err(format!(
                "{what} returns {} values for {}",
                got.len(),
                want.len()
            ));
        }
        for (i, (g, (shape, s))) in got.iter().zip(want).enumerate() {
            if g.shape != *shape || g.s != *s {
                return Err(format!(
                    "{what} returns {:?} {:?} as value {i}, where {:?} {:?} is declared",
                    g.s, g.shape, s, shape
                ));
            }
        }
        Ok(())
    }

    /// A control-flow op: not isolated from above (its regions use the values around
    /// them), as coreai-torch writes `if_v1` and `while_v1`.
    fn push_control_flow(
        &mut self,
        blk: BlockId,
        name: &str,
        operands: &[Value],
        results: &[(Vec<i64>, Scalar)],
        regions: Vec<RegionId>,
    ) -> Vec<Av> {
        let types: Vec<TypeId> = results.iter().map(|(sh, s)| self.ty(sh, *s)).collect();
        let id = self.push(blk, name, operands, &types, None, regions);
        self.b.module.ir.ops[id.index()].isolated = false;
        results
            .iter()
            .enumerate()
            .map(|(i, (shape, s))| Av {
                v: Value::Result {
                    op: id,
                    index: i as u32,
                },
                shape: shape.clone(),
                s: *s,
            })
            .collect()
    }

    /// MIL `cond(pred)` with a true and a false block → `controlflow.if_v1(pred)` with a
    /// then and an else region ending in `dataflow.yield_v1`, the form coreai-torch writes
    /// for `torch.cond`. Values the blocks use from outside are used from the regions as
    /// they are (aicode's control-flow regions capture them, as MIL blocks do).
    fn cond<'p>(&mut self, f: &mut Fn<'p>, blk: BlockId, op: &'p Operation) -> R<Vec<Av>> {
        let [t, e] = op.blocks.as_slice() else {
            return Err(format!("cond with {} blocks", op.blocks.len()));
        };
        let p = self.input(f, blk, op, "pred")?;
        let p = self.predicate(blk, p, "predicate")?;
        let results: Vec<(Vec<i64>, Scalar)> = (0..op.outputs.len())
            .map(|i| Self::out_type(op, i))
            .collect::<R<_>>()?;
        let mut regions = Vec::with_capacity(2);
        for (block, what) in [(t, "the true block"), (e, "the false block")] {
            let (b, _) = self.region_block(&[]);
            let outs = self.nested(f, b, block, Vec::new())?;
            Self::same_types(&outs, &results, what)?;
            let vals: Vec<Value> = outs.iter().map(|a| a.v).collect();
            self.push(b, "dataflow.yield_v1", &vals, &[], None, Vec::new());
            regions.push(self.b.module.ir.push_region(Region { blocks: vec![b] }));
        }
        Ok(self.push_control_flow(blk, "controlflow.if_v1", &[p.v], &results, regions))
    }

    /// MIL `while_loop(loop_vars)` with a cond and a body block →
    /// `controlflow.while_v1(loop_vars)`: the first region runs the cond block on the
    /// loop-carried values and ends in `condition_v1(c, values…)` (passing them on
    /// unchanged: the loop's results when `c` is false, the body's arguments otherwise);
    /// the second runs the body block and yields the next values. This is the form
    /// coreai-torch writes for `torch.while_loop`.
    fn while_loop<'p>(&mut self, f: &mut Fn<'p>, blk: BlockId, op: &'p Operation) -> R<Vec<Av>> {
        let [c, body] = op.blocks.as_slice() else {
            return Err(format!("while_loop with {} blocks", op.blocks.len()));
        };
        let vars = self.inputs(f, blk, op, "loop_vars")?;
        if vars.is_empty() {
            return Err("a while_loop without loop variables".into());
        }
        let types: Vec<(Vec<i64>, Scalar)> = vars.iter().map(|a| (a.shape.clone(), a.s)).collect();
        let declared: Vec<(Vec<i64>, Scalar)> = (0..op.outputs.len())
            .map(|i| Self::out_type(op, i))
            .collect::<R<_>>()?;
        if declared != types {
            return Err(format!(
                "loop variables {types:?} and results {declared:?} differ (Core AI loops keep their types)"
            ));
        }
        // A constant condition: the loop never runs, or never ends. coreai-core 1.0.0b3
        // refuses a while_v1 whose condition_v1 takes a constant ("failed to legalize
        // operation 'arith.constant'"), so the first case is written without a loop.
        let constant = c.outputs.first().and_then(|n| {
            c.operations
                .iter()
                .find(|o| o.op_type == "const" && o.outputs.first().is_some_and(|x| &x.name == n))
                .and_then(|o| o.attributes.get("val"))
                .or_else(|| f.consts.get(n).copied())
                .and_then(MilValue::as_bool)
        });
        match constant {
            Some(false) => return Ok(vars),
            Some(true) => {
                return Err("the loop condition is always true: the loop never ends".into());
            }
            None => {}
        }
        // Before: the cond block, then condition_v1(c, the arguments).
        let (before, args) = self.region_block(&vars);
        let outs = self.nested(f, before, c, args.clone())?;
        let [cv] = outs.as_slice() else {
            return Err(format!(
                "the cond block returns {} values, not one bool",
                outs.len()
            ));
        };
        let cv = self.predicate(before, cv.clone(), "loop condition")?;
        let mut operands = vec![cv.v];
        operands.extend(args.iter().map(|a| a.v));
        self.push(
            before,
            "controlflow.condition_v1",
            &operands,
            &[],
            None,
            Vec::new(),
        );
        // After: the body block, yielding the next values.
        let (after, args) = self.region_block(&vars);
        let next = self.nested(f, after, body, args)?;
        Self::same_types(&next, &types, "the body block")?;
        let vals: Vec<Value> = next.iter().map(|a| a.v).collect();
        self.push(after, "dataflow.yield_v1", &vals, &[], None, Vec::new());
        let regions = vec![
            self.b.module.ir.push_region(Region {
                blocks: vec![before],
            }),
            self.b.module.ir.push_region(Region {
                blocks: vec![after],
            }),
        ];
        let operands: Vec<Value> = vars.iter().map(|a| a.v).collect();
        Ok(self.push_control_flow(blk, "controlflow.while_v1", &operands, &types, regions))
    }

    /// `sigmoid_v1(x)` as coreai-torch writes it (1 / (1 + exp(0 - x)) in its region).
    fn sigmoid(&mut self, blk: BlockId, x: &Av) -> Av {
        let (sh, sc) = (x.shape.clone(), x.s);
        self.composite(blk, "sigmoid_v1", &[x], sh, sc, move |w, inner, args| {
            let zero = w.constant_zero1(inner, sc);
            let one = w.constant_one1(inner, sc);
            let neg = w
                .bcast(inner, "sub", &zero, &args[0], None)
                .unwrap_or_else(|_| args[0].clone());
            let e = w.unary(inner, "exp", &neg);
            let d = w.bcast(inner, "add", &one, &e, None).unwrap_or(e);
            w.bcast(inner, "divide", &one, &d, None).unwrap_or(d)
        })
    }

    /// A recurrent layer's activation by its MIL name.
    fn activation(&mut self, blk: BlockId, name: &str, x: &Av) -> R<Av> {
        Ok(match name {
            "sigmoid" => self.sigmoid(blk, x),
            "tanh" => self.unary(blk, "tanh", x),
            "linear" => x.clone(),
            "relu" => {
                let z = self.scalar(blk, 0.0, x.s);
                self.bcast(blk, "maximum", x, &z, None)?
            }
            other => {
                return Err(format!(
                    "recurrent activation {other} has no Core AI form here"
                ));
            }
        })
    }

    /// Columns `lo..hi` of a `[rows, n]` tensor.
    fn columns(&mut self, blk: BlockId, x: &Av, lo: i64, hi: i64) -> Av {
        let rows = x.shape.first().copied().unwrap_or(1);
        let bv = self.ints(blk, &[0, lo], Scalar::SInt(32));
        let ev = self.ints(blk, &[rows, hi], Scalar::SInt(32));
        let sv = self.ints(blk, &[1, 1], Scalar::SInt(32));
        self.op1(
            blk,
            "primitive.slice_v1",
            &[x, &bv, &ev, &sv],
            vec![rows, hi - lo],
            x.s,
            None,
        )
    }

    /// Rows `lo..hi` of a `[n, cols]` tensor.
    fn rows(&mut self, blk: BlockId, x: &Av, lo: i64, hi: i64) -> Av {
        let cols = x.shape.get(1).copied().unwrap_or(1);
        let bv = self.ints(blk, &[lo, 0], Scalar::SInt(32));
        let ev = self.ints(blk, &[hi, cols], Scalar::SInt(32));
        let sv = self.ints(blk, &[1, 1], Scalar::SInt(32));
        self.op1(
            blk,
            "primitive.slice_v1",
            &[x, &bv, &ev, &sv],
            vec![hi - lo, cols],
            x.s,
            None,
        )
    }

    /// `vals` (at least one) joined along `axis` into a value of `shape`; one value is itself.
    fn concat(&mut self, blk: BlockId, vals: &[Av], axis: i64, shape: Vec<i64>) -> Av {
        if let [one] = vals {
            return one.clone();
        }
        let d = self.scalar(blk, axis as f64, Scalar::SInt(32));
        let mut ops: Vec<&Av> = vec![&d];
        ops.extend(vals.iter());
        let s = vals.first().map_or(Scalar::F32, |v| v.s);
        self.op1(blk, "primitive.concat_v1", &ops, shape, s, None)
    }

    /// MIL `lstm`, `gru` and `rnn` unrolled over their static sequence into primitives, as
    /// coreai-torch unrolls PyTorch's recurrent layers (matmuls, slices, sigmoid_v1,
    /// tanh). Semantics as coremltools defines them (`ops/defs/iOS15/recurrent.py`, the
    /// CPU backend's `recurrent.rs`): `x` is `[seq, batch, input]`, the gate blocks of
    /// `lstm` are input, forget, output, cell (`ifoz`), `bias` sums both biases;
    /// `i, f, o = σr(Wx + Rh + b)`, `z = σc(Wx + Rh + b)`, `c = clip(f⊙c + i⊙z)`,
    /// `h = o⊙σa(c)`; `gru` (`r|o|z`): `r, z = σr(Wx + Rh + b)`,
    /// `o = σa(W_o x + b_o + R_o(r⊙h))` (iOS18 `reset_after`: `σa(W_o x + b_io +
    /// r⊙(R_o h + b_o))`, `input_bias` the input-side biases), `h = (1−z)⊙o + z⊙h₋₁`;
    /// `rnn`: `h = σa(Wx + Rh + b)`. `reverse` emits the states in
    /// processing order; `bidirectional` concatenates the forward states with the
    /// backward ones aligned to their input step. Peepholes are refused by name.
    fn recurrent(&mut self, f: &mut Fn<'_>, blk: BlockId, op: &Operation) -> R<Vec<Av>> {
        let lstm = op.op_type == "lstm";
        let gru = op.op_type == "gru";
        let g = if lstm {
            4
        } else if gru {
            3
        } else {
            1
        };
        let reset_after = gru && f.bool(op, "reset_after").unwrap_or(false);
        let x = self.input(f, blk, op, "x")?;
        let [steps, batch, input] = x.shape[..] else {
            return Err(format!(
                "x of shape {:?} (expected [seq, batch, input])",
                x.shape
            ));
        };
        let direction = f
            .string(op, "direction")
            .unwrap_or_else(|| "forward".into());
        let dirs: &[(&str, bool)] = match direction.as_str() {
            "forward" => &[("", false)],
            "reverse" => &[("", true)],
            "bidirectional" if lstm => &[("", false), ("_back", true)],
            d => return Err(format!("{} direction {d}", op.op_type)),
        };
        let nd = dirs.len() as i64;
        // Every step becomes a few dozen ops: bound what a (hostile) sequence length
        // can make the writer allocate.
        if steps < 1 || steps * nd > MAX_UNROLLED_STEPS {
            return Err(format!(
                "a sequence of {steps} steps ({nd} direction(s)) is not unrolled (at most {MAX_UNROLLED_STEPS} steps)"
            ));
        }
        let output_sequence = f.bool(op, "output_sequence").unwrap_or(false);
        let act = f.string(op, "activation").unwrap_or_else(|| "tanh".into());
        let rec = f
            .string(op, "recurrent_activation")
            .unwrap_or_else(|| "sigmoid".into());
        let cell = f
            .string(op, "cell_activation")
            .unwrap_or_else(|| "tanh".into());
        let clip = f.f64(op, "clip");
        for p in ["peephole", "peephole_back"] {
            if op.inputs.contains_key(p) {
                return Err("lstm peepholes have no Core AI form here".into());
            }
        }
        // The input projection of every step at once: [seq·batch, input] @ W_ihᵀ + b.
        let x2 = self.reshape(blk, &x, vec![steps * batch, input]);
        let mut seqs = Vec::new();
        let mut finals_h = Vec::new();
        let mut finals_c = Vec::new();
        for (d, &(suffix, reverse)) in dirs.iter().enumerate() {
            let wih = self.input(f, blk, op, &format!("weight_ih{suffix}"))?;
            let whh = self.input(f, blk, op, &format!("weight_hh{suffix}"))?;
            let [gh, h] = whh.shape[..] else {
                return Err(format!("weight_hh{suffix} of shape {:?}", whh.shape));
            };
            if gh != g * h || wih.shape != [gh, input] {
                return Err(format!(
                    "weights of shapes {:?} and {:?} for input {input}",
                    wih.shape, whh.shape
                ));
            }
            let wih_t = self.transpose(blk, &wih, &[1, 0]);
            let whh_t = self.transpose(blk, &whh, &[1, 0]);
            let mut xp = self.matmul(blk, &x2, &wih_t)?;
            // gru with reset_after: the output gate's `bias` block goes inside r ⊙ (.).
            let mut bias_o = None;
            if op.inputs.contains_key(&format!("bias{suffix}")) {
                let mut b = self.input(f, blk, op, &format!("bias{suffix}"))?;
                if b.shape.iter().product::<i64>() != gh {
                    return Err(format!(
                        "bias{suffix} of shape {:?} for {gh} gate values",
                        b.shape
                    ));
                }
                if reset_after {
                    let b2 = self.reshape(blk, &b, vec![1, gh]);
                    bias_o = Some(self.columns(blk, &b2, h, 2 * h));
                    let mask: Vec<f32> = (0..gh)
                        .map(|j| if (h..2 * h).contains(&j) { 0.0 } else { 1.0 })
                        .collect();
                    let bytes = Bytes::from(
                        mask.iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    );
                    let mut m = self.constant_raw(blk, vec![gh], Scalar::F32, bytes, false);
                    if b.s != Scalar::F32 {
                        m = self.op1(blk, "primitive.cast_v1", &[&m], vec![gh], b.s, None);
                    }
                    b = self.bcast(blk, "mul", &b, &m, None)?;
                }
                xp = self.bcast(blk, "add", &xp, &b, None)?;
            }
            if gru && op.inputs.contains_key("input_bias") {
                let b = self.input(f, blk, op, "input_bias")?;
                xp = self.bcast(blk, "add", &xp, &b, None)?;
            }
            // gru without reset_after: R_o applies to r ⊙ h.
            let r_o_t = if gru && !reset_after {
                let r_o = self.rows(blk, &whh, h, 2 * h);
                Some(self.transpose(blk, &r_o, &[1, 0]))
            } else {
                None
            };
            let init = |w: &mut Self, f: &mut Fn<'_>, name: &str| -> R<Av> {
                if !op.inputs.contains_key(name) {
                    return Ok(w.zeros(blk, &[batch, h], x.s));
                }
                let v = w.input(f, blk, op, name)?;
                if v.shape.iter().product::<i64>() != batch * nd * h {
                    return Err(format!("{name} of shape {:?}", v.shape));
                }
                let v = w.reshape(blk, &v, vec![batch, nd * h]);
                Ok(if nd == 1 {
                    v
                } else {
                    w.columns(blk, &v, d as i64 * h, (d as i64 + 1) * h)
                })
            };
            let mut hs = init(self, f, "initial_h")?;
            let mut cs = if lstm {
                Some(init(self, f, "initial_c")?)
            } else {
                None
            };
            let mut states = Vec::new();
            for k in 0..steps {
                let t = if reverse { steps - 1 - k } else { k };
                let xt = self.rows(blk, &xp, t * batch, (t + 1) * batch);
                let hr = self.matmul(blk, &hs, &whh_t)?;
                let gates = self.bcast(blk, "add", &xt, &hr, None)?;
                if let Some(c) = cs.take() {
                    let gi = self.columns(blk, &gates, 0, h);
                    let gf = self.columns(blk, &gates, h, 2 * h);
                    let go = self.columns(blk, &gates, 2 * h, 3 * h);
                    let gz = self.columns(blk, &gates, 3 * h, 4 * h);
                    let i = self.activation(blk, &rec, &gi)?;
                    let fg = self.activation(blk, &rec, &gf)?;
                    let o = self.activation(blk, &rec, &go)?;
                    let z = self.activation(blk, &cell, &gz)?;
                    let fc = self.bcast(blk, "mul", &fg, &c, None)?;
                    let iz = self.bcast(blk, "mul", &i, &z, None)?;
                    let mut c = self.bcast(blk, "add", &fc, &iz, None)?;
                    if let Some(l) = clip {
                        let lo = self.scalar(blk, -l, c.s);
                        let hi = self.scalar(blk, l, c.s);
                        let m = self.bcast(blk, "maximum", &c, &lo, None)?;
                        c = self.bcast(blk, "minimum", &m, &hi, None)?;
                    }
                    let ac = self.activation(blk, &act, &c)?;
                    hs = self.bcast(blk, "mul", &o, &ac, None)?;
                    cs = Some(c);
                } else if gru {
                    // r | o | z blocks; h = o + z ⊙ (h₋₁ − o).
                    let gr = self.columns(blk, &gates, 0, h);
                    let gz = self.columns(blk, &gates, 2 * h, 3 * h);
                    let r = self.activation(blk, &rec, &gr)?;
                    let z = self.activation(blk, &rec, &gz)?;
                    let xo = self.columns(blk, &xt, h, 2 * h);
                    let hidden = match &r_o_t {
                        Some(r_o_t) => {
                            let rh = self.bcast(blk, "mul", &r, &hs, None)?;
                            self.matmul(blk, &rh, r_o_t)?
                        }
                        None => {
                            let mut ho = self.columns(blk, &hr, h, 2 * h);
                            if let Some(bo) = &bias_o {
                                ho = self.bcast(blk, "add", &ho, bo, None)?;
                            }
                            self.bcast(blk, "mul", &r, &ho, None)?
                        }
                    };
                    let pre = self.bcast(blk, "add", &xo, &hidden, None)?;
                    let o = self.activation(blk, &act, &pre)?;
                    let d = self.bcast(blk, "sub", &hs, &o, None)?;
                    let zd = self.bcast(blk, "mul", &z, &d, None)?;
                    hs = self.bcast(blk, "add", &o, &zd, None)?;
                } else {
                    hs = self.activation(blk, &act, &gates)?;
                }
                states.push(hs.clone());
            }
            // Bidirectional: the backward states aligned with their input step.
            if nd == 2 && reverse {
                states.reverse();
            }
            if output_sequence {
                let steps3: Vec<Av> = states
                    .iter()
                    .map(|s| self.reshape(blk, s, vec![1, batch, h]))
                    .collect();
                seqs.push(self.concat(blk, &steps3, 0, vec![steps, batch, h]));
            }
            finals_h.push(hs);
            if let Some(c) = cs {
                finals_c.push(c);
            }
        }
        let width: i64 = finals_h.iter().map(|v| v.shape[1]).sum();
        let hn = self.concat(blk, &finals_h, 1, vec![batch, width]);
        let first = if output_sequence {
            let hd = seqs.first().map_or(0, |s| s.shape[2]);
            self.concat(blk, &seqs, 2, vec![steps, batch, nd * hd])
        } else {
            self.reshape(blk, &hn, vec![1, batch, hn.shape[1]])
        };
        let mut outs = vec![first, hn];
        if lstm {
            outs.push(self.concat(blk, &finals_c, 1, vec![batch, outs[1].shape[1]]));
        }
        // The declared output shapes (same sizes; e.g. [batch, H] or [1, batch, H]).
        let mut result = Vec::new();
        for (i, v) in outs.into_iter().enumerate().take(op.outputs.len()) {
            let (sh, _) = Self::out_type(op, i)?;
            if sh.iter().product::<i64>() != v.shape.iter().product::<i64>() {
                return Err(format!("output {i} of shape {sh:?} for {:?}", v.shape));
            }
            result.push(self.reshape(blk, &v, sh));
        }
        Ok(result)
    }

    /// `scatter_nd` with a combining mode (`scatter_mode_v1` case `mode`) through
    /// `scatter_along_axis_v1`: data [D0 .. Dn-1] viewed as [P, R] (P the product of the K
    /// indexed dims, R of the rest), each index tuple turned into a row number
    /// (sum of index k times the product of the indexed dims after k), repeated over the
    /// R columns, and the updates viewed as [M, R]; scattering along axis 0 with the mode
    /// combines repeated indices as MIL does.
    fn scatter_nd_by_axis(
        &mut self,
        blk: BlockId,
        data: &Av,
        idx: &Av,
        upd: &Av,
        mode: u64,
    ) -> R<Av> {
        let k = *idx.shape.last().ok_or("scalar indices")? as usize;
        if k == 0 || k > data.shape.len() {
            return Err(format!(
                "indices of depth {k} for a rank-{} tensor",
                data.shape.len()
            ));
        }
        let p: i64 = data.shape[..k].iter().product();
        let r: i64 = data.shape[k..].iter().product();
        let m: i64 = idx.shape[..idx.shape.len() - 1].iter().product();
        if upd.shape.iter().product::<i64>() != m * r {
            return Err(format!(
                "updates of shape {:?} for indices {:?} into {:?}",
                upd.shape, idx.shape, data.shape
            ));
        }
        let idx2 = self.reshape(blk, idx, vec![m, k as i64]);
        let mut row: Option<Av> = None;
        for j in 0..k {
            let stride: i64 = data.shape[j + 1..k].iter().product();
            let bv = self.ints(blk, &[0, j as i64], Scalar::SInt(32));
            let ev = self.ints(blk, &[m, j as i64 + 1], Scalar::SInt(32));
            let sv = self.ints(blk, &[1, 1], Scalar::SInt(32));
            let col = self.op1(
                blk,
                "primitive.slice_v1",
                &[&idx2, &bv, &ev, &sv],
                vec![m, 1],
                Scalar::SInt(32),
                None,
            );
            let term = if stride == 1 {
                col
            } else {
                let st = self.scalar(blk, stride as f64, Scalar::SInt(32));
                self.bcast(blk, "mul", &col, &st, None)?
            };
            row = Some(match row {
                None => term,
                Some(acc) => self.bcast(blk, "add", &acc, &term, None)?,
            });
        }
        let row = row.ok_or("no index")?;
        let rows = self.expand(blk, &row, &[m, r]);
        let data2 = self.reshape(blk, data, vec![p, r]);
        let upd2 = self.reshape(blk, upd, vec![m, r]);
        let a = self.scalar(blk, 0.0, Scalar::SInt(32));
        let me = self.enc().enumeration(EnumKind::ScatterMode, mode);
        let mut pw = PayloadWriter::new();
        pw.attr(me);
        let y = self.op1(
            blk,
            "primitive.scatter_along_axis_v1",
            &[&data2, &rows, &upd2, &a],
            vec![p, r],
            data.s,
            Some(pw.finish()),
        );
        Ok(self.reshape(blk, &y, data.shape.clone()))
    }

    /// A region of two scalar arguments of type `s` (the old value and the new, or the
    /// best so far and a candidate) yielding what `body` computes from them.
    fn scalar_region(
        &mut self,
        s: Scalar,
        body: impl FnOnce(&mut Self, BlockId, Av, Av) -> Av,
    ) -> RegionId {
        let st = self.ty(&[], s);
        let cb = self.b.module.ir.push_block(Block {
            args: vec![
                BlockArg {
                    ty: st,
                    location: Some(self.loc),
                },
                BlockArg {
                    ty: st,
                    location: Some(self.loc),
                },
            ],
            ..Block::default()
        });
        let arg = |index| Av {
            v: Value::Arg { block: cb, index },
            shape: vec![],
            s,
        };
        let out = body(self, cb, arg(0), arg(1));
        self.push(cb, "dataflow.yield_v1", &[out.v], &[], None, Vec::new());
        self.b.module.ir.push_region(Region { blocks: vec![cb] })
    }

    /// The index of the largest (`max`) or smallest element of `x` along `axis`, as a
    /// uint32 tensor with that axis kept (size 1). The largest is coreai-torch's
    /// `argmax_v1(x, axis)` composite, whose region is `reduce_index_v1(x, axis, lowest,
    /// 0)` comparing `greater(candidate, best)`. aicode has no argmin composite and
    /// coreai-core 1.0.0b3 does not legalize a `reduce_index_v1` outside `argmax_v1`
    /// ("failed to legalize operation"), so the smallest is the largest of `-x` (exact
    /// for floats: negation keeps ties tied). The comparison is strict: the first of
    /// equal elements wins, as in MIL.
    fn index_reduction(&mut self, blk: BlockId, x: &Av, axis: i64, max: bool) -> R<Av> {
        let s = x.s;
        let extreme = match (s, max) {
            (Scalar::F32, _) => f64::from(f32::MIN),
            (Scalar::F16, _) => f64::from(half::f16::MIN),
            (Scalar::SInt(32), true) => f64::from(i32::MIN),
            _ => {
                return Err(format!(
                    "an index reduction of {s:?} elements (floats only for argmin)"
                ));
            }
        };
        let mut out = x.shape.clone();
        if let Some(d) = out.get_mut(axis as usize) {
            *d = 1;
        }
        let ax = self.scalar(blk, axis as f64, Scalar::SInt(32));
        let dyn_shape = vec![i64::MIN; x.shape.len()];
        let reduce = move |w: &mut Self, b: BlockId, x: &Av, ax: &Av, result: Vec<i64>| -> Av {
            let init = w.scalar(b, extreme, s);
            let zero = w.scalar(b, 0.0, Scalar::UInt(32));
            let region = w.scalar_region(s, |w, cb, best, cand| {
                w.op1(
                    cb,
                    "primitive.greater_v1",
                    &[&cand, &best],
                    vec![],
                    Scalar::Bool,
                    None,
                )
            });
            let t = w.ty(&result, Scalar::UInt(32));
            let id = w.push(
                b,
                "primitive.reduce_index_v1",
                &[x.v, ax.v, init.v, zero.v],
                &[t],
                None,
                vec![region],
            );
            Av {
                v: Value::Result { op: id, index: 0 },
                shape: result,
                s: Scalar::UInt(32),
            }
        };
        let x = if max {
            x.clone()
        } else {
            let m = self.scalar(blk, -1.0, s);
            self.bcast(blk, "mul", x, &m, None)?
        };
        let shape = out.clone();
        Ok(self.composite(
            blk,
            "argmax_v1",
            &[&x, &ax],
            shape,
            Scalar::UInt(32),
            move |w, inner, args| {
                let mut r = reduce(w, inner, &args[0], &args[1], dyn_shape);
                r.shape = out;
                r
            },
        ))
    }

    fn zeros(&mut self, blk: BlockId, shape: &[i64], s: Scalar) -> Av {
        let n: i64 = shape.iter().product();
        let bytes = ((n.max(0) as u64 * u64::from(s.bits())).div_ceil(8)) as usize;
        self.constant_raw(blk, shape.to_vec(), s, Bytes::from(vec![0u8; bytes]), false)
    }

    fn constant_zero1(&mut self, blk: BlockId, s: Scalar) -> Av {
        let d = match s {
            Scalar::F16 => vec![0u8; 2],
            _ => vec![0u8; 4],
        };
        self.constant_raw(blk, vec![1], s, Bytes::from(d), true)
    }

    fn constant_one1(&mut self, blk: BlockId, s: Scalar) -> Av {
        let d = match s {
            Scalar::F16 => half::f16::from_f32(1.0).to_le_bytes().to_vec(),
            _ => 1.0f32.to_le_bytes().to_vec(),
        };
        self.constant_raw(blk, vec![1], s, Bytes::from(d), true)
    }

    fn token(&mut self, f: &mut Fn<'_>, blk: BlockId, state: &str) -> Value {
        if let Some(&t) = f.tokens.get(state) {
            return t;
        }
        let tt = self.enc().token();
        let id = self.push(
            blk,
            "dataflow.create_token_v1",
            &[],
            &[tt],
            None,
            Vec::new(),
        );
        let v = Value::Result { op: id, index: 0 };
        f.tokens.insert(state.to_string(), v);
        v
    }

    fn mean(&mut self, blk: BlockId, x: &Av, axes: &[i64]) -> R<Av> {
        let rank = x.shape.len() as i64;
        let count: i64 = axes
            .iter()
            .map(|&a| {
                x.shape
                    .get((if a < 0 { a + rank } else { a }) as usize)
                    .copied()
                    .unwrap_or(1)
            })
            .product();
        let s = x.s;
        let sh = {
            let mut v = x.shape.clone();
            for &a in axes {
                if let Some(d) = v.get_mut((if a < 0 { a + rank } else { a }) as usize) {
                    *d = 1;
                }
            }
            v
        };
        let norm: Vec<i64> = axes
            .iter()
            .map(|&a| if a < 0 { a + rank } else { a })
            .collect();
        let ax = self.ints(blk, &norm, Scalar::SInt(32));
        Ok(self.composite(
            blk,
            "reduce_mean_v1",
            &[x, &ax],
            sh,
            s,
            move |w, inner, args| {
                let sum = w.reduce(inner, "sum", &args[0], &norm);
                let n = w.scalar(inner, count as f64, s);
                w.bcast(inner, "divide", &sum, &n, None).unwrap_or(sum)
            },
        ))
    }

    /// `pad_v1` (pairs per dim, for all dims) unless every pad is zero.
    fn pad(&mut self, blk: BlockId, x: &Av, pads: &[i64], value: f64) -> R<Av> {
        self.pad_mode(blk, x, pads, value, 1)
    }

    /// `pad_v1` with padding mode `mode` (`padding_mode_v1`: 1 constant, 2 reflect,
    /// 3 replicate).
    fn pad_mode(&mut self, blk: BlockId, x: &Av, pads: &[i64], value: f64, mode: u64) -> R<Av> {
        if pads.len() != 2 * x.shape.len() {
            return Err(format!("{} pads for rank {}", pads.len(), x.shape.len()));
        }
        if pads.iter().any(|&p| p < 0) {
            return Err("negative padding".into());
        }
        if pads.iter().all(|&p| p == 0) {
            return Ok(x.clone());
        }
        let pv = self.ints(blk, pads, Scalar::UInt(32));
        let vv = self.scalar(blk, value, x.s);
        let shape: Vec<i64> = x
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| d + pads[2 * i] + pads[2 * i + 1])
            .collect();
        let mode = self.enc().enumeration(EnumKind::Padding, mode);
        let mut p = PayloadWriter::new();
        p.attr(mode);
        Ok(self.op1(
            blk,
            "primitive.pad_v1",
            &[x, &pv, &vv],
            shape,
            x.s,
            Some(p.finish()),
        ))
    }

    /// Padding (pairs for every dim) of a conv from its pad_type.
    fn conv_padding(
        &mut self,
        f: &Fn<'_>,
        op: &Operation,
        x: &Av,
        w: &Av,
        strides: &[i64],
        dil: &[i64],
    ) -> R<Vec<i64>> {
        let k: Vec<i64> = w.shape.clone();
        self.pool_padding(f, op, x, &k, strides, dil)
    }

    fn pool_padding(
        &mut self,
        f: &Fn<'_>,
        op: &Operation,
        x: &Av,
        kshape: &[i64],
        strides: &[i64],
        dil: &[i64],
    ) -> R<Vec<i64>> {
        let nsp = x.shape.len() - 2;
        let kernel: Vec<i64> = kshape[kshape.len() - nsp..].to_vec();
        let pad_type = f.string(op, "pad_type").unwrap_or_else(|| "valid".into());
        let mut pads = vec![0i64; 4];
        match pad_type.as_str() {
            "valid" => {}
            "custom" => {
                let p = f.ints(op, "pad").unwrap_or_else(|| vec![0; 2 * nsp]);
                pads.extend(p);
                return Ok(pads);
            }
            "same" | "same_lower" => {
                for i in 0..nsp {
                    let n = x.shape[2 + i];
                    let ek = dil[i] * (kernel[i] - 1) + 1;
                    let out = (n + strides[i] - 1) / strides[i];
                    let total = ((out - 1) * strides[i] + ek - n).max(0);
                    let (a, b) = if pad_type == "same" {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    };
                    pads.push(a);
                    pads.push(b);
                }
                return Ok(pads);
            }
            other => return Err(format!("pad_type {other}")),
        }
        pads.extend(vec![0; 2 * nsp]);
        Ok(pads)
    }

    fn function(&mut self, name: &str, func: &Function, asset_blk: BlockId) -> Result<(), String> {
        let block = func.block().ok_or("no block for the function's opset")?;
        let mut f = Fn {
            consts: HashMap::new(),
            vars: HashMap::new(),
            handles: HashMap::new(),
            tokens: HashMap::new(),
            nested: 0,
        };
        for op in &block.operations {
            if op.op_type == "const"
                && let (Some(out), Some(v)) = (op.outputs.first(), op.attributes.get("val"))
            {
                f.consts.insert(out.name.clone(), v);
            }
        }
        // Arguments: states first (as coreai-torch orders them), then tensors.
        let mut states: Vec<(&str, &TensorType)> = Vec::new();
        let mut tensors: Vec<(&str, &TensorType)> = Vec::new();
        for i in &func.inputs {
            match &i.ty {
                ValueType::State(inner) => {
                    states.push((&i.name, inner.as_tensor().ok_or("a state of a non-tensor")?))
                }
                ValueType::Tensor(t) => tensors.push((&i.name, t)),
                other => return Err(format!("input {} of type {other}", i.name)),
            }
        }
        let mut arg_types = Vec::new();
        let mut arg_attrs = Vec::new();
        for (n, t) in &states {
            let sh = static_shape(t).ok_or_else(|| format!("state {n} has a flexible shape"))?;
            let s = scalar_of(t.dtype).ok_or("state type")?;
            let tt = self.ty(&sh, s);
            let ht = self.enc().handle(tt);
            arg_types.push(ht);
            let mut e = self.enc();
            let mutation = {
                let v = e.string(n);
                e.opaque("MutableBuffers.buffer_mutation", &[v])
            };
            let nm = {
                let v = e.string(n);
                e.opaque("aicode.name", &[v])
            };
            arg_attrs.push(e.array(&[mutation, nm]));
        }
        for (n, t) in &tensors {
            let sh = static_shape(t).ok_or_else(|| {
                format!("input {n} has a flexible shape (Core AI conversion needs static shapes)")
            })?;
            let s = scalar_of(t.dtype).ok_or_else(|| format!("input {n} of type {}", t.dtype))?;
            arg_types.push(self.ty(&sh, s));
            let mut e = self.enc();
            let v = e.string(n);
            let nm = e.opaque("aicode.name", &[v]);
            arg_attrs.push(e.array(&[nm]));
        }
        let body = self.b.module.ir.push_block(Block {
            args: arg_types
                .iter()
                .map(|&ty| BlockArg {
                    ty,
                    location: Some(self.loc),
                })
                .collect(),
            ..Block::default()
        });
        for (i, (n, t)) in states.iter().chain(tensors.iter()).enumerate() {
            let v = Value::Arg {
                block: body,
                index: i as u32,
            };
            if i < states.len() {
                f.handles.insert(n.to_string(), (v, arg_types[i]));
            } else {
                let sh = static_shape(t).unwrap_or_default();
                let s = scalar_of(t.dtype).unwrap_or(Scalar::F32);
                f.vars.insert(n.to_string(), Av { v, shape: sh, s });
            }
        }
        let mut failed = false;
        let mut poisoned: std::collections::HashSet<String> = std::collections::HashSet::new();
        for op in &block.operations {
            if op.op_type == "const" {
                continue;
            }
            // An op fed by one that failed is not reported again.
            let fed_by_failure = op
                .inputs
                .values()
                .flat_map(|a| a.0.iter())
                .any(|b| matches!(b, Binding::Name(n) if poisoned.contains(n)));
            if fed_by_failure {
                poisoned.extend(op.outputs.iter().map(|o| o.name.clone()));
                continue;
            }
            match self.op(&mut f, body, op) {
                Ok(outs) => {
                    for (o, a) in op.outputs.iter().zip(outs) {
                        f.vars.insert(o.name.clone(), a);
                    }
                }
                Err(reason) => {
                    failed = true;
                    poisoned.extend(op.outputs.iter().map(|o| o.name.clone()));
                    self.failures.push((
                        name.to_string(),
                        op.display_name().to_string(),
                        op.op_type.clone(),
                        reason,
                    ));
                }
            }
        }
        if failed {
            return Ok(());
        }
        // Results: one token per state (named after it), then the outputs.
        let mut results = Vec::new();
        let mut result_types = Vec::new();
        let mut res_attrs = Vec::new();
        for (n, _) in &states {
            let t = self.token(&mut f, body, n);
            results.push(t);
            result_types.push(self.enc().token());
            let mut e = self.enc();
            let v = e.string(n);
            let nm = e.opaque("aicode.name", &[v]);
            res_attrs.push(e.array(&[nm]));
        }
        for o in &block.outputs {
            let a = match f.vars.get(o) {
                Some(a) => a.clone(),
                None => match f.consts.get(o) {
                    Some(v) => self.mil_const(body, v)?,
                    None => return Err(format!("output {o} is not defined")),
                },
            };
            results.push(a.v);
            result_types.push(self.ty(&a.shape, a.s));
            let mut e = self.enc();
            let v = e.string(o);
            let nm = e.opaque("aicode.name", &[v]);
            res_attrs.push(e.array(&[nm]));
        }
        self.push(body, "dataflow.output_v1", &results, &[], None, Vec::new());
        // The graph op and its properties.
        let mut e = self.enc();
        let arg_attrs = e.array(&arg_attrs);
        let res_attrs = e.array(&res_attrs);
        let ft = e.function(&arg_types, &result_types);
        let ft = e.type_attr(ft);
        let no = e.integer(1, false, 0);
        let name_attr = e.string(name);
        let params = e.array(&[]);
        let slots = schema::slots("dataflow.graph_v1").ok_or("graph_v1 schema")?;
        let values: BTreeMap<&str, AttrId> = BTreeMap::from([
            ("argAttrs", arg_attrs),
            ("externalize", no),
            ("functionType", ft),
            ("isPrivate", no),
            ("name", name_attr),
            ("noInline", no),
            ("paramDecls", params),
            ("resAttrs", res_attrs),
        ]);
        let mut p = PayloadWriter::new();
        for s in slots {
            let v = values.get(s.name).copied();
            if s.optional {
                p.optional_attr(v);
            } else {
                p.attr(v.ok_or("graph property")?);
            }
        }
        let region = self.b.module.ir.push_region(Region { blocks: vec![body] });
        self.push(
            asset_blk,
            "dataflow.graph_v1",
            &[],
            &[],
            Some(p.finish()),
            vec![region],
        );
        Ok(())
    }
}

/// Convert `program` into a Core AI module (every function a public graph).
pub fn from_mil(program: &Program, producer: &str) -> Result<Bytecode, ConvertError> {
    if program.functions.is_empty() {
        return Err(ConvertError::Program("the program has no functions".into()));
    }
    let mut w = Writer::new(producer);
    let asset_blk = w.b.module.ir.push_block(Block::default());
    for (name, func) in &program.functions {
        w.function(name, func, asset_blk)
            .map_err(ConvertError::Program)?;
    }
    if !w.failures.is_empty() {
        return Err(ConvertError::Unsupported(std::mem::take(&mut w.failures)));
    }
    let version = w.enc().integer(32, false, ASSET_VERSION);
    let slots =
        schema::slots("serialization.asset").ok_or(ConvertError::Program("asset schema".into()))?;
    let mut p = PayloadWriter::new();
    for s in slots {
        p.optional_attr((s.name == "version").then_some(version));
    }
    let region = w.b.module.ir.push_region(Region {
        blocks: vec![asset_blk],
    });
    let name_id = w.b.op_name(w.dialect, "serialization.asset", true);
    let props = Properties::Encoded(w.b.properties(p.finish()));
    let loc = w.loc;
    let top = w.b.module.ir.push_op(MOp {
        name: name_id,
        location: loc,
        attributes: None,
        properties: Some(props),
        result_types: Vec::new(),
        operands: Vec::new(),
        successors: Vec::new(),
        use_list_orders: Vec::new(),
        regions: vec![region],
        isolated: true,
    });
    w.b.module.ir.top = vec![top];
    Ok(w.b.finish())
}
