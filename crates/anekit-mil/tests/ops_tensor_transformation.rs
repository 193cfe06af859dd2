//! Tensor transformations against coremltools' own test expectations
//! (`coremltools/converters/mil/mil/ops/tests/iOS14/test_tensor_transformation.py` unless
//! noted; `UNK_SYM` there is `-1` here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

mod ops_support;

use ops_support::*;

#[test]
fn slice_by_index_type_inference() {
    // TestSliceByIndex.test_type_inference: x (10, s0, s1, s2)
    let xs = x(Fp32, &[10, -1, -1, -1]);
    let cases: Vec<(Vec<(&str, anekit_mil::ops::Arg)>, &[i64])> = vec![
        (
            vec![
                ("begin", ints(&[2, 5, 6, 12])),
                ("end", ints(&[6, 9, 20, -9])),
                ("stride", ints(&[2, 1, 2, 1])),
            ],
            &[2, -1, -1, -1],
        ),
        (
            vec![
                ("begin", ints(&[-2, -5, -3, 9])),
                ("end", ints(&[-6, -9, -6, -7])),
                ("stride", ints(&[-2, -1, -2, 1])),
            ],
            &[2, -1, -1, -1],
        ),
        (
            vec![
                ("begin", ints(&[0, 0, 0, 0])),
                ("end", ints(&[-6, -9, 3, -2])),
                ("stride", ints(&[-2, -3, 1, 2])),
                ("begin_mask", bools(&[true; 4])),
                ("end_mask", bools(&[false; 4])),
            ],
            &[3, -1, -1, -1],
        ),
        (
            vec![
                ("begin", ints(&[-2, 5, -1, -7])),
                ("end", ints(&[0, 0, 0, 0])),
                ("stride", ints(&[-2, -3, 1, -2])),
                ("begin_mask", bools(&[false; 4])),
                ("end_mask", bools(&[true; 4])),
            ],
            &[5, -1, 1, -1],
        ),
        (
            vec![
                ("begin", ints(&[4, -1, 0, -5])),
                ("end", ints(&[4, -1, 0, -5])),
                ("stride", ints(&[1, -1, 2, -2])),
            ],
            &[0, 0, 0, 0],
        ),
        (
            vec![
                ("begin", ints(&[0, -1, 0, 2])),
                ("end", ints(&[2, 0, 0, 2])),
                ("begin_mask", bools(&[false; 4])),
                ("end_mask", bools(&[false, true, true, false])),
                ("stride", ints(&[1, 2, -2, 1])),
            ],
            &[2, 1, 1, 0],
        ),
        (
            vec![
                ("begin", ints(&[0, 2, -3, 0])),
                ("end", ints(&[1, 3, -4, 4])),
                ("begin_mask", bools(&[false; 4])),
                ("end_mask", bools(&[false; 4])),
                ("stride", ints(&[1, 1, -1, 1])),
            ],
            &[1, 1, 1, -1],
        ),
    ];
    for (i, (mut args, want)) in cases.into_iter().enumerate() {
        args.push(("x", xs.clone()));
        let got = run("slice_by_index", Ios15, &args).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(got, vec![ty(Fp32, want)], "case {i}");
    }
}

