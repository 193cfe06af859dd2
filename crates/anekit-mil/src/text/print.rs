//! The printer: IR → MIL text.

use std::collections::BTreeMap;

use anekit_format::subbyte;

use super::lexer::{is_ident_continue, write_quoted};
use super::{Dialect, PrintOptions, float};
use crate::program::{Argument, Binding, Block, Function, Operation, Opset, Program};
use crate::types::{DataType, Dim, NamedValueType, TensorType, ValueType};
use crate::value::{Placement, Storage, TensorData, Value, ValueData};

/// Indentation step; the layout follows Apple's `add_model.mlmodelc/model.mil`: functions at
/// 4 spaces, statements 8 deeper than the line that opens their block, the closing `}` 4
/// deeper.
const STEP: usize = 4;

pub(super) struct Printer<'o> {
    out: String,
    dialect: Dialect,
    options: &'o PrintOptions,
}

/// Whether `s` can be printed without backticks.
pub(super) fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(is_ident_continue)
}

impl<'o> Printer<'o> {
    pub(super) fn new(dialect: Dialect, options: &'o PrintOptions) -> Self {
        Self {
            out: String::new(),
            dialect,
            options,
        }
    }

    pub(super) fn finish(self) -> String {
        self.out
    }

    fn indent(&mut self, n: usize) {
        for _ in 0..n {
            self.out.push(' ');
        }
    }

    fn name(&mut self, s: &str) {
        if is_plain_ident(s) {
            self.out.push_str(s);
        } else {
            write_quoted(&mut self.out, s, '`');
        }
    }

    fn opset(&mut self, s: &str) {
        if let Some(o) = Opset::ALL.into_iter().find(|o| o.proto_name() == s) {
            self.out.push_str(o.text_name());
        } else if is_plain_ident(s) && !Opset::ALL.into_iter().any(|o| o.text_name() == s) {
            self.out.push_str(s);
        } else {
            // A text name (`ios18`) kept verbatim in the IR, or not an identifier.
            write_quoted(&mut self.out, s, '`');
        }
    }

    pub(super) fn program(&mut self, p: &Program) {
        self.out.push_str("program(");
        self.out.push_str(&p.version.to_string());
        self.out.push('.');
        self.out.push_str(&self.dialect.minor_version().to_string());
        self.out.push(')');
        if self.options.extensions && !p.doc.is_empty() {
            self.out.push_str(" @doc(");
            write_quoted(&mut self.out, &p.doc, '"');
            self.out.push(')');
        }
        self.out.push('\n');
        if !p.attributes.is_empty() {
            self.attributes(&p.attributes);
            self.out.push('\n');
        }
        self.out.push_str("{\n");
        for (name, f) in &p.functions {
            self.function(name, f);
        }
        self.out.push_str("}\n");
    }

    fn function(&mut self, name: &str, f: &Function) {
        let indent = STEP;
        self.indent(indent);
        self.out.push_str("func ");
        self.name(name);
        self.out.push('<');
        self.opset(&f.opset);
        self.out.push_str(">(");
        self.typed_names(&f.inputs);
        self.out.push(')');
        if !f.attributes.is_empty() {
            self.out.push(' ');
            self.attributes(&f.attributes);
        }
        if let Some(b) = f.blocks.get(&f.opset) {
            self.out.push(' ');
            self.block(b, indent);
        }
        if self.options.extensions {
            for (key, b) in &f.blocks {
                if *key == f.opset {
                    continue;
                }
                self.out.push_str(" <");
                self.opset(key);
                self.out.push_str("> ");
                self.block(b, indent);
            }
        }
        self.out.push_str(";\n");
    }

