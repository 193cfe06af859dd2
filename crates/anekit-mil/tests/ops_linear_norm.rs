//! linear/matmul/einsum, normalization, activations and elementwise ops against
//! coremltools' test expectations (`ops/tests/iOS14/test_linear.py`, `test_normalization.py`,
//! `test_activation.py`, `test_elementwise_binary.py`, `test_elementwise_unary.py`,
//! `iOS17/test_linear.py`; matmul shapes there are numpy's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use ops_support::*;

#[test]
fn matmul_numpy_shapes() {
    // TestMatMul.test_builder_to_backend_stress (numpy matmul shapes)
    for (xs, ys, want) in [
        (&[3, 2, 3, 4][..], &[3, 2, 4, 5][..], &[3, 2, 3, 5][..]),
        (&[1, 1, 1, 3, 4], &[1, 3, 2, 4, 5], &[1, 3, 2, 3, 5]),
        (&[1, 3, 1, 2, 3], &[1, 4, 3, 2], &[1, 3, 4, 2, 2]),
        (&[1, 3, 4], &[3, 2, 4, 6], &[3, 2, 3, 6]),
        (&[7, 4], &[3, 9, 5, 4, 3], &[3, 9, 5, 7, 3]),
    ] {
        expect1(
            "matmul",
            Ios15,
            &[("x", x(Fp32, xs)), ("y", x(Fp32, ys))],
            ty(Fp32, want),
        );
    }
    // test_builder_y_rank_2_const: x of rank 1..5 times (5, 10)
    for (xs, want) in [
        (&[5][..], &[10][..]),
        (&[2, 5], &[2, 10]),
        (&[2, 2, 5], &[2, 2, 10]),
        (&[4, 3, 2, 5], &[4, 3, 2, 10]),
        (&[5, 4, 2, 3, 5], &[5, 4, 2, 3, 10]),
    ] {
        expect1(
            "matmul",
            Ios15,
            &[("x", x(Fp32, xs)), ("y", zeros(Fp32, &[5, 10]))],
            ty(Fp32, want),
        );
    }
    // test_builder_transpose_y
    expect1(
        "matmul",
        Ios15,
        &[
            ("x", x(Fp32, &[3, 2, 7, 16])),
            ("y", zeros(Fp32, &[3, 2, 5, 16])),
            ("transpose_y", b(true)),
        ],
        ty(Fp32, &[3, 2, 7, 5]),
    );
    expect_err(
        "matmul",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("y", x(Fp32, &[4, 5]))],
        None,
    );
    expect_err(
        "matmul",
        Ios15,
        &[
            ("x", x(Fp32, &[3])),
            ("y", x(Fp32, &[3, 5])),
            ("transpose_x", b(true)),
        ],
        Some("transpose_x"),
    );
    // unknown dims
    expect1(
        "matmul",
        Ios15,
        &[("x", x(Fp16, &[-1, 8, 64])), ("y", x(Fp16, &[-1, 64, -1]))],
        ty(Fp16, &[-1, 8, -1]),
    );
}

#[test]
fn matmul_ios17_mixed_precision() {
    // iOS17/test_linear.py TestMatMul.test_ios17_mixed_precision: with one const operand the
    // output takes the non-const operand's type
    expect1(
        "matmul",
        Ios17,
        &[("x", x(Fp16, &[2, 5])), ("y", zeros(Fp32, &[5, 10]))],
        ty(Fp16, &[2, 10]),
    );
    expect1(
        "matmul",
        Ios17,
        &[("x", zeros(Int32, &[2, 5])), ("y", x(Fp32, &[5, 10]))],
        ty(Fp32, &[2, 10]),
    );
    // both run-time (or both const) must agree
    expect_err(
        "matmul",
        Ios17,
        &[("x", x(Fp16, &[2, 5])), ("y", x(Fp32, &[5, 10]))],
        Some("y"),
    );
    // iOS15: one type domain for x and y
    expect_err(
        "matmul",
        Ios15,
        &[("x", x(Fp16, &[2, 5])), ("y", zeros(Fp32, &[5, 10]))],
        Some("y"),
    );
}

