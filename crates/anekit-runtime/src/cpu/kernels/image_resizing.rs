//! Image resizing: `upsample_nearest_neighbor`, `upsample_bilinear`,
//! `resize_nearest_neighbor`, `resize_bilinear`, `resize` (iOS17), `crop`, `crop_resize`,
//! `affine`, `resample` (coremltools `ops/defs/iOS15|16|17/image_resizing.py`).
//!
//! Sampling grids (1-D, input size `X`, output size `N`), as the `resize_bilinear` docstring
//! and NeuralNetwork.proto's `SamplingMode` define them:
//! - `STRICT_ALIGN_CORNERS`: `i·(X−1)/(N−1)`; `ALIGN_CORNERS`: the same, `(X−1)/2` when
//!   `N = 1`; `DEFAULT`: `i·X/N`; `OFFSET_CORNERS`: `(i + ½)·max(1, X−1)/N`;
//!   `UNALIGN_CORNERS`: `(i + ½)·X/N − ½` (half-pixel centres); every point clamped to
//!   `[0, X−1]`, then linear interpolation between its two neighbours.
//! - `upsample_bilinear`: `align_corners` → strict-align, else half-pixel (iOS15); iOS16 adds
//!   `half_pixel_centers` (default `!align_corners`): (true, false) strict-align, (false,
//!   true) half-pixel, (false, false) `DEFAULT`; the output is `floor(X·scale)` and the grid
//!   uses the recomputed ratio `X/N` (PyTorch's `recompute_scale_factor=True`).
//! - Nearest neighbour: `upsample_nearest_neighbor` takes `floor(i·X/N)` (PyTorch's
//!   `nearest`; coremltools' fractional-scale test: 3 → 2 picks 0, 1); `resize_nearest_neighbor`
//!   and `resize(NEAREST_NEIGHBOR)` take `floor((i + ½)·X/N)` (TensorFlow's
//!   `half_pixel_centers=True`, which coremltools lowers to these ops and tests against;
//!   coremltools' iOS17 `resize` test: 2 → 3 picks 0, 1, 1); with an `ALIGN_CORNERS` mode
//!   `resize` rounds the align-corners grid instead (no coremltools test pins this down).
//!   `resize` also takes int32 tensors: they are interpolated in f32 and rounded.
//! - `crop_resize`: boxes in pixel coordinates (`normalized_coordinates` scales by `X−1`,
//!   `spatial_scale` multiplies), each box's span `[a, e]` sampled like `[0, X−1]` by the
//!   sampling mode (`ALIGN_CORNERS`: `a + i·(e−a)/(N−1)`, the box centre when `N = 1` — the
//!   mode coremltools' converters emit, TensorFlow's `crop_and_resize`; the other modes
//!   apply the resize grids to the box, an anekit reading no Core ML number checks); a point
//!   outside the image gives `pad_value` (0 before iOS16). iOS15/16 take `roi [N,1,4|5,1,1]` and return
//!   `[N, B, C, h, w]` (`[N, 1, C, h, w]` for 5-element rois, whose first element is the
//!   image index); iOS17 takes `boxes [N,4]` + `box_indices` and returns `[N, C, h, w]`.
//! - `resample`/`affine`: coordinates `(x, y)` are mapped to pixels per `coordinates_mode`
//!   (`unnormalized`; `normalized_minus_one_to_one`: `(c+1)/2·(X−1)` with `align_corners`,
//!   `((c+1)·X−1)/2` without; `normalized_zero_to_one`: `c·(X−1)` / `c·X−½`); out-of-image
//!   taps read `padding_value` (`constant`), the clamped coordinate (`border`), or the
//!   coordinate reflected over `[0, X−1]` (`reflection`, edge not repeated) or over
//!   `[−½, X−½]` (`symmetric`, edge repeated); `nearest` rounds half to even (PyTorch's
//!   `grid_sample`). `affine` samples at `(a0·x + a1·y + a2, b0·x + b1·y + b2)` for each
//!   output pixel's normalized coordinate `(x, y)`.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::util::{checked_product, const_bool, const_i64, const_str, try_zeros};
use super::{Args, Kernel, OpCtx, RunCtx, kernel};
use crate::cpu::value::Value;

/// Op types of this family.
pub const OPS: &[&str] = &[
    "affine",
    "crop",
    "crop_resize",
    "resample",
    "resize",
    "resize_bilinear",
    "resize_nearest_neighbor",
    "upsample_bilinear",
    "upsample_nearest_neighbor",
];

/// Output elements above which loops run in parallel.
const PAR_MIN: usize = 1 << 14;

/// A 1-D sampling grid convention.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Grid {
    StrictAlign,
    Align,
    Default,
    Offset,
    Unalign,
}

impl Grid {
    fn parse(s: &str) -> Result<Grid, String> {
        Ok(match s {
            "STRICT_ALIGN_CORNERS" => Grid::StrictAlign,
            "ALIGN_CORNERS" => Grid::Align,
            "DEFAULT" => Grid::Default,
            "OFFSET_CORNERS" => Grid::Offset,
            "UNALIGN_CORNERS" => Grid::Unalign,
            m => {
                return Err(format!(
                    "sampling_mode {m:?} is not one of STRICT_ALIGN_CORNERS, ALIGN_CORNERS, \
                     DEFAULT, OFFSET_CORNERS, UNALIGN_CORNERS"
                ));
            }
        })
    }