#[test]
fn slice_by_index_edge_cases() {
    // test_single_element_edge_case
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, 2])),
            ("begin", ints(&[-1, 0, 0])),
            ("end", ints(&[-2, 0, 0])),
            ("stride", ints(&[-1, 1, 1])),
            ("begin_mask", bools(&[false, true, true])),
            ("end_mask", bools(&[false, true, true])),
        ],
        ty(Fp32, &[1, 3, 2]),
    );
    // test_builder_to_backend_smoke: run-time begin/end give unknown dims
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3, 4])),
            ("begin", x(Int32, &[3])),
            ("end", x(Int32, &[3])),
        ],
        ty(Fp32, &[-1, -1, -1]),
    );
    // x[1:2, 1:3, 1:3] (test_builder_eval) with constant bounds; squeeze_mask drops dims
    expect1(
        "slice_by_index",
        Ios17,
        &[
            ("x", x(Fp16, &[2, 3, 4])),
            ("begin", ints(&[1, 1, 1])),
            ("end", ints(&[2, 3, 3])),
        ],
        ty(Fp16, &[1, 2, 2]),
    );
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3, 4])),
            ("begin", ints(&[1, 0, 0])),
            ("end", ints(&[2, 0, 0])),
            ("squeeze_mask", bools(&[true, false, false])),
            ("begin_mask", bools(&[false, true, true])),
            ("end_mask", bools(&[false, true, true])),
        ],
        ty(Fp32, &[3, 4]),
    );
    // begin of the wrong length
    expect_err(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3, 4])),
            ("begin", ints(&[1, 1])),
            ("end", ints(&[2, 3, 3])),
        ],
        Some("begin"),
    );
}

#[test]
fn slice_by_size() {
    // TestSliceBySize.test_builder_to_backend_smoke: size -1 with run-time begin is unknown
    for (size, want) in [([1, 2, 3], [1, 2, 3]), ([-1, 2, -1], [-1, 2, -1])] {
        expect1(
            "slice_by_size",
            Ios15,
            &[
                ("x", x(Fp32, &[2, 3, 4])),
                ("begin", x(Int32, &[3])),
                ("size", ints(&size)),
            ],
            ty(Fp32, &want),
        );
    }
    // test_builder_eval v_2: begin (0, 1, 0), size (-1, -1, 3) → (2, 2, 3)
    expect1(
        "slice_by_size",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 3, 4])),
            ("begin", ints(&[0, 1, 0])),
            ("size", ints(&[-1, -1, 3])),
        ],
        ty(Fp32, &[2, 2, 3]),
    );
}

#[test]
fn expand_dims_and_squeeze() {
    // TestExpandDims.test_builder_to_backend_smoke
    let t = || x(Fp32, &[2, 3]);
    for (axes, want) in [
        (vec![0], vec![1, 2, 3]),
        (vec![1], vec![2, 1, 3]),
        (vec![2], vec![2, 3, 1]),
        (vec![-1], vec![2, 3, 1]),
        (vec![0, 1], vec![1, 1, 2, 3]),
        (vec![-2, -1], vec![2, 3, 1, 1]),
    ] {
        expect1(
            "expand_dims",
            Ios15,
            &[("x", t()), ("axes", ints(&axes))],
            ty(Fp32, &want),
        );
    }
    // test_builder_to_backend_symbolic
    expect1(
        "expand_dims",
        Ios17,
        &[("x", x(Fp32, &[2, -1])), ("axes", ints(&[1]))],
        ty(Fp32, &[2, 1, -1]),
    );
    expect_err(
        "expand_dims",
        Ios15,
        &[("x", t()), ("axes", ints(&[3]))],
        Some("axes"),
    );
    // TestSqueeze.test_builder_to_backend_smoke: x (1, 1, 3, 1)
    let q = || x(Fp32, &[1, 1, 3, 1]);
    for (axes, want) in [
        (Some(vec![-1]), vec![1, 1, 3]),
        (Some(vec![-3, 0]), vec![3, 1]),
        (Some(vec![0, 1, 3]), vec![3]),
        (None, vec![3]),
    ] {
        let mut args = vec![("x", q())];
        if let Some(a) = axes {
            args.push(("axes", ints(&a)));
        }
        expect1("squeeze", Ios15, &args, ty(Fp32, &want));
    }
    // test_non_single_element_dim: axes on dims that are not 1 (known or unknown) keep them
    expect1(
        "squeeze",
        Ios15,
        &[("x", x(Int32, &[2, -1, 3])), ("axes", ints(&[0, 1, 2]))],
        ty(Int32, &[2, -1, 3]),
    );
    // test_squeeze_invalid_axis
    expect_err(
        "squeeze",
        Ios15,
        &[("x", x(Int32, &[1, 2, 2])), ("axes", ints(&[3]))],
        Some("axes"),
    );
}

