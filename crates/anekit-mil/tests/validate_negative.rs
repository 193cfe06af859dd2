//! Validation of hand-built programs: each kind of problem gives a diagnostic naming the
//! function, the op and the parameter; a correct program gives none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use anekit_mil::program::{Argument, Binding, Block, Function, Operation, Program};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};
use anekit_mil::validate::{Diagnostic, DiagnosticKind, check, validate};
use anekit_mil::value::Value;

fn t(dtype: DataType, shape: &[u64]) -> ValueType {
    ValueType::tensor(dtype, shape)
}

fn op(
    op_type: &str,
    name: &str,
    inputs: &[(&str, Binding)],
    outputs: &[(&str, ValueType)],
) -> Operation {
    let mut o = Operation::new(op_type);
    o.attributes.insert("name".into(), Value::string(name));
    for (k, b) in inputs {
        o.inputs.insert(k.to_string(), Argument(vec![b.clone()]));
    }
    o.outputs = outputs
        .iter()
        .map(|(n, ty)| NamedValueType::new(*n, ty.clone()))
        .collect();
    o
}

fn name(n: &str) -> Binding {
    Binding::Name(n.into())
}

fn konst(name: &str, v: Value) -> Operation {
    let ty = v.ty.clone();
    let mut o = op("const", name, &[], &[(name, ty)]);
    o.attributes.insert("val".into(), v);
    o
}

fn program(
    opset: &str,
    inputs: Vec<NamedValueType>,
    ops: Vec<Operation>,
    outputs: &[&str],
) -> Program {
    let block = Block {
        inputs: vec![],
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        operations: ops,
        attributes: BTreeMap::new(),
    };
    let f = Function {
        inputs,
        opset: opset.into(),
        blocks: BTreeMap::from([(opset.to_string(), block)]),
        attributes: BTreeMap::new(),
    };
    Program {
        version: 1,
        functions: BTreeMap::from([("main".to_string(), f)]),
        ..Default::default()
    }
}

/// x (1, 3, 8, 8) fp32 → conv(3→4, 3×3) → relu → y
fn good_ops() -> Vec<Operation> {
    vec![
        konst("w", Value::fp32_tensor(&[4, 3, 3, 3], &[0.0; 108])),
        op(
            "conv",
            "conv_0",
            &[("x", name("x")), ("weight", name("w"))],
            &[("c", t(DataType::Fp32, &[1, 4, 6, 6]))],
        ),
        op(
            "relu",
            "relu_0",
            &[("x", name("c"))],
            &[("y", t(DataType::Fp32, &[1, 4, 6, 6]))],
        ),
    ]
}

fn input() -> Vec<NamedValueType> {
    vec![NamedValueType::new("x", t(DataType::Fp32, &[1, 3, 8, 8]))]
}

fn only(p: &Program) -> Diagnostic {
    let r = check(p);
    assert_eq!(
        r.diagnostics.len(),
        1,
        "expected one diagnostic, got {:#?}",
        r.diagnostics
    );
    r.diagnostics.into_iter().next().unwrap()
}

#[test]
fn a_correct_program_validates() {
    let p = program("CoreML5", input(), good_ops(), &["y"]);
    validate(&p).unwrap();
    let r = check(&p);
    assert_eq!((r.ops, r.outputs_compared), (3, 3));
    assert!(r.unverified.is_empty() && r.imprecise.is_empty());
}

#[test]
fn wrong_input_dtype() {
    let mut p = program(
        "CoreML5",
        vec![NamedValueType::new("x", t(DataType::Int32, &[1, 3, 8, 8]))],
        good_ops(),
        &["y"],
    );
    let d = only(&p);
    assert_eq!(d.kind, DiagnosticKind::WrongType);
    assert_eq!(
        (
            d.function.as_str(),
            d.op.as_deref(),
            d.op_type.as_deref(),
            d.param.as_deref()
        ),
        ("main", Some("conv_0"), Some("conv"), Some("x"))
    );
    assert!(
        d.to_string()
            .contains("function main / op conv_0 (conv) / x"),
        "{d}"
    );
    // mixing fp16 and fp32 within one type domain
    p.functions.get_mut("main").unwrap().inputs =
        vec![NamedValueType::new("x", t(DataType::Fp16, &[1, 3, 8, 8]))];
    let d = only(&p);
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::WrongType, Some("conv_0"), Some("weight"))
    );
}