    /// Point `i` of `n` over a span of `x` pixels starting at `a` (`x` = extent + 1), before
    /// clamping.
    fn point(self, i: usize, n: usize, a: f64, x: f64) -> f64 {
        let (i, nf) = (i as f64, n as f64);
        match self {
            Grid::StrictAlign | Grid::Align if n == 1 => {
                if self == Grid::Align {
                    a + (x - 1.0) / 2.0
                } else {
                    a
                }
            }
            Grid::StrictAlign | Grid::Align => a + i * (x - 1.0) / (nf - 1.0),
            Grid::Default => a + i * x / nf,
            Grid::Offset => {
                let d = (x - 1.0).max(1.0) / nf;
                a + 0.5 * d + i * d
            }
            Grid::Unalign => a + (i + 0.5) * x / nf - 0.5,
        }
    }
}

/// One output position along an axis: `x[i0]·(1−w) + x[i1]·w`.
#[derive(Clone, Copy, Debug)]
struct Tap {
    i0: usize,
    i1: usize,
    w: f32,
}

/// `(0..n).map(f)` collected into a vector whose allocation failure is an error.
fn try_collect<T>(n: usize, f: impl FnMut(usize) -> T) -> Result<Vec<T>, String> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate a sampling grid of {n} points"))?;
    v.extend((0..n).map(f));
    Ok(v)
}

/// Linear taps for a grid over an input of `n_in`, clamped to `[0, n_in−1]`.
fn linear_taps(grid: Grid, n_in: usize, n_out: usize) -> Result<Vec<Tap>, String> {
    let last = n_in.saturating_sub(1);
    try_collect(n_out, |i| {
        let g = grid
            .point(i, n_out, 0.0, n_in as f64)
            .clamp(0.0, last as f64);
        let g = if g.is_nan() { 0.0 } else { g };
        let i0 = (g.floor() as usize).min(last);
        let i1 = (i0 + 1).min(last);
        Tap {
            i0,
            i1,
            w: (g - i0 as f64) as f32,
        }
    })
}

fn nearest_tap(i: usize) -> Tap {
    Tap {
        i0: i,
        i1: i,
        w: 0.0,
    }
}

/// `floor(i·X/N)` (`upsample_nearest_neighbor`).
fn nearest_floor(n_in: usize, n_out: usize) -> Result<Vec<Tap>, String> {
    let last = n_in.saturating_sub(1);
    try_collect(n_out, |i| {
        nearest_tap(((i as u128 * n_in as u128) / n_out.max(1) as u128).min(last as u128) as usize)
    })
}

/// `floor((i + ½)·X/N)` (`resize_nearest_neighbor`, half-pixel centres).
fn nearest_half(n_in: usize, n_out: usize) -> Result<Vec<Tap>, String> {
    let last = n_in.saturating_sub(1);
    try_collect(n_out, |i| {
        let v = ((2 * i as u128 + 1) * n_in as u128) / (2 * n_out.max(1) as u128);
        nearest_tap(v.min(last as u128) as usize)
    })
}

/// The grid point rounded half away from zero.
fn nearest_round(grid: Grid, n_in: usize, n_out: usize) -> Result<Vec<Tap>, String> {
    let last = n_in.saturating_sub(1);
    try_collect(n_out, |i| {
        let g = grid.point(i, n_out, 0.0, n_in as f64).round();
        nearest_tap(if g.is_nan() {
            0
        } else {
            g.clamp(0.0, last as f64) as usize
        })
    })
}

