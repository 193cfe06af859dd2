//! Gather/scatter, reductions, image resizing, recurrent, random, control flow, states,
//! compression and quantization, SDPA — against coremltools' tests
//! (`coremltools/converters/mil/mil/ops/tests/iOS14…iOS18/test_*.py`) and op docstrings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use std::collections::BTreeMap;

use anekit_mil::ops::{Arg, infer};
use anekit_mil::types::{Dim, ValueType};
use anekit_mil::value::{Placement, Storage, TensorData, Value, ValueData};
use ops_support::*;

#[test]
fn gather_family() {
    // iOS14/test_scatter_gather.py TestGather.test_builder_to_backend_smoke: x (2, 3), indices (2,)
    for (axis, want) in [
        (Some(0), [2, 3]),
        (Some(1), [2, 2]),
        (Some(-2), [2, 3]),
        (Some(-1), [2, 2]),
        (None, [2, 3]),
    ] {
        let mut a = vec![("x", x(Fp32, &[2, 3])), ("indices", x(Int32, &[2]))];
        if let Some(ax) = axis {
            a.push(("axis", int(ax)));
        }
        expect1("gather", Ios15, &a, ty(Fp32, &want));
    }
    // scalar indices drop the axis
    expect1(
        "gather",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", int(1)),
            ("axis", int(1)),
        ],
        ty(Fp32, &[2]),
    );
    expect_err(
        "gather",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2])),
            ("axis", int(2)),
        ],
        Some("axis"),
    );
    // iOS16/test_scatter_gather.py TestGather batch_dims: x (2, 2, 3), indices (2, 2, 2)
    for (axis, bd, want) in [
        (1, 0, &[2, 2, 2, 2, 3][..]),
        (1, 1, &[2, 2, 2, 3]),
        (2, 0, &[2, 2, 2, 2, 2]),
        (2, 1, &[2, 2, 2, 2]),
        (2, 2, &[2, 2, 2]),
    ] {
        expect1(
            "gather",
            Ios16,
            &[
                ("x", x(Fp16, &[2, 2, 3])),
                ("indices", x(Uint16, &[2, 2, 2])),
                ("axis", int(axis)),
                ("batch_dims", int(bd)),
            ],
            ty(Fp16, want),
        );
    }
    // uint16 indices are iOS16+, batch_dims too
    expect_err(
        "gather",
        Ios15,
        &[("x", x(Fp16, &[2, 3])), ("indices", x(Uint16, &[2]))],
        Some("indices"),
    );
    expect_err(
        "gather",
        Ios15,
        &[
            ("x", x(Fp16, &[2, 3])),
            ("indices", x(Int32, &[2])),
            ("batch_dims", int(0)),
        ],
        Some("batch_dims"),
    );
    // iOS17 validate_indices (TestGather.test_builder_invalid_indices)
    expect_err(
        "gather",
        Ios17,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", ints(&[1, 3])),
            ("axis", int(-1)),
            ("validate_indices", b(true)),
        ],
        Some("indices"),
    );
    expect1(
        "gather",
        Ios17,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", ints(&[1, 3])),
            ("axis", int(-1)),
        ],
        ty(Fp32, &[2, 2]),
    );
    // TestGatherAlongAxis: output has the indices' shape
    expect1(
        "gather_along_axis",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2, 3])),
            ("axis", int(0)),
        ],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "gather_along_axis",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2, 1])),
            ("axis", int(1)),
        ],
        ty(Fp32, &[2, 1]),
    );
    expect_err(
        "gather_along_axis",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[3, 1])),
            ("axis", int(1)),
        ],
        Some("indices"),
    );
    // TestGatherNd: x (2, 3), indices (2, 2) → (2,); iOS16 batch_dims on (2, 2, 3) x (2, 2, 2)
    expect1(
        "gather_nd",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("indices", x(Int32, &[2, 2]))],
        ty(Fp32, &[2]),
    );
    expect1(
        "gather_nd",
        Ios16,
        &[
            ("x", x(Fp32, &[2, 2, 3])),
            ("indices", x(Int32, &[2, 2, 2])),
            ("batch_dims", int(0)),
        ],
        ty(Fp32, &[2, 2, 3]),
    );
    expect1(
        "gather_nd",
        Ios16,
        &[
            ("x", x(Fp32, &[2, 2, 3])),
            ("indices", x(Int32, &[2, 2, 2])),
            ("batch_dims", int(1)),
        ],
        ty(Fp32, &[2, 2]),
    );
    // scatter family keeps data's type
    expect1(
        "scatter",
        Ios15,
        &[
            ("data", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2])),
            ("updates", x(Fp32, &[2, 3])),
        ],
        ty(Fp32, &[2, 3]),
    );
    expect_err(
        "scatter",
        Ios15,
        &[
            ("data", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2])),
            ("updates", x(Fp32, &[3, 3])),
        ],
        Some("updates"),
    );
    expect1(
        "scatter_along_axis",
        Ios17,
        &[
            ("data", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2, 3])),
            ("updates", x(Fp32, &[2, 3])),
            ("axis", int(0)),
            ("mode", s("update")),
        ],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "scatter_nd",
        Ios15,
        &[
            ("data", x(Fp32, &[2, 3])),
            ("indices", x(Int32, &[2, 2])),
            ("updates", x(Fp32, &[2])),
        ],
        ty(Fp32, &[2, 3]),
    );
}

