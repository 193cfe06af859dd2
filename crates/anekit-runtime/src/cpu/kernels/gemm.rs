//! anekit's own register-blocked GEMM, for convolutions: `C = A·B (+ C)` where `A` is a
//! constant weight matrix packed once at load ([`PackedA`]) and `B` is produced block by
//! block by the caller ([`BSource`]: the input plane of a 1×1 convolution, or the patches of
//! a k×k one, written straight into the GEMM's operand without a separate im2col matrix).
//!
//! The layout follows the GotoBLAS/BLIS scheme (Goto & van de Geijn, "Anatomy of
//! high-performance matrix multiplication", ACM TOMS 34(3), 2008; the BLIS micro-kernel
//! design, github.com/flame/blis `docs/KernelsHowTo.md`): `A` is stored as panels of `MR`
//! rows, k-major, so that the micro-kernel reads `MR` consecutive weights per step of `k`;
//! a block of `KC` rows × `NC` columns of `B` is made row-major in a per-thread buffer that
//! stays in L2; the micro-kernel keeps an `MR × NR` tile of `C` in vector registers
//! (`NR` = two vectors of output pixels), broadcasts one weight per row and does
//! `MR·NR/lanes` fused multiply-adds per `k`. Convolution outputs are NCHW rows (one row per
//! output channel, pixels contiguous), so the tile is stored as `MR` row segments.
//!
//! Instruction sets: the micro-kernel is generic over [`pulp::Simd`] and dispatched at run
//! time by [`pulp::Arch`] (AVX-512F, AVX2+FMA, NEON, or scalar), with the tile shape chosen
//! for the register file: 12 × 32 on AVX-512 (24 accumulators of 32 registers), 6 × 16 on
//! AVX2 (12 of 16), 12 × 8 on NEON, 4 × 4 scalar. The bias is the accumulators' initial
//! value and a trailing clamp (`relu`, `relu6`, `clip`) is applied before the store, so
//! the commonest fused epilogues cost nothing extra; other epilogues run on each task's
//! output block while it is in cache.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::linalg::with_scratch;

/// The micro-kernel's tile shape on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Rows of `C` (output channels) per tile.
    pub mr: usize,
    /// Columns of `C` (output pixels) per tile.
    pub nr: usize,
}

/// Tile shape for an instruction set with `lanes` f32 lanes and `regs` vector registers.
const fn tile_for(lanes: usize, regs: usize) -> (usize, usize) {
    // (MR, vectors per row)
    if lanes == 1 {
        (4, 4)
    } else if regs >= 32 {
        (12, 2)
    } else {
        (6, 2)
    }
}

struct TileOf;

impl WithSimd for TileOf {
    type Output = Tile;
    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> Tile {
        let (mr, nv) = tile_for(S::F32_LANES, S::REGISTER_COUNT);
        Tile {
            mr,
            nr: nv * S::F32_LANES,
        }
    }
}

/// The tile shape of this CPU's micro-kernel (detected once).
pub fn tile() -> Tile {
    static T: std::sync::OnceLock<Tile> = std::sync::OnceLock::new();
    *T.get_or_init(|| Arch::new().dispatch(TileOf))
}

/// A row-major `M × K` matrix packed for the micro-kernel: `⌈M / MR⌉` panels of `K × MR`
/// values (k-major; the rows past `M` of the last panel are zero).
#[derive(Debug, Clone)]
pub struct PackedA {
    m: usize,
    k: usize,
    mr: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Pack `a` (`m × k`, row-major, row stride `lda`) for this CPU's tile.
    pub fn new(a: &[f32], m: usize, k: usize, lda: usize) -> Self {
        let mr = tile().mr;
        let panels = m.div_ceil(mr);
        let mut data = vec![0.0f32; panels * k * mr];
        for (p, panel) in data.chunks_exact_mut((k * mr).max(1)).enumerate().take(panels) {
            for r in 0..mr.min(m - p * mr) {
                let row = &a[(p * mr + r) * lda..][..k];
                for (kk, &v) in row.iter().enumerate() {
                    panel[kk * mr + r] = v;
                }
            }
        }
        Self { m, k, mr, data }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Columns (the reduction length).
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Bytes held.
    pub fn nbytes(&self) -> usize {
        self.data.len() * 4
    }

    /// Panel `p`, reduction rows `k0..k0 + kc`.
    fn panel(&self, p: usize, k0: usize, kc: usize) -> &[f32] {
        &self.data[(p * self.k + k0) * self.mr..][..kc * self.mr]
    }
}

/// The right operand, made on demand one block at a time.
pub trait BSource: Sync {
    /// Write rows `k0..k0 + kc`, columns `n0..n0 + nc` of `B` into `out` (`kc` rows of
    /// stride `ld ≥ nc`, row-major).
    fn block(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32], ld: usize);
}