/// Resample `x` along `axis` with `taps` (one per output position).
fn resize_axis(x: &ArrayD<f32>, axis: usize, taps: &[Tap]) -> Result<ArrayD<f32>, String> {
    let shape = x.shape();
    let n_in = *shape.get(axis).ok_or("axis out of range")?;
    if n_in == 0 && !taps.is_empty() {
        return Err(format!(
            "cannot resize an empty dimension (shape {shape:?})"
        ));
    }
    let outer = checked_product(&shape[..axis], "x")?;
    let inner = checked_product(&shape[axis + 1..], "x")?;
    let mut out_shape = shape.to_vec();
    out_shape[axis] = taps.len();
    let out_len = checked_product(&out_shape, "the output")?;
    let mut out = try_zeros::<f32>(out_len)?;
    let xs = super::linalg::contiguous(x);
    let plane_in = n_in * inner;
    let plane_out = taps.len() * inner;
    if plane_out > 0 {
        let body = |(o, dst): (usize, &mut [f32])| {
            let src = &xs[o * plane_in..(o + 1) * plane_in];
            if inner == 1 {
                for (t, r) in taps.iter().zip(dst.iter_mut()) {
                    let p = src[t.i0];
                    *r = if t.w == 0.0 {
                        p
                    } else {
                        p + (src[t.i1] - p) * t.w
                    };
                }
                return;
            }
            for (t, row) in taps.iter().zip(dst.chunks_exact_mut(inner)) {
                let a = &src[t.i0 * inner..(t.i0 + 1) * inner];
                if t.w == 0.0 {
                    row.copy_from_slice(a);
                } else {
                    let b = &src[t.i1 * inner..(t.i1 + 1) * inner];
                    let w = t.w;
                    for ((r, &p), &q) in row.iter_mut().zip(a).zip(b) {
                        *r = p + (q - p) * w;
                    }
                }
            }
        };
        if out_len >= PAR_MIN && outer > 1 && super::threads() > 1 {
            // Tasks of about PAR_MIN output elements.
            let per = PAR_MIN.checked_div(plane_out).unwrap_or(1).max(1);
            out.par_chunks_mut(plane_out * per)
                .enumerate()
                .for_each(|(t, chunk)| {
                    for (k, dst) in chunk.chunks_mut(plane_out).enumerate() {
                        body((t * per + k, dst));
                    }
                });
        } else {
            out.chunks_mut(plane_out).enumerate().for_each(body);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}

/// Resample the last two axes in one pass: each output row interpolates between two input
/// rows (`th`), each of them between two columns (`tw`).
fn resize_hw(x: &ArrayD<f32>, th: &[Tap], tw: &[Tap]) -> Result<ArrayD<f32>, String> {
    let r = x.ndim();
    if r < 2 {
        return Err(format!("x must have rank >= 2, got shape {:?}", x.shape()));
    }
    let (h, w) = (x.shape()[r - 2], x.shape()[r - 1]);
    let (oh, ow) = (th.len(), tw.len());
    if (h == 0 || w == 0) && oh * ow > 0 {
        return Err(format!(
            "cannot resize an empty image (shape {:?})",
            x.shape()
        ));
    }
    let mut out_shape = x.shape().to_vec();
    out_shape[r - 2] = oh;
    out_shape[r - 1] = ow;
    let out_len = checked_product(&out_shape, "the output")?;
    let mut out = try_zeros::<f32>(out_len)?;
    let plane_out = oh * ow;
    if plane_out > 0 {
        let xs = super::linalg::contiguous(x);
        let plane_in = h * w;
        let body = |(p, dst): (usize, &mut [f32])| {
            let src = &xs[p * plane_in..(p + 1) * plane_in];
            let mut top = vec![0.0f32; ow];
            let mut bot = vec![0.0f32; ow];
            let horiz = |row: &[f32], buf: &mut [f32]| {
                for (v, t) in buf.iter_mut().zip(tw) {
                    let a = row[t.i0];
                    *v = if t.w == 0.0 {
                        a
                    } else {
                        a + (row[t.i1] - a) * t.w
                    };
                }
            };
            for (ty, d) in th.iter().zip(dst.chunks_exact_mut(ow)) {
                horiz(&src[ty.i0 * w..(ty.i0 + 1) * w], &mut top);
                if ty.w == 0.0 {
                    d.copy_from_slice(&top);
                } else {
                    horiz(&src[ty.i1 * w..(ty.i1 + 1) * w], &mut bot);
                    let wy = ty.w;
                    for ((o, &a), &b) in d.iter_mut().zip(&top).zip(&bot) {
                        *o = a + (b - a) * wy;
                    }
                }
            }
        };
        let planes = out_len.checked_div(plane_out).unwrap_or(0);
        if out_len >= PAR_MIN && planes > 1 && super::threads() > 1 {
            out.par_chunks_mut(plane_out).enumerate().for_each(body);
        } else {
            out.chunks_mut(plane_out).enumerate().for_each(body);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())
}

/// Check that an output of `x`'s shape with the last two dimensions `oh × ow` can be
/// allocated, before building its grids (which are at most that large).
fn probe_output(x: &ArrayD<f32>, oh: usize, ow: usize) -> Result<(), String> {
    let r = x.ndim();
    let mut shape = x.shape().to_vec();
    if r >= 2 {
        shape[r - 2] = oh;
        shape[r - 1] = ow;
    }
    probe(&shape)
}

/// Reserve (without touching) room for an f32 tensor of `shape`: an error when it cannot be
/// allocated.
fn probe(shape: &[usize]) -> Result<(), String> {
    let n = checked_product(shape, "the output")?;
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| format!("cannot allocate an output of shape {shape:?}"))
}

fn rank3(x: &ArrayD<f32>, op: &str) -> Result<(usize, usize), String> {
    let r = x.ndim();
    if r < 3 {
        return Err(format!(
            "{op}: x must have rank >= 3, got shape {:?}",
            x.shape()
        ));
    }
    Ok((x.shape()[r - 2], x.shape()[r - 1]))
}

/// `floor(X·scale)` in fp32, as coremltools' type inference computes it.
fn scaled(n: usize, scale: f32, what: &str) -> Result<usize, String> {
    let v = (n as f32 * scale).floor();
    if !(0.0..1e9).contains(&v) {
        return Err(format!("{what}: {n} × {scale} is not a valid size"));
    }
    Ok(v as usize)
}

fn const_f32(ctx: &OpCtx<'_>, p: &str, default: f32) -> Result<f32, String> {
    Ok(super::util::const_f32_opt(ctx, p)?.unwrap_or(default))
}

fn size(v: i64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} must not be negative, got {v}"))
}

/// Build a kernel of this family.
pub fn build(ctx: &mut OpCtx<'_>) -> Option<Result<Box<dyn Kernel>, String>> {
    let k = match ctx.op_type() {
        "upsample_nearest_neighbor" => upsample_nearest(ctx),
        "upsample_bilinear" => upsample_bilinear(ctx),
        "resize_nearest_neighbor" => resize_nearest(ctx),
        "resize_bilinear" => resize_bilinear(ctx),
        "resize" => resize(ctx),
        "crop" => crop(ctx),
        "crop_resize" => crop_resize(ctx),
        "resample" => resample(ctx),
        "affine" => affine(ctx),
        _ => return None,
    };
    Some(k)
}

fn upsample_nearest(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let sh = const_f32(ctx, "scale_factor_height", 1.0)?;
    let sw = const_f32(ctx, "scale_factor_width", 1.0)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let (h, w) = rank3(x, "upsample_nearest_neighbor")?;
        let (oh, ow) = (scaled(h, sh, "height")?, scaled(w, sw, "width")?);
        probe_output(x, oh, ow)?;
        Ok(vec![Value::F32(resize_hw(
            x,
            &nearest_floor(h, oh)?,
            &nearest_floor(w, ow)?,
        )?)])
    }))
}

