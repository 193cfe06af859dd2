//! Palettization: a look-up table (LUT) of 2ⁿ values per channel group and an n-bit index
//! per weight (or per vector of `cluster_dim` weights along the channel axis).
//!
//! Layout as coremltools' `grouped_channelwise_compress`: the channel axis is split into
//! groups of `group_size` channels (one group = per-tensor), each with its own LUT of shape
//! `[groups on the channel axis, 1…, 2ⁿ, cluster_dim]`; indices keep the weight's shape
//! (the channel axis divided by `cluster_dim`).
//!
//! Modes:
//! - `kmeans`: optimal 1-D k-means on the group's value histogram ([`crate::kmeans`]);
//!   centroids are rounded to the weight dtype and every value then takes the *nearest*
//!   LUT entry, which can only lower the error. Vector mode uses k-means++ / Lloyd.
//! - `uniform`: coremltools' arithmetic exactly (`(w − min)/(max − min)·(2ⁿ−1)` rounded in
//!   the weight dtype; LUT `j·scale + min` computed in float64).
//! - `unique`: the sorted distinct values; `nbits` is the smallest of 1, 2, 3, 4, 6, 8 that
//!   holds the largest group.

use half::f16;
use rayon::prelude::*;

use crate::kmeans;
use crate::tensor::{FloatType, Weight};

/// Bit widths a LUT index may have.
pub const SUPPORTED_NBITS: [u8; 6] = [1, 2, 3, 4, 6, 8];

/// How LUT entries are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaletteMode {
    /// k-means clustering (optimal in 1-D).
    Kmeans,
    /// Evenly spaced entries between the group's min and max.
    Uniform,
    /// The distinct values themselves (lossless when they fit in 256 entries).
    Unique,
}

/// Parameters of one palettization.
#[derive(Debug, Clone, PartialEq)]
pub struct PaletteParams {
    /// The mode.
    pub mode: PaletteMode,
    /// Index width (required for `kmeans` and `uniform`; inferred for `unique`).
    pub nbits: Option<u8>,
    /// The channel axis (groups and vectors lie along it).
    pub channel_axis: usize,
    /// Channels per group; 0 = one group (per-tensor).
    pub group_size: usize,
    /// Elements per LUT entry along the channel axis (1 = scalar palettization).
    pub cluster_dim: usize,
}

/// A palettized tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Palettized {
    /// Index width.
    pub nbits: u8,
    /// Indices, row-major in `indices_shape`.
    pub indices: Vec<u8>,
    /// The weight's shape with the channel axis divided by `cluster_dim`.
    pub indices_shape: Vec<usize>,
    /// LUT values (representable in `lut_dtype`), row-major in `lut_shape`.
    pub lut: Vec<f32>,
    /// `[groups on the channel axis, 1…, 2ⁿ, cluster_dim]`.
    pub lut_shape: Vec<usize>,
    /// The LUT's float type (the weight's).
    pub lut_dtype: FloatType,
    /// The vector axis (`Some(channel axis)` when `cluster_dim > 1`).
    pub vector_axis: Option<usize>,
    /// The weight's shape.
    pub shape: Vec<usize>,
}

impl Palettized {
    /// The dense values `lut[index]` (what `constexpr_lut_to_dense` computes).
    pub fn reconstruct(&self) -> Vec<f32> {
        let rank = self.shape.len();
        let Some(&vs) = self.lut_shape.last() else {
            return Vec::new();
        };
        let entries = 1usize << self.nbits;
        let axis = self.vector_axis.unwrap_or(0).min(rank.saturating_sub(1));
        let groups = self.lut_shape.get(axis).copied().unwrap_or(1).max(1);
        let outer: usize = self.shape[..axis].iter().product();
        let c = self.shape.get(axis).copied().unwrap_or(1);
        let inner: usize = self.shape[axis + 1..].iter().product();
        let g_size = (c / groups).max(1);
        let mut out = vec![0f32; self.shape.iter().product()];
        for o in 0..outer {
            for ch in 0..c {
                let g = ch / g_size;
                let (cb, t) = (ch / vs, ch % vs);
                for i in 0..inner {
                    let idx = self.indices[(o * (c / vs) + cb) * inner + i] as usize;
                    out[(o * c + ch) * inner + i] = self.lut[(g * entries + idx) * vs + t];
                }
            }
        }
        out
    }

