//! The MIL text form on constructed programs: every syntax element and every data type
//! prints in the spelling Apple's compiler writes (where that spelling is known, the expected
//! strings below are quoted from model.mil files written by Apple's `coremlc`, as recorded in
//! coremltools' tests and its sample bundle), and `parse(print(p)) == p`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Cursor;

use anekit_format::{Blob, BlobDataType, BlobFile, BlobSource, BlobWriter, subbyte};
use anekit_mil::text::{self, Dialect, PrintOptions};
use anekit_mil::{
    Argument, Binding, BlobRef, Block, DataType, Dim, Function, NamedValueType, Operation,
    Placement, Program, Storage, TensorData, TensorType, Value, ValueData, ValueType,
};

const WEIGHTS: &str = "@model_path/weights/weight.bin";

/// An in-memory weight file answering for `@model_path/weights/weight.bin`.
struct MemWeights(BlobFile);

impl MemWeights {
    fn new(blobs: &[(BlobDataType, Vec<u8>, u64)]) -> (Self, Vec<u64>) {
        let mut w = BlobWriter::new(Cursor::new(Vec::new())).unwrap();
        let offsets = blobs
            .iter()
            .map(|(t, d, pad)| w.append(*t, d, *pad).unwrap())
            .collect();
        let bytes = w.finish().unwrap().into_inner();
        (
            Self(BlobFile::from_bytes("mem/weight.bin", bytes.into()).unwrap()),
            offsets,
        )
    }
}

impl BlobSource for MemWeights {
    fn blob(&self, file: &str, offset: u64) -> anekit_format::Result<Blob> {
        if file != WEIGHTS {
            return Err(anekit_format::FormatError::invalid(
                "mem",
                "file",
                format!("no weight file {file}"),
            ));
        }
        self.0.blob(offset)
    }
}

// ------------------------------------------------------------------------------------------
// builders
// ------------------------------------------------------------------------------------------

fn tt(dtype: DataType, shape: &[u64]) -> ValueType {
    ValueType::tensor(dtype, shape)
}

fn nv(name: &str, ty: ValueType) -> NamedValueType {
    NamedValueType::new(name, ty)
}

fn n(name: &str) -> Argument {
    Argument(vec![Binding::Name(name.into())])
}

fn lit(v: Value) -> Argument {
    Argument(vec![Binding::Value(v)])
}

fn inline(ty: ValueType, bytes: Vec<u8>) -> Value {
    Value {
        ty,
        data: ValueData::Tensor(TensorData {
            storage: Storage::Bytes(bytes.into()),
            placement: Placement::Inline,
        }),
        doc: String::new(),
    }
}

fn strings(ty: ValueType, s: &[&str]) -> Value {
    Value {
        ty,
        data: ValueData::Tensor(TensorData {
            storage: Storage::Strings(s.iter().map(|x| x.to_string()).collect()),
            placement: Placement::Inline,
        }),
        doc: String::new(),
    }
}

fn uint64(v: u64) -> Value {
    inline(
        ValueType::scalar(DataType::Uint64),
        v.to_le_bytes().to_vec(),
    )
}

fn fp16(v: f32) -> Value {
    inline(
        ValueType::scalar(DataType::Fp16),
        half::f16::from_f32(v).to_le_bytes().to_vec(),
    )
}

/// An op with the given outputs, inputs and attributes, named `name`.
fn op(
    op_type: &str,
    name: &str,
    outputs: Vec<NamedValueType>,
    inputs: Vec<(&str, Argument)>,
    attrs: Vec<(&str, Value)>,
) -> Operation {
    let mut o = Operation::new(op_type);
    o.outputs = outputs;
    o.inputs = inputs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    o.attributes = attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    o.attributes.insert("name".into(), Value::string(name));
    o
}

fn const_op(out: &str, v: Value) -> Operation {
    op(
        "const",
        out,
        vec![nv(out, v.ty.clone())],
        vec![],
        vec![("val", v)],
    )
}

fn function(
    opset: &str,
    inputs: Vec<NamedValueType>,
    ops: Vec<Operation>,
    outputs: &[&str],
) -> Function {
    Function {
        inputs,
        opset: opset.into(),
        blocks: BTreeMap::from([(
            opset.to_string(),
            Block {
                inputs: vec![],
                outputs: outputs.iter().map(|s| s.to_string()).collect(),
                operations: ops,
                attributes: BTreeMap::new(),
            },
        )]),
        attributes: BTreeMap::new(),
    }
}

fn program(functions: Vec<(&str, Function)>) -> Program {
    Program {
        version: 1,
        functions: functions
            .into_iter()
            .map(|(k, f)| (k.to_string(), f))
            .collect(),
        doc: String::new(),
        attributes: BTreeMap::new(),
    }
}

fn string_dict(entries: &[(&str, &str)]) -> Value {
    let s = ValueType::scalar(DataType::String);
    Value {
        ty: ValueType::Dict {
            key: Box::new(s.clone()),
            value: Box::new(s),
        },
        data: ValueData::Dict(
            entries
                .iter()
                .map(|(k, v)| (Value::string(*k), Value::string(*v)))
                .collect(),
        ),
        doc: String::new(),
    }
}