fn upsample_bilinear(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let sh = const_f32(ctx, "scale_factor_height", 1.0)?;
    let sw = const_f32(ctx, "scale_factor_width", 1.0)?;
    let align = const_bool(ctx, "align_corners", true)?;
    let grid = if ctx.opset >= anekit_mil::Opset::Ios16 {
        let half = const_bool(ctx, "half_pixel_centers", !align)?;
        match (align, half) {
            (true, false) => Grid::StrictAlign,
            (false, true) => Grid::Unalign,
            (false, false) => Grid::Default,
            (true, true) => {
                return Err("align_corners and half_pixel_centers cannot both be true".into());
            }
        }
    } else if align {
        Grid::StrictAlign
    } else {
        Grid::Unalign
    };
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let (h, w) = rank3(x, "upsample_bilinear")?;
        let (oh, ow) = (scaled(h, sh, "height")?, scaled(w, sw, "width")?);
        probe_output(x, oh, ow)?;
        Ok(vec![Value::F32(resize_hw(
            x,
            &linear_taps(grid, h, oh)?,
            &linear_taps(grid, w, ow)?,
        )?)])
    }))
}

fn target(ctx: &OpCtx<'_>, p: &str, default: Option<i64>) -> Result<usize, String> {
    let v = match default {
        Some(d) => const_i64(ctx, p, d)?,
        None => {
            if !ctx.has(p) {
                return Err(format!("{p} is required"));
            }
            const_i64(ctx, p, 0)?
        }
    };
    size(v, p)
}

fn resize_nearest(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let oh = target(ctx, "target_size_height", None)?;
    let ow = target(ctx, "target_size_width", None)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let (h, w) = rank3(x, "resize_nearest_neighbor")?;
        probe_output(x, oh, ow)?;
        Ok(vec![Value::F32(resize_hw(
            x,
            &nearest_half(h, oh)?,
            &nearest_half(w, ow)?,
        )?)])
    }))
}

fn resize_bilinear(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let oh = target(ctx, "target_size_height", Some(1))?;
    let ow = target(ctx, "target_size_width", Some(1))?;
    let grid = Grid::parse(&const_str(ctx, "sampling_mode", "DEFAULT")?)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let (h, w) = rank3(x, "resize_bilinear")?;
        probe_output(x, oh, ow)?;
        Ok(vec![Value::F32(resize_hw(
            x,
            &linear_taps(grid, h, oh)?,
            &linear_taps(grid, w, ow)?,
        )?)])
    }))
}

