//! Latency of the recurrent and image-resizing kernels (one-op programs run through the CPU
//! plan, as a model would run them), on 1 and 2 threads.
//!
//! ```text
//! cargo bench -p anekit-runtime --bench misc [-- FILTER]
//! ```
//!
//! Each case is warmed up, then timed at least 10 times and 0.3 s; the table shows the best
//! time. `benches/misc_torch.py` times the same shapes in PyTorch for comparison. The
//! times include the executor's copy of the op's output (what a one-op model pays).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anekit_mil::ops::{Arg, infer};
use anekit_mil::program::{Argument, Binding, Block, Function, Operation, Opset};
use anekit_mil::types::{DataType, NamedValueType, TensorType, ValueType};
use anekit_mil::value::{Placement, Value as MilValue};
use anekit_runtime::Precision;
use anekit_runtime::cpu::exec;
use anekit_runtime::cpu::kernels::RunCtx;
use anekit_runtime::cpu::plan::{self, Plan};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            ((s as f32 / u32::MAX as f32) * 2.0 - 1.0) * 0.3
        })
        .collect()
}

enum In {
    Runtime(Vec<usize>),
    Weight(Vec<usize>),
    Lit(MilValue),
}

/// A one-op function: run-time inputs get pseudo-random data, weights become literals.
fn one_op(op_type: &str, opset: Opset, args: Vec<(&str, In)>) -> (Plan, Vec<Value>) {
    let mut op = Operation::new(op_type);
    let mut inputs = Vec::new();
    let mut values = Vec::new();
    let mut iargs = BTreeMap::new();
    for (k, (param, a)) in args.into_iter().enumerate() {
        let (binding, arg) = match a {
            In::Runtime(shape) => {
                let ty = TensorType::new(
                    DataType::Fp32,
                    &shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
                );
                let name = format!("in_{param}");
                inputs.push(NamedValueType::new(&name, ValueType::Tensor(ty.clone())));
                let n = shape.iter().product();
                values.push(Value::F32(
                    ArrayD::from_shape_vec(IxDyn(&shape), data(n, k as u32)).unwrap(),
                ));
                (Binding::Name(name), Arg::var(ValueType::Tensor(ty)))
            }
            In::Weight(shape) => {
                let n: usize = shape.iter().product();
                let v = MilValue::tensor_bytes(
                    TensorType::new(
                        DataType::Fp32,
                        &shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
                    ),
                    data(n, 100 + k as u32)
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                    Placement::Inline,
                );
                (Binding::Value(v.clone()), Arg::literal(v))
            }
            In::Lit(v) => (Binding::Value(v.clone()), Arg::literal(v)),
        };
        op.inputs.insert(param.to_string(), Argument(vec![binding]));
        iargs.insert(param.to_string(), vec![arg]);
    }
    op.outputs = infer(op_type, opset, &iargs, &[])
        .unwrap()
        .outputs
        .into_iter()
        .enumerate()
        .map(|(i, t)| NamedValueType::new(format!("out{i}"), t))
        .collect();
    let block = Block {
        inputs: Vec::new(),
        outputs: op.outputs.iter().map(|o| o.name.clone()).collect(),
        operations: vec![op],
        attributes: BTreeMap::new(),
    };
    let f = Function {
        inputs,
        opset: opset.proto_name().into(),
        blocks: BTreeMap::from([(opset.proto_name().to_string(), block)]),
        attributes: BTreeMap::new(),
    };
    (plan::compile("main", &f).unwrap(), values)
}

fn run(plan: &Plan, values: &[Value]) {
    let mut ctx = RunCtx {
        precision: Precision::Fp32,
        numerics: None,
        numerics_warnings: Vec::new(),
        state: None,
        consts: &plan.consts,
        state_types: &plan.state_types,
    };
    let mut meter = exec::Meter::default();
    std::hint::black_box(
        exec::run(
            &plan.main,
            values.to_vec(),
            Vec::new(),
            &mut ctx,
            &mut meter,
        )
        .unwrap(),
    );
}

