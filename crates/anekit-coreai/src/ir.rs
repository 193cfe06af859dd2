//! The `aicode` dialect's attributes and types: their bytecode encodings (decoded into
//! [`Attr`] and [`Type`], encoded back by [`Encoder`]) and their textual forms.
//!
//! The codes and layouts were established against coreai-core 1.0.0b3: modules it wrote
//! (and modules it parsed from text and wrote) were read here and printed, and the text
//! compared with what coreai-core's MLIR printer gives for the same file; see
//! `docs/coreai.md` for the tables.

use bytes::Bytes;

use anekit_mlir::builder::Builder;
use anekit_mlir::dialect::{ApInt, PayloadReader, PayloadWriter};
use anekit_mlir::{AttrId, Bytecode, DialectId, MlirError, Section, TypeId};

/// The name of the dialect.
pub const DIALECT: &str = "aicode";

/// An element (scalar) type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `bool_v1`.
    Bool,
    /// `float64_v1`.
    F64,
    /// `float32_v1`.
    F32,
    /// `float16_v1`.
    F16,
    /// `bfloat16_v1`.
    BF16,
    /// `sint{N}_v1` (N in 2, 4, 8, 16, 32, 64).
    SInt(u8),
    /// `uint{N}_v1` (N in 1, 2, 3, 4, 6, 8, 16, 32, 64).
    UInt(u8),
}

/// (type code, scalar) for every scalar type the dialect has shown us.
const SCALARS: [(u64, Scalar); 20] = [
    (4, Scalar::Bool),
    (5, Scalar::F64),
    (6, Scalar::F32),
    (7, Scalar::F16),
    (8, Scalar::BF16),
    (17, Scalar::SInt(64)),
    (18, Scalar::SInt(32)),
    (19, Scalar::SInt(16)),
    (20, Scalar::SInt(8)),
    (21, Scalar::SInt(4)),
    (22, Scalar::SInt(2)),
    (23, Scalar::UInt(64)),
    (24, Scalar::UInt(32)),
    (25, Scalar::UInt(16)),
    (26, Scalar::UInt(8)),
    (27, Scalar::UInt(4)),
    (28, Scalar::UInt(2)),
    (29, Scalar::UInt(1)),
    (36, Scalar::UInt(6)),
    (37, Scalar::UInt(3)),
];

impl Scalar {
    /// The type's code in the bytecode.
    pub fn code(self) -> u64 {
        SCALARS
            .iter()
            .find(|(_, s)| *s == self)
            .map_or(0, |(c, _)| *c)
    }

    fn from_code(code: u64) -> Option<Self> {
        SCALARS.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
    }

    /// The mnemonic (`float32`, `sint8`, ...).
    pub fn name(self) -> String {
        match self {
            Scalar::Bool => "bool".into(),
            Scalar::F64 => "float64".into(),
            Scalar::F32 => "float32".into(),
            Scalar::F16 => "float16".into(),
            Scalar::BF16 => "bfloat16".into(),
            Scalar::SInt(n) => format!("sint{n}"),
            Scalar::UInt(n) => format!("uint{n}"),
        }
    }

    /// Bits per element.
    pub fn bits(self) -> u32 {
        match self {
            Scalar::Bool => 8,
            Scalar::F64 => 64,
            Scalar::F32 => 32,
            Scalar::F16 | Scalar::BF16 => 16,
            Scalar::SInt(n) | Scalar::UInt(n) => u32::from(n),
        }
    }
}

/// A decoded type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// A scalar element type.
    Scalar(Scalar),
    /// `tensor_v1<[dims] : element>`; a dynamic dimension is `i64::MIN`.
    Tensor {
        /// The shape (empty for rank 0).
        shape: Vec<i64>,
        /// The element type.
        element: TypeId,
    },
    /// `function_v1<(operands ...) -> (results ...)>`.
    Function {
        /// Operand types.
        inputs: Vec<TypeId>,
        /// Result types.
        results: Vec<TypeId>,
    },
    /// `handle_v1<T>`: a reference to mutable state holding a `T`.
    Handle(TypeId),
    /// `token_v1`: orders side effects.
    Token,
    /// `param.symbol_v1`.
    ParamSymbol,
    /// A type code this crate does not know (its payload is kept).
    Unknown(u64),
}

