//! Hostile and malformed MIL text: every input gives a program or a `MilError::Parse` with a
//! position — never a panic, a stack overflow or an allocation the text does not justify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use anekit_format::{Blob, BlobDataType, BlobFile, BlobSource, BlobWriter};
use anekit_mil::MilError;
use anekit_mil::text;

const SAMPLE: &str = r#"program(1.3)
[buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]
{
    func main<ios18>(tensor<fp16, [1, ?]> x, state<tensor<fp16, [1, 4]>> k) [info = tuple<string, list<tensor<int32, [2]>, ?>>(("a", [[1, 1], [1, 64]]))] {
            tensor<int32, [2, 2]> m = const()[name = string("m"), val = tensor<int32, [2, 2]>([[1, -2], [3, 4]])];
            fp16 e = const()[name = string("e"), val = fp16(0x1.5p-17)];
            tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(axis = int32(1), num_splits = int32(2), x = x)[name = string("sp")];
            tensor<fp16, [1, 4]> c = concat(axis = int32(1), values = (a, b))[name = string("c")];
            tensor<fp16, [1, 4]> d = cond(pred = bool(true))[name = string("d")] {
                } -> (c) (int32 i) {
                    string s = const()[name = string("s"), val = string("q\"\\\u{e9}")];
                } -> (c);
            tensor<fp16, [1, 4]> w = const()[name = string("w"), val = tensor<fp16, [1, 4]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];
        } -> (d);
}
"#;

struct OneBlob(BlobFile);

impl OneBlob {
    fn new() -> Self {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        w.append(BlobDataType::Float16, &[0u8; 8], 0).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        Self(BlobFile::from_bytes("mem/weight.bin", bytes.into()).unwrap())
    }
}

impl BlobSource for OneBlob {
    fn blob(&self, _file: &str, offset: u64) -> anekit_format::Result<Blob> {
        self.0.blob(offset)
    }
}

/// The position and message of a parse error.
fn parse_error(text: &str) -> (usize, usize, String) {
    match text::parse(text, "bad.mil", &OneBlob::new()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(MilError::Parse {
            source_name,
            line,
            column,
            message,
        }) => {
            assert_eq!(source_name, "bad.mil");
            assert!(line >= 1 && column >= 1);
            (line, column, message)
        }
        Err(other) => panic!("not a parse error: {other}"),
    }
}

fn wrap(stmt: &str) -> String {
    format!("program(1.3)\n{{\n    func main<ios18>() {{\n{stmt}\n    }} -> ();\n}}\n")
}

#[test]
fn the_sample_parses() {
    let p = text::parse(SAMPLE, "s.mil", &OneBlob::new()).unwrap();
    assert_eq!(
        text::parse(&text::print(&p), "again", &OneBlob::new()).unwrap(),
        p
    );
}

#[test]
fn every_truncation_is_an_error() {
    let full = SAMPLE.trim_end();
    for (i, _) in full.char_indices().skip(1) {
        let prefix = &full[..i];
        let r = text::parse(prefix, "cut.mil", &OneBlob::new());
        assert!(
            matches!(r, Err(MilError::Parse { .. })),
            "prefix of {i} bytes: {r:?}"
        );
    }
}

#[test]
fn byte_mutations_never_panic() {
    // Deterministic pseudo-random single-byte substitutions and deletions.
    let bytes = SAMPLE.as_bytes();
    let alphabet = b"()[]{}<>,=;-+?*@`\"\\0123456789.xpe?abz_ \n\t\x01\xff";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut accepted = 0;
    for _ in 0..4000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let pos = (state % bytes.len() as u64) as usize;
        let mut m = bytes.to_vec();
        if state.is_multiple_of(5) {
            m.remove(pos);
        } else {
            m[pos] = alphabet[((state >> 32) % alphabet.len() as u64) as usize];
        }
        let Ok(t) = std::str::from_utf8(&m) else {
            continue;
        };
        if let Ok(p) = text::parse(t, "m.mil", &OneBlob::new()) {
            accepted += 1;
            // Whatever was accepted prints and parses back to itself.
            let again = text::parse(&text::print(&p), "again", &OneBlob::new()).unwrap();
            assert_eq!(again, p);
        }
    }
    // Some mutations (inside names or numbers) leave valid text; most do not.
    assert!(accepted > 0 && accepted < 4000, "{accepted}");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let depth = 100_000;
    let ty = format!("{}fp16{}", "list<".repeat(depth), ", 1>".repeat(depth));
    let (_, _, m) = parse_error(&format!(
        "program(1.3)\n{{\n    func main<ios18>({ty} x) {{\n    }} -> ();\n}}\n"
    ));
    assert!(m.contains("nesting deeper than"), "{m}");

    let mut blocks = String::new();
    for _ in 0..depth {
        blocks.push_str("tensor<fp16, [1]> c = cond(pred = p)[name = string(\"c\")] {\n");
    }
    let (_, _, m) = parse_error(&wrap(&blocks));
    assert!(m.contains("nesting deeper than"), "{m}");

    let value = format!("{}int32{}", "tuple<".repeat(depth), ">".repeat(depth));
    let (_, _, m) = parse_error(&wrap(&format!("{value} t = const()[val = {value}(1)];")));
    assert!(m.contains("nesting deeper than"), "{m}");

    // Deep brackets in a tensor literal are read without recursion: a rank-20000 tensor of
    // one element parses and prints back.
    let rank = 20_000;
    let shape = vec!["1"; rank].join(", ");
    let literal = format!("{}7{}", "[".repeat(rank), "]".repeat(rank));
    let t = wrap(&format!(
        "tensor<int32, [{shape}]> t = const()[val = tensor<int32, [{shape}]>({literal})];"
    ));
    let p = text::parse_without_weights(&t, "deep.mil").unwrap();
    assert_eq!(
        text::parse_without_weights(&text::print(&p), "again").unwrap(),
        p
    );
}

