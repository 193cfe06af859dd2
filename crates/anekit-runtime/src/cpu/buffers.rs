//! Recycled f32 buffers for op outputs.
//!
//! A kernel's output used to be a fresh `vec![0.0; n]`. For the megabyte-sized activations
//! of a convolution network that is not free: the allocator hands back memory an earlier op
//! freed, and `calloc` must zero it — one serial pass over the whole output (megabytes per
//! convolution layer), on the thread that runs the plan, before the parallel kernel
//! starts; `perf` showed `memset` among the top symbols of a MobileNetV2 prediction. The
//! executor instead hands the buffers of dead
//! values back here ([`recycle`]), and kernels whose output is written in full take one
//! back ([`take`]) with its old contents, skipping the zeroing; the memory is also still
//! in cache.
//!
//! One pool serves the process (a lock per take and per recycle, uncontended in practice:
//! the executor takes and recycles between kernels). It holds only buffers of at least
//! [`MIN_LEN`] floats (the allocator is cheap below), and at most as many bytes as the
//! largest activation peak of a loaded model (each model holds a [`Grant`] of its peak: the
//! plan's, raised to a prediction's measured one), oldest buffers dropped first: a
//! prediction holds its live values plus at most one peak's worth of pooled buffers, and
//! when a model is dropped the pool shrinks to the largest peak of those still loaded.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use ndarray::ArrayD;

use super::value::Value;

/// Buffers shorter than this (in floats, 64 KiB) are left to the allocator.
pub const MIN_LEN: usize = 16 * 1024;

/// The most buffers a pool holds.
const MAX_BUFFERS: usize = 256;

/// A pool of f32 buffers (see the module docs); [`take`] and [`recycle`] use the
/// process-wide one.
pub struct BufferPool {
    inner: Mutex<Inner>,
}

struct Inner {
    /// Oldest first.
    free: VecDeque<Vec<f32>>,
    bytes: usize,
    /// The limit without grants.
    base: usize,
    /// Live grants: (id, bytes).
    grants: Vec<(u64, usize)>,
    next_id: u64,
}

impl Inner {
    fn max_bytes(&self) -> usize {
        self.grants.iter().map(|g| g.1).fold(self.base, usize::max)
    }

    /// Drop the oldest buffers until the pool is within its limits; returns them (to be
    /// freed outside the lock).
    fn shrink(&mut self) -> Vec<Vec<f32>> {
        let max = self.max_bytes();
        let mut evicted = Vec::new();
        while self.bytes > max || self.free.len() > MAX_BUFFERS {
            let Some(old) = self.free.pop_front() else {
                break;
            };
            self.bytes -= old.capacity() * 4;
            evicted.push(old);
        }
        evicted
    }
}

static POOL: BufferPool = BufferPool::new(0);

/// A loaded model's claim on a pool: while it lives the pool may hold up to its bytes.
pub struct Grant<'a> {
    pool: &'a BufferPool,
    id: u64,
}

impl Grant<'_> {
    /// Raise the claim to `bytes` (a prediction's measured peak above the planned one).
    pub fn raise(&self, bytes: usize) {
        if let Some(mut p) = self.pool.lock()
            && let Some(g) = p.grants.iter_mut().find(|g| g.0 == self.id)
        {
            g.1 = g.1.max(bytes);
        }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let evicted = self.pool.lock().map(|mut p| {
            p.grants.retain(|g| g.0 != self.id);
            p.shrink()
        });
        drop(evicted);
    }
}

impl BufferPool {
    /// An empty pool that holds at most `max_bytes` besides what grants allow.
    pub const fn new(max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                free: VecDeque::new(),
                bytes: 0,
                base: max_bytes,
                grants: Vec::new(),
                next_id: 0,
            }),
        }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        self.inner.lock().ok()
    }

    /// Let the pool hold up to `bytes` while the returned grant lives.
    pub fn grant(&self, bytes: usize) -> Grant<'_> {
        let id = self.lock().map_or(u64::MAX, |mut p| {
            let id = p.next_id;
            p.next_id += 1;
            p.grants.push((id, bytes));
            id
        });
        Grant { pool: self, id }
    }

    /// Keep `v` for a later [`BufferPool::take`] (short ones are dropped; past the limit
    /// the oldest pooled buffers are).
    pub fn recycle_vec(&self, v: Vec<f32>) {
        let bytes = v.capacity() * 4;
        if v.len() < MIN_LEN {
            return;
        }
        let evicted = {
            let Some(mut p) = self.lock() else { return };
            if bytes > p.max_bytes() {
                return;
            }
            p.bytes += bytes;
            p.free.push_back(v);
            p.shrink()
        };
        drop(evicted);
    }

    /// A buffer of `len` floats with unspecified contents: the smallest pooled one that
    /// holds `len` floats, else a new one.
    pub fn take(&self, len: usize) -> Vec<f32> {
        if len < MIN_LEN {
            return vec![0.0; len];
        }
        let found = self.lock().and_then(|mut p| {
            let i = p
                .free
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())?
                .0;
            let v = p.free.remove(i)?;
            p.bytes -= v.capacity() * 4;
            Some(v)
        });
        match found {
            Some(mut v) => {
                if v.len() >= len {
                    v.truncate(len);
                } else {
                    v.resize(len, 0.0);
                }
                v
            }
            None => vec![0.0; len],
        }
    }

    /// Floats held.
    #[cfg(test)]
    fn pooled_floats(&self) -> usize {
        self.lock().map_or(0, |p| p.bytes / 4)
    }
}