/// iOS14/test_scatter_gather.py test_gather_value_inference_on_symbolic_input: gathering
/// from `shape(x)` of x (2, 3, s1, s2, 5) gives 2, [2, 3], and [3, s1, s2].
#[test]
fn gather_value_inference_on_symbolic_input() {
    let m = |pairs: Vec<(&str, Arg)>| -> BTreeMap<String, Vec<Arg>> {
        pairs
            .into_iter()
            .map(|(k, a)| (k.to_string(), vec![a]))
            .collect()
    };
    let shape = infer(
        "shape",
        Ios15,
        &m(vec![("x", x(Fp32, &[2, 3, -1, -1, 5]))]),
        &[],
    )
    .unwrap();
    let mut sh = Arg::var(shape.outputs[0].clone());
    sh.sym = shape.sym;
    for (idx, want) in [
        (int(0), vec![Some(2)]),
        (ints(&[0, 1]), vec![Some(2), Some(3)]),
        (ints(&[1, 2, 3]), vec![Some(3), None, None]),
    ] {
        let g = infer(
            "gather",
            Ios15,
            &m(vec![("x", sh.clone()), ("indices", idx), ("axis", int(0))]),
            &[],
        )
        .unwrap();
        assert_eq!(g.sym, Some(want));
    }
}

#[test]
fn reductions() {
    // iOS14/test_reduction.py TestReduction.test_builder_to_backend_smoke: x (2, 3), axis 1
    for op in [
        "reduce_l1_norm",
        "reduce_l2_norm",
        "reduce_log_sum",
        "reduce_log_sum_exp",
        "reduce_max",
        "reduce_mean",
        "reduce_min",
        "reduce_prod",
        "reduce_sum",
        "reduce_sum_square",
    ] {
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[2, 3])),
                ("axes", ints(&[1])),
                ("keep_dims", b(false)),
            ],
            ty(Fp32, &[2]),
        );
        // test_builder_to_backend_global_pool_*: all axes kept as 1
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, 2, 3])),
                ("axes", ints(&[2, -1])),
                ("keep_dims", b(true)),
            ],
            ty(Fp32, &[1, 1, 1, 1]),
        );
        expect1(
            op,
            Ios15,
            &[("x", x(Fp32, &[1, 1, 2, 3])), ("keep_dims", b(true))],
            ty(Fp32, &[1, 1, 1, 1]),
        );
        // no axes, no keep_dims: a scalar
        expect1(op, Ios15, &[("x", x(Fp32, &[2, 3]))], ty(Fp32, &[]));
    }
    for op in ["reduce_argmax", "reduce_argmin"] {
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[2, 3])),
                ("axis", int(1)),
                ("keep_dims", b(false)),
            ],
            ty(Int32, &[2]),
        );
        // iOS17/test_reduction.py test_reduce_arg_ios17_output_dtype
        expect1(
            op,
            Ios17,
            &[
                ("x", x(Fp32, &[2, 3])),
                ("axis", int(1)),
                ("output_dtype", s("uint16")),
            ],
            ty(Uint16, &[2]),
        );
        expect_err(
            op,
            Ios17,
            &[
                ("x", x(Fp32, &[2, 3])),
                ("axis", int(1)),
                ("output_dtype", s("dummy")),
            ],
            Some("output_dtype"),
        );
        // output_dtype does not exist before iOS17
        expect_err(
            op,
            Ios16,
            &[("x", x(Fp32, &[2, 3])), ("output_dtype", s("int32"))],
            Some("output_dtype"),
        );
    }
    expect_err(
        "reduce_sum",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("axes", ints(&[2]))],
        Some("axes"),
    );
}