fn print_in(p: &Program, d: Dialect) -> String {
    text::print_with(
        p,
        &PrintOptions {
            dialect: Some(d),
            extensions: true,
        },
    )
}

/// Print in both dialects, parse back, compare; returns the two texts.
fn round_trip(p: &Program, weights: &dyn BlobSource) -> (String, String) {
    let legacy = print_in(p, Dialect::Legacy);
    let modern = print_in(p, Dialect::Modern);
    for t in [&legacy, &modern] {
        let back = text::parse(t, "test.mil", weights)
            .unwrap_or_else(|e| panic!("{e}\n--- text ---\n{t}"));
        assert_eq!(&back, p, "parse(print(p)) != p\n--- text ---\n{t}");
        // Printing is a fixed point: the parsed program prints to the same text.
        assert_eq!(&print_in(&back, Dialect::Legacy), &legacy);
    }
    (legacy, modern)
}

fn no_weights() -> MemWeights {
    MemWeights::new(&[]).0
}

// ------------------------------------------------------------------------------------------
// Apple's own spellings
// ------------------------------------------------------------------------------------------

/// coremltools' sample bundle `add_model.mlmodelc/model.mil` (coremlc 3402.4.1, spec 7),
/// rebuilt as IR, prints byte for byte as Apple's compiler wrote it.
#[test]
fn legacy_sample_prints_byte_identical() {
    let t = tt(DataType::Fp16, &[1, 10]);
    let mut p = program(vec![(
        "main",
        function(
            "CoreML6",
            vec![nv("x", t.clone()), nv("y", t.clone())],
            vec![op(
                "mul",
                "op_3_cast_fp16",
                vec![nv("var_3", t.clone())],
                vec![("x", n("x")), ("y", n("y"))],
                vec![],
            )],
            &["var_3"],
        ),
    )]);
    p.attributes.insert(
        "buildInfo".into(),
        string_dict(&[
            ("coremlc-component-MIL", "3402.3.2"),
            ("coremlc-version", "3402.4.1"),
            ("coremltools-component-torch", "2.5.1"),
            ("coremltools-source-dialect", "TorchScript"),
            ("coremltools-version", "8.1"),
        ]),
    );
    let apple = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/external/add_model.mlmodelc/model.mil"
    ))
    .unwrap();
    assert_eq!(text::print(&p), apple);
    assert_eq!(Dialect::detect(&apple), Some(Dialect::Legacy));
    round_trip(&p, &no_weights());
}