#[test]
fn missing_and_unknown_params() {
    let mut ops = good_ops();
    ops[1].inputs.remove("weight");
    let d = only(&program("CoreML5", input(), ops, &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::MissingParam, Some("conv_0"), Some("weight"))
    );
    let mut ops = good_ops();
    ops[2].inputs.insert(
        "alpha".into(),
        Argument(vec![Binding::Value(Value::fp32(1.0))]),
    );
    let d = only(&program("CoreML5", input(), ops, &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::UnknownParam, Some("relu_0"), Some("alpha"))
    );
    // two bindings for a non-variadic parameter
    let mut ops = good_ops();
    ops[2]
        .inputs
        .insert("x".into(), Argument(vec![name("c"), name("c")]));
    let d = only(&program("CoreML5", input(), ops, &["y"]));
    assert_eq!(
        (d.kind, d.param.as_deref()),
        (DiagnosticKind::WrongType, Some("x"))
    );
}

#[test]
fn unknown_op_and_op_of_a_later_opset() {
    let mut ops = good_ops();
    ops[2].op_type = "relu7".into();
    let d = only(&program("CoreML5", input(), ops, &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.op_type.as_deref()),
        (DiagnosticKind::UnknownOp, Some("relu_0"), Some("relu7"))
    );
    // slice_update exists only from iOS18
    let ops = vec![op(
        "slice_update",
        "su",
        &[
            ("x", name("x")),
            ("update", name("x")),
            ("begin", Binding::Value(Value::int32_tensor(&[4], &[0; 4]))),
            (
                "end",
                Binding::Value(Value::int32_tensor(&[4], &[1, 3, 8, 8])),
            ),
        ],
        &[("y", t(DataType::Fp32, &[1, 3, 8, 8]))],
    )];
    let d = only(&program("CoreML7", input(), ops.clone(), &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref()),
        (DiagnosticKind::UnknownOp, Some("su"))
    );
    assert!(d.message.contains("iOS18"), "{d}");
    validate(&program("CoreML8", input(), ops, &["y"])).unwrap();
    // an opset this crate does not know
    let d = only(&program("CoreML99", input(), good_ops(), &["y"]));
    assert_eq!(d.kind, DiagnosticKind::Opset);
}

#[test]
fn use_before_def_and_duplicates() {
    let mut ops = good_ops();
    ops.swap(1, 2); // relu uses `c` before conv defines it
    let d = only(&program("CoreML5", input(), ops, &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::UndefinedName, Some("relu_0"), Some("x"))
    );
    // a function output that is never defined
    let d = only(&program("CoreML5", input(), good_ops(), &["z"]));
    assert_eq!(
        (d.kind, d.param.as_deref()),
        (DiagnosticKind::UndefinedName, Some("z"))
    );
    // the same name defined twice
    let mut ops = good_ops();
    ops[2].outputs[0].name = "c".into();
    let d = only(&program("CoreML5", input(), ops, &["c"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::DuplicateName, Some("relu_0"), Some("c"))
    );
}

#[test]
fn constant_required() {
    // linear.weight must be a compile-time constant
    let ops = vec![op(
        "linear",
        "fc",
        &[("x", name("x")), ("weight", name("x"))],
        &[("y", t(DataType::Fp32, &[4, 4]))],
    )];
    let d = only(&program(
        "CoreML5",
        vec![NamedValueType::new("x", t(DataType::Fp32, &[4, 4]))],
        ops,
        &["y"],
    ));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::NotConstant, Some("fc"), Some("weight"))
    );
    // an op computed only from constants is constant (coremltools is_descendant_of_const)
    let ops = vec![
        konst("w16", {
            let bytes = vec![0u8; 32];
            Value::tensor_bytes(
                TensorType::new(DataType::Fp16, &[4, 4]),
                bytes,
                anekit_mil::Placement::Inline,
            )
        }),
        op(
            "cast",
            "w_cast",
            &[
                ("x", name("w16")),
                ("dtype", Binding::Value(Value::string("fp32"))),
            ],
            &[("w", t(DataType::Fp32, &[4, 4]))],
        ),
        op(
            "linear",
            "fc",
            &[("x", name("x")), ("weight", name("w"))],
            &[("y", t(DataType::Fp32, &[4, 4]))],
        ),
    ];
    validate(&program(
        "CoreML5",
        vec![NamedValueType::new("x", t(DataType::Fp32, &[4, 4]))],
        ops,
        &["y"],
    ))
    .unwrap();
}

