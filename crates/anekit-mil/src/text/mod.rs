//! MIL text form (the `model.mil` syntax): printer and parser.
//!
//! Apple's compiler writes an ML Program as text into `X.mlmodelc/model.mil`, and the
//! private ANE compiler takes the same text. There is no published grammar; this module
//! implements the syntax observed in files Apple's tools wrote (sources below), plus a few
//! anekit spellings for IR content Apple never writes, so that for every program whose values
//! pass [`Value::validate`](crate::Value::validate),
//! `parse(&print(&p), …) == p` (IR equality; [`Placement`](crate::Placement) equality ignores
//! blob file and offset).
//!
//! ```text
//! program(1.3)
//! [buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]
//! {
//!     func main<ios18>(tensor<fp16, [1, ?]> x, state<tensor<fp16, [1, 4]>> k) [FlexibleShapeInformation = …] {
//!             tensor<int32, [2]> s = const()[name = string("s"), val = tensor<int32, [2]>([1, 1])];
//!             tensor<fp16, [64, 32]> w = const()[name = string("w"), val = tensor<fp16, [64, 32]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
//!             tensor<fp16, [1, 64]> y = linear(weight = w, x = x)[name = string("y")];
//!             tensor<fp16, [1, 32]> a, tensor<fp16, [1, 32]> b = split(axis = int32(1), num_splits = int32(2), x = y)[name = string("sp")];
//!             tensor<fp16, [1, 64]> c = concat(axis = int32(1), interleave = bool(false), values = (a, b))[name = string("c")];
//!         } -> (c);
//! }
//! ```
//!
//! # Grammar
//!
//! ```text
//! program   := 'program' '(' ['-'] VERSION ')' [doc] [attrs] '{' function* '}'
//! function  := 'func' name '<' opset '>' '(' [typed_name {',' typed_name}] ')' [attrs]
//!              [block] {'<' opset '>' block} ';'
//! block     := ['(' typed_names ')'] '{' statement* '}' '->' '(' [name {',' name}] ')' [attrs]
//! statement := [typed_name {',' typed_name} '='] name '(' [param {',' param}] ')' [attrs]
//!              block* ';'
//! param     := name '=' (binding | '(' [binding {',' binding}] ')')
//! binding   := name | value
//! attrs     := '[' [name '=' value {',' name '=' value}] ']'
//! typed_name:= type name
//! type      := DTYPE | 'tensor' '<' DTYPE ',' shape [',' attrs] '>' | 'list' '<' type ',' dim '>'
//!            | 'tuple' '<' [type {',' type}] '>' | 'dict' '<' type ',' type '>' | 'state' '<' type '>'
//! shape     := '[' [dim {',' dim}] ']' | '*'           dim := INT | '?' | '?*'
//! value     := annotation* type '(' [content] ')'       annotation := '@doc' '(' STRING ')' | '@auto' | '@blob'
//! content   := 'BLOBFILE' '(' 'path' '=' value ',' 'offset' '=' value ')' | bare
//! bare      := elements | '[' [elem {',' elem}] ']' (list) | '(' … ')' (tuple) | '{' ['{' elem ',' elem '}' …] '}' (dict)
//! elem      := value | bare                              (a bare element takes the container's element type)
//! elements  := scalar | '[' [elements {',' elements}] ']' (nested by dimension)
//! scalar    := STRING | 'true' | 'false' | ['-'|'+'] (NUMBER | 'inf' | 'nan' ['(' HEX ')'])
//! name      := IDENT | '`' escaped text '`'
//! ```
//!
//! # Observed syntax and its sources
//!
//! - `program(1.0)` / `program(1.3)` header, `[buildInfo = dict<…>(…)]` line, `{ func main<ios16>(…) {
//!   … } -> (var_3); }`, statement form, `(` params sorted `)` `[` attributes `]`: Apple's
//!   `add_model.mlmodelc/model.mil` shipped in coremltools (`modelrunner/ModelRunner`), also
//!   the layout (functions at 4 spaces, statements at 12, the closing `}` at 8) this printer
//!   copies.
//! - Two spellings of scalars, tied to the version: `program(1.0)` files write scalars as
//!   `tensor<string, []>` and the buildInfo type as `dict<tensor<string, []>, tensor<string,
//!   []>>`; `program(1.3)` files write bare `string`, `int32`, `fp16`, … (coremltools tests
//!   `test/blob/test_weights.py`: spec-version-9 models show `string("const_3")`,
//!   `uint64(64)`, older ones `tensor<string, []>("const_1")`, `tensor<uint64, []>(64)`). See
//!   [`Dialect`].
//! - `BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64))` inside
//!   `tensor<T, [...]>(…)`, and iOS18 constexpr ops taking such literals as `( )` parameters:
//!   coremltools `backend/mil/test_load.py`, `test/ml_program/test_utils.py`.
//! - Floats as C99 hex (`fp16(0x1.5p-17)`, `fp16(0x1p-5)`, `fp16(-0x1.4p+3)`): model.mil
//!   excerpts in public projects that drive the ANE compiler.
//! - Function attributes between the signature and the body, and `?` for a flexible dimension:
//!   `func main<ios17>(tensor<int32, [1, ?]> input_ids) [FlexibleShapeInformation =
//!   tuple<…>(…)] {` — quoted from a compiled bundle in FluidAudio's
//!   `KokoroAneModelCompatibilityTests.swift`. Inside composite literals elements are bare
//!   (`{{"input_ids", [1, 1]}}`, `[[1, 1], [1, 64]]`), as in the buildInfo dict.
//! - Variadic arguments as `values = (a, b)`; multiple outputs `tensor<…> a, tensor<…> b =
//!   split(…)`; `state<tensor<…>>` inputs: docs/references.md#mil-text and hand-written programs
//!   accepted by Apple's compiler.
//!
//! # anekit choices where Apple's spelling is unknown
//!
//! - Nested blocks (`cond`, `while_loop`) follow the op's attributes, each as
//!   `[(block inputs)] { … } -> (outputs)`; `?*` is a variadic unknown dimension and `*` an
//!   unknown rank; multi-dimensional inline tensors are nested brackets (a flat list of the
//!   right count is also accepted, and a bare element for a one-element tensor).
//! - NaN other than the canonical quiet NaN: `nan(0xBITS)`; bools that are neither 0 nor 1:
//!   the byte as a number. String escapes: `\\ \" \n \t \r \0 \xHH` (ASCII) `\u{H…}`.
//! - Names that are not identifiers (`[A-Za-z_][A-Za-z0-9_@]*`) in backticks; an opset
//!   string that is not `CoreML5`…`CoreML9` verbatim (backticked if it would read as one).
//! - IR content Apple never writes ([`PrintOptions::extensions`]): a program doc string
//!   (`program(1.0) @doc("…")`), value doc strings (`@doc("…") fp16(…)`), placements other
//!   than inline and a referenced blob (`@auto`, `@blob`), tensor-type attributes (`tensor<fp16,
//!   [2], [k = …]>`), block attributes (after `-> (…)`), and further block specializations of
//!   a function (`} -> (y) <ios17> { … } -> (y);`). A value without content is `type()`.
//!
//! # Weights
//!
//! [`parse()`] resolves each BLOBFILE through a [`BlobSource`] (normally the model's
//! [`WeightStore`](anekit_format::WeightStore)) into a view of the mapped weight file, checking
//! its element type and count against the declared type. [`parse_without_weights`] parses
//! text that has no BLOBFILE references and fails, with the position, at the first one.
//!
//! # Limits
//!
//! Input is untrusted: nesting deeper than 64 levels (blocks, types, values) is refused,
//! tensor literals are checked against their declared shape as they are read (a declared
//! `tensor<fp32, [1000000000000]>` allocates nothing), and every error is a
//! [`MilError::Parse`](crate::MilError::Parse) with line and column.

