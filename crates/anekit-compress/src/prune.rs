//! Pruning: which weights become zero (a mask), as coremltools' `prune_weights`.
//!
//! - threshold: `|w| ≤ threshold` (the threshold is compared in the weight dtype, as numpy
//!   does with a Python float: 1e-12 is 0 in fp16); declined when the resulting sparsity is
//!   below `minimum_sparsity_percentile`;
//! - magnitude: zero every element whose magnitude is `≤ np.percentile(|w|, 100·target)`
//!   (numpy's linear interpolation, computed in the weight dtype, so that ties at the
//!   threshold fall as in coremltools: when the two magnitudes around the quantile are
//!   adjacent fp16 values, their interpolated midpoint rounds to one of them — to even — and
//!   every magnitude equal to the rounded threshold is pruned); with `block_size` the
//!   magnitude is the L2 norm of `block_size` consecutive channels along `dim`;
//! - n:m: in every run of `m` elements along `dim` (moved last; zero padding), the `n`
//!   smallest magnitudes become zero (ties: lower index first).

use crate::tensor::{FloatType, Weight};

/// A pruning method.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneMethod {
    /// Zero `|w| ≤ threshold`; skip the weight if less than `min_sparsity` becomes zero.
    Threshold {
        /// The threshold.
        threshold: f64,
        /// Minimum fraction of zeros for the result to be kept.
        min_sparsity: f64,
    },
    /// Zero the `target_sparsity` fraction of smallest magnitudes, optionally by blocks of
    /// `block_size` channels along `dim`.
    Magnitude {
        /// Fraction in [0, 1].
        target_sparsity: f64,
        /// Channels per block (> 1), along `dim`.
        block_size: Option<usize>,
        /// 0 (output channels) or 1 (input channels).
        dim: usize,
    },
    /// `n` zeros in every `m` consecutive elements along `dim`.
    NOfM {
        /// Zeros per run.
        n: usize,
        /// Run length.
        m: usize,
        /// 0 or 1.
        dim: usize,
    },
}

/// Why pruning declined a weight.
#[derive(Debug, Clone, PartialEq)]
pub enum PruneDeclined {
    /// Threshold pruning reached too little sparsity.
    TooSparse(f64),
    /// Block or run larger than half the channels (coremltools' rule).
    TooLarge {
        /// The block size or m.
        size: usize,
        /// Channels along `dim`.
        channels: usize,
    },
    /// Block and n:m pruning need a weight of rank 2..=5 and dim 0 or 1.
    Rank(usize),
}

impl std::fmt::Display for PruneDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooSparse(s) => write!(f, "sparsity {s:.3} is below minimum_sparsity_percentile"),
            Self::TooLarge { size, channels } => {
                write!(f, "block/run size {size} > half of the {channels} channels")
            }
            Self::Rank(r) => write!(f, "structured pruning needs rank 2..5, weight has rank {r}"),
        }
    }
}

/// Compute the keep-mask (true = non-zero kept) of `w`. Elements that are zero already are
/// never "kept" (the sparse format stores non-zeros only).
pub fn prune_mask(w: &Weight, method: &PruneMethod) -> Result<Vec<bool>, PruneDeclined> {
    let r = w.dtype;
    let keep = match method {
        PruneMethod::Threshold {
            threshold,
            min_sparsity,
        } => {
            let t = r.round64(*threshold);
            let keep: Vec<bool> = w.values.iter().map(|v| v.abs() > t || v.is_nan()).collect();
            let zeros = keep
                .iter()
                .zip(&w.values)
                .filter(|(k, v)| !**k || **v == 0.0)
                .count();
            let sparsity = zeros as f64 / w.len().max(1) as f64;
            if sparsity < *min_sparsity {
                return Err(PruneDeclined::TooSparse(sparsity));
            }
            keep
        }
        PruneMethod::Magnitude {
            target_sparsity,
            block_size,
            dim,
        } => {
            let mag = match block_size {
                Some(bs) => block_magnitude(w, *bs, *dim)?,
                None => w.values.iter().map(|v| v.abs()).collect(),
            };
            // coremltools `compress_by_magnitude`: q = target_sparsity·100; q == 100 prunes
            // everything, q == 0 nothing, else `|w| <= np.percentile(|w|, q)` is pruned —
            // ties at the threshold included, NaN never (a comparison with NaN is false).
            // numpy turns q back into a quantile as q / 100 (`np.true_divide`), which is not
            // always `target_sparsity` to the last bit (0.3·100/100 = 0.30000000000000004).
            let q = target_sparsity * 100.0;
            if q >= 100.0 {
                vec![false; w.len()]
            } else if q <= 0.0 {
                vec![true; w.len()]
            } else {
                let thr = percentile(&mag, q / 100.0, r);
                mag.iter()
                    .map(|&m| m > thr || m.is_nan() || thr.is_nan())
                    .collect()
            }
        }
        PruneMethod::NOfM { n, m, dim } => nm_mask(w, *n, *m, *dim)?,
    };
    Ok(keep
        .into_iter()
        .zip(&w.values)
        .map(|(k, &v)| k && v != 0.0)
        .collect())
}