#[test]
fn declared_output_type_mismatch() {
    let mut ops = good_ops();
    ops[1].outputs[0].ty = t(DataType::Fp32, &[1, 4, 8, 8]);
    ops[2].outputs[0].ty = t(DataType::Fp32, &[1, 4, 8, 8]);
    let r = check(&program("CoreML5", input(), ops, &["y"]));
    // conv is wrong; relu is checked against conv's declared output and agrees
    assert_eq!(r.diagnostics.len(), 1, "{:#?}", r.diagnostics);
    let d = &r.diagnostics[0];
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::OutputType, Some("conv_0"), Some("c"))
    );
    // wrong output dtype and wrong output count
    let mut ops = good_ops();
    ops[2].outputs[0].ty = t(DataType::Fp16, &[1, 4, 6, 6]);
    assert_eq!(
        only(&program("CoreML5", input(), ops, &["y"])).kind,
        DiagnosticKind::OutputType
    );
    let mut ops = good_ops();
    ops[2]
        .outputs
        .push(NamedValueType::new("y2", t(DataType::Fp32, &[1])));
    assert_eq!(
        only(&program("CoreML5", input(), ops, &["y"])).kind,
        DiagnosticKind::OutputCount
    );
    // unknown dims are compatible
    let mut ops = good_ops();
    ops[2].outputs[0].ty = ValueType::Tensor(TensorType {
        dtype: DataType::Fp32,
        shape: Some(vec![
            anekit_mil::Dim::Fixed(1),
            anekit_mil::Dim::Unknown { variadic: false },
            anekit_mil::Dim::Fixed(6),
            anekit_mil::Dim::Fixed(6),
        ]),
        attributes: BTreeMap::new(),
    });
    validate(&program("CoreML5", input(), ops, &["y"])).unwrap();
}

#[test]
fn invalid_arguments_and_literals() {
    // a kernel larger than the input: no valid output type
    let mut ops = good_ops();
    ops[0] = konst("w", Value::fp32_tensor(&[4, 3, 9, 9], &[0.0; 972]));
    let r = check(&program("CoreML5", input(), ops, &["y"]));
    assert!(
        r.diagnostics.iter().any(
            |d| d.kind == DiagnosticKind::InvalidArguments && d.op.as_deref() == Some("conv_0")
        ),
        "{:#?}",
        r.diagnostics
    );
    // a literal whose data does not match its type
    let mut ops = good_ops();
    ops[0] = konst(
        "w",
        Value::tensor_bytes(
            TensorType::new(DataType::Fp32, &[4, 3, 3, 3]),
            vec![0u8; 7],
            anekit_mil::Placement::Inline,
        ),
    );
    let r = check(&program("CoreML5", input(), ops, &["y"]));
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.kind == DiagnosticKind::InvalidLiteral && d.param.as_deref() == Some("val")),
        "{:#?}",
        r.diagnostics
    );
}

/// `cond` with two branches: names of a branch are not visible after the op or in the
/// other branch; the outer scope is visible inside.
#[test]
fn nested_block_scoping() {
    let scalar = || t(DataType::Fp32, &[1]);
    let branch = |src: &str, out: &str| Block {
        inputs: vec![],
        outputs: vec![out.into()],
        operations: vec![op("relu", out, &[("x", name(src))], &[(out, scalar())])],
        attributes: BTreeMap::new(),
    };
    let make = |true_src: &str, false_src: &str, after: &str| {
        let mut c = op("cond", "c0", &[("pred", name("p"))], &[("r", scalar())]);
        c.blocks = vec![branch(true_src, "t"), branch(false_src, "f")];
        let ops = vec![
            c,
            op("relu", "after", &[("x", name(after))], &[("y", scalar())]),
        ];
        program(
            "CoreML5",
            vec![
                NamedValueType::new("x", scalar()),
                NamedValueType::new("p", ValueType::scalar(DataType::Bool)),
            ],
            ops,
            &["y"],
        )
    };
    validate(&make("x", "x", "r")).unwrap();
    // the false branch uses the true branch's value
    let d = only(&make("x", "t", "r"));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (DiagnosticKind::UndefinedName, Some("f"), Some("x"))
    );
    // a branch value used after the cond
    let d = only(&make("x", "x", "t"));
    assert_eq!(
        (d.kind, d.op.as_deref()),
        (DiagnosticKind::UndefinedName, Some("after"))
    );
    // a cond without its blocks
    let mut p = make("x", "x", "r");
    p.functions
        .get_mut("main")
        .unwrap()
        .block_mut()
        .unwrap()
        .operations[0]
        .blocks
        .pop();
    let r = check(&p);
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.kind == DiagnosticKind::Blocks && d.op.as_deref() == Some("c0")),
        "{:#?}",
        r.diagnostics
    );
}