#[test]
fn image_resizing() {
    // iOS14/test_image_resizing.py TestResizeNearestNeighbor: x (1, 1, 2, 1)
    expect1(
        "resize_nearest_neighbor",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 1, 2, 1])),
            ("target_size_height", int(2)),
            ("target_size_width", int(3)),
        ],
        ty(Fp32, &[1, 1, 2, 3]),
    );
    // iOS15/test_image_resizing.py TestUpsampleNearestNeighborFractionalScales: x (1, 1, 1, 3)
    for (sh, sw, want) in [
        (1.0, 1.0, [1, 1, 1, 3]),
        (3.17, 0.67, [1, 1, 3, 2]),
        (2.0, 1.12, [1, 1, 2, 3]),
    ] {
        expect1(
            "upsample_nearest_neighbor",
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, 1, 3])),
                ("scale_factor_height", f(sh)),
                ("scale_factor_width", f(sw)),
            ],
            ty(Fp32, &want),
        );
    }
    // iOS14 TestUpsampleNearestNeighbor: integer factor 2 on the width
    expect1(
        "upsample_nearest_neighbor",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 1, 2, 2])),
            ("scale_factor_height", int(1)),
            ("scale_factor_width", int(2)),
        ],
        ty(Fp32, &[1, 1, 2, 4]),
    );
    expect1(
        "upsample_bilinear",
        Ios16,
        &[
            ("x", x(Fp32, &[1, 3, 4, -1])),
            ("scale_factor_height", f(2.0)),
            ("scale_factor_width", f(2.0)),
            ("half_pixel_centers", b(true)),
        ],
        ty(Fp32, &[1, 3, 8, -1]),
    );
    expect_err(
        "upsample_bilinear",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 4, 4])),
            ("half_pixel_centers", b(true)),
        ],
        Some("half_pixel_centers"),
    );
    expect1(
        "resize_bilinear",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 1, 2, 2])),
            ("target_size_height", int(4)),
            ("target_size_width", int(5)),
            ("sampling_mode", s("ALIGN_CORNERS")),
        ],
        ty(Fp32, &[1, 1, 4, 5]),
    );
    // iOS14 TestCrop: crop_height [0, 1], crop_width [1, 1] on (1, 1, 4, 4)
    expect1(
        "crop",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 1, 4, 4])),
            ("crop_height", ints(&[0, 1])),
            ("crop_width", ints(&[1, 1])),
        ],
        ty(Fp32, &[1, 1, 3, 2]),
    );
    // iOS15 TestCropResize (test_crop_resize_with_roi): x (1, 3, 640, 640), roi (1, 1, 4, 1, 1)
    expect1(
        "crop_resize",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 640, 640])),
            ("roi", zeros(Fp32, &[1, 1, 4, 1, 1])),
            ("target_height", int(160)),
            ("target_width", int(160)),
        ],
        ty(Fp32, &[1, 1, 3, 160, 160]),
    );
    // iOS17/test_image_resizing.py TestCropResize: boxes (N, 4) → (N, C, h, w)
    expect1(
        "crop_resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 4, 4])),
            ("boxes", zeros(Fp32, &[1, 4])),
            ("target_height", int(2)),
            ("target_width", int(2)),
        ],
        ty(Fp32, &[1, 1, 2, 2]),
    );
    // three boxes but no box_indices for a batch of 1
    expect_err(
        "crop_resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 4, 4])),
            ("boxes", zeros(Fp32, &[3, 4])),
        ],
        Some("boxes"),
    );
    expect_err(
        "crop_resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 4, 4])),
            ("boxes", zeros(Fp32, &[1, 4])),
            ("box_indices", x(Int32, &[1, 1])),
        ],
        Some("box_indices"),
    );
    // iOS15 TestAffine: output_height/width
    let affine = |h, w| {
        vec![
            ("x", x(Fp32, &[1, 1, 2, 2])),
            ("transform_matrix", x(Fp32, &[1, 6])),
            ("output_height", int(h)),
            ("output_width", int(w)),
            ("sampling_mode", s("bilinear")),
            ("padding_mode", s("constant")),
            ("padding_value", f(0.0)),
            ("coordinates_mode", s("normalized_minus_one_to_one")),
            ("align_corners", b(true)),
        ]
    };
    expect1("affine", Ios15, &affine(3, 3), ty(Fp32, &[1, 1, 3, 3]));
    expect1("affine", Ios15, &affine(2, 5), ty(Fp32, &[1, 1, 2, 5]));
    // iOS15 TestResample: coordinates (1, 2, 2, 2) → (1, 1, 2, 2); int32 coordinates iOS15,
    // fp16 from iOS16, int8 from iOS17
    let resample = |c| {
        vec![
            ("x", x(Fp32, &[1, 1, 2, 2])),
            ("coordinates", c),
            ("sampling_mode", s("bilinear")),
            ("padding_mode", s("constant")),
            ("padding_value", f(6.17)),
            ("coordinates_mode", s("normalized_minus_one_to_one")),
            ("align_corners", b(true)),
        ]
    };
    expect1(
        "resample",
        Ios15,
        &resample(x(Int32, &[1, 2, 2, 2])),
        ty(Fp32, &[1, 1, 2, 2]),
    );
    expect_err(
        "resample",
        Ios15,
        &resample(x(Fp16, &[1, 2, 2, 2])),
        Some("coordinates"),
    );
    expect1(
        "resample",
        Ios16,
        &resample(x(Fp16, &[1, 2, 2, 2])),
        ty(Fp32, &[1, 1, 2, 2]),
    );
    expect1(
        "resample",
        Ios17,
        &resample(x(Int8, &[1, 3, 5, 2])),
        ty(Fp32, &[1, 1, 3, 5]),
    );
    // iOS17 TestResize: shape values from the end of `shape`; run-time shape → unknown dims
    let u32c = |v: i64| ints_of(Uint32, &[], &[v]);
    expect1(
        "resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 1, 2, 1])),
            ("shape", ints(&[1, 1, 3, 2])),
            ("resized_dims", u32c(2)),
        ],
        ty(Fp32, &[1, 1, 1, 3, 2]),
    );
    expect1(
        "resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 2, 1])),
            ("shape", x(Int32, &[4])),
            ("resized_dims", u32c(2)),
        ],
        ty(Fp32, &[1, 1, -1, -1]),
    );
    expect1(
        "resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 1, 2])),
            ("shape", ints(&[1, 1, 5])),
            ("resized_dims", u32c(2)),
        ],
        ty(Fp32, &[1, 1, 5]),
    );
    expect_err(
        "resize",
        Ios17,
        &[
            ("x", x(Fp32, &[1, 2])),
            ("shape", ints(&[1, 1, 5])),
            ("resized_dims", u32c(2)),
        ],
        Some("shape"),
    );
}