#[test]
fn reshape() {
    // TestReshape.test_builder_to_backend_smoke
    let t = || x(Fp32, &[2, 3]);
    for (shape, want) in [
        (vec![3, 2], vec![3, 2]),
        (vec![2, -1], vec![2, 3]),
        (vec![2, 1, 1, 3], vec![2, 1, 1, 3]),
    ] {
        expect1(
            "reshape",
            Ios15,
            &[("x", t()), ("shape", ints(&shape))],
            ty(Fp32, &want),
        );
    }
    // test_builder_to_backend_symbolic: x (2, s0); a run-time shape of length 3 gives 3
    // unknown dims, one of unknown length an unknown rank
    expect1(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, -1])), ("shape", ints(&[2, -1]))],
        ty(Fp32, &[2, -1]),
    );
    expect1(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, -1])), ("shape", ints(&[2, 1, 1, -1]))],
        ty(Fp32, &[2, 1, 1, -1]),
    );
    expect1(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, -1])), ("shape", x(Int32, &[3]))],
        ty(Fp32, &[-1, -1, -1]),
    );
    let unknown_rank = run(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, -1])), ("shape", x(Int32, &[-1]))],
    )
    .unwrap();
    match &unknown_rank[0] {
        anekit_mil::ValueType::Tensor(t) => assert_eq!(
            t.shape.as_deref(),
            Some(&[anekit_mil::Dim::Unknown { variadic: true }][..])
        ),
        other => panic!("{other}"),
    }
    // test_too_many_neg_ones / test_invalid_target_shape / test_invalid_target_shape_with_zero
    expect_err(
        "reshape",
        Ios15,
        &[("x", t()), ("shape", ints(&[-1, -1]))],
        Some("shape"),
    );
    expect_err(
        "reshape",
        Ios15,
        &[("x", t()), ("shape", ints(&[4, -1]))],
        Some("shape"),
    );
    expect_err(
        "reshape",
        Ios15,
        &[("x", t()), ("shape", ints(&[0, 7]))],
        Some("shape"),
    );
    // 0 copies a dim: iOS15 by position (same rank required), iOS17 aligned from the end
    // (iOS17/tensor_transformation.py reshape.replace_zeros_in_shape)
    expect1(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, 3, 4])), ("shape", ints(&[0, 12, 1]))],
        ty(Fp32, &[2, 12, 1]),
    );
    expect_err(
        "reshape",
        Ios15,
        &[("x", x(Fp32, &[2, 3, 4])), ("shape", ints(&[0, 12]))],
        Some("shape"),
    );
    expect1(
        "reshape",
        Ios17,
        &[("x", x(Fp32, &[2, 3, 4])), ("shape", ints(&[6, 0]))],
        ty(Fp32, &[6, 4]),
    );
    expect1(
        "reshape",
        Ios17,
        &[("x", x(Fp32, &[6, 4])), ("shape", ints(&[0, 2, 3, 4]))],
        ty(Fp32, &[1, 2, 3, 4]),
    );
}