    /// `(inputs) { statements } -> (outputs) [attributes]`, the `{` on the current line.
    fn block(&mut self, b: &Block, indent: usize) {
        if !b.inputs.is_empty() {
            self.out.push('(');
            self.typed_names(&b.inputs);
            self.out.push_str(") ");
        }
        self.out.push_str("{\n");
        for op in &b.operations {
            self.operation(op, indent + 2 * STEP);
        }
        self.indent(indent + STEP);
        self.out.push_str("} -> (");
        for (i, o) in b.outputs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.name(o);
        }
        self.out.push(')');
        if self.options.extensions && !b.attributes.is_empty() {
            self.out.push(' ');
            self.attributes(&b.attributes);
        }
    }

    fn typed_names(&mut self, names: &[NamedValueType]) {
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.ty(&n.ty);
            self.out.push(' ');
            self.name(&n.name);
        }
    }

    fn operation(&mut self, op: &Operation, indent: usize) {
        self.indent(indent);
        if !op.outputs.is_empty() {
            self.typed_names(&op.outputs);
            self.out.push_str(" = ");
        }
        self.name(&op.op_type);
        self.out.push('(');
        for (i, (param, arg)) in op.inputs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.name(param);
            self.out.push_str(" = ");
            self.argument(arg);
        }
        self.out.push(')');
        if !op.attributes.is_empty() {
            self.attributes(&op.attributes);
        }
        for b in &op.blocks {
            self.out.push(' ');
            self.block(b, indent);
        }
        self.out.push_str(";\n");
    }

    fn argument(&mut self, arg: &Argument) {
        match arg.0.as_slice() {
            [single] => self.binding(single),
            many => {
                self.out.push('(');
                for (i, b) in many.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.binding(b);
                }
                self.out.push(')');
            }
        }
    }

    fn binding(&mut self, b: &Binding) {
        match b {
            Binding::Name(n) => self.name(n),
            Binding::Value(v) => self.typed_value(v),
        }
    }

    fn attributes(&mut self, attrs: &BTreeMap<String, Value>) {
        self.out.push('[');
        for (i, (k, v)) in attrs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.name(k);
            self.out.push_str(" = ");
            self.typed_value(v);
        }
        self.out.push(']');
    }

    // --------------------------------------------------------------------------------------
    // types
    // --------------------------------------------------------------------------------------

    pub(super) fn ty(&mut self, t: &ValueType) {
        match t {
            ValueType::Tensor(tt) => self.tensor_type(tt),
            ValueType::List { element, length } => {
                self.out.push_str("list<");
                self.ty(element);
                self.out.push_str(", ");
                self.dim(*length);
                self.out.push('>');
            }
            ValueType::Tuple(ts) => {
                self.out.push_str("tuple<");
                for (i, t) in ts.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.ty(t);
                }
                self.out.push('>');
            }
            ValueType::Dict { key, value } => {
                self.out.push_str("dict<");
                self.ty(key);
                self.out.push_str(", ");
                self.ty(value);
                self.out.push('>');
            }
            ValueType::State(inner) => {
                self.out.push_str("state<");
                self.ty(inner);
                self.out.push('>');
            }
        }
    }

    fn tensor_type(&mut self, t: &TensorType) {
        let attrs = self.options.extensions && !t.attributes.is_empty();
        if self.dialect == Dialect::Modern && t.is_scalar() && !attrs {
            self.out.push_str(t.dtype.name());
            return;
        }
        self.out.push_str("tensor<");
        self.out.push_str(t.dtype.name());
        self.out.push_str(", ");
        match &t.shape {
            None => self.out.push('*'),
            Some(dims) => {
                self.out.push('[');
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.dim(*d);
                }
                self.out.push(']');
            }
        }
        if attrs {
            self.out.push_str(", ");
            self.attributes(&t.attributes);
        }
        self.out.push('>');
    }

    fn dim(&mut self, d: Dim) {
        match d {
            Dim::Fixed(n) => self.out.push_str(&n.to_string()),
            Dim::Unknown { variadic: false } => self.out.push('?'),
            Dim::Unknown { variadic: true } => self.out.push_str("?*"),
        }
    }

    // --------------------------------------------------------------------------------------
    // values
    // --------------------------------------------------------------------------------------

    /// A value with its type: `fp16(0x1p+0)`, `tensor<int32, [2]>([1, 2])`,
    /// `dict<string, string>({{"a", "b"}})`, preceded by anekit annotations when needed.
    pub(super) fn typed_value(&mut self, v: &Value) {
        if self.options.extensions {
            if !v.doc.is_empty() {
                self.out.push_str("@doc(");
                write_quoted(&mut self.out, &v.doc, '"');
                self.out.push_str(") ");
            }
            if let ValueData::Tensor(TensorData { placement, .. }) = &v.data {
                match placement {
                    Placement::Auto => self.out.push_str("@auto "),
                    Placement::Blob { source: None } => self.out.push_str("@blob "),
                    Placement::Inline | Placement::Blob { source: Some(_) } => {}
                }
            }
        }
        self.ty(&v.ty);
        self.out.push('(');
        match &v.data {
            ValueData::None => {}
            ValueData::Tensor(td) => match (&td.placement, v.tensor_type()) {
                (Placement::Blob { source: Some(r) }, _) => {
                    self.out.push_str("BLOBFILE(path = ");
                    self.ty(&ValueType::scalar(DataType::String));
                    self.out.push('(');
                    write_quoted(&mut self.out, &r.file, '"');
                    self.out.push_str("), offset = ");
                    self.ty(&ValueType::scalar(DataType::Uint64));
                    self.out.push('(');
                    self.out.push_str(&r.offset.to_string());
                    self.out.push_str("))");
                }
                (_, Some(tt)) => self.tensor_literal(tt, &td.storage),
                (_, None) => self.flat_elements(DataType::Uint8, &td.storage, None),
            },
            other => self.composite(other, &v.ty),
        }
        self.out.push(')');
    }

    /// The content of a list, tuple or dict value, its elements bare where possible.
    fn composite(&mut self, data: &ValueData, ty: &ValueType) {
        let (open, close) = match data {
            ValueData::List(_) => ('[', ']'),
            ValueData::Tuple(_) => ('(', ')'),
            ValueData::Dict(_) => ('{', '}'),
            ValueData::None | ValueData::Tensor(_) => return,
        };
        self.out.push(open);
        match data {
            ValueData::List(vs) => {
                let elem = match ty {
                    ValueType::List { element, .. } => Some(element.as_ref()),
                    _ => None,
                };
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.element(v, elem);
                }
            }
            ValueData::Tuple(vs) => {
                let types = match ty {
                    ValueType::Tuple(ts) => ts.as_slice(),
                    _ => &[],
                };
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.element(v, types.get(i));
                }
            }
            ValueData::Dict(kvs) => {
                let (kt, vt) = match ty {
                    ValueType::Dict { key, value } => (Some(key.as_ref()), Some(value.as_ref())),
                    _ => (None, None),
                };
                for (i, (k, v)) in kvs.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push('{');
                    self.element(k, kt);
                    self.out.push_str(", ");
                    self.element(v, vt);
                    self.out.push('}');
                }
            }
            ValueData::None | ValueData::Tensor(_) => {}
        }
        self.out.push(close);
    }

    /// An element of a composite value: bare (`"a"`, `[1, 2]`) when the parser would give it
    /// exactly this type from the container's element type `expected`, else typed.
    fn element(&mut self, v: &Value, expected: Option<&ValueType>) {
        match expected {
            Some(e) if can_be_bare(v, e) => self.bare(v),
            _ => self.typed_value(v),
        }
    }

    fn bare(&mut self, v: &Value) {
        match (&v.data, &v.ty) {
            (ValueData::Tensor(td), ValueType::Tensor(tt)) => self.tensor_literal(tt, &td.storage),
            (data, ty) => self.composite(data, ty),
        }
    }

    /// The elements of a tensor: a bare scalar for rank 0, else brackets nested by shape
    /// (numpy style); a tensor without elements is `[]`.
    fn tensor_literal(&mut self, tt: &TensorType, storage: &Storage) {
        let dims = tt.fixed_shape();
        match dims.as_deref() {
            Some([]) => self.flat_elements(tt.dtype, storage, Some(&[])),
            Some(d) if d.contains(&0) => match empty_nesting(d) {
                Some(prefix) => {
                    let leaves = prefix.iter().product::<u64>();
                    let elems = vec!["[]".to_string(); leaves as usize];
                    self.nested(&elems, prefix);
                }
                None => self.out.push_str("[]"),
            },
            Some(d) => self.flat_elements(tt.dtype, storage, Some(d)),
            None => self.flat_elements(tt.dtype, storage, None),
        }
    }

    /// Print the elements of `storage`, nested by `dims` when the count matches, else as one
    /// flat list (invalid data; the parser will refuse it).
    fn flat_elements(&mut self, dtype: DataType, storage: &Storage, dims: Option<&[u64]>) {
        let elems = element_strings(dtype, storage, dims);
        let n = elems.len() as u64;
        let nested = dims.filter(|d| d.iter().try_fold(1u64, |a, &x| a.checked_mul(x)) == Some(n));
        match nested {
            Some([]) if n == 1 => {
                if let Some(e) = elems.first() {
                    self.out.push_str(e);
                }
            }
            Some(d) if !d.is_empty() => self.nested(&elems, d),
            _ => {
                self.out.push('[');
                self.out.push_str(&elems.join(", "));
                self.out.push(']');
            }
        }
    }

    /// `elems` (as many as `d` holds, `d` non-empty) in brackets nested by `d`, without
    /// recursion.
    fn nested(&mut self, elems: &[String], d: &[u64]) {
        // Block sizes: sizes[k] = product of dims[k..].
        let mut sizes = vec![1u64; d.len()];
        let mut acc = 1u64;
        for (k, &x) in d.iter().enumerate().rev() {
            acc = acc.saturating_mul(x);
            if let Some(s) = sizes.get_mut(k) {
                *s = acc;
            }
        }
        for (i, e) in elems.iter().enumerate() {
            let i = i as u64;
            if i > 0 {
                self.out.push_str(", ");
            }
            for &s in &sizes {
                if i.is_multiple_of(s) {
                    self.out.push('[');
                }
            }
            self.out.push_str(e);
            for &s in sizes.iter().rev() {
                if (i + 1).is_multiple_of(s) {
                    self.out.push(']');
                }
            }
        }
    }
}

