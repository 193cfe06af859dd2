//! Throughput of the dense CPU kernels, on 1 and 2 threads.
//!
//! ```text
//! cargo bench -p anekit-runtime --bench kernels [-- FILTER] [--threads 1,2] [--runs N]
//! ```
//!
//! Each kernel runs on a rayon pool of the given size, is warmed up, then timed repeatedly
//! (at least `--runs` times and 0.3 s); the table shows the best time. Compute-bound kernels
//! report GFLOP/s (2 per multiply-add) and their share of the machine's GEMM peak, measured
//! here first (faer on a 512³ product); memory-bound ones report GB/s of compulsory traffic
//! (inputs read once, outputs written once).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use anekit_runtime::cpu::kernels::conv::{self, ConvParams, PadType};
use anekit_runtime::cpu::kernels::pool::{self, PoolKind, PoolParams};
use anekit_runtime::cpu::kernels::{activation, attention, blocked, linalg, normalization};

/// What a kernel's rate is measured in.
#[derive(Clone, Copy)]
enum Work {
    /// Floating-point operations.
    Flops(f64),
    /// Bytes moved.
    Bytes(f64),
}

struct Bench {
    name: &'static str,
    shape: String,
    work: Work,
    run: Box<dyn Fn() + Sync + Send>,
}