#[test]
fn huge_declared_shapes_allocate_nothing() {
    for (stmt, needle) in [
        (
            "tensor<fp32, [1000000000000]> t = const()[val = tensor<fp32, [1000000000000]>([1])];",
            "declares [1000000000000]",
        ),
        (
            "tensor<fp32, [4294967296, 4294967296, 4294967296]> t = const()[val = tensor<fp32, [4294967296, 4294967296, 4294967296]>([1])];",
            "overflows",
        ),
        (
            "tensor<fp32, [99999999999999999999]> t = const()[val = fp32(1)];",
            "not an integer of at most 64 bits",
        ),
        (
            "tensor<fp16, [1000000000000]> t = const()[val = tensor<fp16, [1000000000000]>(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64(64)))];",
            "holds 4 elements",
        ),
        (
            "tensor<fp32, [2]> t = const()[val = tensor<fp32, [2]>([1, 2, 3])];",
            "more elements than the declared shape [2]",
        ),
    ] {
        let (_, _, m) = parse_error(&wrap(stmt));
        assert!(m.contains(needle), "{stmt}: {m}");
    }
}

#[test]
fn malformed_literals_are_errors_with_positions() {
    // (statement, the text the error must point at, words of the message)
    for (stmt, at, needle) in [
        ("c(v = int8(128));", "128", "out of range for int8"),
        ("c(v = int4(-9));", "-9", "out of range for int4"),
        ("c(v = uint1(2));", "2)", "out of range for uint1"),
        ("c(v = uint64(-1));", "-1", "out of range for uint64"),
        ("c(v = fp16(70000));", "70000", "out of range for fp16"),
        ("c(v = fp8e4m3fn(inf));", "inf", "has no infinity"),
        ("c(v = fp16(nan(0x7c00)));", "0x7c00", "NaN"),
        ("c(v = fp16(nan(0x17e00)));", "0x17e00", "NaN"),
        ("c(v = fp32(1.0.0));", "1.0.0", "is not a number"),
        ("c(v = int32(1.5));", "1.5", "not an integer literal"),
        ("c(v = bool(2.0));", "2.0", "is not a bool"),
        ("c(v = string(\"\\q\"));", "\\q", "unknown escape"),
        ("c(v = string(\"abc));", "\"abc", "unterminated"),
        (
            "c(v = tensor<int32, [3]>([1, 2]));",
            "[1, 2]",
            "declares [3]",
        ),
        (
            "c(v = tensor<int32, [2, 2]>([[1, 2], [3]]));",
            "]])",
            "different lengths",
        ),
        (
            "c(v = tensor<int32, [2, 2]>([[1, 2], 3]));",
            "3]",
            "different nesting depths",
        ),
        (
            "c(v = tensor<int32, [2]>([1, 2,]));",
            "])",
            "an element after `,`",
        ),
        (
            "c(v = tensor<int32, [?]>([1, 2]));",
            "tensor",
            "fixed shape",
        ),
        (
            "c(v = tensor<bf15, [2]>([1, 2]));",
            "bf15",
            "unknown data type `bf15`",
        ),
        ("c(v = @weird int32(1));", "@weird", "unknown annotation"),
        (
            "c(v = state<int32>(1));",
            "state",
            "state type has no literal",
        ),
        ("c(v = tuple<int32>((1, 2)));", "2))", "needs its own type"),
        (
            "c()[v = int32(1), v = int32(2)];",
            "v = int32(2)",
            "given twice",
        ),
        ("c(a = b, a = c);", "a = c", "given twice"),
        ("c(a = );", ")", "a name"),
        ("int32 x = op(a = b)\n", "\n", "`;`"),
    ] {
        let (line, col, m) = parse_error(&wrap(stmt));
        // Statements start line 4 of `wrap`; a missing `;` is reported on the next line.
        let expected = match stmt.find(at) {
            Some(i) if at != "\n" => (4, stmt[..i].chars().count() + 1),
            _ => (6, 5),
        };
        assert_eq!((line, col), expected, "{stmt}: {m}");
        assert!(m.contains(needle), "{stmt}: {m}");
    }
}

