//! Models are untrusted: compression must answer (a report or an error), never panic, on
//! constants whose declared shape is hostile (an element count that overflows).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_compress::{CompressError, Config, LinearConfig, NoProgress, Selection};
use anekit_mil::value::{Placement, Value};
use anekit_mil::{DataType, Program, TensorType, ValueType};

/// A linear layer whose weight `w` is a 4×8 fp32 constant.
fn linear_program() -> Program {
    anekit_mil::text::parse_without_weights(
        r#"program(1.3)
{
    func main<ios18>(tensor<fp32, [1, 8]> x) {
            tensor<fp32, [4, 8]> w = const()[name = string("w"), val = tensor<fp32, [4, 8]>([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]])];
            tensor<fp32, [1, 4]> y = linear(x = x, weight = w)[name = string("y")];
        } -> (y);
}
"#,
        "<test>",
    )
    .unwrap()
}

fn quantize_all() -> Config {
    Config {
        quantize: Some(Selection::global(LinearConfig {
            weight_threshold: 0,
            ..LinearConfig::default()
        })),
        ..Config::default()
    }
}

#[test]
fn the_unmodified_weight_is_quantized() {
    let mut p = linear_program();
    let report = anekit_compress::compress_program(&mut p, &quantize_all(), &NoProgress).unwrap();
    assert_eq!(report.weights.len(), 1);
}

#[test]
fn a_weight_whose_element_count_overflows_is_an_error() {
    // 2³² × 2³² elements: the count does not fit in 64 bits.
    for shape in [[1u64 << 32, 1 << 32], [u64::MAX, 2]] {
        let mut p = linear_program();
        let f = p.functions.get_mut("main").unwrap();
        let b = f.blocks.values_mut().next().unwrap();
        let op = b
            .operations
            .iter_mut()
            .find(|o| o.op_type == "const")
            .unwrap();
        let ty = TensorType::new(DataType::Fp32, &shape);
        op.outputs[0].ty = ValueType::Tensor(ty.clone());
        op.attributes.insert(
            "val".into(),
            Value::tensor_bytes(ty, vec![0u8; 128], Placement::Inline),
        );
        let err = anekit_compress::compress_program(&mut p, &quantize_all(), &NoProgress)
            .expect_err("the weight's data cannot match its type");
        assert!(
            matches!(&err, CompressError::Weight { name, .. } if name == "w"),
            "{err}"
        );
    }
}