/// Most `[]` leaves printed for a tensor without elements (more print as a flat `[]`).
const MAX_EMPTY_LEAVES: u64 = 64;

/// For a shape with a zero dimension: the dimensions before it when the zero is the last
/// dimension and they hold at most [`MAX_EMPTY_LEAVES`] leaves — such a tensor prints as
/// nested empty lists (`[[], []]` for `[2, 0]`), from which the parser recovers the shape.
/// Other empty tensors print as `[]`.
fn empty_nesting(d: &[u64]) -> Option<&[u64]> {
    let (last, prefix) = d.split_last()?;
    if *last != 0 || prefix.contains(&0) || prefix.is_empty() {
        return None;
    }
    let leaves = prefix.iter().try_fold(1u64, |a, &x| a.checked_mul(x))?;
    (leaves <= MAX_EMPTY_LEAVES).then_some(prefix)
}

/// Whether `v` printed bare in a position whose declared type is `expected` parses back to
/// exactly `v` (see the parser's `bare`).
fn can_be_bare(v: &Value, expected: &ValueType) -> bool {
    if !v.doc.is_empty() {
        return false;
    }
    match (expected, &v.ty, &v.data) {
        (ValueType::Tensor(et), ValueType::Tensor(vt), ValueData::Tensor(td)) => {
            let Some(shape) = vt.fixed_shape() else {
                return false;
            };
            let inferable = shape.is_empty()
                || shape == [0]
                || !shape.contains(&0)
                || empty_nesting(&shape).is_some();
            let storage_ok = matches!(
                (&td.storage, vt.dtype),
                (Storage::Strings(_), DataType::String)
            ) || (matches!(td.storage, Storage::Bytes(_))
                && vt.dtype != DataType::String);
            matches!(td.placement, Placement::Inline)
                && vt.dtype == et.dtype
                && vt.attributes.is_empty()
                && inferable
                && storage_ok
                && v.validate().is_ok()
        }
        (ValueType::List { .. }, _, ValueData::List(_))
        | (ValueType::Tuple(_), _, ValueData::Tuple(_))
        | (ValueType::Dict { .. }, _, ValueData::Dict(_)) => v.ty == *expected,
        _ => false,
    }
}

