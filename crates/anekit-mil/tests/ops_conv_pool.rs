//! Convolution and pooling output sizes. The oracle is what coremltools' tests compare with
//! (`ops/tests/iOS14/test_conv.py` and `test_pool.py` check against PyTorch, whose output
//! sizes are `floor((H + 2p - d(k-1) - 1) / s) + 1` for conv/pool and
//! `(H-1)s - 2p + d(k-1) + 1` for transposed conv), plus the listed coremltools cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use ops_support::*;

fn torch_conv(h: i64, k: i64, s: i64, d: i64, p: i64) -> i64 {
    (h + 2 * p - d * (k - 1) - 1).div_euclid(s) + 1
}

fn torch_deconv(h: i64, k: i64, s: i64, d: i64, p: i64) -> i64 {
    (h - 1) * s - 2 * p + d * (k - 1) + 1
}

#[test]
fn conv_custom_padding_strides_dilations() {
    for (h, w, k, s, d, p) in [
        (10, 12, 3, 2, 2, 1),
        (7, 7, 3, 1, 1, 0),
        (32, 17, 5, 3, 1, 2),
        (9, 9, 2, 2, 3, 1),
    ] {
        for o in [Ios15, Ios17] {
            expect1(
                "conv",
                o,
                &[
                    ("x", x(Fp32, &[1, 4, h, w])),
                    ("weight", zeros(Fp32, &[6, 4, k as u64, k as u64])),
                    ("strides", ints(&[s as i32; 2])),
                    ("dilations", ints(&[d as i32; 2])),
                    ("pad_type", s_("custom")),
                    ("pad", ints(&[p as i32; 4])),
                ],
                ty(
                    Fp32,
                    &[1, 6, torch_conv(h, k, s, d, p), torch_conv(w, k, s, d, p)],
                ),
            );
        }
    }
    // 1-d and 3-d
    expect1(
        "conv",
        Ios15,
        &[
            ("x", x(Fp16, &[2, 3, 20])),
            ("weight", zeros(Fp16, &[5, 3, 4])),
            ("strides", ints(&[3])),
        ],
        ty(Fp16, &[2, 5, torch_conv(20, 4, 3, 1, 0)]),
    );
    expect1(
        "conv",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 2, 6, 7, 8])),
            ("weight", zeros(Fp32, &[4, 2, 3, 3, 3])),
        ],
        ty(Fp32, &[1, 4, 4, 5, 6]),
    );
}

fn s_(v: &str) -> anekit_mil::ops::Arg {
    s(v)
}