/// A plain row-major `K × N` matrix (row stride `ld`) as a [`BSource`].
pub struct RowMajor<'a> {
    /// The data.
    pub data: &'a [f32],
    /// Row stride.
    pub ld: usize,
}

impl BSource for RowMajor<'_> {
    fn block(&self, k0: usize, kc: usize, n0: usize, nc: usize, out: &mut [f32], ld: usize) {
        for (r, dst) in out.chunks_mut(ld).take(kc).enumerate() {
            dst[..nc].copy_from_slice(&self.data[(k0 + r) * self.ld + n0..][..nc]);
        }
    }
}

/// What happens to each tile of `C` around the products.
#[derive(Debug, Clone, Copy)]
pub struct TileOps<'a> {
    /// Per-row initial value (the bias), else zero.
    pub bias: Option<&'a [f32]>,
    /// Add to what `C` holds instead of overwriting it.
    pub accumulate: bool,
    /// Clamp every output to `[lo, hi]` after the last product (`relu`: `[0, ∞]`).
    pub clamp: Option<(f32, f32)>,
}

/// Reduction rows per block.
const KC: usize = 256;

/// Columns of `B` per block (a multiple of `nr`): about 64 Ki floats of block.
fn block_cols(kc: usize, n: usize, nr: usize) -> usize {
    let nc = (65_536 / kc.max(1)).clamp(nr, 512);
    nc.next_multiple_of(nr).min(n.next_multiple_of(nr))
}