/// numpy `percentile(a, 100·q)` with the default linear method, computed in `r`
/// (`_lerp`: `a + (b − a)·t`, or `b − (b − a)·(1 − t)` for `t ≥ 0.5`, each step rounded).
pub fn percentile(a: &[f32], q: f64, r: FloatType) -> f32 {
    let n = a.len();
    if n == 0 {
        return f32::NAN;
    }
    let mut s = a.to_vec();
    let vi = (n - 1) as f64 * q;
    let prev = (vi.floor() as usize).min(n - 1);
    let next = (prev + 1).min(n - 1);
    let (_, &mut lo, _) = s.select_nth_unstable_by(prev, f32::total_cmp);
    let hi = if next == prev {
        lo
    } else {
        s[prev + 1..].iter().copied().fold(f32::INFINITY, f32::min)
    };
    let t = vi - prev as f64;
    let tt = r.round64(t);
    let diff = r.round(hi - lo);
    if t >= 0.5 {
        let one_minus = r.round64(1.0 - t);
        r.round(hi - r.round(diff * one_minus))
    } else {
        r.round(lo + r.round(diff * tt))
    }
}

/// Magnitude of each element as the L2 norm of its block of `bs` channels along `dim`
/// (coremltools `_apply_block_sparsity`, in the weight dtype).
fn block_magnitude(w: &Weight, bs: usize, dim: usize) -> Result<Vec<f32>, PruneDeclined> {
    let rank = w.shape.len();
    if !(2..=5).contains(&rank) || dim > 1 {
        return Err(PruneDeclined::Rank(rank));
    }
    let channels = w.shape[dim];
    if bs as f64 > channels as f64 / 2.0 {
        return Err(PruneDeclined::TooLarge { size: bs, channels });
    }
    let r = w.dtype;
    let outer: usize = w.shape[..dim].iter().product();
    let inner: usize = w.shape[dim + 1..].iter().product();
    let mut mag = vec![0f32; w.len()];
    let blocks = channels.div_ceil(bs.max(1));
    for o in 0..outer {
        for b in 0..blocks {
            let c0 = b * bs;
            let c1 = (c0 + bs).min(channels);
            for i in 0..inner {
                // Sequential sum of squares in the dtype (numpy reduces a non-last axis by
                // repeated elementwise adds); padded channels add 0.
                let mut acc = 0f32;
                for c in c0..c1 {
                    let v = w.values[(o * channels + c) * inner + i];
                    acc = r.round(acc + r.round(v * v));
                }
                let norm = r.round(acc.sqrt());
                for c in c0..c1 {
                    mag[(o * channels + c) * inner + i] = norm;
                }
            }
        }
    }
    Ok(mag)
}

