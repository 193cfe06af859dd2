//! The registry against coremltools 9.0's op definitions: which ops each opset directory
//! (`coremltools/converters/mil/mil/ops/defs/iOS15` … `iOS18`) registers, and revision lookup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use std::collections::BTreeSet;

use anekit_mil::Opset;
use anekit_mil::ops::{DefaultValue, ParamKind, registry};
use ops_support::*;

/// `@register_op` classes of `defs/iOS15/*.py` (without pymil's internal `_const_symbolic`).
const IOS15: &str = "abs acos add affine argsort asin atan atanh avg_pool band_part batch_norm batch_to_space cast ceil clamped_relu classify clip concat cond const conv conv_quantized conv_transpose cos cosh crop crop_resize cumsum depth_to_space einsum elu equal erf exp exp2 expand_dims fill flatten2d floor floor_div gather gather_along_axis gather_nd gelu greater greater_equal gru identity instance_norm inverse l2_norm l2_pool layer_norm leaky_relu less less_equal linear linear_activation list_gather list_length list_read list_scatter list_write local_response_norm log logical_and logical_not logical_or logical_xor lstm make_list matmul max_pool maximum minimum mod mul non_maximum_suppression non_zero not_equal one_hot pad pixel_shuffle pow prelu random_bernoulli random_categorical random_normal random_uniform range_1d real_div reduce_argmax reduce_argmin reduce_l1_norm reduce_l2_norm reduce_log_sum reduce_log_sum_exp reduce_max reduce_mean reduce_min reduce_prod reduce_sum reduce_sum_square relu relu6 resample reshape resize_bilinear resize_nearest_neighbor reverse reverse_sequence rnn round rsqrt scaled_tanh scatter scatter_along_axis scatter_nd select shape sigmoid sigmoid_hard sign silu sin sinh slice_by_index slice_by_size sliding_windows softmax softplus softplus_parametric softsign space_to_batch space_to_depth split sqrt square squeeze stack sub tan tanh threshold thresholded_relu tile topk transpose upsample_bilinear upsample_nearest_neighbor while_loop";
/// `@register_op(opset_version=_IOS16_TARGET)` classes of `defs/iOS16/*.py`.
const IOS16: &str = "constexpr_affine_dequantize constexpr_cast constexpr_lut_to_dense constexpr_sparse_to_dense crop_resize fill_like gather gather_along_axis gather_nd pixel_unshuffle resample reshape_like topk upsample_bilinear";
/// … of `defs/iOS17/*.py`.
const IOS17: &str = "batch_norm cast clamped_relu clip conv conv_transpose crop_resize dequantize elu expand_dims gather gather_along_axis gather_nd gru instance_norm inverse l2_norm layer_norm leaky_relu linear linear_activation local_response_norm log lstm matmul non_maximum_suppression prelu quantize reduce_argmax reduce_argmin resample reshape reshape_like resize reverse reverse_sequence rnn rsqrt scaled_tanh scatter scatter_along_axis scatter_nd sigmoid_hard slice_by_index slice_by_size sliding_windows softplus_parametric squeeze thresholded_relu topk transpose";
/// … of `defs/iOS18/*.py`, plus `write_state` (what `backend/mil/load.py` serializes
/// `coreml_update_state` into, with `read_state`).
const IOS18: &str = "constexpr_blockwise_shift_scale constexpr_cast constexpr_lut_to_dense constexpr_lut_to_sparse constexpr_sparse_blockwise_shift_scale constexpr_sparse_to_dense gru read_state scaled_dot_product_attention slice_update write_state";

fn set(s: &str) -> BTreeSet<&str> {
    s.split_whitespace().collect()
}

#[test]
fn revisions_are_exactly_coremltools_registrations() {
    let reg = registry();
    for (opset, list) in [
        (Ios15, IOS15),
        (Ios16, IOS16),
        (Ios17, IOS17),
        (Ios18, IOS18),
    ] {
        let ours: BTreeSet<&str> = reg
            .iter()
            .filter(|(_, revs)| revs.iter().any(|d| d.opset == opset))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(ours, set(list), "revisions registered in {opset}");
    }
    // no revision in any other opset
    for (name, revs) in reg.iter() {
        for d in revs {
            assert!(d.opset <= Ios18, "{name} revised in {}", d.opset);
        }
    }
}

#[test]
fn op_counts_per_opset() {
    let reg = registry();
    let all15 = set(IOS15);
    let mut avail = all15.clone();
    let mut counts = Vec::new();
    for (opset, list) in [(Ios15, ""), (Ios16, IOS16), (Ios17, IOS17), (Ios18, IOS18)] {
        avail.extend(set(list));
        assert_eq!(
            reg.op_types(opset).into_iter().collect::<BTreeSet<_>>(),
            avail,
            "{opset}"
        );
        counts.push(avail.len());
    }
    assert_eq!(counts, [151, 158, 161, 168]);
    // iOS26 (CoreML9) adds nothing
    assert_eq!(reg.op_types(Opset::Ios26).len(), 168);
}