#[test]
fn weight_references_are_checked() {
    let blob = |ty: &str, offset: u64| {
        wrap(&format!(
            "{ty} w = const()[val = {ty}(BLOBFILE(path = string(\"@model_path/weights/weight.bin\"), offset = uint64({offset})))];"
        ))
    };
    // Without weights: the position of BLOBFILE and what it refers to.
    let t = blob("tensor<fp16, [4]>", 64);
    match text::parse_without_weights(&t, "nw.mil") {
        Err(MilError::Parse {
            line,
            column,
            message,
            ..
        }) => {
            let col = t.lines().nth(3).and_then(|l| l.find("BLOBFILE")).unwrap() + 1;
            assert_eq!((line, column), (4, col));
            assert!(message.contains("offset = 64") && message.contains("without a weight source"));
        }
        other => panic!("{other:?}"),
    }
    assert!(text::parse(&t, "w.mil", &OneBlob::new()).is_ok());
    for (ty, offset, needle) in [
        ("tensor<fp32, [2]>", 64, "holds Float16"),
        ("tensor<fp16, [5]>", 64, "holds 4 elements"),
        ("tensor<fp16, [4]>", 128, "blob_metadata@128"),
        ("tensor<fp16, [4]>", 0, "blob_metadata@0"),
        ("tensor<bool, [4]>", 64, "cannot be stored in a weight file"),
    ] {
        let (_, _, m) = parse_error(&blob(ty, offset));
        assert!(m.contains(needle), "{ty} @{offset}: {m}");
    }
    let (_, _, m) = parse_error(&wrap(
        "c(v = tensor<fp16, [4]>(BLOBFILE(path = string(\"x\"), offset = int32(-1))));",
    ));
    assert!(m.contains("non-negative"), "{m}");
    let (_, _, m) = parse_error(&wrap(
        "c(v = tensor<fp16, [4]>(BLOBFILE(path = string(\"x\"), size = uint64(1))));",
    ));
    assert!(m.contains("unknown BLOBFILE field `size`"), "{m}");
}

#[test]
fn structural_errors() {
    for (text, needle) in [
        ("", "expected `program`"),
        ("program(abc)\n{\n}\n", "program version"),
        ("program(1.3)\n{\n}\n}", "end of the text"),
        (
            "program(1.3)\n{\n    func f<ios18>() {\n    } -> ();\n    func f<ios18>() {\n    } -> ();\n}\n",
            "defined twice",
        ),
        (
            "program(1.3)\n{\n    func f<ios18>() {\n    } -> () <ios18> {\n    } -> ();\n}\n",
            "two blocks for opset `CoreML8`",
        ),
        (
            "program(1.3)\n{\n    func f<ios18>() {\n    } (x);\n}\n",
            "`->`",
        ),
        (
            "program(1.3)\n{\n    func f<ios18>() $\n}\n",
            "unexpected character '$'",
        ),
    ] {
        let (_, _, m) = parse_error(text);
        assert!(m.contains(needle), "{text:?}: {m}");
    }
}

#[test]
fn summary_of_huge_declared_weight_types_does_not_overflow() {
    // The declared output types of constants come from the file; their element counts
    // (u64::MAX each here) must not overflow the parameter total.
    let text = r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1]> x) {
            tensor<fp32, [18446744073709551615]> a = const()[name = string("a"), val = tensor<fp32, [1]>([1])];
            tensor<fp32, [18446744073709551615]> b = const()[name = string("b"), val = tensor<fp32, [1]>([2])];
            tensor<fp32, [1]> c = add(x = a, y = b)[name = string("c")];
        } -> (c);
}
"#;
    let Ok(program) = text::parse_without_weights(text, "huge.mil") else {
        return; // rejected while parsing: nothing to summarise
    };
    let model = anekit_mil::model::Model::from_program(Default::default(), program);
    let s = anekit_mil::summary::ModelSummary::of(&model);
    assert_eq!(s.parameters.count, u64::MAX);
}
