//! One lowering per NeuralNetwork layer type (NeuralNetwork.proto states each layer's
//! semantics; coremltools' MIL → NeuralNetwork backend,
//! `coremltools/converters/mil/backend/nn/op_mapping.py`, read in reverse, says which MIL op
//! means the same). See docs/neuralnetwork.md for the table and the sources.

use anekit_format::proto::{self, WeightParams, neural_network_layer::Layer as L};

use super::builder::{A, Builder, s, v};
use super::weights::{self, ChannelAxis};
use super::{Ctx, Mapping};
use crate::error::Result;

/// Decode a weight that must be present.
pub(super) fn wt(
    b: &Builder,
    w: &Option<WeightParams>,
    what: &str,
    shape: &[usize],
    axis: ChannelAxis,
) -> Result<Vec<f32>> {
    let w = w
        .as_ref()
        .ok_or_else(|| b.err(format!("{what} is missing")))?;
    weights::decode(w, shape, axis).map_err(|e| b.err(format!("{what}: {e}")))
}

fn u(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// An axis counted from the end (`-3` = channel) as a positive index of a rank-`r` value.
fn from_end(b: &Builder, r: usize, k: usize) -> Result<usize> {
    r.checked_sub(k).ok_or_else(|| {
        b.err(format!(
            "the input has rank {r}; this layer needs rank at least {k}"
        ))
    })
}

/// A possibly negative axis as a positive index.
fn axis(b: &Builder, r: usize, a: i64) -> Result<usize> {
    let rr = r as i64;
    let p = if a < 0 { a + rr } else { a };
    if p < 0 || p >= rr.max(1) {
        return Err(b.err(format!("axis {a} is out of range for rank {r}")));
    }
    Ok(p as usize)
}

/// The channel vector `[C]` as a constant broadcastable against `[.., C, H, W]`.
fn chw_const(b: &mut Builder, hint: &str, data: Vec<f32>, shape: &[usize]) -> Result<String> {
    // shape is [1], [C], [1, H, W] or [C, H, W] (scale/bias layers).
    let s3 = match shape.len() {
        0 => vec![1, 1, 1],
        1 => vec![shape[0], 1, 1],
        3 => shape.to_vec(),
        n => return Err(b.err(format!("{hint} shape of rank {n} (expected 1 or 3)"))),
    };
    if data.len() == 1 {
        return b.f32s(hint, &[1], data);
    }
    b.f32s(hint, &s3, data)
}

/// Reshape `x` to rank `want` by merging leading dims into the first (or adding leading 1s);
/// returns the new value and the original shape to restore.
fn to_rank(b: &mut Builder, x: &str, want: usize) -> Result<(String, Option<Vec<usize>>)> {
    let r = b.rank(x)?;
    if r == want {
        return Ok((x.to_string(), None));
    }
    let shape = b.shape(x)?;
    let new: Vec<usize> = if r > want {
        let lead = b.count(&shape[..=r - want])?;
        std::iter::once(lead)
            .chain(shape[r - want + 1..].iter().copied())
            .collect()
    } else {
        std::iter::repeat_n(1, want - r)
            .chain(shape.iter().copied())
            .collect()
    };
    Ok((b.reshape(x, &new)?, Some(shape)))
}

/// Undo [`to_rank`]: the leading dims come back, the trailing `keep` dims are the result's.
fn from_rank(b: &mut Builder, y: &str, orig: Option<Vec<usize>>, keep: usize) -> Result<String> {
    let Some(orig) = orig else {
        return Ok(y.to_string());
    };
    let ys = b.shape(y)?;
    let r = orig.len();
    let mut out: Vec<usize> = if r >= ys.len() {
        orig[..r - keep.min(r)].to_vec()
    } else {
        Vec::new()
    };
    if r < ys.len() {
        // the value had fewer dims than the op's rank: drop the added leading 1s
        let tail = &ys[ys.len() - keep.min(r)..];
        out.extend_from_slice(&orig[..r - tail.len()]);
        out.extend_from_slice(tail);
        return b.reshape(y, &out);
    }
    out.extend_from_slice(&ys[ys.len() - keep..]);
    b.reshape(y, &out)
}

/// Explicit `[before, after]` padding of "same" padding for one spatial dim.
fn same_pads(input: usize, k_eff: usize, stride: usize, top_left_heavy: bool) -> (usize, usize) {
    let stride = stride.max(1);
    let out = input.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + k_eff).saturating_sub(input);
    let small = total / 2;
    if top_left_heavy {
        (total - small, small)
    } else {
        (small, total - small)
    }
}

fn border(b: &Builder, amounts: Option<&proto::BorderAmounts>) -> Result<[usize; 4]> {
    let Some(a) = amounts else { return Ok([0; 4]) };
    match a.border_amounts.as_slice() {
        [] => Ok([0; 4]),
        [h, w] => Ok([
            u(h.start_edge_size),
            u(h.end_edge_size),
            u(w.start_edge_size),
            u(w.end_edge_size),
        ]),
        other => Err(b.err(format!(
            "{} border amounts (expected 2: height, width)",
            other.len()
        ))),
    }
}

fn pair(v: &[u64], default: usize) -> [usize; 2] {
    match v {
        [a, b2] => [u(*a), u(*b2)],
        _ => [default, default],
    }
}

