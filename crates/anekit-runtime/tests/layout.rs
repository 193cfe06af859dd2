//! The channel-blocked layout pass (`cpu::layout`): on a small convolutional network with
//! every kind of edge it handles — a 3-channel function input read NCHW by a convolution
//! with a blocked output, a pooling between blocked convolutions, depthwise with
//! stride 2, a 1×1 without bias, a dilated 3×3 with a fused residual `add` + `relu` and a
//! fused scalar `mul`, a pooling op reading a blocked value, a blocked value leaving the
//! function, and a convolution whose fused `batch_norm` keeps it in NCHW — the optimised
//! plan runs the right steps blocked and gives the unoptimised plan's outputs (the
//! unoptimised plan is the one the fixture tests check against PyTorch).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use anekit_runtime::cpu::plan::{self, CompileOptions};
use anekit_runtime::cpu::value::Value;
use ndarray::{ArrayD, IxDyn};

/// Deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 1009) as f32 / 1009.0 - 0.5)
        .collect()
}

/// A MIL tensor literal of `shape` with [`values`].
fn literal(shape: &[usize], seed: usize) -> String {
    fn nest(v: &[f32], shape: &[usize]) -> String {
        match shape {
            [] => format!("{:?}", v[0]),
            [_] => format!(
                "[{}]",
                v.iter()
                    .map(|x| format!("{x:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            [d, rest @ ..] => {
                let step = v.len() / d;
                let parts: Vec<String> = v.chunks(step).map(|c| nest(c, rest)).collect();
                format!("[{}]", parts.join(", "))
            }
        }
    }
    let n: usize = shape.iter().product();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!(
        "tensor<fp32, [{}]>({})",
        dims.join(", "),
        nest(&values(n, seed), shape)
    )
}

fn ints(v: &[i64]) -> String {
    let s: Vec<String> = v.iter().map(|d| d.to_string()).collect();
    format!("tensor<int32, [{}]>([{}])", v.len(), s.join(", "))
}

/// `out = conv(x)` to `out_shape` with a weight of shape `w`; `[stride, dilation, pad,
/// groups]` the same along both axes (padding on every side).
fn conv(
    out: &str,
    x: &str,
    out_shape: [usize; 4],
    w: [usize; 4],
    [stride, dilation, pad, groups]: [i64; 4],
    bias: bool,
    seed: usize,
) -> String {
    let [n, c, h, wd] = out_shape;
    let bias = if bias {
        format!("bias = {}, ", literal(&w[..1], seed + 1))
    } else {
        String::new()
    };
    format!(
        "            tensor<fp32, [{n}, {c}, {h}, {wd}]> {out} = conv({bias}dilations = {}, groups = \
         tensor<int32, []>({groups}), pad = {}, pad_type = tensor<string, []>(\"custom\"), \
         strides = {}, weight = {}, x = {x})[name = tensor<string, []>(\"{out}\")];\n",
        ints(&[dilation, dilation]),
        ints(&[pad; 4]),
        ints(&[stride, stride]),
        literal(&w, seed),
    )
}

/// A program whose function `main` takes `x` (fp32, `x_shape`), runs `body` and returns
/// `outputs`.
fn program_text(x_shape: [usize; 4], body: &str, outputs: &str) -> String {
    let [n, c, h, w] = x_shape;
    format!(
        "program(1.0)\n{{\n    func main<ios15>(tensor<fp32, [{n}, {c}, {h}, {w}]> x) {{\n{body}        }} -> ({outputs});\n}}\n"
    )
}

fn program() -> String {
    let mut body = String::new();
    // the function input's 3 channels, read NCHW: 3×3, 3 → 20 channels
    body += &conv(
        "c0",
        "x",
        [1, 20, 13, 11],
        [20, 3, 3, 3],
        [1, 1, 1, 1],
        true,
        15,
    );
    // a pooling reads it NCHW, and the next convolution reads the pooling blocked
    body += "            tensor<fp32, [1, 20, 13, 11]> p0 = max_pool(kernel_sizes = tensor<int32, [2]>([3, 3]), pad = tensor<int32, [4]>([1, 1, 1, 1]), pad_type = tensor<string, []>(\"custom\"), strides = tensor<int32, [2]>([1, 1]), x = c0)[name = tensor<string, []>(\"p0\")];\n";
    // 3×3, 20 → 24 channels, then relu
    body += &conv(
        "c1",
        "p0",
        [1, 24, 13, 11],
        [24, 20, 3, 3],
        [1, 1, 1, 1],
        true,
        1,
    );
    body += "            tensor<fp32, [1, 24, 13, 11]> r1 = relu(x = c1)[name = tensor<string, []>(\"r1\")];\n";
    // depthwise 3×3, stride 2, then relu6 as clip
    body += &conv(
        "c2",
        "r1",
        [1, 24, 7, 6],
        [24, 1, 3, 3],
        [2, 1, 1, 24],
        true,
        3,
    );
    body += "            tensor<fp32, [1, 24, 7, 6]> r2 = clip(alpha = tensor<fp32, []>(0.0), beta = tensor<fp32, []>(6.0), x = c2)[name = tensor<string, []>(\"r2\")];\n";
    // 1×1 without bias, 24 → 40
    body += &conv(
        "c3",
        "r2",
        [1, 40, 7, 6],
        [40, 24, 1, 1],
        [1, 1, 0, 1],
        false,
        5,
    );
    // dilated 3×3 with a residual add and relu, then a scalar mul
    body += &conv(
        "c4",
        "c3",
        [1, 40, 7, 6],
        [40, 40, 3, 3],
        [1, 2, 2, 1],
        true,
        7,
    );
    body += "            tensor<fp32, [1, 40, 7, 6]> a4 = add(x = c4, y = c3)[name = tensor<string, []>(\"a4\")];\n";
    body += "            tensor<fp32, [1, 40, 7, 6]> r4 = relu(x = a4)[name = tensor<string, []>(\"r4\")];\n";
    body += "            tensor<fp32, [1, 40, 7, 6]> m4 = mul(x = r4, y = tensor<fp32, []>(0.5))[name = tensor<string, []>(\"m4\")];\n";
    // pooling reads a blocked value: converted back
    body += "            tensor<fp32, [1, 40, 1, 1]> pooled = reduce_mean(axes = tensor<int32, [2]>([2, 3]), keep_dims = tensor<bool, []>(true), x = m4)[name = tensor<string, []>(\"pooled\")];\n";
    // a blocked output leaves the function
    body += &conv(
        "c5",
        "m4",
        [1, 16, 7, 6],
        [16, 40, 1, 1],
        [1, 1, 0, 1],
        true,
        9,
    );
    // a fused per-channel batch_norm keeps this one in NCHW
    body += &conv(
        "c6",
        "c3",
        [1, 40, 7, 6],
        [40, 40, 1, 1],
        [1, 1, 0, 1],
        true,
        11,
    );
    body += &format!(
        "            tensor<fp32, [1, 40, 7, 6]> bn = batch_norm(beta = {}, epsilon = tensor<fp32, []>(0.001), gamma = {}, mean = {}, variance = {}, x = c6)[name = tensor<string, []>(\"bn\")];\n",
        literal(&[40], 12),
        literal(&[40], 13),
        literal(&[40], 14),
        "tensor<fp32, [40]>([".to_string() + &vec!["1.5"; 40].join(", ") + "])",
    );
    program_text([1, 3, 13, 11], &body, "pooled, c5, bn")
}

/// Run `p` on the input `x` of shape `x_shape` on a pool of `threads` threads.
fn run(p: &plan::Plan, x_shape: [usize; 4], x: &[f32], threads: usize) -> Vec<Value> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let input = Value::F32(ArrayD::from_shape_vec(IxDyn(&x_shape), x.to_vec()).unwrap());
    pool.install(|| common::run_plan(p, vec![input]).unwrap())
}

/// Every output of `got` within 1e-5 of `want`'s (relative to the largest magnitude, at
/// least 1).
fn assert_close(got: &[Value], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        let (Value::F32(a), Value::F32(b)) = (a, b) else {
            panic!("{what}: output {k}: {a:?} {b:?}")
        };
        assert_eq!(a.shape(), b.shape(), "{what}: output {k}");
        let m = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (p, q) in a.iter().zip(b) {
            assert!(
                (p - q).abs() <= 1e-5 * m.max(1.0),
                "{what}: output {k}: {p} vs {q}"
            );
        }
    }
}

