//! k-means for palettization.
//!
//! **Scalar (1-D)**: optimal clustering by dynamic programming over the *distinct* values
//! weighted by their multiplicity. Clusters of an optimal 1-D k-means solution are
//! contiguous runs of the sorted values, so `D[m][i] = min_j D[m−1][j−1] + cost(j, i)`
//! over sorted distinct values gives the global optimum (what coremltools' `kmeans1d` path
//! computes, Grønlund et al. 2017). An fp16 weight has at most 65,536 distinct values, so
//! the problem size is bounded by the histogram, not by the weight's size. The row minima
//! of each layer are monotone (the cost is Monge), so each layer is solved by divide and
//! conquer in O(n log n). Costs come from prefix sums of the centred values.
//!
//! For more than a few clusters the layered DP (k layers) is replaced by its Lagrangian
//! relaxation ([`penalized_starts`]): a partition that minimises `cost + λ·(number of
//! clusters)` over *all* partitions and has exactly `k` clusters is an optimal k-partition
//! (for any other k-partition P: cost(P*) + λk ≤ cost(P) + λk). Such a λ exists because the
//! optimal cost is convex in k for Monge costs (Aggarwal, Schieber, Tokuyama 1994; the
//! "WQS"/"Aliens" technique; Grønlund et al. 2017 use it for 1-D k-means). One penalized
//! problem is a single least-weight-subsequence DP, solved in about 5–10 cost evaluations
//! per value with a queue of candidates (each owns an interval of rows; Monge makes a later
//! candidate win on a suffix of rows, found by galloping from its predecessor's start). λ is
//! found in a few solves from a high-resolution-quantization estimate refined by the observed
//! count. If no λ within the search gives exactly `k` (ties), the layered DP runs instead, so
//! the result is always the exact optimum.
//!
//! **Vector** (`cluster_dim > 1`): k-means++ seeding and Lloyd iterations (as scikit-learn,
//! which coremltools uses there), with a few seeded restarts keeping the best.

/// The clustering of distinct sorted values.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering1d {
    /// Cluster centres in increasing order (weighted means of their members).
    pub centroids: Vec<f64>,
    /// For each input value, the index of its cluster.
    pub assignment: Vec<u32>,
}

/// Above this many DP cells (distinct values × clusters), the distinct values are first
/// merged into fewer weighted atoms (see [`cluster_1d`]). Every fp16 problem fits:
/// 65,536 × 256 = 2²⁴.
pub const MAX_DP_CELLS: usize = 1 << 24;

/// Smallest `k` solved through the Lagrangian relaxation (below it the layered DP has at
/// most a few layers).
const PENALIZED_MIN_K: usize = 4;

/// Smallest number of distinct values solved through the Lagrangian relaxation.
const PENALIZED_MIN_N: usize = 256;

/// Penalized solves before giving up on finding a λ with exactly `k` clusters.
const MAX_SOLVES: usize = 64;

/// Optimal weighted 1-D k-means. `values` must be sorted and distinct, `weights` positive,
/// same length; `k ≥ 1`. At most `k` clusters are returned (fewer when there are fewer
/// distinct values).
///
/// Solved through the Lagrangian relaxation ([`penalized_starts`]) when it applies, else by
/// the layered DP. When the relaxation finds no λ and `values.len() × k` exceeds
/// [`MAX_DP_CELLS`] (only possible for fp32 weights), runs of neighbouring values are merged
/// into `MAX_DP_CELLS / k` atoms, the DP is solved exactly on the atoms, and Lloyd
/// iterations on the full data refine the result.
pub fn cluster_1d(values: &[f64], weights: &[f64], k: usize) -> Clustering1d {
    let n = values.len().min(weights.len());
    if n == 0 || k == 0 {
        return Clustering1d {
            centroids: Vec::new(),
            assignment: Vec::new(),
        };
    }
    let k = k.min(n);
    if k == n {
        return Clustering1d {
            centroids: values[..n].to_vec(),
            assignment: (0..n as u32).collect(),
        };
    }
    if k >= PENALIZED_MIN_K
        && n >= PENALIZED_MIN_N
        && let Some(starts) = penalized_starts(&values[..n], &weights[..n], k)
    {
        return from_starts(&values[..n], &weights[..n], &starts);
    }
    if n.saturating_mul(k) <= MAX_DP_CELLS {
        let starts = optimal_starts(&values[..n], &weights[..n], k);
        return from_starts(&values[..n], &weights[..n], &starts);
    }
    // Coarsen: atoms of about equal weight, DP on the atoms, then Lloyd on all values.
    let atoms = (MAX_DP_CELLS / k).max(k);
    let total: f64 = weights[..n].iter().sum();
    let per_atom = total / atoms as f64;
    let mut atom_of = Vec::with_capacity(n);
    let (mut av, mut aw) = (Vec::new(), Vec::new());
    let (mut sw, mut swx, mut acc) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        sw += weights[i];
        swx += weights[i] * values[i];
        acc += weights[i];
        atom_of.push(av.len() as u32);
        if acc >= per_atom * (av.len() + 1) as f64 || i + 1 == n {
            av.push(swx / sw);
            aw.push(sw);
            sw = 0.0;
            swx = 0.0;
        }
    }
    let starts = optimal_starts(&av, &aw, k.min(av.len()));
    let coarse = from_starts(&av, &aw, &starts);
    let mut centroids = coarse.centroids;
    lloyd_1d(&values[..n], &weights[..n], &mut centroids, 100);
    let assignment = nearest_sorted(&values[..n], &centroids);
    Clustering1d {
        centroids,
        assignment,
    }
}

