//! Tensor operations against coremltools' test expectations
//! (`coremltools/converters/mil/mil/ops/tests/iOS14/test_tensor_operation.py` and
//! `test_tensor_transformation.py` for concat/split/stack, unless noted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use std::collections::BTreeMap;

use anekit_mil::ops::{Arg, infer};
use ops_support::*;

#[test]
fn concat_split_stack() {
    // TestConcat.test_builder_to_backend_smoke: (2, 2) ++ (1, 2) on axis 0
    let got = run_multi(
        "concat",
        Ios15,
        &[
            ("values", vec![x(Fp32, &[2, 2]), x(Fp32, &[1, 2])]),
            ("axis", vec![int(0)]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[3, 2])]);
    // interleave requires equal shapes; an unknown concat dim makes the sum unknown
    let got = run_multi(
        "concat",
        Ios15,
        &[
            (
                "values",
                vec![x(Fp32, &[2, 3]), x(Fp32, &[2, 3]), x(Fp32, &[2, 3])],
            ),
            ("axis", vec![int(-1)]),
            ("interleave", vec![b(true)]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[2, 9])]);
    let got = run_multi(
        "concat",
        Ios15,
        &[
            ("values", vec![x(Fp32, &[2, -1]), x(Fp32, &[2, 3])]),
            ("axis", vec![int(1)]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[2, -1])]);
    // test_builder_eval_different_dtypes_error_out / test_builder_eval_failure
    assert!(
        run_multi(
            "concat",
            Ios15,
            &[
                ("values", vec![x(Fp32, &[2, 3]), x(Int32, &[2, 3])]),
                ("axis", vec![int(0)])
            ],
            &[]
        )
        .is_err()
    );
    assert!(
        run_multi(
            "concat",
            Ios15,
            &[
                ("values", vec![x(Fp32, &[2, 3]), x(Fp32, &[3, 3])]),
                ("axis", vec![int(1)])
            ],
            &[]
        )
        .is_err()
    );
    // TestSplit.test_builder_to_backend_smoke: x (3, 2)
    expect(
        "split",
        Ios15,
        &[
            ("x", x(Fp32, &[3, 2])),
            ("num_splits", int(2)),
            ("axis", int(1)),
        ],
        &[ty(Fp32, &[3, 1]), ty(Fp32, &[3, 1])],
    );
    expect(
        "split",
        Ios15,
        &[
            ("x", x(Fp32, &[3, 2])),
            ("split_sizes", ints(&[1, 2])),
            ("axis", int(0)),
        ],
        &[ty(Fp32, &[1, 2]), ty(Fp32, &[2, 2])],
    );
    expect_err(
        "split",
        Ios15,
        &[
            ("x", x(Fp32, &[3, 2])),
            ("num_splits", int(2)),
            ("axis", int(0)),
        ],
        Some("num_splits"),
    );
    // TestStack.test_builder_to_backend_smoke: two (3,) vectors
    for (axis, want) in [(0, [2, 3]), (1, [3, 2]), (-1, [3, 2])] {
        let got = run_multi(
            "stack",
            Ios15,
            &[
                ("values", vec![x(Fp32, &[3]), x(Fp32, &[3])]),
                ("axis", vec![int(axis)]),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(got, vec![ty(Fp32, &want)], "axis {axis}");
    }
}

#[test]
fn fill_one_hot_pad_range() {
    // TestFill: a constant shape gives its dims, a run-time one of unknown length an
    // unknown rank (UNK_VARIADIC)
    expect1(
        "fill",
        Ios15,
        &[("shape", ints(&[2, 1, 3])), ("value", f(1.0))],
        ty(Fp32, &[2, 1, 3]),
    );
    expect1(
        "fill",
        Ios15,
        &[("shape", x(Int32, &[3]))],
        ty(Fp32, &[-1, -1, -1]),
    );
    let got = run("fill", Ios15, &[("shape", x(Int32, &[-1]))]).unwrap();
    assert_eq!(
        got,
        vec![anekit_mil::ValueType::Tensor(anekit_mil::TensorType {
            dtype: Fp32,
            shape: Some(vec![anekit_mil::Dim::Unknown { variadic: true }]),
            attributes: BTreeMap::new(),
        })]
    );
    // iOS16/test_tensor_operation.py TestFillLike: the ref tensor's shape, the value's type
    expect1(
        "fill_like",
        Ios16,
        &[("ref_tensor", x(Int32, &[2, 3])), ("value", int(7))],
        ty(Int32, &[2, 3]),
    );
    // TestOneHot.test_builder_to_backend_smoke: indices (2,)
    let idx = || x(Int32, &[2]);
    expect1(
        "one_hot",
        Ios15,
        &[("indices", idx()), ("one_hot_vector_size", int(4))],
        ty(Int32, &[2, 4]),
    );
    expect1(
        "one_hot",
        Ios15,
        &[
            ("indices", idx()),
            ("one_hot_vector_size", int(4)),
            ("axis", int(0)),
        ],
        ty(Int32, &[4, 2]),
    );
    expect1(
        "one_hot",
        Ios15,
        &[
            ("indices", idx()),
            ("one_hot_vector_size", int(4)),
            ("on_value", f(1.0)),
            ("off_value", f(0.1)),
        ],
        ty(Fp32, &[2, 4]),
    );
    expect1(
        "one_hot",
        Ios15,
        &[
            ("indices", idx()),
            ("one_hot_vector_size", x(Int32, &[])),
            ("on_value", int(1)),
            ("off_value", int(9)),
        ],
        ty(Int32, &[2, -1]),
    );
    // TestPad: (2, 3) padded by [1, 1, 2, 2] → (4, 7) in every mode; test_constant_general
    // (2, 2, 3) by [1, 1, 2, 2, 1, 1] → (4, 6, 5); a shorter pad applies to the last dims
    for mode in ["constant", "reflect", "replicate"] {
        expect1(
            "pad",
            Ios15,
            &[
                ("x", x(Fp32, &[2, 3])),
                ("pad", ints(&[1, 1, 2, 2])),
                ("mode", s(mode)),
            ],
            ty(Fp32, &[4, 7]),
        );
    }
    expect1(
        "pad",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 2, 3])),
            ("pad", ints(&[1, 1, 2, 2, 1, 1])),
        ],
        ty(Fp32, &[4, 6, 5]),
    );
    expect1(
        "pad",
        Ios15,
        &[("x", x(Fp32, &[2, 2, 3])), ("pad", ints(&[2, 2]))],
        ty(Fp32, &[2, 2, 7]),
    );
    expect1(
        "pad",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("pad", x(Int32, &[4]))],
        ty(Fp32, &[-1, -1]),
    );
    // test_pad_with_negative / non-constant pad of the wrong length
    expect_err(
        "pad",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 48, 1, 1024])),
            ("pad", ints(&[0, 0, 0, 0, 0, 0, -1022, 0])),
        ],
        Some("pad"),
    );
    expect_err(
        "pad",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("pad", x(Int32, &[2]))],
        Some("pad"),
    );
    expect_err(
        "pad",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("pad", ints(&[1, 1])),
            ("mode", s("wrap")),
        ],
        Some("mode"),
    );
    // TestRange1d: any run-time bound gives an unknown length; constants give ceil((end-start)/step)
    expect1(
        "range_1d",
        Ios15,
        &[("start", x(Fp32, &[])), ("end", f(15.0)), ("step", f(2.0))],
        ty(Fp32, &[-1]),
    );
    expect1(
        "range_1d",
        Ios15,
        &[("start", f(5.0)), ("end", f(15.0)), ("step", f(2.0))],
        ty(Fp32, &[5]),
    );
    expect1(
        "range_1d",
        Ios15,
        &[("start", int(0)), ("end", int(2000000)), ("step", int(1))],
        ty(Int32, &[2000000]),
    );
    assert!(
        run(
            "range_1d",
            Ios15,
            &[("start", int(0)), ("end", f(2.0)), ("step", int(1))]
        )
        .is_err()
    );
}