/// The spelled elements of a tensor's storage; `dims` gives the expected count (sub-byte
/// data holds no count of its own).
fn element_strings(dtype: DataType, storage: &Storage, dims: Option<&[u64]>) -> Vec<String> {
    let bytes = match storage {
        Storage::Strings(ss) => {
            return ss
                .iter()
                .map(|s| {
                    let mut o = String::new();
                    write_quoted(&mut o, s, '"');
                    o
                })
                .collect();
        }
        Storage::Bytes(b) => b,
    };
    let le = |w: usize| {
        bytes.chunks_exact(w).map(|c| {
            let mut a = [0u8; 8];
            if let Some(dst) = a.get_mut(..c.len()) {
                dst.copy_from_slice(c);
            }
            u64::from_le_bytes(a)
        })
    };
    match dtype {
        DataType::Bool => bytes
            .iter()
            .map(|&b| match b {
                0 => "false".to_string(),
                1 => "true".to_string(),
                other => other.to_string(),
            })
            .collect(),
        DataType::Int8 => bytes.iter().map(|&b| (b as i8).to_string()).collect(),
        DataType::Uint8 | DataType::String => bytes.iter().map(|b| b.to_string()).collect(),
        DataType::Int16 => le(2).map(|v| (v as u16 as i16).to_string()).collect(),
        DataType::Int32 => le(4).map(|v| (v as u32 as i32).to_string()).collect(),
        DataType::Int64 => le(8).map(|v| (v as i64).to_string()).collect(),
        DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => {
            let w = dtype.bits().unwrap_or(8) as usize / 8;
            le(w).map(|v| v.to_string()).collect()
        }
        d if d.is_sub_byte() => {
            let bits = d.bits().unwrap_or(8);
            let available = bytes.len().saturating_mul(8) / bits as usize;
            let want = dims
                .and_then(|d| d.iter().try_fold(1u64, |a, &x| a.checked_mul(x)))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(available)
                .min(available);
            subbyte::unpack(bytes, bits, want)
                .unwrap_or_default()
                .into_iter()
                .map(|v| {
                    if d == DataType::Int4 {
                        subbyte::sign_extend(v, 4).to_string()
                    } else {
                        v.to_string()
                    }
                })
                .collect()
        }
        d => {
            let w = float::width(d).unwrap_or(8) as usize / 8;
            le(w)
                .map(|bits| {
                    let mut s = String::new();
                    float::write_float(&mut s, d, bits);
                    s
                })
                .collect()
        }
    }
}

/// The dialect [`super::print`] chooses for `p`: modern when any function runs an iOS18 or
/// later opset.
pub(super) fn auto_dialect(p: &Program) -> Dialect {
    let modern = p.functions.values().any(|f| {
        std::iter::once(f.opset.as_str())
            .chain(f.blocks.keys().map(String::as_str))
            .any(|o| Opset::parse(o).is_some_and(|o| o >= Opset::Ios18))
    });
    if modern {
        Dialect::Modern
    } else {
        Dialect::Legacy
    }
}