#[test]
fn conv_same_padding_and_groups() {
    // pad_type same: ceil(H / s) (coremltools aggregated_pad), same_lower only from iOS16
    let same = |o, pt: &str| {
        run(
            "conv",
            o,
            &[
                ("x", x(Fp32, &[1, 2, 10, 11])),
                ("weight", zeros(Fp32, &[3, 2, 3, 4])),
                ("strides", ints(&[3, 2])),
                ("pad_type", s(pt)),
            ],
        )
    };
    assert_eq!(same(Ios15, "same").unwrap(), vec![ty(Fp32, &[1, 3, 4, 6])]);
    assert_eq!(
        same(Ios16, "same_lower").unwrap(),
        vec![ty(Fp32, &[1, 3, 4, 6])]
    );
    assert_eq!(
        same(Ios15, "same_lower").unwrap_err().param(),
        Some("pad_type")
    );
    assert_eq!(same(Ios15, "bogus").unwrap_err().param(), Some("pad_type"));
    // test_type_inference_dynamic_x_with_groups: x (1, s, 256, 256), weight (6, 4, 2, 2), groups 2
    expect1(
        "conv",
        Ios15,
        &[
            ("x", x(Fp32, &[1, -1, 256, 256])),
            ("weight", zeros(Fp32, &[6, 4, 2, 2])),
            ("groups", int(2)),
        ],
        ty(Fp32, &[1, 6, 255, 255]),
    );
    // test_type_inference_cache_no_pad: unknown spatial dims stay unknown
    expect1(
        "conv",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 3, -1, -1])),
            ("weight", zeros(Fp32, &[2, 3, 3, 3])),
            ("strides", ints(&[1, 2])),
            ("dilations", ints(&[3, 4])),
        ],
        ty(Fp32, &[1, 2, -1, -1]),
    );
    // test_invalid_groups / test_invalid_weight / test_invalid_bias / test_invalid_kernel
    let base = |cin: i64, w: &[u64], extra: Vec<(&'static str, anekit_mil::ops::Arg)>| {
        let mut a = vec![("x", x(Fp32, &[1, cin, 8, 8])), ("weight", zeros(Fp32, w))];
        a.extend(extra);
        run("conv", Ios15, &a)
    };
    assert_eq!(
        base(4, &[6, 4, 3, 3], vec![("groups", int(3))])
            .unwrap_err()
            .param(),
        Some("groups")
    );
    assert_eq!(
        base(4, &[6, 3, 3, 3], vec![]).unwrap_err().param(),
        Some("weight")
    );
    assert_eq!(
        base(4, &[6, 4, 3, 3], vec![("bias", zeros(Fp32, &[5]))])
            .unwrap_err()
            .param(),
        Some("bias")
    );
    assert!(
        base(4, &[6, 4, 9, 9], vec![]).is_err(),
        "kernel larger than the input"
    );
    // test_builder_to_backend_stress_weights_input: run-time weights cannot be dilated
    let dyn_w = run(
        "conv",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 4, 8, 8])),
            ("weight", x(Fp32, &[6, 4, 3, 3])),
            ("dilations", ints(&[2, 2])),
        ],
    );
    assert_eq!(dyn_w.unwrap_err().param(), Some("dilations"));
    // iOS17: x and weight may differ in float type (domains T and U)
    expect1(
        "conv",
        Ios17,
        &[
            ("x", x(Fp16, &[1, 4, 8, 8])),
            ("weight", zeros(Fp32, &[6, 4, 3, 3])),
        ],
        ty(Fp16, &[1, 6, 6, 6]),
    );
    assert_eq!(
        run(
            "conv",
            Ios16,
            &[
                ("x", x(Fp16, &[1, 4, 8, 8])),
                ("weight", zeros(Fp32, &[6, 4, 3, 3]))
            ]
        )
        .unwrap_err()
        .param(),
        Some("weight")
    );
}

#[test]
fn conv_transpose() {
    // TestConvTranspose.test_builder_to_backend_stress: C_out = weight.shape[1] * groups
    for (h, k, s, d, p, groups) in [(5, 3, 2, 1, 1, 1), (7, 2, 3, 2, 0, 2), (4, 4, 1, 1, 2, 1)] {
        let cin = groups;
        expect1(
            "conv_transpose",
            Ios15,
            &[
                ("x", x(Fp32, &[1, cin, h, h])),
                ("weight", zeros(Fp32, &[cin as u64, 2, k as u64, k as u64])),
                ("strides", ints(&[s as i32; 2])),
                ("dilations", ints(&[d as i32; 2])),
                ("groups", int(groups as i32)),
                ("pad_type", s_("custom")),
                ("pad", ints(&[p as i32; 4])),
            ],
            ty(
                Fp32,
                &[
                    1,
                    2 * groups,
                    torch_deconv(h, k, s, d, p),
                    torch_deconv(h, k, s, d, p),
                ],
            ),
        );
    }
    // valid: s(H-1) + k; same: sH; output_shape wins (test_symbolic: unknown batch stays)
    expect1(
        "conv_transpose",
        Ios15,
        &[
            ("x", x(Fp32, &[-1, 1, 5])),
            ("weight", zeros(Fp32, &[1, 2, 3])),
            ("strides", ints(&[2])),
        ],
        ty(Fp32, &[-1, 2, 11]),
    );
    expect1(
        "conv_transpose",
        Ios15,
        &[
            ("x", x(Fp32, &[1, 1, 5])),
            ("weight", zeros(Fp32, &[1, 2, 3])),
            ("strides", ints(&[2])),
            ("pad_type", s("same")),
        ],
        ty(Fp32, &[1, 2, 10]),
    );
    expect1(
        "conv_transpose",
        Ios17,
        &[
            ("x", x(Fp16, &[1, 1, 5])),
            ("weight", x(Fp16, &[1, 2, 3])),
            ("strides", ints(&[2])),
            ("output_shape", ints(&[1, 2, 12])),
        ],
        ty(Fp16, &[1, 2, 12]),
    );
    assert!(
        run(
            "conv_transpose",
            Ios15,
            &[("x", x(Fp32, &[1, 1, 5])), ("weight", x(Fp32, &[1, 2, 3]))]
        )
        .is_err(),
        "iOS15 conv_transpose needs a constant weight"
    );
}