/// n:m keep-mask (coremltools `compress_by_nm_sparsity`).
fn nm_mask(w: &Weight, n: usize, m: usize, dim: usize) -> Result<Vec<bool>, PruneDeclined> {
    let rank = w.shape.len();
    if !(2..=5).contains(&rank) || dim > 1 || m == 0 {
        return Err(PruneDeclined::Rank(rank));
    }
    // coremltools moves the spatial axes first and `dim` last: runs go along `dim`, for
    // every combination of the other axes.
    let channels = w.shape[dim];
    if m as f64 > channels as f64 / 2.0 {
        return Err(PruneDeclined::TooLarge { size: m, channels });
    }
    let st = crate::tensor::strides(&w.shape);
    let mut keep = vec![true; w.len()];
    // Every element whose `dim` coordinate is 0 starts a line along `dim`.
    let lines: Vec<usize> = (0..w.len())
        .filter(|&e| (e / st[dim]).is_multiple_of(channels))
        .collect();
    let mut run: Vec<(f32, usize)> = Vec::with_capacity(m);
    for base in lines {
        let mut c = 0;
        while c < channels {
            run.clear();
            for j in 0..m {
                let ch = c + j;
                // Padding elements are zeros with positions after the real ones.
                let v = if ch < channels {
                    w.values[base + ch * st[dim]].abs()
                } else {
                    0.0
                };
                run.push((v, j));
            }
            run.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for &(_, j) in run.iter().take(n) {
                let ch = c + j;
                if ch < channels {
                    keep[base + ch * st[dim]] = false;
                }
            }
            c += m;
        }
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy_linear() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&a, 0.5, FloatType::F32), 2.5);
        assert_eq!(percentile(&a, 0.25, FloatType::F32), 1.75);
        assert_eq!(percentile(&a, 1.0, FloatType::F32), 4.0);
    }

    #[test]
    fn magnitude_half() {
        let w = Weight::new(
            FloatType::F16,
            vec![2, 4],
            vec![0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8],
        )
        .unwrap();
        let m = prune_mask(
            &w,
            &PruneMethod::Magnitude {
                target_sparsity: 0.5,
                block_size: None,
                dim: 0,
            },
        )
        .unwrap();
        assert_eq!(m, vec![false, false, false, false, true, true, true, true]);
    }

    /// Issue 11's tie: 9,216 magnitudes, the two at the median (sorted positions 4607 and
    /// 4608) adjacent fp16 values `1 + ε` and `1 + 2ε`. numpy interpolates `hi − (hi − lo)·0.5`
    /// in fp16: the midpoint `1 + 1.5ε` rounds to even, `1 + 2ε`, so both are pruned and
    /// 4,607 weights stay (coremltools' count); with `1 + 2ε` / `1 + 3ε` the midpoint rounds
    /// down and 4,608 stay.
    #[test]
    fn magnitude_ties_round_the_threshold_like_numpy() {
        let eps = f32::from(half::f16::EPSILON);
        for (lo, hi, kept) in [
            (1.0 + eps, 1.0 + 2.0 * eps, 4607),
            (1.0 + 2.0 * eps, 1.0 + 3.0 * eps, 4608),
        ] {
            let mut v: Vec<f32> = (0..4607).map(|i| 0.5 + i as f32 * 1e-5).collect();
            v.extend([hi, lo]);
            v.extend((0..4607).map(|i| -(2.0 + i as f32 * 1e-4)));
            let v: Vec<f32> = v.iter().map(|&x| FloatType::F16.round(x)).collect();
            let w = Weight::new(FloatType::F16, vec![96, 96], v).unwrap();
            let method = PruneMethod::Magnitude {
                target_sparsity: 0.5,
                block_size: None,
                dim: 0,
            };
            let m = prune_mask(&w, &method).unwrap();
            assert_eq!(m.iter().filter(|k| **k).count(), kept, "lo {lo} hi {hi}");
        }
    }

    #[test]
    fn two_of_four_along_input_channels() {
        let w = Weight::new(
            FloatType::F32,
            vec![2, 8],
            (0..16).map(|i| ((i * 7) % 5) as f32 + 1.0).collect(),
        )
        .unwrap();
        let m = prune_mask(&w, &PruneMethod::NOfM { n: 2, m: 4, dim: 1 }).unwrap();
        for run in m.chunks(4) {
            assert_eq!(run.iter().filter(|k| !**k).count(), 2);
        }
    }
}