/// Which enumeration an enum attribute belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumKind {
    /// `approximate_v1` (gelu).
    Approximate,
    /// `interpolation_mode_v1`.
    Interpolation,
    /// `padding_mode_v1`.
    Padding,
    /// `scan_combiner_v1`.
    ScanCombiner,
    /// `scatter_mode_v1`.
    ScatterMode,
}

/// (attribute code, kind, mnemonic, case names by value).
const ENUMS: [(u64, EnumKind, &str, &[&str]); 5] = [
    (
        19,
        EnumKind::Approximate,
        "approximate_v1",
        &["none", "tanh", "sigmoid"],
    ),
    (
        43,
        EnumKind::Interpolation,
        "interpolation_mode_v1",
        &["linear", "nearest_neighbor"],
    ),
    (
        17,
        EnumKind::Padding,
        "padding_mode_v1",
        &["circular", "constant", "reflect", "replicate", "symmetric"],
    ),
    (
        25,
        EnumKind::ScanCombiner,
        "scan_combiner_v1",
        &["sum", "product", "min", "max"],
    ),
    (
        20,
        EnumKind::ScatterMode,
        "scatter_mode_v1",
        &["update", "add", "sub", "mul", "div", "max", "min"],
    ),
];

impl EnumKind {
    fn entry(self) -> &'static (u64, EnumKind, &'static str, &'static [&'static str]) {
        // Every kind has an entry.
        ENUMS.iter().find(|e| e.1 == self).unwrap_or(&ENUMS[0])
    }

    /// The mnemonic (`padding_mode_v1`).
    pub fn mnemonic(self) -> &'static str {
        self.entry().2
    }

    /// The name of case `value`.
    pub fn case(self, value: u64) -> Option<&'static str> {
        self.entry().3.get(value as usize).copied()
    }

    /// The value of case `name`.
    pub fn value(self, name: &str) -> Option<u64> {
        self.entry()
            .3
            .iter()
            .position(|c| *c == name)
            .map(|v| v as u64)
    }
}

/// A decoded attribute. Children are references (decode them on demand).
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `serialization.string<"...">`.
    String(String),
    /// `serialization.integer<(Nbit signed|unsigned) v>`.
    Integer {
        /// Bit width.
        width: u32,
        /// Signedness.
        signed: bool,
        /// The bits.
        value: ApInt,
    },
    /// `serialization.float<(Nbit) v>`.
    Float {
        /// Bit width.
        width: u32,
        /// The IEEE bits.
        bits: ApInt,
    },
    /// `serialization.type<T>`.
    Type(TypeId),
    /// `serialization.array<[...]>`.
    Array(Vec<AttrId>),
    /// `serialization.dense_elements<[splat = b] "base64">`: raw little-endian elements
    /// (sub-byte types packed), one element when `splat`.
    DenseElements {
        /// All elements equal the one stored.
        splat: bool,
        /// The bytes (a slice of the file).
        data: Bytes,
    },
    /// `serialization.dense_resource<key>`: elements in a dialect resource blob.
    DenseResource(usize),
    /// `serialization.opaque<"name" = [...]>`: a named list (dictionary entries too).
    Opaque {
        /// The name.
        name: String,
        /// The values.
        values: Vec<AttrId>,
    },
    /// `serialization.dictionary<{...}>`: opaque entries.
    Dictionary(Vec<AttrId>),
    /// `param.constant_v1<binding{ [value] : T }>`: a parameter bound to a constant.
    ParamConstant {
        /// The bound value.
        value: AttrId,
        /// Its type.
        ty: TypeId,
    },
    /// `symbol_ref_v1<a::b>`: a reference to a symbol (a graph) by its path.
    SymbolRef(Vec<String>),
    /// An enumeration case.
    Enum {
        /// Which enumeration.
        kind: EnumKind,
        /// The case value.
        value: u64,
    },
    /// `unit_v1`.
    Unit,
    /// A debug-info attribute (locations and their parts), kept as encoded.
    DebugInfo(u64),
    /// An attribute code this crate does not know.
    Unknown(u64),
}