#[test]
fn transpose_and_space_ops() {
    // TestTranspose.test_builder_to_backend_smoke / symbolic
    for (perm, want) in [
        ([0, 1], [2, 3]),
        ([1, 0], [3, 2]),
        ([-1, 0], [3, 2]),
        ([-2, -1], [2, 3]),
    ] {
        expect1(
            "transpose",
            Ios15,
            &[("x", x(Fp32, &[2, 3])), ("perm", ints(&perm))],
            ty(Fp32, &want),
        );
    }
    expect1(
        "transpose",
        Ios17,
        &[("x", x(Fp32, &[2, -1])), ("perm", ints(&[1, 0]))],
        ty(Fp32, &[-1, 2]),
    );
    expect_err(
        "transpose",
        Ios15,
        &[("x", x(Fp32, &[2, 3])), ("perm", ints(&[1, 0, 2]))],
        Some("perm"),
    );
    // TestDepthToSpace / TestSpaceToDepth / TestPixelShuffle / iOS16 test_tensor_transformation TestPixelUnshuffle
    expect1(
        "depth_to_space",
        Ios15,
        &[("x", x(Fp32, &[1, 4, 1, 1])), ("block_size", int(2))],
        ty(Fp32, &[1, 1, 2, 2]),
    );
    expect1(
        "space_to_depth",
        Ios15,
        &[("x", x(Fp32, &[1, 1, 2, 2])), ("block_size", int(2))],
        ty(Fp32, &[1, 4, 1, 1]),
    );
    expect1(
        "pixel_shuffle",
        Ios15,
        &[("x", x(Fp32, &[1, 4, 1, 1])), ("upscale_factor", int(2))],
        ty(Fp32, &[1, 1, 2, 2]),
    );
    let u32_2 = ints_of(Uint32, &[], &[2]);
    expect1(
        "pixel_unshuffle",
        Ios16,
        &[("x", x(Fp32, &[1, 1, 2, 2])), ("downscale_factor", u32_2)],
        ty(Fp32, &[1, 4, 1, 1]),
    );
    // TestSpaceToBatch / TestBatchToSpace
    let pads = ints_of(Int32, &[2, 2], &[0, 0, 2, 0]);
    expect1(
        "space_to_batch",
        Ios15,
        &[
            ("x", x(Fp32, &[2, 1, 2, 4])),
            ("block_shape", ints(&[2, 2])),
            ("paddings", pads.clone()),
        ],
        ty(Fp32, &[8, 1, 1, 3]),
    );
    expect1(
        "batch_to_space",
        Ios15,
        &[
            ("x", x(Fp32, &[8, 1, 1, 3])),
            ("block_shape", ints(&[2, 2])),
            ("crops", pads),
        ],
        ty(Fp32, &[2, 1, 2, 4]),
    );
    // TestSlidingWindows.test_builder_to_backend_smoke: x (1, 4, 1, 1), axis 1, size 2
    expect1(
        "sliding_windows",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 4, 1, 1])),
            ("axis", int(1)),
            ("size", int(2)),
        ],
        ty(Fp32, &[1, 3, 2, 1, 1]),
    );
    // (9 - 3) // 2 + 1 = 4 windows of 3
    expect1(
        "sliding_windows",
        Ios17,
        &[
            ("x", x(Fp16, &[1, 9])),
            ("axis", int(-1)),
            ("size", int(3)),
            ("stride", int(2)),
        ],
        ty(Fp16, &[1, 4, 3]),
    );
}

#[test]
fn reshape_like() {
    // iOS16/test_tensor_transformation.py TestReshapeLike.test_builder_to_backend_smoke:
    // (input shape, ref shapes, begins, ends, end_masks) → concatenated ref-shape slices
    let cases: [(&[i64], [&[i64]; 2], [i32; 2], [i32; 2], [bool; 2], &[i64]); 3] = [
        (
            &[4, 3],
            [&[2, 2, 3], &[1, 3]],
            [0, 1],
            [2, 2],
            [false, false],
            &[2, 2, 3],
        ),
        (
            &[32],
            [&[1, 2, 2, 2], &[3, 2, 2]],
            [1, 1],
            [0, 0],
            [true, true],
            &[2, 2, 2, 2, 2],
        ),
        (
            &[72, 1],
            [&[1, 2, 3, 4, 1], &[3]],
            [1, 0],
            [0, 1],
            [true, false],
            &[2, 3, 4, 1, 3],
        ),
    ];
    for (input, refs, begins, ends, masks, want) in cases {
        for o in [Ios16, Ios17] {
            let got = run_multi(
                "reshape_like",
                o,
                &[
                    ("x", vec![x(Int32, input)]),
                    ("ref_tensors", refs.iter().map(|r| x(Fp16, r)).collect()),
                    ("begins", begins.iter().map(|v| int(*v)).collect()),
                    ("ends", ends.iter().map(|v| int(*v)).collect()),
                    ("end_masks", masks.iter().map(|v| b(*v)).collect()),
                ],
                &[],
            )
            .unwrap();
            assert_eq!(got, vec![ty(Int32, want)], "{input:?} in {o}");
        }
    }
}