fn s(v: &str) -> In {
    In::Lit(MilValue::string(v))
}

fn i(v: i32) -> In {
    In::Lit(MilValue::int32(v))
}

fn cases() -> Vec<(String, Plan, Vec<Value>)> {
    let mut out = Vec::new();
    for (seq, batch, input, hidden) in [(64, 1, 256, 256), (64, 8, 256, 512), (16, 1, 64, 64)] {
        let (p, v) = one_op(
            "lstm",
            Opset::Ios15,
            vec![
                ("x", In::Runtime(vec![seq, batch, input])),
                ("initial_h", In::Runtime(vec![batch, hidden])),
                ("initial_c", In::Runtime(vec![batch, hidden])),
                ("weight_ih", In::Weight(vec![4 * hidden, input])),
                ("weight_hh", In::Weight(vec![4 * hidden, hidden])),
                ("bias", In::Weight(vec![4 * hidden])),
                ("output_sequence", In::Lit(MilValue::bool(true))),
            ],
        );
        out.push((format!("lstm s{seq} b{batch} i{input} h{hidden}"), p, v));
        let (p, v) = one_op(
            "gru",
            Opset::Ios18,
            vec![
                ("x", In::Runtime(vec![seq, batch, input])),
                ("initial_h", In::Runtime(vec![batch, hidden])),
                ("weight_ih", In::Weight(vec![3 * hidden, input])),
                ("weight_hh", In::Weight(vec![3 * hidden, hidden])),
                ("bias", In::Weight(vec![3 * hidden])),
                ("input_bias", In::Weight(vec![3 * hidden])),
                ("reset_after", In::Lit(MilValue::bool(true))),
                ("output_sequence", In::Lit(MilValue::bool(true))),
            ],
        );
        out.push((format!("gru  s{seq} b{batch} i{input} h{hidden}"), p, v));
    }
    let (p, v) = one_op(
        "resize_bilinear",
        Opset::Ios15,
        vec![
            ("x", In::Runtime(vec![1, 64, 128, 128])),
            ("target_size_height", i(256)),
            ("target_size_width", i(256)),
            ("sampling_mode", s("UNALIGN_CORNERS")),
        ],
    );
    out.push(("resize_bilinear 1x64x128x128 -> 256x256".into(), p, v));
    let (p, v) = one_op(
        "upsample_nearest_neighbor",
        Opset::Ios15,
        vec![
            ("x", In::Runtime(vec![1, 64, 128, 128])),
            ("scale_factor_height", i(2)),
            ("scale_factor_width", i(2)),
        ],
    );
    out.push(("upsample_nearest 1x64x128x128 x2".into(), p, v));
    let (p, v) = one_op(
        "resample",
        Opset::Ios16,
        vec![
            ("x", In::Runtime(vec![1, 64, 128, 128])),
            ("coordinates", In::Runtime(vec![1, 128, 128, 2])),
            ("sampling_mode", s("bilinear")),
            ("padding_mode", s("border")),
            ("padding_value", In::Lit(MilValue::fp32(0.0))),
            ("coordinates_mode", s("normalized_minus_one_to_one")),
            ("align_corners", In::Lit(MilValue::bool(false))),
        ],
    );
    out.push(("resample 1x64x128x128 @128x128".into(), p, v));
    out
}

fn time(plan: &Plan, values: &[Value]) -> Duration {
    run(plan, values);
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut n = 0;
    while n < 10 || start.elapsed() < Duration::from_millis(300) {
        let t = Instant::now();
        run(plan, values);
        best = best.min(t.elapsed());
        n += 1;
    }
    best
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    println!("{:<44} {:>12} {:>12}", "case", "1 thread", "2 threads");
    for (name, plan, values) in cases() {
        if !name.contains(&filter) {
            continue;
        }
        let mut cols = Vec::new();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let t = pool.install(|| time(&plan, &values));
            cols.push(format!("{:.3} ms", t.as_secs_f64() * 1e3));
        }
        println!("{:<44} {:>12} {:>12}", name, cols[0], cols[1]);
    }
}