fn resize(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let dims = const_i64(ctx, "resized_dims", -1)?;
    if !ctx.has("resized_dims") {
        return Err("resized_dims is required".into());
    }
    let dims = size(dims, "resized_dims")?;
    let linear = match const_str(ctx, "interpolation_mode", "LINEAR")?.as_str() {
        "LINEAR" => true,
        "NEAREST_NEIGHBOR" => false,
        m => {
            return Err(format!(
                "interpolation_mode {m:?} is not LINEAR or NEAREST_NEIGHBOR"
            ));
        }
    };
    let grid = Grid::parse(&const_str(ctx, "sampling_mode", "DEFAULT")?)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let target = a.i64s("shape")?;
        let (x, int) = match a.req("x")? {
            Value::F32(x) => (std::borrow::Cow::Borrowed(x), false),
            Value::I32(x) => (std::borrow::Cow::Owned(x.mapv(|v| v as f32)), true),
            v => {
                return Err(format!(
                    "x: expected a numeric tensor, got {}",
                    v.describe()
                ));
            }
        };
        let r = x.ndim();
        if target.len() > r {
            return Err(format!(
                "shape has {} elements, more than the rank {r} of x",
                target.len()
            ));
        }
        if dims > target.len() {
            return Err(format!(
                "resized_dims {dims} is larger than the size {} of shape",
                target.len()
            ));
        }
        let mut out_shape = x.shape().to_vec();
        for j in 0..dims {
            let want = target[target.len() - dims + j];
            if want != 0 {
                out_shape[r - dims + j] = size(want, "shape")?;
            }
        }
        probe(&out_shape)?;
        let mut y = x.into_owned();
        for j in 0..dims {
            let axis = r - dims + j;
            let want = target[target.len() - dims + j];
            let n_in = y.shape()[axis];
            let n_out = if want == 0 {
                n_in
            } else {
                size(want, "shape")?
            };
            let taps = match (linear, grid) {
                (true, g) => linear_taps(g, n_in, n_out)?,
                (false, Grid::StrictAlign | Grid::Align) => nearest_round(grid, n_in, n_out)?,
                (false, _) => nearest_half(n_in, n_out)?,
            };
            y = resize_axis(&y, axis, &taps)?;
        }
        Ok(vec![if int {
            Value::I32(y.mapv(|v| v.round() as i32))
        } else {
            Value::F32(y)
        }])
    }))
}

fn crop(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let pair = |p: &str| -> Result<[usize; 2], String> {
        let v = ctx
            .constant(p)
            .ok_or_else(|| format!("{p} must be a constant"))?
            .to_i64s()
            .map_err(|e| format!("{p}: {e}"))?;
        match v.as_slice() {
            [a, b] => Ok([size(*a, p)?, size(*b, p)?]),
            _ => Err(format!("{p} must have 2 elements, got {}", v.len())),
        }
    };
    let (ch, cw) = (pair("crop_height")?, pair("crop_width")?);
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let (h, w) = rank3(x, "crop")?;
        if ch[0] + ch[1] > h || cw[0] + cw[1] > w {
            return Err(format!(
                "crop_height {ch:?} / crop_width {cw:?} remove more than the {h}×{w} input"
            ));
        }
        let r = x.ndim();
        let v = x.slice_each_axis(|ax| {
            let i = ax.axis.index();
            if i == r - 2 {
                ndarray::Slice::from(ch[0]..h - ch[1])
            } else if i == r - 1 {
                ndarray::Slice::from(cw[0]..w - cw[1])
            } else {
                ndarray::Slice::from(..)
            }
        });
        Ok(vec![Value::F32(v.to_owned())])
    }))
}

// ------------------------------------------------------------------------------------------
// crop_resize
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum BoxMode {
    CornersHw,
    CornersWh,
    CenterHw,
    CenterWh,
}

struct CropCfg {
    th: usize,
    tw: usize,
    normalized: bool,
    spatial_scale: f32,
    mode: BoxMode,
    grid: Grid,
    pad: f32,
    ios17: bool,
}

fn crop_resize(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let mode = match const_str(ctx, "box_coordinate_mode", "CORNERS_HEIGHT_FIRST")?.as_str() {
        "CORNERS_HEIGHT_FIRST" => BoxMode::CornersHw,
        "CORNERS_WIDTH_FIRST" => BoxMode::CornersWh,
        "CENTER_SIZE_HEIGHT_FIRST" => BoxMode::CenterHw,
        "CENTER_SIZE_WIDTH_FIRST" => BoxMode::CenterWh,
        m => return Err(format!("box_coordinate_mode {m:?} is not recognised")),
    };
    let cfg = CropCfg {
        th: target(ctx, "target_height", Some(1))?,
        tw: target(ctx, "target_width", Some(1))?,
        normalized: const_bool(ctx, "normalized_coordinates", false)?,
        spatial_scale: const_f32(ctx, "spatial_scale", 1.0)?,
        mode,
        grid: Grid::parse(&const_str(ctx, "sampling_mode", "DEFAULT")?)?,
        pad: const_f32(ctx, "pad_value", 0.0)?,
        ios17: ctx.opset >= anekit_mil::Opset::Ios17,
    };
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        crop_resize_run(&cfg, a)
    }))
}

