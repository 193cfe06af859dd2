//! Pooling: `avg_pool`, `max_pool`, `l2_pool` (1-D/2-D/3-D, every pad type, `ceil_mode`,
//! `exclude_padding_from_average`).
//!
//! Semantics follow coremltools' `Pooling` ops, whose `ceil_mode` is PyTorch's:
//! - output size: `floor((in + pad_total − k) / s) + 1`, or with `ceil_mode`
//!   `floor((in + pad_total − k + s − 1) / s) + 1`, minus one when the last window would
//!   start at or beyond `in + pad_before` (and there is padding);
//! - `same`/`same_lower` padding: total `max(0, (ceil(in/s) − 1)·s + k − in)`, the odd one
//!   after (`same`) or before (`same_lower`);
//! - max: padding never wins; l2: `sqrt(Σ x²)` over the window's input elements;
//! - average: the window's input elements summed, divided by the number of input elements
//!   (`exclude_padding_from_average`) or by the window's extent within the padded input
//!   (PyTorch's `count_include_pad`: a `ceil_mode` window hanging past the padding does not
//!   count the part outside).

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::conv::PadType;
use super::linalg::{checked_len, contiguous, parallel};
use super::window::{self, Window};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &["avg_pool", "max_pool", "l2_pool"];

/// The pooling function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Average (optionally excluding padding from the count).
    Avg {
        /// `exclude_padding_from_average`.
        exclude_padding: bool,
    },
    /// Maximum.
    Max,
    /// Square root of the sum of squares.
    L2,
}

/// Constant parameters of a pooling op.
#[derive(Debug, Clone)]
pub struct PoolParams {
    /// Window per spatial dimension.
    pub kernel: Vec<i64>,
    /// Strides (default 1).
    pub strides: Option<Vec<i64>>,
    /// Pad type.
    pub pad_type: PadType,
    /// Explicit padding (`custom`).
    pub pad: Option<Vec<i64>>,
    /// PyTorch's `ceil_mode`.
    pub ceil_mode: bool,
    /// The function.
    pub kind: PoolKind,
}

/// Geometry of one pooling call (as 3-D).
#[derive(Debug, Clone)]
pub struct PoolGeom {
    spatial: usize,
    inp: [usize; 3],
    k: [usize; 3],
    s: [usize; 3],
    pad_before: [usize; 3],
    pad_after: [usize; 3],
    out: [usize; 3],
}

fn lift(v: &[usize], fill: usize) -> [usize; 3] {
    let mut o = [fill; 3];
    o[3 - v.len()..].copy_from_slice(v);
    o
}