    /// Stored size in bytes (packed indices + LUT).
    pub fn nbytes(&self) -> usize {
        (self.indices.len() * self.nbits as usize).div_ceil(8)
            + self.lut.len() * self.lut_dtype.size()
    }
}

/// Why a weight was not palettized (coremltools skips it with a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declined {
    /// `group_size` does not divide the channel count.
    GroupSize(usize, usize),
    /// `cluster_dim` does not divide the group size.
    ClusterDim(usize, usize),
    /// More distinct values than 256 (unique mode).
    TooManyUnique(usize),
    /// The channel axis is out of range.
    Axis(usize),
}

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GroupSize(c, g) => write!(f, "{c} channels are not divisible by group_size {g}"),
            Self::ClusterDim(g, d) => {
                write!(f, "group size {g} is not divisible by cluster_dim {d}")
            }
            Self::TooManyUnique(n) => {
                write!(f, "{n} distinct values do not fit 8-bit palettization")
            }
            Self::Axis(a) => write!(f, "channel axis {a} is out of range"),
        }
    }
}

/// Group geometry along the channel axis.
struct Geometry {
    outer: usize,
    c: usize,
    inner: usize,
    g_size: usize,
    groups: usize,
}

impl Geometry {
    /// Flat element indices of group `g`, in (outer, channel, inner) order.
    fn elements(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        let c0 = g * self.g_size;
        (0..self.outer).flat_map(move |o| {
            (c0..c0 + self.g_size).flat_map(move |ch| {
                (0..self.inner).map(move |i| (o * self.c + ch) * self.inner + i)
            })
        })
    }
}

/// Palettize `w`. With `mask`, only elements whose mask is set take part in clustering
/// (joint pruning: the others are stored as zeros by the sparse op); their indices are 0.
pub fn palettize(
    w: &Weight,
    mask: Option<&[bool]>,
    p: &PaletteParams,
) -> Result<Palettized, Declined> {
    let rank = w.shape.len();
    if p.channel_axis >= rank.max(1) {
        return Err(Declined::Axis(p.channel_axis));
    }
    let axis = p.channel_axis;
    let c = w.shape.get(axis).copied().unwrap_or(1);
    let g_size = if p.group_size == 0 { c } else { p.group_size };
    if g_size == 0 || c % g_size != 0 {
        return Err(Declined::GroupSize(c, p.group_size));
    }
    let d = p.cluster_dim.max(1);
    if g_size % d != 0 {
        return Err(Declined::ClusterDim(g_size, d));
    }
    let geo = Geometry {
        outer: w.shape[..axis].iter().product(),
        c,
        inner: w.shape[axis + 1..].iter().product(),
        g_size,
        groups: c / g_size,
    };
    let nbits = match (p.mode, p.nbits) {
        (PaletteMode::Unique, _) => unique_nbits(w, mask, &geo, d)?,
        (_, Some(n)) => n,
        (_, None) => 4,
    };
    let entries = 1usize << nbits;
    // Per group: (LUT entries × d, indices in group order).
    let per_group: Vec<(Vec<f32>, Vec<u8>)> = (0..geo.groups)
        .into_par_iter()
        .map(|g| {
            if d == 1 {
                scalar_group(w, mask, &geo, g, p.mode, nbits)
            } else {
                vector_group(w, mask, &geo, g, p.mode, nbits, d)
            }
        })
        .collect();
    // Assemble indices in the weight layout (channel axis divided by d).
    let cv = c / d;
    let mut indices = vec![0u8; geo.outer * cv * geo.inner];
    let mut lut = Vec::with_capacity(geo.groups * entries * d);
    for (g, (glut, gidx)) in per_group.into_iter().enumerate() {
        lut.extend_from_slice(&glut);
        let mut it = gidx.into_iter();
        let cb0 = g * g_size / d;
        for o in 0..geo.outer {
            for cb in cb0..cb0 + g_size / d {
                for i in 0..geo.inner {
                    indices[(o * cv + cb) * geo.inner + i] = it.next().unwrap_or(0);
                }
            }
        }
    }
    let mut indices_shape = w.shape.clone();
    if let Some(s) = indices_shape.get_mut(axis) {
        *s = cv;
    }
    let mut lut_shape = vec![1usize; rank];
    if let Some(s) = lut_shape.get_mut(axis) {
        *s = geo.groups;
    }
    lut_shape.push(entries);
    lut_shape.push(d);
    Ok(Palettized {
        nbits,
        indices,
        indices_shape,
        lut,
        lut_shape,
        lut_dtype: w.dtype,
        vector_axis: (d > 1).then_some(axis),
        shape: w.shape.clone(),
    })
}