#[test]
fn linear_and_einsum() {
    // TestLinear.test_builder_to_backend_smoke: x (2, 2), weight (2, 2) → (2, 2)
    expect1(
        "linear",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 2])),
            ("weight", zeros(Fp32, &[2, 2])),
            ("bias", zeros(Fp32, &[2])),
        ],
        ty(Fp32, &[2, 2]),
    );
    // rank-3 x, Dout from weight.shape[0]
    expect1(
        "linear",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 7, 16])),
            ("weight", zeros(Fp32, &[4, 16])),
        ],
        ty(Fp32, &[1, 7, 4]),
    );
    expect_err(
        "linear",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 7, 16])),
            ("weight", zeros(Fp32, &[4, 15])),
        ],
        Some("weight"),
    );
    expect_err(
        "linear",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 16])),
            ("weight", zeros(Fp32, &[4, 16])),
            ("bias", zeros(Fp32, &[5])),
        ],
        Some("bias"),
    );
    // the weight must be constant
    expect_err(
        "linear",
        Ios15,
        &[("x", x(Fp32, &[1, 16])), ("weight", x(Fp32, &[4, 16]))],
        Some("weight"),
    );
    // iOS17 lets x and weight differ in type (iOS17/test_linear.py TestLinear)
    expect1(
        "linear",
        Ios17,
        &[("x", x(Fp16, &[2, 5])), ("weight", zeros(Fp32, &[3, 5]))],
        ty(Fp16, &[2, 3]),
    );
    // TestEinsum.test_builder_to_backend_smoke: "abcd,adce->abce", (2,1,3,2) x (2,2,3,4) →
    // x's shape with y's last dim
    let got = run_multi(
        "einsum",
        Ios15,
        &[
            (
                "values",
                vec![x(Fp32, &[2, 1, 3, 2]), x(Fp32, &[2, 2, 3, 4])],
            ),
            ("equation", vec![s("abcd,adce->abce")]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[2, 1, 3, 4])]);
    // test_builder_to_backend_stress (broadcast): size-1 dims of x or y broadcast
    let got = run_multi(
        "einsum",
        Ios15,
        &[
            ("values", vec![x(Fp32, &[4, 1, 3]), x(Fp32, &[3, 2, 5])]),
            ("equation", vec![s("abc,cbd->abd")]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[4, 2, 5])]);
    assert!(
        run_multi(
            "einsum",
            Ios15,
            &[
                ("values", vec![x(Fp32, &[2, 3]), x(Fp32, &[3, 4])]),
                ("equation", vec![s("ab,bc->ac")])
            ],
            &[]
        )
        .is_err()
    );
}

#[test]
fn normalization() {
    // TestBatchNorm / TestInstanceNorm keep x's type; iOS17 params may be fp32 for fp16 x
    expect1(
        "batch_norm",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 2, 8, 8])),
            ("mean", zeros(Fp32, &[2])),
            ("variance", zeros(Fp32, &[2])),
        ],
        ty(Fp32, &[1, 2, 8, 8]),
    );
    expect1(
        "batch_norm",
        Ios17,
        &[
            ("x", x(Fp16, &[1, 2, 8, 8])),
            ("mean", zeros(Fp32, &[2])),
            ("variance", zeros(Fp32, &[2])),
        ],
        ty(Fp16, &[1, 2, 8, 8]),
    );
    expect_err(
        "batch_norm",
        Ios16,
        &[
            ("x", x(Fp16, &[1, 2, 8, 8])),
            ("mean", zeros(Fp32, &[2])),
            ("variance", zeros(Fp32, &[2])),
        ],
        Some("mean"),
    );
    expect1(
        "instance_norm",
        Ios15,
        &[("x", x(Fp32, &[2, 3, 2, 2])), ("epsilon", f(1e-2))],
        ty(Fp32, &[2, 3, 2, 2]),
    );
    // TestL2Norm: rank >= 3
    expect1(
        "l2_norm",
        Ios15,
        &[("x", x(Fp32, &[1, 3, 2]))],
        ty(Fp32, &[1, 3, 2]),
    );
    expect_err("l2_norm", Ios15, &[("x", x(Fp32, &[3, 2]))], Some("x"));
    // TestNormalizationLayerNorm: axes, gamma/beta of the normalized shape, dynamic shapes
    for axes in [&[2][..], &[-2, -1]] {
        expect1(
            "layer_norm",
            Ios15,
            &[
                ("x", x(Fp32, &[1, 3, 2])),
                ("axes", ints(axes)),
                ("epsilon", f(1e-4)),
            ],
            ty(Fp32, &[1, 3, 2]),
        );
    }
    expect1(
        "layer_norm",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2])),
            ("axes", ints(&[2])),
            ("gamma", zeros(Fp32, &[2])),
            ("beta", zeros(Fp32, &[2])),
        ],
        ty(Fp32, &[1, 3, 2]),
    );
    expect1(
        "layer_norm",
        Ios15,
        &[("x", x(Fp32, &[-1, -1, 2])), ("axes", ints(&[2]))],
        ty(Fp32, &[-1, -1, 2]),
    );
    expect_err(
        "layer_norm",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2])),
            ("axes", ints(&[2])),
            ("gamma", zeros(Fp32, &[3])),
        ],
        Some("gamma"),
    );
    expect_err(
        "layer_norm",
        Ios15,
        &[("x", x(Fp32, &[1, 3, 2])), ("axes", ints(&[3]))],
        Some("axes"),
    );
    expect1(
        "local_response_norm",
        Ios15,
        &[("x", x(Fp32, &[1, 4, 3, 3])), ("size", int(3))],
        ty(Fp32, &[1, 4, 3, 3]),
    );
}

