//! The kernels' thread pool: persistent std threads, fork-join `parallel_for`.
//!
//! - `threads()` threads take part in a `parallel_for`: the caller plus `threads() - 1`
//!   workers. Default: `SQUALL_THREADS`, else `available_parallelism`; `set_threads(n)`.
//! - One `parallel_for` uses the pool at a time: callers on other threads (libuv workers
//!   running async kernels) wait at a gate, so concurrent kernels take turns at the full
//!   pool instead of oversubscribing the cores. `exclusive(f)` holds that gate around a
//!   larger region (a multi-threaded BLAS call), and is re-entrant.
//! - A `parallel_for` from inside a pool task runs serially on the calling thread
//!   (`in_pool_task()` says when that is the case).
//! - Workers spin briefly after a job before they park, so back-to-back calls (one per
//!   layer) pay microseconds, not a futex wake-up each.
//! - A panic in a task is caught, the other tasks finish, and the panic is re-raised on
//!   the caller's thread (the FFI boundary turns it into a JavaScript error).

use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

thread_local! {
    /// True while this thread runs a task of a parallel_for dispatched to the pool.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
    /// How many nested `exclusive` regions this thread is inside (it holds the gate when > 0).
    static GATE_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Maximum pool size accepted by `set_threads`.
pub const MAX_THREADS: usize = 256;

static THREADS: AtomicUsize = AtomicUsize::new(0);

fn default_threads() -> usize {
    if let Ok(v) = std::env::var("SQUALL_THREADS") {
        if let Ok(n) = v.trim().parse::<usize>() {
            if n >= 1 {
                return n.min(MAX_THREADS);
            }
        }
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_THREADS)
}

/// Threads the heavy kernels may use now (>= 1).
pub fn threads() -> usize {
    let t = THREADS.load(Ordering::Relaxed);
    if t != 0 {
        return t;
    }
    let d = default_threads();
    match THREADS.compare_exchange(0, d, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => d,
        Err(cur) => cur,
    }
}

/// Sets the number of threads (clamped to 1..=MAX_THREADS). Waits for a running
/// parallel_for to finish; workers are started or stopped to match.
pub fn set_threads(n: usize) {
    let n = n.clamp(1, MAX_THREADS);
    exclusive(|| {
        THREADS.store(n, Ordering::Relaxed);
        if let Some(pool) = POOL.get() {
            pool.resize(n - 1);
        }
    });
}

/// True on a thread that is running a task of a parallel_for (worker or caller).
pub fn in_pool_task() -> bool {
    IN_TASK.with(|c| c.get())
}

static GATE: Mutex<()> = Mutex::new(());

fn lock_gate() -> MutexGuard<'static, ()> {
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

struct DepthGuard;
impl Drop for DepthGuard {
    fn drop(&mut self) {
        GATE_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs f while holding the pool's gate, so no other thread's parallel_for (or other
/// exclusive region) runs at the same time. Re-entrant; inside a pool task it just runs f.
pub fn exclusive<R>(f: impl FnOnce() -> R) -> R {
    if in_pool_task() || GATE_DEPTH.with(|d| d.get()) > 0 {
        GATE_DEPTH.with(|d| d.set(d.get() + 1));
        let _depth = DepthGuard;
        return f();
    }
    let _gate = lock_gate();
    GATE_DEPTH.with(|d| d.set(d.get() + 1));
    let _depth = DepthGuard;
    f()
}

/// Runs f(0), ..., f(n - 1), possibly concurrently on the pool's threads; returns when all
/// are done. Indices are handed out one at a time in increasing order.
pub fn parallel_for<F: Fn(usize) + Sync>(n: usize, f: F) {
    if n == 0 {
        return;
    }
    if n == 1 {
        f(0);
        return;
    }
    if in_pool_task() || threads() <= 1 {
        for i in 0..n {
            f(i);
        }
        return;
    }
    exclusive(|| {
        let nthreads = threads();
        if nthreads <= 1 {
            // set_threads(1) ran between the check above and the gate.
            let _task = TaskFlag::set();
            for i in 0..n {
                f(i);
            }
            return;
        }
        let pool = pool();
        pool.resize(nthreads - 1);
        pool.run(n, &f);
    });
}

/// Splits 0..len into at most `parts` contiguous ranges of nearly equal size, each a
/// multiple of `align` except the last; returns range `i` (empty when i is past the end).
pub fn split_range(len: usize, parts: usize, align: usize, i: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let units = len.div_ceil(align);
    let parts = parts.max(1);
    let base = units / parts;
    let extra = units % parts;
    let start_u = i * base + i.min(extra);
    let count_u = base + usize::from(i < extra);
    let start = (start_u * align).min(len);
    let end = ((start_u + count_u) * align).min(len);
    start..end
}

struct TaskFlag {
    prev: bool,
}
impl TaskFlag {
    fn set() -> TaskFlag {
        let prev = IN_TASK.with(|c| c.replace(true));
        TaskFlag { prev }
    }
}
impl Drop for TaskFlag {
    fn drop(&mut self) {
        IN_TASK.with(|c| c.set(self.prev));
    }
}

// ---------------------------------------------------------------------------------------

/// The task of the current dispatch, with its lifetime erased. Valid only between the
/// store in `Pool::run` and the moment every worker has acknowledged the generation.
#[derive(Clone, Copy)]
struct JobPtr(*const (dyn Fn(usize) + Sync));
// SAFETY: the pointee is Sync and outlives every use (Pool::run waits for all workers).
unsafe impl Send for JobPtr {}
// SAFETY: as above; the pointer is only dereferenced to call a `Fn + Sync`.
unsafe impl Sync for JobPtr {}

struct Shared {
    /// Incremented once per dispatch; workers run the job of each new generation.
    generation: AtomicU64,
    /// Next index to hand out.
    next: AtomicUsize,
    /// Number of indices of the current job.
    count: AtomicUsize,
    /// Workers that have finished the current generation.
    done: AtomicUsize,
    job: Mutex<Option<JobPtr>>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Sleeping workers wait here for a new generation.
    wake_lock: Mutex<()>,
    wake: Condvar,
    /// The caller sleeps here when workers take long.
    done_lock: Mutex<()>,
    done_cv: Condvar,
    sleepers: AtomicUsize,
    caller_sleeping: AtomicBool,
}

struct Worker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

struct Pool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<Worker>>,
    /// Number of live workers (each must acknowledge every generation).
    live: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool {
        shared: Arc::new(Shared {
            generation: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: Mutex::new(None),
            panic: Mutex::new(None),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            done_lock: Mutex::new(()),
            done_cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            caller_sleeping: AtomicBool::new(false),
        }),
        workers: Mutex::new(Vec::new()),
        live: AtomicUsize::new(0),
    })
}

/// How long an idle worker polls for the next job before it parks.
const SPIN: Duration = Duration::from_micros(200);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Starts or stops workers so that `n` exist. Called with the gate held.
    fn resize(&self, n: usize) {
        let mut workers = lock(&self.workers);
        if workers.len() == n {
            return;
        }
        while workers.len() > n {
            let mut w = workers.pop().expect("non-empty");
            w.stop.store(true, Ordering::SeqCst);
            {
                let _g = lock(&self.shared.wake_lock);
                self.shared.wake.notify_all();
            }
            if let Some(h) = w.handle.take() {
                let _ = h.join();
            }
        }
        let start_gen = self.shared.generation.load(Ordering::SeqCst);
        while workers.len() < n {
            let stop = Arc::new(AtomicBool::new(false));
            let shared = Arc::clone(&self.shared);
            let stop2 = Arc::clone(&stop);
            let id = workers.len();
            let handle = std::thread::Builder::new()
                .name(format!("squall-pool-{id}"))
                .spawn(move || worker_main(shared, stop2, start_gen))
                .expect("squall: cannot spawn a pool thread");
            workers.push(Worker { stop, handle: Some(handle) });
        }
        self.live.store(workers.len(), Ordering::SeqCst);
    }

    /// Runs the job on the caller and every worker; returns when all have finished.
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        let live = self.live.load(Ordering::SeqCst);
        // Erase the lifetime of `f`: run() returns only after every worker has acknowledged
        // this generation, after which none touches the pointer again.
        // SAFETY: see the two lines above; the fat pointer's layout is unchanged.
        let ptr: *const (dyn Fn(usize) + Sync) = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f) };
        *lock(&s.job) = Some(JobPtr(ptr));
        s.count.store(n, Ordering::SeqCst);
        s.next.store(0, Ordering::SeqCst);
        s.done.store(0, Ordering::SeqCst);
        s.generation.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&s.wake_lock);
            s.wake.notify_all();
        }
        // The caller takes its share.
        let caller_panic = {
            let _task = TaskFlag::set();
            catch_unwind(AssertUnwindSafe(|| run_indices(s, f))).err()
        };
        // Wait until every worker has acknowledged the generation.
        let t0 = Instant::now();
        while s.done.load(Ordering::SeqCst) < live {
            if t0.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let g = lock(&s.done_lock);
            s.caller_sleeping.store(true, Ordering::SeqCst);
            if s.done.load(Ordering::SeqCst) < live {
                let _ = s.done_cv.wait_timeout(g, Duration::from_millis(1));
            }
            s.caller_sleeping.store(false, Ordering::SeqCst);
        }
        *lock(&s.job) = None;
        let worker_panic = lock(&s.panic).take();
        if let Some(p) = caller_panic.or(worker_panic) {
            resume_unwind(p);
        }
    }
}