#[test]
fn recurrent() {
    // iOS15/recurrent.py docstrings: x [s, b, I]; lstm outputs [s|1, b, D*H], [b, D*H] ×2
    let lstm = |o, dir: &str, seq: bool, dtype| {
        let mut a = vec![
            ("x", x(dtype, &[7, 2, 5])),
            ("initial_h", x(dtype, &[2, 8])),
            ("initial_c", x(dtype, &[2, 8])),
            ("weight_ih", zeros(dtype, &[16, 5])),
            ("weight_hh", zeros(dtype, &[16, 4])),
            ("direction", s(dir)),
            ("output_sequence", b(seq)),
        ];
        if dir == "bidirectional" {
            a.push(("weight_ih_back", zeros(dtype, &[16, 5])));
            a.push(("weight_hh_back", zeros(dtype, &[16, 4])));
        }
        run("lstm", o, &a)
    };
    assert_eq!(
        lstm(Ios15, "forward", true, Fp32).unwrap(),
        vec![ty(Fp32, &[7, 2, 4]), ty(Fp32, &[2, 4]), ty(Fp32, &[2, 4])]
    );
    assert_eq!(
        lstm(Ios17, "bidirectional", false, Fp16).unwrap(),
        vec![ty(Fp16, &[1, 2, 8]), ty(Fp16, &[2, 8]), ty(Fp16, &[2, 8])]
    );
    // fp16 lstm only from iOS17 (iOS17/recurrent.py)
    assert_eq!(
        lstm(Ios16, "forward", true, Fp16).unwrap_err().param(),
        Some("x")
    );
    assert_eq!(
        lstm(Ios15, "sideways", true, Fp32).unwrap_err().param(),
        Some("direction")
    );
    // gru: weight_hh [3H, H]; rnn: weight_ih [H, I]
    let gru = |o, extra: Vec<(&'static str, Arg)>| {
        let mut a = vec![
            ("x", x(Fp32, &[7, 2, 5])),
            ("initial_h", x(Fp32, &[2, 4])),
            ("weight_ih", zeros(Fp32, &[12, 5])),
            ("weight_hh", zeros(Fp32, &[12, 4])),
            ("output_sequence", b(true)),
        ];
        a.extend(extra);
        run("gru", o, &a)
    };
    assert_eq!(
        gru(Ios15, vec![]).unwrap(),
        vec![ty(Fp32, &[7, 2, 4]), ty(Fp32, &[2, 4])]
    );
    // iOS18/recurrent.py adds reset_after and input_bias
    assert!(
        gru(
            Ios18,
            vec![("reset_after", b(true)), ("input_bias", zeros(Fp32, &[12]))]
        )
        .is_ok()
    );
    assert_eq!(
        gru(Ios17, vec![("reset_after", b(true))])
            .unwrap_err()
            .param(),
        Some("reset_after")
    );
    expect(
        "rnn",
        Ios15,
        &[
            ("x", x(Fp32, &[-1, 2, 5])),
            ("initial_h", x(Fp32, &[2, 3])),
            ("weight_ih", zeros(Fp32, &[3, 5])),
            ("weight_hh", zeros(Fp32, &[3, 3])),
            ("output_sequence", b(true)),
        ],
        &[ty(Fp32, &[-1, 2, 3]), ty(Fp32, &[2, 3])],
    );
}

#[test]
fn random_ops() {
    // iOS14/test_random.py: shape from the shape vector, type of the distribution parameters
    expect1(
        "random_normal",
        Ios15,
        &[
            ("shape", ints(&[2, 3])),
            ("mean", f(0.0)),
            ("stddev", f(1.0)),
        ],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "random_uniform",
        Ios15,
        &[("shape", x(Int32, &[2]))],
        ty(Fp32, &[-1, -1]),
    );
    expect1(
        "random_bernoulli",
        Ios15,
        &[("shape", ints(&[4])), ("prob", h(0.5))],
        ty(Fp16, &[4]),
    );
    expect1(
        "random_categorical",
        Ios15,
        &[("x", x(Fp32, &[2, 10])), ("size", int(5))],
        ty(Fp32, &[2, 5]),
    );
    expect_err(
        "random_normal",
        Ios15,
        &[("shape", ints(&[2])), ("mean", f(0.0)), ("stddev", h(1.0))],
        Some("stddev"),
    );
}

