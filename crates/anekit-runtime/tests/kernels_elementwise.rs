//! Broadcasting paths of the elementwise binary kernels against NumPy
//! (tests/data/elementwise/broadcast.json, written by tests/data/make_elementwise.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anekit_runtime::cpu::kernels::elementwise::binary_values;
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;

fn operand(shape: &[usize], second: bool) -> Value {
    let n: usize = shape.iter().product();
    let data = (0..n as i64)
        .map(|i| {
            if second {
                (((i * 104_729) % 997) as f64 / 100.0 + 0.5) as f32
            } else {
                (((i * 7919) % 1000) as f64 / 100.0 - 5.0) as f32
            }
        })
        .collect();
    Value::F32(ArrayD::from_shape_vec(IxDyn(shape), data).unwrap())
}

fn shape(j: &Json) -> Vec<usize> {
    j.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn binary_broadcasting_matches_numpy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/elementwise/broadcast.json"
    );
    let oracle: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let cases = oracle["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let op = c["op"].as_str().unwrap();
        let (sx, sy) = (shape(&c["x_shape"]), shape(&c["y_shape"]));
        let what = format!("{op} {sx:?} {sy:?}");
        let out = pool
            .install(|| binary_values(op, &operand(&sx, false), &operand(&sy, true)))
            .unwrap();
        let Value::F32(out) = out else {
            panic!("{what}: not f32")
        };
        assert_eq!(out.shape(), shape(&c["out_shape"]).as_slice(), "{what}");
        let flat: Vec<f32> = out.iter().copied().collect();
        for s in c["samples"].as_array().unwrap() {
            let i = s[0].as_u64().unwrap() as usize;
            let want = s[1].as_f64().unwrap() as f32;
            assert_eq!(flat[i], want, "{what} at {i}");
        }
        let sum: f64 = flat.iter().map(|&v| f64::from(v)).sum();
        let want = c["sum"].as_f64().unwrap();
        assert!(
            (sum - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{what}: sum {sum} vs {want}"
        );
    }
}