#[test]
fn tile_topk_argsort_flatten_shape() {
    // TestTile: x (2, 3)
    expect1(
        "tile",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("reps", ints(&[1, 1]))],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "tile",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("reps", ints(&[2, 1]))],
        ty(Fp32, &[4, 3]),
    );
    // TestDynamicTile: run-time reps give unknown dims
    expect1(
        "tile",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("reps", x(Int32, &[2]))],
        ty(Fp32, &[-1, -1]),
    );
    expect_err(
        "tile",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("reps", ints(&[2]))],
        Some("reps"),
    );
    // TestTopK.test_builder_to_backend_smoke: x (2, 3), k 2, axis 1
    expect(
        "topk",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("k", int(2)), ("axis", int(1))],
        &[ty(Fp32, &[2, 2]), ty(Int32, &[2, 2])],
    );
    expect_err(
        "topk",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("k", int(4)), ("axis", int(1))],
        Some("k"),
    );
    // iOS16/test_tensor_operation.py TestTopK: return_indices=False gives one output
    expect(
        "topk",
        Ios16,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("k", int(2)),
            ("return_indices", b(false)),
        ],
        &[ty(Fp32, &[2, 2])],
    );
    // iOS17/test_tensor_operation.py TestTopK: output_indices_dtype
    expect(
        "topk",
        Ios17,
        &[
            ("x", x(Fp16, &[2, 3])),
            ("k", int(2)),
            ("output_indices_dtype", s("uint16")),
        ],
        &[ty(Fp16, &[2, 2]), ty(Uint16, &[2, 2])],
    );
    expect_err(
        "topk",
        Ios17,
        &[
            ("x", x(Fp16, &[2, 3])),
            ("return_indices", b(false)),
            ("output_indices_dtype", s("int32")),
        ],
        Some("output_indices_dtype"),
    );
    // TestArgSort
    expect1(
        "argsort",
        Ios15,
        &[("x", x(Fp32, &[2, 3]))],
        ty(Int32, &[2, 3]),
    );
    // TestFlatten2d: (s0, 4, 5, 6) → (s0, 120); axis -1 on (2, 3, 4) → (6, 4)
    expect1(
        "flatten2d",
        Ios15,
        &[("x", x(Fp32, &[-1, 4, 5, 6]))],
        ty(Fp32, &[-1, 120]),
    );
    expect1(
        "flatten2d",
        Ios15,
        &[("x", x(Fp32, &[2, 3, 4])), ("axis", int(-1))],
        ty(Fp32, &[6, 4]),
    );
    expect1(
        "flatten2d",
        Ios15,
        &[("x", x(Fp32, &[2, 3, 4])), ("axis", int(0))],
        ty(Fp32, &[1, 24]),
    );
    // TestShape: rank-2 → (2,), rank-4 with unknown dims → (4,)
    expect1("shape", Ios15, &[("x", x(Fp32, &[2, 3]))], ty(Int32, &[2]));
    expect1(
        "shape",
        Ios15,
        &[("x", x(Fp32, &[-1, 3, -1, 5]))],
        ty(Int32, &[4]),
    );
    // TestNonZero: a run-time x gives (UNK_SYM, rank); a constant x counts its non-zeros
    expect1(
        "non_zero",
        Ios15,
        &[("x", x(Fp32, &[2, 2]))],
        ty(Int32, &[-1, 2]),
    );
    expect1(
        "non_zero",
        Ios15,
        &[("x", f32s(&[2, 2], &[1.0, 0.0, 3.0, 4.0]))],
        ty(Int32, &[3, 2]),
    );
    // TestCumSum / TestBandPart / TestIdentity keep the type
    expect1(
        "cumsum",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("axis", int(0)),
            ("reverse", b(true)),
        ],
        ty(Fp32, &[2, 3]),
    );
    expect_err(
        "cumsum",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("axis", int(-2))],
        Some("axis"),
    );
    expect1(
        "band_part",
        Ios15,
        &[("x", x(Fp32, &[3, 4])), ("lower", int(0))],
        ty(Fp32, &[3, 4]),
    );
    expect1(
        "identity",
        Ios15,
        &[("x", x(Int32, &[2, 3]))],
        ty(Int32, &[2, 3]),
    );
}