/// The smallest supported width holding the distinct values (vectors) of every group.
fn unique_nbits(
    w: &Weight,
    mask: Option<&[bool]>,
    geo: &Geometry,
    d: usize,
) -> Result<u8, Declined> {
    let mut most = 1usize;
    for g in 0..geo.groups {
        let n = if d == 1 {
            let mut v: Vec<f32> = geo
                .elements(g)
                .filter(|&e| mask.is_none_or(|m| m[e]))
                .map(|e| w.values[e] + 0.0)
                .collect();
            v.sort_unstable_by(f32::total_cmp);
            v.dedup();
            v.len()
        } else {
            let mut v = vectors_of_group(w, geo, g, d, mask).0;
            v.sort_unstable_by(|a, b| cmp_vec(a, b));
            v.dedup();
            v.len()
        };
        most = most.max(n);
    }
    SUPPORTED_NBITS
        .into_iter()
        .find(|&b| most <= 1usize << b)
        .ok_or(Declined::TooManyUnique(most))
}

fn cmp_vec(a: &[f32], b: &[f32]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            std::cmp::Ordering::Equal => {}
            o => return o,
        }
    }
    std::cmp::Ordering::Equal
}

/// The LUT (2ⁿ entries) and the group's indices in group element order.
fn scalar_group(
    w: &Weight,
    mask: Option<&[bool]>,
    geo: &Geometry,
    g: usize,
    mode: PaletteMode,
    nbits: u8,
) -> (Vec<f32>, Vec<u8>) {
    let entries = 1usize << nbits;
    let r = w.dtype;
    let take = |e: &usize| mask.is_none_or(|m| m[*e]);
    match mode {
        PaletteMode::Uniform => {
            let (mut mn, mut mx) = (f32::INFINITY, f32::NEG_INFINITY);
            for e in geo.elements(g).filter(take) {
                mn = mn.min(w.values[e]);
                mx = mx.max(w.values[e]);
            }
            if mn > mx {
                return (
                    vec![0.0; entries],
                    vec![0; geo.g_size * geo.outer * geo.inner],
                );
            }
            let levels = (entries - 1) as f32;
            let span = r.round(mx - mn);
            let scale = r.round(span / levels);
            let lut: Vec<f32> = (0..entries)
                .map(|j| r.round64(j as f64 * f64::from(scale) + f64::from(mn)))
                .collect();
            let idx = geo
                .elements(g)
                .map(|e| {
                    if !take(&e) {
                        return 0;
                    }
                    let t = r.round(r.round(w.values[e] - mn) / span);
                    let q = r.round(t * levels).round_ties_even();
                    if q.is_nan() {
                        0
                    } else {
                        q.clamp(0.0, levels) as u8
                    }
                })
                .collect();
            (lut, idx)
        }
        PaletteMode::Kmeans | PaletteMode::Unique => {
            // Distinct values (−0 merged into +0) with counts, sorted.
            let (values, counts) = histogram(w, geo.elements(g).filter(take));
            let mut lut = vec![0f32; entries];
            let used = if mode == PaletteMode::Unique {
                for (l, v) in lut.iter_mut().zip(&values) {
                    *l = *v as f32;
                }
                values.len().min(entries)
            } else {
                let c = kmeans::cluster_1d(&values, &counts, entries);
                for (l, &v) in lut.iter_mut().zip(&c.centroids) {
                    *l = r.round64(v);
                }
                c.centroids.len()
            };
            let table = &lut[..used.max(1)];
            let idx = match r {
                FloatType::F16 => {
                    // Index per fp16 bit pattern of the distinct values, then a lookup.
                    let mut by_bits = vec![0u8; 1 << 16];
                    let sorted: Vec<f64> = table.iter().map(|&v| f64::from(v)).collect();
                    let near = kmeans::nearest_sorted(&values, &sorted);
                    for (v, n) in values.iter().zip(near) {
                        by_bits[usize::from(f16::from_f64(*v).to_bits())] = n as u8;
                    }
                    by_bits[0x8000] = by_bits[0];
                    geo.elements(g)
                        .map(|e| {
                            if take(&e) {
                                by_bits[usize::from(f16::from_f32(w.values[e]).to_bits())]
                            } else {
                                0
                            }
                        })
                        .collect()
                }
                FloatType::F32 => geo
                    .elements(g)
                    .map(|e| {
                        if take(&e) {
                            nearest_in(table, w.values[e])
                        } else {
                            0
                        }
                    })
                    .collect(),
            };
            (lut, idx)
        }
    }
}