mod float;
mod lexer;
mod parse;
mod print;

use anekit_format::weights::BlobSource;

use crate::error::Result;
use crate::program::Program;
use crate::types::ValueType;
use crate::value::Value;

/// The two spellings of Apple's model.mil, named by the version in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// `program(1.0)`: scalars spelled `tensor<fp16, []>`, literals `tensor<string,
    /// []>("x")` — written for models of specification version 8 (iOS17) and older.
    Legacy,
    /// `program(1.3)`: scalars spelled `fp16`, literals `string("x")`, `uint64(64)` —
    /// written for specification version 9 (iOS18) and later.
    Modern,
}

impl Dialect {
    /// The minor version in the `program(1.x)` header.
    pub fn minor_version(self) -> u32 {
        match self {
            Dialect::Legacy => 0,
            Dialect::Modern => 3,
        }
    }

    /// The dialect Apple's compiler uses for a model of specification version `v`.
    pub fn for_spec_version(v: i32) -> Self {
        if v >= 9 {
            Dialect::Modern
        } else {
            Dialect::Legacy
        }
    }

    /// The dialect [`print()`] picks for `program`: modern when any function runs an iOS18 or
    /// later opset (a model's specification version decides for Apple; use
    /// [`Dialect::for_spec_version`] when it is known).
    pub fn for_program(program: &Program) -> Self {
        print::auto_dialect(program)
    }