fn crop_resize_run(cfg: &CropCfg, a: &Args<'_>) -> Result<Vec<Value>, String> {
    let x = a.f32("x")?;
    let &[bn, c, h, w] = x.shape() else {
        return Err(format!(
            "x must have rank 4 [B, C, H, W], got shape {:?}",
            x.shape()
        ));
    };
    // (image index or None for "every image", 4 coordinates) per box.
    let mut boxes: Vec<(Option<usize>, [f32; 4])> = Vec::new();
    let per_image = if cfg.ios17 {
        let bx = a
            .req("boxes")?
            .to_f32s()
            .map_err(|e| format!("boxes: {e}"))?;
        let shape = a.req("boxes")?.shape().to_vec();
        let [n, 4] = shape[..] else {
            return Err(format!("boxes must have shape [N, 4], got {shape:?}"));
        };
        let idx = match a.get("box_indices") {
            Some(v) => {
                let v = v.to_i64s().map_err(|e| format!("box_indices: {e}"))?;
                if v.len() != n {
                    return Err(format!("box_indices has {} values for {n} boxes", v.len()));
                }
                v
            }
            None => (0..n as i64).collect(),
        };
        for (k, &i) in idx.iter().enumerate() {
            let i = usize::try_from(i)
                .ok()
                .filter(|&i| i < bn)
                .ok_or_else(|| format!("box index {i} is out of range for batch {bn}"))?;
            let q = &bx[k * 4..k * 4 + 4];
            boxes.push((Some(i), [q[0], q[1], q[2], q[3]]));
        }
        false
    } else {
        let roi = a.f32("roi")?;
        let shape = roi.shape();
        let (n, k) = match shape {
            &[n, 1, k, 1, 1] if k == 4 || k == 5 => (n, k),
            _ => {
                return Err(format!(
                    "roi must have shape [N, 1, 4, 1, 1] or [N, 1, 5, 1, 1], got {shape:?}"
                ));
            }
        };
        let v = super::linalg::contiguous(roi);
        for r in 0..n {
            let q = &v[r * k..(r + 1) * k];
            if k == 5 {
                let i = q[0];
                if !(i >= 0.0 && (i as usize) < bn && i.fract() == 0.0) {
                    return Err(format!(
                        "roi image index {i} is out of range for batch {bn}"
                    ));
                }
                boxes.push((Some(i as usize), [q[1], q[2], q[3], q[4]]));
            } else {
                boxes.push((None, [q[0], q[1], q[2], q[3]]));
            }
        }
        k == 4
    };
    let (th, tw) = (cfg.th, cfg.tw);
    let images = if per_image { bn } else { 1 };
    let out_shape: Vec<usize> = if cfg.ios17 {
        vec![boxes.len(), c, th, tw]
    } else {
        vec![boxes.len(), images, c, th, tw]
    };
    let total = checked_product(&out_shape, "the output")?;
    let mut out = try_zeros::<f32>(total)?;
    if total == 0 {
        return Ok(vec![Value::F32(
            ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())?,
        )]);
    }
    let xs = super::linalg::contiguous(x);
    let plane = h * w;
    let crop = th * tw;
    let mut pos = 0;
    for (img, q) in &boxes {
        let [mut y1, mut x1, mut y2, mut x2] = match cfg.mode {
            BoxMode::CornersHw => *q,
            BoxMode::CornersWh => [q[1], q[0], q[3], q[2]],
            BoxMode::CenterHw => [
                q[0] - q[2] / 2.0,
                q[1] - q[3] / 2.0,
                q[0] + q[2] / 2.0,
                q[1] + q[3] / 2.0,
            ],
            BoxMode::CenterWh => [
                q[1] - q[3] / 2.0,
                q[0] - q[2] / 2.0,
                q[1] + q[3] / 2.0,
                q[0] + q[2] / 2.0,
            ],
        };
        let (sy, sx) = if cfg.normalized {
            ((h as f32 - 1.0), (w as f32 - 1.0))
        } else {
            (1.0, 1.0)
        };
        for (v, s) in [(&mut y1, sy), (&mut y2, sy), (&mut x1, sx), (&mut x2, sx)] {
            *v *= s * cfg.spatial_scale;
        }
        let ys = box_grid(cfg.grid, y1, y2, th)?;
        let xs_ = box_grid(cfg.grid, x1, x2, tw)?;
        let imgs: Vec<usize> = match img {
            Some(i) => vec![*i],
            None => (0..bn).collect(),
        };
        for i in imgs {
            for ch in 0..c {
                let src = &xs[(i * c + ch) * plane..(i * c + ch + 1) * plane];
                let dst = out
                    .get_mut(pos..pos + crop)
                    .ok_or("output index out of range")?;
                for (oy, &gy) in ys.iter().enumerate() {
                    for (ox, &gx) in xs_.iter().enumerate() {
                        dst[oy * tw + ox] = bilinear_or_pad(src, h, w, gy, gx, cfg.pad);
                    }
                }
                pos += crop;
            }
        }
    }
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(&out_shape), out).map_err(|e| e.to_string())?,
    )])
}

/// Sample points of a box spanning `[a, e]` (pixel coordinates).
fn box_grid(grid: Grid, a: f32, e: f32, n: usize) -> Result<Vec<f64>, String> {
    let (a, e) = (f64::from(a), f64::from(e));
    let x = e - a + 1.0;
    try_collect(n, |i| {
        let g = grid.point(i, n, a, x);
        match grid {
            Grid::StrictAlign | Grid::Align => g,
            // The other modes clamp into the box like the resize grid into [0, X−1].
            _ => {
                let (lo, hi) = if a <= e { (a, e) } else { (e, a) };
                g.clamp(lo, hi)
            }
        }
    })
}