/// Index of the entry of sorted `table` nearest to `v` (ties to the lower index).
fn nearest_in(table: &[f32], v: f32) -> u8 {
    let pos = table.partition_point(|&t| t < v);
    let idx = if pos == 0 {
        0
    } else if pos >= table.len() {
        table.len() - 1
    } else if (v - table[pos - 1]).abs() <= (table[pos] - v).abs() {
        pos - 1
    } else {
        pos
    };
    idx as u8
}

/// Sorted distinct values of the selected elements and their counts (as f64).
fn histogram(w: &Weight, elems: impl Iterator<Item = usize>) -> (Vec<f64>, Vec<f64>) {
    match w.dtype {
        FloatType::F16 => {
            let mut counts = vec![0u32; 1 << 16];
            for e in elems {
                counts[usize::from(f16::from_f32(w.values[e]).to_bits())] += 1;
            }
            counts[0] += counts[0x8000];
            counts[0x8000] = 0;
            let mut values = Vec::new();
            let mut cs = Vec::new();
            // Negative values from −inf (0xfc00) up to the smallest magnitude (0x8001),
            // then +0, then positives up to +inf; NaN patterns are skipped.
            let neg = (0x8001u16..=0xfc00).rev();
            let pos = 0u16..=0x7c00;
            for b in neg.chain(pos) {
                let c = counts[usize::from(b)];
                if c > 0 {
                    values.push(f16::from_bits(b).to_f64());
                    cs.push(f64::from(c));
                }
            }
            (values, cs)
        }
        FloatType::F32 => {
            let mut v: Vec<f32> = elems.map(|e| w.values[e] + 0.0).collect();
            v.sort_unstable_by(f32::total_cmp);
            let mut values: Vec<f64> = Vec::new();
            let mut cs: Vec<f64> = Vec::new();
            for x in v {
                let x = f64::from(x);
                match values.last() {
                    Some(&l) if l == x => {
                        if let Some(c) = cs.last_mut() {
                            *c += 1.0;
                        }
                    }
                    _ => {
                        values.push(x);
                        cs.push(1.0);
                    }
                }
            }
            (values, cs)
        }
    }
}

/// The vectors of group `g` (each `d` consecutive channels at one position) and, per vector,
/// whether it takes part (all of its elements unmasked).
fn vectors_of_group(
    w: &Weight,
    geo: &Geometry,
    g: usize,
    d: usize,
    mask: Option<&[bool]>,
) -> (Vec<Vec<f32>>, Vec<bool>) {
    let mut out = Vec::new();
    let mut keep = Vec::new();
    let cb0 = g * geo.g_size / d;
    for o in 0..geo.outer {
        for cb in cb0..cb0 + geo.g_size / d {
            for i in 0..geo.inner {
                let idx = |t: usize| (o * geo.c + cb * d + t) * geo.inner + i;
                out.push((0..d).map(|t| w.values[idx(t)]).collect());
                keep.push(mask.is_none_or(|m| (0..d).all(|t| m[idx(t)])));
            }
        }
    }
    (out, keep)
}

