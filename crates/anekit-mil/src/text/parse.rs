//! The parser: MIL text → IR (recursive descent over [`Lexer`] tokens, two tokens of
//! lookahead).

use std::collections::{BTreeMap, VecDeque};

use anekit_format::subbyte;
use anekit_format::weights::BlobSource;

use super::float;
use super::lexer::{Lexer, Tok, Token};
use crate::error::{MilError, Result};
use crate::program::{Argument, Binding, Block, Function, Operation, Opset, Program};
use crate::types::{DataType, Dim, NamedValueType, TensorType, ValueType};
use crate::value::{BlobRef, Placement, Storage, TensorData, Value, ValueData};

/// Deepest nesting of blocks, types and values the parser follows.
pub(super) const MAX_DEPTH: usize = 64;

pub(super) struct Parser<'a> {
    lex: Lexer<'a>,
    buf: VecDeque<Token<'a>>,
    source_name: &'a str,
    weights: Option<&'a dyn BlobSource>,
    depth: usize,
}

/// Collects parsed tensor elements in the IR encoding of their type.
enum Sink {
    Bytes(Vec<u8>),
    SubByte(Vec<u8>, u32),
    Strings(Vec<String>),
}

impl Sink {
    fn new(dtype: DataType) -> Self {
        match dtype {
            DataType::String => Sink::Strings(Vec::new()),
            d if d.is_sub_byte() => Sink::SubByte(Vec::new(), d.bits().unwrap_or(8)),
            _ => Sink::Bytes(Vec::new()),
        }
    }

    fn finish(self) -> Storage {
        match self {
            Sink::Bytes(b) => Storage::Bytes(b.into()),
            Sink::SubByte(v, bits) => Storage::Bytes(subbyte::pack(&v, bits).into()),
            Sink::Strings(s) => Storage::Strings(s),
        }
    }
}

/// Inclusive value range and byte width of an integer type (sub-byte widths give 0).
fn int_range(dtype: DataType) -> Option<(i128, i128, usize)> {
    Some(match dtype {
        DataType::Int4 => (-8, 7, 0),
        DataType::Uint1 => (0, 1, 0),
        DataType::Uint2 => (0, 3, 0),
        DataType::Uint3 => (0, 7, 0),
        DataType::Uint4 => (0, 15, 0),
        DataType::Uint6 => (0, 63, 0),
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into(), 1),
        DataType::Uint8 => (0, u8::MAX.into(), 1),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into(), 2),
        DataType::Uint16 => (0, u16::MAX.into(), 2),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into(), 4),
        DataType::Uint32 => (0, u32::MAX.into(), 4),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into(), 8),
        DataType::Uint64 => (0, u64::MAX.into(), 8),
        _ => return None,
    })
}