#[test]
fn lookup_returns_the_revision_in_force() {
    let reg = registry();
    // gather: iOS15, iOS16 (batch_dims), iOS17 (validate_indices)
    assert!(
        reg.get("gather", Ios15)
            .unwrap()
            .param("batch_dims")
            .is_none()
    );
    assert_eq!(reg.get("gather", Ios16).unwrap().opset, Ios16);
    assert!(
        reg.get("gather", Ios16)
            .unwrap()
            .param("validate_indices")
            .is_none()
    );
    assert_eq!(reg.get("gather", Ios18).unwrap().opset, Ios17);
    assert_eq!(reg.get("gather", Opset::Ios26).unwrap().opset, Ios17);
    // new ops do not exist earlier
    assert!(reg.get("constexpr_affine_dequantize", Ios15).is_none());
    assert!(reg.get("scaled_dot_product_attention", Ios17).is_none());
    assert!(reg.get("resize", Ios16).is_none());
    assert!(reg.get("no_such_op", Ios18).is_none());
    // iOS16 constexpr ops keep attribute parameters even in iOS18; their iOS18 revisions do not
    assert!(
        reg.get("constexpr_affine_dequantize", Ios18)
            .unwrap()
            .params_as_attributes
    );
    assert!(
        reg.get("constexpr_lut_to_dense", Ios16)
            .unwrap()
            .params_as_attributes
    );
    assert!(
        !reg.get("constexpr_lut_to_dense", Ios18)
            .unwrap()
            .params_as_attributes
    );
    assert!(
        !reg.get("constexpr_cast", Ios18)
            .unwrap()
            .params_as_attributes
    );
}

/// Parameter facts from `input_spec` / `default_inputs` of a few classes.
#[test]
fn parameter_specs_follow_coremltools() {
    let reg = registry();
    // iOS15/conv.py conv: weight not const, bias const optional; defaults
    let conv = reg.get("conv", Ios15).unwrap();
    let names: Vec<_> = conv.params.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "x",
            "weight",
            "bias",
            "strides",
            "pad_type",
            "pad",
            "dilations",
            "groups"
        ]
    );
    assert!(!conv.param("weight").unwrap().constant);
    assert!(conv.param("bias").unwrap().constant && conv.param("bias").unwrap().optional);
    assert_eq!(
        conv.param("pad_type").unwrap().default,
        Some(DefaultValue::Str("valid"))
    );
    assert_eq!(
        conv.param("groups").unwrap().default,
        Some(DefaultValue::Int(1))
    );
    // iOS17/conv.py: bias no longer const, weight/bias in their own domain U
    let conv17 = reg.get("conv", Ios17).unwrap();
    assert!(!conv17.param("bias").unwrap().constant);
    match (
        conv17.param("x").unwrap().kind,
        conv17.param("weight").unwrap().kind,
    ) {
        (ParamKind::Tensor(a), ParamKind::Tensor(b)) => {
            assert_eq!((a.id, b.id), (Some("T"), Some("U")));
        }
        other => panic!("{other:?}"),
    }
    // iOS15/tensor_operation.py concat: values is a tuple, axis const required
    let concat = reg.get("concat", Ios15).unwrap();
    assert!(concat.param("values").unwrap().is_variadic());
    assert!(concat.param("axis").unwrap().constant && !concat.param("axis").unwrap().optional);
    assert_eq!(
        concat.param("interleave").unwrap().default,
        Some(DefaultValue::Bool(false))
    );
    // iOS15/elementwise_unary.py cast domain
    match reg.get("cast", Ios15).unwrap().param("x").unwrap().kind {
        ParamKind::Tensor(d) => assert_eq!(d.types, &[Fp16, Fp32, Int32, Bool]),
        k => panic!("{k:?}"),
    }
    // iOS18 states
    assert_eq!(
        reg.get("read_state", Ios18)
            .unwrap()
            .param("input")
            .unwrap()
            .kind,
        ParamKind::State
    );
    // every param of every revision has a unique name; required params have no default
    for (name, revs) in reg.iter() {
        for d in revs {
            let mut seen = BTreeSet::new();
            for p in &d.params {
                assert!(seen.insert(p.name), "{name}: duplicate param {}", p.name);
                if !p.optional {
                    assert!(
                        p.default.is_none(),
                        "{name}.{}: required with default",
                        p.name
                    );
                }
            }
        }
    }
}