#[test]
fn pooling() {
    // TestAvgPool/TestMaxPool.test_builder_to_backend_smoke: kernels [1, 2, 3], strides [2, 1, 3]
    for op in ["avg_pool", "max_pool", "l2_pool"] {
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, 7])),
                ("kernel_sizes", ints(&[1])),
                ("strides", ints(&[2])),
                ("pad_type", s("valid")),
            ],
            ty(Fp32, &[1, 1, 4]),
        );
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, 7])),
                ("kernel_sizes", ints(&[3])),
                ("strides", ints(&[3])),
                ("pad_type", s("same")),
            ],
            ty(Fp32, &[1, 1, 3]),
        );
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[1, 2, 2, 2])),
                ("kernel_sizes", ints(&[1, 2])),
                ("strides", ints(&[2, 1])),
                ("pad_type", s("valid")),
            ],
            ty(Fp32, &[1, 2, 1, 1]),
        );
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[1, 2, 2, 2])),
                ("kernel_sizes", ints(&[2, 3])),
                ("strides", ints(&[1, 3])),
                ("pad_type", s("same")),
            ],
            ty(Fp32, &[1, 2, 2, 1]),
        );
    }
    for (op, pt) in [("avg_pool", "valid"), ("max_pool", "same")] {
        let (k, st, want): (&[i32], &[i32], &[i64]) = if pt == "valid" {
            (&[1, 2, 3], &[2, 1, 3], &[2, 1, 2, 2, 1])
        } else {
            (&[1, 2, 3], &[2, 1, 3], &[2, 1, 2, 3, 1])
        };
        expect1(
            op,
            Ios15,
            &[
                ("x", x(Fp32, &[2, 1, 3, 3, 3])),
                ("kernel_sizes", ints(k)),
                ("strides", ints(st)),
                ("pad_type", s(pt)),
            ],
            ty(Fp32, want),
        );
    }
    // l2_pool: at most 2 spatial dims
    assert_eq!(
        run(
            "l2_pool",
            Ios15,
            &[
                ("x", x(Fp32, &[2, 1, 3, 3, 3])),
                ("kernel_sizes", ints(&[1, 1, 1])),
                ("pad_type", s("valid"))
            ]
        )
        .unwrap_err()
        .param(),
        Some("x")
    );
    // same_lower (test_avgpool_builder_to_backend_smoke_samelower_padtype) keeps the size, iOS16+
    let sl = |o| {
        run(
            "avg_pool",
            o,
            &[
                ("x", x(Fp32, &[1, 1, 5, 5])),
                ("kernel_sizes", ints(&[2, 2])),
                ("pad_type", s("same_lower")),
            ],
        )
    };
    assert_eq!(sl(Ios16).unwrap(), vec![ty(Fp32, &[1, 1, 5, 5])]);
    assert!(sl(Ios15).is_err());
    // ceil_mode (PyTorch: ceil((H + 2p - k) / s) + 1, minus one if the last window starts in
    // the right padding)
    for (h, k, st, p, want) in [
        (7, 2, 2, 0, 4),
        (6, 3, 2, 1, 4),
        (5, 2, 2, 1, 3),
        (8, 3, 3, 0, 3),
    ] {
        expect1(
            "max_pool",
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, h, h])),
                ("kernel_sizes", ints(&[k; 2])),
                ("strides", ints(&[st; 2])),
                ("pad_type", s("custom")),
                ("pad", ints(&[p; 4])),
                ("ceil_mode", b(true)),
            ],
            ty(Fp32, &[1, 1, want, want]),
        );
    }
    // ceil_mode needs symmetric padding and not "same"
    assert!(
        run(
            "max_pool",
            Ios15,
            &[
                ("x", x(Fp32, &[1, 1, 6, 6])),
                ("kernel_sizes", ints(&[2, 2])),
                ("pad_type", s("custom")),
                ("pad", ints(&[1, 0, 0, 0])),
                ("ceil_mode", b(true))
            ]
        )
        .is_err()
    );
    // unknown spatial dims stay unknown
    expect1(
        "max_pool",
        Ios17,
        &[
            ("x", x(Fp16, &[1, 3, -1, 8])),
            ("kernel_sizes", ints(&[2, 2])),
            ("strides", ints(&[2, 2])),
            ("pad_type", s("valid")),
        ],
        ty(Fp16, &[1, 3, -1, 4]),
    );
}