/// Lloyd iterations on sorted 1-D data with sorted centroids.
fn lloyd_1d(values: &[f64], weights: &[f64], centroids: &mut [f64], max_iter: usize) {
    for _ in 0..max_iter {
        let assign = nearest_sorted(values, centroids);
        let k = centroids.len();
        let mut sw = vec![0f64; k];
        let mut swx = vec![0f64; k];
        for ((&v, &w), &a) in values.iter().zip(weights).zip(&assign) {
            sw[a as usize] += w;
            swx[a as usize] += w * v;
        }
        let mut changed = false;
        for c in 0..k {
            if sw[c] > 0.0 {
                let m = swx[c] / sw[c];
                if m != centroids[c] {
                    changed = true;
                    centroids[c] = m;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// For sorted `values` and sorted `centroids`, the index of the nearest centroid of each
/// value (ties to the lower index).
pub fn nearest_sorted(values: &[f64], centroids: &[f64]) -> Vec<u32> {
    let mut out = Vec::with_capacity(values.len());
    let mut c = 0usize;
    for &v in values {
        while c + 1 < centroids.len() && (centroids[c + 1] - v).abs() < (v - centroids[c]).abs() {
            c += 1;
        }
        out.push(c as u32);
    }
    out
}

fn from_starts(values: &[f64], weights: &[f64], starts: &[usize]) -> Clustering1d {
    let n = values.len();
    let mut centroids = Vec::with_capacity(starts.len());
    let mut assignment = vec![0u32; n];
    for (c, &s) in starts.iter().enumerate() {
        let e = starts.get(c + 1).copied().unwrap_or(n);
        let (mut sw, mut swx) = (0.0f64, 0.0f64);
        for i in s..e {
            sw += weights[i];
            swx += weights[i] * values[i];
            assignment[i] = c as u32;
        }
        centroids.push(if sw > 0.0 { swx / sw } else { values[s] });
    }
    Clustering1d {
        centroids,
        assignment,
    }
}

/// Prefix sums for O(1) cluster costs.
struct Prefix {
    w: Vec<f64>,
    s: Vec<f64>,
    q: Vec<f64>,
}

impl Prefix {
    fn new(values: &[f64], weights: &[f64]) -> Self {
        let n = values.len();
        let total: f64 = weights.iter().sum();
        let mean = if total > 0.0 {
            values.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>() / total
        } else {
            0.0
        };
        let (mut w, mut s, mut q) = (
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
            Vec::with_capacity(n + 1),
        );
        w.push(0.0);
        s.push(0.0);
        q.push(0.0);
        for i in 0..n {
            let x = values[i] - mean;
            let c = weights[i];
            w.push(w[i] + c);
            s.push(s[i] + c * x);
            q.push(q[i] + c * x * x);
        }
        Self { w, s, q }
    }

    /// Sum of squared deviations of elements `j..=i` from their mean.
    #[inline]
    fn cost(&self, j: usize, i: usize) -> f64 {
        let w = self.w[i + 1] - self.w[j];
        let s = self.s[i + 1] - self.s[j];
        let c = self.q[i + 1] - self.q[j] - s * s / w;
        c.max(0.0)
    }
}

/// Start index of each of the `k` clusters of the optimal partition.
fn optimal_starts(values: &[f64], weights: &[f64], k: usize) -> Vec<usize> {
    let n = values.len();
    let p = Prefix::new(values, weights);
    // prev[i]: optimal cost of x[0..=i] in m clusters.
    let mut prev: Vec<f64> = (0..n).map(|i| p.cost(0, i)).collect();
    let mut cur = vec![f64::INFINITY; n];
    // arg[m][i] (m ≥ 1): start of the last cluster in the optimum for x[0..=i], m+1 clusters.
    let mut arg: Vec<Vec<u32>> = Vec::with_capacity(k.saturating_sub(1));
    for m in 1..k {
        let mut a = vec![0u32; n];
        cur.iter_mut().for_each(|c| *c = f64::INFINITY);
        // Rows i in m..n; the last cluster starts at j in m..=i. Row minima are monotone
        // in i (the cost is Monge) and never left of the previous layer's (more clusters
        // end later): divide and conquer within those bounds.
        let base: Vec<f64> = (0..n)
            .map(|j| {
                if j == 0 {
                    f64::INFINITY
                } else {
                    prev[j - 1] - p.q[j]
                }
            })
            .collect();
        let lower: &[u32] = arg.last().map_or(&[], |v| v.as_slice());
        let layer = Layer {
            p: &p,
            base: &base,
            lower,
        };
        layer.solve(&mut cur, &mut a, m, n - 1, m, n - 1);
        arg.push(a);
        std::mem::swap(&mut prev, &mut cur);
    }
    // Backtrack.
    let mut starts = vec![0usize; k];
    let mut i = n - 1;
    for m in (1..k).rev() {
        let j = arg[m - 1][i] as usize;
        starts[m] = j;
        i = j.saturating_sub(1);
    }
    starts
}

/// The exact optimal `k`-partition of sorted distinct `values` (weights positive) through
/// the Lagrangian relaxation (see the module documentation): start indices of the `k`
/// clusters, or `None` when no λ was found that gives exactly `k` clusters (the caller then
/// runs the layered DP). Needs `2 ≤ k < values.len()`.
pub fn penalized_starts(values: &[f64], weights: &[f64], k: usize) -> Option<Vec<usize>> {
    let n = values.len().min(weights.len());
    if k < 2 || k >= n {
        return None;
    }
    let p = Prefix::new(&values[..n], &weights[..n]);
    let total = p.cost(0, n - 1);
    if !(total > 0.0 && total.is_finite()) {
        return None;
    }
    let kf = k as f64;
    // High-resolution quantization: OPT_k ≈ C/k², so the slope λ = OPT_(k−1) − OPT_k ≈
    // 2·OPT_k/k; for a Gaussian OPT_k ≈ 2.72·OPT_1/k².
    let mut lam = 5.44 * total / (kf * kf * kf);
    let (mut lo, mut hi) = (0.0f64, f64::INFINITY);
    let mut last: Option<(f64, usize)> = None;
    let mut solver = Penalized::new(n);
    for _ in 0..MAX_SOLVES {
        let c = solver.solve(&p, lam);
        if c == k {
            return Some(solver.starts(n));
        }
        if c > k {
            lo = lo.max(lam);
        } else {
            hi = hi.min(lam);
        }
        if lo > 0.0 && hi.is_finite() && hi <= lo * (1.0 + 1e-12) {
            return None;
        }
        // The count falls like a power of λ (−1/3 asymptotically); estimate the exponent
        // from the last two solves and aim at k, staying inside the bracket.
        let alpha = match last {
            Some((l0, c0)) if c0 != c && l0 != lam && c0 > 0 && c > 0 => {
                ((c as f64).ln() - (c0 as f64).ln()) / (lam.ln() - l0.ln())
            }
            _ => -1.0 / 3.0,
        };
        let alpha = if (-20.0..-0.05).contains(&alpha) {
            alpha
        } else {
            -1.0 / 3.0
        };
        last = Some((lam, c));
        let ratio = if c > 0 { kf / c as f64 } else { 0.5 };
        let mut next = lam * (ratio.ln() / alpha).exp().clamp(1.0 / 64.0, 64.0);
        if !(next > lo && next < hi) {
            next = if lo > 0.0 && hi.is_finite() {
                (lo * hi).sqrt()
            } else if c > k {
                lam * 4.0
            } else {
                lam / 4.0
            };
        }
        if !(next.is_finite() && next > 0.0) {
            return None;
        }
        lam = next;
    }
    None
}

/// The penalized problem `F[t] = min_{u<t} F[u] + cost(x[u..t]) + λ` (prefix lengths t),
/// with reusable buffers.
struct Penalized {
    /// F[u] − q[u] for every prefix length u (the part of a candidate's value that does not
    /// depend on the row).
    b: Vec<f64>,
    /// Clusters of the optimum of each prefix.
    count: Vec<u32>,
    /// Start of the last cluster of the optimum of each prefix.
    arg: Vec<u32>,
    /// Candidates (start u, first row it is best for), oldest first from `head`.
    queue: Vec<(u32, u32)>,
}

impl Penalized {
    fn new(n: usize) -> Self {
        Self {
            b: vec![0.0; n + 1],
            count: vec![0; n + 1],
            arg: vec![0; n + 1],
            queue: Vec::with_capacity(n + 1),
        }
    }

    /// Solve for `lambda`; returns the number of clusters of the optimum of all values.
    fn solve(&mut self, p: &Prefix, lambda: f64) -> usize {
        let n = p.w.len() - 1;
        let (w, s) = (&p.w, &p.s);
        // Value of candidate u at row t, less q[t] (common to all candidates of a row).
        #[inline(always)]
        fn g(b: &[f64], w: &[f64], s: &[f64], u: usize, t: usize) -> f64 {
            let d = s[t] - s[u];
            b[u] - d * d / (w[t] - w[u])
        }
        self.b[0] = 0.0;
        self.count[0] = 0;
        self.queue.clear();
        self.queue.push((0, 1));
        let mut head = 0usize;
        for t in 1..=n {
            while head + 1 < self.queue.len() && self.queue[head + 1].1 as usize <= t {
                head += 1;
            }
            let u = self.queue[head].0 as usize;
            // F[t] − q[t]: the row's q[t] cancels.
            self.b[t] = g(&self.b, w, s, u, t) + lambda;
            self.count[t] = self.count[u] + 1;
            self.arg[t] = u as u32;
            if t == n {
                break;
            }
            // Candidate t for rows after t: drop the candidates it beats on their whole
            // interval, then find where it overtakes the last one (a monotone predicate).
            let b = &self.b;
            let beats = |v: usize, r: usize| g(b, w, s, t, r) < g(b, w, s, v, r);
            loop {
                if self.queue.len() == head {
                    self.queue.push((t as u32, t as u32 + 1));
                    break;
                }
                let (v, vs) = self.queue[self.queue.len() - 1];
                let (v, first) = (v as usize, (vs as usize).max(t + 1));
                if beats(v, first) {
                    self.queue.pop();
                    continue;
                }
                // Gallop from `first` (where t loses), then bisect.
                let mut lose = first;
                let mut step = 1usize;
                let win = loop {
                    let c = lose + step;
                    if c >= n {
                        break beats(v, n).then_some(n);
                    }
                    if beats(v, c) {
                        break Some(c);
                    }
                    lose = c;
                    step *= 2;
                };
                if let Some(mut win) = win {
                    while win - lose > 1 {
                        let mid = lose + (win - lose) / 2;
                        if beats(v, mid) {
                            win = mid;
                        } else {
                            lose = mid;
                        }
                    }
                    self.queue.push((t as u32, win as u32));
                }
                break;
            }
        }
        self.count[n] as usize
    }

    /// Start indices of the clusters of the last solve's optimum.
    fn starts(&self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.count[n] as usize);
        let mut t = n;
        while t > 0 {
            let u = self.arg[t] as usize;
            out.push(u);
            t = u;
        }
        out.reverse();
        out
    }
}

/// One DP layer: `f(i, j) = base[j] + q[i+1] − (s[i+1] − s[j])² / (w[i+1] − w[j])`, where
/// `base[j] = prev[j−1] − q[j]`.
struct Layer<'a> {
    p: &'a Prefix,
    base: &'a [f64],
    /// The previous layer's argmins (a lower bound per row), empty for the first layer.
    lower: &'a [u32],
}

#[cfg(test)]
static EVALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Layer<'_> {
    /// The best start for row `i` among `lb..=top` (rightmost on ties): `(value, j)`.
    #[inline]
    fn row_min(&self, i: usize, lb: usize, top: usize) -> (f64, usize) {
        let p = self.p;
        let (qi, si, wi) = (p.q[i + 1], p.s[i + 1], p.w[i + 1]);
        let (mut best, mut best_j) = (f64::INFINITY, top);
        if lb > top {
            return (best, best_j);
        }
        // Scan j downwards from `top`. `v(j) < best` is tested without a division:
        // (base[j] + q − best)·Δw < d² (Δw > 0). The last cluster's cost only grows as j
        // falls and prev[j−1] ≥ prev[lb−1], so once cost(j, i) ≥ best − prev[lb−1] no
        // smaller j can win.
        let pmin = self.base[lb] + p.q[lb];
        #[cfg(test)]
        EVALS.fetch_add((top + 1 - lb) as u64, std::sync::atomic::Ordering::Relaxed);
        for j in (lb..=top).rev() {
            let d = si - p.s[j];
            let dw = wi - p.w[j];
            let d2 = d * d;
            if (self.base[j] + qi - best) * dw < d2 {
                best = self.base[j] + qi - d2 / dw;
                best_j = j;
            } else if (qi - p.q[j] - (best - pmin)) * dw >= d2 {
                break;
            }
        }
        (best, best_j)
    }

    /// Rows `lo..=hi` with their argmins in `jlo..=jhi`: monotone row minima found level by
    /// level (divide and conquer without recursion): at stride `s` the rows between two
    /// solved rows take those rows' argmins as bounds.
    fn solve(
        &self,
        cur: &mut [f64],
        arg: &mut [u32],
        lo: usize,
        hi: usize,
        jlo: usize,
        jhi: usize,
    ) {
        if lo > hi {
            return;
        }
        let rows = hi - lo + 1;
        let mut s = 1usize;
        while s * 2 <= rows {
            s *= 2;
        }
        loop {
            let mut t = s - 1;
            while t < rows {
                let i = lo + t;
                let left = if t >= s { arg[i - s] as usize } else { jlo };
                let right = if t + s < rows {
                    arg[i + s] as usize
                } else {
                    jhi
                };
                let lb = self.lower.get(i).map_or(left, |&l| (l as usize).max(left));
                let (v, j) = self.row_min(i, lb, right.min(i));
                cur[i] = v;
                arg[i] = j as u32;
                t += 2 * s;
            }
            if s == 1 {
                break;
            }
            s /= 2;
        }
    }
}

/// Row minima (leftmost) of the totally monotone matrix `f` restricted to `rows` × `cols`
/// (both increasing), written to `result[row]` (SMAWK: Aggarwal, Klawe, Moran, Shor,
/// Wilber 1987). Kept as a reference for tests: slower here than bounded divide and conquer.
#[cfg(test)]
fn smawk(rows: &[usize], cols: &[usize], f: &impl Fn(usize, usize) -> f64, result: &mut [usize]) {
    if rows.is_empty() {
        return;
    }
    // REDUCE: keep at most |rows| columns that can hold a row minimum. `vals[s]` caches
    // f(rows[s], stack[s]).
    let mut stack: Vec<usize> = Vec::with_capacity(rows.len());
    let mut vals: Vec<f64> = Vec::with_capacity(rows.len());
    for &c in cols {
        loop {
            let s = stack.len();
            if s == 0 {
                break;
            }
            if f(rows[s - 1], c) < vals[s - 1] {
                stack.pop();
                vals.pop();
            } else {
                break;
            }
        }
        if stack.len() < rows.len() {
            vals.push(f(rows[stack.len()], c));
            stack.push(c);
        }
    }
    // Recurse on the odd rows.
    let odd: Vec<usize> = rows.iter().skip(1).step_by(2).copied().collect();
    smawk(&odd, &stack, f, result);
    // INTERPOLATE the even rows between their neighbours' minima.
    let mut start = 0usize;
    let mut r = 0usize;
    while r < rows.len() {
        let row = rows[r];
        let stop = if r + 1 < rows.len() {
            let target = result[rows[r + 1]];
            let mut p = start;
            while p + 1 < stack.len() && stack[p] != target {
                p += 1;
            }
            p
        } else {
            stack.len() - 1
        };
        let mut best = stack[start];
        let mut bv = f(row, best);
        for &c in &stack[start + 1..=stop] {
            let v = f(row, c);
            if v < bv {
                bv = v;
                best = c;
            }
        }
        result[row] = best;
        start = stop;
        r += 2;
    }
}

/// Sum of squared errors of a 1-D clustering (for tests and reports).
pub fn sse_1d(values: &[f64], weights: &[f64], centroids: &[f64], assignment: &[u32]) -> f64 {
    values
        .iter()
        .zip(weights)
        .zip(assignment)
        .map(|((&v, &w), &a)| {
            let d = v - centroids.get(a as usize).copied().unwrap_or(0.0);
            w * d * d
        })
        .sum()
}

/// A small deterministic generator (splitmix64) for k-means++ seeding.
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The result of vector k-means.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringNd {
    /// `k × dim` centroids, row-major.
    pub centroids: Vec<f64>,
    /// Cluster of each sample.
    pub assignment: Vec<u32>,
    /// Sum of squared distances.
    pub inertia: f64,
}

/// k-means of `samples` (`n × dim`, row-major) into at most `k` clusters: k-means++ seeding
/// and Lloyd iterations until the centroids move less than `tol` × the data variance
/// (scikit-learn's rule, tol = 1e-4 here, stricter than coremltools' 1e-2); the best of
/// `restarts` seeded runs.
pub fn cluster_nd(samples: &[f64], dim: usize, k: usize, restarts: usize) -> ClusteringNd {
    let n = samples.len().checked_div(dim).unwrap_or(0);
    if n == 0 || k == 0 {
        return ClusteringNd {
            centroids: Vec::new(),
            assignment: Vec::new(),
            inertia: 0.0,
        };
    }
    let k = k.min(n);
    let mean: Vec<f64> = (0..dim)
        .map(|d| (0..n).map(|i| samples[i * dim + d]).sum::<f64>() / n as f64)
        .collect();
    let variance: f64 = (0..n)
        .map(|i| {
            (0..dim)
                .map(|d| (samples[i * dim + d] - mean[d]).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / (n * dim) as f64;
    let tol = 1e-4 * variance;
    let mut best: Option<ClusteringNd> = None;
    for r in 0..restarts.max(1) {
        let mut rng = SplitMix::new(0x5eed_0000 + r as u64);
        let mut centroids = kmeans_pp(samples, dim, n, k, &mut rng);
        let mut assignment = vec![0u32; n];
        let mut inertia = 0.0;
        for _ in 0..300 {
            inertia = assign_nd(samples, dim, &centroids, &mut assignment);
            let mut sums = vec![0f64; k * dim];
            let mut counts = vec![0usize; k];
            for i in 0..n {
                let c = assignment[i] as usize;
                counts[c] += 1;
                for d in 0..dim {
                    sums[c * dim + d] += samples[i * dim + d];
                }
            }
            let mut shift = 0.0;
            for c in 0..k {
                if counts[c] == 0 {
                    continue;
                }
                for d in 0..dim {
                    let m = sums[c * dim + d] / counts[c] as f64;
                    shift += (m - centroids[c * dim + d]).powi(2);
                    centroids[c * dim + d] = m;
                }
            }
            if shift <= tol {
                inertia = assign_nd(samples, dim, &centroids, &mut assignment);
                break;
            }
        }
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(ClusteringNd {
                centroids,
                assignment,
                inertia,
            });
        }
    }
    best.unwrap_or(ClusteringNd {
        centroids: Vec::new(),
        assignment: Vec::new(),
        inertia: 0.0,
    })
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Assign each sample to its nearest centroid; returns the inertia.
pub(crate) fn assign_nd(samples: &[f64], dim: usize, centroids: &[f64], out: &mut [u32]) -> f64 {
    let k = centroids.len() / dim.max(1);
    let mut inertia = 0.0;
    for (i, o) in out.iter_mut().enumerate() {
        let s = &samples[i * dim..(i + 1) * dim];
        let (mut bd, mut bc) = (f64::INFINITY, 0usize);
        for c in 0..k {
            let d = dist2(s, &centroids[c * dim..(c + 1) * dim]);
            if d < bd {
                bd = d;
                bc = c;
            }
        }
        *o = bc as u32;
        inertia += bd;
    }
    inertia
}

fn kmeans_pp(samples: &[f64], dim: usize, n: usize, k: usize, rng: &mut SplitMix) -> Vec<f64> {
    let mut centroids = Vec::with_capacity(k * dim);
    let first = (rng.next_u64() % n as u64) as usize;
    centroids.extend_from_slice(&samples[first * dim..(first + 1) * dim]);
    let mut d2: Vec<f64> = (0..n)
        .map(|i| dist2(&samples[i * dim..(i + 1) * dim], &centroids[..dim]))
        .collect();
    while centroids.len() < k * dim {
        let total: f64 = d2.iter().sum();
        let pick = if total <= 0.0 {
            (rng.next_u64() % n as u64) as usize
        } else {
            let mut t = rng.next_f64() * total;
            let mut idx = n - 1;
            for (i, &d) in d2.iter().enumerate() {
                if t < d {
                    idx = i;
                    break;
                }
                t -= d;
            }
            idx
        };
        let c0 = centroids.len();
        centroids.extend_from_slice(&samples[pick * dim..(pick + 1) * dim]);
        for (i, d) in d2.iter_mut().enumerate() {
            let nd = dist2(&samples[i * dim..(i + 1) * dim], &centroids[c0..c0 + dim]);
            if nd < *d {
                *d = nd;
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: every way to cut n sorted values into k runs.
    fn brute(values: &[f64], weights: &[f64], k: usize) -> f64 {
        fn rec(v: &[f64], w: &[f64], start: usize, k: usize) -> f64 {
            let n = v.len();
            if k == 1 {
                let sw: f64 = w[start..].iter().sum();
                let m: f64 = v[start..]
                    .iter()
                    .zip(&w[start..])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / sw;
                return v[start..]
                    .iter()
                    .zip(&w[start..])
                    .map(|(a, b)| b * (a - m).powi(2))
                    .sum();
            }
            let mut best = f64::INFINITY;
            for end in start + 1..=n - (k - 1) {
                let sw: f64 = w[start..end].iter().sum();
                let m: f64 = v[start..end]
                    .iter()
                    .zip(&w[start..end])
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    / sw;
                let c: f64 = v[start..end]
                    .iter()
                    .zip(&w[start..end])
                    .map(|(a, b)| b * (a - m).powi(2))
                    .sum();
                best = best.min(c + rec(v, w, end, k - 1));
            }
            best
        }
        rec(values, weights, 0, k)
    }

    #[test]
    fn dp_matches_brute_force() {
        let mut rng = SplitMix::new(7);
        for trial in 0..40 {
            let n = 3 + trial % 9;
            let mut v: Vec<f64> = (0..n).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            let w: Vec<f64> = (0..v.len())
                .map(|_| 1.0 + (rng.next_u64() % 5) as f64)
                .collect();
            for k in 1..=v.len().min(5) {
                let c = cluster_1d(&v, &w, k);
                let got = sse_1d(&v, &w, &c.centroids, &c.assignment);
                let want = brute(&v, &w, k);
                assert!(
                    (got - want).abs() <= 1e-9 * (1.0 + want),
                    "n={} k={k}: {got} vs {want}",
                    v.len()
                );
            }
        }
    }

    /// The same DP with SMAWK and no cross-layer bound.
    fn reference_cost(values: &[f64], weights: &[f64], k: usize) -> f64 {
        let n = values.len();
        let p = Prefix::new(values, weights);
        let mut prev: Vec<f64> = (0..n).map(|i| p.cost(0, i)).collect();
        for m in 1..k {
            let f = |i: usize, j: usize| {
                if j > i {
                    f64::INFINITY
                } else {
                    prev[j - 1] + p.cost(j, i)
                }
            };
            let rows: Vec<usize> = (m..n).collect();
            let mut result = vec![0usize; n];
            smawk(&rows, &rows, &f, &mut result);
            let mut cur = vec![f64::INFINITY; n];
            for i in m..n {
                cur[i] = f(i, result[i]);
            }
            prev = cur;
        }
        prev[n - 1]
    }

    #[test]
    fn bounded_divide_and_conquer_matches_smawk() {
        let mut rng = SplitMix::new(11);
        for trial in 0..20 {
            let n = 200 + 37 * trial;
            let mut v: Vec<f64> = (0..n)
                .map(|_| ((0..6).map(|_| rng.next_f64()).sum::<f64>() - 3.0) * (1.0 + trial as f64))
                .collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            let w: Vec<f64> = (0..v.len())
                .map(|_| 1.0 + (rng.next_u64() % 7) as f64)
                .collect();
            for k in [2, 3, 5, 16, 40] {
                let c = cluster_1d(&v, &w, k);
                let got = sse_1d(&v, &w, &c.centroids, &c.assignment);
                let want = reference_cost(&v, &w, k);
                assert!(
                    (got - want).abs() <= 1e-9 * (1.0 + want),
                    "n={n} k={k}: {got} vs {want}"
                );
            }
        }
    }

    fn cost_of(values: &[f64], weights: &[f64], starts: &[usize]) -> f64 {
        let c = from_starts(values, weights, starts);
        sse_1d(values, weights, &c.centroids, &c.assignment)
    }

    /// Sorted distinct fp16 values with counts, drawn by `draw`.
    fn fp16_histogram(n: usize, draw: &mut impl FnMut() -> f64) -> (Vec<f64>, Vec<f64>) {
        let mut v: Vec<f64> = (0..n)
            .map(|_| half::f16::from_f64(draw()).to_f64() + 0.0)
            .collect();
        v.sort_by(f64::total_cmp);
        let (mut vals, mut w): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        for x in v {
            if vals.last() == Some(&x) {
                if let Some(c) = w.last_mut() {
                    *c += 1.0;
                }
            } else {
                vals.push(x);
                w.push(1.0);
            }
        }
        (vals, w)
    }

    #[test]
    fn penalized_matches_brute_force_on_small_inputs() {
        let mut rng = SplitMix::new(3);
        let mut solved = 0;
        for trial in 0..60 {
            let n = 5 + trial % 8;
            let mut v: Vec<f64> = (0..n).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            let w: Vec<f64> = (0..v.len())
                .map(|_| 1.0 + (rng.next_u64() % 5) as f64)
                .collect();
            for k in 2..v.len().min(6) {
                if let Some(st) = penalized_starts(&v, &w, k) {
                    assert_eq!(st.len(), k);
                    let got = cost_of(&v, &w, &st);
                    let want = brute(&v, &w, k);
                    assert!((got - want).abs() <= 1e-9 * (1.0 + want), "{got} vs {want}");
                    solved += 1;
                }
            }
        }
        assert!(solved > 100, "{solved}");
    }

    /// The Lagrangian relaxation gives the layered DP's optimum on weight-like data of
    /// several shapes (and says so when it cannot).
    #[test]
    fn penalized_matches_layered_dp() {
        let mut rng = SplitMix::new(5);
        let gauss = |r: &mut SplitMix| (0..12).map(|_| r.next_f64()).sum::<f64>() - 6.0;
        let mut fallbacks = 0;
        let mut total = 0;
        for shape in 0..6 {
            for &(n_el, k) in &[
                (3000usize, 4usize),
                (4000, 8),
                (16384, 16),
                (6000, 64),
                (20000, 256),
            ] {
                let mut draw = || -> f64 {
                    match shape {
                        0 => gauss(&mut rng) * 0.02,
                        1 => {
                            let u = rng.next_f64() - 0.5;
                            -0.03 * u.signum() * (1.0 - 2.0 * u.abs()).max(1e-12).ln()
                        }
                        2 => rng.next_f64() * 2.0 - 1.0,
                        3 => {
                            gauss(&mut rng) * 0.01
                                + if rng.next_u64().is_multiple_of(2) {
                                    -0.3
                                } else {
                                    0.3
                                }
                        }
                        // Half zeros (a pruned weight).
                        4 => {
                            if rng.next_u64().is_multiple_of(2) {
                                0.0
                            } else {
                                gauss(&mut rng) * 0.05
                            }
                        }
                        // Few distinct values with heavy ties.
                        _ => (gauss(&mut rng) * 3.0).round() * 0.125,
                    }
                };
                let (v, w) = fp16_histogram(n_el, &mut draw);
                if k >= v.len() {
                    continue;
                }
                let want = cost_of(&v, &w, &optimal_starts(&v, &w, k));
                total += 1;
                match penalized_starts(&v, &w, k) {
                    Some(st) => {
                        assert_eq!(st.len(), k);
                        let got = cost_of(&v, &w, &st);
                        assert!(
                            got <= want * (1.0 + 1e-9) + 1e-300,
                            "shape {shape} n {} k {k}: {got} vs {want}",
                            v.len()
                        );
                    }
                    None => fallbacks += 1,
                }
                // The public entry point is exact either way.
                let c = cluster_1d(&v, &w, k);
                let got = sse_1d(&v, &w, &c.centroids, &c.assignment);
                assert!(got <= want * (1.0 + 1e-9) + 1e-300);
            }
        }
        assert!(fallbacks * 5 <= total, "{fallbacks} of {total} fell back");
    }

    #[test]
    fn nearest_sorted_ties_go_low() {
        assert_eq!(
            nearest_sorted(&[0.0, 0.5, 0.6, 2.0], &[0.0, 1.0]),
            vec![0, 0, 1, 1]
        );
    }

    #[test]
    fn vector_kmeans_separates_obvious_clusters() {
        let mut s = Vec::new();
        for i in 0..50 {
            let j = (i % 5) as f64 * 0.01;
            s.extend_from_slice(&[j, j]);
            s.extend_from_slice(&[10.0 + j, -10.0 - j]);
        }
        let c = cluster_nd(&s, 2, 2, 2);
        assert!(c.inertia < 0.1);
        assert_ne!(c.assignment[0], c.assignment[1]);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[test]
    #[ignore = "timing, run with --release --ignored --nocapture"]
    fn dp_timing() {
        let mut rng = SplitMix::new(1);
        for n_el in [16384usize, 65536] {
            let mut v: Vec<f32> = (0..n_el)
                .map(|_| {
                    let u: f64 = (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0;
                    half::f16::from_f64(u * 0.02).to_f32()
                })
                .collect();
            v.sort_by(f32::total_cmp);
            let mut vals: Vec<f64> = Vec::new();
            let mut w: Vec<f64> = Vec::new();
            for x in v {
                if vals.last() == Some(&f64::from(x)) {
                    *w.last_mut().unwrap() += 1.0;
                } else {
                    vals.push(f64::from(x));
                    w.push(1.0);
                }
            }
            for k in [16usize, 256] {
                let mut best = std::time::Duration::MAX;
                let mut c = cluster_1d(&vals, &w, k);
                for _ in 0..5 {
                    let t = std::time::Instant::now();
                    c = cluster_1d(&vals, &w, k);
                    best = best.min(t.elapsed());
                }
                let mut dp = std::time::Duration::MAX;
                for _ in 0..3 {
                    let t = std::time::Instant::now();
                    optimal_starts(&vals, &w, k);
                    dp = dp.min(t.elapsed());
                }
                eprintln!("layered DP alone: {dp:?}");
                EVALS.store(0, std::sync::atomic::Ordering::Relaxed);
                cluster_1d(&vals, &w, k);
                eprintln!(
                    "{n_el} elements, {} distinct, k {k}: {best:?} ({} clusters, {} evals)",
                    vals.len(),
                    c.centroids.len(),
                    EVALS.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
    }
}