#[test]
fn slice_update() {
    // iOS18/test_tensor_transformation.py TestSliceUpdate: x (2, 3, 4)
    let args = |upd: &[i64], begin, end, stride: Option<&[i32]>| {
        let mut a = vec![
            ("x", x(Fp16, &[2, 3, 4])),
            ("update", x(Fp16, upd)),
            ("begin", begin),
            ("end", end),
        ];
        if let Some(st) = stride {
            a.push(("stride", ints(st)));
        }
        a
    };
    // test_builder_to_backend_smoke: run-time and constant begin/end
    expect1(
        "slice_update",
        Ios18,
        &args(&[1, 2, 2], x(Int32, &[3]), x(Int32, &[3]), None),
        ty(Fp16, &[2, 3, 4]),
    );
    expect1(
        "slice_update",
        Ios18,
        &args(&[1, 2, 2], ints(&[1, 1, 1]), ints(&[2, 3, 3]), None),
        ty(Fp16, &[2, 3, 4]),
    );
    // test_stress: x[1:2, 1:3, 1:4:2] and x[-3:-1, -3:-1, -3:-1] take (1, 2, 2) updates
    expect1(
        "slice_update",
        Ios18,
        &args(
            &[1, 2, 2],
            ints(&[1, 1, 1]),
            ints(&[2, 3, 4]),
            Some(&[1, 1, 2]),
        ),
        ty(Fp16, &[2, 3, 4]),
    );
    expect1(
        "slice_update",
        Ios18,
        &args(&[1, 2, 2], ints(&[-3, -3, -3]), ints(&[-1, -1, -1]), None),
        ty(Fp16, &[2, 3, 4]),
    );
    // an update of another shape
    expect_err(
        "slice_update",
        Ios18,
        &args(&[1, 3, 2], ints(&[1, 1, 1]), ints(&[2, 3, 3]), None),
        Some("update"),
    );
    assert!(
        run(
            "slice_update",
            Ios17,
            &args(&[1, 2, 2], ints(&[1, 1, 1]), ints(&[2, 3, 3]), None)
        )
        .is_err(),
        "slice_update is iOS18"
    );
}

#[test]
fn slice_by_index_of_huge_dim_does_not_overflow() {
    // A malformed model can declare a dimension of i64::MAX; ceil(dim / stride) must not be
    // computed as (dim + stride - 1) / stride.
    let big = i64::MAX;
    let want = big / 2 + 1;
    // begin and end masked
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[big])),
            ("begin", ints(&[0])),
            ("end", ints(&[0])),
            ("stride", ints(&[2])),
            ("begin_mask", bools(&[true])),
            ("end_mask", bools(&[true])),
        ],
        ty(Fp32, &[want]),
    );
    // end masked only
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[big])),
            ("begin", ints(&[0])),
            ("end", ints(&[0])),
            ("stride", ints(&[2])),
            ("end_mask", bools(&[true])),
        ],
        ty(Fp32, &[want]),
    );
    // negative stride from the end, begin masked
    expect1(
        "slice_by_index",
        Ios15,
        &[
            ("x", x(Fp32, &[big])),
            ("begin", ints(&[0])),
            ("end", ints(&[0])),
            ("stride", ints(&[-2])),
            ("begin_mask", bools(&[true])),
            ("end_mask", bools(&[true])),
        ],
        ty(Fp32, &[want]),
    );
}

#[test]
fn sliding_windows_of_huge_dim_does_not_overflow() {
    // (i64::MAX - 0) // 1 + 1 windows does not fit: an error, not an overflow.
    expect_err(
        "sliding_windows",
        Ios15,
        &[
            ("x", x(Fp32, &[i64::MAX])),
            ("axis", int(0)),
            ("size", int(0)),
        ],
        None,
    );
}