/// An unsigned integer literal: decimal or `0x` hexadecimal.
fn parse_uint(s: &str) -> Option<u128> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        return u128::from_str_radix(h, 16).ok();
    }
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn shape_text(dims: &[u64]) -> String {
    let parts: Vec<String> = dims.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

impl<'a> Parser<'a> {
    pub(super) fn new(
        text: &'a str,
        source_name: &'a str,
        weights: Option<&'a dyn BlobSource>,
    ) -> Self {
        Self {
            lex: Lexer::new(text, source_name),
            buf: VecDeque::new(),
            source_name,
            weights,
            depth: 0,
        }
    }

    // --------------------------------------------------------------------------------------
    // token helpers
    // --------------------------------------------------------------------------------------

    fn fill(&mut self, n: usize) -> Result<()> {
        while self.buf.len() <= n {
            let t = self.lex.next_token()?;
            self.buf.push_back(t);
        }
        Ok(())
    }

    fn peek(&mut self, n: usize) -> Result<&Tok<'a>> {
        self.fill(n)?;
        Ok(self.buf.get(n).map_or(&Tok::Eof, |t| &t.tok))
    }

    fn pos(&mut self) -> Result<(usize, usize)> {
        self.fill(0)?;
        Ok(self.buf.front().map_or((0, 0), |t| (t.line, t.column)))
    }

    fn next(&mut self) -> Result<Token<'a>> {
        match self.buf.pop_front() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn peek_punct(&mut self, c: char) -> Result<bool> {
        Ok(*self.peek(0)? == Tok::Punct(c))
    }

    fn error_at(&self, (line, column): (usize, usize), message: impl Into<String>) -> MilError {
        MilError::Parse {
            source_name: self.source_name.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn unexpected(&self, t: &Token<'_>, expected: &str) -> MilError {
        self.error_at(
            (t.line, t.column),
            format!("expected {expected}, found {}", t.tok.describe()),
        )
    }

    fn expect(&mut self, c: char) -> Result<Token<'a>> {
        let t = self.next()?;
        if t.tok == Tok::Punct(c) {
            Ok(t)
        } else {
            Err(self.unexpected(&t, &format!("`{c}`")))
        }
    }

    fn expect_keyword(&mut self, k: &str) -> Result<()> {
        let t = self.next()?;
        if t.tok == Tok::Ident(k) {
            Ok(())
        } else {
            Err(self.unexpected(&t, &format!("`{k}`")))
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.pos()?;
            return Err(self.error_at(
                at,
                format!("nesting deeper than {MAX_DEPTH} levels (blocks, types or values)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A name: an identifier or a backtick-quoted name.
    fn name(&mut self) -> Result<String> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) => Ok(s.to_string()),
            Tok::Quoted(s) => Ok(s.into_owned()),
            _ => Err(self.unexpected(&t, "a name")),
        }
    }

    /// An opset: `ios18` becomes the protobuf spelling `CoreML8`; anything else (an unknown
    /// identifier, or a backtick-quoted name) is kept verbatim.
    fn opset(&mut self) -> Result<String> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) => Ok(Opset::ALL
                .into_iter()
                .find(|o| o.text_name() == s)
                .map_or_else(|| s.to_string(), |o| o.proto_name().to_string())),
            Tok::Quoted(s) => Ok(s.into_owned()),
            _ => Err(self.unexpected(&t, "an opset such as `ios18`")),
        }
    }

    /// Items separated by `,` up to `close` (consumed); `open` already consumed.
    fn list_until<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        if self.peek_punct(close)? {
            self.next()?;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            let t = self.next()?;
            match t.tok {
                Tok::Punct(',') => {}
                Tok::Punct(c) if c == close => return Ok(out),
                _ => return Err(self.unexpected(&t, &format!("`,` or `{close}`"))),
            }
        }
    }

    // --------------------------------------------------------------------------------------
    // program structure
    // --------------------------------------------------------------------------------------

    pub(super) fn program(&mut self) -> Result<Program> {
        self.expect_keyword("program")?;
        self.expect('(')?;
        let version = self.version()?;
        self.expect(')')?;
        let doc = if *self.peek(0)? == Tok::At("doc") {
            self.doc()?
        } else {
            String::new()
        };
        let attributes = self.optional_attributes()?;
        self.expect('{')?;
        let mut functions = BTreeMap::new();
        while !self.peek_punct('}')? {
            let at = self.pos()?;
            let (name, f) = self.function()?;
            if functions.contains_key(&name) {
                return Err(self.error_at(at, format!("function `{name}` is defined twice")));
            }
            functions.insert(name, f);
        }
        self.next()?;
        let t = self.next()?;
        if t.tok != Tok::Eof {
            return Err(self.unexpected(&t, "the end of the text after the program's `}`"));
        }
        Ok(Program {
            version,
            functions,
            doc,
            attributes,
        })
    }

    /// `1.0`, `1.3` or `1`: the integer part is [`Program::version`]; the fraction is the
    /// text dialect (see [`super::Dialect`]).
    fn version(&mut self) -> Result<i64> {
        let negative = self.peek_punct('-')?;
        if negative {
            self.next()?;
        }
        let t = self.next()?;
        let parsed = match t.tok {
            Tok::Number(s) => {
                let (int, frac) = s.split_once('.').unwrap_or((s, ""));
                let digits_only = |x: &str| x.bytes().all(|c| c.is_ascii_digit());
                if !int.is_empty() && digits_only(int) && digits_only(frac) {
                    int.parse::<i128>()
                        .ok()
                        .map(|v| if negative { -v } else { v })
                        .and_then(|v| i64::try_from(v).ok())
                } else {
                    None
                }
            }
            _ => None,
        };
        parsed.ok_or_else(|| self.unexpected(&t, "a program version such as `1.0`"))
    }

    fn doc(&mut self) -> Result<String> {
        self.next()?;
        self.expect('(')?;
        let t = self.next()?;
        let Tok::Str(s) = t.tok else {
            return Err(self.unexpected(&t, "a string"));
        };
        self.expect(')')?;
        Ok(s.into_owned())
    }

    fn optional_attributes(&mut self) -> Result<BTreeMap<String, Value>> {
        if self.peek_punct('[')? {
            self.attributes()
        } else {
            Ok(BTreeMap::new())
        }
    }

    /// `[key = value, …]`
    fn attributes(&mut self) -> Result<BTreeMap<String, Value>> {
        self.expect('[')?;
        let mut map = BTreeMap::new();
        let entries = self.list_until(']', |p| {
            let at = p.pos()?;
            let key = p.name()?;
            p.expect('=')?;
            Ok((at, key, p.typed_value()?))
        })?;
        for (at, key, v) in entries {
            if map.contains_key(&key) {
                return Err(self.error_at(at, format!("attribute `{key}` is given twice")));
            }
            map.insert(key, v);
        }
        Ok(map)
    }

    fn function(&mut self) -> Result<(String, Function)> {
        self.expect_keyword("func")?;
        let name = self.name()?;
        self.expect('<')?;
        let opset = self.opset()?;
        self.expect('>')?;
        self.expect('(')?;
        let inputs = self.list_until(')', Self::typed_name)?;
        let attributes = self.optional_attributes()?;
        let mut blocks = BTreeMap::new();
        if self.peek_punct('(')? || self.peek_punct('{')? {
            blocks.insert(opset.clone(), self.block()?);
        }
        while self.peek_punct('<')? {
            let at = self.pos()?;
            self.next()?;
            let key = self.opset()?;
            self.expect('>')?;
            if blocks.contains_key(&key) {
                return Err(self.error_at(
                    at,
                    format!("function `{name}` has two blocks for opset `{key}`"),
                ));
            }
            let b = self.block()?;
            blocks.insert(key, b);
        }
        self.expect(';')?;
        Ok((
            name,
            Function {
                inputs,
                opset,
                blocks,
                attributes,
            },
        ))
    }

    fn typed_name(&mut self) -> Result<NamedValueType> {
        let ty = self.value_type()?;
        let name = self.name()?;
        Ok(NamedValueType { name, ty })
    }

    /// `[(inputs)] { statements } -> (outputs) [attributes]`
    fn block(&mut self) -> Result<Block> {
        self.enter()?;
        let inputs = if self.peek_punct('(')? {
            self.next()?;
            self.list_until(')', Self::typed_name)?
        } else {
            Vec::new()
        };
        self.expect('{')?;
        let mut operations = Vec::new();
        while !self.peek_punct('}')? {
            operations.push(self.statement()?);
        }
        self.next()?;
        let t = self.next()?;
        if t.tok != Tok::Arrow {
            return Err(self.unexpected(&t, "`->` and the block's outputs"));
        }
        self.expect('(')?;
        let outputs = self.list_until(')', Self::name)?;
        let attributes = self.optional_attributes()?;
        self.leave();
        Ok(Block {
            inputs,
            outputs,
            operations,
            attributes,
        })
    }

    /// `type a, type b = op(param = arg, …)[attributes] blocks… ;`
    fn statement(&mut self) -> Result<Operation> {
        let no_outputs = matches!(self.peek(0)?, Tok::Ident(_) | Tok::Quoted(_))
            && *self.peek(1)? == Tok::Punct('(');
        let mut outputs = Vec::new();
        if !no_outputs {
            loop {
                outputs.push(self.typed_name()?);
                if self.peek_punct(',')? {
                    self.next()?;
                } else {
                    break;
                }
            }
            self.expect('=')?;
        }
        let op_type = self.name()?;
        self.expect('(')?;
        let params = self.list_until(')', |p| {
            let at = p.pos()?;
            let param = p.name()?;
            p.expect('=')?;
            Ok((at, param, p.argument()?))
        })?;
        let mut inputs = BTreeMap::new();
        for (at, param, arg) in params {
            if inputs.contains_key(&param) {
                return Err(self.error_at(
                    at,
                    format!("parameter `{param}` of `{op_type}` is given twice"),
                ));
            }
            inputs.insert(param, arg);
        }
        let attributes = self.optional_attributes()?;
        let mut blocks = Vec::new();
        while self.peek_punct('(')? || self.peek_punct('{')? {
            blocks.push(self.block()?);
        }
        self.expect(';')?;
        Ok(Operation {
            op_type,
            inputs,
            outputs,
            blocks,
            attributes,
        })
    }

    /// `name`, a typed value, or `(b1, b2, …)` for a variadic parameter.
    fn argument(&mut self) -> Result<Argument> {
        if self.peek_punct('(')? {
            self.next()?;
            Ok(Argument(self.list_until(')', Self::binding)?))
        } else {
            Ok(Argument(vec![self.binding()?]))
        }
    }

    fn binding(&mut self) -> Result<Binding> {
        if self.starts_typed_value()? {
            Ok(Binding::Value(self.typed_value()?))
        } else {
            Ok(Binding::Name(self.name()?))
        }
    }

    /// Whether a typed value (`fp16(…)`, `tensor<…>(…)`, `@doc(…) …`) starts here rather than
    /// a variable name (a variable may be called `fp16` or `tensor`; the next token decides).
    fn starts_typed_value(&mut self) -> Result<bool> {
        let first = match self.peek(0)? {
            Tok::At(_) => return Ok(true),
            Tok::Ident(k) => *k,
            _ => return Ok(false),
        };
        Ok(match self.peek(1)? {
            Tok::Punct('<') => matches!(first, "tensor" | "list" | "tuple" | "dict" | "state"),
            Tok::Punct('(') => DataType::from_name(first).is_some(),
            _ => false,
        })
    }

    // --------------------------------------------------------------------------------------
    // types
    // --------------------------------------------------------------------------------------

    /// A type. Only the composite types count towards the nesting limit (a tensor type nests
    /// only through its attributes, which are values), so a tensor element costs one level
    /// whether it is written bare or typed.
    fn value_type(&mut self) -> Result<ValueType> {
        let composite = matches!(
            self.peek(0)?,
            Tok::Ident("list" | "tuple" | "dict" | "state")
        );
        if composite {
            self.enter()?;
        }
        let t = self.next()?;
        let ty = match t.tok {
            Tok::Ident("tensor") => {
                self.expect('<')?;
                let dtype = self.dtype()?;
                self.expect(',')?;
                let shape = self.shape()?;
                let attributes = if self.peek_punct(',')? {
                    self.next()?;
                    self.attributes()?
                } else {
                    BTreeMap::new()
                };
                self.expect('>')?;
                ValueType::Tensor(TensorType {
                    dtype,
                    shape,
                    attributes,
                })
            }
            Tok::Ident("list") => {
                self.expect('<')?;
                let element = self.value_type()?;
                self.expect(',')?;
                let length = self.dim()?;
                self.expect('>')?;
                ValueType::List {
                    element: Box::new(element),
                    length,
                }
            }
            Tok::Ident("tuple") => {
                self.expect('<')?;
                ValueType::Tuple(self.list_until('>', Self::value_type)?)
            }
            Tok::Ident("dict") => {
                self.expect('<')?;
                let key = self.value_type()?;
                self.expect(',')?;
                let value = self.value_type()?;
                self.expect('>')?;
                ValueType::Dict {
                    key: Box::new(key),
                    value: Box::new(value),
                }
            }
            Tok::Ident("state") => {
                self.expect('<')?;
                let inner = self.value_type()?;
                self.expect('>')?;
                ValueType::State(Box::new(inner))
            }
            Tok::Ident(k) => match DataType::from_name(k) {
                Some(d) => ValueType::scalar(d),
                None => return Err(self.unexpected(&t, "a type")),
            },
            _ => return Err(self.unexpected(&t, "a type")),
        };
        if composite {
            self.leave();
        }
        Ok(ty)
    }

    fn dtype(&mut self) -> Result<DataType> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(k) => DataType::from_name(k).ok_or_else(|| {
                self.error_at((t.line, t.column), format!("unknown data type `{k}`"))
            }),
            _ => Err(self.unexpected(&t, "a data type such as `fp16`")),
        }
    }

    /// `[d0, d1, …]` or `*` (unknown rank).
    fn shape(&mut self) -> Result<Option<Vec<Dim>>> {
        if self.peek_punct('*')? {
            self.next()?;
            return Ok(None);
        }
        self.expect('[')?;
        Ok(Some(self.list_until(']', Self::dim)?))
    }

    /// `64`, `?` (unknown) or `?*` (unknown, variadic).
    fn dim(&mut self) -> Result<Dim> {
        let t = self.next()?;
        match t.tok {
            Tok::Number(s) => match s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse()) {
                Some(Ok(n)) => Ok(Dim::Fixed(n)),
                _ => Err(self.error_at(
                    (t.line, t.column),
                    format!("dimension `{s}` is not an integer of at most 64 bits"),
                )),
            },
            Tok::Punct('?') => {
                let variadic = self.peek_punct('*')?;
                if variadic {
                    self.next()?;
                }
                Ok(Dim::Unknown { variadic })
            }
            _ => Err(self.unexpected(&t, "a dimension (a number or `?`)")),
        }
    }

    // --------------------------------------------------------------------------------------
    // values
    // --------------------------------------------------------------------------------------

    /// `[@doc("…")] [@auto|@blob] type(content)`; `type()` is a value without content.
    fn typed_value(&mut self) -> Result<Value> {
        self.enter()?;
        let mut doc = String::new();
        let mut placement = None;
        while let Tok::At(a) = *self.peek(0)? {
            match a {
                "doc" => doc = self.doc()?,
                "auto" | "blob" => {
                    self.next()?;
                    placement = Some(if a == "auto" {
                        Placement::Auto
                    } else {
                        Placement::Blob { source: None }
                    });
                }
                other => {
                    let at = self.pos()?;
                    return Err(self.error_at(
                        at,
                        format!("unknown annotation `@{other}` (known: @doc, @auto, @blob)"),
                    ));
                }
            }
        }
        let at = self.pos()?;
        let ty = self.value_type()?;
        self.expect('(')?;
        let data = if self.peek_punct(')')? {
            if placement.is_some() {
                return Err(self.error_at(at, "`@auto` / `@blob` need tensor data"));
            }
            ValueData::None
        } else {
            self.content(&ty, placement, at)?
        };
        self.expect(')')?;
        self.leave();
        Ok(Value { ty, data, doc })
    }

    fn content(
        &mut self,
        ty: &ValueType,
        placement: Option<Placement>,
        at: (usize, usize),
    ) -> Result<ValueData> {
        if placement.is_some() && !matches!(ty, ValueType::Tensor(_)) {
            return Err(self.error_at(at, "`@auto` / `@blob` apply to tensors only"));
        }
        Ok(match ty {
            ValueType::Tensor(tt) => {
                if *self.peek(0)? == Tok::Ident("BLOBFILE") && *self.peek(1)? == Tok::Punct('(') {
                    if placement.is_some() {
                        return Err(self.error_at(at, "`@auto` / `@blob` go with inline data"));
                    }
                    self.blob_file(tt)?
                } else {
                    let shape = tt.fixed_shape().ok_or_else(|| {
                        self.error_at(
                            at,
                            format!("a constant's type must have a fixed shape, not {tt}"),
                        )
                    })?;
                    let (storage, _) = self.tensor_elements(tt.dtype, Some(&shape))?;
                    ValueData::Tensor(TensorData {
                        storage,
                        placement: placement.unwrap_or(Placement::Inline),
                    })
                }
            }
            ValueType::List { element, .. } => ValueData::List(self.list_elements(element)?),
            ValueType::Tuple(types) => ValueData::Tuple(self.tuple_elements(types)?),
            ValueType::Dict { key, value } => ValueData::Dict(self.dict_entries(key, value)?),
            ValueType::State(_) => {
                return Err(self.error_at(at, "a state type has no literal values"));
            }
        })
    }

    /// An element of a list, tuple or dict: typed, or bare with its type taken from the
    /// container's element type (a bare tensor gets the shape its brackets show).
    fn bare(&mut self, expected: &ValueType) -> Result<Value> {
        if self.starts_typed_value()? {
            return self.typed_value();
        }
        self.enter()?;
        let v = match expected {
            ValueType::Tensor(et) => {
                let (storage, shape) = self.tensor_elements(et.dtype, None)?;
                Value {
                    ty: ValueType::Tensor(TensorType {
                        dtype: et.dtype,
                        shape: Some(shape.into_iter().map(Dim::Fixed).collect()),
                        attributes: BTreeMap::new(),
                    }),
                    data: ValueData::Tensor(TensorData {
                        storage,
                        placement: Placement::Inline,
                    }),
                    doc: String::new(),
                }
            }
            ValueType::List { element, .. } => Value {
                ty: expected.clone(),
                data: ValueData::List(self.list_elements(element)?),
                doc: String::new(),
            },
            ValueType::Tuple(types) => Value {
                ty: expected.clone(),
                data: ValueData::Tuple(self.tuple_elements(types)?),
                doc: String::new(),
            },
            ValueType::Dict { key, value } => Value {
                ty: expected.clone(),
                data: ValueData::Dict(self.dict_entries(key, value)?),
                doc: String::new(),
            },
            ValueType::State(_) => {
                let at = self.pos()?;
                return Err(self.error_at(at, "a state type has no literal values"));
            }
        };
        self.leave();
        Ok(v)
    }

    /// `[e, …]`
    fn list_elements(&mut self, element: &ValueType) -> Result<Vec<Value>> {
        self.expect('[')?;
        self.list_until(']', |p| p.bare(element))
    }

    /// `(e, …)`; elements beyond the tuple type's arity must be typed.
    fn tuple_elements(&mut self, types: &[ValueType]) -> Result<Vec<Value>> {
        self.expect('(')?;
        let mut i = 0usize;
        self.list_until(')', |p| {
            let v = match types.get(i) {
                Some(t) => p.bare(t)?,
                None if p.starts_typed_value()? => p.typed_value()?,
                None => {
                    let at = p.pos()?;
                    return Err(p.error_at(
                        at,
                        format!(
                            "the tuple type has {} elements; a further element needs its own type",
                            types.len()
                        ),
                    ));
                }
            };
            i += 1;
            Ok(v)
        })
    }

    /// `{{k, v}, …}`
    fn dict_entries(&mut self, key: &ValueType, value: &ValueType) -> Result<Vec<(Value, Value)>> {
        self.expect('{')?;
        self.list_until('}', |p| {
            p.expect('{')?;
            let k = p.bare(key)?;
            p.expect(',')?;
            let v = p.bare(value)?;
            p.expect('}')?;
            Ok((k, v))
        })
    }

    /// Tensor elements: one bare element (rank 0) or brackets nested by dimension. With a
    /// declared shape the literal must have that shape, or be flat with the same count, or
    /// a single bare element for a one-element tensor. Returns the storage and the shape
    /// (declared, else the one the brackets show). Elements are stored as they are read:
    /// a declared count larger than the text allocates nothing.
    fn tensor_elements(
        &mut self,
        dtype: DataType,
        declared: Option<&[u64]>,
    ) -> Result<(Storage, Vec<u64>)> {
        let start = self.pos()?;
        let declared_count = match declared {
            Some(d) => Some(
                d.iter()
                    .try_fold(1u64, |a, &x| a.checked_mul(x))
                    .ok_or_else(|| {
                        self.error_at(start, "the declared shape's element count overflows")
                    })?,
            ),
            None => None,
        };
        let mut sink = Sink::new(dtype);
        let mut count = 0u64;
        let inferred: Vec<u64> = if !self.peek_punct('[')? {
            self.element(dtype, &mut sink)?;
            count = 1;
            Vec::new()
        } else {
            self.next()?;
            // Element counts of the open lists; lengths seen per depth; depth of the numbers.
            let mut open: Vec<u64> = vec![0];
            let mut dims: Vec<Option<u64>> = vec![None];
            let mut leaf_depth: Option<usize> = None;
            let mut want_item = true;
            let mut may_close = true;
            loop {
                if want_item {
                    let here = self.pos()?;
                    if self.peek_punct('[')? {
                        self.next()?;
                        if leaf_depth == Some(open.len()) {
                            return Err(self.error_at(here, "a list mixes numbers and lists"));
                        }
                        if let Some(top) = open.last_mut() {
                            *top += 1;
                        }
                        open.push(0);
                        if dims.len() < open.len() {
                            dims.push(None);
                        }
                        may_close = true;
                        continue;
                    }
                    if self.peek_punct(']')? {
                        if !may_close {
                            let t = self.next()?;
                            return Err(self.unexpected(&t, "an element after `,`"));
                        }
                        want_item = false;
                        continue;
                    }
                    let depth = open.len();
                    if dims.len() > depth || leaf_depth.is_some_and(|d| d != depth) {
                        return Err(self.error_at(
                            here,
                            "elements at different nesting depths (the literal is not rectangular)",
                        ));
                    }
                    leaf_depth = Some(depth);
                    count += 1;
                    if declared_count.is_some_and(|n| count > n) {
                        return Err(self.error_at(
                            here,
                            format!(
                                "more elements than the declared shape {} holds",
                                shape_text(declared.unwrap_or(&[]))
                            ),
                        ));
                    }
                    self.element(dtype, &mut sink)?;
                    if let Some(top) = open.last_mut() {
                        *top += 1;
                    }
                    want_item = false;
                } else {
                    let t = self.next()?;
                    match t.tok {
                        Tok::Punct(',') => {
                            want_item = true;
                            may_close = false;
                        }
                        Tok::Punct(']') => {
                            let len = open.pop().unwrap_or(0);
                            let d = open.len();
                            match dims.get_mut(d) {
                                Some(slot @ None) => *slot = Some(len),
                                Some(Some(x)) if *x != len => {
                                    return Err(self.error_at(
                                        (t.line, t.column),
                                        format!(
                                            "lists of different lengths ({x} and {len}) at one depth"
                                        ),
                                    ));
                                }
                                _ => {}
                            }
                            if open.is_empty() {
                                break;
                            }
                        }
                        _ => return Err(self.unexpected(&t, "`,` or `]`")),
                    }
                }
            }
            dims.into_iter().map(|d| d.unwrap_or(0)).collect()
        };
        let shape = match (declared, declared_count) {
            (Some(d), Some(n)) => {
                let fits = inferred == d
                    || (inferred.len() == 1 && inferred.first() == Some(&n))
                    || (inferred.is_empty() && n == 1);
                if !fits {
                    return Err(self.error_at(
                        start,
                        format!(
                            "the literal has shape {} ({count} elements) but the type declares {}",
                            shape_text(&inferred),
                            shape_text(d)
                        ),
                    ));
                }
                d.to_vec()
            }
            _ => inferred,
        };
        Ok((sink.finish(), shape))
    }

    /// One element of a tensor literal, appended to `sink` in the encoding of `dtype`.
    fn element(&mut self, dtype: DataType, sink: &mut Sink) -> Result<()> {
        let mut t = self.next()?;
        let at = (t.line, t.column);
        let mut negative = false;
        if matches!(t.tok, Tok::Punct('-' | '+')) && dtype != DataType::String {
            negative = t.tok == Tok::Punct('-');
            t = self.next()?;
        }
        match (dtype, sink) {
            (DataType::String, Sink::Strings(v)) => match t.tok {
                Tok::Str(s) => v.push(s.into_owned()),
                _ => return Err(self.unexpected(&t, "a string element")),
            },
            (DataType::Bool, Sink::Bytes(v)) => {
                let b = match t.tok {
                    Tok::Ident("true") if !negative => 1,
                    Tok::Ident("false") if !negative => 0,
                    Tok::Number(s) if !negative => match parse_uint(s).map(u8::try_from) {
                        Some(Ok(b)) => b,
                        _ => return Err(self.error_at(at, format!("`{s}` is not a bool"))),
                    },
                    _ => return Err(self.unexpected(&t, "`true` or `false`")),
                };
                v.push(b);
            }
            (d, sink) if d.is_float() => {
                let bits = self.float_element(d, &t, negative)?;
                let width = float::width(d).unwrap_or(8) as usize / 8;
                if let Sink::Bytes(v) = sink {
                    v.extend_from_slice(bits.to_le_bytes().get(..width).unwrap_or(&[]));
                }
            }
            (d, sink) => {
                let Some((lo, hi, width)) = int_range(d) else {
                    return Err(self.error_at(at, format!("no literal syntax for {d}")));
                };
                let magnitude = match t.tok {
                    Tok::Number(s) => parse_uint(s).ok_or_else(|| {
                        self.error_at(at, format!("`{s}` is not an integer literal for {d}"))
                    })?,
                    _ => return Err(self.unexpected(&t, &format!("an integer element ({d})"))),
                };
                let v = i128::try_from(magnitude)
                    .ok()
                    .map(|m| if negative { -m } else { m })
                    .filter(|v| (lo..=hi).contains(v))
                    .ok_or_else(|| {
                        let sign = if negative { "-" } else { "" };
                        self.error_at(
                            at,
                            format!("{sign}{magnitude} is out of range for {d} ({lo}..={hi})"),
                        )
                    })?;
                match sink {
                    Sink::SubByte(vals, bits) => {
                        let mask = (1i128 << *bits) - 1;
                        vals.push((v & mask) as u8);
                    }
                    Sink::Bytes(bytes) => {
                        bytes.extend_from_slice(v.to_le_bytes().get(..width).unwrap_or(&[]));
                    }
                    Sink::Strings(_) => {}
                }
            }
        }
        Ok(())
    }

    /// The bit pattern of a float element: a number, `inf`, `nan` or `nan(0xBITS)`.
    fn float_element(&mut self, dtype: DataType, t: &Token<'a>, negative: bool) -> Result<u64> {
        let at = (t.line, t.column);
        let width_bits = float::width(dtype).unwrap_or(64);
        let sign_bit = 1u64 << (width_bits - 1);
        match &t.tok {
            Tok::Number(s) => {
                let v = float::parse_unsigned_f64(s)
                    .ok_or_else(|| self.error_at(at, format!("`{s}` is not a number")))?;
                let v = if negative { -v } else { v };
                float::from_f64(dtype, v)
                    .ok_or_else(|| self.error_at(at, format!("{s} is out of range for {dtype}")))
            }
            Tok::Ident("inf") => float::from_f64(
                dtype,
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                },
            )
            .ok_or_else(|| self.error_at(at, format!("{dtype} has no infinity"))),
            Tok::Ident("nan") => {
                if !self.peek_punct('(')? {
                    let bits = float::canonical_nan(dtype);
                    return Ok(if negative { bits | sign_bit } else { bits });
                }
                self.next()?;
                let p = self.next()?;
                let bits = match p.tok {
                    Tok::Number(s) if s.starts_with("0x") && !negative => parse_uint(s)
                        .and_then(|b| u64::try_from(b).ok())
                        .filter(|&b| width_bits == 64 || b >> width_bits == 0)
                        .filter(|&b| float::is_nan(dtype, b)),
                    _ => None,
                };
                let bits = bits.ok_or_else(|| {
                    self.error_at(
                        (p.line, p.column),
                        format!(
                            "`nan(…)` needs the hex bit pattern of a {dtype} NaN (sign included)"
                        ),
                    )
                })?;
                self.expect(')')?;
                Ok(bits)
            }
            _ => Err(self.unexpected(t, &format!("a number ({dtype})"))),
        }
    }

    /// `BLOBFILE(path = string("…"), offset = uint64(N))`, resolved through the weights.
    fn blob_file(&mut self, tt: &TensorType) -> Result<ValueData> {
        let at = self.pos()?;
        self.next()?;
        self.expect('(')?;
        let fields = self.list_until(')', |p| {
            let at = p.pos()?;
            let key = p.name()?;
            p.expect('=')?;
            Ok((at, key, p.typed_value()?))
        })?;
        let (mut path, mut offset) = (None, None);
        for (fat, key, v) in fields {
            let slot = match key.as_str() {
                "path" => &mut path,
                "offset" => &mut offset,
                other => {
                    return Err(self.error_at(
                        fat,
                        format!("unknown BLOBFILE field `{other}` (expected path and offset)"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(self.error_at(fat, format!("BLOBFILE field `{key}` is given twice")));
            }
            *slot = Some((fat, v));
        }
        let (Some((pat, path)), Some((oat, offset))) = (path, offset) else {
            return Err(self.error_at(at, "BLOBFILE needs both `path` and `offset`"));
        };
        let path = path
            .as_str()
            .ok_or_else(|| self.error_at(pat, "BLOBFILE path must be a string scalar"))?
            .to_string();
        let offset = blob_offset(&offset)
            .ok_or_else(|| self.error_at(oat, "BLOBFILE offset must be a non-negative integer"))?;
        let described = format!("BLOBFILE(path = {path:?}, offset = {offset})");
        let Some(weights) = self.weights else {
            return Err(self.error_at(
                at,
                format!(
                    "{described}: weights are referenced but the text is parsed without a weight source"
                ),
            ));
        };
        let expected = tt.dtype.blob_type().ok_or_else(|| {
            self.error_at(
                at,
                format!(
                    "{described}: {} cannot be stored in a weight file",
                    tt.dtype
                ),
            )
        })?;
        let n = tt.element_count().ok_or_else(|| {
            self.error_at(at, format!("{described}: {tt} has no fixed element count"))
        })?;
        let blob = weights
            .blob(&path, offset)
            .map_err(|e| self.error_at(at, format!("{described}: {e}")))?;
        if blob.dtype != expected {
            return Err(self.error_at(
                at,
                format!(
                    "{described}: the blob holds {:?} but the value is declared {tt}",
                    blob.dtype
                ),
            ));
        }
        let padding_ok = !expected.is_sub_byte()
            || usize::try_from(n)
                .is_ok_and(|n| blob.padding_bits == subbyte::padding_bits(n, expected.bits()));
        if blob.element_count() != n || !padding_ok {
            return Err(self.error_at(
                at,
                format!(
                    "{described}: the blob holds {} elements (padding {} bits) but the value is declared {tt}",
                    blob.element_count(),
                    blob.padding_bits
                ),
            ));
        }
        Ok(ValueData::Tensor(TensorData {
            storage: Storage::Bytes(blob.data),
            placement: Placement::Blob {
                source: Some(BlobRef { file: path, offset }),
            },
        }))
    }
}

/// A BLOBFILE offset: a uint64 scalar (any non-negative integer scalar is accepted).
fn blob_offset(v: &Value) -> Option<u64> {
    let t = v.tensor_type()?;
    if !t.is_scalar() {
        return None;
    }
    if t.dtype == DataType::Uint64 {
        let b = v.bytes()?;
        return Some(u64::from_le_bytes(b.as_ref().try_into().ok()?));
    }
    if !t.dtype.is_int() {
        return None;
    }
    u64::try_from(v.as_i64()?).ok()
}