#[test]
fn blocked_regions_give_the_unoptimised_outputs() {
    let text = program();
    let program = anekit_mil::text::parse_without_weights(&text, "layout").unwrap();
    let f = &program.functions["main"];
    let on = plan::compile_with(
        "main",
        f,
        CompileOptions {
            blocked_layout: true,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    let off = plan::compile_with("main", f, CompileOptions::unoptimized()).unwrap();
    // c0..c5 run blocked; c6 (fused batch_norm) does not.
    assert_eq!(on.blocked, 6);
    let types: Vec<&str> = on.main.steps.iter().map(|s| s.op_type.as_str()).collect();
    let count = |t: &str| types.iter().filter(|s| **s == t).count();
    // p0 to blocked; back for c0 (read by the max_pool), c3 (read by c6), m4 (read by the
    // mean) and c5 (an output)
    assert_eq!(count("reorder_nchwc"), 1, "{types:?}");
    assert_eq!(count("reorder_nchw"), 4, "{types:?}");
    assert!(types.contains(&"conv_nchwc+relu"), "{types:?}");
    assert!(types.contains(&"conv_nchwc+add+relu+mul"), "{types:?}");
    assert!(types.contains(&"conv+batch_norm"), "{types:?}");
    let x = values(3 * 13 * 11, 99);
    let want = run(&off, [1, 3, 13, 11], &x, 1);
    for threads in [1, 2, 5] {
        let got = run(&on, [1, 3, 13, 11], &x, threads);
        assert_close(&got, &want, &format!("{threads} threads"));
    }
}

/// A convolution whose padded grid would dwarf its input and output (a dilation and padding
/// of 500 around a 5×5 input) stays in NCHW, and gives the unoptimised plan's output.
#[test]
fn a_grid_far_larger_than_the_planes_stays_nchw() {
    let mut body = String::new();
    body += &conv(
        "a",
        "x",
        [1, 16, 5, 5],
        [16, 3, 1, 1],
        [1, 1, 0, 1],
        true,
        21,
    );
    body += &conv(
        "b",
        "a",
        [1, 16, 5, 5],
        [16, 16, 3, 3],
        [1, 500, 500, 1],
        true,
        22,
    );
    let text = program_text([1, 3, 5, 5], &body, "b");
    let program = anekit_mil::text::parse_without_weights(&text, "grid").unwrap();
    let f = &program.functions["main"];
    let on = plan::compile_with("main", f, CompileOptions::default()).unwrap();
    let off = plan::compile_with("main", f, CompileOptions::unoptimized()).unwrap();
    assert_eq!(on.blocked, 0, "a lone candidate is not enough either");
    let x = values(3 * 5 * 5, 5);
    let (a, b) = (
        run(&on, [1, 3, 5, 5], &x, 1),
        run(&off, [1, 3, 5, 5], &x, 1),
    );
    assert_close(&a, &b, "grid");
}

/// `ANEKIT_NCHWC=0`-style option off: no step runs blocked.
#[test]
fn the_pass_can_be_turned_off() {
    let text = program();
    let program = anekit_mil::text::parse_without_weights(&text, "layout").unwrap();
    let f = &program.functions["main"];
    let p = plan::compile_with(
        "main",
        f,
        CompileOptions {
            blocked_layout: false,
            ..CompileOptions::default()
        },
    )
    .unwrap();
    assert_eq!(p.blocked, 0);
    assert!(p.main.steps.iter().all(|s| !s.op_type.contains("nchw")));
}
