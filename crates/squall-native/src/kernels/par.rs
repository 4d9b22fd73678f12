//! Safe helpers that let kernels run on `crate::parallel::parallel_for` without `unsafe`:
//! disjoint output chunks are handed to tasks through uncontended mutexes, results are
//! collected per task in a fixed order, and scratch memory is kept per thread.

use std::cell::Cell;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard};

use crate::parallel::{parallel_for, threads};

/// Below this many elements of work a kernel stays on the calling thread.
pub(crate) const PAR_MIN_WORK: usize = 1 << 15;

/// Items [start, end) of task `t` when `n` items are split into `tasks` contiguous ranges
/// whose sizes differ by at most one (the first `n % tasks` ranges get the extra item).
pub(crate) fn task_range(n: usize, tasks: usize, t: usize) -> Range<usize> {
    debug_assert!(tasks >= 1 && t < tasks);
    let base = n / tasks;
    let rem = n % tasks;
    let start = t * base + t.min(rem);
    start..start + base + usize::from(t < rem)
}

/// How many tasks to use for `items` independent items carrying `work` elements of work in
/// total: one when the work is small or there is one thread, else at most one per thread.
pub(crate) fn tasks_for(items: usize, work: usize) -> usize {
    let t = threads().max(1);
    if t == 1 || items < 2 || work < PAR_MIN_WORK {
        1
    } else {
        t.min(items)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another task panicked; the panic is re-raised by the pool.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Splits `data` (made of `item_len`-sized items) into `tasks` contiguous groups of items
/// and calls `f(items, chunk)` for each, in parallel when tasks > 1.
pub(crate) fn for_each_chunk<T, F>(data: &mut [T], item_len: usize, tasks: usize, f: F)
where
    T: Send,
    F: Fn(Range<usize>, &mut [T]) + Sync,
{
    let n = data.len().checked_div(item_len).unwrap_or(0);
    debug_assert_eq!(n * item_len, data.len());
    if tasks <= 1 || n <= 1 {
        f(0..n, data);
        return;
    }
    let tasks = tasks.min(n);
    let mut chunks = Vec::with_capacity(tasks);
    let mut rest = data;
    for t in 0..tasks {
        let r = task_range(n, tasks, t);
        let (head, tail) = rest.split_at_mut(r.len() * item_len);
        chunks.push(Mutex::new(head));
        rest = tail;
    }
    parallel_for(tasks, |t| {
        let mut chunk = lock(&chunks[t]);
        f(task_range(n, tasks, t), &mut chunk);
    });
}

/// Like `for_each_chunk` over two outputs split at the same item boundaries.
pub(crate) fn for_each_chunk2<A, B, F>(a: &mut [A], a_len: usize, b: &mut [B], b_len: usize, tasks: usize, f: F)
where
    A: Send,
    B: Send,
    F: Fn(Range<usize>, &mut [A], &mut [B]) + Sync,
{
    let n = a.len().checked_div(a_len).unwrap_or(0);
    debug_assert_eq!(n * a_len, a.len());
    debug_assert_eq!(n * b_len, b.len());
    if tasks <= 1 || n <= 1 {
        f(0..n, a, b);
        return;
    }
    let tasks = tasks.min(n);
    let mut chunks = Vec::with_capacity(tasks);
    let (mut ra, mut rb) = (a, b);
    for t in 0..tasks {
        let r = task_range(n, tasks, t);
        let (ha, ta) = ra.split_at_mut(r.len() * a_len);
        let (hb, tb) = rb.split_at_mut(r.len() * b_len);
        chunks.push(Mutex::new((ha, hb)));
        ra = ta;
        rb = tb;
    }
    parallel_for(tasks, |t| {
        let mut g = lock(&chunks[t]);
        let (ca, cb) = &mut *g;
        f(task_range(n, tasks, t), ca, cb);
    });
}

/// `data` cut into `item_len`-sized chunks, each behind its own mutex, so tasks that write
/// to parts of one chunk (in any order) can share it safely. Locks are short and rarely
/// contended.
pub(crate) struct LockedChunks<'a, T>(Vec<Mutex<&'a mut [T]>>);

impl<'a, T: Send> LockedChunks<'a, T> {
    pub fn new(data: &'a mut [T], item_len: usize) -> Self {
        debug_assert!(item_len > 0 && data.len().is_multiple_of(item_len));
        LockedChunks(data.chunks_mut(item_len.max(1)).map(Mutex::new).collect())
    }
    pub fn with<R>(&self, i: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
        let mut g = lock(&self.0[i]);
        f(&mut g)
    }
}

/// Runs `f(t)` for t in 0..tasks (in parallel when tasks > 1) and returns the results in
/// task order, so a reduction over them has a fixed order.
pub(crate) fn collect<R, F>(tasks: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync,
{
    if tasks <= 1 {
        return (0..tasks).map(&f).collect();
    }
    let slots: Vec<Mutex<Option<R>>> = (0..tasks).map(|_| Mutex::new(None)).collect();
    parallel_for(tasks, |t| {
        let r = f(t);
        *lock(&slots[t]) = Some(r);
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()).expect("parallel_for skipped a task"))
        .collect()
}

thread_local! {
    static WORKSPACE: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// Calls `f` with this thread's scratch buffer of `len` floats (contents unspecified). The
/// buffer is taken out of the thread-local while in use, so re-entrant use (a pool that runs
/// another task on this thread meanwhile) simply allocates a fresh one.
pub(crate) fn with_workspace<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = WORKSPACE.with(|c| c.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    let r = f(&mut v[..len]);
    WORKSPACE.with(|c| {
        let other = c.take();
        // Keep the larger of the two buffers if a re-entrant call stored one meanwhile.
        c.set(if other.len() > v.len() { other } else { v });
    });
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_exactly() {
        for n in 0..20 {
            for tasks in 1..6 {
                let mut next = 0;
                for t in 0..tasks {
                    let r = task_range(n, tasks, t);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn chunks_are_disjoint_and_complete() {
        let mut data = vec![0usize; 7 * 3];
        for tasks in 1..5 {
            for_each_chunk(&mut data, 3, tasks, |items, chunk| {
                for (k, i) in items.enumerate() {
                    chunk[k * 3..k * 3 + 3].fill(i);
                }
            });
            for (j, &v) in data.iter().enumerate() {
                assert_eq!(v, j / 3);
            }
        }
        assert_eq!(collect(4, |t| t * 10), vec![0, 10, 20, 30]);
    }
}