#[test]
fn activations() {
    // TestActivation*: shape and type of x
    for op in [
        "relu", "relu6", "sigmoid", "silu", "softplus", "softsign", "softmax", "gelu",
    ] {
        expect1(op, Ios15, &[("x", x(Fp32, &[2, 3]))], ty(Fp32, &[2, 3]));
    }
    for mode in ["EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"] {
        expect1(
            "gelu",
            Ios17,
            &[("x", x(Fp16, &[2, 3])), ("mode", s(mode))],
            ty(Fp16, &[2, 3]),
        );
    }
    expect_err(
        "gelu",
        Ios15,
        &[("x", x(Fp32, &[2])), ("mode", s("FAST"))],
        Some("mode"),
    );
    expect1(
        "leaky_relu",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("alpha", f(0.2))],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "clamped_relu",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("alpha", f(2.0)), ("beta", f(1.0))],
        ty(Fp32, &[2, 3]),
    );
    // iOS17/test_activation.py: fp16 x with fp32 alpha is allowed only from iOS17
    expect1(
        "leaky_relu",
        Ios17,
        &[("x", x(Fp16, &[2, 3])), ("alpha", f(0.2))],
        ty(Fp16, &[2, 3]),
    );
    expect_err(
        "leaky_relu",
        Ios16,
        &[("x", x(Fp16, &[2, 3])), ("alpha", f(0.2))],
        Some("alpha"),
    );
    // TestPReLU: rank 3..5, alpha of length C; rank 3/5 need equal alphas
    expect1(
        "prelu",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2, 2])),
            ("alpha", f32s(&[3], &[1.0, 2.0, 3.0])),
        ],
        ty(Fp32, &[1, 3, 2, 2]),
    );
    expect_err(
        "prelu",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2])),
            ("alpha", f32s(&[3], &[1.0, 2.0, 3.0])),
        ],
        Some("alpha"),
    );
    expect1(
        "prelu",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2])),
            ("alpha", f32s(&[3], &[2.0, 2.0, 2.0])),
        ],
        ty(Fp32, &[1, 3, 2]),
    );
    expect_err(
        "prelu",
        Ios15,
        &[("x", x(Fp32, &[3, 2])), ("alpha", f32s(&[3], &[1.0; 3]))],
        Some("x"),
    );
    expect_err(
        "prelu",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 4, 2, 2])),
            ("alpha", f32s(&[3], &[1.0; 3])),
        ],
        Some("alpha"),
    );
    // TestSoftplusParametric: alpha/beta of length C
    expect1(
        "softplus_parametric",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 1, 3])),
            ("alpha", f32s(&[3], &[1.0; 3])),
            ("beta", f32s(&[3], &[1.0; 3])),
        ],
        ty(Fp32, &[1, 3, 1, 3]),
    );
    // activations are float-only
    expect_err("relu", Ios15, &[("x", x(Int32, &[2]))], Some("x"));
}