fn run_indices(s: &Shared, f: &(dyn Fn(usize) + Sync)) {
    let n = s.count.load(Ordering::SeqCst);
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        f(i);
    }
}

fn worker_main(shared: Arc<Shared>, stop: Arc<AtomicBool>, start_gen: u64) {
    IN_TASK.with(|c| c.set(true));
    let s = &*shared;
    let mut seen = start_gen;
    loop {
        // Wait for a new generation: spin, then park.
        let t0 = Instant::now();
        let mut spins = 0u32;
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            if s.generation.load(Ordering::SeqCst) != seen {
                break;
            }
            if spins < 64 || t0.elapsed() < SPIN {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let g = lock(&s.wake_lock);
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            if s.generation.load(Ordering::SeqCst) == seen && !stop.load(Ordering::SeqCst) {
                let _ = s.wake.wait_timeout(g, Duration::from_millis(50));
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        seen = s.generation.load(Ordering::SeqCst);
        let job = *lock(&s.job);
        if let Some(JobPtr(p)) = job {
            // SAFETY: the dispatching caller keeps the job alive until this worker bumps `done`.
            let f: &(dyn Fn(usize) + Sync) = unsafe { &*p };
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_indices(s, f))) {
                let mut slot = lock(&s.panic);
                if slot.is_none() {
                    *slot = Some(e);
                }
            }
        }
        s.done.fetch_add(1, Ordering::SeqCst);
        if s.caller_sleeping.load(Ordering::SeqCst) {
            let _g = lock(&s.done_lock);
            s.done_cv.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn runs_every_index_once() {
        set_threads(2);
        for n in [0usize, 1, 2, 3, 17, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            parallel_for(n, |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn nested_runs_serially() {
        set_threads(2);
        let total = AtomicUsize::new(0);
        parallel_for(4, |_| {
            assert!(in_pool_task());
            parallel_for(8, |_| {
                total.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(total.load(Ordering::Relaxed), 32);
        assert!(!in_pool_task());
    }

    #[test]
    fn panics_propagate() {
        set_threads(2);
        let r = catch_unwind(|| parallel_for(10, |i| if i == 7 { panic!("boom") }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let total = AtomicUsize::new(0);
        parallel_for(10, |_| {
            total.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn concurrent_callers() {
        set_threads(2);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..200 {
                        let total = AtomicUsize::new(0);
                        parallel_for(16, |i| {
                            total.fetch_add(i, Ordering::Relaxed);
                        });
                        assert_eq!(total.load(Ordering::Relaxed), 120);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn split_range_covers() {
        for len in [0usize, 1, 5, 32, 33, 100] {
            for parts in 1..5 {
                let mut next = 0;
                for i in 0..parts {
                    let r = split_range(len, parts, 8, i);
                    assert_eq!(r.start, next.min(len));
                    next = r.end.max(next);
                }
                assert_eq!(next, len);
            }
        }
    }
}
