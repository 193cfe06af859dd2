//! CPU kernels of the random and classify ops, and the recurrent, image-resizing and
//! constexpr kernels on malformed arguments (errors naming the problem, never a panic or an
//! abort). The oracle cases of the recurrent, image-resizing and quantization families —
//! `tests/data/misc/*.json`, PyTorch / NumPy / coremltools values made by `make_misc.py` —
//! run in `tests/cases.rs`, through the test kit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_mil::program::Opset;
use anekit_mil::types::{DataType, TensorType, ValueType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::cpu::value::Value;

mod common;
use common::{Bound, f64_of, le_bytes, run_one_op, value_of};

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

/// One argument of a test op.
#[derive(Clone, Debug)]
enum In {
    /// A function input with this value.
    Runtime(Value, TensorType),
    /// A literal.
    Lit(MilValue),
}

/// A literal tensor of `dtype`.
fn lit(dtype: DataType, shape: &[usize], data: &[f64]) -> In {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    In::Lit(MilValue::tensor_bytes(
        TensorType::new(dtype, &shape),
        le_bytes(dtype, data),
        Placement::Inline,
    ))
}

/// A run-time f32 (or `dtype`) tensor.
fn rt(dtype: DataType, shape: &[usize], data: &[f64]) -> In {
    let ty = TensorType::new(dtype, &shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
    In::Runtime(value_of(dtype, shape, data), ty)
}

fn s(v: &str) -> In {
    In::Lit(MilValue::string(v))
}
fn b(v: bool) -> In {
    In::Lit(MilValue::bool(v))
}
fn i32s(v: i32) -> In {
    In::Lit(MilValue::int32(v))
}
fn f32s(v: f32) -> In {
    In::Lit(MilValue::fp32(v))
}

/// Build a one-op function, compile it for the CPU backend and run it.
fn run_op(op_type: &str, opset: Opset, args: &[(&str, In)]) -> Result<Vec<Value>, String> {
    run_op_with(op_type, opset, args, None)
}

/// [`run_op`]; with `untyped: Some(n)` the op declares `n` outputs of unknown shape instead of
/// the inferred types (to reach the kernel's own checks with arguments inference refuses).
fn run_op_with(
    op_type: &str,
    opset: Opset,
    args: &[(&str, In)],
    untyped: Option<usize>,
) -> Result<Vec<Value>, String> {
    let args: Vec<(String, Vec<Bound>)> = args
        .iter()
        .map(|(param, a)| {
            let bound = match a {
                In::Runtime(v, ty) => Bound::Input(v.clone(), ty.clone()),
                In::Lit(v) => Bound::Literal(v.clone()),
            };
            (param.to_string(), vec![bound])
        })
        .collect();
    run_one_op(op_type, opset, &args, untyped)
}

// ------------------------------------------------------------------------------------------
// Random: distribution statistics and determinism (values are not Core ML's bit for bit).
// ------------------------------------------------------------------------------------------

fn floats(v: &Value) -> Vec<f64> {
    f64_of(v).1
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n)
}

fn shape_arg(dims: &[i32]) -> In {
    lit(
        DataType::Int32,
        &[dims.len()],
        &dims.iter().map(|&d| f64::from(d)).collect::<Vec<_>>(),
    )
}

#[test]
fn random_uniform_statistics_and_seed() {
    let n = 200_000;
    let run = |seed: i32, opset| {
        run_op(
            "random_uniform",
            opset,
            &[
                ("shape", rt(DataType::Int32, &[2], &[400.0, 500.0])),
                ("low", f32s(-2.0)),
                ("high", f32s(3.0)),
                ("seed", i32s(seed)),
            ],
        )
        .unwrap()
    };
    let a = run(42, Opset::Ios15);
    assert_eq!(a[0].shape(), &[400, 500]);
    let v = floats(&a[0]);
    assert_eq!(v.len(), n);
    assert!(
        v.iter().all(|&x| (-2.0..3.0).contains(&x)),
        "outside [low, high)"
    );
    let (m, var) = mean_var(&v);
    // Uniform(-2, 3): mean 0.5, variance 25/12; 5 standard errors.
    assert!(
        (m - 0.5).abs() < 5.0 * (25.0f64 / 12.0 / n as f64).sqrt(),
        "mean {m}"
    );
    assert!((var - 25.0 / 12.0).abs() < 0.03, "variance {var}");
    // Ten equal bins each hold about a tenth.
    let mut bins = [0usize; 10];
    for x in &v {
        bins[(((x + 2.0) / 0.5) as usize).min(9)] += 1;
    }
    for c in bins {
        assert!((c as f64 / n as f64 - 0.1).abs() < 0.005, "bins {bins:?}");
    }
    // Same seed, same values (also across opsets); another seed, other values.
    assert_eq!(a, run(42, Opset::Ios18));
    assert_ne!(a, run(7, Opset::Ios15));
}

#[test]
fn random_normal_statistics_and_seed() {
    let run = |seed: Option<i32>| {
        let mut args = vec![
            ("shape", shape_arg(&[100_000])),
            ("mean", f32s(1.5)),
            ("stddev", f32s(0.5)),
        ];
        if let Some(s) = seed {
            args.push(("seed", i32s(s)));
        }
        run_op("random_normal", Opset::Ios15, &args).unwrap()
    };
    let a = run(Some(3));
    let v = floats(&a[0]);
    let (m, var) = mean_var(&v);
    assert!(
        (m - 1.5).abs() < 5.0 * 0.5 / (v.len() as f64).sqrt(),
        "mean {m}"
    );
    assert!((var - 0.25).abs() < 0.005, "variance {var}");
    // About 68.3% within one standard deviation, 95.4% within two.
    let within =
        |k: f64| v.iter().filter(|x| (*x - 1.5).abs() < k * 0.5).count() as f64 / v.len() as f64;
    assert!((within(1.0) - 0.6827).abs() < 0.006, "{}", within(1.0));
    assert!((within(2.0) - 0.9545).abs() < 0.004, "{}", within(2.0));
    assert_eq!(a, run(Some(3)));
    // The default seed (-1) draws fresh values each prediction.
    assert_ne!(run(None), run(None));
}

#[test]
fn random_bernoulli_statistics_and_seed() {
    let run = |p: f32, seed: i32| {
        run_op(
            "random_bernoulli",
            Opset::Ios16,
            &[
                ("shape", shape_arg(&[50, 2000])),
                ("prob", f32s(p)),
                ("seed", i32s(seed)),
            ],
        )
        .unwrap()
    };
    for p in [0.0f32, 0.2, 0.5, 1.0] {
        let v = floats(&run(p, 11)[0]);
        assert!(v.iter().all(|&x| x == 0.0 || x == 1.0));
        let frac = v.iter().sum::<f64>() / v.len() as f64;
        let se = (f64::from(p) * (1.0 - f64::from(p)) / v.len() as f64).sqrt();
        assert!(
            (frac - f64::from(p)).abs() <= 5.0 * se + 1e-12,
            "p {p}: {frac}"
        );
    }
    assert_eq!(run(0.3, 5), run(0.3, 5));
    // Default prob is 0.5.
    let d = run_op(
        "random_bernoulli",
        Opset::Ios15,
        &[("shape", shape_arg(&[100_000])), ("seed", i32s(1))],
    )
    .unwrap();
    let frac = floats(&d[0]).iter().sum::<f64>() / 100_000.0;
    assert!((frac - 0.5).abs() < 0.01, "{frac}");
}

#[test]
fn random_categorical_statistics_and_seed() {
    // Two distributions of four classes, given as probabilities and as logits.
    let p = [[0.1, 0.2, 0.3, 0.4], [0.7, 0.0, 0.05, 0.25]];
    let flat: Vec<f64> = p.iter().flatten().copied().collect();
    let logits: Vec<f64> = flat
        .iter()
        .map(|&x: &f64| x.max(1e-30).ln() + 3.0)
        .collect();
    for (mode, x) in [("probs", flat.clone()), ("logits", logits)] {
        let mut args = vec![
            ("x", rt(DataType::Fp32, &[2, 4], &x)),
            ("size", i32s(40_000)),
            ("seed", i32s(9)),
        ];
        if mode == "probs" {
            args.push(("mode", s(mode)));
        }
        let out = run_op("random_categorical", Opset::Ios15, &args).unwrap();
        assert_eq!(out[0].shape(), &[2, 40_000]);
        let v = floats(&out[0]);
        for (r, probs) in p.iter().enumerate() {
            let row = &v[r * 40_000..(r + 1) * 40_000];
            for (k, &want) in probs.iter().enumerate() {
                let got = row.iter().filter(|&&c| c == k as f64).count() as f64 / 40_000.0;
                let se = (want * (1.0 - want) / 40_000.0f64).sqrt();
                assert!(
                    (got - want).abs() <= 5.0 * se + 1e-12,
                    "{mode} row {r} class {k}: {got} vs {want}"
                );
            }
        }
        assert_eq!(
            out,
            run_op("random_categorical", Opset::Ios15, &args).unwrap()
        );
    }
}

#[test]
fn random_ops_refuse_bad_shapes() {
    let e = run_op(
        "random_uniform",
        Opset::Ios15,
        &[("shape", rt(DataType::Int32, &[2], &[3.0, -1.0]))],
    )
    .unwrap_err();
    assert!(e.contains("negative"), "{e}");
    // A shape whose element count cannot be allocated is an error, not an abort.
    let e = run_op(
        "random_normal",
        Opset::Ios15,
        &[(
            "shape",
            rt(
                DataType::Int32,
                &[3],
                &[2_000_000_000.0, 2_000_000_000.0, 2_000_000_000.0],
            ),
        )],
    )
    .unwrap_err();
    assert!(e.contains("overflow") || e.contains("allocate"), "{e}");
    let e = run_op(
        "random_normal",
        Opset::Ios15,
        &[(
            "shape",
            rt(DataType::Int32, &[2], &[2_000_000_000.0, 2_000_000_000.0]),
        )],
    )
    .unwrap_err();
    assert!(e.contains("allocate"), "{e}");
}

// ------------------------------------------------------------------------------------------
// classify
// ------------------------------------------------------------------------------------------

fn list_of(items: Vec<MilValue>, element: DataType) -> In {
    let n = items.len() as u64;
    In::Lit(MilValue {
        ty: ValueType::List {
            element: Box::new(ValueType::scalar(element)),
            length: anekit_mil::Dim::Fixed(n),
        },
        data: anekit_mil::ValueData::List(items),
        doc: String::new(),
    })
}

#[test]
fn classify_returns_label_and_probabilities() {
    let classes = list_of(
        ["cat", "dog", "bird"]
            .iter()
            .map(|&c| MilValue::string(c))
            .collect(),
        DataType::String,
    );
    let out = run_op(
        "classify",
        Opset::Ios15,
        &[
            (
                "probabilities",
                rt(DataType::Fp32, &[1, 3], &[0.2, 0.7, 0.1]),
            ),
            ("classes", classes.clone()),
        ],
    )
    .unwrap();
    assert_eq!(out[0].as_str().unwrap(), "dog");
    let Value::List(dict) = &out[1] else {
        panic!("{:?}", out[1])
    };
    let Value::Str(keys) = &dict[0] else {
        panic!("{dict:?}")
    };
    assert_eq!(
        keys.iter().cloned().collect::<Vec<_>>(),
        ["cat", "dog", "bird"]
    );
    let (_, probs) = f64_of(&dict[1]);
    assert!((probs[1] - 0.7).abs() < 1e-7 && probs.len() == 3);
    // Ties go to the first class; NaN never wins.
    let out = run_op(
        "classify",
        Opset::Ios17,
        &[
            (
                "probabilities",
                rt(DataType::Fp32, &[3], &[f64::NAN, 0.5, 0.5]),
            ),
            ("classes", classes.clone()),
        ],
    )
    .unwrap();
    assert_eq!(out[0].as_str().unwrap(), "dog");
    // int64 labels.
    let ints = list_of(
        [10i64, 20, 30]
            .iter()
            .map(|&v| {
                MilValue::tensor_bytes(
                    TensorType::scalar(DataType::Int64),
                    v.to_le_bytes().to_vec(),
                    Placement::Inline,
                )
            })
            .collect(),
        DataType::Int64,
    );
    let out = run_op(
        "classify",
        Opset::Ios18,
        &[
            ("probabilities", rt(DataType::Fp32, &[3], &[0.1, 0.3, 0.6])),
            ("classes", ints),
        ],
    )
    .unwrap();
    assert_eq!(f64_of(&out[0]), (vec![], vec![30.0]));
    let Value::List(dict) = &out[1] else { panic!() };
    assert_eq!(f64_of(&dict[0]).1, [10.0, 20.0, 30.0]);
    // A size mismatch is an error.
    let e = run_op(
        "classify",
        Opset::Ios15,
        &[
            ("probabilities", rt(DataType::Fp32, &[2], &[0.5, 0.5])),
            ("classes", classes),
        ],
    );
    assert!(e.is_err());
}

// ------------------------------------------------------------------------------------------
// Malformed arguments give errors naming the problem, never a panic or an abort.
// ------------------------------------------------------------------------------------------

fn zeros(shape: &[usize]) -> Vec<f64> {
    vec![0.0; shape.iter().product()]
}

fn lit_f32(shape: &[usize]) -> In {
    lit(DataType::Fp32, shape, &zeros(shape))
}

fn rt_f32(shape: &[usize]) -> In {
    rt(DataType::Fp32, shape, &zeros(shape))
}

#[track_caller]
fn expect_err(op: &str, opset: Opset, args: &[(&str, In)], outputs: usize, needle: &str) {
    match run_op_with(op, opset, args, Some(outputs)) {
        Ok(v) => panic!("{op}: expected an error mentioning {needle:?}, got {v:?}"),
        Err(e) => assert!(
            e.contains(needle),
            "{op}: {e:?} does not mention {needle:?}"
        ),
    }
}

#[test]
fn recurrent_rejects_malformed_arguments() {
    let base = |x: &[usize], ih: &[usize], hh: &[usize], h0: &[usize]| {
        vec![
            ("x", rt_f32(x)),
            ("initial_h", rt_f32(h0)),
            ("initial_c", rt_f32(h0)),
            ("weight_ih", lit_f32(ih)),
            ("weight_hh", lit_f32(hh)),
        ]
    };
    let ok = base(&[3, 2, 4], &[20, 4], &[20, 5], &[2, 5]);
    assert!(run_op_with("lstm", Opset::Ios15, &ok, Some(3)).is_ok());
    expect_err(
        "lstm",
        Opset::Ios15,
        &base(&[3, 8], &[20, 4], &[20, 5], &[2, 5]),
        3,
        "rank 3",
    );
    expect_err(
        "lstm",
        Opset::Ios15,
        &base(&[3, 2, 4], &[20, 3], &[20, 5], &[2, 5]),
        3,
        "weight_ih",
    );
    expect_err(
        "lstm",
        Opset::Ios15,
        &base(&[3, 2, 4], &[20, 4], &[21, 5], &[2, 5]),
        3,
        "weight_hh",
    );
    expect_err(
        "lstm",
        Opset::Ios15,
        &base(&[3, 2, 4], &[20, 4], &[20, 5], &[2, 4]),
        3,
        "initial_h",
    );
    let mut bad_bias = ok.clone();
    bad_bias.push(("bias", lit_f32(&[19])));
    expect_err("lstm", Opset::Ios15, &bad_bias, 3, "bias");
    let mut bad_peep = ok.clone();
    bad_peep.push(("peephole", lit_f32(&[20])));
    expect_err("lstm", Opset::Ios15, &bad_peep, 3, "peephole");
    let mut bidir = base(&[3, 2, 4], &[20, 4], &[20, 5], &[2, 10]);
    bidir.push(("direction", s("bidirectional")));
    expect_err("lstm", Opset::Ios15, &bidir, 3, "weight_ih_back");
    let mut act = ok.clone();
    act.push(("activation", s("softmax")));
    expect_err("lstm", Opset::Ios15, &act, 3, "activation");
    let gru = vec![
        ("x", rt_f32(&[3, 2, 4])),
        ("initial_h", rt_f32(&[2, 5])),
        ("weight_ih", lit_f32(&[15, 4])),
        ("weight_hh", lit_f32(&[15, 5])),
        ("direction", s("bidirectional")),
    ];
    expect_err("gru", Opset::Ios18, &gru, 2, "direction");
    let rnn = vec![
        ("x", rt_f32(&[3, 2, 4])),
        ("initial_h", rt_f32(&[2, 5])),
        ("weight_ih", lit_f32(&[5, 4])),
        ("weight_hh", lit_f32(&[5, 0])),
    ];
    expect_err("rnn", Opset::Ios17, &rnn, 2, "H > 0");
}

#[test]
fn image_resizing_rejects_malformed_arguments() {
    let x = || ("x", rt_f32(&[1, 2, 3, 4]));
    // Sizes no machine can hold: an error, not an abort.
    expect_err(
        "upsample_bilinear",
        Opset::Ios16,
        &[
            x(),
            ("scale_factor_height", f32s(2e8)),
            ("scale_factor_width", f32s(2e8)),
        ],
        1,
        "allocate",
    );
    expect_err(
        "upsample_nearest_neighbor",
        Opset::Ios15,
        &[x(), ("scale_factor_height", f32s(1e30))],
        1,
        "not a valid size",
    );
    expect_err(
        "resize_bilinear",
        Opset::Ios15,
        &[
            x(),
            ("target_size_height", i32s(i32::MAX)),
            ("target_size_width", i32s(i32::MAX)),
        ],
        1,
        "allocate",
    );
    expect_err(
        "resize_bilinear",
        Opset::Ios15,
        &[x(), ("target_size_height", i32s(-3))],
        1,
        "negative",
    );
    expect_err(
        "resize_bilinear",
        Opset::Ios15,
        &[x(), ("sampling_mode", s("BICUBIC"))],
        1,
        "sampling_mode",
    );
    expect_err(
        "upsample_bilinear",
        Opset::Ios15,
        &[("x", rt_f32(&[4, 4]))],
        1,
        "rank",
    );
    expect_err(
        "resize",
        Opset::Ios17,
        &[
            x(),
            ("shape", rt(DataType::Int32, &[2], &[-2.0, 3.0])),
            ("resized_dims", lit(DataType::Uint32, &[], &[2.0])),
        ],
        1,
        "negative",
    );
    expect_err(
        "resize",
        Opset::Ios17,
        &[
            x(),
            ("shape", rt(DataType::Int32, &[2], &[2.0, 3.0])),
            ("resized_dims", lit(DataType::Uint32, &[], &[3.0])),
        ],
        1,
        "resized_dims",
    );
    let crop = |boxes: In, idx: In| {
        vec![
            x(),
            ("boxes", boxes),
            ("box_indices", idx),
            ("target_height", i32s(2)),
            ("target_width", i32s(2)),
        ]
    };
    expect_err(
        "crop_resize",
        Opset::Ios17,
        &crop(rt_f32(&[2, 4]), rt(DataType::Int32, &[2], &[0.0, 1.0])),
        1,
        "out of range",
    );
    expect_err(
        "crop_resize",
        Opset::Ios17,
        &crop(rt_f32(&[2, 3]), rt(DataType::Int32, &[2], &[0.0, 0.0])),
        1,
        "[N, 4]",
    );
    expect_err(
        "crop_resize",
        Opset::Ios15,
        &[
            x(),
            (
                "roi",
                rt(DataType::Fp32, &[1, 1, 5, 1, 1], &[3.0, 0.0, 0.0, 1.0, 1.0]),
            ),
        ],
        1,
        "out of range",
    );
    let sample = |coords: In| {
        vec![
            x(),
            ("coordinates", coords),
            ("sampling_mode", s("bilinear")),
            ("padding_mode", s("constant")),
            ("padding_value", f32s(0.0)),
            ("coordinates_mode", s("unnormalized")),
            ("align_corners", b(false)),
        ]
    };
    expect_err(
        "resample",
        Opset::Ios16,
        &sample(rt_f32(&[1, 2, 2, 3])),
        1,
        "[B, H, W, 2]",
    );
    expect_err(
        "resample",
        Opset::Ios16,
        &sample(rt_f32(&[2, 2, 2, 2])),
        1,
        "batch",
    );
    let mut bad = sample(rt_f32(&[1, 2, 2, 2]));
    bad[3] = ("padding_mode", s("wrap"));
    expect_err("resample", Opset::Ios16, &bad, 1, "padding_mode");
    expect_err(
        "affine",
        Opset::Ios15,
        &[
            x(),
            ("transform_matrix", rt_f32(&[3, 6])),
            ("output_height", i32s(2)),
            ("output_width", i32s(2)),
            ("sampling_mode", s("bilinear")),
            ("padding_mode", s("constant")),
            ("padding_value", f32s(0.0)),
            ("coordinates_mode", s("normalized_minus_one_to_one")),
            ("align_corners", b(true)),
        ],
        1,
        "transform_matrix",
    );
}

// ------------------------------------------------------------------------------------------
// constexpr_* ops (decompressed at load): hostile weights give errors, never a panic.
// ------------------------------------------------------------------------------------------

#[track_caller]
fn expect_op_err(op: &str, opset: Opset, args: &[(&str, In)], outputs: usize, needles: &[&str]) {
    let e = match run_op_with(op, opset, args, Some(outputs)) {
        Ok(v) => panic!("{op}: expected an error, got {v:?}"),
        Err(e) => e,
    };
    let name = format!("{op}_0");
    assert!(e.contains(&name), "{op}: {e:?} does not name the op");
    for n in needles {
        assert!(e.contains(n), "{op}: {e:?} does not mention {n:?}");
    }
}

#[test]
fn constexpr_ops_refuse_scalar_data_and_vector_axes() {
    // A rank-0 quantized_data has no axis to dequantize along.
    expect_op_err(
        "constexpr_affine_dequantize",
        Opset::Ios16,
        &[
            ("quantized_data", lit(DataType::Uint8, &[], &[3.0])),
            ("zero_point", lit(DataType::Uint8, &[], &[1.0])),
            ("scale", lit(DataType::Fp32, &[], &[0.5])),
            ("axis", i32s(0)),
        ],
        1,
        &["axis 0", "rank 0"],
    );
    // iOS18 LUT: rank-0 indices with vectors of 2 along vector_axis 0.
    expect_op_err(
        "constexpr_lut_to_dense",
        Opset::Ios18,
        &[
            ("indices", lit(DataType::Uint8, &[], &[0.0])),
            ("lut", lit(DataType::Fp32, &[2, 2], &[1.0, 2.0, 3.0, 4.0])),
            ("vector_axis", i32s(0)),
        ],
        1,
        &["vector_axis 0", "rank 0"],
    );
    // The same through constexpr_lut_to_sparse (whose mask is repeated along vector_axis).
    expect_op_err(
        "constexpr_lut_to_sparse",
        Opset::Ios18,
        &[
            ("indices_mask", lit(DataType::Uint8, &[], &[1.0])),
            ("indices_nonzero_data", lit(DataType::Uint8, &[1], &[0.0])),
            ("lut", lit(DataType::Fp32, &[2, 2], &[1.0, 2.0, 3.0, 4.0])),
            ("vector_axis", i32s(0)),
        ],
        2,
        &["vector_axis 0", "rank 0"],
    );
}

#[test]
fn constexpr_lut_with_huge_vectors_is_an_error_not_an_abort() {
    // 2^22 indices × a 2^22-wide vector: 2^44 floats (64 TiB) from 20 MiB of weights; the
    // allocation must fail cleanly. (Int8 indices into a one-entry LUT.)
    let n = 1usize << 22;
    let vsize = 1usize << 22;
    let tensor = |dtype, shape: &[u64], bytes| {
        In::Lit(MilValue::tensor_bytes(
            TensorType::new(dtype, shape),
            bytes,
            Placement::Inline,
        ))
    };
    let indices = tensor(DataType::Int8, &[n as u64], vec![0; n]);
    let lut = tensor(DataType::Fp32, &[1, 1, vsize as u64], vec![0; vsize * 4]);
    expect_op_err(
        "constexpr_lut_to_dense",
        Opset::Ios18,
        &[("indices", indices), ("lut", lut), ("vector_axis", i32s(0))],
        1,
        &["allocate"],
    );
}

#[test]
fn axes_of_a_scalar_are_errors() {
    // A scalar has no axis 0: normalising or reducing along it is an error naming the op.
    let x = || ("x", rt(DataType::Fp32, &[], &[2.0]));
    let axes = || ("axes", lit(DataType::Int32, &[1], &[0.0]));
    expect_op_err(
        "layer_norm",
        Opset::Ios15,
        &[x(), axes()],
        1,
        &["axis 0", "rank 0"],
    );
    for op in [
        "reduce_sum",
        "reduce_mean",
        "reduce_l2_norm",
        "reduce_log_sum_exp",
    ] {
        expect_op_err(op, Opset::Ios15, &[x(), axes()], 1, &["axis 0", "rank 0"]);
    }
    let x = ("x", rt(DataType::Int32, &[], &[2.0]));
    expect_op_err(
        "reduce_prod",
        Opset::Ios15,
        &[x, axes()],
        1,
        &["axis 0", "rank 0"],
    );
}

#[test]
fn block_rearranging_ops_refuse_overflowing_sizes() {
    // An empty tensor may have huge dimensions: scaling them by a block size (squared) must be
    // an error, not an arithmetic overflow.
    let x = || ("x", rt(DataType::Fp32, &[1, 1 << 10, 1 << 40, 0], &[]));
    for (op, param) in [
        ("space_to_depth", "block_size"),
        ("pixel_unshuffle", "downscale_factor"),
    ] {
        expect_op_err(
            op,
            Opset::Ios16,
            &[x(), (param, i32s(1 << 30))],
            1,
            &["overflow"],
        );
    }
    let x = || ("x", rt(DataType::Fp32, &[1, 0, 1 << 40, 1 << 20], &[]));
    for (op, param) in [
        ("depth_to_space", "block_size"),
        ("pixel_shuffle", "upscale_factor"),
    ] {
        expect_op_err(
            op,
            Opset::Ios16,
            &[x(), (param, i32s(1 << 30))],
            1,
            &["overflow"],
        );
    }
    expect_op_err(
        "batch_to_space",
        Opset::Ios15,
        &[
            ("x", rt(DataType::Fp32, &[0, 1, 1 << 40, 1 << 20], &[])),
            (
                "block_shape",
                lit(DataType::Int32, &[2], &[1073741824.0, 1.0]),
            ),
            ("crops", lit(DataType::Int32, &[2, 2], &[0.0; 4])),
        ],
        1,
        &["overflow"],
    );
}