#[test]
fn non_maximum_suppression() {
    // iOS15 layout: boxes [B, N, 4], scores [B, N, K] (iOS14 TestNonMaximumSuppression)
    expect(
        "non_maximum_suppression",
        Ios15,
        &[
            ("boxes", x(Fp32, &[1, 10, 4])),
            ("scores", x(Fp32, &[1, 10, 3])),
            ("iou_threshold", f(0.5)),
            ("score_threshold", f(0.1)),
            ("max_boxes", int(5)),
        ],
        &[
            ty(Fp32, &[1, 5, 4]),
            ty(Fp32, &[1, 5, 3]),
            ty(Int32, &[1, 5]),
            ty(Int32, &[1]),
        ],
    );
    // iOS17 layout: boxes [B, 4, N], scores [B, K, N], no score_threshold, three outputs
    // (iOS17/tensor_operation.py non_maximum_suppression)
    expect(
        "non_maximum_suppression",
        Ios17,
        &[
            ("boxes", x(Fp16, &[1, 4, 10])),
            ("scores", x(Fp16, &[1, 3, 10])),
            ("iou_threshold", h(0.5)),
            ("max_boxes", int(5)),
        ],
        &[
            ty(Fp16, &[1, 4, 5]),
            ty(Fp16, &[1, 3, 5]),
            ty(Int32, &[1, 5]),
        ],
    );
    expect_err(
        "non_maximum_suppression",
        Ios17,
        &[
            ("boxes", x(Fp16, &[1, 4, 10])),
            ("scores", x(Fp16, &[1, 3, 10])),
            ("iou_threshold", h(0.5)),
            ("score_threshold", h(0.1)),
            ("max_boxes", int(5)),
        ],
        Some("score_threshold"),
    );
}