/// Attribute codes.
mod code {
    pub const STRING: u64 = 1;
    pub const INTEGER: u64 = 2;
    pub const FLOAT: u64 = 3;
    pub const TYPE: u64 = 4;
    pub const ARRAY: u64 = 5;
    pub const DENSE_ELEMENTS: u64 = 6;
    pub const DENSE_RESOURCE: u64 = 7;
    pub const OPAQUE: u64 = 9;
    pub const SYMBOL_REF: u64 = 14;
    pub const PARAM_CONSTANT: u64 = 16;
    pub const DICTIONARY: u64 = 45;
    pub const UNIT: u64 = 46;
    /// Debug info: file, source range, metadata value, metadata entry, location.
    pub const DEBUG: [u64; 5] = [30, 31, 33, 35, 40];

    pub const T_TENSOR: u64 = 2;
    pub const T_FUNCTION: u64 = 30;
    pub const T_HANDLE: u64 = 31;
    pub const T_TOKEN: u64 = 32;
    pub const T_PARAM_SYMBOL: u64 = 33;
}

fn list<T>(
    r: &mut PayloadReader<'_>,
    mut item: impl FnMut(&mut PayloadReader<'_>) -> Result<T, MlirError>,
) -> Result<Vec<T>, MlirError> {
    let n = r.count(1, "list item")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(item(r)?);
    }
    Ok(out)
}

/// Decode attribute `id` of `m` (an `aicode` attribute).
pub fn attr(m: &Bytecode, id: AttrId) -> Result<Attr, MlirError> {
    let entry = m
        .attributes
        .get(id.index())
        .ok_or_else(|| MlirError::malformed(Section::Attribute(id.0), 0, "no such attribute"))?;
    if !entry.custom {
        return Err(MlirError::unsupported(
            Section::Attribute(id.0),
            "a textual attribute (only the binary encoding is decoded)",
        ));
    }
    if m.dialect_name(entry.dialect) != DIALECT {
        return Err(MlirError::unsupported(
            Section::Attribute(id.0),
            format!("an attribute of dialect {}", m.dialect_name(entry.dialect)),
        ));
    }
    let mut r = PayloadReader::new(m, &entry.data, Section::Attribute(id.0));
    let c = r.varint()?;
    let a = match c {
        code::STRING => Attr::String(r.string()?.to_string()),
        code::INTEGER => {
            let width = width(&mut r)?;
            // One byte: 0 signed, 1 unsigned.
            let signed = match r.byte()? {
                0 => true,
                1 => false,
                b => return Err(r.error(format!("integer signedness {b}"))),
            };
            Attr::Integer {
                width,
                signed,
                value: r.apint(width)?,
            }
        }
        code::FLOAT => {
            let width = width(&mut r)?;
            Attr::Float {
                width,
                bits: r.apint(width)?,
            }
        }
        code::TYPE => Attr::Type(r.ty()?),
        code::ARRAY => Attr::Array(list(&mut r, |r| r.attr())?),
        code::DENSE_ELEMENTS => {
            let splat = r.bool()?;
            Attr::DenseElements {
                splat,
                data: r.blob()?,
            }
        }
        code::DENSE_RESOURCE => {
            let n = m.dialect_resources().count();
            Attr::DenseResource(r.resource_handle(n)?)
        }
        code::OPAQUE => {
            let name = r.string()?.to_string();
            Attr::Opaque {
                name,
                values: list(&mut r, |r| r.attr())?,
            }
        }
        code::DICTIONARY => Attr::Dictionary(list(&mut r, |r| r.attr())?),
        code::PARAM_CONSTANT => {
            let value = r.attr()?;
            Attr::ParamConstant { value, ty: r.ty()? }
        }
        code::SYMBOL_REF => Attr::SymbolRef(list(&mut r, |r| r.string().map(str::to_string))?),
        code::UNIT => Attr::Unit,
        c if code::DEBUG.contains(&c) => return Ok(Attr::DebugInfo(c)),
        c => match ENUMS.iter().find(|e| e.0 == c) {
            Some(e) => {
                let value = r.varint()?;
                if e.3.get(value as usize).is_none() {
                    return Err(r.error(format!("{} has no case {value}", e.2)));
                }
                Attr::Enum { kind: e.1, value }
            }
            None => return Ok(Attr::Unknown(c)),
        },
    };
    r.finish()?;
    Ok(a)
}