/// Let the process-wide pool hold up to `bytes` (a model's activation peak) while the
/// grant lives.
pub fn grant(bytes: usize) -> Grant<'static> {
    POOL.grant(bytes)
}

/// Give the buffer of a dead value back to the pool (other values are dropped).
pub fn recycle(v: Value) {
    if let Value::F32(a) = v
        && let Some(v) = whole_buffer(a)
    {
        POOL.recycle_vec(v);
    }
}

/// Give a scratch buffer (from [`take`]) back to the pool.
pub fn recycle_vec(v: Vec<f32>) {
    POOL.recycle_vec(v);
}

/// The buffer of `a` when `a` is long enough to pool and owns it whole in standard layout.
fn whole_buffer(a: ArrayD<f32>) -> Option<Vec<f32>> {
    if a.len() < MIN_LEN || !a.is_standard_layout() {
        return None;
    }
    match a.into_raw_vec_and_offset() {
        (v, Some(0)) if v.len() >= MIN_LEN => Some(v),
        _ => None,
    }
}

/// A buffer of `len` floats whose contents are unspecified (values an earlier op left):
/// for outputs that the caller overwrites in full.
///
/// In debug builds (the tests) every element is NaN instead, so that a kernel that leaves
/// part of its output unwritten fails its comparison with the reference.
pub fn take(len: usize) -> Vec<f32> {
    let mut v = POOL.take(len);
    if cfg!(debug_assertions) {
        v.fill(f32::NAN);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_recycled_buffer_that_fits_is_reused() {
        let pool = BufferPool::new(1 << 30);
        let mut v = vec![1.5f32; 3 * MIN_LEN];
        let ptr = v.as_ptr();
        v[7] = 2.0;
        pool.recycle_vec(v);
        pool.recycle_vec(vec![0.0; 5 * MIN_LEN]);
        assert_eq!(pool.pooled_floats(), 8 * MIN_LEN);
        // Too big for either: a new buffer.
        assert_eq!(pool.take(6 * MIN_LEN).len(), 6 * MIN_LEN);
        assert_eq!(pool.pooled_floats(), 8 * MIN_LEN);
        // The smaller one that fits, contents as left.
        let again = pool.take(2 * MIN_LEN);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(again.len(), 2 * MIN_LEN);
        assert_eq!((again[7], again[8]), (2.0, 1.5));
        assert_eq!(pool.pooled_floats(), 5 * MIN_LEN);
        // Grown back to its capacity: the gap is written.
        pool.recycle_vec(again);
        let full = pool.take(3 * MIN_LEN);
        assert_eq!(full.as_ptr(), ptr);
        assert_eq!(full[3 * MIN_LEN - 1], 0.0);
    }

    #[test]
    fn the_pool_keeps_to_its_limit_dropping_the_oldest() {
        let pool = BufferPool::new(4 * MIN_LEN * 4);
        pool.recycle_vec(vec![0.0; MIN_LEN - 1]);
        assert_eq!(
            pool.pooled_floats(),
            0,
            "short buffers are left to the allocator"
        );
        pool.recycle_vec(vec![0.0; 5 * MIN_LEN]);
        assert_eq!(pool.pooled_floats(), 0, "larger than the limit");
        let first = vec![0.0; 3 * MIN_LEN];
        let first_ptr = first.as_ptr();
        pool.recycle_vec(first);
        pool.recycle_vec(vec![0.0; 2 * MIN_LEN]);
        assert_eq!(pool.pooled_floats(), 2 * MIN_LEN, "the oldest went");
        let second = pool.take(2 * MIN_LEN);
        assert_ne!(second.as_ptr(), first_ptr);
        {
            let big = pool.grant(8 * MIN_LEN * 4);
            let small = pool.grant(MIN_LEN * 4);
            pool.recycle_vec(vec![0.0; 3 * MIN_LEN]);
            pool.recycle_vec(vec![0.0; 5 * MIN_LEN]);
            assert_eq!(
                pool.pooled_floats(),
                8 * MIN_LEN,
                "the largest grant counts"
            );
            drop(big);
            assert_eq!(
                pool.pooled_floats(),
                0,
                "back to 4·MIN_LEN: the oldest went"
            );
            small.raise(6 * MIN_LEN * 4);
            pool.recycle_vec(vec![0.0; 5 * MIN_LEN]);
            assert_eq!(pool.pooled_floats(), 5 * MIN_LEN, "a raised grant");
        }
        pool.recycle_vec(vec![0.0; 5 * MIN_LEN]);
        assert_eq!(
            pool.pooled_floats(),
            0,
            "no grant left: over the base limit"
        );
    }

    #[test]
    fn take_in_debug_builds_marks_every_element_unwritten() {
        let v = take(MIN_LEN + 3);
        assert_eq!(v.len(), MIN_LEN + 3);
        assert_eq!(v.iter().all(|x| x.is_nan()), cfg!(debug_assertions));
    }

    #[test]
    fn only_whole_standard_layout_arrays_are_recycled() {
        use ndarray::{Axis, IxDyn, Slice};
        assert!(whole_buffer(ArrayD::zeros(IxDyn(&[4, 4]))).is_none());
        let big = ArrayD::<f32>::zeros(IxDyn(&[256, 128]));
        assert!(whole_buffer(big.clone().reversed_axes()).is_none());
        let mut sliced = big.clone();
        sliced.slice_axis_inplace(Axis(0), Slice::from(128..));
        assert!(
            whole_buffer(sliced).is_none(),
            "a view that starts past the buffer"
        );
        assert_eq!(whole_buffer(big).map(|v| v.len()), Some(256 * 128));
    }
}