    /// The dialect named by the header of `text` (`program(1.0)` or `program(1.3)`), if it
    /// is one of the two.
    pub fn detect(text: &str) -> Option<Self> {
        let rest = text.trim_start().strip_prefix("program")?.trim_start();
        let rest = rest.strip_prefix('(')?;
        let version = rest.get(..rest.find(')')?)?.trim();
        match version.split_once('.').map(|(_, minor)| minor) {
            Some("0") | None => Some(Dialect::Legacy),
            Some("3") => Some(Dialect::Modern),
            Some(_) => None,
        }
    }
}

/// How [`print_with`] writes a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintOptions {
    /// The spelling; `None` picks [`Dialect::for_program`].
    pub dialect: Option<Dialect>,
    /// Write anekit's spellings for IR content Apple's syntax has no place for (doc strings,
    /// `@auto`/`@blob` placements, tensor-type and block attributes, extra block
    /// specializations). With `false` that content is left out — the text is then what
    /// Apple's compilers accept, but parsing it does not give the same program back.
    pub extensions: bool,
}

impl Default for PrintOptions {
    fn default() -> Self {
        Self {
            dialect: None,
            extensions: true,
        }
    }
}

/// Print `program` as model.mil text (dialect chosen by [`Dialect::for_program`], anekit
/// extensions where the IR needs them). Deterministic: equal programs give equal text.
pub fn print(program: &Program) -> String {
    print_with(program, &PrintOptions::default())
}

/// Print `program` with `options`.
pub fn print_with(program: &Program, options: &PrintOptions) -> String {
    let dialect = options
        .dialect
        .unwrap_or_else(|| Dialect::for_program(program));
    let mut p = print::Printer::new(dialect, options);
    p.program(program);
    p.finish()
}

/// The text of a type in `dialect` (`fp16` or `tensor<fp16, []>`, `tensor<int32, [1, ?]>`).
pub fn print_type(ty: &ValueType, dialect: Dialect) -> String {
    let options = PrintOptions {
        dialect: Some(dialect),
        extensions: true,
    };
    let mut p = print::Printer::new(dialect, &options);
    p.ty(ty);
    p.finish()
}

/// The text of a value with its type in `dialect` (`int32(1)`, `tensor<int32, [2]>([1, 2])`).
pub fn print_value(value: &Value, dialect: Dialect) -> String {
    let options = PrintOptions {
        dialect: Some(dialect),
        extensions: true,
    };
    let mut p = print::Printer::new(dialect, &options);
    p.typed_value(value);
    p.finish()
}

/// Parse model.mil text; `source_name` labels errors (a path or `<memory>`). Weight
/// references (BLOBFILE) are resolved through `weights`.
pub fn parse(text: &str, source_name: &str, weights: &dyn BlobSource) -> Result<Program> {
    parse::Parser::new(text, source_name, Some(weights)).program()
}

/// Parse model.mil text that references no weights; the first BLOBFILE is an error (with its
/// position) naming the file and offset it refers to.
pub fn parse_without_weights(text: &str, source_name: &str) -> Result<Program> {
    parse::Parser::new(text, source_name, None).program()
}