fn vector_group(
    w: &Weight,
    mask: Option<&[bool]>,
    geo: &Geometry,
    g: usize,
    mode: PaletteMode,
    nbits: u8,
    d: usize,
) -> (Vec<f32>, Vec<u8>) {
    let entries = 1usize << nbits;
    let r = w.dtype;
    let (vecs, keep) = vectors_of_group(w, geo, g, d, mask);
    let mut lut = vec![0f32; entries * d];
    let chosen: Vec<&Vec<f32>> = vecs
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(v, _)| v)
        .collect();
    let used = match mode {
        PaletteMode::Unique => {
            let mut u: Vec<&Vec<f32>> = chosen.clone();
            u.sort_unstable_by(|a, b| cmp_vec(a, b));
            u.dedup();
            for (j, v) in u.iter().take(entries).enumerate() {
                lut[j * d..(j + 1) * d].copy_from_slice(v);
            }
            u.len().min(entries)
        }
        // Uniform is refused for vectors by the config check; cluster like kmeans otherwise.
        PaletteMode::Kmeans | PaletteMode::Uniform => {
            let samples: Vec<f64> = chosen
                .iter()
                .flat_map(|v| v.iter().map(|&x| f64::from(x)))
                .collect();
            let c = kmeans::cluster_nd(&samples, d, entries, 3);
            for (l, &v) in lut.iter_mut().zip(&c.centroids) {
                *l = r.round64(v);
            }
            c.centroids.len() / d
        }
    };
    let table: Vec<f64> = lut[..used.max(1) * d]
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let samples: Vec<f64> = vecs
        .iter()
        .flat_map(|v| v.iter().map(|&x| f64::from(x)))
        .collect();
    let mut assign = vec![0u32; vecs.len()];
    kmeans::assign_nd(&samples, d, &table, &mut assign);
    let idx = assign
        .into_iter()
        .zip(&keep)
        .map(|(a, k)| if *k { a as u8 } else { 0 })
        .collect();
    (lut, idx)
}

/// Move each scalar index to the LUT entry that best reconstructs the *original* weight,
/// searching outward from the current one while the error drops. Used when what the
/// decompressor produces differs from the clustering domain: with a per-channel scale
/// (`s · lut[i]` rounded to the dtype; `scale` gives `s` per (outer, inner) position of
/// `axis`) and with a quantized LUT (`lut` = the dequantized entries).
pub fn refine_indices(
    p: &mut Palettized,
    original: &Weight,
    lut: &[f32],
    scale: Option<(&[f32], usize)>,
) {
    if p.vector_axis.is_some() || p.shape != original.shape || lut.len() != p.lut.len() {
        return;
    }
    let r = original.dtype;
    let entries = 1usize << p.nbits;
    let rank = p.shape.len();
    let axis = scale.map_or(0, |(_, a)| a).min(rank.saturating_sub(1));
    let outer: usize = p.shape[..axis].iter().product();
    let c = p.shape.get(axis).copied().unwrap_or(1);
    let inner: usize = p.shape[axis + 1..].iter().product();
    // Groups lie along the palettization axis; find it from the LUT shape.
    let g_axis = p.lut_shape[..rank].iter().position(|&g| g > 1).unwrap_or(0);
    let groups = p.lut_shape.get(g_axis).copied().unwrap_or(1).max(1);
    let g_extent = p.shape.get(g_axis).copied().unwrap_or(1);
    let g_size = (g_extent / groups).max(1);
    let st = crate::tensor::strides(&p.shape);
    for o in 0..outer {
        for ch in 0..c {
            for i in 0..inner {
                let e = (o * c + ch) * inner + i;
                let g = (e / st[g_axis] % g_extent.max(1)) / g_size;
                let l = &lut[g * entries..(g + 1) * entries];
                let sc = scale.map(|(s, _)| s[o * inner + i]);
                let w = original.values[e];
                let err = |j: usize| match sc {
                    Some(sc) => (w - r.round(sc * l[j])).abs(),
                    None => (w - l[j]).abs(),
                };
                let mut cur = usize::from(p.indices[e]);
                let mut best = err(cur);
                for step in [
                    usize::wrapping_sub as fn(usize, usize) -> usize,
                    usize::wrapping_add,
                ] {
                    loop {
                        let j = step(cur, 1);
                        if j >= entries || err(j) >= best {
                            break;
                        }
                        best = err(j);
                        cur = j;
                    }
                }
                p.indices[e] = cur as u8;
            }
        }
    }
}