/// Translate one layer: read its inputs from `ctx`, emit ops, bind its outputs.
pub(super) fn lower(
    b: &mut Builder,
    ctx: &mut Ctx,
    layer: &proto::NeuralNetworkLayer,
) -> Result<()> {
    let kind = layer
        .layer
        .as_ref()
        .ok_or_else(|| b.err("layer has no type"))?;
    let ins: Vec<String> = layer
        .input
        .iter()
        .map(|n| ctx.get(b, n))
        .collect::<Result<_>>()?;
    macro_rules! x {
        () => {
            match ins.first() {
                Some(n) => n.clone(),
                None => return Err(b.err("layer has no input")),
            }
        };
    }
    let hint = layer
        .output
        .first()
        .map_or(layer.name.as_str(), String::as_str)
        .to_string();
    let h = hint.as_str();
    let outs: Vec<String> = match kind {
        L::Convolution(p) => vec![convolution(b, &x!(), p, h)?],
        L::Pooling(p) => vec![pooling(b, &x!(), p, h)?],
        L::Activation(p) => vec![activation(b, &x!(), p, h)?],
        L::InnerProduct(p) => vec![inner_product(b, &x!(), p, h)?],
        L::Batchnorm(p) => vec![batchnorm(b, &x!(), p, h)?],
        L::Embedding(p) => vec![embedding(b, &x!(), p, h)?],
        L::Add(p) => vec![fold(b, "add", &ins, Some(p.alpha), 0.0, h)?],
        L::Multiply(p) => vec![fold(b, "mul", &ins, Some(p.alpha), 1.0, h)?],
        L::Max(_) => vec![fold(b, "maximum", &ins, None, 0.0, h)?],
        L::Min(_) => vec![fold(b, "minimum", &ins, None, 0.0, h)?],
        L::Average(_) => {
            let sum = fold(b, "add", &ins, None, 0.0, h)?;
            vec![b.bin_scalar("real_div", &sum, ins.len() as f32)?]
        }
        L::Scale(p) => {
            let n = b.count(&p.shape_scale.iter().map(|&d| u(d)).collect::<Vec<_>>())?;
            let sc = wt(b, &p.scale, "scale", &[n], ChannelAxis::First)?;
            let shape: Vec<usize> = p.shape_scale.iter().map(|&d| u(d)).collect();
            let c = chw_const(b, "scale", sc, &shape)?;
            let mut y = b.bin("mul", &x!(), &c)?;
            if p.has_bias {
                let n = b.count(&p.shape_bias.iter().map(|&d| u(d)).collect::<Vec<_>>())?;
                let bi = wt(b, &p.bias, "bias", &[n], ChannelAxis::First)?;
                let shape: Vec<usize> = p.shape_bias.iter().map(|&d| u(d)).collect();
                let c = chw_const(b, "bias", bi, &shape)?;
                y = b.bin("add", &y, &c)?;
            }
            vec![y]
        }
        L::Bias(p) => {
            let n = b.count(&p.shape.iter().map(|&d| u(d)).collect::<Vec<_>>())?;
            let bi = wt(b, &p.bias, "bias", &[n], ChannelAxis::First)?;
            let shape: Vec<usize> = p.shape.iter().map(|&d| u(d)).collect();
            let c = chw_const(b, "bias", bi, &shape)?;
            vec![b.bin("add", &x!(), &c)?]
        }
        L::LoadConstant(p) => {
            let shape: Vec<usize> = p.shape.iter().map(|&d| u(d)).collect();
            if shape.len() != 3 {
                return Err(b.err("loadConstant shape must have 3 dims [C, H, W]"));
            }
            let n = b.count(&shape)?;
            let d = wt(b, &p.data, "data", &[n], ChannelAxis::First)?;
            let full: Vec<usize> = if ctx.mapping == Mapping::Rank5 {
                [1, 1].iter().chain(shape.iter()).copied().collect()
            } else {
                shape
            };
            vec![b.f32s(h, &full, d)?]
        }
        L::LoadConstantNd(p) => {
            let shape: Vec<usize> = p.shape.iter().map(|&d| u(d)).collect();
            let n = b.count(&shape)?;
            let d = wt(b, &p.data, "data", &[n], ChannelAxis::First)?;
            vec![b.f32s(h, &shape, d)?]
        }
        L::Unary(p) => vec![unary(b, &x!(), p, h)?],
        L::Softmax(_) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = from_end(b, r, 3)?;
            vec![b.op("softmax", h, vec![("x", v(&xv)), ("axis", A::I(ax as i64))])?]
        }
        L::SoftmaxNd(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = axis(b, r, p.axis)?;
            vec![b.op("softmax", h, vec![("x", v(&xv)), ("axis", A::I(ax as i64))])?]
        }
        L::Concat(p) => {
            let r = b.rank(&x!())?;
            let ax = from_end(b, r, if p.sequence_concat { 5 } else { 3 })?;
            vec![b.op(
                "concat",
                h,
                vec![
                    ("values", A::Vs(ins.clone())),
                    ("axis", A::I(ax as i64)),
                    ("interleave", A::B(false)),
                ],
            )?]
        }
        L::ConcatNd(p) => {
            let r = b.rank(&x!())?;
            let ax = axis(b, r, p.axis)?;
            vec![b.op(
                "concat",
                h,
                vec![
                    ("values", A::Vs(ins.clone())),
                    ("axis", A::I(ax as i64)),
                    ("interleave", A::B(p.interleave)),
                ],
            )?]
        }
        L::Split(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = from_end(b, r, 3)?;
            let n = layer.output.len().max(u(p.n_outputs)).max(1);
            split(b, &xv, ax, Some(n), None, h)?
        }
        L::SplitNd(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = axis(b, r, p.axis)?;
            if p.split_sizes.is_empty() {
                let n = layer.output.len().max(u(p.num_splits)).max(1);
                split(b, &xv, ax, Some(n), None, h)?
            } else {
                split(
                    b,
                    &xv,
                    ax,
                    None,
                    Some(p.split_sizes.iter().map(|&d| d as i64).collect()),
                    h,
                )?
            }
        }
        L::Slice(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = from_end(b, r, 3 - (p.axis as usize).min(2))?;
            vec![slice_axis(
                b,
                &xv,
                ax,
                p.start_index,
                p.end_index,
                p.stride.max(1) as i64,
                h,
            )?]
        }
        L::SliceStatic(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let bools = |m: &[bool]| -> A { A::C(bool_vec(m, r)) };
            vec![b.op(
                "slice_by_index",
                h,
                vec![
                    ("x", v(&xv)),
                    ("begin", A::Is(pad_i64(&p.begin_ids, r, 0))),
                    ("end", A::Is(pad_i64(&p.end_ids, r, 0))),
                    ("stride", A::Is(pad_i64(&p.strides, r, 1))),
                    ("begin_mask", bools(&p.begin_masks)),
                    ("end_mask", bools(&p.end_masks)),
                    ("squeeze_mask", bools(&p.squeeze_masks)),
                ],
            )?]
        }
        L::SliceBySize(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ax = axis(b, r, p.axis)?;
            let begin = {
                let i1 = ins
                    .get(1)
                    .cloned()
                    .ok_or_else(|| b.err("sliceBySize needs a begin input"))?;
                b.cast(&i1, "int32")?
            };
            let begin = b.reshape(&begin, &[1])?;
            let mut begins = Vec::new();
            let mut sizes = Vec::new();
            for i in 0..r {
                if i == ax {
                    begins.push(begin.clone());
                    sizes.push(p.size);
                } else {
                    let mut zero = crate::value::Value::int32_tensor(&[1], &[0]);
                    super::builder::set_inline(&mut zero);
                    begins.push(b.konst("zero", zero)?);
                    sizes.push(-1);
                }
            }
            let bv = b.op(
                "concat",
                "begin",
                vec![
                    ("values", A::Vs(begins)),
                    ("axis", A::I(0)),
                    ("interleave", A::B(false)),
                ],
            )?;
            vec![b.op(
                "slice_by_size",
                h,
                vec![("x", v(&xv)), ("begin", v(&bv)), ("size", A::Is(sizes))],
            )?]
        }
        L::Reshape(p) => vec![reshape_classic(b, &x!(), p, h)?],
        L::ReshapeStatic(p) => {
            vec![b.op(
                "reshape",
                h,
                vec![("x", v(&x!())), ("shape", A::Is(p.target_shape.clone()))],
            )?]
        }
        L::RankPreservingReshape(p) => {
            vec![b.op(
                "reshape",
                h,
                vec![("x", v(&x!())), ("shape", A::Is(p.target_shape.clone()))],
            )?]
        }
        L::ReshapeDynamic(_) => {
            let shape = {
                let i1 = ins
                    .get(1)
                    .cloned()
                    .ok_or_else(|| b.err("reshapeDynamic needs a shape input"))?;
                b.cast(&i1, "int32")?
            };
            vec![b.op("reshape", h, vec![("x", v(&x!())), ("shape", v(&shape))])?]
        }
        L::ReshapeLike(_) => {
            let other = ins
                .get(1)
                .ok_or_else(|| b.err("reshapeLike needs two inputs"))?
                .clone();
            let shape = b.shape(&other)?;
            vec![b.reshape(&x!(), &shape)?]
        }
        L::Flatten(p) => vec![flatten(b, &x!(), p.mode == 1, h)?],
        L::FlattenTo2D(p) => {
            let xv = x!();
            let shape = b.shape(&xv)?;
            let r = shape.len() as i64;
            let a = if p.axis < 0 { p.axis + r } else { p.axis };
            if a < 0 || a > r {
                return Err(b.err(format!("axis {} out of range for rank {r}", p.axis)));
            }
            let a = a as usize;
            let d0 = b.count(&shape[..a])?;
            let d1 = b.count(&shape[a..])?;
            vec![b.reshape(&xv, &[d0, d1])?]
        }
        L::Permute(p) => {
            let xv = x!();
            if b.rank(&xv)? != 5 || p.axis.len() != 4 {
                return Err(b.err("permute needs a rank-5 input and 4 axes"));
            }
            // axis permutes [Seq, C, H, W]; the batch axis (1) stays.
            let map = [0usize, 2, 3, 4];
            let mut perm = vec![0usize; 5];
            for (i, &a) in p.axis.iter().enumerate() {
                let a = u(a);
                if a > 3 {
                    return Err(b.err(format!("permute axis {a} > 3")));
                }
                perm[map[i]] = map[a];
            }
            perm[1] = 1;
            vec![b.transpose(&xv, &perm)?]
        }
        L::Transpose(p) => {
            let perm: Vec<usize> = p.axes.iter().map(|&a| u(a)).collect();
            vec![b.transpose(&x!(), &perm)?]
        }
        L::Squeeze(p) => {
            let xv = x!();
            if p.squeeze_all {
                vec![b.op("squeeze", h, vec![("x", v(&xv))])?]
            } else {
                vec![b.op(
                    "squeeze",
                    h,
                    vec![("x", v(&xv)), ("axes", A::Is(p.axes.clone()))],
                )?]
            }
        }
        L::ExpandDims(p) => vec![b.op(
            "expand_dims",
            h,
            vec![("x", v(&x!())), ("axes", A::Is(p.axes.clone()))],
        )?],
        L::Reduce(p) => vec![reduce_classic(b, &x!(), p, h)?],
        L::ReduceSum(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_sum",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceMean(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_mean",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceMax(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_max",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceMin(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_min",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceProd(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_prod",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceL1(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_l1_norm",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceL2(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_l2_norm",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceLogSum(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_log_sum",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceSumSquare(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_sum_square",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::ReduceLogSumExp(p) => vec![reduce_nd(
            b,
            &x!(),
            "reduce_log_sum_exp",
            &p.axes,
            p.keep_dims,
            p.reduce_all,
            h,
        )?],
        L::Upsample(p) => vec![upsample(b, &x!(), p, h)?],
        L::ResizeBilinear(p) => {
            let xv = x!();
            let [th, tw] = pair(&p.target_size, 1);
            let mode = sampling_mode(p.mode.as_ref().map_or(0, |m| m.sampling_method));
            vec![resize(b, &xv, th, tw, mode, h)?]
        }
        L::Padding(p) => vec![padding(b, &x!(), p, h)?],
        L::ConstantPad(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            if p.pad_to_given_output_size_mode {
                return Err(b.err("constantPad with padToGivenOutputSizeMode is not supported"));
            }
            let mut pads: Vec<i64> = p.pad_amounts.iter().map(|&d| d as i64).collect();
            if pads.len() > 2 * r || !pads.len().is_multiple_of(2) {
                return Err(b.err(format!("{} pad amounts for rank {r}", pads.len())));
            }
            // padAmounts covers the last dims.
            let mut full = vec![0i64; 2 * r - pads.len()];
            full.append(&mut pads);
            vec![b.op(
                "pad",
                h,
                vec![
                    ("x", v(&xv)),
                    ("pad", A::Is(full)),
                    ("mode", s("constant")),
                    ("constant_val", A::F(p.value)),
                ],
            )?]
        }
        L::Crop(p) => {
            let xv = x!();
            let shape = b.shape(&xv)?;
            let r = shape.len();
            if r < 2 {
                return Err(b.err("crop input must have rank >= 2"));
            }
            let (h0, w0, hn, wn) = if ins.len() >= 2 {
                let refs = b.shape(&ins[1])?;
                let [oh, ow] = pair(&p.offset, 0);
                let [.., rh, rw] = refs.as_slice() else {
                    return Err(b.err("crop reference must have rank >= 2"));
                };
                (oh, ow, *rh, *rw)
            } else {
                let [t, bo, l, ri] = border(b, p.crop_amounts.as_ref())?;
                let hh = shape[r - 2]
                    .checked_sub(t + bo)
                    .ok_or_else(|| b.err("crop larger than the input"))?;
                let ww = shape[r - 1]
                    .checked_sub(l + ri)
                    .ok_or_else(|| b.err("crop larger than the input"))?;
                (t, l, hh, ww)
            };
            let y = slice_axis(b, &xv, r - 2, h0 as i64, (h0 + hn) as i64, 1, h)?;
            vec![slice_axis(b, &y, r - 1, w0 as i64, (w0 + wn) as i64, 1, h)?]
        }
        L::Lrn(p) => {
            let (xr, orig) = to_rank(b, &x!(), 4)?;
            let y = b.op(
                "local_response_norm",
                h,
                vec![
                    ("x", v(&xr)),
                    ("size", A::I(p.local_size as i64)),
                    ("alpha", A::F(p.alpha)),
                    ("beta", A::F(p.beta)),
                    ("k", A::F(if p.k == 0.0 { 1.0 } else { p.k })),
                ],
            )?;
            vec![from_rank(b, &y, orig, 3)?]
        }
        L::L2normalize(p) => {
            let xv = x!();
            // Normalise over C, H, W (the last three axes): x / sqrt(max(sum x², eps)).
            let r = b.rank(&xv)?;
            let axes: Vec<i64> = (r.saturating_sub(3)..r).map(|a| a as i64).collect();
            let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
            let ss = b.op(
                "reduce_sum_square",
                "l2_ss",
                vec![
                    ("x", v(&xv)),
                    ("axes", A::Is(axes)),
                    ("keep_dims", A::B(true)),
                ],
            )?;
            let ss = b.op("maximum", "l2_max", vec![("x", v(&ss)), ("y", A::F(eps))])?;
            let n = b.un("sqrt", &ss)?;
            vec![b.bin("real_div", &xv, &n)?]
        }
        L::Mvn(p) => vec![mvn(b, &x!(), p, h)?],
        L::LayerNormalization(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let ns: Vec<usize> = p
                .normalized_shape
                .iter()
                .map(|&d| d.max(0) as usize)
                .collect();
            let n = b.count(&ns)?;
            let axes: Vec<i64> = ((r - ns.len().min(r))..r).map(|a| a as i64).collect();
            let g = wt(b, &p.gamma, "gamma", &[n], ChannelAxis::First)?;
            let be = wt(b, &p.beta, "beta", &[n], ChannelAxis::First)?;
            let gv = b.f32s("gamma", &ns, g)?;
            let bv = b.f32s("beta", &ns, be)?;
            vec![b.op(
                "layer_norm",
                h,
                vec![
                    ("x", v(&xv)),
                    ("axes", A::Is(axes)),
                    ("gamma", v(&gv)),
                    ("beta", v(&bv)),
                    ("epsilon", A::F(p.eps)),
                ],
            )?]
        }
        L::ReorganizeData(p) => {
            let (xr, orig) = to_rank(b, &x!(), 4)?;
            let bs = p.block_size as i64;
            let y = match p.mode {
                0 => b.op(
                    "space_to_depth",
                    h,
                    vec![("x", v(&xr)), ("block_size", A::I(bs))],
                )?,
                1 => b.op(
                    "depth_to_space",
                    h,
                    vec![("x", v(&xr)), ("block_size", A::I(bs))],
                )?,
                _ => b.op(
                    "pixel_shuffle",
                    h,
                    vec![("x", v(&xr)), ("upscale_factor", A::I(bs))],
                )?,
            };
            vec![from_rank(b, &y, orig, 3)?]
        }
        L::SimpleRecurrent(p) => super::recurrent::simple(b, &ins, p, h, layer.output.len())?,
        L::Gru(p) => super::recurrent::gru(b, &ins, p, h, layer.output.len())?,
        L::UniDirectionalLstm(p) => super::recurrent::lstm(b, &ins, p, h, layer.output.len())?,
        L::BiDirectionalLstm(p) => super::recurrent::bilstm(b, &ins, p, h, layer.output.len())?,
        L::BatchedMatmul(p) => vec![batched_matmul(b, &ins, p, h)?],
        L::EmbeddingNd(p) => {
            let xv = x!();
            let (vocab, dim) = (u(p.vocab_size), u(p.embedding_size));
            let w = wt(b, &p.weights, "weights", &[dim, vocab], ChannelAxis::First)?;
            // weights are [embeddingSize, vocabSize]: gather rows of the transpose.
            let mut t = vec![0f32; w.len()];
            for i in 0..dim {
                for j in 0..vocab {
                    t[j * dim + i] = w[i * vocab + j];
                }
            }
            let table = b.f32s("embedding", &[vocab, dim], t)?;
            let shape = b.shape(&xv)?;
            let idx = b.cast(&xv, "int32")?;
            let (last, lead) = shape
                .split_last()
                .ok_or_else(|| b.err("embeddingND input must have rank >= 1"))?;
            let idx = if *last == 1 {
                b.reshape(&idx, lead)?
            } else {
                idx
            };
            let mut y = b.op(
                "gather",
                h,
                vec![("x", v(&table)), ("indices", v(&idx)), ("axis", A::I(0))],
            )?;
            if p.has_bias {
                let bi = wt(b, &p.bias, "bias", &[dim], ChannelAxis::First)?;
                let bc = b.f32s("bias", &[dim], bi)?;
                y = b.bin("add", &y, &bc)?;
            }
            vec![y]
        }
        L::Clip(p) => vec![b.op(
            "clip",
            h,
            vec![
                ("x", v(&x!())),
                ("alpha", A::F(p.min_val)),
                ("beta", A::F(p.max_val)),
            ],
        )?],
        L::ClampedReLu(p) => vec![b.op(
            "clamped_relu",
            h,
            vec![
                ("x", v(&x!())),
                ("alpha", A::F(p.alpha)),
                ("beta", A::F(p.beta)),
            ],
        )?],
        L::Ceil(_) => vec![b.un("ceil", &x!())?],
        L::Floor(_) => vec![b.un("floor", &x!())?],
        L::Sign(_) => vec![b.un("sign", &x!())?],
        L::Round(_) => vec![b.un("round", &x!())?],
        L::Exp2(_) => vec![b.un("exp2", &x!())?],
        L::Sin(_) => vec![b.un("sin", &x!())?],
        L::Cos(_) => vec![b.un("cos", &x!())?],
        L::Tan(_) => vec![b.un("tan", &x!())?],
        L::Asin(_) => vec![b.un("asin", &x!())?],
        L::Acos(_) => vec![b.un("acos", &x!())?],
        L::Atan(_) => vec![b.un("atan", &x!())?],
        L::Sinh(_) => vec![b.un("sinh", &x!())?],
        L::Cosh(_) => vec![b.un("cosh", &x!())?],
        L::Tanh(_) => vec![b.un("tanh", &x!())?],
        L::Atanh(_) => vec![b.un("atanh", &x!())?],
        L::Asinh(_) | L::Acosh(_) => {
            // asinh x = ln(x + sqrt(x² + 1)), acosh x = ln(x + sqrt(x² − 1)).
            let xv = x!();
            let sq = b.bin("mul", &xv, &xv)?;
            let c = if matches!(kind, L::Asinh(_)) {
                1.0
            } else {
                -1.0
            };
            let sq = b.bin_scalar("add", &sq, c)?;
            let r = b.un("sqrt", &sq)?;
            let t = b.bin("add", &xv, &r)?;
            vec![b.op("log", h, vec![("x", v(&t)), ("epsilon", A::F(0.0))])?]
        }
        L::Erf(_) => vec![b.un("erf", &x!())?],
        L::Gelu(p) => {
            let mode = match p.mode {
                1 => "TANH_APPROXIMATION",
                2 => "SIGMOID_APPROXIMATION",
                _ => "EXACT",
            };
            vec![b.op("gelu", h, vec![("x", v(&x!())), ("mode", s(mode))])?]
        }
        L::Equal(p) => vec![compare(b, "equal", &ins, p.alpha, h)?],
        L::NotEqual(p) => vec![compare(b, "not_equal", &ins, p.alpha, h)?],
        L::LessThan(p) => vec![compare(b, "less", &ins, p.alpha, h)?],
        L::LessEqual(p) => vec![compare(b, "less_equal", &ins, p.alpha, h)?],
        L::GreaterThan(p) => vec![compare(b, "greater", &ins, p.alpha, h)?],
        L::GreaterEqual(p) => vec![compare(b, "greater_equal", &ins, p.alpha, h)?],
        L::LogicalAnd(_) => vec![logical(b, "logical_and", &ins, h)?],
        L::LogicalOr(_) => vec![logical(b, "logical_or", &ins, h)?],
        L::LogicalXor(_) => vec![logical(b, "logical_xor", &ins, h)?],
        L::LogicalNot(_) => vec![logical(b, "logical_not", &ins, h)?],
        L::AddBroadcastable(_) => vec![fold(b, "add", &ins, None, 0.0, h)?],
        L::SubtractBroadcastable(_) => vec![binary(b, "sub", &ins)?],
        L::MultiplyBroadcastable(_) => vec![fold(b, "mul", &ins, None, 0.0, h)?],
        L::DivideBroadcastable(_) => vec![binary(b, "real_div", &ins)?],
        L::MaxBroadcastable(_) => vec![fold(b, "maximum", &ins, None, 0.0, h)?],
        L::MinBroadcastable(_) => vec![fold(b, "minimum", &ins, None, 0.0, h)?],
        L::FloorDivBroadcastable(_) => vec![binary(b, "floor_div", &ins)?],
        L::ModBroadcastable(_) => vec![binary(b, "mod", &ins)?],
        L::PowBroadcastable(_) => vec![binary(b, "pow", &ins)?],
        L::WhereBroadcastable(_) => {
            if ins.len() != 3 {
                return Err(b.err("whereBroadcastable needs 3 inputs"));
            }
            let c = b.cast(&ins[0], "bool")?;
            vec![b.op(
                "select",
                h,
                vec![("cond", v(&c)), ("a", v(&ins[1])), ("b", v(&ins[2]))],
            )?]
        }
        L::Tile(p) => {
            let xv = x!();
            let reps: Vec<i64> = if p.reps.is_empty() {
                let r = {
                    let i1 = ins
                        .get(1)
                        .cloned()
                        .ok_or_else(|| b.err("tile needs reps"))?;
                    b.cast(&i1, "int32")?
                };
                let y = b_op_tile(b, &xv, &r, h)?;
                return bind(b, ctx, layer, vec![y]);
            } else {
                p.reps.iter().map(|&d| d as i64).collect()
            };
            vec![b.op("tile", h, vec![("x", v(&xv)), ("reps", A::Is(reps))])?]
        }
        L::Stack(p) => {
            let r = b.rank(&x!())?;
            let a = if p.axis < 0 {
                p.axis + r as i64 + 1
            } else {
                p.axis
            };
            vec![b.op(
                "stack",
                h,
                vec![("values", A::Vs(ins.clone())), ("axis", A::I(a))],
            )?]
        }
        L::Gather(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let idx = {
                let i1 = ins
                    .get(1)
                    .cloned()
                    .ok_or_else(|| b.err("gather needs indices"))?;
                b.cast(&i1, "int32")?
            };
            vec![b.op(
                "gather",
                h,
                vec![
                    ("x", v(&xv)),
                    ("indices", v(&idx)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                ],
            )?]
        }
        L::GatherNd(_) => {
            let idx = {
                let i1 = ins
                    .get(1)
                    .cloned()
                    .ok_or_else(|| b.err("gatherND needs indices"))?;
                b.cast(&i1, "int32")?
            };
            vec![b.op("gather_nd", h, vec![("x", v(&x!())), ("indices", v(&idx))])?]
        }
        L::GatherAlongAxis(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let idx = {
                let i1 = ins
                    .get(1)
                    .cloned()
                    .ok_or_else(|| b.err("gatherAlongAxis needs indices"))?;
                b.cast(&i1, "int32")?
            };
            vec![b.op(
                "gather_along_axis",
                h,
                vec![
                    ("x", v(&xv)),
                    ("indices", v(&idx)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                ],
            )?]
        }
        L::Scatter(p) => {
            let (data, idx, upd) = three(b, &ins)?;
            let r = b.rank(&data)?;
            let idx = b.cast(&idx, "int32")?;
            vec![b.op(
                "scatter",
                h,
                vec![
                    ("data", v(&data)),
                    ("indices", v(&idx)),
                    ("updates", v(&upd)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("mode", s(scatter_mode(p.mode))),
                ],
            )?]
        }
        L::ScatterNd(p) => {
            let (data, idx, upd) = three(b, &ins)?;
            let idx = b.cast(&idx, "int32")?;
            vec![b.op(
                "scatter_nd",
                h,
                vec![
                    ("data", v(&data)),
                    ("indices", v(&idx)),
                    ("updates", v(&upd)),
                    ("mode", s(scatter_mode(p.mode))),
                ],
            )?]
        }
        L::ScatterAlongAxis(p) => {
            let (data, idx, upd) = three(b, &ins)?;
            let r = b.rank(&data)?;
            let idx = b.cast(&idx, "int32")?;
            vec![b.op(
                "scatter_along_axis",
                h,
                vec![
                    ("data", v(&data)),
                    ("indices", v(&idx)),
                    ("updates", v(&upd)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("mode", s(scatter_mode(p.mode))),
                ],
            )?]
        }
        L::Reverse(p) => {
            let xv = x!();
            let axes: Vec<i64> = p
                .reverse_dim
                .iter()
                .enumerate()
                .filter(|(_, r)| **r)
                .map(|(i, _)| i as i64)
                .collect();
            vec![b.op("reverse", h, vec![("x", v(&xv)), ("axes", A::Is(axes))])?]
        }
        L::TopK(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let k = if ins.len() > 1 {
                return Err(b.err("topK with a dynamic k input is not supported"));
            } else {
                p.k as i64
            };
            let o = b.op_n(
                "topk",
                h,
                vec![
                    ("x", v(&xv)),
                    ("k", A::I(k)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("ascending", A::B(p.use_bottom_k)),
                ],
            )?;
            let idx = b.cast(&o[1], "fp32")?;
            vec![o[0].clone(), idx]
        }
        L::ArgMax(p) => vec![arg_reduce(
            b,
            &x!(),
            "reduce_argmax",
            p.axis,
            p.remove_dim,
            h,
        )?],
        L::ArgMin(p) => vec![arg_reduce(
            b,
            &x!(),
            "reduce_argmin",
            p.axis,
            p.remove_dim,
            h,
        )?],
        L::ArgSort(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let y = b.op(
                "argsort",
                h,
                vec![
                    ("x", v(&xv)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("ascending", A::B(!p.descending)),
                ],
            )?;
            vec![b.cast(&y, "fp32")?]
        }
        L::CumSum(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            vec![b.op(
                "cumsum",
                h,
                vec![
                    ("x", v(&xv)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("exclusive", A::B(p.exclude_final_sum)),
                    ("reverse", A::B(p.reverse)),
                ],
            )?]
        }
        L::OneHot(p) => {
            let idx = b.cast(&x!(), "int32")?;
            vec![b.op(
                "one_hot",
                h,
                vec![
                    ("indices", v(&idx)),
                    ("one_hot_vector_size", A::I(p.one_hot_vector_size as i64)),
                    ("axis", A::I(p.axis)),
                    ("on_value", A::F(p.on_value)),
                    ("off_value", A::F(p.off_value)),
                ],
            )?]
        }
        L::MatrixBandPart(p) => vec![b.op(
            "band_part",
            h,
            vec![
                ("x", v(&x!())),
                ("lower", A::I(p.num_lower)),
                ("upper", A::I(p.num_upper)),
            ],
        )?],
        L::LowerTriangular(p) => vec![b.op(
            "band_part",
            h,
            vec![("x", v(&x!())), ("lower", A::I(-1)), ("upper", A::I(p.k))],
        )?],
        L::UpperTriangular(p) => vec![b.op(
            "band_part",
            h,
            vec![("x", v(&x!())), ("lower", A::I(-p.k)), ("upper", A::I(-1))],
        )?],
        L::GetShape(_) => {
            let y = b.un("shape", &x!())?;
            vec![b.cast(&y, "fp32")?]
        }
        L::FillStatic(p) => {
            let shape: Vec<usize> = p.target_shape.iter().map(|&d| u(d)).collect();
            vec![b.filled(h, &shape, p.value)?]
        }
        L::FillLike(p) => {
            let shape = b.shape(&x!())?;
            vec![b.filled(h, &shape, p.value)?]
        }
        L::FillDynamic(p) => {
            let shape = b.cast(&x!(), "int32")?;
            vec![b.op(
                "fill",
                h,
                vec![("shape", v(&shape)), ("value", A::F(p.value))],
            )?]
        }
        L::BroadcastToStatic(p) => {
            let xv = x!();
            let shape: Vec<usize> = p.target_shape.iter().map(|&d| u(d)).collect();
            let ones = b.filled("ones", &shape, 1.0)?;
            vec![b.bin("mul", &xv, &ones)?]
        }
        L::BroadcastToLike(_) => {
            let other = ins
                .get(1)
                .ok_or_else(|| b.err("broadcastToLike needs two inputs"))?
                .clone();
            let shape = b.shape(&other)?;
            let ones = b.filled("ones", &shape, 1.0)?;
            vec![b.bin("mul", &x!(), &ones)?]
        }
        L::RangeStatic(p) => {
            vec![b.op(
                "range_1d",
                h,
                vec![
                    ("end", A::F(p.end_value)),
                    ("start", A::F(p.start_value)),
                    ("step", A::F(p.step_size_value)),
                ],
            )?]
        }
        L::SlidingWindows(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            vec![b.op(
                "sliding_windows",
                h,
                vec![
                    ("x", v(&xv)),
                    ("axis", A::I(axis(b, r, p.axis)? as i64)),
                    ("size", A::I(p.window_size as i64)),
                    ("stride", A::I(p.step.max(1) as i64)),
                ],
            )?]
        }
        L::SequenceRepeat(p) => {
            let xv = x!();
            let r = b.rank(&xv)?;
            let mut reps = vec![1i64; r];
            if let Some(first) = reps.first_mut() {
                *first = p.n_repetitions.max(1) as i64;
            }
            vec![b.op("tile", h, vec![("x", v(&xv)), ("reps", A::Is(reps))])?]
        }
        L::Dot(p) => {
            // Dot product over C (axis −3) of two [.., C, 1, 1] blobs; cosine similarity
            // divides by both norms.
            if ins.len() != 2 {
                return Err(b.err("dot needs 2 inputs"));
            }
            let r = b.rank(&ins[0])?;
            let ax = from_end(b, r, 3)? as i64;
            let prod = b.bin("mul", &ins[0], &ins[1])?;
            let mut y = b.op(
                "reduce_sum",
                h,
                vec![
                    ("x", v(&prod)),
                    ("axes", A::Is(vec![ax])),
                    ("keep_dims", A::B(true)),
                ],
            )?;
            if p.cosine_similarity {
                let n0 = b.op(
                    "reduce_l2_norm",
                    "n0",
                    vec![
                        ("x", v(&ins[0])),
                        ("axes", A::Is(vec![ax])),
                        ("keep_dims", A::B(true)),
                    ],
                )?;
                let n1 = b.op(
                    "reduce_l2_norm",
                    "n1",
                    vec![
                        ("x", v(&ins[1])),
                        ("axes", A::Is(vec![ax])),
                        ("keep_dims", A::B(true)),
                    ],
                )?;
                let n = b.bin("mul", &n0, &n1)?;
                y = b.bin("real_div", &y, &n)?;
            }
            vec![y]
        }
        L::Copy(_) => vec![b.un("identity", &x!())?],
        L::CropResize(_) => return Err(b.err("cropResize is not supported yet")),
        other => {
            return Err(b.err(format!(
                "layer type `{}` is not supported by anekit's NeuralNetwork translation (see docs/neuralnetwork.md)",
                other.type_name()
            )));
        }
    };
    bind(b, ctx, layer, outs)
}

fn arg_reduce(
    b: &mut Builder,
    x: &str,
    op: &str,
    ax: i64,
    remove: bool,
    h: &str,
) -> Result<String> {
    let r = b.rank(x)?;
    let y = b.op(
        op,
        h,
        vec![
            ("x", v(x)),
            ("axis", A::I(axis(b, r, ax)? as i64)),
            ("keep_dims", A::B(!remove)),
        ],
    )?;
    b.cast(&y, "fp32")
}

fn b_op_tile(b: &mut Builder, x: &str, reps: &str, h: &str) -> Result<String> {
    b.op("tile", h, vec![("x", v(x)), ("reps", v(reps))])
}

/// Bind a layer's outputs to its output blob names.
fn bind(
    b: &Builder,
    ctx: &mut Ctx,
    layer: &proto::NeuralNetworkLayer,
    outs: Vec<String>,
) -> Result<()> {
    if outs.len() < layer.output.len() {
        return Err(b.err(format!(
            "the translation made {} outputs for {} declared",
            outs.len(),
            layer.output.len()
        )));
    }
    for (name, var) in layer.output.iter().zip(outs) {
        ctx.set(name, var);
    }
    Ok(())
}

fn three(b: &Builder, ins: &[String]) -> Result<(String, String, String)> {
    match ins {
        [a, i, u2, ..] => Ok((a.clone(), i.clone(), u2.clone())),
        _ => Err(b.err("this layer needs 3 inputs (data, indices, updates)")),
    }
}

fn scatter_mode(m: i32) -> &'static str {
    match m {
        1 => "add",
        2 => "sub",
        3 => "mul",
        4 => "div",
        5 => "max",
        6 => "min",
        _ => "update",
    }
}

fn pad_i64(v: &[i64], r: usize, fill: i64) -> Vec<i64> {
    (0..r).map(|i| v.get(i).copied().unwrap_or(fill)).collect()
}

fn bool_vec(m: &[bool], r: usize) -> crate::value::Value {
    let bytes: Vec<u8> = (0..r)
        .map(|i| u8::from(m.get(i).copied().unwrap_or(false)))
        .collect();
    let mut val = crate::value::Value::tensor_bytes(
        crate::types::TensorType::new(crate::types::DataType::Bool, &[r as u64]),
        bytes,
        crate::value::Placement::Inline,
    );
    super::builder::set_inline(&mut val);
    val
}

/// `x[start:end:stride]` along `ax` (negative indices count from the end, as the layer says).
fn slice_axis(
    b: &mut Builder,
    x: &str,
    ax: usize,
    start: i64,
    end: i64,
    stride: i64,
    h: &str,
) -> Result<String> {
    let r = b.rank(x)?;
    let mut begin = vec![0i64; r];
    let mut endv = vec![0i64; r];
    let mut st = vec![1i64; r];
    let mut bm = vec![true; r];
    let mut em = vec![true; r];
    begin[ax] = start;
    endv[ax] = end;
    st[ax] = stride;
    bm[ax] = false;
    em[ax] = false;
    b.op(
        "slice_by_index",
        h,
        vec![
            ("x", v(x)),
            ("begin", A::Is(begin)),
            ("end", A::Is(endv)),
            ("stride", A::Is(st)),
            ("begin_mask", A::C(bool_vec(&bm, r))),
            ("end_mask", A::C(bool_vec(&em, r))),
        ],
    )
}

fn split(
    b: &mut Builder,
    x: &str,
    ax: usize,
    n: Option<usize>,
    sizes: Option<Vec<i64>>,
    h: &str,
) -> Result<Vec<String>> {
    let mut args = vec![("x", v(x)), ("axis", A::I(ax as i64))];
    if let Some(n) = n {
        args.push(("num_splits", A::I(n as i64)));
    }
    if let Some(sz) = sizes {
        args.push(("split_sizes", A::Is(sz)));
    }
    b.op_n("split", h, args)
}

/// `add`/`mul`/`maximum`/`minimum` over all inputs; with one input and `alpha`, `x op alpha`.
fn fold(
    b: &mut Builder,
    op: &str,
    ins: &[String],
    alpha: Option<f32>,
    _unit: f32,
    h: &str,
) -> Result<String> {
    match ins {
        [] => Err(b.err("layer has no input")),
        [one] => match alpha {
            Some(a) => b.op(op, h, vec![("x", v(one)), ("y", A::F(a))]),
            None => b.un("identity", one),
        },
        [first, rest @ ..] => {
            let mut acc = first.clone();
            for (i, r) in rest.iter().enumerate() {
                let name = if i + 1 == rest.len() {
                    h.to_string()
                } else {
                    format!("{h}_acc")
                };
                acc = b.op(op, &name, vec![("x", v(&acc)), ("y", v(r))])?;
            }
            Ok(acc)
        }
    }
}

fn binary(b: &mut Builder, op: &str, ins: &[String]) -> Result<String> {
    match ins {
        [x, y] => b.bin(op, x, y),
        _ => Err(b.err(format!("this layer needs 2 inputs, got {}", ins.len()))),
    }
}

/// Comparison layers output 1.0 / 0.0 (NeuralNetwork blobs are floating point).
fn compare(b: &mut Builder, op: &str, ins: &[String], alpha: f32, h: &str) -> Result<String> {
    let c = match ins {
        [x] => b.op(op, h, vec![("x", v(x)), ("y", A::F(alpha))])?,
        [x, y] => b.op(op, h, vec![("x", v(x)), ("y", v(y))])?,
        _ => return Err(b.err("comparison layers take 1 or 2 inputs")),
    };
    b.cast(&c, "fp32")
}

/// Logical layers read non-zero as true and output 1.0 / 0.0.
fn logical(b: &mut Builder, op: &str, ins: &[String], h: &str) -> Result<String> {
    let bools: Vec<String> = ins
        .iter()
        .map(|i| b.cast(i, "bool"))
        .collect::<Result<_>>()?;
    let y = match (op, bools.as_slice()) {
        ("logical_not", [x]) => b.op(op, h, vec![("x", v(x))])?,
        (_, [x, y]) => b.op(op, h, vec![("x", v(x)), ("y", v(y))])?,
        _ => return Err(b.err(format!("{op}: wrong number of inputs ({})", ins.len()))),
    };
    b.cast(&y, "fp32")
}

fn unary(b: &mut Builder, x: &str, p: &proto::UnaryFunctionLayerParams, h: &str) -> Result<String> {
    use proto::unary_function_layer_params::Operation as U;
    let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
    let scale = if p.scale == 0.0 { 1.0 } else { p.scale };
    let mut xv = x.to_string();
    if scale != 1.0 {
        xv = b.bin_scalar("mul", &xv, scale)?;
    }
    if p.shift != 0.0 {
        xv = b.bin_scalar("add", &xv, p.shift)?;
    }
    match U::try_from(p.r#type).unwrap_or(U::Sqrt) {
        U::Sqrt => b.op("sqrt", h, vec![("x", v(&xv))]),
        U::Rsqrt => b.op("rsqrt", h, vec![("x", v(&xv)), ("epsilon", A::F(eps))]),
        U::Inverse => b.op("inverse", h, vec![("x", v(&xv)), ("epsilon", A::F(eps))]),
        U::Power => b.op("pow", h, vec![("x", v(&xv)), ("y", A::F(p.alpha))]),
        U::Exp => b.op("exp", h, vec![("x", v(&xv))]),
        U::Log => b.op("log", h, vec![("x", v(&xv)), ("epsilon", A::F(0.0))]),
        U::Abs => b.op("abs", h, vec![("x", v(&xv))]),
        U::Threshold => b.op(
            "threshold",
            h,
            vec![("x", v(&xv)), ("alpha", A::F(p.alpha))],
        ),
    }
}

pub(super) fn activation(
    b: &mut Builder,
    x: &str,
    p: &proto::ActivationParams,
    h: &str,
) -> Result<String> {
    use proto::activation_params::NonlinearityType as N;
    let t = p
        .nonlinearity_type
        .as_ref()
        .ok_or_else(|| b.err("activation without a type"))?;
    match t {
        N::Linear(a) => b.op(
            "linear_activation",
            h,
            vec![
                ("x", v(x)),
                ("alpha", A::F(a.alpha)),
                ("beta", A::F(a.beta)),
            ],
        ),
        N::ReLu(_) => b.un("relu", x),
        N::LeakyReLu(a) => b.op("leaky_relu", h, vec![("x", v(x)), ("alpha", A::F(a.alpha))]),
        N::ThresholdedReLu(a) => b.op(
            "thresholded_relu",
            h,
            vec![("x", v(x)), ("alpha", A::F(a.alpha))],
        ),
        N::Tanh(_) => b.un("tanh", x),
        N::ScaledTanh(a) => b.op(
            "scaled_tanh",
            h,
            vec![
                ("x", v(x)),
                ("alpha", A::F(a.alpha)),
                ("beta", A::F(a.beta)),
            ],
        ),
        N::Sigmoid(_) => b.un("sigmoid", x),
        N::SigmoidHard(a) => b.op(
            "sigmoid_hard",
            h,
            vec![
                ("x", v(x)),
                ("alpha", A::F(a.alpha)),
                ("beta", A::F(a.beta)),
            ],
        ),
        N::Elu(a) => b.op("elu", h, vec![("x", v(x)), ("alpha", A::F(a.alpha))]),
        N::Softsign(_) => b.un("softsign", x),
        N::Softplus(_) => b.un("softplus", x),
        N::PReLu(a) => {
            let w = a
                .alpha
                .as_ref()
                .ok_or_else(|| b.err("PReLU alpha is missing"))?;
            let n = per_channel_len(w);
            let alpha = weights::decode(w, &[n], ChannelAxis::First)
                .map_err(|e| b.err(format!("alpha: {e}")))?;
            let r = b.rank(x)?;
            if alpha.len() == 1 {
                return b.op(
                    "leaky_relu",
                    h,
                    vec![("x", v(x)), ("alpha", A::F(alpha[0]))],
                );
            }
            if r < 3 {
                return Err(b.err("PReLU with per-channel alpha needs rank >= 3"));
            }
            let (xr, orig) = to_rank(b, x, 4)?;
            let al = b.f32s("alpha", &[alpha.len()], alpha)?;
            let y = b.op("prelu", h, vec![("x", v(&xr)), ("alpha", v(&al))])?;
            from_rank(b, &y, orig, 3)
        }
        N::ParametricSoftplus(a) => {
            let wa = a.alpha.as_ref().ok_or_else(|| b.err("alpha is missing"))?;
            let wb = a.beta.as_ref().ok_or_else(|| b.err("beta is missing"))?;
            let al = weights::decode(wa, &[per_channel_len(wa)], ChannelAxis::First)
                .map_err(|e| b.err(format!("alpha: {e}")))?;
            let be = weights::decode(wb, &[per_channel_len(wb)], ChannelAxis::First)
                .map_err(|e| b.err(format!("beta: {e}")))?;
            // y = alpha · log(1 + exp(beta · x)), per channel (axis −3).
            let r = b.rank(x)?;
            let shape = |n: usize| {
                if n == 1 || r < 3 {
                    vec![n]
                } else {
                    vec![n, 1, 1]
                }
            };
            let (sa, sb) = (shape(al.len()), shape(be.len()));
            let ac = b.f32s("alpha", &sa, al)?;
            let bc = b.f32s("beta", &sb, be)?;
            let t = b.bin("mul", x, &bc)?;
            let t = b.un("softplus", &t)?;
            b.bin("mul", &t, &ac)
        }
    }
}

/// The element count of a per-channel weight (for alpha/beta vectors of unknown length).
fn per_channel_len(w: &WeightParams) -> usize {
    if !w.float_value.is_empty() {
        w.float_value.len()
    } else if !w.float16_value.is_empty() {
        w.float16_value.len() / 2
    } else {
        let bits = w
            .quantization
            .as_ref()
            .map_or(8, |q| q.number_of_bits.clamp(1, 8) as usize);
        w.raw_value.len() * 8 / bits
    }
}

fn convolution(
    b: &mut Builder,
    x: &str,
    p: &proto::ConvolutionLayerParams,
    h: &str,
) -> Result<String> {
    use proto::convolution_layer_params::ConvolutionPaddingType as P;
    let (xr, orig) = to_rank(b, x, 4)?;
    let xs = b.shape(&xr)?;
    let groups = u(p.n_groups.max(1));
    let [kh, kw] = pair(&p.kernel_size, 3);
    let [sh, sw] = pair(&p.stride, 1);
    let [dh, dw] = pair(&p.dilation_factor, 1);
    let (cout, kc) = (u(p.output_channels), u(p.kernel_channels));
    let (ih, iw) = (xs[2], xs[3]);
    if kh == 0 || kw == 0 {
        return Err(b.err("kernel size must be positive"));
    }
    let (keh, kew) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
    let bias = if p.has_bias {
        Some(wt(b, &p.bias, "bias", &[cout], ChannelAxis::First)?)
    } else {
        None
    };
    let y = if !p.is_deconvolution {
        let w = wt(
            b,
            &p.weights,
            "weights",
            &[cout, kc, kh, kw],
            ChannelAxis::First,
        )?;
        let pads = match &p.convolution_padding_type {
            Some(P::Same(sp)) => {
                let tl = sp.asymmetry_mode == 1;
                let (t, bo) = same_pads(ih, keh, sh, tl);
                let (l, r) = same_pads(iw, kew, sw, tl);
                [t, bo, l, r]
            }
            Some(P::Valid(vp)) => border(b, vp.padding_amounts.as_ref())?,
            None => [0; 4],
        };
        let wv = b.f32s("weight", &[cout, kc, kh, kw], w)?;
        let mut args = vec![
            ("x", v(&xr)),
            ("weight", v(&wv)),
            ("strides", A::Is(vec![sh as i64, sw as i64])),
            ("pad_type", s("custom")),
            ("pad", A::Is(pads.iter().map(|&p| p as i64).collect())),
            ("dilations", A::Is(vec![dh as i64, dw as i64])),
            ("groups", A::I(groups as i64)),
        ];
        if let Some(bi) = bias {
            args.push(("bias", A::T(vec![cout], bi)));
        }
        b.op("conv", h, args)?
    } else {
        // Deconvolution weights: [C_in, C_out / groups, kH, kW]; per-channel quantization
        // runs along axis 1 (coremltools `_quantize_nn_spec`).
        let cpg = cout / groups;
        let w = wt(
            b,
            &p.weights,
            "weights",
            &[kc, cpg, kh, kw],
            ChannelAxis::Second,
        )?;
        let wv = b.f32s("weight", &[kc, cpg, kh, kw], w)?;
        // The full transposed convolution, then the crop that the padding asks for.
        let full = b.op(
            "conv_transpose",
            &format!("{h}_full"),
            vec![
                ("x", v(&xr)),
                ("weight", v(&wv)),
                ("strides", A::Is(vec![sh as i64, sw as i64])),
                ("pad_type", s("valid")),
                ("pad", A::Is(vec![0, 0, 0, 0])),
                ("dilations", A::Is(vec![dh as i64, dw as i64])),
                ("groups", A::I(groups as i64)),
            ],
        )?;
        let fs = b.shape(&full)?;
        let (fh, fw) = (fs[2], fs[3]);
        let (top, left, oh, ow) = match &p.convolution_padding_type {
            Some(P::Same(sp)) => {
                let (oh, ow) = (ih * sh, iw * sw);
                let tl = sp.asymmetry_mode == 1;
                let crop = |f: usize, o: usize| {
                    let t = f.saturating_sub(o);
                    if tl { t - t / 2 } else { t / 2 }
                };
                (crop(fh, oh), crop(fw, ow), oh, ow)
            }
            other => {
                let [t, bo, l, r] = match other {
                    Some(P::Valid(vp)) => border(b, vp.padding_amounts.as_ref())?,
                    _ => [0; 4],
                };
                let (oh, ow) = match p.output_shape.as_slice() {
                    [a, c] => (u(*a), u(*c)),
                    _ => (fh.saturating_sub(t + bo), fw.saturating_sub(l + r)),
                };
                (t, l, oh, ow)
            }
        };
        let mut y = full;
        // Extra rows/columns past the full output are zero.
        if top + oh > fh || left + ow > fw {
            let (ph, pw) = (
                (top + oh).saturating_sub(fh),
                (left + ow).saturating_sub(fw),
            );
            y = b.op(
                "pad",
                "deconv_pad",
                vec![
                    ("x", v(&y)),
                    ("pad", A::Is(vec![0, 0, 0, 0, 0, ph as i64, 0, pw as i64])),
                    ("mode", s("constant")),
                    ("constant_val", A::F(0.0)),
                ],
            )?;
        }
        let y = slice_axis(b, &y, 2, top as i64, (top + oh) as i64, 1, h)?;
        let mut y = slice_axis(b, &y, 3, left as i64, (left + ow) as i64, 1, h)?;
        if let Some(bi) = bias {
            let bc = b.f32s("bias", &[cout, 1, 1], bi)?;
            y = b.bin("add", &y, &bc)?;
        }
        y
    };
    from_rank(b, &y, orig, 3)
}

fn pooling(b: &mut Builder, x: &str, p: &proto::PoolingLayerParams, h: &str) -> Result<String> {
    use proto::pooling_layer_params::{PoolingPaddingType as P, PoolingType as T};
    let ty = T::try_from(p.r#type).unwrap_or(T::Max);
    let (xr, orig) = to_rank(b, x, 4)?;
    if p.global_pooling {
        let axes = A::Is(vec![2, 3]);
        let y = match ty {
            T::Max => b.op(
                "reduce_max",
                h,
                vec![("x", v(&xr)), ("axes", axes), ("keep_dims", A::B(true))],
            )?,
            T::Average => b.op(
                "reduce_mean",
                h,
                vec![("x", v(&xr)), ("axes", axes), ("keep_dims", A::B(true))],
            )?,
            T::L2 => b.op(
                "reduce_l2_norm",
                h,
                vec![("x", v(&xr)), ("axes", axes), ("keep_dims", A::B(true))],
            )?,
        };
        return from_rank(b, &y, orig, 3);
    }
    let xs = b.shape(&xr)?;
    let [kh, kw] = pair(&p.kernel_size, 3);
    let [sh, sw] = pair(&p.stride, 1);
    let mut ceil = false;
    let pads = match &p.pooling_padding_type {
        Some(P::Same(sp)) => {
            let tl = sp.asymmetry_mode == 1;
            let (t, bo) = same_pads(xs[2], kh, sh, tl);
            let (l, r) = same_pads(xs[3], kw, sw, tl);
            [t, bo, l, r]
        }
        Some(P::Valid(vp)) => border(b, vp.padding_amounts.as_ref())?,
        Some(P::IncludeLastPixel(ip)) => {
            // Caffe's rule: out = ceil((in + 2p − k) / s) + 1, less one if the last window
            // starts in the padding.
            let [ph, pw] = pair(&ip.padding_amounts, 0);
            let caffe = |i: usize, k: usize, s: usize, pd: usize| {
                let mut o = (i + 2 * pd).saturating_sub(k).div_ceil(s) + 1;
                if pd > 0 && (o - 1) * s >= i + pd {
                    o -= 1;
                }
                o
            };
            let floor =
                |i: usize, k: usize, s: usize, pd: usize| (i + 2 * pd).saturating_sub(k) / s + 1;
            ceil = caffe(xs[2], kh, sh, ph) > floor(xs[2], kh, sh, ph)
                || caffe(xs[3], kw, sw, pw) > floor(xs[3], kw, sw, pw);
            [ph, ph, pw, pw]
        }
        None => [0; 4],
    };
    let mut args = vec![
        ("x", v(&xr)),
        ("kernel_sizes", A::Is(vec![kh as i64, kw as i64])),
        ("strides", A::Is(vec![sh as i64, sw as i64])),
        ("pad_type", s("custom")),
        ("pad", A::Is(pads.iter().map(|&p| p as i64).collect())),
    ];
    let op = match ty {
        T::Max => "max_pool",
        T::Average => {
            args.push((
                "exclude_padding_from_average",
                A::B(p.avg_pool_exclude_padding),
            ));
            "avg_pool"
        }
        T::L2 => "l2_pool",
    };
    if ty != T::L2 {
        args.push(("ceil_mode", A::B(ceil)));
    }
    let y = b.op(op, h, args)?;
    from_rank(b, &y, orig, 3)
}

fn inner_product(
    b: &mut Builder,
    x: &str,
    p: &proto::InnerProductLayerParams,
    h: &str,
) -> Result<String> {
    let (cin, cout) = (u(p.input_channels), u(p.output_channels));
    let w = wt(b, &p.weights, "weights", &[cout, cin], ChannelAxis::First)?;
    let wv = b.f32s("weight", &[cout, cin], w)?;
    let bias = if p.has_bias {
        Some(wt(b, &p.bias, "bias", &[cout], ChannelAxis::First)?)
    } else {
        None
    };
    let shape = b.shape(x)?;
    let (x2, out_shape): (String, Vec<usize>) = match shape.as_slice() {
        [_] => (b.reshape(x, &[1, cin])?, vec![cout]),
        [a, _] => (x.to_string(), vec![*a, cout]),
        [a, c, _] => (x.to_string(), vec![*a, *c, cout]),
        [a, ..] if shape.len() == 4 => (b.reshape(x, &[*a, cin])?, vec![*a, cout, 1, 1]),
        [a, c, ..] if shape.len() == 5 => (b.reshape(x, &[a * c, cin])?, vec![*a, *c, cout, 1, 1]),
        _ => return Err(b.err(format!("innerProduct input of rank {}", shape.len()))),
    };
    let mut args = vec![("x", v(&x2)), ("weight", v(&wv))];
    if let Some(bi) = bias {
        args.push(("bias", A::T(vec![cout], bi)));
    }
    let y = b.op("linear", h, args)?;
    b.reshape(&y, &out_shape)
}

fn batched_matmul(
    b: &mut Builder,
    ins: &[String],
    p: &proto::BatchedMatMulLayerParams,
    h: &str,
) -> Result<String> {
    match ins {
        [a, c] => b.op(
            "matmul",
            h,
            vec![
                ("x", v(a)),
                ("y", v(c)),
                ("transpose_x", A::B(p.transpose_a)),
                ("transpose_y", A::B(p.transpose_b)),
            ],
        ),
        [a] => {
            let (x1, x2) = (
                u(p.weight_matrix_first_dimension),
                u(p.weight_matrix_second_dimension),
            );
            // [X1, X2] stored column-major = [X2, X1] row-major: linear's weight layout.
            let w = wt(b, &p.weights, "weights", &[x2, x1], ChannelAxis::First)?;
            let wv = b.f32s("weight", &[x2, x1], w)?;
            let mut args = vec![("x", v(a)), ("weight", v(&wv))];
            if p.has_bias {
                let bi = wt(b, &p.bias, "bias", &[x2], ChannelAxis::First)?;
                args.push(("bias", A::T(vec![x2], bi)));
            }
            if b.rank(a)? == 1 {
                let a2 = b.reshape(a, &[1, x1])?;
                args[0] = ("x", v(&a2));
                let y = b.op("linear", h, args)?;
                return b.reshape(&y, &[x2]);
            }
            b.op("linear", h, args)
        }
        _ => Err(b.err("batchedMatMul takes 1 or 2 inputs")),
    }
}

fn batchnorm(b: &mut Builder, x: &str, p: &proto::BatchnormLayerParams, h: &str) -> Result<String> {
    let c = u(p.channels);
    let g = wt(b, &p.gamma, "gamma", &[c], ChannelAxis::First)?;
    let be = wt(b, &p.beta, "beta", &[c], ChannelAxis::First)?;
    let (xr, orig) = to_rank(b, x, 4)?;
    let gv = b.f32s("gamma", &[c], g)?;
    let bv = b.f32s("beta", &[c], be)?;
    let y = if p.compute_mean_var {
        if p.instance_normalization {
            b.op(
                "instance_norm",
                h,
                vec![
                    ("x", v(&xr)),
                    ("gamma", v(&gv)),
                    ("beta", v(&bv)),
                    ("epsilon", A::F(p.epsilon)),
                ],
            )?
        } else {
            // Statistics over batch and spatial axes, per channel.
            let axes = A::Is(vec![0, 2, 3]);
            let mean = b.op(
                "reduce_mean",
                "bn_mean",
                vec![("x", v(&xr)), ("axes", axes), ("keep_dims", A::B(true))],
            )?;
            let d = b.bin("sub", &xr, &mean)?;
            let sq = b.bin("mul", &d, &d)?;
            let var = b.op(
                "reduce_mean",
                "bn_var",
                vec![
                    ("x", v(&sq)),
                    ("axes", A::Is(vec![0, 2, 3])),
                    ("keep_dims", A::B(true)),
                ],
            )?;
            let ve = b.bin_scalar("add", &var, p.epsilon)?;
            let sd = b.un("sqrt", &ve)?;
            let n = b.bin("real_div", &d, &sd)?;
            let g4 = b.reshape(&gv, &[1, c, 1, 1])?;
            let b4 = b.reshape(&bv, &[1, c, 1, 1])?;
            let y = b.bin("mul", &n, &g4)?;
            b.bin("add", &y, &b4)?
        }
    } else {
        let m = wt(b, &p.mean, "mean", &[c], ChannelAxis::First)?;
        let var = wt(b, &p.variance, "variance", &[c], ChannelAxis::First)?;
        let mv = b.f32s("mean", &[c], m)?;
        let vv = b.f32s("variance", &[c], var)?;
        b.op(
            "batch_norm",
            h,
            vec![
                ("x", v(&xr)),
                ("mean", v(&mv)),
                ("variance", v(&vv)),
                ("gamma", v(&gv)),
                ("beta", v(&bv)),
                ("epsilon", A::F(p.epsilon)),
            ],
        )?
    };
    from_rank(b, &y, orig, 3)
}

fn embedding(b: &mut Builder, x: &str, p: &proto::EmbeddingLayerParams, h: &str) -> Result<String> {
    // Classic embedding: input [.., 1, 1, 1] indices, output [.., C_out, 1, 1].
    let (din, cout) = (u(p.input_dim), u(p.output_channels));
    let w = wt(b, &p.weights, "weights", &[cout, din], ChannelAxis::First)?;
    let mut t = vec![0f32; w.len()];
    for i in 0..cout {
        for j in 0..din {
            t[j * cout + i] = w[i * din + j];
        }
    }
    let table = b.f32s("embedding", &[din, cout], t)?;
    let shape = b.shape(x)?;
    let r = shape.len();
    if r < 3 {
        return Err(b.err("embedding input must have rank >= 3 ([.., 1, 1, 1])"));
    }
    let lead = &shape[..r - 3];
    let n = b.count(lead)?;
    let idx = b.cast(x, "int32")?;
    let idx = b.reshape(&idx, &[n])?;
    let mut y = b.op(
        "gather",
        h,
        vec![("x", v(&table)), ("indices", v(&idx)), ("axis", A::I(0))],
    )?;
    if p.has_bias {
        let bi = wt(b, &p.bias, "bias", &[cout], ChannelAxis::First)?;
        let bc = b.f32s("bias", &[cout], bi)?;
        y = b.bin("add", &y, &bc)?;
    }
    let out: Vec<usize> = lead.iter().copied().chain([cout, 1, 1]).collect();
    b.reshape(&y, &out)
}

fn reduce_classic(
    b: &mut Builder,
    x: &str,
    p: &proto::ReduceLayerParams,
    h: &str,
) -> Result<String> {
    use proto::reduce_layer_params::{ReduceAxis as Ax, ReduceOperation as Op};
    let r = b.rank(x)?;
    let axes: Vec<i64> = match Ax::try_from(p.axis).unwrap_or(Ax::Chw) {
        Ax::Chw => vec![-3, -2, -1],
        Ax::Hw => vec![-2, -1],
        Ax::C => vec![-3],
        Ax::H => vec![-2],
        Ax::W => vec![-1],
    }
    .into_iter()
    .map(|a| a + r as i64)
    .collect();
    if axes.iter().any(|&a| a < 0) {
        return Err(b.err(format!("reduce axes need rank >= 3, input has rank {r}")));
    }
    let op = match Op::try_from(p.mode).unwrap_or(Op::Sum) {
        Op::Sum => "reduce_sum",
        Op::Avg => "reduce_mean",
        Op::Prod => "reduce_prod",
        Op::Logsum => "reduce_log_sum",
        Op::Sumsquare => "reduce_sum_square",
        Op::L1 => "reduce_l1_norm",
        Op::L2 => "reduce_l2_norm",
        Op::Max => "reduce_max",
        Op::Min => "reduce_min",
        Op::Argmax => {
            let [a] = axes.as_slice() else {
                return Err(b.err("ArgMax reduces over one axis"));
            };
            let y = b.op(
                "reduce_argmax",
                h,
                vec![("x", v(x)), ("axis", A::I(*a)), ("keep_dims", A::B(true))],
            )?;
            return b.cast(&y, "fp32");
        }
    };
    b.op(
        op,
        h,
        vec![
            ("x", v(x)),
            ("axes", A::Is(axes)),
            ("keep_dims", A::B(true)),
        ],
    )
}

fn reduce_nd(
    b: &mut Builder,
    x: &str,
    op: &str,
    axes: &[i64],
    keep: bool,
    all: bool,
    h: &str,
) -> Result<String> {
    if all || axes.is_empty() {
        b.op(op, h, vec![("x", v(x)), ("keep_dims", A::B(keep))])
    } else {
        b.op(
            op,
            h,
            vec![
                ("x", v(x)),
                ("axes", A::Is(axes.to_vec())),
                ("keep_dims", A::B(keep)),
            ],
        )
    }
}

fn sampling_mode(m: i32) -> &'static str {
    match m {
        0 => "STRICT_ALIGN_CORNERS",
        1 => "ALIGN_CORNERS",
        2 => "DEFAULT",
        _ => "OFFSET_CORNERS",
    }
}

fn resize(b: &mut Builder, x: &str, th: usize, tw: usize, mode: &str, h: &str) -> Result<String> {
    let (xr, orig) = to_rank(b, x, 4)?;
    let y = b.op(
        "resize_bilinear",
        h,
        vec![
            ("x", v(&xr)),
            ("target_size_height", A::I(th as i64)),
            ("target_size_width", A::I(tw as i64)),
            ("sampling_mode", s(mode)),
        ],
    )?;
    from_rank(b, &y, orig, 3)
}

fn upsample(b: &mut Builder, x: &str, p: &proto::UpsampleLayerParams, h: &str) -> Result<String> {
    let shape = b.shape(x)?;
    let r = shape.len();
    if r < 3 {
        return Err(b.err("upsample input must have rank >= 3"));
    }
    let (ih, iw) = (shape[r - 2], shape[r - 1]);
    let (fh, fw) = match (
        p.scaling_factor.as_slice(),
        p.fractional_scaling_factor.as_slice(),
    ) {
        ([a, c], _) => (*a as f64, *c as f64),
        (_, [a, c]) => (f64::from(*a), f64::from(*c)),
        _ => (1.0, 1.0),
    };
    let (oh, ow) = (
        (ih as f64 * fh).floor() as usize,
        (iw as f64 * fw).floor() as usize,
    );
    if p.mode == 0 {
        let (xr, orig) = to_rank(b, x, 4)?;
        let y = if fh.fract() == 0.0 && fw.fract() == 0.0 {
            b.op(
                "upsample_nearest_neighbor",
                h,
                vec![
                    ("x", v(&xr)),
                    ("scale_factor_height", A::I(fh as i64)),
                    ("scale_factor_width", A::I(fw as i64)),
                ],
            )?
        } else {
            b.op(
                "resize_nearest_neighbor",
                h,
                vec![
                    ("x", v(&xr)),
                    ("target_size_height", A::I(oh as i64)),
                    ("target_size_width", A::I(ow as i64)),
                ],
            )?
        };
        return from_rank(b, &y, orig, 3);
    }
    let mode = match p.linear_upsample_mode {
        1 => "STRICT_ALIGN_CORNERS",
        2 => "UNALIGN_CORNERS",
        _ => "DEFAULT",
    };
    resize(b, x, oh, ow, mode, h)
}

fn padding(b: &mut Builder, x: &str, p: &proto::PaddingLayerParams, h: &str) -> Result<String> {
    use proto::padding_layer_params::PaddingType as P;
    let r = b.rank(x)?;
    if r < 2 {
        return Err(b.err("padding input must have rank >= 2"));
    }
    let [t, bo, l, ri] = border(b, p.padding_amounts.as_ref())?;
    let mut pad = vec![0i64; 2 * (r - 2)];
    pad.extend([t as i64, bo as i64, l as i64, ri as i64]);
    let (mode, val) = match &p.padding_type {
        Some(P::Constant(c)) => ("constant", c.value),
        Some(P::Reflection(_)) => ("reflect", 0.0),
        Some(P::Replication(_)) => ("replicate", 0.0),
        None => ("constant", 0.0),
    };
    b.op(
        "pad",
        h,
        vec![
            ("x", v(x)),
            ("pad", A::Is(pad)),
            ("mode", s(mode)),
            ("constant_val", A::F(val)),
        ],
    )
}

fn mvn(
    b: &mut Builder,
    x: &str,
    p: &proto::MeanVarianceNormalizeLayerParams,
    h: &str,
) -> Result<String> {
    let r = b.rank(x)?;
    if r < 3 {
        return Err(b.err("mvn input must have rank >= 3"));
    }
    let axes: Vec<i64> = if p.across_channels {
        vec![-3, -2, -1]
    } else {
        vec![-2, -1]
    }
    .into_iter()
    .map(|a| a + r as i64)
    .collect();
    let mean = b.op(
        "reduce_mean",
        "mvn_mean",
        vec![
            ("x", v(x)),
            ("axes", A::Is(axes.clone())),
            ("keep_dims", A::B(true)),
        ],
    )?;
    let d = b.bin("sub", x, &mean)?;
    if !p.normalize_variance {
        return Ok(d);
    }
    let eps = if p.epsilon == 0.0 { 1e-6 } else { p.epsilon };
    let sq = b.bin("mul", &d, &d)?;
    let var = b.op(
        "reduce_mean",
        "mvn_var",
        vec![
            ("x", v(&sq)),
            ("axes", A::Is(axes)),
            ("keep_dims", A::B(true)),
        ],
    )?;
    // y = (x − mean) / (sqrt(var) + eps), coremltools' NumPy reference for mvn.
    let sd = b.un("sqrt", &var)?;
    let den = b.bin_scalar("add", &sd, eps)?;
    b.op("real_div", h, vec![("x", v(&d)), ("y", v(&den))])
}

fn flatten(b: &mut Builder, x: &str, channel_last: bool, h: &str) -> Result<String> {
    let shape = b.shape(x)?;
    let r = shape.len();
    if r < 3 {
        return Err(b.err("flatten input must have rank >= 3"));
    }
    let lead = &shape[..r - 3];
    let n = b.count(&shape[r - 3..])?;
    let mut y = x.to_string();
    if channel_last {
        let mut perm: Vec<usize> = (0..r).collect();
        perm[r - 3] = r - 2;
        perm[r - 2] = r - 1;
        perm[r - 1] = r - 3;
        y = b.transpose(&y, &perm)?;
    }
    let out: Vec<usize> = lead.iter().copied().chain([n, 1, 1]).collect();
    let _ = h;
    b.reshape(&y, &out)
}

fn reshape_classic(
    b: &mut Builder,
    x: &str,
    p: &proto::ReshapeLayerParams,
    h: &str,
) -> Result<String> {
    let shape = b.shape(x)?;
    if shape.len() != 5 {
        return Err(b.err("the classic reshape layer needs a rank-5 input (rank-5 blob mapping)"));
    }
    let t: Vec<usize> = p.target_shape.iter().map(|&d| d.max(0) as usize).collect();
    let (seq, c, hh, w) = match t.as_slice() {
        [c, hh, w] => (shape[0], *c, *hh, *w),
        [sq, c, hh, w] => (*sq, *c, *hh, *w),
        _ => return Err(b.err("reshape targetShape must have 3 or 4 dims")),
    };
    let _ = h;
    if p.mode == 1 {
        // CHANNEL_LAST: to [Seq, B, H, W, C] order, reshape, back to channel first.
        let xt = b.transpose(x, &[0, 1, 3, 4, 2])?;
        let y = b.reshape(&xt, &[seq, shape[1], hh, w, c])?;
        return b.transpose(&y, &[0, 1, 4, 2, 3]);
    }
    b.reshape(x, &[seq, shape[1], c, hh, w])
}