/// Check the input shape against the parameters and derive the output geometry.
pub fn geometry(xs: &[usize], p: &PoolParams) -> Result<PoolGeom, String> {
    let rank = xs.len();
    if !(3..=5).contains(&rank) {
        return Err(format!(
            "x must be [N, C, *spatial] with 1 to 3 spatial dimensions, got shape {xs:?}"
        ));
    }
    let sp = rank - 2;
    let small = |v: i64, min: i64, what: &str| -> Result<usize, String> {
        if (min..=1 << 24).contains(&v) {
            Ok(v as usize)
        } else {
            Err(format!("{what} {v} is out of range"))
        }
    };
    if p.kernel.len() != sp {
        return Err(format!(
            "kernel_sizes has {} values for {sp} spatial dimensions",
            p.kernel.len()
        ));
    }
    let k: Vec<usize> = p
        .kernel
        .iter()
        .map(|&v| small(v, 1, "kernel size"))
        .collect::<Result<_, _>>()?;
    let s: Vec<usize> = match &p.strides {
        None => vec![1; sp],
        Some(v) if v.len() == sp => v
            .iter()
            .map(|&v| small(v, 1, "stride"))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(format!(
                "strides has {} values for {sp} dimensions",
                v.len()
            ));
        }
    };
    let custom: Vec<usize> = match (&p.pad, p.pad_type) {
        (Some(v), PadType::Custom) if v.len() == 2 * sp => v
            .iter()
            .map(|&v| small(v, 0, "pad"))
            .collect::<Result<_, _>>()?,
        (Some(v), PadType::Custom) => {
            return Err(format!("pad has {} values for {sp} dimensions", v.len()));
        }
        _ => vec![0; 2 * sp],
    };
    let inp = &xs[2..];
    let mut out = vec![0; sp];
    let mut pb = vec![0; sp];
    let mut pa = vec![0; sp];
    for i in 0..sp {
        let (n, kk, ss) = (inp[i], k[i], s[i]);
        let (b, a) = match p.pad_type {
            PadType::Valid => (0, 0),
            PadType::Custom => (custom[2 * i], custom[2 * i + 1]),
            PadType::Same | PadType::SameLower => {
                let total = (n.div_ceil(ss).saturating_sub(1) * ss + kk).saturating_sub(n);
                if p.pad_type == PadType::Same {
                    (total / 2, total - total / 2)
                } else {
                    (total.div_ceil(2), total / 2)
                }
            }
        };
        let padded = n + a + b;
        if padded < kk {
            return Err(format!(
                "spatial dimension {i}: the input ({n} + padding {b}+{a}) is smaller than the \
                 window ({kk})"
            ));
        }
        let mut o = if p.ceil_mode {
            (padded - kk).div_ceil(ss) + 1
        } else {
            (padded - kk) / ss + 1
        };
        // coremltools: (out − 1)·s ≥ in + pad_total/2 (with padding) drops the last window.
        if p.ceil_mode && a + b > 0 && 2 * (o - 1) * ss >= 2 * n + a + b {
            o -= 1;
        }
        out[i] = o;
        pb[i] = b;
        pa[i] = a;
    }
    let g = PoolGeom {
        spatial: sp,
        inp: lift(inp, 1),
        k: lift(&k, 1),
        s: lift(&s, 1),
        pad_before: lift(&pb, 0),
        pad_after: lift(&pa, 0),
        out: lift(&out, 1),
    };
    let mut shape = xs[..2].to_vec();
    shape.extend_from_slice(&out);
    checked_len(&shape, "output")?;
    Ok(g)
}

/// The window of output index `o` along one dimension: (clipped start, clipped end, extent
/// within the padded input).
#[inline]
fn window(o: usize, s: usize, k: usize, pb: usize, pa: usize, n: usize) -> (usize, usize, usize) {
    let start = (o * s) as isize - pb as isize;
    let end = start + k as isize;
    let padded_end = end.min((n + pa) as isize);
    let extent = (padded_end - start).max(0) as usize;
    let lo = start.clamp(0, n as isize) as usize;
    let hi = end.clamp(0, n as isize) as usize;
    (lo, hi.max(lo), extent)
}

/// Windows of every output index along one dimension.
fn windows(
    o: usize,
    s: usize,
    k: usize,
    pb: usize,
    pa: usize,
    n: usize,
) -> Vec<(usize, usize, usize)> {
    (0..o).map(|i| window(i, s, k, pb, pa, n)).collect()
}

/// Pool one plane (see [`super::window`]); averages are divided by the per-output count.
fn pool_plane(
    x: &[f32],
    g: &PoolGeom,
    kind: PoolKind,
    win: &[Vec<(usize, usize, usize)>; 3],
    out: &mut [f32],
) {
    let mut w = Window {
        inp: g.inp,
        k: g.k,
        s: g.s,
        d: [1, 1, 1],
        pad: g.pad_before,
        out: g.out,
    };
    // A (k, 1) window over [H, 1] planes (1-D audio networks written in 2-D) slides along
    // H: move H to the W position, so each output row is a run, not one element (same data
    // layout, same result).
    if w.inp[0] == 1
        && w.k[0] == 1
        && w.out[0] == 1
        && w.pad[0] == 0
        && w.inp[2] == 1
        && w.k[2] == 1
        && w.out[2] == 1
        && w.pad[2] == 0
    {
        w = Window {
            inp: [1, 1, w.inp[1]],
            k: [1, 1, w.k[1]],
            s: [1, 1, w.s[1]],
            d: [1, 1, 1],
            pad: [0, 0, w.pad[1]],
            out: [1, 1, w.out[1]],
        };
    }
    match kind {
        PoolKind::Max if tiles(&w) => max_tiles(x, &w, out),
        PoolKind::Max => {
            out.fill(f32::NEG_INFINITY);
            window::run(x, &w, None, f32::NEG_INFINITY, window::Max, out);
        }
        PoolKind::L2 => {
            out.fill(0.0);
            window::run(x, &w, None, 0.0, window::SumSq, out);
            out.iter_mut().for_each(|v| *v = v.sqrt());
        }
        PoolKind::Avg { exclude_padding } => {
            out.fill(0.0);
            window::run(x, &w, None, 0.0, window::Sum, out);
            let count = |&(lo, hi, extent): &(usize, usize, usize)| {
                if exclude_padding { hi - lo } else { extent }
            };
            let cx: Vec<usize> = win[2].iter().map(count).collect();
            let rows = out.chunks_exact_mut(cx.len().max(1));
            let zy = win[0]
                .iter()
                .flat_map(|z| win[1].iter().map(move |y| (z, y)));
            for (row, (z, y)) in rows.zip(zy) {
                let czy = count(z) * count(y);
                for (v, &c) in row.iter_mut().zip(&cx) {
                    let n = czy * c;
                    *v = if n == 0 { 0.0 } else { *v / n as f32 };
                }
            }
        }
    }
}