/// Per-channel scale of coremltools' `enable_per_channel_scale`: `s = max |w|` over the
/// channel axis (kept as a size-1 axis; 0 → 1), and `w / s` in the weight dtype. Returns
/// the normalised weight, the scale values and the scale's shape.
pub fn per_channel_scale(w: &Weight, channel_axis: usize) -> (Weight, Vec<f32>, Vec<usize>) {
    let axis = channel_axis.min(w.shape.len().saturating_sub(1));
    let outer: usize = w.shape[..axis].iter().product();
    let c = w.shape.get(axis).copied().unwrap_or(1);
    let inner: usize = w.shape[axis + 1..].iter().product();
    let mut s = vec![0f32; outer * inner];
    for o in 0..outer {
        for ch in 0..c {
            for i in 0..inner {
                let v = w.values[(o * c + ch) * inner + i].abs();
                let slot = &mut s[o * inner + i];
                *slot = slot.max(v);
            }
        }
    }
    for v in &mut s {
        if *v == 0.0 {
            *v = 1.0;
        }
    }
    let r = w.dtype;
    let mut values = w.values.clone();
    for o in 0..outer {
        for ch in 0..c {
            for i in 0..inner {
                let e = (o * c + ch) * inner + i;
                values[e] = r.round(values[e] / s[o * inner + i]);
            }
        }
    }
    let mut shape = w.shape.clone();
    if let Some(x) = shape.get_mut(axis) {
        *x = 1;
    }
    (
        Weight {
            dtype: w.dtype,
            shape: w.shape.clone(),
            values,
        },
        s,
        shape,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: PaletteMode, nbits: Option<u8>, group: usize, d: usize) -> PaletteParams {
        PaletteParams {
            mode,
            nbits,
            channel_axis: 0,
            group_size: group,
            cluster_dim: d,
        }
    }

    #[test]
    fn unique_is_lossless() {
        let v: Vec<f32> = (0..64).map(|i| ((i % 5) as f32) * 0.25 - 0.5).collect();
        let w = Weight::new(FloatType::F16, vec![8, 8], v.clone()).unwrap();
        let p = palettize(&w, None, &params(PaletteMode::Unique, None, 0, 1)).unwrap();
        assert_eq!(p.nbits, 3);
        assert_eq!(p.lut_shape, vec![1, 1, 8, 1]);
        assert_eq!(p.reconstruct(), v);
    }

    #[test]
    fn grouped_kmeans_has_one_lut_per_group_and_is_exact_for_few_values() {
        let v: Vec<f32> = (0..64)
            .map(|i| {
                if i < 32 {
                    (i % 2) as f32
                } else {
                    5.0 + (i % 3) as f32
                }
            })
            .collect();
        let w = Weight::new(FloatType::F32, vec![8, 8], v.clone()).unwrap();
        let p = palettize(&w, None, &params(PaletteMode::Kmeans, Some(2), 4, 1)).unwrap();
        assert_eq!(p.lut_shape, vec![2, 1, 4, 1]);
        assert_eq!(p.reconstruct(), v);
    }

    #[test]
    fn vector_palettization_reconstructs_repeated_vectors() {
        // Channel pairs (rows 2k, 2k+1) hold one of two vectors at every column.
        let mut v = vec![0f32; 32];
        for cb in 0..2 {
            for i in 0..8 {
                let (a, b) = if (cb + i) % 2 == 0 {
                    (1.0, -1.0)
                } else {
                    (0.5, 2.0)
                };
                v[(cb * 2) * 8 + i] = a;
                v[(cb * 2 + 1) * 8 + i] = b;
            }
        }
        let w = Weight::new(FloatType::F16, vec![4, 8], v.clone()).unwrap();
        let p = palettize(&w, None, &params(PaletteMode::Kmeans, Some(1), 0, 2)).unwrap();
        assert_eq!(p.indices_shape, vec![2, 8]);
        assert_eq!(p.lut_shape, vec![1, 1, 2, 2]);
        assert_eq!(p.vector_axis, Some(0));
        assert_eq!(p.reconstruct(), v);
    }

    #[test]
    fn declines_like_coremltools() {
        let w = Weight::new(FloatType::F16, vec![6, 4], vec![0.0; 24]).unwrap();
        assert!(matches!(
            palettize(&w, None, &params(PaletteMode::Kmeans, Some(4), 4, 1)),
            Err(Declined::GroupSize(6, 4))
        ));
    }

    #[test]
    fn uniform_matches_formula() {
        let w = Weight::new(
            FloatType::F16,
            vec![2, 4],
            vec![-1.0, -0.5, 0.0, 0.5, 1.0, 0.25, 0.75, -0.25],
        )
        .unwrap();
        let p = palettize(&w, None, &params(PaletteMode::Uniform, Some(2), 0, 1)).unwrap();
        let lut = &p.lut;
        assert_eq!(lut[0], -1.0);
        // coremltools: lut = j·fp16(2/3) − 1 in float64, so the top entry is 0.99951.
        assert_eq!(lut[3], 0.999_511_7);
        assert_eq!(p.indices[4], 3);
    }
}