/// `C (+)= A · B` for `C` of `A.rows()` rows and `n` columns, given as row segments: `c`
/// holds row `i` at `c[i * ldc..][..n]`. `post(rows, c0, block)` runs on each finished
/// block of `C` (rows `rows`, columns `c0..c0 + block_len`): the fused epilogue.
/// With `par`, blocks run on the rayon pool.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    a: &PackedA,
    b: &dyn BSource,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    ops: TileOps<'_>,
    post: &(dyn Fn(usize, usize, &mut [&mut [f32]]) + Sync),
    par: bool,
) {
    let (m, k) = (a.m, a.k);
    if m == 0 || n == 0 {
        return;
    }
    let t = tile();
    debug_assert_eq!(t.mr, a.mr, "PackedA made for another tile shape");
    let kc_all = k.max(1);
    // Balanced reduction blocks of at most KC rows.
    let kblocks = kc_all.div_ceil(KC);
    let kc = kc_all.div_ceil(kblocks);
    let nc = block_cols(kc, n, t.nr);
    let nblocks = n.div_ceil(nc);
    let threads = if par { rayon::current_num_threads() } else { 1 };
    let panels = m.div_ceil(t.mr);
    // Split rows too when there are fewer column blocks than ~2 per thread.
    let msplit = if nblocks >= 2 * threads {
        1
    } else {
        (2 * threads).div_ceil(nblocks).min(panels).max(1)
    };
    let mc = panels.div_ceil(msplit) * t.mr;
    let msplit = m.div_ceil(mc);
    // Row segments of each task: task (mi, ni) owns rows mi·mc.., columns ni·nc...
    let mut tasks: Vec<(usize, usize, Vec<&mut [f32]>)> = (0..msplit * nblocks)
        .map(|i| (i / nblocks, i % nblocks, Vec::with_capacity(mc)))
        .collect();
    for (r, row) in c.chunks_mut(ldc).take(m).enumerate() {
        let mi = r / mc;
        let mut rest = &mut row[..n];
        for ni in 0..nblocks {
            let len = nc.min(rest.len());
            let (piece, tail) = rest.split_at_mut(len);
            rest = tail;
            tasks[mi * nblocks + ni].2.push(piece);
        }
    }
    let run = |(mi, ni, mut rows): (usize, usize, Vec<&mut [f32]>)| {
        let (m0, n0) = (mi * mc, ni * nc);
        let len = nc.min(n - n0);
        let ncp = len.next_multiple_of(t.nr);
        with_scratch(kc * ncp, |buf| {
            let mut k0 = 0;
            while k0 < k {
                let kcb = kc.min(k - k0);
                let blk = &mut buf[..kcb * ncp];
                if ncp > len {
                    for row in blk.chunks_mut(ncp) {
                        row[len..].fill(0.0);
                    }
                }
                b.block(k0, kcb, n0, len, blk, ncp);
                let first = k0 == 0;
                let last = k0 + kcb >= k;
                let tops = TileOps {
                    bias: if first { ops.bias } else { None },
                    accumulate: !first || ops.accumulate,
                    clamp: if last { ops.clamp } else { None },
                };
                let bias_rows = tops.bias.map(|bv| &bv[m0..]);
                Arch::new().dispatch(Block {
                    a,
                    p0: m0 / t.mr,
                    k0,
                    kc: kcb,
                    b: blk,
                    ldb: ncp,
                    cols: len,
                    rows: &mut rows,
                    bias: bias_rows,
                    accumulate: tops.accumulate,
                    clamp: tops.clamp,
                });
                k0 += kcb;
            }
        });
        post(m0, n0, &mut rows);
    };
    if par && tasks.len() > 1 {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

/// One block: every tile of rows `rows` (from panel `p0`) × the block's columns.
struct Block<'a, 'b, 'c> {
    a: &'a PackedA,
    p0: usize,
    k0: usize,
    kc: usize,
    b: &'a [f32],
    ldb: usize,
    cols: usize,
    rows: &'b mut [&'c mut [f32]],
    bias: Option<&'a [f32]>,
    accumulate: bool,
    clamp: Option<(f32, f32)>,
}

impl WithSimd for Block<'_, '_, '_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, s: S) {
        match tile_for(S::F32_LANES, S::REGISTER_COUNT) {
            (12, 2) => self.run::<S, 12, 2>(s),
            (6, 2) => self.run::<S, 6, 2>(s),
            _ => self.run::<S, 4, 4>(s),
        }
    }
}

impl Block<'_, '_, '_> {
    #[inline(always)]
    fn run<S: Simd, const MR: usize, const NV: usize>(self, s: S) {
        let nr = NV * S::F32_LANES;
        let nrows = self.rows.len();
        for (pi, rows) in self.rows.chunks_mut(MR).enumerate() {
            let a = self.a.panel(self.p0 + pi, self.k0, self.kc);
            let (a, _) = a.as_chunks::<MR>();
            let mut init = [0.0f32; MR];
            if let Some(bv) = self.bias {
                for (r, v) in init.iter_mut().enumerate().take(rows.len()) {
                    *v = bv[pi * MR + r];
                }
            }
            let mut j0 = 0;
            while j0 < self.cols {
                let w = nr.min(self.cols - j0);
                micro::<S, MR, NV>(
                    s,
                    a,
                    &self.b[j0..],
                    self.ldb,
                    &init,
                    rows,
                    j0,
                    w,
                    self.accumulate,
                    self.clamp,
                );
                j0 += nr;
            }
        }
        let _ = nrows;
    }
}