fn width(r: &mut PayloadReader<'_>) -> Result<u32, MlirError> {
    let w = r.varint()?;
    u32::try_from(w)
        .ok()
        .filter(|&w| (1..=4096).contains(&w))
        .ok_or_else(|| r.error(format!("bit width {w}")))
}

/// Decode type `id` of `m`.
pub fn ty(m: &Bytecode, id: TypeId) -> Result<Type, MlirError> {
    let entry = m
        .types
        .get(id.index())
        .ok_or_else(|| MlirError::malformed(Section::Type(id.0), 0, "no such type"))?;
    if !entry.custom || m.dialect_name(entry.dialect) != DIALECT {
        return Err(MlirError::unsupported(
            Section::Type(id.0),
            "a type that is not a binary-encoded aicode type",
        ));
    }
    let mut r = PayloadReader::new(m, &entry.data, Section::Type(id.0));
    let c = r.varint()?;
    let t = match c {
        code::T_TENSOR => {
            let shape = list(&mut r, |r| r.signed_varint())?;
            Type::Tensor {
                shape,
                element: r.ty()?,
            }
        }
        code::T_FUNCTION => {
            let results = list(&mut r, |r| r.ty())?;
            let inputs = list(&mut r, |r| r.ty())?;
            Type::Function { inputs, results }
        }
        code::T_HANDLE => Type::Handle(r.ty()?),
        code::T_TOKEN => Type::Token,
        code::T_PARAM_SYMBOL => Type::ParamSymbol,
        c => match Scalar::from_code(c) {
            Some(s) => Type::Scalar(s),
            None => return Ok(Type::Unknown(c)),
        },
    };
    r.finish()?;
    Ok(t)
}

/// Encodes `aicode` attributes and types into a module being built.
pub struct Encoder<'b> {
    /// The builder.
    pub b: &'b mut Builder,
    /// The `aicode` dialect in it.
    pub dialect: DialectId,
}

impl<'b> Encoder<'b> {
    /// An encoder over `b`, registering the dialect with `version` if it is new.
    pub fn new(b: &'b mut Builder, version: Option<Bytes>) -> Self {
        let dialect = b.dialect(DIALECT, version);
        Self { b, dialect }
    }

    fn attr_of(&mut self, w: PayloadWriter) -> AttrId {
        self.b.attr(self.dialect, true, w.finish())
    }

    fn type_of(&mut self, w: PayloadWriter) -> TypeId {
        self.b.ty(self.dialect, true, w.finish())
    }