/// Const ops holding weights, in both dialects, exactly as coremltools' tests quote Apple's
/// output (`test/blob/test_weights.py` TestWeightIDSharing): two fp32 [500] blobs land at
/// metadata offsets 64 and 2176.
#[test]
fn blobfile_consts_match_coremlc_output() {
    let payload: Vec<u8> = (0..500u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let (weights, offsets) = MemWeights::new(&[
        (BlobDataType::Float32, payload.clone(), 0),
        (BlobDataType::Float32, payload.clone(), 0),
    ]);
    assert_eq!(offsets, vec![64, 2176]);
    let blob_value = |offset| Value {
        ty: tt(DataType::Fp32, &[500]),
        data: ValueData::Tensor(TensorData {
            storage: Storage::Bytes(payload.clone().into()),
            placement: Placement::Blob {
                source: Some(BlobRef {
                    file: WEIGHTS.into(),
                    offset,
                }),
            },
        }),
        doc: String::new(),
    };
    let t = tt(DataType::Fp32, &[500]);
    let p = program(vec![(
        "main",
        function(
            "CoreML6",
            vec![nv("x", t.clone())],
            vec![
                const_op("const_1", blob_value(64)),
                const_op("const_3", blob_value(2176)),
                op(
                    "add",
                    "add_0",
                    vec![nv("add_0", t.clone())],
                    vec![("x", n("x")), ("y", n("const_1"))],
                    vec![],
                ),
            ],
            &["add_0"],
        ),
    )]);
    let (legacy, modern) = round_trip(&p, &weights);
    assert!(legacy.contains(
        r#"tensor<fp32, [500]> const_1 = const()[name = tensor<string, []>("const_1"), val = tensor<fp32, [500]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(64)))];"#
    ), "{legacy}");
    assert!(legacy.contains(
        r#"tensor<fp32, [500]> const_3 = const()[name = tensor<string, []>("const_3"), val = tensor<fp32, [500]>(BLOBFILE(path = tensor<string, []>("@model_path/weights/weight.bin"), offset = tensor<uint64, []>(2176)))];"#
    ), "{legacy}");
    assert!(legacy.contains("add(x = x, y = const_1)"));
    assert!(modern.contains(
        r#"tensor<fp32, [500]> const_1 = const()[name = string("const_1"), val = tensor<fp32, [500]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))];"#
    ), "{modern}");
    assert!(modern.starts_with("program(1.3)\n{\n    func main<ios16>(tensor<fp32, [500]> x) {\n"));

    // The parsed values are views of the weight file with the reference kept.
    let back = text::parse(&modern, "m.mil", &weights).unwrap();
    let f = &back.functions["main"];
    let v = f.block().unwrap().operations[1].attributes["val"].clone();
    match &v.data {
        ValueData::Tensor(TensorData {
            placement: Placement::Blob { source: Some(r) },
            storage: Storage::Bytes(b),
        }) => {
            assert_eq!(r.offset, 2176);
            assert_eq!(r.file, WEIGHTS);
            assert_eq!(b.as_ref(), payload.as_slice());
        }
        other => panic!("{other:?}"),
    }
}

/// iOS18 constexpr ops take their parameters in `( )` with inline BLOBFILE literals — the
/// spelling coremltools' `backend/mil/test_load.py` asserts in Apple's output.
#[test]
fn ios18_constexpr_with_inline_blob_parameters() {
    let mask: Vec<u8> = vec![0xa5; 32 * 32 / 8];
    let (weights, offsets) = MemWeights::new(&[(BlobDataType::UInt1, mask.clone(), 0)]);
    let data_mask = Value {
        ty: tt(DataType::Uint1, &[32, 32]),
        data: ValueData::Tensor(TensorData {
            storage: Storage::Bytes(mask.into()),
            placement: Placement::Blob {
                source: Some(BlobRef {
                    file: WEIGHTS.into(),
                    offset: offsets[0],
                }),
            },
        }),
        doc: String::new(),
    };
    let out = tt(DataType::Fp16, &[32, 32]);
    let p = program(vec![(
        "main",
        function(
            "CoreML8",
            vec![],
            vec![op(
                "constexpr_sparse_to_dense",
                "w",
                vec![nv("w", out.clone())],
                vec![
                    ("mask", lit(data_mask)),
                    (
                        "nonzero_data",
                        lit(inline(tt(DataType::Fp16, &[2]), vec![0, 0x3c, 0, 0xc0])),
                    ),
                ],
                vec![],
            )],
            &["w"],
        ),
    )]);
    let (_, modern) = round_trip(&p, &weights);
    assert!(modern.contains(
        r#"constexpr_sparse_to_dense(mask = tensor<uint1, [32, 32]>(BLOBFILE(path = string("@model_path/weights/weight.bin"), offset = uint64(64)))"#
    ), "{modern}");
    assert!(modern.contains("nonzero_data = tensor<fp16, [2]>([0x1p+0, -0x1p+1])"));
}

/// Scalars and small literals as model.mil files from Apple's compiler spell them.
#[test]
fn literal_spellings() {
    let d = Dialect::Modern;
    assert_eq!(text::print_value(&Value::int32(-1), d), "int32(-1)");
    assert_eq!(text::print_value(&Value::bool(false), d), "bool(false)");
    assert_eq!(text::print_value(&uint64(64), d), "uint64(64)");
    assert_eq!(
        text::print_value(&Value::string("valid"), d),
        r#"string("valid")"#
    );
    // layer-norm epsilon 1e-5 in fp16, as in `fp16 epsilon = const()[…, val = fp16(0x1.5p-17)]`
    assert_eq!(text::print_value(&fp16(1e-5), d), "fp16(0x1.5p-17)");
    assert_eq!(text::print_value(&fp16(-10.0), d), "fp16(-0x1.4p+3)");
    assert_eq!(text::print_value(&fp16(1.0), d), "fp16(0x1p+0)");
    assert_eq!(
        text::print_value(
            &inline(tt(DataType::Int32, &[2]), vec![1, 0, 0, 0, 1, 0, 0, 0]),
            d
        ),
        "tensor<int32, [2]>([1, 1])"
    );
    let dl = Dialect::Legacy;
    assert_eq!(
        text::print_value(&Value::int32(1), dl),
        "tensor<int32, []>(1)"
    );
    assert_eq!(
        text::print_value(&Value::string("x"), dl),
        r#"tensor<string, []>("x")"#
    );
    assert_eq!(
        text::print_type(&string_dict(&[]).ty, dl),
        "dict<tensor<string, []>, tensor<string, []>>"
    );
    assert_eq!(
        text::print_type(&string_dict(&[]).ty, d),
        "dict<string, string>"
    );
    assert_eq!(
        text::print_value(&string_dict(&[("a", "b"), ("c", "d")]), d),
        r#"dict<string, string>({{"a", "b"}, {"c", "d"}})"#
    );
    let flexible = ValueType::Tensor(TensorType {
        dtype: DataType::Int32,
        shape: Some(vec![Dim::Fixed(1), Dim::Unknown { variadic: false }]),
        attributes: BTreeMap::new(),
    });
    assert_eq!(text::print_type(&flexible, d), "tensor<int32, [1, ?]>");
}

// ------------------------------------------------------------------------------------------
// every data type
// ------------------------------------------------------------------------------------------

fn int_bytes(dtype: DataType, values: &[i128]) -> Vec<u8> {
    if dtype.is_sub_byte() {
        let bits = dtype.bits().unwrap();
        let packed: Vec<u8> = values
            .iter()
            .map(|&v| (v & ((1 << bits) - 1)) as u8)
            .collect();
        return subbyte::pack(&packed, bits);
    }
    let w = dtype.bits().unwrap() as usize / 8;
    values
        .iter()
        .flat_map(|v| v.to_le_bytes()[..w].to_vec())
        .collect()
}

/// Representative elements of every type: extremes of each integer range, and for floats
/// ±0, ±inf, the canonical NaN, a NaN with payload, the smallest subnormal and the largest
/// finite value (all as bit patterns).
fn samples(dtype: DataType) -> Value {
    use DataType as D;
    let shape = |k: usize| [2, (k / 2) as u64];
    match dtype {
        D::String => strings(
            tt(D::String, &[2, 2]),
            &["", "quote\" back\\slash", "tab\tnl\n\u{1}", "ünïcødé 🚀"],
        ),
        D::Bool => inline(tt(D::Bool, &[2, 2]), vec![0, 1, 1, 0]),
        d if d.is_int() => {
            let (lo, hi): (i128, i128) = match d {
                D::Int4 => (-8, 7),
                D::Int8 => (i8::MIN.into(), i8::MAX.into()),
                D::Int16 => (i16::MIN.into(), i16::MAX.into()),
                D::Int32 => (i32::MIN.into(), i32::MAX.into()),
                D::Int64 => (i64::MIN.into(), i64::MAX.into()),
                D::Uint64 => (0, u64::MAX.into()),
                d => (0, (1i128 << d.bits().unwrap()) - 1),
            };
            let vals = [lo, hi, 0, 1, hi / 2, lo / 2];
            inline(tt(d, &shape(vals.len())), int_bytes(d, &vals))
        }
        d => {
            let (w, patterns): (usize, Vec<u64>) = match d {
                D::Fp16 => (
                    2,
                    vec![
                        0, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7d01, 0x0001, 0x7bff, 0x3c00, 0xb555,
                    ],
                ),
                D::Bf16 => (
                    2,
                    vec![
                        0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x0001, 0x7f7f, 0x3f80, 0xbeef,
                    ],
                ),
                D::Fp32 => (
                    4,
                    vec![
                        0,
                        0x8000_0000,
                        0x7f80_0000,
                        0xff80_0000,
                        0x7fc0_0000,
                        0x7f80_0001,
                        1,
                        0x7f7f_ffff,
                        0x3dcc_cccd,
                        0xc2f6_e979,
                    ],
                ),
                D::Fp64 => (
                    8,
                    vec![
                        0,
                        1 << 63,
                        f64::INFINITY.to_bits(),
                        f64::NEG_INFINITY.to_bits(),
                        0x7ff8_0000_0000_0000,
                        0xfff0_0000_dead_beef,
                        1,
                        f64::MAX.to_bits(),
                        0.1f64.to_bits(),
                        (-1.0f64 / 3.0).to_bits(),
                    ],
                ),
                D::Fp8E4M3Fn => (
                    1,
                    vec![0, 0x80, 0x7f, 0xff, 0x01, 0x7e, 0xfe, 0x38, 0x3f, 0xc5],
                ),
                D::Fp8E5M2 => (
                    1,
                    vec![0, 0x80, 0x7c, 0xfc, 0x7e, 0x7f, 0x01, 0x7b, 0x3c, 0xc5],
                ),
                other => panic!("unexpected {other}"),
            };
            let bytes = patterns
                .iter()
                .flat_map(|b| b.to_le_bytes()[..w].to_vec())
                .collect();
            inline(tt(d, &shape(patterns.len())), bytes)
        }
    }
}

/// The first element of `samples(dtype)` as a scalar.
fn scalar_sample(dtype: DataType) -> Value {
    let v = samples(dtype);
    let ty = ValueType::scalar(dtype);
    match &v.data {
        ValueData::Tensor(TensorData {
            storage: Storage::Strings(s),
            ..
        }) => strings(ty, &[s[1].as_str()]),
        ValueData::Tensor(TensorData {
            storage: Storage::Bytes(b),
            ..
        }) => {
            let w = dtype.bits().unwrap().div_ceil(8) as usize;
            // For sub-byte types keep one packed element (the low bits of the first byte).
            let first = if dtype.is_sub_byte() {
                vec![b[0] & ((1 << dtype.bits().unwrap()) - 1)]
            } else {
                b[..w].to_vec()
            };
            inline(ty, first)
        }
        _ => unreachable!(),
    }
}

#[test]
fn every_data_type_round_trips_as_scalar_and_tensor() {
    let mut ops = Vec::new();
    for dtype in DataType::ALL {
        let tensor = samples(dtype);
        tensor.validate().unwrap();
        let scalar = scalar_sample(dtype);
        scalar.validate().unwrap();
        ops.push(const_op(&format!("t_{dtype}"), tensor));
        ops.push(const_op(&format!("s_{dtype}"), scalar));
    }
    let outputs: Vec<String> = ops.iter().map(|o| o.outputs[0].name.clone()).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let p = program(vec![("main", function("CoreML8", vec![], ops, &outputs))]);
    let (legacy, modern) = round_trip(&p, &no_weights());
    for expected in [
        "tensor<int4, [2, 3]>([[-8, 7, 0], [1, 3, -4]])",
        "tensor<uint1, [2, 3]>([[0, 1, 0], [1, 0, 0]])",
        "tensor<uint64, [2, 3]>([[0, 18446744073709551615, 0], [1, 9223372036854775807, 0]])",
        "tensor<int64, [2, 3]>([[-9223372036854775808, 9223372036854775807, 0], [1, 4611686018427387903, -4611686018427387904]])",
        "tensor<bool, [2, 2]>([[false, true], [true, false]])",
        r#"tensor<string, [2, 2]>([["", "quote\" back\\slash"], ["tab\tnl\n\x01", "ünïcødé 🚀"]])"#,
        "tensor<fp16, [2, 5]>([[0x0p+0, -0x0p+0, inf, -inf, nan], [nan(0x7d01), 0x1p-24, 0x1.ffcp+15, 0x1p+0, -0x1.554p-2]])",
        "tensor<fp8e4m3fn, [2, 5]>([[0x0p+0, -0x0p+0, nan, nan(0xff), 0x1p-9], [0x1.cp+8, -0x1.cp+8, 0x1p+0, 0x1.ep+0, -0x1.ap+1]])",
        "tensor<fp8e5m2, [2, 5]>([[0x0p+0, -0x0p+0, inf, -inf, nan], [nan(0x7f), 0x1p-16, 0x1.cp+15, 0x1p+0, -0x1.4p+2]])",
        "val = fp16(0x0p+0)",
        r#"string("quote\" back\\slash")"#,
    ] {
        assert!(modern.contains(expected), "missing {expected}\n{modern}");
    }
    assert!(legacy.contains("val = tensor<fp16, []>(0x0p+0)"));
    assert!(legacy.contains(r#"tensor<string, []>("quote\" back\\slash")"#));
}

// ------------------------------------------------------------------------------------------
// program structure
// ------------------------------------------------------------------------------------------

/// A program using every construct: two functions, state inputs, flexible dims, function
/// attributes (FlexibleShapeInformation as the compiler writes it), multiple outputs,
/// variadic tuple arguments, inline literal arguments, an op without outputs, `cond` and
/// `while_loop` with nested blocks, list/tuple/dict types and values.
fn kitchen_sink() -> Program {
    use DataType as D;
    let unknown = Dim::Unknown { variadic: false };
    let flex = ValueType::Tensor(TensorType {
        dtype: D::Int32,
        shape: Some(vec![Dim::Fixed(1), unknown]),
        attributes: BTreeMap::new(),
    });
    let state = ValueType::State(Box::new(tt(D::Fp16, &[1, 4])));
    let s = ValueType::scalar(D::String);
    let shape_list = ValueType::List {
        element: Box::new(tt(D::Int32, &[2])),
        length: unknown,
    };
    let range_dims = ValueType::Dict {
        key: Box::new(s.clone()),
        value: Box::new(shape_list.clone()),
    };
    let flex_info_ty =
        ValueType::Tuple(vec![ValueType::Tuple(vec![s.clone(), range_dims.clone()])]);
    let pair = |a: i32, b: i32| {
        inline(
            tt(D::Int32, &[2]),
            [a, b].iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    };
    let flex_info = Value {
        ty: flex_info_ty.clone(),
        data: ValueData::Tuple(vec![Value {
            ty: flex_info_ty_inner(&s, &range_dims),
            data: ValueData::Tuple(vec![
                Value::string("RangeDims"),
                Value {
                    ty: range_dims.clone(),
                    data: ValueData::Dict(vec![(
                        Value::string("input_ids"),
                        Value {
                            ty: shape_list.clone(),
                            data: ValueData::List(vec![pair(1, 1), pair(1, 64)]),
                            doc: String::new(),
                        },
                    )]),
                    doc: String::new(),
                },
            ]),
            doc: String::new(),
        }]),
        doc: String::new(),
    };

    let f16v = tt(D::Fp16, &[1, 4]);
    let half = tt(D::Fp16, &[1, 2]);
    let i = ValueType::scalar(D::Int32);
    let b = ValueType::scalar(D::Bool);
    let cond_op = {
        let mut o = op(
            "cond",
            "c",
            vec![nv("c", f16v.clone())],
            vec![("pred", n("p"))],
            vec![],
        );
        o.blocks = vec![
            Block {
                inputs: vec![],
                outputs: vec!["t".into()],
                operations: vec![op(
                    "relu",
                    "t",
                    vec![nv("t", f16v.clone())],
                    vec![("x", n("k_read"))],
                    vec![],
                )],
                attributes: BTreeMap::new(),
            },
            Block {
                inputs: vec![],
                outputs: vec!["k_read".into()],
                operations: vec![],
                attributes: BTreeMap::new(),
            },
        ];
        o
    };
    let loop_op = {
        let mut o = op(
            "while_loop",
            "loop",
            vec![nv("i_out", i.clone()), nv("x_out", f16v.clone())],
            vec![(
                "loop_vars",
                Argument(vec![Binding::Name("i0".into()), Binding::Name("c".into())]),
            )],
            vec![],
        );
        o.blocks = vec![
            Block {
                inputs: vec![nv("i_c", i.clone()), nv("x_c", f16v.clone())],
                outputs: vec!["go".into()],
                operations: vec![op(
                    "less",
                    "go",
                    vec![nv("go", b.clone())],
                    vec![("x", n("i_c")), ("y", lit(Value::int32(10)))],
                    vec![],
                )],
                attributes: BTreeMap::new(),
            },
            Block {
                inputs: vec![nv("i_b", i.clone()), nv("x_b", f16v.clone())],
                outputs: vec!["i_next".into(), "x_next".into()],
                operations: vec![
                    op(
                        "add",
                        "i_next",
                        vec![nv("i_next", i.clone())],
                        vec![("x", n("i_b")), ("y", lit(Value::int32(1)))],
                        vec![],
                    ),
                    op(
                        "mul",
                        "x_next",
                        vec![nv("x_next", f16v.clone())],
                        vec![("x", n("x_b")), ("y", lit(fp16(0.5)))],
                        vec![],
                    ),
                ],
                attributes: BTreeMap::new(),
            },
        ];
        o
    };
    let mut main = function(
        "CoreML8",
        vec![
            nv("input_ids", flex.clone()),
            nv("k", state.clone()),
            nv("p", b.clone()),
        ],
        vec![
            op(
                "read_state",
                "k_read",
                vec![nv("k_read", f16v.clone())],
                vec![("input", n("k"))],
                vec![],
            ),
            const_op("i0", Value::int32(0)),
            op(
                "split",
                "sp",
                vec![nv("a", half.clone()), nv("b", half.clone())],
                vec![
                    ("axis", lit(Value::int32(1))),
                    ("num_splits", lit(Value::int32(2))),
                    ("x", n("k_read")),
                ],
                vec![],
            ),
            op(
                "concat",
                "cc",
                vec![nv("cc", f16v.clone())],
                vec![
                    ("axis", lit(Value::int32(1))),
                    ("interleave", lit(Value::bool(false))),
                    (
                        "values",
                        Argument(vec![Binding::Name("b".into()), Binding::Name("a".into())]),
                    ),
                ],
                vec![],
            ),
            op(
                "write_state",
                "ws",
                vec![],
                vec![("data", n("cc")), ("input", n("k"))],
                vec![],
            ),
            cond_op,
            loop_op,
            const_op(
                "lst",
                Value {
                    ty: ValueType::List {
                        element: Box::new(ValueType::scalar(D::Fp32)),
                        length: Dim::Fixed(2),
                    },
                    data: ValueData::List(vec![Value::fp32(1.5), Value::fp32(-2.0)]),
                    doc: String::new(),
                },
            ),
            const_op(
                "tup",
                Value {
                    ty: ValueType::Tuple(vec![
                        ValueType::scalar(D::Int32),
                        s.clone(),
                        tt(D::Bool, &[3]),
                    ]),
                    data: ValueData::Tuple(vec![
                        Value::int32(7),
                        Value::string("seven"),
                        inline(tt(D::Bool, &[3]), vec![1, 0, 1]),
                    ]),
                    doc: String::new(),
                },
            ),
            const_op("dct", string_dict(&[("k1", "v1"), ("k2", "")])),
            const_op("empty", inline(tt(D::Fp32, &[3, 0]), vec![])),
            const_op(
                "empties",
                Value {
                    ty: ValueType::List {
                        element: Box::new(tt(D::Int8, &[2, 0])),
                        length: Dim::Fixed(2),
                    },
                    data: ValueData::List(vec![
                        inline(tt(D::Int8, &[2, 0]), vec![]),
                        inline(tt(D::Int8, &[0, 2]), vec![]),
                    ]),
                    doc: String::new(),
                },
            ),
        ],
        &["x_out", "a"],
    );
    main.attributes
        .insert("FlexibleShapeInformation".into(), flex_info);
    let other = function(
        "CoreML7",
        vec![nv(
            "x",
            ValueType::Tensor(TensorType {
                dtype: D::Fp32,
                shape: Some(vec![Dim::Unknown { variadic: true }]),
                attributes: BTreeMap::new(),
            }),
        )],
        vec![op(
            "identity",
            "y",
            vec![nv(
                "y",
                ValueType::Tensor(TensorType {
                    dtype: D::Fp32,
                    shape: None,
                    attributes: BTreeMap::new(),
                }),
            )],
            vec![("x", n("x"))],
            vec![],
        )],
        &["y"],
    );
    let mut p = program(vec![("main", main), ("other", other)]);
    p.attributes.insert(
        "buildInfo".into(),
        string_dict(&[
            ("coremlc-version", "3505.4.1"),
            ("coremltools-version", "9.0"),
        ]),
    );
    p
}

fn flex_info_ty_inner(s: &ValueType, range_dims: &ValueType) -> ValueType {
    ValueType::Tuple(vec![s.clone(), range_dims.clone()])
}

#[test]
fn every_construct_round_trips() {
    let p = kitchen_sink();
    let (legacy, modern) = round_trip(&p, &no_weights());
    for expected in [
        "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}, {\"coremltools-version\", \"9.0\"}})]\n{\n",
        "    func main<ios18>(tensor<int32, [1, ?]> input_ids, state<tensor<fp16, [1, 4]>> k, bool p) [FlexibleShapeInformation = tuple<tuple<string, dict<string, list<tensor<int32, [2]>, ?>>>>(((\"RangeDims\", {{\"input_ids\", [[1, 1], [1, 64]]}})))] {\n",
        "            tensor<fp16, [1, 2]> a, tensor<fp16, [1, 2]> b = split(axis = int32(1), num_splits = int32(2), x = k_read)[name = string(\"sp\")];\n",
        "concat(axis = int32(1), interleave = bool(false), values = (b, a))[name = string(\"cc\")];",
        "            write_state(data = cc, input = k)[name = string(\"ws\")];\n",
        "            tensor<fp16, [1, 4]> c = cond(pred = p)[name = string(\"c\")] {\n                    tensor<fp16, [1, 4]> t = relu(x = k_read)[name = string(\"t\")];\n                } -> (t) {\n                } -> (k_read);\n",
        "while_loop(loop_vars = (i0, c))[name = string(\"loop\")] (int32 i_c, tensor<fp16, [1, 4]> x_c) {\n",
        "                } -> (i_next, x_next);\n",
        "list<fp32, 2> lst = const()[name = string(\"lst\"), val = list<fp32, 2>([0x1.8p+0, -0x1p+1])];",
        "val = tuple<int32, string, tensor<bool, [3]>>((7, \"seven\", [true, false, true]))",
        "val = tensor<fp32, [3, 0]>([[], [], []])",
        "val = list<tensor<int8, [2, 0]>, 2>([[[], []], tensor<int8, [0, 2]>([])])",
        "        } -> (x_out, a);\n    func other<ios17>(tensor<fp32, [?*]> x) {\n            tensor<fp32, *> y = identity(x = x)[name = string(\"y\")];\n",
    ] {
        assert!(
            modern.contains(expected),
            "missing:\n{expected}\n--- in ---\n{modern}"
        );
    }
    assert!(
        legacy.starts_with(
            "program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>("
        )
    );
    assert!(legacy.contains("tensor<int32, []> i_out, tensor<fp16, [1, 4]> x_out = while_loop("));
    assert_eq!(Dialect::for_program(&p), Dialect::Modern);
    assert_eq!(Dialect::detect(&modern), Some(Dialect::Modern));
}

/// IR content Apple's syntax has no place for prints with anekit annotations and comes back
/// equal; with `extensions: false` the text carries only Apple's syntax.
#[test]
fn anekit_extensions_round_trip() {
    use DataType as D;
    let mut p = kitchen_sink();
    p.doc = "a \"doc\"\nline two".into();
    p.version = 7;
    let f = p.functions.get_mut("main").unwrap();
    // Weird names and a verbatim opset string.
    f.blocks.insert(
        "ios17".into(),
        Block {
            inputs: vec![nv("blk in", ValueType::scalar(D::Int8))],
            outputs: vec!["blk in".into()],
            operations: vec![],
            attributes: BTreeMap::from([("battr".to_string(), Value::int32(3))]),
        },
    );
    let blk = f.block_mut().unwrap();
    let mut documented = Value::fp32_tensor(&[2, 0, 3], &[]);
    documented.doc = "doc of a value".into();
    let mut typed_attr = TensorType::new(D::Fp16, &[2]);
    typed_attr.attributes.insert("k".into(), Value::string("v"));
    let mut weird = op(
        "my op",
        "1st",
        vec![nv("out-1", ValueType::Tensor(typed_attr.clone()))],
        vec![("a b", n("weird name")), ("c", lit(documented))],
        vec![
            (
                "blob_no_ref",
                inline_with(
                    tt(D::Int8, &[2]),
                    vec![1, 2],
                    Placement::Blob { source: None },
                ),
            ),
            ("auto", Value::int32_tensor(&[3], &[1, 2, 3])),
            (
                "none",
                Value {
                    ty: tt(D::Fp16, &[4]),
                    data: ValueData::None,
                    doc: String::new(),
                },
            ),
            ("bools", inline(tt(D::Bool, &[2]), vec![2, 255])),
            (
                "list_typed",
                Value {
                    ty: ValueType::List {
                        element: Box::new(tt(D::Int32, &[2])),
                        length: Dim::Unknown { variadic: false },
                    },
                    // Elements whose type differs from the list's element type print typed.
                    data: ValueData::List(vec![
                        Value::int32(5),
                        Value::fp32_tensor(&[0, 2], &[]),
                        inline(tt(D::Int32, &[1, 2]), vec![1, 0, 0, 0, 2, 0, 0, 0]),
                    ]),
                    doc: String::new(),
                },
            ),
            (
                "tuple_extra",
                Value {
                    ty: ValueType::Tuple(vec![ValueType::scalar(D::Int32)]),
                    data: ValueData::Tuple(vec![Value::int32(1), Value::string("extra")]),
                    doc: String::new(),
                },
            ),
        ],
    );
    weird.attributes.insert("name".into(), Value::string("1st"));
    blk.operations.push(weird);
    blk.attributes
        .insert("block_attr".into(), Value::bool(true));
    p.functions
        .insert("odd\tname".into(), function("ios18", vec![], vec![], &[]));
    p.functions.insert(
        "no_block".into(),
        Function {
            inputs: vec![],
            opset: "CoreML9".into(),
            blocks: BTreeMap::new(),
            attributes: BTreeMap::new(),
        },
    );
    let (_, modern) = round_trip(&p, &no_weights());
    for expected in [
        "program(7.3) @doc(\"a \\\"doc\\\"\\nline two\")\n",
        "tensor<fp16, [2], [k = string(\"v\")]> `out-1` = `my op`(`a b` = `weird name`, c = @doc(\"doc of a value\") @auto tensor<fp32, [2, 0, 3]>([]))",
        "auto = @auto tensor<int32, [3]>([1, 2, 3])",
        "blob_no_ref = @blob tensor<int8, [2]>([1, 2])",
        "bools = tensor<bool, [2]>([2, 255])",
        "none = tensor<fp16, [4]>()",
        "list_typed = list<tensor<int32, [2]>, ?>([5, @auto tensor<fp32, [0, 2]>([]), [[1, 2]]])",
        "tuple_extra = tuple<int32>((1, string(\"extra\")))",
        "} -> (x_out, a) [block_attr = bool(true)] <`ios17`> (int8 `blk in`) {\n        } -> (`blk in`) [battr = int32(3)];",
        "func `odd\\tname`<`ios18`>() {",
        "func no_block<ios26>();",
    ] {
        assert!(
            modern.contains(expected),
            "missing:\n{expected}\n--- in ---\n{modern}"
        );
    }
    // Apple-only text: no annotations, no extra specializations.
    let plain = text::print_with(
        &p,
        &PrintOptions {
            dialect: Some(Dialect::Modern),
            extensions: false,
        },
    );
    assert!(!plain.contains('@'), "{plain}");
    assert!(!plain.contains("`ios17`"));
    assert!(plain.contains("tensor<fp16, [2]> `out-1`"));
    let back = text::parse(&plain, "plain.mil", &no_weights()).unwrap();
    assert_ne!(back, p);
    assert!(back.doc.is_empty());
}

fn inline_with(ty: ValueType, bytes: Vec<u8>, placement: Placement) -> Value {
    Value {
        ty,
        data: ValueData::Tensor(TensorData {
            storage: Storage::Bytes(bytes.into()),
            placement,
        }),
        doc: String::new(),
    }
}

/// Text written by hand for Apple's compiler (no spaces around `=`, compact shapes, decimal
/// floats, flat literals of multi-dimensional tensors, a bare element for a one-element
/// tensor) parses to the same program as the canonical spelling.
#[test]
fn lenient_spellings_parse() {
    let loose = r#"program(1.3)
[buildInfo = dict<string, string>({})]
{
  func main<ios18>(tensor<fp16, [1,64,1,1]> x) {
    string pt = const()[name=string("pt"), val=string("valid")];
    tensor<int32, [2,2]> m = const()[name=string("m"), val=tensor<int32, [2,2]>([1,2,3,4])];
    tensor<int32, [1]> ax = const()[name=string("ax"), val=tensor<int32, [1]>(-1)];
    fp16 e = const()[name=string("e"), val=fp16(1e-5)];
    fp16 h = const()[name=string("h"), val=fp16(0.5)];
    tensor<fp16, [1,64,1,1]> y = mul(x=x,y=h)[name=string("y")];
  } -> (y);
}"#;
    let canonical = r#"program(1.3)
[buildInfo = dict<string, string>({})]
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 1]> x) {
            string pt = const()[name = string("pt"), val = string("valid")];
            tensor<int32, [2, 2]> m = const()[name = string("m"), val = tensor<int32, [2, 2]>([[1, 2], [3, 4]])];
            tensor<int32, [1]> ax = const()[name = string("ax"), val = tensor<int32, [1]>([-1])];
            fp16 e = const()[name = string("e"), val = fp16(0x1.5p-17)];
            fp16 h = const()[name = string("h"), val = fp16(0x1p-1)];
            tensor<fp16, [1, 64, 1, 1]> y = mul(x = x, y = h)[name = string("y")];
        } -> (y);
}
"#;
    let a = text::parse_without_weights(loose, "loose.mil").unwrap();
    let b = text::parse_without_weights(canonical, "canonical.mil").unwrap();
    assert_eq!(a, b);
    assert_eq!(text::print(&a), canonical);
    // The function attributes of a compiled flexible-shape model (quoted, reduced to the
    // header, in FluidAudio's KokoroAneModelCompatibilityTests.swift).
    let flexible = "program(1.0) {\n    func main<ios17>(tensor<int32, [1, ?]> input_ids)\n        [FlexibleShapeInformation = tuple<tuple<tensor<string, []>>>()] {\n    } -> ();\n}\n";
    let p = text::parse_without_weights(flexible, "flex.mil").unwrap();
    let f = &p.functions["main"];
    assert_eq!(f.opset, "CoreML7");
    assert_eq!(
        f.inputs[0].ty.as_tensor().unwrap().shape,
        Some(vec![Dim::Fixed(1), Dim::Unknown { variadic: false }])
    );
    assert_eq!(
        f.attributes["FlexibleShapeInformation"].data,
        ValueData::None
    );
}
