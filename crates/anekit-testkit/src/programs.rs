//! Whole-program cases: control flow and lists in MIL text, with the data of
//! `crates/anekit-runtime/tests/data/tensor/control.json` (NumPy, `make_tensor.py`).

use std::collections::BTreeMap;

use crate::case::{Arg, Case, CaseError, CaseFile, Expected, Numbers, TensorData};
use crate::run::Suite;

/// The control_flow fixture's program: `while i < 3: x = 0.5 x + sin x`, then
/// `relu(x) if sum(x) > 0 else -x`.
const LOOP_AND_COND: &str = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [1, 4]> x) {
            int32 i0 = const()[name = string("i0"), val = int32(0)];
            int32 n, tensor<fp32, [1, 4]> y = while_loop(loop_vars = (i0, x))[name = string("loop")] (int32 i_c, tensor<fp32, [1, 4]> x_c) {
                    bool go = less(x = i_c, y = int32(3))[name = string("go")];
                } -> (go) (int32 i_c, tensor<fp32, [1, 4]> x_c) {
                    int32 i_next = add(x = i_c, y = int32(1))[name = string("i_next")];
                    tensor<fp32, [1, 4]> h = mul(x = x_c, y = fp32(0.5))[name = string("h")];
                    tensor<fp32, [1, 4]> s = sin(x = x_c)[name = string("s")];
                    tensor<fp32, [1, 4]> x_next = add(x = h, y = s)[name = string("x_next")];
                } -> (i_next, x_next);
            tensor<fp32, [1, 4]> out = identity(x = y)[name = string("out")];
        } -> (n, out);
}
"#;

/// `relu(x) if p else -x`.
const COND: &str = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [1, 4]> x, bool p) {
            tensor<fp32, [1, 4]> y = cond(pred = p)[name = string("c")] {
                    tensor<fp32, [1, 4]> r = relu(x = x)[name = string("r")];
                } -> (r) {
                    tensor<fp32, [1, 4]> m = mul(x = x, y = fp32(-1))[name = string("m")];
                } -> (m);
        } -> (y);
}
"#;

/// Lists in a loop: write the rows of x into a list, then read, gather and scatter them.
const LISTS: &str = r#"program(1.3)
{
    func main<ios17>(tensor<fp32, [3, 2]> x) {
            list<tensor<fp32, [2]>, ?> empty = make_list(init_length = int32(1), dynamic_length = bool(true), elem_shape = (int32(2)), dtype = string("fp32"))[name = string("empty")];
            int32 i0 = const()[name = string("i0"), val = int32(0)];
            int32 n, list<tensor<fp32, [2]>, ?> full = while_loop(loop_vars = (i0, empty))[name = string("fill")] (int32 i_c, list<tensor<fp32, [2]>, ?> l_c) {
                    bool go = less(x = i_c, y = int32(3))[name = string("go")];
                } -> (go) (int32 i_c, list<tensor<fp32, [2]>, ?> l_c) {
                    tensor<fp32, [2]> row = gather(x = x, indices = i_c, axis = int32(0))[name = string("row")];
                    list<tensor<fp32, [2]>, ?> l_next = list_write(ls = l_c, index = i_c, value = row)[name = string("w")];
                    int32 i_next = add(x = i_c, y = int32(1))[name = string("i_next")];
                } -> (i_next, l_next);
            int32 len = list_length(ls = full)[name = string("len")];
            tensor<fp32, [2]> last = list_read(ls = full, index = int32(2))[name = string("last")];
            tensor<fp32, [3, 2]> rev = list_gather(ls = full, indices = tensor<int32, [3]>([2, 1, 0]))[name = string("rev")];
            list<tensor<fp32, [2]>, ?> swapped = list_scatter(ls = full, indices = tensor<int32, [3]>([4, 0, 1]), value = rev)[name = string("sc")];
            int32 len2 = list_length(ls = swapped)[name = string("len2")];
            tensor<fp32, [2]> first = list_read(ls = swapped, index = int32(0))[name = string("first")];
        } -> (len, last, rev, len2, first);
}
"#;

fn tensor(dtype: &str, shape: Vec<usize>, values: Vec<f64>) -> TensorData {
    TensorData {
        dtype: Some(dtype.into()),
        shape,
        data: Numbers {
            values,
            integers: false,
        },
        runtime: true,
    }
}

fn program(
    name: &str,
    text: &str,
    inputs: Vec<(&str, TensorData)>,
    outputs: Vec<TensorData>,
) -> Case {
    Case {
        name: name.into(),
        op: None,
        program: Some(text.into()),
        opset: None,
        inputs: inputs
            .into_iter()
            .map(|(k, t)| (k.to_string(), Arg::Tensor(t)))
            .collect(),
        outputs: outputs.into_iter().map(Expected::Tensor).collect(),
        atol: 1e-6,
        rtol: 1e-6,
        error: None,
        untyped_outputs: None,
        oracle: Some("numpy".into()),
    }
}

/// The program cases, as the suite `tensor/programs`.
pub fn program_suite() -> Result<Suite, CaseError> {
    let path = crate::repo::root().join("crates/anekit-runtime/tests/data/tensor/control.json");
    let err = |message: String| CaseError {
        case: path.display().to_string(),
        message,
        unsupported: false,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let data: BTreeMap<String, serde_json::Value> = doc["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?.to_string(), c.clone())))
        .collect();
    let t = |case: &str, key: &str| -> Result<TensorData, CaseError> {
        let v = data
            .get(case)
            .map(|c| c[key].clone())
            .ok_or_else(|| err(format!("no case {case}")))?;
        let mut t: TensorData =
            serde_json::from_value(v).map_err(|e| err(format!("{case}.{key}: {e}")))?;
        t.runtime = true;
        Ok(t)
    };
    let scalar = |dtype: &str, v: f64| tensor(dtype, Vec::new(), vec![v]);
    let mut cases = vec![program(
        "while_loop_sin",
        LOOP_AND_COND,
        vec![("x", t("while_loop_sin", "x")?)],
        vec![scalar("int32", 3.0), t("while_loop_sin", "y")?],
    )];
    for name in ["cond_0", "cond_1"] {
        let x = t(name, "x")?;
        let p = f64::from(u8::from(x.data.values.iter().sum::<f64>() > 0.0));
        cases.push(program(
            name,
            COND,
            vec![("x", x), ("p", scalar("bool", p))],
            vec![t(name, "y")?],
        ));
    }
    let x = t("list_loop", "x")?;
    let row = |i: usize| tensor("fp32", vec![2], x.data.values[2 * i..2 * i + 2].to_vec());
    // list_scatter writes rev[0] (= x[2]) to index 4 (growing the list to 5), rev[1]
    // (= x[1]) to index 0 and rev[2] to index 1.
    let outputs = vec![
        scalar("int32", 3.0),
        row(2),
        t("list_loop", "y")?,
        scalar("int32", 5.0),
        row(1),
    ];
    cases.push(program("list_loop", LISTS, vec![("x", x.clone())], outputs));
    Ok(Suite {
        name: "tensor/programs".into(),
        path: None,
        file: CaseFile {
            generator: serde_json::Value::Null,
            tensors: BTreeMap::new(),
            cases,
        },
    })
}