fn list_ty(dtype: anekit_mil::DataType, elem: &[i64], len: i64) -> ValueType {
    ValueType::List {
        element: Box::new(ty(dtype, elem)),
        length: dims(&[len])[0],
    }
}

#[test]
fn control_flow_and_lists() {
    // cond: outputs of the branches (iOS14/test_control_flow.py TestCond)
    let got = run_multi(
        "cond",
        Ios15,
        &[("pred", vec![x(Bool, &[])])],
        &[vec![ty(Fp32, &[1])], vec![ty(Fp32, &[1])]],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[1])]);
    assert!(
        run_multi(
            "cond",
            Ios15,
            &[("pred", vec![x(Bool, &[])])],
            &[vec![ty(Fp32, &[1])], vec![ty(Int32, &[1])]]
        )
        .is_err()
    );
    // while_loop: outputs of the body (TestWhileLoop), a bool from the cond block
    let got = run_multi(
        "while_loop",
        Ios15,
        &[("loop_vars", vec![x(Fp32, &[1]), x(Int32, &[])])],
        &[vec![ty(Bool, &[])], vec![ty(Fp32, &[1]), ty(Int32, &[])]],
    )
    .unwrap();
    assert_eq!(got, vec![ty(Fp32, &[1]), ty(Int32, &[])]);
    assert!(
        run_multi(
            "while_loop",
            Ios15,
            &[("loop_vars", vec![x(Fp32, &[1])])],
            &[vec![ty(Fp32, &[])], vec![ty(Fp32, &[1])]]
        )
        .is_err()
    );
    // TestList: make_list(elem_shape (2, s?)), list ops
    let got = run_multi(
        "make_list",
        Ios15,
        &[
            ("init_length", vec![int(3)]),
            ("elem_shape", vec![int(2), s("s0")]),
            ("dtype", vec![s("fp16")]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(got, vec![list_ty(Fp16, &[2, -1], 3)]);
    let ls = || Arg::var(list_ty(Fp32, &[2, 3], 4));
    expect1("list_length", Ios15, &[("ls", ls())], ty(Int32, &[]));
    expect1(
        "list_read",
        Ios15,
        &[("ls", ls()), ("index", int(0))],
        ty(Fp32, &[2, 3]),
    );
    expect1(
        "list_write",
        Ios15,
        &[("ls", ls()), ("index", int(0)), ("value", x(Fp32, &[2, 3]))],
        list_ty(Fp32, &[2, 3], 4),
    );
    expect_err(
        "list_write",
        Ios15,
        &[("ls", ls()), ("index", int(0)), ("value", x(Fp32, &[3, 3]))],
        Some("value"),
    );
    expect1(
        "list_gather",
        Ios15,
        &[("ls", ls()), ("indices", ints(&[0, 2]))],
        ty(Fp32, &[2, 2, 3]),
    );
    expect1(
        "list_scatter",
        Ios15,
        &[
            ("ls", ls()),
            ("indices", ints(&[0, 2])),
            ("value", x(Fp32, &[2, 2, 3])),
        ],
        list_ty(Fp32, &[2, 3], 4),
    );
    // const: the type of its value
    expect1(
        "const",
        Ios15,
        &[("val", ints(&[1, 2, 3]))],
        ty(Int32, &[3]),
    );
}

#[test]
fn classify_and_states() {
    // iOS15/classify.py: (class, {class: prob}) for a string-class list matching the size
    let classes = Value {
        ty: ValueType::List {
            element: Box::new(ty(anekit_mil::DataType::String, &[])),
            length: Dim::Fixed(3),
        },
        data: ValueData::List(vec![
            Value::string("a"),
            Value::string("b"),
            Value::string("c"),
        ]),
        doc: String::new(),
    };
    let got = run(
        "classify",
        Ios15,
        &[
            ("probabilities", x(Fp32, &[1, 3])),
            ("classes", Arg::literal(classes.clone())),
        ],
    )
    .unwrap();
    let key = ValueType::scalar(anekit_mil::DataType::String);
    assert_eq!(
        got,
        vec![
            key.clone(),
            ValueType::Dict {
                key: Box::new(key),
                value: Box::new(ValueType::scalar(Fp64))
            }
        ]
    );
    expect_err(
        "classify",
        Ios15,
        &[
            ("probabilities", x(Fp32, &[1, 4])),
            ("classes", Arg::literal(classes)),
        ],
        Some("classes"),
    );
    // iOS18/states.py read_state; write_state (coreml_update_state) has no outputs and
    // needs the wrapped type (iOS18/test_states.py)
    let st = || Arg::var(ValueType::State(Box::new(ty(Fp16, &[1, 4]))));
    expect1("read_state", Ios18, &[("input", st())], ty(Fp16, &[1, 4]));
    expect(
        "write_state",
        Ios18,
        &[("input", st()), ("data", x(Fp16, &[1, 4]))],
        &[],
    );
    expect_err(
        "write_state",
        Ios18,
        &[("input", st()), ("data", x(Fp16, &[1, 5]))],
        Some("data"),
    );
    expect_err(
        "read_state",
        Ios18,
        &[("input", x(Fp16, &[1, 4]))],
        Some("input"),
    );
    assert!(run("read_state", Ios17, &[("input", st())]).is_err());
}

/// A uint8/uint1/... constant from raw bytes.
fn raw(dtype: anekit_mil::DataType, d: &[u64], bytes: Vec<u8>) -> Arg {
    Arg::literal(Value {
        ty: ty(dtype, &d.iter().map(|v| *v as i64).collect::<Vec<_>>()),
        data: ValueData::Tensor(TensorData {
            storage: Storage::Bytes(bytes.into()),
            placement: Placement::Inline,
        }),
        doc: String::new(),
    })
}

#[test]
fn constexpr_ios16() {
    // iOS16/test_constexpr_ops.py TestConstexprAffineDequantize: scale's type, data's shape
    expect1(
        "constexpr_affine_dequantize",
        Ios16,
        &[
            ("quantized_data", ints_of(Uint8, &[2, 2], &[1, 2, 3, 4])),
            ("zero_point", ints_of(Uint8, &[], &[1])),
            ("scale", f(2.0)),
            ("axis", int(0)),
        ],
        ty(Fp32, &[2, 2]),
    );
    expect_err(
        "constexpr_affine_dequantize",
        Ios16,
        &[
            ("quantized_data", ints_of(Int8, &[2, 3], &[0; 6])),
            ("zero_point", ints_of(Int8, &[], &[0])),
            ("scale", f32s(&[2], &[1.0, 2.0])),
            ("axis", int(1)),
        ],
        Some("scale"),
    );
    // TestConstexprCast: fp16 → fp32 only
    expect1(
        "constexpr_cast",
        Ios16,
        &[
            ("source_val", zeros(Fp16, &[4, 1])),
            ("output_dtype", s("fp32")),
        ],
        ty(Fp32, &[4, 1]),
    );
    expect_err(
        "constexpr_cast",
        Ios16,
        &[
            ("source_val", zeros(Fp16, &[4, 1])),
            ("output_dtype", s("int32")),
        ],
        Some("output_dtype"),
    );
    // TestConstexprLutToDense: 2-bit lut of 4 entries, shape (4, 1) → one index byte
    expect1(
        "constexpr_lut_to_dense",
        Ios16,
        &[
            ("indices", ints_of(Uint8, &[1], &[0b11_10_01_00])),
            ("lut", f32s(&[4], &[1.0, 2.0, 3.0, 4.0])),
            ("shape", ints_of(Uint32, &[2], &[4, 1])),
        ],
        ty(Fp32, &[4, 1]),
    );
    expect_err(
        "constexpr_lut_to_dense",
        Ios16,
        &[
            ("indices", ints_of(Uint8, &[2], &[0, 0])),
            ("lut", f32s(&[4], &[1.0, 2.0, 3.0, 4.0])),
            ("shape", ints_of(Uint32, &[2], &[4, 1])),
        ],
        Some("indices"),
    );
    // TestConstexprSparseToDense: mask bits (LSB first) select the non-zeros
    expect1(
        "constexpr_sparse_to_dense",
        Ios16,
        &[
            ("nonzero_data", f32s(&[2], &[1.0, 2.0])),
            ("mask", raw(Uint8, &[1], vec![0b0000_1001])),
            ("shape", ints_of(Uint32, &[2], &[2, 2])),
        ],
        ty(Fp32, &[2, 2]),
    );
    // a set bit beyond prod(shape), and a count that does not match
    expect_err(
        "constexpr_sparse_to_dense",
        Ios16,
        &[
            ("nonzero_data", f32s(&[2], &[1.0, 2.0])),
            ("mask", raw(Uint8, &[1], vec![0b0001_0001])),
            ("shape", ints_of(Uint32, &[2], &[2, 2])),
        ],
        Some("mask"),
    );
    expect_err(
        "constexpr_sparse_to_dense",
        Ios16,
        &[
            ("nonzero_data", f32s(&[3], &[1.0, 2.0, 3.0])),
            ("mask", raw(Uint8, &[1], vec![0b0000_1001])),
            ("shape", ints_of(Uint32, &[2], &[2, 2])),
        ],
        Some("mask"),
    );
    // none of them before iOS16, and params must be constants
    assert!(
        run(
            "constexpr_cast",
            Ios15,
            &[
                ("source_val", zeros(Fp16, &[4])),
                ("output_dtype", s("fp32"))
            ]
        )
        .is_err()
    );
    expect_err(
        "constexpr_cast",
        Ios16,
        &[("source_val", x(Fp16, &[4])), ("output_dtype", s("fp32"))],
        Some("source_val"),
    );
}

#[test]
fn constexpr_ios18() {
    // iOS18/test_compression.py TestConstexprBlockwiseDequantize.test_builder_eval_basic_8bit
    expect1(
        "constexpr_blockwise_shift_scale",
        Ios18,
        &[
            ("data", zeros(Int8, &[1, 2, 4])),
            ("scale", zeros(Fp16, &[1, 1, 2])),
            ("offset", zeros(Int8, &[1, 1, 2])),
        ],
        ty(Fp16, &[1, 2, 4]),
    );
    // int4 data from another constexpr (joint compression): constant without a value
    expect1(
        "constexpr_blockwise_shift_scale",
        Ios18,
        &[
            ("data", cx(Int4, &[64, 32])),
            ("scale", zeros(Fp32, &[64, 1])),
        ],
        ty(Fp32, &[64, 32]),
    );
    // scale blocks must divide data; offset of scale's shape and data's type (or float)
    expect_err(
        "constexpr_blockwise_shift_scale",
        Ios18,
        &[
            ("data", zeros(Int8, &[1, 2, 4])),
            ("scale", zeros(Fp16, &[1, 1, 3])),
        ],
        Some("scale"),
    );
    expect_err(
        "constexpr_blockwise_shift_scale",
        Ios18,
        &[
            ("data", zeros(Int8, &[1, 2, 4])),
            ("scale", zeros(Fp16, &[1, 1, 2])),
            ("offset", zeros(Uint8, &[1, 1, 2])),
        ],
        Some("offset"),
    );
    // TestConstexprLut: indices (2, 4, 2) uint8, lut (1, 2, 1, 256, 3), vector_axis 0 → (6, 4, 2)
    let lut = || zeros(Fp16, &[1, 2, 1, 256, 3]);
    expect1(
        "constexpr_lut_to_dense",
        Ios18,
        &[
            ("indices", zeros(Uint8, &[2, 4, 2])),
            ("lut", lut()),
            ("vector_axis", int(0)),
        ],
        ty(Fp16, &[6, 4, 2]),
    );
    expect_err(
        "constexpr_lut_to_dense",
        Ios18,
        &[("indices", zeros(Uint8, &[2, 4, 2])), ("lut", lut())],
        Some("vector_axis"),
    );
    // 4-bit indices need 16 palettes
    expect1(
        "constexpr_lut_to_dense",
        Ios18,
        &[
            ("indices", zeros(Uint4, &[32, 16])),
            ("lut", zeros(Fp16, &[2, 1, 16, 1])),
        ],
        ty(Fp16, &[32, 16]),
    );
    expect_err(
        "constexpr_lut_to_dense",
        Ios18,
        &[
            ("indices", zeros(Uint2, &[32, 16])),
            ("lut", zeros(Fp16, &[2, 1, 16, 1])),
        ],
        Some("indices"),
    );
    // sparse: the mask (uint1, dense shape) has as many ones as non-zeros
    let mask = ints_of(Uint1, &[2, 4], &[1, 0, 0, 1, 0, 1, 0, 0]);
    expect1(
        "constexpr_sparse_to_dense",
        Ios18,
        &[("nonzero_data", zeros(Fp16, &[3])), ("mask", mask.clone())],
        ty(Fp16, &[2, 4]),
    );
    expect_err(
        "constexpr_sparse_to_dense",
        Ios18,
        &[("nonzero_data", zeros(Fp16, &[2])), ("mask", mask.clone())],
        Some("mask"),
    );
    // lut_to_sparse: (mask, values); vector lut widens both
    expect(
        "constexpr_lut_to_sparse",
        Ios18,
        &[
            ("indices_mask", mask.clone()),
            ("indices_nonzero_data", zeros(Uint1, &[3])),
            ("lut", zeros(Fp16, &[1, 1, 2, 2])),
            ("vector_axis", int(1)),
        ],
        &[ty(Uint1, &[2, 8]), ty(Fp16, &[6])],
    );
    expect(
        "constexpr_sparse_blockwise_shift_scale",
        Ios18,
        &[
            ("data_mask", mask),
            ("nonzero_data", zeros(Int8, &[3])),
            ("scale", zeros(Fp16, &[2, 1])),
        ],
        &[ty(Uint1, &[2, 4]), ty(Fp16, &[3])],
    );
    // iOS18 constexpr_cast takes inputs, same semantics
    expect1(
        "constexpr_cast",
        Ios18,
        &[
            ("source_val", zeros(Fp16, &[3])),
            ("output_dtype", s("fp32")),
        ],
        ty(Fp32, &[3]),
    );
}

#[test]
fn quantize_dequantize() {
    // iOS17/test_quantization.py: per-tensor and per-channel scales
    expect1(
        "quantize",
        Ios17,
        &[
            ("input", x(Fp32, &[2, 3])),
            ("scale", f(0.5)),
            ("zero_point", ints_of(Uint8, &[], &[128])),
            ("output_dtype", s("uint8")),
        ],
        ty(Uint8, &[2, 3]),
    );
    expect1(
        "quantize",
        Ios17,
        &[
            ("input", x(Fp32, &[2, 3])),
            ("scale", f32s(&[3], &[1.0, 2.0, 3.0])),
            ("axis", int(1)),
            ("output_dtype", s("int8")),
        ],
        ty(Int8, &[2, 3]),
    );
    expect_err(
        "quantize",
        Ios17,
        &[
            ("input", x(Fp32, &[2, 3])),
            ("scale", f32s(&[3], &[1.0, 2.0, 3.0])),
            ("output_dtype", s("int8")),
        ],
        Some("axis"),
    );
    expect_err(
        "quantize",
        Ios17,
        &[
            ("input", x(Fp32, &[2, 3])),
            ("scale", f(0.0)),
            ("output_dtype", s("int8")),
        ],
        Some("scale"),
    );
    expect_err(
        "quantize",
        Ios17,
        &[
            ("input", x(Fp32, &[2, 3])),
            ("scale", f(1.0)),
            ("zero_point", ints_of(Int8, &[], &[0])),
            ("output_dtype", s("uint8")),
        ],
        Some("zero_point"),
    );
    expect1(
        "dequantize",
        Ios17,
        &[
            ("input", x(Int8, &[2, 3])),
            ("scale", h(0.5)),
            ("zero_point", ints_of(Int8, &[], &[0])),
        ],
        ty(Fp16, &[2, 3]),
    );
    assert!(
        run(
            "dequantize",
            Ios16,
            &[("input", x(Int8, &[2, 3])), ("scale", h(0.5))]
        )
        .is_err()
    );
}

#[test]
fn scaled_dot_product_attention() {
    // iOS18/transformers.py docstring: Q [B.., L, E], K [B.., S, E], V [B.., S, EV] → [B.., L, EV]
    expect1(
        "scaled_dot_product_attention",
        Ios18,
        &[
            ("query", x(Fp16, &[1, 4, 7, 16])),
            ("key", x(Fp16, &[1, 4, 9, 16])),
            ("value", x(Fp16, &[1, 4, 9, 32])),
        ],
        ty(Fp16, &[1, 4, 7, 32]),
    );
    // a bool mask broadcasting against [B.., L, S]
    expect1(
        "scaled_dot_product_attention",
        Ios18,
        &[
            ("query", x(Fp32, &[2, 7, 16])),
            ("key", x(Fp32, &[2, 9, 16])),
            ("value", x(Fp32, &[2, 9, 8])),
            ("attn_mask", x(Bool, &[7, 9])),
        ],
        ty(Fp32, &[2, 7, 8]),
    );
    // unknown sequence lengths (iOS18/test_transformers.py dynamic shapes)
    expect1(
        "scaled_dot_product_attention",
        Ios18,
        &[
            ("query", x(Fp16, &[1, -1, 64])),
            ("key", x(Fp16, &[1, -1, 64])),
            ("value", x(Fp16, &[1, -1, 64])),
        ],
        ty(Fp16, &[1, -1, 64]),
    );
    let bad = |k: &[i64], v: &[i64], m: Option<&[i64]>| {
        let mut a = vec![
            ("query", x(Fp16, &[1, 7, 16])),
            ("key", x(Fp16, k)),
            ("value", x(Fp16, v)),
        ];
        if let Some(m) = m {
            a.push(("attn_mask", x(Fp16, m)));
        }
        run("scaled_dot_product_attention", Ios18, &a).unwrap_err()
    };
    assert_eq!(bad(&[1, 9, 8], &[1, 9, 16], None).param(), Some("key"));
    assert_eq!(bad(&[1, 9, 16], &[1, 8, 16], None).param(), Some("value"));
    assert_eq!(
        bad(&[1, 9, 16], &[1, 9, 16], Some(&[7, 8])).param(),
        Some("attn_mask")
    );
    assert_eq!(
        bad(&[1, 9, 16], &[1, 9, 16], Some(&[6, 9])).param(),
        Some("attn_mask")
    );
    assert!(
        run(
            "scaled_dot_product_attention",
            Ios17,
            &[
                ("query", x(Fp16, &[1, 7, 16])),
                ("key", x(Fp16, &[1, 9, 16])),
                ("value", x(Fp16, &[1, 9, 16]))
            ]
        )
        .is_err()
    );
}

#[test]
fn constexpr_packed_size_of_huge_shape_does_not_overflow() {
    // A malformed model: `shape` multiplies out to i64::MAX (7·7·73·127·337·92737·649657,
    // every factor fits uint32), so ceil(n / 8) must not be computed as (n + 7) / 8.
    let shape = || ints_of(Uint32, &[4], &[49, 73 * 127, 337 * 92_737, 649_657]);
    expect_err(
        "constexpr_sparse_to_dense",
        Ios16,
        &[
            ("nonzero_data", f32s(&[1], &[1.0])),
            ("mask", raw(Uint8, &[1], vec![1])),
            ("shape", shape()),
        ],
        Some("mask"),
    );
    expect_err(
        "constexpr_lut_to_dense",
        Ios16,
        &[
            ("indices", ints_of(Uint8, &[1], &[0])),
            ("lut", f32s(&[2], &[1.0, 2.0])),
            ("shape", shape()),
        ],
        Some("indices"),
    );
}