/// Whether `w` is a 1-D/2-D window without padding whose windows tile (part of) the input
/// (kernel = stride, every window inside the input, as in the 2×2 stride-2 max pooling of most convnets): [`max_tiles`] then reads
/// the input rows in place, with no padded copy.
fn tiles(w: &Window) -> bool {
    w.inp[0] == 1
        && w.k[0] == 1
        && w.pad == [0, 0, 0]
        && w.k[1] == w.s[1]
        && w.k[2] == w.s[2]
        // every window inside the input (not so with `ceil_mode`'s partial last window)
        && w.out[1] * w.k[1] <= w.inp[1]
        && w.out[2] * w.k[2] <= w.inp[2]
}

/// `max(acc, v)` as [`window::Max`] folds it (NaN propagates), branch-free.
#[inline(always)]
fn max_step(acc: f32, v: f32) -> f32 {
    if v > acc || v.is_nan() { v } else { acc }
}

/// Max pooling over the non-overlapping windows of [`tiles`]: per output row, the
/// elementwise maximum of its `kH` input rows (contiguous, vectorised), then of each run of
/// `kW` columns. NaN propagates as in [`window::Max`].
fn max_tiles(x: &[f32], w: &Window, out: &mut [f32]) {
    let [_, _, iw] = w.inp;
    let [_, kh, kw] = w.k;
    let [_, oh, ow] = w.out;
    let span = ow * kw;
    if kh == 2 && kw == 2 {
        // The 2×2 case in one pass over the two input rows: the same maxima in the same
        // order as below (rows first, then the pair), without the row buffer.
        return super::simd::vectorize(
            #[inline(always)]
            || {
                for (oy, o) in out.chunks_exact_mut(ow).enumerate().take(oh) {
                    let r0 = &x[2 * oy * iw..][..span];
                    let r1 = &x[(2 * oy + 1) * iw..][..span];
                    for ((v, a), b) in o.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2))
                    {
                        *v = max_step(max_step(a[0], b[0]), max_step(a[1], b[1]));
                    }
                }
            },
        );
    }
    let mut m = vec![0.0f32; span];
    super::simd::vectorize(
        #[inline(always)]
        || {
            for (oy, o) in out.chunks_exact_mut(ow).enumerate().take(oh) {
                let r0 = oy * kh * iw;
                m.copy_from_slice(&x[r0..r0 + span]);
                for b in 1..kh {
                    let row = &x[r0 + b * iw..][..span];
                    for (a, &v) in m.iter_mut().zip(row) {
                        *a = max_step(*a, v);
                    }
                }
                if kw == 2 {
                    for (v, c) in o.iter_mut().zip(m.chunks_exact(2)) {
                        *v = max_step(c[0], c[1]);
                    }
                } else {
                    for (v, c) in o.iter_mut().zip(m.chunks_exact(kw)) {
                        *v = c.iter().fold(f32::NEG_INFINITY, |a, &x| max_step(a, x));
                    }
                }
            }
        },
    );
}