#[test]
fn elementwise() {
    // TestElementwiseBinary: numpy broadcasting, comparisons give bool
    expect1(
        "add",
        Ios15,
        &[("x", x(Fp32, &[2, 1, 3])), ("y", x(Fp32, &[4, 1]))],
        ty(Fp32, &[2, 4, 3]),
    );
    expect1(
        "mul",
        Ios15,
        &[("x", x(Int32, &[])), ("y", x(Int32, &[2, 2]))],
        ty(Int32, &[2, 2]),
    );
    expect1(
        "greater",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("y", f(1.0))],
        ty(Bool, &[2, 3]),
    );
    expect1(
        "logical_and",
        Ios15,
        &[("x", x(Bool, &[2, 3])), ("y", x(Bool, &[3]))],
        ty(Bool, &[2, 3]),
    );
    expect_err(
        "add",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("y", x(Fp32, &[4]))],
        None,
    );
    expect_err(
        "add",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("y", x(Fp16, &[2, 3]))],
        Some("y"),
    );
    expect_err(
        "logical_or",
        Ios15,
        &[("x", x(Fp32, &[2])), ("y", x(Fp32, &[2]))],
        Some("x"),
    );
    // unknown dims (broadcast_shapes): unknown vs 1 keeps it, vs n > 1 takes n
    expect1(
        "sub",
        Ios15,
        &[("x", x(Fp16, &[-1, 1, -1])), ("y", x(Fp16, &[1, 5, 7]))],
        ty(Fp16, &[-1, 5, 7]),
    );
    expect1(
        "sub",
        Ios15,
        &[("x", x(Fp16, &[-1])), ("y", x(Fp16, &[-1]))],
        ty(Fp16, &[-1]),
    );
    // unary
    expect1("abs", Ios15, &[("x", x(Int32, &[3]))], ty(Int32, &[3]));
    expect_err("exp", Ios15, &[("x", x(Int32, &[3]))], Some("x"));
    expect1(
        "logical_not",
        Ios15,
        &[("x", x(Bool, &[3]))],
        ty(Bool, &[3]),
    );
    expect1(
        "clip",
        Ios15,
        &[("x", x(Fp32, &[3])), ("alpha", f(0.0)), ("beta", f(6.0))],
        ty(Fp32, &[3]),
    );
    // iOS17/elementwise_unary.py clip: alpha must be below beta
    expect_err(
        "clip",
        Ios17,
        &[("x", x(Fp32, &[3])), ("alpha", f(6.0)), ("beta", f(0.0))],
        Some("alpha"),
    );
    expect1(
        "rsqrt",
        Ios17,
        &[("x", x(Fp16, &[3])), ("epsilon", f(1e-6))],
        ty(Fp16, &[3]),
    );
    // cast (TestCast): target type from the allowed set of the opset
    expect1(
        "cast",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("dtype", s("int32"))],
        ty(Int32, &[2, 3]),
    );
    expect1(
        "cast",
        Ios16,
        &[("x", x(Int32, &[])), ("dtype", s("fp16"))],
        ty(Fp16, &[]),
    );
    expect_err(
        "cast",
        Ios16,
        &[("x", x(Fp32, &[2])), ("dtype", s("uint8"))],
        Some("dtype"),
    );
    expect1(
        "cast",
        Ios17,
        &[("x", x(Fp32, &[2])), ("dtype", s("uint8"))],
        ty(Uint8, &[2]),
    );
    expect_err(
        "cast",
        Ios17,
        &[("x", x(Fp32, &[2])), ("dtype", s("int64"))],
        Some("dtype"),
    );
    // select: broadcast of a and b
    expect1(
        "select",
        Ios15,
        &[
            ("cond", x(Bool, &[2, 1])),
            ("a", x(Fp32, &[2, 3])),
            ("b", f(0.0)),
        ],
        ty(Fp32, &[2, 3]),
    );
}