/// TensorFlow `crop_and_resize` sampling: `pad` outside `[0, H−1] × [0, W−1]`.
fn bilinear_or_pad(src: &[f32], h: usize, w: usize, y: f64, x: f64, pad: f32) -> f32 {
    if !(y >= 0.0 && y <= (h as f64 - 1.0) && x >= 0.0 && x <= (w as f64 - 1.0)) {
        return pad;
    }
    let (y0, x0) = (y.floor() as usize, x.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (fy, fx) = ((y - y0 as f64) as f32, (x - x0 as f64) as f32);
    let at = |r: usize, c: usize| src[r * w + c];
    let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
    let bot = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
    top + (bot - top) * fy
}

// ------------------------------------------------------------------------------------------
// resample / affine
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Pad {
    Constant,
    Border,
    Reflection,
    Symmetric,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Coords {
    Unnormalized,
    MinusOneToOne,
    ZeroToOne,
}

#[derive(Clone, Copy, Debug)]
struct SampleCfg {
    nearest: bool,
    pad: Pad,
    pad_value: f32,
    coords: Coords,
    align: bool,
}

fn sample_cfg(ctx: &OpCtx<'_>) -> Result<SampleCfg, String> {
    let req = |p: &str| -> Result<String, String> {
        if !ctx.has(p) {
            return Err(format!("{p} is required"));
        }
        const_str(ctx, p, "")
    };
    let nearest = match req("sampling_mode")?.to_ascii_lowercase().as_str() {
        "bilinear" => false,
        "nearest" => true,
        m => return Err(format!("sampling_mode {m:?} is not bilinear or nearest")),
    };
    let pad = match req("padding_mode")?.to_ascii_lowercase().as_str() {
        "constant" => Pad::Constant,
        "border" => Pad::Border,
        "reflection" => Pad::Reflection,
        "symmetric" => Pad::Symmetric,
        m => {
            return Err(format!(
                "padding_mode {m:?} is not constant, border, reflection or symmetric"
            ));
        }
    };
    let coords = match req("coordinates_mode")?.to_ascii_lowercase().as_str() {
        "unnormalized" => Coords::Unnormalized,
        "normalized_minus_one_to_one" => Coords::MinusOneToOne,
        "normalized_zero_to_one" => Coords::ZeroToOne,
        m => return Err(format!("coordinates_mode {m:?} is not recognised")),
    };
    Ok(SampleCfg {
        nearest,
        pad,
        pad_value: const_f32(ctx, "padding_value", 0.0)?,
        coords,
        align: const_bool(ctx, "align_corners", false)?,
    })
}

impl SampleCfg {
    /// A coordinate in `coords` units → a pixel position over `n` pixels.
    fn pixel(&self, c: f64, n: usize) -> f64 {
        let nf = n as f64;
        match (self.coords, self.align) {
            (Coords::Unnormalized, _) => c,
            (Coords::MinusOneToOne, true) => (c + 1.0) / 2.0 * (nf - 1.0),
            (Coords::MinusOneToOne, false) => ((c + 1.0) * nf - 1.0) / 2.0,
            (Coords::ZeroToOne, true) => c * (nf - 1.0),
            (Coords::ZeroToOne, false) => c * nf - 0.5,
        }
    }

    /// Apply the padding mode's coordinate transform (border clamps, the reflections fold).
    fn fold(&self, p: f64, n: usize) -> f64 {
        let last = n as f64 - 1.0;
        match self.pad {
            Pad::Constant => p,
            Pad::Border => p.clamp(0.0, last.max(0.0)),
            Pad::Reflection => reflect(p, 0.0, last).clamp(0.0, last.max(0.0)),
            Pad::Symmetric => reflect(p, -0.5, last + 0.5).clamp(0.0, last.max(0.0)),
        }
    }

    /// The taps of a sample at pixel position (`px`, `py`) of an `h × w` plane: up to four
    /// (flat index, weight) pairs; index [`PAD`] reads the padding value.
    fn taps(&self, h: usize, w: usize, px: f64, py: f64) -> [(usize, f32); 4] {
        let (px, py) = (self.fold(px, w), self.fold(py, h));
        let none = (PAD, 0.0);
        if !(px.is_finite() && py.is_finite()) {
            return [(PAD, 1.0), none, none, none];
        }
        let at = |r: f64, c: f64| -> usize {
            if r >= 0.0 && c >= 0.0 && r < h as f64 && c < w as f64 {
                r as usize * w + c as usize
            } else {
                PAD
            }
        };
        if self.nearest {
            return [
                (at(py.round_ties_even(), px.round_ties_even()), 1.0),
                none,
                none,
                none,
            ];
        }
        let (x0, y0) = (px.floor(), py.floor());
        let (fx, fy) = ((px - x0) as f32, (py - y0) as f32);
        [
            (at(y0, x0), (1.0 - fx) * (1.0 - fy)),
            (at(y0, x0 + 1.0), fx * (1.0 - fy)),
            (at(y0 + 1.0, x0), (1.0 - fx) * fy),
            (at(y0 + 1.0, x0 + 1.0), fx * fy),
        ]
    }
}

/// The tap index that reads the padding value.
const PAD: usize = usize::MAX;

/// Reflect `p` into `[lo, hi]` (period `2·(hi − lo)`).
fn reflect(p: f64, lo: f64, hi: f64) -> f64 {
    let span = hi - lo;
    if span <= 0.0 {
        return lo;
    }
    let u = (p - lo).abs() % (2.0 * span);
    lo + if u > span { 2.0 * span - u } else { u }
}

fn resample(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let cfg = sample_cfg(ctx)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let &[bn, c, h, w] = x.shape() else {
            return Err(format!(
                "x must have rank 4 [B, C, H, W], got shape {:?}",
                x.shape()
            ));
        };
        let coords = a.req("coordinates")?;
        let cs = coords.shape().to_vec();
        let &[cb, oh, ow, 2] = cs.as_slice() else {
            return Err(format!(
                "coordinates must have shape [B, H, W, 2], got {cs:?}"
            ));
        };
        if cb != bn {
            return Err(format!("coordinates have batch {cb}, x has {bn}"));
        }
        let cv = coords.to_f32s().map_err(|e| format!("coordinates: {e}"))?;
        grid_sample(&cfg, x, (bn, c, h, w), (oh, ow), |n, i, j| {
            let k = ((n * oh + i) * ow + j) * 2;
            (
                cfg.pixel(f64::from(cv[k]), w),
                cfg.pixel(f64::from(cv[k + 1]), h),
            )
        })
    }))
}