/// `while_loop`: block inputs per loop variable; body outputs define the op's outputs.
#[test]
fn while_loop_blocks() {
    let i32s = || ValueType::scalar(DataType::Int32);
    let cond_block = Block {
        inputs: vec![NamedValueType::new("i_c", i32s())],
        outputs: vec!["lt".into()],
        operations: vec![op(
            "less",
            "lt",
            &[("x", name("i_c")), ("y", name("n"))],
            &[("lt", ValueType::scalar(DataType::Bool))],
        )],
        attributes: BTreeMap::new(),
    };
    let body_block = Block {
        inputs: vec![NamedValueType::new("i_b", i32s())],
        outputs: vec!["inc".into()],
        operations: vec![op(
            "add",
            "inc",
            &[("x", name("i_b")), ("y", Binding::Value(Value::int32(1)))],
            &[("inc", i32s())],
        )],
        attributes: BTreeMap::new(),
    };
    let mut w = op(
        "while_loop",
        "loop",
        &[("loop_vars", name("i0"))],
        &[("out", i32s())],
    );
    w.blocks = vec![cond_block, body_block];
    let p = program(
        "CoreML5",
        vec![
            NamedValueType::new("i0", i32s()),
            NamedValueType::new("n", i32s()),
        ],
        vec![w.clone()],
        &["out"],
    );
    validate(&p).unwrap();
    let mut bad = w;
    bad.blocks[1].inputs[0].ty = ValueType::scalar(DataType::Fp32);
    let r = check(&program(
        "CoreML5",
        vec![
            NamedValueType::new("i0", i32s()),
            NamedValueType::new("n", i32s()),
        ],
        vec![bad],
        &["out"],
    ));
    assert!(
        r.diagnostics
            .iter()
            .any(|d| d.kind == DiagnosticKind::Blocks && d.param.as_deref() == Some("loop_vars")),
        "{:#?}",
        r.diagnostics
    );
}

/// iOS16 constexpr ops carry their parameters as attributes.
#[test]
fn constexpr_attribute_parameters() {
    let mut cx = op(
        "constexpr_cast",
        "w_fp32",
        &[],
        &[("w", t(DataType::Fp32, &[4, 4]))],
    );
    cx.attributes.insert(
        "source_val".into(),
        Value::tensor_bytes(
            TensorType::new(DataType::Fp16, &[4, 4]),
            vec![0u8; 32],
            anekit_mil::Placement::Inline,
        ),
    );
    cx.attributes
        .insert("output_dtype".into(), Value::string("fp32"));
    let ops = vec![
        cx.clone(),
        op(
            "linear",
            "fc",
            &[("x", name("x")), ("weight", name("w"))],
            &[("y", t(DataType::Fp32, &[2, 4]))],
        ),
    ];
    let inputs = vec![NamedValueType::new("x", t(DataType::Fp32, &[2, 4]))];
    validate(&program("CoreML6", inputs.clone(), ops.clone(), &["y"])).unwrap();
    // the iOS16 form is still valid in iOS17 (no iOS17 revision)
    validate(&program("CoreML7", inputs.clone(), ops, &["y"])).unwrap();
    // without source_val
    let mut missing = cx;
    missing.attributes.remove("source_val");
    let ops = vec![
        missing,
        op(
            "linear",
            "fc",
            &[("x", name("x")), ("weight", name("w"))],
            &[("y", t(DataType::Fp32, &[2, 4]))],
        ),
    ];
    let d = only(&program("CoreML6", inputs, ops, &["y"]));
    assert_eq!(
        (d.kind, d.op.as_deref(), d.param.as_deref()),
        (
            DiagnosticKind::MissingParam,
            Some("w_fp32"),
            Some("source_val")
        )
    );
}