/// coremltools tracks partially known integer values (`sym_val`) through `shape`, `gather`,
/// `concat`: `reshape(x, concat([gather(shape(x), 0), 64]))` knows its last dim.
#[test]
fn partial_values_flow_from_shape_to_reshape() {
    let one = |k: &str, a: Arg| -> BTreeMap<String, Vec<Arg>> {
        BTreeMap::from([(k.to_string(), vec![a])])
    };
    let shape = infer("shape", Ios17, &one("x", x(Fp16, &[-1, 4, 16])), &[]).unwrap();
    assert_eq!(shape.sym, Some(vec![None, Some(4), Some(16)]));
    let mut shape_arg = Arg::var(shape.outputs[0].clone());
    shape_arg.sym = shape.sym.clone();
    let mut g = one("x", shape_arg);
    g.insert("indices".into(), vec![ints(&[0])]);
    let gathered = infer("gather", Ios17, &g, &[]).unwrap();
    assert_eq!(gathered.outputs, vec![ty(Int32, &[1])]);
    assert_eq!(gathered.sym, Some(vec![None]));
    let mut first = Arg::var(gathered.outputs[0].clone());
    first.sym = gathered.sym;
    let cat = infer(
        "concat",
        Ios17,
        &BTreeMap::from([
            ("values".to_string(), vec![first, ints(&[64])]),
            ("axis".to_string(), vec![int(0)]),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(cat.outputs, vec![ty(Int32, &[2])]);
    assert_eq!(cat.sym, Some(vec![None, Some(64)]));
    // shape arithmetic keeps known entries: [?, 64] * 2 = [?, 128]
    let mut c = Arg::var(cat.outputs[0].clone());
    c.sym = cat.sym.clone();
    let doubled = infer(
        "mul",
        Ios17,
        &BTreeMap::from([("x".to_string(), vec![c]), ("y".to_string(), vec![int(2)])]),
        &[],
    )
    .unwrap();
    assert_eq!(doubled.sym, Some(vec![None, Some(128)]));
    let mut target = Arg::var(cat.outputs[0].clone());
    target.sym = cat.sym;
    expect1(
        "reshape",
        Ios17,
        &[("x", x(Fp16, &[-1, 4, 16])), ("shape", target)],
        ty(Fp16, &[-1, 64]),
    );
}