fn affine(ctx: &OpCtx<'_>) -> Result<Box<dyn Kernel>, String> {
    let cfg = sample_cfg(ctx)?;
    let oh = target(ctx, "output_height", None)?;
    let ow = target(ctx, "output_width", None)?;
    Ok(kernel(move |a: &Args<'_>, _: &mut RunCtx<'_>| {
        let x = a.f32("x")?;
        let &[bn, c, h, w] = x.shape() else {
            return Err(format!(
                "x must have rank 4 [B, C, H, W], got shape {:?}",
                x.shape()
            ));
        };
        let m = a.f32("transform_matrix")?;
        let &[d, 6] = m.shape() else {
            return Err(format!(
                "transform_matrix must have shape [D, 6], got {:?}",
                m.shape()
            ));
        };
        if d != 1 && d != bn {
            return Err(format!(
                "transform_matrix has {d} rows; expected 1 or the batch {bn}"
            ));
        }
        let mv = super::linalg::contiguous(m);
        // The output pixel's own coordinate in the op's coordinate system.
        let base = |i: usize, n: usize| -> f64 {
            let (i, nf) = (i as f64, n as f64);
            match (cfg.coords, cfg.align) {
                (Coords::Unnormalized, _) => i,
                (Coords::MinusOneToOne, true) if n == 1 => -1.0,
                (Coords::MinusOneToOne, true) => -1.0 + 2.0 * i / (nf - 1.0),
                (Coords::MinusOneToOne, false) => (2.0 * i + 1.0) / nf - 1.0,
                (Coords::ZeroToOne, true) if n == 1 => 0.0,
                (Coords::ZeroToOne, true) => i / (nf - 1.0),
                (Coords::ZeroToOne, false) => (i + 0.5) / nf,
            }
        };
        grid_sample(&cfg, x, (bn, c, h, w), (oh, ow), |n, i, j| {
            let r = if d == 1 { 0 } else { n } * 6;
            let t = |k: usize| f64::from(mv[r + k]);
            let (xo, yo) = (base(j, ow), base(i, oh));
            let xs = t(0) * xo + t(1) * yo + t(2);
            let ys = t(3) * xo + t(4) * yo + t(5);
            (cfg.pixel(xs, w), cfg.pixel(ys, h))
        })
    }))
}

/// Sample every channel of each image at the pixel positions `pos(n, i, j)`.
fn grid_sample(
    cfg: &SampleCfg,
    x: &ArrayD<f32>,
    (bn, c, h, w): (usize, usize, usize, usize),
    (oh, ow): (usize, usize),
    pos: impl Fn(usize, usize, usize) -> (f64, f64) + Sync,
) -> Result<Vec<Value>, String> {
    let shape = [bn, c, oh, ow];
    let total = checked_product(&shape, "the output")?;
    let mut out = try_zeros::<f32>(total)?;
    let xs = super::linalg::contiguous(x);
    let plane_out = oh * ow;
    let plane_in = h * w;
    if plane_out > 0 && c > 0 {
        let pad = cfg.pad_value;
        for n in 0..bn {
            // The taps of each output pixel, shared by the image's channels.
            let taps = try_collect(plane_out, |k| {
                let (px, py) = pos(n, k / ow, k % ow);
                cfg.taps(h, w, px, py)
            })?;
            let dst = &mut out[n * c * plane_out..(n + 1) * c * plane_out];
            let body = |(ch, d): (usize, &mut [f32])| {
                let src = &xs[(n * c + ch) * plane_in..(n * c + ch + 1) * plane_in];
                for (o, t) in d.iter_mut().zip(&taps) {
                    *o = t
                        .iter()
                        .filter(|t| t.1 != 0.0)
                        .map(|&(i, wt)| wt * src.get(i).copied().unwrap_or(pad))
                        .sum();
                }
            };
            if total >= PAR_MIN && super::threads() > 1 {
                dst.par_chunks_mut(plane_out).enumerate().for_each(body);
            } else {
                dst.chunks_mut(plane_out).enumerate().for_each(body);
            }
        }
    }
    Ok(vec![Value::F32(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}