/// Pool row-major `x` of shape `xs`; returns the output shape and data.
pub fn pool_forward(
    x: &[f32],
    xs: &[usize],
    p: &PoolParams,
) -> Result<(Vec<usize>, Vec<f32>), String> {
    let g = geometry(xs, p)?;
    let planes = xs[0] * xs[1];
    let in_plane: usize = g.inp.iter().product();
    let out_plane: usize = g.out.iter().product();
    let mut out = crate::cpu::buffers::take(planes * out_plane);
    let kvol: usize = g.k.iter().product();
    let win = [0, 1, 2].map(|d| {
        windows(
            g.out[d],
            g.s[d],
            g.k[d],
            g.pad_before[d],
            g.pad_after[d],
            g.inp[d],
        )
    });
    let run = |(i, o): (usize, &mut [f32])| {
        pool_plane(&x[i * in_plane..(i + 1) * in_plane], &g, p.kind, &win, o);
    };
    if out_plane > 0 {
        if parallel(out.len().saturating_mul(kvol)) {
            out.par_chunks_mut(out_plane).enumerate().for_each(run);
        } else {
            out.chunks_mut(out_plane).enumerate().for_each(run);
        }
    }
    let mut shape = xs[..2].to_vec();
    shape.extend_from_slice(&g.out[3 - g.spatial..]);
    Ok((shape, out))
}

fn pool_kernel(ctx: &OpCtx<'_>, kind: PoolKind) -> Result<Box<dyn Kernel>, String> {
    let list = |name: &str| -> Result<Option<Vec<i64>>, String> {
        match ctx.constant(name) {
            Some(v) => Ok(Some(v.to_i64s().map_err(|e| format!("{name}: {e}"))?)),
            None if ctx.has(name) => Err(format!("{name} must be a constant")),
            None => Ok(None),
        }
    };
    let flag = |name: &str| -> Result<bool, String> {
        Ok(list(name)?.is_some_and(|v| v.first().is_some_and(|&b| b != 0)))
    };
    let kind = match kind {
        PoolKind::Avg { .. } => PoolKind::Avg {
            exclude_padding: flag("exclude_padding_from_average")?,
        },
        k => k,
    };
    let pad_type = match ctx.constant("pad_type") {
        Some(v) => PadType::parse(v.as_str()?)?,
        None if ctx.has("pad_type") => return Err("pad_type must be a constant".into()),
        None => PadType::Valid,
    };
    let params = PoolParams {
        kernel: list("kernel_sizes")?.ok_or("kernel_sizes is required")?,
        strides: list("strides")?,
        pad_type,
        pad: list("pad")?,
        ceil_mode: flag("ceil_mode")?,
        kind,
    };
    Ok(kernel(move |args: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = args.f32("x")?;
        let (shape, out) = pool_forward(&contiguous(x), x.shape(), &params)?;
        Ok(vec![Value::F32(
            ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
        )])
    }))
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let kind = match ctx.op_type() {
        "avg_pool" => PoolKind::Avg {
            exclude_padding: false,
        },
        "max_pool" => PoolKind::Max,
        "l2_pool" => PoolKind::L2,
        _ => return None,
    };
    Some(pool_kernel(ctx, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_max_matches_the_window_path() {
        for (ih, iw, kh, kw) in [
            (32, 32, 2, 2),
            (11, 13, 2, 2),
            (10, 9, 3, 3),
            (1, 37, 1, 4),
            (7, 5, 3, 1),
        ] {
            let mut x: Vec<f32> = (0..ih * iw)
                .map(|i| ((i * 7919) % 101) as f32 - 50.0)
                .collect();
            x[3] = f32::NAN;
            x[ih * iw - 1] = f32::NEG_INFINITY;
            let w = Window {
                inp: [1, ih, iw],
                k: [1, kh, kw],
                s: [1, kh, kw],
                d: [1, 1, 1],
                pad: [0, 0, 0],
                out: [1, (ih - kh) / kh + 1, (iw - kw) / kw + 1],
            };
            assert!(tiles(&w));
            let n = w.out[1] * w.out[2];
            let mut want = vec![f32::NEG_INFINITY; n];
            window::run(&x, &w, None, f32::NEG_INFINITY, window::Max, &mut want);
            let mut got = vec![0.0; n];
            max_tiles(&x, &w, &mut got);
            // (Equal as floats: the fold order differs, so a ±0 tie may keep either sign.)
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(same, "{ih}x{iw} k {kh}x{kw}: {got:?} vs {want:?}");
        }
    }
}