/// The micro-kernel: `C[0..MR, j0..j0 + w] (+)= init + Σ_k a[k] ⊗ B[k, 0..NR]`, rows past
/// `rows.len()` and columns past `w` dropped.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn micro<S: Simd, const MR: usize, const NV: usize>(
    s: S,
    a: &[[f32; MR]],
    b: &[f32],
    ldb: usize,
    init: &[f32; MR],
    rows: &mut [&mut [f32]],
    j0: usize,
    w: usize,
    accumulate: bool,
    clamp: Option<(f32, f32)>,
) {
    let lanes = S::F32_LANES;
    let nr = NV * lanes;
    let mut acc = [[s.splat_f32s(0.0); NV]; MR];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = [s.splat_f32s(init[r]); NV];
    }
    for (kk, ak) in a.iter().enumerate() {
        let brow = &b[kk * ldb..][..nr];
        let (bv, _) = S::as_simd_f32s(brow);
        let mut bb = [s.splat_f32s(0.0); NV];
        for (v, x) in bb.iter_mut().zip(bv) {
            *v = *x;
        }
        for r in 0..MR {
            let av = s.splat_f32s(ak[r]);
            for v in 0..NV {
                acc[r][v] = s.mul_add_e_f32s(av, bb[v], acc[r][v]);
            }
        }
    }
    for (r, row) in rows.iter_mut().enumerate().take(MR) {
        let dst = &mut row[j0..j0 + w];
        let accr = &mut acc[r];
        if w == nr {
            let (dv, _) = S::as_mut_simd_f32s(dst);
            for (v, d) in dv.iter_mut().enumerate().take(NV) {
                let mut x = accr[v];
                if accumulate {
                    x = s.add_f32s(x, *d);
                }
                if let Some((lo, hi)) = clamp {
                    x = s.min_f32s(s.max_f32s(x, s.splat_f32s(lo)), s.splat_f32s(hi));
                }
                *d = x;
            }
        } else {
            for (v, d) in dst.chunks_mut(lanes).enumerate().take(NV) {
                let mut x = accr[v];
                if accumulate {
                    x = s.add_f32s(x, s.partial_load_f32s(d));
                }
                if let Some((lo, hi)) = clamp {
                    x = s.min_f32s(s.max_f32s(x, s.splat_f32s(lo)), s.splat_f32s(hi));
                }
                s.partial_store_f32s(d, x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
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

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_on_ragged_shapes() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (5, 7, 3),
            (12, 32, 64),
            (13, 33, 65),
            (31, 100, 300),
            (64, 49, 576),
            (100, 513, 17),
        ] {
            for par in [false, true] {
                let a = data(m * k, 1);
                let b = data(k * n, 2);
                let bias = data(m, 3);
                let pa = PackedA::new(&a, m, k, k);
                let ldc = n + 3;
                let mut c = vec![f32::NAN; m * ldc];
                let ops = TileOps {
                    bias: Some(&bias),
                    accumulate: false,
                    clamp: Some((-0.5, 0.75)),
                };
                gemm(
                    &pa,
                    &RowMajor { data: &b, ld: n },
                    n,
                    &mut c,
                    ldc,
                    ops,
                    &|_, _, _| {},
                    par,
                );
                let want = naive(&a, &b, m, n, k);
                for i in 0..m {
                    for j in 0..n {
                        let w = (want[i * n + j] + f64::from(bias[i])).clamp(-0.5, 0.75);
                        let got = f64::from(c[i * ldc + j]);
                        assert!(
                            (got - w).abs() <= 1e-5 * (k as f64).sqrt(),
                            "{m}x{n}x{k} at ({i},{j}): {got} vs {w}"
                        );
                    }
                    // Columns past n untouched.
                    for j in n..ldc {
                        if i * ldc + j < c.len() {
                            assert!(c[i * ldc + j].is_nan());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn accumulates_and_runs_post() {
        let (m, n, k) = (20, 40, 10);
        let a = data(m * k, 4);
        let b = data(k * n, 5);
        let pa = PackedA::new(&a, m, k, k);
        let mut c = vec![1.0f32; m * n];
        let seen = std::sync::atomic::AtomicUsize::new(0);
        gemm(
            &pa,
            &RowMajor { data: &b, ld: n },
            n,
            &mut c,
            n,
            TileOps {
                bias: None,
                accumulate: true,
                clamp: None,
            },
            &|_, _, rows| {
                let cnt: usize = rows.iter().map(|r| r.len()).sum();
                seen.fetch_add(cnt, std::sync::atomic::Ordering::Relaxed);
            },
            false,
        );
        assert_eq!(seen.into_inner(), m * n);
        let want = naive(&a, &b, m, n, k);
        for (g, w) in c.iter().zip(&want) {
            assert!((f64::from(*g) - (w + 1.0)).abs() < 1e-5);
        }
    }
}