fn data(n: usize, seed: u32) -> Vec<f32> {
    // A cheap deterministic pseudo-random sequence in [-1, 1).
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A `k×k` convolution of `x` (`[N, C, H, W]`, SAME padding) to `c_out` channels: its
/// geometry, input, weight and bias.
fn conv_case(
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
) -> (conv::ConvGeom, Vec<f32>, Vec<f32>, Vec<f32>) {
    let [n, c, h, w] = x;
    let xs = vec![n, c, h, w];
    let ws = vec![c_out, c / groups, k, k];
    let params = ConvParams {
        strides: Some(vec![stride as i64; 2]),
        dilations: None,
        pad: None,
        pad_type: PadType::Same,
        groups: groups as i64,
        output_shape: None,
    };
    let g = conv::geometry(&xs, &ws, &params, false).unwrap();
    let xd = data(xs.iter().product(), 1);
    let wd = data(ws.iter().product(), 2);
    let bias = data(c_out, 3);
    (g, xd, wd, bias)
}

fn conv_bench(
    name: &'static str,
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    groups: usize,
) -> Bench {
    let c = x[1];
    let xs = x.to_vec();
    let (g, xd, wd, bias) = conv_case(x, c_out, k, stride, groups);
    let out: usize = g.out_shape().iter().product();
    let macs = out * (c / groups) * k * k;
    let work = if groups > 1 && groups == c {
        Work::Bytes(((xd.len() + out) * 4) as f64)
    } else {
        Work::Flops(2.0 * macs as f64)
    };
    Bench {
        name,
        shape: format!("{xs:?}→{:?} k{k} s{stride} g{groups}", g.out_shape()),
        work,
        run: Box::new(move || {
            black_box(conv::conv_forward(&xd, &wd, Some(&bias), &g));
        }),
    }
}

/// The same convolution in the channel-blocked layout (`NCHWc`, the plan's layout between
/// convolutions): the input already blocked, the output left blocked.
fn blocked_bench(
    name: &'static str,
    x: [usize; 4],
    c_out: usize,
    k: usize,
    stride: usize,
    dw: bool,
) -> Bench {
    let [n, c, h, w] = x;
    let groups = if dw { c } else { 1 };
    let xs = x.to_vec();
    let (g, xd, wd, bias) = conv_case(x, c_out, k, stride, groups);
    let mut xb = vec![0.0; n * blocked::blocks(c) * h * w * blocked::CB];
    blocked::to_blocked(&xd, n, c, h * w, &mut xb);
    let [_, _, oh, ow]: [usize; 4] = g.out_shape().try_into().unwrap();
    let out_len = n * blocked::blocks(c_out) * oh * ow * blocked::CB;
    let macs = n * c_out * oh * ow * (c / groups) * k * k;
    let work = if dw {
        Work::Bytes(((xd.len() + n * c_out * oh * ow) * 4) as f64)
    } else {
        Work::Flops(2.0 * macs as f64)
    };
    let taps = k * k;
    let dense = (!dw).then(|| blocked::Dense::new(&wd, Some(&bias), c_out, c, taps));
    let depthwise = dw.then(|| blocked::Depthwise::new(&wd, Some(&bias), c_out, taps));
    let out_buf = std::sync::Mutex::new(vec![0.0f32; out_len]);
    Bench {
        name,
        shape: format!("{xs:?}→{:?} k{k} s{stride} g{groups}", g.out_shape()),
        work,
        // One output buffer for all runs, as the plan's buffer pool gives.
        run: Box::new(move || {
            let mut out = out_buf.lock().unwrap();
            let out = &mut out[..];
            let none = anekit_runtime::cpu::fuse::Epilogue::none();
            let par = rayon::current_num_threads() > 1;
            match (&dense, &depthwise) {
                (Some(d), _) => d.forward(&xb, &g, &[], &none, out, par),
                (_, Some(d)) => d.forward(&xb, &g, &[], &none, out, par),
                _ => {}
            }
            black_box(out);
        }),
    }
}

fn benches() -> Vec<Bench> {
    let mut v = Vec::new();
    // GEMM reference points.
    for (m, k, n) in [(512, 512, 512), (128, 768, 3072)] {
        let a = data(m * k, 4);
        let b = data(k * n, 5);
        v.push(Bench {
            name: "gemm (faer)",
            shape: format!("{m}×{k}×{n}"),
            work: Work::Flops(2.0 * (m * k * n) as f64),
            run: Box::new(move || {
                let mut out = vec![0.0f32; m * n];
                linalg::gemm(m, n, k, &a, false, &b, false, &mut out, false);
                black_box(out);
            }),
        });
    }
    // Convolutions (ResNet-50 / MobileNet shapes).
    v.push(conv_bench(
        "conv 7×7 s2 stem",
        [1, 3, 224, 224],
        64,
        7,
        2,
        1,
    ));
    v.push(conv_bench("conv 3×3", [1, 64, 56, 56], 64, 3, 1, 1));
    v.push(conv_bench("conv 1×1", [1, 64, 56, 56], 256, 1, 1, 1));
    v.push(conv_bench("conv 1×1", [1, 256, 56, 56], 64, 1, 1, 1));
    v.push(conv_bench("conv 3×3 s2", [1, 128, 56, 56], 128, 3, 2, 1));
    v.push(conv_bench("conv 3×3 late", [1, 512, 7, 7], 512, 3, 1, 1));
    v.push(conv_bench(
        "conv 3×3 groups 32",
        [1, 256, 28, 28],
        256,
        3,
        1,
        32,
    ));
    v.push(conv_bench("depthwise 3×3", [1, 32, 112, 112], 32, 3, 1, 32));
    v.push(conv_bench(
        "depthwise 3×3 s2",
        [1, 96, 112, 112],
        96,
        3,
        2,
        96,
    ));
    v.push(conv_bench(
        "depthwise 3×3 mid",
        [1, 576, 14, 14],
        576,
        3,
        1,
        576,
    ));
    v.push(conv_bench(
        "depthwise 3×3 late",
        [1, 960, 7, 7],
        960,
        3,
        1,
        960,
    ));
    // The depthwise kernel alone, into a reused output (no allocation in the timing).
    for (c, hw, s) in [(32, 112, 1), (96, 112, 2), (144, 56, 1), (576, 14, 1)] {
        let xs = vec![1, c, hw, hw];
        let ws = vec![c, 1, 3, 3];
        let params = ConvParams {
            strides: Some(vec![s as i64; 2]),
            dilations: None,
            pad: Some(vec![1; 4]),
            pad_type: PadType::Custom,
            groups: c as i64,
            output_shape: None,
        };
        let g = conv::geometry(&xs, &ws, &params, false).unwrap();
        let x = data(xs.iter().product(), 1);
        let w = data(ws.iter().product(), 2);
        let b = data(c, 3);
        let n: usize = g.out_shape().iter().product();
        let out = std::sync::Mutex::new(vec![0.0f32; n]);
        v.push(Bench {
            name: "depthwise kernel only",
            shape: format!("{xs:?} s{s}"),
            work: Work::Bytes(((x.len() + n) * 4) as f64),
            run: Box::new(move || {
                let mut o = out.lock().unwrap();
                let par = rayon::current_num_threads() > 1;
                anekit_runtime::cpu::kernels::depthwise::forward(
                    &x,
                    &w,
                    Some(&b),
                    &g,
                    &anekit_runtime::cpu::fuse::Epilogue::none(),
                    &mut o,
                    par,
                );
            }),
        });
    }
    // The previous depthwise path (a sliding window per NCHW plane), for comparison.
    for (c, hw, s) in [(32, 112, 1), (96, 112, 2), (576, 14, 1), (960, 7, 1)] {
        let o = (hw - 1) / s + 1;
        let win = anekit_runtime::cpu::kernels::window::Window {
            inp: [1, hw, hw],
            k: [1, 3, 3],
            s: [1, s, s],
            d: [1, 1, 1],
            pad: [0, 1, 1],
            out: [1, o, o],
        };
        let x = data(c * hw * hw, 1);
        let w = data(c * 9, 2);
        v.push(Bench {
            name: "depthwise (plane window)",
            shape: format!("[1, {c}, {hw}, {hw}] s{s}"),
            work: Work::Bytes(((c * hw * hw + c * o * o) * 4) as f64),
            run: Box::new(move || {
                use rayon::prelude::*;
                let mut out = vec![0.0f32; c * o * o];
                out.par_chunks_mut(o * o).enumerate().for_each(|(i, dst)| {
                    anekit_runtime::cpu::kernels::window::run(
                        &x[i * hw * hw..][..hw * hw],
                        &win,
                        Some(&w[i * 9..][..9]),
                        0.0,
                        anekit_runtime::cpu::kernels::window::MulAdd,
                        dst,
                    );
                });
                black_box(out);
            }),
        });
    }
    // The fixture convnet's layers.
    // The blocked (NCHWc) kernels on the same shapes.
    v.push(blocked_bench("nchwc 3×3", [1, 64, 56, 56], 64, 3, 1, false));
    v.push(blocked_bench(
        "nchwc 1×1",
        [1, 64, 56, 56],
        256,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 1×1",
        [1, 256, 56, 56],
        64,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 3×3 s2",
        [1, 128, 56, 56],
        128,
        3,
        2,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 3×3 late",
        [1, 512, 7, 7],
        512,
        3,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 1×1 mnv2",
        [1, 16, 112, 112],
        96,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 1×1 mnv2 late",
        [1, 960, 7, 7],
        320,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 1×1 one block",
        [1, 32, 112, 112],
        16,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc 1×1 pad lanes",
        [1, 24, 56, 56],
        144,
        1,
        1,
        false,
    ));
    v.push(blocked_bench(
        "nchwc depthwise 3×3",
        [1, 32, 112, 112],
        32,
        3,
        1,
        true,
    ));
    v.push(blocked_bench(
        "nchwc depthwise 3×3 s2",
        [1, 96, 112, 112],
        96,
        3,
        2,
        true,
    ));
    v.push(blocked_bench(
        "nchwc depthwise 3×3 mid",
        [1, 576, 14, 14],
        576,
        3,
        1,
        true,
    ));
    v.push(blocked_bench(
        "nchwc depthwise 3×3 late",
        [1, 960, 7, 7],
        960,
        3,
        1,
        true,
    ));
    v.push(conv_bench("conv 3×3 tiny", [1, 3, 32, 32], 16, 3, 1, 1));
    v.push(conv_bench("conv 3×3 tiny", [1, 16, 16, 16], 32, 3, 1, 1));
    v.push(conv_bench("conv 1×1 mnv2", [1, 16, 112, 112], 96, 1, 1, 1));
    v.push(conv_bench(
        "conv 1×1 mnv2 late",
        [1, 960, 7, 7],
        320,
        1,
        1,
        1,
    ));
    // Linear layers (BERT-base shapes).
    for (m, k, n) in [
        (128, 768, 3072),
        (128, 3072, 768),
        (128, 768, 768),
        (1, 768, 3072),
        (1, 3072, 768),
    ] {
        let x = data(m * k, 6);
        let w = data(n * k, 7);
        let b = data(n, 8);
        let work = if m == 1 {
            Work::Bytes(((n * k + k + n) * 4) as f64)
        } else {
            Work::Flops(2.0 * (m * k * n) as f64)
        };
        v.push(Bench {
            name: "linear",
            shape: format!("M={m} {k}→{n}"),
            work,
            run: Box::new(move || {
                black_box(linalg::linear_f32(&x, m, k, &w, n, Some(&b)));
            }),
        });
    }
    // Attention pieces at 128 tokens, 12 heads of 64.
    {
        let (h, l, e) = (12, 128, 64);
        let q = data(h * l * e, 9);
        let kt = data(h * e * l, 10);
        v.push(Bench {
            name: "matmul heads",
            shape: format!("[1,{h},{l},{e}]·[1,{h},{e},{l}]"),
            work: Work::Flops(2.0 * (h * l * l * e) as f64),
            run: Box::new(move || {
                black_box(
                    linalg::batched_matmul(&q, &[1, h], &kt, &[1, h], l, l, e, false, false)
                        .unwrap(),
                );
            }),
        });
        let q = data(h * l * e, 11);
        let k = data(h * l * e, 12);
        let vv = data(h * l * e, 13);
        let mask: Vec<bool> = (0..l * l).map(|i| i % l <= i / l).collect();
        v.push(Bench {
            name: "sdpa (causal bool mask)",
            shape: format!("[1,{h},{l},{e}]"),
            work: Work::Flops(4.0 * (h * l * l * e) as f64),
            run: Box::new(move || {
                let s = [1, h, l, e];
                black_box(
                    attention::sdpa(
                        &q,
                        &s,
                        &k,
                        &s,
                        &vv,
                        &s,
                        Some((attention::Mask::Keep(&mask), &[l, l][..])),
                    )
                    .unwrap(),
                );
            }),
        });
        let x = data(h * l * l, 14);
        v.push(Bench {
            name: "softmax last axis",
            shape: format!("[{h},{l},{l}]"),
            work: Work::Bytes((2 * h * l * l * 4) as f64),
            run: Box::new(move || {
                black_box(activation::softmax_3d(&x, h * l, l, 1));
            }),
        });
    }
    {
        let (m, d) = (128, 768);
        let x = data(m * d, 15);
        let g = data(d, 16);
        let b = data(d, 17);
        v.push(Bench {
            name: "layer_norm",
            shape: format!("[{m},{d}]"),
            work: Work::Bytes((2 * m * d * 4) as f64),
            run: Box::new(move || {
                black_box(normalization::layer_norm_rows(
                    &x,
                    d,
                    Some(&g),
                    Some(&b),
                    1e-5,
                ));
            }),
        });
        let x = data(m * 3072, 18);
        v.push(Bench {
            name: "gelu (exact)",
            shape: format!("[{m},3072]"),
            work: Work::Bytes((2 * m * 3072 * 4) as f64),
            run: Box::new(move || {
                black_box(activation::map(&x, activation::gelu_exact));
            }),
        });
    }
    {
        let xs = vec![1, 16, 32, 32];
        let x = data(xs.iter().product(), 19);
        let p = PoolParams {
            kernel: vec![2, 2],
            strides: Some(vec![2, 2]),
            pad_type: PadType::Valid,
            pad: None,
            ceil_mode: false,
            kind: PoolKind::Max,
        };
        v.push(Bench {
            name: "max_pool 2×2 s2",
            shape: format!("{xs:?}"),
            work: Work::Bytes(((x.len() + x.len() / 4) * 4) as f64),
            run: Box::new(move || {
                black_box(pool::pool_forward(&x, &xs, &p).unwrap());
            }),
        });
    }
    {
        let xs = vec![1, 64, 112, 112];
        let x = data(xs.iter().product(), 19);
        let p = PoolParams {
            kernel: vec![3, 3],
            strides: Some(vec![2, 2]),
            pad_type: PadType::Custom,
            pad: Some(vec![1, 1, 1, 1]),
            ceil_mode: false,
            kind: PoolKind::Max,
        };
        v.push(Bench {
            name: "max_pool 3×3 s2",
            shape: format!("{xs:?}"),
            work: Work::Bytes(((x.len() + x.len() / 4) * 4) as f64),
            run: Box::new(move || {
                black_box(pool::pool_forward(&x, &xs, &p).unwrap());
            }),
        });
    }
    v
}

/// Best time of `f` over at least `runs` runs and 0.3 s, after one warm-up run.
fn time(f: &(dyn Fn() + Sync + Send), runs: usize) -> Duration {
    f();
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut n = 0;
    while n < runs || start.elapsed() < Duration::from_millis(300) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        n += 1;
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut threads = vec![1usize, 2];
    let mut runs = 5usize;
    let mut filter: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--threads" => {
                i += 1;
                threads = args[i].split(',').map(|t| t.parse().unwrap()).collect();
            }
            "--runs" => {
                i += 1;
                runs = args[i].parse().unwrap();
            }
            "--bench" => {}
            a if a.starts_with("--") => {}
            a => filter = Some(a.to_string()),
        }
        i += 1;
    }
    let all = benches();
    let pools: Vec<rayon::ThreadPool> = threads
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    // GEMM peak per thread count: the 512³ product.
    let peaks: Vec<f64> = pools
        .iter()
        .map(|p| {
            let b = &all[0];
            let d = p.install(|| time(&*b.run, runs));
            match b.work {
                Work::Flops(f) => f / d.as_secs_f64() / 1e9,
                Work::Bytes(_) => 0.0,
            }
        })
        .collect();
    print!("{:<26} {:<44}", "kernel", "shape");
    for t in &threads {
        print!(
            " {:>10} {:>14} {:>6}",
            format!("{t}T time"),
            format!("{t}T rate"),
            "%peak"
        );
    }
    println!();
    for b in &all {
        if filter
            .as_deref()
            .is_some_and(|f| !b.name.contains(f) && !b.shape.contains(f))
        {
            continue;
        }
        print!("{:<26} {:<44}", b.name, b.shape);
        for (p, peak) in pools.iter().zip(&peaks) {
            let d = p.install(|| time(&*b.run, runs));
            let s = d.as_secs_f64();
            let (rate, pct) = match b.work {
                Work::Flops(f) => {
                    let g = f / s / 1e9;
                    (
                        format!("{g:.1} GFLOP/s"),
                        format!("{:.0}%", 100.0 * g / peak),
                    )
                }
                Work::Bytes(by) => (format!("{:.1} GB/s", by / s / 1e9), String::new()),
            };
            print!(" {:>8.1}µs {:>14} {:>6}", s * 1e6, rate, pct);
        }
        println!();
    }
    println!(
        "\nGEMM peak (faer, 512³): {}",
        threads
            .iter()
            .zip(&peaks)
            .map(|(t, p)| format!("{t}T {p:.0} GFLOP/s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