    /// A scalar type.
    pub fn scalar(&mut self, s: Scalar) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(s.code());
        self.type_of(w)
    }

    /// A tensor type.
    pub fn tensor(&mut self, shape: &[i64], element: TypeId) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(code::T_TENSOR).varint(shape.len() as u64);
        for &d in shape {
            w.signed_varint(d);
        }
        w.ty(element);
        self.type_of(w)
    }

    /// A function type.
    pub fn function(&mut self, inputs: &[TypeId], results: &[TypeId]) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(code::T_FUNCTION).varint(results.len() as u64);
        for &t in results {
            w.ty(t);
        }
        w.varint(inputs.len() as u64);
        for &t in inputs {
            w.ty(t);
        }
        self.type_of(w)
    }

    /// A handle type.
    pub fn handle(&mut self, inner: TypeId) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(code::T_HANDLE).ty(inner);
        self.type_of(w)
    }

    /// The token type.
    pub fn token(&mut self) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(code::T_TOKEN);
        self.type_of(w)
    }

    /// A string attribute.
    pub fn string(&mut self, s: &str) -> AttrId {
        let sid = self.b.string(s);
        let mut w = PayloadWriter::new();
        w.varint(code::STRING).string(sid);
        self.attr_of(w)
    }

    /// An integer attribute.
    pub fn integer(&mut self, width: u32, signed: bool, value: u64) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::INTEGER)
            .varint(u64::from(width))
            .byte(u8::from(!signed))
            .apint(&ApInt::from_u64(width, value));
        self.attr_of(w)
    }

    /// A float attribute from IEEE bits.
    pub fn float(&mut self, width: u32, bits: u64) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::FLOAT)
            .varint(u64::from(width))
            .apint(&ApInt::from_u64(width, bits));
        self.attr_of(w)
    }

    /// A type attribute.
    pub fn type_attr(&mut self, t: TypeId) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::TYPE).ty(t);
        self.attr_of(w)
    }

    fn list_attr(&mut self, c: u64, items: &[AttrId]) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(c).varint(items.len() as u64);
        for &a in items {
            w.attr(a);
        }
        self.attr_of(w)
    }

    /// An array attribute.
    pub fn array(&mut self, items: &[AttrId]) -> AttrId {
        self.list_attr(code::ARRAY, items)
    }

    /// A dictionary attribute (of opaque entries).
    pub fn dictionary(&mut self, entries: &[AttrId]) -> AttrId {
        self.list_attr(code::DICTIONARY, entries)
    }

    /// An opaque (named list) attribute.
    pub fn opaque(&mut self, name: &str, values: &[AttrId]) -> AttrId {
        let sid = self.b.string(name);
        let mut w = PayloadWriter::new();
        w.varint(code::OPAQUE)
            .string(sid)
            .varint(values.len() as u64);
        for &a in values {
            w.attr(a);
        }
        self.attr_of(w)
    }

    /// A dense-elements attribute.
    pub fn dense(&mut self, splat: bool, data: &[u8]) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::DENSE_ELEMENTS).bool(splat).blob(data);
        self.attr_of(w)
    }

    /// A dense-resource attribute referring to resource handle `handle`.
    pub fn dense_resource(&mut self, handle: usize) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::DENSE_RESOURCE).resource_handle(handle);
        self.attr_of(w)
    }

    /// A reference to symbol `name`.
    pub fn symbol_ref(&mut self, name: &str) -> AttrId {
        let name = self.b.string(name);
        let mut w = PayloadWriter::new();
        w.varint(code::SYMBOL_REF).varint(1).string(name);
        self.attr_of(w)
    }

    /// A parameter bound to constant `value` of type `ty`.
    pub fn param_constant(&mut self, value: AttrId, ty: TypeId) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::PARAM_CONSTANT).attr(value).ty(ty);
        self.attr_of(w)
    }

    /// `param.symbol_v1`.
    pub fn param_symbol(&mut self) -> TypeId {
        let mut w = PayloadWriter::new();
        w.varint(code::T_PARAM_SYMBOL);
        self.type_of(w)
    }

    /// An enumeration case.
    pub fn enumeration(&mut self, kind: EnumKind, value: u64) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(kind.entry().0).varint(value);
        self.attr_of(w)
    }

    /// `unit_v1`.
    pub fn unit(&mut self) -> AttrId {
        let mut w = PayloadWriter::new();
        w.varint(code::UNIT);
        self.attr_of(w)
    }
}

/// The source position of location attribute `id` (`debuginfo.location_v1`: a source
/// range in a file), as `file:line:column`; `None` for the unknown location coreai-core
/// writes without debug information (file `-`, line 0) or for anything that is not an
/// aicode location.
pub fn location(m: &Bytecode, id: AttrId) -> Option<String> {
    // Decode attribute `id` with code `want`, returning a reader past the code.
    fn payload<'a>(m: &'a Bytecode, id: AttrId, want: u64) -> Option<PayloadReader<'a>> {
        let entry = m.attributes.get(id.index())?;
        if !entry.custom || m.dialect_name(entry.dialect) != DIALECT {
            return None;
        }
        let mut r = PayloadReader::new(m, &entry.data, Section::Attribute(id.0));
        (r.varint().ok()? == want).then_some(r)
    }
    let src = payload(m, id, code::DEBUG[4])?.attr().ok()?;
    let mut r = payload(m, src, code::DEBUG[1])?;
    let file = r.attr().ok()?;
    let (line, column) = (r.varint().ok()?, r.varint().ok()?);
    let name = payload(m, file, code::DEBUG[0])?.string().ok()?;
    if name.is_empty() || name == "-" || line == 0 {
        return None;
    }
    Some(format!("{name}:{line}:{column}"))
}
